"""``imapha vipd`` and Debian keepalived (vrrp_version 3) on one VRID, as daemons in a lab.

Node a runs vipd (priority 150 for v1), node b runs keepalived with the same
VIP list (REFERENCE.md: keepalived drops adverts whose list differs). A TCP
server on each node tells the client who holds the VIP. keepalived only ever
gets valid packets from us (its flood bug is not what we test).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from imapha.lab import Lab, LabProcess
from tests.prereq import need_binary
from tests.support import short_tmp, wait_for

from .vipd_lab import VIP1, Node, cluster, who

pytestmark = pytest.mark.netns

ONE_VIP = (f'[[vips]]\nname = "v1"\naddress = "{VIP1}/24"\nvrid = 51\nhome = "a"\n'
           'priority = 150\n')


def keepalived(node: Node, root: Path, priority: int, n: int) -> LabProcess:
    binary = need_binary("keepalived")
    conf = root / f"keepalived{n}.conf"
    conf.write_text(
        "global_defs {\n  vrrp_version 3\n  router_id imapha_b\n}\n"
        "vrrp_instance V {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n"
        f"  priority {priority}\n  advert_int 0.1\n"
        f"  virtual_ipaddress {{\n    {VIP1}/24\n  }}\n}}\n")
    return node.host.spawn([binary, "-n", "-l", "-P", "-D", "-f", str(conf),
                            "-p", str(root / f"k{n}.pid"), "-r", str(root / f"v{n}.pid")])


def test_vipd_and_keepalived_elect_and_resign_both_ways(lab: Lab) -> None:
    need_binary("keepalived")
    with short_tmp() as root, cluster(lab, root, vips=ONE_VIP) as cl:
        a, b, client = cl.a, cl.b, cl.client
        b.start_server()
        ka = keepalived(b, root, 100, 1)
        wait_for(lambda: who(client, VIP1, 0.2) == "b", 10, "keepalived alone is master")
        a.start()
        # Ours is higher (150 > 100): vipd preempts, keepalived accepts our adverts.
        wait_for(lambda: who(client, VIP1, 0.2) == "a", 5, "vipd master")
        wait_for(lambda: not b.has_address(VIP1), 2, "keepalived to drop the VIP")
        # vipd resigns (drain): keepalived takes over after its Skew_Time.
        resigned = time.monotonic()
        assert a.call("vipd", "POST", "/drain").ok
        wait_for(lambda: b.has_address(VIP1), 2, "keepalived to take the VIP")
        assert time.monotonic() - resigned < 0.6
        assert not a.has_address(VIP1)
        wait_for(lambda: who(client, VIP1, 0.2) == "b", 3, "keepalived answering")
        assert a.call("vipd", "POST", "/undrain").ok
        wait_for(lambda: who(client, VIP1, 0.2) == "a", 5, "vipd master again")
        # keepalived higher (200): it preempts us and we accept its adverts.
        ka.stop(5.0)
        ka = keepalived(b, root, 200, 2)
        wait_for(lambda: who(client, VIP1, 0.2) == "b", 10, "keepalived (200) master")
        wait_for(lambda: not a.has_address(VIP1), 2, "vipd to drop the VIP")
        vip = a.status()["vips"][0]
        assert vip["state"] == "backup" and vip["master"] == "192.0.2.12"
        time.sleep(1.0)  # a second of keepalived's adverts: we stay backup
        assert a.vip_states() == {"v1": "backup"}
        # keepalived resigns (SIGTERM sends priority 0): we take over at once.
        stopped = time.monotonic()
        ka.send_signal(signal.SIGTERM)
        wait_for(lambda: a.has_address(VIP1), 2, "vipd to take the VIP")
        assert time.monotonic() - stopped < 0.5
        ka.wait(10)
        wait_for(lambda: who(client, VIP1, 0.2) == "a", 3, "vipd answering")
        drops = a.status()["dropped"]
        # Everything keepalived sent passed our checks (our own multicast never loops back).
        assert drops == {}, drops
