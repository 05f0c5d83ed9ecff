"""Unique names, base names and the ``:2,`` flags part."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from imapha.maildir.names import UniqueNames, build_name, escape_host, parse_name

LETTERS = st.text(alphabet="DFPRST" + string.ascii_lowercase, max_size=20)


def test_dovecot_name_parses_to_base_letters_and_size() -> None:
    name = parse_name("1795620413.M876539P9177.vm,S=18,W=21:2,FSab")
    assert name.base == "1795620413.M876539P9177.vm,S=18,W=21"
    assert name.letters == "FSab"
    assert name.size == 18
    assert name.system_letters == "FS"
    assert name.keyword_indexes == (0, 1)


def test_name_without_info_and_with_foreign_info() -> None:
    assert parse_name("123.M1P2.host").letters is None
    odd = parse_name("123.M1P2.host:1,experimental")
    assert (odd.base, odd.letters, odd.info) == ("123.M1P2.host", None, "1,experimental")
    assert odd.filename == "123.M1P2.host:1,experimental"


def test_build_sorts_and_dedups_letters_in_ascii_order() -> None:
    assert build_name("b", "baSFSD") == "b:2,DFSab"
    assert build_name("b", "") == "b:2,"


@given(LETTERS)
def test_flags_round_trip(letters: str) -> None:
    parsed = parse_name(build_name("1.M2P3.h,S=4", letters))
    assert parsed.base == "1.M2P3.h,S=4"
    assert parsed.letters == "".join(sorted(set(letters)))
    assert list(parsed.letters) == sorted(parsed.letters)


@given(st.text(min_size=1, max_size=30))
def test_escaped_host_cannot_break_the_name(host: str) -> None:
    escaped = escape_host(host)
    assert not set(escaped) & set("/:,") and escaped.isprintable()
    name = UniqueNames(host=host, pid=42).next(size=10)
    parsed = parse_name(name)
    assert parsed.base == name and parsed.size == 10 and "/" not in name


def test_names_unique_within_a_process_even_at_the_same_instant() -> None:
    frozen = UniqueNames(host="h", pid=7, clock=lambda: 1_700_000_000_123_456_000)
    other = UniqueNames(host="h", pid=7, clock=lambda: 1_700_000_000_123_456_000)
    names = {frozen.next() for _ in range(500)} | {other.next() for _ in range(500)}
    assert len(names) == 1000
    sample = frozen.next(size=99)
    assert sample.startswith("1700000000.M123456P7Q") and sample.endswith(".h,S=99")
