"""SEARCH: the key list parsed into a tree (RFC 3501 §6.4.4) and evaluated per message.

Theory of operation
-------------------
:func:`parse_search` reads the tokens after ``SEARCH`` (an optional
``CHARSET name`` first: UTF-8 and US-ASCII are known, any other answers
``NO [BADCHARSET (UTF-8 US-ASCII)]``) into a tree of frozen dataclasses: a
top-level list is an implicit AND, ``OR a b`` and ``NOT a`` nest,
parentheses group. Within an AND the cheap keys (flags, numbers, sizes,
INTERNALDATE) are moved before the ones that read the message (headers, then
bodies): the result is the same and most messages are decided without opening
their file. A malformed key list raises :class:`SearchSyntaxError` (``BAD``).

:func:`matches` evaluates a tree for one message, given a
:class:`SearchMessage` (sequence number, UID, flags, size, INTERNALDATE and a
``read`` callable, called at most once and only when a key needs the bytes)
and the mailbox's :class:`SearchScope` (what ``*`` means in a set, the time
zone of INTERNALDATE).

String matching (RFC 3501 §6.4.4 "case-insensitive substring"): both sides go
through :func:`fold` (lower case, then NFKD, close to RFC 5051
i;unicode-casemap and to what Dovecot does: ``ß`` does not match ``SS``).
Header keys see each field's value unfolded with RFC 2047 encoded words
decoded (:func:`imapha.server.message.decode_header`);
``HEADER name ""`` matches every message that has the field. BODY sees the
text parts (``text/*``, ``message/*`` leaves and parts without a Content-Type)
with their transfer encoding undone and decoded from their charset, nested
messages included; TEXT sees those and the header of every part and nested
message (MIME headers included, as a search of the whole text would).
Other parts (images, archives) are not searched, as Dovecot does not.

A message without a parsable Date header counts as sent on 1 January 1970 for
SENTBEFORE/ON/SINCE, which is what Dovecot answers.

Use from the session's SEARCH handler::

    key = parse_search(cmd.args)   # SearchSyntaxError: BAD; BadCharset: NO [BADCHARSET (...)]
    scope = SearchScope(largest_seq=len(view), largest_uid=view[-1].uid if view else 0)
    hits = [seq for seq, m in enumerate(view, 1) if matches(key, SearchMessage(
        seq, m.uid, flags_with_recent_and_keywords, m.size,
        functools.partial(internaldate_of, m.uid),  # or the float itself
        functools.partial(mailbox.read, m.uid)), scope)]
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from imapha.imap.errors import ProtocolError, RemoteProtocolError
from imapha.imap.tokens import Atom, PList, SequenceSet, Token, as_astring, as_number

from .imapdate import internal_day, parse_date, sent_day
from .message import ParsedMessage, decode_header, part_text
from .mime import Part

__all__ = [
    "BadCharset",
    "Key",
    "SearchMessage",
    "SearchScope",
    "SearchSyntaxError",
    "matches",
    "parse_search",
]

#: Charsets we can search in; the list BADCHARSET names.
CHARSETS = ("UTF-8", "US-ASCII")
#: NOT/OR/parenthesis nesting we accept before answering BAD (a hostile key list).
MAX_NESTING = 64


class SearchSyntaxError(RemoteProtocolError):
    """The key list is malformed: answer ``BAD`` with this text."""


class BadCharset(ProtocolError):
    """``NO [BADCHARSET (UTF-8 US-ASCII)]`` (RFC 3501 §6.4.4)."""

    def __init__(self) -> None:
        super().__init__(
            "Unsupported charset", status="NO", code="BADCHARSET",
            code_args="(" + " ".join(CHARSETS) + ")",
        )


# --- the tree ---------------------------------------------------------------------


class DateOp(Enum):
    BEFORE = "BEFORE"
    ON = "ON"
    SINCE = "SINCE"


@dataclass(frozen=True, slots=True)
class All:
    pass


@dataclass(frozen=True, slots=True)
class And:
    keys: tuple[Key, ...]


@dataclass(frozen=True, slots=True)
class Or:
    left: Key
    right: Key


@dataclass(frozen=True, slots=True)
class Not:
    key: Key


@dataclass(frozen=True, slots=True)
class HasFlag:
    """A system flag or keyword present (``\\Recent`` included)."""

    flag: str


@dataclass(frozen=True, slots=True)
class InSet:
    numbers: SequenceSet
    uid: bool


@dataclass(frozen=True, slots=True)
class Size:
    larger: bool
    n: int


@dataclass(frozen=True, slots=True)
class Date:
    op: DateOp
    day: dt.date
    sent: bool  # Date header (SENT*) rather than INTERNALDATE


@dataclass(frozen=True, slots=True)
class Header:
    name: bytes  # lower case
    needle: str  # folded


@dataclass(frozen=True, slots=True)
class Body:
    needle: str
    with_headers: bool  # TEXT


Key = All | And | Or | Not | HasFlag | InSet | Size | Date | Header | Body

_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
    "RECENT": ("\\Recent", True), "OLD": ("\\Recent", False),
}
_HEADER_KEYS = {"BCC": b"bcc", "CC": b"cc", "FROM": b"from", "SUBJECT": b"subject", "TO": b"to"}
_DATE_KEYS = {
    "BEFORE": (DateOp.BEFORE, False), "ON": (DateOp.ON, False), "SINCE": (DateOp.SINCE, False),
    "SENTBEFORE": (DateOp.BEFORE, True), "SENTON": (DateOp.ON, True),
    "SENTSINCE": (DateOp.SINCE, True),
}


def fold(text: str) -> str:
    """The form both sides of a substring match are compared in (see the module doc)."""
    return unicodedata.normalize("NFKD", text.lower())


#: SENT* date of a message without a usable Date header (Dovecot's choice).
NO_SENT_DATE = dt.date(1970, 1, 1)


def _cost(key: Key) -> int:
    if isinstance(key, Header):
        return 1
    if isinstance(key, Body):
        return 3
    if isinstance(key, Date):
        return 1 if key.sent else 0
    if isinstance(key, And):
        return max((_cost(k) for k in key.keys), default=0)
    if isinstance(key, Or):
        return max(_cost(key.left), _cost(key.right))
    if isinstance(key, Not):
        return _cost(key.key)
    return 0


def _and(keys: list[Key]) -> Key:
    if len(keys) == 1:
        return keys[0]
    return And(tuple(sorted(keys, key=_cost)))


# --- parsing ----------------------------------------------------------------------


class _Reader:
    def __init__(self, toks: tuple[Token, ...], charset: str) -> None:
        self.toks = toks
        self.i = 0
        self.charset = charset

    def more(self) -> bool:
        return self.i < len(self.toks)

    def next(self, what: str) -> Token:
        if self.i >= len(self.toks):
            raise SearchSyntaxError(f"Missing {what}")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def string(self, what: str = "search string") -> str:
        try:
            raw = as_astring(self.next(what), what)
        except SearchSyntaxError:
            raise
        except RemoteProtocolError:
            raise SearchSyntaxError(f"Expected {what}") from None
        if self.charset == "US-ASCII" and any(b > 0x7F for b in raw):
            raise SearchSyntaxError("8-bit octets in a US-ASCII search string")
        return raw.decode("utf-8", "replace")

    def number(self) -> int:
        try:
            return as_number(self.next("number"), maximum=2**63 - 1)
        except SearchSyntaxError:
            raise
        except RemoteProtocolError:
            raise SearchSyntaxError("Expected a number") from None

    def date(self) -> dt.date:
        day = parse_date(self.string("date"))
        if day is None:
            raise SearchSyntaxError("Invalid date (expected d-Mon-yyyy)")
        return day


def _seqset(text: str, uid: bool) -> InSet:
    try:
        return InSet(SequenceSet.parse(text), uid)
    except ProtocolError:
        raise SearchSyntaxError("Invalid sequence set") from None


def _key(r: _Reader, depth: int) -> Key:
    if depth > MAX_NESTING:
        raise SearchSyntaxError("Search keys nested too deeply")
    tok = r.next("search key")
    if isinstance(tok, PList):
        if not tok.items:
            raise SearchSyntaxError("Empty parenthesized search key list")
        inner = _Reader(tok.items, r.charset)
        keys: list[Key] = []
        while inner.more():
            keys.append(_key(inner, depth + 1))
        return _and(keys)
    if not isinstance(tok, Atom):
        raise SearchSyntaxError("Expected a search key")
    word = tok.value.upper()
    if word[:1].isdigit() or word[:1] == "*":
        return _seqset(tok.value, uid=False)
    if word == "ALL":
        return All()
    if word in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[word]
        return HasFlag(flag) if present else Not(HasFlag(flag))
    if word == "NEW":
        return _and([HasFlag("\\Recent"), Not(HasFlag("\\Seen"))])
    if word in ("KEYWORD", "UNKEYWORD"):
        kw_tok = r.next("keyword")
        if not isinstance(kw_tok, Atom):
            raise SearchSyntaxError("Expected a keyword")
        key: Key = HasFlag(kw_tok.value)
        return key if word == "KEYWORD" else Not(key)
    if word in _HEADER_KEYS:
        return Header(_HEADER_KEYS[word], fold(r.string()))
    if word == "HEADER":
        name = r.string("header field name").strip()
        if not name or ":" in name:
            raise SearchSyntaxError("Invalid header field name")
        return Header(name.lower().encode("utf-8"), fold(r.string()))
    if word in ("BODY", "TEXT"):
        return Body(fold(r.string()), with_headers=word == "TEXT")
    if word in _DATE_KEYS:
        op, sent = _DATE_KEYS[word]
        return Date(op, r.date(), sent)
    if word in ("LARGER", "SMALLER"):
        return Size(word == "LARGER", r.number())
    if word == "UID":
        tok = r.next("UID set")
        if not isinstance(tok, Atom):
            raise SearchSyntaxError("Invalid sequence set")
        return _seqset(tok.value, uid=True)
    if word == "NOT":
        return Not(_key(r, depth + 1))
    if word == "OR":
        left = _key(r, depth + 1)
        return Or(left, _key(r, depth + 1))
    raise SearchSyntaxError(f"Unknown search key {tok.value[:40]}")


def parse_search(args: Iterable[Token]) -> Key:
    """The SEARCH arguments (``[CHARSET name] key...``) as one tree."""
    toks = tuple(args)
    charset = "US-ASCII"
    if len(toks) >= 2 and isinstance(toks[0], Atom) and toks[0].value.upper() == "CHARSET":
        try:
            name = as_astring(toks[1], "charset").decode("ascii", "replace").upper()
        except RemoteProtocolError:
            raise SearchSyntaxError("Expected a charset name") from None
        if name not in CHARSETS:
            raise BadCharset()
        charset = name
        toks = toks[2:]
    if not toks:
        raise SearchSyntaxError("Missing search key")
    r = _Reader(toks, charset)
    keys: list[Key] = []
    while r.more():
        keys.append(_key(r, 0))
    return _and(keys)


# --- evaluation -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchScope:
    """Mailbox-wide facts: ``*`` in a sequence set and in a UID set; INTERNALDATE's zone."""

    largest_seq: int
    largest_uid: int
    tz_offset: int | None = None


