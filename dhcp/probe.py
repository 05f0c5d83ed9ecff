"""The address probe: is anything using an address before we offer it? (ARP or ICMP echo)

Theory of operation
-------------------
RFC 2131 §4.4.1: "the server SHOULD probe the reused address before allocating
the address, e.g., with an ICMP echo request". ISC dhcpd pings (``ping-check``),
Kea can ARP. The logic asks for a probe with a :class:`dhcp.actions.Probe`
instead of the OFFER when the client does not already hold the address; this
module runs it and says, within :attr:`Prober.timeout` (about 300 ms), whether
something answered.

- **On the link** (the address is in a subnet of the interface the request came
  in on): an ARP request (RFC 826) broadcast on that interface from an
  ``AF_PACKET``/``SOCK_DGRAM`` socket, in the RFC 5227 §2.1.1 *probe* form: the
  sender protocol address is 0.0.0.0, so the host that answers learns no ARP
  entry from us. Any ARP whose sender protocol address is the probed one (a
  reply, or the host's own request) on that interface means "in use". ARP is
  answered even by hosts whose firewall drops ICMP.
- **Behind a relay**: an ICMP echo request (RFC 792) from a raw socket; an echo
  reply from the address with our identifier means "in use".

Silence for the whole timeout means "free". The codec helpers are pure
(:func:`arp_probe`, :func:`arp_sender`, :func:`icmp_echo`, :func:`echo_reply_from`);
:class:`Prober` owns the sockets and the reactor timers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Final

from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

ETH_P_ARP: Final = 0x0806
ETH_P_IP: Final = 0x0800
ARP_REQUEST: Final = 1
ARP_REPLY: Final = 2
ICMP_ECHO_REPLY: Final = 0
ICMP_ECHO_REQUEST: Final = 8
BROADCAST_MAC: Final = b"\xff" * 6
SIOCGIFHWADDR: Final = 0x8927
_ARP = struct.Struct("!HHBBH6s4s6s4s")
#: How long a probe waits for an answer (ISC dhcpd waits 1 s; Kea's ARP check is shorter).
DEFAULT_TIMEOUT: Final = 0.3

Done = Callable[[bool], None]


def arp_probe(sender_mac: bytes, target: IPv4Address) -> bytes:
    """An ARP request for ``target`` with sender address 0.0.0.0 (RFC 5227 §2.1.1)."""
    return _ARP.pack(1, ETH_P_IP, 6, 4, ARP_REQUEST, sender_mac, bytes(4), bytes(6),
                     target.packed)


def arp_sender(payload: bytes) -> IPv4Address | None:
    """The sender protocol address of an Ethernet/IPv4 ARP packet, or None."""
    if len(payload) < _ARP.size:
        return None
    htype, ptype, hlen, plen, oper, _sha, spa, _tha, _tpa = _ARP.unpack_from(payload)
    if (htype, ptype, hlen, plen) != (1, ETH_P_IP, 6, 4) or oper not in (ARP_REQUEST, ARP_REPLY):
        return None
    address = IPv4Address(spa)
    return None if address == IPv4Address(0) else address


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int(word) for word in struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp_echo(ident: int, sequence: int, payload: bytes = b"imapha-dhcp-probe") -> bytes:
    """An ICMP echo request (RFC 792) with its checksum."""
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, sequence)
    check = _checksum(header + payload)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, check, ident, sequence) + payload


def echo_reply_from(datagram: bytes, ident: int) -> IPv4Address | None:
    """The source of an IPv4 datagram that is an echo reply to ``ident``, or None."""
    if len(datagram) < 20:
        return None
    ihl = (datagram[0] & 0x0F) * 4
    if datagram[0] >> 4 != 4 or datagram[9] != socket.IPPROTO_ICMP or len(datagram) < ihl + 8:
        return None
    kind, code, _check, got_ident, _seq = struct.unpack_from("!BBHHH", datagram, ihl)
    if kind != ICMP_ECHO_REPLY or code != 0 or got_ident != ident:
        return None
    return IPv4Address(datagram[12:16])


def hardware_address(interface: str) -> bytes:
    """The interface's MAC address (``SIOCGIFHWADDR``, in this process's namespace)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("256s", interface.encode()[:15])
        answer = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, request)
    return bytes(answer[18:24])


