"""STORE and UID STORE (RFC 3501 §6.4.6, §6.4.8).

``STORE set FLAGS|+FLAGS|-FLAGS[.SILENT] (flags)``: each message's file is
renamed with its new flag letters by the store (no lock, as Dovecot). The
response is ``* n FETCH (FLAGS (...))`` per message unless ``.SILENT``, with
``UID`` added for UID STORE. Messages someone else expunged meanwhile are
skipped and the command ends ``NO [EXPUNGEISSUED]`` (RFC 5530).
"""

from __future__ import annotations

from imapha.imap import Command
from imapha.imap.commands import ClientCommand
from imapha.imap.responses import UntaggedData
from imapha.imap.tokens import Atom, PList, Token
from imapha.maildir.keywords import KeywordLimit
from imapha.maildir.mailbox import MessageExpunged, StoreMode
from imapha.server.args import Args
from imapha.server.errors import bad, no
from imapha.server.flags import parse_flags
from imapha.server.session import Ok, Result, Session

_MODES = {"FLAGS": StoreMode.REPLACE, "+FLAGS": StoreMode.ADD, "-FLAGS": StoreMode.REMOVE}


def _store(s: Session, cmd: ClientCommand, *, uid: bool) -> Result:
    assert isinstance(cmd, Command)
    args = Args(cmd.args[1:] if uid else cmd.args)
    seqset = args.seqset()
    item = args.atom("store item").upper()
    silent = item.endswith(".SILENT")
    mode = _MODES.get(item.removesuffix(".SILENT"))
    if mode is None:
        raise bad("Expected FLAGS, +FLAGS or -FLAGS")
    rest = args.rest()
    tokens: tuple[Token, ...] = rest[0].items if len(rest) == 1 and isinstance(rest[0], PList) \
        else rest
    if not rest:
        raise bad("Missing flags")
    system, keywords = parse_flags(tokens)
    sel = s.selected
    assert sel is not None
    if sel.read_only:
        raise no("Mailbox is read-only", "READ-ONLY")
    missed = False
    for seq, msg_uid in sel.resolve(seqset, uid=uid):
        if sel.message(msg_uid) is None:
            missed = True
            continue
        try:
            msg = sel.store(msg_uid, system, keywords, mode)
        except MessageExpunged:
            sel.mark_expunged([msg_uid])
            missed = True
            continue
        except KeywordLimit:
            raise no("Too many keywords in this mailbox", "LIMIT") from None
        if not silent:
            items: list[Token] = [Atom("FLAGS"), sel.flag_list(msg_uid, msg)]
            if uid:
                items += [Atom("UID"), Atom(str(msg_uid))]
            s.send(UntaggedData("FETCH", seq, (PList(tuple(items)),)))
    if missed:
        raise no("Some messages were expunged", "EXPUNGEISSUED")
    return Ok("Store completed")


def store(s: Session, cmd: ClientCommand) -> Result:
    return _store(s, cmd, uid=False)


def uid_store(s: Session, cmd: ClientCommand) -> Result:
    return _store(s, cmd, uid=True)


HANDLERS = {"STORE": store, "UID STORE": uid_store}
