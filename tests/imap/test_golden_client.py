"""Golden transcripts, client side: commands -> octets, server octets -> responses."""

from __future__ import annotations

import pytest

from imapha.imap import (
    CLOSED,
    NEED_DATA,
    Atom,
    Authenticate,
    AuthenticateCancel,
    AuthenticateResponse,
    Capability,
    CapabilityResponse,
    ClientConnection,
    Command,
    ContinuationLine,
    ContinuationRequest,
    ContinueCommand,
    Greeting,
    Id,
    IdResponse,
    Literal,
    LocalProtocolError,
    Login,
    Logout,
    PList,
    RemoteProtocolError,
    ResponseCode,
    StartTLS,
    Status,
    Tag,
    TaggedResponse,
    UntaggedData,
    UntaggedStatus,
    originating_id,
)

from .helpers import client_events

DOVECOT_GREETING = (
    b"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
    b"STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n"
)


def connected(greeting: bytes = DOVECOT_GREETING) -> ClientConnection:
    conn = ClientConnection()
    [g] = client_events(conn, greeting)
    assert isinstance(g, Greeting)
    return conn


def test_greetings_rfc9051_7_1() -> None:
    conn = ClientConnection()
    assert client_events(conn, DOVECOT_GREETING) == [
        Greeting(
            Status.OK,
            "Dovecot (Debian) ready.",
            ResponseCode(
                "CAPABILITY",
                "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS AUTH=PLAIN",
            ),
        )
    ]
    assert conn.has_capability("literal+") and conn.has_capability("AUTH=PLAIN")
    pre = ClientConnection()
    assert client_events(pre, b"* PREAUTH IMAP4rev1 server logged in as Smith\r\n") == [
        Greeting(Status.PREAUTH, "IMAP4rev1 server logged in as Smith")
    ]
    bye = ClientConnection()
    assert client_events(bye, b"* BYE [UNAVAILABLE] Server overloaded\r\n") == [
        Greeting(Status.BYE, "Server overloaded", ResponseCode("UNAVAILABLE"))
    ]
    bad = ClientConnection()
    [err] = client_events(bad, b"a1 OK hello\r\n")
    assert isinstance(err, RemoteProtocolError)
    assert bad.next_event() is CLOSED


def test_capability_and_tagged_status() -> None:
    conn = connected()
    assert conn.send(Capability(Tag("abcd"))) == b"abcd CAPABILITY\r\n"
    got = client_events(
        conn,
        b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED\r\n"
        b"abcd OK CAPABILITY completed\r\n",
    )
    assert got == [
        CapabilityResponse(("IMAP4rev1", "STARTTLS", "AUTH=GSSAPI", "LOGINDISABLED")),
        TaggedResponse(Tag("abcd"), Status.OK, "CAPABILITY completed"),
    ]
    assert conn.capabilities == ("IMAP4rev1", "STARTTLS", "AUTH=GSSAPI", "LOGINDISABLED")


def test_login_quoting_choices() -> None:
    conn = connected()
    assert conn.send(Login(Tag("a1"), "SMITH", b"SESAME")) == b"a1 LOGIN SMITH SESAME\r\n"
    assert conn.send(Login(Tag("a2"), "fred smith", b'p"w')) == (
        b'a2 LOGIN "fred smith" "p\\"w"\r\n'
    )
    # NIL as a user name must not be an atom; 8-bit and CRLF go in literals (LITERAL+ here).
    assert conn.send(Login(Tag("a3"), "nil", "pässwörd".encode())) == (
        b'a3 LOGIN "nil" {10+}\r\np\xc3\xa4ssw\xc3\xb6rd\r\n'
    )


