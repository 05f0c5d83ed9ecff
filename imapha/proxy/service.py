"""The proxy role as an :class:`imapha.daemon.Service`: listeners, sessions, drain, verbs.

Theory of operation
-------------------
:class:`ProxyService` owns what every connection shares: the config, the
client TLS context, the connection limiter and auth penalty
(:mod:`imapha.proxy.limits`), the router (:mod:`imapha.proxy.routing`), the
health checker (:mod:`imapha.proxy.health`), and the registry of open
connections (pre-login ones, and relays by backend and user).

Ending sessions is always "at the next safe point" (:meth:`Relay.end_soon`)
first, with a hard deadline after:

- a backend goes down (health) or is drained (``POST /drain-backend``):
  its sessions end soon with ``* BYE [UNAVAILABLE]``; new logins skip it;
- ``POST /kick {"user"}``: that user's sessions end soon;
- ``drain()``: the listeners close at once (vipd moves the VIPs since
  ``/ready`` turns 503), logins on connections already open get
  ``NO [UNAVAILABLE]``; after ``drain_grace`` every session ends soon, and
  :data:`HARD_AFTER` seconds later whatever is left is closed;
- ``stop(deadline)``: like drain with no grace; closed at the deadline.

With ``workers > 1`` this class runs inside each worker process
(:mod:`imapha.proxy.worker`, started by :mod:`imapha.proxy.workers`): it is
then given a :class:`WorkerSpec` naming the concrete addresses to listen on
with ``SO_REUSEPORT`` (the kernel spreads new connections over the workers'
sockets) and its share of the connection limits, ``ceil(limit / workers)``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import socket
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any, cast

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IOpenSSLClientConnectionCreator

from imapha.config import NodeConfig
from imapha.config.model import BackendRef, ProxyConfig
from imapha.control import ControlError, JsonObject, Verb
from imapha.daemon import DaemonContext, ReloadRejected, config_diff
from imapha.filewatch import FileWatch
from imapha.imap import PRE_LOGIN, Limits
from imapha.log import Secret
from imapha.proxy import metrics as m
from imapha.proxy.health import HealthChecker
from imapha.proxy.limits import AuthPenalty, ConnectionLimiter
from imapha.proxy.prelogin import RELAYED_MECHANISMS, Policy
from imapha.proxy.relay import Relay
from imapha.proxy.routing import Candidate, Router, UserMapError, parse_user_map
from imapha.proxy.server import ClientFactory, ClientProtocol
from imapha.proxy.tls import ServerTLS, backend_tls

log = logging.getLogger(__name__)

#: Seconds after the drain grace (or from a stop) before sessions are cut.
HARD_AFTER = 10.0
#: Seconds a stop gives sessions to reach a safe point before they are cut.
STOP_GRACE = 5.0
#: Keys of [proxy] that a reload cannot change (listeners are bound once).
RESTART_KEYS = frozenset({"imap", "imaps", "workers", "control", "metrics"})


class WorkersUnsupported(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """One worker's place: its index, how many there are, where it listens.

    ``listen`` holds ``(kind, host, port)`` with concrete ports (the parent
    reserved them), bound by every worker with ``SO_REUSEPORT``.
    """

    index: int
    count: int
    listen: tuple[tuple[str, str, int], ...]

    def share(self, limit: int) -> int:
        """This worker's part of a limit that the config sets for the whole node."""
        return max(1, math.ceil(limit / self.count))


