"""A real Prometheus (the Debian package) in a lab host, queried over its HTTP API."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from imapha.lab.proc import LabProcess
from imapha.lab.topology import Host
from tests.prereq import need_binary

#: Inside the lab host's own namespace: no clash with the host or other tests.
LISTEN = "127.0.0.1:9090"

_QUERY = r"""
import json, sys, urllib.request, urllib.error
base, exprs = sys.argv[1], json.loads(sys.stdin.read())
out = []
for expr in exprs:
    try:
        with urllib.request.urlopen(base + expr, timeout=10) as r:
            out.append(json.load(r))
    except urllib.error.HTTPError as e:
        out.append(json.loads(e.read() or b"{}") or {"status": "error", "error": str(e)})
print(json.dumps(out))
"""


class Prometheus:
    def __init__(self, host: Host, process: LabProcess) -> None:
        self.host = host
        self.process = process

    def query(self, *exprs: str) -> list[dict[str, Any]]:
        base = f"http://{LISTEN}/api/v1/query?query="
        out = self.host.run(
            [sys.executable, "-c", _QUERY, base],
            input=json.dumps([quote(e, safe="") for e in exprs]), timeout=60)
        answers: list[dict[str, Any]] = json.loads(out.stdout)
        return answers

    def vector(self, expr: str) -> list[dict[str, Any]]:
        answer = self.query(expr)[0]
        assert answer.get("status") == "success", (expr, answer)
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait(self, expr: str, check: Callable[[list[dict[str, Any]]], Any], timeout: float,
             what: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                result = self.vector(expr)
            except Exception:  # not up yet
                result = []
            if check(result):
                return result
            time.sleep(0.5)
        raise AssertionError(f"{what}: {expr} gave {result}")


def scrape_config(jobs: dict[str, dict[str, str]]) -> str:
    """``{job: {node: "host:port"}}`` as docs/operations.md writes it, scraped every second."""
    lines = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s",
             "scrape_configs:"]
    for job, targets in jobs.items():
        lines += [f"  - job_name: {job}", "    static_configs:"]
        for node, address in targets.items():
            lines += [f"      - targets: ['{address}']", f"        labels: {{node: {node}}}"]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def running_prometheus(host: Host, work: Path, config: str, logs: Path) -> Iterator[Prometheus]:
    binary = need_binary("prometheus")
    work.mkdir(parents=True, exist_ok=True)
    (work / "prometheus.yml").write_text(config)
    process = host.spawn(
        [binary, f"--config.file={work / 'prometheus.yml'}",
         f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address={LISTEN}",
         "--log.level=warn"], log=logs / "prometheus.log")
    try:
        yield Prometheus(host, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(5)