def test_login_with_synchronizing_literal_handshake() -> None:
    conn = connected(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
    tag = conn.new_tag()
    first = conn.send(Login(tag, "FRED FOOBAR", b"fat\r\nman"))
    assert first == b'a1 LOGIN "FRED FOOBAR" {8}\r\n'
    assert conn.awaiting_continuation
    with pytest.raises(LocalProtocolError):
        conn.send(ContinueCommand())  # not before the server's "+"
    assert client_events(conn, b"+ Ready for additional command text\r\n") == [
        ContinuationRequest("Ready for additional command text")
    ]
    assert conn.send(ContinueCommand()) == b"fat\r\nman\r\n"
    assert not conn.awaiting_continuation
    assert client_events(conn, b"a1 OK LOGIN completed\r\n") == [
        TaggedResponse(tag, Status.OK, "LOGIN completed")
    ]


def test_refused_literal_drops_the_rest() -> None:
    conn = connected(b"* OK ready\r\n")
    conn.send(Login(Tag("a1"), "u", b"\xff" * 10))
    assert client_events(conn, b"a1 NO [TOOBIG] Too big\r\n") == [
        TaggedResponse(Tag("a1"), Status.NO, "Too big", ResponseCode("TOOBIG"))
    ]
    assert not conn.awaiting_continuation
    with pytest.raises(LocalProtocolError):
        conn.send(ContinueCommand())


def test_literal_minus_uses_sync_above_4096() -> None:
    conn = connected(b"* OK [CAPABILITY IMAP4rev1 LITERAL-] ready\r\n")
    small = conn.send(Login(Tag("a1"), "u", b"\xff" * 4096))
    assert small.startswith(b"a1 LOGIN u {4096+}\r\n") and small.endswith(b"\r\n")
    conn = connected(b"* OK [CAPABILITY IMAP4rev1 LITERAL-] ready\r\n")
    assert conn.send(Login(Tag("a1"), "u", b"\xff" * 4097)) == b"a1 LOGIN u {4097}\r\n"


def test_authenticate_plain_sasl_ir_and_continuations() -> None:
    conn = connected()
    assert conn.send(Authenticate(Tag("A01"), "PLAIN", b"test\x00test\x00test")) == (
        b"A01 AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\n"
    )
    assert client_events(conn, b"A01 OK Success (tls protection)\r\n") == [
        TaggedResponse(Tag("A01"), Status.OK, "Success (tls protection)")
    ]
    assert conn.send(Authenticate(Tag("A02"), "PLAIN")) == b"A02 AUTHENTICATE PLAIN\r\n"
    [cont] = client_events(conn, b"+ \r\n")
    assert cont == ContinuationRequest("")
    assert conn.send(AuthenticateResponse(b"test\x00test\x00test")) == (
        b"dGVzdAB0ZXN0AHRlc3Q=\r\n"
    )
    [challenge] = client_events(conn, b"+ VXNlcm5hbWU6\r\n")
    assert isinstance(challenge, ContinuationRequest) and challenge.data() == b"Username:"
    assert conn.send(AuthenticateCancel()) == b"*\r\n"
    with pytest.raises(LocalProtocolError):
        conn.send(Authenticate(Tag("A03"), "EXTERNAL", b""))  # A02 still runs
    client_events(conn, b"A02 BAD Authentication cancelled\r\n")
    assert conn.send(Authenticate(Tag("A03"), "EXTERNAL", b"")).endswith(b" EXTERNAL =\r\n")


def test_id_with_originating_address() -> None:
    conn = connected()
    params = originating_id("192.0.2.7", 50123, "198.51.100.1", 143, "s-1")
    assert conn.send(Id(Tag("a5"), params)) == (
        b'a5 ID ("x-originating-ip" "192.0.2.7" "x-originating-port" "50123" '
        b'"x-connected-ip" "198.51.100.1" "x-connected-port" "143" "x-session-id" "s-1")\r\n'
    )
    got = client_events(
        conn,
        b'* ID ("name" "Dovecot")\r\na5 OK ID completed.\r\n',
    )
    assert got == [
        IdResponse((("name", "Dovecot"),)),
        TaggedResponse(Tag("a5"), Status.OK, "ID completed."),
    ]


def test_starttls_injection_is_refused() -> None:
    conn = connected()
    assert conn.send(StartTLS(Tag("a2"))) == b"a2 STARTTLS\r\n"
    got = client_events(conn, b"a2 OK Begin TLS negotiation now\r\n* OK injected\r\n")
    assert got[0] == TaggedResponse(Tag("a2"), Status.OK, "Begin TLS negotiation now")
    assert isinstance(got[1], RemoteProtocolError)
    clean = connected()
    clean.send(StartTLS(Tag("a2")))
    client_events(clean, b"a2 OK Begin TLS\r\n")
    assert clean.next_event() is NEED_DATA
    clean.tls_started()
    assert clean.capabilities == ()
    assert client_events(clean, b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n") == [
        CapabilityResponse(("IMAP4rev1", "AUTH=PLAIN"))
    ]


def test_untagged_data_with_literals_and_bye() -> None:
    conn = connected()
    conn.send(Logout(Tag("A023")))
    got = client_events(
        conn,
        b"* 1 FETCH (FLAGS (\\Seen) BODY[] {5}\r\nhello)\r\n"
        b"* 23 EXISTS\r\n"
        b"* BYE IMAP4rev1 Server logging out\r\n"
        b"A023 OK LOGOUT completed\r\n",
    )
    fetch = PList(
        (Atom("FLAGS"), PList((Atom("\\Seen"),)), Atom("BODY[]"), Literal(b"hello"))
    )
    assert got == [
        UntaggedData("FETCH", 1, (fetch,)),
        UntaggedData("EXISTS", 23),
        UntaggedStatus(Status.BYE, "IMAP4rev1 Server logging out"),
        TaggedResponse(Tag("A023"), Status.OK, "LOGOUT completed"),
    ]
    conn.receive_data(b"")
    assert conn.next_event() is CLOSED


def test_idle_done() -> None:
    conn = connected()
    assert conn.send(Command(Tag("a7"), "IDLE")) == b"a7 IDLE\r\n"
    assert client_events(conn, b"+ idling\r\n* 4 EXISTS\r\n") == [
        ContinuationRequest("idling"),
        UntaggedData("EXISTS", 4),
    ]
    assert conn.send(ContinuationLine(b"DONE")) == b"DONE\r\n"
    assert client_events(conn, b"a7 OK Idle completed.\r\n") == [
        TaggedResponse(Tag("a7"), Status.OK, "Idle completed.")
    ]
    with pytest.raises(LocalProtocolError):
        conn.send(ContinuationLine(b"DONE"))


def test_take_buffered_after_backend_login() -> None:
    conn = connected()
    conn.send(Login(Tag("P1"), "alice", b"pw"))
    conn.receive_data(b"P1 OK Logged in\r\n* 3 EXISTS\r\n* 1 FET")
    assert conn.next_event() == TaggedResponse(Tag("P1"), Status.OK, "Logged in")
    assert conn.take_buffered() == b"* 3 EXISTS\r\n* 1 FET"
    assert conn.next_event() is CLOSED


def test_unknown_tag_and_unexpected_continuation_are_errors() -> None:
    conn = connected()
    [err] = client_events(conn, b"zz OK nobody asked\r\n")
    assert isinstance(err, RemoteProtocolError)
    conn = connected()
    [err] = client_events(conn, b"+ go ahead\r\n")
    assert isinstance(err, RemoteProtocolError)


def test_bare_lf_tolerated_from_server() -> None:
    conn = connected(b"* OK ready\n")
    conn.send(Capability(Tag("a")))
    assert client_events(conn, b"* CAPABILITY IMAP4rev1\na OK done\n") == [
        CapabilityResponse(("IMAP4rev1",)),
        TaggedResponse(Tag("a"), Status.OK, "done"),
    ]


def test_illegal_output_cannot_be_expressed() -> None:
    with pytest.raises(LocalProtocolError):
        Tag("a b")
    with pytest.raises(LocalProtocolError):
        Tag("a+")
    with pytest.raises(LocalProtocolError):
        TaggedResponse(Tag("a"), Status.BYE, "x")
    with pytest.raises(LocalProtocolError):
        TaggedResponse(Tag("a"), Status.OK, "two\r\nlines")
    with pytest.raises(LocalProtocolError):
        TaggedResponse(Tag("a"), Status.OK, "ends like a literal {5}")
    with pytest.raises(LocalProtocolError):
        Greeting(Status.NO, "x")
    with pytest.raises(LocalProtocolError):
        ResponseCode("ALERT", "no ] inside")
    with pytest.raises(LocalProtocolError):
        Atom("has space")
    conn = connected()
    conn.send(Capability(Tag("a1")))
    with pytest.raises(LocalProtocolError):
        conn.send(Capability(Tag("a1")))  # tag in use
    with pytest.raises(LocalProtocolError):
        conn.send(AuthenticateResponse(b"x"))  # no AUTHENTICATE in progress
