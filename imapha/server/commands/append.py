"""APPEND (RFC 3501 §6.3.11) with APPENDUID (RFC 4315 UIDPLUS).

``APPEND mailbox [(flags)] ["date-time"] literal``. The message is written
through :meth:`imapha.maildir.mailbox.Mailbox.append` (tmp/, fsync, link into
cur/ with its flags, mtime = INTERNALDATE, UID under the uidlist lock). A
missing folder is ``NO [TRYCREATE]`` (§6.3.11). When the folder is the selected
one, the new message is announced (EXISTS) before the tagged OK.
"""

from __future__ import annotations

from imapha.imap import Command
from imapha.imap.codes import ResponseCode
from imapha.imap.commands import ClientCommand
from imapha.imap.tokens import Literal, PList, Quoted
from imapha.maildir.folders import FolderError
from imapha.maildir.keywords import KeywordLimit
from imapha.maildir.mailbox import Mailbox
from imapha.server.args import Args
from imapha.server.errors import bad, no
from imapha.server.flags import parse_flags
from imapha.server.imapdate import parse_internaldate
from imapha.server.session import Ok, Result, Session


def append(s: Session, cmd: ClientCommand) -> Result:
    assert isinstance(cmd, Command)
    args = Args(cmd.args)
    name = args.mailbox()
    system: frozenset[str] = frozenset()
    keywords: frozenset[str] = frozenset()
    date: float | None = None
    if isinstance(args.peek(), PList):
        system, keywords = parse_flags(args.plist("flag list"))
    tok = args.peek()
    if isinstance(tok, Quoted):
        args.next("date-time")
        date = parse_internaldate(tok.value.decode("ascii", "replace"))
        if date is None:
            raise bad("Invalid date-time")
    data_tok = args.next("message literal")
    if not isinstance(data_tok, Literal):
        raise bad("The message must be a literal")
    args.end()
    if not data_tok.value:
        raise no("Empty message", "CANNOT")
    assert s.folders is not None
    try:
        if not s.folders.exists(name):
            raise no("Mailbox does not exist", "TRYCREATE")
        box = Mailbox(s.folders.path(name), fs=s.ctx.fs)
    except FolderError:
        raise no("Mailbox does not exist", "TRYCREATE") from None
    try:
        uid = box.append(data_tok.value, system, keywords, internaldate=date)
    except KeywordLimit:
        raise no("Too many keywords in this mailbox", "LIMIT") from None
    box.sync()
    if s.ctx.hooks.appended is not None:
        s.ctx.hooks.appended()
    return Ok("Append completed", ResponseCode("APPENDUID", f"{box.uid_validity} {uid}"))


HANDLERS = {"APPEND": append}
