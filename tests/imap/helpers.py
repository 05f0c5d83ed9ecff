"""Shared helpers for the IMAP wire tests: drive a connection to exhaustion."""

from __future__ import annotations

from imapha.imap import ClientConnection, Sentinel, ServerConnection
from imapha.imap.errors import ProtocolError
from imapha.imap.responses import Response
from imapha.imap.server import ServerEvent


def drain_server(conn: ServerConnection) -> list[ServerEvent | Sentinel]:
    """All events available now, ending with the sentinel that stopped them."""
    out: list[ServerEvent | Sentinel] = []
    for _ in range(100_000):
        ev = conn.next_event()
        out.append(ev)
        if isinstance(ev, Sentinel):
            return out
    raise AssertionError("next_event never stopped")


def server_events(data: bytes, chunks: list[int] | None = None) -> list[ServerEvent]:
    """Feed ``data`` (cut at ``chunks`` sizes) and collect events, sentinels dropped."""
    conn = ServerConnection()
    return feed_server(conn, data, chunks)


def feed_server(
    conn: ServerConnection, data: bytes, chunks: list[int] | None = None
) -> list[ServerEvent]:
    out: list[ServerEvent] = []
    for piece in cut(data, chunks):
        conn.receive_data(piece)
        out.extend(e for e in drain_server(conn) if not isinstance(e, Sentinel))
    return out


def client_events(
    conn: ClientConnection, data: bytes, chunks: list[int] | None = None
) -> list[Response | ProtocolError]:
    """Responses parsed from ``data``; a raised ProtocolError ends the list."""
    out: list[Response | ProtocolError] = []
    for piece in cut(data, chunks):
        conn.receive_data(piece)
        for _ in range(100_000):
            try:
                ev = conn.next_event()
            except ProtocolError as exc:
                out.append(exc)
                return out
            if isinstance(ev, Sentinel):
                break
            out.append(ev)
    return out


def cut(data: bytes, chunks: list[int] | None) -> list[bytes]:
    if not chunks:
        return [data]
    pieces: list[bytes] = []
    pos = 0
    for size in chunks:
        if pos >= len(data):
            break
        pieces.append(data[pos : pos + max(1, size)])
        pos += max(1, size)
    if pos < len(data):
        pieces.append(data[pos:])
    return pieces
