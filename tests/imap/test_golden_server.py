"""Golden transcripts, server side: client octets in -> events, responses -> octets.

Client lines are the examples of RFC 9051 §6 / RFC 3501 §7.5, RFC 7888 §3,
RFC 4959 §4, RFC 2971 §3 and RFC 3516; the expected events are what the
proxy must see.
"""

from __future__ import annotations

import pytest

from imapha.imap import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    PRE_LOGIN,
    Atom,
    Authenticate,
    AuthenticateCancel,
    AuthenticateResponse,
    Capability,
    CapabilityResponse,
    Command,
    ContinuationLine,
    ContinuationRequest,
    ContinuationRequired,
    Greeting,
    Id,
    IdResponse,
    Literal,
    LocalProtocolError,
    Login,
    Logout,
    Noop,
    PList,
    ProtocolViolation,
    Quoted,
    ResponseCode,
    ServerConnection,
    StartTLS,
    Status,
    Tag,
    TaggedResponse,
    UntaggedData,
    UntaggedStatus,
    codes,
)

from .helpers import drain_server, feed_server, server_events


def greeted() -> ServerConnection:
    conn = ServerConnection()
    assert conn.send(Greeting(Status.OK, "IMAP4rev1 Service Ready")) == (
        b"* OK IMAP4rev1 Service Ready\r\n"
    )
    return conn


def test_capability_noop_logout_rfc9051_6_1() -> None:
    events = server_events(b"abcd CAPABILITY\r\na002 NOOP\r\nA023 LOGOUT\r\n")
    assert events == [Capability(Tag("abcd")), Noop(Tag("a002")), Logout(Tag("A023"))]
    conn = greeted()
    caps = ("IMAP4rev1", "STARTTLS", "AUTH=GSSAPI", "LOGINDISABLED")
    assert conn.send(CapabilityResponse(caps)) == (
        b"* CAPABILITY IMAP4rev1 STARTTLS AUTH=GSSAPI LOGINDISABLED\r\n"
    )
    assert conn.send(TaggedResponse(Tag("abcd"), Status.OK, "CAPABILITY completed")) == (
        b"abcd OK CAPABILITY completed\r\n"
    )
    assert conn.send(UntaggedData("EXISTS", 23)) == b"* 23 EXISTS\r\n"
    flags = PList((Atom("FLAGS"), PList((Atom("\\Seen"), Atom("\\Deleted")))))
    assert conn.send(UntaggedData("FETCH", 14, (flags,))) == (
        b"* 14 FETCH (FLAGS (\\Seen \\Deleted))\r\n"
    )
    assert conn.send(UntaggedStatus(Status.BYE, "IMAP4rev1 Server logging out")) == (
        b"* BYE IMAP4rev1 Server logging out\r\n"
    )


def test_login_atoms_rfc9051_6_2_3() -> None:
    assert server_events(b"a001 LOGIN SMITH SESAME\r\n") == [
        Login(Tag("a001"), "SMITH", b"SESAME")
    ]


def test_login_quoted_with_escapes() -> None:
    assert server_events(b'a LOGIN "fred smith" "p\\"w\\\\x"\r\n') == [
        Login(Tag("a"), "fred smith", b'p"w\\x')
    ]


def test_synchronizing_literals_rfc3501_7_5() -> None:
    conn = greeted()
    conn.receive_data(b"A001 LOGIN {11}\r\n")
    assert drain_server(conn) == [
        ContinuationRequired("A001", 11, b"+ Ready for literal data\r\n"),
        NEED_DATA,
    ]
    conn.receive_data(b"FRED FOOBAR {7}\r\n")
    assert drain_server(conn) == [
        ContinuationRequired("A001", 7, b"+ Ready for literal data\r\n"),
        NEED_DATA,
    ]
    conn.receive_data(b"fat man\r\n")
    assert drain_server(conn) == [Login(Tag("A001"), "FRED FOOBAR", b"fat man"), NEED_DATA]
    # A literal too big for the limits: BAD instead of "+", nothing buffered.
    conn.receive_data(b"A044 BLURDYBLOOP {102856}\r\n")
    [violation, sentinel] = drain_server(conn)
    assert isinstance(violation, ProtocolViolation) and not violation.fatal
    assert violation.response == b"A044 BAD [TOOBIG] Literal too big\r\n"
    assert sentinel is NEED_DATA
    # The client sends no literal; the next command is understood.
    conn.receive_data(b"A045 NOOP\r\n")
    assert drain_server(conn) == [Noop(Tag("A045")), NEED_DATA]


