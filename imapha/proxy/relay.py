"""The relay of a logged-in session: bytes both ways, ended only at safe points.

Theory of operation
-------------------
After login the proxy copies bytes: client -> backend through
:class:`~imapha.proxy.relaystate.SessionTracker` (which holds back the head
of each command line until its name is known and rewrites UNAUTHENTICATE),
backend -> client unchanged (the tracker only watches them).

Backpressure: each transport is registered as the *producer* of the other
(``registerProducer(other, streaming=True)``), so when the client's send
buffer fills Twisted pauses reading from the backend socket, and TCP flow
control pushes back to the backend: a slow client reading a 50 MB FETCH
holds the proxy's memory at a socket buffer, not the message.

Ending: :meth:`Relay.end_soon` (drain, kick, backend down, idle timeout)
records a BYE to send; it goes out at the first *safe point* (no command in
flight, or only an IDLE), which may be at once. :meth:`Relay.end_now` is the
hard deadline: a BYE if safe, else just the close; every ``end_soon`` arms it
:data:`END_WITHIN` seconds later, so a session that never reaches a safe point
(a compressed one, after COMPRESS made the streams opaque, or a client that
never stops pipelining) still ends. Either side closing closes the other; a
backend that vanishes mid-session gives the client ``* BYE [UNAVAILABLE]``
unless it said BYE itself.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from imapha.imap import ResponseCode, Status, UntaggedStatus
from imapha.imap import codes as imap_codes
from imapha.imap.responses import encode_response
from imapha.proxy.relaystate import Bye, SessionTracker, Violation

log = logging.getLogger(__name__)


#: How long ``end_soon`` waits for a safe point before the hard close.
END_WITHIN = 10.0


def bye_line(text: str, code: ResponseCode | None = None) -> bytes:
    return encode_response(UntaggedStatus(Status.BYE, text, code))


class Relay:
    """One relayed session between a client transport and a backend transport."""

    __slots__ = (
        "_count_in", "_count_out", "_hard_call", "_idle_call", "_last", "_on_end", "_reactor",
        "backend", "backend_bye", "backend_name", "client", "closed", "ending",
        "idle_timeout", "session_id", "tracker", "user",
    )

    def __init__(self, *, client: Any, backend: Any, backend_name: str, user: str,
                 session_id: str, reactor: Any, idle_timeout: float,
                 count_in: Callable[[int], None], count_out: Callable[[int], None],
                 on_end: Callable[[Relay], None]) -> None:
        self.client = client  # the client's transport
        self.backend = backend  # the backend's transport
        self.backend_name = backend_name
        self.user = user
        self.session_id = session_id
        self.tracker = SessionTracker()
        self.ending: bytes | None = None
        self.backend_bye = False
        self.closed = False
        self.idle_timeout = idle_timeout
        self._reactor = reactor
        self._count_in = count_in
        self._count_out = count_out
        self._on_end = on_end
        self._last = reactor.seconds()
        self._idle_call: Any = reactor.callLater(idle_timeout, self._check_idle)
        self._hard_call: Any = None
        client.registerProducer(backend, True)
        backend.registerProducer(client, True)

    # -- data ------------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        if self.closed:
            return
        self._last = self._reactor.seconds()
        out, events = self.tracker.client_data(data)
        if out:
            self._count_in(len(out))
            self.backend.write(out)
        for event in events:
            if isinstance(event, Violation):
                log.info("session %s: %s; closing", self.session_id, event.reason)
                self.client.write(bye_line("Command line not understood", imap_codes.CLIENTBUG))
                self._close()
                return
        self._maybe_end()

    def from_backend(self, data: bytes) -> None:
        if self.closed:
            return
        self._last = self._reactor.seconds()
        events = self.tracker.server_data(data)
        self._count_out(len(data))
        self.client.write(data)
        if any(isinstance(e, Bye) for e in events):
            self.backend_bye = True
        self._maybe_end()

    # -- ending ------------------------------------------------------------------------

    def end_soon(self, text: str, code: ResponseCode | None = imap_codes.UNAVAILABLE) -> None:
        """Send ``* BYE`` and close at the next safe point (perhaps now)."""
        if self.closed or self.ending is not None:
            return
        self.ending = bye_line(text, code)
        self._maybe_end()
        if not self.closed:
            self._hard_call = self._reactor.callLater(END_WITHIN, self.end_now)

    def end_now(self) -> None:
        """The hard deadline: BYE only if it cannot cut a response, then close."""
        if self.closed:
            return
        if self.ending is not None and self.tracker.safe_point and not self.backend_bye:
            self.client.write(self.ending)
        self._close()

    def _maybe_end(self) -> None:
        if self.ending is None or self.closed or not self.tracker.safe_point:
            return
        if not self.backend_bye:
            self.client.write(self.ending)
        self._close()

    def client_lost(self) -> None:
        if not self.closed:
            self._close()

    def backend_lost(self) -> None:
        if self.closed:
            return
        if not self.backend_bye and self.tracker.safe_point:
            self.client.write(bye_line("Backend connection lost, please reconnect",
                                       imap_codes.UNAVAILABLE))
        self._close()

    def _check_idle(self) -> None:
        self._idle_call = None
        if self.closed:
            return
        quiet = self._reactor.seconds() - self._last
        if quiet >= self.idle_timeout:
            self.end_soon("Autologout; idle for too long", None)
            if not self.closed:
                self.end_now()
            return
        self._idle_call = self._reactor.callLater(self.idle_timeout - quiet, self._check_idle)

    def _close(self) -> None:
        self.closed = True
        for call in (self._idle_call, self._hard_call):
            if call is not None and call.active():
                call.cancel()
        self._idle_call = self._hard_call = None
        for transport in (self.client, self.backend):
            with contextlib.suppress(Exception):  # already gone
                transport.unregisterProducer()
            transport.loseConnection()
        self._on_end(self)
