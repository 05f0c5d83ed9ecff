"""An independent reader of FETCH data that checks RFC 3501 §9 grammar strictly.

Used by the property tests as the oracle for "what we emit is legal IMAP": it
knows nothing of our renderer. Values read are ``None`` (NIL), ``int``,
``bytes`` (quoted or literal) or :class:`L` (a list, remembering whether each
item was preceded by SP, since ``1*body`` and ``1*address`` allow none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Value = "None | int | bytes | L"


class GrammarError(AssertionError):
    pass


@dataclass
class L:
    items: list[object]
    spaced: list[bool]  # spaced[i]: SP before items[i] (False for i == 0)


_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"')
_LITERAL = re.compile(rb"~?\{([0-9]+)\}\r\n")
_ATOM = re.compile(rb"[^\s()\"{}\[\]]+(?:\[[^\]]*\](?:<[0-9]+>)?)?")


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0

    def value(self) -> object:
        d, i = self.data, self.i
        if i >= len(d):
            raise GrammarError("unexpected end")
        if d[i : i + 1] == b"(":
            self.i += 1
            items: list[object] = []
            spaced: list[bool] = []
            first = True
            while True:
                if self.data[self.i : self.i + 1] == b")":
                    self.i += 1
                    return L(items, spaced)
                sp = self.data[self.i : self.i + 1] == b" "
                if sp:
                    if first:
                        raise GrammarError("space after '('")
                    self.i += 1
                elif not first and self.data[self.i - 1 : self.i] != b")":
                    raise GrammarError(f"missing space at {self.i}")
                spaced.append(sp)
                items.append(self.value())
                first = False
        m = _QUOTED.match(d, i)
        if m:
            self.i = m.end()
            return re.sub(rb"\\(.)", rb"\1", m[1])
        m = _LITERAL.match(d, i)
        if m:
            n = int(m[1])
            self.i = m.end() + n
            if self.i > len(d):
                raise GrammarError("short literal")
            return d[m.end() : self.i]
        m = _ATOM.match(d, i)
        if m:
            self.i = m.end()
            word = m[0]
            if word.upper() == b"NIL":
                return None
            if word.isdigit():
                return int(word)
            return word.decode()
        raise GrammarError(f"unexpected {d[i:i + 20]!r}")


def read_fetch(payload: bytes) -> dict[str, object]:
    """``(NAME value ...)`` -> {NAME: value}."""
    r = Reader(payload)
    top = r.value()
    if r.i != len(payload) or not isinstance(top, L) or not all(top.spaced[1:]):
        raise GrammarError("not one spaced list")
    if len(top.items) % 2:
        raise GrammarError("odd number of items")
    out: dict[str, object] = {}
    for k in range(0, len(top.items), 2):
        name = top.items[k]
        if not isinstance(name, str):
            raise GrammarError(f"item name {name!r}")
        out[name] = top.items[k + 1]
    return out


def _nstring(v: object) -> None:
    if v is not None and not isinstance(v, bytes):
        raise GrammarError(f"expected nstring, got {v!r}")


def _string(v: object) -> None:
    if not isinstance(v, bytes):
        raise GrammarError(f"expected string, got {v!r}")


def _number(v: object) -> None:
    if not isinstance(v, int):
        raise GrammarError(f"expected number, got {v!r}")


def _spaced(lst: L) -> None:
    if not all(lst.spaced[1:]):
        raise GrammarError("items must be separated by SP")


def _params(v: object) -> None:
    if v is None:
        return
    if not isinstance(v, L) or not v.items or len(v.items) % 2:
        raise GrammarError(f"body-fld-param {v!r}")
    _spaced(v)
    for x in v.items:
        _string(x)


def _addresses(v: object) -> None:
    if v is None:
        return
    if not isinstance(v, L) or not v.items or any(v.spaced):
        raise GrammarError(f"address list {v!r}")
    for a in v.items:
        if not isinstance(a, L) or len(a.items) != 4:
            raise GrammarError(f"address {a!r}")
        _spaced(a)
        for x in a.items:
            _nstring(x)


def check_envelope(v: object) -> None:
    if not isinstance(v, L) or len(v.items) != 10:
        raise GrammarError(f"envelope {v!r}")
    _spaced(v)
    _nstring(v.items[0])
    _nstring(v.items[1])
    for x in v.items[2:8]:
        _addresses(x)
    _nstring(v.items[8])
    _nstring(v.items[9])


def _dsp(v: object) -> None:
    if v is None:
        return
    if not isinstance(v, L) or len(v.items) != 2:
        raise GrammarError(f"body-fld-dsp {v!r}")
    _string(v.items[0])
    _params(v.items[1])


def _lang(v: object) -> None:
    if v is None or isinstance(v, bytes):
        return
    if not isinstance(v, L) or not v.items:
        raise GrammarError(f"body-fld-lang {v!r}")
    for x in v.items:
        _string(x)


def check_body(v: object, extended: bool) -> None:
    """RFC 3501 §9 ``body``; ``extended`` demands the BODYSTRUCTURE extension data."""
    if not isinstance(v, L) or not v.items:
        raise GrammarError(f"body {v!r}")
    items = v.items
    if isinstance(items[0], L):  # body-type-mpart
        k = 0
        while k < len(items) and isinstance(items[k], L):
            if k and v.spaced[k]:
                raise GrammarError("SP between bodies of a multipart")
            check_body(items[k], extended)
            k += 1
        rest = items[k:]
        if not all(v.spaced[k:]):
            raise GrammarError("missing SP in multipart")
        if not rest:
            raise GrammarError("multipart without subtype")
        _string(rest[0])
        if extended:
            if len(rest) < 5:
                raise GrammarError("multipart without extension data")
            _params(rest[1])
            _dsp(rest[2])
            _lang(rest[3])
            _nstring(rest[4])
        elif len(rest) != 1:
            raise GrammarError("BODY with extension data")
        return
    _spaced(v)
    if len(items) < 7:
        raise GrammarError(f"body-fields too short {v!r}")
    _string(items[0])
    _string(items[1])
    _params(items[2])
    _nstring(items[3])
    _nstring(items[4])
    _string(items[5])
    _number(items[6])
    assert isinstance(items[0], bytes) and isinstance(items[1], bytes)
    kind = (items[0].lower(), items[1].lower())
    k = 7
    if kind == (b"message", b"rfc822"):
        check_envelope(items[7])
        check_body(items[8], extended)
        _number(items[9])
        k = 10
    elif kind[0] == b"text":
        _number(items[7])
        k = 8
    ext = items[k:]
    if extended:
        if len(ext) < 4:
            raise GrammarError("single part without extension data")
        _nstring(ext[0])
        _dsp(ext[1])
        _lang(ext[2])
        _nstring(ext[3])
    elif ext:
        raise GrammarError("BODY with extension data")
