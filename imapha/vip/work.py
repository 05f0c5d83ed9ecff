"""Blocking work kept off the VRRP clock: control-API calls, hooks, track scripts.

Theory of operation
-------------------
The reactor thread runs every virtual router's timers, so it must never wait
on another process. Everything that may block goes to Twisted's thread pool:

- :class:`SerialWorker` runs submitted calls one at a time, in submission
  order, each in a pool thread. Order matters for notifications ("backup"
  must not overtake the "master" sent before it) and for hooks (docs/vrrp.md:
  hooks run in order). A bounded queue: past ``limit`` pending calls the
  oldest is dropped (and counted) so a hung peer cannot grow memory forever.
- :func:`run_command` runs one command with a timeout in its own session and
  kills the whole process group when the timeout passes, so a hook's
  grandchildren go too. It returns an :class:`Outcome`: ``ok``, ``failed``
  (non-zero exit), ``timeout`` or ``error`` (could not start).
- :func:`control_call` is one control-API request with a bounded timeout whose
  failures are values, not exceptions (unreachable = :data:`None`).
"""

from __future__ import annotations

import collections
import contextlib
import enum
import logging
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred

from imapha.control import ControlClientError, ControlResponse, JsonObject, request

log = logging.getLogger(__name__)

DEFAULT_QUEUE_LIMIT = 1000
OUTPUT_LIMIT = 4096


class SerialWorker:
    """Run blocking calls one after another in the reactor's thread pool."""

    def __init__(self, reactor: Any, name: str, limit: int = DEFAULT_QUEUE_LIMIT) -> None:
        self.reactor = reactor
        self.name = name
        self.limit = limit
        self.dropped = 0
        self._queue: collections.deque[tuple[Callable[[], Any], Deferred[Any]]] = (
            collections.deque()
        )
        self._busy = False
        self._idle: list[Deferred[None]] = []

    @property
    def pending(self) -> int:
        return len(self._queue) + (1 if self._busy else 0)

    def submit(self, call: Callable[[], Any]) -> Deferred[Any]:
        result: Deferred[Any] = Deferred()
        if len(self._queue) >= self.limit:
            _old, old_result = self._queue.popleft()
            self.dropped += 1
            log.warning("%s: queue full, dropping the oldest pending call", self.name)
            old_result.callback(None)
        self._queue.append((call, result))
        self._next()
        return result

    def _next(self) -> None:
        if self._busy:
            return
        if not self._queue:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)
            return
        call, result = self._queue.popleft()
        self._busy = True
        running: Deferred[Any] = threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), call
        )

        def done(value: Any) -> None:
            self._busy = False
            self._next()
            if isinstance(value, BaseException):
                result.errback(value)
            else:
                result.callback(value)

        running.addCallbacks(done, lambda f: done(f.value))

    def when_idle(self) -> Deferred[None]:
        """Fires once nothing is queued or running."""
        d: Deferred[None] = Deferred()
        if not self._busy and not self._queue:
            d.callback(None)
        else:
            self._idle.append(d)
        return d


class Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class CommandResult:
    outcome: Outcome
    returncode: int | None
    output: str
    seconds: float


def run_command(
    command: str, timeout: float, env: Mapping[str, str] | None = None
) -> CommandResult:
    """Run shell words ``command`` (no shell), kill its process group after ``timeout``."""
    start = time.monotonic()
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return CommandResult(Outcome.ERROR, None, f"cannot parse: {exc}", 0.0)
    if not argv:
        return CommandResult(Outcome.ERROR, None, "empty command", 0.0)
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=full_env, start_new_session=True,
            cwd=Path("/"),
        )
    except OSError as exc:
        return CommandResult(Outcome.ERROR, None, f"cannot start: {exc.strerror or exc}",
                             time.monotonic() - start)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return CommandResult(Outcome.TIMEOUT, None, _text(out), time.monotonic() - start)
    outcome = Outcome.OK if proc.returncode == 0 else Outcome.FAILED
    return CommandResult(outcome, proc.returncode, _text(out), time.monotonic() - start)


def _text(out: bytes | None) -> str:
    return (out or b"")[-OUTPUT_LIMIT:].decode("utf-8", "replace").strip()


def control_call(
    path: Path, method: str, target: str, body: JsonObject | None, timeout: float
) -> ControlResponse | str:
    """One request; the response, or a short text saying why there was none."""
    try:
        return request(path, method, target, body, timeout=timeout)
    except ControlClientError as exc:
        return exc.message
    except OSError as exc:  # anything the client did not classify
        return f"cannot reach {path}: {exc}"
