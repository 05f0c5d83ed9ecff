"""Maildir file names: unique delivery names, base names and the ``:2,`` flags part.

Theory of operation
-------------------
A message file is named ``<base>[:2,<letters>]``. The base never changes for
the life of the message (it is the key of ``dovecot-uidlist``); the part after
the first ``:`` ("info") carries the flags and is rewritten by a rename.

Base names are unique across hosts and time: ``<sec>.M<usec>P<pid>Q<n>.<host>``
(the qmail/Dovecot form: seconds, microseconds, process id, a per-process
delivery counter, the host name with ``/``, ``:`` and ``,`` escaped as octal
``\\057`` ``\\072`` ``\\054``), optionally followed by ``,S=<size>`` (the exact
file size, which Dovecot trusts instead of a ``stat``) and other ``,X=...``
fields.

Flags: ``:2,`` + letters in ASCII order. Upper case are the system flags (D
draft, F flagged, P passed, R replied/answered, S seen, T trashed/deleted);
lower case ``a``-``z`` are keywords, by index into ``dovecot-keywords``.
"""

from __future__ import annotations

import itertools
import os
import socket
import string
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "FLAG_LETTERS",
    "KEYWORD_LETTERS",
    "LETTER_FLAGS",
    "MaildirName",
    "UniqueNames",
    "build_name",
    "escape_host",
    "parse_name",
]

#: IMAP system flag -> Maildir letter (RFC 3501 §2.3.2; cr.yp.to/proto/maildir.html).
FLAG_LETTERS: dict[str, str] = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
LETTER_FLAGS: dict[str, str] = {v: k for k, v in FLAG_LETTERS.items()}
KEYWORD_LETTERS = string.ascii_lowercase
INFO_SEP = ":"
INFO_FLAGS_PREFIX = "2,"


@dataclass(frozen=True)
class MaildirName:
    """A parsed file name: ``base``, and the flag letters (``None``: no ``:2,`` part)."""

    base: str
    letters: str | None = None
    info: str | None = None  # the raw info part when it is not ``2,...``

    @property
    def filename(self) -> str:
        if self.letters is not None:
            return build_name(self.base, self.letters)
        if self.info is not None:
            return f"{self.base}{INFO_SEP}{self.info}"
        return self.base

    @property
    def system_letters(self) -> str:
        return "".join(c for c in self.letters or "" if c.isupper())

    @property
    def keyword_indexes(self) -> tuple[int, ...]:
        return tuple(ord(c) - ord("a") for c in self.letters or "" if c in KEYWORD_LETTERS)

    @property
    def size(self) -> int | None:
        """The ``,S=<n>`` size field of the base, if present and well formed."""
        return size_field(self.base)


def size_field(base: str) -> int | None:
    """The ``,S=<n>`` field of a base name (Dovecot trusts it instead of ``stat``)."""
    start = base.find(",S=")
    if start < 0:
        return None
    end = base.find(",", start + 3)
    digits = base[start + 3 :] if end < 0 else base[start + 3 : end]
    return int(digits) if digits.isdigit() else None


def parse_name(filename: str) -> MaildirName:
    """Split a file name into base and flags. Unknown info forms are kept verbatim."""
    base, sep, info = filename.partition(INFO_SEP)
    if not sep:
        return MaildirName(base)
    if info.startswith(INFO_FLAGS_PREFIX):
        letters = info[len(INFO_FLAGS_PREFIX) :]
        return MaildirName(base, "".join(sorted(set(letters))))
    return MaildirName(base, None, info)


def build_name(base: str, letters: Iterable[str]) -> str:
    """``<base>:2,<letters>`` with each letter once, in ASCII order (Maildir spec)."""
    return f"{base}{INFO_SEP}{INFO_FLAGS_PREFIX}{''.join(sorted(set(letters)))}"


def escape_host(host: str) -> str:
    """The host part of a unique name: ``/`` ``:`` ``,`` would break the name's syntax."""
    out: list[str] = []
    for ch in host:
        if ch in "/:,\\" or not ch.isprintable() or ch.isspace():
            out.extend(f"\\{b:03o}" for b in ch.encode())
        else:
            out.append(ch)
    return "".join(out) or "localhost"


_COUNTER = itertools.count(1)  # shared by every UniqueNames of the process
_COUNTER_LOCK = threading.Lock()


class UniqueNames:
    """Generator of delivery base names. The ``Q`` counter is process-wide, so two
    generators in one process never produce the same name in the same microsecond.

    ``clock`` returns nanoseconds since the epoch (injectable for tests).
    """

    def __init__(self, host: str | None = None, pid: int | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.host = escape_host(host if host is not None else socket.gethostname())
        self._pid = pid
        self._clock = clock

    @property
    def pid(self) -> int:
        # After fork() a child must not repeat its parent's pid in names.
        return self._pid if self._pid is not None else os.getpid()

    def next(self, size: int | None = None) -> str:
        now = self._clock()
        sec, usec = divmod(now // 1000, 1_000_000)
        with _COUNTER_LOCK:
            counter = next(_COUNTER)
        base = f"{sec}.M{usec}P{self.pid}Q{counter}.{self.host}"
        if size is not None:
            base += f",S={size}"
        return base