@dataclass(slots=True)
class SearchMessage:
    """One message; ``flags`` includes ``\\Recent`` when the session has it recent."""

    seq: int
    uid: int
    flags: frozenset[str]
    size: int
    #: POSIX seconds, or a callable giving them (a ``stat``), called only for
    #: BEFORE/ON/SINCE keys.
    internaldate: float | Callable[[], float]
    read: Callable[[], bytes]
    _parsed: ParsedMessage | None = field(default=None, repr=False)
    _texts: dict[bool, str] = field(default_factory=dict, repr=False)

    @property
    def parsed(self) -> ParsedMessage:
        if self._parsed is None:
            self._parsed = ParsedMessage(self.read)
        return self._parsed


def _date_matches(op: DateOp, day: dt.date | None, wanted: dt.date) -> bool:
    if day is None:
        return False
    if op is DateOp.BEFORE:
        return day < wanted
    if op is DateOp.ON:
        return day == wanted
    return day >= wanted


def _header_values(msg: ParsedMessage, part: Part, name: bytes) -> list[str]:
    return [decode_header(f.raw_value(msg.data)) for f in part.get_all(name)]


def _full_text(m: SearchMessage, with_headers: bool) -> str:
    cached = m._texts.get(with_headers)
    if cached is not None:
        return cached
    msg = m.parsed
    pieces: list[str] = []
    root = msg.root
    for part in root.walk():
        if with_headers:
            for f in part.fields:
                pieces.append(f.name.decode("utf-8", "replace") + ": "
                              + decode_header(f.raw_value(msg.data)))
        if part.children or part.message is not None:
            continue
        text = part_text(msg, part)
        if text is not None:
            pieces.append(text)
    joined = fold("\n".join(pieces))
    m._texts[with_headers] = joined
    return joined


