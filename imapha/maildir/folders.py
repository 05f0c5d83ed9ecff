"""Maildir++ folders: names, modified UTF-7, the ``maildirfolder`` marker, subscriptions.

Theory of operation
-------------------
A user's Maildir is INBOX; every other folder is a sibling directory named
``.`` + the folder's path with ``.`` between levels (``.Lists.python``), each
component in modified UTF-7 (RFC 3501 §5.1.3), each a full maildir (``cur``,
``new``, ``tmp``) holding an empty ``maildirfolder`` file. This is Dovecot's
default ``maildir`` layout, so both list the same folders; the hierarchy
separator seen by IMAP clients is ``.``.

Every name from a client passes ``folder_dir`` before it touches the disk:
no empty level, no ``/``, NUL or control character, no name that decodes
differently than it encodes, no directory entry over 255 bytes, and folder
directories (and their ``cur``/``new``/``tmp``) must be real directories, not
symlinks someone planted to lead us outside the Maildir.

``subscriptions`` is Dovecot's file: ``V\\t2\\n\\n`` then one name per line,
levels separated by a TAB, in modified UTF-7. Written by temp file and rename
under ``subscriptions.lock``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from imapha.maildir.fsops import DEFAULT_LOCK_TIMEOUT, FileSystem, Perms

__all__ = [
    "INBOX",
    "MAX_NAME_BYTES",
    "SEPARATOR",
    "FolderError",
    "Folders",
    "decode_mutf7",
    "encode_mutf7",
    "ensure_maildir",
]

INBOX = "INBOX"
SEPARATOR = "."
#: A directory entry holds at most this many bytes (NAME_MAX on Linux and NFS).
MAX_NAME_BYTES = 255
SUBSCRIPTIONS = "subscriptions"
MAILDIRFOLDER = "maildirfolder"
SUBDIRS = ("cur", "new", "tmp")
#: Missing parent directories ``ensure_maildir`` creates at most (home, Maildir).
MAX_PARENTS = 3


class FolderError(ValueError):
    """A folder name or directory the store refuses; the text says why."""


# -- modified UTF-7 (RFC 3501 §5.1.3) ---------------------------------------
def encode_mutf7(text: str) -> str:
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            b64 = base64.b64encode(raw).decode().rstrip("=").replace("/", ",")
            out.append(f"&{b64}-")
            pending.clear()

    for ch in text:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_mutf7(text: str) -> str:
    """Strict decoding: raises ``FolderError`` on anything RFC 3501 does not allow,
    so that each name has exactly one encoded form."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise FolderError(f"raw non-ASCII character in modified UTF-7 name {text!r}")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = text.find("-", i + 1)
        if end < 0:
            raise FolderError(f"unterminated '&' shift in {text!r}")
        chunk = text[i + 1 : end]
        i = end + 1
        if not chunk:
            out.append("&")
            continue
        b64 = chunk.replace(",", "/")
        try:
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
            decoded = raw.decode("utf-16-be")
        except (ValueError, UnicodeDecodeError) as exc:
            raise FolderError(f"bad modified UTF-7 in {text!r}: {exc}") from None
        if any(0x20 <= ord(c) <= 0x7E for c in decoded):
            raise FolderError(f"printable ASCII encoded in base64 in {text!r}")
        out.append(decoded)
    result = "".join(out)
    if encode_mutf7(result) != text:
        raise FolderError(f"non-canonical modified UTF-7 {text!r}")
    return result


