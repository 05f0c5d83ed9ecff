"""The systemd units in deploy/ are valid and run the daemons as designed."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from tests.prereq import need_binary

UNITS = sorted((Path(__file__).resolve().parent.parent / "deploy" / "systemd").glob("*.service"))
ROLE_CAPS = {
    "imapha-proxy.service": {"CAP_NET_BIND_SERVICE"},
    "imapha-backend.service": set(),
    "imapha-vipd.service": {"CAP_NET_ADMIN", "CAP_NET_RAW"},
    "imapha-dhcp.service": {"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"},
}


def _unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def test_every_role_has_a_unit() -> None:
    assert {u.name for u in UNITS} == set(ROLE_CAPS)


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_unit_is_notify_with_least_privilege(path: Path) -> None:
    unit = _unit(path)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    caps = set(service.get("CapabilityBoundingSet", "").split())
    assert caps == ROLE_CAPS[path.name]
    assert set(service.get("AmbientCapabilities", "").split()) <= caps
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["User"] != "root"


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_unit_passes_systemd_analyze(path: Path, tmp_path: Path) -> None:
    analyze = need_binary("systemd-analyze")
    imapha = Path(sys.executable).parent / "imapha"
    assert imapha.exists(), "the imapha console script is installed with the package"
    local = tmp_path / path.name
    local.write_text(path.read_text().replace("/usr/bin/imapha", str(imapha)))
    result = subprocess.run(
        [analyze, "verify", str(local)], capture_output=True, text=True, timeout=60, check=False
    )
    problems = [
        line for line in (result.stdout + result.stderr).splitlines()
        if path.name in line and "RequiresMountsFor" not in line
    ]
    assert not problems, problems
