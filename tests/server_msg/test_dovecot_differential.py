"""Differential test against a REAL Dovecot: many generated messages, seeded.

Messages are made from MIME-ish fragments (boundaries, Content-Type lines,
folds, odd addresses, bare CR/LF, NUL, 8-bit) and from generated MIME trees,
with a fixed seed so a run is reproducible; each goes into Dovecot's Maildir
and ENVELOPE, BODYSTRUCTURE and a few sections must equal ours (with the
normalisations of :mod:`tests.server_msg.test_dovecot_compare`).

Two known differences are left out, each by a stated predicate:

4. Dovecot takes any line that starts with ``--boundary`` as a delimiter
   (``--bTo: x`` too); we require white space, ``--`` or the line end after the
   boundary (the RFC 2046 §5.1.1 grammar), which keeps nested boundaries that
   extend each other (``b`` and ``b1``) apart. Messages with such a line are
   skipped (:func:`prefix_delimiter`).
5. A Content-Type with junk after the subtype (``message/rfc822 folded``):
   Dovecot writes type and subtype as ``"" ""``; we keep the type that
   parses (RFC 2045 §5.2 would say text/plain). Skipped (:func:`junk_type`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest

from imapha.imap.errors import ProtocolError
from imapha.imap.tokens import Atom, PList
from imapha.server.fetchitems import FetchSource, parse_fetch_items, render_fetch
from imapha.server.mime import parse, unfold
from tests.prereq import need_binary
from tests.server_msg.dovecot_oracle import dovecot_with
from tests.server_msg.strategies import FRAGMENTS, Leaf, Msg, Multi, Node, serialize
from tests.server_msg.test_dovecot_compare import canonical_strings

SEED = 20261125
COUNT = 150
ITEMS = ["ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[1]", "BODY.PEEK[1.MIME]", "BODY.PEEK[2.1]",
         "BODY.PEEK[TEXT]", "BODY.PEEK[1.1.HEADER]", "BODY.PEEK[HEADER]"]


def _tree(rng: random.Random, depth: int = 0) -> Node:
    roll = rng.random()
    if depth >= 3 or roll < 0.5:
        return Leaf(b"\n".join(b"line %d" % rng.randrange(100) for _ in range(rng.randrange(4))))
    if roll < 0.8:
        return Multi(tuple(_tree(rng, depth + 1) for _ in range(rng.randint(1, 3))))
    return Msg(_tree(rng, depth + 1))


def messages() -> list[bytes]:
    rng = random.Random(SEED)
    out = []
    for i in range(COUNT):
        if i % 3 == 0:
            eol = rng.choice([b"\r\n", b"\n"])
            out.append(b"Subject: generated" + eol + serialize(_tree(rng), eol))
        else:
            out.append(b"".join(rng.choice(FRAGMENTS) for _ in range(rng.randrange(40))))
    return out


_PREFIX_RE = re.compile(rb"(?:\A|\n)--[bc](?![-\r\n \t]|\Z)")
_TYPE_OK_RE = re.compile(rb"\s*[^\s/;]+\s*/\s*[^\s/;]+\s*(?:;.*)?", re.S)


def prefix_delimiter(raw: bytes) -> bool:
    return _PREFIX_RE.search(raw) is not None


def junk_type(raw: bytes) -> bool:
    root = parse(raw)
    for part in root.walk():
        for f in part.get_all(b"content-type"):
            if _TYPE_OK_RE.fullmatch(unfold(f.raw_value(raw))) is None:
                return True
    return False


MESSAGES = [m for m in messages() if not prefix_delimiter(m) and not junk_type(m)]


@pytest.fixture(scope="module")
def answers() -> Iterator[list[dict[str, bytes | None]]]:
    need_binary("dovecot")
    need_binary("doveadm")
    with dovecot_with(MESSAGES) as client:
        got: list[dict[str, bytes | None]] = []
        for seq in range(1, len(MESSAGES) + 1):
            row: dict[str, bytes | None] = {}
            for item in ITEMS:
                try:
                    row[item] = client.fetch(seq, item)
                except RuntimeError:
                    row[item] = None
            got.append(row)
        yield got


def _ours(raw: bytes, item: str) -> bytes | None:
    request = parse_fetch_items((PList((Atom(item),)),))
    try:
        out = render_fetch(request, FetchSource(1, (), 0.0, len(raw), lambda: raw))
    except ProtocolError:
        return None
    return out[1:-1]


def test_generated_messages_equal_dovecot(answers: list[dict[str, bytes | None]]) -> None:
    assert len(MESSAGES) > COUNT // 2  # the exclusions leave most of them
    mismatches = []
    for raw, row in zip(MESSAGES, answers, strict=True):
        for item in ITEMS:
            theirs, mine = row[item], _ours(raw, item)
            same = (theirs is None and mine is None) or (
                theirs is not None and mine is not None
                and canonical_strings(theirs) == canonical_strings(mine))
            if not same:
                mismatches.append(f"{item} of {raw!r}:\n  dovecot {theirs!r}\n  imapha  {mine!r}")
    assert not mismatches, f"{len(mismatches)} differ:\n" + "\n".join(mismatches[:10])
