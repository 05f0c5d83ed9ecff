"""A connection to one backend: the Twisted shell around :class:`BackendLogin`.

Theory of operation
-------------------
:func:`connect` opens a TCP connection (wrapped in TLS for ``tls =
"implicit"``), feeds the backend's bytes to a :class:`BackendLogin` and
writes what it returns; a ``StartTLS`` action starts TLS on the same
transport. Its Deferred fires once with the :class:`BackendProtocol` and the
login :data:`Outcome`, never errbacks: a refused connection, a timeout, a
TLS failure or a backend that closes before answering are all
:class:`Failed`, the outcome on which the caller tries the next backend.

After :class:`LoggedIn` the protocol belongs to a relay
(:mod:`imapha.proxy.relay`), which receives every later byte.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, cast

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import ClientFactory, Factory, connectionDone
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure

from imapha.config.model import BackendRef
from imapha.proxy.backendlogin import (
    BackendLogin,
    Failed,
    LoggedIn,
    Outcome,
    Rejected,
    StartTLS,
)

log = logging.getLogger(__name__)


#: Bytes read from a relayed backend socket at once (Twisted's default is 64 KiB).
READ_SIZE = 1024 * 1024


class RelaySink(Protocol):
    def from_backend(self, data: bytes) -> None: ...

    def backend_lost(self) -> None: ...


class BackendProtocol(TwistedProtocol):
    """One backend connection; see the module docstring."""

    def __init__(self, login: BackendLogin, tls: IOpenSSLClientConnectionCreator | None,
                 reactor: Any, timeout: float) -> None:
        self.login = login
        self.tls = tls
        self.reactor = reactor
        self.timeout = timeout
        self.result: Deferred[Outcome] = Deferred()
        self.relay: RelaySink | None = None
        self.connected_ok = False
        self.lost = False
        self._timer: Any = None

    @property
    def _t(self) -> Any:
        return self.transport

    def connectionMade(self) -> None:
        self.connected_ok = True
        self._timer = self.reactor.callLater(self.timeout, self._timed_out)
        self._handle(self.login.start())

    def dataReceived(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.from_backend(data)
            return
        self._handle(self.login.receive(data))

    def _handle(self, items: list[Any]) -> None:
        for item in items:
            if isinstance(item, bytes):
                self._t.write(item)
            elif isinstance(item, StartTLS):
                if self.tls is None:
                    self._done(Failed("STARTTLS without TLS options"))
                    return
                self._t.startTLS(self.tls)
                self._handle(self.login.tls_started())
                return
            else:
                self._done(item)
                return

    def _done(self, outcome: Outcome) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not isinstance(outcome, LoggedIn) and self.transport is not None:
            self._t.loseConnection()
        if not self.result.called:
            self.result.callback(outcome)

    def _timed_out(self) -> None:
        self._timer = None
        if not self.result.called:
            log.info("backend login timed out after %gs", self.timeout)
            if self.transport is not None:
                self._t.abortConnection()
            self.result.callback(Failed("timeout"))

    def leftover(self) -> bytes:
        """Backend bytes received after the login's answer (normally none).

        Reads the wire layer's private buffer: ClientConnection has no public
        way to hand it over (reported to the imap package's owner).
        """
        framer = self.login.conn._framer
        data = bytes(framer._buf)
        framer._buf.clear()
        return data

    def relay_to(self, relay: RelaySink) -> bytes:
        """Hand every later byte to ``relay``; returns the backend's leftover bytes.

        The login machinery is dropped (an idle session should cost little) and
        reads get bigger, for throughput of large FETCHes.
        """
        data = self.leftover()
        self.relay = relay
        del self.login
        transport: Any = self.transport
        if hasattr(transport, "bufferSize"):
            transport.bufferSize = READ_SIZE
        return data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if not self.result.called:
            self.result.callback(Failed(f"connection lost: {reason.getErrorMessage()}"))
        elif self.relay is not None:
            self.relay.backend_lost()


class _OneShot(Factory):
    """Hands out one prepared protocol; quiet (no "Starting factory" log lines)."""

    noisy = False

    def __init__(self, proto: BackendProtocol) -> None:
        self.proto = proto

    def buildProtocol(self, addr: Any) -> BackendProtocol:
        return self.proto


class _Direct(ClientFactory):
    """One prepared protocol over ``reactor.connectTCP``: no endpoint wrappers.

    An address backend without implicit TLS (the common case) is connected
    this way; it saves the endpoint's wrapping factory and Deferred chain on
    every login.
    """

    noisy = False

    def __init__(self, proto: BackendProtocol,
                 result: Deferred[tuple[BackendProtocol, Outcome]]) -> None:
        self.proto = proto
        self.result = result

    def buildProtocol(self, addr: Any) -> BackendProtocol:
        self.proto.result.addCallback(lambda outcome: self.result.callback((self.proto, outcome)))
        return self.proto

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        if not self.result.called:
            self.result.callback((self.proto,
                                  Failed(f"connect failed: {reason.getErrorMessage()}")))


def connect(reactor: Any, ref: BackendRef, login: BackendLogin,
            tls: IOpenSSLClientConnectionCreator | None,
            timeout: float) -> Deferred[tuple[BackendProtocol, Outcome]]:
    """Connect to ``ref`` and run ``login``; see the module docstring."""
    host, port = ref.address.host, ref.address.port
    endpoint: Any
    ip = ref.address.ip
    if ip is not None and ref.tls != "implicit":
        proto = BackendProtocol(login, tls, reactor, timeout)
        direct: Deferred[tuple[BackendProtocol, Outcome]] = Deferred()
        reactor.connectTCP(str(ip), port, _Direct(proto, direct), timeout=timeout)
        return direct
    if ip is None:  # a DNS name: resolved (in Twisted's resolver thread) per connection
        endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    elif ip.version == 4:  # an address: no resolver, no thread hop
        endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
    else:
        endpoint = cast(Any, TCP6ClientEndpoint)(reactor, host, port, timeout=timeout)
    if ref.tls == "implicit":
        assert tls is not None
        endpoint = wrapClientTLS(tls, endpoint)
    proto = BackendProtocol(login, tls, reactor, timeout)
    result: Deferred[tuple[BackendProtocol, Outcome]] = Deferred()

    def connected(_: object) -> None:
        proto.result.addCallback(lambda outcome: result.callback((proto, outcome)))

    def failed(failure: Failure) -> None:
        result.callback((proto, Failed(f"connect failed: {failure.getErrorMessage()}")))

    opened: Deferred[Any] = endpoint.connect(_OneShot(proto))
    opened.addCallbacks(connected, failed)
    return result


__all__ = ["BackendProtocol", "Failed", "LoggedIn", "Outcome", "Rejected", "connect"]
