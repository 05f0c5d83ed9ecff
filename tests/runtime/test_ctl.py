"""``imapha ctl`` as an operator runs it, against real test daemons of two nodes."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from tests.runtime.helpers import Daemon, Daemons, ctl, write_config

BACKEND = '\n[backend]\nmetrics = "127.0.0.1:0"\n'


def start_all(daemons: Daemons, config: Path, *pairs: tuple[str, str]) -> dict[str, Daemon]:
    spawned = {f"{node}/{role}": daemons.spawn(config, node, role) for node, role in pairs}
    for daemon in spawned.values():
        daemon.wait_running()
    return spawned


def table(stdout: str) -> dict[tuple[str, str], list[str]]:
    lines = stdout.splitlines()
    assert lines[0].split() == ["NODE", "ROLE", "PID", "STATE", "UPTIME", "DETAIL"]
    rows = {}
    for line in lines[1:]:
        cells = line.split(maxsplit=5)
        state_words = 2 if cells[3:5] == ["not", "ready"] else 1
        cells = line.split(maxsplit=4 + state_words)
        if state_words == 2:
            cells[3:5] = ["not ready"]
        rows[(cells[0], cells[1])] = cells[2:]
    return rows


def test_status_table_and_json(config: Path, daemons: Daemons) -> None:
    d = start_all(daemons, config, ("a", "vipd"), ("a", "proxy"), ("b", "vipd"), ("b", "proxy"))
    result = ctl(config, "status", subprocess_=True)  # once as a real command
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert list(rows) == [("a", "vipd"), ("a", "proxy"), ("b", "vipd"), ("b", "proxy")]
    for (node, role), cells in rows.items():
        assert cells[0] == str(d[f"{node}/{role}"].pid)
        assert cells[1] == "ready"
        assert cells[2].endswith("s")  # uptime like 1s
    assert rows[("a", "proxy")][3] == "pokes=0"  # the role's detail

    result = ctl(config, "status", "--json")
    assert result.returncode == 0
    objects = json.loads(result.stdout)
    assert [(o["node"], o["role"], o["pid"], o["state"], o["reachable"]) for o in objects] == [
        (n, r, d[f"{n}/{r}"].pid, "ready", True)
        for n, r in [("a", "vipd"), ("a", "proxy"), ("b", "vipd"), ("b", "proxy")]
    ]
    assert objects[1]["status"]["control"] == str(d["a/proxy"].socket)


def test_status_with_one_down_not_ready_and_draining(config: Path, daemons: Daemons) -> None:
    d = start_all(daemons, config, ("a", "vipd"), ("a", "proxy"), ("b", "vipd"), ("b", "proxy"))
    assert d["b/proxy"].stop() == 0
    d["a/proxy"].post("/set-ready", {"ready": False, "reason": "no healthy backend"})
    d["b/vipd"].post("/drain")
    result = ctl(config, "status")
    assert result.returncode == 1
    rows = table(result.stdout)
    assert rows[("b", "proxy")][:3] == ["-", "unreachable", "-"]
    assert "no socket on this host" in rows[("b", "proxy")][3]
    assert rows[("a", "proxy")][1] == "not ready"
    assert rows[("a", "proxy")][3] == "no healthy backend; pokes=0"
    assert rows[("b", "vipd")][1] == "draining"
    assert rows[("a", "vipd")][1] == "ready"
    objects = json.loads(ctl(config, "status", "--json").stdout)
    down = next(o for o in objects if (o["node"], o["role"]) == ("b", "proxy"))
    assert (down["reachable"], down["state"], down["pid"]) == (False, "unreachable", None)


def test_drain_and_undrain_a_node_in_order(root: Path, daemons: Daemons) -> None:
    config = write_config(root, extra=BACKEND)
    d = start_all(daemons, config, ("a", "vipd"), ("a", "proxy"), ("a", "backend"))
    result = ctl(config, "drain", "a")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["a", "vipd", "drained"], ["a", "proxy", "drained"], ["a", "backend", "drained"]]
    for daemon in d.values():
        status = daemon.status()
        assert status["draining"] is True and status["service_drained"] is True
    assert "already drained" in ctl(config, "drain", "a").stdout

    result = ctl(config, "undrain", "a")
    assert result.returncode == 0
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["a", "backend"], ["a", "proxy"], ["a", "vipd"]]
    assert all(daemon.get("/ready").status == 200 for daemon in d.values())

    result = ctl(config, "drain", "b")  # nothing runs for b here
    assert result.returncode == 1
    assert result.stdout.count("unreachable") == 3
    result = ctl(config, "drain", "zz")
    assert result.returncode == 2 and "no node 'zz'" in result.stderr


def test_undrain_waits_for_ready_and_exits_3_when_a_daemon_stays_not_ready(
        config: Path, daemons: Daemons) -> None:
    d = start_all(daemons, config, ("a", "vipd"), ("a", "proxy"))
    assert ctl(config, "drain", "a").returncode == 0
    d["a/proxy"].post("/set-ready", {"ready": False, "reason": "no healthy backend"})
    started = time.monotonic()
    result = ctl(config, "undrain", "a", "--timeout", "1")
    took = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    out = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert out == ["a proxy undrained", "a vipd undrained",
                   "a ready waiting for proxy (no healthy backend)",
                   "a ready not ready after 1 s: proxy (no healthy backend)"]
    assert 1.0 <= took < 10
    # The undrain itself took effect; once the proxy is ready, undrain returns 0.
    assert d["a/proxy"].status()["draining"] is False
    d["a/proxy"].post("/set-ready", {"ready": True})
    result = ctl(config, "undrain", "a")
    assert result.returncode == 0, result.stdout
    assert "already undrained" in result.stdout
    # --no-wait returns at once, whatever the readiness.
    d["a/proxy"].post("/set-ready", {"ready": False, "reason": "x"})
    assert ctl(config, "undrain", "a", "--no-wait").returncode == 0


def test_kick_and_drain_backend_go_to_every_proxy(config: Path, daemons: Daemons) -> None:
    d = start_all(daemons, config, ("a", "proxy"), ("b", "proxy"))
    result = ctl(config, "kick", "alice")
    assert result.returncode == 0, result.stderr
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [
        ["a", "proxy"], ["b", "proxy"]]
    assert d["a/proxy"].status()["kicked"] == ["alice"]
    assert d["b/proxy"].status()["kicked"] == ["alice"]

    assert ctl(config, "drain-backend", "be1").returncode == 0
    assert d["b/proxy"].status()["drained_backends"] == ["be1"]
    result = ctl(config, "drain-backend", "be9")
    assert result.returncode == 2 and "no backend named 'be9'" in result.stderr
    assert d["a/proxy"].status()["drained_backends"] == ["be1"]

    d["b/proxy"].stop()
    result = ctl(config, "kick", "bob")
    assert result.returncode == 1
    assert "unreachable" in result.stdout.splitlines()[1]


def test_usage_and_config_errors_exit_2(root: Path, config: Path) -> None:
    assert ctl(config).returncode == 2  # no action
    bad = root / "bad.toml"
    bad.write_text(config.read_text().replace("[proxy]\n", "[proxy]\nmax_conections = 1\n"))
    result = ctl(bad, "status")
    assert result.returncode == 2
    assert f"{bad}:" in result.stderr and "proxy.max_conections" in result.stderr
    # --config is also accepted after the action.
    result = ctl(root / "absent.toml", "status", "--config", str(bad))
    assert result.returncode == 2 and "max_conections" in result.stderr


def remote_setup(root: Path) -> tuple[Path, Path, Path, Path]:
    """Configs where node b's sockets are "elsewhere", and an ssh that reaches them.

    Returns (real config, local config, fake ssh, the file where it logs its argv).
    """
    real = write_config(root)
    local = write_config(root, name="local.toml")
    local.write_text(local.read_text().replace(
        'interface = "lo"\n\n[[vips]]',
        f'interface = "lo"\nrun_dir = "{root}/elsewhere/b"\n\n[[vips]]'))
    argv_log = root / "ssh-argv.json"
    fake_ssh = root / "fake-ssh"
    fake_ssh.write_text(f"""#!{sys.executable}
