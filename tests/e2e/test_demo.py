"""The whole cluster, as ``imapha demo`` builds it: stories and the state file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.prereq import need_binary, need_root

pytestmark = pytest.mark.slow


def _demo(tmp_path: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imapha", "demo", "--workdir", str(tmp_path / "demo"), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("story", ["failover", "drain", "backend-loss", "rolling-restart"])
def test_story_passes(tmp_path: Path, story: str) -> None:
    need_root()
    need_binary("nft")
    result = _demo(tmp_path, "--scenario", story)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"story {story}: PASSED" in result.stdout
    assert "0 missing, 0 duplicated" in result.stdout


@pytest.mark.timeout(200)
def test_hold_writes_the_state_file_and_serves_outside_clients(tmp_path: Path) -> None:
    need_root()
    state_file = tmp_path / "state.json"
    demo = subprocess.Popen(
        [sys.executable, "-m", "imapha", "demo", "--hold", "--state-file", str(state_file),
         "--workdir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not state_file.exists() and time.monotonic() < deadline:
            assert demo.poll() is None, demo.stdout.read() if demo.stdout else ""
            time.sleep(0.5)
        state = json.loads(state_file.read_text())
        assert state["mode"] == "netns"
        assert {v["name"] for v in state["vips"]} == {"imap1", "imap2"}
        assert set(state["nodes"]) == {"a", "b"}
        for node in state["nodes"].values():
            assert set(node["control"]) >= {"proxy", "vipd", "backend"}
            assert all(os.path.exists(p) for p in node["control"].values())
            assert all(pids for pids in node["pids"].values())
        user = state["users"][0]
        vip = state["vips"][0]
        # An outside client, in the client namespace, through implicit TLS checked
        # against the demo's CA: log in and list the INBOX.
        script = (
            "import imaplib, ssl, sys\n"
            "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
            "m = imaplib.IMAP4_SSL(sys.argv[2], int(sys.argv[3]), ssl_context=ctx, timeout=10)\n"
            "m.login(sys.argv[4], sys.argv[5]); print(m.select('INBOX')[0]); m.logout()\n"
        )
        out = subprocess.run(
            ["ip", "netns", "exec", state["client_netns"], sys.executable, "-c", script,
             state["ca_cert"], vip["address"], str(vip["imaps_port"]), user["name"],
             user["password"]],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert out.stdout.strip() == "OK", out.stderr
        # An outside DHCP client on the unconfigured machine gets a lease from the pair,
        # with the DHCP VIP as its server identifier.
        dhcp = state["dhcp"]
        hook = tmp_path / "udhcpc.sh"
        hook.write_text('#!/bin/sh\n[ "$1" = bound ] && echo "LEASE $ip $serverid"\nexit 0\n')
        hook.chmod(0o755)
        got = subprocess.run(
            ["ip", "netns", "exec", dhcp["client_netns"], need_binary("udhcpc"), "-i",
             dhcp["ifname"], "-n", "-q", "-f", "-t", "10", "-T", "1", "-s", str(hook)],
            capture_output=True, text=True, timeout=60, check=False,
        )
        leases = [line.split() for line in got.stdout.splitlines() if line.startswith("LEASE")]
        assert leases, got.stdout + got.stderr
        _, address, server = leases[0][:3]
        assert server == dhcp["vip"]
        first, last = (int(x.rsplit(".", 1)[1]) for x in dhcp["pool"])
        assert first <= int(address.rsplit(".", 1)[1]) <= last
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.wait(60)
    assert demo.returncode == 0
    # Everything the demo built is gone.
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert state["client_netns"] not in listed.stdout




@pytest.mark.timeout(200)
def test_interactive_live_view_kills_a_node_from_the_keyboard(tmp_path: Path) -> None:
    """As a person at a terminal: the live view shows the VIPs; 'k' kills node a."""
    need_root()
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: the demo on a real terminal
        os.execv(sys.executable, [sys.executable, "-m", "imapha", "demo",
                                  "--workdir", str(tmp_path / "demo")])
    screen = ""

    def read_until(text: str, timeout: float) -> str:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    screen = (screen + os.read(fd, 65536).decode(errors="replace"))[-20000:]
                except OSError:
                    break
                if text in screen[-4000:]:
                    return screen
        raise AssertionError(f"{text!r} not shown; screen tail: {screen[-2000:]}")

    reaped = False
    try:
        read_until("imap1  192.0.2.101    a     a", 120)
        read_until("imap2  192.0.2.102    b     b", 10)
        os.write(fd, b"k")
        read_until("DEAD (killed, unplugged)", 20)
        read_until("imap1  192.0.2.101    a     b", 20)  # the survivor holds a's VIP
        read_until("imap1 moved a -> b", 5)
        os.write(fd, b"q")
        _, status = os.waitpid(pid, 0)
        reaped = True
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        if not reaped:  # our own child, not yet reaped: its PID cannot have been reused
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        os.close(fd)
