"""The lifecycle every imapha daemon shares: start, serve, reload, drain, stop.

Theory of operation
-------------------
A role (proxy, backend, vipd, dhcp) is a :class:`Service`; its ``main`` module
calls :func:`run_daemon` with a factory that builds the service from a
:class:`DaemonContext`. ``run_daemon`` owns everything else, in this order:

1. Load the cluster config (:func:`imapha.config.load_config`); every issue is
   logged and the exit code is 1 if it is bad, if the node is not in it, or
   if the role is not configured for the node.
2. Claim the control socket (:class:`imapha.control.ControlServer` refuses
   when another live daemon answers there, replaces a stale one), then write
   ``{run_dir}/{role}.pid`` and serve ``/metrics`` if the config names an
   address. The control API answers from this point, ``state: "starting"``.
3. ``service.start()``. If it fails, the error is logged with its traceback,
   the socket, pid file and metrics port are removed, and the exit code is 1.
4. Running. Readiness is polled every :data:`READY_POLL` seconds: the first
   time the service is ready, systemd gets ``READY=1``; every change of
   ready/not ready/draining is logged and sent as ``STATUS=``.

Signals (handled in the reactor thread; Twisted keeps SIGCHLD):

- SIGTERM / SIGINT: graceful stop. ``STOPPING=1``; ``service.stop(deadline)``
  stops accepting and lets in-flight work finish until ``deadline``
  (reactor time); after ``stop_timeout`` plus a second of grace the daemon
  exits anyway. Then socket, pid file and metrics port go, exit code 0 (1 if
  ``stop`` raised). A second signal while stopping is only logged.
- SIGHUP: reload. ``RELOADING=1``; the file is read again. A bad file is
  rejected with every issue logged and the running config kept. A good one
  is given to ``service.reload(new_node_config)`` with :attr:`DaemonContext.config`
  already pointing at the new cluster config (so the service can read
  cluster-wide parts such as ``backends``); the service returns the keys it
  applied live, or raises :class:`ReloadRejected`, in which case the old
  config is restored. The control socket path and the metrics address are
  never changed live: a change there is logged as needing a restart.

A drain survives restarts: ``POST /drain`` leaves ``{state_dir}/{role}.draining``
and a daemon that starts with it starts drained, so a node drained for
maintenance stays out of service through reboots until ``imapha ctl undrain``.

``/ready`` is 200 only when the daemon is running, not drained and the service
says it is ready; vipd gives up a VIP whose tracked service is not ready, so
``imapha ctl drain NODE`` moves the VIPs away through this one rule.

systemd notification (``NOTIFY_SOCKET``) is written by hand: one datagram per
message on an ``AF_UNIX``/``SOCK_DGRAM`` socket, ``@`` meaning the abstract
namespace; ``WATCHDOG=1`` every half ``WATCHDOG_USEC``. The variables are
removed from the environment so that hook scripts we spawn do not inherit them.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import FrameType
from typing import Any, Final, Protocol, cast

import prometheus_client
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from imapha import __version__
from imapha.config import ClusterConfig, ConfigError, NodeConfig, load_config
from imapha.control import (
    ControlError,
    ControlServer,
    ControlSocketError,
    JsonObject,
    Reply,
    Verb,
    VerbRegistry,
)
from imapha.metrics import (
    DAEMON_CONTROL_REQUESTS,
    DAEMON_DRAINING,
    DAEMON_READY,
    DAEMON_RELOADS,
    DAEMON_START_TIME,
    DaemonMetrics,
    listen_metrics,
)

log = logging.getLogger(__name__)

READY_POLL: Final = 0.5
DEFAULT_STOP_TIMEOUT: Final = 30.0
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
#: sysexits EX_CONFIG: the units' RestartPreventExitStatus stops a restart loop on it.
EXIT_CONFIG: Final = 78

#: The config section each role reads (vipd's is [vrrp]).
ROLE_SECTIONS: Final[Mapping[str, str]] = {
    "proxy": "proxy", "backend": "backend", "vipd": "vrrp", "dhcp": "dhcp",
}


class ReloadRejected(Exception):
    """Raised by :meth:`Service.reload` when the new config cannot be applied live."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Service(Protocol):
    """What a role implements. Methods run in the reactor thread."""

    def start(self) -> Deferred[None]:
        """Bind, connect, load; fire when serving (errback = the daemon exits 1)."""

    def is_ready(self) -> tuple[bool, str]:
        """(ready, reason); the reason is shown when not ready (and may be "")."""

    def status(self) -> JsonObject:
        """The role's own /status fields; a short "detail" string feeds `ctl status`."""

    def drain(self) -> Deferred[None] | None:
        """Stop taking new work (new logins, new leases); keep what runs."""

    def undrain(self) -> Deferred[None] | None:
        """Take new work again."""

    def reload(self, node: NodeConfig) -> list[str] | Deferred[list[str]]:
        """Apply a new config live; return the keys changed, or raise ReloadRejected."""

    def stop(self, deadline: float) -> Deferred[None]:
        """Stop accepting, let in-flight work finish by ``deadline`` (reactor time)."""

    def verbs(self) -> Iterable[Verb]:
        """The role's own control verbs (``POST /kick``...)."""


