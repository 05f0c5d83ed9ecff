"""Change notification: inotify for local changes, the stat poll for other hosts'."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
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
        # One change may bring several events: drain until quiet, a bounded number
        # of times.
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


def test_a_delivery_after_a_move_to_cur_is_noticed_at_once(tmp_path: Path) -> None:
    # watchdog held each new/ -> cur/ move for pairing and queued later events
    # behind it (~200-500 ms); IDLE pushes must not wait for that.
    import statistics
    import time

    box = Mailbox(tmp_path / "M", create=True)
    latencies = []
    with MaildirWatch(box.path) as watch:
        for i in range(5):
            box.sync()  # moves the last delivery to cur/
            for _ in range(20):  # drain the sync's own events
                if not watch.wait(0.05):
                    break
            start = time.monotonic()
            deliver(box.path, b"Subject: %d\r\n\r\n" % i)
            assert watch.wait(5)
            latencies.append(time.monotonic() - start)
    assert statistics.median(latencies) < 0.1, latencies


def test_hub_shares_a_directory_and_reports_its_removal(tmp_path: Path) -> None:
    import shutil

    from imapha.maildir.inotify import IN_CREATE, IN_SELF, InotifyHub

    seen_a: list[str] = []
    seen_b: list[str] = []
    a_done, b_done = threading.Event(), threading.Event()
    hub = InotifyHub().start()
    try:
        (tmp_path / "d").mkdir()
        def recorder(seen: list[str], done: threading.Event) -> Callable[[str], None]:
            def record(name: str) -> None:
                seen.append(name)
                done.set()
            return record

        ta = hub.add(tmp_path / "d", IN_CREATE | IN_SELF, recorder(seen_a, a_done))
        hub.add(tmp_path / "d", IN_CREATE | IN_SELF, recorder(seen_b, b_done))
        (tmp_path / "d" / "one").write_bytes(b"")
        assert a_done.wait(5) and b_done.wait(5)
        assert seen_a == ["one"] and seen_b == ["one"]
        hub.remove(ta)
        b_done.clear()
        (tmp_path / "d" / "two").write_bytes(b"")
        assert b_done.wait(5) and seen_b == ["one", "two"] and seen_a == ["one"]
        b_done.clear()
        shutil.rmtree(tmp_path / "d")
        assert b_done.wait(5) and "" in seen_b  # the directory itself went away
    finally:
        hub.stop()
