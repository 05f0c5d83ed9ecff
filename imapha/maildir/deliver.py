"""Delivery into a Maildir: ``tmp/`` -> fsync -> link into ``new/``.

Theory of operation
-------------------
The message is written to ``tmp/<unique>`` and fsynced; only then does it get
a name in ``new/`` (``link``, which unlike ``rename`` never replaces an
existing file, through ``FileSystem.safe_link`` so a lost NFS reply is not
mistaken for a clash), and ``new/`` is fsynced so the entry survives a crash.
A crash at any point leaves either nothing in ``new/`` or the whole message;
what is left in ``tmp/`` is garbage that ``clean_tmp`` removes after 36 hours
(the Maildir convention). Delivery takes no lock: the UID is given later, by
whoever syncs the folder under the uidlist lock.
"""

from __future__ import annotations

import contextlib
import os
import time
from functools import partial
from pathlib import Path

from imapha.maildir.fsops import FileSystem, Perms
from imapha.maildir.names import UniqueNames, build_name

__all__ = ["TMP_MAX_AGE", "clean_tmp", "deliver"]

#: Files older than this in ``tmp/`` are leftovers of crashed deliveries.
TMP_MAX_AGE = 36 * 3600.0
#: Bound on name clashes in a row before we give up (a clock gone backwards?).
NAME_ATTEMPTS = 10

_default_names: UniqueNames | None = None


def _names() -> UniqueNames:
    global _default_names
    if _default_names is None:
        _default_names = UniqueNames()
    return _default_names


def deliver(
    maildir: Path,
    data: bytes,
    *,
    fs: FileSystem | None = None,
    names: UniqueNames | None = None,
    perms: Perms | None = None,
    mtime: float | None = None,
    letters: str | None = None,
) -> str:
    """Deliver ``data`` into ``maildir`` and return the new file's name.

    With ``letters`` (flag letters) the file goes straight to ``cur/`` with those
    flags, as an IMAP APPEND does; otherwise into ``new/``. ``mtime`` sets the
    INTERNALDATE. Raises ``OSError`` on failure, leaving no file behind.
    """
    fs = fs or FileSystem()
    names = names or _names()
    perms = perms or Perms.from_dir(maildir)
    for _ in range(NAME_ATTEMPTS):
        base = names.next(size=len(data))
        tmp = maildir / "tmp" / base
        try:
            # After ESTALE the create is tried again; EEXIST then (our first try
            # worked, its reply was lost) moves on to a fresh name.
            fs.retry_estale(partial(fs.write_new, tmp, data, perms, mtime=mtime))
        except FileExistsError:
            continue
        try:
            if letters is None:
                final, subdir = base, "new"
            else:
                final, subdir = build_name(base, letters), "cur"
            target = maildir / subdir / final
            try:
                fs.retry_estale(lambda: fs.safe_link(tmp, target))  # noqa: B023
            except FileExistsError:
                continue
            fs.fsync_dir(maildir / subdir)
            return final
        finally:
            with contextlib.suppress(FileNotFoundError):
                fs.unlink(tmp)
    raise FileExistsError(f"no unique name found in {maildir} after {NAME_ATTEMPTS} tries")


def clean_tmp(maildir: Path, *, now: float | None = None, fs: FileSystem | None = None) -> int:
    """Remove files in ``tmp/`` older than ``TMP_MAX_AGE``; returns how many."""
    fs = fs or FileSystem()
    now = time.time() if now is None else now
    removed = 0
    for name in fs.listdir(maildir / "tmp"):
        path = maildir / "tmp" / name
        try:
            st = os.lstat(path)
            if now - st.st_mtime > TMP_MAX_AGE:
                fs.unlink(path)
                removed += 1
        except FileNotFoundError:
            continue
    return removed
