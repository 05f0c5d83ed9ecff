"""LMTP (RFC 2033) for MTAs delivering into the Maildirs, sans-I/O.

Theory of operation
-------------------
LMTP is SMTP with ``LHLO`` for ``HELO`` and one reply *per accepted recipient*
after the data (RFC 2033 §4.2), so an MTA knows exactly which deliveries to
retry. :class:`LmtpSession` is a line state machine; the transition table
:data:`_NEXT` says which command moves where, anything else is ``503``:

=========  ===========================  =========
state      command                      next
=========  ===========================  =========
GREETED    LHLO                         READY
READY      MAIL FROM                    MAIL
MAIL       RCPT TO (known user)         RCPT
RCPT       RCPT TO                      RCPT
RCPT       DATA (then the lines)        READY
any        RSET                         READY (GREETED before LHLO)
=========  ===========================  =========

PIPELINING is offered (RFC 2920): commands are answered in order from one
buffer. The message is dot-unstuffed (RFC 5321 §4.5.2) and bounded by
``max_size``; each recipient's delivery is the ``deliver`` callback (it blocks
on the file system; the shell runs ``receive`` in a worker thread). A callback
exception is a temporary failure (``451``) for that recipient only.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["DeliveryResult", "LmtpSession"]

MAX_LINE: Final = 4096
MAX_RECIPIENTS: Final = 1000
DEFAULT_MAX_SIZE: Final = 100 * 1024 * 1024

_PATH_RE = re.compile(r"<([^<>\s]*)>")


class _State(enum.Enum):
    GREETED = "greeted"
    READY = "ready"
    MAIL = "mail"
    RCPT = "rcpt"
    DATA = "data"
    CLOSED = "closed"


_NEXT: Final[dict[tuple[_State, str], _State]] = {
    (_State.GREETED, "LHLO"): _State.READY,
    (_State.READY, "LHLO"): _State.READY,
    (_State.READY, "MAIL"): _State.MAIL,
    (_State.MAIL, "RCPT"): _State.RCPT,
    (_State.RCPT, "RCPT"): _State.RCPT,
    (_State.RCPT, "DATA"): _State.DATA,
}


@dataclass(frozen=True)
class DeliveryResult:
    ok: bool
    temporary: bool = False
    text: str = ""


@dataclass
class LmtpSession:
    hostname: str
    #: recipient user -> known?
    user_exists: Callable[[str], bool]
    #: (user, sender, message) -> result
    deliver: Callable[[str, str, bytes], DeliveryResult]
    max_size: int = DEFAULT_MAX_SIZE
    state: _State = _State.GREETED
    _buf: bytearray = field(default_factory=bytearray)
    _sender: str = ""
    _rcpts: list[str] = field(default_factory=list)
    _data: bytearray = field(default_factory=bytearray)
    _too_big: bool = False
    closed: bool = False

    def greeting(self) -> bytes:
        return f"220 {self.hostname} imapha LMTP ready\r\n".encode()

    def receive(self, data: bytes) -> bytes:
        """Octets in, replies out (in order)."""
        self._buf += data
        out = bytearray()
        while not self.closed:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > MAX_LINE and self.state is not _State.DATA:
                    out += b"500 5.5.2 Line too long\r\n"
                    self.closed = True
                return bytes(out)
            line = bytes(self._buf[: end + 1])
            del self._buf[: end + 1]
            if self.state is _State.DATA:
                out += self._data_line(line)
            else:
                out += self._command(line.rstrip(b"\r\n"))
        return bytes(out)

    def _reset(self) -> None:
        self._sender = ""
        self._rcpts = []
        self._data = bytearray()
        self._too_big = False

    def _command(self, raw: bytes) -> bytes:
        text = raw.decode("utf-8", "replace")
        verb, _, arg = text.partition(" ")
        verb = verb.upper()
        if verb == "QUIT":
            self.closed = True
            return b"221 2.0.0 Bye\r\n"
        if verb == "NOOP":
            return b"250 2.0.0 Ok\r\n"
        if verb == "RSET":
            self._reset()
            if self.state is not _State.GREETED:
                self.state = _State.READY
            return b"250 2.0.0 Ok\r\n"
        if verb == "VRFY":
            return b"252 2.5.2 Cannot verify\r\n"
        if verb in ("HELO", "EHLO"):
            return b"500 5.5.1 This is LMTP: use LHLO\r\n"
        nxt = _NEXT.get((self.state, verb))
        if nxt is None:
            known = verb in ("LHLO", "MAIL", "RCPT", "DATA")
            return b"503 5.5.1 Bad sequence of commands\r\n" if known else \
                b"500 5.5.2 Unknown command\r\n"
        if verb == "LHLO":
            self.state = nxt
            self._reset()
            return (f"250-{self.hostname}\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
                    "250-8BITMIME\r\n250 SIZE " + str(self.max_size) + "\r\n").encode()
        if verb == "MAIL":
            m = _PATH_RE.search(arg) if arg.upper().startswith("FROM:") else None
            if m is None:
                return b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n"
            self._sender = m[1]
            self.state = nxt
            return b"250 2.1.0 Ok\r\n"
        if verb == "RCPT":
            m = _PATH_RE.search(arg) if arg.upper().startswith("TO:") else None
            if m is None or not m[1]:
                return b"501 5.5.4 Syntax: RCPT TO:<address>\r\n"
            if len(self._rcpts) >= MAX_RECIPIENTS:
                return b"452 4.5.3 Too many recipients\r\n"
            user = m[1].split("@", 1)[0]
            if not self.user_exists(user):
                return f"550 5.1.1 <{m[1]}> User unknown\r\n".encode()
            self._rcpts.append(m[1])
            self.state = nxt
            return b"250 2.1.5 Ok\r\n"
        # DATA
        self.state = nxt
        return b"354 End data with <CR><LF>.<CR><LF>\r\n"

    def _data_line(self, line: bytes) -> bytes:
        if line in (b".\r\n", b".\n"):
            return self._finish()
        if line.startswith(b"."):
            line = line[1:]
        if len(self._data) + len(line) > self.max_size:
            self._too_big = True
        elif not self._too_big:
            self._data += line
        return b""

    def _finish(self) -> bytes:
        out = bytearray()
        message = bytes(self._data)
        for rcpt in self._rcpts:
            if self._too_big:
                out += f"552 5.3.4 <{rcpt}> Message too big\r\n".encode()
                continue
            user = rcpt.split("@", 1)[0]
            try:
                result = self.deliver(user, self._sender, message)
            except Exception:
                result = DeliveryResult(False, True, "Temporary failure")
            if result.ok:
                out += f"250 2.0.0 <{rcpt}> Saved\r\n".encode()
            elif result.temporary:
                out += f"451 4.3.0 <{rcpt}> {result.text or 'Temporary failure'}\r\n".encode()
            else:
                out += f"550 5.0.0 <{rcpt}> {result.text or 'Failed'}\r\n".encode()
        self._reset()
        self.state = _State.READY
        return bytes(out)
