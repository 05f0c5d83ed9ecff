"""Response codes: ``[NAME args]`` in status responses (RFC 9051 §7.1, RFC 5530).

Theory of operation
-------------------
A :class:`ResponseCode` is an atom name plus optional argument text with no
``]`` in it (``resp-text-code = atom [SP 1*<any TEXT-CHAR except "]">]``).
The constructor validates, so a builder cannot emit a broken code; the parser
reads one from the start of a resp-text. Codes the proxy uses are constants
here; ``CAPABILITY`` has a helper in both directions.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .errors import LocalProtocolError, RemoteProtocolError
from .tokens import ATOM_RE

_ARGS_RE = re.compile(r"[^\]\x00-\x1f\x7f]+")


def check_capability(cap: str) -> str:
    if not cap.isascii() or not ATOM_RE.fullmatch(cap.encode("ascii")):
        raise LocalProtocolError("invalid capability")
    return cap


@dataclass(frozen=True, slots=True)
class ResponseCode:
    """``[NAME]`` or ``[NAME args]``; ``name`` is upper case."""

    name: str
    args: str | None = None

    def __post_init__(self) -> None:
        name = self.name
        if not name.isascii() or not ATOM_RE.fullmatch(name.encode()) or name != name.upper():
            raise LocalProtocolError("invalid response code name")
        if self.args is not None and (
            not _ARGS_RE.fullmatch(self.args) or self.args != self.args.strip(" ")
        ):
            raise LocalProtocolError("invalid response code arguments")

    @classmethod
    def capability(cls, caps: tuple[str, ...] | list[str]) -> ResponseCode:
        return cls("CAPABILITY", " ".join(check_capability(c) for c in caps) or None)

    @property
    def capabilities(self) -> tuple[str, ...]:
        """The list of a ``[CAPABILITY ...]`` code."""
        if self.name != "CAPABILITY" or not self.args:
            return ()
        return tuple(self.args.split())

    def encode(self) -> bytes:
        inner = self.name if self.args is None else f"{self.name} {self.args}"
        return b"[" + inner.encode("utf-8") + b"]"

    @classmethod
    def parse(cls, text: bytes) -> tuple[ResponseCode | None, bytes]:
        """Split ``[CODE args] rest`` into the code and the rest (after one SP).

        A resp-text that starts with "[" but has no "]" is taken as plain text.
        """
        if not text.startswith(b"["):
            return None, text
        close = text.find(b"]")
        if close < 0:
            return None, text
        inner = text[1:close]
        code = _parse_inner(inner) if len(inner) <= _CACHED_CODE_MAX else _parse_code(inner)
        rest = text[close + 1 :]
        if rest.startswith(b" "):
            rest = rest[1:]
        return code, rest


#: Codes up to this many octets are parsed once and remembered: a backend
#: repeats its long ``[CAPABILITY ...]`` on every login, and the check of the
#: arguments is the costly part. Codes are immutable, so sharing them is safe.
_CACHED_CODE_MAX = 2048


def _parse_code(inner: bytes) -> ResponseCode:
    name, _, args = inner.decode("utf-8", "replace").partition(" ")
    args = args.strip(" ")
    try:
        return ResponseCode(name.upper(), args or None)
    except LocalProtocolError:
        raise RemoteProtocolError("Invalid response code") from None


_parse_inner = functools.lru_cache(maxsize=256)(_parse_code)


# RFC 5530 §3 and RFC 9051 §7.1 codes the proxy and backend send.
ALERT = ResponseCode("ALERT")
AUTHENTICATIONFAILED = ResponseCode("AUTHENTICATIONFAILED")
AUTHORIZATIONFAILED = ResponseCode("AUTHORIZATIONFAILED")
CANNOT = ResponseCode("CANNOT")
CLIENTBUG = ResponseCode("CLIENTBUG")
CONTACTADMIN = ResponseCode("CONTACTADMIN")
EXPIRED = ResponseCode("EXPIRED")
INUSE = ResponseCode("INUSE")
LIMIT = ResponseCode("LIMIT")
PARSE = ResponseCode("PARSE")
PRIVACYREQUIRED = ResponseCode("PRIVACYREQUIRED")
SERVERBUG = ResponseCode("SERVERBUG")
TOOBIG = ResponseCode("TOOBIG")
UNAVAILABLE = ResponseCode("UNAVAILABLE")
