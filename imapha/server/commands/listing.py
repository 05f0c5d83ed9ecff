"""LIST and LSUB (RFC 3501 §6.3.8-9) with CHILDREN (RFC 3348) and SPECIAL-USE (RFC 6154).

Reference and pattern are joined and matched against the wire (modified
UTF-7) form of every name: ``*`` matches anything, ``%`` anything but the
separator. ``INBOX`` matches case-insensitively (§5.1). A folder that only
exists as the parent of others (``.A.B`` without ``.A``) is listed as
``\\Noselect``. Special-use attributes come from the usual names (Drafts,
Sent, Trash, Junk, Archive) at the top level.
"""

from __future__ import annotations

import re

from imapha.imap import Command
from imapha.imap.commands import ClientCommand
from imapha.imap.responses import UntaggedData
from imapha.imap.tokens import Atom, PList, Quoted, astring
from imapha.maildir.folders import SEPARATOR
from imapha.server.args import Args, encode_mailbox
from imapha.server.errors import bad
from imapha.server.session import Ok, Result, Session

SPECIAL_USE = {"Drafts": "\\Drafts", "Sent": "\\Sent", "Sent Messages": "\\Sent",
               "Trash": "\\Trash", "Junk": "\\Junk", "Spam": "\\Junk", "Archive": "\\Archive"}


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    full = reference + pattern
    if full.upper() == "INBOX" or full.upper().startswith("INBOX" + SEPARATOR):
        full = "INBOX" + full[5:]
    parts = []
    for ch in full:
        if ch == "*":
            parts.append(".*")
        elif ch == "%":
            parts.append("[^" + re.escape(SEPARATOR) + "]*")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def _matches(rx: re.Pattern[str], wire: str) -> bool:
    if rx.fullmatch(wire):
        return True
    # INBOX in any case (RFC 3501 §5.1)
    return wire == "INBOX" and any(rx.fullmatch(v) for v in ("inbox", "Inbox"))


def _list_line(kind: str, attrs: list[str], wire: str) -> UntaggedData:
    attributes = PList(tuple(Atom(a) for a in attrs))
    return UntaggedData(kind, None, (attributes, Quoted(SEPARATOR.encode()), astring(wire)))


def _args(cmd: ClientCommand) -> tuple[str, str]:
    assert isinstance(cmd, Command)
    args = Args(cmd.args)
    if isinstance(args.peek(), PList):
        raise bad("LIST-EXTENDED selection options are not supported")
    reference = args.list_mailbox()
    pattern = args.list_mailbox()
    if args.more():
        raise bad("LIST-EXTENDED return options are not supported")
    return reference, pattern


def list_(s: Session, cmd: ClientCommand) -> Result:
    reference, pattern = _args(cmd)
    if pattern == "":
        s.send(_list_line("LIST", ["\\Noselect"], ""))
        return Ok("List completed")
    assert s.folders is not None
    names = s.folders.names()
    wire_names = {encode_mailbox(n): n for n in names}
    all_wire = set(wire_names)
    for wire in list(all_wire):
        parts = wire.split(SEPARATOR)
        for i in range(1, len(parts)):
            parent = SEPARATOR.join(parts[:i])
            if parent not in wire_names:
                all_wire.add(parent)
    rx = pattern_regex(reference, pattern)
    for wire in sorted(all_wire, key=lambda w: (w != "INBOX", w)):
        if not _matches(rx, wire):
            continue
        children = any(o.startswith(wire + SEPARATOR) for o in all_wire)
        attrs = ["\\HasChildren" if children else "\\HasNoChildren"]
        if wire not in wire_names:
            attrs.insert(0, "\\Noselect")
        special = SPECIAL_USE.get(wire_names.get(wire, ""))
        if special:
            attrs.append(special)
        s.send(_list_line("LIST", attrs, wire))
    return Ok("List completed")


def lsub(s: Session, cmd: ClientCommand) -> Result:
    reference, pattern = _args(cmd)
    assert s.folders is not None
    rx = pattern_regex(reference, pattern)
    for name in s.folders.subscriptions():
        wire = encode_mailbox(name)
        if _matches(rx, wire):
            s.send(_list_line("LSUB", [], wire))
    return Ok("Lsub completed")


HANDLERS = {"LIST": list_, "LSUB": lsub}