def test_non_synchronizing_literals_rfc7888_3() -> None:
    data = b"A001 LOGIN {11+}\r\nFRED FOOBAR {7+}\r\nfat man\r\n"
    assert server_events(data) == [Login(Tag("A001"), "FRED FOOBAR", b"fat man")]


def test_refused_non_sync_literal_is_skipped_not_executed_rfc7888_4() -> None:
    # The literal's octets look like a command: they must never run.
    evil = b"X1 LOGOUT\r\n" * 1000  # 11000 octets > PRE_LOGIN.max_literal
    data = b"A1 LOGIN user {%d+}\r\n" % len(evil) + evil + b"\r\nA2 NOOP\r\n"
    events = server_events(data)
    assert len(events) == 2
    assert isinstance(events[0], ProtocolViolation) and not events[0].fatal
    assert events[0].response == b"A1 BAD [TOOBIG] Literal too big\r\n"
    assert events[1] == Noop(Tag("A2"))


def test_refused_non_sync_literal_beyond_max_skip_closes() -> None:
    events = server_events(b"A1 APPEND INBOX {99999999999+}\r\nxxxx")
    assert len(events) == 1 and isinstance(events[0], ProtocolViolation)
    assert events[0].fatal
    assert events[0].response == b"* BYE [TOOBIG] Literal too big\r\n"


def test_authenticate_sasl_ir_rfc4959() -> None:
    conn = greeted()
    conn.receive_data(b"A01 AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=\r\nA02 NOOP\r\n")
    ev = drain_server(conn)
    assert ev == [Authenticate(Tag("A01"), "PLAIN", b"test\x00test\x00test"), PAUSED]
    assert conn.send(TaggedResponse(Tag("A01"), Status.OK, "Success (tls protection)")) == (
        b"A01 OK Success (tls protection)\r\n"
    )
    assert drain_server(conn) == [Noop(Tag("A02")), NEED_DATA]


def test_authenticate_empty_initial_response_and_continuation() -> None:
    conn = greeted()
    conn.receive_data(b"A1 authenticate external =\r\n")
    assert drain_server(conn) == [Authenticate(Tag("A1"), "EXTERNAL", b""), PAUSED]
    conn = greeted()
    conn.receive_data(b"A01 AUTHENTICATE PLAIN\r\n")
    assert drain_server(conn) == [Authenticate(Tag("A01"), "PLAIN", None), PAUSED]
    assert conn.send(ContinuationRequest()) == b"+ \r\n"
    conn.receive_data(b"dGVzdAB0ZXN0AHRlc3Q=\r\n")
    assert drain_server(conn) == [AuthenticateResponse(b"test\x00test\x00test"), PAUSED]
    conn.send(TaggedResponse(Tag("A01"), Status.OK, "Success"))
    assert drain_server(conn) == [NEED_DATA]


def test_authenticate_cancel_and_bad_base64_rfc9051_6_2_2() -> None:
    conn = greeted()
    conn.receive_data(b"A1 AUTHENTICATE LOGIN\r\n")
    drain_server(conn)
    conn.send(ContinuationRequest.challenge(b"Username:"))
    conn.receive_data(b"*\r\n")
    assert drain_server(conn) == [AuthenticateCancel(), PAUSED]
    conn.send(TaggedResponse(Tag("A1"), Status.BAD, "Authentication cancelled"))
    conn.receive_data(b"A2 AUTHENTICATE PLAIN\r\n")
    drain_server(conn)
    conn.send(ContinuationRequest())
    conn.receive_data(b"not base64!\r\nA3 NOOP\r\n")
    [bad, noop, _] = drain_server(conn)
    assert isinstance(bad, ProtocolViolation)
    assert bad.response == b"A2 BAD Invalid base64\r\n"
    assert noop == Noop(Tag("A3"))


