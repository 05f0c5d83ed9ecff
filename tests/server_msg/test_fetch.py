"""FETCH: attribute parsing and errors, rendering (lazy reads, partials, sections, BINARY),
and the grammar of what we emit for any input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imapha.imap.errors import ProtocolError
from imapha.server.fetchitems import (
    FetchSource,
    FetchSyntaxError,
    Kind,
    UnknownCTE,
    fetch_response,
    parse_fetch_items,
    render_fetch,
)
from tests.server_msg.corpus import CORPUS, MULTIPART_MIXED, NESTED_RFC822, SIMPLE, command_args
from tests.server_msg.grammar import check_body, check_envelope, read_fetch
from tests.server_msg.strategies import any_message


def request(text: str):  # type: ignore[no-untyped-def]
    """The request the session would build from ``t FETCH 1 <text>``."""
    return parse_fetch_items(command_args(b"t FETCH 1 " + text.encode())[1:])


class Reads:
    """A message accessor that counts how often the file is read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.count = 0

    def __call__(self) -> bytes:
        self.count += 1
        return self.data


def source(data: bytes, **kw: object) -> FetchSource:
    args: dict[str, object] = {
        "uid": 7, "flags": ("\\Seen", "$Work"), "internaldate": 1_700_000_000.0,
        "size": len(data), "read": Reads(data), "tz_offset": 3600,
    }
    args.update(kw)
    return FetchSource(**args)  # type: ignore[arg-type]


def fetch(text: str, data: bytes = SIMPLE) -> bytes:
    return render_fetch(request(text), source(data))


# --- parsing -------------------------------------------------------------------------


def test_macros_expand_per_rfc3501() -> None:
    assert [i.name for i in request("ALL").items] == [
        "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"]
    assert [i.name for i in request("fast").items] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    assert [i.name for i in request("FULL").items][-1] == "BODY"


def test_sections_are_parsed_and_echoed() -> None:
    req = request('(body.peek[1.2.header.fields (subject "X-Y")]<0.10> BODY[2.MIME] '
                  "BINARY.PEEK[1] BINARY.SIZE[3] RFC822.HEADER UID)")
    a, b, c, d, e, _ = req.items
    assert (a.kind, a.part, a.text, a.fields, a.partial, a.peek) == (
        Kind.SECTION, (1, 2), "HEADER.FIELDS", (b"SUBJECT", b"X-Y"), (0, 10), True)
    assert a.name == "BODY[1.2.HEADER.FIELDS (SUBJECT X-Y)]"
    assert (b.name, b.peek) == ("BODY[2.MIME]", False)
    assert (c.kind, c.name, c.peek) == (Kind.BINARY, "BINARY[1]", True)
    assert (d.kind, d.name) == (Kind.BINARY_SIZE, "BINARY.SIZE[3]")
    assert (e.text, e.peek) == ("HEADER", True)
    assert req.sets_seen and req.needs_data and req.has_uid


@pytest.mark.parametrize("bad", [
    "(FLAGS ALL)", "BODY[", "BODY[1.]", "BODY[MIME]", "BODY[0]", "BODY[1.HEADER.FIELDS]",
    "BODY[HEADER.FIELDS ()]", "BODY[TEXT]<0>", "BODY[]<1.0>", "BINARY[1.MIME]",
    "BINARY.SIZE[1]<0.5>", "BODY[HEADER.FIELDS (A:B)]", "NOPE", "()", '"FLAGS"',
    "BODY[1.TEXTX]",
])
def test_malformed_attributes_are_bad(bad: str) -> None:
    with pytest.raises(FetchSyntaxError) as info:
        request(bad)
    assert info.value.status == "BAD"


