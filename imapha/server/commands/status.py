"""STATUS (RFC 3501 §6.3.10): MESSAGES, RECENT, UIDNEXT, UIDVALIDITY, UNSEEN."""

from __future__ import annotations

from imapha.imap import Command
from imapha.imap.commands import ClientCommand
from imapha.imap.responses import UntaggedData
from imapha.imap.tokens import Atom, PList, Token, astring
from imapha.server.args import Args, encode_mailbox
from imapha.server.commands.select import open_mailbox
from imapha.server.errors import bad
from imapha.server.session import Ok, Result, Session

ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")


def status(s: Session, cmd: ClientCommand) -> Result:
    assert isinstance(cmd, Command)
    args = Args(cmd.args)
    name = args.mailbox()
    wanted = []
    for tok in args.plist("status items"):
        if not isinstance(tok, Atom) or tok.value.upper() not in ITEMS:
            raise bad("Unknown STATUS item")
        wanted.append(tok.value.upper())
    args.end()
    if not wanted:
        raise bad("STATUS needs at least one item")
    # A folder some session has selected has a shared view (a sync there bumps
    # its generation, so no session misses a change); otherwise one of our own.
    box = open_mailbox(s, name)
    shared = s.ctx.folder_cache.get(box.path)
    if shared is not None:
        with shared.lock:
            shared.sync()
            box = shared.mailbox
            messages = box.messages()
            next_uid, validity = box.next_uid, box.uid_validity
            floor = box.index.recent_floor(validity)
    else:
        box.sync()
        messages = box.messages()
        next_uid, validity = box.next_uid, box.uid_validity
        floor = box.index.recent_floor(validity)
    values = {
        "MESSAGES": len(messages),
        "RECENT": sum(1 for m in messages if m.uid >= floor),  # nobody had them yet
        "UIDNEXT": next_uid,
        "UIDVALIDITY": validity,
        "UNSEEN": sum(1 for m in messages if "\\Seen" not in m.flags),
    }
    items: list[Token] = []
    for key in wanted:
        items += [Atom(key), Atom(str(values[key]))]
    s.send(UntaggedData("STATUS", None, (astring(encode_mailbox(name)), PList(tuple(items)))))
    return Ok("Status completed")


HANDLERS = {"STATUS": status}
