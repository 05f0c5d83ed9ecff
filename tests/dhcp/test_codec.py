"""The DHCPv4 codec: round trips, fuzzing, dpkt as an oracle, golden client packets."""

from __future__ import annotations

import dataclasses
import struct
from ipaddress import IPv4Address

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dhcp.options import (
    KINDS,
    DecodeError,
    DecodeReason,
    EncodeError,
    MessageType,
    Opt,
    Options,
    OptionValue,
    RelayAgentInfo,
    encode_value,
)
from dhcp.packet import (
    BOOTREQUEST,
    DEFAULT_MAX_MESSAGE,
    MAGIC_COOKIE,
    MIN_MESSAGE,
    Packet,
    decode,
    encode,
)
from tests.dhcp.strategies import option_pair, packets

MAC = bytes.fromhex("525400a1b2c3")
HEADER = struct.pack("!BBBBIHH16x16s192x", 1, 1, 6, 0, 0x1234, 0, 0, MAC.ljust(16, b"\0"))


def _concat(opts: list[tuple[int, bytes]]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for code, raw in opts:
        out[code] = out.get(code, b"") + bytes(raw)
    return out


def assert_same_as_dpkt(ours: Packet, theirs: dpkt.dhcp.DHCP) -> None:
    assert theirs.op == ours.op
    assert theirs.hrd == ours.htype
    assert theirs.hln == ours.hlen
    assert theirs.hops == ours.hops
    assert theirs.xid == ours.xid
    assert theirs.secs == ours.secs
    assert theirs.flags == ours.flags
    assert theirs.ciaddr == int(ours.ciaddr)
    assert theirs.yiaddr == int(ours.yiaddr)
    assert theirs.siaddr == int(ours.siaddr)
    assert theirs.giaddr == int(ours.giaddr)
    assert bytes(theirs.chaddr) == ours.chaddr[: ours.hlen]
    assert bytes(theirs.sname).rstrip(b"\0") == ours.sname
    assert bytes(theirs.file).rstrip(b"\0") == ours.file
    theirs_opts = _concat(theirs.opts)
    assert list(theirs_opts) == list(ours.options.codes())
    for code, value in ours.options:
        assert theirs_opts[code] == encode_value(code, value)


# -- properties ----------------------------------------------------------------


@given(packets())
@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_decode_inverts_encode_with_overload(packet: Packet) -> None:
    """At the default 548 octets many packets need option overload; all must round-trip."""
    try:
        wire = encode(packet)
    except EncodeError:
        return  # too big even with 'file' and 'sname': refused, never truncated
    assert len(wire) <= max(DEFAULT_MAX_MESSAGE, MIN_MESSAGE)
    assert decode(wire) == packet


@given(packets())
@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_decode_inverts_encode_large(packet: Packet) -> None:
    assert decode(encode(packet, 8192)) == packet


@given(packets(max_raw=255))
@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_dpkt_reads_what_we_encode(packet: Packet) -> None:
    packet = dataclasses.replace(packet, hlen=min(packet.hlen, 16))
    assert_same_as_dpkt(packet, dpkt.dhcp.DHCP(encode(packet, 8192)))


@given(
    st.lists(option_pair(max_raw=255), max_size=10, unique_by=lambda p: p[0]),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFF),
)
@settings(deadline=None, max_examples=300)
def test_we_read_what_dpkt_encodes(pairs: list[tuple[int, object]], xid: int, flags: int) -> None:
    raw_opts = [(code, encode_value(code, value)) for code, value in pairs]  # type: ignore[arg-type]
    raw_opts = [(code, raw) for code, raw in raw_opts if len(raw) <= 255]
    theirs = dpkt.dhcp.DHCP(
        op=1,
        xid=xid,
        flags=flags,
        chaddr=MAC,
        ciaddr=0xC0000205,
        giaddr=0xC6336401,
        opts=raw_opts,
    )
    ours = decode(bytes(theirs))
    assert_same_as_dpkt(ours, dpkt.dhcp.DHCP(bytes(theirs)))


@given(st.binary(max_size=700))
@settings(deadline=None, max_examples=1000)
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        decode(data)
    except DecodeError as exc:
        assert isinstance(exc.reason, DecodeReason)


@given(st.binary(max_size=400))
@settings(deadline=None, max_examples=1000)
def test_arbitrary_options_decode_or_raise_decode_error(tail: bytes) -> None:
    try:
        packet = decode(HEADER + MAGIC_COOKIE + tail)
    except DecodeError as exc:
        assert isinstance(exc.reason, DecodeReason)
    else:
        assert packet.hwaddr == MAC


@given(
    st.binary(min_size=236, max_size=236),
    st.sampled_from([b"\x34\x01\x01", b"\x34\x01\x02", b"\x34\x01\x03", b""]),
    st.binary(max_size=60),
)
@settings(deadline=None, max_examples=1000)
def test_arbitrary_overloaded_fields_decode_or_raise_decode_error(
    header: bytes, overload: bytes, tail: bytes
) -> None:
    try:
        decode(header + MAGIC_COOKIE + overload + tail)
    except DecodeError as exc:
        assert isinstance(exc.reason, DecodeReason)


