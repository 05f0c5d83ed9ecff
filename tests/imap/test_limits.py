"""Every limit: refused with the right response, nothing buffered beyond it."""

from __future__ import annotations

from collections.abc import Sequence

from imapha.imap import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    PRE_LOGIN,
    Atom,
    ClientConnection,
    Command,
    ContinuationRequired,
    Limits,
    Literal,
    Noop,
    PList,
    ProtocolViolation,
    RemoteProtocolError,
    ServerConnection,
    Tag,
)
from imapha.imap.errors import LimitExceeded

from .helpers import client_events, drain_server, feed_server


def violations(events: Sequence[object]) -> list[bytes]:
    return [e.response for e in events if isinstance(e, ProtocolViolation)]


def test_line_too_long_is_refused_while_arriving() -> None:
    conn = ServerConnection(PRE_LOGIN)
    conn.receive_data(b"a1 LOGIN " + b"x" * (PRE_LOGIN.max_line + 10))
    [v, sentinel] = drain_server(conn)
    assert isinstance(v, ProtocolViolation) and not v.fatal
    assert v.response == b"a1 BAD [TOOBIG] Line too long\r\n"
    assert sentinel is NEED_DATA
    assert conn._framer.buffered == 0  # nothing kept
    # the rest of the long line is dropped unseen, then commands work again
    for _ in range(100):
        conn.receive_data(b"y" * 1000)
        assert drain_server(conn) == [NEED_DATA]
        assert conn._framer.buffered == 0
    conn.receive_data(b" tail\r\na2 NOOP\r\n")
    assert drain_server(conn) == [Noop(Tag("a2")), NEED_DATA]


def test_line_exactly_at_limit_is_accepted() -> None:
    limits = Limits(max_line=20)
    line = b"a1 X " + b"y" * 15
    assert len(line) == 20
    assert feed_server(ServerConnection(limits), line + b"\r\n") == [
        Command(Tag("a1"), "X", (Atom("y" * 15),))
    ]
    [v] = feed_server(ServerConnection(limits), line + b"z\r\n")
    assert isinstance(v, ProtocolViolation)


def test_long_line_ending_in_non_sync_literal_skips_that_literal() -> None:
    limits = Limits(max_line=20, max_skip=100)
    data = b"a1 X " + b"y" * 30 + b" {11+}\r\nb2 LOGOUT\r\n" + b"\r\nc3 NOOP\r\n"
    events = feed_server(ServerConnection(limits), data)
    assert violations(events) == [b"a1 BAD [TOOBIG] Line too long\r\n"]
    assert events[-1] == Noop(Tag("c3"))  # "b2 LOGOUT" was literal data, never run


def test_literal_count_tokens_and_depth() -> None:
    limits = Limits(max_literals=1, max_tokens=5, max_depth=2)
    data = (
        b"a1 X {1+}\r\na {1+}\r\nb\r\n"
        b"a2 X 1 2 3 4 5 6\r\n"
        b"a3 X (((x)))\r\n"
        b"a4 X ((x))\r\n"
    )
    events = feed_server(ServerConnection(limits), data)
    assert violations(events) == [
        b"a1 BAD [LIMIT] Too many literals\r\n",
        b"a2 BAD [LIMIT] Too many arguments\r\n",
        b"a3 BAD [LIMIT] Lists nested too deeply\r\n",
    ]
    assert events[-1] == Command(Tag("a4"), "X", (PList((PList((Atom("x"),)),)),))


def test_command_size_limit_counts_all_literals() -> None:
    limits = Limits(max_literal=100, max_command=150)
    data = b"a1 X {80+}\r\n" + b"p" * 80 + b" {80+}\r\n" + b"q" * 80 + b"\r\na2 NOOP\r\n"
    events = feed_server(ServerConnection(limits), data)
    assert violations(events) == [b"a1 BAD [TOOBIG] Command too big\r\n"]
    assert events[-1] == Noop(Tag("a2"))


def test_huge_announcement_is_refused_before_buffering() -> None:
    conn = ServerConnection(PRE_LOGIN)
    conn.receive_data(b"a1 LOGIN {18446744073709551616}\r\n")
    [v, _] = drain_server(conn)
    assert isinstance(v, ProtocolViolation) and not v.fatal
    assert isinstance(v.error, LimitExceeded) and v.error.limit == "max_literal"
    conn.receive_data(b"a1 LOGIN {4294967296+}\r\n")
    [v, _] = drain_server(conn)
    assert isinstance(v, ProtocolViolation) and v.fatal
    assert v.response == b"* BYE [TOOBIG] Literal too big\r\n"


def test_strict_crlf_option() -> None:
    strict = Limits(accept_bare_lf=False)
    events = feed_server(ServerConnection(strict), b"a1 NOOP\na2 NOOP\r\n")
    assert violations(events) == [b"a1 BAD Line must end with CRLF\r\n"]
    assert events[-1] == Noop(Tag("a2"))
    assert feed_server(ServerConnection(), b"a1 NOOP\n") == [Noop(Tag("a1"))]


def test_client_side_limits_are_fatal() -> None:
    conn = ClientConnection(Limits(max_literal=10))
    out = client_events(conn, b"* OK hi\r\n* 1 FETCH (BODY[] {11}\r\n")
    assert isinstance(out[-1], LimitExceeded)
    conn = ClientConnection(Limits(max_line=30))
    out = client_events(conn, b"* OK " + b"x" * 40 + b"\r\n")
    assert isinstance(out[-1], RemoteProtocolError)
    assert out[-1].code == "TOOBIG"


def test_literal_minus_server_refuses_big_non_sync_but_not_sync() -> None:
    from imapha.imap.limits import LITERAL_MINUS_MAX

    limits = Limits(max_nonsync_literal=LITERAL_MINUS_MAX, max_skip=10_000)
    big = b"m" * (LITERAL_MINUS_MAX + 1)
    events = feed_server(
        ServerConnection(limits), b"a1 APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n"
    )
    assert violations(events) == [b"a1 BAD [TOOBIG] Non-synchronizing literal too big\r\n"]
    assert len(events) == 1
    sync = b"a2 APPEND INBOX {%d}\r\n" % len(big) + big + b"\r\n"
    ok = feed_server(ServerConnection(limits), sync)
    assert isinstance(ok[0], ContinuationRequired)
    assert ok[1] == Command(Tag("a2"), "APPEND", (Atom("INBOX"), Literal(big)))
    small = b"s" * LITERAL_MINUS_MAX
    events = feed_server(
        ServerConnection(limits), b"a3 APPEND INBOX {%d+}\r\n" % len(small) + small + b"\r\n"
    )
    assert events == [Command(Tag("a3"), "APPEND", (Atom("INBOX"), Literal(small)))]


def test_paused_connection_does_not_buffer_without_bound() -> None:
    conn = ServerConnection(PRE_LOGIN)
    conn.receive_data(b"a1 AUTHENTICATE PLAIN\r\n")
    assert drain_server(conn)[-1] is PAUSED
    for _ in range(PRE_LOGIN.max_command // 1000 + 2):
        conn.receive_data(b"z" * 1000)
    [v, closed] = drain_server(conn)
    assert isinstance(v, ProtocolViolation) and v.fatal
    assert v.response == b"* BYE [LIMIT] Too much data sent while a command waits\r\n"
    assert closed is CLOSED and conn._framer.buffered == 0
