"""Every filesystem primitive the Maildir store relies on, made safe for NFS.

Theory of operation
-------------------
All Maildir code goes through one ``FileSystem`` object. It is a thin layer
over ``os`` with two jobs:

1. **Fault injection.** ``FileSystem.faults`` holds ``Fault`` rules; before (or
   after) each primitive runs, a matching rule raises the ``OSError`` it names.
   Tests inject ``ENOENT``, ``EEXIST`` and ``ESTALE`` where NFS produces them,
   including the classic "``link()`` succeeded but the reply was lost, the
   retransmission says ``EEXIST``" (a rule with ``after=True``).
2. **The NFS-safe idioms**, each in one place:

   * ``retry_estale``: a stale file handle means our cached handle of a name is
     gone (the name was replaced by a rename on another host): do the whole
     name-based operation again, a bounded number of times.
   * ``follow``: an operation on a message file that fails with ``ENOENT``
     because another writer renamed it (new flags) asks the caller's lookup
     where the file is now and tries again, a bounded number of times.
   * ``safe_link``: ``link()`` reporting ``EEXIST`` may have succeeded (a lost
     reply); the target then is our inode (``st_nlink`` went up, the inodes
     match) and we report success.
   * ``write_atomic``: write a temporary file beside the target, fsync it,
     rename over the target. Readers see the old or the new file, never a part.
   * ``fsync_dir``: after a create or rename, fsync the directory so the entry
     survives a crash (a no-op where directories cannot be opened).
   * ``DotLock``: Dovecot's dotlock, ``<file>.lock`` created by linking a unique
     temporary file to it (atomic on NFSv2/3, unlike ``O_EXCL`` there). Its
     content is ``<pid>:<host>`` as Dovecot writes it. A lock is stale when its
     mtime is older than ``stale_after`` (120 s, Dovecot's value for
     ``dovecot-uidlist.lock``), or at once when its holder is a dead process of
     this host. A holder refreshes the mtime while it works and checks, before
     it commits, that the lock is still its own (``DotLock.verify``).

Everything else (what a Maildir is) lives in the other modules; nothing here
knows about messages.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TypeVar

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "ESTALE_RETRIES",
    "STALE_LOCK_AFTER",
    "DotLock",
    "Fault",
    "FileSystem",
    "LockLost",
    "LockTimeout",
    "Perms",
]

#: Dovecot treats ``dovecot-uidlist.lock`` as stale after two minutes unchanged.
STALE_LOCK_AFTER = 120.0
#: How long a writer waits for the lock before giving up (the MTA retries later).
DEFAULT_LOCK_TIMEOUT = 30.0
#: Temporary files of another host's process are litter after this long.
LITTER_MAX_AGE = 3600.0
#: Bound on following a file renamed by someone else (ENOENT, then look it up again).
FOLLOW_ATTEMPTS = 5
#: Bound on repeating a name-based operation after ESTALE.
ESTALE_RETRIES = 5

T = TypeVar("T")


class LockTimeout(TimeoutError):
    """The dotlock stayed held by someone else for longer than we may wait."""


class LockLost(RuntimeError):
    """Our dotlock was taken over (we were too slow and judged stale): do not commit."""


@dataclass
class Fault:
    """Raise ``OSError(err)`` when primitive ``op`` touches a path containing ``match``.

    ``after=True`` performs the operation first and then raises (a lost NFS reply).
    ``times`` bounds how often the rule fires (``-1``: always).
    """

    op: str
    err: int
    match: str = ""
    after: bool = False
    times: int = 1
    fired: int = 0

    def matches(self, op: str, paths: tuple[str, ...], after: bool) -> bool:
        if op != self.op or after != self.after or self.times == 0:
            return False
        return any(self.match in p for p in paths)


@dataclass(frozen=True)
class Perms:
    """Mode and ownership new files and directories get, copied from the Maildir's
    own directory the way Dovecot does (``mailbox_list_get_permissions``)."""

    file_mode: int = 0o600
    dir_mode: int = 0o700
    uid: int = -1
    gid: int = -1

    @classmethod
    def from_dir(cls, path: Path) -> Perms:
        """Permissions for files below ``path`` (or its nearest existing ancestor).

        A root process (``imapha deliver`` run by the MTA) hands what it creates to
        the directory's owner, so the mail user's IMAP server can rename it later.
        """
        for candidate in (path, *path.parents):
            try:
                st = candidate.stat()
            except FileNotFoundError:
                continue
            mode = stat.S_IMODE(st.st_mode)
            uid = st.st_uid if os.geteuid() == 0 and st.st_uid != 0 else -1
            gid = st.st_gid if st.st_gid != os.getegid() else -1
            return cls(file_mode=mode & 0o666, dir_mode=mode & 0o2777, uid=uid, gid=gid)
        return cls()


@dataclass
class FileSystem:
    """The one gateway to the disk, with injectable faults (see the module doc)."""

    faults: list[Fault] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)
    sleep: Callable[[float], None] = time.sleep

    # -- fault layer ---------------------------------------------------------
    def inject(self, op: str, err: int, match: str = "", *, after: bool = False,
               times: int = 1) -> Fault:
        fault = Fault(op, err, match, after, times)
        self.faults.append(fault)
        return fault

    def _check(self, op: str, after: bool, *paths: str | Path) -> None:
        names = tuple(str(p) for p in paths)
        for fault in self.faults:
            if fault.matches(op, names, after):
                fault.fired += 1
                if fault.times > 0:
                    fault.times -= 1
                raise OSError(fault.err, f"{os.strerror(fault.err)} (injected)", names[0])

    def _do(self, op: str, fn: Callable[[], T], *paths: str | Path) -> T:
        self._check(op, False, *paths)
        result = fn()
        self._check(op, True, *paths)
        return result

    # -- raw primitives (each one a fault point) ------------------------------
    def open(self, path: Path, flags: int, mode: int = 0o600) -> int:
        return self._do("open", lambda: os.open(path, flags | os.O_CLOEXEC, mode), path)

    def read_file(self, path: Path) -> bytes:
        """Whole content of a regular file, refusing symlinks (``O_NOFOLLOW``)."""
        fd = self.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def fsync(self, fd: int, path: Path) -> None:
        self._do("fsync", lambda: os.fsync(fd), path)

    def link(self, src: Path, dst: Path) -> None:
        self._do("link", lambda: os.link(src, dst, follow_symlinks=False), src, dst)

    def rename(self, src: Path, dst: Path) -> None:
        self._do("rename", lambda: os.rename(src, dst), src, dst)

    def unlink(self, path: Path) -> None:
        self._do("unlink", lambda: os.unlink(path), path)

    def lstat(self, path: Path) -> os.stat_result:
        return self._do("lstat", lambda: os.lstat(path), path)

    def stat(self, path: Path) -> os.stat_result:
        return self._do("stat", lambda: os.stat(path), path)

    def listdir(self, path: Path) -> list[str]:
        return self._do("listdir", lambda: os.listdir(path), path)

    def mkdir(self, path: Path, perms: Perms) -> None:
        self._do("mkdir", lambda: os.mkdir(path, perms.dir_mode & 0o777), path)
        # mkdir's mode is filtered by the umask; set it exactly.
        os.chmod(path, perms.dir_mode)
        self._chown(path, perms)

    def utime(self, path: Path, mtime: float | None) -> None:
        times = None if mtime is None else (mtime, mtime)
        self._do("utime", lambda: os.utime(path, times, follow_symlinks=False), path)

    def _chown(self, path: Path, perms: Perms) -> None:
        if perms.uid != -1 or perms.gid != -1:
            with contextlib.suppress(PermissionError):
                os.chown(path, perms.uid, perms.gid, follow_symlinks=False)

    # -- idioms ----------------------------------------------------------------
    def retry_estale(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` again after ``ESTALE``, at most ``ESTALE_RETRIES`` extra times."""
        for _ in range(ESTALE_RETRIES):
            try:
                return fn()
            except OSError as exc:
                if exc.errno != errno.ESTALE:
                    raise
        return fn()

    def follow(self, path: Path, op: Callable[[Path], T],
               relookup: Callable[[], Path | None]) -> T:
        """``op(path)``, following the file when someone renames it meanwhile: on
        ``ENOENT`` ask ``relookup`` where it is now (``None``: gone) and try again,
        at most ``FOLLOW_ATTEMPTS`` times. Raises ``FileNotFoundError`` when the file
        is gone or kept moving. ``ESTALE`` is retried inside each attempt."""
        for _ in range(FOLLOW_ATTEMPTS):
            try:
                return self.retry_estale(partial(op, path))
            except FileNotFoundError:
                found = relookup()
                if found is None:
                    raise
                path = found
        raise FileNotFoundError(errno.ENOENT, "file kept moving", str(path))

    def safe_link(self, src: Path, dst: Path) -> None:
        """``link(src, dst)``; ``EEXIST`` counts as success when ``dst`` is ``src``'s inode
        (the NFS reply to our successful link was lost and the retry saw our own link)."""
        try:
            self.link(src, dst)
        except FileExistsError:
            try:
                s, d = os.lstat(src), os.lstat(dst)
            except FileNotFoundError:
                raise FileExistsError(errno.EEXIST, "link target exists", str(dst)) from None
            if (s.st_ino, s.st_dev) == (d.st_ino, d.st_dev) and s.st_nlink >= 2:
                return
            raise

    def fsync_dir(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            self.fsync(fd, path)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EBADF):
                raise
        finally:
            os.close(fd)

    def write_new(self, path: Path, data: bytes, perms: Perms, *, mtime: float | None = None,
                  fsync: bool = True) -> None:
        """Create ``path`` exclusively, write ``data``, fsync. Removes it on failure."""
        fd = self.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                       perms.file_mode)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if perms.uid != -1 or perms.gid != -1:
                with contextlib.suppress(PermissionError):
                    os.fchown(fd, perms.uid, perms.gid)
            os.fchmod(fd, perms.file_mode)
            if fsync:
                self.fsync(fd, path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        os.close(fd)
        if mtime is not None:
            self.utime(path, mtime)

    def write_atomic(self, path: Path, data: bytes, perms: Perms) -> None:
        """Replace ``path`` by a file holding ``data``: temp + fsync + rename."""
        tmp = path.with_name(f"{path.name}.{self.host}.{os.getpid()}.{random.getrandbits(32):x}")
        self.retry_estale(partial(self.write_new, tmp, data, perms))
        try:
            self.rename_own(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def rename_own(self, src: Path, dst: Path) -> None:
        """Rename a file only we know (a unique temporary name): after ``ESTALE`` the
        rename is tried again, and ``ENOENT`` then means the first one worked (its
        reply was lost), since nobody else touches ``src``."""
        try:
            self.rename(src, dst)
            return
        except OSError as exc:
            if exc.errno != errno.ESTALE:
                raise
        for _ in range(ESTALE_RETRIES):
            try:
                self.rename(src, dst)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.ESTALE:
                    raise
        self.rename(src, dst)

    def remove_litter(self, directory: Path, prefixes: tuple[str, ...],
                      max_age: float = LITTER_MAX_AGE) -> int:
        """Remove our temporary files (``<prefix>.<host>.<pid>.<hex>``, as
        ``write_atomic`` and ``DotLock`` name them) left by a process that died: at
        once when it was a process of this host, else after ``max_age`` seconds."""
        removed = 0
        now = time.time()
        for entry in self.listdir(directory):
            prefix = next((p for p in sorted(prefixes, key=len, reverse=True)
                           if entry.startswith(p + ".")), None)
            if prefix is None:
                continue
            host, _, rest = entry[len(prefix) + 1 :].rpartition(".")[0].rpartition(".")
            pid_s = rest if rest.isdigit() else ""
            if not pid_s or not host:
                continue
            try:
                st = os.lstat(directory / entry)
            except FileNotFoundError:
                continue
            dead = host == self.host and not _pid_alive(int(pid_s))
            if dead or now - st.st_mtime > max_age:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(directory / entry)
                    removed += 1
        return removed

    def dotlock(self, path: Path, *, timeout: float = DEFAULT_LOCK_TIMEOUT,
                stale_after: float = STALE_LOCK_AFTER, perms: Perms | None = None) -> DotLock:
        """A ``DotLock`` on ``path`` (the lock file is ``<path>.lock``); use ``with``."""
        return DotLock(self, path, timeout=timeout, stale_after=stale_after,
                       perms=perms or Perms())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (its lock will never be released).
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return raw[raw.rfind(")") + 2 :].split()[0] != "Z"


class DotLock:
    """``<path>.lock``: Dovecot-compatible dotlock (see the module doc)."""

    def __init__(self, fs: FileSystem, path: Path, *, timeout: float, stale_after: float,
                 perms: Perms) -> None:
        self.fs = fs
        self.target = path
        self.path = path.with_name(path.name + ".lock")
        self.timeout = timeout
        self.stale_after = stale_after
        self.perms = perms
        self._ident: tuple[int, int, int] | None = None
        self._refreshed = 0.0
        self.took_over_stale = 0

    @property
    def held(self) -> bool:
        return self._ident is not None

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.002
        while True:
            try:
                if self._try_once():
                    return
            except OSError as exc:
                # A stale handle of the directory: just another failed attempt.
                if exc.errno != errno.ESTALE:
                    raise
            if time.monotonic() >= deadline:
                raise LockTimeout(f"{self.path} held by {self._holder()!r} for over "
                                  f"{self.timeout:g} s")
            self.fs.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.1)

    def _try_once(self) -> bool:
        content = self._content().encode()
        tmp = self.path.with_name(
            f"{self.path.name}.{self.fs.host}.{os.getpid()}.{random.getrandbits(32):x}")
        self.fs.write_new(tmp, content, self.perms, fsync=False)
        try:
            # ESTALE after a link that worked: the retry's EEXIST is recognised by
            # safe_link as our own inode, so we never wait for our own lock.
            self.fs.retry_estale(partial(self.fs.safe_link, tmp, self.path))
        except FileExistsError:
            self._break_if_stale()
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._ident = self._identify(self.fs.lstat(self.path))
        self._refreshed = time.monotonic()
        return True

    @staticmethod
    def _identify(st: os.stat_result) -> tuple[int, int, int]:
        # The inode number alone is not enough: a lock file removed and created
        # again by another process often gets the same number back.
        return (st.st_dev, st.st_ino, st.st_ctime_ns)

    def _holder(self) -> str:
        try:
            return self.path.read_text(errors="replace").strip()
        except OSError:
            return ""

    def _break_if_stale(self) -> None:
        try:
            st = self.fs.lstat(self.path)
        except FileNotFoundError:
            return
        holder = self._holder()
        pid_s, _, host = holder.partition(":")
        dead_local = host == self.fs.host and pid_s.isdigit() and not _pid_alive(int(pid_s))
        too_old = time.time() - st.st_mtime > self.stale_after
        if not (dead_local or too_old):
            return
        # Move it aside, then make sure we moved the lock we judged, not a fresh one
        # someone created since; a fresh one goes back where it was.
        aside = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}."
                                    f"{random.getrandbits(32):x}")
        try:
            self.fs.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = os.lstat(aside)
        if (moved.st_dev, moved.st_ino) != (st.st_dev, st.st_ino):
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        else:
            self.took_over_stale += 1
        os.unlink(aside)

    def verify(self) -> None:
        """Raise ``LockLost`` unless ``<path>.lock`` is still the file we created."""
        if self._ident is None:
            raise LockLost(f"{self.path} is not held")
        try:
            st = self.fs.lstat(self.path)
        except FileNotFoundError:
            raise LockLost(f"{self.path} vanished (taken over as stale?)") from None
        if self._identify(st) != self._ident or self._holder() != self._content():
            raise LockLost(f"{self.path} now belongs to {self._holder()!r}")

    def _content(self) -> str:
        return f"{os.getpid()}:{self.fs.host}"

    def refresh(self, every: float | None = None) -> None:
        """Touch the lock so others do not judge it stale (at most every ``every`` s)."""
        every = self.stale_after / 4 if every is None else every
        if time.monotonic() - self._refreshed >= every:
            self.verify()
            self.fs.utime(self.path, None)
            self._ident = self._identify(self.fs.lstat(self.path))
            self._refreshed = time.monotonic()

    def release(self) -> None:
        if self._ident is None:
            return
        try:
            self.verify()
        except LockLost:
            self._ident = None
            return
        self._ident = None
        with contextlib.suppress(FileNotFoundError):
            self.fs.unlink(self.path)

    def __enter__(self) -> DotLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
