"""One proxy worker process: ``python -m imapha.proxy.worker`` (started by the parent only).

Theory of operation
-------------------
With ``[proxy] workers = N`` the daemon process (:mod:`imapha.proxy.workers`)
serves the control API and metrics and starts N of these. Each one is a whole
:class:`~imapha.proxy.service.ProxyService` with its own reactor, health
checker and limits (its share), listening on the addresses the parent
reserved, with ``SO_REUSEPORT``.

The parent talks to a worker over the worker's stdin and stdout, one JSON
object per line (stderr is the parent's, so log lines go where the daemon's
go). Requests are ``{"id": n, "op": OP, ...}``; every answer is
``{"id": n, "ok": true, "result": {...}}`` or ``{"id": n, "ok": false,
"status": HTTP status, "error": text}``. The worker speaks first:
``{"event": "started", "pid": pid}`` once it listens and its first health
round is done. Operations:

========= ====================================================================
status    ``ready``, ``reason``, ``status`` (the service's /status fields) and,
          with ``"metrics": true``, ``metrics`` (its registry as Prometheus text)
drain     closes its listeners; sessions end after the drain grace
undrain   listens again
verb      ``path`` and ``body`` of a service verb (``/kick``, ``/drain-backend``...)
reload    reads the config file again and applies it (``changed``, or a 409 error)
stop      ``within`` seconds for sessions to end, then the process exits
========= ====================================================================

EOF on stdin means the parent is gone: the worker stops as for ``stop`` with
:data:`ORPHAN_GRACE` seconds. SIGINT and SIGHUP are ignored (the parent fans
them out); SIGTERM stops like EOF.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, cast

import prometheus_client
from twisted.internet import defer, stdio
from twisted.protocols.basic import LineReceiver

from imapha import __version__
from imapha import log as imapha_log
from imapha.config import ConfigError, load_config
from imapha.control import ControlError
from imapha.daemon import DaemonContext, ReloadRejected
from imapha.metrics import DaemonMetrics
from imapha.proxy.service import ProxyService, WorkerSpec

log = logging.getLogger(__name__)

#: Seconds a worker whose parent vanished gives its sessions before it exits.
ORPHAN_GRACE: Final = 5.0
#: Longest request line accepted from the parent.
MAX_LINE: Final = 1 << 20


class Channel(LineReceiver):
    """The worker's end of the parent's pipe pair (see the module docstring)."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE

    def __init__(self, service: ProxyService, ctx: DaemonContext, config_path: Path) -> None:
        self.service = service
        self.ctx = ctx
        self.config_path = config_path
        self.stopping = False
        self.handlers = {"status": self._status, "drain": self._drain,
                         "undrain": self._undrain, "verb": self._verb,
                         "reload": self._reload, "stop": self._stop}

    def send(self, message: dict[str, Any]) -> None:
        if self.transport is not None:
            cast(Any, self).sendLine(json.dumps(message, separators=(",", ":")).encode())

    def lineReceived(self, line: bytes) -> None:
        try:
            request = json.loads(line)
            rid, op = request["id"], request["op"]
        except (ValueError, KeyError, TypeError):
            log.error("worker: unreadable request from the parent: %r", line[:200])
            return
        handler = self.handlers.get(op)
        if handler is None:
            self.send({"id": rid, "ok": False, "status": 400, "error": f"no op {op!r}"})
            return
        d = defer.maybeDeferred(handler, request)
        d.addCallbacks(lambda result: self.send({"id": rid, "ok": True, "result": result}),
                       lambda failure: self._failed(rid, op, failure))

    def _failed(self, rid: int, op: str, failure: Any) -> None:
        exc = failure.value
        if isinstance(exc, ControlError):
            self.send({"id": rid, "ok": False, "status": int(exc.status), "error": str(exc)})
        elif isinstance(exc, ReloadRejected):
            self.send({"id": rid, "ok": False, "status": 409, "error": exc.reason})
        else:
            log.error("worker: %s failed: %s", op, failure.getTraceback())
            self.send({"id": rid, "ok": False, "status": 500, "error": f"{op} failed"})

    def lineLengthExceeded(self, line: bytes) -> None:
        log.error("worker: request line from the parent too long; ignored")

    def connectionLost(self, reason: Any = None) -> None:
        if not self.stopping:
            log.warning("worker: the parent is gone; stopping")
            self.stop(ORPHAN_GRACE)

    # -- operations --------------------------------------------------------------------

    def _status(self, request: dict[str, Any]) -> dict[str, Any]:
        ready, reason = self.service.is_ready()
        result: dict[str, Any] = {"ready": bool(ready), "reason": reason,
                                  "status": self.service.status(), "pid": os.getpid()}
        if request.get("metrics"):
            text = prometheus_client.generate_latest(self.ctx.metrics.registry)
            result["metrics"] = text.decode()
        return result

    def _drain(self, request: dict[str, Any]) -> Any:
        return defer.maybeDeferred(self.service.drain).addCallback(lambda _: {})

    def _undrain(self, request: dict[str, Any]) -> dict[str, Any]:
        self.service.undrain()
        return {}

    def _verb(self, request: dict[str, Any]) -> Any:
        path, body = request.get("path"), request.get("body") or {}
        for verb in self.service.verbs():
            if verb.path == path:
                return verb.handler(body)
        raise ControlError(HTTPStatus.NOT_FOUND, f"no verb {path!r}")

    def _reload(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            config = load_config(self.config_path)
            node = config.node(self.ctx.node)
        except (ConfigError, OSError) as exc:
            raise ReloadRejected(f"config not usable: {exc}") from exc
        old = self.ctx.config
        self.ctx.config = config
        try:
            changed = self.service.reload(node)
        except BaseException:
            self.ctx.config = old
            raise
        return {"changed": changed}

    def _stop(self, request: dict[str, Any]) -> Any:
        within = float(request.get("within", ORPHAN_GRACE))
        d = self.stop(within)
        return d.addCallback(lambda _: {})

    def stop(self, within: float) -> defer.Deferred[None]:
        reactor = self.ctx.reactor
        if self.stopping:
            return defer.succeed(None)
        self.stopping = True
        done = self.service.stop(reactor.seconds() + within)

        def finish(_: object) -> None:
            reactor.callLater(0.05, reactor.stop)  # after the answer is written

        done.addBoth(finish)
        return done.addCallback(lambda _: None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imapha.proxy.worker")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--listen", action="append", default=[],
                        help="kind=host:port (repeatable)")
    parser.add_argument("--drained", action="store_true")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--log-format", default="text")
    args = parser.parse_args(argv)
    imapha_log.setup(args.log_level, args.log_format)
    prefix = f"[worker {args.index}] "

    def tag(record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and not record.msg.startswith(prefix):
            record.msg = prefix + record.msg
        return True

    for handler in logging.getLogger().handlers:
        handler.addFilter(tag)
    imapha_log.bridge_twisted()
    cast(Any, prometheus_client).disable_created_metrics()
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)

    from twisted.internet import reactor as default_reactor

    reactor: Any = default_reactor
    try:
        config = load_config(args.config)
        config.node(args.node)
    except (ConfigError, OSError) as exc:
        log.error("worker %d: config not usable: %s", args.index, exc)
        return 78
    listen: list[tuple[str, str, int]] = []
    for item in args.listen:
        kind, _, address = item.partition("=")
        host, _, port = address.rpartition(":")
        listen.append((kind, host.strip("[]"), int(port)))
    spec = WorkerSpec(args.index, args.count, tuple(listen))
    ctx = DaemonContext("proxy", args.node, config, reactor,
                        DaemonMetrics("proxy", args.node, __version__))
    service = ProxyService(ctx, spec)
    channel = Channel(service, ctx, args.config)
    exit_code = [0]

    async def start() -> None:
        await service.start()
        if args.drained:
            await defer.maybeDeferred(service.drain)
        cast(Any, stdio.StandardIO)(channel, reactor=reactor)
        channel.send({"event": "started", "pid": os.getpid()})

    def failed(failure: Any) -> None:
        log.error("worker %d failed to start: %s", args.index, failure.getTraceback())
        exit_code[0] = 1
        reactor.stop()

    signal.signal(signal.SIGTERM,
                  lambda *_: reactor.callFromThread(channel.stop, ORPHAN_GRACE))
    reactor.callWhenRunning(lambda: defer.ensureDeferred(start()).addErrback(failed))
    reactor.run(installSignalHandlers=False)
    return exit_code[0]


if __name__ == "__main__":
    sys.exit(main())
