"""VRRP over IPv6 and unsolicited NA between two network namespaces."""

from __future__ import annotations

import ipaddress
import select
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from imapha.vip.garp import Announcer
from imapha.vip.packet import MCAST_IPV6, Advertisement, DropReason, encode
from imapha.vip.transport import RawIPv6Transport, Received
from tests.prereq import need_binary, need_root

from .netns import Link, inside, veth_link, wait_ipv6_multicast

pytestmark = pytest.mark.netns

A = ipaddress.IPv6Address("fe80::1")
B = ipaddress.IPv6Address("fe80::2")
VIP6 = ipaddress.IPv6Address("fe80::100")
ETH_P_IPV6 = 0x86DD


@pytest.fixture
def link() -> Iterator[Link]:
    need_root()
    need_binary("ip")
    with veth_link() as made:
        wait_ipv6_multicast(made.a)
        wait_ipv6_multicast(made.b)
        yield made


def wait_for(transport: RawIPv6Transport, timeout: float = 3.0) -> list[Received]:
    got: list[Received] = []
    end = time.monotonic() + timeout
    while not got and (left := end - time.monotonic()) > 0:
        select.select([transport], [], [], left)
        got += transport.receive()
    return got


def test_ipv6_speakers_see_each_other_and_hop_limit_254_is_dropped(link: Link) -> None:
    with inside(link.a.netns):
        ta = RawIPv6Transport(link.a.ifname, A)
        bad = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
        bad.bind((str(A), 0, 0, socket.if_nametoindex(link.a.ifname)))
        bad.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 254)
        bad.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ta.ifindex)
    with inside(link.b.netns):
        tb = RawIPv6Transport(link.b.ifname, B)
    try:
        adv = Advertisement(5, 150, 100, (VIP6,))
        bad.sendto(encode(adv, A, MCAST_IPV6), (str(MCAST_IPV6), 0, 0, ta.ifindex))
        ta.send(adv)
        assert wait_for(tb) == [Received(adv, A)]
        assert tb.drops == {DropReason.BAD_TTL: 1}
        tb.send(Advertisement(5, 100, 100, (VIP6,)))
        assert [r.src for r in wait_for(ta)] == [B]
    finally:
        bad.close()
        ta.close()
        tb.close()


def test_unsolicited_neighbor_advertisement_leaves(link: Link) -> None:
    with inside(link.b.netns):
        cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IPV6))
        cap.bind((link.b.ifname, ETH_P_IPV6))
        cap.settimeout(0.5)
    with inside(link.a.netns):
        ann = Announcer(link.a.ifname)
    try:
        ann.announce([VIP6], repeat=1)
        end = time.monotonic() + 3
        na: bytes | None = None
        while na is None and time.monotonic() < end:
            try:
                frame = cap.recv(2048)
            except TimeoutError:
                continue
            ip6 = frame[14:]
            if ip6[6] == 58 and ip6[40] == 136:  # ICMPv6 Neighbor Advertisement
                na = ip6
        assert na is not None, "no NA seen"
        assert na[7] == 255  # hop limit (RFC 4861 §7.1.2)
        assert ipaddress.IPv6Address(na[24:40]) == ipaddress.IPv6Address("ff02::1")
        flags = struct.unpack("!I", na[44:48])[0]
        assert flags == 0x20000000  # Override, not Solicited, not Router
        assert ipaddress.IPv6Address(na[48:64]) == VIP6
        assert na[64:66] == b"\x02\x01" and na[66:72] == ann.mac
    finally:
        cap.close()
        ann.close()
