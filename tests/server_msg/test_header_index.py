"""The folder index keeps a message's header block instead of the message: every
answer FETCH and SEARCH give from it must be the one the whole message gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

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
