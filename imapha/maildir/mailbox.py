"""One Maildir folder as the IMAP server sees it: UIDs, flags, keywords, changes.

Theory of operation
-------------------
The folder is shared: other ``Mailbox`` objects (in this process, another
process, another host over NFS), Dovecot and MTAs change it at any time. The
only coordination is ``dovecot-uidlist.lock``; everything else is built so a
writer without the lock cannot hurt a reader:

* **UIDs** are assigned only under the lock, after re-reading the uidlist and
  (in ``sync``) rescanning ``new/`` and ``cur/``. ``NEXTUID`` never goes down.
  An unreadable list is replaced with a new UIDVALIDITY, never reused numbers.
* **A scan** lists ``new/`` then ``cur/`` (a file moving from one to the other
  in between is seen in ``cur/``) and is repeated while either directory's
  mtime changed during it: an unlocked ``readdir`` may miss a file renamed
  mid-scan. A message counts as expunged only when a scan under the lock
  misses it; then its record is dropped from the list.
* **Flags** are changed by renaming within ``cur/`` with no lock (as Dovecot
  does). A rename failing with ``ENOENT`` means someone renamed or expunged the
  file since we looked: look the base name up again and retry, a bounded
  number of times; not found means expunged.
* **Contents and mtime never change**: the mtime is the INTERNALDATE, set once
  on APPEND. Size comes from the ``,S=`` field of the name when present.
* **The view** (``messages``) is what the caller last saw. ``sync`` returns
  what changed since: added messages, expunged UIDs, flag changes, so the IMAP
  layer can send EXISTS/EXPUNGE/FETCH. Unchanged directory and uidlist stats
  make ``sync`` a few ``stat`` calls (Dovecot-style "dirty" rule: an mtime in
  the last two seconds is not trusted, for coarse NFS timestamps).
"""

from __future__ import annotations

import contextlib
import errno
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from functools import partial
from pathlib import Path

from imapha.maildir import index as ix
from imapha.maildir import keywords as kw
from imapha.maildir import uidlist as ul
from imapha.maildir.deliver import deliver
from imapha.maildir.folders import FolderError, ensure_maildir, is_real_dir
from imapha.maildir.fsops import DEFAULT_LOCK_TIMEOUT, DotLock, FileSystem, Perms
from imapha.maildir.names import (
    FLAG_LETTERS,
    KEYWORD_LETTERS,
    LETTER_FLAGS,
    UniqueNames,
    build_name,
    parse_name,
    size_field,
)
from imapha.maildir.scan import Scanner, Stamp

__all__ = ["Mailbox", "Message", "MessageExpunged", "StoreMode", "SyncResult"]

#: Temporary files of ours a killed process may leave in the folder's directory.
LITTER_PREFIXES = (ul.FILENAME, ul.FILENAME + ".lock", kw.FILENAME, kw.FILENAME + ".lock",
                   ix.FILENAME)
#: Re-lookups of a base name after ENOENT before calling the message expunged.
LOOKUP_ATTEMPTS = 5
#: An mtime this recent may hide a same-tick change (coarse timestamps): rescan.
DIRTY_WINDOW = 2.0


class MessageExpunged(LookupError):
    """The message is gone (expunged by us or someone else)."""


class StoreMode(Enum):
    REPLACE = "FLAGS"
    ADD = "+FLAGS"
    REMOVE = "-FLAGS"


@dataclass(frozen=True)
class Message:
    uid: int
    base: str
    subdir: str  # "cur" or "new"
    filename: str
    flags: frozenset[str]  # IMAP system flags, e.g. \Seen
    keywords: frozenset[str]
    size: int
    other_letters: str = ""  # letters we keep but do not map (P, unknown keyword indexes)

    @property
    def relpath(self) -> str:
        return f"{self.subdir}/{self.filename}"


@dataclass(frozen=True)
class SyncResult:
    uid_validity: int
    next_uid: int
    added: tuple[Message, ...] = ()
    expunged: tuple[int, ...] = ()
    changed: tuple[Message, ...] = ()
    uid_validity_changed: bool = False

    @property
    def empty(self) -> bool:
        return not (self.added or self.expunged or self.changed or self.uid_validity_changed)


