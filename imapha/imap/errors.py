"""Errors of the IMAP wire layer, shaped like the wire.

Theory of operation
-------------------
Every error this package raises is a :class:`ProtocolError`. It carries what
must go on the wire, never a Python exception text: the IMAP status to answer
with (``BAD``, ``NO`` or ``BYE``), an optional RFC 5530 response code, a short
human text written by this package, and the tag of the command concerned when
it is known. The subclass says whose fault it was (the idea of h11 and trio):

* :class:`RemoteProtocolError`: the peer sent something illegal or too big.
  The server side turns it into a ``ProtocolViolation`` event carrying the
  response to send; the client side raises it (the proxy drops that backend).
* :class:`LimitExceeded`: a remote error caused by a named limit
  (:mod:`imapha.imap.limits`), with ``[TOOBIG]`` or ``[LIMIT]``.
* :class:`LocalProtocolError`: our own code tried to send something that
  cannot be expressed legally (a bad tag, text with CRLF, a NUL in a SASL
  field...). It is a bug in the caller and is never shown to a peer.
"""

from __future__ import annotations

_SAFE_TEXT = frozenset(range(0x20, 0x7F))


def _clean(text: str) -> str:
    """Keep the text one printable ASCII line, so it can always be sent."""
    return "".join(c if ord(c) in _SAFE_TEXT else "?" for c in text) or "Error"


class ProtocolError(Exception):
    """A protocol violation with what to answer on the wire.

    ``status`` is ``"BAD"``, ``"NO"`` or ``"BYE"``; ``code`` an RFC 5530 /
    RFC 3501 §7.1 response code atom (e.g. ``"TOOBIG"``) or ``None``;
    ``code_args`` its optional argument text; ``tag`` the command tag when known.
    """

    def __init__(
        self,
        text: str,
        *,
        status: str = "BAD",
        code: str | None = None,
        code_args: str | None = None,
        tag: str | None = None,
    ) -> None:
        super().__init__(text)
        self.text = _clean(text)
        self.status = status
        self.code = code
        self.code_args = code_args
        self.tag = tag

    def with_tag(self, tag: str | None) -> ProtocolError:
        """Attach the tag (if not yet known) and return self, for re-raising."""
        if self.tag is None:
            self.tag = tag
        return self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.text!r}, status={self.status!r}, "
            f"code={self.code!r}, tag={self.tag!r})"
        )


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol (its fault)."""


class LimitExceeded(RemoteProtocolError):
    """The peer went past one of our named limits (RFC 5530 TOOBIG / LIMIT)."""

    def __init__(
        self, text: str, *, limit: str, code: str = "TOOBIG", tag: str | None = None
    ) -> None:
        super().__init__(text, code=code, tag=tag)
        self.limit = limit


class LocalProtocolError(ProtocolError):
    """Our side asked for something the protocol cannot express (a caller bug)."""