def matches(key: Key, m: SearchMessage, scope: SearchScope) -> bool:
    """Whether message ``m`` satisfies ``key``."""
    if isinstance(key, All):
        return True
    if isinstance(key, And):
        return all(matches(k, m, scope) for k in key.keys)
    if isinstance(key, Or):
        return matches(key.left, m, scope) or matches(key.right, m, scope)
    if isinstance(key, Not):
        return not matches(key.key, m, scope)
    if isinstance(key, HasFlag):
        if key.flag.startswith("\\"):
            return key.flag in m.flags
        wanted = key.flag.lower()
        return any(f.lower() == wanted for f in m.flags)
    if isinstance(key, InSet):
        if key.uid:
            return key.numbers.contains(m.uid, scope.largest_uid)
        return key.numbers.contains(m.seq, scope.largest_seq)
    if isinstance(key, Size):
        return m.size > key.n if key.larger else m.size < key.n
    if isinstance(key, Date):
        if key.sent:
            msg = m.parsed
            day = sent_day(msg.root.first(msg.data, b"date")) or NO_SENT_DATE
        else:
            when = m.internaldate
            day = internal_day(when() if callable(when) else when, scope.tz_offset)
        return _date_matches(key.op, day, key.day)
    if isinstance(key, Header):
        msg = m.parsed
        values = _header_values(msg, msg.root, key.name)
        return any(key.needle in fold(v) for v in values)
    return key.needle in _full_text(m, key.with_headers)
