"""Client side of a connection: commands out, server responses in (sans-I/O).

Theory of operation
-------------------
This is what the proxy uses towards a backend. ``send(command) -> bytes``
encodes a command; ``receive_data(octets)`` buffers (``b""`` is EOF) and
``next_event()`` returns one response dataclass of :mod:`.responses` at a
time, or a :class:`~.events.Sentinel`. A broken response raises
:class:`RemoteProtocolError`; the connection is then CLOSED (drop the backend).

Literals in commands follow the server's capabilities, learnt from its
``CAPABILITY`` responses and ``[CAPABILITY ...]`` codes (RFC 9051 §7.1):
LITERAL+ gives ``{n+}``, LITERAL- gives ``{n+}`` up to 4096 octets, anything
else a synchronizing literal. Then ``send`` returns only the octets up to and
including the first ``{n}`` CRLF and keeps the rest; when the server's ``+``
arrives (a :class:`ContinuationRequest` event while
:attr:`awaiting_continuation`), ``send(ContinueCommand())`` returns the next
part. A tagged response to that command instead of ``+`` (e.g. ``NO``) drops
the rest (RFC 9051 §7.5).

After a tagged OK to STARTTLS, octets that were already sent in clear by the
server are an injection attempt: they raise. Call :meth:`tls_started` once
the TLS handshake is done; it also forgets the capabilities (RFC 9051 §6.2.1).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from .codes import ResponseCode
from .commands import (
    Authenticate,
    AuthenticateCancel,
    AuthenticateResponse,
    ClientCommand,
    Command,
    ContinuationLine,
    StartTLS,
    encode_command,
    encode_sasl_line,
)
from .encode import LiteralMode
from .errors import LocalProtocolError, RemoteProtocolError
from .events import CLOSED, NEED_DATA, Sentinel
from .framer import Frame, Framer, Violation
from .limits import BACKEND_RESPONSES, Limits
from .responses import (
    CapabilityResponse,
    ContinuationRequest,
    Greeting,
    Response,
    Status,
    TaggedResponse,
    UntaggedStatus,
    has_capability,
    parse_response,
)
from .tokens import Tag


@dataclass(frozen=True, slots=True)
class ContinueCommand:
    """Send the next part of a command held back for a synchronizing literal."""


ClientOutput = (
    ClientCommand | ContinueCommand | AuthenticateResponse | AuthenticateCancel | ContinuationLine
)

#: Commands after which a ``+`` from the server is expected.
_CONTINUED = frozenset({"AUTHENTICATE", "IDLE"})


def _command_name(cmd: ClientCommand) -> str:
    return cmd.name if isinstance(cmd, Command) else type(cmd).__name__.upper()


class ClientConnection:
    """One connection to an IMAP server, as its client."""

    def __init__(self, limits: Limits = BACKEND_RESPONSES, *, tag_prefix: str = "a") -> None:
        self._framer = Framer(limits, handshake=False)
        self._greeted = False
        self._closed = False
        self._eof = False
        self._inflight: dict[str, str] = {}
        self._held: list[bytes] = []
        self._held_tag: str | None = None
        self._go_ahead = 0
        self._tls_pending = False
        self._tags = (Tag(f"{tag_prefix}{n}") for n in itertools.count(1))
        self.capabilities: tuple[str, ...] = ()

    # -- helpers -----------------------------------------------------------------------

    def new_tag(self) -> Tag:
        return next(self._tags)

    def has_capability(self, name: str) -> bool:
        return has_capability(self.capabilities, name)

    @property
    def literal_mode(self) -> LiteralMode:
        if self.has_capability("LITERAL+"):
            return LiteralMode.PLUS
        if self.has_capability("LITERAL-"):
            return LiteralMode.MINUS
        return LiteralMode.SYNC

    @property
    def awaiting_continuation(self) -> bool:
        """Part of a command is held until the server's ``+``."""
        return bool(self._held)

    @property
    def inflight(self) -> frozenset[str]:
        """Tags sent and not yet answered with a tagged response."""
        return frozenset(self._inflight)

    # -- output ------------------------------------------------------------------------

    def send(self, item: ClientOutput) -> bytes:
        if self._closed:
            raise LocalProtocolError("connection is closed")
        if isinstance(item, ContinueCommand):
            if not self._held or not self._go_ahead:
                raise LocalProtocolError("no continuation received for a held literal")
            self._go_ahead -= 1
            return self._held.pop(0)
        if isinstance(item, ContinuationLine):
            if "IDLE" not in self._inflight.values():
                raise LocalProtocolError("no IDLE in progress")
            if b"\r" in item.line or b"\n" in item.line:
                raise LocalProtocolError("a continuation line cannot hold CR or LF")
            return item.line + b"\r\n"
        if isinstance(item, AuthenticateResponse | AuthenticateCancel):
            if "AUTHENTICATE" not in self._inflight.values():
                raise LocalProtocolError("no AUTHENTICATE in progress")
            return encode_sasl_line(item)
        if self._held:
            raise LocalProtocolError("a command is still waiting for a continuation")
        if item.tag in self._inflight:
            raise LocalProtocolError("tag already in use")
        if isinstance(item, StartTLS | Authenticate) and self._inflight:
            raise LocalProtocolError("STARTTLS/AUTHENTICATE must not be pipelined")
        chunks = encode_command(item, self.literal_mode)
        self._inflight[item.tag] = _command_name(item)
        if len(chunks) > 1:
            self._held = chunks[1:]
            self._held_tag = item.tag
        return chunks[0]

    # -- input -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if not data:
            self._eof = True
        elif not self._closed:
            self._framer.feed(data)

    def take_buffered(self) -> bytes:
        """Hand the stream over (to a relay): octets received and not parsed yet.

        Only between responses; the connection is CLOSED afterwards.
        """
        if not self._framer.idle:
            raise LocalProtocolError("cannot hand over in the middle of a response")
        self._closed = True
        return self._framer.take_buffer()

    def tls_started(self) -> None:
        """The TLS handshake after STARTTLS is done: resume, forget capabilities."""
        if not self._tls_pending:
            raise LocalProtocolError("no STARTTLS was accepted")
        self._tls_pending = False
        self.capabilities = ()

    def next_event(self) -> Response | Sentinel:
        if self._closed:
            return CLOSED
        if self._tls_pending:
            if self._framer.buffered:
                self._closed = True
                raise RemoteProtocolError("Server sent data after STARTTLS OK in clear")
            return NEED_DATA
        try:
            item = self._framer.next()
            if item is None:
                if self._eof:
                    self._closed = True
                    return CLOSED
                return NEED_DATA
            if isinstance(item, Violation):
                raise item.error
            if not isinstance(item, Frame):  # NeedContinuation: only with handshake=True
                raise LocalProtocolError("framer misconfigured")
            resp = parse_response(item, self._framer.limits, greeting=not self._greeted)
            self._greeted = True
            self._track(resp)
        except RemoteProtocolError:
            self._closed = True
            raise
        return resp

    def _track(self, resp: Response) -> None:
        code: ResponseCode | None = None
        if isinstance(resp, CapabilityResponse):
            self.capabilities = resp.capabilities
        elif isinstance(resp, ContinuationRequest):
            if self._held:
                self._go_ahead += 1
            elif not _CONTINUED.intersection(self._inflight.values()):
                raise RemoteProtocolError("Unexpected continuation request")
        elif isinstance(resp, TaggedResponse):
            name = self._inflight.pop(resp.tag, None)
            if name is None:
                raise RemoteProtocolError("Tagged response for an unknown tag")
            if resp.tag == self._held_tag:
                self._held = []
                self._held_tag = None
                self._go_ahead = 0
            if name == "STARTTLS" and resp.status is Status.OK:
                self._tls_pending = True
            code = resp.code
        elif isinstance(resp, Greeting | UntaggedStatus):
            code = resp.code
        if code is not None and code.name == "CAPABILITY":
            self.capabilities = code.capabilities
