"""Start-up, SIGHUP reload, SIGTERM stop and systemd notification of a real daemon."""

from __future__ import annotations

import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.helpers import Daemons, write_config
from tests.support import wait_for


class NotifySocket:
    """A NOTIFY_SOCKET as systemd offers it: an AF_UNIX datagram socket."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def collect(self) -> list[str]:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return self.messages
            self.messages.extend(data.decode().split("\n"))

    def wait(self, line: str, timeout: float = 10.0) -> None:
        wait_for(lambda: line in self.collect(), timeout, what=f"{line} on NOTIFY_SOCKET "
                 f"(got {self.messages})")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def notify(request: pytest.FixtureRequest, root: Path) -> Iterator[NotifySocket]:
    if request.param == "path":
        address = str(root / "notify.sock")
    else:
        address = f"@imapha-test-{uuid.uuid4().hex}"
    sock = NotifySocket(address)
    try:
        yield sock
    finally:
        sock.close()


def test_sigterm_removes_socket_and_pid_file(config: Path, daemons: Daemons) -> None:
    d = daemons.start(config, "a", "proxy")
    assert d.pid_file.read_text().strip() == str(d.pid)
    assert d.socket.exists()
    assert d.stop() == 0
    assert not d.socket.exists()
    assert not d.pid_file.exists()


def test_sigint_stops_gracefully_too(config: Path, daemons: Daemons) -> None:
    d = daemons.start(config, "b", "vipd")
    d.signal(signal.SIGINT)
    assert d.wait_exit() == 0
    assert not d.socket.exists()


def test_stop_lets_in_flight_work_finish(config: Path, daemons: Daemons) -> None:
    d = daemons.start(config, "a", "proxy", "--stop-delay", "3.0")
    started = time.monotonic()
    d.signal(signal.SIGTERM)
    # While stopping, the control API still answers and says so.
    status = wait_for(lambda: (s := d.status()).get("state") == "stopping" and s, 5,
                      what="state stopping")
    assert status["ready"] is False and status["reason"] == "stopping"
    assert d.wait_exit() == 0
    assert time.monotonic() - started >= 2.9


@pytest.mark.parametrize("how", ["--stop-delay=60", "--stop-hang"])
def test_stop_is_bounded_by_the_timeout(config: Path, daemons: Daemons, how: str) -> None:
    """The service is told the deadline; one that ignores it is cut off a second later."""
    d = daemons.start(config, "a", "proxy", how, "--stop-timeout", "0.5")
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 6
    assert not d.socket.exists() and not d.pid_file.exists()
    if how == "--stop-hang":
        assert "in-flight work did not finish within 0.5s; exiting anyway" in d.log()


def test_crash_in_start_exits_1_and_leaves_nothing(config: Path, daemons: Daemons) -> None:
    d = daemons.spawn(config, "a", "proxy", "--fail-start")
    assert d.wait_exit() == 1
    log = d.log()
    assert "imapha proxy on node a failed to start: RuntimeError: simulated start failure" in log
    assert not d.socket.exists()
    assert not d.pid_file.exists()


@pytest.mark.parametrize(("node", "text"), [
    ("zz", "no node 'zz' in this config"),
    ("a", "proxy.max_conections: unknown key (did you mean 'max_connections'?)"),
])
def test_unusable_config_exits_78_with_the_issue(root: Path, daemons: Daemons, node: str,
                                                text: str) -> None:
    config = write_config(root, extra="")
    config.write_text(config.read_text().replace("[proxy]\n", "[proxy]\nmax_conections = 5\n")
                      if node == "a" else config.read_text())
    d = daemons.spawn(config, node, "proxy")
    assert d.wait_exit() == 78  # EX_CONFIG
    assert text in d.log()
    assert "not started" in d.log()


def test_sighup_applies_a_good_config(root: Path, config: Path, daemons: Daemons) -> None:
    d = daemons.start(config, "a", "proxy")
    write_config(root, max_connections=7)
    d.signal(signal.SIGHUP)
    status = wait_for(lambda: (s := d.status())["reloads"]["applied"] == 1 and s, 10,
                      what="reload applied")
    assert status["last_reload"] == "applied: proxy.max_connections"
    assert "changed live: proxy.max_connections" in d.log()
    assert status["pid"] == d.pid and status["ready"] is True


def test_sighup_rejects_a_bad_config_and_keeps_the_old(root: Path, config: Path,
                                                       daemons: Daemons) -> None:
    d = daemons.start(config, "a", "proxy")
    good = config.read_text()
    config.write_text(good.replace("[proxy]\n", "[proxy]\nmax_conections = 5\nworkers = -1\n"))
    d.signal(signal.SIGHUP)
    status = wait_for(lambda: (s := d.status())["reloads"]["rejected"] == 1 and s, 10,
                      what="reload rejected")
    assert status["reloads"]["applied"] == 0
    log = d.log()
    assert f"{config}:" in log and "proxy.max_conections: unknown key" in log
    assert "proxy.workers" in log  # every issue, not just the first
    assert "keeping the running config" in log
    # Still serving; the old config is the base of the next good reload.
    config.write_text(good.replace("max_connections = 1000", "max_connections = 9"))
    d.signal(signal.SIGHUP)
    status = wait_for(lambda: (s := d.status())["reloads"]["applied"] == 1 and s, 10,
                      what="reload applied")
    assert status["last_reload"] == "applied: proxy.max_connections"


def test_service_can_refuse_a_live_change(root: Path, config: Path, daemons: Daemons) -> None:
    d = daemons.start(config, "a", "proxy", "--restart-only", "max_connections")
    write_config(root, max_connections=3)
    d.signal(signal.SIGHUP)
    status = wait_for(lambda: (s := d.status())["reloads"]["rejected"] == 1 and s, 10,
                      what="reload rejected")
    assert "proxy.max_connections cannot change live" in status["last_reload"]
    # Rejected means the old config stays: the same change is still a change next time.
    d.signal(signal.SIGHUP)
    wait_for(lambda: d.status()["reloads"]["rejected"] == 2, 10, what="second rejection")


def test_sd_notify_ready_reloading_stopping(config: Path, daemons: Daemons,
                                            notify: NotifySocket) -> None:
    d = daemons.spawn(config, "a", "proxy", "--not-ready",
                      env={"NOTIFY_SOCKET": notify.address})
    d.wait_running()
    time.sleep(0.8)  # READY=1 waits for readiness, not just for start-up
    assert "READY=1" not in notify.collect()
    assert "STATUS=not ready: told so at start" in notify.messages
    d.post("/set-ready", {"ready": True})
    notify.wait("READY=1")
    assert "STATUS=ready" in notify.collect()
    d.signal(signal.SIGHUP)
    notify.wait("RELOADING=1")
    assert any(m.startswith("MONOTONIC_USEC=") for m in notify.messages)
    assert d.stop() == 0
    notify.wait("STOPPING=1")
    order = [m for m in notify.messages if m in {"READY=1", "RELOADING=1", "STOPPING=1"}]
    assert order == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]


def test_sd_notify_watchdog(config: Path, daemons: Daemons, root: Path) -> None:
    notify = NotifySocket(str(root / "wd.sock"))
    try:
        d = daemons.start(config, "a", "proxy", env={
            "NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "200000"})
        notify.wait("READY=1")
        notify.collect()
        notify.messages.clear()
        started = time.monotonic()
        time.sleep(1.0)
        pings = notify.collect().count("WATCHDOG=1")
        elapsed = time.monotonic() - started
        # Every 0.1 s, half of WATCHDOG_USEC (with slack for a loaded machine).
        assert elapsed / 0.1 * 0.5 <= pings <= elapsed / 0.1 + 3
        assert d.stop() == 0
    finally:
        notify.close()


def test_sigterm_during_start_up_stops_cleanly(config: Path, daemons: Daemons) -> None:
    d = daemons.spawn(config, "a", "proxy", "--start-delay", "30")
    wait_for(lambda: d.socket.exists() and d.status()["state"] == "starting", 15,
             what="state starting")
    assert d.get("/ready").body == {"ready": False, "reason": "starting", "role": "proxy",
                                    "node": "a"}
    assert d.post("/drain").status == 409  # nothing to drain yet
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 10
    assert not d.socket.exists() and not d.pid_file.exists()


def test_drain_survives_a_restart_until_undrain(config: Path, daemons: Daemons,
                                                root: Path) -> None:
    d = daemons.start(config, "a", "proxy")
    assert d.post("/drain").ok
    assert d.stop() == 0
    d = daemons.start(config, "a", "proxy")
    status = d.status()
    assert status["draining"] is True and status["service_drained"] is True
    assert d.get("/ready").status == 503
    assert "starting drained" in d.log()
    assert d.post("/undrain").ok
    assert not (root / "state" / "a" / "proxy.draining").exists()
    assert d.stop() == 0
    d = daemons.start(config, "a", "proxy")
    assert d.status()["draining"] is False


def test_overlong_socket_path_is_a_clear_error(root: Path, daemons: Daemons) -> None:
    config = write_config(root)
    control = f'control = "{root}/{"x" * 100}/p.sock"'
    config.write_text(config.read_text().replace("[proxy]\n", f"[proxy]\n{control}\n"))
    d = daemons.spawn(config, "a", "proxy")
    assert d.wait_exit() == 78  # EX_CONFIG: the config check names the limit

    assert "107" in d.log() and "not started" in d.log()
