"""Embedded backend benchmark: ``imapha backend`` against Dovecot 2.3 on the same Maildir.

Both servers serve one 10,000-message INBOX (delivered into ``new/`` first;
the first SELECT gives the UIDs). Each figure is the median over a few runs,
each in a fresh session, timed from sending the command to reading its tagged
OK (login excluded):

* SELECT of the 10,000-message mailbox, alone and while another session of
  the same user has it selected (imapha shares one folder view per process);
* ``FETCH 1:* (UID FLAGS)``;
* ``FETCH 1:* BODY.PEEK[HEADER]`` (all headers, every file read);
* ``SEARCH SUBJECT`` (a header search: every file read and parsed);
* APPEND rate into an empty folder (one session, one APPEND at a time);
* IDLE notification latency: from a delivery into ``new/`` (as an MTA does)
  to the ``* n EXISTS`` line on an IDLE session;
* the same four once each right after a restart of the backend (no folder
  view in memory; the header cache ``imapha.index`` is read from disk);
* NOOP round trip on a selected small folder (what the thread-pool hop and
  the per-command sync cost imapha on every command).

Run: ``.venv/bin/python -m bench.server_bench [--messages N]``.
"""

from __future__ import annotations

import argparse
import shutil
import time

from bench.common import Result, report, summarize
from imapha.lab.dovecot import DovecotServer, traversable_dir
from imapha.maildir.deliver import deliver
from tests.server.harness import ImaphaBackend, Raw

USER, PASSWORD = "bench", "bench-pw"
VERBOSE = False


def _message(n: int) -> bytes:
    body = ("lorem ipsum dolor sit amet " * 40 + "\r\n") * 3
    return (f"Message-ID: <{n}@bench>\r\nFrom: a@example.org\r\nTo: b@example.org\r\n"
            f"Subject: message {n}\r\nDate: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\n"
            f"{body}").encode()


def _timed(host: str, port: int, setup: list[str], command: str, runs: int) -> float:
    samples = []
    for _ in range(runs):
        with Raw(host, port, timeout=120) as c:
            c.ok(f"LOGIN {USER} {PASSWORD}")
            for line in setup:
                c.ok(line)
            start = time.perf_counter()
            c.ok(command)
            samples.append(time.perf_counter() - start)
    if VERBOSE:
        print(f"  {command}: " + " ".join(f"{x:.3f}" for x in samples))
    return summarize(samples).median


def _append_rate(host: str, port: int, folder: str, seconds: float) -> float:
    data = _message(0)
    with Raw(host, port, timeout=60) as c:
        c.ok(f"LOGIN {USER} {PASSWORD}")
        c.ok(f"CREATE {folder}")
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds and n < 100_000:
            tag = c.tag()
            c.send(f"{tag} APPEND {folder} {{{len(data)}+}}\r\n".encode() + data + b"\r\n")
            _, tagged = c.collect(tag)
            assert b" OK" in tagged, tagged
            n += 1
        return n / (time.perf_counter() - start)


def _idle_latency(host: str, port: int, maildir_folder: str, folder: str, runs: int) -> float:
    from pathlib import Path

    samples = []
    with Raw(host, port, timeout=30) as c:
        c.ok(f"LOGIN {USER} {PASSWORD}")
        c.ok(f"SELECT {folder}")
        for i in range(runs):
            tag = c.tag()
            c.send(f"{tag} IDLE\r\n".encode())
            assert c.read_line().startswith(b"+")
            time.sleep(0.2)
            start = time.perf_counter()
            deliver(Path(maildir_folder), _message(i))
            while True:
                line = c.read_response(timeout=30)
                if line.endswith(b"EXISTS\r\n"):
                    break
            samples.append(time.perf_counter() - start)
            c.send(b"DONE\r\n")
            c.collect(tag)
    return summarize(samples).median


