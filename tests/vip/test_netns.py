"""Raw VRRP, netlink and gratuitous ARP for real, between two network namespaces."""

from __future__ import annotations

import ipaddress
import json
import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from imapha.vip.addresses import NetlinkDriver, vip_label
from imapha.vip.garp import ETH_P_ARP, Announcer
from imapha.vip.machine import RouterConfig, Startup, State, VirtualRouter
from imapha.vip.packet import MCAST_IPV4, Advertisement, DropReason, encode
from imapha.vip.speaker import Speaker
from imapha.vip.transport import RawIPv4Transport, Received
from tests.prereq import need_binary, need_root

from .loop import Running, run
from .netns import Link, inside, ip, veth_link

pytestmark = pytest.mark.netns

A = ipaddress.IPv4Address("192.0.2.1")
B = ipaddress.IPv4Address("192.0.2.2")
VIP = ipaddress.IPv4Address("192.0.2.100")


@pytest.fixture
def link() -> Iterator[Link]:
    need_root()
    need_binary("ip")
    with veth_link() as made:
        yield made


def wait_for(transport: RawIPv4Transport, n: int = 1, timeout: float = 3.0) -> list[Received]:
    got: list[Received] = []
    end = time.monotonic() + timeout
    while len(got) < n and (left := end - time.monotonic()) > 0:
        select.select([transport], [], [], left)
        got += transport.receive()
    return got


def test_two_raw_speakers_see_each_others_adverts(link: Link) -> None:
    with inside(link.a.netns):
        ta = RawIPv4Transport(link.a.ifname, A)
    with inside(link.b.netns):
        tb = RawIPv4Transport(link.b.ifname, B)
    try:
        adv_a = Advertisement(51, 200, 100, (VIP,))
        adv_b = Advertisement(51, 100, 100, (VIP,))
        ta.send(adv_a)
        tb.send(adv_b)
        assert wait_for(tb) == [Received(adv_a, A)]
        assert wait_for(ta) == [Received(adv_b, B)]
        assert ta.receive() == [] and ta.drops[DropReason.OWN_PACKET] == 0  # no loopback
    finally:
        ta.close()
        tb.close()


def test_ttl_254_is_dropped_and_counted(link: Link) -> None:
    with inside(link.a.netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, link.a.ifname.encode())
        sock.bind((str(A), 0))
    with inside(link.b.netns):
        tb = RawIPv4Transport(link.b.ifname, B)
    try:
        data = encode(Advertisement(51, 200, 100, (VIP,)), A, MCAST_IPV4)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 254)
        sock.sendto(data, (str(MCAST_IPV4), 0))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.sendto(data, (str(MCAST_IPV4), 0))
        got = wait_for(tb)
        assert [g.advert.priority for g in got] == [200]  # only the TTL-255 copy
        assert tb.drops == {DropReason.BAD_TTL: 1}
    finally:
        sock.close()
        tb.close()


def addresses(netns: str, ifname: str) -> dict[str, str]:
    """address/prefix -> label, as `ip` shows them."""
    out: dict[str, str] = {}
    for dev in json.loads(ip("-j", "-n", netns, "-4", "addr", "show", "dev", ifname)):
        for info in dev.get("addr_info", []):
            out[f"{info['local']}/{info['prefixlen']}"] = info.get("label", "")
    return out


def test_netlink_driver_adds_removes_and_flushes_only_its_own(link: Link) -> None:
    ns, ifname = link.a.netns, link.a.ifname
    label = vip_label(ifname, 51)
    assert label is not None
    ip("-n", ns, "addr", "add", "192.0.2.50/24", "dev", ifname)  # someone else's
    ip("-n", ns, "addr", "add", "192.0.2.60/32", "dev", ifname, "label", label)  # old VIP of ours
    ip("-n", ns, "addr", "add", "192.0.2.100/32", "dev", ifname)  # crash leftover
    with inside(ns):
        driver = NetlinkDriver(ifname, 51, {VIP: 32})
    try:
        removed = driver.flush()
        assert sorted(map(str, removed)) == ["192.0.2.100", "192.0.2.60"]
        assert set(addresses(ns, ifname)) == {"192.0.2.1/24", "192.0.2.50/24"}
        driver.add([VIP])
        driver.add([VIP])  # idempotent
        have = addresses(ns, ifname)
        assert "192.0.2.100/32" in have and have["192.0.2.100/32"] == label
        driver.remove([VIP])
        driver.remove([VIP])  # already gone: fine
        assert set(addresses(ns, ifname)) == {"192.0.2.1/24", "192.0.2.50/24"}
        assert driver.flush() == []
    finally:
        driver.close()


