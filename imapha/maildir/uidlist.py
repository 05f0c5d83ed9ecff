"""``dovecot-uidlist``: the UID of every message, shared with Dovecot.

Theory of operation
-------------------
Format (Dovecot 2.x, version 3)::

    3 V<uidvalidity> N<nextuid> G<mailbox guid>[ <other header fields>]
    <uid>[ <key><value>...] :<base name>

One record per message, UIDs strictly increasing, matched to files by base
name (the part of the file name before ``:2,``). Record fields such as
``G<guid>`` ``W<vsize>`` are kept verbatim, unknown ones included; header
fields we do not know are kept too. Dovecot appends records without rewriting
the header, so the next UID is ``max(N, last UID + 1)`` and never less.
Version 1 files (``1 <uidvalidity> <nextuid>``, records ``<uid> <name>``) are
read and rewritten as version 3.

This module is pure (bytes in, a ``UidList`` out, and back). The rules about
when it may be written (only under ``dovecot-uidlist.lock``, by temp file and
rename, after re-reading it) are the mailbox's, which calls ``read`` and
``write`` here.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from imapha.maildir.fsops import FileSystem, Perms
from imapha.maildir.names import parse_name

__all__ = [
    "FILENAME",
    "Reader",
    "UidList",
    "UidListCorrupt",
    "UidRecord",
    "append",
    "parse",
    "read",
    "render",
    "write",
]

FILENAME = "dovecot-uidlist"
VERSION = 3


class UidListCorrupt(ValueError):
    """The file cannot be trusted; the caller rebuilds it with a new UIDVALIDITY."""


@dataclass(frozen=True)
class UidRecord:
    uid: int
    base: str
    fields: tuple[str, ...] = ()

    def line(self) -> str:
        middle = "".join(f" {f}" for f in self.fields)
        return f"{self.uid}{middle} :{self.base}"


@dataclass(frozen=True)
class UidList:
    uid_validity: int
    next_uid: int
    guid: str = field(default_factory=lambda: secrets.token_hex(16))
    header_fields: tuple[str, ...] = ()
    records: tuple[UidRecord, ...] = ()

    def __post_init__(self) -> None:
        if self.uid_validity <= 0:
            raise UidListCorrupt("UIDVALIDITY must be positive")
        last = 0
        for rec in self.records:
            if rec.uid <= last:
                raise UidListCorrupt(f"UID {rec.uid} does not increase (after {last})")
            last = rec.uid
        if self.next_uid <= last:
            # Dovecot leaves N behind when it appends; the effective value is above.
            object.__setattr__(self, "next_uid", last + 1)

    @cached_property
    def _by_base(self) -> dict[str, UidRecord]:
        return {rec.base: rec for rec in self.records}

    def by_base(self) -> dict[str, UidRecord]:
        """base name -> record (a fresh dict the caller may change)."""
        return dict(self._by_base)

    def has_base(self, base: str) -> bool:
        return base in self._by_base

    def with_records(self, records: Iterable[UidRecord], next_uid: int | None = None) -> UidList:
        """A copy holding ``records``; the next UID never goes down."""
        recs = tuple(records)
        top = max(self.next_uid, next_uid or 0, (recs[-1].uid + 1) if recs else 0)
        return replace(self, records=recs, next_uid=top)

    def assign(self, bases: Iterable[str]) -> tuple[UidList, list[UidRecord]]:
        """Give each base name not yet listed the next UID, in the order given."""
        known = self._by_base.copy()
        uid = self.next_uid
        added: list[UidRecord] = []
        for base in bases:
            if base in known:
                continue
            rec = UidRecord(uid, base)
            known[base] = rec
            added.append(rec)
            uid += 1
        return self.with_records((*self.records, *added), uid), added

    def __iter__(self) -> Iterator[UidRecord]:
        return iter(self.records)


def _split_header(line: str) -> tuple[int, int, str, tuple[str, ...]]:
    parts = line.split()
    if not parts or parts[0] != str(VERSION):
        raise UidListCorrupt(f"unsupported uidlist version in header {line!r}")
    validity = next_uid = None
    guid = ""
    extra: list[str] = []
    for part in parts[1:]:
        key, value = part[:1], part[1:]
        if key in "VN" and not value.isdigit():
            raise UidListCorrupt(f"bad header field {part!r}")
        if key == "V":
            validity = int(value)
        elif key == "N":
            next_uid = int(value)
        elif key == "G":
            guid = value
        else:
            extra.append(part)
    if validity is None or next_uid is None:
        raise UidListCorrupt(f"header without V or N: {line!r}")
    return validity, next_uid, guid, tuple(extra)


def _parse_record(line: str, version: int) -> UidRecord:
    if version != 1:
        # Fast path: "<uid>[ <fields>] :<name>", fields never hold a space.
        head, sep, name = line.partition(" :")
        if sep and name and "/" not in name:
            if head.isdigit():
                return UidRecord(int(head), name.split(":", 1)[0])
            parts = head.split(" ")
            if parts[0].isdigit() and all(parts[1:]):
                return UidRecord(int(parts[0]), name.split(":", 1)[0], tuple(parts[1:]))
    uid_s, _, rest = line.partition(" ")
    if not uid_s.isdigit() or not rest:
        raise UidListCorrupt(f"bad record {line!r}")
    if version == 1:
        return UidRecord(int(uid_s), parse_name(rest).base)
    fields: list[str] = []
    while not rest.startswith(":"):
        token, sep, rest = rest.partition(" ")
        if not sep or not token:
            raise UidListCorrupt(f"record without ' :<name>': {line!r}")
        fields.append(token)
    name = rest[1:]
    if not name or "/" in name:
        raise UidListCorrupt(f"bad file name in record {line!r}")
    return UidRecord(int(uid_s), parse_name(name).base, tuple(fields))


def parse(data: bytes) -> UidList:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UidListCorrupt(f"not UTF-8: {exc}") from None
    lines = text.split("\n")
    # The last element is "" after a final newline, or a line a writer is still
    # appending (Dovecot and we append under the lock; readers take none): skip it.
    lines.pop()
    if not lines:
        raise UidListCorrupt("empty file")
    head = lines[0].split()
    extra: tuple[str, ...]
    if head[:1] == ["1"] and len(head) == 3 and head[1].isdigit() and head[2].isdigit():
        version, validity, next_uid, guid, extra = 1, int(head[1]), int(head[2]), "", ()
    else:
        version = VERSION
        validity, next_uid, guid, extra = _split_header(lines[0])
    records = tuple(_parse_record(line, version) for line in lines[1:] if line)
    if not guid:
        guid = secrets.token_hex(16)
    return UidList(validity, next_uid, guid, extra, records)


def render(uidlist: UidList) -> bytes:
    header = [str(VERSION), f"V{uidlist.uid_validity}", f"N{uidlist.next_uid}",
              f"G{uidlist.guid}", *uidlist.header_fields]
    lines = [" ".join(header), *(rec.line() for rec in uidlist.records)]
    return ("\n".join(lines) + "\n").encode()


def _parse_tail(base: UidList, data: bytes) -> UidList:
    """``base`` plus the complete record lines in ``data`` (what was appended)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UidListCorrupt(f"not UTF-8: {exc}") from None
    lines = text.split("\n")
    lines.pop()
    added = [_parse_record(line, VERSION) for line in lines if line]
    if not added:
        return base
    return UidList(base.uid_validity, base.next_uid, base.guid, base.header_fields,
                   base.records + tuple(added))


