"""FETCH: the attribute list parsed (RFC 3501 §6.4.5) and one message's data rendered (§7.4.2).

Theory of operation
-------------------
:func:`parse_fetch_items` reads the tokens after the sequence set (one atom, a
macro, or a parenthesized list) into a :class:`FetchRequest` of
:class:`FetchItem`, or raises :class:`FetchSyntaxError` carrying the ``BAD``
text. The lexer hands ``BODY[HEADER.FIELDS (A "B")]<0.10>`` over as one atom;
its section and partial are parsed here.

:func:`render_fetch` writes one message's ``(NAME value ...)`` from a
:class:`FetchSource`: flags, UID, INTERNALDATE and size come from the store's
index, and the file is read (once, through ``read``) only when an item needs
its bytes. What each item answers:

* ``BODY[section]<o.n>``: a byte slice of the stored message (CRLF-normalised,
  see :mod:`imapha.server.message`), cut to the partial range; the response
  name echoes the origin only (``BODY[]<0>``), an origin past the end gives an
  empty string (§6.4.5). A part that does not exist is an empty string, as
  Dovecot answers. Strings are always literals. NUL cannot be sent outside a
  literal8, so each NUL is sent as 0x80, as Dovecot does.
* ``HEADER.FIELDS`` / ``.NOT``: the matching field lines byte for byte, names
  compared case-insensitively, then the blank line; the echoed names are upper
  case.
* ``BINARY[part]`` and ``BINARY.SIZE[part]`` (RFC 3516): the part's body with
  its Content-Transfer-Encoding undone; a literal8 (``~{n}``) when an encoding
  was undone or it holds NUL (as Dovecot), else a literal; an encoding we
  cannot undo answers ``NO [UNKNOWN-CTE]``. Multiparts and messages are not
  decoded.
* ``HEADER.FIELDS`` ends with CRLF always; ``HEADER.FIELDS.NOT`` with the
  header's own blank line, if it has one (both as Dovecot).
* ``RFC822``, ``RFC822.HEADER``, ``RFC822.TEXT``: ``BODY[]``, ``BODY.PEEK[HEADER]``
  and ``BODY[TEXT]`` under their own names.

``FetchRequest.sets_seen`` tells the session that the fetch implies ``\\Seen``
(a non-PEEK body item, §6.4.5); setting the flag and reporting FLAGS is the
session's job (it passes the updated flags in the source).

Use from the session's FETCH handler::

    request = parse_fetch_items(cmd.args[1:])      # FetchSyntaxError: tagged BAD
    if uid_command:
        request = request.with_uid()               # §6.4.8: UID always reported
    for seq, msg in messages_in_the_set:
        req = request
        if request.sets_seen and "\\Seen" not in flags and not read_only:
            ...set \\Seen in the store...; req = request.with_flags()
        src = FetchSource(msg.uid, flags, msg.internaldate, msg.size,
                          functools.partial(mailbox.read, msg.uid))
        out.write(fetch_response(seq, req, src))   # UnknownCTE: tagged NO [UNKNOWN-CTE]

``read`` may raise the store's ``MessageExpunged``; it is not caught here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from imapha.imap.errors import ProtocolError, RemoteProtocolError
from imapha.imap.tokens import Atom, Literal, PList, Quoted, Token, number

from .bodystructure import body_structure
from .envelope import envelope
from .imapdate import format_internaldate
from .message import ParsedMessage, decode_transfer
from .nodes import Node, node_bytes, write_node

__all__ = [
    "FetchItem",
    "FetchRequest",
    "FetchSource",
    "FetchSyntaxError",
    "Kind",
    "UnknownCTE",
    "fetch_response",
    "parse_fetch_items",
    "render_fetch",
]


class FetchSyntaxError(RemoteProtocolError):
    """The attribute list is malformed: answer ``BAD`` with this text."""


class UnknownCTE(ProtocolError):
    """BINARY of a part whose transfer encoding we cannot undo (RFC 3516 §4.3)."""

    def __init__(self) -> None:
        super().__init__("Unknown Content-Transfer-Encoding", status="NO", code="UNKNOWN-CTE")


class Kind(Enum):
    UID = "UID"
    FLAGS = "FLAGS"
    INTERNALDATE = "INTERNALDATE"
    RFC822_SIZE = "RFC822.SIZE"
    ENVELOPE = "ENVELOPE"
    BODY = "BODY"  # the non-extensible BODYSTRUCTURE
    BODYSTRUCTURE = "BODYSTRUCTURE"
    SECTION = "SECTION"  # BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT
    BINARY = "BINARY"
    BINARY_SIZE = "BINARY.SIZE"


#: What a section names after the part number (RFC 3501 §9 section-text).
SECTION_TEXTS = ("", "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME")


@dataclass(frozen=True, slots=True)
class FetchItem:
    kind: Kind
    #: The name the response uses, partial origin excluded (``BODY[1.MIME]``).
    name: str
    part: tuple[int, ...] = ()
    text: str = ""  # one of SECTION_TEXTS
    fields: tuple[bytes, ...] = ()  # upper case, for HEADER.FIELDS[.NOT]
    partial: tuple[int, int] | None = None
    peek: bool = True

    @property
    def needs_data(self) -> bool:
        return self.kind in _NEEDS_DATA


_NEEDS_DATA = frozenset(
    {Kind.ENVELOPE, Kind.BODY, Kind.BODYSTRUCTURE, Kind.SECTION, Kind.BINARY, Kind.BINARY_SIZE}
)


@dataclass(frozen=True, slots=True)
class FetchRequest:
    items: tuple[FetchItem, ...]

    @property
    def needs_data(self) -> bool:
        """Whether the message file must be read."""
        return any(i.needs_data for i in self.items)

    def only(self, kinds: frozenset[Kind]) -> bool:
        """Every item is of one of ``kinds``."""
        return all(i.kind in kinds for i in self.items)

    @property
    def store_only(self) -> bool:
        """Every item is UID, FLAGS, INTERNALDATE or RFC822.SIZE (no file read)."""
        return all(i.kind in STORE_KINDS for i in self.items)

    @property
    def sets_seen(self) -> bool:
        """A non-PEEK body item: the session sets ``\\Seen`` (RFC 3501 §6.4.5)."""
        return any(not i.peek for i in self.items)

    @property
    def has_uid(self) -> bool:
        return any(i.kind is Kind.UID for i in self.items)

    @property
    def has_flags(self) -> bool:
        return any(i.kind is Kind.FLAGS for i in self.items)

    def with_uid(self) -> FetchRequest:
        """For UID FETCH: UID is always reported (RFC 3501 §6.4.8), first, as Dovecot does."""
        if self.has_uid:
            return self
        return FetchRequest((_SIMPLE["UID"], *self.items))

    def with_flags(self) -> FetchRequest:
        """After an implicit ``\\Seen``: report FLAGS too (RFC 3501 §6.4.5)."""
        if self.has_flags:
            return self
        return FetchRequest((*self.items, _SIMPLE["FLAGS"]))


_SIMPLE: dict[str, FetchItem] = {
    k.value: FetchItem(k, k.value)
    for k in (Kind.UID, Kind.FLAGS, Kind.INTERNALDATE, Kind.RFC822_SIZE, Kind.ENVELOPE,
              Kind.BODY, Kind.BODYSTRUCTURE)
}
_SIMPLE["RFC822"] = FetchItem(Kind.SECTION, "RFC822", peek=False)
_SIMPLE["RFC822.HEADER"] = FetchItem(Kind.SECTION, "RFC822.HEADER", text="HEADER")
_SIMPLE["RFC822.TEXT"] = FetchItem(Kind.SECTION, "RFC822.TEXT", text="TEXT", peek=False)

_MACROS: dict[str, tuple[str, ...]] = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}

_SECTIONED_RE = re.compile(
    r"(BODY|BODY\.PEEK|BINARY|BINARY\.PEEK|BINARY\.SIZE)\[([^\]]*)\](?:<([0-9]+)\.([0-9]+)>)?",
    re.IGNORECASE,
)
_PART_RE = re.compile(r"[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,8})*")
_FIELD_RE = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')
_FIELD_NAME_RE = re.compile(rb"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 ftext
#: Upper bound on a section's part depth and on HEADER.FIELDS names (a hostile list).
MAX_PART_DEPTH = 64
MAX_FIELDS = 500


def _field_list(raw: str) -> tuple[bytes, ...]:
    raw = raw.strip()
    if not (raw.startswith("(") and raw.endswith(")")):
        raise FetchSyntaxError("HEADER.FIELDS needs a parenthesized list of field names")
    inner = raw[1:-1].strip()
    names: list[bytes] = []
    pos = 0
    while pos < len(inner):
        m = _FIELD_RE.match(inner, pos)
        if m is None:
            raise FetchSyntaxError("Invalid header field name list")
        text = m[1] if m[1] is not None else m[2]
        name = re.sub(r"\\(.)", r"\1", text).encode("utf-8", "replace")
        if not _FIELD_NAME_RE.fullmatch(name):
            raise FetchSyntaxError("Invalid header field name")
        names.append(name.upper())
        pos = m.end()
        while pos < len(inner) and inner[pos] == " ":
            pos += 1
    if not names or len(names) > MAX_FIELDS:
        raise FetchSyntaxError(f"HEADER.FIELDS needs 1 to {MAX_FIELDS} field names")
    return tuple(names)


def _echo_field(name: bytes) -> str:
    text = name.decode("ascii", "replace")
    if re.fullmatch(r"[\x21\x23-\x27\x2a-\x5a\x5e-\x7a\x7c-\x7e]+", text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_section(spec: str, binary: bool) -> tuple[tuple[int, ...], str, tuple[bytes, ...]]:
    m = _PART_RE.match(spec)
    part: tuple[int, ...] = ()
    rest = spec
    if m is not None:
        part = tuple(int(n) for n in m[0].split("."))
        if len(part) > MAX_PART_DEPTH:
            raise FetchSyntaxError("Section part number too deep")
        rest = spec[m.end():]
        if rest:
            if not rest.startswith(".") or binary or len(rest) == 1:
                raise FetchSyntaxError("Invalid section")
            rest = rest[1:]
    if binary:
        if rest:
            raise FetchSyntaxError("BINARY takes part numbers only")
        return part, "", ()
    upper = rest.upper()
    if upper in ("", "HEADER", "TEXT") or (upper == "MIME" and part):
        return part, upper, ()
    for text in ("HEADER.FIELDS.NOT", "HEADER.FIELDS"):
        if upper.startswith(text + " "):
            return part, text, _field_list(rest[len(text) + 1:])
    raise FetchSyntaxError("Invalid section")


def _parse_one(word: str) -> FetchItem:
    upper = word.upper()
    simple = _SIMPLE.get(upper)
    if simple is not None:
        return simple
    m = _SECTIONED_RE.fullmatch(word)
    if m is None:
        raise FetchSyntaxError(f"Unknown FETCH attribute {word[:40]}")
    verb = m[1].upper()
    binary = verb.startswith("BINARY")
    part, text, fields = _parse_section(m[2], binary)
    partial = None
    if m[3] is not None:
        if verb == "BINARY.SIZE":
            raise FetchSyntaxError("BINARY.SIZE takes no partial range")
        origin, length = int(m[3]), int(m[4])
        if length == 0 or origin > 2**32 - 1 or length > 2**32 - 1:
            raise FetchSyntaxError("Invalid partial range")
        partial = (origin, length)
    section = ".".join(str(n) for n in part)
    if text:
        section = f"{section}.{text}" if section else text
    if fields:
        section += " (" + " ".join(_echo_field(f) for f in fields) + ")"
    peek = verb.endswith(".PEEK") or verb == "BINARY.SIZE"
    if verb == "BINARY.SIZE":
        kind, name = Kind.BINARY_SIZE, f"BINARY.SIZE[{section}]"
    elif binary:
        kind, name = Kind.BINARY, f"BINARY[{section}]"
    else:
        kind, name = Kind.SECTION, f"BODY[{section}]"
    return FetchItem(kind, name, part, text, fields, partial, peek)


def _word(tok: Token) -> str:
    if not isinstance(tok, Atom):
        raise FetchSyntaxError("Invalid FETCH attribute")
    return tok.value


def parse_fetch_items(args: Iterable[Token]) -> FetchRequest:
    """The FETCH attributes after the sequence set: a macro, one attribute, or a list."""
    args = tuple(args)
    if len(args) != 1:
        raise FetchSyntaxError("FETCH takes one attribute or a parenthesized list")
    arg = args[0]
    if isinstance(arg, PList):
        if not arg.items:
            raise FetchSyntaxError("Empty FETCH attribute list")
        words = [_word(t) for t in arg.items]
    else:
        word = _word(arg)
        macro = _MACROS.get(word.upper())
        if macro is not None:
            return FetchRequest(tuple(_SIMPLE[w] for w in macro))
        words = [word]
    return FetchRequest(tuple(_parse_one(w) for w in words))


# --- rendering ------------------------------------------------------------------


@dataclass(slots=True)
class FetchSource:
    """One message as FETCH needs it; ``read`` is called (once) only if the request
    needs the bytes. ``flags`` are what FLAGS reports (system flags, ``\\Recent`` if
    the session has the message recent, keywords), after any implicit ``\\Seen``.
    ``size`` is RFC822.SIZE as the store knows it."""

    uid: int
    flags: tuple[str, ...]
    internaldate: float
    size: int
    read: Callable[[], bytes]
    #: UTC offset (seconds) INTERNALDATE is shown in; None: the host's zone.
    tz_offset: int | None = None
    _message: ParsedMessage | None = field(default=None, repr=False)

    @property
    def message(self) -> ParsedMessage:
        """The parsed message, read and parsed on first use only."""
        if self._message is None:
            self._message = ParsedMessage(self.read)
        return self._message


def _partial(item: FetchItem, value: bytes) -> tuple[str, bytes]:
    if item.partial is None:
        return item.name, value
    origin, length = item.partial
    return f"{item.name}<{origin}>", value[origin : origin + length]


def _header_fields(msg: ParsedMessage, item: FetchItem) -> bytes:
    part = msg.header_part(item.part)
    if part is None:
        return b""
    wanted = {f.lower() for f in item.fields}
    keep = item.text == "HEADER.FIELDS"
    data = msg.data
    out = bytearray()
    for f in part.fields:
        if (f.name.lower() in wanted) == keep:
            line = data[f.start : f.end]
            out += line if line.endswith(b"\n") else line + b"\r\n"
    if keep:
        out += b"\r\n"
    else:
        # .NOT passes the header's own blank line through (none if it has none).
        last = part.fields[-1].end if part.fields else part.start
        out += data[last : part.body_start]
    return bytes(out)


def _section_value(msg: ParsedMessage, item: FetchItem) -> bytes:
    if item.text.startswith("HEADER.FIELDS"):
        return _header_fields(msg, item)
    value = msg.section(item.part, item.text)
    return b"" if value is None else value


def _binary_value(msg: ParsedMessage, item: FetchItem) -> tuple[bytes, bool]:
    """The decoded content, and whether a transfer encoding was undone."""
    if not item.part:
        return msg.data, False
    part = msg.part(item.part)
    if part is None:
        return b"", False
    cte = part.transfer_encoding(msg.data) or b"7bit"
    body = msg.data[part.body_start : part.end]
    if part.children or part.message is not None:
        return body, False
    decoded = decode_transfer(body, cte)
    if decoded is None:
        raise UnknownCTE()
    return decoded, decoded is not body


_FLAG_RE = re.compile(r"\\?[\x21\x23\x24\x26\x27\x2b-\x5a\x5e-\x7a\x7c-\x7e]+")


def _flags(flags: tuple[str, ...]) -> PList:
    """The flag list; a keyword that is not a legal atom (a hand-edited keywords file)
    is left out rather than sent broken (RFC 3501 §9 flag-keyword = atom)."""
    return PList(tuple(Atom(f) for f in flags if _FLAG_RE.fullmatch(f)))


def render_items(request: FetchRequest, src: FetchSource) -> list[Node]:
    """The response's items as nodes, ``NAME value`` pairs flattened."""
    msg = src.message if request.needs_data else None
    out: list[Node] = []
    for item in request.items:
        kind = item.kind
        value: Node
        name = item.name
        if kind is Kind.UID:
            value = number(src.uid)
        elif kind is Kind.FLAGS:
            value = _flags(src.flags)
        elif kind is Kind.INTERNALDATE:
            value = Quoted(format_internaldate(src.internaldate, src.tz_offset).encode())
        elif kind is Kind.RFC822_SIZE:
            value = number(src.size)
        else:
            assert msg is not None
            if kind is Kind.ENVELOPE:
                value = envelope(msg.root, msg.data)
            elif kind is Kind.BODY:
                value = body_structure(msg.root, msg.data, extended=False)
            elif kind is Kind.BODYSTRUCTURE:
                value = body_structure(msg.root, msg.data, extended=True)
            elif kind is Kind.BINARY_SIZE:
                value = number(len(_binary_value(msg, item)[0]))
            elif kind is Kind.BINARY:
                content, decoded = _binary_value(msg, item)
                name, raw = _partial(item, content)
                value = Literal(raw, binary=decoded or b"\x00" in raw)
            else:
                name, raw = _partial(item, _section_value(msg, item))
                value = Literal(raw.replace(b"\x00", b"\x80") if b"\x00" in raw else raw)
        out += [Atom(name), value]
    return out


