"""Relay framing: command names, safe points, literals, IDLE, COMPRESS."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from imapha.proxy.relaystate import (
    HEAD,
    REFUSED_SUFFIX,
    Bye,
    CommandStarted,
    Event,
    IdleDone,
    Phase,
    SessionTracker,
    Tagged,
    Violation,
)


def _client(t: SessionTracker, data: bytes) -> tuple[bytes, list[Event]]:
    return t.client_data(data)


def test_simple_command_and_safe_points() -> None:
    t = SessionTracker()
    assert t.safe_point
    fwd, ev = _client(t, b"a1 SELECT INBOX\r\n")
    assert fwd == b"a1 SELECT INBOX\r\n"
    assert ev == [CommandStarted(b"a1", b"SELECT", False)]
    assert not t.safe_point
    assert t.server_data(b"* 3 EXISTS\r\n") == []
    assert not t.safe_point
    assert t.server_data(b"a1 OK [READ-WRITE] done\r\n") == [Tagged(b"a1", b"OK")]
    assert t.safe_point


def test_literal_payload_is_not_parsed() -> None:
    t = SessionTracker()
    _client(t, b"a2 FETCH 1 BODY[]\r\n")
    body = b"a2 OK fake\r\n* BYE fake\r\n+ fake\r\n"
    events = t.server_data(b"* 1 FETCH (BODY[] {%d}\r\n" % len(body) + body[:10])
    assert events == []
    events = t.server_data(body[10:] + b")\r\n")
    assert events == []
    assert not t.safe_point  # tagged response not yet seen
    assert t.server_data(b"a2 OK FETCH done\r\n") == [Tagged(b"a2", b"OK")]
    assert t.safe_point


def test_half_sent_response_is_not_a_safe_point() -> None:
    t = SessionTracker()
    _client(t, b"a NOOP\r\n")
    t.server_data(b"a OK NOOP done\r\n* 4 EXI")
    assert not t.safe_point
    t.server_data(b"STS\r\n")
    assert t.safe_point


def test_append_with_synchronizing_literal() -> None:
    t = SessionTracker()
    fwd, ev = _client(t, b"a3 APPEND INBOX (\\Seen) {11}\r\n")
    assert fwd.endswith(b"{11}\r\n")
    assert ev == [CommandStarted(b"a3", b"APPEND", False)]
    t.server_data(b"+ Ready for literal data\r\n")
    fwd, ev = _client(t, b"hello\r\nwor")
    assert (fwd, ev) == (b"hello\r\nwor", [])  # literal bytes are not commands
    fwd, ev = _client(t, b"ld\r\n")
    assert ev == []
    assert t.server_data(b"a3 OK [APPENDUID 1 5] done\r\n") == [Tagged(b"a3", b"OK")]
    assert t.safe_point


def test_refused_sync_literal_ends_the_command() -> None:
    t = SessionTracker()
    _client(t, b"a4 APPEND Nope {5}\r\n")
    assert t.server_data(b"a4 NO [TRYCREATE] no such mailbox\r\n") == [Tagged(b"a4", b"NO")]
    _, ev = _client(t, b"a5 NOOP\r\n")
    assert ev == [CommandStarted(b"a5", b"NOOP", False)]


def test_nonsync_literal_and_multiappend() -> None:
    t = SessionTracker()
    data = b"a6 APPEND INBOX {3+}\r\nabc {4+}\r\nd\r\nf\r\na7 NOOP\r\n"
    fwd, ev = _client(t, data)
    assert fwd == data
    assert ev == [CommandStarted(b"a6", b"APPEND", False), CommandStarted(b"a7", b"NOOP", False)]


def test_unauthenticate_is_rewritten_so_the_backend_refuses_it() -> None:
    t = SessionTracker()
    fwd, ev = _client(t, b"x1 NOOP\r\nx2 unauthenticate\r\nx3 NOOP\r\n")
    assert fwd == b"x1 NOOP\r\nx2 unauthenticate" + REFUSED_SUFFIX + b"\r\nx3 NOOP\r\n"
    assert CommandStarted(b"x2", b"UNAUTHENTICATE", True) in ev


def test_unauthenticate_split_byte_by_byte_never_leaks() -> None:
    t = SessionTracker()
    sent = b""
    for byte in b"x2 UNAUTHENTICATE\r\n":
        fwd, _ = _client(t, bytes([byte]))
        sent += fwd
    assert sent == b"x2 UNAUTHENTICATE" + REFUSED_SUFFIX + b"\r\n"


def test_absurd_tag_is_a_violation() -> None:
    t = SessionTracker()
    fwd, ev = _client(t, b"x" * (HEAD + 10))
    assert fwd == b""
    assert isinstance(ev[-1], Violation)


def test_idle_is_a_safe_point_once_acknowledged() -> None:
    t = SessionTracker()
    _client(t, b"i1 IDLE\r\n")
    assert not t.safe_point
    t.server_data(b"+ idling\r\n")
    assert t.phase is Phase.IDLE
    assert t.safe_point
    t.server_data(b"* 5 EXISTS\r\n")
    assert t.safe_point
    fwd, ev = _client(t, b"DONE\r\n")
    assert fwd == b"DONE\r\n"
    assert ev == [IdleDone()]
    t.server_data(b"i1 OK Idle completed\r\n")
    assert t.safe_point
    assert t.phase is Phase.COMMANDS


def test_backend_bye_is_reported() -> None:
    t = SessionTracker()
    assert t.server_data(b"* BYE [UNAVAILABLE] shutting down\r\n") == [
        Bye(b"* BYE [UNAVAILABLE] shutting down")
    ]


def test_compress_makes_the_session_opaque() -> None:
    t = SessionTracker()
    _client(t, b"c1 COMPRESS DEFLATE\r\n")
    t.server_data(b"c1 OK DEFLATE active\r\n")
    assert t.phase is Phase.OPAQUE
    assert not t.safe_point
    compressed = b"\x78\x9c garbage {5}\r\n"
    assert _client(t, compressed) == (compressed, [])
    assert t.server_data(b"x1 OK\r\n") == []


SESSION_CLIENT = (
    b"a1 SELECT INBOX\r\na2 APPEND INBOX {5+}\r\nhello\r\na3 x2 UNAUTHENTICATE\r\n"
    b"a4 UNAUTHENTICATE\r\na5 IDLE\r\nDONE\r\n"
)


@settings(max_examples=200)
@given(st.lists(st.integers(min_value=1, max_value=len(SESSION_CLIENT)), max_size=20))
def test_chunking_never_changes_what_is_forwarded(cuts: list[int]) -> None:
    whole = SessionTracker()
    expected = whole.client_data(SESSION_CLIENT)
    t = SessionTracker()
    fwd, events = b"", []
    pos = 0
    for cut in [*sorted(set(cuts)), len(SESSION_CLIENT)]:
        out, ev = t.client_data(SESSION_CLIENT[pos:cut])
        fwd += out
        events += ev
        pos = cut
    assert (fwd, events) == expected
