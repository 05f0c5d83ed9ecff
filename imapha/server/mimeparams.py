"""MIME header parameters: ``value; a=b; c="d"`` (RFC 2045 §5.1, RFC 2183, RFC 2231).

Theory of operation
-------------------
:func:`parse_params` reads a Content-Type or Content-Disposition value into its
head (``text/plain``, ``attachment``) and its parameters, tolerating what real
mail holds: comments anywhere (RFC 5322 CFWS, nested), white space around
``=``, quoted values with escapes, junk between parameters (skipped). A quoted
value that is never closed drops that parameter and the rest, as Dovecot does.
RFC 2231 parameters are joined the way Dovecot writes them in BODYSTRUCTURE
(:func:`_join_continuations`). Values are returned as written, never decoded.
"""

from __future__ import annotations

import re

__all__ = ["TOKEN_RE", "parse_params", "skip_cfws"]

TOKEN_RE = re.compile(rb"[^\s;=\"()]+")
_HEAD_RE = re.compile(rb"[^;\s(]*")


def skip_cfws(raw: bytes, i: int) -> int:
    n = len(raw)
    while i < n:
        c = raw[i]
        if c in b" \t\r\n":
            i += 1
        elif c == 0x28:  # "(" comment, nested
            depth = 0
            while i < n:
                c = raw[i]
                if c == 0x5C:
                    i += 2
                    continue
                if c == 0x28:
                    depth += 1
                elif c == 0x29:
                    depth -= 1
                    if depth == 0:
                        i += 1
                        break
                i += 1
        else:
            break
    return min(i, n)


def _quoted(raw: bytes, i: int) -> tuple[bytes | None, int]:
    """A quoted-string starting at ``raw[i] == '"'``: its unescaped value (None if it
    is never closed) and where it ends."""
    out = bytearray()
    i += 1
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == 0x5C and i + 1 < n:
            out.append(raw[i + 1])
            i += 2
            continue
        if c == 0x22:
            return bytes(out), i + 1
        if c not in (0x0D, 0x0A):
            out.append(c)
        i += 1
    return None, n


def parse_params(raw: bytes) -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
    """``value; a=b; c="d"`` -> (``value``, ((a, b), (c, d))). Tolerant of junk; a
    parameter whose quoted value is never closed is dropped."""
    i = skip_cfws(raw, 0)
    m = _HEAD_RE.match(raw, i)
    head = m[0] if m else b""
    i = m.end() if m else i
    params: list[tuple[bytes, bytes]] = []
    n = len(raw)
    while i < n:
        semi = raw.find(b";", i)
        if semi < 0:
            break
        i = skip_cfws(raw, semi + 1)
        tm = TOKEN_RE.match(raw, i)
        if tm is None:
            continue
        name = tm[0]
        i = skip_cfws(raw, tm.end())
        if i >= n or raw[i] != 0x3D:
            continue
        i = skip_cfws(raw, i + 1)
        if i < n and raw[i] == 0x22:
            quoted, i = _quoted(raw, i)
            if quoted is None:  # an unclosed quote: the parameter is dropped (as Dovecot)
                break
            value = quoted
        else:
            vm = TOKEN_RE.match(raw, i)
            value = vm[0] if vm else b""
            i = vm.end() if vm else i
        params.append((name, value))
    return head, _join_continuations(params)


_STAR_RE = re.compile(rb"(.+?)(?:\*([0-9]{1,3}))?(\*?)")


def _join_continuations(
    params: list[tuple[bytes, bytes]],
) -> tuple[tuple[bytes, bytes], ...]:
    """RFC 2231 §3-4 parameters (``name*``, ``name*0``, ``name*1*``...), as Dovecot
    writes them: plain parameters first in their order, then every ``*`` parameter
    joined and sorted by name. Pieces are joined in index order; if any piece is
    extended, the result is ``name*`` in extended form (``''`` put in front when the
    first piece is not extended, ``%`` escaped in unextended pieces); values stay
    otherwise as written (not percent-decoded)."""
    if not any(b"*" in k for k, _ in params):
        return tuple(params)
    plain: list[tuple[bytes, bytes]] = []
    groups: dict[bytes, tuple[bytes, list[tuple[int, bool, bytes]]]] = {}
    for key, value in params:
        m = _STAR_RE.fullmatch(key) if b"*" in key else None
        if m is None:
            plain.append((key, value))
            continue
        base = m[1]
        index = int(m[2]) if m[2] is not None else -1
        groups.setdefault(base.lower(), (base, []))[1].append((index, bool(m[3]), value))
    out = list(plain)
    for lowered in sorted(groups):
        base, pieces = groups[lowered]
        pieces.sort(key=lambda p: p[0])
        if not any(ext for _, ext, _ in pieces):
            out.append((base, b"".join(v for _, _, v in pieces)))
            continue
        joined = b"" if pieces[0][1] else b"''"
        joined += b"".join(v if ext else v.replace(b"%", b"%25") for _, ext, v in pieces)
        out.append((base + b"*", joined))
    return tuple(out)
