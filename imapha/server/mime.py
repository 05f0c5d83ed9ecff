"""A tolerant MIME parser that records byte offsets and never rewrites (RFC 2045/2046, 5322).

Theory of operation
-------------------
:func:`parse` walks the raw message once and returns a tree of :class:`Part`.
A part is only offsets into the caller's bytes: where its header starts, where
its body starts (just after the blank line, which belongs to the header, as
``BODY[HEADER]`` wants it) and where its body ends. Every IMAP section
(``HEADER``, ``TEXT``, ``1.2``, ``1.MIME``) is then a slice of the stored file,
byte for byte; nothing is decoded or re-folded here.

* Lines end in CRLF or in a bare LF; both are accepted everywhere.
* The header ends at the first empty line; with none, it runs to the end of
  the part and the body is empty.
* A ``multipart/*`` body is cut at delimiter lines: ``--boundary`` at a line
  start followed by nothing but white space (or ``--`` for the close
  delimiter). The line end before a delimiter belongs to the delimiter
  (RFC 2046 §5.1.1), so it is in no part. A missing close delimiter ends the
  last part at the end of the enclosing region. A multipart whose delimiter is
  never found has no children (renderers show a dummy empty part, as Dovecot).
* Two cases where the line end before a delimiter is also the end of the
  part's own last line, and Dovecot counts it in the part (so do we, see
  :func:`_line_end_owner`): a nested multipart's close delimiter right before
  the outer delimiter, and a message/rfc822 part whose message is a header
  without blank line.
* A ``message/rfc822`` (or ``message/global``) body is parsed again as a
  message, one level deeper, whatever its transfer encoding (as Dovecot does:
  a base64 body then reads as a header without fields).
* A multipart or message part at depth :data:`MAX_DEPTH`, or once
  :data:`MAX_PARTS` parts are built, is not descended into: it becomes an
  ``application/octet-stream`` leaf keeping its parameters (Dovecot's limits
  and answer, so deep messages look the same from both). Header fields past
  :data:`MAX_FIELDS` are still inside the header slice but not indexed.

:func:`parse` never raises on any input: every loop moves forward and every
offset is clamped to the region it came from (a property test holds it to
that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .mimeparams import TOKEN_RE, parse_params, skip_cfws

__all__ = [
    "MAX_DEPTH",
    "MAX_FIELDS",
    "MAX_PARTS",
    "ContentType",
    "HeaderField",
    "Part",
    "parse",
    "unfold",
]

#: Depth (root = 0) at which multipart/message parts stop being descended into.
MAX_DEPTH = 99
#: Parts in one message we build; past it, multiparts become leaves.
MAX_PARTS = 10000
#: Header fields indexed per part (the header slice itself is always whole).
MAX_FIELDS = 2000


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field: ``name`` as written; ``start``/``end`` span its lines
    (``end`` after the final line end); the value starts at ``value_start``."""

    name: bytes
    start: int
    value_start: int
    end: int

    def raw_value(self, data: bytes) -> bytes:
        """The value as stored (folds and line ends included, minus the final one)."""
        raw = data[self.value_start : self.end]
        if raw.endswith(b"\r\n"):
            return raw[:-2]
        if raw.endswith(b"\n"):
            return raw[:-1]
        return raw


