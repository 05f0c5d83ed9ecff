"""``imapha vipd`` as a daemon, two nodes and a client in an imapha.lab, interval 0.1 s.

What a user checks: which node answers a TCP connect to each VIP from the
client, whether the address sits on the right interface, and what
``GET /status`` says. Each node's tracked service is the test daemon
(``--role proxy``), whose readiness the test flips.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from imapha.lab import Lab
from tests.support import short_tmp, wait_for

from .vipd_lab import REPO, VIP1, VIP2, Cluster, Probe, cluster, who

pytestmark = pytest.mark.netns


def homes(cl: Cluster) -> bool:
    return who(cl.client, VIP1, 0.3) == "a" and who(cl.client, VIP2, 0.3) == "b"


def start(cl: Cluster) -> None:
    cl.a.start()
    cl.b.start()
    wait_for(lambda: homes(cl), 10, "each VIP on its home node")


def ctl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "imapha", "ctl", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO, check=False)


def test_sigkill_fails_over_and_the_vip_returns_only_when_ready(lab: Lab) -> None:
    with short_tmp() as root, cluster(lab, root) as cl:
        start(cl)
        assert cl.a.has_address(VIP1) and not cl.a.has_address(VIP2)
        start_kill = time.monotonic()
        assert cl.a.host.kill() == []
        wait_for(lambda: who(cl.client, VIP1, 0.2) == "b", 5, "VIP1 on b")
        took = time.monotonic() - start_kill
        assert who(cl.client, VIP2) == "b"
        assert took < 1.5, took  # Master_Down_Interval 0.361 s, plus probing
        assert cl.b.vip_states() == {"v1": "master", "v2": "master"}

        # a comes back with its service not ready: the VIP stays on b.
        cl.a.start("--not-ready")
        assert not cl.a.has_address(VIP1)  # the killed master's leftover was flushed
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            assert who(cl.client, VIP1, 0.5) == "b"
            time.sleep(0.1)
        status = {v["name"]: v for v in cl.a.status()["vips"]}
        assert status["v1"]["state"] == "fault"
        assert any(f.startswith("service proxy") for f in status["v1"]["faults"])
        assert status["v1"]["master"] == "192.0.2.12"

        cl.a.set_ready(True)
        wait_for(lambda: who(cl.client, VIP1, 0.2) == "a", 3, "VIP1 back on a")
        wait_for(lambda: not cl.b.has_address(VIP1), 2, "b to drop VIP1")
        assert who(cl.client, VIP2) == "b"


def test_link_down_moves_the_vip_and_link_up_brings_it_back(lab: Lab) -> None:
    with short_tmp() as root, cluster(lab, root) as cl:
        start(cl)
        cl.a.host.link_down()
        wait_for(lambda: who(cl.client, VIP1, 0.2) == "b", 5, "VIP1 on b")
        wait_for(lambda: cl.a.vip_states().get("v1") == "fault", 3, "a in fault")
        assert not cl.a.has_address(VIP1)  # a removed it: no duplicate when the link returns
        assert cl.a.status()["links"] == {"eth0": False}
        cl.a.host.link_up()
        wait_for(lambda: who(cl.client, VIP1, 0.2) == "a", 5, "VIP1 back on a")
        wait_for(lambda: not cl.b.has_address(VIP1), 2, "b to drop VIP1")
        assert cl.a.vip_states() == {"v1": "master", "v2": "backup"}


def test_partition_gives_two_masters_and_heal_one(lab: Lab) -> None:
    with short_tmp() as root, cluster(lab, root) as cl:
        start(cl)
        lab.partition(cl.a.host, cl.b.host)
        both = {"v1": "master", "v2": "master"}
        wait_for(lambda: cl.a.vip_states() == both and cl.b.vip_states() == both, 5,
                 "both nodes master of both VIPs")
        for node in cl.nodes():
            assert node.has_address(VIP1) and node.has_address(VIP2)
        lab.heal()
        wait_for(lambda: cl.a.vip_states() == {"v1": "master", "v2": "backup"}
                 and cl.b.vip_states() == {"v1": "backup", "v2": "master"}, 5, "one master each")
        wait_for(lambda: not cl.a.has_address(VIP2) and not cl.b.has_address(VIP1), 2,
                 "the losers' addresses removed")
        # The winners' GARP burst repointed the client.
        wait_for(lambda: homes(cl), 3, "each VIP answered by its home")


def test_drain_and_undrain_never_refuse_a_connect(lab: Lab) -> None:
    with short_tmp() as root, cluster(lab, root) as cl:
        start(cl)
        probe = Probe(cl.client, VIP1).start()
        try:
            time.sleep(0.5)
            drained_at = time.monotonic()
            assert cl.a.call("vipd", "POST", "/drain").ok  # what `ctl drain` does first
            wait_for(lambda: who(cl.client, VIP1, 0.2) == "b", 3, "VIP1 on b")
            # The first connect b answered (probes sent in the gap wait for a SYN retry).
            wait_for(lambda: any(r[2] == "b" for r in probe.results), 3, "a probe reaching b")
            first_b = min(r[0] + r[1] for r in probe.results if r[2] == "b")
            assert first_b - drained_at < 0.5
            done = ctl(cl.a.config, "drain", "a")  # the operator's way: the proxy too
            assert done.returncode == 0, done.stdout + done.stderr
            assert cl.a.status()["drained"] is True
            time.sleep(1.0)
            assert who(cl.client, VIP1) == "b"  # stays away while drained
            done = ctl(cl.a.config, "undrain", "a")
            assert done.returncode == 0, done.stdout + done.stderr
            wait_for(lambda: who(cl.client, VIP1, 0.2) == "a", 5, "VIP1 back on a")
            time.sleep(0.5)
        finally:
            results = probe.stop()
        assert len(results) > 50
        assert probe.failures() == [], probe.failures()
        assert {r[2] for r in results} == {"a", "b"}
