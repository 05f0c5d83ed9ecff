"""SEARCH and UID SEARCH (RFC 3501 §6.4.4, §6.4.8).

Key parsing and evaluation are the message library's
(:mod:`imapha.server.search`); this module walks the client's view in order,
skips messages someone expunged meanwhile (they keep their number until the
EXPUNGE can be sent, but have no contents to match), and answers ``* SEARCH``
with sequence numbers or UIDs. A file is read only when a key needs it, and
not at all for keys on the top-level header (SUBJECT, FROM, HEADER, SENT*...)
of a message the folder's index holds (:mod:`imapha.maildir.index`).
"""

from __future__ import annotations

import re
from functools import partial

from imapha.imap import Command
from imapha.imap.codes import ResponseCode
from imapha.imap.commands import ClientCommand
from imapha.imap.errors import LocalProtocolError
from imapha.imap.responses import Status, UntaggedData
from imapha.imap.tokens import Atom, Token
from imapha.maildir.mailbox import MessageExpunged
from imapha.server.errors import CommandError, bad
from imapha.server.search import (
    And,
    BadCharset,
    Body,
    Header,
    Key,
    Not,
    Or,
    SearchMessage,
    SearchScope,
    SearchSyntaxError,
    matches,
    parse_search,
)
from imapha.server.selected import Selected
from imapha.server.session import Ok, Result, Session


def _search(s: Session, cmd: ClientCommand, *, uid: bool) -> Result:
    assert isinstance(cmd, Command)
    tokens = cmd.args[1:] if uid else cmd.args
    try:
        key = parse_search(tokens)
    except SearchSyntaxError as exc:
        raise bad(exc.text) from None
    except BadCharset as exc:
        try:
            code = ResponseCode(exc.code or "BADCHARSET", exc.code_args)
        except LocalProtocolError:
            code = ResponseCode("BADCHARSET")
        raise CommandError(Status.NO, "Unsupported charset", code) from None
    sel = s.selected
    assert sel is not None
    headers_only = not _needs_body(key)
    scope = SearchScope(largest_seq=len(sel.uids), largest_uid=sel.uids[-1] if sel.uids else 0)
    found: list[Token] = []
    for seq, msg_uid in enumerate(list(sel.uids), 1):
        msg = sel.message(msg_uid)
        if msg is None:
            continue
        try:
            read = (partial(_header_block, sel, msg_uid) if headers_only
                    else partial(sel.read, msg_uid))
            flags = msg.flags | msg.keywords
            if msg_uid in sel.recent:
                flags |= _RECENT
            parsed = None
            if isinstance(key, Header):  # SUBJECT x, FROM x, HEADER n x: the usual
                parsed = sel.message_info(msg_uid)[1]
                if cannot_match(key, parsed.data):
                    continue
            candidate = SearchMessage(seq, msg_uid, flags, msg.size,
                                      partial(sel.internaldate, msg_uid), read, parsed)
            if matches(key, candidate, scope):
                found.append(Atom(str(msg_uid if uid else seq)))
        except MessageExpunged:
            sel.mark_expunged([msg_uid])
    sel.save_index()
    s.send(UntaggedData("SEARCH", None, tuple(found)))
    return Ok("Search completed")


_RECENT = frozenset({"\\Recent"})
_LINE_ENDS = re.compile(rb"\r?\n")


def _needs_body(key: Key) -> bool:
    """Whether a key reads more than the top-level header (BODY, TEXT)."""
    if isinstance(key, And):
        return any(_needs_body(k) for k in key.keys)
    if isinstance(key, Or):
        return _needs_body(key.left) or _needs_body(key.right)
    if isinstance(key, Not):
        return _needs_body(key.key)
    return isinstance(key, Body)


def cannot_match(key: Header, text: bytes) -> bool:
    """True when ``key`` cannot match a message whose header (or whole text) is
    ``text``: plain ASCII without encoded words, whose unfolded, lower-cased
    form does not contain the needle. A quick no before the parse; anything
    else (8-bit, RFC 2047, a needle found) is left to ``matches``.

    Why it is exact: such a header value decodes to its own unfolded bytes, and
    folding (lower case, NFKD) is plain lower case for ASCII, so a matching
    value's text is a substring of ``text`` with its line ends removed, in
    lower case. A non-ASCII needle cannot occur in ASCII text.
    """
    if b"=?" in text or not text.isascii():
        return False
    if not key.needle.isascii():
        return True
    return key.needle.encode() not in _LINE_ENDS.sub(b"", text).lower()


def _header_block(sel: Selected, uid: int) -> bytes:
    """The message's header block, from the folder's index when it has it."""
    return sel.message_info(uid)[1].data


def search(s: Session, cmd: ClientCommand) -> Result:
    return _search(s, cmd, uid=False)


def uid_search(s: Session, cmd: ClientCommand) -> Result:
    return _search(s, cmd, uid=True)


HANDLERS = {"SEARCH": search, "UID SEARCH": uid_search}
