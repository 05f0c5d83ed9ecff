"""The Twisted shell: one protocol per connection feeding a sans-I/O session.

Theory of operation
-------------------
The reactor thread only moves octets. Everything the session does (parsing,
and the Maildir I/O that blocks on the file system, NFS included) runs in the
service's thread pool, **one job at a time per connection**, so a session is
single-threaded even though it runs on several threads over its life:

* ``dataReceived`` queues the chunk and starts a job if none runs;
* a job drains the queue through ``Session.receive`` and hands each batch of
  actions back to the reactor with ``callFromThread`` (FIFO, so responses go
  out in command order, and a ``StartTLSAction`` runs right after the tagged
  OK it follows, before any later octet is read);
* output is flow-controlled: the protocol is the transport's streaming
  producer, and a job that has handed over a full chunk (a big FETCH) waits
  until the transport has drained below its buffer threshold, so a slow reader
  costs a bounded amount of memory, not the whole response;
* when the folder watch fires (inotify on this host, the stat poll for other
  hosts) during IDLE, a job runs ``Session.wake``; a drain or a kick queues a
  BYE that the next job sends between commands.

No reactor-thread code touches the session, and no job touches the transport.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from zope.interface import implementer  # type: ignore[import-untyped]

from imapha.maildir.watch import MaildirWatch
from imapha.server.lmtp import LmtpSession
from imapha.server.session import Action, Close, Hold, Session, StartTLSAction, Watch

if TYPE_CHECKING:
    from imapha.server.service import BackendService

log = logging.getLogger(__name__)

__all__ = ["ImapFactory", "ImapProtocol", "LmtpFactory", "LmtpProtocol"]

#: RFC 3501 §5.4: the autologout timer is at least 30 minutes; RFC 2177 clients
#: re-IDLE within 29. Before login a client has far less reason to wait.
IDLE_TIMEOUT = 31 * 60.0
#: Output chunks (of up to ``session.FLUSH_AT`` octets) a job may run ahead of the socket.
OUTPUT_CHUNKS_IN_FLIGHT = 4
PRELOGIN_TIMEOUT = 60.0


@implementer(IPushProducer)
class ImapProtocol(Protocol):
    def __init__(self, service: BackendService, kind: str) -> None:
        self.service = service
        self.kind = kind
        self.session: Session | None = None
        self.watch: MaildirWatch | None = None
        self.lost = False
        self._lock = threading.Lock()
        self._inbox: deque[bytes] = deque()
        self._wake = False
        self._bye: str | None = None
        self._busy = False
        self._timer: Any = None
        #: During a failed login's hold: the actions that wait, and the timer.
        self._held: list[Action] | None = None
        self._hold_timer: Any = None
        self._resume = False
        #: Set while the transport takes more output (see the module doc).
        self._writable = threading.Event()
        self._writable.set()
        #: Chunks handed to the reactor and not yet written (bounded).
        self._inflight = threading.Semaphore(OUTPUT_CHUNKS_IN_FLIGHT)

    # -- reactor side ----------------------------------------------------------------
    def connectionMade(self) -> None:
        transport: Any = self.transport
        peer = transport.getPeer()
        svc = self.service
        self.session = Session(svc.context, str(getattr(peer, "host", "")),
                               tls=self.kind == "imaps", sink=self._sink)
        svc.opened(self)
        transport.registerProducer(self, True)
        self.set_timeout(PRELOGIN_TIMEOUT)
        self._carry_out(self.session.greeting())

    def set_timeout(self, seconds: float | None) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if seconds is not None:
            self._timer = self.service.reactor.callLater(seconds, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        if self._busy:
            # A job stuck on a client that stopped reading: nothing to say politely.
            transport: Any = self.transport
            transport.abortConnection()
        else:
            self.bye("Autologout: idle for too long")

    def dataReceived(self, data: bytes) -> None:
        session = self.session
        self.set_timeout(IDLE_TIMEOUT if session is not None and session.user else
                         PRELOGIN_TIMEOUT)
        with self._lock:
            self._inbox.append(data)
        self._kick()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True
        self._writable.set()
        self.set_timeout(None)
        if self._hold_timer is not None and self._hold_timer.active():
            self._hold_timer.cancel()
        self._set_watch(None)
        if self.session is not None:
            self.session.close()
        self.service.closed(self)

    def changed(self) -> None:
        """The selected folder's watch fired (reactor thread)."""
        session = self.session
        if session is not None and session.idling is not None:
            with self._lock:
                self._wake = True
            self._kick()

    def bye(self, text: str) -> None:
        """End the session at the next safe point (drain, kick, stop)."""
        with self._lock:
            self._bye = text
        self._kick()

    def _kick(self) -> None:
        if self._busy or self.lost:
            return
        with self._lock:
            if self._held is not None or not (
                    self._inbox or self._wake or self._resume or self._bye is not None):
                return
        self._busy = True
        d = deferToThreadPool(self.service.reactor, self.service.pool, self._work)
        d.addCallbacks(self._done, self._failed)

    def _done(self, _: object) -> None:
        self._busy = False
        session = self.session
        if not self.lost:
            self.set_timeout(IDLE_TIMEOUT if session is not None and session.user else
                             PRELOGIN_TIMEOUT)
        self._kick()

    def _failed(self, failure: Failure) -> None:
        self._busy = False
        log.error("session job failed: %s", failure.getTraceback())
        transport: Any = self.transport
        if transport is not None:
            transport.abortConnection()

    # IPushProducer: the transport says when its buffer is full or drained.
    def pauseProducing(self) -> None:
        self._writable.clear()

    def resumeProducing(self) -> None:
        self._writable.set()

    def stopProducing(self) -> None:
        self._writable.set()

    def _sink(self, data: bytes) -> None:
        """Worker thread: hand a chunk over, then wait while the client is slow."""
        while not self._inflight.acquire(timeout=1.0):
            if self.lost:
                return
        self.service.reactor.callFromThread(self._write_chunk, data)
        while not self._writable.wait(1.0):
            if self.lost:
                return

    def _write_chunk(self, data: bytes) -> None:
        self._inflight.release()
        self._write(data)

    def _write(self, data: bytes) -> None:
        if not self.lost:
            transport: Any = self.transport
            transport.write(data)

    def _carry_out(self, actions: list[Action]) -> None:
        transport: Any = self.transport
        if self._held is not None:
            self._held.extend(actions)  # in order, after what the hold keeps
            return
        for i, action in enumerate(actions):
            if self.lost:
                return
            if isinstance(action, Hold):
                self._held = list(actions[i + 1:])
                self._hold_timer = self.service.reactor.callLater(action.seconds,
                                                                  self._release)
                return
            if isinstance(action, bytes):
                transport.write(action)
            elif isinstance(action, StartTLSAction):
                tls = self.service.server_tls
                assert tls is not None
                transport.startTLS(tls)
            elif isinstance(action, Close):
                transport.loseConnection()
            elif isinstance(action, Watch):
                self._set_watch(action)

    def _release(self) -> None:
        """The hold is over: send what waited, then let the session read on."""
        held, self._held = self._held or [], None
        self._carry_out(held)
        with self._lock:
            self._resume = True
        self._kick()

    def _set_watch(self, action: Watch | None) -> None:
        if self.watch is not None:
            self.watch.stop()
            self.watch = None
        if action is not None and action.path is not None:
            reactor = self.service.reactor
            self.watch = MaildirWatch(action.path,
                                      on_change=lambda: reactor.callFromThread(self.changed),
                                      hub=self.service.inotify).start()

    # -- worker side ---------------------------------------------------------------
    def _work(self) -> None:
        session = self.session
        assert session is not None
        call: Callable[..., Any] = self.service.reactor.callFromThread
        while True:
            with self._lock:
                chunks = list(self._inbox)
                self._inbox.clear()
                wake, self._wake = self._wake, False
                bye, self._bye = self._bye, None
                resume, self._resume = self._resume, False
            if not chunks and not wake and bye is None and not resume:
                return
            if resume:
                actions = session.resume()
                if actions:
                    call(self._carry_out, actions)
            for chunk in chunks:
                actions = session.receive(chunk)
                if actions:
                    call(self._carry_out, actions)
            if wake:
                actions = session.wake()
                if actions:
                    call(self._carry_out, actions)
            if bye is not None:
                call(self._carry_out, session.shutdown(bye))
            if session.closed:
                return


