"""``dovecot-keywords``: the names behind the keyword letters ``a``-``z``.

Theory of operation
-------------------
A file name's lower-case flag letters are indexes into this table (``a`` is
0): ``<index> <name>`` per line, shared by every message of the folder and
with Dovecot. Only 26 keywords fit in file names; a 27th is refused with
``KeywordLimit`` (the IMAP layer answers ``NO [LIMIT]``) rather than silently
dropped. Indexes are never renumbered, since files on disk refer to them.
Writers add names under ``dovecot-keywords.lock`` after re-reading the file,
so two writers adding different names each keep the other's. After a rewrite
the file's whole-second mtime is made to grow (Dovecot notices a change of
this file only by it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from imapha.maildir.fsops import DEFAULT_LOCK_TIMEOUT, FileSystem, Perms
from imapha.maildir.names import KEYWORD_LETTERS

__all__ = ["FILENAME", "MAX_KEYWORDS", "KeywordLimit", "Keywords", "add", "parse", "read", "render"]

FILENAME = "dovecot-keywords"
MAX_KEYWORDS = len(KEYWORD_LETTERS)


class KeywordLimit(ValueError):
    """More than 26 keywords would be needed in one folder."""


def valid_keyword(name: str) -> bool:
    """An IMAP flag-keyword atom (RFC 3501 §9 ``atom``, no ``\\``), as Dovecot stores it."""
    return bool(name) and all(
        0x20 < ord(c) < 0x7F and c not in '(){%*"\\]' for c in name
    )


@dataclass(frozen=True)
class Keywords:
    """Index -> name; ``names[i]`` is the keyword of letter ``chr(ord('a') + i)``."""

    table: Mapping[int, str]

    def name(self, index: int) -> str | None:
        return self.table.get(index)

    def index(self, name: str) -> int | None:
        for idx, known in self.table.items():
            if known == name:
                return idx
        return None

    def letters_for(self, names: Iterable[str]) -> str | None:
        """The letters of ``names``, or ``None`` if one is not in the table."""
        out = []
        for name in names:
            idx = self.index(name)
            if idx is None:
                return None
            out.append(KEYWORD_LETTERS[idx])
        return "".join(sorted(out))

    def names_for(self, indexes: Iterable[int]) -> tuple[str, ...]:
        return tuple(sorted(n for i in indexes if (n := self.table.get(i)) is not None))


def parse(data: bytes) -> Keywords:
    table: dict[int, str] = {}
    for line in data.decode("utf-8", errors="replace").splitlines():
        idx_s, _, name = line.partition(" ")
        if idx_s.isdigit() and int(idx_s) < MAX_KEYWORDS and valid_keyword(name):
            table[int(idx_s)] = name
    return Keywords(table)


def render(keywords: Keywords) -> bytes:
    return "".join(f"{i} {n}\n" for i, n in sorted(keywords.table.items())).encode()


def read(fs: FileSystem, maildir: Path) -> Keywords:
    def attempt() -> Keywords:
        try:
            return parse(fs.read_file(maildir / FILENAME))
        except FileNotFoundError:
            return Keywords({})

    return fs.retry_estale(attempt)


def add(fs: FileSystem, maildir: Path, names: Iterable[str], perms: Perms,
        timeout: float = DEFAULT_LOCK_TIMEOUT) -> Keywords:
    """Make sure every name has an index; returns the table as now on disk."""
    wanted = list(dict.fromkeys(names))
    for name in wanted:
        if not valid_keyword(name):
            raise ValueError(f"not a keyword atom: {name!r}")
    current = read(fs, maildir)
    if all(current.index(n) is not None for n in wanted):
        return current
    path = maildir / FILENAME
    with fs.dotlock(path, timeout=timeout, perms=perms) as lock:
        current = read(fs, maildir)
        old = _stat(fs, path)
        table = dict(current.table)
        for name in wanted:
            if current.index(name) is not None:
                continue
            free = next((i for i in range(MAX_KEYWORDS) if i not in table), None)
            if free is None:
                raise KeywordLimit(f"no room for keyword {name!r}: {MAX_KEYWORDS} in use")
            table[free] = name
        result = Keywords(table)
        lock.verify()
        fs.write_atomic(path, render(result), perms)
        _mtime_grows(fs, path, old)
        return result


def _stat(fs: FileSystem, path: Path) -> os.stat_result | None:
    try:
        return fs.retry_estale(partial(fs.stat, path))
    except FileNotFoundError:
        return None


def _mtime_grows(fs: FileSystem, path: Path, old: os.stat_result | None) -> None:
    """Make the new file's whole-second mtime greater than the old one's.

    Dovecot re-reads ``dovecot-keywords`` only when its mtime, in whole seconds,
    differs from the one it last read (its own writers push the mtime forward a
    second when needed): a rewrite in the same second would leave it showing
    ``unknown-N``. Done under the keywords lock, right after the rename.
    """
    if old is None:
        return
    new = _stat(fs, path)
    if new is not None and int(new.st_mtime) <= int(old.st_mtime):
        os.utime(path, (time.time(), int(old.st_mtime) + 1))
