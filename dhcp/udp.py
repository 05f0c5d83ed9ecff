"""UDP port 67 and raw link-layer sends: how DHCP packets enter and leave the server.

Theory of operation
-------------------
One ``AF_INET`` datagram socket bound to 0.0.0.0:67 with ``IP_PKTINFO``: each
datagram arrives with the index of the interface it came in on and the
destination address of its IP header (255.255.255.255 = a broadcast; anything
else = sent to us by unicast, a renewal or a relay). Datagrams from interfaces
not configured are dropped here. The reactor wakes :class:`Transport` when the
socket is readable; it drains up to :data:`BATCH` datagrams and hands them to
its owner at once, which runs them through one group commit.

Replies (RFC 2131 §4.1, :class:`dhcp.actions.Delivery`):

- relay / unicast / broadcast: ``sendmsg`` with an ``IP_PKTINFO`` control
  message whose ``ipi_spec_dst`` is the reply's source (the VIP, or the node's
  address in split mode) and whose ``ipi_ifindex`` is the interface the
  request came in on: a broadcast leaves by that interface and every reply
  leaves from the server identifier.
- hardware (a client with no address yet, broadcast bit clear): an
  ``AF_PACKET``/``SOCK_DGRAM`` frame to chaddr with the IPv4 and UDP headers
  built here, so no ARP entry is needed and none is left behind.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import Any, Final

from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer  # type: ignore[import-untyped]

from dhcp.actions import Delivery, Reply
from dhcp.packet import CLIENT_PORT, SERVER_PORT

log = logging.getLogger(__name__)

IP_PKTINFO: Final = getattr(socket, "IP_PKTINFO", 8)
ETH_P_IP: Final = 0x0800
BATCH: Final = 64
_PKTINFO = struct.Struct("=i4s4s")
BROADCAST: Final = IPv4Address("255.255.255.255")


@dataclass(frozen=True, slots=True)
class Datagram:
    data: bytes
    interface: str
    destination: IPv4Address
    source: tuple[str, int]

    @property
    def broadcast(self) -> bool:
        return self.destination == BROADCAST


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int(word) for word in struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_udp(source: IPv4Address, destination: IPv4Address, sport: int, dport: int,
           payload: bytes) -> bytes:
    """An IPv4 datagram carrying one UDP datagram, checksums filled in (RFC 791, 768)."""
    udp_length = 8 + len(payload)
    pseudo = source.packed + destination.packed + struct.pack("!BBH", 0, 17, udp_length)
    header = struct.pack("!HHHH", sport, dport, udp_length, 0)
    check = _checksum(pseudo + header + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, udp_length, check) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0x10, 20 + len(udp), 0, 0, 64, 17, 0,
                     source.packed, destination.packed)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return ip + udp


def interface_addresses(name: str) -> tuple[IPv4Interface, ...]:
    """The IPv4 addresses of interface ``name`` now (netlink)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = socket.if_nametoindex(name)
        found: list[IPv4Interface] = []
        for msg in ipr.get_addr(family=socket.AF_INET, index=index):
            address = msg.get_attr("IFA_ADDRESS")
            if address:
                found.append(IPv4Interface(f"{address}/{msg['prefixlen']}"))
        return tuple(found)


@implementer(IReadDescriptor)
class Transport:
    """The server's sockets; ``on_batch`` gets every batch of datagrams read."""

    def __init__(self, reactor: Any, interfaces: Sequence[str],
                 on_batch: Callable[[list[Datagram]], None], *,
                 port: int = SERVER_PORT, address: str = "0.0.0.0") -> None:
        self.reactor = reactor
        self.on_batch = on_batch
        self.port = port
        self.address = address
        self.indexes = {socket.if_nametoindex(name): name for name in interfaces}
        self.names = {name: index for index, name in self.indexes.items()}
        self.sock: socket.socket | None = None
        self.raw: socket.socket | None = None
        self.send_errors = 0
        self.foreign = 0  # datagrams from interfaces not configured

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        if len(self.names) == 1:
            # one interface: the kernel filters, and 255.255.255.255 leaves by it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                            next(iter(self.names)).encode())
        sock.bind((self.address, self.port))
        sock.setblocking(False)
        self.sock = sock
        self.raw = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        self.raw.setblocking(False)
        self.reactor.addReader(self)

    def stop(self) -> None:
        if self.sock is not None:
            self.reactor.removeReader(self)
            self.sock.close()
            self.sock = None
        if self.raw is not None:
            self.raw.close()
            self.raw = None

    # -- IReadDescriptor -----------------------------------------------------

    def fileno(self) -> int:
        return int(self.sock.fileno()) if self.sock is not None else -1

    def logPrefix(self) -> str:
        return "dhcp-udp"

    def connectionLost(self, reason: Any) -> None:
        log.error("DHCP socket lost: %s", reason)

    def doRead(self) -> None:
        sock = self.sock
        if sock is None:
            return
        batch: list[Datagram] = []
        for _ in range(BATCH):
            try:
                data, ancillary, _flags, source = sock.recvmsg(4096, 64)
            except BlockingIOError:
                break
            except OSError as exc:
                log.warning("DHCP socket receive: %s", exc)
                break
            index, destination = 0, BROADCAST
            for level, kind, value in ancillary:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    index, _local, dest = _PKTINFO.unpack(value[: _PKTINFO.size])
                    destination = IPv4Address(dest)
            name = self.indexes.get(index)
            if name is None:
                self.foreign += 1
                continue
            batch.append(Datagram(data, name, destination, source))
        if batch:
            self.on_batch(batch)

    # -- sending ---------------------------------------------------------------

    def send(self, reply: Reply, payload: bytes) -> bool:
        """Send one encoded reply as ``reply.delivery`` says; False if the kernel refused."""
        try:
            if reply.delivery is Delivery.HARDWARE and reply.hwaddr is not None:
                assert self.raw is not None
                frame = ip_udp(reply.source, reply.destination, SERVER_PORT, CLIENT_PORT, payload)
                self.raw.sendto(frame, (reply.interface, ETH_P_IP, 0, 0, reply.hwaddr))
                return True
            assert self.sock is not None
            port = SERVER_PORT if reply.delivery is Delivery.RELAY else CLIENT_PORT
            index = self.names.get(reply.interface, 0)
            if reply.delivery is Delivery.RELAY or reply.delivery is Delivery.UNICAST:
                index = 0  # routed: the relay or renewing client may be behind a router
            info = _PKTINFO.pack(index, reply.source.packed, bytes(4))
            self.sock.sendmsg([payload], [(socket.IPPROTO_IP, IP_PKTINFO, info)], 0,
                              (str(reply.destination), port))
            return True
        except OSError as exc:
            self.send_errors += 1
            if exc.errno not in (errno.EAGAIN, errno.ENOBUFS):
                log.warning("cannot send %s reply to %s via %s from %s: %s",
                            reply.delivery.value, reply.destination, reply.interface,
                            reply.source, exc)
            return False
