"""The lab's process runner: spawn, run, graceful stop, and kill that leaves nothing."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from imapha.lab import CommandFailed, Lab, LabError, netns
from imapha.lab.fixtures import TwoNodeLab
from tests.lab.helpers import eventually

# A daemon that detaches the usual way: fork, setsid in the child, fork again;
# the grandchild writes its PID and sleeps, the parent sleeps too.
DOUBLE_FORK = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(sys.argv[1], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(300)
    os._exit(0)
time.sleep(300)
"""

GRACEFUL = """
import signal, sys, time
def bye(signum, frame):
    print("bye", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("ready", flush=True)
time.sleep(300)
"""

STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(300)
"""


def _grandchild(pidfile: Path) -> int:
    assert eventually(lambda: pidfile.exists() and pidfile.read_text() != "")
    return int(pidfile.read_text())


def test_kill_leaves_no_process_behind_not_even_a_detached_grandchild(
    two_node_lab: TwoNodeLab, tmp_path: Path
) -> None:
    a, b = two_node_lab.a, two_node_lab.b
    pidfile = tmp_path / "grandchild.pid"
    parent = a.spawn([sys.executable, "-c", DOUBLE_FORK, str(pidfile)])
    grandchild = _grandchild(pidfile)
    untouched = b.spawn(["sleep", "300"])
    assert grandchild in a.pids() and parent.pid in a.pids()

    assert a.kill() == []
    assert parent.returncode == -signal.SIGKILL
    assert not netns.pid_alive(grandchild)
    assert a.pids() == []
    assert untouched.alive()
    assert eventually(lambda: b.pids() == [untouched.pid])


def test_stop_is_graceful_first_and_forceful_after_the_bound(lab: Lab) -> None:
    a = lab.add_host("a", ["192.0.2.11/24"])
    polite = a.spawn([sys.executable, "-c", GRACEFUL])
    stubborn = a.spawn([sys.executable, "-c", STUBBORN])
    assert eventually(lambda: "ready" in polite.output() and "ready" in stubborn.output())

    start = time.monotonic()
    assert a.stop(grace=0.5) == []
    took = time.monotonic() - start
    assert "bye" in polite.output() and polite.returncode == 0
    assert stubborn.returncode == -signal.SIGKILL
    assert 0.5 <= took < 5.0
    assert a.pids() == []


def test_process_stop_and_output_log(lab: Lab, tmp_path: Path) -> None:
    a = lab.add_host("a", ["192.0.2.11/24"])
    log = tmp_path / "echo.log"
    p = a.spawn(
        ["sh", "-c", 'echo "out $GREETING"; echo err >&2; exec sleep 300'],
        env={"GREETING": "hello"},
        log=log,
    )
    assert eventually(lambda: "err" in p.output())
    assert "out hello" in log.read_text()
    assert p.stop(grace=1.0) == -signal.SIGTERM
    assert not p.alive()


def test_run_captures_output_times_out_and_reports_failure(lab: Lab) -> None:
    a = lab.add_host("a", ["192.0.2.11/24"])
    assert "192.0.2.11/24" in a.run(["ip", "-4", "addr", "show", "eth0"]).stdout
    with pytest.raises(LabError, match="timed out"):
        a.run(["sleep", "30"], timeout=0.3)
    with pytest.raises(CommandFailed) as failed:
        a.run(["sh", "-c", "echo broken >&2; exit 3"])
    assert failed.value.returncode == 3 and "broken" in failed.value.output
    assert a.pids() == []


def test_processes_see_only_their_host_network(two_node_lab: TwoNodeLab) -> None:
    a = two_node_lab.a
    links = a.run(["ip", "-o", "link"]).stdout
    assert [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()] == [
        "lo",
        "eth0",
    ]