class Mailbox:
    """A Maildir folder (``path`` holds ``cur``, ``new``, ``tmp``)."""

    def __init__(
        self,
        path: Path,
        *,
        fs: FileSystem | None = None,
        names: UniqueNames | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        create: bool = False,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.fs = fs or FileSystem()
        self.names = names or UniqueNames(host=self.fs.host)
        self.lock_timeout = lock_timeout
        self.read_only = read_only
        self.perms = Perms.from_dir(self.path)
        if create:
            ensure_maildir(self.fs, self.path, self.perms,
                           folder=self.path.name.startswith("."))
        for sub in ("cur", "new", "tmp"):
            if not is_real_dir(self.path / sub):
                raise FolderError(f"{self.path / sub} is missing or not a real directory")
        self.perms = Perms.from_dir(self.path)
        self._view: dict[int, Message] = {}
        self._uid_validity = 0
        self._next_uid = 1
        self._stamps: Stamp | None = None
        self._sizes: dict[str, int] = {}  # base -> size (contents never change)
        self._mtimes: dict[str, float] = {}  # base -> INTERNALDATE
        self._mtimes_ns: dict[str, int] = {}  # base -> the same in ns (the index's key)
        self._index: ix.MessageIndex | None = None
        self._letter_cache: dict[str, tuple[frozenset[str], frozenset[str], str]] = {}
        self._keywords = kw.Keywords({})
        self._keywords_epoch = 0  # bumped when the keyword table changes
        # What the last _apply was built from: an unchanged scan and list skip it.
        self._applied: tuple[ul.UidList, dict[str, tuple[str, str]], int] | None = None
        self._reader = ul.Reader(self.fs, self.path)
        self.stats = {"scans": 0, "locked_syncs": 0, "rescans": 0}
        self._scanner = Scanner(self.fs, self.path, (ul.FILENAME, kw.FILENAME), self.stats)

    # -- queries -------------------------------------------------------------
    @property
    def uid_validity(self) -> int:
        return self._uid_validity

    @property
    def next_uid(self) -> int:
        return self._next_uid

    def messages(self) -> list[Message]:
        """The view as of the last ``sync``, ordered by UID."""
        return [self._view[uid] for uid in sorted(self._view)]

    @property
    def view(self) -> Mapping[int, Message]:
        """UID -> message as of the last ``sync`` (read-only; do not keep it)."""
        return self._view

    def get(self, uid: int) -> Message:
        try:
            return self._view[uid]
        except KeyError:
            raise MessageExpunged(uid) from None

    def read(self, uid: int) -> bytes:
        """The message's bytes; follows a concurrent rename, ``MessageExpunged`` if gone."""
        msg = self.get(uid)
        try:
            return self.fs.follow(self._path_of(msg), self.fs.read_file,
                                  partial(self._locate, msg.base))
        except FileNotFoundError:
            raise MessageExpunged(uid) from None

    def _path_of(self, msg: Message) -> Path:
        return self.path / msg.subdir / msg.filename

    def _locate(self, base: str) -> Path | None:
        """Where the file of ``base`` is now (another writer may have renamed it)."""
        found = self._lookup(base)
        return None if found is None else self.path / found[0] / found[1]

    # -- sync ------------------------------------------------------------------
    def _scan(self) -> dict[str, tuple[str, str]]:
        return self._scanner.scan()

    def _lookup(self, base: str) -> tuple[str, str] | None:
        return self._scanner.lookup(base)

    def _size(self, base: str, subdir: str, filename: str) -> int | None:
        size = self._sizes.get(base)
        if size is None:
            size = size_field(base)
            if size is None:
                try:
                    size = self.fs.lstat(self.path / subdir / filename).st_size
                except FileNotFoundError:
                    return None
            self._sizes[base] = size
        return size

    def internaldate(self, uid: int) -> float:
        """INTERNALDATE: the file's mtime, set once at delivery/APPEND and never
        changed, so it is read on first use and cached."""
        msg = self.get(uid)
        cached = self._mtimes.get(msg.base)
        if cached is not None:
            return cached
        try:
            st = self.fs.follow(self._path_of(msg), self.fs.lstat,
                                partial(self._locate, msg.base))
        except FileNotFoundError:
            raise MessageExpunged(uid) from None
        self._mtimes[msg.base] = st.st_mtime
        self._mtimes_ns[msg.base] = st.st_mtime_ns
        return st.st_mtime

    def mtime_ns(self, uid: int) -> int:
        """The file's mtime in ns (as ``internaldate``, read once and cached)."""
        msg = self.get(uid)
        if msg.base not in self._mtimes_ns:
            self.internaldate(uid)
        return self._mtimes_ns[msg.base]

    @property
    def index(self) -> ix.MessageIndex:
        """The folder's ``imapha.index`` (see :mod:`imapha.maildir.index`)."""
        if self._index is None:
            self._index = ix.MessageIndex(self.fs, self.path, self.perms)
        return self._index

    def cached(self, uid: int) -> ix.Entry | None:
        """The index entry of a message, if it matches the file's size and mtime."""
        msg = self.get(uid)
        return self.index.get(msg.base, msg.size, self.mtime_ns(uid))

    def remember(self, uid: int, crlf_size: int, header: bytes) -> None:
        """Add what reading the message told to the index (saved later)."""
        msg = self.get(uid)
        self.index.put(msg.base, ix.Entry(msg.size, self.mtime_ns(uid), crlf_size, header))

    def save_index(self, *, force: bool = False) -> None:
        """Write the index if enough was added (or anything, with ``force``)."""
        if self._index is None:
            return
        live = (m.base for m in self._view.values())
        if force:
            self._index.save(live)
        else:
            self._index.save_if_worth_it(live)

    def _message(self, uid: int, base: str, subdir: str, filename: str) -> Message | None:
        size = self._size(base, subdir, filename)
        if size is None:
            return None
        _, sep, info = filename.partition(":")
        letters = info[2:] if sep and info.startswith("2,") else ""
        decoded = self._letter_cache.get(letters)
        if decoded is None:
            decoded = self._letter_cache[letters] = self._decode_letters(letters)
        return Message(uid, base, subdir, filename, decoded[0], decoded[1], size, decoded[2])

    def _decode_letters(self, letters: str) -> tuple[frozenset[str], frozenset[str], str]:
        flags: set[str] = set()
        keywords: set[str] = set()
        other = []
        for letter in letters:
            if letter in LETTER_FLAGS:
                flags.add(LETTER_FLAGS[letter])
            elif letter in KEYWORD_LETTERS and (
                    kname := self._keywords.name(ord(letter) - ord("a"))) is not None:
                keywords.add(kname)
            else:
                other.append(letter)
        return frozenset(flags), frozenset(keywords), "".join(sorted(other))

    def _set_keywords(self, table: kw.Keywords) -> None:
        if table != self._keywords:
            self._keywords = table
            self._keywords_epoch += 1
            self._letter_cache.clear()

    def _lock(self) -> DotLock:
        return self.fs.dotlock(self.path / ul.FILENAME, timeout=self.lock_timeout,
                               perms=self.perms)

    def sync(self) -> SyncResult:
        """Bring the view up to date; see the module doc for the rules."""
        stamps = self._scanner.stamp()
        if stamps == self._stamps and not Scanner.dirty(stamps, DIRTY_WINDOW):
            return SyncResult(self._uid_validity, self._next_uid)
        self._set_keywords(kw.read(self.fs, self.path))
        files = self._scan()
        try:
            current = self._reader.read()
        except ul.UidListCorrupt:
            current = None
        listed = current.by_base() if current is not None else {}
        needs_lock = (
            current is None
            or (not self.read_only and any(sub == "new" for sub, _ in files.values()))
            or any(base not in files for base in listed)
            or any(base not in listed for base in files)
        )
        if needs_lock and not self.read_only:
            current, files = self._locked_sync()
        if current is None:
            # Read-only and nothing on disk to trust: an empty view.
            return self._apply(ul.UidList(self._uid_validity or 1, 1), {}, stamps)
        return self._apply(current, files, stamps)

    def _locked_sync(self) -> tuple[ul.UidList, dict[str, tuple[str, str]]]:
        with self._lock() as lock:
            return self._sync_under(lock)

    def _rebuild_locked(self, lock: DotLock) -> ul.UidList:
        return self._sync_under(lock)[0]

    def _sync_under(self, lock: DotLock) -> tuple[ul.UidList, dict[str, tuple[str, str]]]:
        self.stats["locked_syncs"] += 1
        try:
            current = self._reader.read()
        except ul.UidListCorrupt:
            current = None
        files = self._scan()
        files = self._move_new_to_cur(files)
        lock.refresh()
        rewrite = False
        if current is None:
            current = self._fresh_uidlist()
            rewrite = True
        # Confirmed under the lock (by a stable scan): records without a file are
        # expunged.
        kept = [rec for rec in current.records if rec.base in files or not self._scanner.stable]
        if len(kept) != len(current.records):
            current = current.with_records(kept)
            rewrite = True
        unlisted = sorted(b for b in files if not current.has_base(b))
        added: list[ul.UidRecord] = []
        if unlisted:
            current, added = current.assign(unlisted)
        if rewrite or (added and not self._reader.ends_with_newline):
            lock.verify()
            ul.write(self.fs, self.path, current, self.perms)
        elif added:
            lock.verify()
            ul.append(self.fs, self.path, added)
        self.fs.remove_litter(self.path, LITTER_PREFIXES)
        return current, files

    def _fresh_uidlist(self) -> ul.UidList:
        """A new, empty list whose UIDVALIDITY is above any this folder had that we
        can know of: our view's, and a damaged list's own ``V`` field."""
        validity = max(int(time.time()), self._uid_validity + 1, self._damaged_validity() + 1)
        return ul.UidList(validity, 1)

    def _damaged_validity(self) -> int:
        try:
            raw = self.fs.read_file(self.path / ul.FILENAME)
        except OSError:
            return 0
        found = re.match(rb"3 V(\d{1,10}) ", raw)
        return int(found.group(1)) if found else 0

    def _move_new_to_cur(self, files: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        out = dict(files)
        for base, (subdir, filename) in files.items():
            if subdir != "new":
                continue
            name = parse_name(filename)
            target = name.filename if name.letters is not None else build_name(base, "")
            try:
                self.fs.retry_estale(partial(self.fs.rename, self.path / "new" / filename,
                                             self.path / "cur" / target))
                out[base] = ("cur", target)
            except FileNotFoundError:
                # Moved by someone else meanwhile; find where it went.
                found = self._lookup(base)
                if found is None:
                    del out[base]
                else:
                    out[base] = found
        return out

    def _apply(self, current: ul.UidList, files: dict[str, tuple[str, str]],
               stamps: Stamp) -> SyncResult:
        validity_changed = bool(self._uid_validity) and current.uid_validity != self._uid_validity
        applied = self._applied
        self._applied = (current, files, self._keywords_epoch) if self._scanner.stable else None
        if (not validity_changed and applied is not None and applied[0] is current
                and applied[2] == self._keywords_epoch and applied[1] == files):
            # The same list object (the reader parsed nothing new), the same file
            # names, the same keyword table: the view is what it was.
            self._stamps = stamps
            return SyncResult(current.uid_validity, current.next_uid)
        old = {} if validity_changed else self._view
        # A message whose record and file name are unchanged is the same Message
        # (contents never change; its letters mean the same while the table does).
        reuse = old if applied is not None and applied[2] == self._keywords_epoch else {}
        view: dict[int, Message] = {}
        for rec in current.records:
            where = files.get(rec.base)
            if where is None:
                continue
            had = reuse.get(rec.uid)
            if (had is not None and had.base == rec.base and had.filename == where[1]
                    and had.subdir == where[0]):
                view[rec.uid] = had
                continue
            msg = self._message(rec.uid, rec.base, *where)
            if msg is not None:
                view[rec.uid] = msg
        if not self._scanner.stable:
            # An unstable listing may have missed a file being renamed: keep what we
            # had rather than report an expunge we cannot prove.
            for uid, msg in old.items():
                if uid not in view and current.has_base(msg.base):
                    view[uid] = msg
        added = tuple(m for uid, m in sorted(view.items()) if uid not in old)
        expunged = tuple(sorted(uid for uid in old if uid not in view))
        changed = tuple(
            m for uid, m in sorted(view.items())
            if uid in old and m is not old[uid] and (m.flags, m.keywords, m.other_letters)
            != (old[uid].flags, old[uid].keywords, old[uid].other_letters)
        )
        if validity_changed:
            expunged = tuple(sorted(self._view))
        self._view = view
        self._uid_validity = current.uid_validity
        self._next_uid = current.next_uid
        # Stamps taken before the scan: a change during it shows up next time.
        self._stamps = stamps
        if len(self._sizes) > 2 * len(view) + 64:
            live = {m.base for m in view.values()}
            self._sizes = {b: i for b, i in self._sizes.items() if b in live}
            self._mtimes = {b: i for b, i in self._mtimes.items() if b in live}
            self._mtimes_ns = {b: n for b, n in self._mtimes_ns.items() if b in live}
        return SyncResult(current.uid_validity, current.next_uid, added, expunged, changed,
                          validity_changed)

    # -- flags -------------------------------------------------------------------
    def _letters(self, flags: Iterable[str], keywords: Iterable[str], other: str) -> str:
        letters = set(other)
        for flag in flags:
            letter = FLAG_LETTERS.get(flag)
            if letter is None:
                raise ValueError(f"not a storable system flag: {flag!r}")
            letters.add(letter)
        names = list(keywords)
        if names:
            self._set_keywords(kw.add(self.fs, self.path, names, self.perms, self.lock_timeout))
            found = self._keywords.letters_for(names)
            assert found is not None
            letters.update(found)
        return "".join(sorted(letters))

    def store(self, uid: int, flags: Iterable[str] = (), keywords: Iterable[str] = (),
              mode: StoreMode = StoreMode.REPLACE) -> Message:
        """Change a message's flags by renaming its file; returns it as now on disk."""
        flags, keywords = frozenset(flags), frozenset(keywords)
        msg = self.get(uid)
        self._applied = None  # the view now differs from the last scan
        for _ in range(LOOKUP_ATTEMPTS):
            if mode is StoreMode.REPLACE:
                new_flags, new_kw = flags, keywords
            elif mode is StoreMode.ADD:
                new_flags, new_kw = msg.flags | flags, msg.keywords | keywords
            else:
                new_flags, new_kw = msg.flags - flags, msg.keywords - keywords
            letters = self._letters(new_flags, new_kw, msg.other_letters)
            target = build_name(msg.base, letters)
            if (msg.subdir, msg.filename) == ("cur", target):
                return msg
            try:
                self.fs.retry_estale(partial(
                    self.fs.rename, self.path / msg.subdir / msg.filename,
                    self.path / "cur" / target))
            except FileNotFoundError:
                found = self._lookup(msg.base)
                if found is None:
                    self._view.pop(uid, None)
                    raise MessageExpunged(uid) from None
                fresh = self._message(uid, msg.base, *found)
                if fresh is None:
                    continue
                msg = fresh
                continue
            msg = replace(msg, subdir="cur", filename=target, flags=new_flags,
                          keywords=new_kw)
            self._view[uid] = msg
            return msg
        raise OSError(errno.EAGAIN, f"message {uid} kept moving while its flags were set")

    # -- expunge -------------------------------------------------------------------
    def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        """Remove messages (default: every ``\\Deleted`` one) under the lock.
        Returns the UIDs removed from the view, including ones someone else removed."""
        if uids is None:
            targets = [m for m in self.messages() if "\\Deleted" in m.flags]
        else:
            targets = [self._view[u] for u in sorted(set(uids)) if u in self._view]
        if not targets:
            return []
        self._applied = None
        gone: list[int] = []
        with self._lock() as lock:
            for msg in targets:
                with contextlib.suppress(FileNotFoundError):  # already gone: fine
                    self.fs.follow(self._path_of(msg), self.fs.unlink,
                                   partial(self._locate, msg.base))
                gone.append(msg.uid)
                lock.refresh()
            self.fs.fsync_dir(self.path / "cur")
            try:
                current = self._reader.read()
            except ul.UidListCorrupt:
                current = None
            if current is not None:
                bases = {m.base for m in targets}
                lock.verify()
                ul.write(self.fs, self.path,
                         current.with_records(r for r in current if r.base not in bases),
                         self.perms)
        for uid in gone:
            self._view.pop(uid, None)
        return gone

    # -- append / copy / move -----------------------------------------------------
    def lock(self) -> DotLock:
        """The folder's ``dovecot-uidlist.lock`` (not yet acquired; use ``with``)."""
        return self._lock()

    def assign_uids(self, bases: Sequence[str], held: DotLock | None = None) -> list[int]:
        """UIDs for base names we just created, under the lock (``held``, or taken
        here), after re-reading the list. Bases already listed keep their UID."""
        if held is None:
            with self._lock() as lock:
                return self.assign_uids(bases, lock)
        try:
            current = self._reader.read()
        except ul.UidListCorrupt:
            current = None
        if current is None:
            # No trustworthy list: build one from a full locked scan (lists ours too).
            current = self._rebuild_locked(held)
        else:
            current, added = current.assign(bases)
            held.verify()
            if self._reader.ends_with_newline:
                ul.append(self.fs, self.path, added)
            else:
                ul.write(self.fs, self.path, current, self.perms)
        by_base = current.by_base()
        return [by_base[b].uid for b in bases]

    def append(self, data: bytes, flags: Iterable[str] = (), keywords: Iterable[str] = (),
               internaldate: float | None = None) -> int:
        """Store a new message (IMAP APPEND); returns its UID (for APPENDUID)."""
        if self.read_only:
            raise PermissionError(errno.EROFS, "mailbox opened read-only")
        letters = self._letters(flags, keywords, "")
        mtime = time.time() if internaldate is None else internaldate
        filename = deliver(self.path, data, fs=self.fs, names=self.names, perms=self.perms,
                           mtime=mtime, letters=letters)
        return self.assign_uids([parse_name(filename).base])[0]

    def copy(self, uids: Iterable[int], dest: Mailbox) -> list[tuple[int, int]]:
        """Copy messages into ``dest`` (hard links where possible; contents and
        INTERNALDATE kept). Returns (source UID, new UID) pairs; expunged ones skip."""
        created: list[tuple[int, str]] = []
        for uid in sorted(set(uids)):
            if uid not in self._view:
                continue
            msg = self._view[uid]
            letters = dest._letters(msg.flags, msg.keywords, msg.other_letters)
            base = dest.names.next(size=msg.size)
            target = dest.path / "cur" / build_name(base, letters)
            if not self._link_or_copy(msg, target, dest.perms):
                continue
            created.append((uid, base))
        if not created:
            return []
        dest.fs.fsync_dir(dest.path / "cur")
        new_uids = dest.assign_uids([b for _, b in created])
        return [(src, new) for (src, _), new in zip(created, new_uids, strict=True)]

    def _link_or_copy(self, msg: Message, target: Path, perms: Perms) -> bool:
        """Hard-link the message's file as ``target`` (a copy where links cannot
        cross); ``False`` when the message is gone."""
        try:
            self.fs.follow(self._path_of(msg), partial(self.fs.safe_link, dst=target),
                           partial(self._locate, msg.base))
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
        try:
            data = self.read(msg.uid)
            mtime = self.internaldate(msg.uid)
        except MessageExpunged:
            return False
        self.fs.write_new(target, data, perms, mtime=mtime)
        return True

    def move(self, uids: Iterable[int], dest: Mailbox) -> list[tuple[int, int]]:
        """Copy, then expunge the copied sources (RFC 6851 semantics)."""
        pairs = self.copy(uids, dest)
        self.expunge(src for src, _ in pairs)
        return pairs

