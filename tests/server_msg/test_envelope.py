"""Address parsing for ENVELOPE: the fast path agrees with the general parser; odd forms."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from imapha.server.envelope import Address, _parse_fast, _parse_general, parse_addresses
from imapha.server.mime import unfold

_atom = st.text(alphabet="abcXYZ09.-_=?+", min_size=1, max_size=8)
_piece = st.one_of(
    _atom, st.just(" "), st.just("  "), st.just("\t"), st.just(","), st.just("@"),
    st.just("<"), st.just(">"), st.just('"'), st.just('\\"'), st.just("ü"), st.just(":"),
    st.just(";"), st.just("("), st.just(")"), st.just("."),
    st.builds(lambda a, b: f"{a}@{b}", _atom, _atom),
    st.builds(lambda n, a, b: f"{n} <{a}@{b}>", _atom, _atom, _atom),
    st.builds(lambda n, a, b: f'"{n}" <{a}@{b}>', _atom, _atom, _atom),
)
address_lists = st.lists(_piece, max_size=12).map(lambda p: "".join(p).encode())


@settings(max_examples=500, deadline=None)
@given(address_lists)
def test_fast_path_agrees_with_the_general_parser(value: bytes) -> None:
    value = unfold(value)  # what parse_addresses hands both
    fast = _parse_fast(value)
    slow = _parse_general(value)
    if fast is not None:
        assert fast == slow
    assert parse_addresses(value) == (fast if fast is not None else slow)


def test_groups_routes_comments_and_missing_parts() -> None:
    got = parse_addresses(b"Team: a@x, \"B\" <b@y>;, <@r1,@r2:c@z>, d@w (Dee), nodomain, @h")
    assert got == [
        Address(None, None, b"Team", None),
        Address(None, None, b"a", b"x"),
        Address(b"B", None, b"b", b"y"),
        Address(None, None, None, None),
        Address(None, b"@r1,@r2", b"c", b"z"),
        Address(b"Dee", None, b"d", b"w"),
        Address(None, None, b"nodomain", b"MISSING_DOMAIN"),
        Address(None, None, b"MISSING_MAILBOX", b"h"),
    ]
    assert parse_addresses(b"") == []
    missing = Address(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN")
    assert parse_addresses(b" , ,") == [missing, missing]
    assert parse_addresses(b"a@b,") == [Address(None, None, b"a", b"b")]
    assert parse_addresses(b"undisclosed-recipients:;") == [
        Address(None, None, b"undisclosed-recipients", None), Address(None, None, None, None)]
