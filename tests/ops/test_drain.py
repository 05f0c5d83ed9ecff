"""``imapha ctl drain NODE`` / ``undrain NODE`` as the maintenance flow, on a real cluster."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from imapha import control
from imapha.lab.cluster import VIPS, Cluster
from tests.ops import cluster as opscluster

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.timeout(300)]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with opscluster.running_cluster(users=1) as running:
        yield running


def ctl(cluster: Cluster, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imapha", "ctl", "--config",
                           str(cluster.config), *words],
                          capture_output=True, text=True, timeout=120, check=False)


def lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [" ".join(line.split()) for line in result.stdout.splitlines()]


def proxy_sessions(cluster: Cluster, node: str) -> int:
    reply = control.request(cluster.control_socket(node, "proxy"), "GET", "/status",
                            timeout=5)
    sessions: int = reply.body["sessions"]
    return sessions


def test_drain_moves_the_vip_waits_for_sessions_and_undrain_brings_it_back(
        cluster: Cluster) -> None:
    vip = VIPS[0][1]  # imap1, home a
    holder = opscluster.hold_sessions(cluster, vip, 2, 120)
    try:
        deadline = time.monotonic() + 30
        while proxy_sessions(cluster, "a") < 2:
            assert time.monotonic() < deadline, holder.output()
            time.sleep(0.1)

        # vipd first, and the VIP is elsewhere before the proxy stops listening; the
        # proxy's sessions end at safe points after its drain_grace (2 s in the lab)
        # before the backend is drained, so they are not cut by the backend's BYE.
        started = time.monotonic()
        result = ctl(cluster, "drain", "a")
        took = time.monotonic() - started
        out = lines(result)
        assert result.returncode == 0, result.stdout + result.stderr
        assert out[0] == "a vipd drained"
        proxy_at = out.index("a proxy drained")
        # (a "waiting for imap1" line first when b has not advertised yet)
        # (dhcp1, the DHCP pair's VIP, has its home on a too)
        assert out[proxy_at - 1].startswith("a vips moved imap1 to b, dhcp1 to b after"), out
        assert out[proxy_at + 1] == "a sessions 2 left on the proxy"
        assert out[-3].startswith("a sessions all ended after"), out
        assert out[-2:] == ["a backend drained", "a dhcp drained"], out
        assert 2.0 <= took < 30, took
        assert proxy_sessions(cluster, "a") == 0
        assert cluster.vip_holders(vip) == ["b"]
        assert "already drained" in ctl(cluster, "drain", "a").stdout

        # Undrain returns once the node is ready and its home VIP is back on it.
        result = ctl(cluster, "undrain", "a")
        out = lines(result)
        assert result.returncode == 0, result.stdout + result.stderr
        assert [line.split()[:2] for line in out[:4]] == [
            ["a", "dhcp"], ["a", "backend"], ["a", "proxy"], ["a", "vipd"]]
        assert any(line.startswith("a vips imap1, dhcp1 back after") for line in out), out
        assert cluster.vip_holders(vip) == ["a"]
        for role in ("backend", "proxy", "dhcp", "vipd"):
            assert cluster.ready("a", role), role
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(10)


def test_undrain_no_wait_and_a_node_that_cannot_be_left(cluster: Cluster) -> None:
    # Once a is drained, b has nobody to hand its VIPs to: drain b resigns them all
    # the same (an operator may mean it), but ctl says the VIPs are down, exit 3.
    assert ctl(cluster, "drain", "a", "--timeout", "20").returncode == 0
    result = ctl(cluster, "drain", "b", "--timeout", "2")
    out = lines(result)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "b vips imap1, imap2, dhcp1 held by no node after 2 s: no other node takes over " \
        "(all drained or down?)" in out
    assert cluster.vip_holders(VIPS[0][1]) == cluster.vip_holders(VIPS[1][1]) == []

    result = ctl(cluster, "undrain", "b", "--no-wait")
    assert result.returncode == 0
    assert len(lines(result)) == 4  # one line per daemon (dhcp, backend, proxy, vipd), no waiting
    result = ctl(cluster, "undrain", "a", "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    assert cluster.vip_holders(VIPS[0][1]) == ["a"]
