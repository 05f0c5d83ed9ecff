"""Lexer: a framed command or response -> tokens (RFC 9051 §4, §9).

Theory of operation
-------------------
A :class:`~imapha.imap.framer.Frame` holds text lines with the literals that
followed them. The lexer walks it with a cursor: tokens of the current line
are separated by exactly one SP; when a line is used up and a literal follows,
that literal is the next token and lexing continues on the next line, which
starts right after the literal's octets (RFC 9051 §7.5 framing). A ``{``
anywhere else is an error: literals are announced only at a line end, where
the framer has already taken them.

Typed parsers (commands, responses) drive the cursor with :meth:`Lexer.sp`,
:meth:`Lexer.token`, :meth:`Lexer.rest` and :meth:`Lexer.end`. Every failure
is a :class:`RemoteProtocolError` (or :class:`LimitExceeded` for
``max_tokens`` / ``max_depth``) with a text written here.
"""

from __future__ import annotations

import re

from .errors import LimitExceeded, RemoteProtocolError
from .framer import Frame
from .limits import Limits
from .tokens import LENIENT_ATOM_RE, TAG_RE, Atom, Literal, PList, Quoted, Tag, Token

_TOKEN_RE = re.compile(
    rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"|(' + LENIENT_ATOM_RE.pattern + rb")"
)
#: One token or separator at a time: 1 SP, 2 "(", 3 ")", 4 quoted, 5 atom.
_SCAN_RE = re.compile(
    rb'( )|(\()|(\))|"((?:[^"\\\r\n\x00]|\\["\\])*)"|(' + LENIENT_ATOM_RE.pattern + rb")"
)
_ATOM_CACHE: dict[bytes, Atom] = {}
_ATOM_CACHE_MAX = 4096


def _atom(raw: bytes) -> Atom:
    """Atoms repeat (FLAGS, \\Seen, UID...): share them, in a bounded cache."""
    atom = _ATOM_CACHE.get(raw)
    if atom is None:
        atom = Atom._from_wire(raw.decode("ascii"))
        if len(_ATOM_CACHE) < _ATOM_CACHE_MAX and len(raw) <= 32:
            _ATOM_CACHE[raw] = atom
    return atom

_ESCAPE_RE = re.compile(rb"\\(.)")
_WORD_RE = re.compile(rb"[^ \r\n]+")


