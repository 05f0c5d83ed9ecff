"""Wire compatibility with keepalived (vrrp_version 3) across two namespaces.

keepalived is the reference VRRPv3 peer (REFERENCE.md). Only valid packets are
sent to it (its flooding bug makes invalid ones a test of keepalived, not us).
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imapha.vip.addresses import NetlinkDriver
from imapha.vip.machine import RouterConfig, Shutdown, Startup, State, VirtualRouter
from imapha.vip.speaker import Speaker
from imapha.vip.transport import RawIPv4Transport, Received
from tests.prereq import need_binary, need_root

from .loop import Running, run
from .netns import Link, inside, ip, veth_link

pytestmark = pytest.mark.netns

A = ipaddress.IPv4Address("192.0.2.1")
VIP = ipaddress.IPv4Address("192.0.2.100")


def has_vip(link_side_ns: str, ifname: str) -> bool:
    data = json.loads(ip("-j", "-n", link_side_ns, "-4", "addr", "show", "dev", ifname))
    return any(i["local"] == str(VIP) for d in data for i in d.get("addr_info", []))


@pytest.fixture
def keepalived_b(tmp_path: Path) -> Iterator[tuple[Link, subprocess.Popen[bytes]]]:
    need_root()
    need_binary("ip")
    binary = need_binary("keepalived")
    with veth_link() as link:
        conf = tmp_path / "keepalived.conf"
        conf.write_text(
            "global_defs {\n  vrrp_version 3\n  router_id imapha_test\n}\n"
            "vrrp_instance V {\n  state BACKUP\n"
            f"  interface {link.b.ifname}\n  virtual_router_id 51\n  priority 100\n"
            "  advert_int 0.1\n  virtual_ipaddress {\n    192.0.2.100/32\n  }\n}\n"
        )
        log = (tmp_path / "keepalived.log").open("wb")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", link.b.netns, binary, "-n", "-l", "-P", "-D",
             "-f", str(conf), "-p", str(tmp_path / "k.pid"), "-r", str(tmp_path / "v.pid")],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            yield link, proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
            log.close()


def wait(cond: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not met")
        time.sleep(0.02)
    return time.monotonic() - start


def test_keepalived_and_imapha_understand_each_other(
    keepalived_b: tuple[Link, subprocess.Popen[bytes]],
) -> None:
    link, proc = keepalived_b
    with inside(link.a.netns):
        transport = RawIPv4Transport(link.a.ifname, A)
        driver = NetlinkDriver(link.a.ifname, 51, {VIP: 32})
    cfg = RouterConfig(vrid=51, priority=200, addresses=(VIP,), primary=A, interval_cs=10)
    node = Running(Speaker(VirtualRouter(cfg), transport, driver), transport)
    try:
        # keepalived alone becomes master; its adverts pass all our checks.
        wait(lambda: has_vip(link.b.netns, link.b.ifname), timeout=10)
        got: list[Received] = []

        def three_adverts() -> bool:
            got.extend(transport.receive())
            return len(got) >= 3

        wait(three_adverts, timeout=3)
        assert {(r.advert.vrid, r.advert.priority, r.advert.interval_cs) for r in got} == {
            (51, 100, 10)
        }
        assert transport.drops == {}
        # We start with a higher priority: keepalived accepts our adverts and yields.
        node.speaker.feed(Startup(time.monotonic()))
        run([node], lambda: node.speaker.router.state is State.MASTER, timeout=5)
        run([node], lambda: not has_vip(link.b.netns, link.b.ifname), timeout=5)
        assert has_vip(link.a.netns, link.a.ifname)
        end = time.monotonic() + 1.0  # a second of our adverts: keepalived stays backup
        run([node], lambda: time.monotonic() > end, timeout=2)
        assert not has_vip(link.b.netns, link.b.ifname)
        assert node.speaker.router.state is State.MASTER and transport.drops == {}
        # Clean stop (priority 0): keepalived takes over after its Skew_Time.
        node.speaker.feed(Shutdown(time.monotonic()))
        took = wait(lambda: has_vip(link.b.netns, link.b.ifname), timeout=5)
        assert not has_vip(link.a.netns, link.a.ifname)
        assert took < 1.0
        assert proc.poll() is None
    finally:
        driver.close()
        transport.close()


def test_imapha_backup_behind_keepalived_takes_over_on_its_priority_zero(
    keepalived_b: tuple[Link, subprocess.Popen[bytes]],
) -> None:
    link, proc = keepalived_b
    with inside(link.a.netns):
        transport = RawIPv4Transport(link.a.ifname, A)
        driver = NetlinkDriver(link.a.ifname, 51, {VIP: 32})
    cfg = RouterConfig(vrid=51, priority=50, addresses=(VIP,), primary=A, interval_cs=10)
    node = Running(Speaker(VirtualRouter(cfg), transport, driver), transport)
    try:
        wait(lambda: has_vip(link.b.netns, link.b.ifname), timeout=10)
        node.speaker.feed(Startup(time.monotonic()))
        end = time.monotonic() + 1.0
        run([node], lambda: time.monotonic() > end, timeout=2)
        assert node.speaker.router.state is State.BACKUP  # keepalived (100) stays master
        assert node.speaker.router.master_adver_interval_cs == 10
        proc.terminate()  # keepalived sends priority 0 on SIGTERM
        took = run([node], lambda: node.speaker.router.state is State.MASTER, timeout=5)
        # Skew_Time for priority 50 at 0.1 s is 80 ms; allow for keepalived's exit path.
        assert took < 0.6
        assert has_vip(link.a.netns, link.a.ifname)
        assert transport.drops == {}
    finally:
        driver.close()
        transport.close()
