"""``imapha deliver``: the real command, its sysexits codes, nothing partial in new/."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from imapha.maildir.folders import ensure_maildir
from imapha.maildir.fsops import FileSystem, Perms

REPO = Path(__file__).resolve().parents[2]
MESSAGE = b"From: a@test\r\nTo: alice@test\r\nSubject: hi\r\n\r\nhello\r\n"


def deliver_cmd(*args: str | Path, stdin: bytes = MESSAGE) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "imapha", "deliver", *map(str, args)],
        input=stdin, capture_output=True, timeout=60, cwd=REPO, check=False,
        env={**os.environ, "IMAPHA_CONFIG": "/nonexistent/imapha.toml"},
    )


def files(path: Path) -> list[str]:
    return sorted(os.listdir(path)) if path.is_dir() else []


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ensure_maildir(FileSystem(), tmp_path / "mail" / "alice" / "Maildir", Perms(), folder=False)
    return tmp_path / "mail"


def test_delivers_whole_message_into_new(root: Path) -> None:
    proc = deliver_cmd("--maildir-root", root, "alice")
    assert proc.returncode == 0, proc.stderr
    new = root / "alice" / "Maildir" / "new"
    [name] = files(new)
    assert (new / name).read_bytes() == MESSAGE
    assert f",S={len(MESSAGE)}" in name
    assert files(root / "alice" / "Maildir" / "tmp") == []


def test_unknown_user_is_ex_nouser(root: Path) -> None:
    assert deliver_cmd("--maildir-root", root, "bob").returncode == 67
    assert deliver_cmd("--maildir-root", root, "../alice").returncode == 67
    assert not (root / "bob").exists()


def test_passwd_file_decides_and_creates_the_maildir(root: Path, tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("carol:{SHA512-CRYPT}$6$x$y::::::\n")
    assert deliver_cmd("--maildir-root", root, "--passwd-file", passwd, "dave").returncode == 67
    proc = deliver_cmd("--maildir-root", root, "--passwd-file", passwd, "carol")
    assert proc.returncode == 0, proc.stderr
    assert len(files(root / "carol" / "Maildir" / "new")) == 1
    assert (root / "carol" / "Maildir" / "cur").is_dir()


def test_empty_and_oversized_input_are_ex_dataerr(root: Path) -> None:
    assert deliver_cmd("--maildir-root", root, "alice", stdin=b"").returncode == 65
    big = deliver_cmd("--maildir-root", root, "--max-size", "10", "alice")
    assert big.returncode == 65
    assert files(root / "alice" / "Maildir" / "new") == []


def test_io_error_is_tempfail_with_nothing_partial(root: Path) -> None:
    maildir = root / "alice" / "Maildir"
    (maildir / "new").rmdir()
    (maildir / "new").write_bytes(b"")  # not a directory: the link into new/ fails
    proc = deliver_cmd("--maildir-root", root, "alice")
    assert proc.returncode == 75, proc.stderr
    assert files(maildir / "tmp") == []


def test_lock_timeout_is_tempfail_before_anything_is_written(root: Path) -> None:
    maildir = root / "alice" / "Maildir"
    (maildir / "dovecot-uidlist.lock").write_text("1:some-other-host")
    proc = deliver_cmd("--maildir-root", root, "--assign-uid", "--lock-timeout", "0.3", "alice")
    assert proc.returncode == 75, proc.stderr
    assert files(maildir / "new") == [] and files(maildir / "tmp") == []
    (maildir / "dovecot-uidlist.lock").unlink()
    proc = deliver_cmd("--maildir-root", root, "--assign-uid", "alice")
    assert proc.returncode == 0, proc.stderr
    [name] = files(maildir / "new") + files(maildir / "cur")
    assert f"1 :{name.split(':')[0]}\n" in (maildir / "dovecot-uidlist").read_text()


def test_folders_missing_go_to_inbox_unless_created(root: Path) -> None:
    maildir = root / "alice" / "Maildir"
    assert deliver_cmd("--maildir-root", root, "--folder", "Lists.x", "alice").returncode == 0
    assert len(files(maildir / "new")) == 1
    proc = deliver_cmd("--maildir-root", root, "--folder", "Lists.x", "--create-folder", "alice")
    assert proc.returncode == 0, proc.stderr
    assert len(files(maildir / ".Lists.x" / "new")) == 1
    assert (maildir / ".Lists.x" / "maildirfolder").exists()
    assert deliver_cmd("--maildir-root", root, "--folder", "a/../b", "alice").returncode == 64


def test_root_and_passwd_from_the_config(tmp_path: Path) -> None:
    example = (REPO / "deploy" / "examples" / "lab.toml").read_text()
    root = tmp_path / "mail"
    passwd = tmp_path / "passwd"
    passwd.write_text("erin:{PLAIN}x::::::\n")
    root.mkdir()  # a missing root (NFS not mounted?) is a temporary failure
    config = tmp_path / "imapha.toml"
    text = re.sub(r'(?m)^maildir_root = .*$', f'maildir_root = "{root}"', example)
    text = re.sub(r'(?m)^passwd_file = .*$', f'passwd_file = "{passwd}"', text)
    config.write_text(text)
    proc = deliver_cmd("--config", config, "--node", "a", "erin")
    assert proc.returncode == 0, proc.stderr
    assert len(files(root / "erin" / "Maildir" / "new")) == 1
    assert deliver_cmd("--config", config, "--node", "a", "nobody").returncode == 67
    assert deliver_cmd("--config", tmp_path / "missing.toml", "erin").returncode == 78
