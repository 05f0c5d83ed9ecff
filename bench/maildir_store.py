"""Maildir store benchmark: imapha's store against Dovecot 2.3 on the same Maildir.

1. Sync of a 10,000-message Maildir:
   * cold: a fresh ``Mailbox`` (no cache) syncing it, against Dovecot's SELECT
     with no index files (deleted before each run), timed from the SELECT command
     to its tagged OK (login excluded);
   * warm: a second ``sync()`` with nothing changed, against Dovecot's SELECT in
     a new session with its index in place.
2. Append rate: ``Mailbox.append`` (file + fsync + UID under the lock) and the
   lock-free ``deliver`` into an empty folder and into the 10,000-message one,
   against Dovecot's LMTP delivery (one session, ``mail_fsync = always``).

Run: ``.venv/bin/python -m bench.maildir_store`` (as root or any user Dovecot can
run as). Prints one line per measurement through ``bench.common.report``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import smtplib
import socket
import time
from pathlib import Path

from bench.common import Result, report, summarize
from imapha.lab.dovecot import DovecotServer, traversable_dir
from imapha.maildir.deliver import deliver
from imapha.maildir.mailbox import Mailbox

USER, PASSWORD = "bench", "bench-pw"


def _message(n: int) -> bytes:
    body = ("lorem ipsum dolor sit amet " * 40 + "\n") * 3
    return (f"Message-ID: <{n}@bench>\nFrom: a@example.org\nTo: b@example.org\n"
            f"Subject: message {n}\n\n{body}").encode()


class _Imap:
    """A minimal IMAP client that times single commands precisely."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=60)
        self.file = self.sock.makefile("rwb")
        self.file.readline()
        self.tag = 0

    def command(self, text: str) -> float:
        self.tag += 1
        tag = f"b{self.tag}".encode()
        start = time.perf_counter()
        self.file.write(tag + b" " + text.encode() + b"\r\n")
        self.file.flush()
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("server closed")
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return time.perf_counter() - start

    def close(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, OSError):
            self.command("LOGOUT")
        self.sock.close()


def _dovecot_select(dv: DovecotServer) -> float:
    imap = _Imap(dv.listen, dv.imap_port)
    try:
        imap.command(f"LOGIN {USER} {PASSWORD}")
        return imap.command("SELECT INBOX")
    finally:
        imap.close()


def _drop_dovecot_index(maildir: Path) -> None:
    for entry in os.listdir(maildir):
        if entry.startswith("dovecot.index") or entry == "dovecot.list.index.log":
            os.unlink(maildir / entry)


def bench_sync(dv: DovecotServer, maildir: Path, runs: int) -> None:
    cold, warm, dv_cold, dv_warm = [], [], [], []
    # Let the directory mtimes age past the store's 2 s "dirty" window.
    time.sleep(2.2)
    for _ in range(runs):
        box = Mailbox(maildir)
        start = time.perf_counter()
        result = box.sync()
        cold.append(time.perf_counter() - start)
        assert len(result.added) == len(box.messages())
        start = time.perf_counter()
        assert box.sync().empty
        warm.append(time.perf_counter() - start)
    for _ in range(runs):
        _drop_dovecot_index(maildir)
        dv_cold.append(_dovecot_select(dv))
        dv_warm.append(_dovecot_select(dv))
    n = len(Mailbox(maildir).sync().added)
    for name, ours, theirs in (("cold", cold, dv_cold), ("warm", warm, dv_warm)):
        report(Result(f"maildir sync {name}, {n} messages (median of {runs})",
                      summarize(ours).median * 1000, summarize(theirs).median * 1000, "ms",
                      f"Dovecot SELECT {name}", higher_is_better=False))


def bench_append(dv: DovecotServer, maildir: Path, label: str, count: int) -> None:
    box = Mailbox(maildir)
    box.sync()
    msgs = [_message(1_000_000 + i) for i in range(count)]
    start = time.perf_counter()
    for data in msgs:
        box.append(data)
    ours = count / (time.perf_counter() - start)
    start = time.perf_counter()
    for data in msgs:
        deliver(maildir, data)
    plain = count / (time.perf_counter() - start)
    lmtp = smtplib.LMTP(dv.listen, dv.lmtp_port)
    start = time.perf_counter()
    for data in msgs:
        lmtp.sendmail("a@example.org", [USER], data)
    theirs = count / (time.perf_counter() - start)
    lmtp.quit()
    report(Result(f"append with UID, {label}", ours, theirs, "msg/s", "Dovecot LMTP"))
    report(Result(f"deliver to new/ (no UID), {label}", plain, theirs, "msg/s",
                  "Dovecot LMTP"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--appends", type=int, default=300)
    args = parser.parse_args()
    root = traversable_dir("imapha-bench-")
    try:
        with DovecotServer(root / "dv", {USER: PASSWORD}, root / "mail", lmtp=True) as dv:
            maildir = dv.maildir(USER)
            # Fresh folder for the empty-folder append rates.
            empty = Mailbox(maildir / ".Empty", create=True)
            bench_append(dv, empty.path, "empty folder", args.appends)
            big = Mailbox(maildir, create=True)
            start = time.perf_counter()
            for n in range(args.messages):
                deliver(maildir, _message(n))
            big.sync()
            print(f"built {args.messages} messages in {time.perf_counter() - start:.1f} s",
                  flush=True)
            bench_sync(dv, maildir, args.runs)
            bench_append(dv, maildir, f"{args.messages}-message folder", args.appends)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
