"""One client connection: the Twisted shell around :class:`PreLogin`, then the relay.

Theory of operation
-------------------
A :class:`ClientProtocol` is admitted by the connection limits (else it gets
``* BYE [LIMIT]`` or ``* BYE [UNAVAILABLE]`` as its greeting), greets, and
feeds the client's bytes to its :class:`~imapha.proxy.prelogin.PreLogin`,
carrying out what comes back: bytes are written, ``StartTLS`` starts TLS on
the same transport (the ServerConnection already dropped any plaintext sent
after the command), ``Close`` closes.

A ``LoginRequest`` is answered after the address's auth penalty delay: the
router gives the user's usable backends in order (at most ``login_retries +
1``); each is tried in turn while it fails *before* answering the login
(connect refused, timeout, TLS error, BYE); its NO ends the attempt with
``NO [AUTHENTICATIONFAILED]`` and a longer penalty; none left is
``NO [UNAVAILABLE]``. The client never learns which backend was asked.

Once logged in, the PreLogin is dropped (its memory with it) and a
:class:`~imapha.proxy.relay.Relay` joins the two transports; client bytes
pipelined after the login command are the relay's first input.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.protocol import Factory, connectionDone
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure

from imapha.imap import codes as imap_codes
from imapha.imap import originating_id
from imapha.proxy import backend as backend_io
from imapha.proxy.backendlogin import BackendLogin, Failed, LoggedIn, Rejected, proxy_v2_header
from imapha.proxy.limits import Refusal
from imapha.proxy.prelogin import Close, LoginRequest, PreLogin, StartTLS, State
from imapha.proxy.relay import Relay, bye_line

if TYPE_CHECKING:
    from imapha.proxy.service import ProxyService

log = logging.getLogger(__name__)


class ClientProtocol(TwistedProtocol):
    """See the module docstring."""

    def __init__(self, service: ProxyService, listener: str) -> None:
        self.service = service
        self.listener = listener
        self.pre: PreLogin | None = None
        self.relay: Relay | None = None
        self.admitted = False
        self.lost = False
        self.peer = ("", 0)
        self.local = ("", 0)
        self.session_id = secrets.token_hex(8)
        self.user = ""
        self._timer: Any = None
        self._pending: Any = None
        self._login_started = 0.0

    # -- connection --------------------------------------------------------------

    def connectionMade(self) -> None:
        svc = self.service
        transport: Any = self.transport
        peer, host = transport.getPeer(), transport.getHost()
        self.peer = (str(getattr(peer, "host", "")), int(getattr(peer, "port", 0)))
        self.local = (str(getattr(host, "host", "")), int(getattr(host, "port", 0)))
        refusal = svc.limiter.admit(self.peer[0])
        if refusal is not None:
            svc.count_limit(refusal.value)
            svc.count_connection(self.listener, "refused")
            if refusal is Refusal.PER_IP:
                line = bye_line("Too many connections from your address", imap_codes.LIMIT)
            else:
                line = bye_line("Too many connections, try again later", imap_codes.UNAVAILABLE)
            transport.write(line)
            transport.loseConnection()
            return
        self.admitted = True
        svc.client_opened(self)
        self.pre = PreLogin(svc.policy(self.listener, self.peer[0]))
        transport.write(self.pre.greeting())
        self._timer = svc.reactor.callLater(svc.cfg.prelogin_timeout, self._prelogin_timeout)

    def dataReceived(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.from_client(data)
        elif self.pre is not None:
            self._carry_out(self.pre.receive(data))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True
        for call in (self._timer, self._pending):
            if call is not None and call.active():
                call.cancel()
        if self.relay is not None:
            self.relay.client_lost()
        if self.admitted:
            self.service.limiter.release(self.peer[0])
            self.service.client_closed(self, "relayed" if self.relay is not None else "prelogin")

    # -- pre-login --------------------------------------------------------------

    def _carry_out(self, items: list[Any]) -> None:
        transport: Any = self.transport
        for item in items:
            if self.lost:
                return
            if isinstance(item, bytes):
                transport.write(item)
            elif isinstance(item, StartTLS):
                transport.startTLS(self.service.server_tls)
                assert self.pre is not None
                self._carry_out(self.pre.tls_started())
            elif isinstance(item, LoginRequest):
                self._login(item)
            elif isinstance(item, Close):
                transport.loseConnection()

    def _prelogin_timeout(self) -> None:
        self._timer = None
        if self.pre is None or self.lost:
            return
        if self.pre.state is State.LOGGING_IN:  # answered by the login under way
            self._timer = self.service.reactor.callLater(5.0, self._prelogin_timeout)
            return
        self.service.count_limit("prelogin_timeout")
        transport: Any = self.transport
        transport.write(self.pre.bye("Disconnected for inactivity", imap_codes.LIMIT))
        transport.loseConnection()

    def bye(self, text: str) -> None:
        """End a pre-login connection (drain, stop)."""
        if self.pre is None or self.lost:
            return
        if self.pre.state is State.LOGGING_IN:
            return  # answered by the login in progress
        line = self.pre.bye(text, imap_codes.UNAVAILABLE)
        transport: Any = self.transport
        transport.write(line)
        transport.loseConnection()

    # -- login ------------------------------------------------------------------

    def _login(self, req: LoginRequest) -> None:
        svc = self.service
        self.user = req.user
        if svc.draining or svc.stopping:
            svc.count_login("unavailable", "")
            assert self.pre is not None
            self._carry_out(self.pre.login_unavailable("Server is shutting down, reconnect."))
            return
        delay = svc.penalty.delay(self.peer[0], svc.reactor.seconds())
        if delay > 0:
            svc.count_limit("auth_penalty")
        self._pending = svc.reactor.callLater(delay, self._try, req, None)

    def _try(self, req: LoginRequest, order: list[str] | None) -> None:
        svc = self.service
        self._pending = None
        if self.lost:
            return
        if order is None:
            self._login_started = svc.reactor.seconds()
            order = svc.router.route(req.user, limit=svc.cfg.login_retries + 1)
        if not order:
            self._unavailable()
            return
        ref = svc.backend_ref(order[0])
        if ref is None:
            self._try(req, order[1:])
            return
        forward_id = None
        if svc.cfg.forward == "id":
            forward_id = originating_id(self.peer[0], self.peer[1], self.local[0],
                                        self.local[1], self.session_id)
        header = None
        if svc.cfg.forward == "proxy-v2" or ref.proxy_protocol:
            header = proxy_v2_header(self.peer, self.local)
        try:
            tls = svc.backend_tls(ref)
        except Exception as exc:
            log.warning("backend %s: TLS setup failed: %s", ref.name, exc)
            svc.count_login("backend_error", ref.name)
            self._try(req, order[1:])
            return
        login = BackendLogin(req, starttls=ref.tls == "starttls", forward_id=forward_id,
                             proxy_header=header)
        d = backend_io.connect(svc.reactor, ref, login, tls, svc.login_timeout)
        d.addCallback(self._tried, req, order)
        d.addErrback(lambda f: log.error("login to %s failed: %s", ref.name, f.getTraceback()))

    def _tried(self, result: tuple[backend_io.BackendProtocol, Any], req: LoginRequest,
               order: list[str]) -> None:
        proto, outcome = result
        svc = self.service
        name = order[0]
        if self.lost or self.pre is None:
            if isinstance(outcome, LoggedIn) and proto.transport is not None:
                cast(Any, proto.transport).loseConnection()
            return
        if isinstance(outcome, LoggedIn):
            svc.penalty.succeeded(self.peer[0])
            svc.count_login("ok", name, svc.reactor.seconds() - self._login_started)
            self._logged_in(proto, name, outcome.capabilities)
        elif isinstance(outcome, Rejected):
            svc.penalty.failed(self.peer[0], svc.reactor.seconds())
            svc.count_login("failed", name, svc.reactor.seconds() - self._login_started)
            log.info("login failed for %r from %s (session %s)", req.user, self.peer[0],
                     self.session_id)
            self._carry_out(self.pre.login_failed())
        else:
            assert isinstance(outcome, Failed)
            log.warning("backend %s failed during login (session %s): %s", name,
                        self.session_id, outcome.reason)
            svc.count_login("backend_error", name)
            self._try(req, order[1:])

    def _unavailable(self) -> None:
        svc = self.service
        svc.count_login("unavailable", "", svc.reactor.seconds() - self._login_started)
        assert self.pre is not None
        self._carry_out(self.pre.login_unavailable())

    def _logged_in(self, proto: backend_io.BackendProtocol, name: str,
                   caps: tuple[str, ...]) -> None:
        pre = self.pre
        assert pre is not None
        transport: Any = self.transport
        transport.write(pre.login_succeeded(caps))
        if hasattr(transport, "SEND_LIMIT"):  # plain TCP: bigger send() calls
            transport.SEND_LIMIT = backend_io.READ_SIZE
        leftover = pre.leftover()
        self.pre = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        log.info("session %s: %r from %s logged in on %s", self.session_id, self.user,
                 self.peer[0], name)
        relay = self.service.new_relay(self, proto, name)
        self.relay = relay
        backend_left = proto.relay_to(relay)
        if leftover:
            relay.from_client(leftover)
        if backend_left:
            relay.from_backend(backend_left)
        if proto.lost:
            relay.backend_lost()


class ClientFactory(Factory):
    """Builds a :class:`ClientProtocol` per accepted connection of one listener."""

    noisy = False

    def __init__(self, service: ProxyService, listener: str) -> None:
        self.service = service
        self.listener = listener

    def buildProtocol(self, addr: Any) -> ClientProtocol:
        proto = ClientProtocol(self.service, self.listener)
        proto.factory = self
        return proto
