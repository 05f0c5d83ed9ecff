"""The unprivileged mode: transport "udp", address driver "listener", on loopback.

No root, no namespaces: two nodes on their own random 127.x.y.z addresses,
each with vipd and a listener service (tests/vip/listener_service.py) that
binds the VIP's port when vipd says so. A client on loopback sees which node
answers the VIP. Also here, because they need no privileges: hooks, track
files and scripts, metrics, and a clean stop.
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from imapha.control import ControlClientError, request
from tests.support import short_tmp, wait_for

from .vipd_lab import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def running(sock: Path) -> bool:
    try:
        return request(sock, "GET", "/status", timeout=2).body.get("state") == "running"
    except ControlClientError:
        return False


@dataclass
class Loopback:
    root: Path
    net: str
    port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def vip(self) -> str:
        return f"{self.net}.101"

    @property
    def config(self) -> Path:
        return self.root / "imapha.toml"

    def write(self, extra_vrrp: str = "", interval: str = "100ms") -> None:
        self.config.write_text(f"""\
[cluster]
name = "udp"
run_dir = "{self.root}/run/{{node}}"
state_dir = "{self.root}/state/{{node}}"

[nodes.a]
address = "{self.net}.11"
interface = "lo"

[nodes.b]
address = "{self.net}.12"
interface = "lo"

[[vips]]
name = "v1"
address = "{self.vip}/32"
vrid = 51
home = "a"

[vrrp]
advert_interval = "{interval}"
transport = "udp"
address_driver = "listener"
garp_count = 0
metrics = "127.0.0.1:0"
{extra_vrrp}

[proxy]

[[backends]]
name = "be1"
address = "127.0.0.1:143"
""")

    def sock(self, node: str, role: str) -> Path:
        return self.root / "run" / node / f"{role}.sock"

    def spawn(self, key: str, argv: list[str]) -> None:
        with (self.root / f"{key}.log").open("ab") as log:
            self.procs[key] = subprocess.Popen([sys.executable, *argv], cwd=REPO, stdout=log,
                                               stderr=subprocess.STDOUT)

    def start(self, node: str) -> None:
        self.spawn(f"service-{node}", ["-m", "tests.vip.listener_service", "--config",
                                       str(self.config), "--node", node, "--port",
                                       str(self.port)])
        wait_for(functools.partial(running, self.sock(node, "proxy")), 15, f"service {node}")
        self.spawn(f"vipd-{node}", ["-m", "imapha", "vipd", "--config", str(self.config),
                                    "--node", node])
        wait_for(functools.partial(running, self.sock(node, "vipd")), 15, f"vipd {node}")

    def kill(self, node: str) -> None:
        for key in (f"service-{node}", f"vipd-{node}"):
            proc = self.procs[key]
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def who(self) -> str | None:
        try:
            with socket.create_connection((self.vip, self.port), timeout=0.5) as sock:
                return sock.recv(64).decode().strip() or None
        except OSError:
            return None

    def status(self, node: str) -> dict[str, Any]:
        return request(self.sock(node, "vipd"), "GET", "/status").body

    def vip_status(self, node: str) -> dict[str, Any]:
        vip: dict[str, Any] = self.status(node)["vips"][0]
        return vip

    def told(self, node: str) -> list[dict[str, Any]]:
        told: list[dict[str, Any]] = request(self.sock(node, "proxy"), "GET",
                                             "/status").body["told"]
        return told

    def log(self, key: str) -> str:
        return (self.root / f"{key}.log").read_text(errors="replace")


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    net = f"127.{random.randrange(1, 250)}.{random.randrange(1, 250)}"
    with short_tmp() as root:
        lb = Loopback(root, net, free_port())
        lb.write()
        try:
            yield lb
        finally:
            for proc in lb.procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)


def test_two_vipd_processes_fail_over_without_privileges(loopback: Loopback) -> None:
    lb = loopback
    lb.start("a")
    lb.start("b")
    wait_for(lambda: lb.who() == "a", 10, "the VIP answered by a")
    wait_for(lambda: lb.vip_status("b")["state"] == "backup", 5, "b a ready backup")
    lb.kill("a")  # node a dies: its service and its vipd
    wait_for(lambda: lb.who() == "b", 5, "the VIP answered by b")
    wait_for(lambda: lb.told("b")[-1]["state"] == "master", 3, "b's service told: master")
    assert lb.told("b")[-1]["vip"] == "v1" and lb.told("b")[-1]["node"] == "b"


def test_hooks_tracking_metrics_and_stop(loopback: Loopback) -> None:
    lb = loopback
    hooks_log = lb.root / "hooks.log"
    maintenance = lb.root / "maintenance"
    script_flag = lb.root / "degraded"
    record = json.dumps(f"sh -c 'echo \"$IMAPHA_VIP $IMAPHA_STATE $IMAPHA_VRID "
                        f"$IMAPHA_ADDRESS\" >> {hooks_log}'")
    check = f"test ! -e {script_flag}"
    lb.write(f"""\
