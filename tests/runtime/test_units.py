"""The runtime's small pure parts, in process: config diffs and sd_notify set-up."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from imapha.ctl import format_uptime, state_of
from imapha.daemon import SystemdNotifier, config_diff


@dataclass(frozen=True)
class Inner:
    port: int
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    extra: Inner | None


def test_config_diff_names_nested_keys() -> None:
    old = Outer("a", Inner(1, ("x",)), None)
    assert config_diff(old, old, "proxy") == []
    new = Outer("a", Inner(2, ("x", "y")), Inner(3, ()))
    assert config_diff(old, new, "proxy") == ["proxy.inner.port", "proxy.inner.hosts",
                                              "proxy.extra"]


def test_notifier_reads_and_clears_the_environment(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": "@abstract-name", "WATCHDOG_USEC": "3000000",
           "WATCHDOG_PID": str(os.getpid()), "OTHER": "kept"}
    notifier = SystemdNotifier(env)
    assert notifier.address == "\0abstract-name"
    assert notifier.watchdog_interval == 1.5
    assert env == {"OTHER": "kept"}  # children (hook scripts) must not inherit them

    other_pid = SystemdNotifier({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"})
    assert other_pid.watchdog_interval is None  # the watchdog is some other process's
    assert not SystemdNotifier({}).notify("READY=1")

    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(path)})
        assert notifier.notify("READY=1", "STATUS=ready")
        assert server.recv(100) == b"READY=1\nSTATUS=ready"
        notifier.close()
    assert not SystemdNotifier({"NOTIFY_SOCKET": str(path)}).notify("READY=1")  # gone


def test_ctl_state_words_and_uptime() -> None:
    assert state_of({"state": "running", "ready": True, "draining": False}) == "ready"
    assert state_of({"state": "running", "ready": False, "draining": True}) == "draining"
    assert state_of({"state": "running", "ready": False}) == "not ready"
    assert state_of({"state": "starting", "ready": False}) == "starting"
    assert [format_uptime(s) for s in (None, 5.9, 65, 3 * 3600 + 120, 2 * 86400 + 7200)] == [
        "-", "5s", "1m05s", "3h02m", "2d02h"]
