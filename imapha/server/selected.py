"""The selected folder as the client knows it: sequence numbers, flags, pending news.

Theory of operation
-------------------
The client numbers messages 1..N and those numbers may only change when we
say so (RFC 3501 §2.3.1.2, §7.4.1). :class:`Selected` keeps the client's
view, ``uids`` (sequence number i is ``uids[i-1]``, ascending), apart from the
store's view (:class:`~imapha.maildir.mailbox.Mailbox`, which follows the
disk), and reconciles them in :meth:`refresh`:

* messages that appeared (new UIDs, always above the ones we know) are
  appended and announced with ``* N EXISTS``;
* flag changes by anyone else become ``* n FETCH (FLAGS (...))``;
* messages that disappeared are remembered in ``pending`` and announced with
  ``* n EXPUNGE`` only when allowed (not during FETCH/STORE/SEARCH); until
  then they keep their sequence number, and reading them fails softly.

Our own changes are applied to both views as they are made (STORE answers
with its own FETCH, EXPUNGE with its own EXPUNGEs), so they are not announced
twice: the Mailbox updates its view on ``store``/``expunge``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from pathlib import Path

from imapha.imap.codes import ResponseCode
from imapha.imap.responses import Response, Status, UntaggedData, UntaggedStatus
from imapha.imap.tokens import Atom, PList, SequenceSet
from imapha.maildir import keywords as kw
from imapha.maildir.folders import FolderError
from imapha.maildir.mailbox import Mailbox, Message, MessageExpunged
from imapha.server.errors import bad

__all__ = ["SYSTEM_FLAGS", "Selected", "flag_list"]

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def flag_list(flags: Iterable[str], keywords: Iterable[str] = ()) -> PList:
    ordered = [f for f in SYSTEM_FLAGS if f in set(flags)] + sorted(keywords)
    return PList(tuple(Atom(f) for f in ordered))


class Selected:
    """See the module docstring."""

    def __init__(self, name: str, mailbox: Mailbox, *, read_only: bool) -> None:
        self.name = name
        self.mailbox = mailbox
        self.read_only = read_only
        self.uids: list[int] = []
        self.pending: set[int] = set()
        self.known: dict[int, tuple[frozenset[str], frozenset[str]]] = {}
        self.uid_validity = 0
        #: The folder was deleted or its UIDVALIDITY changed under us: the session
        #: cannot go on with this view (RFC 3501 §2.3.1.1) and ends with BYE.
        self.invalidated = False
        #: RFC822.SIZE with CRLF line ends, counted once per message (FETCH).
        self.crlf_sizes: dict[int, int] = {}

    @property
    def path(self) -> Path:
        return self.mailbox.path

    @property
    def exists(self) -> int:
        return len(self.uids)

    def keyword_names(self) -> list[str]:
        return sorted(kw.read(self.mailbox.fs, self.mailbox.path).table.values())

    def flags_response(self) -> list[Response]:
        names = self.keyword_names()
        flags = UntaggedData("FLAGS", None, (flag_list(SYSTEM_FLAGS, names),))
        perm_items = [*SYSTEM_FLAGS, *names, "\\*"]
        if self.read_only:
            perm = UntaggedStatus(Status.OK, "Read-only mailbox",
                                  ResponseCode("PERMANENTFLAGS", "()"))
        else:
            perm = UntaggedStatus(Status.OK, "Flags permitted",
                                  ResponseCode("PERMANENTFLAGS", f"({' '.join(perm_items)})"))
        return [flags, perm]

    def open(self) -> list[Response]:
        """Initial sync; the SELECT/EXAMINE untagged responses (RFC 3501 §6.3.1)."""
        self.mailbox.sync()
        messages = self.mailbox.messages()
        self.uids = [m.uid for m in messages]
        self.known = {m.uid: (m.flags, m.keywords) for m in messages}
        self.uid_validity = self.mailbox.uid_validity
        out: list[Response] = self.flags_response()[:1]
        out.append(UntaggedData("EXISTS", len(self.uids)))
        out.append(UntaggedData("RECENT", 0))
        unseen = next((i for i, m in enumerate(messages, 1) if "\\Seen" not in m.flags), None)
        if unseen is not None:
            out.append(UntaggedStatus(Status.OK, f"First unseen: {unseen}",
                                      ResponseCode("UNSEEN", str(unseen))))
        out.append(UntaggedStatus(Status.OK, "UIDs valid",
                                  ResponseCode("UIDVALIDITY", str(self.uid_validity))))
        out.append(UntaggedStatus(Status.OK, "Predicted next UID",
                                  ResponseCode("UIDNEXT", str(self.mailbox.next_uid))))
        out.append(self.flags_response()[1])
        return out

    # -- lookups ------------------------------------------------------------------------
    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def resolve(self, seqset: SequenceSet, *, uid: bool) -> list[tuple[int, int]]:
        """(sequence number, UID) pairs in the set, ascending; BAD for a sequence
        number beyond the mailbox (RFC 3501 §9: UIDs that do not exist are skipped)."""
        uids = self.uids
        if not uids:
            if uid:
                return []
            raise bad("No messages in the mailbox", "CLIENTBUG")
        if uid:
            largest = uids[-1]
            out: list[tuple[int, int]] = []
            for first, last in seqset.ranges:
                lo = largest if first is None else first
                hi = largest if last is None else last
                lo, hi = min(lo, hi), max(lo, hi)
                i = bisect.bisect_left(uids, lo)
                j = bisect.bisect_right(uids, hi)
                out.extend((k + 1, uids[k]) for k in range(i, j))
            return sorted(set(out))
        n = len(uids)
        seqs: set[int] = set()
        for first, last in seqset.ranges:
            lo = n if first is None else first
            hi = n if last is None else last
            lo, hi = min(lo, hi), max(lo, hi)
            if hi > n:
                raise bad("Invalid sequence number")
            seqs.update(range(lo, hi + 1))
        return [(s, uids[s - 1]) for s in sorted(seqs)]

    def message(self, uid: int) -> Message | None:
        """The message as on disk, or None if it is gone (expunged elsewhere)."""
        if uid in self.pending:
            return None
        try:
            return self.mailbox.get(uid)
        except MessageExpunged:
            return None

    def flags_of(self, uid: int) -> tuple[frozenset[str], frozenset[str]]:
        msg = self.message(uid)
        if msg is not None:
            return msg.flags, msg.keywords
        return self.known.get(uid, (frozenset(), frozenset()))

    def note_flags(self, msg: Message) -> None:
        self.known[msg.uid] = (msg.flags, msg.keywords)

    # -- changes ------------------------------------------------------------------------
    def mark_expunged(self, uids: Iterable[int]) -> None:
        self.pending.update(u for u in uids if self.seq_of(u) is not None)

    def announce_expunges(self) -> list[Response]:
        """``* n EXPUNGE`` for every pending UID, highest first (so the numbers we
        send stay right without renumbering), then drop them from the view."""
        if not self.pending:
            return []
        out: list[Response] = []
        for uid in sorted(self.pending, reverse=True):
            seq = self.seq_of(uid)
            if seq is not None:
                out.append(UntaggedData("EXPUNGE", seq))
            self.known.pop(uid, None)
        gone = self.pending
        self.uids = [u for u in self.uids if u not in gone]
        self.pending = set()
        return out

    def refresh(self, *, allow_expunge: bool) -> list[Response]:
        """Sync with the store and return what to announce (see the module doc)."""
        try:
            result = self.mailbox.sync()
        except (FileNotFoundError, FolderError):
            self.invalidated = True
            return []
        out: list[Response] = []
        if result.uid_validity_changed:
            # The list was rebuilt: every UID we gave is void (RFC 3501 §2.3.1.1).
            self.invalidated = True
            return []
        self.mark_expunged(result.expunged)
        for msg in result.changed:
            seq = self.seq_of(msg.uid)
            if seq is None or msg.uid in self.pending:
                continue
            if self.known.get(msg.uid) != (msg.flags, msg.keywords):
                self.note_flags(msg)
                out.append(UntaggedData("FETCH", seq, (PList((
                    Atom("FLAGS"), flag_list(msg.flags, msg.keywords))),)))
        if allow_expunge:
            out.extend(self.announce_expunges())
        last = self.uids[-1] if self.uids else 0
        added = [m for m in result.added if m.uid > last]
        if added:
            for m in added:
                self.uids.append(m.uid)
                self.note_flags(m)
            out.append(UntaggedData("EXISTS", len(self.uids)))
        return out
