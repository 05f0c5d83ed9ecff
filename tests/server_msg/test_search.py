"""SEARCH: key parsing (tree, errors, charsets) and evaluation details Dovecot cannot show."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapha.imap.errors import ProtocolError
from imapha.imap.tokens import Atom, PList, Quoted, Token
from imapha.server.search import (
    And,
    BadCharset,
    Body,
    Date,
    DateOp,
    HasFlag,
    Header,
    InSet,
    Not,
    Or,
    SearchMessage,
    SearchScope,
    SearchSyntaxError,
    matches,
    parse_search,
)
from tests.server_msg.corpus import CORPUS, command_args


def keys(text: bytes):  # type: ignore[no-untyped-def]
    return parse_search(command_args(b"t SEARCH " + text))


class Reads:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.count = 0

    def __call__(self) -> bytes:
        self.count += 1
        return self.data


def message(data: bytes = CORPUS["multipart_mixed"], **kw: object) -> SearchMessage:
    args: dict[str, object] = {"seq": 2, "uid": 20, "flags": frozenset({"\\Seen"}),
                               "size": len(data), "internaldate": 1_700_000_000.0,
                               "read": Reads(data)}
    args.update(kw)
    return SearchMessage(**args)  # type: ignore[arg-type]


SCOPE = SearchScope(largest_seq=5, largest_uid=50, tz_offset=0)


def test_tree_shape_and_cheap_keys_first() -> None:
    tree = keys(b'BODY x OR SEEN (FROM a TO "b c") UNSEEN 1:3')
    assert isinstance(tree, And)
    assert tree.keys[0] == Not(HasFlag("\\Seen"))
    assert tree.keys[1] == InSet(tree.keys[1].numbers, uid=False)  # type: ignore[union-attr]
    assert isinstance(tree.keys[2], Or) and isinstance(tree.keys[3], Body)
    assert keys(b"SENTON 2-Oct-2024") == Date(DateOp.ON, dt.date(2024, 10, 2), sent=True)
    assert keys(b'HEADER "X-Spam" ""') == Header(b"x-spam", "")


def test_flag_only_search_never_reads_the_file() -> None:
    msg = message()
    assert matches(keys(b"SEEN NOT DELETED UID 1:20 2 LARGER 10 SINCE 1-Jan-2000"), msg, SCOPE)
    assert msg.read.count == 0  # type: ignore[attr-defined]
    assert matches(keys(b"SUBJECT folded BODY zebracrossing TEXT Content-Location"), msg, SCOPE)
    assert msg.read.count == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", [
    b"FOO", b"SUBJECT", b"LARGER x", b"BEFORE 31-Feb-2020", b"BEFORE 2020-01-01",
    b"OR SEEN", b"NOT", b"UID x", b"()", b"0:3", b"HEADER \"\" x", b"KEYWORD (a)",
    b"CHARSET US-ASCII SUBJECT {2+}\r\n\xc3\xa4",
])
def test_malformed_keys_are_bad(text: bytes) -> None:
    with pytest.raises(SearchSyntaxError) as info:
        keys(text)
    assert info.value.status == "BAD"


def test_no_keys_is_bad() -> None:
    with pytest.raises(SearchSyntaxError):
        parse_search(())
    with pytest.raises(SearchSyntaxError):
        parse_search((Atom("CHARSET"), Atom("UTF-8")))


def test_unknown_charset_is_no_badcharset() -> None:
    with pytest.raises(BadCharset) as info:
        keys(b"CHARSET KOI8-R SUBJECT x")
    err = info.value
    assert (err.status, err.code, err.code_args) == ("NO", "BADCHARSET", "(UTF-8 US-ASCII)")
    assert keys(b"CHARSET utf-8 SUBJECT x") == keys(b"SUBJECT x")


def test_star_means_the_largest_number_in_each_kind_of_set() -> None:
    msg = message(seq=5, uid=50)
    assert matches(keys(b"*"), msg, SCOPE)
    assert matches(keys(b"UID *"), msg, SCOPE)
    assert matches(keys(b"UID 60:*"), msg, SCOPE)  # 50:60 reversed is still a range
    assert not matches(keys(b"4"), msg, SCOPE)


def test_internaldate_uses_the_servers_zone() -> None:
    # 2023-11-14 22:13:20 UTC is already 15-Nov in +0200.
    msg = message()
    assert matches(keys(b"ON 14-Nov-2023"), msg, SCOPE)
    east = SearchScope(5, 50, tz_offset=7200)
    assert matches(keys(b"ON 15-Nov-2023"), msg, east)
    assert matches(keys(b"BEFORE 16-Nov-2023 SINCE 15-Nov-2023"), msg, east)


def test_internaldate_may_be_given_lazily() -> None:
    stats: list[int] = []

    def stat() -> float:
        stats.append(1)
        return 1_700_000_000.0

    msg = message(internaldate=stat)
    assert matches(keys(b"SEEN LARGER 5"), msg, SCOPE) and not stats
    assert matches(keys(b"ON 14-Nov-2023"), msg, SCOPE) and stats == [1]


def test_keywords_are_case_insensitive_and_new_is_recent_unseen() -> None:
    msg = message(flags=frozenset({"$Work", "\\Recent"}))
    assert matches(keys(b"KEYWORD $work NEW RECENT"), msg, SCOPE)
    assert not matches(keys(b"OLD"), msg, SCOPE)


def test_encoded_words_and_transfer_encodings_are_decoded() -> None:
    msg = message()
    assert matches(keys(b"CHARSET UTF-8 FROM " + literal("Jörg Müller")), msg, SCOPE)
    assert matches(keys(b"CHARSET UTF-8 BODY " + literal("GRÜßE")), msg, SCOPE)
    assert not matches(keys(b"BODY needle"), msg, SCOPE)  # application/octet-stream
    assert matches(keys(b"TEXT data.bin"), msg, SCOPE)  # a MIME header


def literal(text: str) -> bytes:
    raw = text.encode()
    return b"{%d+}\r\n" % len(raw) + raw


_tokens: st.SearchStrategy[Token] = st.recursive(
    st.one_of(
        st.sampled_from(["ALL", "OR", "NOT", "SEEN", "FROM", "UID", "1:*", "*", "BEFORE",
                         "1-Jan-2020", "LARGER", "12", "HEADER", "CHARSET", "UTF-8", "x",
                         "KEYWORD", "TEXT", "NEW", "SENTON"]).map(Atom),
        st.binary(max_size=8).filter(lambda b: b"\r" not in b and b"\n" not in b
                                     and b"\x00" not in b).map(Quoted),
    ),
    lambda inner: st.lists(inner, max_size=4).map(lambda items: PList(tuple(items))),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_tokens, max_size=8))
def test_any_token_list_parses_or_fails_with_a_wire_error(toks: list[Token]) -> None:
    try:
        tree = parse_search(toks)
    except ProtocolError as exc:
        assert exc.status in ("BAD", "NO")
        return
    matches(tree, message(), SCOPE)
