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
twice.

**One store view per folder per process.** The sessions of one backend that
have the same folder selected share one :class:`SharedFolder` (the
:class:`FolderCache` of the server context): one ``Mailbox``, one scan, one
set of cached sizes and dates, so the second SELECT of a 10,000-message folder
costs a list copy rather than a directory scan. Every use of the shared
``Mailbox`` holds its lock (never while writing to a client), and every change
to it (a sync that found something, a STORE, an EXPUNGE) bumps its
``generation``; a session whose last look is older diffs its own view (UIDs,
flags) against the shared one. A sync by any session therefore never hides a
change from another.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from imapha.imap.codes import ResponseCode
from imapha.imap.responses import Response, Status, UntaggedData, UntaggedStatus
from imapha.imap.tokens import Atom, PList, SequenceSet
from imapha.maildir import keywords as kw
from imapha.maildir.folders import FolderError
from imapha.maildir.mailbox import Mailbox, Message, MessageExpunged, StoreMode
from imapha.server.errors import bad
from imapha.server.message import ParsedMessage

__all__ = ["SYSTEM_FLAGS", "FolderCache", "Selected", "SharedFolder", "flag_list"]

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def flag_list(flags: Iterable[str], keywords: Iterable[str] = ()) -> PList:
    ordered = [f for f in SYSTEM_FLAGS if f in set(flags)] + sorted(keywords)
    return PList(tuple(Atom(f) for f in ordered))


class SharedFolder:
    """One folder's store view, shared by this process's sessions (see module doc)."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.lock = threading.RLock()
        self.generation = 0
        self.users = 0

    def sync(self) -> None:
        """Sync (lock held by the caller); a change bumps the generation."""
        result = self.mailbox.sync()
        if not result.empty:
            self.generation += 1

    def recent_floor(self) -> int:
        """The lowest UID no session was shown as recent (lock held by the caller)."""
        return self.mailbox.index.recent_floor(self.mailbox.uid_validity)

    def claim_recent(self, uids: Iterable[int]) -> set[int]:
        """The UIDs of ``uids`` no session has had as recent: from now on the
        caller's (RFC 3501 §2.3.2: one session per message). Lock held by the caller."""
        floor = self.recent_floor()
        mine = {u for u in uids if u >= floor}
        if mine:
            self.mailbox.index.set_recent_floor(self.mailbox.uid_validity, max(mine) + 1)
        return mine


class FolderCache:
    """Path -> :class:`SharedFolder` while any session has it selected, and the
    ``keep`` most recently closed ones after that (least recently used first out).

    A kept view is an in-memory index: the next SELECT syncs it (a few ``stat``
    calls when nothing changed, a diff otherwise) instead of scanning the folder
    and building every message again. It is never trusted without that sync.
    """

    def __init__(self, keep: int = 16) -> None:
        self._lock = threading.Lock()
        self._folders: dict[Path, SharedFolder] = {}
        self._idle: OrderedDict[Path, SharedFolder] = OrderedDict()
        self.keep = keep

    def open(self, path: Path, make: Callable[[], Mailbox]) -> SharedFolder:
        with self._lock:
            folder = self._folders.get(path) or self._idle.pop(path, None)
            if folder is None:
                folder = SharedFolder(make())
            self._folders[path] = folder
            folder.users += 1
            return folder

    def get(self, path: Path) -> SharedFolder | None:
        """The shared view of ``path`` if some session has it selected (or had)."""
        with self._lock:
            return self._folders.get(path) or self._idle.get(path)

    def close(self, folder: SharedFolder) -> None:
        with self._lock:
            folder.users -= 1
            path = folder.mailbox.path
            if folder.users <= 0 and self._folders.get(path) is folder:
                del self._folders[path]
                with folder.lock:  # the last session left: keep what it indexed
                    folder.mailbox.save_index(force=True)
                if self.keep > 0:
                    self._idle[path] = folder
                    while len(self._idle) > self.keep:
                        self._idle.popitem(last=False)

    def forget(self) -> None:
        """Drop the kept views (after a DELETE or RENAME: memory, not correctness)."""
        with self._lock:
            self._idle.clear()

    def __len__(self) -> int:
        """Folders some session has selected now."""
        return len(self._folders)


