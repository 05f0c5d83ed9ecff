"""The proxy's side of the not-authenticated state (RFC 9051 §6.1, §6.2), sans-I/O.

Theory of operation
-------------------
Before login the proxy is the IMAP server: it greets, answers CAPABILITY,
NOOP, LOGOUT and ID itself, runs STARTTLS, and terminates the SASL
mechanisms whose credentials it must see (LOGIN, ``AUTHENTICATE PLAIN`` with
or without SASL-IR, RFC 4959, and the LOGIN mechanism) to pick a backend and
log in there. OAUTHBEARER (RFC 7628) and XOAUTH2 are offered only when every
healthy backend advertised them; their client response is relayed to the
backend as it is. ``SCRAM-*-PLUS`` is never offered: channel binding cannot
cross a TLS-terminating proxy.

:class:`PreLogin` wraps :class:`imapha.imap.ServerConnection` and adds the
session's state, a table of allowed inputs per state:

============  ===============================================  ============
state         event                                            next state
============  ===============================================  ============
COMMANDS      STARTTLS accepted                                WAIT_TLS
WAIT_TLS      :meth:`tls_started`                              COMMANDS
COMMANDS      AUTHENTICATE needing a client response           SASL
SASL          the last client response                         LOGGING_IN
COMMANDS      LOGIN, AUTHENTICATE with all it needs            LOGGING_IN
LOGGING_IN    :meth:`login_failed` / :meth:`login_unavailable`  COMMANDS
LOGGING_IN    :meth:`login_succeeded`                          DONE
any           LOGOUT, fatal violation, command limit           CLOSED
============  ===============================================  ============

Output is a list of bytes (to write to the client, in order) and actions
(:class:`StartTLS`: begin the TLS handshake after writing what precedes it;
:class:`LoginRequest`: log in to a backend; :class:`Close`). While
LOGGING_IN, client bytes are kept unparsed; once logged in,
:meth:`leftover` returns them for the relay (pipelined commands).

Privacy (RFC 9051 §6.2.3, RFC 5530): on a cleartext connection from outside
``plaintext_auth_networks`` the capabilities say ``LOGINDISABLED`` and no
``AUTH=``, and LOGIN/AUTHENTICATE get ``NO [PRIVACYREQUIRED]``.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from imapha import __version__
from imapha.imap import (
    CLOSED,
    NEED_DATA,
    PAUSED,
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
    Limits,
    Login,
    Logout,
    Noop,
    ProtocolViolation,
    RemoteProtocolError,
    ResponseCode,
    ServerConnection,
    Status,
    Tag,
    TaggedResponse,
    UntaggedStatus,
    codes,
)
from imapha.imap import StartTLS as StartTLSCommand
from imapha.imap.sasl import LoginExchange, parse_plain
from imapha.imap.server import violation_response
from imapha.log import Secret

#: Mechanisms whose client response is relayed to the backend unread.
RELAYED_MECHANISMS = ("OAUTHBEARER", "XOAUTH2")
#: Mechanisms the proxy terminates itself.
TERMINATED_MECHANISMS = ("PLAIN", "LOGIN")
#: Post-login capabilities of a backend that the proxy must not pass on.
NOT_RELAYED = frozenset({"UNAUTHENTICATE", "STARTTLS", "LOGINDISABLED", "SASL-IR"})
NOT_RELAYED_PREFIXES = ("AUTH=",)

SERVER_ID: tuple[tuple[str, str | None], ...] = (
    ("name", "imapha"),
    ("version", __version__),
)


def relayable_capabilities(caps: Sequence[str]) -> tuple[str, ...]:
    """A backend's post-login capabilities minus what a proxy must not relay.

    UNAUTHENTICATE (RFC 8437) would let a client become another user on the
    pinned backend. COMPRESS=DEFLATE passes through: the relay then cannot
    frame the streams, so drain and kick end such a session at their hard
    deadline instead of a safe point. Computed once per distinct list (a
    backend sends the same one on every login).
    """
    return _relayable(tuple(caps))


@functools.lru_cache(maxsize=256)
def _relayable(caps: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for cap in caps:
        upper = cap.upper()
        if upper in NOT_RELAYED or upper.startswith(NOT_RELAYED_PREFIXES):
            continue
        out.append(cap)
    return tuple(out)


@dataclass(frozen=True)
class Policy:
    """What this connection may do, fixed when it is accepted."""

    tls: bool  # TLS is active from the start (the implicit-TLS listener)
    starttls: bool  # STARTTLS is offered (the port-143 listener)
    plaintext_allowed: bool  # the client is in plaintext_auth_networks
    max_commands: int
    limits: Limits
    relayed_mechanisms: tuple[str, ...] = ()  # OAUTHBEARER/XOAUTH2 every backend has


@dataclass(frozen=True)
class StartTLS:
    """Start the TLS handshake now (the tagged OK was just written)."""


@dataclass(frozen=True)
class LoginRequest:
    """Log in to a backend as ``user``.

    ``password`` is set for LOGIN/PLAIN/LOGIN-mechanism logins;
    ``sasl_response`` for a relayed mechanism (``mechanism``), sent as is.
    """

    tag: Tag
    user: str
    password: Secret | None
    mechanism: str  # "LOGIN" for the LOGIN command, else the SASL mechanism
    sasl_response: bytes | None = field(default=None, repr=False)
    authzid: str = ""


@dataclass(frozen=True)
class Close:
    """Close the connection once what precedes it is written."""

    reason: str


Action = StartTLS | LoginRequest | Close
Output = list[bytes | Action]


class State(enum.Enum):
    COMMANDS = "commands"
    WAIT_TLS = "wait-tls"
    SASL = "sasl"
    LOGGING_IN = "logging-in"
    DONE = "done"
    CLOSED = "closed"


class PreLogin:
    """One client connection until it is logged in (see the module docstring)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.conn = ServerConnection(policy.limits)
        self.state = State.COMMANDS
        self.tls = policy.tls
        self.commands = 0
        self.client_id: tuple[tuple[str, str | None], ...] | None = None
        self._sasl: Authenticate | None = None
        self._login_exchange: LoginExchange | None = None
        self._pending_tag: Tag | None = None

    # -- what we offer ----------------------------------------------------------------

    @property
    def may_login(self) -> bool:
        return self.tls or self.policy.plaintext_allowed

    def capabilities(self) -> tuple[str, ...]:
        caps = ["IMAP4rev1", "SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE"]
        if self.policy.starttls and not self.tls:
            caps.append("STARTTLS")
        if self.may_login:
            mechs = [*TERMINATED_MECHANISMS, *self.policy.relayed_mechanisms]
            caps.extend(f"AUTH={m}" for m in mechs)
        else:
            caps.append("LOGINDISABLED")
        return tuple(caps)

    def greeting(self) -> bytes:
        code = _capability_code(self.capabilities())
        return self.conn.send(Greeting(Status.OK, "imapha ready.", code))

    # -- input -------------------------------------------------------------------------

    def receive(self, data: bytes) -> Output:
        """Feed client bytes (``b""`` at EOF); returns what to write and do."""
        if self.state is State.CLOSED:
            return []
        self.conn.receive_data(data)
        if self.state in (State.LOGGING_IN, State.WAIT_TLS, State.DONE):
            return [Close("client closed")] if not data and self.state is not State.DONE else []
        return self._process()

    def _process(self) -> Output:
        out: Output = []
        while self.state in (State.COMMANDS, State.SASL):
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                break
            if event is CLOSED:
                self.state = State.CLOSED
                out.append(Close("client closed"))
                break
            if isinstance(event, ContinuationRequired):
                out.append(event.response)
                continue
            if isinstance(event, ProtocolViolation):
                out.append(_with_code(event))
                if event.fatal:
                    self.state = State.CLOSED
                    out.append(Close("protocol violation"))
                    break
                self._sasl = None
                self.state = State.COMMANDS
                if self._count(out):
                    break
                continue
            if isinstance(event, AuthenticateResponse | AuthenticateCancel):
                out.extend(self._sasl_step(event))
                continue
            if isinstance(event, ContinuationLine):  # only after IDLE, which we refuse
                continue
            if self._count(out):
                break
            out.extend(self._command(event))
        return out

    def _count(self, out: Output) -> bool:
        """Count a command; True (and BYE) once the limit is passed."""
        self.commands += 1
        if self.commands <= self.policy.max_commands:
            return False
        out.append(self.conn.send(UntaggedStatus(Status.BYE, "Too many commands before login",
                                             codes.LIMIT)))
        self.state = State.CLOSED
        out.append(Close("command limit"))
        return True

    def _tagged(self, tag: Tag, status: Status, text: str,
                code: ResponseCode | None = None) -> bytes:
        return self.conn.send(TaggedResponse(tag, status, text, code))

    def _command(self, cmd: object) -> Output:
        if isinstance(cmd, Capability):
            return [self.conn.send(CapabilityResponse(self.capabilities())),
                    self._tagged(cmd.tag, Status.OK, "Capability completed.")]
        if isinstance(cmd, Noop):
            return [self._tagged(cmd.tag, Status.OK, "NOOP completed.")]
        if isinstance(cmd, Logout):
            self.state = State.CLOSED
            return [self.conn.send(UntaggedStatus(Status.BYE, "Logging out")),
                    self._tagged(cmd.tag, Status.OK, "Logout completed."),
                    Close("logout")]
        if isinstance(cmd, Id):
            self.client_id = cmd.params
            return [self.conn.send(IdResponse(SERVER_ID)),
                    self._tagged(cmd.tag, Status.OK, "ID completed.")]
        if isinstance(cmd, StartTLSCommand):
            if not self.policy.starttls or self.tls:
                return [self._tagged(cmd.tag, Status.BAD, "TLS is already active."
                                     if self.tls else "STARTTLS is not offered here.",
                                     codes.CLIENTBUG)]
            self.state = State.WAIT_TLS
            return [self._tagged(cmd.tag, Status.OK, "Begin TLS negotiation now."), StartTLS()]
        if isinstance(cmd, Login):
            if not self.may_login:
                return [self._privacy(cmd.tag)]
            return [self._request(LoginRequest(cmd.tag, cmd.username,
                                               Secret(cmd.password.decode("utf-8", "replace")),
                                               "LOGIN"))]
        if isinstance(cmd, Authenticate):
            return self._authenticate(cmd)
        assert isinstance(cmd, Command)
        return [self._tagged(cmd.tag, Status.BAD, f"{cmd.name} is not valid before login.",
                             codes.CLIENTBUG)]

    def _privacy(self, tag: Tag) -> bytes:
        text = "Log in over TLS (STARTTLS) first." if self.policy.starttls else "TLS required."
        if self.state is State.SASL or self._sasl is not None:
            self._sasl = None
            self.state = State.COMMANDS
        return self._tagged(tag, Status.NO, text, codes.PRIVACYREQUIRED)

    def _request(self, request: LoginRequest) -> LoginRequest:
        self.state = State.LOGGING_IN
        self._pending_tag = request.tag
        return request

    # -- SASL ------------------------------------------------------------------------

    def _authenticate(self, cmd: Authenticate) -> Output:
        mech = cmd.mechanism
        if not self.may_login:
            return [self._privacy(cmd.tag)]
        if mech not in TERMINATED_MECHANISMS and mech not in self.policy.relayed_mechanisms:
            return [self._tagged(cmd.tag, Status.NO, "Unsupported authentication mechanism.",
                                 codes.CANNOT)]
        self._sasl = cmd
        if mech == "LOGIN":
            self._login_exchange = LoginExchange()
            try:
                challenge = self._login_exchange.start(cmd.initial_response)
            except RemoteProtocolError as exc:
                return [self._sasl_bad(exc)]
            return [self._challenge(challenge)]
        if cmd.initial_response is not None and (cmd.initial_response or mech != "PLAIN"):
            return [self._sasl_final(cmd.initial_response)]
        self.state = State.SASL
        return [self.conn.send(ContinuationRequest(""))]

    def _challenge(self, challenge: bytes | None) -> bytes | LoginRequest:
        if challenge is None:
            exchange = self._login_exchange
            assert exchange is not None and self._sasl is not None
            creds = exchange.credentials
            self._login_exchange = None
            return self._request(LoginRequest(self._sasl.tag, creds.authcid,
                                              Secret(creds.password.decode("utf-8", "replace")),
                                              "LOGIN"))
        self.state = State.SASL
        return self.conn.send(ContinuationRequest.challenge(challenge))

    def _sasl_step(self, event: AuthenticateResponse | AuthenticateCancel) -> Output:
        cmd = self._sasl
        assert cmd is not None
        if isinstance(event, AuthenticateCancel):
            self._sasl = None
            self._login_exchange = None
            self.state = State.COMMANDS
            return [self._tagged(cmd.tag, Status.BAD, "Authentication cancelled.")]
        if self._login_exchange is not None:
            try:
                return [self._challenge(self._login_exchange.respond(event.data))]
            except RemoteProtocolError as exc:
                return [self._sasl_bad(exc)]
        return [self._sasl_final(event.data)]

    def _sasl_final(self, data: bytes) -> bytes | LoginRequest:
        cmd = self._sasl
        assert cmd is not None
        if cmd.mechanism in self.policy.relayed_mechanisms:
            user = _oauth_user(cmd.mechanism, data)
            return self._request(LoginRequest(cmd.tag, user, None, cmd.mechanism, data))
        try:
            creds = parse_plain(data)
        except RemoteProtocolError as exc:
            return self._sasl_bad(exc)
        return self._request(LoginRequest(cmd.tag, creds.authcid,
                                          Secret(creds.password.decode("utf-8", "replace")),
                                          "PLAIN", authzid=creds.authzid))

    def _sasl_bad(self, exc: RemoteProtocolError) -> bytes:
        cmd = self._sasl
        assert cmd is not None
        self._sasl = None
        self._login_exchange = None
        self.state = State.COMMANDS
        return self._tagged(cmd.tag, Status.BAD, exc.text, codes.CLIENTBUG)

    # -- results from the shell -----------------------------------------------------------

    def tls_started(self) -> Output:
        """The TLS handshake after STARTTLS completed; resume reading commands."""
        if self.state is not State.WAIT_TLS:
            raise RuntimeError("no STARTTLS in progress")
        self.tls = True
        self.state = State.COMMANDS
        return self._process()

    def _end_login(self) -> Tag:
        if self.state is not State.LOGGING_IN or self._pending_tag is None:
            raise RuntimeError("no login in progress")
        tag, self._pending_tag = self._pending_tag, None
        self._sasl = None
        return tag

    def login_succeeded(self, capabilities: Sequence[str]) -> bytes:
        """The backend accepted: our tagged OK with the relayable capabilities."""
        tag = self._end_login()
        self.state = State.DONE
        code = _capability_code(relayable_capabilities(tuple(capabilities)))
        return self._tagged(tag, Status.OK, "Logged in", code)

    def login_failed(self) -> Output:
        """Wrong credentials (never says which backend was asked)."""
        tag = self._end_login()
        self.state = State.COMMANDS
        out: Output = [self._tagged(tag, Status.NO, "Authentication failed.",
                                    codes.AUTHENTICATIONFAILED)]
        return out + self._process()

    def login_unavailable(self, text: str = "No backend available, try again later.") -> Output:
        tag = self._end_login()
        self.state = State.COMMANDS
        out: Output = [self._tagged(tag, Status.NO, text, codes.UNAVAILABLE)]
        return out + self._process()

    def bye(self, text: str, code: ResponseCode | None = None) -> bytes:
        """An untagged BYE ending the connection (timeouts, shutdown)."""
        if self.state is State.CLOSED:
            return b""
        self.state = State.CLOSED
        return self.conn.send(UntaggedStatus(Status.BYE, text, code))

    def leftover(self) -> bytes:
        """Client bytes received after the login command, for the relay.

        Works around :class:`ServerConnection` having no public way to hand
        its unparsed buffer over (reported to the imap package's owner).
        """
        framer = self.conn._framer
        data = bytes(framer._buf)
        framer._buf.clear()
        return data


@functools.lru_cache(maxsize=256)
def _capability_code(caps: tuple[str, ...]) -> ResponseCode:
    """``[CAPABILITY ...]``, built (and validated) once per distinct list."""
    return ResponseCode.capability(caps)


def _with_code(event: ProtocolViolation) -> bytes:
    """The violation's answer, with ``[CLIENTBUG]`` when the wire layer gave no code."""
    err = event.error
    if err.code is not None:
        return event.response
    err.code = "CLIENTBUG"
    return violation_response(err, fatal=event.fatal)


def _oauth_user(mechanism: str, data: bytes) -> str:
    """The user named in an OAUTHBEARER (RFC 7628 §3.1) or XOAUTH2 response, for routing."""
    text = data.decode("utf-8", "replace")
    if mechanism == "XOAUTH2":
        for part in text.split("\x01"):
            if part.startswith("user="):
                return part[5:]
        return ""
    gs2 = text.split("\x01", 1)[0]
    for item in gs2.split(","):
        if item.startswith("a="):
            return item[2:].replace("=2C", ",").replace("=3D", "=")
    return ""