def test_gratuitous_arp_leaves_and_is_well_formed(link: Link) -> None:
    with inside(link.b.netns):
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        cap.bind((link.b.ifname, ETH_P_ARP))
        cap.settimeout(3.0)
    with inside(link.a.netns):
        ann = Announcer(link.a.ifname)
    try:
        assert ann.announce([VIP], repeat=2) == 2
        frames = [cap.recv(2048) for _ in range(2)]
        for frame in frames:
            assert frame[:6] == b"\xff" * 6 and frame[6:12] == ann.mac
            htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
            assert (htype, ptype, hlen, plen, op) == (1, 0x0800, 6, 4, 1)
            assert frame[22:28] == ann.mac
            assert frame[28:32] == VIP.packed and frame[38:42] == VIP.packed
    finally:
        cap.close()
        ann.close()


def test_machines_over_raw_vrrp_move_the_vip_between_namespaces(link: Link) -> None:
    def speaker(side_ns: str, ifname: str, me: ipaddress.IPv4Address, prio: int) -> Running:
        with inside(side_ns):
            transport = RawIPv4Transport(ifname, me)
            driver = NetlinkDriver(ifname, 51, {VIP: 32})
        cfg = RouterConfig(vrid=51, priority=prio, addresses=(VIP,), primary=me, interval_cs=10)
        return Running(Speaker(VirtualRouter(cfg), transport, driver), transport)

    na = speaker(link.a.netns, link.a.ifname, A, 200)
    nb = speaker(link.b.netns, link.b.ifname, B, 100)
    nodes = [na, nb]
    try:
        for n in nodes:
            n.speaker.driver.flush()
            n.speaker.feed(Startup(time.monotonic()))
        run(nodes, lambda: na.speaker.router.state is State.MASTER, timeout=5)
        assert nb.speaker.router.state is State.BACKUP and not nb.speaker.adverts_sent
        assert "192.0.2.100/32" in addresses(link.a.netns, link.a.ifname)
        assert "192.0.2.100/32" not in addresses(link.b.netns, link.b.ifname)
        na.alive = False  # SIGKILL-like: A says nothing more
        took = run(nodes, lambda: nb.speaker.router.state is State.MASTER, timeout=5)
        assert took < 0.3 + 156 / 256 * 0.1 + 0.2
        assert "192.0.2.100/32" in addresses(link.b.netns, link.b.ifname)
        assert nb.speaker.drops == {}
    finally:
        for n in nodes:
            n.speaker.driver.close()  # type: ignore[attr-defined]
            n.transport.close()  # type: ignore[attr-defined]


def test_unicast_peers_instead_of_multicast(link: Link) -> None:
    with inside(link.a.netns):
        ta = RawIPv4Transport(link.a.ifname, A, peers=[B])
    with inside(link.b.netns):
        tb = RawIPv4Transport(link.b.ifname, B, peers=[A])
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        cap.bind((link.b.ifname, 0x0800))
        cap.settimeout(3.0)
    try:
        adv = Advertisement(51, 200, 100, (VIP,))
        ta.send(adv)
        assert wait_for(tb) == [Received(adv, A)]
        for _ in range(20):
            frame = cap.recv(2048)
            if frame[14 + 9] == 112:
                break
        header = frame[14:34]
        assert header[8] == 255  # TTL
        assert ipaddress.IPv4Address(header[16:20]) == B  # unicast, not 224.0.0.18
    finally:
        ta.close()
        tb.close()
        cap.close()


def test_send_on_a_downed_link_is_counted_not_raised(link: Link) -> None:
    with inside(link.a.netns):
        ta = RawIPv4Transport(link.a.ifname, A)
    try:
        ip("-n", link.a.netns, "link", "set", link.a.ifname, "down")
        ta.send(Advertisement(51, 200, 100, (VIP,)))
        assert ta.send_errors == 1
    finally:
        ta.close()
