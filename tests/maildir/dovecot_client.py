"""A few IMAP calls against the test Dovecot, returning plain Python values."""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from imapha.lab.dovecot import DovecotServer

FETCH_RE = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)")


@contextmanager
def session(dv: DovecotServer, user: str, password: str,
            mailbox: str = "INBOX") -> Iterator[imaplib.IMAP4]:
    imap = imaplib.IMAP4(dv.listen, dv.imap_port, timeout=30)
    try:
        imap.login(user, password)
        typ, data = imap.select(mailbox)
        assert typ == "OK", data
        yield imap
    finally:
        with suppress(imaplib.IMAP4.abort, OSError):
            imap.logout()


def uid_validity(imap: imaplib.IMAP4) -> int:
    typ, data = imap.status("INBOX", "(UIDVALIDITY)")
    assert typ == "OK"
    match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
    assert match
    return int(match.group(1))


def flags_by_uid(imap: imaplib.IMAP4) -> dict[int, frozenset[str]]:
    """uid -> flags (``\\Recent`` left out: it is per session)."""
    typ, data = imap.uid("FETCH", "1:*", "(UID FLAGS)")
    assert typ == "OK", data
    out: dict[int, frozenset[str]] = {}
    for item in data:
        raw = item[0] if isinstance(item, tuple) else item
        if not raw:
            continue
        match = FETCH_RE.search(raw)
        if match:
            flags = frozenset(match.group(2).decode().split()) - {"\\Recent"}
            out[int(match.group(1))] = flags
    return out


def message_ids(imap: imaplib.IMAP4) -> dict[int, str]:
    """uid -> Message-ID header value."""
    typ, data = imap.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
    assert typ == "OK", data
    out: dict[int, str] = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        uid = re.search(rb"UID (\d+)", item[0])
        mid = re.search(rb"<([^>]+)>", item[1])
        if uid and mid:
            out[int(uid.group(1))] = mid.group(1).decode()
    return out
