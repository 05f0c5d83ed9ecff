"""One torture worker: random store operations on one Maildir, journaled for the checker.

Run as ``python -m tests.maildir.torture_worker MAILDIR JOURNAL SEED SECONDS``. The
test SIGKILLs workers at random moments, so every claim is written to the journal
(O_APPEND, one ``write`` per line) only after it is true, and every expunge is
announced before it is tried:

``D <msgid>``           delivered (tmp -> new), must exist unless expunged
``A <msgid> <uid>``     appended with that UID
``U <validity> <uid> <base>``  a UID this process was handed by sync
``X <msgid>``           about to expunge it (it may or may not be gone afterwards)
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import sys
import time
from pathlib import Path

from imapha.maildir.deliver import deliver
from imapha.maildir.mailbox import Mailbox, MessageExpunged, StoreMode

FLAGS = ["\\Seen", "\\Flagged", "\\Answered", "\\Draft"]
KEYWORDS = ["work", "home", "$Label1"]
MSGID = re.compile(rb"Message-ID: <([^>]+)>")


def main() -> int:
    maildir, journal, seed, seconds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(
        sys.argv[4])
    rng = random.Random(seed)
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    box = Mailbox(maildir, lock_timeout=60)
    counter = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        op = rng.random()
        counter += 1
        msgid = f"{seed}.{os.getpid()}.{counter}@torture"
        filler = "x" * rng.randint(0, 3000)
        body = f"Message-ID: <{msgid}>\r\nSubject: {counter}\r\n\r\n{filler}\r\n"
        if op < 0.30:
            deliver(maildir, body.encode())
            note(f"D {msgid}")
        elif op < 0.45:
            flags = rng.sample(FLAGS, rng.randint(0, 2))
            uid = box.append(body.encode(), flags, rng.sample(KEYWORDS, rng.randint(0, 1)))
            note(f"A {msgid} {uid}")
        elif op < 0.75:
            result = box.sync()
            for msg in result.added:
                note(f"U {result.uid_validity} {msg.uid} {msg.base}")
        elif op < 0.90:
            view = box.messages()
            if view:
                msg = rng.choice(view)
                mode = rng.choice(list(StoreMode))
                with contextlib.suppress(MessageExpunged):
                    box.store(msg.uid, rng.sample(FLAGS, rng.randint(0, 2)),
                              rng.sample(KEYWORDS, rng.randint(0, 1)), mode)
        else:
            view = box.messages()
            if view:
                msg = rng.choice(view)
                try:
                    found = MSGID.search(box.read(msg.uid))
                except MessageExpunged:
                    continue
                if found:
                    note(f"X {found.group(1).decode()}")
                    box.expunge([msg.uid])
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
