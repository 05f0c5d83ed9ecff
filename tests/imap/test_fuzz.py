"""Fuzz: arbitrary octets never raise anything but the layer's ProtocolError,
never make the server loop or buffer beyond its limits."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapha.imap import (
    PRE_LOGIN,
    ClientConnection,
    ContinuationRequest,
    Greeting,
    Limits,
    ProtocolError,
    ProtocolViolation,
    Sentinel,
    ServerConnection,
    Status,
    TaggedResponse,
)
from imapha.imap.commands import Authenticate, Command

FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))

fragments = st.sampled_from(
    [
        b"a1 ", b"LOGIN ", b"AUTHENTICATE PLAIN", b"ID ", b"(", b")", b'"', b"\\", b"{",
        b"}", b"{5}", b"{3+}", b"~{2}", b"{99999999999999999999999}", b"+", b"*", b" ",
        b"\r\n", b"\n", b"\r", b"\x00", b"\xff", b"NIL", b"[", b"]", b"* OK ", b"a1 OK ",
        b"+ ", b"[CAPABILITY IMAP4rev1]", b"IDLE", b"STARTTLS", b"DONE", b"=", b"dGVzdA==",
        b"* 1 FETCH (BODY[] {3}\r\nabc)", b"* CAPABILITY ", b"* ID (", b"BAD ", b"BYE",
    ]
)
octets = st.lists(st.one_of(fragments, st.binary(max_size=12)), max_size=40).map(b"".join)
chunks = st.lists(st.integers(1, 20), max_size=30)
TINY = Limits(
    max_line=48, max_literal=16, max_command=64, max_literals=2, max_tokens=10,
    max_depth=2, max_skip=40,
)


def _cut(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for n in sizes:
        out.append(data[pos : pos + n])
        pos += n
    out.append(data[pos:])
    return [p for p in out if p]


@FUZZ
@given(octets, chunks, st.sampled_from([PRE_LOGIN, TINY]))
def test_server_survives_anything(data: bytes, sizes: list[int], limits: Limits) -> None:
    conn = ServerConnection(limits)
    conn.send(Greeting(Status.OK, "ready"))
    asked: set[object] = set()
    for piece in [*_cut(data, sizes), b""]:
        conn.receive_data(piece)
        for _ in range(10_000):
            ev = conn.next_event()
            if isinstance(ev, ProtocolViolation):
                assert ev.response.endswith(b"\r\n") and b"Traceback" not in ev.response
            if ev is Sentinel.PAUSED:
                # Play along as a real server would: one "+" round, then the end.
                pending = conn._pending
                assert pending is not None
                if isinstance(pending, Authenticate | Command) and pending not in asked:
                    asked.add(pending)
                    conn.send(ContinuationRequest())
                else:
                    conn.send(TaggedResponse(pending.tag, Status.NO, "no"))
            elif isinstance(ev, Sentinel):
                break
        else:
            raise AssertionError("server never stopped producing events")
        assert conn._framer.buffered <= limits.max_line + limits.max_command + 64


@FUZZ
@given(octets, chunks)
def test_client_survives_anything(data: bytes, sizes: list[int]) -> None:
    conn = ClientConnection(TINY)
    for piece in [*_cut(data, sizes), b""]:
        conn.receive_data(piece)
        for _ in range(10_000):
            try:
                ev = conn.next_event()
            except ProtocolError:
                ev = conn.next_event()
                assert ev is Sentinel.CLOSED
                return
            if isinstance(ev, Sentinel):
                break
        else:
            raise AssertionError("client never stopped producing events")
