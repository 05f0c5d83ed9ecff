"""The sans-I/O session driven with bytes: behaviours only imapha promises.

No sockets, no threads: two sessions on one Maildir in this process, as two
clients of one backend would be.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from imapha.server.passwd import UserDb
from imapha.server.session import Close, ServerContext, Session, Watch


def _text(actions: Sequence[object]) -> bytes:
    return b"".join(a for a in actions if isinstance(a, bytes))


@pytest.fixture
def ctx(tmp_path: Path) -> ServerContext:
    (tmp_path / "passwd").write_text("u:{PLAIN}p::::::\n")
    (tmp_path / "mail").mkdir()
    return ServerContext(UserDb(tmp_path / "passwd"), tmp_path / "mail")


def _session(ctx: ServerContext) -> Session:
    s = Session(ctx, "198.51.100.7")
    s.greeting()
    assert b"a OK" in _text(s.receive(b"a LOGIN u p\r\n"))
    return s


def test_expunge_by_another_session_waits_until_allowed(ctx: ServerContext) -> None:
    a, b = _session(ctx), _session(ctx)
    for i in range(3):
        a.receive(b"x APPEND INBOX {7+}\r\nmsg %d\r\n\r\n" % i)
    a.receive(b"s SELECT INBOX\r\n")
    b.receive(b"s SELECT INBOX\r\nt STORE 2 +FLAGS.SILENT (\\Deleted)\r\ne EXPUNGE\r\n")
    out = _text(a.receive(b"f FETCH 2 BODY[]\r\n"))
    assert not re.search(rb"\* \d+ EXPUNGE", out)
    assert re.search(rb"f NO \[EXPUNGEISSUED\]", out)
    out = _text(a.receive(b"g SEARCH ALL\r\n"))
    assert b"* SEARCH 1 3\r\n" in out and not re.search(rb"\* \d+ EXPUNGE", out)
    out = _text(a.receive(b"n NOOP\r\n"))
    assert out.startswith(b"* 2 EXPUNGE\r\n")
    out = _text(a.receive(b"u FETCH 1:* UID\r\n"))
    assert b"* 1 FETCH (UID 1)" in out and b"* 2 FETCH (UID 3)" in out


def test_idle_wake_announces_and_done_ends(ctx: ServerContext) -> None:
    a, b = _session(ctx), _session(ctx)
    actions = a.receive(b"s SELECT INBOX\r\ni IDLE\r\n")
    assert any(isinstance(x, Watch) and x.path is not None for x in actions)
    assert _text(actions).endswith(b"+ idling\r\n")
    b.receive(b"x APPEND INBOX {5+}\r\nhello\r\n")
    assert _text(a.wake()) == b"* 1 EXISTS\r\n"
    assert _text(a.wake()) == b""
    assert _text(a.receive(b"DONE\r\n")) == b"i OK Idle completed\r\n"


def test_uidvalidity_change_ends_the_session(ctx: ServerContext) -> None:
    a = _session(ctx)
    a.receive(b"x APPEND INBOX {5+}\r\nhello\r\ns SELECT INBOX\r\n")
    (ctx.maildir_of("u") / "dovecot-uidlist").unlink()
    actions = a.receive(b"n NOOP\r\n")
    assert b"* BYE [UNAVAILABLE]" in _text(actions)
    assert isinstance(actions[-1], Close)


def test_bye_at_a_safe_point(ctx: ServerContext) -> None:
    a = _session(ctx)
    actions = a.shutdown("Server draining")
    assert _text(actions) == b"* BYE [UNAVAILABLE] Server draining\r\n"
    assert isinstance(actions[-1], Close) and a.closed
    assert a.receive(b"n NOOP\r\n") == []


def test_sessions_share_one_view_per_folder_and_release_it(ctx: ServerContext) -> None:
    a, b = _session(ctx), _session(ctx)
    for i in range(3):
        a.receive(b"x APPEND INBOX {7+}\r\nmsg %d\r\n\r\n" % i)
    # The store rescans a folder whose mtimes are under 2 s old (coarse NFS clocks).
    time.sleep(2.1)
    a.receive(b"s SELECT INBOX\r\n")
    assert a.selected is not None
    shared = a.selected.folder
    scans = shared.mailbox.stats["scans"]
    b.receive(b"s SELECT INBOX\r\n")
    assert b.selected is not None and b.selected.folder is shared
    assert shared.mailbox.stats["scans"] == scans  # the second SELECT did not rescan
    # A change through one session is announced to the other, once.
    assert b"* 2 FETCH (FLAGS (\\Flagged))" not in _text(a.receive(b"t STORE 2 +FLAGS.SILENT "
                                                                   b"(\\Flagged)\r\n"))
    out = _text(b.receive(b"n NOOP\r\n"))
    assert b"* 2 FETCH (FLAGS (\\Flagged))\r\n" in out
    assert b"FETCH" not in _text(b.receive(b"n NOOP\r\n"))
    assert b"FETCH" not in _text(a.receive(b"n NOOP\r\n"))
    a.receive(b"c CLOSE\r\n")
    assert len(ctx.folder_cache) == 1
    b.close()
    assert len(ctx.folder_cache) == 0


def test_originating_ip_believed_only_from_trusted_proxies(tmp_path: Path) -> None:
    import ipaddress

    (tmp_path / "passwd").write_text("u:{PLAIN}p::::::\n")
    (tmp_path / "mail").mkdir()
    trusted = (ipaddress.ip_network("192.0.2.0/24"),)
    ctx = ServerContext(UserDb(tmp_path / "passwd"), tmp_path / "mail", trusted_proxies=trusted)
    line = b'i ID ("x-originating-ip" "203.0.113.9")\r\n'
    proxied = Session(ctx, "192.0.2.10")
    proxied.greeting()
    proxied.receive(line)
    assert proxied.client_ip == "203.0.113.9"
    direct = Session(ctx, "198.51.100.7")
    direct.greeting()
    direct.receive(line)
    assert direct.client_ip == "198.51.100.7"


def test_status_on_a_selected_folder_does_not_hide_news(ctx: ServerContext) -> None:
    a, b = _session(ctx), _session(ctx)
    a.receive(b"s SELECT INBOX\r\n")
    b.receive(b"x APPEND INBOX {5+}\r\nhello\r\n")
    # STATUS by another session first, then by the selecting one: each sync of
    # the shared view must still leave the news for the session to announce.
    out = _text(b.receive(b"t STATUS INBOX (MESSAGES UIDNEXT)\r\n"))
    assert b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2)" in out
    seen = _text(a.receive(b"t STATUS INBOX (MESSAGES UIDNEXT)\r\n"))
    assert b"* STATUS INBOX (MESSAGES 1 UIDNEXT 2)" in seen
    seen += _text(a.receive(b"n NOOP\r\n"))
    assert seen.count(b"* 1 EXISTS") == 1


def test_reselect_reuses_the_kept_view_and_still_sees_outside_changes(
        ctx: ServerContext) -> None:
    from imapha.maildir.deliver import deliver

    a = _session(ctx)
    for i in range(3):
        a.receive(b"x APPEND INBOX {7+}\r\nmsg %d\r\n\r\n" % i)
    a.receive(b"s SELECT INBOX\r\n")
    assert a.selected is not None
    kept = a.selected.folder
    a.receive(b"c CLOSE\r\n")
    assert len(ctx.folder_cache) == 0  # nobody has it selected now
    # Meanwhile another writer (an MTA, Dovecot) delivers one and flags one.
    inbox = ctx.maildir_of("u")
    deliver(inbox, b"Subject: new\r\n\r\nnew\r\n")
    base1 = next(line.split(":", 1)[1] for line in
                 (inbox / "dovecot-uidlist").read_text().splitlines()[1:]
                 if line.split(" ", 1)[0] == "1")
    first = next(p for p in (inbox / "cur").iterdir() if p.name.startswith(base1))
    first.rename(first.with_name(first.name.split(":")[0] + ":2,F"))
    b = _session(ctx)
    out = _text(b.receive(b"s SELECT INBOX\r\n"))
    assert b.selected is not None and b.selected.folder is kept
    assert b"* 4 EXISTS\r\n" in out
    out = _text(b.receive(b"f FETCH 1:* (UID FLAGS)\r\n"))
    assert b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n" in out
    assert b"* 4 FETCH (UID 4 FLAGS (\\Recent))\r\n" in out  # new to everyone: b's


def test_failed_login_holds_its_answer_and_the_commands_behind_it(
        ctx: ServerContext) -> None:
    from imapha.server.session import Hold

    s = Session(ctx, "198.51.100.9")
    s.greeting()
    actions = s.receive(b"a LOGIN u nope\r\nb LOGIN u p\r\n")
    holds = [a for a in actions if isinstance(a, Hold)]
    assert len(holds) == 1 and holds[0].seconds == 2.0
    # The NO comes after the hold; the pipelined LOGIN has not been read yet.
    assert actions.index(holds[0]) < next(i for i, a in enumerate(actions)
                                          if isinstance(a, bytes) and a.startswith(b"a NO"))
    assert b"b OK" not in _text(actions)
    assert b"b OK" in _text(s.resume())
    # The next failure from that address waits longer; another address is not held.
    t = Session(ctx, "198.51.100.9")
    t.greeting()
    assert [a.seconds for a in t.receive(b"a LOGIN u bad\r\n") if isinstance(a, Hold)] == [2.0]
    assert [a.seconds for a in t.resume() + t.receive(b"c LOGIN u bad\r\n")
            if isinstance(a, Hold)] == [4.0]
    other = Session(ctx, "203.0.113.5")
    other.greeting()
    out = other.receive(b"a LOGIN u bad\r\n")
    assert [a.seconds for a in out if isinstance(a, Hold)] == [2.0]


def test_envelope_from_the_index_after_a_restart_and_never_from_a_stale_entry(
        ctx: ServerContext) -> None:
    from imapha.maildir import index as ix

    a = _session(ctx)
    for i in range(3):
        a.receive(b"x APPEND INBOX {27+}\r\nSubject: number %d\r\n\r\nbody\r\n\r\n" % i)
    a.receive(b"s SELECT INBOX\r\n")
    first = _text(a.receive(b"f FETCH 1:* (ENVELOPE RFC822.SIZE BODY.PEEK[HEADER])\r\n"))
    assert b"number 2" in first
    a.receive(b"c CLOSE\r\n")  # the last session leaves: the index is written
    path = ctx.maildir_of("u") / ix.FILENAME
    table = ix.parse(path.read_bytes())
    assert len(table) == 3
    # A restarted backend answers the same from the index.
    fresh = ServerContext(ctx.users, ctx.maildir_root)
    b = _session(fresh)
    b.receive(b"s SELECT INBOX\r\n")
    assert _text(b.receive(b"f FETCH 1:* (ENVELOPE RFC822.SIZE BODY.PEEK[HEADER])\r\n")) == first
    assert b.selected is not None and b.selected.mailbox.index.stats["hits"] == 3
    # An entry that does not match its file (another mtime) is not believed.
    forged = {base: ix.Entry(e.size, e.mtime_ns + 1, e.crlf_size,
                             e.header.replace(b"number", b"forged"))
              for base, e in table.items()}
    path.write_bytes(ix.render(forged))
    c = _session(ServerContext(ctx.users, ctx.maildir_root))
    c.receive(b"s SELECT INBOX\r\n")
    assert _text(c.receive(b'f SEARCH SUBJECT "forged"\r\n')).startswith(b"* SEARCH\r\n")
    assert _text(c.receive(b"f FETCH 1:* (ENVELOPE RFC822.SIZE BODY.PEEK[HEADER])\r\n")) == first


def test_recent_belongs_to_one_session_and_survives_a_restart(ctx: ServerContext) -> None:
    from imapha.maildir.deliver import deliver

    a = _session(ctx)
    inbox = ctx.maildir_of("u")
    for i in range(2):
        deliver(inbox, b"Subject: %d\r\n\r\nx\r\n" % i)
    # EXAMINE shows them recent without taking them.
    out = _text(a.receive(b"e EXAMINE INBOX\r\n"))
    assert b"* 2 RECENT\r\n" in out
    b = _session(ctx)
    out = _text(b.receive(b"s SELECT INBOX\r\n"))
    assert b"* 2 RECENT\r\n" in out
    assert b"* 1 FETCH (FLAGS (\\Recent))" in _text(b.receive(b"f FETCH 1 FLAGS\r\n"))
    assert b"* SEARCH 1 2\r\n" in _text(b.receive(b"r SEARCH RECENT\r\n"))
    # The next session (same process) does not see them as recent ...
    c = _session(ctx)
    out = _text(c.receive(b"s SELECT INBOX\r\n"))
    assert b"* 0 RECENT\r\n" in out
    assert b"\\Recent" not in _text(c.receive(b"f FETCH 1:* FLAGS\r\n"))
    # ... a new arrival is recent to the one session that is told of it first.
    deliver(inbox, b"Subject: late\r\n\r\nx\r\n")
    assert b"* 3 EXISTS\r\n" in _text(c.receive(b"n NOOP\r\n"))
    assert b"* 3 FETCH (FLAGS (\\Recent))" in _text(c.receive(b"f FETCH 3 FLAGS\r\n"))
    assert b"* 3 EXISTS\r\n" in _text(b.receive(b"n NOOP\r\n"))
    assert _text(b.receive(b"f FETCH 3 FLAGS\r\n")).startswith(b"* 3 FETCH (FLAGS ())")
    assert b"RECENT 0" in _text(a.receive(b"t STATUS INBOX (RECENT)\r\n"))
    for s in (a, b, c):
        s.receive(b"l LOGOUT\r\n")
        s.close()
    # A restarted backend (the floor is kept in imapha.index) starts where it was.
    deliver(inbox, b"Subject: after\r\n\r\nx\r\n")
    d = _session(ServerContext(ctx.users, ctx.maildir_root))
    out = _text(d.receive(b"s SELECT INBOX\r\n"))
    assert b"* 4 EXISTS\r\n" in out and b"* 1 RECENT\r\n" in out