class Lexer:
    """A cursor over one frame."""

    __slots__ = ("_count", "_i", "_limits", "_line", "_lines", "_lits", "_pos")

    def __init__(self, frame: Frame, limits: Limits) -> None:
        self._lines = frame.lines
        self._lits = frame.literals
        self._i = 0
        self._line = frame.lines[0]
        self._pos = 0
        self._limits = limits
        self._count = 0

    # -- positions -----------------------------------------------------------------

    def at_end(self) -> bool:
        """Nothing left at all (end of the last line, no literal pending)."""
        return self._pos >= len(self._line) and self._i >= len(self._lits)

    def end(self) -> None:
        if not self.at_end():
            raise RemoteProtocolError("Unexpected extra arguments")

    def peek(self) -> int | None:
        """Next octet of the current line, or None at its end."""
        return self._line[self._pos] if self._pos < len(self._line) else None

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise RemoteProtocolError("Expected a space")
        self._pos += 1

    def rest_of_line(self) -> bytes:
        """The raw remainder of the current line; it must be the last line."""
        if self._i < len(self._lits):
            raise RemoteProtocolError("Unexpected literal")
        out = self._line[self._pos :]
        self._pos = len(self._line)
        return out

    # -- tokens --------------------------------------------------------------------

    def tag(self) -> Tag:
        m = TAG_RE.match(self._line, self._pos)
        end = m.end() if m else 0
        if m is None or (end < len(self._line) and self._line[end] != 0x20):
            raise RemoteProtocolError("Missing or invalid tag")
        self._pos = m.end()
        return Tag.parse(m[0])

    def word(self, what: str) -> str:
        """An atom-like word up to the next SP (command name, status, number)."""
        m = _WORD_RE.match(self._line, self._pos)
        if m is None:
            raise RemoteProtocolError(f"Missing {what}")
        self._pos = m.end()
        return m[0].decode("ascii", "replace")

    def token(self, depth: int = 0) -> Token:
        self._count += 1
        if self._count > self._limits.max_tokens:
            raise LimitExceeded("Too many arguments", limit="max_tokens", code="LIMIT")
        line, pos = self._line, self._pos
        if pos >= len(line):
            return self._literal()
        if line[pos] == 0x28:  # "("
            return self._list(depth + 1)
        m = _TOKEN_RE.match(line, pos)
        if m is None:
            if line[pos] == 0x22:
                raise RemoteProtocolError("Invalid quoted string")
            raise RemoteProtocolError(_why_not_atom(line[pos]))
        self._pos = m.end()
        atom = m[2]
        if atom is not None:
            return _atom(atom)
        raw = m[1]
        return Quoted._from_wire(_ESCAPE_RE.sub(rb"\1", raw) if b"\\" in raw else raw)

    def _literal(self) -> Literal:
        if self._i >= len(self._lits):
            raise RemoteProtocolError("Missing argument")
        lit = self._lits[self._i]
        self._i += 1
        self._line = self._lines[self._i]
        self._pos = 0
        if lit.binary:
            return Literal(lit.data, True)
        if b"\x00" in lit.data:
            raise RemoteProtocolError("NUL in a literal (use ~{n}, RFC 3516)")
        return Literal(lit.data)

    def _list(self, depth: int) -> PList:
        if depth > self._limits.max_depth:
            raise LimitExceeded("Lists nested too deeply", limit="max_depth", code="LIMIT")
        self._pos += 1
        line = self._line
        if self._pos < len(line) and line[self._pos] == 0x29:
            self._pos += 1
            return PList()
        items: list[Token] = []
        while True:
            items.append(self.token(depth))
            line, pos = self._line, self._pos
            c = line[pos] if pos < len(line) else None
            if c == 0x29:
                self._pos = pos + 1
                return PList(tuple(items))
            if c != 0x20:
                raise RemoteProtocolError("Expected a space or ')' in list")
            self._pos = pos + 1

    def rest(self) -> tuple[Token, ...]:
        """All remaining arguments, each preceded by one SP.

        The same grammar as repeated ``sp()`` + ``token()``, in one loop with
        one regex call per token or separator: states are "after a token"
        (SP, ")" or the end may follow), "after SP" and "after (".
        """
        after_token, after_sp, after_open = 0, 1, 2
        stack: list[list[Token]] = [[]]
        state = after_token
        limits = self._limits
        count = self._count
        while True:
            line, pos = self._line, self._pos
            match = _SCAN_RE.match
            while (m := match(line, pos)) is not None:
                pos = m.end()
                kind = m.lastindex
                if kind == 1:  # SP
                    if state != after_token:
                        raise RemoteProtocolError("Unexpected space")
                    state = after_sp
                    continue
                if kind == 3:  # ")"
                    if state == after_sp or len(stack) == 1:
                        raise RemoteProtocolError("Unexpected ')'")
                    items = stack.pop()
                    stack[-1].append(PList(tuple(items)))
                    state = after_token
                    continue
                if state == after_token:
                    raise RemoteProtocolError("Expected a space")
                count += 1
                if count > limits.max_tokens:
                    raise LimitExceeded("Too many arguments", limit="max_tokens", code="LIMIT")
                if kind == 2:  # "("
                    if len(stack) > limits.max_depth:
                        raise LimitExceeded(
                            "Lists nested too deeply", limit="max_depth", code="LIMIT"
                        )
                    stack.append([])
                    state = after_open
                    continue
                if kind == 5:
                    stack[-1].append(_atom(m[5]))
                else:
                    raw = m[4]
                    stack[-1].append(
                        Quoted._from_wire(_ESCAPE_RE.sub(rb"\1", raw) if b"\\" in raw else raw)
                    )
                state = after_token
            self._pos = pos
            if pos < len(line):
                c = line[pos]
                if c == 0x22:
                    raise RemoteProtocolError("Invalid quoted string")
                raise RemoteProtocolError(_why_not_atom(c))
            if self._i >= len(self._lits):
                break
            if state == after_token:
                raise RemoteProtocolError("Expected a space")
            count += 1
            if count > limits.max_tokens:
                raise LimitExceeded("Too many arguments", limit="max_tokens", code="LIMIT")
            stack[-1].append(self._literal())
            state = after_token
        self._count = count
        if len(stack) > 1:
            raise RemoteProtocolError("Missing ')'")
        if state != after_token:
            raise RemoteProtocolError("Missing argument")
        return tuple(stack[0])


def _why_not_atom(c: int) -> str:
    if c == 0x7B:
        return "Literal announcement must end the line"
    if c == 0x29:
        return "Unexpected ')'"
    if c == 0x20:
        return "Unexpected space"
    if c >= 0x80:
        return "8-bit octet outside a string"
    if c < 0x20 or c == 0x7F:
        return "Control character in command"
    return "Invalid character"
