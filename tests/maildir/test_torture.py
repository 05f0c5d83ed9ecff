"""Torture: concurrent writers on one Maildir, SIGKILLed at random; nothing lost or reused.

Four worker processes (``torture_worker``) deliver, append, flag, expunge and
sync at random while a thread drives a real Dovecot over IMAP on the same
Maildir (append, flag, expunge), and a killer SIGKILLs a random worker every
fraction of a second and starts a fresh one. Afterwards:

* every message whose delivery/append completed and that nobody set out to
  expunge exists, exactly once (no duplicate Message-ID among all files);
* UIDs in ``dovecot-uidlist`` strictly increase, and no UID was ever handed to
  two different messages (every ``(UIDVALIDITY, UID)`` seen by any process, ours
  or Dovecot's APPENDUID, maps to one base name / Message-ID);
* Dovecot, asked over IMAP, sees exactly the same UID -> message map as imapha.
"""

from __future__ import annotations

import imaplib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from imapha.lab.dovecot import DovecotServer
from imapha.maildir.deliver import deliver
from imapha.maildir.mailbox import Mailbox
from imapha.maildir.uidlist import read as read_uidlist
from tests.maildir.dovecot_client import message_ids, session

USER, PASSWORD = "torture", "pw"
WORKERS = 4
DURATION = 14.0
REPO = Path(__file__).resolve().parents[2]
MSGID = re.compile(rb"Message-ID: <([^>]+)>")


def _spawn(maildir: Path, journals: Path, seed: int, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.maildir.torture_worker", str(maildir),
         str(journals / f"w{seed}.log"), str(seed), f"{seconds:.2f}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(journals / f"w{seed}.err", "wb"),
    )


def _dovecot_client(dv: DovecotServer, journal: Path, stop: threading.Event,
                    errors: list[str]) -> None:
    rng = random.Random(7)
    n = 0
    with journal.open("a", buffering=1) as out:
        while not stop.is_set():
            try:
                with session(dv, USER, PASSWORD) as imap:
                    for _ in range(10):
                        n += 1
                        msgid = f"dovecot.{n}@torture"
                        typ, data = imap.append(
                            "INBOX", "(\\Seen)", None,
                            f"Message-ID: <{msgid}>\r\nSubject: d{n}\r\n\r\nhi\r\n".encode())
                        if typ != "OK":
                            errors.append(f"APPEND: {data!r}")
                            continue
                        match = re.search(rb"APPENDUID (\d+) (\d+)", data[0] or b"")
                        out.write(f"D {msgid}\n")
                        if match:
                            out.write(f"A {msgid} {match.group(2).decode()}\n")
                        ids = message_ids(imap)
                        if ids and rng.random() < 0.5:
                            uid = rng.choice(sorted(ids))
                            imap.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)")
                        if ids and rng.random() < 0.2:
                            uid = rng.choice(sorted(ids))
                            out.write(f"X {ids[uid]}\n")
                            imap.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
                            imap.expunge()
            except (imaplib.IMAP4.error, OSError) as exc:
                errors.append(f"dovecot session: {exc!r}")
                time.sleep(0.1)


