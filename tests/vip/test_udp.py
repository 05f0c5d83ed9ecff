"""Two routers over the unprivileged UDP transport, with a listener-style driver."""

from __future__ import annotations

import ipaddress
import socket
import time

import pytest

from imapha.vip.addresses import ListenerDriver
from imapha.vip.machine import RouterConfig, Shutdown, Startup, State, VirtualRouter
from imapha.vip.packet import Advertisement, DropReason, IPAddress
from imapha.vip.speaker import Speaker
from imapha.vip.transport import Demux, Received, UdpTransport

from .loop import Running, run

VIP = ipaddress.IPv4Address("127.0.0.100")


class SocketListeners:
    """A ListenerControl that really listens on the VIP (as the proxy would)."""

    def __init__(self, port: int) -> None:
        self.socks: dict[IPAddress, socket.socket] = {}
        self.port = port

    def bind_vip(self, address: IPAddress) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Old and new master overlap for up to one advert's flight: both may listen.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((str(address), self.port))
        sock.listen()
        self.socks[address] = sock

    def unbind_vip(self, address: IPAddress) -> None:
        sock = self.socks.pop(address, None)
        if sock is not None:
            sock.close()


def node(last: int, priority: int, control: SocketListeners) -> tuple[Speaker, UdpTransport]:
    me = ipaddress.IPv4Address(f"127.0.0.{last}")
    transport = UdpTransport((me, 0), ())
    cfg = RouterConfig(vrid=9, priority=priority, addresses=(VIP,), primary=me, interval_cs=10)
    return Speaker(VirtualRouter(cfg), transport, ListenerDriver(control, (VIP,))), transport


def connectable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((str(VIP), port)) == 0


def test_election_and_takeover_over_udp_loopback() -> None:
    with socket.socket() as probe:  # a port free on the VIP, for both nodes' listeners
        probe.bind((str(VIP), 0))
        port = probe.getsockname()[1]
    ca, cb = SocketListeners(port), SocketListeners(port)
    a, ta = node(11, 200, ca)
    b, tb = node(12, 100, cb)
    ta.peers = ((tb.primary, tb.port),)
    tb.peers = ((ta.primary, ta.port),)
    nodes = [Running(a, ta), Running(b, tb)]
    try:
        for n in nodes:
            n.speaker.feed(Startup(time.monotonic()))
        run(nodes, lambda: a.router.state is State.MASTER, timeout=5)
        assert b.router.state is State.BACKUP
        assert connectable(port)
        # Kill A without a word: B must take over after Master_Down_Interval.
        nodes[0].alive = False
        ca.unbind_vip(VIP)
        took = run(nodes, lambda: b.router.state is State.MASTER, timeout=5)
        mdi = 0.3 + (256 - 100) / 256 * 0.1
        # The timer runs from B's last advert, at most one interval before the kill.
        assert mdi - 0.1 - 0.02 < took < mdi + 0.5  # upper bound: slack for a loaded CI box
        assert VIP in cb.socks and connectable(port)
        # A comes back, higher priority: it preempts, B gives the VIP up.
        a.router = VirtualRouter(a.router.config)
        a.driver.flush()
        nodes[0].alive = True
        a.feed(Startup(time.monotonic()))
        run(nodes, lambda: b.router.state is State.BACKUP, timeout=5)
        assert a.router.state is State.MASTER and VIP not in cb.socks
        # Clean stop of A (priority 0): B takes over within Skew_Time.
        a.feed(Shutdown(time.monotonic()))
        nodes[0].alive = False
        took = run(nodes, lambda: b.router.state is State.MASTER, timeout=5)
        assert took < 0.25  # silence alone would take >= 0.26 (Master_Down - interval)
    finally:
        for sock in [*ca.socks.values(), *cb.socks.values()]:
            sock.close()
        ta.close()
        tb.close()


def test_udp_drops_are_counted_and_demux_counts_other_vrids() -> None:
    me = ipaddress.IPv4Address("127.0.0.21")
    rx = UdpTransport((me, 0), ())
    tx = UdpTransport((ipaddress.IPv4Address("127.0.0.22"), 0), ((me, rx.port),))
    try:
        tx.send(Advertisement(9, 100, 100, (VIP,)))
        tx.send(Advertisement(10, 100, 100, (VIP,)))
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.bind(("127.0.0.22", 0))
        raw.sendto(b"\x31\x09\x64\x01\x00\x64\x00\x00\x7f\x00\x00\x64", ("127.0.0.21", rx.port))
        raw.close()
        got: list[Received] = []
        for _ in range(50):
            got += rx.receive()
            if len(got) == 2 and rx.drops[DropReason.BAD_CHECKSUM]:
                break
            time.sleep(0.01)
        assert rx.drops[DropReason.BAD_CHECKSUM] == 1
        seen: list[int] = []
        demux = Demux()
        demux.register(9, lambda p: seen.append(p.advert.vrid))
        demux.dispatch(got)
        assert seen == [9] and demux.drops[DropReason.OTHER_VRID] == 1
    finally:
        rx.close()
        tx.close()


def test_udp_transport_needs_a_free_port() -> None:
    first = UdpTransport((ipaddress.IPv4Address("127.0.0.31"), 0), ())
    try:
        with pytest.raises(OSError):
            UdpTransport((ipaddress.IPv4Address("127.0.0.31"), first.port), ())
    finally:
        first.close()