#: Items whose values come from the store alone, rendered without nodes.
STORE_KINDS = frozenset({Kind.UID, Kind.FLAGS, Kind.INTERNALDATE, Kind.RFC822_SIZE})
#: A flag tuple -> its rendered, checked list (few distinct ones per folder).
_FLAG_BYTES: dict[tuple[str, ...], bytes] = {}
_FLAG_BYTES_MAX = 4096


def flag_bytes(flags: tuple[str, ...]) -> bytes:
    """``(\\Seen $Label1)``: as ``_flags`` renders it, computed once per distinct tuple."""
    known = _FLAG_BYTES.get(flags)
    if known is None:
        if len(_FLAG_BYTES) >= _FLAG_BYTES_MAX:
            _FLAG_BYTES.clear()
        known = _FLAG_BYTES[flags] = node_bytes(_flags(flags))
    return known


def _render_store_items(request: FetchRequest, src: FetchSource) -> bytes:
    """The fast path of ``render_fetch`` when every item is a store value."""
    parts = []
    for item in request.items:
        kind = item.kind
        name = item.name.encode("ascii")
        if kind is Kind.UID:
            parts.append(b"%s %d" % (name, src.uid))
        elif kind is Kind.FLAGS:
            parts.append(name + b" " + flag_bytes(src.flags))
        elif kind is Kind.RFC822_SIZE:
            parts.append(b"%s %d" % (name, src.size))
        else:
            date = format_internaldate(src.internaldate, src.tz_offset).encode()
            parts.append(name + b' "' + date + b'"')
    return b"(" + b" ".join(parts) + b")"


def render_fetch(request: FetchRequest, src: FetchSource) -> bytes:
    """``(NAME value ...)`` for one message."""
    if request.store_only:
        return _render_store_items(request, src)
    out = bytearray(b"(")
    for i, node in enumerate(render_items(request, src)):
        if i:
            out += b" "
        write_node(node, out)
    out += b")"
    return bytes(out)


def fetch_response(seq: int, request: FetchRequest, src: FetchSource) -> bytes:
    """The whole untagged ``* seq FETCH (...)`` response, CRLF included."""
    return b"* %d FETCH %s\r\n" % (seq, render_fetch(request, src))
