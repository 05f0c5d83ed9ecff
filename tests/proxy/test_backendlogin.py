"""Backend login, bytes in and bytes/outcome out, against scripted server answers."""

from __future__ import annotations

import base64
import ipaddress
import struct
from typing import Any

from imapha.imap import Tag
from imapha.log import Secret
from imapha.proxy.backendlogin import (
    BackendLogin,
    Failed,
    LoggedIn,
    Rejected,
    StartTLS,
    proxy_v2_header,
)
from imapha.proxy.prelogin import LoginRequest

GREETING = b"* OK [CAPABILITY IMAP4rev1 SASL-IR ID LITERAL+ AUTH=PLAIN] ready\r\n"


def req(user: str = "alice", password: str = "p w", **kw: Any) -> LoginRequest:
    return LoginRequest(Tag("c1"), user, Secret(password), kw.pop("mechanism", "LOGIN"), **kw)


def wire(out: list[Any]) -> bytes:
    return b"".join(x for x in out if isinstance(x, bytes))


def test_greeting_caps_id_then_login_with_literal_plus() -> None:
    fwd = (("x-originating-ip", "192.0.2.7"), ("x-session-id", "abc"))
    bl = BackendLogin(req(password='we"ird'), forward_id=fwd)
    assert bl.start() == []
    out = bl.receive(GREETING)
    assert wire(out) == (b'P1 ID ("x-originating-ip" "192.0.2.7" "x-session-id" "abc")\r\n'
                         b'P2 LOGIN alice "we\\"ird"\r\n')  # pipelined
    assert bl.receive(b'* ID NIL\r\nP1 OK ID done\r\n') == []
    out = bl.receive(b"P2 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n")
    assert out == [LoggedIn(("IMAP4rev1", "IDLE", "MOVE"))]


def test_capability_asked_when_greeting_has_none_and_after_login() -> None:
    bl = BackendLogin(req())
    assert wire(bl.receive(b"* OK hi\r\n")) == b"P1 CAPABILITY\r\n"
    out = bl.receive(b"* CAPABILITY IMAP4rev1 ID\r\nP1 OK done\r\n")
    assert wire(out) == b'P2 LOGIN alice "p w"\r\n'
    assert wire(bl.receive(b"P2 OK Logged in\r\n")) == b"P3 CAPABILITY\r\n"
    out = bl.receive(b"* CAPABILITY IMAP4rev1 UIDPLUS\r\nP3 OK done\r\n")
    assert out == [LoggedIn(("IMAP4rev1", "UIDPLUS"))]


def test_authzid_uses_authenticate_plain_with_sasl_ir() -> None:
    bl = BackendLogin(req(mechanism="PLAIN", authzid="admin"))
    out = bl.receive(GREETING)
    expected = base64.b64encode(b"admin\0alice\0p w")
    assert wire(out) == b"P1 AUTHENTICATE PLAIN " + expected + b"\r\n"
    assert bl.receive(b"P1 NO [AUTHENTICATIONFAILED] no\r\n")[0] == Rejected(
        bl.outcome.code if isinstance(bl.outcome, Rejected) else None, "no")


def test_starttls_step() -> None:
    bl = BackendLogin(req(), starttls=True)
    assert wire(bl.receive(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n")) == b"P1 STARTTLS\r\n"
    assert bl.receive(b"P1 OK go\r\n") == [StartTLS()]
    assert wire(bl.tls_started()) == b"P2 CAPABILITY\r\n"


def test_failures_before_login_are_failed_not_rejected() -> None:
    assert isinstance(BackendLogin(req()).receive(b"* BYE overloaded\r\n")[0], Failed)
    bl = BackendLogin(req(), starttls=True)
    bl.receive(b"* OK [CAPABILITY IMAP4rev1] hi\r\n")
    assert isinstance(bl.receive(b"P1 NO no tls\r\n")[0], Failed)
    assert isinstance(BackendLogin(req()).receive(b"garbage\r\n")[-1], Failed)
    bl = BackendLogin(req())
    bl.receive(GREETING)
    assert isinstance(bl.receive(b"")[-1], Failed)


def test_relayed_mechanism_sent_as_is() -> None:
    raw = b"n,a=u,\x01auth=Bearer t\x01\x01"
    r = LoginRequest(Tag("c"), "u", None, "OAUTHBEARER", raw)
    bl = BackendLogin(r)
    out = bl.receive(GREETING)
    assert wire(out) == b"P1 AUTHENTICATE OAUTHBEARER " + base64.b64encode(raw) + b"\r\n"
    # RFC 7628 error challenge: answered with the dummy response, then NO.
    assert wire(bl.receive(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n")) == b"AQ==\r\n"
    assert isinstance(bl.receive(b"P1 NO failed\r\n")[0], Rejected)


def test_probe_mode_stops_after_capability() -> None:
    bl = BackendLogin(None, forward_id=(("x-session-id", "s"),))
    assert bl.receive(GREETING) == [LoggedIn(("IMAP4rev1", "SASL-IR", "ID", "LITERAL+",
                                               "AUTH=PLAIN"))]


def test_proxy_v2_header_layout() -> None:
    h = proxy_v2_header(("192.0.2.7", 50000), ("198.51.100.1", 143))
    assert h[:12] == b"\r\n\r\n\x00\r\nQUIT\n" and h[12] == 0x21 and h[13] == 0x11
    (length,) = struct.unpack("!H", h[14:16])
    assert length == 12 and len(h) == 28
    assert h[16:20] == ipaddress.ip_address("192.0.2.7").packed
    assert struct.unpack("!HH", h[24:28]) == (50000, 143)
    h6 = proxy_v2_header(("2001:db8::1", 1), ("2001:db8::2", 2))
    assert h6[13] == 0x21 and len(h6) == 16 + 36
    bl = BackendLogin(req(), proxy_header=h)
    assert bl.start() == [h]


def test_id_not_pipelined_with_authenticate() -> None:
    bl = BackendLogin(req(mechanism="PLAIN", authzid="admin"), forward_id=(("x-session-id", "s"),))
    assert wire(bl.receive(GREETING)) == b'P1 ID ("x-session-id" "s")\r\n'
    assert wire(bl.receive(b"P1 OK\r\n")).startswith(b"P2 AUTHENTICATE PLAIN ")
