"""Torture (slow): two backends and an MTA on one Maildir, one of them SIGKILLed at random.

Backend A serves an appender, a flagger and an expunger and is SIGKILLed and
restarted every second or two; backend B serves a mover (INBOX -> Archive) and
a reader that records every (folder, UID) -> Message-ID it ever sees; an "MTA"
delivers into ``new/`` all the while. Afterwards:

* no message lost: every delivered message and every APPEND that got its OK
  is in INBOX or Archive, unless it was one marked for deletion;
* none duplicated: each Message-ID at most once per folder (MOVE runs on the
  backend that is never killed, so a half-done MOVE cannot leave two copies);
* UIDs strictly increasing in each uidlist and never reused: no (folder, UID)
  was ever seen with two different messages;
* Dovecot, started on the same Maildir afterwards, reports the very same UIDs
  and messages as imapha.
"""

from __future__ import annotations

import random
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from imapha.lab.dovecot import DovecotServer, traversable_dir
from imapha.maildir.deliver import deliver
from imapha.maildir.fsops import FileSystem
from tests.prereq import need_binary
from tests.server.harness import ImaphaBackend, Raw

USER, PASSWORD = "torture", "torture-pw"
USERS = {USER: PASSWORD}
DURATION = 12.0


def _message(mid: str, doomed: bool = False) -> bytes:
    extra = b"X-Doomed: yes\r\n" if doomed else b""
    return (b"From: t@example.org\r\nMessage-ID: <" + mid.encode() + b">\r\n" + extra +
            b"Subject: torture\r\n\r\n" + mid.encode() * 20 + b"\r\n")


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.confirmed: set[str] = set()
        self.doomed: set[str] = set()
        self.seen: dict[tuple[str, int], str] = {}
        self.reuse: list[str] = []
        self.errors: list[str] = []

    def see(self, folder: str, uid: int, mid: str) -> None:
        with self.lock:
            old = self.seen.setdefault((folder, uid), mid)
            if old != mid:
                self.reuse.append(f"{folder} UID {uid}: {old} then {mid}")


def _mids(c: Raw) -> dict[int, str]:
    out = {}
    for resp in c.ok("UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"):
        uid = re.search(rb"UID (\d+)", resp)
        mid = re.search(rb"<([^>]+)>", resp)
        if uid and mid:
            out[int(uid[1])] = mid[1].decode()
    return out


def _loop(stop: threading.Event, ledger: Ledger, port: Callable[[], int],
          body: Callable[[Raw, random.Random], None], seed: int) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            with Raw("127.0.0.1", port(), timeout=5) as c:
                c.ok(f"LOGIN {USER} {PASSWORD}")
                while not stop.is_set():
                    body(c, rng)
        except (OSError, ConnectionError, TimeoutError, AssertionError, RuntimeError):
            time.sleep(0.05)  # backend A was killed: reconnect to its new port


