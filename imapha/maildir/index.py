"""``imapha.index``: a per-folder cache of what reading a message file tells.

Theory of operation
-------------------
Answering ``FETCH 1:* BODY.PEEK[HEADER]``, ``ENVELOPE``, ``RFC822.SIZE`` or
``SEARCH SUBJECT`` from the files means reading and parsing every one of
them. Dovecot keeps ``dovecot.index.cache`` for that; this is ours, beside
``dovecot-uidlist``, in a file Dovecot ignores (Maildir++ folders are the
entries whose names start with a dot; any other file is not its business).

* **A cache, never the truth.** An entry is keyed by the message's base name
  (unique, and a message's contents never change, Maildir's rule) and checked
  against the file's size and mtime (in ns) before use; anything that does not
  match, or a file that cannot be parsed, is ignored and rebuilt from the
  message file. UIDs are not stored: the uidlist and the file names decide
  which messages exist, the cache only what one contains.
* **Built lazily**: an entry is added when a message is read for a reason
  that needs it; ``save`` writes the whole table (only the live base names)
  by temp file + rename, so a reader sees the old file or the new one.
* **Two writers** (two backends on one NFS folder): last writer wins. Both
  tables are correct for what they hold; the loser's entries are rebuilt when
  needed. No lock is taken.
* **Versioned**: the first line is ``imapha-index <version>``; another version
  is ignored (and replaced at the next save).

The file also keeps the folder's **recent floor** for ``\\Recent`` (see
``imapha.server.selected``): the lowest UID no session has yet been shown as
recent, with the UIDVALIDITY it belongs to (a floor of another UIDVALIDITY
counts as none).

Per entry: file size, mtime (ns), the size with CRLF line ends (RFC822.SIZE),
and the header block of the message (CRLF line ends, blank line included):
everything ENVELOPE, ``BODY[HEADER]``, ``HEADER.FIELDS`` and header SEARCH
keys read. File format: the version line, then one JSON object per line,
``[base, size, mtime_ns, crlf_size, header]`` with the header as Latin-1 text,
and one ``{"uid_validity": V, "recent_floor": F}`` object.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from imapha.maildir.fsops import FileSystem, Perms

__all__ = ["FILENAME", "VERSION", "Entry", "MessageIndex"]

log = logging.getLogger(__name__)

FILENAME = "imapha.index"
VERSION = 1
_MAGIC = f"imapha-index {VERSION}\n".encode()


@dataclass(frozen=True, slots=True)
class Entry:
    size: int  # the file's size
    mtime_ns: int  # the file's mtime (INTERNALDATE), ns
    crlf_size: int  # RFC822.SIZE: the size with CRLF line ends
    header: bytes  # the header block, CRLF line ends, blank line included


def parse(data: bytes) -> dict[str, Entry]:
    """The table in ``data``; empty for another version or a damaged file
    (a damaged line alone is skipped: every entry is checked before use anyway)."""
    if not data.startswith(_MAGIC):
        return {}
    table: dict[str, Entry] = {}
    for line in data[len(_MAGIC):].split(b"\n"):
        if not line:
            continue
        try:
            base, size, mtime_ns, crlf_size, header = json.loads(line)
            entry = Entry(int(size), int(mtime_ns), int(crlf_size), header.encode("latin-1"))
        except (ValueError, TypeError, AttributeError, UnicodeEncodeError):
            continue
        if isinstance(base, str) and base and "/" not in base:
            table[base] = entry
    return table


def parse_recent(data: bytes) -> tuple[int, int] | None:
    """(UIDVALIDITY, recent floor) kept in ``data``, if any."""
    if not data.startswith(_MAGIC):
        return None
    for line in data[len(_MAGIC):].split(b"\n"):
        if line.startswith(b"{"):
            try:
                meta = json.loads(line)
                return int(meta["uid_validity"]), int(meta["recent_floor"])
            except (ValueError, TypeError, KeyError):
                return None
    return None


def render(table: dict[str, Entry], recent: tuple[int, int] | None = None) -> bytes:
    lines = [_MAGIC]
    if recent is not None:
        lines.append(json.dumps({"uid_validity": recent[0],
                                 "recent_floor": recent[1]}).encode() + b"\n")
    for base, e in table.items():
        lines.append(json.dumps([base, e.size, e.mtime_ns, e.crlf_size,
                                 e.header.decode("latin-1")]).encode() + b"\n")
    return b"".join(lines)


class MessageIndex:
    """One folder's index, loaded on first use; not thread-safe (the owner's lock)."""

    #: Entries added since the last save before ``save_if_worth_it`` writes.
    SAVE_AFTER = 32

    def __init__(self, fs: FileSystem, maildir: Path, perms: Perms) -> None:
        self.fs = fs
        self.path = maildir / FILENAME
        self.perms = perms
        self._table: dict[str, Entry] | None = None
        self._recent: tuple[int, int] | None = None
        self.dirty = 0
        self.stats = {"hits": 0, "misses": 0, "saves": 0}

    def _load(self) -> dict[str, Entry]:
        if self._table is None:
            try:
                data = self.fs.retry_estale(lambda: self.fs.read_file(self.path))
                self._table = parse(data)
                self._recent = parse_recent(data)
            except FileNotFoundError:
                self._table = {}
            except OSError as exc:
                log.warning("%s unreadable (%s): rebuilt", self.path, exc)
                self._table = {}
        return self._table

    def get(self, base: str, size: int, mtime_ns: int) -> Entry | None:
        """The entry of ``base`` if it matches the file as it is now."""
        entry = self._load().get(base)
        if entry is None or entry.size != size or entry.mtime_ns != mtime_ns:
            self.stats["misses"] += 1
            return None
        self.stats["hits"] += 1
        return entry

    def put(self, base: str, entry: Entry) -> None:
        table = self._load()
        if table.get(base) != entry:
            table[base] = entry
            self.dirty += 1

    def recent_floor(self, uid_validity: int) -> int:
        """The lowest UID nobody was shown as recent (1: everything is recent)."""
        self._load()
        if self._recent is None or self._recent[0] != uid_validity:
            return 1
        return self._recent[1]

    def set_recent_floor(self, uid_validity: int, floor: int) -> None:
        self._load()
        if self._recent != (uid_validity, floor):
            self._recent = (uid_validity, floor)
            self.dirty += 1

    def save(self, live: Iterable[str]) -> None:
        """Write the entries of the ``live`` base names (temp + rename), if any changed."""
        if not self.dirty or self._table is None:
            return
        wanted = set(live)
        table = {b: e for b, e in self._table.items() if b in wanted}
        self._table = table
        try:
            self.fs.write_atomic(self.path, render(table, self._recent), self.perms)
        except OSError as exc:  # a cache: the next save tries again
            log.warning("cannot write %s: %s", self.path, exc)
            return
        self.dirty = 0
        self.stats["saves"] += 1

    def save_if_worth_it(self, live: Iterable[str]) -> None:
        if self.dirty >= self.SAVE_AFTER:
            self.save(live)
