"""Properties: parse(build(x)) == x both ways; any chunking gives the same events."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imapha.imap import (
    AUTHENTICATED,
    ClientCommand,
    ContinuationRequired,
    Greeting,
    Limits,
    ProtocolViolation,
    Response,
    ServerConnection,
)
from imapha.imap.commands import encode_command
from imapha.imap.encode import LiteralMode
from imapha.imap.framer import Frame, Framer
from imapha.imap.responses import encode_response, parse_response

from .helpers import feed_server
from .strategies import commands, greetings, responses

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
modes = st.sampled_from([LiteralMode.SYNC, LiteralMode.PLUS, LiteralMode.MINUS])
chunkings = st.lists(st.integers(1, 12), max_size=60)


@SETTINGS
@given(commands, modes)
def test_command_roundtrip(cmd: ClientCommand, mode: LiteralMode) -> None:
    wire = b"".join(encode_command(cmd, mode))
    events = feed_server(ServerConnection(AUTHENTICATED), wire)
    parsed = [e for e in events if not isinstance(e, ContinuationRequired)]
    assert parsed == [cmd]


def parse_one(wire: bytes, *, greeting: bool) -> Response:
    framer = Framer(AUTHENTICATED, handshake=False)
    framer.feed(wire)
    frame = framer.next()
    assert isinstance(frame, Frame)
    assert framer.next() is None and framer.buffered == 0
    return parse_response(frame, AUTHENTICATED, greeting=greeting)


@SETTINGS
@given(responses)
def test_response_roundtrip(resp: Response) -> None:
    assert parse_one(encode_response(resp), greeting=False) == resp


@SETTINGS
@given(greetings)
def test_greeting_roundtrip(resp: Response) -> None:
    assert isinstance(resp, Greeting)
    assert parse_one(encode_response(resp), greeting=True) == resp


SMALL = Limits(
    max_line=40, max_literal=24, max_command=80, max_literals=3, max_tokens=12,
    max_depth=3, max_skip=60,
)
junk = st.sampled_from(
    [
        b"\r\n", b"\n", b"a1 NOOP\r\n", b"x LOGIN {3+}\r\nabc def\r\n", b"y LOGIN {200+}\r\n",
        b"z LOGIN {30}\r\n", b"(((((((\r\n", b"a " + b"q" * 60 + b"\r\n",
        b"b " + b"w" * 50 + b" {5+}\r\n12345\r\n", b"c X ~{2+}\r\n\x00\x00 {1+}\r\nq\r\n",
        b"d ID (\"a\" NIL)\r\n", b"e AUTHENTICATE PLAIN =\r\n", b"\xff\x00\r\n",
        b"f APPEND x {70+}\r\n" + b"L" * 70 + b" {2+}\r\nzz\r\n",
    ]
)


def server_stream(cmds: list[ClientCommand], extra: list[bytes]) -> bytes:
    parts = [b"".join(encode_command(c, LiteralMode.PLUS)) for c in cmds]
    out = b""
    for i, p in enumerate(parts):
        out += p + (extra[i] if i < len(extra) else b"")
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(commands, max_size=5),
    st.lists(junk, max_size=5),
    chunkings,
    st.sampled_from([SMALL, AUTHENTICATED]),
)
def test_server_chunking_invariance(
    cmds: list[ClientCommand], extra: list[bytes], chunks: list[int], limits: Limits
) -> None:
    data = server_stream(cmds, extra)
    whole = feed_server(ServerConnection(limits), data)
    pieces = feed_server(ServerConnection(limits), data, chunks)
    assert [norm(e) for e in pieces] == [norm(e) for e in whole]


def norm(event: object) -> object:
    """Exceptions compare by identity: compare violations by what they say."""
    if isinstance(event, ProtocolViolation):
        err = event.error
        return (type(err), err.text, err.code, err.tag, event.response, event.fatal)
    return event


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(responses, max_size=6), chunkings)
def test_client_chunking_invariance(resps: list[Response], chunks: list[int]) -> None:
    data = b"".join(encode_response(r) for r in resps)

    def run(pieces: list[int] | None) -> list[object]:
        framer = Framer(AUTHENTICATED, handshake=False)
        out: list[object] = []
        from .helpers import cut

        for piece in cut(data, pieces):
            framer.feed(piece)
            while (item := framer.next()) is not None:
                assert isinstance(item, Frame)
                out.append(parse_response(item, AUTHENTICATED, greeting=False))
        return out

    assert run(chunks) == run(None) == resps
