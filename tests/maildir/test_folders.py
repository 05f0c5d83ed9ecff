"""Maildir++ folders: modified UTF-7, path safety, the marker, subscriptions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imapha.maildir.folders import (
    FolderError,
    Folders,
    decode_mutf7,
    encode_mutf7,
    ensure_maildir,
    folder_dirname,
)
from imapha.maildir.fsops import FileSystem, Perms


def test_rfc3501_examples() -> None:
    # RFC 3501 §5.1.3: "~peter/mail/台北/日本語"
    assert encode_mutf7("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e") == (
        "~peter/mail/&U,BTFw-/&ZeVnLIqe-")
    assert decode_mutf7("&U,BTFw-") == "\u53f0\u5317"
    assert encode_mutf7("A&B") == "A&-B"
    assert encode_mutf7("Entw\u00fcrfe") == "Entw&APw-rfe"  # as Dovecot stores it


@given(st.text(max_size=40))
def test_mutf7_round_trip(text: str) -> None:
    encoded = encode_mutf7(text)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    assert decode_mutf7(encoded) == text


@pytest.mark.parametrize("bad", ["&", "&Jjo", "&AGE-", "&Jjo!-", "\u00e9", "&U,BTFw-&U,BTFw-x"])
def test_non_canonical_or_broken_mutf7_is_refused(bad: str) -> None:
    if bad == "&U,BTFw-&U,BTFw-x":
        # two adjacent shifts must be one: non-canonical
        with pytest.raises(FolderError):
            decode_mutf7(bad)
        return
    with pytest.raises(FolderError):
        decode_mutf7(bad)


@pytest.mark.parametrize("name", [
    "", "A..B", ".A", "A.", "a/b", "x\0y", "x\ny", "back\\slash", "x" * 300,
])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(FolderError):
        folder_dirname(name)


def test_dirname_uses_dots_and_mutf7() -> None:
    assert folder_dirname("Lists.python") == ".Lists.python"
    assert folder_dirname("Entw\u00fcrfe") == ".Entw&APw-rfe"


def test_create_list_delete_rename(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    ensure_maildir(FileSystem(), root, Perms(), folder=False)
    folders = Folders.open(root)
    folders.create("Sent")
    folders.create("Lists")
    folders.create("Lists.python")
    folders.create("Entw\u00fcrfe")
    assert (root / ".Lists.python" / "maildirfolder").is_file()
    assert all((root / ".Sent" / d).is_dir() for d in ("cur", "new", "tmp"))
    assert folders.names() == ["INBOX", "Entw\u00fcrfe", "Lists", "Lists.python", "Sent"]
    with pytest.raises(FolderError):
        folders.create("Sent")
    folders.rename("Lists", "Archive")
    assert folders.names() == ["INBOX", "Archive", "Archive.python", "Entw\u00fcrfe", "Sent"]
    folders.delete("Archive.python")
    assert "Archive.python" not in folders.names()
    assert not any(e.startswith("..") for e in os.listdir(root))
    with pytest.raises(FolderError):
        folders.delete("INBOX")


def test_planted_symlinks_are_not_folders(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    ensure_maildir(FileSystem(), root, Perms(), folder=False)
    outside = tmp_path / "outside"
    ensure_maildir(FileSystem(), outside, Perms(), folder=True)
    (root / ".Evil").symlink_to(outside)
    folders = Folders.open(root)
    assert folders.names() == ["INBOX"]
    assert not folders.exists("Evil")
    victim = tmp_path / "victim"
    victim.mkdir()
    (root / ".Trap").mkdir()
    (root / ".Trap" / "cur").symlink_to(victim)
    with pytest.raises(FolderError, match="symlink"):
        ensure_maildir(FileSystem(), root / ".Trap", Perms(), folder=True)


def test_subscriptions_use_dovecots_format(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    ensure_maildir(FileSystem(), root, Perms(), folder=False)
    folders = Folders.open(root)
    folders.subscribe("A")
    folders.subscribe("A.B")
    folders.subscribe("Entw\u00fcrfe")
    folders.subscribe("A")  # twice: once in the file
    # Byte for byte what Dovecot 2.3 wrote for the same subscriptions.
    assert (root / "subscriptions").read_text() == "V\t2\n\nA\nA\tB\nEntw&APw-rfe\n"
    folders.unsubscribe("A")
    assert folders.subscriptions() == ["A.B", "Entw\u00fcrfe"]
    assert not (root / "subscriptions.lock").exists()
