"""The DHCPv4 message: BOOTP header, magic cookie and option areas (RFC 2131 §2, §4.1).

Theory of operation
-------------------
The fixed part is 236 octets (RFC 2131 figure 1)::

    op htype hlen hops | xid | secs flags | ciaddr | yiaddr | siaddr | giaddr
    | chaddr (16) | sname (64) | file (128) | 99.130.83.99 cookie | options...

:func:`decode` reads options from the options area, then, when option 52
(Overload, RFC 2132 §9.3) says so, from ``file`` and then ``sname``, in that
order (RFC 2131 §4.1); an overloaded field comes out as ``b""``. Repeated
instances of one code are concatenated (RFC 3396 §5) before the value is typed
(:mod:`dhcp.options`). Pad octets are skipped; End, or the end of the area,
ends an area. Every malformed input raises :class:`DecodeError`.

:func:`encode` writes options in the order of :class:`Options`, splitting a
value longer than 255 octets into consecutive instances. If they do not fit in
``max_size`` octets (RFC 2132 §9.10; 548 = 576 minus IP and UDP headers, the
size every client must accept, is the default), the rest overflow into
``file`` and then ``sname`` when those are empty, and option 52 is added. The
message is padded to the 300 octets BOOTP relays and old clients expect
(RFC 1542 §2.1).

A :class:`Packet` normalises ``chaddr`` to its 16-octet field and strips the
NUL padding of ``sname`` and ``file``, so ``decode(encode(p)) == p`` holds for
every packet that encodes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address

from dhcp.options import (
    END,
    OVERLOAD,
    PAD,
    DecodeError,
    DecodeReason,
    EncodeError,
    MessageType,
    Options,
    decode_value,
    encode_value,
)

BOOTREQUEST = 1
BOOTREPLY = 2
SERVER_PORT = 67
CLIENT_PORT = 68
FLAG_BROADCAST = 0x8000
MAGIC_COOKIE = bytes((99, 130, 83, 99))
HEADER_LEN = 236
OPTIONS_OFFSET = HEADER_LEN + 4
MIN_MESSAGE = 300  # RFC 1542 §2.1
DEFAULT_MAX_MESSAGE = 548  # 576 - 20 (IP) - 8 (UDP), RFC 2131 §2
HTYPE_ETHERNET = 1
ZERO = IPv4Address(0)

_HEADER = struct.Struct("!BBBBIHHIIII16s64s128s")
_SNAME = slice(44, 108)
_FILE = slice(108, 236)


@dataclass(frozen=True, slots=True)
class Packet:
    """One DHCP message; field names are those of RFC 2131 §2."""

    op: int
    xid: int
    chaddr: bytes
    options: Options = field(default_factory=Options)
    htype: int = HTYPE_ETHERNET
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = ZERO
    yiaddr: IPv4Address = ZERO
    siaddr: IPv4Address = ZERO
    giaddr: IPv4Address = ZERO
    sname: bytes = b""
    file: bytes = b""

    def __post_init__(self) -> None:
        if len(self.chaddr) > 16 or len(self.sname) > 64 or len(self.file) > 128:
            raise ValueError("chaddr, sname or file longer than its field")
        if len(self.chaddr) < 16:
            object.__setattr__(self, "chaddr", self.chaddr.ljust(16, b"\0"))
        if self.sname.endswith(b"\0"):
            object.__setattr__(self, "sname", self.sname.rstrip(b"\0"))
        if self.file.endswith(b"\0"):
            object.__setattr__(self, "file", self.file.rstrip(b"\0"))

    @property
    def hwaddr(self) -> bytes:
        """The client hardware address: the first ``hlen`` octets of chaddr."""
        return self.chaddr[: min(self.hlen, 16)]

    @property
    def broadcast(self) -> bool:
        return bool(self.flags & FLAG_BROADCAST)

    @property
    def message_type(self) -> MessageType | int | None:
        return self.options.message_type

    def with_options(self, options: Options) -> Packet:
        return replace(self, options=options)


def _read_area(
    data: bytes, start: int, end: int, found: dict[int, bytes], where: str
) -> int | None:
    """Collect the options of one area into ``found``; return option 52's value."""
    overload: int | None = None
    i = start
    while i < end:
        code = data[i]
        if code == PAD:
            i += 1
            continue
        if code == END:
            break
        if i + 1 >= end:
            raise DecodeError(DecodeReason.TRUNCATED_OPTION, f"option {code} in {where}")
        n = data[i + 1]
        if i + 2 + n > end:
            raise DecodeError(DecodeReason.TRUNCATED_OPTION, f"option {code} in {where}")
        value = data[i + 2 : i + 2 + n]
        if code == OVERLOAD:
            if where != "options" or n != 1 or value[0] not in (1, 2, 3) or overload:
                raise DecodeError(DecodeReason.BAD_OVERLOAD, f"option 52 in {where}")
            overload = value[0]
        else:
            previous = found.get(code)
            found[code] = value if previous is None else previous + value
        i += 2 + n
    return overload