def _check_component(part: str, name: str) -> None:
    if not part:
        raise FolderError(f"empty hierarchy level in folder name {name!r}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in part):
        raise FolderError(f"control character in folder name {name!r}")
    if "/" in part or "\\" in part:
        raise FolderError(f"'/' or '\\' in folder name {name!r}")


def folder_dirname(name: str) -> str:
    """The directory entry of folder ``name`` (Unicode, ``.`` between levels)."""
    if name.upper() == INBOX:
        raise FolderError("INBOX is the Maildir itself")
    parts = name.split(SEPARATOR)
    for part in parts:
        _check_component(part, name)
    dirname = SEPARATOR + SEPARATOR.join(encode_mutf7(p) for p in parts)
    if len(dirname.encode()) > MAX_NAME_BYTES:
        raise FolderError(f"folder name {name!r} is too long for a directory name")
    return dirname


def is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def ensure_maildir(fs: FileSystem, path: Path, perms: Perms, *, folder: bool) -> None:
    """Create ``path`` with ``cur``/``new``/``tmp`` (and ``maildirfolder``) as needed,
    and missing parents (a new user's home). Refuses a symlink anywhere among them."""
    missing = [p for p in path.parents if not os.path.lexists(p)]
    for parent in reversed(missing[:MAX_PARENTS]):
        with contextlib.suppress(FileExistsError):
            fs.mkdir(parent, perms)
    for sub in (path, *(path / s for s in SUBDIRS)):
        try:
            fs.mkdir(sub, perms)
        except FileExistsError:
            if not is_real_dir(sub):
                raise FolderError(f"{sub} is not a real directory (a symlink?)") from None
    if folder:
        marker = path / MAILDIRFOLDER
        with contextlib.suppress(FileExistsError):
            fs.write_new(marker, b"", perms, fsync=False)


@dataclass
class Folders:
    """The folders of one user's Maildir (``root`` is INBOX's directory)."""

    root: Path
    fs: FileSystem
    perms: Perms

    @classmethod
    def open(cls, root: Path, fs: FileSystem | None = None) -> Folders:
        return cls(root, fs or FileSystem(), Perms.from_dir(root))

    def path(self, name: str) -> Path:
        """The directory of folder ``name``; ``INBOX`` (any case) is the root."""
        if name.upper() == INBOX:
            return self.root
        return self.root / folder_dirname(name)

    def exists(self, name: str) -> bool:
        path = self.path(name)
        return is_real_dir(path) and is_real_dir(path / "cur")

    def names(self) -> list[str]:
        """INBOX and every folder directory that is real and decodes cleanly, sorted."""
        names = [INBOX]
        for entry in self.fs.listdir(self.root):
            if not entry.startswith(SEPARATOR) or entry in (".", ".."):
                continue
            if not is_real_dir(self.root / entry) or not is_real_dir(self.root / entry / "cur"):
                continue
            try:
                parts = [decode_mutf7(p) for p in entry[1:].split(SEPARATOR)]
                for part in parts:
                    _check_component(part, entry)
            except FolderError:
                continue
            names.append(SEPARATOR.join(parts))
        return sorted(names, key=lambda n: (n != INBOX, n))

    def create(self, name: str) -> Path:
        path = self.path(name)
        if name.upper() == INBOX:
            raise FolderError("INBOX already exists")
        if os.path.lexists(path):
            raise FolderError(f"folder {name!r} already exists")
        ensure_maildir(self.fs, path, self.perms, folder=True)
        return path

    def delete(self, name: str) -> None:
        """Remove a folder: renamed aside first (atomic for readers), then removed."""
        if name.upper() == INBOX:
            raise FolderError("INBOX cannot be deleted")
        path = self.path(name)
        if not is_real_dir(path):
            raise FolderError(f"no folder {name!r}")
        aside = self.root / f"..imapha-deleted.{os.getpid()}.{random.getrandbits(32):x}"
        self.fs.rename(path, aside)
        shutil.rmtree(aside, ignore_errors=True)

    def rename(self, old: str, new: str) -> None:
        """Rename a folder and every folder below it (``.A`` and ``.A.*``)."""
        if INBOX in (old.upper(), new.upper()):
            raise FolderError("renaming INBOX is not supported")
        src, dst = self.path(old), self.path(new)
        if not is_real_dir(src):
            raise FolderError(f"no folder {old!r}")
        if os.path.lexists(dst):
            raise FolderError(f"folder {new!r} already exists")
        prefix = src.name + SEPARATOR
        children = sorted(e for e in self.fs.listdir(self.root) if e.startswith(prefix))
        self.fs.rename(src, dst)
        for child in children:
            target = dst.name + SEPARATOR + child[len(prefix) :]
            if len(target.encode()) > MAX_NAME_BYTES:
                raise FolderError(f"renamed child {target!r} would be too long")
            self.fs.rename(self.root / child, self.root / target)

    # -- subscriptions (Dovecot's subscriptions file, version 2) ---------------
    def subscriptions(self) -> list[str]:
        try:
            text = self.fs.read_file(self.root / SUBSCRIPTIONS).decode("utf-8", "replace")
        except FileNotFoundError:
            return []
        lines = text.split("\n")
        if lines[:1] == ["V\t2"]:
            lines = lines[2:]
            sep = "\t"
        else:
            sep = SEPARATOR  # version 1: one name per line, '.' between levels
        out: list[str] = []
        for line in lines:
            if not line:
                continue
            try:
                out.append(SEPARATOR.join(decode_mutf7(p) for p in line.split(sep)))
            except FolderError:
                continue
        return out

    def _write_subscriptions(self, names: list[str]) -> None:
        body = "".join(
            "\t".join(encode_mutf7(p) for p in n.split(SEPARATOR)) + "\n" for n in names
        )
        self.fs.write_atomic(self.root / SUBSCRIPTIONS, f"V\t2\n\n{body}".encode(), self.perms)

    def subscribe(self, name: str, *, subscribed: bool = True) -> None:
        if name.upper() != INBOX:
            folder_dirname(name)  # validates
        with self.fs.dotlock(self.root / SUBSCRIPTIONS, timeout=DEFAULT_LOCK_TIMEOUT,
                             perms=self.perms) as lock:
            current = self.subscriptions()
            if subscribed and name not in current:
                current.append(name)
            elif not subscribed and name in current:
                current.remove(name)
            else:
                return
            lock.verify()
            self._write_subscriptions(current)

    def unsubscribe(self, name: str) -> None:
        self.subscribe(name, subscribed=False)
