"""SASL mechanisms the proxy terminates: PLAIN (RFC 4616) and LOGIN.

Theory of operation
-------------------
PLAIN is one message, ``[authzid] NUL authcid NUL passwd``:
:func:`parse_plain` splits it and enforces RFC 4616 §2 (exactly two NULs,
non-empty authcid and passwd, UTF-8 identities, at most 255 octets each);
:func:`encode_plain` refuses to build a message a NUL would corrupt.

LOGIN (draft-murchison-sasl-login, obsolete but still used by old clients)
asks ``Username:`` then ``Password:``. :class:`LoginExchange` is its server
side as a tiny state machine whose transitions are the table
:data:`_LOGIN_NEXT`; an initial response (SASL-IR) counts as the user name.

Errors are :class:`~imapha.imap.errors.RemoteProtocolError` with status
``BAD`` for malformed messages; deciding whether credentials are right is not
this module's business.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import LocalProtocolError, RemoteProtocolError

#: RFC 4616 §2: authzid, authcid and passwd are at most 255 octets each.
PLAIN_MAX_FIELD = 255


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a mechanism yielded. ``authzid`` is "" when not given."""

    authcid: str
    password: bytes
    authzid: str = ""

    def __repr__(self) -> str:
        return f"Credentials(authcid={self.authcid!r}, authzid={self.authzid!r}, password=<hidden>)"


def _utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"SASL {what} is not UTF-8") from None


def parse_plain(message: bytes) -> Credentials:
    """RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd."""
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise RemoteProtocolError("PLAIN message needs exactly two NUL separators")
    authzid, authcid, passwd = parts
    if not authcid or not passwd:
        raise RemoteProtocolError("PLAIN authcid and password must not be empty")
    if max(len(authzid), len(authcid), len(passwd)) > PLAIN_MAX_FIELD:
        raise RemoteProtocolError("PLAIN field longer than 255 octets")
    return Credentials(_utf8(authcid, "authcid"), passwd, _utf8(authzid, "authzid"))


def encode_plain(creds: Credentials) -> bytes:
    fields = (creds.authzid.encode(), creds.authcid.encode(), creds.password)
    if any(b"\x00" in f for f in fields):
        raise LocalProtocolError("PLAIN fields cannot hold NUL")
    if not fields[1] or not fields[2]:
        raise LocalProtocolError("PLAIN authcid and password must not be empty")
    if max(len(f) for f in fields) > PLAIN_MAX_FIELD:
        raise LocalProtocolError("PLAIN field longer than 255 octets")
    return b"\x00".join(fields)


class _LoginState(enum.Enum):
    USERNAME = "username"
    PASSWORD = "password"
    DONE = "done"


#: state -> (challenge to send in it, next state)
_LOGIN_NEXT: dict[_LoginState, tuple[bytes, _LoginState]] = {
    _LoginState.USERNAME: (b"Username:", _LoginState.PASSWORD),
    _LoginState.PASSWORD: (b"Password:", _LoginState.DONE),
}


class LoginExchange:
    """Server side of the LOGIN mechanism.

    ``start(initial_response)`` and ``respond(data)`` return the next
    challenge to send (raw, not base64) or None once both fields are in;
    then :attr:`credentials` holds them.
    """

    def __init__(self) -> None:
        self._state = _LoginState.USERNAME
        self._user = b""
        self._password = b""

    def start(self, initial_response: bytes | None = None) -> bytes | None:
        if initial_response is not None:
            return self.respond(initial_response)
        return _LOGIN_NEXT[self._state][0]

    def respond(self, data: bytes) -> bytes | None:
        if self._state is _LoginState.DONE:
            raise RemoteProtocolError("LOGIN exchange already complete")
        if b"\x00" in data or len(data) > PLAIN_MAX_FIELD:
            raise RemoteProtocolError("Invalid LOGIN response")
        if self._state is _LoginState.USERNAME:
            if not data:
                raise RemoteProtocolError("Empty user name")
            self._user = data
        else:
            self._password = data
        self._state = _LOGIN_NEXT[self._state][1]
        return None if self._state is _LoginState.DONE else _LOGIN_NEXT[self._state][0]

    @property
    def done(self) -> bool:
        return self._state is _LoginState.DONE

    @property
    def credentials(self) -> Credentials:
        if not self.done:
            raise LocalProtocolError("LOGIN exchange not complete")
        return Credentials(_utf8(self._user, "user name"), self._password)


def login_client_responses(creds: Credentials) -> tuple[bytes, bytes]:
    """Client side of LOGIN: the two responses, user name then password."""
    user = creds.authcid.encode()
    if b"\x00" in user or b"\x00" in creds.password:
        raise LocalProtocolError("LOGIN fields cannot hold NUL")
    return user, creds.password
