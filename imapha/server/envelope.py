"""ENVELOPE (RFC 3501 §7.4.2) from a parsed header, and a tolerant RFC 5322 address parser.

Theory of operation
-------------------
The envelope is ten fields taken from the header as written, never decoded:
date, subject, from, sender, reply-to, to, cc, bcc, in-reply-to, message-id.
When a field occurs more than once, the last one counts for a string field and
the address lists are joined for an address field (as Dovecot answers).
String fields are that field's value, unfolded (the line ends of
folds dropped, white space kept, RFC 5322 §2.2.3), trimmed, TAB as SP (as
Dovecot); absent is NIL.
Sender and Reply-To fall back to From when absent or empty (§7.4.2).

Addresses follow RFC 5322 §3.4 loosely, the way mail really is: a lexer splits
the value into quoted strings, comments, domain literals, atoms and specials;
a small parser reads mailboxes (``name <local@domain>``, ``local@domain``,
``local@domain (comment)``) and groups (``name: a, b;``), which RFC 3501 writes
as a start marker ``(NIL NIL name NIL)``, the members, and an end marker
``(NIL NIL NIL NIL)``. Each address is ``(name adl mailbox host)``; a source
route (obsolete ``<@a,@b:x@y>``) fills adl. Garbage never raises: words that
fit nowhere end the list: what follows an address other than a comma is
not read, as Dovecot does. A mailbox without domain (``To: nodomain``) gets the
host ``MISSING_DOMAIN`` (and one without local part ``MISSING_MAILBOX``), as
Dovecot does, so that it cannot be mistaken for a group marker; an empty
element before a comma (``To: , a@b``), or before a group's ``;`` after a
comma, is such an address with both missing. Quoted local
parts are written unquoted (``"a b"@x`` -> mailbox ``a b``), as Dovecot does.
Strings with 8-bit octets become literals, others quoted strings
(:func:`imapha.imap.tokens.nstring` chooses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from imapha.imap.tokens import NIL, PList, Token, nstring

from .mime import Part, unfold
from .nodes import Adjacent, Node, NodeList

__all__ = ["Address", "envelope", "parse_addresses"]


@dataclass(frozen=True, slots=True)
class Address:
    """One RFC 3501 address; a group start has only ``mailbox`` (the group name),
    a group end has nothing."""

    name: bytes | None
    adl: bytes | None
    mailbox: bytes | None
    host: bytes | None

    def token(self) -> PList:
        return PList(tuple(nstring(v) for v in (self.name, self.adl, self.mailbox, self.host)))


_GROUP_END = Address(None, None, None, None)
#: Placeholders for a mailbox without local part or domain (Dovecot writes the same).
MISSING_MAILBOX = b"MISSING_MAILBOX"
MISSING_DOMAIN = b"MISSING_DOMAIN"
_MISSING_BOTH = Address(None, None, MISSING_MAILBOX, MISSING_DOMAIN)

# token kinds: "q" quoted string, "c" comment, "d" domain literal, "a" atom, or a special char
_LEX_RE = re.compile(
    rb'"(?:[^"\\]|\\.)*"?'  # quoted string (unterminated tolerated)
    rb"|\[(?:[^\]\\]|\\.)*\]?"  # domain literal
    rb"|[<>@,;:.]"  # specials we act on
    rb"|[^\s\"\[\]<>@,;:.()\\]+"  # atom-ish run
    rb"|\\.?"  # stray backslash
    ,
    re.S,
)


def _unquote(raw: bytes) -> bytes:
    inner = raw[1:-1] if len(raw) >= 2 and raw.endswith(b'"') else raw[1:]
    return re.sub(rb"\\(.)", rb"\1", inner, flags=re.S)


def _lex(raw: bytes) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c in b" \t\r\n":
            i += 1
            continue
        if c == 0x28:  # comment, nested
            depth, j = 0, i
            while j < n:
                d = raw[j]
                if d == 0x5C:
                    j += 2
                    continue
                if d == 0x28:
                    depth += 1
                elif d == 0x29:
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            out.append(("c", raw[i + 1 : min(j, n)]))
            i = j + 1
            continue
        if c == 0x29:  # stray ")"
            i += 1
            continue
        m = _LEX_RE.match(raw, i)
        if m is None or m.end() == i:
            i += 1
            continue
        text = m[0]
        if text[:1] == b'"':
            out.append(("q", _unquote(text)))
        elif text[:1] == b"[":
            out.append(("d", text))
        elif len(text) == 1 and text in b"<>@,;:.":
            out.append((text.decode(), text))
        else:
            out.append(("a", text))
        i = m.end()
    return out


_WORDS = ("a", "q")


class _Parser:
    def __init__(self, toks: list[tuple[str, bytes]]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> str | None:
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def phrase(self) -> tuple[list[tuple[str, bytes]], bytes | None]:
        """Tokens up to one of < : , ; (or the end), and the last comment seen after a
        word (``a@b (Name)`` names the address, ``(c) a@b`` does not, as in Dovecot)."""
        words: list[tuple[str, bytes]] = []
        comment = None
        toks, n = self.toks, len(self.toks)
        while self.i < n:
            kind, text = toks[self.i]
            if kind in ("<", ":", ",", ";", ">"):
                break
            self.i += 1
            if kind == "c":
                if words:
                    comment = text
            elif kind == "@":
                # An addr-spec: the domain is one dot-atom or domain literal; what
                # follows it (other than comments) ends the element.
                words.append((kind, text))
                expect_word = True
                while self.i < n:
                    kind, text = toks[self.i]
                    if kind == "c":
                        comment = text
                    elif expect_word and kind in ("a", "d"):
                        words.append((kind, text))
                        expect_word = False
                    elif not expect_word and kind == ".":
                        words.append((kind, text))
                        expect_word = True
                    else:
                        break
                    self.i += 1
                break
            else:
                words.append((kind, text))
        return words, comment

    def angle(self) -> tuple[bytes | None, bytes | None, bytes | None]:
        """After "<": (adl, mailbox, host) up to ">"."""
        inner: list[tuple[str, bytes]] = []
        while self.i < len(self.toks) and self.toks[self.i][0] != ">":
            if self.toks[self.i][0] != "c":
                inner.append(self.toks[self.i])
            self.i += 1
        self.i += 1  # the ">" (or past the end)
        adl = None
        colon = next((k for k, (kind, _) in enumerate(inner) if kind == ":"), None)
        if colon is not None and inner and inner[0][0] == "@":
            adl = b"".join(t for _, t in inner[:colon])
            inner = inner[colon + 1 :]
        mailbox, host = _addr_spec(inner)
        return adl, mailbox, host

    def mailbox(self) -> Address | None:
        words, comment = self.phrase()
        if self.peek() == "<":
            self.i += 1
            adl, mailbox, host = self.angle()
            name = _display(words)
            if mailbox is None and host is None and name is None:
                return None
            return _filled(Address(name, adl, mailbox, host))
        if not words:
            return None
        mailbox, host = _addr_spec(words)
        return _filled(Address(comment, None, mailbox, host))


def _filled(addr: Address) -> Address:
    """A mailbox missing its local part or domain gets Dovecot's placeholder, so it
    cannot be read as a group marker (whose host is NIL)."""
    if addr.host is None or addr.mailbox is None:
        return Address(addr.name, addr.adl, addr.mailbox or MISSING_MAILBOX,
                       addr.host or MISSING_DOMAIN)
    return addr


def _display(words: list[tuple[str, bytes]]) -> bytes | None:
    out = b""
    for kind, text in words:
        if kind == ".":
            out += b"."
        elif kind in _WORDS or kind in ("d", "@"):
            out += (b" " if out else b"") + text
    return out or None


def _addr_spec(words: list[tuple[str, bytes]]) -> tuple[bytes | None, bytes | None]:
    at = next((k for k in range(len(words) - 1, -1, -1) if words[k][0] == "@"), None)
    local_words = words if at is None else words[:at]
    domain_words = [] if at is None else words[at + 1 :]
    parts: list[bytes] = []
    for kind, text in local_words:
        if kind in ("q", "a", "."):
            parts.append(text)
    local = b"".join(parts)
    domain = b"".join(t for k, t in domain_words if k in ("a", ".", "d")) or None
    return (local or None), domain


_ATEXT = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\xff-]+"
_DOT_ATOM = _ATEXT + rb"(?:\." + _ATEXT + rb")*"
_FAST_ITEM = re.compile(
    rb'[ \t]*(?:(?:"((?:[^"\\\r\n]|\\.)*)"|([A-Za-z0-9!#$%&\'*+/=?^_`{|}~\x80-\xff \t-]*?))'
    rb"[ \t]*<(" + _DOT_ATOM + rb")@(" + _DOT_ATOM + rb")>"
    rb"|(" + _DOT_ATOM + rb")@(" + _DOT_ATOM + rb"))[ \t]*(?:,|\Z)"
)
_BACKSLASH_RE = re.compile(rb"\\(.)", re.S)


def _parse_fast(value: bytes) -> list[Address] | None:
    """The common forms (``a@b``, ``Name <a@b>``, ``"Name" <a@b>``, comma-separated) by
    one regex; None for anything else (groups, comments, routes, junk), which goes to
    the general parser. A property test holds both to the same answers."""
    out: list[Address] = []
    pos, n = 0, len(value)
    while pos < n:
        m = _FAST_ITEM.match(value, pos)
        if m is None:
            return None
        pos = m.end()
        if m[5] is not None:
            out.append(Address(None, None, m[5], m[6]))
            continue
        if m[1] is not None:
            name: bytes | None = (_BACKSLASH_RE.sub(rb"\1", m[1]) if b"\\" in m[1]
                                  else m[1]) or None
        else:
            name = b" ".join(m[2].split()) or None
        out.append(Address(name, None, m[3], m[4]))
    return out


def parse_addresses(raw: bytes) -> list[Address]:
    """An address-list header value -> addresses with group markers (RFC 3501 §7.4.2)."""
    value = unfold(raw)
    fast = _parse_fast(value)
    return fast if fast is not None else _parse_general(value)


def _parse_general(value: bytes) -> list[Address]:
    p = _Parser(_lex(value))
    out: list[Address] = []
    guard = len(p.toks) + 1
    while p.i < len(p.toks) and guard > 0:
        guard -= 1
        start = p.i
        words, _ = p.phrase()
        if p.peek() == ":":  # a group
            p.i += 1
            out.append(Address(None, None, _display(words) or b"", None))
            commas = False
            while p.i < len(p.toks):
                before = p.i
                addr = p.mailbox()
                if addr is not None:
                    out.append(addr)
                elif p.peek() == "," or (p.peek() == ";" and commas):
                    out.append(_MISSING_BOTH)  # an empty element (Dovecot's answer)
                if p.peek() == ";":
                    break
                if p.peek() in (",", ">"):
                    commas = commas or p.peek() == ","
                    p.i += 1
                if p.i == before:
                    p.i += 1
            p.i += 1  # ";"
            out.append(_GROUP_END)
        else:
            p.i = start
            addr = p.mailbox()
            if addr is not None:
                out.append(addr)
            elif p.peek() == ",":  # an empty element before a comma (Dovecot's answer)
                out.append(_MISSING_BOTH)
        if p.i < len(p.toks) and p.peek() != ",":
            break  # junk where a comma should be: the rest is not read (as Dovecot)
        p.i += 1
    return out


def _address_list(part: Part, data: bytes, name: bytes) -> Node:
    """``"(" 1*address ")"``: the addresses back to back (RFC 3501 §9), or NIL."""
    found = part.get_all(name)
    if not found:
        return NIL
    addrs = [a for f in found for a in parse_addresses(f.raw_value(data))]
    if not addrs:
        return NIL
    return NodeList((Adjacent(tuple(a.token() for a in addrs)),))


def _string_field(part: Part, data: bytes, name: bytes) -> Token:
    found = part.get_all(name)
    if not found:
        return NIL
    return nstring(unfold(found[-1].raw_value(data)).replace(b"\t", b" "))


def envelope(part: Part, data: bytes) -> NodeList:
    """The ENVELOPE of the message whose header is ``part``'s header."""
    from_ = _address_list(part, data, b"from")
    sender = _address_list(part, data, b"sender")
    reply_to = _address_list(part, data, b"reply-to")
    return NodeList((
        _string_field(part, data, b"date"),
        _string_field(part, data, b"subject"),
        from_,
        from_ if sender is NIL else sender,
        from_ if reply_to is NIL else reply_to,
        _address_list(part, data, b"to"),
        _address_list(part, data, b"cc"),
        _address_list(part, data, b"bcc"),
        _string_field(part, data, b"in-reply-to"),
        _string_field(part, data, b"message-id"),
    ))
