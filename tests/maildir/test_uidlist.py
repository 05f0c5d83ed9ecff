"""``dovecot-uidlist`` v3: parse, render, next UID, corrupt files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imapha.maildir import uidlist as ul
from imapha.maildir.fsops import FileSystem, Perms

DOVECOT_SAMPLE = (
    b"3 V1795620413 N1 G6034d7333dfe066bd923000083ecc375\n"
    b"1 :1795620413.M876539P9177.vm,S=18,W=21\n"
    b"5 W300 Gabc :1795620414.M1P9177.vm,S=290\n"
)


def test_dovecot_file_parses_and_next_uid_is_past_the_last_record() -> None:
    parsed = ul.parse(DOVECOT_SAMPLE)
    assert parsed.uid_validity == 1795620413
    assert parsed.guid == "6034d7333dfe066bd923000083ecc375"
    # Dovecot appended without rewriting N1: the effective next UID is 6.
    assert parsed.next_uid == 6
    assert [r.uid for r in parsed] == [1, 5]
    assert parsed.records[1].fields == ("W300", "Gabc")
    assert parsed.by_base()["1795620414.M1P9177.vm,S=290"].uid == 5


def test_unknown_fields_survive_a_rewrite() -> None:
    data = b"3 V7 N20 Gff X9\n3 W10 Zq :a,S=1\n"
    out = ul.render(ul.parse(data))
    assert out == b"3 V7 N20 Gff X9\n3 W10 Zq :a,S=1\n"


def test_assign_never_lowers_next_uid_and_skips_known_bases() -> None:
    base = ul.UidList(9, 100, "g", (), (ul.UidRecord(3, "a"),))
    newer, added = base.assign(["a", "b", "c"])
    assert [(r.uid, r.base) for r in added] == [(100, "b"), (101, "c")]
    assert newer.next_uid == 102
    trimmed = newer.with_records([])
    assert trimmed.next_uid == 102  # expunging everything keeps NEXTUID


def test_version_1_is_read() -> None:
    parsed = ul.parse(b"1 12345 7\n3 msg1:2,S\n6 msg2\n")
    assert parsed.uid_validity == 12345 and parsed.next_uid == 7
    assert [(r.uid, r.base) for r in parsed] == [(3, "msg1"), (6, "msg2")]


@pytest.mark.parametrize("data", [
    b"",
    b"3 N5 Gx\n",                       # no V
    b"3 V1 N5\n2 :a\n2 :b\n",           # UID not increasing
    b"3 V1 N5\nx :a\n",                 # not a number
    b"3 V1 N5\n4 W1 a\n",               # no ' :name'
    b"9 V1 N5\n",                       # unknown version
    b"3 V0 N5\n",                       # UIDVALIDITY 0
    b"\xff\xfe",
])
def test_corrupt_lists_are_refused(data: bytes) -> None:
    with pytest.raises(ul.UidListCorrupt):
        ul.parse(data)


@given(st.lists(st.integers(1, 50), max_size=30, unique=True),
       st.integers(1, 2**32 - 1), st.integers(1, 500))
def test_render_parse_round_trip(gaps: list[int], validity: int, next_uid: int) -> None:
    uid = 0
    records = []
    for n, gap in enumerate(gaps):
        uid += gap
        records.append(ul.UidRecord(uid, f"{n}.M1P2.h,S={gap}", ("W1",) if n % 2 else ()))
    original = ul.UidList(validity, next_uid, "0123abcd", (), tuple(records))
    again = ul.parse(ul.render(original))
    assert again == original
    assert again.next_uid > max([0, *(r.uid for r in records)])


def test_reader_parses_only_what_was_appended_and_skips_a_torn_line(tmp_path: Path) -> None:
    fs = FileSystem()
    path = tmp_path / ul.FILENAME
    path.write_bytes(b"3 V5 N1 Gg\n1 :a\n")
    reader = ul.Reader(fs, tmp_path)
    first = reader.read()
    assert first is not None and [r.uid for r in first] == [1]
    assert reader.read() is first  # unchanged file: the cached parse
    with path.open("ab") as fh:
        fh.write(b"2 :b\n3 :c")  # a writer is half way through line 3
    grown = reader.read()
    assert grown is not None and [r.uid for r in grown] == [1, 2]
    assert not reader.ends_with_newline
    with path.open("ab") as fh:
        fh.write(b"\n")
    done = reader.read()
    assert done is not None and [r.base for r in done] == ["a", "b", "c"]
    assert done.next_uid == 4
    ul.append(fs, tmp_path, [ul.UidRecord(4, "d", ("W9",))])
    assert path.read_bytes().endswith(b"3 :c\n4 W9 :d\n")
    # Replaced by rename (a rewrite): parsed afresh.
    ul.write(fs, tmp_path, ul.UidList(6, 9, "h", (), (ul.UidRecord(8, "z"),)), Perms())
    fresh = reader.read()
    assert fresh is not None and (fresh.uid_validity, [r.uid for r in fresh]) == (6, [8])


def test_reader_trusts_content_not_inode_size_or_mtime(tmp_path: Path) -> None:
    """A list replaced by rename may get a recycled inode number, the same size and
    (on coarse clocks) the same mtime: only the bytes tell the files apart."""
    path = tmp_path / ul.FILENAME
    path.write_bytes(b"3 V5 N1 Gg\n1 :a\n2 :b\n")
    st = path.stat()
    reader = ul.Reader(FileSystem(), tmp_path)
    assert [r.base for r in reader.read() or []] == ["a", "b"]
    with path.open("r+b") as fh:  # same inode, same size, mtime put back
        fh.write(b"3 V5 N1 Gg\n1 :a\n2 :c\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert [r.base for r in reader.read() or []] == ["a", "c"]
    # Bigger and on the same inode, but not an append: parsed afresh, not as a tail.
    with path.open("r+b") as fh:
        fh.write(b"3 V5 N9 Gg\n1 :a\n5 :e\n8 :h\n")
    assert [(r.uid, r.base) for r in reader.read() or []] == [(1, "a"), (5, "e"), (8, "h")]
