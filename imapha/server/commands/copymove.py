"""COPY, MOVE and their UID forms (RFC 3501 §6.4.7, RFC 6851, RFC 4315 COPYUID).

Copies are hard links into the target's ``cur/`` (contents and INTERNALDATE
kept), given UIDs under the target's lock. MOVE is copy then expunge of the
sources (RFC 6851 §3.3: ``* OK [COPYUID ...]`` first, then the EXPUNGEs, then
the tagged OK). A missing target is ``NO [TRYCREATE]``.
"""

from __future__ import annotations

from imapha.imap import Command
from imapha.imap.codes import ResponseCode
from imapha.imap.commands import ClientCommand
from imapha.imap.responses import Status, UntaggedStatus
from imapha.maildir.folders import FolderError
from imapha.maildir.mailbox import Mailbox
from imapha.server.args import Args
from imapha.server.errors import no
from imapha.server.session import Ok, Result, Session


def uid_set(uids: list[int]) -> str:
    """Compact ``1:3,7`` form, in the given order (COPYUID pairs by position)."""
    parts: list[str] = []
    i = 0
    while i < len(uids):
        j = i
        while j + 1 < len(uids) and uids[j + 1] == uids[j] + 1:
            j += 1
        parts.append(str(uids[i]) if i == j else f"{uids[i]}:{uids[j]}")
        i = j + 1
    return ",".join(parts)


def _copy(s: Session, cmd: ClientCommand, *, uid: bool, move: bool) -> Result:
    assert isinstance(cmd, Command)
    args = Args(cmd.args[1:] if uid else cmd.args)
    seqset = args.seqset()
    name = args.mailbox()
    args.end()
    sel = s.selected
    assert sel is not None and s.folders is not None
    if move and sel.read_only:
        raise no("Mailbox is read-only", "READ-ONLY")
    try:
        if not s.folders.exists(name):
            raise no("Mailbox does not exist", "TRYCREATE")
        dest = Mailbox(s.folders.path(name), fs=s.ctx.fs)
    except FolderError:
        raise no("Mailbox does not exist", "TRYCREATE") from None
    wanted = [u for _, u in sel.resolve(seqset, uid=uid) if sel.message(u) is not None]
    if not wanted:
        if uid:
            return Ok("No messages")
        raise no("Messages were expunged", "EXPUNGEISSUED")
    pairs = sel.copy(wanted, dest)
    dest.sync()
    code = None
    if pairs:
        code = ResponseCode("COPYUID", f"{dest.uid_validity} {uid_set([a for a, _ in pairs])} "
                                       f"{uid_set([b for _, b in pairs])}")
    if move:
        gone = sel.expunge([a for a, _ in pairs])
        if code is not None:
            s.send(UntaggedStatus(Status.OK, "Moved", code))
        sel.mark_expunged(gone)
        for resp in sel.announce_expunges():
            s.send(resp)
        return Ok("Move completed")
    return Ok("Copy completed", code)


def copy(s: Session, cmd: ClientCommand) -> Result:
    return _copy(s, cmd, uid=False, move=False)


def uid_copy(s: Session, cmd: ClientCommand) -> Result:
    return _copy(s, cmd, uid=True, move=False)


def move(s: Session, cmd: ClientCommand) -> Result:
    return _copy(s, cmd, uid=False, move=True)


def uid_move(s: Session, cmd: ClientCommand) -> Result:
    return _copy(s, cmd, uid=True, move=True)


HANDLERS = {"COPY": copy, "UID COPY": uid_copy, "MOVE": move, "UID MOVE": uid_move}
