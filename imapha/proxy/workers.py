"""``[proxy] workers = N``: the daemon process as the supervisor of N worker processes.

Theory of operation
-------------------
The daemon (:func:`imapha.daemon.run_daemon`) runs :class:`WorkerPool` as its
service. It accepts no IMAP connection itself; it

1. *reserves* every listener address: a socket bound with ``SO_REUSEPORT``
   but not listening (so no connection queues on it), which turns port 0 into
   a concrete port and keeps it ours across drains and worker restarts;
2. starts N workers (:mod:`imapha.proxy.worker`), each binding those
   addresses with ``SO_REUSEPORT`` and listening: the kernel hashes every new
   connection to one of the listening sockets, so a dead or drained worker's
   socket simply drops out of the group;
3. polls each worker every :data:`POLL` seconds for its status and its
   metrics (Prometheus text) over the worker's stdin/stdout (JSON lines);
4. answers the control API from that: ``/ready`` is 200 while at least one
   worker is ready; ``/status`` sums connections and sessions and lists the
   workers; ``/metrics`` carries the ``imapha_proxy_*`` families of all
   workers summed per label set (``*_state`` gauges: the maximum), at most
   :data:`POLL` seconds old, next to the parent's own process metrics and
   ``imapha_proxy_workers_running`` / ``imapha_proxy_worker_restarts_total``;
5. fans out drain, undrain, kick, drain-backend, undrain-backend, reload and
   stop to every worker (a verb's ``sessions`` counts are summed);
6. restarts a worker that exits while the pool is not stopping, after
   :data:`RESTART_DELAY` seconds, doubling up to :data:`RESTART_DELAY_MAX`
   while it keeps dying within :data:`RESTART_STABLE` seconds of its start.

Limits are per worker: each enforces ``ceil(limit / N)`` of
``max_connections`` and ``max_connections_per_ip``, and keeps its own auth
penalty table. Connections of one address spread over the workers by the
kernel's hash of the 4-tuple, so the per-address limit holds only
approximately (a client may be refused a little early when its connections
cluster on one worker), and a password guesser who lands on different
workers meets up to N independent penalty delays. Health checks run in every
worker (N probes per interval per backend).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, cast

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, protocol
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from imapha.config import NodeConfig
from imapha.config.model import ProxyConfig
from imapha.control import ControlError, JsonObject, Verb
from imapha.daemon import DaemonContext, ReloadRejected, config_diff
from imapha.proxy import metrics as m
from imapha.proxy.service import RESTART_KEYS, reuseport_socket

log = logging.getLogger(__name__)

#: Seconds between status (and metrics) polls of each worker.
POLL: Final = 0.5
#: Seconds a worker may take to start (listen and finish its first health round).
START_TIMEOUT: Final = 30.0
#: Seconds a worker may take to answer one request.
REQUEST_TIMEOUT: Final = 5.0
RESTART_DELAY: Final = 0.5
RESTART_DELAY_MAX: Final = 10.0
#: A worker that lived this long resets the restart back-off.
RESTART_STABLE: Final = 30.0
ROOT: Final = Path(__file__).resolve().parents[2]


class WorkerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- metrics aggregation (pure) ---------------------------------------------------------


def aggregate_metrics(texts: Iterable[str], prefix: str = "imapha_proxy_") -> list[Metric]:
    """Sum the families named ``prefix*`` of several Prometheus texts, per label set.

    Gauges ending in ``_state`` take the maximum instead (a backend is "up" if
    one worker sees it up). Other families are dropped: process metrics
    belong to each process.
    """
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            if not family.name.startswith(prefix):
                continue
            if family.name not in families:
                families[family.name] = Metric(family.name, family.documentation, family.type)
                values[family.name] = {}
            use_max = family.type == "gauge" and family.name.endswith("_state")
            table = values[family.name]
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                old = table.get(key)
                if old is None:
                    table[key] = sample.value
                else:
                    table[key] = max(old, sample.value) if use_max else old + sample.value
    out = []
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
        out.append(family)
    return out


class WorkersCollector:
    """A prometheus_client collector yielding the workers' last metrics, summed."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        texts = [w.metrics for w in self.pool.workers if w.alive and w.metrics]
        yield from aggregate_metrics(texts)