def test_flags_only_fetch_does_not_read_the_file() -> None:
    src = source(SIMPLE)
    out = render_fetch(request("(UID FLAGS INTERNALDATE RFC822.SIZE)"), src)
    assert out == (b'(UID 7 FLAGS (\\Seen $Work) INTERNALDATE "14-Nov-2023 23:13:20 +0100" '
                   b"RFC822.SIZE 322)")
    assert src.read.count == 0  # type: ignore[attr-defined]
    render_fetch(request("(ENVELOPE BODYSTRUCTURE BODY[] BODY[1])"), src)
    assert src.read.count == 1  # type: ignore[attr-defined]


def test_keywords_that_are_not_atoms_are_left_out() -> None:
    flags = ("\\Seen", "bad keyword", "ok$1", "x(y", "\\Recent", "ä", "50%", "a[b")
    src = source(SIMPLE, flags=flags)
    assert render_fetch(request("FLAGS"), src) == b"(FLAGS (\\Seen ok$1 \\Recent))"


def test_uid_fetch_puts_uid_first_and_implicit_seen_adds_flags() -> None:
    req = request("BODY[TEXT]").with_uid().with_flags()
    assert [i.name for i in req.items] == ["UID", "BODY[TEXT]", "FLAGS"]
    assert fetch_response(3, req, source(SIMPLE)).startswith(b"* 3 FETCH (UID 7 BODY[TEXT] {55}")


def test_partial_ranges_echo_the_origin_and_truncate() -> None:
    assert fetch("BODY.PEEK[]<0.4>") == b"(BODY[]<0> {4}\r\nDate)"
    assert fetch("BODY.PEEK[TEXT]<6.3>") == b"(BODY[TEXT]<6> {3}\r\nJoe)"
    assert fetch("BODY.PEEK[]<320.100>") == b"(BODY[]<320> {2}\r\n\r\n)"
    assert fetch("BODY.PEEK[]<99999.1>") == b"(BODY[]<99999> {0}\r\n)"


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 400), st.integers(1, 400))
def test_partial_is_a_slice_of_the_full_body(origin: int, length: int) -> None:
    out = fetch(f"BODY.PEEK[]<{origin}.{length}>", MULTIPART_MIXED)
    value = read_fetch(out)[f"BODY[]<{origin}>"]
    assert value == MULTIPART_MIXED[origin : origin + length]


def test_sections_are_exact_slices() -> None:
    data = NESTED_RFC822
    got = read_fetch(fetch("(BODY[HEADER] BODY[2.HEADER] BODY[2.TEXT] BODY[2.1.MIME] "
                           "BODY[2.2] RFC822.TEXT)", data))
    assert got["BODY[HEADER]"] == data[: data.index(b"\r\n\r\n") + 4]
    assert str(got["BODY[2.HEADER]"]).startswith("b'From: inner@example.org")
    assert got["BODY[2.2]"] == b"<b>inner html</b>"
    assert got["BODY[2.1.MIME]"] == (b"Content-Type: text/plain; charset=utf-8\r\n"
                                     b"Content-Transfer-Encoding: 8bit\r\n\r\n")
    assert data.endswith(got["RFC822.TEXT"])  # type: ignore[arg-type]