def reuseport_socket(host: str, port: int, *, listen: bool) -> socket.socket:
    """A TCP socket bound with SO_REUSEADDR and SO_REUSEPORT, listening or not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host.strip("[]"), port))
        if listen:
            sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class ProxyService:
    """See the module docstring."""

    def __init__(self, ctx: DaemonContext, worker: WorkerSpec | None = None) -> None:
        self.ctx = ctx
        self.reactor = ctx.reactor
        cfg = ctx.node_config.proxy
        if cfg is None:
            raise ValueError("no [proxy] section for this node")
        if cfg.workers > 1 and worker is None:
            raise WorkersUnsupported(
                f"proxy.workers = {cfg.workers}: this process is not a worker "
                "(imapha.proxy.workers starts them)")
        self.worker = worker
        self.cfg: ProxyConfig = cfg
        self.server_tls = ServerTLS(cfg.tls_cert, cfg.tls_key)
        self.limiter = ConnectionLimiter(self._share(cfg.max_connections),
                                         self._share(cfg.max_connections_per_ip))
        self.penalty = AuthPenalty(cfg.auth_penalty_max)
        self.backends: dict[str, BackendRef] = {b.name: b for b in ctx.config.backends}
        self.drained_backends: set[str] = set()
        self._tls_cache: dict[str, IOpenSSLClientConnectionCreator] = {}
        self.router = Router([Candidate(b.name, b.weight) for b in ctx.config.backends],
                             self.usable, self._user_map(cfg), self.not_drained)
        self.health = HealthChecker(
            self.reactor, ctx.config.backends, interval=cfg.health_interval,
            timeout=cfg.health_timeout, fall=cfg.health_fall, rise=cfg.health_rise,
            probe_user=cfg.probe_user, probe_password=Secret(cfg.probe_secret()),
            on_change=self._backend_changed, on_probe=self._count_probe)
        self.clients: set[ClientProtocol] = set()
        self.relays: dict[str, set[Relay]] = {b.name: set() for b in ctx.config.backends}
        self.ports: list[tuple[str, str, IListeningPort]] = []
        self.draining = False
        self.stopping = False
        self._drain_calls: list[Any] = []
        self._limits_for: tuple[ProxyConfig | None, Limits] = (None, PRE_LOGIN)
        self._user_map_watch: FileWatch | None = None
        self.user_map_error = ""
        self.vips: dict[str, str] = {}  # VIP name -> what vipd last said this node is
        self._setup_metrics()

    # -- configuration helpers -----------------------------------------------------------

    def _share(self, limit: int) -> int:
        return limit if self.worker is None else self.worker.share(limit)

    @staticmethod
    def _user_map(cfg: ProxyConfig) -> dict[str, str]:
        return parse_user_map(cfg.user_map) if cfg.user_map is not None else {}

    def _watch_user_map(self) -> None:
        """Follow edits of the user map file live; a bad edit keeps the old map."""
        if self._user_map_watch is not None:
            self._user_map_watch.stop()
            self._user_map_watch = None
        if self.cfg.user_map is not None:
            self._user_map_watch = FileWatch(self.reactor, self.cfg.user_map,
                                             self.reload_user_map)

    def reload_user_map(self) -> bool:
        try:
            pinned = self._user_map(self.cfg)
            self.router.set_pinned(pinned)
        except (UserMapError, ValueError) as exc:
            log.error("user map: %s; the previous map stays in force", exc)
            self.user_map_error = str(exc)
            return False
        self.user_map_error = ""
        log.info("user map %s applied: %d pinned user(s)", self.cfg.user_map, len(pinned))
        return True

    @property
    def login_timeout(self) -> float:
        """Bound on connect + login at one backend before the next is tried."""
        return max(5.0, 3 * self.cfg.health_timeout)

    def usable(self, name: str) -> bool:
        return self.health.is_up(name) and name not in self.drained_backends

    def not_drained(self, name: str) -> bool:
        """Down by health checks but not drained: a last resort for logins."""
        return name not in self.drained_backends

    def backend_ref(self, name: str) -> BackendRef | None:
        return self.backends.get(name)

    def backend_tls(self, ref: BackendRef) -> IOpenSSLClientConnectionCreator | None:
        if ref.tls == "none":
            return None
        tls = self._tls_cache.get(ref.name)
        if tls is None:
            tls = backend_tls(ref)
            self._tls_cache[ref.name] = tls
        return tls

    def relayed_mechanisms(self) -> tuple[str, ...]:
        """OAUTHBEARER/XOAUTH2 when every healthy backend advertised them."""
        healthy = [h for n, h in self.health.state.items() if self.usable(n) and h.confirmed]
        if not healthy:
            return ()
        return tuple(mech for mech in RELAYED_MECHANISMS
                     if all(f"AUTH={mech}" in {c.upper() for c in h.capabilities}
                            for h in healthy))

    def policy(self, listener: str, client_ip: str) -> Policy:
        cfg = self.cfg
        allowed = False
        try:
            ip = ipaddress.ip_address(client_ip)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            allowed = any(ip in net for net in cfg.plaintext_auth_networks)
        except ValueError:
            pass
        return Policy(tls=listener == "imaps", starttls=listener == "imap",
                      plaintext_allowed=allowed, max_commands=cfg.max_prelogin_commands,
                      limits=self._limits_for[1] if self._limits_for[0] is cfg
                      else self._prelogin_limits(cfg),
                      relayed_mechanisms=self.relayed_mechanisms())

    def _prelogin_limits(self, cfg: ProxyConfig) -> Limits:
        """The wire limits before login, built once per config (not per connection)."""
        limits = dataclasses.replace(
            PRE_LOGIN, max_line=cfg.max_line_length, max_literal=cfg.max_literal_size,
            max_command=cfg.max_line_length + 2 * cfg.max_literal_size)
        self._limits_for = (cfg, limits)
        return limits

    # -- metrics ----------------------------------------------------------------------

    def _setup_metrics(self) -> None:
        mx = self.ctx.metrics
        self._active = mx.gauge(m.CONNECTIONS_ACTIVE)
        self._connections = mx.counter(m.CONNECTIONS)
        self._logins = mx.counter(m.LOGINS)
        self._login_seconds = mx.histogram(m.LOGIN_SECONDS)
        bytes_total = mx.counter(m.BYTES)
        self.count_in = bytes_total.labels(direction="to_backend").inc
        self.count_out = bytes_total.labels(direction="to_client").inc
        self._limits = mx.counter(m.LIMIT_HITS)
        self._probes = mx.counter(m.PROBES)
        for listener in ("imap", "imaps"):
            self._active.labels(listener=listener)
        self._bind_backend_gauges()

    def _bind_backend_gauges(self) -> None:
        mx = self.ctx.metrics
        for name in self.backends:
            mx.gauge(m.BACKEND_UP).labels(backend=name).set_function(self._up_of(name))
            mx.gauge(m.BACKEND_DRAINING).labels(backend=name).set_function(
                self._draining_of(name))
            mx.gauge(m.SESSIONS).labels(backend=name).set_function(self._sessions_of(name))

    def _up_of(self, name: str) -> Callable[[], float]:
        return lambda: 1.0 if self.health.is_up(name) else 0.0

    def _draining_of(self, name: str) -> Callable[[], float]:
        return lambda: 1.0 if name in self.drained_backends else 0.0

    def _sessions_of(self, name: str) -> Callable[[], float]:
        return lambda: float(len(self.relays.get(name, ())))

    def count_limit(self, limit: str) -> None:
        self._limits.labels(limit=limit).inc()

    def count_connection(self, listener: str, outcome: str) -> None:
        self._connections.labels(listener=listener, outcome=outcome).inc()

    def count_login(self, outcome: str, backend: str, seconds: float | None = None) -> None:
        self._logins.labels(outcome=outcome, backend=backend).inc()
        if seconds is not None:
            self._login_seconds.observe(seconds)

    def _count_probe(self, name: str, ok: bool) -> None:
        self._probes.labels(backend=name, result="ok" if ok else "failed").inc()

    # -- connections ------------------------------------------------------------------

    def client_opened(self, client: ClientProtocol) -> None:
        self.clients.add(client)
        self._active.labels(listener=client.listener).inc()

    def client_closed(self, client: ClientProtocol, outcome: str) -> None:
        self.clients.discard(client)
        self._active.labels(listener=client.listener).dec()
        self.count_connection(client.listener, outcome)

    def new_relay(self, client: ClientProtocol, backend: Any, name: str) -> Relay:
        relay = Relay(client=client.transport, backend=backend.transport, backend_name=name,
                      user=client.user, session_id=client.session_id, reactor=self.reactor,
                      idle_timeout=self.cfg.idle_timeout, count_in=self.count_in,
                      count_out=self.count_out, on_end=self._relay_ended)
        self.relays.setdefault(name, set()).add(relay)
        if name in self.drained_backends or not self.health.is_up(name):
            relay.end_soon("Backend is going out of service, please reconnect")
        elif self.draining and not self._drain_calls:
            relay.end_soon("Server is shutting down, please reconnect")
        return relay

    def _relay_ended(self, relay: Relay) -> None:
        self.relays.get(relay.backend_name, set()).discard(relay)

    def all_relays(self) -> list[Relay]:
        return [r for rs in self.relays.values() for r in rs]

    def _backend_changed(self, name: str, up: bool) -> None:
        if not up:
            for relay in list(self.relays.get(name, ())):
                relay.end_soon("Backend is down, please reconnect")

    # -- Service ------------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        self._watch_user_map()
        self._listen()
        await self.health.start()
        up = [n for n in self.backends if self.health.is_up(n)]
        log.info("proxy listening on %s; backends up: %s",
                 ", ".join(f"{kind} {addr}" for kind, addr, _ in self.ports) or "nothing",
                 ", ".join(up) or "none")

    def _listen(self) -> None:
        if self.worker is not None:
            self._listen_shared(self.worker)
            return
        for kind, addresses in (("imap", self.cfg.imap), ("imaps", self.cfg.imaps)):
            for hp in addresses:
                factory = ClientFactory(self, kind)
                if kind == "imaps":
                    port = self.reactor.listenSSL(hp.port, factory, self.server_tls,
                                                  backlog=1024, interface=hp.host)
                else:
                    port = self.reactor.listenTCP(hp.port, factory, backlog=1024,
                                                  interface=hp.host)
                host = port.getHost()
                text = f"[{host.host}]:{host.port}" if ":" in host.host else \
                    f"{host.host}:{host.port}"
                self.ports.append((kind, text, port))

    def _listen_shared(self, worker: WorkerSpec) -> None:
        """Bind each address with SO_REUSEPORT and hand the socket to the reactor."""
        from twisted.protocols.tls import TLSMemoryBIOFactory

        for kind, host, port_number in worker.listen:
            factory: Any = ClientFactory(self, kind)
            if kind == "imaps":
                factory = TLSMemoryBIOFactory(cast(Any, self.server_tls), False, factory)
            sock = reuseport_socket(host, port_number, listen=True)
            try:
                port = self.reactor.adoptStreamPort(sock.fileno(), sock.family, factory)
            finally:
                sock.close()  # the reactor holds its own duplicate
            text = f"[{host.strip('[]')}]:{port_number}" if ":" in host else \
                f"{host}:{port_number}"
            self.ports.append((kind, text, port))

    def _unlisten(self) -> Deferred[None]:
        ports, self.ports = self.ports, []
        steps = [defer.maybeDeferred(cast(Any, port).stopListening) for _, _, port in ports]
        done: Deferred[Any] = defer.DeferredList(steps, consumeErrors=True)
        return done.addCallback(lambda _: None)

    def is_ready(self) -> tuple[bool, str]:
        up = [n for n in self.backends if self.usable(n) and self.health.state[n].confirmed]
        if up:
            return True, ""
        what = "probe user can log in through" if self.cfg.probe_user else "passes its probe"
        return False, f"no backend {what}"

    def status(self) -> JsonObject:
        health = self.health.status()
        backends = {
            name: {**health.get(name, {}), "draining": name in self.drained_backends,
                   "sessions": len(self.relays.get(name, ())), "address": str(ref.address)}
            for name, ref in self.backends.items()}
        sessions = sum(len(r) for r in self.relays.values())
        up = sum(1 for n in self.backends if self.usable(n))
        return {
            "detail": f"{sessions} sessions, {len(self.clients) - sessions} pre-login, "
                      f"backends {up}/{len(self.backends)} up",
            "listeners": [{"kind": kind, "address": addr} for kind, addr, _ in self.ports],
            "connections": len(self.clients),
            "sessions": sessions,
            "backends": backends,
            "service_draining": self.draining,
            "penalized_addresses": len(self.penalty),
            "user_map_error": self.user_map_error,
            "vips": dict(self.vips),
        }

    def drain(self) -> Deferred[None]:
        if self.draining:
            return defer.succeed(None)
        self.draining = True
        grace = self.cfg.drain_grace
        log.info("draining: listeners closed; sessions end at safe points after %gs", grace)
        self._drain_calls = [
            self.reactor.callLater(grace, self._end_all, "Server is shutting down, "
                                   "please reconnect"),
            self.reactor.callLater(grace + HARD_AFTER, self._cut_all),
        ]
        return self._unlisten()

    def undrain(self) -> None:
        if not self.draining:
            return
        for call in self._drain_calls:
            if call.active():
                call.cancel()
        self._drain_calls = []
        self.draining = False
        if not self.ports:
            self._listen()
        log.info("undrained: listening again")

    def _end_all(self, text: str) -> None:
        for relay in self.all_relays():
            relay.end_soon(text)
        for client in list(self.clients):
            if client.relay is None:
                client.bye(text)

    def _cut_all(self) -> None:
        for relay in self.all_relays():
            relay.end_now()
        for client in list(self.clients):  # TLS close can wait on the peer: abort
            if client.transport is not None:
                cast(Any, client.transport).abortConnection()

    def reload(self, node: NodeConfig) -> list[str]:
        new = node.proxy
        if new is None:
            raise ReloadRejected("the [proxy] section is gone")
        changed = config_diff(self.cfg, new, "proxy")
        blocked = [k for k in changed if k.split(".", 1)[1].split(".")[0] in RESTART_KEYS]
        if blocked:
            raise ReloadRejected(f"{', '.join(blocked)} cannot change live; restart instead")
        try:
            # Always: a renewed certificate is usually written over the same path.
            self.server_tls.load(new.tls_cert, new.tls_key)
            pinned = self._user_map(new)
        except Exception as exc:
            raise ReloadRejected(str(exc)) from exc
        backends = self.ctx.config.backends
        old_refs = self.backends
        self.backends = {b.name: b for b in backends}
        if old_refs != self.backends:
            changed.append("backends")
            self._tls_cache.clear()
        self.router = Router([Candidate(b.name, b.weight) for b in backends], self.usable, pinned,
                             self.not_drained)
        self.health.configure(backends, interval=new.health_interval, timeout=new.health_timeout,
                              fall=new.health_fall, rise=new.health_rise,
                              probe_user=new.probe_user, probe_password=Secret(new.probe_secret()))
        for name in self.backends:
            self.relays.setdefault(name, set())
        for name in set(old_refs) - set(self.backends):
            for relay in list(self.relays.get(name, ())):
                relay.end_soon("Backend removed from service, please reconnect")
        self.drained_backends &= set(self.backends)
        self.limiter.max_total = self._share(new.max_connections)
        self.limiter.max_per_ip = self._share(new.max_connections_per_ip)
        self.penalty.penalty_max = new.auth_penalty_max
        old_map, self.cfg = self.cfg.user_map, new
        if new.user_map != old_map:
            self._watch_user_map()
        self._bind_backend_gauges()
        return changed

    def stop(self, deadline: float) -> Deferred[None]:
        self.stopping = True
        self.health.stop()
        if self._user_map_watch is not None:
            self._user_map_watch.stop()
            self._user_map_watch = None
        for call in self._drain_calls:
            if call.active():
                call.cancel()
        d = self._unlisten()
        self._end_all("Server shutting down, please reconnect")
        done: Deferred[None] = Deferred()
        left = deadline - self.reactor.seconds()
        cut = self.reactor.callLater(max(0.0, min(STOP_GRACE, left - 0.5)), self._cut_all)

        def check() -> None:
            if not self.clients:
                if cut.active():
                    cut.cancel()
                if not done.called:
                    done.callback(None)
                return
            if self.reactor.seconds() >= deadline:
                if not done.called:
                    done.callback(None)
                return
            self.reactor.callLater(0.05, check)

        d.addCallback(lambda _: check())
        return done

    # -- verbs ------------------------------------------------------------------------

    def verbs(self) -> Iterable[Verb]:
        yield Verb("POST", "/kick", self._kick, "end a user's sessions at their next safe point")
        yield Verb("POST", "/drain-backend", self._drain_backend,
                   "route no new login to a backend; end its sessions at safe points")
        yield Verb("POST", "/undrain-backend", self._undrain_backend,
                   "route logins to a drained backend again")
        yield Verb("POST", "/vip", self._vip, "vipd reports this node's state for a VIP")

    def _vip(self, body: JsonObject) -> JsonObject:
        """What vipd says this node is for a VIP; shown in /status, nothing else.

        The proxy listens on every address, so it serves whichever VIPs the
        host holds whatever it is told; the record is for operators.
        """
        name, state = body.get("vip"), body.get("state")
        if not isinstance(name, str) or state not in ("master", "backup", "fault", "stop"):
            raise ControlError(HTTPStatus.BAD_REQUEST,
                               '"vip" must be a name and "state" master, backup, fault or stop')
        self.vips[name] = str(state)
        return {"vip": name, "state": state}

    def _kick(self, body: JsonObject) -> JsonObject:
        user = body.get("user")
        if not isinstance(user, str) or not user:
            raise ControlError(HTTPStatus.BAD_REQUEST, '"user" must be a non-empty string')
        from imapha.proxy.routing import normalize_user

        key = normalize_user(user)
        hit = [r for r in self.all_relays() if normalize_user(r.user) == key]
        for relay in hit:
            relay.end_soon("Session ended by an administrator", None)
        log.info("kick %r: %d session(s)", user, len(hit))
        return {"user": user, "sessions": len(hit)}

    def _backend_name(self, body: JsonObject) -> str:
        name = body.get("name", body.get("backend"))
        if not isinstance(name, str) or name not in self.backends:
            raise ControlError(HTTPStatus.NOT_FOUND, f"no backend named {name!r}")
        return name

    def _drain_backend(self, body: JsonObject) -> JsonObject:
        name = self._backend_name(body)
        self.drained_backends.add(name)
        sessions = list(self.relays.get(name, ()))
        for relay in sessions:
            relay.end_soon("Backend is going out of service, please reconnect")
        log.info("backend %s drained: %d session(s) end at their next safe point",
                 name, len(sessions))
        return {"backend": name, "draining": True, "sessions": len(sessions)}

    def _undrain_backend(self, body: JsonObject) -> JsonObject:
        name = self._backend_name(body)
        self.drained_backends.discard(name)
        return {"backend": name, "draining": False}
