"""Mail clients at work, for the demo stories, end-to-end tests and benchmarks.

Theory of operation
-------------------
``python -m imapha.lab.workload SPEC OUT`` runs in the client's namespace. Each
worker thread plays one user's mail client in a loop: pick one of the VIPs at
random (as round-robin DNS hands them out), connect with implicit TLS checked
against the lab's CA, LOGIN, SELECT INBOX, APPEND a message with a unique
Message-ID, FETCH a header, LOGOUT, pause. Every session is recorded with its
start, end and outcome; an APPEND counts as *confirmed* only after its tagged
OK, and as *uncertain* when the connection died while it was in flight.

It stops at the spec's deadline or on SIGTERM/SIGINT and writes OUT (JSON).
:func:`verify_mail` then checks the Maildirs: every confirmed message exists
exactly once, and no uncertain one more than once.
"""

from __future__ import annotations

import imaplib
import json
import random
import signal
import ssl
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

SESSION_TIMEOUT = 3.0


@dataclass(frozen=True)
class Spec:
    vips: list[str]
    port: int
    ca_cert: str
    users: list[tuple[str, str]]
    duration: float
    pause: float = 0.05
    workers: int = 4


@dataclass
class Session:
    worker: int
    vip: str
    start: float
    end: float = 0.0
    ok: bool = False
    error: str = ""


@dataclass
class WorkerLog:
    worker: int
    user: str
    sessions: list[Session] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)


def _message(msgid: str, user: str) -> bytes:
    return (
        f"From: workload <workload@cs.example.org>\r\nTo: {user}@cs.example.org\r\n"
        f"Subject: workload {msgid}\r\nMessage-ID: <{msgid}>\r\n\r\n"
        f"Written by the imapha lab workload.\r\n"
    ).encode()


def _session(spec: Spec, log: WorkerLog, password: str, context: ssl.SSLContext, *,
             serial: int, rng: random.Random) -> None:
    vip = rng.choice(spec.vips)
    s = Session(log.worker, vip, time.time())
    log.sessions.append(s)
    msgid = f"w{log.worker}-{serial}-{int(s.start * 1000)}@workload.imapha"
    appending = False
    try:
        with imaplib.IMAP4_SSL(vip, spec.port, ssl_context=context,
                               timeout=SESSION_TIMEOUT) as imap:
            imap.login(log.user, password)
            imap.select("INBOX")
            appending = True
            status, _ = imap.append("INBOX", "", imaplib.Time2Internaldate(time.time()),
                                    _message(msgid, log.user))
            appending = False
            if status != "OK":
                raise imaplib.IMAP4.error(f"APPEND answered {status}")
            log.confirmed.append(msgid)
            imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            imap.logout()
        s.ok = True
    except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
        s.error = f"{type(exc).__name__}: {exc}"[:200]
        if appending:
            log.uncertain.append(msgid)
    finally:
        s.end = time.time()


def run(spec: Spec, stop: threading.Event) -> list[WorkerLog]:
    context = ssl.create_default_context(cafile=spec.ca_cert)
    logs = [
        WorkerLog(i, spec.users[i % len(spec.users)][0]) for i in range(spec.workers)
    ]
    deadline = time.monotonic() + spec.duration

    def worker(log: WorkerLog) -> None:
        rng = random.Random(log.worker)
        password = dict(spec.users)[log.user]
        serial = 0
        while not stop.is_set() and time.monotonic() < deadline:
            serial += 1
            _session(spec, log, password, context, serial=serial, rng=rng)
            stop.wait(spec.pause)

    threads = [threading.Thread(target=worker, args=(log,), daemon=True) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(spec.duration + 4 * SESSION_TIMEOUT)
    return logs


@dataclass(frozen=True)
class Disruption:
    sessions: int
    failed: int
    failed_outside: int  # failures of sessions that did not overlap an allowed window
    longest_outage: float  # longest time a worker went without a successful session
    first_failure: float | None
    last_failure: float | None


def disruption(logs: Iterable[WorkerLog],
               windows: Sequence[tuple[float, float]] = ()) -> Disruption:
    """What the clients saw; a failure inside a window (wall-clock times) is allowed."""
    sessions = failed = outside = 0
    longest = 0.0
    first: float | None = None
    last: float | None = None
    for log in logs:
        last_ok_end: float | None = None
        outage_start: float | None = None
        for s in log.sessions:
            sessions += 1
            if s.ok:
                if outage_start is not None:
                    longest = max(longest, s.end - outage_start)
                    outage_start = None
                last_ok_end = s.end
                continue
            failed += 1
            if not any(s.start <= end and s.end >= start for start, end in windows):
                outside += 1
            first = s.start if first is None else min(first, s.start)
            last = s.end if last is None else max(last, s.end)
            if outage_start is None:
                outage_start = last_ok_end if last_ok_end is not None else s.start
        if outage_start is not None and log.sessions:
            longest = max(longest, log.sessions[-1].end - outage_start)
    return Disruption(sessions, failed, outside, longest, first, last)


@dataclass(frozen=True)
class MailCheck:
    checked: int
    missing: list[str]
    duplicated: list[str]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.duplicated


def _message_ids(maildir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sub in ("new", "cur"):
        folder = maildir / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            try:
                head = path.read_bytes()[:4096]
            except FileNotFoundError:
                continue  # renamed under us (flags); the other name is listed too
            for line in head.split(b"\n"):
                if line.lower().startswith(b"message-id:"):
                    msgid = line.split(b":", 1)[1].strip().strip(b"<>").decode("ascii", "replace")
                    counts[msgid] = counts.get(msgid, 0) + 1
                    break
    return counts


def verify_mail(maildir_root: Path, logs: Sequence[WorkerLog]) -> MailCheck:
    """Every confirmed APPEND exactly once in its user's INBOX; uncertain ones at most once."""
    missing: list[str] = []
    duplicated: list[str] = []
    checked = 0
    per_user: dict[str, dict[str, int]] = {}
    for log in logs:
        if log.user not in per_user:
            per_user[log.user] = _message_ids(maildir_root / log.user / "Maildir")
        counts = per_user[log.user]
        for msgid in log.confirmed:
            checked += 1
            n = counts.get(msgid, 0)
            if n == 0:
                missing.append(msgid)
            elif n > 1:
                duplicated.append(msgid)
        duplicated += [m for m in log.uncertain if counts.get(m, 0) > 1]
    return MailCheck(checked, missing, duplicated)


def load_logs(path: Path) -> list[WorkerLog]:
    raw: list[dict[str, Any]] = json.loads(path.read_text())
    return [
        WorkerLog(
            d["worker"], d["user"], [Session(**s) for s in d["sessions"]],
            list(d["confirmed"]), list(d["uncertain"]),
        )
        for d in raw
    ]


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m imapha.lab.workload SPEC.json OUT.json", file=sys.stderr)
        return 2
    raw = json.loads(Path(argv[0]).read_text())
    raw["users"] = [tuple(u) for u in raw["users"]]
    spec = Spec(**raw)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logs = run(spec, stop)
    tmp = Path(argv[1] + ".tmp")
    tmp.write_text(json.dumps([asdict(log) for log in logs]))
    tmp.replace(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
