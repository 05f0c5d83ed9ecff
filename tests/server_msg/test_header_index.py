"""The folder index keeps a message's header block instead of the message: every
answer FETCH and SEARCH give from it must be the one the whole message gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapha.server.fetchitems import FetchSource, parse_fetch_items, render_fetch
from imapha.server.message import ParsedMessage
from imapha.server.search import SearchMessage, SearchScope, matches, parse_search
from tests.server_msg.corpus import CORPUS, command_args
from tests.server_msg.strategies import any_message

HEADER_ITEMS = ("(ENVELOPE BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (SUBJECT FROM DATE)] "
                "BODY.PEEK[HEADER.FIELDS.NOT (SUBJECT RECEIVED)] BODY.PEEK[HEADER]<3.40>)")
SEARCHES = ('SUBJECT "meeting"', 'FROM "example"', "HEADER Content-Type multipart",
            'OR TO "a" CC "b"', "SENTSINCE 1-Jan-1990", 'NOT HEADER X-Nothing ""',
            'SUBJECT "=?"')


def header_block(data: bytes) -> bytes:
    """What ``Selected.message_info`` stores for a message."""
    parsed = ParsedMessage(data)
    return parsed.data[parsed.root.start : parsed.root.body_start]


def _render(message: ParsedMessage) -> bytes:
    request = parse_fetch_items(command_args(b"t FETCH 1 " + HEADER_ITEMS.encode())[1:])
    src = FetchSource(1, (), 0.0, 0, lambda: b"", _message=message)
    return render_fetch(request, src)


def _found(key_text: str, message: ParsedMessage) -> bool:
    key = parse_search(command_args(b"t SEARCH " + key_text.encode()))
    m = SearchMessage(1, 1, frozenset(), 0, 0.0, lambda: b"", _parsed=message)
    return matches(key, m, SearchScope(1, 1))


def _same_answers(data: bytes) -> None:
    whole = ParsedMessage(data)
    header = ParsedMessage(header_block(data), header_only=True)
    assert _render(header) == _render(whole)
    for text in SEARCHES:
        assert _found(text, header) == _found(text, whole), text


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_answers_from_the_header_block(name: str) -> None:
    _same_answers(CORPUS[name])


@settings(max_examples=200, deadline=None)
@given(any_message)
def test_any_message_answers_from_the_header_block(data: bytes) -> None:
    _same_answers(data)


# --- the quick "cannot match" of header SEARCH keys ------------------------------------

_NEEDLE_WORDS = st.sampled_from(["meeting", "EXAMPLE", "foo", "a", " ", "x@y", "ß", "ﬁ",
                                 "é", "=?", "Blurdybloop", "multipart", "subject"])


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(any_message, st.sampled_from(sorted(CORPUS.values()))),
       field=st.sampled_from(["SUBJECT", "FROM", "TO", "HEADER Content-Type", "HEADER X-A"]),
       needle=st.one_of(_NEEDLE_WORDS, st.text(max_size=6)), cut=st.integers(0, 200))
def test_cannot_match_never_hides_a_match(data: bytes, field: str, needle: str,
                                          cut: int) -> None:
    from imapha.server.commands.search_cmd import cannot_match
    from imapha.server.search import Header

    if cut < len(data) and cut % 3 == 0:  # also needles taken from the message itself
        needle = data[cut : cut + 1 + cut % 7].decode("latin-1")
    quoted = '"' + needle.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if "\r" in needle or "\n" in needle or "\0" in needle:
        return
    try:
        key = parse_search(command_args(b"t SEARCH " + f"{field} {quoted}".encode()))
    except Exception:
        return  # not a command a client could send
    assert isinstance(key, Header)
    whole = ParsedMessage(data)
    for text in (data, header_block(data)):
        if cannot_match(key, text):
            m = SearchMessage(1, 1, frozenset(), 0, 0.0, lambda: b"", _parsed=whole)
            assert not matches(key, m, SearchScope(1, 1)), (field, needle)


def test_cannot_match_says_no_only_when_it_knows() -> None:
    from imapha.server.commands.search_cmd import cannot_match
    from imapha.server.search import Header

    key = parse_search(command_args(b't SEARCH SUBJECT "Afternoon"'))
    assert isinstance(key, Header)
    simple = next(v for k, v in CORPUS.items() if k == "simple")
    assert not cannot_match(key, simple)  # "afternoon meeting": may (and does) match
    other = parse_search(command_args(b't SEARCH SUBJECT "evening"'))
    assert isinstance(other, Header) and cannot_match(other, simple)
    assert not cannot_match(other, simple + b"Subject: =?utf-8?q?x?=\r\n")  # RFC 2047
    assert not cannot_match(other, "Subject: \u00e9\r\n".encode())  # 8-bit


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_cannot_match_agrees_on_every_piece_of_the_corpus_headers(name: str) -> None:
    # Needles cut from the header itself (so many do match), in both cases, across
    # folds and field boundaries: a "cannot match" must never meet a real match.
    from imapha.server.commands.search_cmd import cannot_match
    from imapha.server.search import Header

    data = CORPUS[name]
    block = header_block(data)
    whole = ParsedMessage(data)
    text = block.decode("latin-1")
    checked = said_no = 0
    for start in range(0, len(text), 7):
        for length in (1, 4, 9):
            piece = text[start : start + length]
            if (any(c in piece for c in '\r\n\0"\\') or not piece.strip()
                    or not piece.isascii()):  # 8-bit needles need CHARSET UTF-8
                continue
            for needle in (piece, piece.upper(), piece.lower()):
                for field in ("SUBJECT", "FROM", "TO", "CC", "HEADER Content-Type"):
                    key = parse_search(command_args(
                        b"t SEARCH " + f'{field} "{needle}"'.encode()))
                    assert isinstance(key, Header)
                    m = SearchMessage(1, 1, frozenset(), 0, 0.0, lambda: b"", _parsed=whole)
                    found = matches(key, m, SearchScope(1, 1))
                    for t in (data, block):
                        no = cannot_match(key, t)
                        assert not (no and found), (field, needle)
                        said_no += no
                    checked += found
    assert checked or not block.strip()  # the test did see matches
