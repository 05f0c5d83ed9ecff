"""SELECT, EXAMINE, CLOSE, UNSELECT (RFC 3501 §6.3.1-2, §6.4.2; RFC 3691)."""

from __future__ import annotations

from imapha.imap import Command
from imapha.imap.codes import ResponseCode
from imapha.imap.commands import ClientCommand
from imapha.maildir.folders import FolderError
from imapha.maildir.mailbox import Mailbox
from imapha.server.args import Args
from imapha.server.errors import no
from imapha.server.selected import Selected
from imapha.server.session import Ok, Result, Session
from imapha.server.state import Event


def open_mailbox(s: Session, name: str, *, read_only: bool = False) -> Mailbox:
    """The folder ``name`` of the logged-in user; NO [NONEXISTENT] if there is none."""
    assert s.folders is not None
    try:
        if not s.folders.exists(name):
            raise no("Mailbox does not exist", "NONEXISTENT")
        return Mailbox(s.folders.path(name), fs=s.ctx.fs, read_only=read_only)
    except FolderError:
        raise no("Mailbox does not exist", "NONEXISTENT") from None


def _exists(s: Session, name: str) -> bool:
    assert s.folders is not None
    try:
        return s.folders.exists(name)
    except FolderError:
        return False


def _select(s: Session, cmd: ClientCommand, *, read_only: bool) -> Result:
    assert isinstance(cmd, Command)
    args = Args(cmd.args)
    name = args.mailbox()
    args.end()
    if s.selected is not None:
        # RFC 3501 §6.3.1: selecting again closes the current mailbox first (no
        # expunge), and a failed SELECT leaves none selected.
        s.set_selected(None)
        s.move(Event.SELECT_FAILED)
    assert s.folders is not None
    if not _exists(s, name):
        raise no("Mailbox does not exist", "NONEXISTENT")
    path = s.folders.path(name)
    cache = s.ctx.folder_cache
    folder = cache.open(path, lambda: Mailbox(path, fs=s.ctx.fs))
    selected = Selected(name, folder, read_only=read_only, cache=cache)
    try:
        responses = selected.open()
    except BaseException:
        selected.close()
        raise
    for resp in responses:
        s.send(resp)
    s.set_selected(selected)
    s.move(Event.SELECT)
    code = "READ-ONLY" if read_only else "READ-WRITE"
    return Ok("Select completed", ResponseCode(code))


def select(s: Session, cmd: ClientCommand) -> Result:
    return _select(s, cmd, read_only=False)


def examine(s: Session, cmd: ClientCommand) -> Result:
    return _select(s, cmd, read_only=True)


def _leave(s: Session, cmd: ClientCommand, *, expunge: bool) -> Result:
    assert isinstance(cmd, Command)
    Args(cmd.args).end()
    sel = s.selected
    assert sel is not None
    if expunge and not sel.read_only:
        sel.expunge()  # §6.4.2: silently, no untagged EXPUNGE
    s.set_selected(None)
    s.move(Event.CLOSE)
    return Ok("Closed")


def close(s: Session, cmd: ClientCommand) -> Result:
    return _leave(s, cmd, expunge=True)


def unselect(s: Session, cmd: ClientCommand) -> Result:
    return _leave(s, cmd, expunge=False)


HANDLERS = {"SELECT": select, "EXAMINE": examine, "CLOSE": close, "UNSELECT": unselect}