@dataclass
class Reader:
    """Reads the list, parsing only what is new: nothing when the file holds the
    same bytes as last time, only the appended lines when the old bytes are a
    prefix of the new ones, all of it otherwise. The comparison is by content,
    not inode: a list replaced by rename often gets a freed inode number back
    (Dovecot's lock file becomes the list), so (inode, size) proves nothing.
    One per Mailbox; reopened by name each time (NFS close-to-open
    consistency), ``ESTALE`` retried."""

    fs: FileSystem
    maildir: Path
    _raw: bytes = b""  # the complete lines parsed into _list
    _list: UidList | None = None
    ends_with_newline: bool = False

    def read(self) -> UidList | None:
        return self.fs.retry_estale(self._attempt)

    def _attempt(self) -> UidList | None:
        try:
            data = self.fs.read_file(self.maildir / FILENAME)
        except FileNotFoundError:
            self.forget()
            return None
        complete = data.rfind(b"\n") + 1
        known = len(self._raw)
        if (self._list is not None and complete >= known
                and data[:known] == self._raw):
            parsed = _parse_tail(self._list, data[known:complete])
        else:
            parsed = parse(data)
        self._raw = data[:complete]
        self._list = parsed
        self.ends_with_newline = complete == len(data)
        return parsed

    def forget(self) -> None:
        self._raw, self._list = b"", None


def read(fs: FileSystem, maildir: Path) -> UidList | None:
    """The current list, or ``None`` when there is none (see ``Reader``)."""
    return Reader(fs, maildir).read()


def append(fs: FileSystem, maildir: Path, records: Sequence[UidRecord]) -> None:
    """Add record lines at the end, as Dovecot does; the header's N stays behind
    (readers take the last UID + 1). Only under the lock, only after a ``Reader``
    saw the file end with a newline, so no line is ever glued to a torn one."""
    if not records:
        return
    data = "".join(rec.line() + "\n" for rec in records).encode()
    path = maildir / FILENAME
    fd = fs.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fs.fsync(fd, path)
    finally:
        os.close(fd)


def write(fs: FileSystem, maildir: Path, uidlist: UidList, perms: Perms) -> None:
    """Replace the list (temp + fsync + rename). Only while holding the uidlist lock."""
    fs.write_atomic(maildir / FILENAME, render(uidlist), perms)