# -- specific decoding rules ------------------------------------------------------


def _wire(options: bytes, sname: bytes = b"", file: bytes = b"") -> bytes:
    header = bytearray(HEADER)
    header[44 : 44 + len(sname)] = sname
    header[108 : 108 + len(file)] = file
    return bytes(header) + MAGIC_COOKIE + options


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x01" * 100, DecodeReason.TOO_SHORT),
        (HEADER + b"\x63\x82\x53\x64", DecodeReason.BAD_COOKIE),
        (HEADER, DecodeReason.BAD_COOKIE),
        (_wire(b"\x35\x05\x01"), DecodeReason.TRUNCATED_OPTION),
        (_wire(b"\x35"), DecodeReason.TRUNCATED_OPTION),
        (_wire(b"\x35\x02\x01\x01\xff"), DecodeReason.BAD_OPTION_LENGTH),
        (_wire(b"\x35\x01\x01\x35\x01\x03\xff"), DecodeReason.BAD_OPTION_LENGTH),
        (_wire(b"\x36\x03\xc0\x00\x02\xff"), DecodeReason.BAD_OPTION_LENGTH),
        (_wire(b"\x03\x06" + bytes(6) + b"\xff"), DecodeReason.BAD_OPTION_LENGTH),
        (_wire(b"\x3d\x01\x01\xff"), DecodeReason.BAD_OPTION_LENGTH),
        (_wire(b"\x0c\x00\xff"), DecodeReason.BAD_OPTION_LENGTH),
        (_wire(b"\x34\x01\x04\xff"), DecodeReason.BAD_OVERLOAD),
        (_wire(b"\x34\x01\x01\xff", file=b"\x34\x01\x02\xff"), DecodeReason.BAD_OVERLOAD),
        (_wire(b"\x52\x03\x01\x05\x00\xff"), DecodeReason.BAD_RELAY_AGENT_INFO),
        (_wire(b"\x52\x00\xff"), DecodeReason.BAD_RELAY_AGENT_INFO),
    ],
)
def test_malformed_input_names_its_reason(data: bytes, reason: DecodeReason) -> None:
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.reason is reason


def test_overloaded_file_and_sname_are_read_after_options_in_order() -> None:
    # RFC 2131 §4.1: options field, then 'file', then 'sname'.
    wire = _wire(
        b"\x35\x01\x01\x34\x01\x03\x0c\x02ab\xff",
        sname=b"\x0c\x02ef\x3c\x03udh\xff",
        file=b"\x00\x0c\x02cd\xff",
    )
    packet = decode(wire)
    assert packet.options.hostname == "abcdef"  # RFC 3396 concatenation
    assert packet.options.get(Opt.VENDOR_CLASS_ID) == "udh"
    assert packet.sname == b""
    assert packet.file == b""
    assert Opt.MESSAGE_TYPE in packet.options and 52 not in packet.options


def test_sname_and_file_are_plain_strings_without_overload() -> None:
    packet = decode(_wire(b"\x35\x01\x01\xff", sname=b"boot-server", file=b"pxelinux.0"))
    assert packet.sname == b"boot-server"
    assert packet.file == b"pxelinux.0"


def test_end_of_area_without_end_option_is_accepted_and_padding_ignored() -> None:
    packet = decode(_wire(b"\x00\x00\x35\x01\x03\x00\x32\x04\xc0\x00\x02\x07"))
    assert packet.message_type is MessageType.REQUEST
    assert packet.options.requested_ip == IPv4Address("192.0.2.7")


def test_options_after_end_are_ignored() -> None:
    packet = decode(_wire(b"\x35\x01\x01\xff\x0c\x02ab"))
    assert packet.options.codes() == (Opt.MESSAGE_TYPE,)


def test_relay_agent_information_suboptions() -> None:
    packet = decode(_wire(b"\x35\x01\x01\x52\x0a\x01\x03eth\x02\x03sw1\xff"))
    relay = packet.options.relay_agent_info
    assert relay == RelayAgentInfo(((1, b"eth"), (2, b"sw1")))
    assert relay.circuit_id == b"eth"
    assert relay.remote_id == b"sw1"


def test_unknown_options_are_kept_raw_and_typed_ones_typed() -> None:
    packet = decode(
        _wire(
            b"\x35\x01\x01\xfa\x03xyz\x39\x02\x05\xdc\x37\x03\x01\x03\x06\x33\x04\x00\x00\x0e\x10\xff"
        )
    )
    assert packet.options.get(250) == b"xyz"
    assert packet.options.max_message_size == 1500
    assert packet.options.parameter_request_list == (1, 3, 6)
    assert packet.options.lease_time == 3600


def test_non_utf8_host_name_round_trips_exactly() -> None:
    wire = _wire(b"\x35\x01\x01\x0c\x04h\xffi\x00\xff")
    packet = decode(wire)
    assert encode_value(Opt.HOSTNAME, packet.options.get(Opt.HOSTNAME) or "") == b"h\xffi\x00"


