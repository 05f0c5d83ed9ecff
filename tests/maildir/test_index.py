"""``imapha.index``: a cache that is used when it matches and never believed otherwise."""

from __future__ import annotations

import os
from pathlib import Path

from imapha.maildir import index as ix
from imapha.maildir.fsops import FileSystem, Perms
from imapha.maildir.mailbox import Mailbox


def _box(tmp_path: Path, n: int = 3) -> Mailbox:
    box = Mailbox(tmp_path / "Maildir", create=True)
    for i in range(n):
        box.append(b"Subject: m%d\r\n\r\nbody %d\r\n" % (i, i))
    box.sync()
    return box


def test_render_parse_round_trip_and_damage_is_ignored() -> None:
    table = {"1.M1P1.h,S=10": ix.Entry(10, 5_000_000_123, 12, b"Subject: \xe9\r\n\r\n"),
             "2.M2P2.h": ix.Entry(7, 6, 8, b"")}
    data = ix.render(table)
    assert ix.parse(data) == table
    lines = data.split(b"\n")
    # A torn or damaged line is skipped, the others kept.
    assert ix.parse(b"\n".join([lines[0], lines[1][:9], lines[2], b""])) == {
        "2.M2P2.h": table["2.M2P2.h"]}
    assert ix.parse(data.replace(b"imapha-index 1", b"imapha-index 9", 1)) == {}
    assert ix.parse(b"\x00garbage") == {}


def test_entries_survive_the_process_and_are_checked_against_the_file(
        tmp_path: Path) -> None:
    box = _box(tmp_path)
    uids = [m.uid for m in box.messages()]
    for uid in uids:
        assert box.cached(uid) is None
        box.remember(uid, 100 + uid, b"Subject: m\r\n\r\n")
    box.save_index(force=True)
    assert (box.path / ix.FILENAME).is_file()

    again = Mailbox(box.path)
    again.sync()
    hit = again.cached(uids[0])
    assert hit is not None and hit.crlf_size == 100 + uids[0]
    # A file whose mtime changed (not the message we indexed, as far as we know)
    # is not answered from the index.
    msg = again.get(uids[1])
    os.utime(again.path / msg.subdir / msg.filename, (1_000_000, 1_000_000))
    fresh = Mailbox(box.path)
    fresh.sync()
    assert fresh.cached(uids[1]) is None
    assert fresh.cached(uids[2]) is not None


def test_save_keeps_only_live_messages_and_a_broken_file_is_rebuilt(tmp_path: Path) -> None:
    box = _box(tmp_path)
    first, *rest = [m.uid for m in box.messages()]
    for uid in (first, *rest):
        box.remember(uid, 1, b"")
    box.expunge([first])
    box.save_index(force=True)
    table = ix.parse((box.path / ix.FILENAME).read_bytes())
    assert sorted(table) == sorted(box.get(u).base for u in rest)

    (box.path / ix.FILENAME).write_bytes(b"imapha-index 1\n{not json\n")
    broken = Mailbox(box.path)
    broken.sync()
    assert broken.cached(rest[0]) is None
    broken.remember(rest[0], 5, b"S: x\r\n\r\n")
    broken.save_index(force=True)
    assert ix.parse((box.path / ix.FILENAME).read_bytes()) == {
        box.get(rest[0]).base: ix.Entry(box.get(rest[0]).size,
                                        broken.mtime_ns(rest[0]), 5, b"S: x\r\n\r\n")}


def test_two_writers_last_one_wins_and_both_are_right(tmp_path: Path) -> None:
    box = _box(tmp_path)
    a, b = Mailbox(box.path), Mailbox(box.path)
    a.sync()
    b.sync()
    uid1, uid2, _ = [m.uid for m in a.messages()]
    a.remember(uid1, 11, b"A\r\n\r\n")
    b.remember(uid2, 22, b"B\r\n\r\n")
    a.save_index(force=True)
    b.save_index(force=True)
    reader = Mailbox(box.path)
    reader.sync()
    assert reader.cached(uid1) is None  # a's entry lost: rebuilt when needed
    entry = reader.cached(uid2)
    assert entry is not None and entry.header == b"B\r\n\r\n"


def test_nothing_written_without_changes_and_no_litter(tmp_path: Path) -> None:
    fs = FileSystem()
    index = ix.MessageIndex(fs, tmp_path, Perms())
    index.save(["x"])
    assert not (tmp_path / ix.FILENAME).exists()
    index.put("x", ix.Entry(1, 2, 3, b""))
    index.save(["x"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [ix.FILENAME]
