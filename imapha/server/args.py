"""Reading a command's arguments from the wire layer's tokens (RFC 3501 §9 grammar).

:class:`Args` is a cursor over ``Command.args``; each reader raises
``BAD`` (:func:`imapha.server.errors.bad`) with a text naming what was
expected, so a handler reads its grammar top to bottom and never sees a
malformed value. Mailbox names are decoded from modified UTF-7 (RFC 3501
§5.1.3), ``INBOX`` in any case becomes ``INBOX`` (§5.1).
"""

from __future__ import annotations

from imapha.imap.errors import LocalProtocolError, RemoteProtocolError
from imapha.imap.tokens import (
    Atom,
    Literal,
    PList,
    Quoted,
    SequenceSet,
    Token,
    as_astring,
)
from imapha.maildir.folders import SEPARATOR, FolderError, decode_mutf7, encode_mutf7
from imapha.server.errors import bad

__all__ = ["Args", "decode_mailbox", "encode_mailbox"]


def decode_mailbox(raw: bytes) -> str:
    """Wire name (modified UTF-7) -> Unicode name; BAD if not valid."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise bad("Mailbox name is not 7-bit modified UTF-7") from None
    if text.upper() == "INBOX":
        return "INBOX"
    try:
        name = SEPARATOR.join(decode_mutf7(p) for p in text.split(SEPARATOR))
    except FolderError:
        raise bad("Mailbox name is not valid modified UTF-7") from None
    if name.upper().startswith("INBOX" + SEPARATOR):
        name = "INBOX" + name[5:]
    return name


def encode_mailbox(name: str) -> str:
    return SEPARATOR.join(encode_mutf7(p) for p in name.split(SEPARATOR))


class Args:
    """A cursor over one command's argument tokens."""

    def __init__(self, tokens: tuple[Token, ...]) -> None:
        self.tokens = tokens
        self.i = 0

    def more(self) -> bool:
        return self.i < len(self.tokens)

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.more() else None

    def next(self, what: str) -> Token:
        if not self.more():
            raise bad(f"Missing {what}")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def end(self) -> None:
        if self.more():
            raise bad("Too many arguments")

    def astring(self, what: str = "string") -> bytes:
        try:
            return as_astring(self.next(what), what)
        except RemoteProtocolError:
            raise bad(f"Expected {what}") from None

    def mailbox(self) -> str:
        return decode_mailbox(self.astring("mailbox name"))

    def list_mailbox(self) -> str:
        """list-mailbox: an astring that may also hold ``%`` and ``*``."""
        tok = self.next("mailbox pattern")
        if isinstance(tok, Atom):
            raw = tok.value.encode("ascii", "surrogateescape")
        elif isinstance(tok, Quoted) or (isinstance(tok, Literal) and not tok.binary):
            raw = tok.value
        else:
            raise bad("Expected a mailbox pattern")
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise bad("Mailbox pattern is not 7-bit") from None
        return text

    def atom(self, what: str = "atom") -> str:
        tok = self.next(what)
        if not isinstance(tok, Atom):
            raise bad(f"Expected {what}")
        return tok.value

    def plist(self, what: str = "list") -> tuple[Token, ...]:
        tok = self.next(what)
        if not isinstance(tok, PList):
            raise bad(f"Expected a parenthesized {what}")
        return tok.items

    def seqset(self) -> SequenceSet:
        tok = self.next("sequence set")
        if not isinstance(tok, Atom):
            raise bad("Expected a sequence set")
        try:
            return SequenceSet.parse(tok.value)
        except (RemoteProtocolError, LocalProtocolError):
            raise bad("Invalid sequence set") from None

    def number(self, what: str = "number") -> int:
        value = self.atom(what)
        if not value.isdigit() or len(value) > 10 or int(value) > 2**32 - 1:
            raise bad(f"Expected {what}")
        return int(value)

    def rest(self) -> tuple[Token, ...]:
        out = self.tokens[self.i:]
        self.i = len(self.tokens)
        return out