# -- encoding rules ------------------------------------------------------------------


def test_encoding_pads_to_300_octets_and_puts_end_last() -> None:
    packet = Packet(op=2, xid=7, chaddr=MAC, options=Options.of({53: MessageType.ACK}))
    wire = encode(packet)
    assert len(wire) == MIN_MESSAGE
    assert wire[240:244] == b"\x35\x01\x05\xff"
    assert set(wire[244:]) <= {0}


def test_long_value_is_split_into_consecutive_instances() -> None:
    packet = Packet(op=2, xid=7, chaddr=MAC, options=Options.of({43: b"v" * 300}))
    wire = encode(packet, 1000)
    assert wire[240:242] == b"\x2b\xff"
    assert wire[242 + 255 : 242 + 257] == b"\x2b\x2d"
    assert decode(wire) == packet


def test_overflow_goes_to_file_then_sname_with_option_52() -> None:
    values: dict[int, OptionValue] = {53: 2, 43: b"a" * 250, 224: b"b" * 100, 225: b"c" * 40}
    opts = Options.of(values)
    packet = Packet(op=2, xid=7, chaddr=MAC, options=opts)
    wire = encode(packet)
    assert len(wire) <= DEFAULT_MAX_MESSAGE
    assert wire[240:243] == b"\x34\x01\x03"
    assert wire[108] == 224  # 'file' holds the option that did not fit
    assert wire[44] == 225  # then 'sname'
    assert decode(wire) == packet
    with pytest.raises(EncodeError):
        encode(Packet(op=2, xid=7, chaddr=MAC, options=Options.of({43: b"x" * 600})))


def test_sname_in_use_is_not_overloaded() -> None:
    values: dict[int, OptionValue] = {53: 2, 43: b"a" * 250, 224: b"b" * 100}
    opts = Options.of(values)
    packet = Packet(op=2, xid=7, chaddr=MAC, options=opts, sname=b"tftp.example")
    wire = encode(packet)
    assert wire[240:243] == b"\x34\x01\x01"
    assert decode(wire) == packet


def test_every_known_kind_has_a_strategy_and_rejects_wrong_types() -> None:
    for code in KINDS:
        with pytest.raises(EncodeError):
            encode_value(code, object())  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        encode_value(Opt.LEASE_TIME, 2**32)
    with pytest.raises(ValueError, match="twice"):
        Options(((53, 1), (53, 2)))
    with pytest.raises(ValueError, match="reserved"):
        Options(((52, 1),))


# -- golden packets: what real clients send ------------------------------------------


def dhclient_discover() -> bytes:
    """ISC dhclient 4.4's DISCOVER with Debian's dhclient.conf request list."""
    prl = bytes([1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42])
    packet = dpkt.dhcp.DHCP(
        op=1,
        xid=0x3903F326,
        secs=3,
        chaddr=MAC,
        opts=[(53, b"\x01"), (50, bytes([192, 0, 2, 44])), (12, b"ws-17"), (55, prl)],
    )
    wire = bytes(packet)
    return wire + bytes(max(0, 300 - len(wire)))  # dhclient pads to BOOTP's 300


def udhcpc_discover() -> bytes:
    """busybox udhcpc 1.35's DISCOVER: client id, max size, vendor class, request list."""
    packet = dpkt.dhcp.DHCP(
        op=1,
        xid=0x7A6B1C2D,
        chaddr=MAC,
        opts=[
            (53, b"\x01"),
            (61, b"\x01" + MAC),
            (57, struct.pack("!H", 576)),
            (55, bytes([1, 3, 6, 12, 15, 28, 42])),
            (60, b"udhcp 1.35.0"),
            (12, b"sensor"),
        ],
    )
    return bytes(packet)


def test_golden_dhclient_discover() -> None:
    packet = decode(dhclient_discover())
    assert packet.op == BOOTREQUEST
    assert packet.hwaddr == MAC
    assert packet.xid == 0x3903F326
    assert packet.secs == 3
    assert packet.message_type is MessageType.DISCOVER
    assert packet.options.requested_ip == IPv4Address("192.0.2.44")
    assert packet.options.hostname == "ws-17"
    assert packet.options.parameter_request_list == (
        1,
        28,
        2,
        3,
        15,
        6,
        119,
        12,
        44,
        47,
        26,
        121,
        42,
    )
    assert packet.options.client_id is None
    assert not packet.broadcast


def test_golden_udhcpc_discover() -> None:
    packet = decode(udhcpc_discover())
    assert packet.message_type is MessageType.DISCOVER
    assert packet.options.client_id == b"\x01" + MAC
    assert packet.options.max_message_size == 576
    assert packet.options.get(Opt.VENDOR_CLASS_ID) == "udhcp 1.35.0"
    assert packet.options.parameter_request_list == (1, 3, 6, 12, 15, 28, 42)
    # and what we encode back is byte-identical in its option area
    assert encode(packet, 8192)[:236] == udhcpc_discover()[:236]
