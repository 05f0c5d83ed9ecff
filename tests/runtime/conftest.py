"""Fixtures of the runtime tests: a short temp dir, a config, and daemon processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.helpers import Daemons, write_config
from tests.support import short_tmp


@pytest.fixture
def root() -> Iterator[Path]:
    with short_tmp() as path:
        yield path


@pytest.fixture
def config(root: Path) -> Path:
    return write_config(root)


@pytest.fixture
def daemons(root: Path) -> Iterator[Daemons]:
    started = Daemons(root)
    try:
        yield started
    finally:
        started.close()
