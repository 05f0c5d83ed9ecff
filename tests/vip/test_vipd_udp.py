"""The unprivileged mode: transport "udp", address driver "listener", on loopback.

No root, no namespaces: two nodes on their own random 127.x.y.z addresses,
each with vipd and a listener service (tests/vip/listener_service.py) that
binds the VIP's port when vipd says so. A client on loopback sees the VIP
answered by its home, then by the other node once the home node is killed.
"""

from __future__ import annotations

import functools
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapha.control import ControlClientError, request

from .vipd_lab import REPO, short_tmp, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def who(address: str, port: int) -> str | None:
    try:
        with socket.create_connection((address, port), timeout=0.5) as sock:
            return sock.recv(64).decode().strip() or None
    except OSError:
        return None


@pytest.fixture
def loopback() -> Iterator[tuple[Path, list[str], str, int, list[subprocess.Popen[bytes]]]]:
    net = f"127.{random.randrange(1, 250)}.{random.randrange(1, 250)}"
    a, b, vip = f"{net}.11", f"{net}.12", f"{net}.101"
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    with short_tmp() as root:
        config = root / "imapha.toml"
        config.write_text(f"""\
[cluster]
name = "udp"
run_dir = "{root}/run/{{node}}"
state_dir = "{root}/state/{{node}}"

[nodes.a]
address = "{a}"
interface = "lo"

[nodes.b]
address = "{b}"
interface = "lo"

[[vips]]
name = "v1"
address = "{vip}/32"
vrid = 51
home = "a"

[vrrp]
advert_interval = "100ms"
transport = "udp"
address_driver = "listener"
garp_count = 0

[proxy]

[[backends]]
name = "be1"
address = "127.0.0.1:143"
""")
        try:
            yield config, [a, b], vip, port, procs
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)


def spawn(procs: list[subprocess.Popen[bytes]], root: Path, argv: list[str]) -> None:
    log = (root / f"p{len(procs)}.log").open("wb")
    procs.append(subprocess.Popen([sys.executable, *argv], cwd=REPO, stdout=log,
                                  stderr=subprocess.STDOUT))


def running(sock: Path) -> bool:
    try:
        return request(sock, "GET", "/status", timeout=2).body.get("state") == "running"
    except ControlClientError:
        return False


def test_two_vipd_processes_fail_over_without_privileges(
    loopback: tuple[Path, list[str], str, int, list[subprocess.Popen[bytes]]],
) -> None:
    config, _addrs, vip, port, procs = loopback
    root = config.parent
    for node in ("a", "b"):
        run = root / "run" / node
        spawn(procs, root, ["-m", "tests.vip.listener_service", "--config", str(config),
                            "--node", node, "--port", str(port)])
        wait_for(functools.partial(running, run / "proxy.sock"), 15, f"service {node}")
        spawn(procs, root, ["-m", "imapha", "vipd", "--config", str(config), "--node", node])
        wait_for(functools.partial(running, run / "vipd.sock"), 15, f"vipd {node}")
    wait_for(lambda: who(vip, port) == "a", 10, "the VIP answered by a")
    wait_for(lambda: request(root / "run" / "b" / "vipd.sock", "GET", "/status")
             .body["vips"][0]["state"] == "backup", 5, "b a ready backup")
    # Node a dies (its service and its vipd): b's listener takes the VIP.
    for proc in procs[:2]:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    wait_for(lambda: who(vip, port) == "b", 5, "the VIP answered by b")

    def told() -> dict[str, object]:
        last: dict[str, object] = request(root / "run" / "b" / "proxy.sock", "GET",
                                          "/status").body["told"][-1]
        return last

    wait_for(lambda: told()["state"] == "master", 3, "b's service told it is master")
    assert told()["vip"] == "v1" and told()["node"] == "b"