@dataclass
class DaemonContext:
    """What a service factory gets. ``config`` is replaced on a successful reload."""

    role: str
    node: str
    config: ClusterConfig
    reactor: Any
    metrics: DaemonMetrics

    @property
    def node_config(self) -> NodeConfig:
        return self.config.node(self.node)


ServiceFactory = Callable[[DaemonContext], Service]


class ServiceBase:
    """Defaults for a :class:`Service`: subclass it and override what the role does.

    Always ready, no fields of its own, drain is a no-op, no verbs, stops at
    once, and a reload changes nothing live: any change to the role's own
    section is rejected as needing a restart.
    """

    def __init__(self, ctx: DaemonContext) -> None:
        self.ctx = ctx
        #: The node config in force (ctx.config is already the new one during reload()).
        self.node_config = ctx.node_config

    def start(self) -> Deferred[None]:
        return defer.succeed(None)

    def is_ready(self) -> tuple[bool, str]:
        return True, ""

    def status(self) -> JsonObject:
        return {}

    def drain(self) -> Deferred[None] | None:
        return None

    def undrain(self) -> Deferred[None] | None:
        return None

    def reload(self, node: NodeConfig) -> list[str] | Deferred[list[str]]:
        section = ROLE_SECTIONS[self.ctx.role]
        changed = config_diff(getattr(self.node_config, section), getattr(node, section),
                              section)
        if changed:
            raise ReloadRejected(f"{', '.join(changed)} cannot change live; restart instead")
        self.node_config = node
        return []

    def stop(self, deadline: float) -> Deferred[None]:
        return defer.succeed(None)

    def verbs(self) -> Iterable[Verb]:
        return ()


def config_diff(old: object, new: object, prefix: str = "") -> list[str]:
    """Dotted names of the fields that differ between two (nested) dataclasses."""
    if (dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new)
            and type(old) is type(new) and not isinstance(old, type)):
        changed: list[str] = []
        for field in dataclasses.fields(old):
            name = f"{prefix}.{field.name}" if prefix else field.name
            changed.extend(config_diff(getattr(old, field.name), getattr(new, field.name), name))
        return changed
    return [] if old == new else [prefix or "(all)"]


# ---------------------------------------------------------------- systemd


