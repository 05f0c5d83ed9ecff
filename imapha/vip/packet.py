"""VRRPv3 advertisement codec (RFC 5798 §5, RFC 9568 §5) and receive checks (§7.1).

Theory of operation
-------------------
Pure bytes in, frozen dataclasses out; no sockets. An :class:`Advertisement` is
the VRRP message only (what follows the IPv4 header, or the IPv6 payload):

    0                   1                   2                   3
    |Version| Type  |   VRID        |   Priority    | Count IPvX Addr |
    |(rsvd) |     Max Adver Int     |          Checksum               |
    |                     IPvX Address(es)                            |

Version 3, type 1 (ADVERTISEMENT), the interval in centiseconds (12 bits).
The checksum (§5.2.8) covers the whole message plus a pseudo-header: for IPv6
the one of RFC 8200 §8.1 (next header 112), for IPv4 the RFC 768 one (source,
destination, zero, protocol 112, length). keepalived sends it that way; some
routers leave the IPv4 pseudo-header out (the VRRPv2 rule), so :func:`decode`
accepts either, and :func:`encode` always includes it.

Validation is split by who knows what. :func:`decode` checks what the bytes
alone tell (length, version, type, count, checksum, §7.1 bullets 2-4 and the
RFC 9568 errata 8299/8300); :func:`check_ttl` the hop limit the transport saw
(bullet 1); :func:`check_group` what needs the virtual router's configuration
(VRID and address list: bullets 5-6). Every failure is a :class:`DecodeError`
whose :class:`DropReason` is the label of the drop counter.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

VRRP_PROTOCOL = 112
VRRP_VERSION = 3
TYPE_ADVERTISEMENT = 1
VRRP_TTL = 255
MCAST_IPV4 = ipaddress.IPv4Address("224.0.0.18")
MCAST_IPV6 = ipaddress.IPv6Address("ff02::12")
HEADER_LEN = 8
MAX_INTERVAL_CS = 0x0FFF
PRIORITY_RESIGN = 0
PRIORITY_OWNER = 255

_HEADER = struct.Struct("!BBBBHH")


class DropReason(enum.Enum):
    """Why a received packet was discarded; the value is the metric label."""

    TOO_SHORT = "too_short"
    BAD_VERSION = "bad_version"
    BAD_TYPE = "bad_type"
    BAD_CHECKSUM = "bad_checksum"
    COUNT_MISMATCH = "count_mismatch"
    ZERO_COUNT = "zero_count"
    NOT_LINK_LOCAL = "not_link_local"
    BAD_TTL = "bad_ttl"
    OTHER_VRID = "other_vrid"
    ADDRESS_MISMATCH = "address_mismatch"
    OWN_PACKET = "own_packet"
    WRONG_FAMILY = "wrong_family"
    BAD_INTERVAL = "bad_interval"


class DecodeError(ValueError):
    """A received packet that must be dropped (RFC 5798 §7.1); `reason` labels it."""

    def __init__(self, reason: DropReason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One VRRPv3 ADVERTISEMENT; `interval_cs` is Max Adver Int in centiseconds."""

    vrid: int
    priority: int
    interval_cs: int
    addresses: tuple[IPAddress, ...]

    def __post_init__(self) -> None:
        if not 1 <= self.vrid <= 255:
            raise ValueError(f"VRID {self.vrid} outside 1..255 (RFC 5798 §5.2.3)")
        if not 0 <= self.priority <= 255:
            raise ValueError(f"priority {self.priority} outside 0..255")
        if not 1 <= self.interval_cs <= MAX_INTERVAL_CS:
            raise ValueError(f"interval {self.interval_cs} cs outside 1..4095 (§5.2.7)")
        if not 1 <= len(self.addresses) <= 255:
            raise ValueError("an advertisement carries 1..255 addresses (§5.2.5)")
        if len({a.version for a in self.addresses}) != 1:
            raise ValueError("addresses of one advertisement are all IPv4 or all IPv6")

    @property
    def family(self) -> int:
        """4 or 6."""
        return self.addresses[0].version


def _ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def pseudo_header(src: IPAddress, dst: IPAddress, length: int) -> bytes:
    """RFC 768 (IPv4) or RFC 8200 §8.1 (IPv6) pseudo-header for protocol 112."""
    if src.version != dst.version:
        raise ValueError("source and destination of different families")
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, VRRP_PROTOCOL, length)
    return src.packed + dst.packed + struct.pack("!I3xB", length, VRRP_PROTOCOL)