hook_timeout = "2s"
track_files = [{{ name = "maint", path = "{maintenance}", weight = 0 }}]
track_scripts = [
  {{ name = "deg", command = "{check}", interval = "100ms", timeout = "1s", weight = -60 }},
]
[vrrp.hooks]
master = {record}
backup = {record}
fault = {record}
stop = {record}
""")
    # Only node a here: alone, it must take the VIP once ready.
    lb.start("a")
    wait_for(lambda: lb.who() == "a", 10, "the VIP answered by a")
    wait_for(lambda: hooks_log.exists() and "master" in hooks_log.read_text(), 3, "master hook")
    assert hooks_log.read_text().splitlines()[-1] == f"v1 master 51 {lb.vip}"
    assert lb.vip_status("a")["priority"] == 150

    # A failing weighted script lowers the advertised priority, no fault.
    script_flag.touch()
    wait_for(lambda: lb.vip_status("a")["priority"] == 90, 3, "priority 150 - 60")
    assert lb.vip_status("a")["state"] == "master"
    script_flag.unlink()
    wait_for(lambda: lb.vip_status("a")["priority"] == 150, 3, "priority back to 150")

    # A weight-0 track file puts the VIP in fault: the listener goes, the fault hook runs.
    maintenance.write_text("1\n")
    wait_for(lambda: lb.vip_status("a")["state"] == "fault", 3, "fault")
    wait_for(lambda: lb.who() is None, 3, "the VIP unbound")
    wait_for(lambda: hooks_log.read_text().splitlines()[-1] == f"v1 fault 51 {lb.vip}", 3,
             "fault hook")
    maintenance.write_text("0\n")  # keepalived's rule: 0 is healthy
    wait_for(lambda: lb.who() == "a", 3, "the VIP back")

    # Metrics: state per VIP, transitions, hooks, tracked readiness.
    metrics_at = lb.status("a")["metrics"]
    with urllib.request.urlopen(f"http://{metrics_at}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in ('imapha_vipd_vip_state{state="master",vip="v1"} 1.0',
                 'imapha_vipd_tracked_ready_state{service="proxy"} 1.0',
                 'imapha_vipd_hook_runs_total{hook="fault",outcome="ok"} 1.0',
                 'imapha_vipd_transitions_total{cause="not_ready",to="backup",vip="v1"} 1.0',
                 'imapha_vipd_effective_priority{vip="v1"} 150.0'):
        assert line in text, line
    assert 'imapha_vipd_adverts_sent_total{cause="periodic",vip="v1"}' in text

    # SIGTERM: the stop hook runs before vipd exits, the service is told "stop".
    proc = lb.procs["vipd-a"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert hooks_log.read_text().splitlines()[-1] == f"v1 stop 51 {lb.vip}"
    wait_for(lambda: lb.who() is None, 3, "the VIP unbound at stop")
    assert lb.told("a")[-1]["state"] == "stop"
    states = [line.split()[1] for line in hooks_log.read_text().splitlines()]
    # backup until Master_Down fires (alone), master, fault; then backup for as long as
    # Master_Down still runs when the fault clears (timing), master again, stop.
    assert states[:3] == ["backup", "master", "fault"], states
    assert states[-2:] == ["master", "stop"] and set(states[3:-2]) <= {"backup"}, states


def test_reload_applies_hooks_live_and_rejects_the_interval(loopback: Loopback) -> None:
    lb = loopback
    lb.start("a")
    wait_for(lambda: lb.who() == "a", 10, "the VIP answered by a")
    proc = lb.procs["vipd-a"]

    def last_reload() -> str:
        return str(lb.status("a")["last_reload"])

    lb.write(interval="200ms")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: last_reload().startswith("rejected"), 5, "the reload rejected")
    assert "vrrp.advert_interval" in last_reload()
    hooks_log = lb.root / "hooks.log"
    record = json.dumps(f"sh -c 'echo $IMAPHA_STATE >> {hooks_log}'")
    lb.write(f"[vrrp.hooks]\nfault = {record}\n")
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: last_reload().startswith("applied"), 5, "the reload applied")
    assert "vrrp.hooks.fault" in last_reload()
    assert request(lb.sock("a", "proxy"), "POST", "/set-ready", {"ready": False}).ok
    wait_for(lambda: hooks_log.exists() and hooks_log.read_text() == "fault\n", 3,
             "the new fault hook")
    wait_for(lambda: lb.who() is None, 3, "the VIP released while not ready")
