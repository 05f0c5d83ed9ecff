"""Events and sentinels shared by both connection objects.

Besides the commands (:mod:`.commands`) and responses (:mod:`.responses`)
that a connection yields, the server side can yield two *actions*: things
the caller must write to the peer now, already encoded.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .errors import ProtocolError


class Sentinel(enum.Enum):
    """Returned by ``next_event`` when it has no event.

    NEED_DATA: feed more octets. PAUSED: the caller must answer the last
    command first (STARTTLS, AUTHENTICATE, IDLE hand the stream over).
    CLOSED: the connection is finished (EOF, BYE, fatal violation).
    """

    NEED_DATA = "need-data"
    PAUSED = "paused"
    CLOSED = "closed"


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED
CLOSED = Sentinel.CLOSED


@dataclass(frozen=True, slots=True)
class ContinuationRequired:
    """A client announced a synchronizing literal within limits: send
    ``response`` (a ``+`` line) so it sends the octets (RFC 9051 §7.5)."""

    tag: str | None
    size: int
    response: bytes


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The peer broke the protocol or a limit: send ``response`` (a tagged
    BAD, ``* BAD`` when the tag is unknown, or ``* BYE`` when ``fatal``), and
    close the connection after it when ``fatal``."""

    error: ProtocolError
    response: bytes
    fatal: bool