@pytest.mark.slow
def test_concurrent_writers_with_sigkill(dovecot_dir: Path) -> None:
    journals = dovecot_dir / "journals"
    journals.mkdir()
    with DovecotServer(dovecot_dir / "dv", {USER: PASSWORD}, dovecot_dir / "mail") as dv:
        maildir = dv.maildir(USER)
        Mailbox(maildir, create=True).sync()
        rng = random.Random(os.getpid())
        seed = 0
        deadline = time.monotonic() + DURATION
        workers: list[subprocess.Popen[bytes]] = []
        for _ in range(WORKERS):
            seed += 1
            workers.append(_spawn(maildir, journals, seed, DURATION))
        stop = threading.Event()
        errors: list[str] = []
        client = threading.Thread(target=_dovecot_client,
                                  args=(dv, journals / "dovecot.log", stop, errors))
        client.start()
        kills = 0
        try:
            while time.monotonic() < deadline - 1:
                time.sleep(rng.uniform(0.2, 1.0))
                victim = rng.randrange(len(workers))
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait(10)
                kills += 1
                seed += 1
                workers[victim] = _spawn(maildir, journals, seed,
                                         max(0.5, deadline - time.monotonic()))
        finally:
            stop.set()
            client.join(60)
            for proc in workers:
                try:
                    proc.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        crashed = [p.returncode for p in workers if p.returncode not in (0, -9)]
        stderr = "".join(p.read_text() for p in journals.glob("*.err"))
        assert not crashed, stderr
        assert "Traceback" not in stderr, stderr
        dovecot_errors = [line for line in dv.log_text().splitlines() if "rror" in line]
        assert not errors, (errors[:5], dovecot_errors[:10])

        # -- what the journals promise ------------------------------------------------
        delivered: set[str] = set()
        expunge_intent: set[str] = set()
        uid_to_base: dict[tuple[int, int], set[str]] = defaultdict(set)
        appended: dict[str, int] = {}
        for path in journals.glob("*.log"):
            for line in path.read_text().splitlines():
                kind, *rest = line.split()
                if kind == "D":
                    delivered.add(rest[0])
                elif kind == "A":
                    delivered.add(rest[0])
                    appended[rest[0]] = int(rest[1])
                elif kind == "X":
                    expunge_intent.add(rest[0])
                elif kind == "U":
                    uid_to_base[(int(rest[0]), int(rest[1]))].add(rest[2])

        # -- what is on disk ---------------------------------------------------------
        on_disk: dict[str, int] = defaultdict(int)
        for sub in ("new", "cur"):
            for name in os.listdir(maildir / sub):
                found = MSGID.search((maildir / sub / name).read_bytes())
                assert found, name
                on_disk[found.group(1).decode()] += 1
        duplicates = {m: c for m, c in on_disk.items() if c > 1}
        assert not duplicates
        lost = delivered - expunge_intent - set(on_disk)
        assert not lost, f"{len(lost)} messages lost, e.g. {sorted(lost)[:3]}"

        final = Mailbox(maildir)
        final.sync()
        uids = read_uidlist(final.fs, maildir)
        assert uids is not None
        assert [r.uid for r in uids] == sorted({r.uid for r in uids})
        view: dict[int, str] = {}
        for msg in final.messages():
            found = MSGID.search(final.read(msg.uid))
            assert found
            view[msg.uid] = found.group(1).decode()
        assert sorted(view.values()) == sorted(on_disk)
        # No UID ever named two messages, in any process's view.
        for (validity, uid), bases in uid_to_base.items():
            assert len(bases) == 1, f"UID {uid} (validity {validity}) reused: {bases}"
            if validity == final.uid_validity and uid in view:
                assert final.get(uid).base in bases
        for msgid, uid in appended.items():
            if uid in view:
                assert view[uid] == msgid, f"UID {uid} appended as {msgid}, now {view[uid]}"
        assert {v for v, _ in uid_to_base} == {final.uid_validity}
        assert kills >= 5

        with session(dv, USER, PASSWORD) as imap:
            assert message_ids(imap) == view
        # A locked sync also sweeps temp files the killed workers left behind.
        deliver(maildir, b"Message-ID: <last@torture>\r\n\r\n")
        final.sync()
        host = final.fs.host
        litter = [e for e in os.listdir(maildir) if f".{host}." in e]
        assert not litter
        dv.stop()
        complaints = [line for line in dv.log_text().splitlines()
                      if "Error:" in line or "Panic:" in line or "Warning:" in line]
        Path("/tmp/torture-dovecot-complaints.txt").write_text("\n".join(complaints))
        print(f"torture: {kills} kills, {len(delivered)} delivered, "
              f"{len(expunge_intent)} expunge intents, {len(view)} left, "
              f"next uid {final.next_uid}")