class SystemdNotifier:
    """sd_notify(3) without libsystemd: datagrams to $NOTIFY_SOCKET, if set."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if address.startswith("@"):
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        self.watchdog_interval: float | None = None
        usec = env.pop("WATCHDOG_USEC", "")
        pid = env.pop("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1e6 / 2
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False if not sent."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %r: %s", self.address, exc)
                self._warned = True
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# ---------------------------------------------------------------- the daemon


class State(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"


#: The lifecycle's only legal moves; stopping is final (the process exits).
TRANSITIONS: Final[Mapping[State, frozenset[State]]] = {
    State.STARTING: frozenset({State.RUNNING, State.STOPPING}),
    State.RUNNING: frozenset({State.STOPPING}),
    State.STOPPING: frozenset({State.STOPPING}),
}


class Daemon:
    """One role's process: see the module docstring for the order of things."""

    def __init__(self, role: str, config_path: Path, node: str, factory: ServiceFactory,
                 reactor: Any, *, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        self.role = role
        self.config_path = Path(config_path)
        self.node = node
        self.factory = factory
        self.reactor = reactor
        self.stop_timeout = stop_timeout
        self.state = State.STARTING
        self.draining = False
        self.exit_code = EXIT_OK
        self.started_wall = time.time()
        self.started = time.monotonic()
        self.notifier = SystemdNotifier()
        self.context: DaemonContext | None = None
        self.service: Service | None = None
        self.control: ControlServer | None = None
        self.metrics_port: IListeningPort | None = None
        self.pid_file: Path | None = None
        self.drain_marker: Path | None = None
        self.reloads = {"applied": 0, "rejected": 0}
        self.last_reload: str = ""
        self._reloading = False
        self._reload_again = False
        self._sent_ready = False
        self._last_condition: tuple[bool, str, bool] | None = None
        self._loops: list[LoopingCall] = []
        self._reactor_stopping = False
        self._stopping: Deferred[None] | None = None

    def _move(self, new: State) -> None:
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"daemon cannot go from {self.state.value} to {new.value}")
        self.state = new

    # -- start-up ---------------------------------------------------------

    def prepare(self) -> bool:
        """Synchronous part of start-up: config, node, role, context. False = exit 78."""
        try:
            config = load_config(self.config_path)
            config.node(self.node)
        except ConfigError as exc:
            for issue in exc.issues:
                log.error("config: %s", issue)
            if not exc.issues:
                log.error("config: %s", exc)
            log.error("imapha %s not started: the config is not usable", self.role)
            return False
        except OSError as exc:
            log.error("imapha %s not started: cannot read %s: %s",
                      self.role, self.config_path, exc.strerror or exc)
            return False
        if self.role not in config.roles(self.node):
            log.error("imapha %s not started: role %s is not configured for node %s in %s",
                      self.role, self.role, self.node, self.config_path)
            return False
        metrics = DaemonMetrics(self.role, self.node, __version__)
        self.context = DaemonContext(self.role, self.node, config, self.reactor, metrics)
        return True

    def start(self) -> Deferred[None]:
        """Asynchronous part; errbacks on failure after cleaning up."""
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        ctx = self.context
        assert ctx is not None
        node_config = ctx.node_config
        registry = self._registry()
        self.control = ControlServer(self.reactor, ctx.config.control_socket(self.node, self.role),
                                     registry, role=self.role)
        self.control.on_reply = self._count_request
        await self.control.start()
        if self._aborted():
            return
        self.pid_file = Path(node_config.run_dir) / f"{self.role}.pid"
        self._write_pid()
        address = ctx.config.metrics_address(self.node, self.role)
        if address is not None:
            self.metrics_port = await listen_metrics(self.reactor, ctx.metrics.registry,
                                                     address[0], address[1])
        self._setup_metrics()
        if self._aborted():
            return
        self.service = self.factory(ctx)
        for verb in self.service.verbs():
            registry.add(verb.method, verb.path, verb.handler, verb.summary)
        await self.service.start()
        if self._aborted():  # SIGTERM arrived during start(): shutdown() has it
            return
        self.drain_marker = Path(node_config.state_dir) / f"{self.role}.draining"
        if self.drain_marker.exists():
            log.warning("starting drained: %s exists (left by `imapha ctl drain`); "
                        "`imapha ctl undrain %s` clears it", self.drain_marker, self.node)
            await defer.maybeDeferred(cast(Any, self.service.drain))
            self.draining = True
        self._move(State.RUNNING)
        ctx.metrics.gauge(DAEMON_START_TIME).labels(role=self.role).set(time.time())
        log.info("imapha %s %s on node %s running (pid %d, control %s%s)",
                 self.role, __version__, self.node, os.getpid(), self.control.path,
                 f", metrics {self.metrics_text()}" if self.metrics_port else "")
        self._poll_ready()
        self._loop(READY_POLL, self._poll_ready)

    def _aborted(self) -> bool:
        """True when a signal stopped the daemon while start-up was waiting."""
        return self.state is State.STOPPING

    def _loop(self, interval: float, fn: Callable[[], None]) -> None:
        loop = LoopingCall(fn)
        loop.clock = self.reactor
        loop.start(interval, now=False).addErrback(
            lambda f: log.error("periodic task failed: %s", f.getTraceback()))
        self._loops.append(loop)

    def _write_pid(self) -> None:
        assert self.pid_file is not None
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.pid_file.with_name(f".{self.pid_file.name}.{os.getpid()}")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.replace(self.pid_file)

    def _remove_pid(self) -> None:
        if self.pid_file is None:
            return
        try:
            if self.pid_file.read_text().strip() == str(os.getpid()):
                self.pid_file.unlink()
        except OSError:
            pass

    def _setup_metrics(self) -> None:
        ctx = self.context
        assert ctx is not None
        ctx.metrics.gauge(DAEMON_READY).labels(role=self.role).set_function(
            lambda: 1.0 if self.readiness()[0] else 0.0)
        ctx.metrics.gauge(DAEMON_DRAINING).labels(role=self.role).set_function(
            lambda: 1.0 if self.draining else 0.0)
        for result in ("applied", "rejected"):
            ctx.metrics.counter(DAEMON_RELOADS).labels(role=self.role, result=result)

    def _count_request(self, verb: str, code: int) -> None:
        if self.context is not None:
            self.context.metrics.counter(DAEMON_CONTROL_REQUESTS).labels(
                role=self.role, verb=verb, code=str(code)).inc()

    def metrics_text(self) -> str | None:
        if self.metrics_port is None:
            return None
        host = cast(Any, self.metrics_port).getHost()
        addr, port = cast(Any, host).host, cast(Any, host).port
        return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"

    # -- readiness and the common verbs -----------------------------------

    def readiness(self) -> tuple[bool, str]:
        if self.state is State.STARTING:
            return False, "starting"
        if self.state is State.STOPPING:
            return False, "stopping"
        if self.draining:
            return False, "draining"
        assert self.service is not None
        ready, reason = self._service_ready()
        return bool(ready), "" if ready else (reason or "not ready")

    def _service_ready(self) -> tuple[bool, str]:
        """The service's own answer; a bug in it reads as not ready, not as a crash."""
        assert self.service is not None
        try:
            ready, reason = self.service.is_ready()
        except Exception:
            log.exception("%s is_ready() failed", self.role)
            return False, "readiness check failed (see log)"
        return bool(ready), str(reason)

    def _poll_ready(self) -> None:
        if self.state is not State.RUNNING or self.service is None:
            return
        ready, reason = self._service_ready()
        condition = (bool(ready), reason, self.draining)
        if condition == self._last_condition:
            return
        self._last_condition = condition
        text = "draining" if self.draining else ("ready" if ready else f"not ready: {reason}")
        log.info("%s is %s", self.role, text)
        lines = [f"STATUS={text}"]
        if ready and not self._sent_ready:
            self._sent_ready = True
            lines.insert(0, "READY=1")
            self._start_watchdog()
        self.notifier.notify(*lines)

    def _start_watchdog(self) -> None:
        interval = self.notifier.watchdog_interval
        if interval is not None:
            self._loop(interval, self._watchdog)

    def _watchdog(self) -> None:
        self.notifier.notify("WATCHDOG=1")

    def status(self) -> JsonObject:
        ready, reason = self.readiness()
        body: JsonObject = {}
        if self.service is not None and self.state is not State.STARTING:
            try:
                body.update(self.service.status())
            except Exception:
                log.exception("%s status() failed", self.role)
                body["detail"] = "status unavailable (see log)"
        body.update({
            "role": self.role,
            "node": self.node,
            "pid": os.getpid(),
            "version": __version__,
            "state": self.state.value,
            "uptime": round(time.monotonic() - self.started, 3),
            "started_at": self.started_wall,
            "ready": ready,
            "reason": reason,
            "draining": self.draining,
            "config": str(self.config_path),
            "reloads": dict(self.reloads),
            "last_reload": self.last_reload,
            "control": str(self.control.path) if self.control else None,
            "metrics": self.metrics_text(),
        })
        return body

    def _registry(self) -> VerbRegistry:
        registry = VerbRegistry()
        registry.add("GET", "/status", lambda _body: self.status(), "the daemon's state")
        registry.add("GET", "/ready", self._ready_verb, "200 when ready, 503 otherwise")
        registry.add("POST", "/drain", self._drain_verb, "take no new work")
        registry.add("POST", "/undrain", self._undrain_verb, "take new work again")
        return registry

    def _ready_verb(self, _body: JsonObject) -> Reply:
        ready, reason = self.readiness()
        if ready:
            return Reply({"ready": True, "role": self.role, "node": self.node})
        return Reply({"ready": False, "reason": reason, "role": self.role, "node": self.node},
                     HTTPStatus.SERVICE_UNAVAILABLE)

    def _require_running(self) -> Service:
        if self.state is not State.RUNNING or self.service is None:
            raise ControlError(HTTPStatus.CONFLICT, f"daemon is {self.state.value}")
        return self.service

    def _drain_verb(self, _body: JsonObject) -> Deferred[JsonObject]:
        service = self._require_running()
        was = self.draining
        if not was:
            log.info("draining on operator request")
        result: Deferred[Any] = defer.maybeDeferred(service.drain)

        def done(_: object) -> JsonObject:
            self.draining = True
            self._mark_drained(True)
            self._poll_ready()
            return {"draining": True, "changed": not was, "role": self.role, "node": self.node}

        return result.addCallback(done)

    def _undrain_verb(self, _body: JsonObject) -> Deferred[JsonObject]:
        service = self._require_running()
        was = self.draining
        if was:
            log.info("undraining on operator request")
        result: Deferred[Any] = defer.maybeDeferred(service.undrain)

        def done(_: object) -> JsonObject:
            self.draining = False
            self._mark_drained(False)
            self._poll_ready()
            return {"draining": False, "changed": was, "role": self.role, "node": self.node}

        return result.addCallback(done)

    def _mark_drained(self, drained: bool) -> None:
        """Keep the drain across restarts: a node drained for maintenance stays drained."""
        marker = self.drain_marker
        if marker is None:
            return
        try:
            if drained:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(f"drained at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}\n")
            else:
                marker.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot %s %s: %s (the drain will not survive a restart)",
                        "write" if drained else "remove", marker, exc.strerror or exc)

    # -- signals ----------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            self.reactor.callFromThread(self.on_signal, signum)

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, handler)

    def on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            self.reload()
        elif self.state is State.STOPPING:
            log.info("%s while stopping: already on the way out", name)
        else:
            log.info("%s: stopping gracefully (at most %gs)", name, self.stop_timeout)
            self.shutdown()

    # -- reload -----------------------------------------------------------

    def reload(self) -> None:
        if self.state is not State.RUNNING:
            log.warning("SIGHUP ignored: daemon is %s", self.state.value)
            return
        if self._reloading:
            self._reload_again = True
            return
        self._reloading = True
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={now_usec}")
        d = defer.ensureDeferred(self._reload())
        d.addErrback(lambda f: log.error("reload failed: %s", f.getTraceback()))
        d.addBoth(self._reload_done)

    def _reload_done(self, _: object) -> None:
        self._reloading = False
        self.notifier.notify("READY=1", "STATUS=" + ("ready" if self.readiness()[0]
                                                     else "not ready: " + self.readiness()[1]))
        if self._reload_again:
            self._reload_again = False
            self.reload()

    def _reject(self, reason: str) -> None:
        self.reloads["rejected"] += 1
        self.last_reload = f"rejected: {reason}"
        assert self.context is not None
        self.context.metrics.counter(DAEMON_RELOADS).labels(
            role=self.role, result="rejected").inc()
        log.error("reload of %s rejected: %s; keeping the running config",
                  self.config_path, reason)

    async def _reload(self) -> None:
        ctx, service = self.context, self.service
        assert ctx is not None and service is not None
        log.info("SIGHUP: reloading %s", self.config_path)
        try:
            new = load_config(self.config_path)
            new_node = new.node(self.node)
        except ConfigError as exc:
            for issue in exc.issues:
                log.error("config: %s", issue)
            self._reject(f"{len(exc.issues) or 1} config issue(s), see above")
            return
        except OSError as exc:
            self._reject(f"cannot read it: {exc.strerror or exc}")
            return
        if self.role not in new.roles(self.node):
            self._reject(f"role {self.role} is no longer configured for node {self.node}")
            return
        old = ctx.config
        for what, before, after in (
            ("control socket", old.control_socket(self.node, self.role),
             new.control_socket(self.node, self.role)),
            ("metrics address", old.metrics_address(self.node, self.role),
             new.metrics_address(self.node, self.role)),
        ):
            if before != after:
                log.warning("%s changed (%s -> %s): takes effect on restart", what, before, after)
        ctx.config = new
        try:
            changed: list[str] = await defer.maybeDeferred(cast(Any, service.reload), new_node)
        except ReloadRejected as exc:
            ctx.config = old
            self._reject(exc.reason)
            return
        except Exception:
            ctx.config = old
            log.exception("%s reload() failed", self.role)
            self._reject("the service failed to apply it (see the traceback)")
            return
        self.reloads["applied"] += 1
        ctx.metrics.counter(DAEMON_RELOADS).labels(role=self.role, result="applied").inc()
        changed = list(changed or [])
        self.last_reload = "applied: " + (", ".join(changed) or "no live change")
        log.info("reloaded %s; changed live: %s", self.config_path,
                 ", ".join(changed) or "nothing")

    # -- stop -------------------------------------------------------------

    def shutdown(self) -> Deferred[None]:
        if self._stopping is not None:
            return self._stopping
        self._move(State.STOPPING)
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        for loop in self._loops:
            if loop.running:
                loop.stop()
        d: Deferred[None]
        if self.service is not None:
            deadline = self.reactor.seconds() + self.stop_timeout
            d = defer.maybeDeferred(self.service.stop, deadline)
            d.addTimeout(self.stop_timeout + 1.0, self.reactor)
            d.addErrback(self._stop_failed)
        else:
            d = defer.succeed(None)
        d.addBoth(lambda _: self.cleanup())
        d.addBoth(lambda _: self._stop_reactor())
        self._stopping = d
        return d

    def _stop_failed(self, failure: Failure) -> None:
        if isinstance(failure.value, defer.TimeoutError | defer.CancelledError):
            log.warning("in-flight work did not finish within %gs; exiting anyway",
                        self.stop_timeout)
            return
        self.exit_code = EXIT_FAILURE
        log.error("%s stop() failed: %s", self.role, failure.getTraceback())

    def cleanup(self) -> Deferred[None]:
        """Remove what start-up created: control socket, pid file, metrics port."""
        steps: list[Deferred[Any]] = []
        if self.control is not None:
            steps.append(self.control.stop())
        if self.metrics_port is not None:
            port, self.metrics_port = self.metrics_port, None
            steps.append(defer.maybeDeferred(cast(Any, port).stopListening))
        self._remove_pid()
        self.notifier.close()
        done: Deferred[Any] = defer.DeferredList(steps, consumeErrors=True)
        return done.addCallback(lambda _: None)

    def _stop_reactor(self) -> None:
        if not self._reactor_stopping and self.reactor.running:
            self._reactor_stopping = True
            self.reactor.stop()

    def fail_start(self, failure: Failure) -> Deferred[None]:
        self.exit_code = EXIT_FAILURE
        self._move(State.STOPPING)
        self.notifier.notify("STOPPING=1", "STATUS=failed to start")
        exc = cast(BaseException, failure.value)
        if isinstance(exc, ControlSocketError):
            log.error("imapha %s not started: %s", self.role, exc)
        else:
            log.error("imapha %s on node %s failed to start: %s\n%s", self.role, self.node,
                      _short(exc), failure.getTraceback())
        d = self.cleanup()
        d.addBoth(lambda _: self._stop_reactor())
        return d


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def run_daemon(role: str, config_path: str | Path, node: str, factory: ServiceFactory,
               *, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> int:
    """Run one role until SIGTERM/SIGINT; the exit code (0 ok, 1 failure, 78 bad config)."""
    from twisted.internet import reactor

    from imapha import log as imapha_log

    imapha_log.bridge_twisted()
    # The *_created series double every counter's cost for no dashboard's benefit.
    cast(Any, prometheus_client).disable_created_metrics()
    daemon = Daemon(role, Path(config_path), node, factory, reactor,
                    stop_timeout=stop_timeout)
    if not daemon.prepare():
        return EXIT_CONFIG

    def go() -> None:
        daemon.install_signal_handlers()
        daemon.start().addErrback(daemon.fail_start)

    reactor.callWhenRunning(go)
    cast(Any, reactor).run()
    return daemon.exit_code
