"""Server responses: events, their encoding and their parsing (RFC 9051 §7).

Theory of operation
-------------------
Each response is a frozen dataclass. :func:`encode_response` turns one into
octets (the server side's ``send``) and :func:`parse_response` turns a framed
response back into one (the client side's ``next_event``), so that
``parse(encode(x)) == x``. Constructors validate: a tagged response can only
be OK/NO/BAD, a greeting only OK/PREAUTH/BYE, a resp-text can hold no CR, LF
or NUL, cannot start with "[" unless it has a code, and cannot end in what a
client would read as a literal announcement (``{5}``).

Responses this layer does not model in detail come out as
:class:`UntaggedData` (``* 23 EXISTS``, ``* 1 FETCH (...)``, ``* LIST ...``)
with their tokens.
"""

from __future__ import annotations

import base64
import binascii
import enum
import functools
import re
from dataclasses import dataclass

from .codes import ResponseCode, check_capability
from .encode import LiteralMode, Writer
from .errors import LocalProtocolError, RemoteProtocolError
from .framer import Frame
from .lexer import Lexer
from .limits import Limits
from .tokens import ATOM_RE, NIL, Atom, PList, Tag, Token, as_nstring, as_string, nstring, string

_BAD_TEXT_RE = re.compile(r"[\x00\r\n]")
_LITERAL_END_RE = re.compile(r"\{[0-9]+\+?\}\Z")


class Status(enum.Enum):
    OK = "OK"
    NO = "NO"
    BAD = "BAD"
    PREAUTH = "PREAUTH"
    BYE = "BYE"


_TAGGED = frozenset({Status.OK, Status.NO, Status.BAD})
_GREETING = frozenset({Status.OK, Status.PREAUTH, Status.BYE})
_UNTAGGED = frozenset({Status.OK, Status.NO, Status.BAD, Status.BYE})


def _check_text(text: str, code: ResponseCode | None) -> None:
    if _BAD_TEXT_RE.search(text):
        raise LocalProtocolError("response text cannot hold CR, LF or NUL")
    if code is None and text.startswith("["):
        raise LocalProtocolError("response text starting with '[' needs a response code")
    if _LITERAL_END_RE.search(text):
        raise LocalProtocolError("response text would read as a literal announcement")
    if text != text.strip(" "):
        raise LocalProtocolError("response text cannot start or end with a space")


@dataclass(frozen=True, slots=True)
class TaggedResponse:
    """``tag OK|NO|BAD [code] text`` (RFC 9051 §7.1)."""

    tag: Tag
    status: Status
    text: str = ""
    code: ResponseCode | None = None

    def __post_init__(self) -> None:
        if self.status not in _TAGGED:
            raise LocalProtocolError("a tagged response is OK, NO or BAD")
        _check_text(self.text, self.code)


@dataclass(frozen=True, slots=True)
class Greeting:
    """The first response: ``* OK|PREAUTH|BYE [code] text`` (RFC 9051 §7.1)."""

    status: Status
    text: str = ""
    code: ResponseCode | None = None

    def __post_init__(self) -> None:
        if self.status not in _GREETING:
            raise LocalProtocolError("a greeting is OK, PREAUTH or BYE")
        _check_text(self.text, self.code)


@dataclass(frozen=True, slots=True)
class UntaggedStatus:
    """``* OK|NO|BAD|BYE [code] text`` after the greeting."""

    status: Status
    text: str = ""
    code: ResponseCode | None = None

    def __post_init__(self) -> None:
        if self.status not in _UNTAGGED:
            raise LocalProtocolError("PREAUTH is only a greeting")
        _check_text(self.text, self.code)


