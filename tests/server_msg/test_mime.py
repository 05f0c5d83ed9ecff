"""The MIME parser: golden offsets, tolerance, limits, and properties (never raises, bounds)."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from imapha.server import mime
from imapha.server.message import ParsedMessage, crlf_size, decode_header, to_crlf
from imapha.server.mime import Part, parse
from imapha.server.mimeparams import parse_params
from tests.server_msg.corpus import BARE_LF, CORPUS, MISSING_FINAL_BOUNDARY, MULTIPART_MIXED
from tests.server_msg.strategies import Leaf, Msg, Node, any_message, serialize, trees


def _check_bounds(data: bytes, root: Part) -> None:
    n = len(data)
    assert root.start == 0 and root.end == n
    for part in root.walk():
        assert 0 <= part.start <= part.body_start <= part.end <= n
        prev = part.start
        for f in part.fields:
            assert prev <= f.start <= f.value_start <= f.end <= part.body_start
            prev = f.end
        last = part.body_start
        for child in part.children:
            assert last <= child.start and child.end <= part.end
            last = child.end
        if part.message is not None:
            # The message/rfc822 part may own one line end more than its message.
            assert part.message.start == part.body_start
            assert part.end - 2 <= part.message.end <= part.end
        for region in (part.preamble, part.epilogue):
            if region is not None:
                assert part.body_start <= region[0] <= region[1] <= part.end


@settings(max_examples=400, deadline=None)
@given(any_message)
def test_parse_never_raises_and_offsets_are_ordered(data: bytes) -> None:
    root = parse(data)
    _check_bounds(data, root)
    msg = ParsedMessage(data)
    for path in [(), (1,), (2,), (1, 1), (2, 1, 3)]:
        for text in ("", "HEADER", "TEXT", "MIME"):
            if text == "MIME" and not path:
                continue
            value = msg.section(path, text)
            assert value is None or isinstance(value, bytes)


def _shape(node: Node) -> object:
    if isinstance(node, Leaf):
        return "leaf"
    if isinstance(node, Msg):
        return ("msg", _shape(node.inner))
    return tuple(_shape(c) for c in node.children)


def _parsed_shape(part: Part) -> object:
    if part.message is not None:
        return ("msg", _parsed_shape(part.message))
    if part.children:
        return tuple(_parsed_shape(c) for c in part.children)
    return "leaf"


def _leaf_bodies(node: Node) -> list[bytes]:
    if isinstance(node, Leaf):
        return [node.body]
    if isinstance(node, Msg):
        return _leaf_bodies(node.inner)
    return [b for c in node.children for b in _leaf_bodies(c)]


@settings(max_examples=200, deadline=None)
@given(trees, st.sampled_from([b"\r\n", b"\n"]))
def test_generated_trees_parse_back_to_the_same_shape_and_bodies(tree: Node, eol: bytes) -> None:
    data = b"Subject: generated" + eol + serialize(tree, eol)
    root = parse(data)
    assert _parsed_shape(root) == _shape(tree)
    leaves = [p for p in root.walk() if not p.children and p.message is None]
    got = [data[p.body_start : p.end] for p in leaves]
    assert got == [b.replace(b"\n", eol) for b in _leaf_bodies(tree)]


def test_multipart_golden_offsets() -> None:
    data = MULTIPART_MIXED
    root = parse(data)
    assert [c.content_type.lower for c in root.children] == [
        (b"text", b"plain"), (b"multipart", b"alternative"), (b"application", b"octet-stream")]
    assert data[root.preamble[0] : root.preamble[1]] == b"This is the preamble."  # type: ignore[index]
    assert data[root.epilogue[0] : root.epilogue[1]] == b"This is the epilogue.\r\n"  # type: ignore[index]
    alt = root.children[1]
    assert [data[c.body_start : c.end] for c in alt.children] == [
        b"alternative plain", b"<p>alternative html</p>"]
    first = root.children[0]
    assert data[first.start : first.body_start].startswith(b"Content-Type: text/plain;")
    assert data[first.start : first.body_start].endswith(b"printable\r\n\r\n")


def test_missing_final_boundary_ends_the_last_part_at_the_end() -> None:
    root = parse(MISSING_FINAL_BOUNDARY)
    assert len(root.children) == 2
    last = root.children[1]
    assert MISSING_FINAL_BOUNDARY[last.body_start : last.end] == b"second, never closed\r\n"
    assert root.epilogue is None


def test_bare_lf_parses_as_is_and_is_served_as_crlf() -> None:
    root = parse(BARE_LF)
    assert [BARE_LF[c.body_start : c.end] for c in root.children] == [b"one", b"two"]
    served = ParsedMessage(BARE_LF)
    assert served.data == BARE_LF.replace(b"\n", b"\r\n")
    assert served.section((2,), "") == b"two"
    assert to_crlf(CORPUS["simple"]) is CORPUS["simple"]
    for raw in CORPUS.values():
        assert crlf_size(raw) == len(to_crlf(raw))


def test_header_without_blank_line_is_all_header() -> None:
    data = b"From: a@b\r\nSubject: x"
    root = parse(data)
    assert (root.body_start, root.end) == (len(data), len(data))
    assert [f.name for f in root.fields] == [b"From", b"Subject"]
    assert root.first(data, b"subject") == b"x"


def test_folded_fields_and_lines_without_colon() -> None:
    data = b"Subject: a\r\n  b\r\n\tc\r\nGarbage line\r\nX: 1\r\n\r\nbody"
    root = parse(data)
    assert [f.name for f in root.fields] == [b"Subject", b"Garbage line", b"X"]
    assert root.first(data, b"SUBJECT") == b"a  b\tc"
    assert data[root.body_start :] == b"body"


def test_absurd_nesting_is_cut_at_the_depth_limit_quickly() -> None:
    depth = 3000
    data = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
        for i in range(depth)
    ) + b"\r\nleaf\r\n"
    started = time.monotonic()
    root = parse(data)
    assert time.monotonic() - started < 5
    assert max(p.depth for p in root.walk()) == mime.MAX_DEPTH
    deepest = max(root.walk(), key=lambda p: p.depth)
    assert deepest.content_type.lower == (b"application", b"octet-stream")
    assert deepest.content_type.param(b"boundary") == b"b%d" % mime.MAX_DEPTH
    nested = b"".join(b"Content-Type: message/rfc822\r\n\r\n" for _ in range(depth)) + b"x"
    root = parse(nested)
    assert max(p.depth for p in root.walk()) == mime.MAX_DEPTH


def test_huge_header_and_many_parts_stay_bounded() -> None:
    header = b"".join(b"X-Field-%d: %s\r\n" % (i, b"v" * 50) for i in range(20000))
    data = header + b"\r\nbody"
    started = time.monotonic()
    root = parse(data)
    assert len(root.fields) == mime.MAX_FIELDS
    assert data[root.body_start :] == b"body"
    parts = b"Content-Type: multipart/mixed; boundary=z\r\n\r\n" + b"--z\r\n\r\nx\r\n" * 20000
    root = parse(parts)
    assert len(root.walk()) <= mime.MAX_PARTS + 1
    assert time.monotonic() - started < 10


def test_params_quoting_comments_and_rfc2231_continuations() -> None:
    head, params = parse_params(
        b'text/plain (comment) ; charset = "utf\\"8" ; name*0="a b"; name*1*=%20c; junk; x=y'
    )
    assert head == b"text/plain"
    assert params == ((b"charset", b'utf"8'), (b"x", b"y"), (b"name*", b"''a b%20c"))
    _, params = parse_params(b"a/b; y*1=second; y*0=first; z*=utf-8''%41; n*0*=u''%C3; n*1=5%")
    assert params == ((b"n*", b"u''%C35%25"), (b"y", b"firstsecond"), (b"z*", b"utf-8''%41"))


def test_encoded_words_are_decoded_and_joined() -> None:
    assert decode_header(b"=?utf-8?q?J=C3=B6rg?= =?utf-8?b?IE3DvGxsZXI=?= <j@x>") == (
        "Jörg Müller <j@x>")
    assert decode_header(b"=?iso-8859-1?q?Andr=E9?=") == "André"
    assert decode_header(b"=?x-unknown?q?abc?= raw \xe9") == "abc raw é"
    assert decode_header(b"=?utf-8?b?broken!!?=") == "=?utf-8?b?broken!!?="
