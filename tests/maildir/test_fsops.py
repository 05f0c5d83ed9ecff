"""NFS-sensitive primitives with injected faults: ESTALE, EEXIST-after-success, ENOENT."""

from __future__ import annotations

import errno
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from imapha.maildir.fsops import FileSystem, LockLost, LockTimeout, Perms


def test_estale_is_retried_a_bounded_number_of_times(tmp_path: Path) -> None:
    fs = FileSystem()
    (tmp_path / "f").write_bytes(b"data")
    fault = fs.inject("open", errno.ESTALE, "f", times=3)
    assert fs.retry_estale(lambda: fs.read_file(tmp_path / "f")) == b"data"
    assert fault.fired == 3
    fs.inject("open", errno.ESTALE, "f", times=-1)
    with pytest.raises(OSError) as info:
        fs.retry_estale(lambda: fs.read_file(tmp_path / "f"))
    assert info.value.errno == errno.ESTALE


def test_link_eexist_after_success_counts_as_success(tmp_path: Path) -> None:
    fs = FileSystem()
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"m")
    fs.inject("link", errno.EEXIST, "dst", after=True)
    fs.safe_link(src, dst)  # the lost-reply case: no error
    assert dst.read_bytes() == b"m" and os.stat(src).st_nlink == 2


def test_link_onto_someone_elses_file_is_a_real_eexist(tmp_path: Path) -> None:
    fs = FileSystem()
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(b"mine")
    dst.write_bytes(b"theirs")
    with pytest.raises(FileExistsError):
        fs.safe_link(src, dst)
    assert dst.read_bytes() == b"theirs"


def test_write_atomic_leaves_old_content_when_rename_fails(tmp_path: Path) -> None:
    fs = FileSystem()
    target = tmp_path / "list"
    target.write_bytes(b"old")
    fs.inject("rename", errno.EIO, "list")
    with pytest.raises(OSError):
        fs.write_atomic(target, b"new", Perms())
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["list"]  # no temp file left behind
    fs.write_atomic(target, b"new", Perms(file_mode=0o640))
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o640


def test_write_new_failure_removes_the_partial_file(tmp_path: Path) -> None:
    fs = FileSystem()
    fs.inject("fsync", errno.EIO, "msg")
    with pytest.raises(OSError):
        fs.write_new(tmp_path / "msg", b"x" * 1000, Perms())
    assert not (tmp_path / "msg").exists()


def test_dotlock_excludes_and_times_out(tmp_path: Path) -> None:
    fs = FileSystem()
    target = tmp_path / "dovecot-uidlist"
    with fs.dotlock(target) as lock:
        lock_file = tmp_path / "dovecot-uidlist.lock"
        assert lock_file.read_text() == f"{os.getpid()}:{fs.host}"
        started = time.monotonic()
        with pytest.raises(LockTimeout):
            fs.dotlock(target, timeout=0.3).acquire()
        assert 0.25 < time.monotonic() - started < 3
        lock.verify()
    assert not (tmp_path / "dovecot-uidlist.lock").exists()
    assert sorted(os.listdir(tmp_path)) == []


def _hold_forever(path: str) -> None:
    FileSystem().dotlock(Path(path)).acquire()
    time.sleep(60)


def test_lock_of_a_dead_local_process_is_taken_over_at_once(tmp_path: Path) -> None:
    target = tmp_path / "dovecot-uidlist"
    proc = multiprocessing.get_context("fork").Process(target=_hold_forever, args=(str(target),))
    proc.start()
    try:
        deadline = time.monotonic() + 10
        while not (tmp_path / "dovecot-uidlist.lock").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid or 0, 9)
        proc.join(5)
        lock = FileSystem().dotlock(target, timeout=2)
        lock.acquire()
        assert lock.took_over_stale == 1
        lock.release()
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def test_old_lock_of_another_host_is_stale_after_120_s_only(tmp_path: Path) -> None:
    target = tmp_path / "dovecot-uidlist"
    lock_file = tmp_path / "dovecot-uidlist.lock"
    lock_file.write_text("4242:otherhost")
    with pytest.raises(LockTimeout):
        FileSystem().dotlock(target, timeout=0.2).acquire()
    old = time.time() - 121
    os.utime(lock_file, (old, old))
    lock = FileSystem().dotlock(target, timeout=1)
    lock.acquire()
    assert lock.took_over_stale == 1 and lock_file.read_text().endswith(lock.fs.host)
    lock.release()


