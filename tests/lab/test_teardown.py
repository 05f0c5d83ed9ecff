"""Teardown is guaranteed: failing tests, crashed builders, forgotten labs, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from imapha.lab import netns
from imapha.lab.fixtures import need_lab_prerequisites
from tests.lab.helpers import eventually

CLI = [sys.executable, "-m", "imapha.lab.cli"]
REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _gone(prefix: str, pids: list[int]) -> bool:
    return (
        netns.lab_namespaces(prefix) == []
        and netns.root_links(prefix) == []
        and not any(netns.pid_alive(p) for p in pids)
    )


FAILING_TEST = """
import json, os, sys, time
from imapha.lab.fixtures import TwoNodeLab

DAEMON = '''
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(sys.argv[1] + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(sys.argv[1] + ".tmp", sys.argv[1])
        time.sleep(300)
    os._exit(0)
time.sleep(300)
'''

def test_that_fails_inside_the_lab(two_node_lab: TwoNodeLab) -> None:
    a = two_node_lab.a
    pidfile = os.environ["LAB_RECORD"] + ".daemon"
    daemon = a.spawn([sys.executable, "-c", DAEMON, pidfile])
    sleeper = two_node_lab.client.spawn(["sleep", "300"])
    two_node_lab.lab.partition(a, two_node_lab.b)
    deadline = time.monotonic() + 30
    while not os.path.exists(pidfile) and time.monotonic() < deadline:
        time.sleep(0.02)
    with open(pidfile) as f:
        pids = [daemon.pid, int(f.read()), sleeper.pid]
    with open(os.environ["LAB_RECORD"], "w") as f:
        json.dump({"prefix": two_node_lab.lab.prefix, "pids": pids}, f)
    raise AssertionError("this test fails on purpose")
"""


def test_a_test_failing_inside_the_lab_leaves_nothing_behind(tmp_path: Path) -> None:
    need_lab_prerequisites()
    (tmp_path / "test_inner.py").write_text(FAILING_TEST)
    record = tmp_path / "record.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "imapha.lab.fixtures",
            "-p",
            "no:cacheprovider",
            "test_inner.py",
        ],
        cwd=tmp_path,
        env={**_env(), "LAB_RECORD": str(record)},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "this test fails on purpose" in done.stdout
    seen = json.loads(record.read_text())
    assert len(seen["pids"]) == 3  # the daemon, its detached grandchild, the client's sleep
    assert _gone(seen["prefix"], seen["pids"])


BUILDER = """
import sys, time
from imapha.lab import Lab
lab = Lab(prefix=sys.argv[1])
a = lab.add_host("a", ["192.0.2.11/24"])
lab.add_client("c")
p = a.spawn(["sleep", "300"])
lab.partition(a, "c")
print(p.pid, flush=True)
time.sleep(300)
"""


def test_cleanup_prefix_removes_what_a_sigkilled_builder_left(tmp_path: Path) -> None:
    need_lab_prerequisites()
    prefix = netns.new_prefix()
    builder = subprocess.Popen(
        [sys.executable, "-c", BUILDER, prefix], stdout=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert builder.stdout is not None
        sleeper = int(builder.stdout.readline())
    finally:
        builder.send_signal(signal.SIGKILL)
        builder.wait(10)
    try:
        assert netns.lab_namespaces(prefix) == [f"{prefix}-a", f"{prefix}-c", f"{prefix}-sw"]
        assert netns.pid_alive(sleeper)

        listed = subprocess.run(
            [*CLI, "list", "--json"],
            capture_output=True,
            text=True,
            env=_env(),
            check=True,
            timeout=30,
        )
        entries = json.loads(listed.stdout)[prefix]
        assert {"netns": f"{prefix}-a", "pids": [sleeper]} in entries

        done = subprocess.run(
            [*CLI, "cleanup", "--prefix", prefix],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "removed 3 namespaces" in done.stdout and "stopped 1 processes" in done.stdout
        assert _gone(prefix, [sleeper])
    finally:
        subprocess.run(
            [*CLI, "cleanup", "--prefix", prefix],
            capture_output=True,
            env=_env(),
            timeout=60,
            check=False,
        )


def test_cleanup_refuses_a_prefix_that_is_not_a_lab_one() -> None:
    done = subprocess.run(
        [*CLI, "cleanup", "--prefix", "eth"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
        check=False,
    )
    assert done.returncode == 1 and "prefix" in done.stderr


FORGETFUL = """
import sys
from imapha.lab import Lab
lab = Lab(prefix=sys.argv[1])
print(lab.add_host("a", ["192.0.2.11/24"]).spawn(["sleep", "300"]).pid, flush=True)
# exits without closing the lab: the atexit hook must tear it down
"""


def test_a_lab_never_closed_is_torn_down_at_interpreter_exit() -> None:
    need_lab_prerequisites()
    prefix = netns.new_prefix()
    try:
        done = subprocess.run(
            [sys.executable, "-c", FORGETFUL, prefix],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
            check=True,
        )
        assert _gone(prefix, [int(done.stdout)])
    finally:
        subprocess.run(
            [*CLI, "cleanup", "--prefix", prefix],
            capture_output=True,
            env=_env(),
            timeout=60,
            check=False,
        )


def test_lab_up_holds_a_lab_and_tears_it_down_on_sigterm(tmp_path: Path) -> None:
    need_lab_prerequisites()
    prefix = netns.new_prefix()
    state = tmp_path / "lab.json"
    holder = subprocess.Popen(
        [*CLI, "up", "--prefix", prefix, "--state-file", str(state), "--dhcp-net"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    try:
        assert eventually(state.exists, timeout=20.0), "state file never written"
        described = json.loads(state.read_text())
        assert described["prefix"] == prefix
        assert set(described["hosts"]) == {"a", "b", "c", "d"}
        client_ns = described["hosts"]["c"]["netns"]
        ping = subprocess.run(
            ["ip", "netns", "exec", client_ns, "ping", "-c1", "-W1", "192.0.2.11"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        assert ping.returncode == 0
        holder.send_signal(signal.SIGTERM)
        out, _ = holder.communicate(timeout=30)
        assert holder.returncode == 0, out
        assert f"ip netns exec {prefix}-a bash" in out
        assert netns.lab_namespaces(prefix) == []
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        subprocess.run(
            [*CLI, "cleanup", "--prefix", prefix],
            capture_output=True,
            env=_env(),
            timeout=60,
            check=False,
        )


def test_lab_list_through_the_imapha_command_shows_a_lab_until_it_closes() -> None:
    need_lab_prerequisites()
    from imapha.lab import Lab

    with Lab() as lab:
        lab.add_host("a", ["192.0.2.11/24"])
        prefix = lab.prefix
        shown = subprocess.run(
            [sys.executable, "-m", "imapha", "lab", "list"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=30,
            check=True,
        ).stdout
        assert f"{prefix}-a" in shown and f"{prefix}-sw" in shown
    shown = subprocess.run(
        [*CLI, "list"], capture_output=True, text=True, env=_env(), timeout=30, check=True
    ).stdout
    assert prefix not in shown