# Stands in for "ssh HOST imapha ARGS...": runs ARGS here, against the "remote" config.
import json, os, sys
args = sys.argv[1:]
with open({str(argv_log)!r}, "a") as f:
    f.write(json.dumps(args) + "\\n")
host, program, rest = args[0], args[1], args[2:]
assert program == "imapha", program
rest[rest.index("--config") + 1] = {str(real)!r}
os.execv(sys.executable, [sys.executable, "-m", "imapha", *rest])
""")
    fake_ssh.chmod(fake_ssh.stat().st_mode | stat.S_IXUSR)
    return real, local, fake_ssh, argv_log


def test_status_asks_remote_nodes_over_ssh(root: Path, daemons: Daemons) -> None:
    """Node b's sockets are not on "this host": ctl --ssh asks b, and merges."""
    real, local, fake_ssh, argv_log = remote_setup(root)
    d = start_all(daemons, real, ("a", "vipd"), ("a", "proxy"), ("b", "vipd"), ("b", "proxy"))

    without = ctl(local, "status")
    assert without.returncode == 1
    assert table(without.stdout)[("b", "proxy")][1] == "unreachable"

    result = ctl(local, "status", "--ssh", "--ssh-command", str(fake_ssh))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = table(result.stdout)
    assert rows[("b", "proxy")][:2] == [str(d["b/proxy"].pid), "ready"]
    assert rows[("b", "proxy")][3].endswith("[ssh 192.0.2.12]")
    assert rows[("a", "proxy")][0] == str(d["a/proxy"].pid)
    calls = [json.loads(line) for line in argv_log.read_text().splitlines()]
    assert len(calls) == 1  # one ssh per remote node, not per role
    assert calls[0][:3] == ["192.0.2.12", "imapha", "ctl"]
    assert calls[0][calls[0].index("--only-node") + 1] == "b"
    assert os.path.exists(d["b/proxy"].socket)


