"""Named limits of the IMAP wire layer, one frozen dataclass per direction.

Theory of operation
-------------------
Nothing in this package buffers without bound. The framer checks every text
line against ``max_line`` while it is still arriving, and every literal
announcement (``{n}``, ``{n+}``, ``~{n}``) against ``max_literal`` and
``max_command`` *before* reading a single octet of it. The lexer counts
tokens and parenthesis depth. A server that refuses a non-synchronizing
literal must still swallow the octets the client sends anyway (RFC 7888 §4);
it does so without storing them, up to ``max_skip`` octets, and closes the
connection beyond that.

Pre-login, a client has proved nothing, so :data:`PRE_LOGIN` is much smaller
than :data:`AUTHENTICATED`; the proxy switches with ``connection.limits = ...``
once a login succeeds. :data:`BACKEND_RESPONSES` bounds what the proxy's
client side reads from a backend.
"""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB

#: RFC 7888 §4: with LITERAL- a non-synchronizing literal is at most 4096 octets.
LITERAL_MINUS_MAX = 4096


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits for one direction of one connection.

    max_line:     octets in one text line, CRLF and literal data excluded.
    max_literal:  octets in one literal.
    max_command:  octets in one whole command or response, lines plus literals.
    max_literals: literals in one command or response.
    max_tokens:   tokens (atoms, strings, literals, lists) in one command.
    max_depth:    nesting depth of parenthesized lists.
    max_nonsync_literal: octets in one non-synchronizing ``{n+}`` literal;
                  None means ``max_literal`` (LITERAL+). A server that advertises
                  LITERAL- sets :data:`LITERAL_MINUS_MAX` here (RFC 7888 §4).
    max_skip:     octets of a refused non-synchronizing literal the server
                  discards (without buffering) before it gives up and closes.
    accept_bare_lf: accept LF without CR as a line end on input (never sent).
    """

    max_line: int = 64 * KIB
    max_literal: int = 64 * MIB
    max_command: int = 65 * MIB
    max_literals: int = 1000
    max_tokens: int = 100_000
    max_depth: int = 32
    max_skip: int = 1 * MIB
    accept_bare_lf: bool = True
    max_nonsync_literal: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_line", "max_literal", "max_command", "max_literals",
                     "max_tokens", "max_depth", "max_skip"):
            if getattr(self, name) < 0:
                raise ValueError(f"limit {name} must not be negative")


#: What an unauthenticated client may send to the proxy.
PRE_LOGIN = Limits(
    max_line=8 * KIB,
    max_literal=8 * KIB,
    max_command=16 * KIB,
    max_literals=4,
    max_tokens=256,
    max_depth=4,
    max_skip=64 * KIB,
)

#: What a logged-in client may send (APPEND of a large message included).
AUTHENTICATED = Limits()

#: What the proxy's client side accepts from a backend.
BACKEND_RESPONSES = Limits(max_literal=256 * MIB, max_command=300 * MIB, max_literals=100_000)
