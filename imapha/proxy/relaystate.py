"""What a relayed (post-login) IMAP session is doing, learnt from its bytes.

Theory of operation
-------------------
After login the proxy relays bytes both ways. It still has to know a few
things about the session, and it learns them by framing the two byte streams
without parsing them:

* the name of each command the client starts, so that ``UNAUTHENTICATE`` is
  never relayed (RFC 8437: after it the client could log in as someone else
  on the pinned backend). The command is rewritten to an unknown command name,
  so the backend answers it with its own tagged ``BAD``, in order with the
  client's other pipelined commands;
* when the session is at a *safe point* (no command in flight and no line
  half sent either way, or only an IDLE in progress), so drain, kick and
  backend loss can end it with ``* BYE`` where no client mistakes it for a
  failure;
* when the backend said ``* BYE``, and when ``COMPRESS`` made the streams
  opaque (RFC 4978: after its tagged OK both directions are deflated, so
  framing stops and no safe point is reported again).

Framing follows RFC 9051 §4.3: a line ending in ``{n}``, ``{n+}``, ``{n-}``
or ``~{n}`` (RFC 7888, RFC 3516) is followed by n bytes of literal, then the
line goes on. Literal payloads are skipped by length, never searched, so a
50 MB FETCH costs a few slices. A synchronizing client literal is sent only
after the server's ``+``; if the server answers the command with a tagged
response instead, the command is over.

Server bytes are always forwarded at once. Client bytes are forwarded at once
too, except the start of a command line, held until its tag and command name
are known, so the name is checked before any of it leaves. A command whose
name is still unknown after ``HEAD`` bytes (an absurd tag) is a violation: the
session ends rather than relay what could not be checked. Pure: bytes in,
bytes and events out.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import NamedTuple

HEAD = 1024
REFUSED_SUFFIX = b"-REFUSED-BY-PROXY"
REFUSED_COMMANDS = frozenset({b"UNAUTHENTICATE"})
_LITERAL_AT_END = re.compile(rb"~?\{(\d{1,20})([+-]?)\}\r?\n$")
_ATOM_END = re.compile(rb"[ (\[\r\n]")


@dataclass(frozen=True)
class CommandStarted:
    """The client began a command (its first line head is known)."""

    tag: bytes
    name: bytes  # upper-cased
    refused: bool  # rewritten so the backend rejects it


@dataclass(frozen=True)
class IdleDone:
    """The client sent ``DONE`` to end its IDLE."""


@dataclass(frozen=True)
class Tagged:
    """The server completed a command."""

    tag: bytes
    status: bytes  # OK, NO or BAD, upper-cased


@dataclass(frozen=True)
class Continuation:
    """The server sent a ``+`` continuation request."""


@dataclass(frozen=True)
class Bye:
    """The server sent an untagged BYE."""

    line: bytes


@dataclass(frozen=True)
class Violation:
    """The client sent what the proxy will not relay; end the session."""

    reason: str


Event = CommandStarted | IdleDone | Tagged | Continuation | Bye | Violation


class LineKind(enum.Enum):
    END = "end"  # the logical line (command or response) is complete
    SYNC = "sync"  # a synchronizing literal follows once '+' is seen
    NONSYNC = "nonsync"  # a literal follows at once


class PhysicalLine(NamedTuple):
    """One physical line (a tuple: made for every line relayed, so cheap to build)."""

    head: bytes  # first HEAD bytes of the logical line, CRLF stripped
    kind: LineKind
    first: bool  # the first physical line of its logical line
    end: int  # offset just past this line in the data fed


class Framer:
    """Splits one direction into physical lines, skipping literal payloads."""

    def __init__(self) -> None:
        self._head = bytearray()  # start of the current logical line
        self._tail = b""  # last bytes of the current physical line
        self._first = True
        self.literal_left = 0
        self.wait_continuation = False  # a sync literal announced, '+' not yet seen

    @property
    def mid_line(self) -> bool:
        return bool(self._tail) or not self._first or self.literal_left > 0

    @property
    def partial_first_line(self) -> bytes | None:
        """The head of an incomplete first physical line, if one is pending."""
        return bytes(self._head) if self._first and self._tail else None

    def feed(self, data: bytes) -> list[PhysicalLine]:
        out: list[PhysicalLine] = []
        pos, size = 0, len(data)
        while pos < size:
            if not self.literal_left and self._first and not self._tail and not self._head:
                # Fast path: at the start of a logical line, whole lines need no
                # head buffer and no tail copy; only a line ending in "}" can
                # announce a literal, so the regex runs on those alone.
                nl = data.find(b"\n", pos)
                if nl < 0:
                    self._head += data[pos : pos + HEAD]
                    self._tail = data[max(pos, size - 32) :]
                    break
                end = nl + 1
                literal = None
                if data[nl - 1 : nl] == b"}" or data[nl - 2 : nl] == b"}\r":
                    literal = _LITERAL_AT_END.search(data, max(pos, end - 32), end)
                if literal is None:
                    head = data[pos : min(end, pos + HEAD)].rstrip(b"\r\n")
                    out.append(PhysicalLine(head, LineKind.END, True, end))
                    pos = end
                    continue
                # a literal follows: let the general path below keep the state
            if self.literal_left:
                # While waiting for '+', whatever the client sends is the literal.
                self.wait_continuation = False
                take = min(self.literal_left, size - pos)
                self.literal_left -= take
                pos += take
                continue
            nl = data.find(b"\n", pos)
            end = size if nl < 0 else nl + 1
            if len(self._head) < HEAD:
                self._head += data[pos : min(end, pos + HEAD - len(self._head))]
            self._tail = (self._tail + data[max(pos, end - 32) : end])[-32:]
            pos = end
            if nl < 0:
                break
            match = _LITERAL_AT_END.search(self._tail)
            head = bytes(self._head).rstrip(b"\r\n")
            if match:
                kind = LineKind.NONSYNC if match.group(2) else LineKind.SYNC
                out.append(PhysicalLine(head, kind, self._first, pos))
                self.literal_left = int(match.group(1))
                self.wait_continuation = kind is LineKind.SYNC
                self._first = False
            else:
                out.append(PhysicalLine(head, LineKind.END, self._first, pos))
                self._head.clear()
                self._first = True
            self._tail = b""
        return out

    def abandon_literal(self) -> None:
        """The server refused a sync literal: the client will not send it."""
        self.literal_left = 0
        self.wait_continuation = False
        self._head.clear()
        self._tail = b""
        self._first = True


def _name_known(head: bytes) -> bool:
    _, space, rest = head.partition(b" ")
    return bool(space) and _ATOM_END.search(rest) is not None


def _first_atoms(head: bytes) -> tuple[bytes, bytes]:
    tag, _, rest = head.partition(b" ")
    m = _ATOM_END.search(rest)
    return tag, (rest[: m.start()] if m else rest).upper()


class Phase(enum.Enum):
    COMMANDS = "commands"
    IDLE = "idle"  # the server acknowledged the client's IDLE with '+'
    OPAQUE = "opaque"  # COMPRESS is active: framing is impossible


@dataclass
class SessionTracker:
    """Both directions of one relayed session."""

    in_flight: dict[bytes, bytes] = field(default_factory=dict)  # tag -> command name
    phase: Phase = Phase.COMMANDS
    idle_tag: bytes | None = None
    _client: Framer = field(default_factory=Framer)
    _server: Framer = field(default_factory=Framer)
    _held: bytes = b""  # client bytes of a first line not yet forwarded
    _sync_tag: bytes | None = None  # command whose sync literal awaits '+'
    _compress_tag: bytes | None = None

    def client_data(self, data: bytes) -> tuple[bytes, list[Event]]:
        """Feed client bytes; return what to send to the backend, and events."""
        if self.phase is Phase.OPAQUE:
            return data, []
        held, self._held = self._held, b""
        lines = self._client.feed(data)  # the framer has seen ``held`` already
        data = held + data
        events: list[Event] = []
        out: list[bytes] = []
        start = 0
        for line in lines:
            end = len(held) + line.end
            chunk = data[start:end]
            start = end
            if not line.first:
                out.append(chunk)
                if line.kind is LineKind.SYNC:
                    self._sync_tag = _first_atoms(line.head)[0]
                continue
            if self.idle_tag is not None and line.head.strip().upper() == b"DONE":
                events.append(IdleDone())
                out.append(chunk)
                continue
            tag, name = _first_atoms(line.head)
            refused = name in REFUSED_COMMANDS
            if refused:
                cut = len(tag) + 1 + len(name)
                chunk = chunk[:cut] + REFUSED_SUFFIX + chunk[cut:]
            self.in_flight[tag] = name
            if name == b"IDLE":
                self.idle_tag = tag
            elif name == b"COMPRESS":
                self._compress_tag = tag
            if line.kind is LineKind.SYNC:
                self._sync_tag = tag
            events.append(CommandStarted(tag, name, refused))
            out.append(chunk)
        rest = data[start:]
        pending = self._client.partial_first_line
        if pending is not None and not _name_known(pending):
            if len(pending) >= HEAD:
                self.phase = Phase.OPAQUE
                events.append(Violation("command name not found in the first line's head"))
                return b"".join(out), events
            self._held = rest  # bounded by HEAD: checked before anything leaves
        elif pending is not None and _first_atoms(pending)[1] in REFUSED_COMMANDS:
            self._held = rest  # rewritten once the line is complete
        else:
            out.append(rest)
        return b"".join(out), events

    def server_data(self, data: bytes) -> list[Event]:
        """Feed backend bytes (forwarded unchanged by the caller); return events."""
        if self.phase is Phase.OPAQUE:
            return []
        events: list[Event] = []
        for line in self._server.feed(data):
            if not line.first:
                continue
            if line.head.startswith(b"+"):
                events.append(Continuation())
                if self._sync_tag is not None:
                    self._sync_tag = None  # the client's literal now follows
                elif self.idle_tag is not None:
                    self.phase = Phase.IDLE
                continue
            tag, status = _first_atoms(line.head)
            if tag == b"*":
                if status == b"BYE":
                    events.append(Bye(line.head))
                continue
            if status not in (b"OK", b"NO", b"BAD") or tag not in self.in_flight:
                continue
            del self.in_flight[tag]
            events.append(Tagged(tag, status))
            if tag == self._sync_tag:
                self._sync_tag = None
                self._client.abandon_literal()
            if tag == self.idle_tag:
                self.idle_tag = None
                self.phase = Phase.COMMANDS
            if tag == self._compress_tag:
                self._compress_tag = None
                if status == b"OK":
                    self.phase = Phase.OPAQUE
        return events

    @property
    def safe_point(self) -> bool:
        """True when the session may be ended without cutting anything off."""
        if self.phase is Phase.OPAQUE or self._held:
            return False
        if self._client.mid_line or self._server.mid_line:
            return False
        if not self.in_flight:
            return True
        return self.phase is Phase.IDLE and set(self.in_flight) == {self.idle_tag}
