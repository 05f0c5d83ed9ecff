"""The server side of the wire layer serving a real IMAP client (the stdlib's
imaplib) over a loopback socket: greeting, CAPABILITY, LOGIN with quoting,
AUTHENTICATE PLAIN through the "+" continuation, ID, LOGOUT."""

from __future__ import annotations

import imaplib
import socket
import threading

from imapha.imap import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    Authenticate,
    AuthenticateResponse,
    Capability,
    CapabilityResponse,
    ContinuationRequest,
    ContinuationRequired,
    Greeting,
    Id,
    IdResponse,
    Login,
    Logout,
    ProtocolViolation,
    ResponseCode,
    ServerConnection,
    Status,
    Tag,
    TaggedResponse,
    UntaggedStatus,
    codes,
)
from imapha.imap.sasl import parse_plain

CAPS = ("IMAP4rev1", "ID", "AUTH=PLAIN", "SASL-IR")
PASSWORD = b'p"w \\ x'


def serve_one(listener: socket.socket, seen: list[object]) -> None:
    conn, _ = listener.accept()
    conn.settimeout(10)
    imap = ServerConnection()
    pending = Tag("none")
    with conn:
        conn.sendall(imap.send(Greeting(Status.OK, "test ready", ResponseCode.capability(CAPS))))
        for _ in range(1000):
            ev = imap.next_event()
            if ev is NEED_DATA:
                data = conn.recv(65536)
                imap.receive_data(data)
                continue
            if ev is CLOSED:
                return
            seen.append(ev)
            out: list[object] = []
            if isinstance(ev, ContinuationRequired | ProtocolViolation):
                conn.sendall(ev.response)
                continue
            if ev is PAUSED:
                continue
            if isinstance(ev, Capability):
                out = [CapabilityResponse(CAPS), TaggedResponse(ev.tag, Status.OK, "done")]
            elif isinstance(ev, Login):
                good = ev.username == "alice" and ev.password == PASSWORD
                out = [
                    TaggedResponse(ev.tag, Status.OK, "Logged in")
                    if good
                    else TaggedResponse(
                        ev.tag, Status.NO, "Authentication failed", codes.AUTHENTICATIONFAILED
                    )
                ]
            elif isinstance(ev, Authenticate):
                out = [ContinuationRequest()]
                pending = ev.tag
            elif isinstance(ev, AuthenticateResponse):
                creds = parse_plain(ev.data)
                status = Status.OK if creds.password == PASSWORD else Status.NO
                out = [TaggedResponse(pending, status, "authenticated")]
            elif isinstance(ev, Id):
                out = [IdResponse((("name", "imapha"),)), TaggedResponse(ev.tag, Status.OK, "ID")]
            elif isinstance(ev, Logout):
                out = [UntaggedStatus(Status.BYE, "bye"), TaggedResponse(ev.tag, Status.OK, "bye")]
            for resp in out:
                conn.sendall(imap.send(resp))  # type: ignore[arg-type]
            if isinstance(ev, Logout):
                return


def test_imaplib_talks_to_server_connection() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    seen: list[object] = []
    sessions = 3

    def serve() -> None:
        for _ in range(sessions):
            serve_one(listener, seen)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        # 1: LOGIN with a password that needs quoting
        client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        assert "AUTH=PLAIN" in client.capabilities
        assert client.login("alice", PASSWORD.decode())[0] == "OK"
        typ, _ = client.xatom("ID", '("name" "imaplib")')
        assert typ == "OK"
        assert client.logout()[0] == "BYE"
        # 2: AUTHENTICATE PLAIN through the "+" continuation
        client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        typ, _ = client.authenticate("PLAIN", lambda _: b"\x00alice\x00" + PASSWORD)
        assert typ == "OK"
        client.logout()
        # 3: a wrong password gets NO [AUTHENTICATIONFAILED]
        client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
        try:
            client.login("alice", "wrong")
        except imaplib.IMAP4.error as exc:
            assert "AUTHENTICATIONFAILED" in str(exc)
        else:
            raise AssertionError("login with a wrong password succeeded")
        client.logout()
    finally:
        thread.join(timeout=10)
        listener.close()
    assert not thread.is_alive()
    assert Login in {type(e) for e in seen} and Authenticate in {type(e) for e in seen}
    assert not any(isinstance(e, ProtocolViolation) for e in seen)
