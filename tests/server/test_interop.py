"""imapha and Dovecot on the same Maildir at the same time, plus local delivery.

Both servers serve one Maildir root (as two NFS clients would): what one
writes, the other reads with the same UIDs, flags and keywords, because both
keep ``dovecot-uidlist`` and ``dovecot-keywords`` by the same rules. Mail
delivered by ``imapha deliver`` (and by LMTP) wakes an IDLE session.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from imapha.lab.dovecot import DovecotServer, traversable_dir
from tests.prereq import need_binary
from tests.server.harness import ROOT, ImaphaBackend, Raw

USERS = {f"user{i}": f"pw-{i}" for i in range(20)}
MSG = b"From: a@example.org\r\nSubject: interop %d\r\n\r\nbody %d\r\n"


@dataclass
class Pair:
    imapha: ImaphaBackend
    dovecot: DovecotServer
    free: list[str]

    def user(self) -> tuple[str, str]:
        name = self.free.pop(0)
        return name, USERS[name]

    def clients(self, user: str, password: str) -> tuple[Raw, Raw]:
        a = Raw(self.imapha.host, self.imapha.imap_port)
        d = Raw(self.dovecot.listen, self.dovecot.imap_port)
        a.ok(f"LOGIN {user} {password}")
        d.ok(f"LOGIN {user} {password}")
        return a, d


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    need_binary("dovecot")
    root = traversable_dir("imapha-interop-")
    try:
        with DovecotServer(root / "dovecot", USERS, root / "mail") as dv, \
                ImaphaBackend(root / "imapha", USERS, root / "mail") as be:
            yield Pair(be, dv, sorted(USERS))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _append(c: Raw, data: bytes, flags: str = "") -> int:
    tag = c.tag()
    c.send(f"{tag} APPEND INBOX {flags}{{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    _, tagged = c.collect(tag)
    m = re.search(rb"\[APPENDUID \d+ (\d+)\]", tagged)
    assert m is not None, tagged
    return int(m[1])


def _view(c: Raw) -> dict[int, tuple[frozenset[bytes], bytes]]:
    """UID -> (flags without \\Recent, body) as the server reports them."""
    out = {}
    for resp in c.ok("FETCH 1:* (UID FLAGS BODY.PEEK[])"):
        if b" FETCH " not in resp:
            continue
        uid = re.search(rb"UID (\d+)", resp)
        flags = re.search(rb"FLAGS \(([^)]*)\)", resp)
        assert uid is not None and flags is not None
        body = resp[resp.index(b"}\r\n") + 3:].rsplit(b")", 1)[0]
        out[int(uid[1])] = (frozenset(flags[1].split()) - {b"\\Recent"}, body)
    return out


def _validity(untagged: list[bytes]) -> int:
    m = re.search(rb"\[UIDVALIDITY (\d+)\]", b"".join(untagged))
    assert m is not None
    return int(m[1])


def test_append_on_each_read_on_the_other(pair: Pair) -> None:
    user, password = pair.user()
    a, d = pair.clients(user, password)
    with a, d:
        uids = [_append(a, MSG % (1, 1), "(\\Seen $Label1) "),
                _append(d, MSG % (2, 2), "(\\Flagged $Label2) "),
                _append(a, MSG % (3, 3)),
                _append(d, MSG % (4, 4), "($Label1) ")]
        assert uids == [1, 2, 3, 4]
        va = _validity(a.ok("SELECT INBOX"))
        vd = _validity(d.ok("SELECT INBOX"))
        assert va == vd
        view_a, view_d = _view(a), _view(d)
        assert view_a == view_d
        assert view_a[1][0] == {b"\\Seen", b"$Label1"}
        assert view_a[4][0] == {b"$Label1"}
        # Flags changed on one side show on the other.
        a.ok("STORE 2 +FLAGS.SILENT (\\Answered $Label3)")
        d.ok("STORE 3 +FLAGS.SILENT (\\Deleted $Label4)")
        d.ok("EXPUNGE")
        a.ok("NOOP")
        d.ok("NOOP")
        view_a, view_d = _view(a), _view(d)
        assert view_a == view_d
        assert sorted(view_a) == [1, 2, 4]
        assert view_a[2][0] == {b"\\Flagged", b"\\Answered", b"$Label2", b"$Label3"}
        # New UIDs continue after the highest ever given, on both.
        assert _append(a, MSG % (5, 5)) == 5
        assert _append(d, MSG % (6, 6)) == 6


def test_copy_and_move_between_servers_agree(pair: Pair) -> None:
    user, password = pair.user()
    a, d = pair.clients(user, password)
    with a, d:
        for i in range(3):
            _append(d, MSG % (i, i))
        a.ok("CREATE Keep")
        a.ok("SELECT INBOX")
        a.ok("UID MOVE 1:2 Keep")
        d.ok("SELECT Keep")
        view = _view(d)
        assert sorted(view) == [1, 2]
        assert view[1][1] == MSG % (0, 0)
        d.ok("COPY 1 INBOX")
        a.ok("NOOP")
        assert sorted(_view(a)) == [3, 4]


def test_idle_wakes_on_imapha_deliver(pair: Pair) -> None:
    user, password = pair.user()
    with Raw(pair.imapha.host, pair.imapha.imap_port) as c:
        c.ok(f"LOGIN {user} {password}")
        c.ok("SELECT INBOX")
        tag = c.tag()
        c.send(f"{tag} IDLE\r\n".encode())
        assert c.read_line().startswith(b"+")
        started = time.monotonic()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.run(
            [sys.executable, "-m", "imapha", "deliver", user, "--config",
             str(pair.imapha.config), "--node", "a"],
            input=b"Subject: pushed\r\n\r\nhi\r\n", env=env, capture_output=True, timeout=30,
            check=False)
        assert proc.returncode == 0, proc.stderr
        line = c.read_response(timeout=5)
        assert line.strip() == b"* 1 EXISTS"
        assert time.monotonic() - started < 5
        c.send(b"DONE\r\n")
        _, tagged = c.collect(tag)
        assert b" OK" in tagged


def test_lmtp_delivers_per_recipient(pair: Pair) -> None:
    user, password = pair.user()
    with socket.create_connection((pair.imapha.host, pair.imapha.lmtp_port), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220 ")
        s.sendall(b"LHLO test.example\r\nMAIL FROM:<sender@example.org>\r\n"
                  + f"RCPT TO:<{user}@example.org>\r\n".encode()
                  + b"RCPT TO:<nobody-here@example.org>\r\nDATA\r\n")
        lines: list[bytes] = []
        while not lines or not lines[-1].startswith(b"354"):
            lines.append(f.readline())
        assert any(x.startswith(b"550") for x in lines)  # the unknown recipient
        s.sendall(b"Subject: lmtp\r\n\r\n..dot-stuffed line\r\nend\r\n.\r\n")
        reply = f.readline()
        assert reply.startswith(b"250 2.0.0"), reply  # one reply: one accepted recipient
        s.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"221")
    with Raw(pair.dovecot.listen, pair.dovecot.imap_port) as d:
        d.ok(f"LOGIN {user} {password}")
        d.ok("SELECT INBOX")
        body = _view(d)[1][1]
        assert b"Return-Path: <sender@example.org>" in body
        assert b"\r\n.dot-stuffed line\r\n" in body



def test_dovecot_ignores_our_index(pair: Pair) -> None:
    user, password = pair.user()
    a, d = pair.clients(user, password)
    with a, d:
        for i in range(3):
            _append(a, MSG % (i, i))
        a.ok("CREATE Sub")
        a.ok("SELECT INBOX")
        envelopes = [r for item in ("ENVELOPE", "RFC822.SIZE")
                     for r in a.ok(f"FETCH 1:* {item}") if b" FETCH " in r]
        a.ok("CLOSE")  # the last session leaves: imapha.index is written
        maildir = pair.imapha.maildir_root / user / "Maildir"
        assert (maildir / "imapha.index").is_file()
        listed = b"".join(d.ok('LIST "" "*"'))
        assert b"index" not in listed and b"Sub" in listed
        d.ok("SELECT INBOX")
        mine = [r for item in ("ENVELOPE", "RFC822.SIZE")
                for r in d.ok(f"FETCH 1:* {item}") if b" FETCH " in r]
        assert mine == envelopes  # and it serves the same messages the same way
