"""One Maildir, two implementations: imapha's store and a real Dovecot 2.3 agree."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapha.lab.dovecot import DovecotServer
from imapha.maildir.deliver import deliver
from imapha.maildir.mailbox import Mailbox, StoreMode
from tests.maildir.dovecot_client import flags_by_uid, message_ids, session, uid_validity

USER, PASSWORD = "alice", "pw-alice"


@pytest.fixture
def dovecot(dovecot_dir: Path) -> Iterator[DovecotServer]:
    with DovecotServer(dovecot_dir, {USER: PASSWORD}, lmtp=True) as dv:
        yield dv


def _msg(n: int) -> bytes:
    return f"Message-ID: <m{n}@test>\r\nSubject: n{n}\r\n\r\nbody {n}\r\n".encode()


def _view(box: Mailbox) -> dict[int, frozenset[str]]:
    return {m.uid: m.flags | m.keywords for m in box.messages()}


def test_imapha_writes_dovecot_reads(dovecot: DovecotServer) -> None:
    box = Mailbox(dovecot.maildir(USER), create=True)
    box.sync()
    for n in range(3):
        deliver(box.path, _msg(n))
    box.append(_msg(3), ["\\Seen", "\\Answered"], ["$Label1", "work"])
    box.sync()
    box.store(2, ["\\Flagged"], ["urgent"], StoreMode.ADD)
    with session(dovecot, USER, PASSWORD) as imap:
        assert uid_validity(imap) == box.uid_validity
        assert flags_by_uid(imap) == _view(box)
        assert message_ids(imap) == {
            m.uid: box.read(m.uid).split(b"<")[1].split(b">")[0].decode()
            for m in box.messages()}


def test_dovecot_writes_imapha_reads(dovecot: DovecotServer) -> None:
    lmtp = smtplib.LMTP(dovecot.listen, dovecot.lmtp_port)
    for n in range(3):
        lmtp.sendmail("x@test", [USER], _msg(n))
    lmtp.quit()
    with session(dovecot, USER, PASSWORD) as imap:
        imap.append("INBOX", "(\\Draft)", None, _msg(3))
        imap.uid("STORE", "1", "+FLAGS", "(\\Seen $Label1 project-x)")
        imap.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
        imap.expunge()
        imap.uid("STORE", "3", "+FLAGS", "(\\Flagged project-x)")
        expected = flags_by_uid(imap)
        validity = uid_validity(imap)
    box = Mailbox(dovecot.maildir(USER))
    box.sync()
    assert box.uid_validity == validity
    assert _view(box) == expected
    assert sorted(expected) == [1, 3, 4]
    # Dovecot stores LF line ends (mail_save_crlf = no); the text is the same.
    assert box.read(4) == _msg(3).replace(b"\r\n", b"\n")


def test_both_alternately_on_one_maildir(dovecot: DovecotServer) -> None:
    box = Mailbox(dovecot.maildir(USER), create=True)
    seen_uids: set[int] = set()
    deliver(box.path, _msg(0))
    box.sync()
    with session(dovecot, USER, PASSWORD) as imap:
        imap.append("INBOX", None, None, _msg(1))
        assert flags_by_uid(imap) == {1: frozenset(), 2: frozenset()}
    box.sync()
    box.store(2, ["\\Seen"])
    box.append(_msg(2), ["\\Flagged"], ["shared"])
    assert [m.uid for m in box.sync().added] == [3]
    with session(dovecot, USER, PASSWORD) as imap:
        assert flags_by_uid(imap) == {
            1: frozenset(), 2: frozenset({"\\Seen"}), 3: frozenset({"\\Flagged", "shared"})}
        imap.uid("STORE", "1", "+FLAGS", "(\\Deleted)")
        imap.expunge()
        imap.uid("STORE", "3", "-FLAGS", "(shared)")
    result = box.sync()
    assert result.expunged == (1,)
    assert [m.uid for m in result.changed] == [3]
    seen_uids |= {1, 2, 3}
    box.store(2, ["\\Deleted"], mode=StoreMode.ADD)
    assert box.expunge() == [2]
    deliver(box.path, _msg(3))
    box.sync()
    with session(dovecot, USER, PASSWORD) as imap:
        imap.append("INBOX", None, None, _msg(4))
        final = flags_by_uid(imap)
        ids = message_ids(imap)
    box.sync()
    assert final == _view(box)
    assert sorted(final) == [3, 4, 5]  # 1 and 2 expunged, never handed out again
    assert not seen_uids & (set(final) - {3})
    assert ids == {3: "m2@test", 4: "m3@test", 5: "m4@test"}
