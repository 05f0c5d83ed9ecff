"""The double fault, with the failover state persisted in the lease store.

a is SIGKILLed; b, known down straight from ``normal``, takes a's half in
``partner-down`` and leases an address of it; b is SIGKILLed too. a comes back
with its own store (which never heard of that lease) while b's daemon is still
down. Without the persisted state a served its own half after 3 s and could
hand that address out again; with it a knows it crashed and holds until b's
resync (or the operator). What a user checks: a is not ready while b is away,
and once b is back nobody holds an address twice.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from dhcp.failover import STARTUP_WAIT
from imapha.lab.topology import Lab
from tests.dhcp.cluster import POOL, Pair, dump, make_pair

pytestmark = pytest.mark.netns

A_HALF = (IPv4Address(POOL[0]), IPv4Address(POOL[0]) + 19)  # 40 addresses, node a: lower 20


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="df", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_crashed_node_does_not_serve_while_the_peer_that_took_its_half_is_away(
    lab: Lab, root: Path
) -> None:
    pair = make_pair(lab, root)
    pair.start("a")
    pair.start("b")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    first = pair.udhcpc("c1")
    first.wait_bound(15)

    pair.kill("a")
    Pair.wait(lambda: pair.failover("b") == "partner-down", 5, "b partner-down")
    taken = pair.udhcpc("c2")
    taken.wait_bound(15)
    address = taken.bound()
    assert address is not None and A_HALF[0] <= address <= A_HALF[1], dump(pair)  # a's half
    pair.kill("b")  # the double fault

    pair.start("a")
    assert str(address) not in pair.active("a")  # a never heard of c2's lease
    time.sleep(STARTUP_WAIT + 1.5)  # what a used to wait before serving its half
    status = pair.status("a")
    assert status["failover"] == "startup" and status["failover_hold"] is True, dump(pair)
    assert not pair.ready("a")

    pair.start("b")
    Pair.wait(lambda: pair.ready("a") and pair.ready("b"), 15, "both ready after the resync")
    assert pair.active("a").get(str(address)) == pair.active("b")[str(address)]
    late = pair.udhcpc("c3")
    late.wait_bound(15)
    assert late.bound() != address
    pair.check_unique()


def test_a_clean_stop_is_remembered_and_a_crash_is_not(lab: Lab, root: Path) -> None:
    """b never runs (refused). a after a clean stop serves its half again after 3 s;
    a after SIGKILL holds: it cannot know what b did while it was away."""
    pair = make_pair(lab, root)
    pair.start("a")
    assert pair.ctl("a", "POST", "/partner-down").ok  # a store with a lease: not fresh
    pair.udhcpc("c1").wait_bound(15)
    pair.stop("a")  # SIGTERM: bye, and the record says so
    pair.start("a")
    took = Pair.wait(lambda: pair.failover("a") == "communications-interrupted", 10,
                     "a serves its half again after a clean stop")
    assert took >= STARTUP_WAIT - 1.0  # it looked for b first
    assert pair.status("a")["failover_hold"] is False
    pair.kill("a")
    pair.start("a")
    time.sleep(STARTUP_WAIT + 1.5)
    status = pair.status("a")
    assert status["failover"] == "startup" and status["failover_hold"] is True, dump(pair)
    assert "did not stop cleanly" in pair.log("a")
    shown = subprocess.run(  # what the operator sees: why a is silent, what to do
        [sys.executable, "-m", "imapha", "ctl", "--config", str(pair.config), "dhcp",
         "--node", "a", "status"], capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "failover startup, silent" in shown.stdout and "held:" in shown.stdout, shown.stdout
    # the operator may still decide
    assert pair.ctl("a", "POST", "/partner-down").ok
    Pair.wait(lambda: pair.ready("a"), 5, "a ready after the operator's partner-down")