# -- one worker ---------------------------------------------------------------------------


class Worker(protocol.ProcessProtocol):
    """The parent's handle on one worker process (see the module docstring)."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.pid: int | None = None
        self.alive = False
        self.started = False
        self.started_at = 0.0
        self.restarts = 0
        self.delay = RESTART_DELAY
        self.last: dict[str, Any] = {}
        self.metrics = ""
        self.on_started: Deferred[None] = Deferred()
        self.exited: Deferred[None] = Deferred()
        self._buffer = b""
        self._next_id = 0
        self._pending: dict[int, tuple[Deferred[Any], Any]] = {}

    @property
    def ready(self) -> bool:
        return self.alive and self.started and bool(self.last.get("ready"))

    def spawn(self, drained: bool) -> None:
        pool = self.pool
        argv = [sys.executable, "-m", "imapha.proxy.worker", "--config", str(pool.config_path),
                "--node", pool.ctx.node, "--index", str(self.index),
                "--count", str(len(pool.workers)), "--log-level", pool.log_level,
                "--log-format", pool.log_format]
        for kind, host, port in pool.listen:
            argv += ["--listen", f"{kind}={host}:{port}"]
        if drained:
            argv.append("--drained")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        self.on_started = Deferred()
        self.exited = Deferred()
        self.started = False
        self.last = {}
        self.metrics = ""
        self._buffer = b""
        transport = pool.reactor.spawnProcess(self, sys.executable, argv, env=env,
                                              childFDs={0: "w", 1: "r", 2: 2})
        self.pid = transport.pid
        self.alive = True
        self.started_at = pool.reactor.seconds()
        log.info("proxy worker %d started (pid %s)", self.index, self.pid)

    # -- the pipe ---------------------------------------------------------------------

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            try:
                message = json.loads(line)
            except ValueError:
                log.error("proxy worker %d: unreadable line %r", self.index, line[:200])
                continue
            self._message(message)

    def _message(self, message: dict[str, Any]) -> None:
        if message.get("event") == "started":
            self.started = True
            if not self.on_started.called:
                self.on_started.callback(None)
            return
        entry = self._pending.pop(message.get("id", -1), None)
        if entry is None:
            return
        d, timeout = entry
        if timeout.active():
            timeout.cancel()
        if message.get("ok"):
            d.callback(message.get("result") or {})
        else:
            d.errback(WorkerError(int(message.get("status", 500)),
                                  str(message.get("error", "worker error"))))

    def request(self, op: str, **fields: Any) -> Deferred[dict[str, Any]]:
        d: Deferred[dict[str, Any]] = Deferred()
        if not self.alive or not self.started or self.transport is None:
            d.errback(WorkerError(503, f"worker {self.index} is not running"))
            return d
        self._next_id += 1
        rid = self._next_id
        timeout = self.pool.reactor.callLater(REQUEST_TIMEOUT, self._timed_out, rid)
        self._pending[rid] = (d, timeout)
        line = json.dumps({"id": rid, "op": op, **fields}, separators=(",", ":"))
        cast(Any, self.transport).write(line.encode() + b"\n")
        return d

    def _timed_out(self, rid: int) -> None:
        entry = self._pending.pop(rid, None)
        if entry is not None:
            entry[0].errback(WorkerError(504, f"worker {self.index} did not answer"))

    def processEnded(self, reason: Failure) -> None:
        self.alive = False
        code = getattr(reason.value, "exitCode", None)
        sig = getattr(reason.value, "signal", None)
        pending, self._pending = self._pending, {}
        for d, timeout in pending.values():
            if timeout.active():
                timeout.cancel()
            d.errback(WorkerError(503, f"worker {self.index} exited"))
        if not self.on_started.called:
            self.on_started.errback(WorkerError(500, f"worker {self.index} exited at start "
                                                     f"(code {code}, signal {sig})"))
        self.exited.callback(None)
        self.pool.worker_ended(self, code, sig)

    def poll(self) -> None:
        if not self.ready and not self.started:
            return

        def got(result: dict[str, Any]) -> None:
            self.last = result
            self.metrics = str(result.pop("metrics", ""))

        def failed(failure: Failure) -> None:
            if self.alive:
                log.warning("proxy worker %d: status: %s", self.index, failure.value)
            self.last = {}

        self.request("status", metrics=True).addCallbacks(got, failed)


# -- the pool ---------------------------------------------------------------------------


class WorkerPool:
    """The daemon's service when ``workers > 1`` (see the module docstring)."""

    def __init__(self, ctx: DaemonContext, config_path: Path, *, log_level: str = "info",
                 log_format: str = "text") -> None:
        self.ctx = ctx
        self.reactor = ctx.reactor
        cfg = ctx.node_config.proxy
        if cfg is None:
            raise ValueError("no [proxy] section for this node")
        self.cfg: ProxyConfig = cfg
        self.config_path = config_path
        self.log_level = log_level
        self.log_format = log_format
        self.draining = False
        self.stopping = False
        self.reserved: list[socket.socket] = []
        self.listen: list[tuple[str, str, int]] = []
        self._reserve()
        self.workers = [Worker(self, i) for i in range(cfg.workers)]
        self._poll_call: Any = None
        mx = ctx.metrics
        mx.gauge(m.WORKERS_RUNNING).set_function(
            lambda: float(sum(1 for w in self.workers if w.alive)))
        self._restarts = mx.counter(m.WORKER_RESTARTS)
        mx.registry.register(cast(Any, WorkersCollector(self)))

    def _reserve(self) -> None:
        """Bind every listener address (not listening): port 0 becomes a real port."""
        try:
            for kind, addresses in (("imap", self.cfg.imap), ("imaps", self.cfg.imaps)):
                for hp in addresses:
                    sock = reuseport_socket(hp.host, hp.port, listen=False)
                    self.reserved.append(sock)
                    self.listen.append((kind, hp.host.strip("[]"), sock.getsockname()[1]))
        except OSError:
            self._release()
            raise

    def _release(self) -> None:
        for sock in self.reserved:
            sock.close()
        self.reserved = []

    # -- Service ------------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        for worker in self.workers:
            worker.spawn(drained=False)
        waits = [w.on_started for w in self.workers]
        timeout = self.reactor.callLater(START_TIMEOUT, self._start_timed_out)
        try:
            await defer.gatherResults(waits, consumeErrors=True)
        except defer.FirstError as exc:
            self._kill_all()
            self._release()
            raise cast(Any, exc).subFailure.value from None
        finally:
            if timeout.active():
                timeout.cancel()
        self._poll()
        await self._poll_all()
        log.info("proxy: %d workers listening on %s", len(self.workers),
                 ", ".join(f"{k} {h}:{p}" for k, h, p in self.listen))

    def _start_timed_out(self) -> None:
        for w in self.workers:
            if not w.on_started.called:
                w.on_started.errback(WorkerError(504, f"worker {w.index} did not start "
                                                      f"in {START_TIMEOUT:g}s"))

    def _kill_all(self) -> None:
        for w in self.workers:
            if w.alive and w.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGKILL)

    async def _poll_all(self) -> None:
        ds = [w.request("status", metrics=True) for w in self.workers]
        results = await defer.DeferredList(ds, consumeErrors=True)
        for w, (ok, result) in zip(self.workers, results, strict=True):
            if ok:
                w.last = result
                w.metrics = str(result.pop("metrics", ""))

    def _poll(self) -> None:
        self._poll_call = None
        if self.stopping:
            return
        for w in self.workers:
            if w.alive and w.started:
                w.poll()
        self._poll_call = self.reactor.callLater(POLL, self._poll)

    def worker_ended(self, worker: Worker, code: int | None, sig: int | None) -> None:
        if self.stopping:
            log.info("proxy worker %d (pid %s) exited", worker.index, worker.pid)
            return
        if self.reactor.seconds() - worker.started_at >= RESTART_STABLE:
            worker.delay = RESTART_DELAY
        log.error("proxy worker %d (pid %s) died (code %s, signal %s); restarting in %gs",
                  worker.index, worker.pid, code, sig, worker.delay)
        delay = worker.delay
        worker.delay = min(RESTART_DELAY_MAX, worker.delay * 2)
        self.reactor.callLater(delay, self._restart, worker)

    def _restart(self, worker: Worker) -> None:
        if self.stopping or worker.alive:
            return
        worker.restarts += 1
        self._restarts.inc()
        drained = self.draining
        worker.spawn(drained=drained)

        def started(_: object) -> None:
            if self.draining != drained:  # a drain or undrain came while it started
                worker.request("drain" if self.draining else "undrain").addErrback(
                    lambda f: log.warning("proxy worker %d: %s", worker.index, f.value))

        def failed(failure: Failure) -> None:
            log.error("proxy worker %d: %s", worker.index, failure.value)

        worker.on_started.addCallbacks(started, failed)

    def is_ready(self) -> tuple[bool, str]:
        ready = [w for w in self.workers if w.ready]
        if ready:
            return True, ""
        reasons = {str(w.last.get("reason")) for w in self.workers if w.last.get("reason")}
        return False, "; ".join(sorted(reasons)) or "no worker is ready"

    def status(self) -> JsonObject:
        alive = [w for w in self.workers if w.alive and w.last]
        statuses = [cast(dict[str, Any], w.last.get("status", {})) for w in alive]
        sessions = sum(int(s.get("sessions", 0)) for s in statuses)
        connections = sum(int(s.get("connections", 0)) for s in statuses)
        backends: dict[str, Any] = {}
        for s in statuses:
            for name, b in cast(dict[str, Any], s.get("backends", {})).items():
                if name not in backends:
                    backends[name] = dict(b)
                else:
                    backends[name]["sessions"] += b.get("sessions", 0)
                    backends[name]["up"] = backends[name].get("up") or b.get("up")
        listeners = [{"kind": k, "address": f"[{h}]:{p}" if ":" in h else f"{h}:{p}"}
                     for k, h, p in self.listen]
        up = sum(1 for b in backends.values() if b.get("up") and not b.get("draining"))
        return {
            "detail": f"{len(alive)}/{len(self.workers)} workers, {sessions} sessions, "
                      f"{connections - sessions} pre-login, backends {up}/{len(backends)} up",
            "listeners": listeners if not self.draining else [],
            "connections": connections,
            "sessions": sessions,
            "backends": backends,
            "service_draining": self.draining,
            "penalized_addresses": sum(int(s.get("penalized_addresses", 0)) for s in statuses),
            "workers": [{"index": w.index, "pid": w.pid, "alive": w.alive, "ready": w.ready,
                         "restarts": w.restarts,
                         "sessions": int(w.last.get("status", {}).get("sessions", 0)),
                         "connections": int(w.last.get("status", {}).get("connections", 0))}
                        for w in self.workers],
        }

    def _fan_out(self, op: str, **fields: Any) -> Deferred[list[dict[str, Any]]]:
        """Send ``op`` to every running worker; the answers of those that answered."""
        running = [w for w in self.workers if w.alive and w.started]
        ds = [w.request(op, **fields) for w in running]
        d: Deferred[Any] = defer.DeferredList(ds, consumeErrors=True)

        def collect(results: list[tuple[bool, Any]]) -> list[dict[str, Any]]:
            answers = []
            errors: list[WorkerError] = []
            for w, (ok, result) in zip(running, results, strict=True):
                if ok:
                    answers.append(result)
                else:
                    exc = cast(Failure, result).value
                    log.warning("proxy worker %d: %s: %s", w.index, op, exc)
                    if isinstance(exc, WorkerError) and exc.status < 500:
                        errors.append(exc)
            if errors and not answers:
                raise errors[0]
            return answers

        return d.addCallback(collect)

    def drain(self) -> Deferred[None]:
        self.draining = True
        return self._fan_out("drain").addCallback(lambda _: None)

    def undrain(self) -> Deferred[None]:
        self.draining = False
        return self._fan_out("undrain").addCallback(lambda _: None)

    def reload(self, node: NodeConfig) -> Deferred[list[str]]:
        new = node.proxy
        if new is None:
            raise ReloadRejected("the [proxy] section is gone")
        changed = config_diff(self.cfg, new, "proxy")
        blocked = [k for k in changed if k.split(".", 1)[1].split(".")[0] in RESTART_KEYS]
        if blocked:
            raise ReloadRejected(f"{', '.join(blocked)} cannot change live; restart instead")

        def applied(answers: list[dict[str, Any]]) -> list[str]:
            self.cfg = new
            keys: set[str] = set(changed)
            for a in answers:
                keys.update(a.get("changed", []))
            return sorted(keys)

        def rejected(failure: Failure) -> Failure:
            exc = failure.value
            if isinstance(exc, WorkerError):
                raise ReloadRejected(str(exc))
            return failure

        return self._fan_out("reload").addCallbacks(applied, rejected)

    def stop(self, deadline: float) -> Deferred[None]:
        self.stopping = True
        if self._poll_call is not None and self._poll_call.active():
            self._poll_call.cancel()
        within = max(0.0, deadline - self.reactor.seconds() - 1.0)
        running = [w for w in self.workers if w.alive]
        for w in running:
            if w.started:
                w.request("stop", within=within).addErrback(lambda _: None)
            elif w.pid is not None:
                os.kill(w.pid, signal.SIGTERM)
        exits: Deferred[Any] = defer.DeferredList([w.exited for w in running])
        cut = self.reactor.callLater(max(0.0, deadline - self.reactor.seconds() - 0.5),
                                     self._kill_all)

        def done(_: object) -> None:
            if cut.active():
                cut.cancel()
            self._release()

        return exits.addCallback(done)

    # -- verbs ------------------------------------------------------------------------

    def verbs(self) -> Iterable[Verb]:
        yield Verb("POST", "/kick", self._verb("/kick"),
                   "end a user's sessions at their next safe point (every worker)")
        yield Verb("POST", "/drain-backend", self._verb("/drain-backend"),
                   "route no new login to a backend; end its sessions at safe points")
        yield Verb("POST", "/undrain-backend", self._verb("/undrain-backend"),
                   "route logins to a drained backend again")
        yield Verb("POST", "/vip", self._verb("/vip"), "vipd reports this node's state for a VIP")

    def _verb(self, path: str) -> Any:
        def handler(body: JsonObject) -> Deferred[JsonObject]:
            def merge(answers: list[dict[str, Any]]) -> JsonObject:
                if not answers:
                    raise ControlError(HTTPStatus.SERVICE_UNAVAILABLE, "no worker answered")
                out: dict[str, Any] = dict(answers[0])
                if "sessions" in out:
                    out["sessions"] = sum(int(a.get("sessions", 0)) for a in answers)
                out["workers"] = len(answers)
                return out

            def error(failure: Failure) -> Failure:
                exc = failure.value
                if isinstance(exc, WorkerError):
                    raise ControlError(exc.status, str(exc))
                return failure

            return self._fan_out("verb", path=path, body=body).addCallbacks(merge, error)

        return handler
