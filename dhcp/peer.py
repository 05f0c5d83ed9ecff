"""The failover peer link over TCP (Twisted shell around :mod:`dhcp.peerproto`).

Theory of operation
-------------------
Both nodes listen on their ``peer_port``. The node whose name sorts first
dials the other and keeps one authenticated connection; the other node, while
it has no connection, *probes* (connects and hangs up at once) so that it too
learns how its peer is: a refused connection means the peer's host answers
but no DHCP server runs there (**known down**), a timeout means the peer
cannot be reached and may well be serving (**unknown**). The dialer learns the
same from its own dial attempts. :class:`PeerLink` reports these to its owner
through :class:`PeerListener`.

Liveness: each side pings every :data:`PING_INTERVAL`; a connection with no
frame for :data:`LIVENESS` is aborted. The newest authenticated connection
wins: an older one (a half-open leftover of a partition) is closed.

:meth:`PeerLink.replicate` sends lease records and returns a Deferred that
fires when the peer acknowledges them (it merged them into its store), or
errbacks with :class:`PeerDown` when the link is lost or the peer takes
longer than :data:`ACK_TIMEOUT` (the connection is then aborted: a peer that
does not acknowledge is not a peer we can rely on).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any, Final, Protocol, cast

from twisted.internet import defer, error
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Factory
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from dhcp.peerproto import (
    Authenticated,
    Message,
    PeerConnection,
    PeerProtocolError,
    lease_to_wire,
)
from dhcp.store import Lease

log = logging.getLogger(__name__)

PING_INTERVAL: Final = 0.2
LIVENESS: Final = 1.0
ACK_TIMEOUT: Final = 0.8
DIAL_INTERVAL: Final = 0.25
CONNECT_TIMEOUT: Final = 1.0


class PeerDown(Exception):
    """The peer link went away before the peer acknowledged."""


class PeerListener(Protocol):
    def peer_up(self) -> None: ...

    def peer_lost(self, reason: str) -> None: ...

    def peer_refused(self) -> None: ...

    def peer_unreachable(self) -> None: ...

    def peer_message(self, body: dict[str, Any]) -> None: ...


class _PeerProtocol(TwistedProtocol):
    def __init__(self, link: PeerLink, *, dialed: bool = False) -> None:
        self.link = link
        self.dialed = dialed
        self.conn = PeerConnection(link.node, link.peer, link.secret, os.urandom(32))
        self.last_heard = time.monotonic()
        self.up = False

    def connectionMade(self) -> None:
        tcp = cast(Any, self.transport)
        tcp.setTcpNoDelay(True)
        tcp.write(self.conn.hello())
        self.link.reactor.callLater(LIVENESS, self._handshake_deadline)

    def _handshake_deadline(self) -> None:
        if not self.up and self.transport is not None:
            cast(Any, self.transport).abortConnection()

    def dataReceived(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        try:
            events, reply = self.conn.receive_data(data)
        except PeerProtocolError as exc:
            log.warning("peer link: %s; dropping the connection", exc)
            self.link.auth_failures += 1
            cast(Any, self.transport).abortConnection()
            return
        if reply:
            cast(Any, self.transport).write(reply)
        for event in events:
            if isinstance(event, Authenticated):
                self.up = True
                self.link.connection_up(self)
            elif isinstance(event, Message):
                self.link.message(self, event.body)

    def send(self, body: dict[str, Any]) -> None:
        cast(Any, self.transport).write(self.conn.send(body))

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.link.connection_gone(self, str(reason.value) if reason is not None else "closed")


class _ServerFactory(Factory):
    noisy = False

    def __init__(self, link: PeerLink) -> None:
        self.link = link

    def buildProtocol(self, addr: Any) -> _PeerProtocol:
        return _PeerProtocol(self.link)


class _DialFactory(ClientFactory):
    noisy = False

    def __init__(self, link: PeerLink, probe: bool) -> None:
        self.link = link
        self.probe = probe

    def buildProtocol(self, addr: Any) -> TwistedProtocol:
        if self.probe:
            self.link.dialing = False
            return _Probe()
        return _PeerProtocol(self.link, dialed=True)  # dialing ends with its handshake

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.link.dialing = False
        self.link.dial_failed(reason)


class _Probe(TwistedProtocol):
    def connectionMade(self) -> None:
        cast(Any, self.transport).loseConnection()


class PeerLink:
    """The link to the one peer; see the module docstring."""

    def __init__(
        self,
        reactor: Any,
        listener: PeerListener,
        *,
        node: str,
        peer: str,
        secret: bytes,
        listen: tuple[str, int],
        peer_address: tuple[str, int],
    ) -> None:
        self.reactor = reactor
        self.listener = listener
        self.node = node
        self.peer = peer
        self.secret = secret
        self.listen_address = listen
        self.peer_address = peer_address
        self.dials = node < peer
        self.active: _PeerProtocol | None = None
        self.dialing = False
        self.auth_failures = 0
        self.last_rtt: float | None = None
        self.pending: dict[int, tuple[Deferred[None], Any, float]] = {}
        self._seq = 0
        self._port: Any = None
        self._loops: list[LoopingCall] = []

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        host, port = self.listen_address
        self._port = self.reactor.listenTCP(port, _ServerFactory(self), interface=host)
        for interval, fn in ((DIAL_INTERVAL, self._dial), (PING_INTERVAL, self._ping)):
            loop = LoopingCall(fn)
            loop.clock = self.reactor
            loop.start(interval, now=True)
            self._loops.append(loop)

    def stop(self) -> Deferred[None]:
        for loop in self._loops:
            if loop.running:
                loop.stop()
        if self.active is not None:  # a clean close: what was sent (a "bye") arrives
            cast(Any, self.active.transport).loseConnection()
        port, self._port = self._port, None
        if port is None:
            return defer.succeed(None)
        stopped: Deferred[None] = defer.maybeDeferred(port.stopListening)
        return stopped

    @property
    def connected(self) -> bool:
        return self.active is not None

    # -- dialing and liveness ----------------------------------------------

    def _dial(self) -> None:
        if self.active is not None or self.dialing:
            return
        self.dialing = True
        host, port = self.peer_address
        self.reactor.connectTCP(
            host, port, _DialFactory(self, probe=not self.dials), timeout=CONNECT_TIMEOUT
        )

    def dial_failed(self, reason: Failure) -> None:
        if self.active is not None:
            return
        if cast(Any, reason).check(error.ConnectionRefusedError):
            log.debug("peer %s refused the connection", self.peer)
            self.listener.peer_refused()
        else:
            self.listener.peer_unreachable()

    def _ping(self) -> None:
        conn = self.active
        if conn is None:
            return
        if time.monotonic() - conn.last_heard > LIVENESS:
            log.warning("peer link: nothing from %s for %.1f s; dropping it", self.peer, LIVENESS)
            cast(Any, conn.transport).abortConnection()
            return
        conn.send({"t": "ping", "at": time.monotonic()})

    # -- connections -------------------------------------------------------

    def connection_up(self, conn: _PeerProtocol) -> None:
        if conn.dialed:
            self.dialing = False
        old, self.active = self.active, conn
        if old is not None and old is not conn:
            cast(Any, old.transport).abortConnection()
            self._fail_pending("replaced by a new connection")
        log.info("peer link to %s is up", self.peer)
        self.listener.peer_up()

    def connection_gone(self, conn: _PeerProtocol, reason: str) -> None:
        if conn.dialed and not conn.up:
            self.dialing = False  # the handshake never finished
        if conn is not self.active:
            return
        self.active = None
        self._fail_pending(reason)
        log.warning("peer link to %s lost: %s", self.peer, reason)
        self.listener.peer_lost(reason)

    def _fail_pending(self, reason: str) -> None:
        pending, self.pending = self.pending, {}
        for result, timer, _sent in pending.values():
            if timer.active():
                timer.cancel()
            result.errback(PeerDown(reason))

    def message(self, conn: _PeerProtocol, body: dict[str, Any]) -> None:
        if conn is not self.active:
            return
        kind = body.get("t")
        if kind == "ping":
            conn.send({"t": "pong", "at": body.get("at")})
        elif kind == "pong":
            at = body.get("at")
            if isinstance(at, int | float):
                self.last_rtt = max(0.0, time.monotonic() - float(at))
        elif kind == "ack":
            entry = self.pending.pop(int(body.get("seq", -1)), None)
            if entry is not None:
                result, timer, sent = entry
                timer.cancel()
                self.last_rtt = time.monotonic() - sent
                result.callback(None)
        else:
            self.listener.peer_message(body)

    # -- sending -----------------------------------------------------------

    def send(self, body: dict[str, Any]) -> bool:
        if self.active is None:
            return False
        self.active.send(body)
        return True

    def replicate(self, leases: Sequence[Lease]) -> Deferred[None]:
        """Send ``leases``; fires when the peer has them, errbacks with PeerDown."""
        if self.active is None:
            return defer.fail(PeerDown("no peer link"))
        self._seq += 1
        seq = self._seq
        result: Deferred[None] = Deferred()
        timer = self.reactor.callLater(ACK_TIMEOUT, self._ack_timeout, seq)
        self.pending[seq] = (result, timer, time.monotonic())
        self.active.send({"t": "upd", "seq": seq, "leases": [lease_to_wire(x) for x in leases]})
        return result

    def _ack_timeout(self, seq: int) -> None:
        if seq in self.pending and self.active is not None:
            log.warning("peer %s did not acknowledge within %.1f s; dropping the link",
                        self.peer, ACK_TIMEOUT)
            cast(Any, self.active.transport).abortConnection()

    @property
    def lag(self) -> float:
        """Seconds the oldest unacknowledged update has waited (0 when none)."""
        if not self.pending:
            return 0.0
        return time.monotonic() - min(sent for _d, _t, sent in self.pending.values())
