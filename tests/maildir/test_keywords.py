"""``dovecot-keywords``: indexes, the 26-keyword limit, concurrent additions."""

from __future__ import annotations

from pathlib import Path

import pytest

from imapha.maildir import keywords as kw
from imapha.maildir.fsops import FileSystem, Perms


def test_parse_dovecot_file() -> None:
    table = kw.parse(b"0 $Label1\n1 foo\n")
    assert table.name(0) == "$Label1" and table.index("foo") == 1
    assert table.letters_for(["foo", "$Label1"]) == "ab"
    assert table.letters_for(["nope"]) is None
    assert kw.render(table) == b"0 $Label1\n1 foo\n"


def test_add_keeps_existing_indexes_and_adds_in_free_slots(tmp_path: Path) -> None:
    fs = FileSystem()
    (tmp_path / kw.FILENAME).write_bytes(b"0 $Label1\n2 bar\n")
    table = kw.add(fs, tmp_path, ["bar", "new", "$Label1"], Perms())
    assert table.table == {0: "$Label1", 1: "new", 2: "bar"}
    # A second writer (another process) adding its own keeps ours.
    other = kw.add(FileSystem(), tmp_path, ["theirs"], Perms())
    assert other.table == {0: "$Label1", 1: "new", 2: "bar", 3: "theirs"}


def test_twenty_seventh_keyword_is_refused_and_nothing_written(tmp_path: Path) -> None:
    fs = FileSystem()
    kw.add(fs, tmp_path, [f"k{i}" for i in range(26)], Perms())
    before = (tmp_path / kw.FILENAME).read_bytes()
    with pytest.raises(kw.KeywordLimit):
        kw.add(fs, tmp_path, ["k0", "one-too-many"], Perms())
    assert (tmp_path / kw.FILENAME).read_bytes() == before


@pytest.mark.parametrize("bad", ["", "with space", "a(b", "\\Seen", 'q"'])
def test_invalid_keywords_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        kw.add(FileSystem(), tmp_path, [bad], Perms())


def test_each_rewrite_moves_the_whole_second_mtime_forward(tmp_path: Path) -> None:
    # Dovecot re-reads dovecot-keywords only when int(mtime) changes: three
    # rewrites within one second must give three different whole seconds.
    fs = FileSystem()
    seconds = []
    for name in ("one", "two", "three"):
        kw.add(fs, tmp_path, [name], Perms())
        seconds.append(int((tmp_path / kw.FILENAME).stat().st_mtime))
    assert seconds[0] < seconds[1] < seconds[2]
    assert kw.read(fs, tmp_path).table == {0: "one", 1: "two", 2: "three"}
