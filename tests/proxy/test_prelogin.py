"""The pre-login session, bytes in and bytes/actions out (no sockets)."""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from imapha.imap import PRE_LOGIN
from imapha.proxy.prelogin import (
    Close,
    LoginRequest,
    Policy,
    PreLogin,
    StartTLS,
    State,
    relayable_capabilities,
)


def session(*, tls: bool = False, starttls: bool = True, plaintext: bool = False,
            max_commands: int = 20, relayed: tuple[str, ...] = ()) -> PreLogin:
    return PreLogin(Policy(tls=tls, starttls=starttls, plaintext_allowed=plaintext,
                           max_commands=max_commands, limits=PRE_LOGIN,
                           relayed_mechanisms=relayed))


def wire(out: list[Any]) -> bytes:
    return b"".join(x for x in out if isinstance(x, bytes))


def actions(out: list[Any]) -> list[Any]:
    return [x for x in out if not isinstance(x, bytes)]


def test_cleartext_greeting_offers_starttls_and_logindisabled_no_auth() -> None:
    s = session()
    greeting = s.greeting()
    assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    assert b"STARTTLS" in greeting and b"LOGINDISABLED" in greeting
    assert b"AUTH=" not in greeting


def test_login_before_tls_is_privacyrequired() -> None:
    s = session()
    s.greeting()
    out = s.receive(b"a LOGIN alice secret\r\n")
    assert wire(out) == b"a NO [PRIVACYREQUIRED] Log in over TLS (STARTTLS) first.\r\n"
    out = s.receive(b"b AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==\r\n")
    assert wire(out).startswith(b"b NO [PRIVACYREQUIRED]")
    assert not actions(out)


def test_starttls_then_login_gives_request_with_hidden_password() -> None:
    s = session()
    s.greeting()
    out = s.receive(b"a STARTTLS\r\nb LOGIN injected x\r\n")
    assert wire(out) == b"a OK Begin TLS negotiation now.\r\n"
    assert actions(out) == [StartTLS()]
    assert s.tls_started() == []  # the injected plaintext command was dropped
    caps = s.receive(b"c CAPABILITY\r\n")
    assert b"AUTH=PLAIN" in wire(caps) and b"STARTTLS" not in wire(caps)
    out = s.receive(b'd LOGIN alice "pa ss"\r\n')
    (req,) = actions(out)
    assert isinstance(req, LoginRequest)
    assert (req.user, req.mechanism, req.tag) == ("alice", "LOGIN", "d")
    assert req.password is not None and req.password.reveal() == "pa ss"
    assert "pa ss" not in repr(req) and "pa ss" not in str(req.password)
    assert s.state is State.LOGGING_IN


def test_plaintext_network_may_log_in_without_tls() -> None:
    s = session(plaintext=True)
    assert b"AUTH=PLAIN" in s.greeting()
    (req,) = actions(s.receive(b"a LOGIN bob pw\r\n"))
    assert isinstance(req, LoginRequest)


def test_implicit_tls_has_no_starttls() -> None:
    s = session(tls=True, starttls=False)
    greeting = s.greeting()
    assert b"STARTTLS" not in greeting and b"LOGINDISABLED" not in greeting
    out = s.receive(b"a STARTTLS\r\n")
    assert wire(out).startswith(b"a BAD [CLIENTBUG]")


def test_sasl_ir_plain_and_continuation_plain() -> None:
    s = session(tls=True)
    s.greeting()
    ir = base64.b64encode(b"\0alice\0pw").decode()
    (req,) = actions(s.receive(f"a AUTHENTICATE PLAIN {ir}\r\n".encode()))
    assert isinstance(req, LoginRequest) and req.mechanism == "PLAIN" and req.user == "alice"
    s2 = session(tls=True)
    s2.greeting()
    out = s2.receive(b"a AUTHENTICATE PLAIN\r\n")
    assert wire(out) == b"+ \r\n"
    (req2,) = actions(s2.receive(base64.b64encode(b"admin\0bob\0pw") + b"\r\n"))
    assert isinstance(req2, LoginRequest) and req2.authzid == "admin" and req2.user == "bob"


def test_login_mechanism_asks_username_then_password() -> None:
    s = session(tls=True)
    s.greeting()
    assert wire(s.receive(b"a AUTHENTICATE LOGIN\r\n")) == b"+ VXNlcm5hbWU6\r\n"
    assert wire(s.receive(base64.b64encode(b"carol") + b"\r\n")) == b"+ UGFzc3dvcmQ6\r\n"
    (req,) = actions(s.receive(base64.b64encode(b"pw") + b"\r\n"))
    assert isinstance(req, LoginRequest) and req.user == "carol"


def test_cancelled_and_broken_sasl_get_bad() -> None:
    s = session(tls=True)
    s.greeting()
    s.receive(b"a AUTHENTICATE PLAIN\r\n")
    assert wire(s.receive(b"*\r\n")) == b"a BAD Authentication cancelled.\r\n"
    s.receive(b"b AUTHENTICATE PLAIN\r\n")
    assert wire(s.receive(base64.b64encode(b"no-nuls") + b"\r\n")).startswith(b"b BAD")
    assert s.state is State.COMMANDS