def test_refresh_keeps_the_lock_fresh_and_loss_is_detected(tmp_path: Path) -> None:
    fs = FileSystem()
    lock = fs.dotlock(tmp_path / "f", stale_after=120)
    lock.acquire()
    lock_file = tmp_path / "f.lock"
    before = lock_file.stat().st_mtime_ns
    time.sleep(0.02)
    lock.refresh(every=0)
    assert lock_file.stat().st_mtime_ns > before
    lock.verify()
    # Someone judged us stale and took over: we must notice before committing.
    lock_file.unlink()
    lock_file.write_text("1:elsewhere")
    with pytest.raises(LockLost):
        lock.verify()
    lock.release()  # does not remove their lock
    assert lock_file.read_text() == "1:elsewhere"


def test_perms_follow_the_maildir_directory(tmp_path: Path) -> None:
    box = tmp_path / "box"
    box.mkdir()
    box.chmod(0o750)
    perms = Perms.from_dir(box / "not" / "yet")
    assert perms.file_mode == 0o640 and perms.dir_mode & 0o777 == 0o750
    if os.geteuid() == 0:
        os.chown(box, 8, 8)
        perms = Perms.from_dir(box)
        assert (perms.uid, perms.gid) == (8, 8)
        FileSystem().write_new(box / "m", b"x", perms)
        st = (box / "m").stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (8, 8, 0o640)


def test_litter_of_dead_processes_is_removed(tmp_path: Path) -> None:
    fs = FileSystem(host="h.example")
    dead = multiprocessing.get_context("fork").Process(target=lambda: None)
    dead.start()
    dead.join(5)
    names = {
        f"dovecot-uidlist.h.example.{dead.pid}.ab12": False,        # dead, ours: removed
        f"dovecot-uidlist.lock.h.example.{dead.pid}.ff": False,     # dead, ours: removed
        f"dovecot-uidlist.h.example.{os.getpid()}.ab12": True,      # alive
        f"dovecot-uidlist.other.host.{dead.pid}.ab12": True,        # other host, recent
        "dovecot-uidlist": True,
        "dovecot-uidlist.lock": True,
        "dovecot.index.log": True,
    }
    for name in names:
        (tmp_path / name).write_bytes(b"")
    old = time.time() - 7200
    (tmp_path / "dovecot-keywords.far.away.1.aa").write_bytes(b"")
    os.utime(tmp_path / "dovecot-keywords.far.away.1.aa", (old, old))
    removed = fs.remove_litter(tmp_path, ("dovecot-uidlist", "dovecot-uidlist.lock",
                                          "dovecot-keywords"))
    assert removed == 3
    assert sorted(os.listdir(tmp_path)) == sorted(n for n, keep in names.items() if keep)


def test_follow_finds_a_renamed_file_and_gives_up_when_it_is_gone(tmp_path: Path) -> None:
    fs = FileSystem()
    old, new = tmp_path / "m:2,", tmp_path / "m:2,S"
    old.write_bytes(b"body")
    os.rename(old, new)  # another writer set \Seen after we listed the directory
    lookups: list[int] = []

    def relookup() -> Path | None:
        lookups.append(1)
        return new if new.exists() else None

    assert fs.follow(old, fs.read_file, relookup) == b"body"
    assert len(lookups) == 1
    new.unlink()
    with pytest.raises(FileNotFoundError):
        fs.follow(old, fs.read_file, relookup)
    # A file that keeps moving: bounded, then ENOENT.
    fs.inject("open", errno.ENOENT, "", times=-1)
    with pytest.raises(FileNotFoundError):
        fs.follow(old, fs.read_file, lambda: old)
