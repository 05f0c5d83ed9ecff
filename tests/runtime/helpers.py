"""Run real ``python -m imapha.testdaemon`` processes against a real config file."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from imapha.control import ControlClientError, ControlResponse, request
from tests.support import wait_for

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")




CONFIG_TEMPLATE = """\
[cluster]
name = "rt"
run_dir = "{root}/run/{{node}}"
state_dir = "{root}/state/{{node}}"

[nodes.a]
address = "192.0.2.11"
interface = "lo"

[nodes.b]
address = "192.0.2.12"
interface = "lo"

[[vips]]
name = "imap1"
address = "192.0.2.101"
vrid = 51
home = "a"

[vrrp]
metrics = "127.0.0.1:0"

[proxy]
max_connections = {max_connections}
metrics = "127.0.0.1:0"

[[backends]]
name = "be1"
address = "192.0.2.21:143"
{extra}
"""


def write_config(root: Path, *, max_connections: int = 1000, extra: str = "",
                 name: str = "imapha.toml") -> Path:
    path = root / name
    path.write_text(CONFIG_TEMPLATE.format(root=root, max_connections=max_connections,
                                           extra=extra))
    return path


@dataclass
class Daemon:
    """One test daemon process; stop() or kill() it (the fixture always does)."""

    role: str
    node: str
    config: Path
    socket: Path
    pid_file: Path
    log_path: Path
    proc: subprocess.Popen[bytes]
    args: Sequence[str] = field(default_factory=tuple)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, target: str, timeout: float = 5.0) -> ControlResponse:
        return request(self.socket, "GET", target, timeout=timeout)

    def post(self, target: str, body: dict[str, object] | None = None,
             timeout: float = 5.0) -> ControlResponse:
        return request(self.socket, "POST", target, body, timeout=timeout)

    def status(self) -> dict[str, Any]:
        return self.get("/status").body

    def running(self) -> bool:
        try:
            return bool(self.proc.poll() is None and self.status().get("state") == "running")
        except ControlClientError:
            return False

    def wait_running(self, timeout: float = 15.0) -> Daemon:
        def check() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.role}@{self.node} exited {self.proc.returncode}:\n"
                                     f"{self.log()}")
            return self.running()

        wait_for(check, timeout, what=f"{self.role}@{self.node} to run")
        return self

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def wait_exit(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int:
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Daemons:
    """Starts daemons and guarantees they are gone at the end (by PID)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Daemon] = []

    def spawn(self, config: Path, node: str, role: str, *args: str,
              env: dict[str, str] | None = None) -> Daemon:
        log_path = self.root / f"{node}-{role}-{len(self.started)}.log"
        cmd = [sys.executable, "-m", "imapha.testdaemon", "--config", str(config),
               "--node", node, "--role", role, "--log-level", "debug", *args]
        full_env = {k: v for k, v in os.environ.items()
                    if k not in {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}}
        full_env.update(env or {})
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT,
                                    cwd=REPO, env=full_env)
        run_dir = self.root / "run" / node
        daemon = Daemon(role, node, config, run_dir / f"{role}.sock", run_dir / f"{role}.pid",
                        log_path, proc, args)
        self.started.append(daemon)
        return daemon

    def start(self, config: Path, node: str, role: str, *args: str,
              env: dict[str, str] | None = None) -> Daemon:
        return self.spawn(config, node, role, *args, env=env).wait_running()

    def close(self) -> None:
        for daemon in self.started:
            daemon.kill()


def ctl(config: Path, *args: str, subprocess_: bool = False,
        timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``imapha ctl --config CONFIG ARGS...`` as an operator would run it.

    In this process through :func:`imapha.cli.main` (fast), or as a real
    ``python -m imapha`` process with ``subprocess_=True``.
    """
    argv = ["ctl", "--config", str(config), *args]
    if subprocess_:
        return subprocess.run([sys.executable, "-m", "imapha", *argv], capture_output=True,
                              text=True, timeout=timeout, cwd=REPO, check=False)
    from imapha import cli
    from imapha import ctl as ctl_module

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            # cli.main minus its logging set-up, which would replace pytest's handlers.
            parser, _ = cli.build_parser("ctl")
            code = ctl_module.run(parser.parse_args(argv))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
