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
from collections.abc import Callable, Iterable, Iterator, Mapping
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

_S32 = struct.Struct("!i")
_MESSAGE_TYPES = {m.value: m for m in MessageType}
# Plain int keys: hashing an IntEnum member is several times slower.
_KIND_OF: dict[int, Kind] = {int(code): kind for code, kind in KINDS.items()}


def kind_of(code: int) -> Kind:
    return _KIND_OF.get(code, Kind.BYTES)


def _bad_length(code: int, raw: bytes, rule: str) -> DecodeError:
    return DecodeError(
        DecodeReason.BAD_OPTION_LENGTH, f"option {code} has length {len(raw)}, {rule}"
    )


def _fixed(size: int, code: int, raw: bytes) -> None:
    if len(raw) != size:
        raise _bad_length(code, raw, f"expected {size}")


def _nonempty(code: int, raw: bytes) -> None:
    if not raw:
        raise _bad_length(code, raw, "expected at least 1")


def _dec_ip(code: int, raw: bytes) -> OptionValue:
    _fixed(4, code, raw)
    return IPv4Address(int.from_bytes(raw, "big"))


def _dec_ip_list(code: int, raw: bytes) -> OptionValue:
    if not raw or len(raw) % 4:
        raise _bad_length(code, raw, "expected a non-zero multiple of 4")
    return tuple(IPv4Address(raw[i : i + 4]) for i in range(0, len(raw), 4))


def _dec_u8(code: int, raw: bytes) -> OptionValue:
    _fixed(1, code, raw)
    if code == Opt.MESSAGE_TYPE:
        return _MESSAGE_TYPES.get(raw[0], raw[0])
    return raw[0]


def _dec_u16(code: int, raw: bytes) -> OptionValue:
    _fixed(2, code, raw)
    return int.from_bytes(raw, "big")


def _dec_u32(code: int, raw: bytes) -> OptionValue:
    _fixed(4, code, raw)
    return int.from_bytes(raw, "big")


def _dec_s32(code: int, raw: bytes) -> OptionValue:
    _fixed(4, code, raw)
    return int(_S32.unpack(raw)[0])


def _dec_str(code: int, raw: bytes) -> OptionValue:
    _nonempty(code, raw)
    return raw.decode("utf-8", "surrogateescape")


def _dec_u8_list(code: int, raw: bytes) -> OptionValue:
    _nonempty(code, raw)
    return tuple(raw)


def _dec_client_id(code: int, raw: bytes) -> OptionValue:
    if len(raw) < 2:  # RFC 2132 §9.14
        raise _bad_length(code, raw, "expected at least 2")
    return raw


def _dec_relay_agent(code: int, raw: bytes) -> OptionValue:
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


def _dec_bytes(code: int, raw: bytes) -> OptionValue:
    return raw


_DECODERS: dict[Kind, Callable[[int, bytes], OptionValue]] = {
    Kind.IP: _dec_ip,
    Kind.IP_LIST: _dec_ip_list,
    Kind.U8: _dec_u8,
    Kind.U16: _dec_u16,
    Kind.U32: _dec_u32,
    Kind.S32: _dec_s32,
    Kind.STR: _dec_str,
    Kind.U8_LIST: _dec_u8_list,
    Kind.CLIENT_ID: _dec_client_id,
    Kind.RELAY_AGENT: _dec_relay_agent,
    Kind.BYTES: _dec_bytes,
}
_DECODER_OF: dict[int, Callable[[int, bytes], OptionValue]] = {
    code: _DECODERS[kind] for code, kind in _KIND_OF.items()
}


def decode_value(code: int, raw: bytes) -> OptionValue:
    """The typed value of option ``code`` from its (concatenated) octets."""
    return _DECODER_OF.get(code, _dec_bytes)(code, raw)


def _wrong(code: int, wanted: str) -> EncodeError:
    return EncodeError(f"option {code} needs {wanted}")


def _enc_ip(code: int, value: OptionValue) -> bytes:
    if not isinstance(value, IPv4Address):
        raise _wrong(code, "an IPv4Address")
    return value.packed


def _enc_ip_list(code: int, value: OptionValue) -> bytes:
    if not isinstance(value, tuple) or not value:
        raise _wrong(code, "a non-empty tuple of IPv4Address")
    out = b""
    for item in value:
        if not isinstance(item, IPv4Address):
            raise _wrong(code, "a tuple of IPv4Address")
        out += item.packed
    return out


def _enc_int(size: int, signed: bool = False) -> Callable[[int, OptionValue], bytes]:
    def enc(code: int, value: OptionValue) -> bytes:
        if not isinstance(value, int):
            raise _wrong(code, "an int")
        try:
            return int(value).to_bytes(size, "big", signed=signed)
        except OverflowError as exc:
            raise EncodeError(f"option {code}: {value} does not fit in {size} octets") from exc

    return enc


def _enc_str(code: int, value: OptionValue) -> bytes:
    if not isinstance(value, str) or not value:
        raise _wrong(code, "a non-empty str")
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise EncodeError(f"option {code}: {exc}") from exc


def _enc_u8_list(code: int, value: OptionValue) -> bytes:
    if not isinstance(value, tuple) or not value:
        raise _wrong(code, "a non-empty tuple of int")
    try:
        return bytes(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise EncodeError(f"option {code}: {exc}") from exc


def _enc_client_id(code: int, value: OptionValue) -> bytes:
    if not isinstance(value, bytes) or len(value) < 2:
        raise _wrong(code, "at least 2 octets")
    return value


def _enc_relay_agent(code: int, value: OptionValue) -> bytes:
    if not isinstance(value, RelayAgentInfo) or not value.suboptions:
        raise _wrong(code, "a RelayAgentInfo with sub-options")
    out = b""
    for sub, data in value.suboptions:
        if not 0 <= sub <= 255 or len(data) > 255:
            raise EncodeError(f"option 82: sub-option {sub} does not fit")
        out += bytes((sub, len(data))) + data
    return out


def _enc_bytes(code: int, value: OptionValue) -> bytes:
    if not isinstance(value, bytes):
        raise _wrong(code, "bytes")
    return value


_ENCODERS: dict[Kind, Callable[[int, OptionValue], bytes]] = {
    Kind.IP: _enc_ip,
    Kind.IP_LIST: _enc_ip_list,
    Kind.U8: _enc_int(1),
    Kind.U16: _enc_int(2),
    Kind.U32: _enc_int(4),
    Kind.S32: _enc_int(4, signed=True),
    Kind.STR: _enc_str,
    Kind.U8_LIST: _enc_u8_list,
    Kind.CLIENT_ID: _enc_client_id,
    Kind.RELAY_AGENT: _enc_relay_agent,
    Kind.BYTES: _enc_bytes,
}
_ENCODER_OF: dict[int, Callable[[int, OptionValue], bytes]] = {
    code: _ENCODERS[kind] for code, kind in _KIND_OF.items()
}


def encode_value(code: int, value: OptionValue) -> bytes:
    """The octets of option ``code`` (not yet split into 255-octet pieces)."""
    return _ENCODER_OF.get(code, _enc_bytes)(code, value)


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
    def trusted(cls, items: tuple[tuple[int, OptionValue], ...]) -> Options:
        """Wrap items the decoder built (valid by construction) without re-checking."""
        options = object.__new__(cls)
        object.__setattr__(options, "items", items)
        return options

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
