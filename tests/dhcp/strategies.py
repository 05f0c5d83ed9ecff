"""Hypothesis strategies for DHCP packets and option values."""

from __future__ import annotations

from ipaddress import IPv4Address

from hypothesis import strategies as st

from dhcp.options import KINDS, Kind, Options, OptionValue, RelayAgentInfo
from dhcp.packet import Packet

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
ipv4 = st.builds(IPv4Address, u32)
texts = st.binary(min_size=1, max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))

KIND_VALUES: dict[Kind, st.SearchStrategy[OptionValue]] = {
    Kind.IP: ipv4,
    Kind.IP_LIST: st.lists(ipv4, min_size=1, max_size=4).map(tuple),
    Kind.U8: u8,
    Kind.U16: u16,
    Kind.U32: u32,
    Kind.S32: st.integers(-(2**31), 2**31 - 1),
    Kind.STR: texts,
    Kind.U8_LIST: st.lists(u8, min_size=1, max_size=20).map(tuple),
    Kind.CLIENT_ID: st.binary(min_size=2, max_size=20),
    Kind.RELAY_AGENT: st.lists(st.tuples(u8, st.binary(max_size=20)), min_size=1, max_size=4).map(
        lambda subs: RelayAgentInfo(tuple(subs))
    ),
}

UNKNOWN_CODES = [c for c in range(1, 255) if c not in KINDS and c != 52]


def option_pair(max_raw: int = 300) -> st.SearchStrategy[tuple[int, OptionValue]]:
    known = st.sampled_from(sorted(KINDS)).flatmap(
        lambda code: st.tuples(st.just(code), KIND_VALUES[KINDS[code]])
    )
    unknown = st.tuples(st.sampled_from(UNKNOWN_CODES), st.binary(max_size=max_raw))
    return st.one_of(known, unknown)


def options(max_size: int = 12, max_raw: int = 300) -> st.SearchStrategy[Options]:
    return st.lists(option_pair(max_raw), max_size=max_size, unique_by=lambda pair: pair[0]).map(
        lambda pairs: Options(tuple(pairs))
    )


def packets(max_options: int = 12, max_raw: int = 300) -> st.SearchStrategy[Packet]:
    return st.builds(
        Packet,
        op=u8,
        xid=u32,
        chaddr=st.binary(max_size=16),
        options=options(max_options, max_raw),
        htype=u8,
        hlen=u8,
        hops=u8,
        secs=u16,
        flags=u16,
        ciaddr=ipv4,
        yiaddr=ipv4,
        siaddr=ipv4,
        giaddr=ipv4,
        sname=st.binary(max_size=64),
        file=st.binary(max_size=128),
    )