def test_drain_a_remote_node_over_ssh(root: Path, daemons: Daemons) -> None:
    real, local, fake_ssh, argv_log = remote_setup(root)
    d = start_all(daemons, real, ("b", "vipd"), ("b", "proxy"))
    result = ctl(local, "drain", "b", "--ssh", "--ssh-command", str(fake_ssh))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["b", "vipd", "drained", "[ssh", "192.0.2.12]"],
        ["b", "proxy", "drained", "[ssh", "192.0.2.12]"]]
    assert d["b/vipd"].status()["draining"] and d["b/proxy"].status()["draining"]
    assert json.loads(argv_log.read_text())[-2:] == ["drain", "b"]
    d["b/vipd"].stop()
    result = ctl(local, "undrain", "b", "--ssh", "--ssh-command", str(fake_ssh))
    assert result.returncode == 1  # the remote side found vipd down
    assert d["b/proxy"].status()["draining"] is False


def test_ctl_does_not_load_the_reactor() -> None:
    """`imapha ctl` is a quick client: no twisted.internet reactor, no twisted.web server."""
    code = ("import sys, imapha.ctl; "
            "print(sorted(m for m in sys.modules if m in {'twisted.internet.reactor', "
            "'twisted.web.server', 'twisted.internet.endpoints'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]"


def test_hung_daemons_cost_one_timeout_not_one_each(config: Path, daemons: Daemons,
                                                    root: Path) -> None:
    d = start_all(daemons, config, ("a", "proxy"))
    mutes = []
    for node, role in [("a", "vipd"), ("b", "vipd"), ("b", "proxy")]:
        path = root / "run" / node / f"{role}.sock"
        path.parent.mkdir(parents=True, exist_ok=True)
        mute = socket.socket(socket.AF_UNIX)
        mute.bind(str(path))
        mute.listen(4)  # accepts into the backlog, never answers
        mutes.append(mute)
    try:
        started = time.monotonic()
        result = ctl(config, "--timeout", "1", "status")
        elapsed = time.monotonic() - started
    finally:
        for mute in mutes:
            mute.close()
    assert result.returncode == 1
    rows = table(result.stdout)
    assert rows[("a", "proxy")][:2] == [str(d["a/proxy"].pid), "ready"]
    assert rows[("b", "vipd")][1] == "unreachable"
    assert "no answer from" in rows[("b", "vipd")][3] and "within 1s" in rows[("b", "vipd")][3]
    assert elapsed < 2.8  # three hung daemons, asked at once
