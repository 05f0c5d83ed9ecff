"""Conformance: each test runs against ``imapha backend`` and against Dovecot.

The expectations are what RFC 3501/9051 and the extensions require and what
both servers answer, so a test that passes on Dovecot proves the test right.
Wire-level checks use :class:`tests.server.harness.Raw`; the client-library
tests use imaplib, imapclient and aioimaplib.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import re
from typing import Any

import pytest

from tests.server.harness import Raw, Target

MSG = (b"From: Alice <alice@example.org>\r\nTo: bob@example.org\r\n"
       b"Subject: conformance\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n"
       b"Message-ID: <1@example.org>\r\n\r\nHello, world.\r\nSecond line.\r\n")


def _code(tagged: bytes) -> str | None:
    m = re.search(rb"\[([A-Z-]+)", tagged)
    return m[1].decode() if m else None


def _append(c: Raw, box: str, data: bytes, extra: str = "") -> bytes:
    tag = c.tag()
    c.send(f"{tag} APPEND {box} {extra}{{{len(data)}+}}\r\n".encode() + data + b"\r\n")
    _untagged, tagged = c.collect(tag)
    assert b" OK" in tagged, tagged
    return tagged


def _flags(resp: bytes) -> set[bytes]:
    """The FLAGS of a FETCH response; \\Recent left out (imapha does not keep it)."""
    m = re.search(rb"FLAGS \(([^)]*)\)", resp)
    assert m is not None, resp
    return set(m[1].split()) - {b"\\Recent"}


def _fetches(untagged: list[bytes]) -> list[bytes]:
    return [r for r in untagged if r.split()[2:3] == [b"FETCH"]]


def _uids(untagged: list[bytes]) -> list[int]:
    out = []
    for r in _fetches(untagged):
        m = re.search(rb"UID (\d+)", r)
        assert m is not None, r
        out.append(int(m[1]))
    return out


def _numbers(untagged: list[bytes], name: bytes) -> list[int]:
    return [int(r.split()[1]) for r in untagged if r.split()[2:3] == [name]]


def test_greeting_and_capability(target: Target) -> None:
    with target.raw() as c:
        assert c.greeting.startswith(b"* OK")
        untagged = c.ok("CAPABILITY")
        caps = set(untagged[0].decode().split()[2:])
        assert {"IMAP4rev1", "IDLE", "ID", "LITERAL+", "SASL-IR", "AUTH=PLAIN"} <= caps
    c, _ = target.login()
    with c:
        caps = set(c.ok("CAPABILITY")[0].decode().split()[2:])
        assert {"IMAP4rev1", "IDLE", "UIDPLUS", "MOVE", "ID", "NAMESPACE", "LITERAL+",
                "ENABLE", "UNSELECT", "CHILDREN"} <= caps


def test_login_failure_says_authenticationfailed(target: Target) -> None:
    user, _ = target.take_user()
    with target.raw() as c:
        _, tagged = c.command(f"LOGIN {user} wrong-password")
        assert tagged.split()[1] == b"NO"
        assert _code(tagged) == "AUTHENTICATIONFAILED"
        _, tagged = c.command("LOGIN nosuchuser whatever")
        assert _code(tagged) == "AUTHENTICATIONFAILED"


def test_authenticate_plain_initial_response_and_continuation(target: Target) -> None:
    user, password = target.take_user()
    blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    with target.raw() as c:
        c.ok(f"AUTHENTICATE PLAIN {blob}")
        c.ok("SELECT INBOX")
    with target.raw() as c:
        tag = c.tag()
        c.send(f"{tag} AUTHENTICATE PLAIN\r\n".encode())
        assert c.read_line().startswith(b"+")
        c.send(blob.encode() + b"\r\n")
        _, tagged = c.collect(tag)
        assert b" OK" in tagged
    with target.raw() as c:
        tag = c.tag()
        c.send(f"{tag} AUTHENTICATE PLAIN\r\n".encode())
        assert c.read_line().startswith(b"+")
        c.send(b"*\r\n")
        _, tagged = c.collect(tag)
        assert tagged.split()[1] == b"BAD"


def test_commands_in_the_wrong_state_are_bad(target: Target) -> None:
    with target.raw() as c:
        _, tagged = c.command("SELECT INBOX")
        assert tagged.split()[1] == b"BAD"
        _, tagged = c.command("FETCH 1 FLAGS")
        assert tagged.split()[1] == b"BAD"
    c, _ = target.login()
    with c:
        _, tagged = c.command("FETCH 1 FLAGS")
        assert tagged.split()[1] == b"BAD"
        _, tagged = c.command("XYZZY")
        assert tagged.split()[1] == b"BAD"


def test_select_empty_inbox(target: Target) -> None:
    c, _ = target.login()
    with c:
        untagged = c.ok("SELECT INBOX")
        text = b"".join(untagged)
        assert b"* 0 EXISTS" in text
        assert re.search(rb"\[UIDVALIDITY \d+\]", text)
        assert re.search(rb"\[UIDNEXT 1\]", text)
        assert re.search(rb"\[PERMANENTFLAGS \(.*\\\*\)\]", text)
        assert b"* FLAGS (" in text


def test_append_then_fetch_is_byte_exact(target: Target) -> None:
    c, _ = target.login()
    with c:
        tagged = _append(c, "INBOX", MSG, '(\\Flagged $Work) "14-Jul-2020 10:11:12 +0200" ')
        m = re.search(rb"\[APPENDUID (\d+) (\d+)\]", tagged)
        assert m is not None and m[2] == b"1"
        untagged = c.ok("SELECT INBOX")
        assert re.search(rb"\[UIDVALIDITY " + m[1] + rb"\]", b"".join(untagged))
        untagged = c.ok("FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
        resp = untagged[0]
        assert b"UID 1" in resp
        assert _flags(resp) == {b"\\Flagged", b"$Work"}
        assert b'INTERNALDATE "14-Jul-2020 ' in resp or b'INTERNALDATE "14-Jul-2020' in resp
        assert f"RFC822.SIZE {len(MSG)}".encode() in resp
        assert resp.endswith(MSG + b")\r\n")


def test_append_to_missing_mailbox_is_trycreate(target: Target) -> None:
    c, _ = target.login()
    with c:
        tag = c.tag()
        c.send(f"{tag} APPEND Nowhere {{{len(MSG)}+}}\r\n".encode() + MSG + b"\r\n")
        _, tagged = c.collect(tag)
        assert tagged.split()[1] == b"NO"
        assert _code(tagged) == "TRYCREATE"


def test_store_flags_and_keywords(target: Target) -> None:
    c, _ = target.login()
    with c:
        _append(c, "INBOX", MSG)
        _append(c, "INBOX", MSG)
        c.ok("SELECT INBOX")
        untagged = _fetches(c.ok("STORE 1:2 +FLAGS (\\Seen Important)"))
        assert [_flags(r) for r in untagged] == [{b"\\Seen", b"Important"}] * 2
        untagged = _fetches(c.ok("STORE 1 -FLAGS (\\Seen)"))
        assert [_flags(r) for r in untagged] == [{b"Important"}]
        assert _fetches(c.ok("STORE 2 FLAGS.SILENT (\\Deleted)")) == []
        untagged = _fetches(c.ok("UID STORE 2 +FLAGS (\\Answered)"))
        assert b"UID 2" in untagged[0]
        untagged = _fetches(c.ok("FETCH 1:2 FLAGS"))
        flags = {int(r.split()[1]): _flags(r) for r in untagged}
        assert flags == {1: {b"Important"}, 2: {b"\\Deleted", b"\\Answered"}}


def test_fetch_sets_seen_unless_peek(target: Target) -> None:
    c, _ = target.login()
    with c:
        _append(c, "INBOX", MSG)
        c.ok("SELECT INBOX")
        c.ok("FETCH 1 BODY.PEEK[HEADER]")
        assert b"\\Seen" not in c.ok("FETCH 1 FLAGS")[0]
        untagged = c.ok("FETCH 1 BODY[TEXT]")
        assert b"\\Seen" in b"".join(untagged)
        c.ok("STORE 1 -FLAGS.SILENT (\\Seen)")
        c.ok("EXAMINE INBOX")
        c.ok("FETCH 1 BODY[TEXT]")
        assert b"\\Seen" not in c.ok("FETCH 1 FLAGS")[0]


def test_copy_and_move_report_uids(target: Target) -> None:
    c, _ = target.login()
    with c:
        for _ in range(3):
            _append(c, "INBOX", MSG)
        c.ok("CREATE Archive")
        c.ok("SELECT INBOX")
        _, tagged = c.command("COPY 1:2 Archive")
        assert re.search(rb"\[COPYUID \d+ 1:2 1:2\]", tagged), tagged
        _, tagged = c.command("COPY 1 Nowhere")
        assert _code(tagged) == "TRYCREATE"
        untagged = c.ok("UID MOVE 3 Archive")
        assert any(re.search(rb"\[COPYUID \d+ 3 3\]", r) for r in untagged), untagged
        assert _numbers(untagged, b"EXPUNGE") == [3]
        untagged = c.ok("STATUS Archive (MESSAGES UIDNEXT)")
        assert b"MESSAGES 3" in untagged[0] and b"UIDNEXT 4" in untagged[0]
        untagged = c.ok("MOVE 1 Archive")
        assert _numbers(untagged, b"EXPUNGE") == [1]
        untagged = c.ok("FETCH 1:* UID")
        assert _uids(untagged) == [2]


def test_expunge_and_uid_expunge(target: Target) -> None:
    c, _ = target.login()
    with c:
        for _ in range(5):
            _append(c, "INBOX", MSG)
        c.ok("SELECT INBOX")
        c.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
        # Either order is legal as long as each number is right when sent.
        assert _numbers(c.ok("EXPUNGE"), b"EXPUNGE") in ([2, 3], [4, 2])
        c.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")  # UIDs 1, 3, 5
        untagged = c.ok("UID EXPUNGE 1:3")
        assert _numbers(untagged, b"EXPUNGE") in ([1, 1], [2, 1])
        untagged = c.ok("FETCH 1:* UID")
        assert _uids(untagged) == [5]
        c.ok("CLOSE")
        untagged = c.ok("STATUS INBOX (MESSAGES)")
        assert b"MESSAGES 0" in untagged[0]


def test_mailbox_management(target: Target) -> None:
    c, _ = target.login()
    with c:
        c.ok("CREATE Projects")
        c.ok("CREATE Projects.Alpha")
        _, tagged = c.command("CREATE Projects")
        assert tagged.split()[1] == b"NO"
        untagged = c.ok('LIST "" *')
        names = {r.rsplit(b" ", 1)[1].strip().strip(b'"') for r in untagged}
        assert {b"INBOX", b"Projects", b"Projects.Alpha"} <= names
        parent = next(r for r in untagged if r.rstrip().endswith((b" Projects", b' "Projects"')))
        assert b"\\HasChildren" in parent
        untagged = c.ok('LIST "" %')
        names = {r.rsplit(b" ", 1)[1].strip().strip(b'"') for r in untagged}
        assert b"Projects.Alpha" not in names and b"Projects" in names
        untagged = c.ok('LIST "" ""')
        assert b"\\Noselect" in untagged[0]
        c.ok("RENAME Projects Work")
        untagged = c.ok('LIST "" Work*')
        names = {r.rsplit(b" ", 1)[1].strip().strip(b'"') for r in untagged}
        assert names == {b"Work", b"Work.Alpha"}
        c.ok("SUBSCRIBE Work")
        untagged = c.ok('LSUB "" *')
        assert any(r.rstrip().endswith((b" Work", b' "Work"')) for r in untagged)
        c.ok("UNSUBSCRIBE Work")
        assert not any(b"Work" in r for r in c.ok('LSUB "" *'))
        c.ok("DELETE Work.Alpha")
        _, tagged = c.command("DELETE Nonesuch")
        assert tagged.split()[1] == b"NO"
        _, tagged = c.command("SELECT Nonesuch")
        assert tagged.split()[1] == b"NO"
        _, tagged = c.command("DELETE INBOX")
        assert tagged.split()[1] == b"NO"


def test_international_mailbox_names_round_trip(target: Target) -> None:
    c, _ = target.login()
    with c:
        c.ok("CREATE Entw&APw-rfe")
        untagged = c.ok('LIST "" Entw*')
        assert any(b"Entw&APw-rfe" in r for r in untagged)


def test_rename_inbox_moves_its_messages(target: Target) -> None:
    c, _ = target.login()
    with c:
        _append(c, "INBOX", MSG)
        _append(c, "INBOX", MSG)
        _, tagged = c.command("RENAME INBOX Old")
        if target.kind == "dovecot":
            # Dovecot's Maildir++ layout refuses (a documented limitation); RFC 3501
            # §6.3.5 allows the move, which imapha does.
            assert _code(tagged) == "CANNOT"
            return
        assert b" OK" in tagged
        assert b"MESSAGES 2" in c.ok("STATUS Old (MESSAGES)")[0]
        assert b"MESSAGES 0" in c.ok("STATUS INBOX (MESSAGES)")[0]


def test_status_items(target: Target) -> None:
    c, _ = target.login()
    with c:
        _append(c, "INBOX", MSG, "(\\Seen) ")
        _append(c, "INBOX", MSG)
        untagged = c.ok("STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY)")
        assert re.search(rb"MESSAGES 2", untagged[0]) and re.search(rb"UNSEEN 1", untagged[0])
        assert re.search(rb"UIDNEXT 3", untagged[0]) and re.search(rb"UIDVALIDITY \d+",
                                                                    untagged[0])


def test_pipelined_commands_are_answered_in_order(target: Target) -> None:
    user, password = target.take_user()
    with target.raw() as c:
        data = MSG
        c.send(
            f"p1 LOGIN {user} {password}\r\n"
            f"p2 APPEND INBOX {{{len(data)}+}}\r\n".encode() + data +
            b"\r\np3 SELECT INBOX\r\np4 NOOP\r\np5 FETCH 1 (UID RFC822.SIZE)\r\n"
            b"p6 STORE 1 +FLAGS (\\Seen)\r\np7 FETCH 1 FLAGS\r\np8 CAPABILITY\r\n")
        tags = []
        for _ in range(100):
            resp = c.read_response()
            if resp[:1] == b"p":
                tags.append(resp.split()[0].decode())
                assert resp.split()[1] == b"OK", resp
                if len(tags) == 8:
                    break
        assert sorted(tags) == [f"p{i}" for i in range(1, 9)]
        if target.kind == "imapha":
            # RFC 3501 §5.5 lets a server finish commands out of order (Dovecot answers
            # NOOP after the FETCH behind it); imapha promises the order they came in.
            assert tags == [f"p{i}" for i in range(1, 9)]


def test_idle_sees_a_message_from_another_session(target: Target) -> None:
    user, password = target.take_user()
    with target.raw() as watcher, target.raw() as writer:
        watcher.ok(f"LOGIN {user} {password}")
        writer.ok(f"LOGIN {user} {password}")
        watcher.ok("SELECT INBOX")
        tag = watcher.tag()
        watcher.send(f"{tag} IDLE\r\n".encode())
        assert watcher.read_line().startswith(b"+")
        _append(writer, "INBOX", MSG)
        assert watcher.read_response(timeout=5).strip() == b"* 1 EXISTS"
        watcher.send(b"DONE\r\n")
        _, tagged = watcher.collect(tag)
        assert b" OK" in tagged


def test_changes_by_another_session_are_announced(target: Target) -> None:
    user, password = target.take_user()
    with target.raw() as a, target.raw() as b:
        a.ok(f"LOGIN {user} {password}")
        b.ok(f"LOGIN {user} {password}")
        for _ in range(3):
            _append(a, "INBOX", MSG)
        a.ok("SELECT INBOX")
        b.ok("SELECT INBOX")
        b.ok("STORE 1 +FLAGS.SILENT (\\Flagged)")
        b.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
        b.ok("EXPUNGE")
        # FETCH must not renumber: no EXPUNGE while it runs (RFC 3501 §7.4.1).
        untagged, _tagged = a.command("FETCH 1 FLAGS")
        assert not _numbers(untagged, b"EXPUNGE")
        untagged = a.ok("NOOP")
        assert _numbers(untagged, b"EXPUNGE") == [2]
        everything = b"".join(untagged)
        assert b"\\Flagged" in everything or b"\\Flagged" in b"".join(
            a.ok("FETCH 1 FLAGS"))
        assert _uids(a.ok("FETCH 1:* UID")) == [1, 3]


def test_namespace_and_id(target: Target) -> None:
    c, _ = target.login()
    with c:
        assert c.ok("NAMESPACE")[0].startswith(b'* NAMESPACE (("" "."))')
        assert c.ok('ID ("name" "test")')[0].startswith(b"* ID ")


def test_bad_syntax_keeps_the_session(target: Target) -> None:
    c, _ = target.login()
    with c:
        for line in ("SELECT", "FETCH", "STORE 1 FOO (x)", 'LIST "" ', "UID FROB 1",
                     "APPEND INBOX (\\Bogus) {1+}\r\nx"):
            _, tagged = c.command(line)
            assert tagged.split()[1] in (b"BAD", b"NO"), (line, tagged)
        c.ok("NOOP")


def test_imaplib_client(target: Target) -> None:
    user, password = target.take_user()
    m: Any = imaplib.IMAP4(target.host, target.port)
    try:
        m.login(user, password)
        typ, data = m.append("INBOX", "(\\Seen)", None, MSG)
        assert typ == "OK"
        typ, data = m.select("INBOX")
        assert typ == "OK" and data == [b"1"]
        typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK" and data[0][1] == b"Subject: conformance\r\n\r\n"
        typ, data = m.uid("STORE", "1", "+FLAGS", "(\\Answered)")
        assert typ == "OK"
        typ, data = m.list()
        assert typ == "OK"
    finally:
        m.logout()


def test_imapclient_client(target: Target) -> None:
    imapclient = pytest.importorskip("imapclient")
    user, password = target.take_user()
    client = imapclient.IMAPClient(target.host, port=target.port, ssl=False, timeout=10)
    try:
        client.login(user, password)
        client.create_folder("Reports")
        client.append("Reports", MSG, flags=[imapclient.SEEN])
        info = client.select_folder("Reports")
        assert info[b"EXISTS"] == 1
        fetched = client.fetch([1], ["FLAGS", "RFC822.SIZE", "ENVELOPE"])
        data = next(iter(fetched.values()))
        assert imapclient.SEEN in data[b"FLAGS"]
        assert data[b"RFC822.SIZE"] == len(MSG)
        assert data[b"ENVELOPE"].subject == b"conformance"
        client.move([1], "INBOX")
        assert client.folder_status("INBOX", ["MESSAGES"])[b"MESSAGES"] == 1
    finally:
        client.logout()


def test_aioimaplib_client(target: Target) -> None:
    aioimaplib = pytest.importorskip("aioimaplib")
    user, password = target.take_user()

    async def go() -> None:
        client = aioimaplib.IMAP4(host=target.host, port=target.port, timeout=10)
        await client.wait_hello_from_server()
        await client.login(user, password)
        response = await client.append(MSG, mailbox="INBOX", flags="(\\Flagged)")
        assert response.result == "OK"
        response = await client.select("INBOX")
        assert response.result == "OK"
        response = await client.uid("fetch", "1", "(FLAGS)")
        assert response.result == "OK" and b"\\Flagged" in b"".join(
            x for x in response.lines if isinstance(x, bytes))
        await client.logout()

    asyncio.run(asyncio.wait_for(go(), 30))


def test_search(target: Target) -> None:
    c, _ = target.login()
    with c:
        for subject, flags in (("apples", "(\\Seen) "), ("pears", "(\\Flagged) "),
                               ("apple pie", "")):
            _append(c, "INBOX", MSG.replace(b"conformance", subject.encode()), flags)
        c.ok("SELECT INBOX")

        def hits(query: str) -> list[int]:
            untagged = c.ok(query)
            line = next(r for r in untagged if r.startswith(b"* SEARCH"))
            return [int(x) for x in line.split()[2:]]

        assert hits("SEARCH UNSEEN") == [2, 3]
        assert hits("SEARCH SUBJECT apple") == [1, 3]
        assert hits("UID SEARCH FLAGGED") == [2]
        assert hits("SEARCH OR SEEN FLAGGED") == [1, 2]
        assert hits("SEARCH 2:* NOT SUBJECT pie") == [2]
        assert hits("SEARCH CHARSET UTF-8 BODY world") == [1, 2, 3]
        assert hits("SEARCH LARGER 100000") == []
        _, tagged = c.command("SEARCH CHARSET X-NO-SUCH-CHARSET BODY x")
        assert tagged.split()[1] == b"NO" and _code(tagged) == "BADCHARSET"
        _, tagged = c.command("SEARCH FROBNICATE")
        assert tagged.split()[1] == b"BAD"


def test_selected_mailbox_deleted_by_another_session_ends_with_bye(target: Target) -> None:
    user, password = target.take_user()
    with target.raw() as a, target.raw() as b:
        a.ok(f"LOGIN {user} {password}")
        b.ok(f"LOGIN {user} {password}")
        a.ok("CREATE Doomed")
        _append(a, "Doomed", MSG)
        a.ok("SELECT Doomed")
        b.ok("DELETE Doomed")
        seen = b""
        try:
            for _ in range(3):
                a.send(f"{a.tag()} NOOP\r\n".encode())
                for _ in range(10):
                    resp = a.read_response()
                    seen += resp
                    if resp[:1] != b"*":
                        break
                if b"* BYE" in seen:
                    break
        except (ConnectionError, OSError):
            pass
        assert b"* BYE" in seen, seen