def test_oauth_offered_only_when_relayed_and_never_scram_plus() -> None:
    assert b"OAUTHBEARER" not in session(tls=True).greeting()
    s = session(tls=True, relayed=("OAUTHBEARER",))
    assert b"AUTH=OAUTHBEARER" in s.greeting()
    assert not [c for c in s.capabilities() if c.endswith("-PLUS")]
    resp = b"n,a=dave@example.org,\x01auth=Bearer tok\x01\x01"
    (req,) = actions(s.receive(b"a AUTHENTICATE OAUTHBEARER " + base64.b64encode(resp) + b"\r\n"))
    assert isinstance(req, LoginRequest)
    assert req.password is None and req.sasl_response == resp and req.user == "dave@example.org"
    s2 = session(tls=True)
    s2.greeting()
    out = s2.receive(b"a AUTHENTICATE SCRAM-SHA-256-PLUS biwsbj1hLHI9eA==\r\n")
    assert wire(out).startswith(b"a NO [CANNOT]")


def test_id_is_answered_and_remembered() -> None:
    s = session()
    s.greeting()
    out = s.receive(b'a ID ("name" "mutt" "version" "2.2")\r\n')
    assert wire(out).startswith(b'* ID ("name" "imapha"')
    assert wire(out).endswith(b"a OK ID completed.\r\n")
    assert s.client_id == (("name", "mutt"), ("version", "2.2"))


def test_noop_capability_logout() -> None:
    s = session()
    s.greeting()
    out = s.receive(b"a NOOP\r\nb CAPABILITY\r\nc LOGOUT\r\n")
    text = wire(out)
    assert text.startswith(b"a OK NOOP completed.\r\n* CAPABILITY IMAP4rev1")
    assert text.endswith(b"* BYE Logging out\r\nc OK Logout completed.\r\n")
    assert actions(out) == [Close("logout")]


def test_other_commands_and_garbage_get_bad_with_code() -> None:
    s = session()
    s.greeting()
    assert wire(s.receive(b"a SELECT INBOX\r\n")) == \
        b"a BAD [CLIENTBUG] SELECT is not valid before login.\r\n"
    bad = wire(s.receive(b"\x01\x02 garbage\r\n"))
    assert bad.startswith(b"* BAD [") and bad.endswith(b"\r\n")


def test_too_many_commands_is_bye_limit() -> None:
    s = session(max_commands=3)
    s.greeting()
    out = s.receive(b"a NOOP\r\nb NOOP\r\nc NOOP\r\nd NOOP\r\ne NOOP\r\n")
    text = wire(out)
    assert text.count(b"OK NOOP") == 3
    assert text.endswith(b"* BYE [LIMIT] Too many commands before login\r\n")
    assert isinstance(actions(out)[-1], Close)
    assert s.receive(b"f NOOP\r\n") == []


def test_failed_login_answers_and_resumes_with_pipelined_commands() -> None:
    s = session(tls=True)
    s.greeting()
    out = s.receive(b"a LOGIN alice wrong\r\nb NOOP\r\n")
    assert isinstance(actions(out)[0], LoginRequest)
    out = s.login_failed()
    assert wire(out) == (b"a NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
                         b"b OK NOOP completed.\r\n")
    s.receive(b"c LOGIN alice x\r\n")
    assert wire(s.login_unavailable()).startswith(b"c NO [UNAVAILABLE]")


def test_success_hands_over_pipelined_bytes_and_filters_capabilities() -> None:
    s = session(tls=True)
    s.greeting()
    s.receive(b"a LOGIN alice pw\r\nb SELECT INBOX\r\nc FETCH 1 ")
    s.receive(b"(FLAGS)\r\n")
    ok = s.login_succeeded(("IMAP4rev1", "IDLE", "UNAUTHENTICATE", "AUTH=PLAIN",
                            "COMPRESS=DEFLATE", "MOVE"))
    # COMPRESS=DEFLATE passes through (the relay goes opaque); the rest may not cross.
    assert ok == b"a OK [CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE MOVE] Logged in\r\n"
    assert s.leftover() == b"b SELECT INBOX\r\nc FETCH 1 (FLAGS)\r\n"
    assert s.state is State.DONE


def test_relayable_capabilities_drops_what_must_not_cross() -> None:
    assert relayable_capabilities(["IMAP4rev2", "unauthenticate", "STARTTLS", "SASL-IR",
                                   "AUTH=SCRAM-SHA-1-PLUS", "X-FOO"]) == ("IMAP4rev2", "X-FOO")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=12))
def test_fuzzed_input_never_raises_and_always_answers_or_closes(chunks: list[bytes]) -> None:
    s = session(max_commands=50)
    s.greeting()
    for chunk in chunks:
        out = s.receive(chunk)
        for item in out:
            assert isinstance(item, bytes | Close | StartTLS | LoginRequest)
            if isinstance(item, LoginRequest):
                return  # a login: the shell's business from here
            if isinstance(item, StartTLS):
                s.tls_started()
        if s.state is State.CLOSED:
            return