@implementer(IReadDescriptor)
class _Reader:
    def __init__(self, sock: socket.socket, on_read: Callable[[], None], name: str) -> None:
        self.sock = sock
        self.on_read = on_read
        self.name = name

    def fileno(self) -> int:
        return int(self.sock.fileno())

    def doRead(self) -> None:
        self.on_read()

    def logPrefix(self) -> str:
        return self.name

    def connectionLost(self, reason: Any) -> None:
        log.warning("%s socket lost: %s", self.name, reason)


@dataclass
class _Pending:
    interface: str | None  # None: ICMP (routed)
    waiters: list[Done] = field(default_factory=list)
    timer: Any = None


class Prober:
    """Runs probes; ``probe(address, interface, on_link, done)`` calls ``done(in_use)`` once."""

    def __init__(self, reactor: Any, interfaces: Sequence[str],
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.reactor = reactor
        self.interfaces = tuple(interfaces)
        self.timeout = timeout
        self.ident = os.getpid() & 0xFFFF
        self._sequence = 0
        self._pending: dict[IPv4Address, _Pending] = {}
        self._arp: socket.socket | None = None
        self._icmp: socket.socket | None = None
        self._readers: list[_Reader] = []
        self.answered = 0
        self.silent = 0

    def start(self) -> None:
        arp = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ARP))
        arp.setblocking(False)
        icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        icmp.setblocking(False)
        self._arp, self._icmp = arp, icmp
        self._readers = [_Reader(arp, self._read_arp, "dhcp-probe-arp"),
                         _Reader(icmp, self._read_icmp, "dhcp-probe-icmp")]
        for reader in self._readers:
            self.reactor.addReader(reader)

    def stop(self) -> None:
        for reader in self._readers:
            self.reactor.removeReader(reader)
            reader.sock.close()
        self._readers = []
        self._arp = self._icmp = None
        for pending in self._pending.values():
            if pending.timer is not None and pending.timer.active():
                pending.timer.cancel()
        self._pending.clear()

    def probe(self, address: IPv4Address, interface: str, on_link: bool, done: Done) -> None:
        pending = self._pending.get(address)
        if pending is not None:  # already being probed: wait for the same answer
            pending.waiters.append(done)
            return
        pending = _Pending(interface if on_link else None, [done])
        try:
            if on_link:
                assert self._arp is not None
                frame = arp_probe(hardware_address(interface), address)
                self._arp.sendto(frame, (interface, ETH_P_ARP, 0, 0, BROADCAST_MAC))
            else:
                assert self._icmp is not None
                self._sequence = (self._sequence + 1) & 0xFFFF
                self._icmp.sendto(icmp_echo(self.ident, self._sequence), (str(address), 0))
        except OSError as exc:
            # a probe that cannot be sent proves nothing: offer (as without probing)
            log.warning("dhcp probe of %s via %s failed: %s", address, interface, exc)
            done(False)
            return
        pending.timer = self.reactor.callLater(self.timeout, self._finish, address, False)
        self._pending[address] = pending

    def _finish(self, address: IPv4Address, in_use: bool) -> None:
        pending = self._pending.pop(address, None)
        if pending is None:
            return
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        if in_use:
            self.answered += 1
        else:
            self.silent += 1
        for done in pending.waiters:
            done(in_use)

    def _read_arp(self) -> None:
        sock = self._arp
        for _ in range(64):
            if sock is None:
                return
            try:
                payload, source = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("dhcp probe ARP receive: %s", exc)
                return
            sender = arp_sender(payload)
            pending = self._pending.get(sender) if sender is not None else None
            if pending is not None and pending.interface == source[0]:
                assert sender is not None
                self._finish(sender, True)

    def _read_icmp(self) -> None:
        sock = self._icmp
        for _ in range(64):
            if sock is None:
                return
            try:
                datagram = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("dhcp probe ICMP receive: %s", exc)
                return
            sender = echo_reply_from(datagram, self.ident)
            pending = self._pending.get(sender) if sender is not None else None
            if pending is not None and pending.interface is None:
                assert sender is not None
                self._finish(sender, True)