def decode(data: bytes) -> Packet:
    """Parse one DHCP message; raise :class:`DecodeError` if it is malformed."""
    if len(data) < HEADER_LEN:
        raise DecodeError(DecodeReason.TOO_SHORT, f"{len(data)} octets")
    if data[HEADER_LEN:OPTIONS_OFFSET] != MAGIC_COOKIE:
        raise DecodeError(DecodeReason.BAD_COOKIE, "no DHCP magic cookie")
    (op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi, chaddr, sname, file) = (
        _HEADER.unpack_from(data)
    )
    found: dict[int, bytes] = {}
    overload = _read_area(data, OPTIONS_OFFSET, len(data), found, "options")
    if overload:
        if overload & 1:
            _read_area(data, _FILE.start, _FILE.stop, found, "file")
            file = b""
        if overload & 2:
            _read_area(data, _SNAME.start, _SNAME.stop, found, "sname")
            sname = b""
    items = tuple((code, decode_value(code, raw)) for code, raw in found.items())
    return Packet(
        op=op,
        htype=htype,
        hlen=hlen,
        hops=hops,
        xid=xid,
        secs=secs,
        flags=flags,
        ciaddr=IPv4Address(ci) if ci else ZERO,
        yiaddr=IPv4Address(yi) if yi else ZERO,
        siaddr=IPv4Address(si) if si else ZERO,
        giaddr=IPv4Address(gi) if gi else ZERO,
        chaddr=chaddr,
        sname=sname.rstrip(b"\0"),
        file=file.rstrip(b"\0"),
        options=Options.trusted(items),
    )


def _tlvs(options: Options) -> list[bytes]:
    """Each option as TLVs, a value over 255 octets split in consecutive pieces (RFC 3396)."""
    out: list[bytes] = []
    for code, value in options.items:
        raw = encode_value(code, value)
        if len(raw) <= 255:
            out.append(bytes((code, len(raw))) + raw)
        else:
            for i in range(0, len(raw), 255):
                chunk = raw[i : i + 255]
                out.append(bytes((code, len(chunk))) + chunk)
    return out


def encode(packet: Packet, max_size: int = DEFAULT_MAX_MESSAGE) -> bytes:
    """The wire form of ``packet`` in at most ``max_size`` octets (overloading if needed)."""
    if max_size < OPTIONS_OFFSET + 4:
        raise EncodeError(f"max_size {max_size} leaves no room for options")
    tlvs = _tlvs(packet.options)
    room = max_size - OPTIONS_OFFSET - 1  # the End option
    total = sum(map(len, tlvs))
    sname, file = packet.sname, packet.file
    if total <= room:
        body = b"".join(tlvs)
    else:
        # RFC 2131 §4.1: overflow into 'file', then 'sname'; option 52 first.
        areas = [room - 3]
        if not file:
            areas.append(127)
        if not sname:
            areas.append(63)
        filled: list[list[bytes]] = [[] for _ in areas]
        area = 0
        for tlv in tlvs:
            while area < len(areas) and len(tlv) > areas[area]:
                area += 1
            if area == len(areas):
                raise EncodeError(f"options need {total} octets, more than max_size allows")
            filled[area].append(tlv)
            areas[area] -= len(tlv)
        body_parts = filled[0]
        flag = 0
        extra = filled[1:]
        if not file:
            file_opts = extra.pop(0)
            if file_opts:
                flag |= 1
                file = b"".join(file_opts) + bytes((END,))
        if not sname:
            sname_opts = extra.pop(0)
            if sname_opts:
                flag |= 2
                sname = b"".join(sname_opts) + bytes((END,))
        body = bytes((OVERLOAD, 1, flag)) + b"".join(body_parts)
    header = _HEADER.pack(
        packet.op,
        packet.htype,
        packet.hlen,
        packet.hops,
        packet.xid,
        packet.secs,
        packet.flags,
        int(packet.ciaddr),
        int(packet.yiaddr),
        int(packet.siaddr),
        int(packet.giaddr),
        packet.chaddr,
        sname,
        file,
    )
    out = header + MAGIC_COOKIE + body + bytes((END,))
    if len(out) < MIN_MESSAGE:
        out += bytes(MIN_MESSAGE - len(out))
    return out
