"""DHCPv4 options (RFC 2132, RFC 3046, RFC 6842): typed values and their wire form.

Theory of operation
-------------------
An option on the wire is a TLV: code (1 octet), length (1 octet), value. Codes 0
(Pad) and 255 (End) have no length (RFC 2132 §3.1, §3.2); option 52 (Overload,
§9.3) is the codec's business and never appears in an :class:`Options` value.

Each code the server reads or writes has a :class:`Kind` in :data:`KINDS` that
fixes its Python type and its length rule: an address (4 octets), a list of
addresses (a non-zero multiple of 4), an unsigned 8/16/32-bit or signed 32-bit
integer, a string, a list of octets (the parameter request list, §9.8), raw
octets with a minimum length (client identifier, §9.14: at least 2), or the
relay agent information option of RFC 3046 with its sub-options. A code not in
the table is kept as raw ``bytes``, so nothing a client sends is lost. A value
whose length breaks its kind's rule raises :class:`DecodeError`, the one
exception decoding ever raises; its :class:`DecodeReason` is the metric label.

Strings are decoded as UTF-8 with ``surrogateescape``, so any octets round-trip
exactly (clients do send non-ASCII host names and trailing NULs).

:class:`Options` is an ordered, immutable collection with at most one value per
code; the codec concatenates repeated instances of a code as RFC 3396 says and
splits values longer than 255 octets the same way.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address

PAD = 0
END = 255
OVERLOAD = 52


class DecodeReason(enum.Enum):
    """Why a received packet could not be decoded; the value is the metric label."""

    TOO_SHORT = "too_short"
    BAD_COOKIE = "bad_cookie"
    TRUNCATED_OPTION = "truncated_option"
    BAD_OPTION_LENGTH = "bad_option_length"
    BAD_OVERLOAD = "bad_overload"
    BAD_RELAY_AGENT_INFO = "bad_relay_agent_info"


class DecodeError(Exception):
    """Malformed DHCP input: the only exception :func:`dhcp.packet.decode` raises."""

    def __init__(self, reason: DecodeReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class EncodeError(ValueError):
    """A packet or option value the wire cannot carry (a bug on our side)."""


class Opt(enum.IntEnum):
    """Option codes the server knows by name (RFC 2132 unless noted)."""

    SUBNET_MASK = 1
    TIME_OFFSET = 2
    ROUTERS = 3
    TIME_SERVERS = 4
    NAME_SERVERS = 5
    DNS_SERVERS = 6
    LOG_SERVERS = 7
    LPR_SERVERS = 9
    HOSTNAME = 12
    BOOT_FILE_SIZE = 13
    DOMAIN_NAME = 15
    ROOT_PATH = 17
    IP_FORWARDING = 19
    MAX_REASSEMBLY = 22
    DEFAULT_TTL = 23
    MTU_AGING_TIMEOUT = 24
    INTERFACE_MTU = 26
    BROADCAST_ADDRESS = 28
    ARP_CACHE_TIMEOUT = 35
    TCP_TTL = 37
    TCP_KEEPALIVE_INTERVAL = 38
    NIS_DOMAIN = 40
    NIS_SERVERS = 41
    NTP_SERVERS = 42
    VENDOR_SPECIFIC = 43
    NETBIOS_NAME_SERVERS = 44
    NETBIOS_NODE_TYPE = 46
    NETBIOS_SCOPE = 47
    REQUESTED_IP = 50
    LEASE_TIME = 51
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_REQUEST_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    VENDOR_CLASS_ID = 60
    CLIENT_ID = 61
    TFTP_SERVER_NAME = 66
    BOOTFILE_NAME = 67
    SMTP_SERVERS = 69
    RELAY_AGENT_INFO = 82  # RFC 3046
    DOMAIN_SEARCH = 119  # RFC 3397, kept raw (DNS wire format)
    CLASSLESS_ROUTES = 121  # RFC 3442, kept raw


class MessageType(enum.IntEnum):
    """Option 53 values (RFC 2132 §9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Kind(enum.Enum):
    """The wire shape of an option's value."""

    IP = "ip"
    IP_LIST = "ip_list"
    U8 = "u8"
    U16 = "u16"
    U32 = "u32"
    S32 = "s32"
    STR = "str"
    U8_LIST = "u8_list"
    CLIENT_ID = "client_id"
    RELAY_AGENT = "relay_agent"
    BYTES = "bytes"


@dataclass(frozen=True, slots=True)
class RelayAgentInfo:
    """Option 82 (RFC 3046 §2.0): sub-options in order, each (code, value)."""

    suboptions: tuple[tuple[int, bytes], ...]

    def get(self, code: int) -> bytes | None:
        for sub, value in self.suboptions:
            if sub == code:
                return value
        return None

    @property
    def circuit_id(self) -> bytes | None:
        return self.get(1)

    @property
    def remote_id(self) -> bytes | None:
        return self.get(2)


OptionValue = (
    int | str | bytes | IPv4Address | tuple[IPv4Address, ...] | tuple[int, ...] | RelayAgentInfo
)

KINDS: dict[int, Kind] = {
    Opt.SUBNET_MASK: Kind.IP,
    Opt.TIME_OFFSET: Kind.S32,
    Opt.ROUTERS: Kind.IP_LIST,
    Opt.TIME_SERVERS: Kind.IP_LIST,
    Opt.NAME_SERVERS: Kind.IP_LIST,
    Opt.DNS_SERVERS: Kind.IP_LIST,
    Opt.LOG_SERVERS: Kind.IP_LIST,
    Opt.LPR_SERVERS: Kind.IP_LIST,
    Opt.HOSTNAME: Kind.STR,
    Opt.BOOT_FILE_SIZE: Kind.U16,
    Opt.DOMAIN_NAME: Kind.STR,
    Opt.ROOT_PATH: Kind.STR,
    Opt.IP_FORWARDING: Kind.U8,
    Opt.MAX_REASSEMBLY: Kind.U16,
    Opt.DEFAULT_TTL: Kind.U8,
    Opt.MTU_AGING_TIMEOUT: Kind.U32,
    Opt.INTERFACE_MTU: Kind.U16,
    Opt.BROADCAST_ADDRESS: Kind.IP,
    Opt.ARP_CACHE_TIMEOUT: Kind.U32,
    Opt.TCP_TTL: Kind.U8,
    Opt.TCP_KEEPALIVE_INTERVAL: Kind.U32,
    Opt.NIS_DOMAIN: Kind.STR,
    Opt.NIS_SERVERS: Kind.IP_LIST,
    Opt.NTP_SERVERS: Kind.IP_LIST,
    Opt.NETBIOS_NAME_SERVERS: Kind.IP_LIST,
    Opt.NETBIOS_NODE_TYPE: Kind.U8,
    Opt.NETBIOS_SCOPE: Kind.STR,
    Opt.REQUESTED_IP: Kind.IP,
    Opt.LEASE_TIME: Kind.U32,
    Opt.MESSAGE_TYPE: Kind.U8,
    Opt.SERVER_ID: Kind.IP,
    Opt.PARAMETER_REQUEST_LIST: Kind.U8_LIST,
    Opt.MESSAGE: Kind.STR,
    Opt.MAX_MESSAGE_SIZE: Kind.U16,
    Opt.RENEWAL_TIME: Kind.U32,
    Opt.REBINDING_TIME: Kind.U32,
    Opt.VENDOR_CLASS_ID: Kind.STR,
    Opt.CLIENT_ID: Kind.CLIENT_ID,
    Opt.TFTP_SERVER_NAME: Kind.STR,
    Opt.BOOTFILE_NAME: Kind.STR,
    Opt.SMTP_SERVERS: Kind.IP_LIST,
    Opt.RELAY_AGENT_INFO: Kind.RELAY_AGENT,
}

_FIXED = {Kind.IP: 4, Kind.U8: 1, Kind.U16: 2, Kind.U32: 4, Kind.S32: 4}
_S32 = struct.Struct("!i")
_MESSAGE_TYPES = {m.value: m for m in MessageType}


def kind_of(code: int) -> Kind:
    return KINDS.get(code, Kind.BYTES)


def _bad_length(code: int, raw: bytes, rule: str) -> DecodeError:
    return DecodeError(
        DecodeReason.BAD_OPTION_LENGTH, f"option {code} has length {len(raw)}, {rule}"
    )


def decode_value(code: int, raw: bytes) -> OptionValue:
    """The typed value of option ``code`` from its (concatenated) octets."""
    kind = KINDS.get(code, Kind.BYTES)
    if kind is Kind.BYTES:
        return raw
    size = _FIXED.get(kind)
    if size is not None:
        if len(raw) != size:
            raise _bad_length(code, raw, f"expected {size}")
        if kind is Kind.IP:
            return IPv4Address(raw)
        if kind is Kind.S32:
            return int(_S32.unpack(raw)[0])
        number = int.from_bytes(raw, "big")
        if code == Opt.MESSAGE_TYPE:
            return _MESSAGE_TYPES.get(number, number)
        return number
    if kind is Kind.IP_LIST:
        if not raw or len(raw) % 4:
            raise _bad_length(code, raw, "expected a non-zero multiple of 4")
        return tuple(IPv4Address(raw[i : i + 4]) for i in range(0, len(raw), 4))
    if kind is Kind.STR:
        if not raw:
            raise _bad_length(code, raw, "expected at least 1")
        return raw.decode("utf-8", "surrogateescape")
    if kind is Kind.U8_LIST:
        if not raw:
            raise _bad_length(code, raw, "expected at least 1")
        return tuple(raw)
    if kind is Kind.CLIENT_ID:
        if len(raw) < 2:  # RFC 2132 §9.14
            raise _bad_length(code, raw, "expected at least 2")
        return raw
    return _decode_relay_agent(raw)


def _decode_relay_agent(raw: bytes) -> RelayAgentInfo:
    # RFC 3046 §2.0: a sequence of SubOpt/Len/Value, no pad, no end.
    subs: list[tuple[int, bytes]] = []
    i = 0
    while i < len(raw):
        if i + 2 > len(raw) or i + 2 + raw[i + 1] > len(raw):
            raise DecodeError(
                DecodeReason.BAD_RELAY_AGENT_INFO, f"sub-option at offset {i} is truncated"
            )
        n = raw[i + 1]
        subs.append((raw[i], raw[i + 2 : i + 2 + n]))
        i += 2 + n
    if not subs:
        raise DecodeError(DecodeReason.BAD_RELAY_AGENT_INFO, "no sub-options")
    return RelayAgentInfo(tuple(subs))


def encode_value(code: int, value: OptionValue) -> bytes:
    """The octets of option ``code`` (not yet split into 255-octet pieces)."""
    kind = KINDS.get(code, Kind.BYTES)
    try:
        if kind in (Kind.BYTES, Kind.CLIENT_ID):
            if not isinstance(value, bytes):
                raise EncodeError(f"option {code} needs bytes, got {type(value).__name__}")
            if kind is Kind.CLIENT_ID and len(value) < 2:
                raise EncodeError("option 61 needs at least 2 octets")
            return value
        if kind is Kind.IP:
            if not isinstance(value, IPv4Address):
                raise EncodeError(f"option {code} needs an IPv4Address")
            return value.packed
        if kind is Kind.IP_LIST:
            if not isinstance(value, tuple) or not value:
                raise EncodeError(f"option {code} needs a non-empty tuple of IPv4Address")
            out = b""
            for item in value:
                if not isinstance(item, IPv4Address):
                    raise EncodeError(f"option {code} needs a tuple of IPv4Address")
                out += item.packed
            return out
        if kind in (Kind.U8, Kind.U16, Kind.U32):
            if not isinstance(value, int):
                raise EncodeError(f"option {code} needs an int")
            return int(value).to_bytes(_FIXED[kind], "big")
        if kind is Kind.S32:
            if not isinstance(value, int):
                raise EncodeError(f"option {code} needs an int")
            return _S32.pack(value)
        if kind is Kind.STR:
            if not isinstance(value, str) or not value:
                raise EncodeError(f"option {code} needs a non-empty str")
            return value.encode("utf-8", "surrogateescape")
        if kind is Kind.U8_LIST:
            if not isinstance(value, tuple) or not value:
                raise EncodeError(f"option {code} needs a non-empty tuple of int")
            return bytes(value)  # type: ignore[arg-type]
        if not isinstance(value, RelayAgentInfo) or not value.suboptions:
            raise EncodeError("option 82 needs a RelayAgentInfo with sub-options")
        out = b""
        for sub, data in value.suboptions:
            out += bytes((sub, len(data))) + data
        return out
    except (OverflowError, UnicodeEncodeError, struct.error, TypeError) as exc:
        raise EncodeError(f"option {code}: {exc}") from exc
    except ValueError as exc:
        if isinstance(exc, EncodeError):
            raise
        raise EncodeError(f"option {code}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Options:
    """An ordered set of options, at most one value per code."""

    items: tuple[tuple[int, OptionValue], ...] = ()

    def __post_init__(self) -> None:
        seen: set[int] = set()
        for code, _ in self.items:
            if not 0 < code < END or code == OVERLOAD:
                raise ValueError(f"option code {code} is reserved to the codec")
            if code in seen:
                raise ValueError(f"option {code} given twice")
            seen.add(code)

    @classmethod
    def of(cls, values: Mapping[int, OptionValue] | Iterable[tuple[int, OptionValue]]) -> Options:
        pairs = values.items() if isinstance(values, Mapping) else values
        return cls(tuple((int(code), value) for code, value in pairs))

    def __iter__(self) -> Iterator[tuple[int, OptionValue]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, code: object) -> bool:
        return any(c == code for c, _ in self.items)

    def get(self, code: int) -> OptionValue | None:
        for c, value in self.items:
            if c == code:
                return value
        return None

    def codes(self) -> tuple[int, ...]:
        return tuple(c for c, _ in self.items)

    # Typed views of the options the server reads.
    def _ip(self, code: int) -> IPv4Address | None:
        value = self.get(code)
        return value if isinstance(value, IPv4Address) else None

    def _int(self, code: int) -> int | None:
        value = self.get(code)
        return value if isinstance(value, int) else None

    def _str(self, code: int) -> str | None:
        value = self.get(code)
        return value if isinstance(value, str) else None

    @property
    def message_type(self) -> MessageType | int | None:
        return self._int(Opt.MESSAGE_TYPE)

    @property
    def requested_ip(self) -> IPv4Address | None:
        return self._ip(Opt.REQUESTED_IP)

    @property
    def server_id(self) -> IPv4Address | None:
        return self._ip(Opt.SERVER_ID)

    @property
    def lease_time(self) -> int | None:
        return self._int(Opt.LEASE_TIME)

    @property
    def max_message_size(self) -> int | None:
        return self._int(Opt.MAX_MESSAGE_SIZE)

    @property
    def hostname(self) -> str | None:
        return self._str(Opt.HOSTNAME)

    @property
    def client_id(self) -> bytes | None:
        value = self.get(Opt.CLIENT_ID)
        return value if isinstance(value, bytes) else None

    @property
    def parameter_request_list(self) -> tuple[int, ...] | None:
        value = self.get(Opt.PARAMETER_REQUEST_LIST)
        if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
            return value  # type: ignore[return-value]
        return None

    @property
    def relay_agent_info(self) -> RelayAgentInfo | None:
        value = self.get(Opt.RELAY_AGENT_INFO)
        return value if isinstance(value, RelayAgentInfo) else None
