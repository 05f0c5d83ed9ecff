"""The Mailbox API: UIDs, views and changes, concurrent writers, injected faults."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from imapha.maildir import mailbox as mbmod
from imapha.maildir import uidlist as ul
from imapha.maildir.deliver import deliver
from imapha.maildir.fsops import FileSystem, LockTimeout
from imapha.maildir.mailbox import Mailbox, MessageExpunged, StoreMode
from imapha.maildir.scan import SCAN_ATTEMPTS


@pytest.fixture
def box(tmp_path: Path) -> Mailbox:
    return Mailbox(tmp_path / "Maildir", create=True)


def _msg(n: int) -> bytes:
    return f"Message-ID: <{n}@test>\r\nSubject: {n}\r\n\r\nbody {n}\r\n".encode()


def test_deliveries_get_uids_in_order_and_agree_across_views(box: Mailbox) -> None:
    first = box.sync()
    assert first.empty and first.next_uid == 1
    names = [deliver(box.path, _msg(n)) for n in range(3)]
    result = box.sync()
    assert [m.uid for m in result.added] == [1, 2, 3]
    assert [m.base for m in result.added] == sorted(names)
    assert all(m.subdir == "cur" for m in result.added)  # moved from new/
    assert not os.listdir(box.path / "new")
    other = Mailbox(box.path)
    assert [(m.uid, m.base) for m in other.sync().added] == [
        (m.uid, m.base) for m in box.messages()]
    assert other.uid_validity == box.uid_validity
    assert box.read(2).startswith(b"Message-ID: <")
    assert box.get(1).size == len(_msg(0))


def test_changes_by_another_writer_are_reported(box: Mailbox) -> None:
    for n in range(4):
        deliver(box.path, _msg(n))
    box.sync()
    other = Mailbox(box.path)
    other.sync()
    other.store(2, ["\\Seen", "\\Flagged"], ["todo"])
    other.store(3, ["\\Deleted"])
    assert other.expunge() == [3]
    result = box.sync()
    assert result.expunged == (3,)
    assert [(m.uid, m.flags, m.keywords) for m in result.changed] == [
        (2, frozenset({"\\Seen", "\\Flagged"}), frozenset({"todo"}))]
    assert box.sync().empty
    # UIDs are never reused: the next message gets 5, not 3 or 4.
    deliver(box.path, _msg(9))
    assert [m.uid for m in box.sync().added] == [5]
    assert ul.read(FileSystem(), box.path) is not None


def test_store_modes_and_file_names(box: Mailbox) -> None:
    deliver(box.path, _msg(1))
    box.sync()
    msg = box.store(1, ["\\Seen"], ["$Label1"], StoreMode.ADD)
    assert msg.filename.endswith(":2,Sa")
    msg = box.store(1, ["\\Answered", "\\Draft"], [], StoreMode.ADD)
    assert msg.filename.endswith(":2,DRSa")
    msg = box.store(1, ["\\Seen"], ["$Label1"], StoreMode.REMOVE)
    assert msg.filename.endswith(":2,DR") and msg.keywords == frozenset()
    msg = box.store(1, ["\\Flagged"])
    assert msg.flags == frozenset({"\\Flagged"})
    assert (box.path / "cur" / msg.filename).is_file()
    assert box.sync().empty  # our own change is not reported back to us


def test_flag_rename_racing_another_writer_follows_the_file(box: Mailbox) -> None:
    deliver(box.path, _msg(1))
    box.sync()
    other = Mailbox(box.path)
    other.sync()
    other.store(1, ["\\Seen"])  # box's idea of the file name is now stale
    msg = box.store(1, ["\\Flagged"], mode=StoreMode.ADD)
    assert msg.flags == frozenset({"\\Seen", "\\Flagged"})
    assert len(os.listdir(box.path / "cur")) == 1


def test_injected_enoent_on_rename_is_a_relookup_not_an_error(tmp_path: Path) -> None:
    fs = FileSystem()
    box = Mailbox(tmp_path / "M", fs=fs, create=True)
    deliver(box.path, _msg(1))
    box.sync()
    fault = fs.inject("rename", errno.ENOENT, box.get(1).base, times=2)
    msg = box.store(1, ["\\Seen"])
    assert fault.fired == 2 and msg.flags == frozenset({"\\Seen"})
    assert os.listdir(box.path / "cur") == [msg.filename]


def test_estale_on_rename_after_success_is_harmless(tmp_path: Path) -> None:
    fs = FileSystem()
    box = Mailbox(tmp_path / "M", fs=fs, create=True)
    deliver(box.path, _msg(1))
    box.sync()
    fs.inject("rename", errno.ESTALE, box.get(1).base, after=True)
    msg = box.store(1, ["\\Seen"])
    assert msg.flags == frozenset({"\\Seen"})
    assert os.listdir(box.path / "cur") == [msg.filename]


def test_store_and_read_of_a_message_expunged_elsewhere(box: Mailbox) -> None:
    deliver(box.path, _msg(1))
    box.sync()
    other = Mailbox(box.path)
    other.sync()
    other.expunge([1])
    with pytest.raises(MessageExpunged):
        box.read(1)
    with pytest.raises(MessageExpunged):
        box.store(1, ["\\Seen"])


class _HidingFS(FileSystem):
    """A readdir that misses one entry the first time (a rename during the listing)."""

    hide: str = ""
    hidden_once: bool = False

    def listdir(self, path: Path) -> list[str]:
        names = super().listdir(path)
        if self.hide and not self.hidden_once and path.name == "cur":
            kept = [n for n in names if not n.startswith(self.hide)]
            if len(kept) != len(names):
                self.hidden_once = True
                return kept
        return names


def test_a_file_missed_by_an_unlocked_scan_is_not_expunged(tmp_path: Path) -> None:
    fs = _HidingFS()
    box = Mailbox(tmp_path / "M", fs=fs, create=True)
    for n in range(3):
        deliver(box.path, _msg(n))
    box.sync()
    other = Mailbox(box.path)
    other.sync()
    other.store(2, ["\\Seen"])
    fs.hide = box.get(2).base
    result = box.sync()
    assert fs.hidden_once  # the unlocked scan did miss it...
    assert result.expunged == ()  # ...and the locked rescan found it again
    assert box.get(2).flags == frozenset({"\\Seen"})
    assert [r.uid for r in ul.read(FileSystem(), box.path) or []] == [1, 2, 3]


def test_lost_uidlist_changes_uidvalidity(box: Mailbox) -> None:
    for n in range(2):
        deliver(box.path, _msg(n))
    box.sync()
    before = box.uid_validity
    (box.path / ul.FILENAME).unlink()
    result = box.sync()
    assert result.uid_validity_changed and result.uid_validity > before
    assert result.expunged == (1, 2) and len(result.added) == 2
    (box.path / ul.FILENAME).write_bytes(b"garbage\n")
    again = box.sync()
    assert again.uid_validity_changed and again.uid_validity > result.uid_validity


def test_append_sets_internaldate_flags_keywords_and_returns_uid(box: Mailbox) -> None:
    box.sync()
    deliver(box.path, _msg(0))
    uid = box.append(_msg(1), ["\\Seen"], ["work"], internaldate=1_000_000_000.0)
    assert uid == 1  # the appended message got its UID at once; the delivery waits
    result = box.sync()
    assert [m.uid for m in result.added] == [1, 2]
    appended = box.get(1)
    assert box.internaldate(1) == 1_000_000_000.0
    assert (box.path / "cur" / appended.filename).stat().st_mtime == 1_000_000_000.0
    assert appended.flags == frozenset({"\\Seen"}) and appended.keywords == frozenset({"work"})
    assert box.read(1) == _msg(1)
    assert not os.listdir(box.path / "tmp")


def test_copy_links_and_move_expunges(tmp_path: Path) -> None:
    src = Mailbox(tmp_path / "M", create=True)
    dst = Mailbox(tmp_path / "M" / ".Archive", create=True)
    dst.append(_msg(100), [], ["other"])  # dst's keyword table differs from src's
    for n in range(3):
        src.append(_msg(n), ["\\Seen"], ["work"], internaldate=1_500_000_000.0 + n)
    src.sync()
    dst.sync()
    pairs = src.copy([1, 3], dst)
    assert pairs == [(1, 2), (3, 3)]
    added = dst.sync().added
    assert [m.keywords for m in added] == [frozenset({"work"})] * 2
    assert [dst.internaldate(m.uid) for m in added] == [1_500_000_000.0, 1_500_000_002.0]
    assert os.stat(src.path / "cur" / src.get(1).filename).st_ino == os.stat(
        dst.path / "cur" / added[0].filename).st_ino
    moved = src.move([2], dst)
    assert moved == [(2, 4)]
    assert src.sync().empty and 2 not in {m.uid for m in src.messages()}
    dst.sync()
    assert dst.read(4) == _msg(1)


def test_warm_sync_without_changes_does_not_list_directories(
        box: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mbmod, "DIRTY_WINDOW", 0.0)
    for n in range(5):
        deliver(box.path, _msg(n))
    box.sync()
    box.sync()
    scans = box.stats["scans"]
    for _ in range(10):
        assert box.sync().empty
    assert box.stats["scans"] == scans


def test_lock_held_elsewhere_makes_append_time_out(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "M", create=True, lock_timeout=0.2)
    box.sync()
    (box.path / "dovecot-uidlist.lock").write_text(f"1:{box.fs.host}-elsewhere")
    with pytest.raises(LockTimeout):
        box.append(_msg(1))


def test_read_only_view_writes_nothing(box: Mailbox) -> None:
    deliver(box.path, _msg(1))
    box.sync()
    deliver(box.path, _msg(2))
    listing = sorted(os.listdir(box.path / "new"))
    ro = Mailbox(box.path, read_only=True)
    ro.sync()
    assert [m.uid for m in ro.messages()] == [1]  # the unlisted one waits for a writer
    assert sorted(os.listdir(box.path / "new")) == listing


class _BusyFS(_HidingFS):
    """cur/ changes all the time (its mtime moves on every look) and readdir misses
    one entry every time: no scan is ever stable."""

    tick = 0

    def stat(self, path: Path) -> os.stat_result:
        if path.name == "cur":
            self.tick += 1
            os.utime(path, ns=(self.tick, 10**18 + self.tick))
        return super().stat(path)

    def listdir(self, path: Path) -> list[str]:
        names = super(_HidingFS, self).listdir(path)
        if self.hide and path.name == "cur":
            return [n for n in names if not n.startswith(self.hide)]
        return names


def test_an_unstable_scan_proves_no_expunge(tmp_path: Path) -> None:
    fs = _BusyFS()
    box = Mailbox(tmp_path / "M", fs=fs, create=True)
    for n in range(3):
        deliver(box.path, _msg(n))
    box.sync()
    assert len(box.messages()) == 3
    fs.hide = box.get(2).base
    result = box.sync()
    assert result.expunged == () and 2 in {m.uid for m in box.messages()}
    assert box.stats["rescans"] >= SCAN_ATTEMPTS
    assert [r.uid for r in ul.read(FileSystem(), box.path) or []] == [1, 2, 3]


def test_damaged_list_with_a_future_uidvalidity_is_replaced_by_a_greater_one(
        tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "M", create=True)
    deliver(box.path, _msg(1))
    (box.path / ul.FILENAME).write_bytes(b"3 V3000000000 N7 Gabc\n5 :x\nnot a record\n")
    box.sync()
    assert box.uid_validity > 3_000_000_000
    assert [m.uid for m in box.messages()] == [1]