def test_idle_done_is_a_continuation_line() -> None:
    conn = greeted()
    conn.receive_data(b"A5 IDLE\r\nDONE\r\n")
    assert drain_server(conn) == [Command(Tag("A5"), "IDLE"), PAUSED]
    conn.send(ContinuationRequest("idling"))
    assert drain_server(conn) == [ContinuationLine(b"DONE"), PAUSED]
    conn.send(TaggedResponse(Tag("A5"), Status.OK, "IDLE terminated"))
    assert drain_server(conn) == [NEED_DATA]


def test_starttls_discards_plaintext_sent_after_it() -> None:
    conn = greeted()
    conn.receive_data(b"a002 STARTTLS\r\na003 LOGIN injected x\r\n")
    assert drain_server(conn) == [StartTLS(Tag("a002")), PAUSED]
    conn.send(TaggedResponse(Tag("a002"), Status.OK, "Begin TLS negotiation now"))
    assert conn.discarded_after_starttls == len(b"a003 LOGIN injected x\r\n")
    assert drain_server(conn) == [NEED_DATA]
    # A refused STARTTLS keeps the pipelined command.
    conn = greeted()
    conn.receive_data(b"a002 STARTTLS\r\na003 NOOP\r\n")
    drain_server(conn)
    conn.send(TaggedResponse(Tag("a002"), Status.NO, "TLS not available"))
    assert drain_server(conn) == [Noop(Tag("a003")), NEED_DATA]


def test_id_rfc2971() -> None:
    data = (
        b'a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")\r\n'
        b"a042 ID NIL\r\n"
    )
    assert server_events(data) == [
        Id(
            Tag("a023"),
            (("name", "sodr"), ("version", "19.34"), ("vendor", "Pink Floyd Music Limited")),
        ),
        Id(Tag("a042"), None),
    ]
    conn = greeted()
    assert conn.send(IdResponse(None)) == b"* ID NIL\r\n"
    params = (("name", "Cyrus"), ("version", "1.5"), ("os", "sunos"), ("os-version", None))
    assert conn.send(IdResponse(params)) == (
        b'* ID ("name" "Cyrus" "version" "1.5" "os" "sunos" "os-version" NIL)\r\n'
    )


def test_binary_literal_rfc3516_and_generic_command() -> None:
    data = b"A003 APPEND Drafts (\\Seen) ~{4+}\r\n\x00\x01\xff\r\r\n"
    assert server_events(data) == [
        Command(
            Tag("A003"),
            "APPEND",
            (Atom("Drafts"), PList((Atom("\\Seen"),)), Literal(b"\x00\x01\xff\r", binary=True)),
        )
    ]
    fetch = b"A4 UID FETCH 1:*,7 (FLAGS BODY.PEEK[HEADER.FIELDS (FROM \"TO\")]<0.100>)\r\n"
    assert server_events(fetch) == [
        Command(
            Tag("A4"),
            "UID",
            (
                Atom("FETCH"),
                Atom("1:*,7"),
                PList((Atom("FLAGS"), Atom('BODY.PEEK[HEADER.FIELDS (FROM "TO")]<0.100>'))),
            ),
        )
    ]
    # Literals in responses are always inline.
    conn = greeted()
    body = PList((Atom("BINARY[1]"), Literal(b"\x00ab", binary=True)))
    assert conn.send(UntaggedData("FETCH", 12, (body,))) == (
        b"* 12 FETCH (BINARY[1] ~{3}\r\n\x00ab)\r\n"
    )
    assert conn.send(UntaggedData("LIST", None, (PList(), Quoted(b"/"), Atom("INBOX")))) == (
        b'* LIST () "/" INBOX\r\n'
    )