def _noop_rtt(host: str, port: int, folder: str, runs: int = 300) -> float:
    samples = []
    with Raw(host, port, timeout=30) as c:
        c.ok(f"LOGIN {USER} {PASSWORD}")
        c.ok(f"SELECT {folder}")
        for _ in range(runs):
            start = time.perf_counter()
            c.ok("NOOP")
            samples.append(time.perf_counter() - start)
    return summarize(samples).median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--verbose", action="store_true", help="print every sample")
    args = parser.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    root = traversable_dir("imapha-server-bench-")
    users = {USER: PASSWORD}
    try:
        with DovecotServer(root / "dovecot", users, root / "mail") as dv, \
                ImaphaBackend(root / "imapha", users, root / "mail", lmtp=False) as be:
            inbox = root / "mail" / USER / "Maildir"
            with Raw(be.host, be.imap_port) as c:  # creates the Maildir
                c.ok(f"LOGIN {USER} {PASSWORD}")
            for n in range(args.messages):
                deliver(inbox, _message(n))
            first = time.perf_counter()
            with Raw(be.host, be.imap_port, timeout=300) as c:
                c.ok(f"LOGIN {USER} {PASSWORD}")
                c.ok("SELECT INBOX")
            print(f"first SELECT (UIDs for {args.messages} new messages, imapha): "
                  f"{time.perf_counter() - first:.2f} s")
            servers = {"imapha": (be.host, be.imap_port), "dovecot": (dv.listen, dv.imap_port)}
            # Warm Dovecot's index and both page caches before measuring.
            for host, port in servers.values():
                _timed(host, port, ["SELECT INBOX"], "FETCH 1:* (UID FLAGS)", 1)
            cases = [
                ("SELECT 10k", [], "SELECT INBOX"),
                ("FETCH 1:* (UID FLAGS)", ["SELECT INBOX"], "FETCH 1:* (UID FLAGS)"),
                ("FETCH 1:* BODY.PEEK[HEADER]", ["SELECT INBOX"], "FETCH 1:* BODY.PEEK[HEADER]"),
                ("SEARCH SUBJECT", ["SELECT INBOX"], 'SEARCH SUBJECT "message 9999"'),
            ]
            for name, setup, command in cases[:1]:
                got = {k: _timed(h, p, setup, command, args.runs)
                       for k, (h, p) in servers.items()}
                report(Result(f"{name}, alone (median s)", got["imapha"], got["dovecot"], "s",
                              "dovecot", higher_is_better=False))
            holders = []
            for host, port in servers.values():
                holder = Raw(host, port, timeout=120)
                holder.ok(f"LOGIN {USER} {PASSWORD}")
                holder.ok("SELECT INBOX")
                holders.append(holder)
            for name, setup, command in cases:
                got = {k: _timed(h, p, setup, command, args.runs)
                       for k, (h, p) in servers.items()}
                report(Result(f"{name} (median s)", got["imapha"], got["dovecot"], "s",
                              "dovecot", higher_is_better=False))
            for holder in holders:
                holder.close()
            # A restarted backend: no view in memory, imapha.index read from disk.
            # One sample each (only the first is cold); Dovecot for reference.
            be.stop()
            be.start()
            servers["imapha"] = (be.host, be.imap_port)
            for name, setup, command in cases:
                got = {k: _timed(h, p, setup, command, 1) for k, (h, p) in servers.items()}
                report(Result(f"{name}, first after a backend restart (s)", got["imapha"],
                              got["dovecot"], "s", "dovecot", higher_is_better=False))
            rates = {k: _append_rate(h, p, f"Append{k}", 3.0) for k, (h, p) in servers.items()}
            report(Result("APPEND rate", rates["imapha"], rates["dovecot"], "msg/s", "dovecot"))
            latency = {}
            for k, (h, p) in servers.items():
                folder = f"Idle{k}"
                with Raw(h, p) as c:
                    c.ok(f"LOGIN {USER} {PASSWORD}")
                    c.ok(f"CREATE {folder}")
                latency[k] = _idle_latency(h, p, str(inbox / f".{folder}"), folder, 10)
            report(Result("IDLE notification latency (median s)", latency["imapha"],
                          latency["dovecot"], "s", "dovecot", higher_is_better=False))
            rtt = {k: _noop_rtt(h, p, f"Idle{k}") for k, (h, p) in servers.items()}
            report(Result("NOOP round trip (median s)", rtt["imapha"], rtt["dovecot"], "s",
                          "dovecot", higher_is_better=False))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