class ImapFactory(Factory):
    def __init__(self, service: BackendService, kind: str) -> None:
        self.service = service
        self.kind = kind

    def buildProtocol(self, addr: Any) -> ImapProtocol:
        proto = ImapProtocol(self.service, self.kind)
        proto.factory = self
        return proto


class LmtpProtocol(Protocol):
    """LMTP over TCP; each batch of lines runs in the pool (deliveries block)."""

    def __init__(self, service: BackendService) -> None:
        self.service = service
        self.session = LmtpSession(service.hostname, service.user_exists, service.deliver_lmtp,
                                   max_size=service.max_message_size)
        self._inbox: deque[bytes] = deque()
        self._busy = False
        self.lost = False

    def connectionMade(self) -> None:
        transport: Any = self.transport
        transport.write(self.session.greeting())

    def dataReceived(self, data: bytes) -> None:
        self._inbox.append(data)
        self._kick()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True

    def _kick(self) -> None:
        if self._busy or not self._inbox or self.lost:
            return
        data = b"".join(self._inbox)
        self._inbox.clear()
        self._busy = True
        d = deferToThreadPool(self.service.reactor, self.service.pool, self.session.receive, data)
        d.addCallbacks(self._replied, self._failed)

    def _replied(self, out: bytes) -> None:
        self._busy = False
        transport: Any = self.transport
        if not self.lost:
            transport.write(out)
            if self.session.closed:
                transport.loseConnection()
                return
        self._kick()

    def _failed(self, failure: Failure) -> None:
        self._busy = False
        log.error("LMTP job failed: %s", failure.getTraceback())
        transport: Any = self.transport
        transport.abortConnection()


class LmtpFactory(Factory):
    def __init__(self, service: BackendService) -> None:
        self.service = service

    def buildProtocol(self, addr: Any) -> LmtpProtocol:
        proto = LmtpProtocol(self.service)
        proto.factory = self
        return proto
