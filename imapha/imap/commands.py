"""Client commands: events, their parsing (server side) and encoding (client side).

Theory of operation
-------------------
Commands the proxy must understand before login have their own frozen
dataclass and parser (RFC 9051 §6.1, §6.2; RFC 2971 ID; RFC 4959 SASL-IR);
everything else is a generic :class:`Command` (tag, upper-case name, tokens)
on which the embedded backend builds its own parsers. :data:`PARSERS` is
the dispatch table from command name to parser; a parser reads the arguments
after the name from a :class:`~imapha.imap.lexer.Lexer` and must consume all
of them.

Lines the client sends inside a command (after a ``+`` continuation request)
are not commands: :func:`parse_sasl_line` turns an AUTHENTICATE response
into :class:`AuthenticateResponse` or :class:`AuthenticateCancel` (RFC 9051
§6.2.2), any other one (IDLE's ``DONE``) is a :class:`ContinuationLine`.

:func:`encode_command` is the inverse of :func:`parse_command`: it chooses
atom/quoted/literal by content and the literal form by the server's
capabilities (:class:`~imapha.imap.encode.LiteralMode`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

from .encode import LiteralMode, Writer
from .errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from .framer import Frame
from .lexer import Lexer
from .limits import Limits
from .responses import id_params_tokens, parse_id_params
from .tokens import ATOM_RE, Atom, Tag, Token, as_astring, as_atom, astring, decode_utf8

_BASE64_RE = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

#: RFC 2971 §3.3: fields <= 30 octets, values <= 1024 octets, <= 30 pairs.
ID_MAX_FIELD = 30
ID_MAX_VALUE = 1024
ID_MAX_PAIRS = 30


def _check_name(name: str) -> None:
    if not name.isascii() or not ATOM_RE.fullmatch(name.encode()) or name != name.upper():
        raise LocalProtocolError("command names and mechanisms are upper-case atoms")


@dataclass(frozen=True, slots=True)
class Capability:
    tag: Tag


@dataclass(frozen=True, slots=True)
class Noop:
    tag: Tag


@dataclass(frozen=True, slots=True)
class Logout:
    tag: Tag


@dataclass(frozen=True, slots=True)
class StartTLS:
    tag: Tag


@dataclass(frozen=True, slots=True)
class Login:
    """``LOGIN user password`` (RFC 9051 §6.2.3); never log ``password``."""

    tag: Tag
    username: str
    password: bytes

    def __repr__(self) -> str:
        return f"Login(tag={self.tag!r}, username={self.username!r}, password=<hidden>)"


@dataclass(frozen=True, slots=True)
class Authenticate:
    """``AUTHENTICATE MECH [initial-response]`` (RFC 9051 §6.2.2, RFC 4959).

    ``initial_response`` is None when absent and b"" when sent as "=".
    """

    tag: Tag
    mechanism: str
    initial_response: bytes | None = None

    def __post_init__(self) -> None:
        _check_name(self.mechanism)

    def __repr__(self) -> str:
        ir = "None" if self.initial_response is None else "<hidden>"
        return f"Authenticate(tag={self.tag!r}, mechanism={self.mechanism!r}, ir={ir})"


@dataclass(frozen=True, slots=True)
class Id:
    """``ID (field value ...)`` or ``ID NIL`` (RFC 2971 §3.1)."""

    tag: Tag
    params: tuple[tuple[str, str | None], ...] | None

    def __post_init__(self) -> None:
        if self.params is None:
            return
        if len(self.params) > ID_MAX_PAIRS:
            raise LocalProtocolError("ID allows at most 30 pairs")
        for key, value in self.params:
            if "\x00" in key or (value is not None and "\x00" in value):
                raise LocalProtocolError("ID strings cannot hold NUL")
            if len(key.encode()) > ID_MAX_FIELD or (
                value is not None and len(value.encode()) > ID_MAX_VALUE
            ):
                raise LocalProtocolError("ID field or value too long")


@dataclass(frozen=True, slots=True)
class Command:
    """Any other command: ``tag NAME args...``; ``name`` upper case."""

    tag: Tag
    name: str
    args: tuple[Token, ...] = ()

    def __post_init__(self) -> None:
        _check_name(self.name)


@dataclass(frozen=True, slots=True)
class AuthenticateResponse:
    """A client line in an AUTHENTICATE exchange, base64-decoded."""

    data: bytes

    def __repr__(self) -> str:
        return f"AuthenticateResponse(<{len(self.data)} octets hidden>)"


@dataclass(frozen=True, slots=True)
class AuthenticateCancel:
    """The client's ``*`` line: abort the exchange (RFC 9051 §6.2.2)."""


@dataclass(frozen=True, slots=True)
class ContinuationLine:
    """A line sent after ``+`` in a command other than AUTHENTICATE (IDLE's DONE)."""

    line: bytes


ClientCommand = Capability | Noop | Logout | StartTLS | Login | Authenticate | Id | Command
ClientEvent = ClientCommand | AuthenticateResponse | AuthenticateCancel | ContinuationLine

# -- parsing ---------------------------------------------------------------------------


def _no_args(cls: type[Capability | Noop | Logout | StartTLS]) -> _Parser:
    def parse(tag: Tag, lx: Lexer) -> ClientCommand:
        lx.end()
        return cls(tag)

    return parse


def _parse_login(tag: Tag, lx: Lexer) -> ClientCommand:
    lx.sp()
    user = as_astring(lx.token(), "user name")
    lx.sp()
    password = as_astring(lx.token(), "password")
    lx.end()
    return Login(tag, decode_utf8(user, "User name"), password)


