"""Logging in to a backend on the client's behalf, sans-I/O (RFC 9051 §6.2).

Theory of operation
-------------------
One :class:`BackendLogin` drives one fresh backend connection through the
steps of the table :data:`_NEXT`, each one command and its tagged answer:

==========  =====================================================  ==========
step        sends                                                  skipped when
==========  =====================================================  ==========
GREETING    (nothing: reads ``* OK``; a PROXY v2 header goes       never
            first when ``proxy_header`` is given)
STARTTLS    ``STARTTLS``, then the :class:`StartTLS` action         tls is not
                                                                   "starttls"
CAPABILITY  ``CAPABILITY``                                         caps known
ID          ``ID (x-originating-ip ... x-session-id ...)``,        no forward
            pipelined with the LOGIN command when that is used
LOGIN       ``LOGIN`` (LITERAL+ when offered), or ``AUTHENTICATE   never
            PLAIN`` with SASL-IR (an authzid, or LOGINDISABLED),
            or the relayed mechanism's response as is
CAPS_AFTER  ``CAPABILITY`` when the OK carried no capabilities     caps given
==========  =====================================================  ==========

The outcome is one :class:`Outcome`: :class:`LoggedIn` (with the post-login
capabilities), :class:`Rejected` (the backend answered the login NO or BAD:
the credentials are wrong, the client is told so, no other backend is tried),
or :class:`Failed` (the backend broke before answering the login: greeting
BYE, refused STARTTLS, a protocol error; the caller may try the user's next
backend). Connection errors, timeouts and TLS failures are the shell's to
turn into :class:`Failed`.

With ``request=None`` it is the health probe's greeting + CAPABILITY check:
no ID, no login, :class:`LoggedIn` carries the pre-login capabilities.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass

from imapha.imap import (
    CLOSED,
    NEED_DATA,
    Authenticate,
    AuthenticateResponse,
    Capability,
    ClientCommand,
    ClientConnection,
    ContinuationRequest,
    ContinueCommand,
    Greeting,
    Id,
    Login,
    RemoteProtocolError,
    ResponseCode,
    Status,
    Tag,
    TaggedResponse,
    UntaggedStatus,
)
from imapha.imap import StartTLS as StartTLSCommand
from imapha.imap.sasl import Credentials, encode_plain
from imapha.proxy.prelogin import LoginRequest


@dataclass(frozen=True)
class StartTLS:
    """Start TLS on the backend connection now, then call :meth:`BackendLogin.tls_started`."""


@dataclass(frozen=True)
class LoggedIn:
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class Rejected:
    """The backend refused the credentials (tagged NO/BAD to the login)."""

    code: ResponseCode | None
    text: str


@dataclass(frozen=True)
class Failed:
    """The backend failed before answering the login; another one may be tried."""

    reason: str


Outcome = LoggedIn | Rejected | Failed
Output = list[bytes | StartTLS | Outcome]


class Step(enum.Enum):
    GREETING = "greeting"
    STARTTLS = "starttls"
    WAIT_TLS = "wait-tls"
    CAPABILITY = "capability"
    ID = "id"
    LOGIN = "login"
    CAPS_AFTER = "caps-after"
    DONE = "done"


#: The order of the steps; a step whose condition does not hold is skipped.
_NEXT: dict[Step, Step] = {
    Step.GREETING: Step.STARTTLS,
    Step.STARTTLS: Step.CAPABILITY,
    Step.WAIT_TLS: Step.CAPABILITY,
    Step.CAPABILITY: Step.ID,
    Step.ID: Step.LOGIN,
    Step.LOGIN: Step.CAPS_AFTER,
    Step.CAPS_AFTER: Step.DONE,
}


def proxy_v2_header(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    """A PROXY protocol v2 header (haproxy proxy-protocol.txt §2.2), PROXY/STREAM."""
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    s_ip, d_ip = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    if isinstance(s_ip, ipaddress.IPv6Address) and s_ip.ipv4_mapped is not None:
        s_ip = s_ip.ipv4_mapped
    if isinstance(d_ip, ipaddress.IPv6Address) and d_ip.ipv4_mapped is not None:
        d_ip = d_ip.ipv4_mapped
    if s_ip.version != d_ip.version:  # mixed families: say nothing rather than lie
        return sig + b"\x21\x00\x00\x00"
    fam = 0x11 if s_ip.version == 4 else 0x21
    body = s_ip.packed + d_ip.packed + struct.pack("!HH", src[1], dst[1])
    return sig + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


class BackendLogin:
    """See the module docstring."""

    def __init__(
        self,
        request: LoginRequest | None,
        *,
        starttls: bool = False,
        forward_id: tuple[tuple[str, str | None], ...] | None = None,
        proxy_header: bytes | None = None,
    ) -> None:
        self.request = request
        self.conn = ClientConnection(tag_prefix="P")
        self.step = Step.GREETING
        self._starttls = starttls
        self._forward_id = forward_id
        self._proxy_header = proxy_header
        self._tag: str | None = None
        self._sasl_sent = False
        self.outcome: Outcome | None = None
        self.prelogin_capabilities: tuple[str, ...] = ()
        self._pipelined = False

    def start(self) -> Output:
        """What to send as soon as the connection is up (the PROXY header, if any)."""
        return [self._proxy_header] if self._proxy_header else []

    def receive(self, data: bytes) -> Output:
        if self.outcome is not None:
            return []
        self.conn.receive_data(data)
        out: Output = []
        while self.outcome is None and self.step is not Step.WAIT_TLS:
            try:
                event = self.conn.next_event()
            except RemoteProtocolError as exc:
                return [*out, self._finish(Failed(f"protocol error: {exc.text}"))]
            if event is NEED_DATA:
                break
            if event is CLOSED:
                return [*out, self._finish(Failed("connection closed"))]
            out.extend(self._event(event))
        return out

    def tls_started(self) -> Output:
        if self.step is not Step.WAIT_TLS:
            raise RuntimeError("no STARTTLS in progress")
        self.conn.tls_started()
        return self._advance(Step.WAIT_TLS)

    def _finish(self, outcome: Outcome) -> Outcome:
        self.outcome = outcome
        self.step = Step.DONE
        return outcome

    def _event(self, event: object) -> Output:
        if isinstance(event, UntaggedStatus) and event.status is Status.BYE:
            if self.step in (Step.CAPS_AFTER,):
                return [self._finish(LoggedIn(self.conn.capabilities))]
            return [self._finish(Failed(f"backend said BYE: {event.text}"))]
        if self.step is Step.GREETING:
            if not isinstance(event, Greeting) or event.status is not Status.OK:
                return [self._finish(Failed("backend greeting is not OK"))]
            return self._advance(Step.GREETING)
        if isinstance(event, ContinuationRequest):
            return self._continuation()
        if not isinstance(event, TaggedResponse) or event.tag != self._tag:
            return []  # untagged data (CAPABILITY is tracked by the connection)
        self._tag = None
        if self.step is Step.LOGIN:
            if event.status is not Status.OK:
                return [self._finish(Rejected(event.code, event.text))]
            if event.code is None or event.code.name != "CAPABILITY":
                self.conn.capabilities = ()  # pre-login ones; ask again (RFC 9051 §6.2.3)
            return self._advance(Step.LOGIN)
        if event.status is not Status.OK and self.step in (Step.STARTTLS, Step.CAPABILITY):
            return [self._finish(Failed(f"{self.step.value} refused: {event.text}"))]
        if self.step is Step.STARTTLS:
            self.step = Step.WAIT_TLS
            return [StartTLS()]
        return self._advance(self.step)  # ID's answer does not matter

    def _continuation(self) -> Output:
        if self.conn.awaiting_continuation:
            return [self.conn.send(ContinueCommand())]
        if self.step is Step.LOGIN and not self._sasl_sent:
            self._sasl_sent = True
            return [self.conn.send(AuthenticateResponse(self._sasl_message()))]
        if self.step is Step.LOGIN:
            # RFC 7628 §3.2.2: an error challenge; the client answers with a dummy
            # response and the server then fails the command.
            return [self.conn.send(AuthenticateResponse(b"\x01"))]
        return [self._finish(Failed("unexpected continuation request"))]

    def _advance(self, done: Step) -> Output:
        step = _NEXT[done]
        while step is not Step.DONE:
            out = self._begin(step)
            if out is not None:
                self.step = Step.LOGIN if self._pipelined else step
                return out
            step = _NEXT[step]
        return [self._finish(LoggedIn(self.conn.capabilities))]

    def _send(self, make: Callable[[Tag], ClientCommand]) -> bytes:
        tag = self.conn.new_tag()
        self._tag = tag
        return self.conn.send(make(tag))

    def _begin(self, step: Step) -> Output | None:
        """The bytes that start ``step``, or None when it is skipped."""
        conn = self.conn
        if step is Step.STARTTLS:
            return [self._send(StartTLSCommand)] if self._starttls else None
        if step is Step.CAPABILITY:
            return None if conn.capabilities else [self._send(Capability)]
        if step is Step.ID:
            self.prelogin_capabilities = conn.capabilities
            forward = self._forward_id
            if forward is None or self.request is None or not conn.has_capability("ID"):
                return None
            sent: Output = [self._send(lambda tag: Id(tag, forward))]
            if self._uses_login_command():
                # RFC 9051 §5.5: ID and LOGIN may be pipelined; one round trip saved.
                self._pipelined = True
                sent.append(self._login())
            return sent
        if step is Step.LOGIN:
            return None if self.request is None else [self._login()]
        if step is Step.CAPS_AFTER:
            return None if conn.capabilities else [self._send(Capability)]
        return None

    def _uses_login_command(self) -> bool:
        req, conn = self.request, self.conn
        if req is None or req.password is None:
            return False
        use_plain = bool(req.authzid) or conn.has_capability("LOGINDISABLED")
        return not (use_plain and conn.has_capability("AUTH=PLAIN"))

    def _login(self) -> bytes:
        req = self.request
        assert req is not None
        conn = self.conn
        tag = conn.new_tag()
        self._tag = tag
        if req.password is None:  # a relayed mechanism
            if conn.has_capability("SASL-IR"):
                self._sasl_sent = True
                return conn.send(Authenticate(tag, req.mechanism, req.sasl_response or b""))
            return conn.send(Authenticate(tag, req.mechanism))
        use_plain = bool(req.authzid) or conn.has_capability("LOGINDISABLED")
        if use_plain and conn.has_capability("AUTH=PLAIN"):
            if conn.has_capability("SASL-IR"):
                self._sasl_sent = True
                return conn.send(Authenticate(tag, "PLAIN", self._sasl_message()))
            return conn.send(Authenticate(tag, "PLAIN"))
        return conn.send(Login(tag, req.user, req.password.reveal().encode("utf-8")))

    def _sasl_message(self) -> bytes:
        req = self.request
        assert req is not None
        if req.password is None:
            return req.sasl_response or b""
        return encode_plain(Credentials(req.user, req.password.reveal().encode("utf-8"),
                                        req.authzid))

