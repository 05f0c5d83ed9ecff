"""Carriers of VRRPv3 advertisements: raw IPv4 protocol 112, and UDP for demos.

Theory of operation
-------------------
A transport moves :class:`~imapha.vip.packet.Advertisement` values; it makes no
protocol decision beyond the checks only it can make (the TTL it saw, whether
the packet is our own echo) and :func:`~imapha.vip.packet.decode`. Each one is a
pair of non-blocking sockets with :meth:`fileno` for an event loop, a
:meth:`send` and a :meth:`receive` that drains what is queued and returns the
good packets as :class:`Received`; bad ones are counted in :attr:`drops` by
:class:`~imapha.vip.packet.DropReason` and logged at debug level.

:class:`RawIPv4Transport` (RFC 5798 §5.1.1, §7.1): IP protocol 112, to
224.0.0.18 (or unicast to configured peers), TTL 255. The receive socket is
bound to the interface and joins 224.0.0.18 there (without IP_ADD_MEMBERSHIP
the kernel does not deliver the group). An AF_INET raw socket hands over the IP
header with the payload, so the TTL is read from the header itself rather than
from IP_RECVTTL ancillary data, to the same effect. The send socket is bound to
our primary address so that source, and so the checksum's pseudo-header, is
known; multicast loopback is off so we do not hear ourselves.

:class:`RawIPv6Transport` (§5.1.2): the same to ff02::12 from our link-local
address with hop limit 255; hop limit and destination come as ancillary data.

:class:`UdpTransport`: the same message bytes (pseudo-header computed from the
UDP addresses) in UDP datagrams between loopback addresses, one port per VIP
group, for `imapha demo` without root. Every node needs its own address
(127.0.0.x: all of 127/8 is local on Linux), since the sender's address is its
identity in the election. There is no TTL to check.

:class:`Demux` sends what a transport received to the virtual router of its
VRID and counts the rest as ``other_vrid``.

:class:`Reader` adapts a transport to Twisted's ``IReadDescriptor`` (the daemon
adds it with ``reactor.addReader``); nothing else here knows about Twisted.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twisted.internet.interfaces import IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer  # type: ignore[import-untyped]

from imapha.vip.packet import (
    MCAST_IPV4,
    MCAST_IPV6,
    VRRP_PROTOCOL,
    Advertisement,
    DecodeError,
    DropReason,
    IPAddress,
    check_ttl,
    decode,
    encode,
)

log = logging.getLogger(__name__)

MAX_READS_PER_CALL = 256
"""Bound on datagrams drained by one receive() call, so a flood cannot starve timers."""

RECV_BUFFER = 2048


@dataclass(frozen=True, slots=True)
class Received:
    advert: Advertisement
    src: IPAddress


class DropCounter(collections.Counter[DropReason]):
    """Drops by reason; the daemon exports it as imapha_vipd_dropped_packets_total."""


def _mreqn(group: ipaddress.IPv4Address, ifindex: int) -> bytes:
    # struct ip_mreqn { in_addr imr_multiaddr; in_addr imr_address; int imr_ifindex; }
    return group.packed + bytes(4) + struct.pack("@i", ifindex)


def _bind_to_device(sock: socket.socket, ifname: str) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())


class _RawTransport:
    """What the IPv4 and IPv6 raw transports share: the socket pair, sending
    to every destination, drop counting, closing. Subclasses open the sockets
    and parse what arrives."""

    ifname: str
    primary: IPAddress
    destinations: tuple[IPAddress, ...]
    drops: DropCounter
    send_errors: int
    ifindex: int
    _rx: socket.socket
    _tx: socket.socket

    def _sockaddr(self, dst: IPAddress) -> tuple[str | int, ...]:
        raise NotImplementedError

    def fileno(self) -> int:
        return self._rx.fileno()

    def send(self, advert: Advertisement) -> None:
        """Send to the group (or each unicast peer); a full buffer loses the packet."""
        for dst in self.destinations:
            try:
                self._tx.sendto(encode(advert, self.primary, dst), self._sockaddr(dst))
            except OSError as exc:  # full buffer, link down, address gone: keep running
                self.send_errors += 1
                log.warning("vrrp advert to %s on %s lost: %s", dst, self.ifname, exc)

    def _drop(self, exc: DecodeError, src: IPAddress | None) -> None:
        self.drops[exc.reason] += 1
        log.debug("vrrp packet from %s on %s dropped: %s", src, self.ifname, exc)

    def close(self) -> None:
        self._rx.close()
        self._tx.close()


class RawIPv4Transport(_RawTransport):
    """VRRP over IPv4 on one interface; needs CAP_NET_RAW.

    Create it inside the network namespace of the interface: the sockets stay
    there whatever the calling thread does afterwards.
    """

    primary: ipaddress.IPv4Address

    def __init__(
        self,
        ifname: str,
        primary: ipaddress.IPv4Address,
        peers: Sequence[ipaddress.IPv4Address] = (),
    ) -> None:
        self.ifname = ifname
        self.primary = primary
        self.destinations: tuple[ipaddress.IPv4Address, ...] = tuple(peers) or (MCAST_IPV4,)
        self.drops = DropCounter()
        self.send_errors = 0
        self.ifindex = socket.if_nametoindex(ifname)
        self._rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP_PROTOCOL)
        self._tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, VRRP_PROTOCOL)
        try:
            _bind_to_device(self._rx, ifname)
            self._rx.setsockopt(
                socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, _mreqn(MCAST_IPV4, self.ifindex)
            )
            self._rx.setblocking(False)
            _bind_to_device(self._tx, ifname)
            self._tx.bind((str(primary), 0))
            self._tx.setsockopt(
                socket.IPPROTO_IP, socket.IP_MULTICAST_IF, _mreqn(MCAST_IPV4, self.ifindex)
            )
            self._tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
            self._tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
            self._tx.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
            self._tx.setblocking(False)
        except OSError:
            self.close()
            raise

    def _sockaddr(self, dst: IPAddress) -> tuple[str | int, ...]:
        return (str(dst), 0)

    def receive(self) -> list[Received]:
        out: list[Received] = []
        for _ in range(MAX_READS_PER_CALL):
            try:
                datagram = self._rx.recv(RECV_BUFFER)
            except (BlockingIOError, InterruptedError):
                break
            got = self._parse(datagram)
            if got is not None:
                out.append(got)
        return out

    def _parse(self, datagram: bytes) -> Received | None:
        if len(datagram) < 20:
            self._drop(DecodeError(DropReason.TOO_SHORT, "ip header"), None)
            return None
        ihl = (datagram[0] & 0x0F) * 4
        total = struct.unpack_from("!H", datagram, 2)[0]
        ttl = datagram[8]
        src = ipaddress.IPv4Address(datagram[12:16])
        dst = ipaddress.IPv4Address(datagram[16:20])
        if src == self.primary:
            self._drop(DecodeError(DropReason.OWN_PACKET), src)
            return None
        try:
            check_ttl(ttl)  # §7.1: a routed packet never counts
            advert = decode(datagram[ihl : min(total, len(datagram))], src, dst)
        except DecodeError as exc:
            self._drop(exc, src)
            return None
        return Received(advert, src)



class RawIPv6Transport(_RawTransport):
    """VRRP over IPv6 on one interface (RFC 5798 §5.1.2); needs CAP_NET_RAW.

    Sent from our link-local `primary` to ff02::12 (or unicast peers) with hop
    limit 255. IPv6 raw sockets deliver no header, so the hop limit and the
    destination (for the checksum's pseudo-header) come as IPV6_HOPLIMIT and
    IPV6_PKTINFO ancillary data. The checksum is computed and verified here, not
    by the kernel (IPV6_CHECKSUM would drop bad packets before we count them).
    """

    primary: ipaddress.IPv6Address

    def __init__(
        self,
        ifname: str,
        primary: ipaddress.IPv6Address,
        peers: Sequence[ipaddress.IPv6Address] = (),
    ) -> None:
        if not primary.is_link_local:
            raise ValueError("VRRP over IPv6 is sent from a link-local address (§5.1.2.1)")
        self.ifname = ifname
        self.primary = primary
        self.destinations: tuple[ipaddress.IPv6Address, ...] = tuple(peers) or (MCAST_IPV6,)
        self.drops = DropCounter()
        self.send_errors = 0
        self.ifindex = socket.if_nametoindex(ifname)
        self._rx = socket.socket(socket.AF_INET6, socket.SOCK_RAW, VRRP_PROTOCOL)
        self._tx = socket.socket(socket.AF_INET6, socket.SOCK_RAW, VRRP_PROTOCOL)
        try:
            _bind_to_device(self._rx, ifname)
            self._rx.setsockopt(
                socket.IPPROTO_IPV6,
                socket.IPV6_JOIN_GROUP,
                MCAST_IPV6.packed + struct.pack("@I", self.ifindex),
            )
            self._rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            self._rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            self._rx.setblocking(False)
            _bind_to_device(self._tx, ifname)
            self._tx.bind((str(primary), 0, 0, self.ifindex))
            self._tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, self.ifindex)
            self._tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            self._tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            self._tx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            self._tx.setblocking(False)
        except OSError:
            self.close()
            raise

    def _sockaddr(self, dst: IPAddress) -> tuple[str | int, ...]:
        return (str(dst), 0, 0, self.ifindex)

    def receive(self) -> list[Received]:
        out: list[Received] = []
        space = socket.CMSG_SPACE(4) + socket.CMSG_SPACE(20)
        for _ in range(MAX_READS_PER_CALL):
            try:
                data, ancillary, _flags, addr = self._rx.recvmsg(RECV_BUFFER, space)
            except (BlockingIOError, InterruptedError):
                break
            src = ipaddress.IPv6Address(addr[0].split("%")[0])
            hops: int | None = None
            dst: ipaddress.IPv6Address | None = None
            for level, kind, value in ancillary:
                if level != socket.IPPROTO_IPV6:
                    continue
                if kind == socket.IPV6_HOPLIMIT:
                    hops = struct.unpack("@i", value[:4])[0]
                elif kind == socket.IPV6_PKTINFO:
                    dst = ipaddress.IPv6Address(value[:16])
            if src == self.primary:
                self.drops[DropReason.OWN_PACKET] += 1
                continue
            try:
                check_ttl(-1 if hops is None else hops)
                advert = decode(data, src, dst if dst is not None else MCAST_IPV6)
            except DecodeError as exc:
                self._drop(exc, src)
                continue
            out.append(Received(advert, src))
        return out


class UdpTransport:
    """VRRP messages in UDP datagrams between loopback addresses (unprivileged demo)."""

    def __init__(
        self,
        local: tuple[ipaddress.IPv4Address, int],
        peers: Sequence[tuple[ipaddress.IPv4Address, int]],
    ) -> None:
        self.local = local
        self.primary = local[0]
        self.peers = tuple(peers)
        self.drops = DropCounter()
        self.send_errors = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((str(local[0]), local[1]))
            self._sock.setblocking(False)
        except OSError:
            self._sock.close()
            raise
        self.port = self._sock.getsockname()[1]

    def fileno(self) -> int:
        return self._sock.fileno()

    def send(self, advert: Advertisement) -> None:
        for ip, port in self.peers:
            try:
                self._sock.sendto(encode(advert, self.primary, ip), (str(ip), port))
            except OSError as exc:  # e.g. a peer not listening yet: ICMP unreachable
                self.send_errors += 1
                log.debug("vrrp/udp advert to %s:%d lost: %s", ip, port, exc)

    def receive(self) -> list[Received]:
        out: list[Received] = []
        for _ in range(MAX_READS_PER_CALL):
            try:
                data, (host, _port) = self._sock.recvfrom(RECV_BUFFER)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionRefusedError:  # an earlier send's ICMP error
                continue
            src = ipaddress.IPv4Address(host)
            if src == self.primary:
                self.drops[DropReason.OWN_PACKET] += 1
                continue
            try:
                out.append(Received(decode(data, src, self.primary), src))
            except DecodeError as exc:
                self.drops[exc.reason] += 1
                log.debug("vrrp/udp datagram from %s dropped: %s", src, exc)
        return out

    def close(self) -> None:
        self._sock.close()


class Demux:
    """Route received adverts to the handler of their VRID; count the others."""

    def __init__(self) -> None:
        self.handlers: dict[int, Callable[[Received], None]] = {}
        self.drops = DropCounter()

    def register(self, vrid: int, handler: Callable[[Received], None]) -> None:
        self.handlers[vrid] = handler

    def dispatch(self, packets: Sequence[Received]) -> None:
        for pkt in packets:
            handler = self.handlers.get(pkt.advert.vrid)
            if handler is None:
                self.drops[DropReason.OTHER_VRID] += 1
            else:
                handler(pkt)


@implementer(IReadDescriptor)
class Reader:
    """Twisted read descriptor: drain the transport and pass packets to a callback."""

    def __init__(
        self,
        transport: RawIPv4Transport | RawIPv6Transport | UdpTransport,
        deliver: Callable[[list[Received]], None],
    ) -> None:
        self.transport = transport
        self.deliver = deliver

    def fileno(self) -> int:
        return self.transport.fileno()

    def doRead(self) -> None:
        packets = self.transport.receive()
        if packets:
            self.deliver(packets)

    def connectionLost(self, reason: Failure) -> None:
        log.info("vrrp reader stopped: %s", reason.getErrorMessage())

    def logPrefix(self) -> str:
        return "vrrp"
