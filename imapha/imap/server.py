"""Server side of a connection: client commands in, responses out (sans-I/O).

Theory of operation
-------------------
``receive_data(octets)`` buffers (``b""`` means EOF), ``next_event()``
returns one event at a time, ``send(response) -> bytes`` encodes a response.
Events are the command dataclasses of :mod:`.commands`, the two actions of
:mod:`.events` (:class:`ContinuationRequired`, :class:`ProtocolViolation`)
whose ``response`` the caller must write, or a :class:`Sentinel`.

Most commands are parsed as they come (pipelining, RFC 9051 §5.5), but some
hand the stream over and the client waits for the server before sending more:
STARTTLS (the next octets are TLS), AUTHENTICATE and IDLE (the next line is
a continuation line, not a command). After one of those ``next_event`` is
``PAUSED`` until the caller answers, which moves the mode:

==============  ==========================================  ==============
mode            trigger                                     next mode
==============  ==========================================  ==============
COMMANDS        parsed a hand-over (or ``pause_after``) one  WAIT_DECISION
WAIT_DECISION   send ``+`` (ContinuationRequest)            CONTINUATION
WAIT_DECISION   send its tagged response                    COMMANDS
CONTINUATION    received a line                             WAIT_DECISION
CONTINUATION    send its tagged response                    COMMANDS
any             fatal violation, send BYE, or EOF drained   CLOSED
==============  ==========================================  ==============

While PAUSED the client should send nothing; if it sends more than
``max_command`` octets anyway the connection ends with ``* BYE [LIMIT]``, so
even a paused connection never buffers without bound.

A tagged OK to STARTTLS also discards whatever the client sent after the
STARTTLS line before TLS (a plaintext-injection attempt, CVE-2011-0411 style);
:attr:`discarded_after_starttls` counts those octets.

Violations never raise: they come out as :class:`ProtocolViolation` with the
response to send and say whether the connection must close. Only a misuse by
the caller (sending an illegal response) raises :class:`LocalProtocolError`.
"""

from __future__ import annotations

import enum

from .codes import ResponseCode
from .commands import (
    Authenticate,
    AuthenticateCancel,
    AuthenticateResponse,
    ClientCommand,
    ClientEvent,
    Command,
    ContinuationLine,
    StartTLS,
    parse_command,
    parse_sasl_line,
)
from .errors import LimitExceeded, LocalProtocolError, ProtocolError, RemoteProtocolError
from .events import (
    CLOSED,
    NEED_DATA,
    PAUSED,
    ContinuationRequired,
    ProtocolViolation,
    Sentinel,
)
from .framer import Frame, Framer, NeedContinuation, Violation
from .limits import PRE_LOGIN, Limits
from .responses import (
    ContinuationRequest,
    Greeting,
    Response,
    Status,
    TaggedResponse,
    UntaggedStatus,
    encode_response,
)
from .tokens import Tag

#: The ``+`` a server sends for a synchronizing literal (RFC 9051 §7.5).
LITERAL_CONTINUATION = b"+ Ready for literal data\r\n"

#: Commands after which the client waits for the server (see module doc).
HANDOVER_COMMANDS = frozenset({"STARTTLS", "AUTHENTICATE", "IDLE"})

ServerEvent = ClientEvent | ContinuationRequired | ProtocolViolation


class Mode(enum.Enum):
    COMMANDS = "commands"
    WAIT_DECISION = "wait-decision"
    CONTINUATION = "continuation"
    CLOSED = "closed"


class _Trigger(enum.Enum):
    HANDOVER = "handover"
    SEND_CONTINUATION = "send-continuation"
    SEND_TAGGED = "send-tagged"
    LINE = "line"


#: The transition table; a missing entry is a caller error.
_TRANSITIONS: dict[tuple[Mode, _Trigger], Mode] = {
    (Mode.COMMANDS, _Trigger.HANDOVER): Mode.WAIT_DECISION,
    (Mode.WAIT_DECISION, _Trigger.SEND_CONTINUATION): Mode.CONTINUATION,
    (Mode.WAIT_DECISION, _Trigger.SEND_TAGGED): Mode.COMMANDS,
    (Mode.CONTINUATION, _Trigger.LINE): Mode.WAIT_DECISION,
    (Mode.CONTINUATION, _Trigger.SEND_TAGGED): Mode.COMMANDS,
}


def violation_response(err: ProtocolError, *, fatal: bool) -> bytes:
    """The octets that answer a violation; never any Python exception text."""
    code = None
    if err.code is not None:
        try:
            code = ResponseCode(err.code, err.code_args)
        except LocalProtocolError:
            code = None
    text = err.text.strip(" ").lstrip("[") or "Error"
    if fatal:
        return encode_response(UntaggedStatus(Status.BYE, text, code))
    status = Status(err.status) if err.status in ("BAD", "NO") else Status.BAD
    if err.tag is not None:
        return encode_response(TaggedResponse(Tag(err.tag), status, text, code))
    return encode_response(UntaggedStatus(status, text, code))


