"""pytest fixtures for lab tests: ``lab`` and ``two_node_lab``.

Load with ``pytest_plugins = ["imapha.lab.fixtures"]`` in a conftest (the
project's tests/conftest.py does) or ``pytest -p imapha.lab.fixtures``.

A missing prerequisite (not root, no ``ip``) skips the test with a reason
starting "prerequisite missing:", the same rule as ``tests.prereq``; the
suite's hook turns such skips into failures under ``CI=true``.  Each lab is
torn down after its test whatever the outcome, and its logs live under the
test's ``tmp_path`` so a failed test's daemon output can be read afterwards.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imapha.lab.topology import Host, Lab

SBIN = ["/usr/sbin", "/sbin", "/usr/local/sbin"]


def need_lab_prerequisites() -> None:
    """Skip (a failure under CI) unless this machine can build a lab."""
    if os.geteuid() != 0:
        pytest.skip("prerequisite missing: root is needed for network namespaces")
    for tool, package in (("ip", "iproute2"), ("nft", "nftables"), ("ping", "iputils-ping")):
        if not (shutil.which(tool) or shutil.which(tool, path=os.pathsep.join(SBIN))):
            pytest.skip(f"prerequisite missing: {tool} (Debian package {package})")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """A fresh, empty Lab (switch namespace only), torn down after the test."""
    need_lab_prerequisites()
    with Lab(workdir=tmp_path / "lab") as fresh:
        yield fresh


@dataclass(frozen=True)
class TwoNodeLab:
    """Hosts ``a`` (192.0.2.11) and ``b`` (192.0.2.12) and client ``c`` (192.0.2.100)."""

    lab: Lab
    a: Host
    b: Host
    client: Host


@pytest.fixture
def two_node_lab(lab: Lab) -> TwoNodeLab:
    """The usual cluster shape: two servers and one client on 192.0.2.0/24."""
    return TwoNodeLab(
        lab=lab,
        a=lab.add_host("a", ["192.0.2.11/24"]),
        b=lab.add_host("b", ["192.0.2.12/24"]),
        client=lab.add_client("c", ["192.0.2.100/24"]),
    )
