"""SEARCH results against a REAL Dovecot 2.3 for the same messages and keys.

The corpus goes into Dovecot's Maildir; each key list is sent to Dovecot and
parsed and evaluated by :mod:`imapha.server.search` over the same bytes, flags
and INTERNALDATEs; the sets of matching sequence numbers must be equal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from imapha.imap.tokens import Token
from imapha.server.search import SearchMessage, SearchScope, matches, parse_search
from tests.prereq import need_binary
from tests.server_msg.corpus import CORPUS, command_args
from tests.server_msg.dovecot_oracle import (
    BASE_TIME,
    dovecot_search,
    dovecot_with,
    search_args,
)

NAMES = list(CORPUS)
#: Flags set on both sides before searching: seq -> flags.
FLAGS = {1: ("\\Seen",), 2: ("\\Seen", "\\Flagged"), 3: ("\\Answered", "$Work"),
         5: ("\\Deleted",), 6: ("\\Draft", "$work")}

QUERIES: list[tuple[str | bytes, ...]] = [
    ("ALL",),
    ("SUBJECT", "meeting"),
    ("SUBJECT", "MEETING"),
    ("SUBJECT", '"folded subject"'),
    ("CHARSET", "UTF-8", "SUBJECT", "grüße".encode()),
    ("CHARSET", "UTF-8", "SUBJECT", "GRÜSSE".encode()),
    ("CHARSET", "UTF-8", "FROM", "Müller".encode()),
    ("FROM", "joerg"),
    ("FROM", "example.org"),
    ("TO", "jane"),
    ("CC", "team"),
    ("BCC", "hidden"),
    ("HEADER", "Content-Type", "multipart"),
    ("HEADER", "X-Nothing", '""'),
    ("HEADER", "Message-ID", '""'),
    ("HEADER", "content-language", "de"),
    ("BODY", "zebracrossing"),
    ("BODY", "alternative"),
    ("CHARSET", "UTF-8", "BODY", "ünïcödé".encode()),
    ("CHARSET", "UTF-8", "BODY", "körper".encode()),
    ("BODY", "preamble"),
    ("TEXT", '"inner subject"'),
    ("TEXT", "meeting"),
    ("TEXT", '"never closed"'),
    ("LARGER", "300"),
    ("SMALLER", "250"),
    ("SENTBEFORE", "1-Jan-2020"),
    ("SENTON", "2-Oct-2024"),
    ("SENTSINCE", "3-Oct-2024"),
    ("BEFORE", "15-Nov-2023"),
    ("ON", "15-Nov-2023"),
    ("SINCE", "15-Nov-2023"),
    ("SEEN",),
    ("UNSEEN",),
    ("FLAGGED", "SEEN"),
    ("ANSWERED",),
    ("DELETED",),
    ("UNDELETED",),
    ("DRAFT",),
    ("UNDRAFT",),
    ("KEYWORD", "$Work"),
    ("UNKEYWORD", "$Work"),
    ("RECENT",),
    ("NEW",),
    ("OLD",),
    ("OR", "SUBJECT", "inner", "FROM", "lf"),
    ("NOT", "FROM", "example.org"),
    ("1:3",),
    ("2,4:*",),
    ("UID", "5:*"),
    ("UID", "*"),
    ("(SUBJECT", "multipart)", "LARGER", "10"),
    ("OR", "(SEEN", "LARGER", "1000)", "NOT", "SMALLER", "250"),
    ("NOT", "(OR", "SEEN", "DRAFT)"),
]


def _tokens(args: bytes) -> tuple[Token, ...]:
    """The wire layer's tokens for ``t SEARCH <args>`` (what the session hands us)."""
    return command_args(b"t SEARCH " + args)


@pytest.fixture(scope="module")
def answers() -> Iterator[list[set[int] | None]]:
    need_binary("dovecot")
    need_binary("doveadm")
    with dovecot_with(list(CORPUS.values())) as client:
        for seq, flags in FLAGS.items():
            client.command(b"STORE %d +FLAGS (%s)" % (seq, " ".join(flags).encode()))
        yield [dovecot_search(client, search_args(*q)) for q in QUERIES]


def _reader(raw: bytes) -> Callable[[], bytes]:
    return lambda: raw


def _ours(args: bytes) -> set[int]:
    key = parse_search(_tokens(args))
    scope = SearchScope(largest_seq=len(NAMES), largest_uid=len(NAMES))
    found = set()
    for seq, name in enumerate(NAMES, 1):
        raw = CORPUS[name]
        msg = SearchMessage(
            seq=seq, uid=seq, flags=frozenset({"\\Recent", *FLAGS.get(seq, ())}),
            size=len(raw), internaldate=BASE_TIME + (seq - 1) * 3600, read=_reader(raw),
        )
        if matches(key, msg, scope):
            found.add(seq)
    return found


def _names(seqs: set[int]) -> list[str]:
    return sorted(NAMES[i - 1] for i in seqs)


def test_search_results_equal_dovecot(answers: list[set[int] | None]) -> None:
    mismatches = []
    for query, theirs in zip(QUERIES, answers, strict=True):
        args = search_args(*query)
        assert theirs is not None, f"Dovecot refused {args!r}"
        mine = _ours(args)
        if mine != theirs:
            mismatches.append(f"{args!r}: dovecot {_names(theirs)} imapha {_names(mine)}")
    assert not mismatches, "\n".join(mismatches)