@dataclass(frozen=True, slots=True)
class ContinuationRequest:
    """``+ text`` (RFC 9051 §7.5); a SASL challenge is base64 text."""

    text: str = ""

    def __post_init__(self) -> None:
        if _BAD_TEXT_RE.search(self.text) or _LITERAL_END_RE.search(self.text):
            raise LocalProtocolError("invalid continuation text")

    @classmethod
    def challenge(cls, data: bytes) -> ContinuationRequest:
        return cls(base64.b64encode(data).decode("ascii"))

    def data(self) -> bytes:
        """The text as a base64 SASL challenge (RFC 9051 §6.2.2)."""
        try:
            return base64.b64decode(self.text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise RemoteProtocolError("Invalid base64 in SASL challenge") from None


@dataclass(frozen=True, slots=True)
class CapabilityResponse:
    """``* CAPABILITY IMAP4rev1 ...`` (RFC 9051 §7.2.2)."""

    capabilities: tuple[str, ...]

    def __post_init__(self) -> None:
        for cap in self.capabilities:
            check_capability(cap)


@dataclass(frozen=True, slots=True)
class IdResponse:
    """``* ID (field value ...)`` or ``* ID NIL`` (RFC 2971 §3.2)."""

    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class UntaggedData:
    """Any other untagged response: ``* [number] NAME args``."""

    name: str
    number: int | None = None
    args: tuple[Token, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isascii() or not ATOM_RE.fullmatch(self.name.encode()):
            raise LocalProtocolError("invalid response name")
        if self.name != self.name.upper():
            raise LocalProtocolError("response names are upper case")
        if self.number is None and self.name in _SPECIAL_NAMES:
            raise LocalProtocolError("use the dedicated response class")


_SPECIAL_NAMES = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH", "CAPABILITY", "ID"})

Response = (
    TaggedResponse
    | Greeting
    | UntaggedStatus
    | ContinuationRequest
    | CapabilityResponse
    | IdResponse
    | UntaggedData
)


def has_capability(caps: tuple[str, ...], name: str) -> bool:
    """Capability names compare case-insensitively (RFC 9051 §7.2.2)."""
    return name.upper() in _upper_caps(caps)


@functools.lru_cache(maxsize=64)
def _upper_caps(caps: tuple[str, ...]) -> frozenset[str]:
    """The upper-cased set of a capability list, once per distinct list (a peer
    repeats the same one on every connection; a login asks about it often)."""
    return frozenset(c.upper() for c in caps)


# -- encoding -----------------------------------------------------------------------


def _resp_text(w: Writer, code: ResponseCode | None, text: str) -> None:
    if code is not None:
        w.raw(b" ").raw(code.encode())
    if text:
        w.raw(b" ").raw(text.encode("utf-8"))


def id_params_tokens(params: tuple[tuple[str, str | None], ...] | None) -> Token:
    if params is None:
        return NIL
    items: list[Token] = []
    for key, value in params:
        items.append(string(key))
        items.append(nstring(value))
    return PList(tuple(items))


def encode_response(resp: Response) -> bytes:
    w = Writer(LiteralMode.INLINE)
    if isinstance(resp, TaggedResponse):
        w.raw(resp.tag.encode("ascii")).raw(b" ").raw(resp.status.value.encode())
        _resp_text(w, resp.code, resp.text)
    elif isinstance(resp, Greeting | UntaggedStatus):
        w.raw(b"* ").raw(resp.status.value.encode())
        _resp_text(w, resp.code, resp.text)
    elif isinstance(resp, ContinuationRequest):
        w.raw(b"+ ").raw(resp.text.encode("utf-8"))
    elif isinstance(resp, CapabilityResponse):
        w.raw(b"* CAPABILITY").raw("".join(" " + c for c in resp.capabilities).encode())
    elif isinstance(resp, IdResponse):
        w.raw(b"* ID ").token(id_params_tokens(resp.params))
    else:
        w.raw(b"* ")
        if resp.number is not None:
            w.raw(b"%d " % resp.number)
        w.raw(resp.name.encode("ascii")).args(resp.args)
    return w.finish_one()


# -- parsing --------------------------------------------------------------------------


_STATUS_BY_WORD = {s.value: s for s in Status}


def _status(word: str, allowed: frozenset[Status]) -> Status | None:
    st = _STATUS_BY_WORD.get(word) or _STATUS_BY_WORD.get(word.upper())
    return st if st in allowed else None


def _text_part(lx: Lexer) -> tuple[ResponseCode | None, str]:
    if lx.at_end():
        return None, ""
    lx.sp()
    raw = lx.rest_of_line()
    code, rest = ResponseCode.parse(raw)
    return code, rest.decode("utf-8", "replace").strip(" ")


def parse_id_params(tok: Token) -> tuple[tuple[str, str | None], ...] | None:
    """id-params-list (RFC 2971 §4): NIL or "(" *(string SP nstring) ")"."""
    if isinstance(tok, Atom) and tok.is_nil:
        return None
    if not isinstance(tok, PList) or len(tok.items) % 2:
        raise RemoteProtocolError("ID parameters must be NIL or a list of pairs")
    pairs: list[tuple[str, str | None]] = []
    it = iter(tok.items)
    for key_tok, value_tok in zip(it, it, strict=True):
        key = as_string(key_tok, "ID field").decode("utf-8", "replace")
        value = as_nstring(value_tok, "ID value")
        pairs.append((key, None if value is None else value.decode("utf-8", "replace")))
    return tuple(pairs)


def parse_response(frame: Frame, limits: Limits, *, greeting: bool) -> Response:
    """One framed server response; ``greeting`` when it is the first one."""
    try:
        return _parse_response(Lexer(frame, limits), greeting)
    except LocalProtocolError as exc:  # a value our own constructors refuse
        raise RemoteProtocolError("Invalid response: " + exc.text) from None


def _star(lx: Lexer) -> None:
    if lx.word("*") != "*":
        raise RemoteProtocolError("Expected '* '")
    lx.sp()


def _parse_response(lx: Lexer, greeting: bool) -> Response:
    first = lx.peek()
    if greeting:
        if first != 0x2A:
            raise RemoteProtocolError("Greeting must be untagged")
        _star(lx)
        st = _status(lx.word("status"), _GREETING)
        if st is None:
            raise RemoteProtocolError("Greeting must be OK, PREAUTH or BYE")
        code, text = _text_part(lx)
        return Greeting(st, text, code)
    if first == 0x2B:  # "+"
        raw = lx.rest_of_line()[1:]
        body = raw[1:] if raw.startswith(b" ") else raw
        return ContinuationRequest(body.decode("utf-8", "replace"))
    if first == 0x2A:  # "*"
        _star(lx)
        word = lx.word("response name")
        st = _status(word, _UNTAGGED)
        if st is not None:
            code, text = _text_part(lx)
            return UntaggedStatus(st, text, code)
        upper = word.upper()
        if upper == "CAPABILITY":
            caps = [w.decode("ascii", "replace") for w in lx.rest_of_line().split(b" ") if w]
            return CapabilityResponse(tuple(caps))
        if upper == "ID":
            lx.sp()
            params = parse_id_params(lx.token())
            lx.end()
            return IdResponse(params)
        number: int | None = None
        if word.isdigit():
            if len(word) > 20:
                raise RemoteProtocolError("Number too large")
            number = int(word)
            lx.sp()
            upper = lx.word("response name").upper()
        return UntaggedData(upper, number, lx.rest())
    tag = lx.tag()
    lx.sp()
    st = _status(lx.word("status"), _TAGGED)
    if st is None:
        raise RemoteProtocolError("Tagged response must be OK, NO or BAD")
    code, text = _text_part(lx)
    return TaggedResponse(tag, st, text, code)
