"""Incremental framer: octets in, whole commands/responses (lines + literals) out.

Theory of operation
-------------------
An IMAP command or response is one or more text lines joined by literals
(RFC 9051 §4.3, §7.5): a line that ends in ``{n}`` (synchronizing),
``{n+}`` (non-synchronizing, RFC 7888 LITERAL+/LITERAL-) or ``~{n}`` /
``~{n+}`` (binary, RFC 3516) is followed by exactly ``n`` octets, then the
next line continues the same command. The framer cuts the octet stream into
:class:`Frame` objects, each holding the text lines (literal markers and
line ends removed) and the literals between them, ready for the lexer.

It is a small state machine (:class:`_Mode`):

====================  ================================================  ===========
mode                  input                                             next mode
====================  ================================================  ===========
LINE                  line ending in an accepted literal marker         LITERAL
LINE                  line ending in a refused non-sync marker          SKIP_LITERAL
LINE                  line longer than ``max_line``, LF not yet seen    SKIP_LINE
LINE                  line longer than ``max_line``, LF seen            SKIP_DONE
LITERAL               ``n`` octets                                      LINE
SKIP_LITERAL          ``n`` octets, dropped                             DISCARD
SKIP_LINE             rest of the line up to LF, dropped                SKIP_DONE
SKIP_DONE             (the kept tail ends in a non-sync marker)         SKIP_LITERAL
SKIP_DONE             (otherwise)                                       LINE
DISCARD               line of the refused command ending in ``{n+}``    SKIP_LITERAL
DISCARD               line without a non-sync literal marker            LINE
any                   refused literal beyond ``max_skip`` (or client)   BROKEN
====================  ================================================  ===========

Limits are checked before anything is stored: a line is refused while it is
still arriving, a literal when it is announced. A refused synchronizing
literal is simply not asked for (the server answers ``tag BAD`` instead of
``+``, RFC 9051 §7.5, and the client will not send it); a refused
non-synchronizing one is swallowed unseen up to ``max_skip`` octets (RFC 7888
§4), the connection is closed beyond that. Literal octets are never
interpreted as commands. Line ends are CRLF; a bare LF is accepted on input
when ``Limits.accept_bare_lf`` (literal octet counts are exact either way).
Because the decisions depend only on the octets, any chunking of the same
input gives the same sequence of outputs.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .errors import LimitExceeded, LocalProtocolError, ProtocolError, RemoteProtocolError
from .limits import Limits
from .tokens import TAG_RE

_MARKER_TAIL = 32  # octets kept from a skipped line to find its marker
_TAG_PREFIX_RE = re.compile(rb"([^ \r\n]{1,64}) ")


@dataclass(frozen=True, slots=True)
class RawLiteral:
    data: bytes
    binary: bool


@dataclass(frozen=True, slots=True)
class Frame:
    """One command or response: ``lines[i]`` is followed by ``literals[i]``."""

    lines: tuple[bytes, ...]
    literals: tuple[RawLiteral, ...]

    @property
    def tag_hint(self) -> str | None:
        return tag_hint(self.lines[0])


@dataclass(frozen=True, slots=True)
class NeedContinuation:
    """A synchronizing literal was accepted: the server must now send ``+``."""

    tag: str | None
    size: int


@dataclass(frozen=True, slots=True)
class Violation:
    """Input refused; ``fatal`` means the stream cannot be resynchronized."""

    error: ProtocolError
    fatal: bool


FramerOutput = Frame | NeedContinuation | Violation


class _Mode(enum.Enum):
    LINE = "line"
    LITERAL = "literal"
    SKIP_DONE = "skip-done"
    SKIP_LITERAL = "skip-literal"
    SKIP_LINE = "skip-line"
    DISCARD = "discard"
    BROKEN = "broken"


def tag_hint(first_line: bytes) -> str | None:
    """The tag at the start of a (possibly partial) command line, if it is valid."""
    m = _TAG_PREFIX_RE.match(first_line)
    if m and TAG_RE.fullmatch(m[1]):
        return m[1].decode("ascii")
    return None


class Framer:
    """Cuts octets into frames. ``handshake`` is True on the server side, where
    a synchronizing literal needs a ``+`` continuation before its octets come."""

    def __init__(self, limits: Limits, *, handshake: bool) -> None:
        self.limits = limits
        self._handshake = handshake
        self._buf = bytearray()
        self._scan = 0  # octets of _buf already known to hold no LF
        self._mode = _Mode.LINE
        self._lines: list[bytes] = []
        self._literals: list[RawLiteral] = []
        self._size = 0  # octets of the current frame so far
        self._need = 0  # octets left of the literal being read or skipped
        self._binary = False
        self._skipped = 0  # octets skipped for the refused command
        self._tail = b""  # last octets of a line being skipped
        self._tag: str | None = None  # tag of a command being skipped

    # -- input ---------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def drop_buffer(self) -> int:
        """Discard unread input (after STARTTLS); returns how many octets."""
        return len(self.take_buffer())

    def take_buffer(self) -> bytes:
        """Remove and return unread input (when handing the stream over)."""
        data = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return data

    @property
    def idle(self) -> bool:
        """No partial command held and nothing being skipped."""
        return self._mode is _Mode.LINE and not self._lines

    # -- output --------------------------------------------------------------

    def next_raw_line(self) -> bytes | Violation | None:
        """One plain line (a SASL response, IDLE's ``DONE``): no literal is recognised.

        Only valid between frames; the caller knows the next line is not a command.
        """
        if not self.idle:
            raise LocalProtocolError("raw line requested in the middle of a command")
        line = self._take_line()
        return None if line is _AGAIN else line

    def next(self) -> FramerOutput | None:
        while True:
            mode = self._mode
            if mode is _Mode.BROKEN:
                return None
            if mode is _Mode.LITERAL:
                if len(self._buf) < self._need:
                    return None
                data = bytes(self._buf[: self._need])
                del self._buf[: self._need]
                self._literals.append(RawLiteral(data, self._binary))
                self._mode = _Mode.LINE
                continue
            if mode is _Mode.SKIP_LITERAL:
                n = min(self._need, len(self._buf))
                del self._buf[:n]
                self._need -= n
                if self._need:
                    return None
                self._mode = _Mode.DISCARD
                continue
            if mode is _Mode.SKIP_LINE:
                idx = self._buf.find(b"\n")
                if idx < 0:
                    self._tail = (self._tail + bytes(self._buf))[-_MARKER_TAIL:]
                    self._buf.clear()
                    return None
                self._tail = (self._tail + bytes(self._buf[:idx]))[-_MARKER_TAIL:]
                del self._buf[: idx + 1]
                mode = self._mode = _Mode.SKIP_DONE
            if mode is _Mode.SKIP_DONE:
                tail = self._tail[:-1] if self._tail.endswith(b"\r") else self._tail
                self._tail = b""
                self._scan = 0
                out = self._discarded_line(tail, whole=False)
                if out is not None:
                    return out
                continue
            line = self._take_line()
            if line is _AGAIN:
                continue
            if line is None or isinstance(line, Violation):
                return line
            assert isinstance(line, bytes)
            if mode is _Mode.DISCARD:
                out = self._discarded_line(line, whole=True)
                if out is not None:
                    return out
                continue
            out2 = self._line(line)
            if out2 is not None:
                return out2

    # -- internals -------------------------------------------------------------

    def _take_line(self) -> bytes | Violation | _Again | None:
        limit = self.limits.max_line
        buf = self._buf
        idx = buf.find(b"\n", self._scan)
        if idx < 0:
            if len(buf) > limit + 1:
                # Refuse the line while it is still arriving; skip the rest of it.
                v = self._line_too_long(bytes(buf[:80]))
                self._tail = bytes(buf[-_MARKER_TAIL:])
                buf.clear()
                self._mode = _Mode.SKIP_LINE
                return v
            self._scan = len(buf)
            return None
        end = idx - 1 if idx and buf[idx - 1] == 0x0D else idx
        if end > limit:
            # The same as above when the whole line came at once.
            v = self._line_too_long(bytes(buf[:80]))
            self._tail = bytes(buf[max(0, idx - _MARKER_TAIL) : idx])
            del buf[: idx + 1]
            self._mode = _Mode.SKIP_DONE
            return v
        line = bytes(buf[:end])
        del buf[: idx + 1]
        self._scan = 0
        if end == idx and not self.limits.accept_bare_lf:
            err = RemoteProtocolError("Line must end with CRLF")
            err.with_tag(self._tag_of(line))
            self._reset_frame()
            self._mode = _Mode.LINE
            return Violation(err, fatal=False)
        return line

    def _line_too_long(self, head: bytes) -> Violation | _Again:
        self._scan = 0
        if self._mode is _Mode.DISCARD:
            return _AGAIN  # the refused command was reported already
        tag = self._tag_of(head)
        self._reset_frame()
        self._scan = 0
        self._tag = tag
        self._skipped = 0
        err = LimitExceeded("Line too long", limit="max_line", tag=tag)
        return Violation(err, fatal=False)

    def _tag_of(self, head: bytes) -> str | None:
        return tag_hint(self._lines[0]) if self._lines else tag_hint(head)

    def _reset_frame(self) -> None:
        self._lines = []
        self._literals = []
        self._size = 0

    def _line(self, line: bytes) -> FramerOutput | None:
        self._size += len(line)
        marker = _find_marker(line, whole=True)
        if marker is None:
            self._lines.append(line)
            frame = Frame(tuple(self._lines), tuple(self._literals))
            self._reset_frame()
            return frame
        start, size, binary, plus = marker
        self._lines.append(line[:start])
        sync = self._handshake and not plus
        tag = tag_hint(self._lines[0])
        lim = self.limits
        refused: LimitExceeded | None = None
        nonsync_max = lim.max_literal if lim.max_nonsync_literal is None else min(
            lim.max_literal, lim.max_nonsync_literal
        )
        if size > lim.max_literal:
            refused = LimitExceeded("Literal too big", limit="max_literal", tag=tag)
        elif plus and self._handshake and size > nonsync_max:
            # RFC 7888 §4: LITERAL- allows {n+} only up to 4096 octets.
            refused = LimitExceeded(
                "Non-synchronizing literal too big", limit="max_nonsync_literal", tag=tag
            )
        elif self._size + size > lim.max_command:
            refused = LimitExceeded("Command too big", limit="max_command", tag=tag)
        elif len(self._literals) >= lim.max_literals:
            refused = LimitExceeded(
                "Too many literals", limit="max_literals", code="LIMIT", tag=tag
            )
        if refused is None:
            self._size += size
            self._need = size
            self._binary = binary
            self._mode = _Mode.LITERAL
            return NeedContinuation(tag, size) if sync else None
        self._reset_frame()
        if sync:
            # RFC 9051 §7.5: answer BAD instead of "+"; the client sends no octets.
            return Violation(refused, fatal=False)
        self._tag = tag
        self._skipped = 0
        if not self._handshake or size > lim.max_skip:
            self._mode = _Mode.BROKEN
            return Violation(refused, fatal=True)
        # RFC 7888 §4: the client sends the octets anyway; swallow them unseen.
        self._skipped = size
        self._need = size
        self._mode = _Mode.SKIP_LITERAL
        return Violation(refused, fatal=False)

    def _discarded_line(self, line: bytes, *, whole: bool) -> Violation | None:
        """A line of a command already refused: follow its literals, report nothing."""
        self._mode = _Mode.LINE
        marker = _find_marker(line, whole=whole)
        if marker is None or (self._handshake and not marker[3]):
            # End of the command; a sync literal of a refused command is never asked for.
            return None
        size = marker[1]
        if self._skipped + size > self.limits.max_skip:
            self._mode = _Mode.BROKEN
            err = LimitExceeded("Literal too big", limit="max_skip", tag=self._tag)
            return Violation(err, fatal=True)
        self._skipped += size
        self._need = size
        self._mode = _Mode.SKIP_LITERAL
        return None


_HUGE = 2**64


class _Again(enum.Enum):
    AGAIN = "again"


_AGAIN = _Again.AGAIN


def _find_marker(line: bytes, *, whole: bool) -> tuple[int, int, bool, bool] | None:
    """(start, size, binary, non-sync) of a literal marker ending ``line``, if any.

    ``whole`` is False for the kept tail of a skipped line: a tail that is all
    digits up to "}" lost its "{" and is taken as a huge literal (refused).
    """
    if not line.endswith(b"}"):
        return None
    i = line.rfind(b"{")
    if i < 0:
        if not whole and _DIGITS_TAIL_RE.fullmatch(line):
            return (0, _HUGE, False, line.endswith(b"+}"))
        return None
    m = _MARKER_BODY_RE.fullmatch(line, i)
    if m is None:
        return None
    digits = m[1].lstrip(b"0") or b"0"
    size = int(digits) if len(digits) <= 20 else _HUGE
    binary = i > 0 and line[i - 1] == 0x7E
    return (i - 1 if binary else i, size, binary, m[2] == b"+")


_MARKER_BODY_RE = re.compile(rb"\{([0-9]+)(\+?)\}")
_DIGITS_TAIL_RE = re.compile(rb"[0-9]+\+?\}")
