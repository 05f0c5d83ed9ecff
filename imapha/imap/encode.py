"""Serializing tokens to octets, with the literal form chosen per direction.

Theory of operation
-------------------
A :class:`Writer` accumulates one command or response. Tokens are written
with their own syntax (atom as is, quoted with ``\\`` and ``"`` escaped,
lists in parentheses). Literals depend on who writes (RFC 9051 §4.3, §7.5;
RFC 7888):

* ``LiteralMode.INLINE``: a server writes ``{n}`` CRLF and the octets at once.
* ``LiteralMode.SYNC``: a client must wait for ``+`` after ``{n}`` CRLF, so
  the output is cut into chunks there; chunk ``k+1`` may only be sent after
  the server's continuation request.
* ``LiteralMode.PLUS``: LITERAL+ was advertised: ``{n+}`` at once.
* ``LiteralMode.MINUS``: LITERAL- was advertised: ``{n+}`` at once when
  ``n <= 4096``, a synchronizing literal otherwise.

A binary literal (RFC 3516) gets a ``~`` before the brace.
"""

from __future__ import annotations

import enum

from .limits import LITERAL_MINUS_MAX
from .tokens import Atom, Literal, PList, Quoted, Token

CRLF = b"\r\n"


class LiteralMode(enum.Enum):
    INLINE = "inline"
    SYNC = "sync"
    PLUS = "plus"
    MINUS = "minus"


def quote(value: bytes) -> bytes:
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class Writer:
    """Builds one command/response as one or more chunks (see module doc)."""

    __slots__ = ("_chunks", "_cur", "_mode")

    def __init__(self, mode: LiteralMode = LiteralMode.INLINE) -> None:
        self._mode = mode
        self._chunks: list[bytes] = []
        self._cur = bytearray()

    def raw(self, data: bytes) -> Writer:
        self._cur += data
        return self

    def token(self, tok: Token) -> Writer:
        if isinstance(tok, Atom):
            self._cur += tok.value.encode("ascii")
        elif isinstance(tok, Quoted):
            self._cur += quote(tok.value)
        elif isinstance(tok, Literal):
            self._literal(tok)
        else:
            self._cur += b"("
            self.tokens(tok.items)
            self._cur += b")"
        return self

    def tokens(self, toks: tuple[Token, ...] | list[Token]) -> Writer:
        for i, tok in enumerate(toks):
            if i:
                self._cur += b" "
            self.token(tok)
        return self

    def args(self, toks: tuple[Token, ...] | list[Token]) -> Writer:
        """Each token preceded by SP (arguments after a command name)."""
        for tok in toks:
            self._cur += b" "
            self.token(tok)
        return self

    def _literal(self, lit: Literal) -> None:
        n = len(lit.value)
        prefix = b"~{" if lit.binary else b"{"
        mode = self._mode
        if mode is LiteralMode.MINUS:
            mode = LiteralMode.PLUS if n <= LITERAL_MINUS_MAX else LiteralMode.SYNC
        if mode is LiteralMode.SYNC:
            self._cur += b"%s%d}\r\n" % (prefix, n)
            self._chunks.append(bytes(self._cur))
            self._cur = bytearray(lit.value)
            return
        plus = b"+" if mode is LiteralMode.PLUS else b""
        self._cur += b"%s%d%s}\r\n" % (prefix, n, plus)
        self._cur += lit.value

    def finish(self) -> list[bytes]:
        """The chunks, the last one ending in CRLF."""
        self._cur += CRLF
        out = [*self._chunks, bytes(self._cur)]
        self._chunks = []
        self._cur = bytearray()
        return out

    def finish_one(self) -> bytes:
        """For a writer whose literals are all inline: the whole thing."""
        return b"".join(self.finish())


def encode_tokens(toks: tuple[Token, ...], mode: LiteralMode = LiteralMode.INLINE) -> bytes:
    """Tokens separated by SP, no line end (for tests and debugging)."""
    w = Writer(mode)
    w.tokens(toks)
    return b"".join([*w._chunks, bytes(w._cur)])


__all__ = ["CRLF", "LiteralMode", "PList", "Writer", "encode_tokens", "quote"]