def decode_base64(raw: bytes) -> bytes:
    """Strict base64 (RFC 4648 §4, padding required) as SASL uses it."""
    if _BASE64_RE.fullmatch(raw) is None:
        raise RemoteProtocolError("Invalid base64")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise RemoteProtocolError("Invalid base64") from None


def _parse_authenticate(tag: Tag, lx: Lexer) -> ClientCommand:
    lx.sp()
    mech = as_atom(lx.token(), "SASL mechanism").upper()
    initial: bytes | None = None
    if not lx.at_end():
        lx.sp()
        tok = lx.token()
        if not isinstance(tok, Atom):
            raise RemoteProtocolError("Initial response must be base64 or '='")
        raw = tok.value.encode("ascii")
        initial = b"" if raw == b"=" else decode_base64(raw)
    lx.end()
    return Authenticate(tag, mech, initial)


def _parse_id(tag: Tag, lx: Lexer) -> ClientCommand:
    lx.sp()
    params = parse_id_params(lx.token())
    lx.end()
    if params is not None:
        if len(params) > ID_MAX_PAIRS:
            raise LimitExceeded("Too many ID fields", limit="ID_MAX_PAIRS", code="LIMIT")
        for key, value in params:
            if len(key.encode()) > ID_MAX_FIELD or (
                value is not None and len(value.encode()) > ID_MAX_VALUE
            ):
                raise LimitExceeded("ID field too long", limit="ID_MAX_FIELD", code="LIMIT")
    return Id(tag, params)


_Parser = Callable[[Tag, Lexer], ClientCommand]

#: Dispatch table: command name -> parser of its arguments.
PARSERS: dict[str, _Parser] = {
    "CAPABILITY": _no_args(Capability),
    "NOOP": _no_args(Noop),
    "LOGOUT": _no_args(Logout),
    "STARTTLS": _no_args(StartTLS),
    "LOGIN": _parse_login,
    "AUTHENTICATE": _parse_authenticate,
    "ID": _parse_id,
}


def parse_command(frame: Frame, limits: Limits) -> ClientCommand:
    """``tag SP name [args] CRLF`` -> a command event. Errors carry the tag if read."""
    lx = Lexer(frame, limits)
    tag = lx.tag()
    try:
        lx.sp()
        name = lx.word("command name")
        if not name.isascii() or not ATOM_RE.fullmatch(name.encode()):
            raise RemoteProtocolError("Invalid command name")
        name = name.upper()
        parser = PARSERS.get(name)
        if parser is not None:
            return parser(tag, lx)
        return Command(tag, name, lx.rest())
    except RemoteProtocolError as exc:
        raise exc.with_tag(tag) from None
    except LocalProtocolError as exc:  # a value our constructors refuse
        raise RemoteProtocolError(exc.text, tag=tag) from None


def parse_sasl_line(line: bytes) -> AuthenticateResponse | AuthenticateCancel:
    """RFC 9051 §6.2.2: base64 (possibly empty) or "*" to cancel."""
    if line == b"*":
        return AuthenticateCancel()
    return AuthenticateResponse(decode_base64(line))


# -- encoding ----------------------------------------------------------------------------

_SIMPLE_NAMES: dict[type, bytes] = {
    Capability: b"CAPABILITY",
    Noop: b"NOOP",
    Logout: b"LOGOUT",
    StartTLS: b"STARTTLS",
}


def encode_command(cmd: ClientCommand, mode: LiteralMode = LiteralMode.SYNC) -> list[bytes]:
    """The command as chunks; with SYNC literals, chunk k+1 waits for a ``+``."""
    w = Writer(mode)
    w.raw(cmd.tag.encode("ascii"))
    if isinstance(cmd, Capability | Noop | Logout | StartTLS):
        w.raw(b" ").raw(_SIMPLE_NAMES[type(cmd)])
    elif isinstance(cmd, Login):
        if "\x00" in cmd.username or b"\x00" in cmd.password:
            raise LocalProtocolError("LOGIN cannot carry NUL")
        w.raw(b" LOGIN").args((astring(cmd.username), astring(cmd.password)))
    elif isinstance(cmd, Authenticate):
        w.raw(b" AUTHENTICATE ").raw(cmd.mechanism.encode("ascii"))
        if cmd.initial_response is not None:
            ir = base64.b64encode(cmd.initial_response) if cmd.initial_response else b"="
            w.raw(b" ").raw(ir)
    elif isinstance(cmd, Id):
        w.raw(b" ID ").token(id_params_tokens(cmd.params))
    else:
        w.raw(b" ").raw(cmd.name.encode("ascii")).args(cmd.args)
    return w.finish()


def encode_sasl_line(event: AuthenticateResponse | AuthenticateCancel) -> bytes:
    if isinstance(event, AuthenticateCancel):
        return b"*\r\n"
    return base64.b64encode(event.data) + b"\r\n"


def originating_id(
    client_ip: str,
    client_port: int,
    local_ip: str,
    local_port: int,
    session_id: str,
) -> tuple[tuple[str, str | None], ...]:
    """ID parameters that forward the client's address to a backend (Dovecot
    honours them from ``login_trusted_networks``)."""
    return (
        ("x-originating-ip", client_ip),
        ("x-originating-port", str(client_port)),
        ("x-connected-ip", local_ip),
        ("x-connected-port", str(local_port)),
        ("x-session-id", session_id),
    )
