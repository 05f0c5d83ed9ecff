"""Backend health: a real IMAP exchange with every backend, every ``health_interval``.

Theory of operation
-------------------
A probe is a fresh connection that does what a login does, bounded by
``health_timeout``: greeting, STARTTLS when the backend uses it, CAPABILITY,
and a LOGIN as ``probe_user`` when one is configured (then LOGOUT). A port
that accepts but never greets, or a Dovecot whose auth process is dead,
fails it.

:class:`BackendHealth` is the pure part: consecutive results move a backend
between up and down like HAProxy's rise/fall:

======  ==================================  ======
state   input                               next
======  ==================================  ======
up      ``health_fall`` failures in a row   down
down    ``health_rise`` successes in a row  up
======  ==================================  ======

A backend starts *up* but unconfirmed; :meth:`HealthChecker.start` runs one
round first, so a daemon does not report ready (nor route to a dead backend)
before the first answers. On a change, ``on_change(name, up)`` is called: the
service ends the sessions of a backend that went down at their next safe
point. The pre-login capabilities each probe saw are kept: the proxy offers
OAUTHBEARER/XOAUTH2 only when every healthy backend does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from imapha.config.model import BackendRef
from imapha.log import Secret
from imapha.proxy import backend as backend_io
from imapha.proxy.backendlogin import BackendLogin, LoggedIn
from imapha.proxy.prelogin import LoginRequest
from imapha.proxy.tls import backend_tls

log = logging.getLogger(__name__)


@dataclass
class BackendHealth:
    """Rise/fall bookkeeping of one backend (pure)."""

    fall: int
    rise: int
    up: bool = True
    confirmed: bool = False  # at least one probe answered either way
    streak: int = 0  # consecutive results contradicting ``up``
    last_error: str = ""
    capabilities: tuple[str, ...] = field(default=())

    def record(self, ok: bool, error: str = "") -> bool:
        """Add one probe result; True when ``up`` changed."""
        first = not self.confirmed
        self.confirmed = True
        self.last_error = "" if ok else error
        if first:  # the very first probe decides at once
            changed = self.up != ok
            self.up, self.streak = ok, 0
            return changed
        if ok == self.up:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak >= (self.rise if ok else self.fall):
            self.up, self.streak = ok, 0
            return True
        return False


class HealthChecker:
    """Probes every backend periodically (the Twisted side)."""

    def __init__(self, reactor: Any, backends: tuple[BackendRef, ...], *, interval: float,
                 timeout: float, fall: int, rise: int, probe_user: str,
                 probe_password: Secret, on_change: Callable[[str, bool], None],
                 on_probe: Callable[[str, bool], None] | None = None) -> None:
        self.reactor = reactor
        self.on_change = on_change
        self.on_probe = on_probe
        self.configure(backends, interval=interval, timeout=timeout, fall=fall, rise=rise,
                       probe_user=probe_user, probe_password=probe_password)
        self.state: dict[str, BackendHealth] = {
            b.name: BackendHealth(fall, rise) for b in backends}
        self._loop: LoopingCall | None = None
        self._running: set[str] = set()

    def configure(self, backends: tuple[BackendRef, ...], *, interval: float, timeout: float,
                  fall: int, rise: int, probe_user: str, probe_password: Secret) -> None:
        self.backends = {b.name: b for b in backends}
        self.interval, self.timeout, self.fall, self.rise = interval, timeout, fall, rise
        self.probe_user, self.probe_password = probe_user, probe_password
        state = getattr(self, "state", {})
        self.state = {b.name: state.get(b.name, BackendHealth(fall, rise)) for b in backends}
        for h in self.state.values():
            h.fall, h.rise = fall, rise
        loop = getattr(self, "_loop", None)
        if loop is not None and loop.running and loop.interval != interval:
            loop.stop()
            self._start_loop()

    def is_up(self, name: str) -> bool:
        health = self.state.get(name)
        return health is not None and health.up

    def start(self) -> Deferred[None]:
        """Run one round, then keep probing every interval."""
        first = self.round()
        first.addCallback(lambda _: self._start_loop())
        return first

    def _start_loop(self) -> None:
        self._loop = LoopingCall(self.round)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: log.error("health loop failed: %s", f.getTraceback()))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def round(self) -> Deferred[None]:
        """One probe of every backend not already being probed."""
        probes = [self._probe(name) for name in list(self.backends) if name not in self._running]
        done: Deferred[Any] = defer.DeferredList(probes, consumeErrors=True)
        return done.addCallback(lambda _: None)

    def _probe(self, name: str) -> Deferred[None]:
        ref = self.backends[name]
        self._running.add(name)
        request = None
        if self.probe_user:
            request = LoginRequest(_probe_tag(), self.probe_user, self.probe_password, "LOGIN")
        try:
            tls = backend_tls(ref) if ref.tls != "none" else None
        except Exception as exc:  # an unreadable CA file: the backend cannot be used
            self._result(name, False, f"TLS setup: {exc}", ())
            self._running.discard(name)
            return defer.succeed(None)
        login = BackendLogin(request, starttls=ref.tls == "starttls",
                             proxy_header=_local_proxy_header() if ref.proxy_protocol else None)
        d = backend_io.connect(self.reactor, ref, login, tls, self.timeout)

        def done(result: tuple[backend_io.BackendProtocol, Any]) -> None:
            proto, outcome = result
            self._running.discard(name)
            if name not in self.backends:
                return
            if isinstance(outcome, LoggedIn):
                caps = login.prelogin_capabilities
                transport: Any = proto.transport
                if transport is not None and not proto.lost:
                    transport.write(b"PZ LOGOUT\r\n")
                    transport.loseConnection()
                self._result(name, True, "", caps)
            else:
                reason = getattr(outcome, "reason", None) or f"probe login refused: {outcome}"
                self._result(name, False, str(reason), None)

        return d.addCallback(done)

    def _result(self, name: str, ok: bool, error: str, caps: tuple[str, ...] | None) -> None:
        health = self.state[name]
        if caps:
            health.capabilities = caps
        was_confirmed = health.confirmed
        changed = health.record(ok, error)
        if self.on_probe is not None:
            self.on_probe(name, ok)
        if not ok and (changed or not was_confirmed):
            log.warning("backend %s probe failed: %s", name, error)
        if changed:
            log.warning("backend %s is %s", name, "up" if health.up else "DOWN")
            self.on_change(name, health.up)

    def status(self) -> dict[str, Any]:
        return {name: {"up": h.up, "confirmed": h.confirmed, "last_error": h.last_error,
                       "streak": h.streak}
                for name, h in self.state.items()}


def _probe_tag() -> Any:
    from imapha.imap import Tag

    return Tag("P0")


def _local_proxy_header() -> bytes:
    """A PROXY v2 LOCAL header: the probe speaks for itself, not for a client."""
    return b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
