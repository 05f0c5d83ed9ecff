"""Hypothesis strategies for messages: raw junk, MIME-ish fragments, and generated trees."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

FRAGMENTS = [
    b"--b\r\n", b"--b--\r\n", b"--b", b"--c\n", b"--c--", b"\r\n", b"\n", b"\r", b" ",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: multipart/alternative; boundary=\"c\"\n",
    b"Content-Type: message/rfc822\r\n", b"Content-Type: multipart/digest; boundary=b\r\n",
    b"Content-Type: text/plain; charset=\"utf-8\r\n",
    b"Content-Transfer-Encoding: base64\r\n", b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Disposition: attachment; filename*0=a; filename*1*=b\r\n",
    b"From: \"a\\\" b\" <x@y>, (c) z@\r\n", b"To: g: a@b, ;\r\n", b"Subject: =?utf-8?b?w7w=?=\r\n",
    b" folded\r\n", b"\tfolded\n", b"No colon here\r\n", b": empty name\r\n",
    b"text", b"=3D=\r\n", b"QUJD", b"\x00", b"\xff\xfe", b"(", b")", b"\"", b"<", b">", b"@",
]

mimeish = st.lists(st.sampled_from(FRAGMENTS), max_size=80).map(b"".join)
junk = st.binary(max_size=3000)
any_message = st.one_of(mimeish, junk)


@dataclass(frozen=True)
class Leaf:
    body: bytes


@dataclass(frozen=True)
class Multi:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Msg:
    inner: Node


Node = Leaf | Multi | Msg

_line = st.text(alphabet="abcxyz 0123-=", min_size=0, max_size=20).map(
    lambda s: s.encode().lstrip(b"-"))
_body = st.lists(_line, max_size=5).map(b"\n".join)

trees = st.recursive(
    _body.map(Leaf),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4).map(lambda c: Multi(tuple(c))),
        inner.map(Msg),
    ),
    max_leaves=12,
)


def serialize(node: Node, eol: bytes, level: int = 0) -> bytes:
    """The entity (header + body) for ``node``; boundaries are unique per level."""
    if isinstance(node, Leaf):
        return b"Content-Type: text/plain" + eol + eol + node.body.replace(b"\n", eol)
    if isinstance(node, Msg):
        inner = serialize(node.inner, eol, level + 1)
        return b"Content-Type: message/rfc822" + eol + eol + b"Subject: inner" + eol + inner
    boundary = b"bnd%d" % level
    out = b"Content-Type: multipart/mixed; boundary=\"" + boundary + b"\"" + eol + eol
    out += b"preamble" + eol
    for child in node.children:
        out += b"--" + boundary + eol + serialize(child, eol, level + 1) + eol
    out += b"--" + boundary + b"--" + eol + b"epilogue" + eol
    return out