def checksum(message: bytes, pseudo: bytes = b"") -> int:
    """Internet checksum of pseudo + message (checksum field already zero)."""
    return (~_ones_complement_sum(pseudo + message)) & 0xFFFF


def encode(adv: Advertisement, src: IPAddress, dst: IPAddress) -> bytes:
    """The VRRP message for `adv`, checksummed with the pseudo-header of src -> dst."""
    body = b"".join(a.packed for a in adv.addresses)
    header = _HEADER.pack(
        (VRRP_VERSION << 4) | TYPE_ADVERTISEMENT,
        adv.vrid,
        adv.priority,
        len(adv.addresses),
        adv.interval_cs & MAX_INTERVAL_CS,
        0,
    )
    message = header + body
    csum = checksum(message, pseudo_header(src, dst, len(message)))
    return message[:6] + struct.pack("!H", csum) + message[8:]


def decode(data: bytes, src: IPAddress, dst: IPAddress) -> Advertisement:
    """Parse a received VRRP message (no IP header) sent src -> dst.

    Raises DecodeError for every RFC 5798 §7.1 check the bytes alone can fail.
    """
    if len(data) < HEADER_LEN:
        raise DecodeError(DropReason.TOO_SHORT, f"{len(data)} bytes")
    vt, vrid, priority, count, rsvd_int, _csum = _HEADER.unpack_from(data)
    if vt >> 4 != VRRP_VERSION:
        raise DecodeError(DropReason.BAD_VERSION, f"version {vt >> 4}")
    if vt & 0x0F != TYPE_ADVERTISEMENT:
        raise DecodeError(DropReason.BAD_TYPE, f"type {vt & 0x0F}")  # §5.2.2
    if count == 0:
        raise DecodeError(DropReason.ZERO_COUNT)  # §5.2.5, RFC 9568 erratum 8299
    if src.version != dst.version:
        raise DecodeError(DropReason.WRONG_FAMILY)
    alen = 4 if src.version == 4 else 16
    need = HEADER_LEN + count * alen
    if len(data) < need:
        raise DecodeError(DropReason.TOO_SHORT, f"{len(data)} bytes, count {count}")
    if len(data) > need:
        # Trailing bytes: the count does not describe the message (§7.1 "complete").
        raise DecodeError(DropReason.COUNT_MISMATCH, f"{len(data)} bytes, count {count}")
    if _ones_complement_sum(pseudo_header(src, dst, len(data)) + data) != 0xFFFF and (
        src.version == 6 or _ones_complement_sum(data) != 0xFFFF
    ):
        # IPv4 without the pseudo-header is tolerated (REFERENCE.md); IPv6 never.
        raise DecodeError(DropReason.BAD_CHECKSUM)
    interval = rsvd_int & MAX_INTERVAL_CS
    if interval == 0:
        raise DecodeError(DropReason.BAD_INTERVAL, "zero advertisement interval")
    raw = data[HEADER_LEN:need]
    addrs: tuple[IPAddress, ...]
    if alen == 4:
        addrs = tuple(ipaddress.IPv4Address(raw[i : i + 4]) for i in range(0, len(raw), 4))
    else:
        addrs = tuple(ipaddress.IPv6Address(raw[i : i + 16]) for i in range(0, len(raw), 16))
        if not addrs[0].is_link_local:
            raise DecodeError(DropReason.NOT_LINK_LOCAL, str(addrs[0]))  # erratum 8300
    return Advertisement(vrid=vrid, priority=priority, interval_cs=interval, addresses=addrs)


def check_ttl(ttl: int) -> None:
    """§7.1: the IPv4 TTL or IPv6 hop limit must be 255 (the packet was not routed)."""
    if ttl != VRRP_TTL:
        raise DecodeError(DropReason.BAD_TTL, f"ttl {ttl}")


def check_group(adv: Advertisement, vrid: int, addresses: Sequence[IPAddress]) -> None:
    """§7.1 checks that need the virtual router's configuration.

    The VRID must be ours. RFC 5798 §7.1: an address list that differs from the
    configured one is logged, and the packet dropped unless it comes from the
    address owner (priority 255), whose word wins.
    """
    if adv.vrid != vrid:
        raise DecodeError(DropReason.OTHER_VRID, f"vrid {adv.vrid}")
    if adv.family != addresses[0].version:
        raise DecodeError(DropReason.WRONG_FAMILY)
    if set(adv.addresses) != set(addresses) and adv.priority != PRIORITY_OWNER:
        got = ",".join(map(str, adv.addresses))
        raise DecodeError(DropReason.ADDRESS_MISMATCH, f"advertised {got}")
