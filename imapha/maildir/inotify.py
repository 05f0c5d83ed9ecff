"""A minimal inotify(7) hub: one instance and one reader thread for many watches.

Theory of operation
-------------------
watchdog's Linux observer holds every ``IN_MOVED_FROM`` event for half a
second, waiting for its ``IN_MOVED_TO`` pair, and the events behind it queue
up; a Maildir sees such a move whenever a message goes from ``new/`` to
``cur/`` (two watches, so the pair never matches), which made every IDLE push
after the first ~200 ms late. Nothing here needs pairing: any event on a
watched directory only means "sync this folder". So this module talks to the
kernel directly (``inotify_init1``/``inotify_add_watch`` through ctypes) and
calls the callbacks as the events are read.

* One ``InotifyHub`` per process (inotify instances are a per-user limit, 128
  by default); each ``add`` returns a token for ``remove``. Two watches of one
  directory share the kernel watch (same ``wd``); the kernel watch is removed
  with the last token.
* The reader thread blocks in ``select`` (0.5 s, to notice ``stop``), reads
  whole events (``struct inotify_event``: wd, mask, cookie, len, name) and
  calls each callback of the watch with the entry name (``""`` for the
  directory itself). A queue overflow calls every callback: anything may
  have changed.
* Callbacks run on the reader thread; they must be quick (set a flag, hand
  over to the reactor).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import select
import struct
import threading
from collections.abc import Callable
from itertools import count
from pathlib import Path

__all__ = ["IN_CREATE", "IN_DELETE", "IN_MODIFY", "IN_MOVED_FROM", "IN_MOVED_TO",
           "IN_SELF", "InotifyHub"]

log = logging.getLogger(__name__)

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_SELF = IN_DELETE_SELF | IN_MOVE_SELF
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_MASK_ADD = 0x20000000  # a second watch of a directory adds to its mask
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC

_EVENT = struct.Struct("iIII")
_READ_SIZE = 64 * 1024

Callback = Callable[[str], None]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class InotifyHub:
    """See the module doc."""

    def __init__(self) -> None:
        libc = _libc()
        self._add_watch = libc.inotify_add_watch
        self._add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._rm_watch = libc.inotify_rm_watch
        self._rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd: int = fd
        self._lock = threading.Lock()
        self._by_wd: dict[int, dict[int, Callback]] = {}
        self._wd_of: dict[int, int] = {}  # token -> wd
        self._tokens = count(1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> InotifyHub:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="imapha-inotify",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1

    def add(self, path: Path, mask: int, callback: Callback) -> int:
        """Watch directory ``path`` for ``mask`` events; a token for ``remove``."""
        with self._lock:
            wd = self._add_watch(self.fd, os.fsencode(path), mask | IN_ONLYDIR | IN_MASK_ADD)
            if wd < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"inotify_add_watch {path}: {os.strerror(err)}")
            token = next(self._tokens)
            self._by_wd.setdefault(wd, {})[token] = callback
            self._wd_of[token] = wd
            return token

    def remove(self, token: int) -> None:
        with self._lock:
            wd = self._wd_of.pop(token, None)
            if wd is None:
                return
            callbacks = self._by_wd.get(wd, {})
            callbacks.pop(token, None)
            if not callbacks:
                self._by_wd.pop(wd, None)
                if self.fd >= 0:
                    self._rm_watch(self.fd, wd)  # EINVAL if already gone: fine

    def _run(self) -> None:
        while not self._stop.is_set():
            fd = self.fd
            if fd < 0:
                return
            try:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if not ready:
                    continue
                data = os.read(fd, _READ_SIZE)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    continue
                if self._stop.is_set():
                    return
                log.error("inotify read failed: %s", exc)
                return
            self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        offset = 0
        calls: list[tuple[Callback, str]] = []
        with self._lock:
            while offset + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                raw = data[offset + _EVENT.size : offset + _EVENT.size + length]
                offset += _EVENT.size + length
                name = os.fsdecode(raw.rstrip(b"\0"))
                if mask & IN_Q_OVERFLOW:
                    calls += [(cb, "") for cbs in self._by_wd.values() for cb in cbs.values()]
                    continue
                callbacks = self._by_wd.get(wd)
                if callbacks is None:
                    continue
                if mask & IN_IGNORED:  # the directory is gone: tell, then forget
                    self._by_wd.pop(wd, None)
                calls += [(cb, name) for cb in callbacks.values()]
        for callback, name in calls:
            try:
                callback(name)
            except Exception:
                log.exception("inotify callback failed")
