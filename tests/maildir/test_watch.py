"""Change notification: inotify for local changes, the stat poll for other hosts'."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from imapha.maildir.deliver import deliver
from imapha.maildir.mailbox import Mailbox
from imapha.maildir.watch import MaildirWatch, PollState, stamp


def test_poll_state_is_pure() -> None:
    state = PollState()
    a = ((1, 1, 1),)
    b = ((1, 2, 1),)
    assert state.feed(a) is False  # the first stamp is the baseline
    assert state.feed(a) is False
    assert state.feed(b) is True
    assert state.feed(b) is False


def test_inotify_sees_delivery_flag_change_and_uidlist(tmp_path: Path) -> None:
    box = Mailbox(tmp_path / "M", create=True)
    box.sync()
    calls: list[int] = []
    with MaildirWatch(box.path, on_change=lambda: calls.append(threading.get_ident())) as watch:
        assert watch.changed() is False
        deliver(box.path, b"Subject: x\r\n\r\n")
        assert watch.wait(5)
        box.sync()  # moves new -> cur, writes the uidlist
        assert watch.wait(5)
        watch.changed()
        box.store(1, ["\\Seen"])
        assert watch.wait(5)
        # One change may bring several events, some late (watchdog pairs moves
        # across watches after a delay): drain until quiet, a bounded number of times.
        for _ in range(20):
            if not watch.wait(1.0):
                break
        # Dovecot's index files and tmp/ are not changes of the folder's contents.
        (box.path / "dovecot.index.log").write_bytes(b"x")
        (box.path / "tmp" / "scratch").write_bytes(b"x")
        assert watch.wait(0.5) is False
    assert calls and all(c != threading.get_ident() for c in calls)


def test_poll_notices_what_inotify_cannot(tmp_path: Path) -> None:
    """Another NFS client's change only shows in the directory's stat; simulate it by
    changing the folder while no inotify watch exists, then polling."""
    box = Mailbox(tmp_path / "M", create=True)
    watch = MaildirWatch(box.path)
    watch._poll.feed(stamp(box.path))
    assert watch.poll() is False
    deliver(box.path, b"Subject: y\r\n\r\n")
    assert watch.poll() is True and watch.changed() is True
    assert watch.poll() is False and watch.changed() is False
    st = os.stat(box.path / "cur")
    os.utime(box.path / "cur", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert watch.poll() is True
