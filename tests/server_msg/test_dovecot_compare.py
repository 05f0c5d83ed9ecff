"""Our FETCH output against a REAL Dovecot 2.3 for the same stored bytes.

Every corpus message is written into a Dovecot user's Maildir and fetched item
by item from Dovecot; the same item is rendered by :mod:`imapha.server.fetchitems`
from the same bytes, and the two must be equal.

Normalisations (each allowed by the RFC, and only these):

1. A string may be sent quoted or as a literal (RFC 3501 §4.3): Dovecot sends
   a literal for any string holding ``"`` or ``\\`` and for every BODY[]
   section; we quote where we can. Both sides are rewritten to one form
   (:func:`canonical_strings`) before comparing.
2. BODY (the non-extensible structure): Dovecot lower-cases type, subtype and
   parameter names there but not in BODYSTRUCTURE; they are case-insensitive
   (RFC 2045 §5.1), so BODY is compared case-insensitively.
3. RFC822.SIZE of a file with bare LF line ends: Dovecot counts the CRLF form it
   serves; our renderer reports the size the session hands it (the store's), so
   that item is not compared for messages with a bare LF (BODY[] itself is).

Known difference (not compared):

4. Dovecot refuses BINARY.SIZE of every part of a message in which one part has
   an unknown transfer encoding (``NO [UNKNOWN-CTE]`` for a base64 part too),
   while BINARY of that same part works; we answer BINARY.SIZE for each part we
   can decode (RFC 3516 §4.2 is per part). Both refuse the unknown one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from imapha.imap.tokens import Atom, PList
from imapha.server.fetchitems import FetchSource, parse_fetch_items, render_fetch
from imapha.server.message import to_crlf
from tests.prereq import need_binary
from tests.server_msg.corpus import CORPUS
from tests.server_msg.dovecot_oracle import BASE_TIME, RawImap, dovecot_with

ITEMS = [
    "ENVELOPE",
    "BODYSTRUCTURE",
    "BODY",
    "INTERNALDATE",
    "RFC822.SIZE",
    "BODY.PEEK[]",
    "BODY.PEEK[HEADER]",
    "BODY.PEEK[TEXT]",
    "RFC822.HEADER",
    "BODY.PEEK[1]",
    "BODY.PEEK[1.MIME]",
    "BODY.PEEK[2]",
    "BODY.PEEK[2.MIME]",
    "BODY.PEEK[2.1]",
    "BODY.PEEK[2.2.MIME]",
    "BODY.PEEK[2.HEADER]",
    "BODY.PEEK[2.TEXT]",
    "BODY.PEEK[1.HEADER]",
    "BODY.PEEK[3]",
    "BODY.PEEK[9]",
    "BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]",
    "BODY.PEEK[HEADER.FIELDS (subject X-Nothing)]",
    "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT FROM TO)]",
    "BODY.PEEK[2.HEADER.FIELDS (SUBJECT)]",
    "BODY.PEEK[]<0.10>",
    "BODY.PEEK[]<10.20>",
    "BODY.PEEK[1]<5.1000>",
    "BODY.PEEK[]<100000.5>",
    "BINARY.PEEK[1]",
    "BINARY.SIZE[1]",
    "BINARY.PEEK[3]",
    "BINARY.SIZE[3]",
    "BINARY.PEEK[1]<2.5>",
]

NAMES = list(CORPUS)

_STRING_RE = re.compile(rb'"((?:[^"\\\r\n]|\\.)*)"|\{([0-9]+)\}\r\n')


def canonical_strings(payload: bytes) -> bytes:
    """Every quoted string and literal rewritten to one form (normalisation 1)."""
    out = bytearray()
    i = 0
    while i < len(payload):
        m = _STRING_RE.search(payload, i)
        if m is None:
            out += payload[i:]
            break
        out += payload[i : m.start()]
        if m[1] is not None:
            value = re.sub(rb"\\(.)", rb"\1", m[1])
            i = m.end()
        else:
            n = int(m[2])
            value = payload[m.end() : m.end() + n]
            i = m.end() + n
        out += b"<" + value.hex().encode() + b">"
    return bytes(out)


@pytest.fixture(scope="module")
def dovecot_answers() -> Iterator[dict[tuple[str, str], bytes | None]]:
    need_binary("dovecot")
    need_binary("doveadm")
    answers: dict[tuple[str, str], bytes | None] = {}
    with dovecot_with(list(CORPUS.values())) as client:
        for seq, name in enumerate(NAMES, 1):
            for item in ITEMS:
                answers[(name, item)] = _ask(client, seq, item)
    yield answers


def _ask(client: RawImap, seq: int, item: str) -> bytes | None:
    """Dovecot's payload, or None when it answers NO/BAD."""
    try:
        return client.fetch(seq, item)
    except RuntimeError:
        return None


def ours(name: str, seq: int, item: str) -> bytes | None:
    raw = CORPUS[name]
    request = parse_fetch_items((PList((Atom(item),)),))
    src = FetchSource(uid=seq, flags=(), internaldate=BASE_TIME + (seq - 1) * 3600,
                      size=len(raw), read=lambda: raw)
    try:
        out = render_fetch(request, src)
    except Exception as exc:  # our NO/BAD, compared with Dovecot's refusal
        from imapha.imap.errors import ProtocolError

        if isinstance(exc, ProtocolError):
            return None
        raise
    return out[1:-1]


@pytest.mark.parametrize("name", NAMES)
def test_fetch_items_equal_dovecot(
    dovecot_answers: dict[tuple[str, str], bytes | None], name: str
) -> None:
    seq = NAMES.index(name) + 1
    mismatches = []
    for item in ITEMS:
        if item == "RFC822.SIZE" and to_crlf(CORPUS[name]) != CORPUS[name]:
            continue  # normalisation 3
        if item.startswith("BINARY.SIZE") and name == "unknown_cte" and item != "BINARY.SIZE[1]":
            continue  # difference 4
        theirs = dovecot_answers[(name, item)]
        mine = ours(name, seq, item)
        if theirs is None or mine is None:
            if theirs is not mine:
                mismatches.append((item, theirs, mine))
            continue
        if item == "BODY":
            theirs, mine = theirs.lower(), mine.lower()  # normalisation 2
        a, b = canonical_strings(theirs), canonical_strings(mine)
        if a != b:
            mismatches.append((item, theirs, mine))
    assert not mismatches, "\n".join(
        f"{item}:\n  dovecot: {t!r}\n  imapha:  {m!r}" for item, t, m in mismatches
    )