def test_response_codes_rfc5530() -> None:
    conn = greeted()
    cases = [
        (codes.AUTHENTICATIONFAILED, "Authentication failed", Status.NO),
        (codes.UNAVAILABLE, "User's backend down for maintenance", Status.NO),
        (codes.PRIVACYREQUIRED, "Connection offers no privacy", Status.NO),
        (codes.LIMIT, "Too many connections", Status.NO),
        (codes.CONTACTADMIN, "Account locked", Status.NO),
        (codes.TOOBIG, "Message too large", Status.NO),
    ]
    for code, text, status in cases:
        out = conn.send(TaggedResponse(Tag("a"), status, text, code))
        assert out == f"a {status.value} [{code.name}] {text}\r\n".encode()
    alert = conn.send(UntaggedStatus(Status.OK, "System going down", codes.ALERT))
    assert alert == b"* OK [ALERT] System going down\r\n"
    caps = ResponseCode.capability(["IMAP4rev1", "SASL-IR", "ID", "LITERAL+"])
    assert conn.send(TaggedResponse(Tag("a1"), Status.OK, "Logged in", caps)) == (
        b"a1 OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+] Logged in\r\n"
    )


def test_errors_carry_tag_and_wire_text() -> None:
    events = server_events(
        b"a1 LOGIN onlyuser\r\n"
        b"(bad tag\r\n"
        b"a2 LOGIN {3}x pw\r\n"
        b"a3 NOOP extra\r\n"
        b"a4 LOGIN \"unterminated\r\n"
        b"a5 LOGIN \xff pw\r\n"
        b"a(6 NOOP\r\n"
    )
    responses = [e.response for e in events if isinstance(e, ProtocolViolation)]
    assert responses == [
        b"a1 BAD Expected a space\r\n",
        b"* BAD Missing or invalid tag\r\n",
        b"a2 BAD Literal announcement must end the line\r\n",
        b"a3 BAD Unexpected extra arguments\r\n",
        b"a4 BAD Invalid quoted string\r\n",
        b"a5 BAD 8-bit octet outside a string\r\n",
        b"* BAD Missing or invalid tag\r\n",
    ]


def test_limits_switch_after_login() -> None:
    from imapha.imap import AUTHENTICATED

    conn = greeted()
    big = b"x" * (PRE_LOGIN.max_literal + 1)
    conn.receive_data(b"a1 APPEND INBOX {%d}\r\n" % len(big))
    [v, _] = drain_server(conn)
    assert isinstance(v, ProtocolViolation)
    conn.limits = AUTHENTICATED
    events = feed_server(conn, b"a2 APPEND INBOX {%d}\r\n" % len(big) + big + b"\r\n")
    assert isinstance(events[0], ContinuationRequired)
    assert events[1] == Command(Tag("a2"), "APPEND", (Atom("INBOX"), Literal(big)))


def test_pause_after_login_and_hand_over_to_relay() -> None:
    conn = ServerConnection(pause_after=frozenset({"LOGIN"}))
    conn.send(Greeting(Status.OK, "ready"))
    conn.receive_data(b"a1 LOGIN alice pw\r\na2 SELECT INBOX\r\na3 FETCH 1 (FLA")
    assert drain_server(conn) == [Login(Tag("a1"), "alice", b"pw"), PAUSED]
    with pytest.raises(LocalProtocolError):
        conn.send(ContinuationRequest())  # LOGIN takes no continuation
    conn.send(TaggedResponse(Tag("a1"), Status.OK, "Logged in"))
    # the pipelined commands are the backend's: hand them over unparsed
    assert conn.take_buffered() == b"a2 SELECT INBOX\r\na3 FETCH 1 (FLA"
    assert conn.next_event() is CLOSED
    # a failed login resumes parsing
    conn = ServerConnection(pause_after=frozenset({"LOGIN"}))
    conn.send(Greeting(Status.OK, "ready"))
    conn.receive_data(b"a1 LOGIN alice bad\r\na2 NOOP\r\n")
    drain_server(conn)
    conn.send(TaggedResponse(Tag("a1"), Status.NO, "no", codes.AUTHENTICATIONFAILED))
    assert drain_server(conn) == [Noop(Tag("a2")), NEED_DATA]


def test_take_buffered_refuses_mid_command() -> None:
    conn = greeted()
    conn.receive_data(b"a1 LOGIN {5}\r\nab")
    drain_server(conn)
    with pytest.raises(LocalProtocolError):
        conn.take_buffered()