@pytest.mark.slow
def test_torture_two_backends_kill_at_random() -> None:
    need_binary("dovecot")
    root = traversable_dir("imapha-torture-")
    mail = root / "mail"
    a = ImaphaBackend(root / "a", USERS, mail, node="a", lmtp=False)
    b = ImaphaBackend(root / "b", USERS, mail, node="b", lmtp=False)
    ledger = Ledger()
    stop = threading.Event()
    counter = iter(range(10**9))
    try:
        b.start()
        a.start()
        with Raw("127.0.0.1", b.imap_port) as setup:
            setup.ok(f"LOGIN {USER} {PASSWORD}")
            setup.ok("CREATE Archive")
        inbox = mail / USER / "Maildir"

        def mta() -> None:
            fs = FileSystem()
            while not stop.is_set():
                mid = f"d{next(counter)}@x"
                deliver(inbox, _message(mid), fs=fs)
                with ledger.lock:
                    ledger.confirmed.add(mid)
                time.sleep(0.02)

        def append(c: Raw, rng: random.Random) -> None:
            doomed = rng.random() < 0.3
            mid = f"a{next(counter)}@x"
            data = _message(mid, doomed)
            tag = c.tag()
            flags = "(\\Deleted) " if doomed else ""
            c.send(f"{tag} APPEND INBOX {flags}{{{len(data)}+}}\r\n".encode() + data + b"\r\n")
            _, tagged = c.collect(tag)
            if b" OK" in tagged:
                with ledger.lock:
                    (ledger.doomed if doomed else ledger.confirmed).add(mid)

        def flag(c: Raw, rng: random.Random) -> None:
            c.ok("SELECT INBOX")
            for _ in range(5):
                flag = rng.choice(["\\Seen", "\\Flagged", "\\Answered", "$Work"])
                sign = rng.choice("+-")
                c.command(f"STORE {rng.randint(1, 50)}:* {sign}FLAGS.SILENT ({flag})")

        def expunge(c: Raw, rng: random.Random) -> None:
            c.ok("SELECT INBOX")
            c.command("EXPUNGE")  # only doomed messages carry \\Deleted
            time.sleep(0.1)

        def move(c: Raw, rng: random.Random) -> None:
            c.ok("SELECT INBOX")
            found = c.ok("UID SEARCH UNDELETED")
            uids = [int(x) for x in b"".join(found).split()[2:] if x.isdigit()]
            if uids:
                pick = ",".join(str(u) for u in rng.sample(uids, min(3, len(uids))))
                c.command(f"UID MOVE {pick} Archive")
            time.sleep(0.05)

        def read(c: Raw, rng: random.Random) -> None:
            for folder in ("INBOX", "Archive"):
                c.ok(f"EXAMINE {folder}")
                for uid, mid in _mids(c).items():
                    ledger.see(folder, uid, mid)
            time.sleep(0.1)

        def port_a() -> int:
            return a.imap_port

        def port_b() -> int:
            return b.imap_port

        threads = [threading.Thread(target=mta, daemon=True)]
        for i, (fn, port) in enumerate([(append, port_a), (append, port_a), (flag, port_a),
                                        (expunge, port_a), (move, port_b), (read, port_b)]):
            threads.append(threading.Thread(target=_loop, args=(stop, ledger, port, fn, i),
                                            daemon=True))
        for t in threads:
            t.start()
        rng = random.Random(99)
        deadline = time.monotonic() + DURATION
        kills = 0
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.7, 1.8))
            a.kill()
            kills += 1
            a.start()
        stop.set()
        for t in threads:
            t.join(timeout=20)
        assert kills >= 4

        # Final state as imapha B sees it (B syncs: new/ gets UIDs too).
        final: dict[str, dict[int, str]] = {}
        with Raw("127.0.0.1", b.imap_port) as c:
            c.ok(f"LOGIN {USER} {PASSWORD}")
            for folder in ("INBOX", "Archive"):
                c.ok(f"SELECT {folder}")
                final[folder] = _mids(c)
                for uid, mid in final[folder].items():
                    ledger.see(folder, uid, mid)
        assert not ledger.reuse, ledger.reuse[:5]
        everywhere = [m for f in final.values() for m in f.values()]
        for folder, view in final.items():
            assert len(set(view.values())) == len(view), f"duplicate in {folder}"
        lost = ledger.confirmed - set(everywhere)
        assert not lost, sorted(lost)[:10]
        assert len(ledger.confirmed) > 100
        assert final["Archive"], "the mover never moved anything"
        for folder in ("", ".Archive"):
            uids = _uidlist(inbox / folder if folder else inbox)
            assert uids == sorted(set(uids))
        a.stop()
        b.stop()
        with DovecotServer(root / "dovecot", USERS, mail) as dv, \
                Raw(dv.listen, dv.imap_port) as d:
            d.ok(f"LOGIN {USER} {PASSWORD}")
            for folder in ("INBOX", "Archive"):
                d.ok(f"SELECT {folder}")
                assert _mids(d) == final[folder]
    finally:
        stop.set()
        a.stop()
        b.stop()
        shutil.rmtree(root, ignore_errors=True)


def _uidlist(maildir: Path) -> list[int]:
    lines = (maildir / "dovecot-uidlist").read_text().splitlines()[1:]
    return [int(line.split()[0]) for line in lines if line.strip()]
