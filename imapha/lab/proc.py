"""The lab's one process runner: start, run and stop commands inside a namespace.

Theory of operation
-------------------
A command runs in a lab host through ``ip netns exec NAME argv…``, which
``exec``\\s the command, so the PID the runner tracks is the command's own.
Each spawned process gets its own session (so the test's Ctrl-C is not sent to
it and its process group can be signalled as one) and writes stdout and stderr
to a log file.

Stopping is bounded and thorough.  :func:`stop_namespace` sends SIGTERM to the
tracked processes *and* to every other process whose network namespace is the
host's (found by :func:`imapha.lab.netns.pids_in`, which catches the children
a daemon forked), waits up to a grace period, then SIGKILLs whatever is left,
rescanning a bounded number of times in case something forked meanwhile.
A process counts as gone once it no longer exists or is a zombie.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imapha.lab import netns
from imapha.lab.netns import CommandFailed, LabError

log = logging.getLogger(__name__)

STOP_GRACE = 3.0
"""Default seconds between SIGTERM and SIGKILL."""
KILL_WAIT = 5.0
"""Seconds to wait for SIGKILLed processes to vanish before giving up."""
KILL_ROUNDS = 20
"""Upper bound on scan-and-kill rounds (each can find newly forked processes)."""
RUN_TIMEOUT = 30.0
"""Default bound on :func:`run_in`, in seconds."""


def _netns_argv(name: str, argv: Sequence[str]) -> list[str]:
    if not argv:
        raise LabError("empty command")
    return ["ip", "netns", "exec", name, *[str(a) for a in argv]]


def _environment(env: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(os.environ)
    if env:
        merged.update(env)
    return merged


@dataclass(eq=False)
class LabProcess:
    """A command started in a lab namespace, tracked by PID."""

    argv: list[str]
    netns: str
    log: Path
    popen: subprocess.Popen[bytes] = field(repr=False)
    log_offset: int = 0
    """Where this process's output starts in *log* (after the header line)."""

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit; raise ``subprocess.TimeoutExpired`` after *timeout*."""
        return self.popen.wait(timeout)

    def send_signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def output(self) -> str:
        """Everything the process wrote so far (its part of the log file)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL to its process group after *grace*; return the status."""
        if self.popen.poll() is None:
            self.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.send_signal(signal.SIGKILL)
                try:
                    self.popen.wait(KILL_WAIT)
                except subprocess.TimeoutExpired:
                    log.warning("pid %d survived SIGKILL for %.1f s", self.pid, KILL_WAIT)
                    return None
        return self.popen.returncode


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> LabProcess:
    """Start *argv* in namespace *name*, output appended to *log_path*.

    *env* is added on top of this process's environment.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        out.write(f"--- {time.strftime('%H:%M:%S')} {' '.join(map(str, argv))}\n".encode())
        out.flush()
        offset = out.tell()
        popen = subprocess.Popen(
            _netns_argv(name, argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_environment(env),
            cwd=cwd,
            start_new_session=True,
        )
    log.debug("spawned pid %d in %s: %s", popen.pid, name, argv)
    return LabProcess(
        argv=[str(a) for a in argv], netns=name, log=log_path, popen=popen, log_offset=offset
    )


def run_in(
    name: str,
    argv: Sequence[str],
    *,
    timeout: float = RUN_TIMEOUT,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a short command in namespace *name* and capture its output.

    Raises :class:`LabError` if it outlives *timeout* (it is killed) and
    :class:`CommandFailed` if *check* and it exits non-zero.
    """
    full = _netns_argv(name, argv)
    try:
        done = subprocess.run(
            full,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_environment(env),
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(
            f"{' '.join(map(str, argv))!r} in {name} timed out after {timeout} s"
        ) from exc
    if check and done.returncode != 0:
        raise CommandFailed(list(map(str, argv)), done.returncode, done.stderr + done.stdout)
    return done


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _wait_gone(pids: Iterable[int], deadline: float) -> list[int]:
    pending = list(pids)
    while pending and time.monotonic() < deadline:
        pending = [p for p in pending if netns.pid_alive(p)]
        if pending:
            time.sleep(0.02)
    return pending


def stop_namespace(
    name: str, tracked: Sequence[LabProcess] = (), *, grace: float = STOP_GRACE
) -> list[int]:
    """Stop every process in namespace *name*; return the PIDs that would not die.

    With ``grace > 0`` everything gets SIGTERM first and SIGKILL after *grace*
    seconds; with ``grace == 0`` it is SIGKILL at once (a crash).
    """
    mine = [p for p in tracked if p.alive()]
    first = sorted({p.pid for p in mine} | set(netns.pids_in(name)))
    if grace > 0 and first:
        _signal_all(first, signal.SIGTERM)
        _wait_gone(first, time.monotonic() + grace)
    deadline = time.monotonic() + KILL_WAIT
    left: list[int] = []
    for _ in range(KILL_ROUNDS):
        left = sorted({p.pid for p in mine if p.alive()} | set(netns.pids_in(name)))
        if not left or time.monotonic() > deadline:
            break
        _signal_all(left, signal.SIGKILL)
        for p in mine:
            if p.popen.returncode is None:  # unreaped: its PID (= PGID) cannot be reused yet
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
        left = _wait_gone(left, min(deadline, time.monotonic() + 1.0))
    for p in mine:  # reap our own children so no zombie is left
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.popen.wait(0.5)
    left = [pid for pid in left if netns.pid_alive(pid)]
    if left:
        log.warning("processes %s in %s survived SIGKILL", left, name)
    return left


__all__ = [
    "CommandFailed",
    "LabError",
    "LabProcess",
    "run_in",
    "spawn",
    "stop_namespace",
]