def test_header_fields_are_byte_exact_and_case_insensitive() -> None:
    out = fetch('BODY.PEEK[HEADER.FIELDS (subject "TO" x-none)]', MULTIPART_MIXED)
    assert out == (b"(BODY[HEADER.FIELDS (SUBJECT TO X-NONE)] {109}\r\n"
                   b'To: "Bob" <bob@example.org>\r\n'
                   b"Subject: =?UTF-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?= and more\r\n"
                   b" folded subject line\r\n\r\n)")
    rest = read_fetch(fetch("BODY.PEEK[HEADER.FIELDS.NOT (Date From Subject To Message-Id "
                            "MIME-Version)]"))
    assert rest["BODY[HEADER.FIELDS.NOT (DATE FROM SUBJECT TO MESSAGE-ID MIME-VERSION)]"] == (
        b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n")


def test_binary_decodes_and_nul_travels_safely() -> None:
    got = read_fetch(fetch("(BINARY[3] BINARY.SIZE[3] BINARY.SIZE[1])", MULTIPART_MIXED))
    assert got["BINARY[3]"] == b"secret needle in base64\n"
    assert got["BINARY.SIZE[3]"] == 24
    assert b"~{24}" in fetch("BINARY[3]", MULTIPART_MIXED)
    with_nul = b"Content-Type: application/x\r\nContent-Transfer-Encoding: base64\r\n\r\nAGEA\r\n"
    assert fetch("BINARY.PEEK[1]", with_nul) == b"(BINARY[1] ~{3}\r\n\x00a\x00)"
    raw_nul = b"Subject: x\r\n\r\na\x00b"
    assert fetch("BODY.PEEK[TEXT]", raw_nul) == b"(BODY[TEXT] {3}\r\na\x80b)"


def test_binary_of_an_unknown_encoding_is_no_unknown_cte() -> None:
    data = b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n"
    with pytest.raises(UnknownCTE) as info:
        fetch("BINARY[1]", data)
    assert (info.value.status, info.value.code) == ("NO", "UNKNOWN-CTE")
    assert isinstance(info.value, ProtocolError)


def test_envelope_and_bodystructure_golden() -> None:
    assert fetch("ENVELOPE") == (
        b'(ENVELOPE ("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "afternoon meeting" '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'((NIL NIL "mooch" "owatagu.siam.example")) NIL NIL NIL '
        b'"<B27397-0100000@Blurdybloop.example>"))')
    assert fetch("BODY", CORPUS["no_content_type"]) == (
        b'(BODY ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 24 2))')
    assert fetch("BODYSTRUCTURE", CORPUS["empty_multipart"]) == (
        b'(BODYSTRUCTURE (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 '
        b'NIL NIL NIL NIL) "mixed" ("boundary" "never") NIL NIL NIL))')


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_output_follows_the_grammar(name: str) -> None:
    got = read_fetch(fetch("(ENVELOPE BODY BODYSTRUCTURE)", CORPUS[name]))
    check_envelope(got["ENVELOPE"])
    check_body(got["BODY"], extended=False)
    check_body(got["BODYSTRUCTURE"], extended=True)


@settings(max_examples=300, deadline=None)
@given(any_message)
def test_any_message_renders_legal_fetch_data(data: bytes) -> None:
    out = fetch("(ENVELOPE BODY BODYSTRUCTURE BODY[] BODY[1.MIME] BODY[2.1] "
                "BODY[HEADER.FIELDS (FROM TO)])", data)
    try:
        size = read_fetch(fetch("BINARY.SIZE[1]", data))["BINARY.SIZE[1]"]
        assert isinstance(size, int)
    except UnknownCTE:
        pass
    got = read_fetch(out)
    check_envelope(got["ENVELOPE"])
    check_body(got["BODY"], extended=False)
    check_body(got["BODYSTRUCTURE"], extended=True)
    served = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") if b"\n" in data else data
    if data.count(b"\n") == data.count(b"\r\n"):
        served = data
    assert got["BODY[]"] == served.replace(b"\x00", b"\x80")


def test_mime_fields_count_only_in_a_mime_message() -> None:
    plain = b"Content-Transfer-Encoding: base64\r\nContent-ID: <x>\r\n\r\nQUJD\r\n"
    assert fetch("BODYSTRUCTURE", plain) == (
        b'(BODYSTRUCTURE ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 6 1 '
        b"NIL NIL NIL NIL))")
    assert fetch("BINARY.PEEK[1]", plain) == b"(BINARY[1] {6}\r\nQUJD\r\n)"
    mime = b"MIME-Version: 1.0\r\n" + plain
    assert fetch("BINARY.PEEK[1]", mime) == b"(BINARY[1] ~{3}\r\nABC)"
    assert b'"<x>" NIL "base64"' in fetch("BODYSTRUCTURE", mime)
