"""FETCH and UID FETCH (RFC 3501 §6.4.5, §6.4.8, §7.4.2).

Parsing and rendering of the items are the message library's
(:mod:`imapha.server.fetchitems`); this module walks the set, sets ``\\Seen``
for non-PEEK body items on a read-write mailbox (and reports FLAGS then),
and reads a file only when an item needs its bytes. ``RFC822.SIZE`` is the
size with CRLF line ends, as ``BODY[]`` is sent; it and the header block come
from the folder's index (:mod:`imapha.maildir.index`) when it matches the
file, so ENVELOPE and header sections need no file read.
A message someone expunged meanwhile is skipped and the command ends
``NO [EXPUNGEISSUED]`` (RFC 5530), with no EXPUNGE sent during FETCH.
"""

from __future__ import annotations

from functools import partial

from imapha.imap import Command
from imapha.imap.commands import ClientCommand
from imapha.imap.errors import ProtocolError
from imapha.maildir.mailbox import MessageExpunged, StoreMode
from imapha.server.args import Args
from imapha.server.errors import bad, no
from imapha.server.fetchitems import (
    STORE_KINDS,
    FetchRequest,
    FetchSource,
    FetchSyntaxError,
    Kind,
    UnknownCTE,
    fetch_response,
    flag_bytes,
    parse_fetch_items,
)
from imapha.server.selected import Selected
from imapha.server.session import Ok, Result, Session

_SEEN = frozenset({"\\Seen"})


def _header_only(request: FetchRequest) -> bool:
    """Whether every item is a store value or reads the top-level header only
    (ENVELOPE, BODY[HEADER], BODY[HEADER.FIELDS (...)]): then the folder's
    index can answer without reading the file."""
    return all(i.kind in STORE_KINDS or i.kind is Kind.ENVELOPE
               or (i.kind is Kind.SECTION and not i.part and i.text.startswith("HEADER"))
               for i in request.items)


_FLAGS_UID = frozenset({Kind.UID, Kind.FLAGS})


def _flags_and_uids(s: Session, sel: Selected, request: FetchRequest,
                    pairs: list[tuple[int, int]]) -> bool:
    """``FETCH (UID FLAGS)`` and its subsets; True if some message was gone."""
    names = [i.name.encode("ascii") for i in request.items]
    kinds = [i.kind for i in request.items]
    rendered: dict[tuple[frozenset[str], frozenset[str], bool], bytes] = {}
    recent = sel.recent
    messages = sel.messages_of([u for _, u in pairs])
    missed = False
    for (seq, msg_uid), msg in zip(pairs, messages, strict=True):
        if msg is None:
            missed = True
            continue
        parts = []
        for name, kind in zip(names, kinds, strict=True):
            if kind is Kind.UID:
                parts.append(b"%s %d" % (name, msg_uid))
            else:
                key = (msg.flags, msg.keywords, msg_uid in recent)
                flags = rendered.get(key)
                if flags is None:
                    flags = rendered[key] = flag_bytes(
                        sel.flags_with_recent(msg_uid, msg.flags, msg.keywords))
                parts.append(name + b" " + flags)
        s.write_raw(b"* %d FETCH (%s)\r\n" % (seq, b" ".join(parts)))
    return missed


def _fetch(s: Session, cmd: ClientCommand, *, uid: bool) -> Result:
    assert isinstance(cmd, Command)
    args = Args(cmd.args[1:] if uid else cmd.args)
    seqset = args.seqset()
    try:
        request = parse_fetch_items(args.rest())
    except FetchSyntaxError as exc:
        raise bad(exc.text) from None
    if uid:
        request = request.with_uid()
    sel = s.selected
    assert sel is not None
    set_seen = request.sets_seen and not sel.read_only
    if set_seen:
        request = request.with_flags()
    wants_size = any(i.kind is Kind.RFC822_SIZE for i in request.items)
    header_only = request.needs_data and _header_only(request)
    # INTERNALDATE is the file's mtime: one stat per message, only when asked for.
    wants_date = any(i.kind is Kind.INTERNALDATE for i in request.items)
    missed = False
    pairs = sel.resolve(seqset, uid=uid)
    if request.only(_FLAGS_UID) and not set_seen:
        # The common client resync: no file, no stat; one lock for the lot.
        missed = _flags_and_uids(s, sel, request, pairs)
        pairs = []
    for seq, msg_uid in pairs:
        msg = sel.message(msg_uid)
        if msg is None:
            missed = True
            continue
        try:
            if set_seen and "\\Seen" not in msg.flags:
                msg = sel.store(msg_uid, _SEEN, (), StoreMode.ADD)
            read = partial(sel.read, msg_uid)
            size, parsed = msg.size, None
            if wants_size or header_only:
                size, parsed = sel.message_info(msg_uid)
            src = FetchSource(msg_uid, sel.flags_with_recent(msg_uid, msg.flags, msg.keywords),
                              sel.internaldate(msg_uid) if wants_date else 0.0, size, read,
                              _message=parsed if header_only else None)
            s.write_raw(fetch_response(seq, request, src))
        except MessageExpunged:
            sel.mark_expunged([msg_uid])
            missed = True
        except UnknownCTE:
            raise no("Unknown Content-Transfer-Encoding", "UNKNOWN-CTE") from None
        except ProtocolError as exc:
            raise no(exc.text) from None
    if wants_size or header_only:
        sel.save_index()
    if missed:
        raise no("Some messages were expunged", "EXPUNGEISSUED")
    return Ok("Fetch completed")


def fetch(s: Session, cmd: ClientCommand) -> Result:
    return _fetch(s, cmd, uid=False)


def uid_fetch(s: Session, cmd: ClientCommand) -> Result:
    return _fetch(s, cmd, uid=True)


HANDLERS = {"FETCH": fetch, "UID FETCH": uid_fetch}
