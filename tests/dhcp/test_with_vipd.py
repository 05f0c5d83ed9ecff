"""imapha dhcp in hot-standby behind the real vipd: SIGKILL of the whole active node.

vipd (imapha.vip, VRRPv3 in the namespaces, netlink addresses) holds the DHCP
VIP on the home node, tracks the dhcp server's readiness and tells it its role
with ``POST /vip``; nothing in this test plays vipd.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapha.lab.topology import Lab
from tests.dhcp.cluster import VIP, Pair, dump, make_pair

pytestmark = pytest.mark.netns

VRRP = """
[vrrp]
advert_interval = "100ms"
garp_count = 1
"""


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dh", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_sigkill_of_the_active_node_vipd_moves_the_vip_and_the_standby_answers(
    lab: Lab, root: Path
) -> None:
    pair = make_pair(lab, root, mode="hot-standby", vrrp=VRRP)
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for node in ("a", "b"):
        pair.start(node)
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    vipds = {node: pair.host(node).spawn(
        [sys.executable, "-m", "imapha", "vipd", "--config", str(pair.config), "--node", node],
        env=env) for node in ("a", "b")}
    try:
        Pair.wait(lambda: pair.status("a")["answering"], 15, "vipd made a the master")
    except AssertionError:
        raise AssertionError(vipds["a"].output()[-3000:] + dump(pair)) from None
    assert pair.status("b")["answering"] is False
    first = pair.udhcpc("c1")
    first.wait_bound(15)
    assert first.events()[-1][2] == VIP

    killed = time.monotonic()
    pair.a.kill()  # the whole node: dhcp and vipd, SIGKILL
    pair.procs.pop("a")
    Pair.wait(lambda: pair.status("b")["answering"], 5, "b answering")
    promoted = time.monotonic() - killed
    second = pair.udhcpc("c2")
    second.wait_bound(10)
    served = time.monotonic() - killed
    assert second.events()[-1][2] == VIP
    held = pair.check_unique()
    assert len(held) == 2
    print(f"takeover: b answering {promoted:.3f} s, new client bound {served:.3f} s after SIGKILL")
    assert promoted < 1.0, f"vipd promoted b {promoted:.2f} s after the kill"
    assert served < 1.5, f"a new client was served {served:.2f} s after the kill"
