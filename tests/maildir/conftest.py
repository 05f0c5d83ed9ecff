"""Fixtures of the Maildir tests: a directory Dovecot's mail user can reach."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapha.lab.dovecot import traversable_dir
from tests.prereq import need_binary


@pytest.fixture
def dovecot_dir() -> Iterator[Path]:
    """A fresh /tmp directory usable as a DovecotServer root (removed afterwards)."""
    need_binary("dovecot")
    need_binary("doveadm")
    path = traversable_dir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
