"""One stored message as FETCH and SEARCH see it: bytes, MIME tree, sections, decoding.

Theory of operation
-------------------
:class:`ParsedMessage` wraps the bytes of one message file and parses them
(:mod:`imapha.server.mime`) on first use only, so FLAGS/UID-only work never
touches the file. IMAP section numbers (RFC 3501 §6.4.5) resolve to parts with
:meth:`ParsedMessage.part`: a non-multipart entity is its own part ``1``, and
after a ``message/rfc822`` part the numbering continues inside the message it
encapsulates. Section texts are slices of the bytes (:meth:`section`).

Line ends: IMAP wants CRLF (RFC 3501 §2.2). A file stored with bare LF line
ends (common when an MTA writes it) is served with each bare LF turned into
CRLF, as Dovecot does; :func:`to_crlf` does it once, before parsing, so every
size and offset is that of what the client receives.

Decoding is for SEARCH only (FETCH BODY[] is never decoded): RFC 2047 encoded
words in header values (:func:`decode_header`), and transfer encodings
(base64, quoted-printable) plus the charset of text parts (:func:`part_text`).
Unknown charsets and broken encodings degrade (``errors="replace"``), never
raise.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Callable

from .mime import Part, parse, unfold
from .mimeparams import parse_params

__all__ = [
    "ParsedMessage",
    "crlf_size",
    "decode_header",
    "decode_transfer",
    "part_text",
    "to_crlf",
]

_BARE_LF = re.compile(rb"(?<!\r)\n")


def to_crlf(data: bytes) -> bytes:
    """Every bare LF turned into CRLF (a no-op copy-free return when there is none)."""
    if b"\n" not in data or data.count(b"\n") == data.count(b"\r\n"):
        return data
    return _BARE_LF.sub(b"\r\n", data)


def crlf_size(data: bytes) -> int:
    """The size FETCH serves for ``data`` (RFC822.SIZE): bare LFs count as CRLF.

    For the store to record at delivery/APPEND (like Dovecot's ``,W=``), so that
    RFC822.SIZE equals the length of BODY[] for files with bare LF line ends.
    """
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


class ParsedMessage:
    """Bytes read lazily through ``read`` (called at most once), parsed on demand."""

    __slots__ = ("_data", "_header_only", "_read", "_root")

    def __init__(self, read: Callable[[], bytes] | bytes, *, header_only: bool = False) -> None:
        #: ``read`` gives the message's header block only (the folder index's), so
        #: ``BODY[HEADER]`` is all of it, with no parse.
        self._header_only = header_only
        self._data: bytes | None = None
        self._root: Part | None = None
        if isinstance(read, bytes | bytearray | memoryview):
            data = bytes(read)
            self._read: Callable[[], bytes] = lambda: data
        else:
            self._read = read

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = to_crlf(self._read())
        return self._data

    @property
    def loaded(self) -> bool:
        return self._data is not None

    @property
    def root(self) -> Part:
        if self._root is None:
            self._root = parse(self.data)
        return self._root

    def part(self, path: tuple[int, ...]) -> Part | None:
        """The part a section number names (RFC 3501 §6.4.5); None if there is none."""
        cur = self.root
        for i, n in enumerate(path):
            if i > 0 and not cur.children and cur.message is not None:
                cur = cur.message
            if cur.children:
                if not 1 <= n <= len(cur.children):
                    return None
                cur = cur.children[n - 1]
            elif cur.is_multipart or n != 1:
                return None
        return cur

    def section(self, path: tuple[int, ...], text: str) -> bytes | None:
        """Bytes of ``BODY[path.text]`` for text "", HEADER, TEXT, MIME; None if no part.

        HEADER and TEXT after a part number need a message/rfc822 part (they name
        the encapsulated message's header and body); on another part they are
        empty, as Dovecot answers.
        """
        data = self.data
        if not path and text == "HEADER" and self._header_only:
            return data
        if not path:
            root = self.root
            if text == "":
                return data
            if text == "HEADER":
                return data[root.start : root.body_start]
            if text == "TEXT":
                return data[root.body_start : root.end]
            return None
        part = self.part(path)
        if part is None:
            return None
        if text == "":
            return data[part.body_start : part.end]
        if text == "MIME":
            return data[part.start : part.body_start]
        inner = part.message
        if inner is None:
            return b""
        if text == "HEADER":
            return data[inner.start : inner.body_start]
        return data[inner.body_start : inner.end]

    def header_part(self, path: tuple[int, ...]) -> Part | None:
        """The part whose header HEADER.FIELDS reads: the message, or an encapsulated one."""
        if not path:
            return self.root
        part = self.part(path)
        return None if part is None else part.message


# --- RFC 2047 encoded words -------------------------------------------------------

_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(rb"(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=)[ \t\r\n]+(?==\?)")


def _charset(name: bytes) -> str:
    label = name.split(b"*", 1)[0].decode("ascii", "replace").strip().lower()
    try:
        return codecs.lookup(label).name
    except LookupError:
        return "latin-1" if label.startswith("iso-8859") else "utf-8"


def _decode_raw(raw: bytes) -> str:
    """8-bit header text as stored: UTF-8 if it is, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _decode_word(m: re.Match[bytes]) -> bytes:
    charset, enc, text = m[1], m[2].upper(), m[3]
    try:
        if enc == b"B":
            octets = base64.b64decode(text + b"=" * (-len(text) % 4))
        else:
            octets = binascii.a2b_qp(text.replace(b"_", b" "), header=False)
    except (binascii.Error, ValueError):
        return m[0]
    # Re-encoded as UTF-8 so the surrounding raw text and the words join as one string.
    return octets.decode(_charset(charset), "replace").encode("utf-8", "surrogatepass")


def decode_header(raw: bytes) -> str:
    """A header value unfolded, RFC 2047 words decoded (white space between words dropped)."""
    value = unfold(raw)
    if b"=?" not in value:
        return _decode_raw(value)
    value = _BETWEEN_WORDS.sub(rb"\1", value)
    return _decode_raw(_ENCODED_WORD.sub(_decode_word, value))


# --- bodies -----------------------------------------------------------------------


def decode_transfer(body: bytes, encoding: bytes) -> bytes | None:
    """Undo a Content-Transfer-Encoding (RFC 2045 §6); None if the encoding is unknown.

    The mechanism is the first token of the value (comments and junk after it ignored).
    """
    enc = parse_params(encoding)[0].lower()
    if enc in (b"", b"7bit", b"8bit", b"binary"):
        return body
    if enc == b"base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", body)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return b""
    if enc == b"quoted-printable":
        return binascii.a2b_qp(body)
    return None


def part_text(msg: ParsedMessage, part: Part) -> str | None:
    """A leaf's body decoded to text for SEARCH, or None if it is not text.

    Text here is ``text/*``, ``message/*`` not parsed further, and parts with no
    Content-Type (RFC 2045 §5.2 defaults them to text/plain).
    """
    maintype, _ = part.content_type.lower
    if part.content_type.explicit and maintype not in (b"text", b"message"):
        return None
    cte = part.transfer_encoding(msg.data) or b"7bit"
    octets = decode_transfer(msg.data[part.body_start : part.end], cte)
    if octets is None:
        return None
    charset = part.content_type.param(b"charset")
    if charset is None:
        return _decode_raw(octets)
    return octets.decode(_charset(charset), "replace")
