"""IMAP values: tags, atoms, strings, literals, lists, sequence sets.

Theory of operation
-------------------
The lexer turns a framed command or response into a tuple of :data:`Token`:
:class:`Atom` (also numbers, ``NIL``, flags and ``BODY[...]``-style section
atoms, as their text), :class:`Quoted`, :class:`Literal` and :class:`PList`.
Typed parsers then read what they expect with the ``as_*`` helpers below, which
raise :class:`RemoteProtocolError` on a mismatch (the peer's fault).

Building goes the other way: :func:`astring`, :func:`string` and
:func:`nstring` choose the wire form from the content (RFC 3501 §4.3): an atom
when every octet is an ASTRING-CHAR, a quoted string for other 7-bit text
without CR, LF or NUL, a literal otherwise (8-bit, CR/LF, NUL, or long).

Constructors validate, so an illegal value cannot be expressed: ``Tag("a b")``
and ``Atom("x(")`` raise :class:`LocalProtocolError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import LocalProtocolError, RemoteProtocolError

# RFC 9051 §9: ATOM-CHAR = any CHAR except atom-specials
#   atom-specials = "(" / ")" / "{" / SP / CTL / list-wildcards / quoted-specials / resp-specials
_ATOM_CHARS = rb"\x21\x23\x24\x26\x27\x2b-\x5b\x5e-\x7a\x7c-\x7e"
#: strict atom (RFC 9051 §9 "atom")
ATOM_RE = re.compile(rb"[" + _ATOM_CHARS + rb"]+")
#: ASTRING-CHAR = ATOM-CHAR / resp-specials ("]")
ASTRING_ATOM_RE = re.compile(rb"[" + _ATOM_CHARS + rb"\]]+")
#: tag = 1*<any ASTRING-CHAR except "+">
TAG_RE = re.compile(rb"[\x21\x23\x24\x26\x27\x2c-\x5b\x5d\x5e-\x7a\x7c-\x7e]+")
#: What the lexer accepts as an atom-like token: ATOM-CHAR plus "%", "*", "\",
#: "]" (flags, list wildcards, sequence sets) and a bracketed "[...]" part that
#: may hold SP and parentheses (fetch-att sections like BODY[HEADER.FIELDS (A B)]).
_ATOMISH = rb"[\x21\x23-\x27\x2a-\x5a\x5c-\x7a\x7c-\x7e]"
_BRACKETED = rb"\[[^\[\]\x00-\x1f\x7f{\x80-\xff]*\]"
LENIENT_ATOM_RE = re.compile(rb"(?:" + _ATOMISH + rb"|" + _BRACKETED + rb"|\[)+")
#: What :class:`Atom` accepts for output: every "[" closed (so it lexes back the same).
CANONICAL_ATOM_RE = re.compile(rb"(?:" + _ATOMISH + rb"|" + _BRACKETED + rb")+")
_NUMBER_RE = re.compile(rb"[0-9]+")
_QUOTABLE_RE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*")

#: Longest string the builders put in quotes; longer ones become literals.
MAX_QUOTED = 1024

NUMBER_MAX = 2**32 - 1  # RFC 9051 §9 number
NUMBER64_MAX = 2**63 - 1  # RFC 9051 §9 number64


class Tag(str):
    """A command tag (RFC 9051 §9: 1*<any ASTRING-CHAR except "+">)."""

    __slots__ = ()

    def __new__(cls, value: str) -> Tag:
        if not isinstance(value, str) or TAG_RE.fullmatch(value.encode("utf-8")) is None:
            raise LocalProtocolError("invalid tag")
        return super().__new__(cls, value)

    @classmethod
    def parse(cls, raw: bytes) -> Tag:
        """A tag read from the wire; RemoteProtocolError if invalid."""
        if TAG_RE.fullmatch(raw) is None:
            raise RemoteProtocolError("Invalid tag")
        return super().__new__(cls, raw.decode("ascii"))


@dataclass(frozen=True, slots=True)
class Atom:
    """An atom-like token; also numbers, NIL, flags (``\\Seen``), ``BODY[...]``.

    Built by us, every "[" must be closed by a "]" before any SP (so that it
    reads back as one token); read from the wire, a lone "[" is tolerated.
    """

    value: str

    def __post_init__(self) -> None:
        raw = self.value.encode("utf-8", "surrogateescape")
        if CANONICAL_ATOM_RE.fullmatch(raw) is None:
            raise LocalProtocolError("invalid atom")

    @classmethod
    def _from_wire(cls, value: str) -> Atom:
        """An atom the lexer already matched (no second validation)."""
        atom = object.__new__(cls)
        object.__setattr__(atom, "value", value)
        return atom

    @property
    def is_nil(self) -> bool:
        return self.value.upper() == "NIL"


@dataclass(frozen=True, slots=True)
class Quoted:
    """A quoted string (RFC 9051 §4.3), its value unescaped."""

    value: bytes

    def __post_init__(self) -> None:
        if b"\r" in self.value or b"\n" in self.value or b"\x00" in self.value:
            raise LocalProtocolError("quoted string cannot hold CR, LF or NUL")

    @classmethod
    def _from_wire(cls, value: bytes) -> Quoted:
        """A string the lexer already matched (no second validation)."""
        q = object.__new__(cls)
        object.__setattr__(q, "value", value)
        return q


@dataclass(frozen=True, slots=True)
class Literal:
    """A literal ``{n}`` (or ``~{n}`` binary, RFC 3516, when ``binary``)."""

    value: bytes
    binary: bool = False

    def __post_init__(self) -> None:
        if not self.binary and b"\x00" in self.value:
            raise LocalProtocolError("NUL needs a binary literal (RFC 3516)")


@dataclass(frozen=True, slots=True)
class PList:
    """A parenthesized list."""

    items: tuple[Token, ...] = ()


Token = Atom | Quoted | Literal | PList

NIL = Atom("NIL")


# --- reading typed values (remote input) ------------------------------------


def as_astring(tok: Token, what: str = "string") -> bytes:
    """astring = 1*ASTRING-CHAR / string."""
    if isinstance(tok, Quoted) or (isinstance(tok, Literal) and not tok.binary):
        return tok.value
    if isinstance(tok, Atom):
        raw = tok.value.encode("ascii", "surrogateescape")
        if ASTRING_ATOM_RE.fullmatch(raw):
            return raw
    raise RemoteProtocolError(f"Expected {what}")


def as_string(tok: Token, what: str = "string") -> bytes:
    """string = quoted / literal (a binary literal8 is not a string, RFC 3516 §4.3)."""
    if isinstance(tok, Quoted) or (isinstance(tok, Literal) and not tok.binary):
        return tok.value
    raise RemoteProtocolError(f"Expected {what} as a quoted string or literal")


def as_nstring(tok: Token, what: str = "string") -> bytes | None:
    """nstring = string / NIL."""
    if isinstance(tok, Atom) and tok.is_nil:
        return None
    return as_string(tok, what)


def as_atom(tok: Token, what: str = "atom") -> str:
    """A strict atom (RFC 9051 §9), e.g. a command name or SASL mechanism."""
    if isinstance(tok, Atom) and ATOM_RE.fullmatch(tok.value.encode("ascii", "replace")):
        return tok.value
    raise RemoteProtocolError(f"Expected {what}")


def as_number(tok: Token, *, maximum: int = NUMBER_MAX, nonzero: bool = False) -> int:
    """number / nz-number (RFC 9051 §9)."""
    if isinstance(tok, Atom):
        raw = tok.value.encode("ascii", "replace")
        if _NUMBER_RE.fullmatch(raw) and len(raw) <= 20:
            n = int(raw)
            if n <= maximum and (n or not nonzero):
                return n
    raise RemoteProtocolError("Expected a number")


def as_list(tok: Token, what: str = "list") -> tuple[Token, ...]:
    if isinstance(tok, PList):
        return tok.items
    raise RemoteProtocolError(f"Expected a parenthesized {what}")


def decode_utf8(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"{what} is not valid UTF-8") from None


# --- choosing the wire form (local output) ----------------------------------


def _to_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def string(value: bytes | str) -> Quoted | Literal:
    """Quoted if 7-bit without CR/LF/NUL and short, else a literal (binary if NUL)."""
    raw = _to_bytes(value)
    if len(raw) <= MAX_QUOTED and _QUOTABLE_RE.fullmatch(raw):
        return Quoted(raw)
    return Literal(raw, binary=b"\x00" in raw)


def astring(value: bytes | str) -> Token:
    """An atom when every octet is an ASTRING-CHAR (and it is not NIL), else :func:`string`."""
    raw = _to_bytes(value)
    if raw and ASTRING_ATOM_RE.fullmatch(raw) and raw.upper() != b"NIL" and b"[" not in raw:
        return Atom(raw.decode("ascii"))
    return string(raw)


def nstring(value: bytes | str | None) -> Token:
    return NIL if value is None else string(value)


def number(value: int) -> Atom:
    if not 0 <= value <= NUMBER64_MAX:
        raise LocalProtocolError("number out of range")
    return Atom(str(value))


# --- sequence sets (RFC 9051 §9 sequence-set) -------------------------------

_SEQ_RANGE_RE = re.compile(r"(\*|[1-9][0-9]{0,9})(?::(\*|[1-9][0-9]{0,9}))?")


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """``1:3,5,7:*``; each range is (first, last) with ``None`` standing for ``*``."""

    ranges: tuple[tuple[int | None, int | None], ...]

    def __post_init__(self) -> None:
        if not self.ranges:
            raise LocalProtocolError("empty sequence set")
        for pair in self.ranges:
            for n in pair:
                if n is not None and not 1 <= n <= NUMBER_MAX:
                    raise LocalProtocolError("sequence number out of range")

    @classmethod
    def parse(cls, text: str | Token) -> SequenceSet:
        if isinstance(text, Atom):
            text = text.value
        if not isinstance(text, str):
            raise RemoteProtocolError("Expected a sequence set")
        ranges: list[tuple[int | None, int | None]] = []
        for part in text.split(","):
            m = _SEQ_RANGE_RE.fullmatch(part)
            if m is None:
                raise RemoteProtocolError("Invalid sequence set")
            first = None if m[1] == "*" else int(m[1])
            last = first if m[2] is None else (None if m[2] == "*" else int(m[2]))
            if (first is not None and first > NUMBER_MAX) or (
                last is not None and last > NUMBER_MAX
            ):
                raise RemoteProtocolError("Invalid sequence set")
            ranges.append((first, last))
        return cls(tuple(ranges))

    def __str__(self) -> str:
        def one(n: int | None) -> str:
            return "*" if n is None else str(n)

        return ",".join(
            one(a) if a == b else f"{one(a)}:{one(b)}" for a, b in self.ranges
        )

    def contains(self, n: int, largest: int) -> bool:
        """Whether message ``n`` is in the set when ``*`` means ``largest``."""
        for a, b in self.ranges:
            lo = largest if a is None else a
            hi = largest if b is None else b
            if min(lo, hi) <= n <= max(lo, hi):
                return True
        return False

    def to_atom(self) -> Atom:
        return Atom(str(self))