@dataclass(frozen=True, slots=True)
class ContentType:
    """A ``Content-Type`` as written: ``maintype``/``subtype`` keep their case."""

    maintype: bytes
    subtype: bytes
    params: tuple[tuple[bytes, bytes], ...]
    explicit: bool  # False: the RFC 2045 §5.2 / RFC 2046 §5.1.5 default

    @property
    def lower(self) -> tuple[bytes, bytes]:
        return self.maintype.lower(), self.subtype.lower()

    def param(self, name: bytes) -> bytes | None:
        name = name.lower()
        for key, value in self.params:
            if key.lower() == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Part:
    """One MIME entity. ``start``: header start; ``body_start``: after the blank
    line; ``end``: body end. ``children`` for multipart, ``message`` for an
    encapsulated message/rfc822."""

    start: int
    body_start: int
    end: int
    fields: tuple[HeaderField, ...]
    content_type: ContentType
    children: tuple[Part, ...] = ()
    message: Part | None = None
    preamble: tuple[int, int] | None = None
    epilogue: tuple[int, int] | None = None
    depth: int = 0
    blank_line: bool = True  # False: the header ran to the end, no blank line
    #: Whether Content-* fields other than Content-Type count (see :meth:`mime_field`).
    is_mime: bool = True
    _index: dict[bytes, tuple[HeaderField, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def is_multipart(self) -> bool:
        return self.content_type.lower[0] == b"multipart"

    @property
    def is_message(self) -> bool:
        return self.message is not None

    def header_slice(self) -> tuple[int, int]:
        return self.start, self.body_start

    def body_slice(self) -> tuple[int, int]:
        return self.body_start, self.end

    def get_all(self, name: bytes) -> tuple[HeaderField, ...]:
        """Fields named ``name`` (case-insensitive), in order."""
        return self._index.get(name.lower(), ())

    def first(self, data: bytes, name: bytes) -> bytes | None:
        """The first such field's value, unfolded and trimmed; None if absent."""
        found = self.get_all(name)
        return unfold(found[0].raw_value(data)) if found else None

    def mime_field(self, data: bytes, name: bytes) -> bytes | None:
        """A MIME field (Content-Transfer-Encoding, -ID, -Disposition...) if it counts.

        In a message's own header (the top one or an encapsulated one) they count
        only when the header has MIME-Version or Content-Type (RFC 2045 §4; Dovecot
        draws the line there too); in a multipart's parts always.
        """
        return self.first(data, name) if self.is_mime else None

    def transfer_encoding(self, data: bytes) -> bytes | None:
        """The Content-Transfer-Encoding mechanism as written, if it counts
        (:meth:`mime_field`) and is one token (comments allowed around it);
        None otherwise, which means 7bit (RFC 2045 §6.1; Dovecot ignores an
        unparsable value the same way)."""
        raw = self.mime_field(data, b"content-transfer-encoding")
        if raw is None:
            return None
        i = skip_cfws(raw, 0)
        m = TOKEN_RE.match(raw, i)
        if m is None or skip_cfws(raw, m.end()) != len(raw):
            return None
        return m[0]

    def walk(self) -> list[Part]:
        """This part and every part below it, depth first (iterative: no recursion limit)."""
        out: list[Part] = []
        stack: list[Part] = [self]
        while stack:
            part = stack.pop()
            out.append(part)
            below = list(part.children)
            if part.message is not None:
                below.append(part.message)
            stack.extend(reversed(below))
        return out


_LINE_END = re.compile(rb"\r?\n")
_FOLD_RE = re.compile(rb"\r?\n(?=[ \t])")
_CRLF_RE = re.compile(rb"\r?\n")


def unfold(raw: bytes) -> bytes:
    """RFC 5322 §2.2.3 unfolding: drop the line ends of folds, keep the white space."""
    if b"\n" in raw:
        raw = _CRLF_RE.sub(b"", raw)
    return raw.strip(b" \t")


def _next_line(data: bytes, pos: int, limit: int) -> tuple[int, int]:
    """(end of the line's content, start of the next line) within ``limit``."""
    nl = data.find(b"\n", pos, limit)
    if nl < 0:
        return limit, limit
    content_end = nl - 1 if nl > pos and data[nl - 1] == 0x0D else nl
    return content_end, nl + 1


def _parse_header(
    data: bytes, start: int, limit: int
) -> tuple[int, tuple[HeaderField, ...], bool]:
    """Header fields of the region, where the body starts, and whether a blank line
    ended the header (False: it ran to the end of the region)."""
    fields: list[HeaderField] = []
    pos = start
    name: bytes | None = None
    fstart = vstart = 0
    while pos < limit:
        content_end, nxt = _next_line(data, pos, limit)
        if content_end == pos:  # the empty line (or a lone CR before LF)
            if name is not None and len(fields) < MAX_FIELDS:
                fields.append(HeaderField(name, fstart, vstart, pos))
            return nxt, tuple(fields), True
        c = data[pos]
        if c in (0x20, 0x09) and name is not None:
            pos = nxt
            continue
        if name is not None and len(fields) < MAX_FIELDS:
            fields.append(HeaderField(name, fstart, vstart, pos))
        colon = data.find(b":", pos, content_end)
        if colon < 0:
            name, fstart, vstart = data[pos:content_end], pos, content_end
        else:
            name, fstart, vstart = data[pos:colon].rstrip(b" \t"), pos, colon + 1
        pos = nxt
    if name is not None and len(fields) < MAX_FIELDS:
        fields.append(HeaderField(name, fstart, vstart, limit))
    return limit, tuple(fields), False


_DEFAULT_TEXT = ContentType(b"text", b"plain", ((b"charset", b"us-ascii"),), False)
_DEFAULT_MESSAGE = ContentType(b"message", b"rfc822", (), False)
_TYPE_RE = re.compile(rb"([^\s/;()\"]+)\s*/\s*([^\s/;()\"]+)")


def _content_type(data: bytes, fields: tuple[HeaderField, ...], digest: bool) -> ContentType:
    default = _DEFAULT_MESSAGE if digest else _DEFAULT_TEXT
    raw = None
    for f in fields:
        if f.name.lower() == b"content-type":
            raw = unfold(f.raw_value(data))
            break
    if raw is None:
        return default
    head, params = parse_params(raw)
    m = _TYPE_RE.fullmatch(head) if head else None
    if m is None:
        # RFC 2045 §5.2: an unparsable type is treated as text/plain (us-ascii).
        m2 = _TYPE_RE.match(_skip_cfws_bytes(raw))
        if m2 is None:
            return _DEFAULT_TEXT
        m = m2
    return ContentType(m[1], m[2], params, True)


def _skip_cfws_bytes(raw: bytes) -> bytes:
    return raw[skip_cfws(raw, 0) :]


class _Budget:
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts = 0


def _delimiters(
    data: bytes, boundary: bytes, start: int, end: int
) -> list[tuple[int, int, int, bool]]:
    """Delimiter lines in [start, end): (cut, delimiter start, next part start, is_close).

    ``cut`` is where the previous part ends: before the line end preceding the
    delimiter (RFC 2046 §5.1.1), or the delimiter itself at the region start.
    """
    out: list[tuple[int, int, int, bool]] = []
    marker = b"--" + boundary
    pos = start
    while pos < end:
        hit = data.find(marker, pos, end)
        if hit < 0:
            break
        at_line_start = hit == start or data[hit - 1] == 0x0A
        after = hit + len(marker)
        content_end, nxt = _next_line(data, after, end)
        rest = data[after:content_end]
        is_close = rest.startswith(b"--")
        if at_line_start and (is_close or not rest.strip(b" \t")):
            cut = hit
            if hit > start and data[hit - 1] == 0x0A:
                cut = hit - 2 if hit - 1 > start and data[hit - 2] == 0x0D else hit - 1
            out.append((max(cut, start), hit, nxt, is_close))
            if is_close:
                break
            pos = nxt
        else:
            pos = after
    return out


def _line_end_owner(data: bytes, part: Part) -> str | None:
    """Who keeps the line end we cut before the next delimiter, as Dovecot has it:

    * ``"close"``: ``part`` is a multipart (possibly inside message/rfc822 parts)
      whose close delimiter has nothing after it: the line end is that line's own,
      so the part and everything down to the multipart extend over it;
    * ``"message"``: ``part`` is a message/rfc822 whose message is a header with no
      blank line: the message/rfc822 part's body extends over the line end, but
      the encapsulated header does not;
    * None: the line end precedes the delimiter (RFC 2046 §5.1.1), as usual.
    """
    p = part
    for _ in range(MAX_DEPTH + 2):
        if p.message is None:
            break
        p = p.message
    if p is not part and not p.blank_line:
        return "message"
    if p.children and p.epilogue == (p.end, p.end) and data[p.end - 1 : p.end] != b"\n":
        return "close"
    return None


def _parse_part(
    data: bytes, start: int, end: int, depth: int, *, digest: bool, budget: _Budget,
    top: bool = False,
) -> Part:
    """One entity; ``top`` for a message's own header (the root or an encapsulated one)."""
    budget.parts += 1
    body_start, fields, blank_line = _parse_header(data, start, end)
    ctype = _content_type(data, fields, digest)
    index: dict[bytes, list[HeaderField]] = {}
    for f in fields:
        index.setdefault(f.name.lower(), []).append(f)
    frozen_index = {k: tuple(v) for k, v in index.items()}
    is_mime = not top or b"mime-version" in frozen_index or b"content-type" in frozen_index

    def make(children: tuple[Part, ...] = (), message: Part | None = None,
             preamble: tuple[int, int] | None = None,
             epilogue: tuple[int, int] | None = None) -> Part:
        return Part(start, body_start, end, fields, ctype, children, message, preamble,
                    epilogue, depth, blank_line, is_mime, frozen_index)

    deeper = depth < MAX_DEPTH and budget.parts < MAX_PARTS
    maintype, subtype = ctype.lower
    if not deeper and maintype in (b"multipart", b"message"):
        ctype = ContentType(b"application", b"octet-stream", ctype.params, True)
        maintype, subtype = ctype.lower
    if maintype == b"multipart" and deeper:
        boundary = ctype.param(b"boundary")
        if boundary:
            delims = _delimiters(data, boundary, body_start, end)
            if delims:
                children: list[Part] = []
                child_digest = subtype == b"digest"
                for (_, _, part_start, is_close), nxt in zip(
                    delims, [*delims[1:], None], strict=True
                ):
                    if is_close or budget.parts >= MAX_PARTS:
                        break
                    if nxt is None and part_start >= end and data[end - 1 : end] != b"\n":
                        break  # a delimiter at the very end, without line end: no part
                    part_end = max(end if nxt is None else nxt[0], part_start)
                    child = _parse_part(data, part_start, part_end, depth + 1,
                                        digest=child_digest, budget=budget)
                    if nxt is not None and part_end < nxt[1]:
                        owner = _line_end_owner(data, child)
                        if owner == "close":
                            child = _parse_part(data, part_start, nxt[1], depth + 1,
                                                digest=child_digest, budget=budget)
                        elif owner == "message":
                            child = replace(child, end=nxt[1])
                    children.append(child)
                last = delims[-1]
                epilogue = (last[2], end) if last[3] else None
                return make(tuple(children), preamble=(body_start, delims[0][0]),
                            epilogue=epilogue)
    if maintype == b"message" and subtype in (b"rfc822", b"global") and deeper:
        inner = _parse_part(data, body_start, end, depth + 1, digest=False, budget=budget,
                            top=True)
        return make(message=inner)
    return make()


def parse(data: bytes) -> Part:
    """The MIME tree of a whole message; never raises (see the module doc)."""
    return _parse_part(data, 0, len(data), 0, digest=False, budget=_Budget(), top=True)
