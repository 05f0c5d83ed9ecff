"""Listing a Maildir folder's messages, and the cheap "did anything change?" stamp.

Theory of operation
-------------------
``scan`` lists ``new/`` then ``cur/`` (a message moved from one to the other in
between is seen in ``cur/``) and maps each base name to where its file is now.
An unlocked ``readdir`` can miss a file that another writer renames while the
listing runs (a flag change is a rename within ``cur/``), so the listing is
taken again while either directory's stat changed during it, up to
``SCAN_ATTEMPTS`` times. A listing that never settled is still good for
finding files, but what it misses proves nothing: ``stable`` says which kind
the last one was, and the mailbox confirms expunges only with a stable one.

``stamp`` is four ``stat`` calls (``new/``, ``cur/``, the uidlist, the
keywords): equal stamps mean nothing changed, unless an mtime is so recent
that a coarse clock could hide a second change in the same tick (``dirty``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from imapha.maildir.fsops import FileSystem

__all__ = ["SCAN_ATTEMPTS", "Scanner", "Stamp", "stat_key"]

#: Listings of a directory that keeps changing before we take the last one.
SCAN_ATTEMPTS = 8
#: What a scan maps each base name to: (subdir, current file name).
Where = tuple[str, str]
StatKey = tuple[int, int, int, int]  # ino, mtime_ns, size, ctime_ns
Stamp = tuple[StatKey, ...]


def stat_key(st: os.stat_result | None) -> StatKey:
    if st is None:
        return (0, 0, 0, 0)
    return (st.st_ino, st.st_mtime_ns, st.st_size, st.st_ctime_ns)


@dataclass
class Scanner:
    fs: FileSystem
    path: Path
    stamp_files: tuple[str, ...] = ()
    stats: dict[str, int] = field(default_factory=lambda: {"scans": 0, "rescans": 0})
    stable: bool = True

    def stamp(self) -> Stamp:
        out = []
        for name in ("new", "cur", *self.stamp_files):
            try:
                out.append(stat_key(self.fs.stat(self.path / name)))
            except FileNotFoundError:
                out.append(stat_key(None))
        return tuple(out)

    @staticmethod
    def dirty(stamp: Stamp, window: float) -> bool:
        """An mtime younger than ``window`` seconds may hide a same-tick change."""
        now_ns = time.time_ns()
        return any(now_ns - key[1] < window * 1e9 for key in stamp)

    def _dirs(self) -> list[StatKey]:
        return [stat_key(self.fs.stat(self.path / d)) for d in ("new", "cur")]

    def scan(self) -> dict[str, Where]:
        """base -> (subdir, filename); sets ``stable`` (see the module doc)."""
        self.stats["scans"] += 1
        found: dict[str, Where] = {}
        for _ in range(SCAN_ATTEMPTS):
            before = self._dirs()
            found = {}
            for subdir in ("new", "cur"):
                listing = self.fs.retry_estale(partial(self.fs.listdir, self.path / subdir))
                for filename in listing:
                    if filename[:1] != ".":
                        found[filename.split(":", 1)[0]] = (subdir, filename)
            if self._dirs() == before:
                self.stable = True
                return found
            self.stats["rescans"] += 1
        self.stable = False
        return found

    def lookup(self, base: str) -> Where | None:
        """Where the file of ``base`` is now, or ``None`` (expunged)."""
        return self.scan().get(base)
