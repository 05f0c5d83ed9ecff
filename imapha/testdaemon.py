"""A minimal role on the shared runtime, for tests until (and beside) the real daemons.

``python -m imapha.testdaemon --config F --node N --role R`` runs the whole
:mod:`imapha.daemon` lifecycle (control socket, metrics, pid file, signals,
sd_notify, reload) around a service that does nothing but keep a few knobs:

- ``POST /set-ready`` ``{"ready": false, "reason": "..."}`` toggles readiness;
- ``POST /poke`` increments ``<prefix>_testdaemon_pokes_total`` (a counter in
  the role's namespace, e.g. ``imapha_proxy_testdaemon_pokes_total``);
- ``POST /kick`` ``{"user": U}`` and (proxy only) ``POST /drain-backend``
  ``{"name": B}`` record what they were asked, as the real proxy's verbs will;
- a reload applies every change to the role's config section live, except the
  keys named with ``--restart-only`` (rejected, as a real role rejects what it
  cannot change live);
- ``POST /crash`` raises inside a handler (the client must see only
  ``internal error``);
- ``--start-delay``, ``--fail-start``, ``--not-ready``, ``--stop-delay`` and
  ``--stop-hang`` shape start-up and shutdown for the lifecycle tests.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from pathlib import Path

from twisted.internet import defer, task
from twisted.internet.defer import Deferred

from imapha import log as imapha_log
from imapha import metrics
from imapha.config import NodeConfig
from imapha.control import ControlError, JsonObject, Verb
from imapha.daemon import (
    ROLE_SECTIONS,
    DaemonContext,
    ReloadRejected,
    Service,
    ServiceBase,
    config_diff,
    run_daemon,
)

log = logging.getLogger(__name__)


class TestService(ServiceBase):
    """The service; see the module docstring."""

    __test__ = False  # not a pytest test class

    def __init__(self, ctx: DaemonContext, options: argparse.Namespace) -> None:
        super().__init__(ctx)
        self.options = options
        self.ready = not options.not_ready
        self.reason = "told so at start" if options.not_ready else ""
        self.drained = False
        self.kicked: list[str] = []
        self.drained_backends: list[str] = []
        prefix = metrics.ROLE_PREFIXES[ctx.role]
        spec = metrics.counter(ctx.role, f"{prefix}testdaemon_pokes_total",
                               "Pokes received by the test daemon")
        self.pokes = ctx.metrics.counter(spec)
        self.poke_count = 0

    def start(self) -> Deferred[None]:
        if self.options.fail_start:
            raise RuntimeError("simulated start failure (--fail-start)")
        return task.deferLater(self.ctx.reactor, self.options.start_delay, lambda: None)

    def is_ready(self) -> tuple[bool, str]:
        return self.ready, self.reason

    def status(self) -> JsonObject:
        return {
            "detail": f"pokes={self.poke_count}",
            "pokes": self.poke_count,
            "service_drained": self.drained,
            "kicked": list(self.kicked),
            "drained_backends": list(self.drained_backends),
        }

    def drain(self) -> None:
        self.drained = True

    def undrain(self) -> None:
        self.drained = False

    def reload(self, node: NodeConfig) -> list[str]:
        section = ROLE_SECTIONS[self.ctx.role]
        changed = config_diff(getattr(self.node_config, section), getattr(node, section),
                              section)
        blocked = [key for key in changed
                   if key.split(".", 1)[-1] in set(self.options.restart_only)]
        if blocked:
            raise ReloadRejected(f"{', '.join(blocked)} cannot change live; restart instead")
        self.node_config = node
        return changed

    def stop(self, deadline: float) -> Deferred[None]:
        if self.options.stop_hang:
            return Deferred()  # never fires: the runtime's own bound must end it
        delay = min(self.options.stop_delay, max(0.0, deadline - self.ctx.reactor.seconds()))
        return task.deferLater(self.ctx.reactor, delay, lambda: None)

    # -- verbs ------------------------------------------------------------

    def verbs(self) -> Iterable[Verb]:
        yield Verb("POST", "/set-ready", self._set_ready, "test: set readiness")
        yield Verb("POST", "/poke", self._poke, "test: count a poke")
        yield Verb("POST", "/kick", self._kick, "end a user's sessions")
        if self.ctx.role == "proxy":
            yield Verb("POST", "/drain-backend", self._drain_backend,
                       "route no new session to a backend")
        yield Verb("POST", "/crash", self._crash, "test: raise inside a handler")

    def _set_ready(self, body: JsonObject) -> JsonObject:
        ready = body.get("ready")
        if not isinstance(ready, bool):
            raise ControlError(HTTPStatus.BAD_REQUEST, '"ready" must be true or false')
        self.ready = ready
        self.reason = "" if ready else str(body.get("reason", "told so"))
        return {"ready": self.ready, "reason": self.reason}

    def _poke(self, _body: JsonObject) -> Deferred[JsonObject]:
        self.pokes.inc()
        self.poke_count += 1
        return defer.succeed({"pokes": self.poke_count})

    def _kick(self, body: JsonObject) -> JsonObject:
        user = body.get("user")
        if not isinstance(user, str) or not user:
            raise ControlError(HTTPStatus.BAD_REQUEST, '"user" must be a non-empty string')
        self.kicked.append(user)
        return {"user": user, "sessions": 0}

    def _drain_backend(self, body: JsonObject) -> JsonObject:
        name = body.get("name")
        known = [b.name for b in self.ctx.config.backends]
        if name not in known:
            raise ControlError(HTTPStatus.NOT_FOUND, f"no backend named {name!r}")
        assert isinstance(name, str)
        self.drained_backends.append(name)
        return {"backend": name, "draining": True}

    def _crash(self, _body: JsonObject) -> JsonObject:
        raise ValueError("secret internal detail that must not reach the client")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m imapha.testdaemon",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--role", required=True, choices=sorted(ROLE_SECTIONS))
    parser.add_argument("--log-level", default="info", choices=imapha_log.LEVELS)
    parser.add_argument("--log-format", default="text", choices=imapha_log.FORMATS)
    parser.add_argument("--start-delay", type=float, default=0.0)
    parser.add_argument("--fail-start", action="store_true")
    parser.add_argument("--not-ready", action="store_true")
    parser.add_argument("--stop-delay", type=float, default=0.0)
    parser.add_argument("--stop-hang", action="store_true",
                        help="stop() never finishes (tests the runtime's bound)")
    parser.add_argument("--stop-timeout", type=float, default=10.0)
    parser.add_argument("--restart-only", action="append", default=[], metavar="KEY",
                        help="a key of the role's section a reload may not change")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    options = build_parser().parse_args(argv)
    imapha_log.setup(options.log_level, options.log_format)

    def factory(ctx: DaemonContext) -> Service:
        return TestService(ctx, options)

    return run_daemon(options.role, options.config, options.node, factory,
                      stop_timeout=options.stop_timeout)


if __name__ == "__main__":
    sys.exit(main())
