"""VRRPv3 codec: wire layout, checksum with and without pseudo-header, §7.1 drops."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imapha.vip.packet import (
    MCAST_IPV4,
    MCAST_IPV6,
    Advertisement,
    DecodeError,
    DropReason,
    check_group,
    check_ttl,
    decode,
    encode,
)

SRC4 = ipaddress.IPv4Address("192.0.2.1")
SRC6 = ipaddress.IPv6Address("fe80::1")
VIP = ipaddress.IPv4Address("192.0.2.100")


def inet_sum(data: bytes) -> int:
    """Independent RFC 1071 sum (test oracle)."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def test_ipv4_wire_layout_and_checksum_with_pseudo_header() -> None:
    adv = Advertisement(vrid=51, priority=100, interval_cs=100, addresses=(VIP,))
    data = encode(adv, SRC4, MCAST_IPV4)
    assert data[:6] == bytes([0x31, 51, 100, 1, 0x00, 100])
    assert data[8:] == VIP.packed
    pseudo = SRC4.packed + MCAST_IPV4.packed + bytes([0, 112]) + struct.pack("!H", len(data))
    assert inet_sum(pseudo + data) == 0xFFFF
    assert decode(data, SRC4, MCAST_IPV4) == adv


def test_ipv4_checksum_without_pseudo_header_is_accepted() -> None:
    adv = Advertisement(vrid=7, priority=200, interval_cs=0xFFF, addresses=(VIP,))
    data = bytearray(encode(adv, SRC4, MCAST_IPV4))
    data[6:8] = b"\0\0"
    data[6:8] = struct.pack("!H", (~inet_sum(bytes(data))) & 0xFFFF)
    assert decode(bytes(data), SRC4, MCAST_IPV4) == adv


def test_ipv6_requires_pseudo_header_and_link_local_first() -> None:
    addrs = (ipaddress.IPv6Address("fe80::100"), ipaddress.IPv6Address("2001:db8::100"))
    adv = Advertisement(vrid=9, priority=150, interval_cs=20, addresses=addrs)
    data = encode(adv, SRC6, MCAST_IPV6)
    pseudo = SRC6.packed + MCAST_IPV6.packed + struct.pack("!I3xB", len(data), 112)
    assert inet_sum(pseudo + data) == 0xFFFF
    assert decode(data, SRC6, MCAST_IPV6) == adv
    no_pseudo = bytearray(data)
    no_pseudo[6:8] = b"\0\0"
    no_pseudo[6:8] = struct.pack("!H", (~inet_sum(bytes(no_pseudo))) & 0xFFFF)
    with pytest.raises(DecodeError) as err:
        decode(bytes(no_pseudo), SRC6, MCAST_IPV6)
    assert err.value.reason is DropReason.BAD_CHECKSUM
    global_first = Advertisement(9, 150, 20, (addrs[1], addrs[0]))
    with pytest.raises(DecodeError) as err:
        decode(encode(global_first, SRC6, MCAST_IPV6), SRC6, MCAST_IPV6)
    assert err.value.reason is DropReason.NOT_LINK_LOCAL


def good() -> bytes:
    return encode(Advertisement(1, 100, 100, (VIP,)), SRC4, MCAST_IPV4)


def refix(data: bytes) -> bytes:
    """Recompute the checksum (with pseudo-header) so only the mangled field is wrong."""
    body = bytearray(data)
    body[6:8] = b"\0\0"
    pseudo = SRC4.packed + MCAST_IPV4.packed + bytes([0, 112]) + struct.pack("!H", len(body))
    body[6:8] = struct.pack("!H", (~inet_sum(pseudo + bytes(body))) & 0xFFFF)
    return bytes(body)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: d[:7], DropReason.TOO_SHORT),
        (lambda d: d[:10], DropReason.TOO_SHORT),
        (lambda d: refix(bytes([0x21]) + d[1:]), DropReason.BAD_VERSION),
        (lambda d: refix(bytes([0x32]) + d[1:]), DropReason.BAD_TYPE),
        (lambda d: d[:6] + bytes([d[6] ^ 0xFF]) + d[7:], DropReason.BAD_CHECKSUM),
        (lambda d: refix(d[:3] + bytes([2]) + d[4:]), DropReason.TOO_SHORT),
        (lambda d: refix(d + bytes(4)), DropReason.COUNT_MISMATCH),
        (lambda d: refix(d[:3] + bytes([0]) + d[4:8]), DropReason.ZERO_COUNT),
        (lambda d: refix(d[:4] + b"\x00\x00" + d[6:]), DropReason.BAD_INTERVAL),
    ],
)
def test_each_malformation_has_its_drop_reason(mangle: object, reason: DropReason) -> None:
    assert callable(mangle)
    with pytest.raises(DecodeError) as err:
        decode(mangle(good()), SRC4, MCAST_IPV4)
    assert err.value.reason is reason


def test_ttl_must_be_255() -> None:
    check_ttl(255)
    with pytest.raises(DecodeError) as err:
        check_ttl(254)
    assert err.value.reason is DropReason.BAD_TTL


def test_group_checks_follow_rfc5798_7_1() -> None:
    mine = (VIP,)
    check_group(Advertisement(1, 100, 100, mine), 1, mine)
    with pytest.raises(DecodeError) as err:
        check_group(Advertisement(2, 100, 100, mine), 1, mine)
    assert err.value.reason is DropReason.OTHER_VRID
    other = (ipaddress.IPv4Address("192.0.2.200"),)
    with pytest.raises(DecodeError) as err:
        check_group(Advertisement(1, 254, 100, other), 1, mine)
    assert err.value.reason is DropReason.ADDRESS_MISMATCH
    check_group(Advertisement(1, 255, 100, other), 1, mine)  # the owner's word wins


def test_reserved_bits_of_the_interval_are_ignored() -> None:
    data = bytearray(good())
    data[4] |= 0xF0
    assert decode(refix(bytes(data)), SRC4, MCAST_IPV4).interval_cs == 100


ipv4s = st.builds(ipaddress.IPv4Address, st.integers(0, 2**32 - 1))


@given(
    vrid=st.integers(1, 255),
    priority=st.integers(0, 255),
    interval=st.integers(1, 4095),
    addrs=st.lists(ipv4s, min_size=1, max_size=20),
    src=ipv4s,
)
def test_round_trip_ipv4(
    vrid: int, priority: int, interval: int, addrs: list[ipaddress.IPv4Address],
    src: ipaddress.IPv4Address,
) -> None:
    adv = Advertisement(vrid, priority, interval, tuple(addrs))
    assert decode(encode(adv, src, MCAST_IPV4), src, MCAST_IPV4) == adv


@given(st.binary(max_size=80))
def test_garbage_only_ever_raises_decode_error(data: bytes) -> None:
    try:
        adv = decode(data, SRC4, MCAST_IPV4)
    except DecodeError as exc:
        assert isinstance(exc.reason, DropReason)
    else:
        assert encode(adv, SRC4, MCAST_IPV4)[:4] == data[:4]
