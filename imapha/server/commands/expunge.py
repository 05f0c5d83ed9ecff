"""EXPUNGE and UID EXPUNGE (RFC 3501 §6.4.3, RFC 4315 §2.1).

Removal is confirmed under the uidlist lock by the store; every message gone
(ours, and any someone else removed meanwhile) is announced with ``* n
EXPUNGE`` before the tagged OK.
"""

from __future__ import annotations

from imapha.imap import Command
from imapha.imap.commands import ClientCommand
from imapha.server.args import Args
from imapha.server.errors import no
from imapha.server.session import Ok, Result, Session


def _expunge(s: Session, cmd: ClientCommand, *, uid: bool) -> Result:
    assert isinstance(cmd, Command)
    args = Args(cmd.args[1:] if uid else cmd.args)
    sel = s.selected
    assert sel is not None
    if sel.read_only:
        raise no("Mailbox is read-only", "READ-ONLY")
    # Learn what others did first, so their \\Deleted flags count too.
    for resp in sel.refresh(allow_expunge=True):
        s.send(resp)
    if uid:
        seqset = args.seqset()
        args.end()
        targets = [u for _, u in sel.resolve(seqset, uid=True)
                   if (m := sel.message(u)) is not None and "\\Deleted" in m.flags]
        gone = sel.expunge(targets)
    else:
        args.end()
        gone = sel.expunge()
    sel.mark_expunged(gone)
    for resp in sel.announce_expunges():
        s.send(resp)
    return Ok("Expunge completed")


def expunge(s: Session, cmd: ClientCommand) -> Result:
    return _expunge(s, cmd, uid=False)


def uid_expunge(s: Session, cmd: ClientCommand) -> Result:
    return _expunge(s, cmd, uid=True)


HANDLERS = {"EXPUNGE": expunge, "UID EXPUNGE": uid_expunge}