class Selected:
    """See the module docstring."""

    def __init__(self, name: str, folder: SharedFolder, *, read_only: bool,
                 cache: FolderCache | None = None) -> None:
        self.name = name
        self.folder = folder
        self.cache = cache
        self.read_only = read_only
        self.seen_generation = -1
        self.uids: list[int] = []
        self.pending: set[int] = set()
        self.known: dict[int, tuple[frozenset[str], frozenset[str]]] = {}
        #: UIDs this session has as \\Recent (see ``SharedFolder.claim_recent``).
        self.recent: set[int] = set()
        self.uid_validity = 0
        #: The folder was deleted or its UIDVALIDITY changed under us: the session
        #: cannot go on with this view (RFC 3501 §2.3.1.1) and ends with BYE.
        self.invalidated = False

    @property
    def mailbox(self) -> Mailbox:
        """The shared store view: hold ``self.folder.lock`` while using it."""
        return self.folder.mailbox

    @property
    def path(self) -> Path:
        return self.mailbox.path

    def close(self) -> None:
        """The session leaves the folder (CLOSE, SELECT elsewhere, LOGOUT, lost)."""
        if self.cache is not None:
            self.cache.close(self.folder)
            self.cache = None

    # -- the store, under the folder's lock ---------------------------------------------
    def store(self, uid: int, flags: Iterable[str], keywords: Iterable[str],
              mode: StoreMode) -> Message:
        with self.folder.lock:
            msg = self.mailbox.store(uid, flags, keywords, mode)
            self.folder.generation += 1
            self.note_flags(msg)
            return msg

    def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        with self.folder.lock:
            gone = self.mailbox.expunge(uids)
            if gone:
                self.folder.generation += 1
            return gone

    def copy(self, uids: Iterable[int], dest: Mailbox) -> list[tuple[int, int]]:
        with self.folder.lock:
            return self.mailbox.copy(uids, dest)

    def read(self, uid: int) -> bytes:
        with self.folder.lock:
            return self.mailbox.read(uid)

    def internaldate(self, uid: int) -> float:
        with self.folder.lock:
            return self.mailbox.internaldate(uid)

    def message_info(self, uid: int) -> tuple[int, ParsedMessage]:
        """RFC822.SIZE (CRLF line ends) and a parsed message holding at least the
        header block: from the folder's index when it matches the file, else read
        from the file and added to the index. ``MessageExpunged`` if gone."""
        box = self.mailbox
        with self.folder.lock:
            entry = box.cached(uid)
            if entry is not None:
                return entry.crlf_size, ParsedMessage(entry.header, header_only=True)
            data = box.read(uid)
        parsed = ParsedMessage(data)
        root = parsed.root
        size = len(parsed.data)
        with self.folder.lock, contextlib.suppress(MessageExpunged):
            box.remember(uid, size, parsed.data[root.start : root.body_start])
        return size, parsed

    def save_index(self) -> None:
        """Write the folder's index if enough was added to it."""
        with self.folder.lock:
            self.mailbox.save_index()

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
        with self.folder.lock:
            self.folder.sync()
            messages = self.mailbox.messages()
            self.seen_generation = self.folder.generation
            self.uid_validity = self.mailbox.uid_validity
            next_uid = self.mailbox.next_uid
            self.recent = self._take_recent([m.uid for m in messages])
        self.uids = [m.uid for m in messages]
        self.known = {m.uid: (m.flags, m.keywords) for m in messages}
        out: list[Response] = self.flags_response()[:1]
        out.append(UntaggedData("EXISTS", len(self.uids)))
        out.append(UntaggedData("RECENT", len(self.recent)))
        unseen = next((i for i, m in enumerate(messages, 1) if "\\Seen" not in m.flags), None)
        if unseen is not None:
            out.append(UntaggedStatus(Status.OK, f"First unseen: {unseen}",
                                      ResponseCode("UNSEEN", str(unseen))))
        out.append(UntaggedStatus(Status.OK, "UIDs valid",
                                  ResponseCode("UIDVALIDITY", str(self.uid_validity))))
        out.append(UntaggedStatus(Status.OK, "Predicted next UID",
                                  ResponseCode("UIDNEXT", str(next_uid))))
        out.append(self.flags_response()[1])
        return out

    def _take_recent(self, uids: list[int]) -> set[int]:
        """Recent for this session among new ``uids`` (folder lock held): claimed
        when read-write; EXAMINE shows them without taking them (RFC 3501 §6.3.2)."""
        if self.read_only:
            floor = self.folder.recent_floor()
            return {u for u in uids if u >= floor}
        return self.folder.claim_recent(uids)

    def flags_with_recent(self, uid: int, flags: frozenset[str],
                          keywords: frozenset[str]) -> tuple[str, ...]:
        """What FLAGS reports: system flags, ``\\Recent`` if ours, keywords."""
        system = tuple(f for f in SYSTEM_FLAGS if f in flags)
        if uid in self.recent:
            system += ("\\Recent",)
        return system + tuple(sorted(keywords))

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
            with self.folder.lock:
                return self.mailbox.get(uid)
        except MessageExpunged:
            return None

    def messages_of(self, uids: list[int]) -> list[Message | None]:
        """``message`` for many UIDs under one hold of the folder's lock."""
        pending = self.pending
        with self.folder.lock:
            view = self.mailbox.view
            return [None if u in pending else view.get(u) for u in uids]

    def flags_of(self, uid: int) -> tuple[frozenset[str], frozenset[str]]:
        msg = self.message(uid)
        if msg is not None:
            return msg.flags, msg.keywords
        return self.known.get(uid, (frozenset(), frozenset()))

    def flag_list(self, uid: int, msg: Message) -> PList:
        return PList(tuple(Atom(f) for f in self.flags_with_recent(uid, msg.flags,
                                                                   msg.keywords)))

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
            self.recent.discard(uid)
        gone = self.pending
        self.uids = [u for u in self.uids if u not in gone]
        self.pending = set()
        return out

    def refresh(self, *, allow_expunge: bool) -> list[Response]:
        """Sync with the store and return what to announce (see the module doc)."""
        folder = self.folder
        with folder.lock:
            try:
                folder.sync()
            except (FileNotFoundError, FolderError):
                self.invalidated = True
                return []
            if self.mailbox.uid_validity != self.uid_validity:
                # The list was rebuilt: every UID we gave is void (RFC 3501 §2.3.1.1).
                self.invalidated = True
                return []
            view: dict[int, Message] | None = None
            if folder.generation != self.seen_generation:
                view = {m.uid: m for m in self.mailbox.messages()}
                self.seen_generation = folder.generation
                last = self.uids[-1] if self.uids else 0
                self.recent |= self._take_recent([u for u in view if u > last])
        out: list[Response] = []
        if view is not None:
            self.mark_expunged(u for u in self.uids if u not in view)
            for seq, uid in enumerate(self.uids, 1):
                msg = view.get(uid)
                if msg is None or uid in self.pending:
                    continue
                if self.known.get(uid) != (msg.flags, msg.keywords):
                    self.note_flags(msg)
                    out.append(UntaggedData("FETCH", seq, (PList((
                        Atom("FLAGS"), self.flag_list(uid, msg))),)))
        if allow_expunge:
            out.extend(self.announce_expunges())
        if view is not None:
            last = self.uids[-1] if self.uids else 0
            added = sorted(uid for uid in view if uid > last)
            if added:
                for uid in added:
                    self.uids.append(uid)
                    self.note_flags(view[uid])
                out.append(UntaggedData("EXISTS", len(self.uids)))
        return out
