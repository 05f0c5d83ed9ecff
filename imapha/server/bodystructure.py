"""BODY and BODYSTRUCTURE (RFC 3501 §7.4.2) from a parsed MIME tree.

Theory of operation
-------------------
A single part is ``(type subtype params id description encoding size ...)``
with the line count added for ``text/*``, and envelope, body and line count
for ``message/rfc822``. A multipart is its children written back to back
(``1*body``: no space between them) followed by its subtype. BODYSTRUCTURE
adds the extension data: for a single part MD5, disposition, language and
location; for a multipart its parameters, disposition, language and location.

Values are taken as written (type, subtype and parameter names keep their case,
parameter values are unquoted), which is what Dovecot does for BODYSTRUCTURE.
Defaults follow RFC 2045: no Content-Type is ``"text" "plain" ("charset"
"us-ascii")``, no Content-Transfer-Encoding is ``"7bit"``. A multipart with no
part found gets one empty text/plain child, since the grammar demands one.

The result is a :mod:`imapha.server.nodes` tree (tokens plus back-to-back lists).
"""

from __future__ import annotations

import re

from imapha.imap.tokens import NIL, Atom, PList, Quoted, Token, nstring, number

from .envelope import envelope
from .mime import Part
from .mimeparams import parse_params
from .nodes import Adjacent, Node, NodeList

__all__ = ["body_structure"]


def _params(params: tuple[tuple[bytes, bytes], ...]) -> Token:
    if not params:
        return NIL
    flat: list[Token] = []
    for name, value in params:
        flat += [nstring(name), nstring(value)]
    return PList(tuple(flat))


def _field(part: Part, data: bytes, name: bytes) -> bytes | None:
    return part.mime_field(data, name)


def _disposition(part: Part, data: bytes) -> Token:
    raw = _field(part, data, b"content-disposition")
    if not raw:
        return NIL
    head, params = parse_params(raw)
    if not head:
        return NIL
    return PList((nstring(head), _params(params)))


_LANG_SPLIT = re.compile(rb"[,\s]+")


def _language(part: Part, data: bytes) -> Token:
    raw = _field(part, data, b"content-language")
    if not raw:
        return NIL
    raw = re.sub(rb"\([^)]*\)", b" ", raw)
    langs = [t for t in _LANG_SPLIT.split(raw) if t]
    if not langs:
        return NIL
    return PList(tuple(nstring(t) for t in langs))


def _lines(data: bytes, part: Part) -> Atom:
    return number(data.count(b"\n", part.body_start, part.end))


_DUMMY = (
    Quoted(b"text"), Quoted(b"plain"), PList((Quoted(b"charset"), Quoted(b"us-ascii"))),
    NIL, NIL, Quoted(b"7bit"), number(0), number(0),
)


def body_structure(part: Part, data: bytes, extended: bool = True) -> Node:
    """BODYSTRUCTURE (``extended``) or BODY of ``part``, recursively (iteration-safe to
    :data:`imapha.server.mime.MAX_DEPTH`)."""
    ct = part.content_type
    if part.is_multipart and part.children:
        items: list[Node] = [
            Adjacent(tuple(body_structure(c, data, extended) for c in part.children)),
            nstring(ct.subtype),
        ]
        if extended:
            items += [
                _params(ct.params), _disposition(part, data), _language(part, data),
                nstring(_field(part, data, b"content-location")),
            ]
        return NodeList(tuple(items))
    if part.is_multipart:
        dummy: tuple[Node, ...] = _DUMMY + ((NIL, NIL, NIL, NIL) if extended else ())
        items = [NodeList(dummy), nstring(ct.subtype)]
        if extended:
            items += [_params(ct.params), _disposition(part, data), _language(part, data),
                      nstring(_field(part, data, b"content-location"))]
        return NodeList(tuple(items))
    encoding = part.transfer_encoding(data)
    params = ct.params
    if ct.lower[0] == b"text" and ct.param(b"charset") is None:
        params = (*params, (b"charset", b"us-ascii"))  # RFC 2045 §5.2, RFC 2046 §4.1.2
    basic: list[Node] = [
        nstring(ct.maintype),
        nstring(ct.subtype),
        _params(params),
        nstring(_field(part, data, b"content-id")),
        nstring(_field(part, data, b"content-description")),
        nstring(encoding if encoding else b"7bit"),
        number(part.end - part.body_start),
    ]
    if part.message is not None:
        inner = part.message
        basic += [envelope(inner, data), body_structure(inner, data, extended),
                  _lines(data, part)]
    elif ct.lower == (b"message", b"rfc822"):
        # Not descended into (too deep, or base64/QP encoded), but the grammar
        # (RFC 3501 §9 body-type-msg) still wants an envelope and a body.
        dummy_body = _DUMMY + ((NIL, NIL, NIL, NIL) if extended else ())
        basic += [PList((NIL,) * 10), NodeList(dummy_body), _lines(data, part)]
    elif ct.lower[0] == b"text":
        basic.append(_lines(data, part))
    if extended:
        basic += [
            nstring(_field(part, data, b"content-md5")),
            _disposition(part, data),
            _language(part, data),
            nstring(_field(part, data, b"content-location")),
        ]
    return NodeList(tuple(basic))
