"""The one way tests state prerequisites: skip here, a failure under CI=true."""

from __future__ import annotations

import os
import shutil

import pytest

SBIN = ["/usr/sbin", "/sbin", "/usr/local/sbin"]


def need_binary(*names: str) -> str:
    """Return the path of the first binary found, or skip (fail under CI)."""
    for name in names:
        path = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
        if path:
            return path
    pytest.skip(f"prerequisite missing: none of {', '.join(names)} is installed")


def need_root() -> None:
    """Skip (fail under CI) unless running as root, as network namespaces need."""
    if os.geteuid() != 0:
        pytest.skip("prerequisite missing: root is needed for network namespaces")