class ServerConnection:
    """One client connection as the server (or proxy front end) sees it."""

    def __init__(
        self, limits: Limits = PRE_LOGIN, *, pause_after: frozenset[str] = frozenset()
    ) -> None:
        """``pause_after`` adds command names after which to pause like after
        STARTTLS (the proxy passes ``{"LOGIN"}``: after a successful login the
        rest of the stream belongs to the backend, see :meth:`take_buffered`)."""
        self._framer = Framer(limits, handshake=True)
        self._pause_after = HANDOVER_COMMANDS | {n.upper() for n in pause_after}
        self._mode = Mode.COMMANDS
        self._pending: ClientCommand | None = None
        self._eof = False
        self._greeted = False
        self.discarded_after_starttls = 0

    # -- configuration ----------------------------------------------------------------

    @property
    def limits(self) -> Limits:
        return self._framer.limits

    @limits.setter
    def limits(self, limits: Limits) -> None:
        """Switch limits (e.g. to ``AUTHENTICATED`` after a successful login)."""
        self._framer.limits = limits

    @property
    def mode(self) -> Mode:
        return self._mode

    # -- input -----------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed octets from the client; ``b""`` signals end of stream."""
        if not data:
            self._eof = True
        elif self._mode is not Mode.CLOSED:
            self._framer.feed(data)

    def next_event(self) -> ServerEvent | Sentinel:
        mode = self._mode
        if mode is Mode.CLOSED:
            return CLOSED
        if mode is Mode.WAIT_DECISION and self._framer.buffered > self.limits.max_command:
            # The client should be waiting; it is not: never buffer without bound.
            self._framer.drop_buffer()
            err = LimitExceeded(
                "Too much data sent while a command waits", limit="max_command", code="LIMIT"
            )
            return self._violation(err, fatal=True)
        if mode is Mode.WAIT_DECISION:
            return PAUSED
        out = self._continuation_line() if mode is Mode.CONTINUATION else self._command()
        if out is None:
            if self._eof:
                self._mode = Mode.CLOSED
                return CLOSED
            return NEED_DATA
        return out

    def _command(self) -> ServerEvent | None:
        item = self._framer.next()
        if item is None:
            return None
        if isinstance(item, NeedContinuation):
            return ContinuationRequired(item.tag, item.size, LITERAL_CONTINUATION)
        if isinstance(item, Violation):
            return self._violation(item.error, fatal=item.fatal)
        return self._parse(item)

    def _parse(self, frame: Frame) -> ServerEvent:
        try:
            cmd = parse_command(frame, self._framer.limits)
        except RemoteProtocolError as exc:
            if exc.tag is None:
                exc.tag = frame.tag_hint
            return self._violation(exc, fatal=False)
        name = cmd.name if isinstance(cmd, Command) else type(cmd).__name__.upper()
        if name in self._pause_after:
            self._pending = cmd
            self._move(_Trigger.HANDOVER)
        return cmd

    def _continuation_line(self) -> ServerEvent | None:
        pending = self._pending
        assert pending is not None
        line = self._framer.next_raw_line()
        if line is None:
            return None
        if isinstance(line, Violation):
            line.error.tag = pending.tag
            self._end_pending()
            return self._violation(line.error, fatal=line.fatal)
        if b"\r" in line or b"\x00" in line:
            self._end_pending()
            return self._violation(
                RemoteProtocolError("Control character in line", tag=pending.tag), fatal=False
            )
        if not isinstance(pending, Authenticate):
            self._move(_Trigger.LINE)
            return ContinuationLine(line)
        try:
            event: AuthenticateResponse | AuthenticateCancel = parse_sasl_line(line)
        except RemoteProtocolError as exc:
            # RFC 9051 §6.2.2: an undecodable response fails AUTHENTICATE with BAD.
            exc.tag = pending.tag
            self._end_pending()
            return self._violation(exc, fatal=False)
        self._move(_Trigger.LINE)
        return event

    def _violation(self, err: ProtocolError, *, fatal: bool) -> ProtocolViolation:
        if fatal:
            self._mode = Mode.CLOSED
        return ProtocolViolation(err, violation_response(err, fatal=fatal), fatal)

    def _end_pending(self) -> None:
        self._pending = None
        self._mode = Mode.COMMANDS

    def _move(self, trigger: _Trigger) -> None:
        nxt = _TRANSITIONS.get((self._mode, trigger))
        if nxt is None:
            raise LocalProtocolError(f"{trigger.value} not allowed in mode {self._mode.value}")
        self._mode = nxt

    def take_buffered(self) -> bytes:
        """Hand the stream over (to a relay): the octets received and not parsed.

        Only between commands (not inside one, not while reading a literal or
        skipping a refused one). The connection is CLOSED afterwards: the
        caller owns the byte stream from here on.
        """
        if not self._framer.idle:
            raise LocalProtocolError("cannot hand over in the middle of a command")
        data = self._framer.take_buffer()
        self._mode = Mode.CLOSED
        return data

    # -- output ----------------------------------------------------------------------

    def send(self, response: Response) -> bytes:
        """Encode a response, checking it is legal now; returns the octets to write."""
        if isinstance(response, Greeting):
            if self._greeted:
                raise LocalProtocolError("greeting already sent")
        elif not self._greeted:
            raise LocalProtocolError("the greeting must come first")
        data = encode_response(response)
        self._greeted = True
        pending = self._pending
        if isinstance(response, ContinuationRequest):
            if not isinstance(pending, Authenticate | Command):
                raise LocalProtocolError("no command is waiting for a continuation")
            self._move(_Trigger.SEND_CONTINUATION)
        elif isinstance(response, TaggedResponse) and pending and response.tag == pending.tag:
            self._move(_Trigger.SEND_TAGGED)
            self._pending = None
            if isinstance(pending, StartTLS) and response.status is Status.OK:
                self.discarded_after_starttls += self._framer.drop_buffer()
        if (
            isinstance(response, UntaggedStatus | Greeting)
            and response.status is Status.BYE
        ):
            self._mode = Mode.CLOSED
        return data
