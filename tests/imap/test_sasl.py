"""SASL PLAIN (RFC 4616) and LOGIN: parsing, building, misuse refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imapha.imap import LocalProtocolError, RemoteProtocolError
from imapha.imap.sasl import Credentials, LoginExchange, encode_plain, parse_plain


def test_plain_rfc4616_examples() -> None:
    # RFC 4616 §4: "tim" with password "tanstaaftanstaaf", with and without authzid
    assert parse_plain(b"\x00tim\x00tanstaaftanstaaf") == Credentials("tim", b"tanstaaftanstaaf")
    assert parse_plain(b"Ursel\x00Kurt\x00xipj3plmq") == Credentials(
        "Kurt", b"xipj3plmq", "Ursel"
    )


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"tim",
        b"\x00tim",
        b"\x00\x00pw",  # empty authcid
        b"\x00tim\x00",  # empty password
        b"\x00tim\x00pw\x00extra",  # a third NUL
        b"\x00\xfftim\x00pw",  # authcid not UTF-8
        b"\x00" + b"u" * 256 + b"\x00pw",  # longer than 255 octets
    ],
)
def test_plain_malformed_is_refused(message: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_plain(message)


def test_plain_build_refuses_nul() -> None:
    with pytest.raises(LocalProtocolError):
        encode_plain(Credentials("tim", b"pa\x00ss"))
    with pytest.raises(LocalProtocolError):
        encode_plain(Credentials("t\x00im", b"pass"))
    with pytest.raises(LocalProtocolError):
        encode_plain(Credentials("", b"pass"))


names = st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s and len(s.encode()) < 256)


@given(names, st.binary(min_size=1, max_size=60).filter(lambda b: b"\x00" not in b),
       st.one_of(st.just(""), names))
def test_plain_roundtrip(authcid: str, password: bytes, authzid: str) -> None:
    creds = Credentials(authcid, password, authzid)
    assert parse_plain(encode_plain(creds)) == creds


def test_login_mechanism_exchange() -> None:
    ex = LoginExchange()
    assert ex.start() == b"Username:"
    assert ex.respond(b"tim") == b"Password:"
    assert not ex.done
    assert ex.respond(b"secret") is None
    assert ex.done and ex.credentials == Credentials("tim", b"secret")
    with pytest.raises(RemoteProtocolError):
        ex.respond(b"more")
    # SASL-IR: the initial response is the user name
    ex = LoginExchange()
    assert ex.start(b"tim") == b"Password:"
    with pytest.raises(RemoteProtocolError):
        LoginExchange().start(b"")
    with pytest.raises(LocalProtocolError):
        _ = LoginExchange().credentials


def test_secrets_never_in_repr() -> None:
    from imapha.imap import Authenticate, AuthenticateResponse, Login, Tag

    for obj in (
        Credentials("tim", b"hunter2"),
        Login(Tag("a"), "tim", b"hunter2"),
        Authenticate(Tag("a"), "PLAIN", b"\x00tim\x00hunter2"),
        AuthenticateResponse(b"\x00tim\x00hunter2"),
    ):
        assert "hunter2" not in repr(obj) and "hunter2" not in str(obj)
