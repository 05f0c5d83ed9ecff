"""CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE (RFC 3501 §6.3.3-7; RFC 5530 codes).

Folders are Maildir++ directories (:mod:`imapha.maildir.folders`). Renaming
INBOX moves its messages into a new folder and leaves INBOX empty (§6.3.5).
"""

from __future__ import annotations

from imapha.imap import Command
from imapha.imap.commands import ClientCommand
from imapha.maildir.folders import SEPARATOR, FolderError, Folders
from imapha.maildir.mailbox import Mailbox
from imapha.server.args import Args
from imapha.server.errors import no
from imapha.server.session import Ok, Result, Session


def _folders(s: Session) -> Folders:
    assert s.folders is not None
    return s.folders


def _name(cmd: ClientCommand, count: int = 1) -> list[str]:
    assert isinstance(cmd, Command)
    args = Args(cmd.args)
    names = [args.mailbox() for _ in range(count)]
    args.end()
    return names


def create(s: Session, cmd: ClientCommand) -> Result:
    (name,) = _name(cmd)
    name = name.rstrip(SEPARATOR)  # §6.3.3: a trailing separator only hints at children
    folders = _folders(s)
    if name.upper() == "INBOX" or (name and folders.exists(name)):
        raise no("Mailbox already exists", "ALREADYEXISTS")
    try:
        folders.create(name)
    except FolderError as exc:
        if "already exists" in str(exc):
            raise no("Mailbox already exists", "ALREADYEXISTS") from None
        raise no("Invalid mailbox name", "CANNOT") from None
    return Ok("Create completed")


def delete(s: Session, cmd: ClientCommand) -> Result:
    (name,) = _name(cmd)
    folders = _folders(s)
    if name.upper() == "INBOX":
        raise no("INBOX cannot be deleted", "CANNOT")
    if s.selected is not None and s.selected.name == name:
        raise no("Cannot delete the selected mailbox", "INUSE")
    try:
        if not folders.exists(name):
            raise no("Mailbox does not exist", "NONEXISTENT")
        folders.delete(name)
    except FolderError:
        raise no("Mailbox does not exist", "NONEXISTENT") from None
    finally:
        s.ctx.folder_cache.forget()
    return Ok("Delete completed")


def rename(s: Session, cmd: ClientCommand) -> Result:
    old, new = _name(cmd, 2)
    folders = _folders(s)
    try:
        if old.upper() != "INBOX" and not folders.exists(old):
            raise no("Mailbox does not exist", "NONEXISTENT")
        if new.upper() == "INBOX" or folders.exists(new):
            raise no("Mailbox already exists", "ALREADYEXISTS")
        if old.upper() == "INBOX":
            folders.create(new)
            src = Mailbox(folders.path("INBOX"), fs=s.ctx.fs)
            dst = Mailbox(folders.path(new), fs=s.ctx.fs)
            src.sync()
            src.move([m.uid for m in src.messages()], dst)
        else:
            folders.rename(old, new)
    except FolderError:
        raise no("Cannot rename the mailbox", "CANNOT") from None
    finally:
        s.ctx.folder_cache.forget()
    return Ok("Rename completed")


def subscribe(s: Session, cmd: ClientCommand) -> Result:
    (name,) = _name(cmd)
    try:
        _folders(s).subscribe(name)
    except FolderError:
        raise no("Invalid mailbox name", "CANNOT") from None
    return Ok("Subscribe completed")


def unsubscribe(s: Session, cmd: ClientCommand) -> Result:
    (name,) = _name(cmd)
    folders = _folders(s)
    if name not in folders.subscriptions():
        raise no("Not subscribed", "NONEXISTENT")
    folders.unsubscribe(name)
    return Ok("Unsubscribe completed")


HANDLERS = {"CREATE": create, "DELETE": delete, "RENAME": rename, "SUBSCRIBE": subscribe,
            "UNSUBSCRIBE": unsubscribe}
