"""docs/config.md documents exactly the schema: every key, its default, its reload class."""

from __future__ import annotations

import json
import re
from dataclasses import MISSING
from pathlib import Path

import pytest

from imapha.config import RELOADABLE
from imapha.config import model as m
from imapha.config.convert import spec_fields

DOC = Path(__file__).resolve().parents[2] / "docs" / "config.md"

# doc table -> (schema class, RELOADABLE section, key of that section holding the table)
TABLES: dict[str, tuple[type, str, str | None]] = {
    "cluster": (m.ClusterSection, "cluster", None),
    "nodes": (m.NodeSection, "nodes", None),
    "vips": (m.VipConfig, "vips", None),
    "vrrp": (m.VrrpConfig, "vrrp", None),
    "vrrp.hooks": (m.Hooks, "vrrp", "hooks"),
    "vrrp.track_scripts": (m.TrackScript, "vrrp", "track_scripts"),
    "vrrp.track_files": (m.TrackFile, "vrrp", "track_files"),
    "proxy": (m.ProxyConfig, "proxy", None),
    "backends": (m.BackendRef, "backends", None),
    "backend": (m.BackendConfig, "backend", None),
    "dhcp": (m.DhcpConfig, "dhcp", None),
    "dhcp.subnets": (m.DhcpSubnet, "dhcp", "subnets"),
}


def _tables() -> dict[str, list[list[str]]]:
    tables: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in DOC.read_text().splitlines():
        marker = re.fullmatch(r"<!-- keys: (\S+) -->", line)
        if marker:
            current = tables.setdefault(marker.group(1), [])
        elif current is not None and line.startswith("| `"):
            current.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif current is not None and line and not line.startswith("|"):
            current = None
    return tables


def _default(raw: object) -> str:
    if raw is MISSING:
        return "**required**"
    if raw is None:
        return "unset"
    if isinstance(raw, bool):
        return "`true`" if raw else "`false`"
    if raw == {}:
        return "`{}`"
    return f"`{json.dumps(raw)}`"


def test_every_table_is_documented() -> None:
    assert set(_tables()) == set(TABLES)


@pytest.mark.parametrize("table", list(TABLES))
def test_table_matches_schema(table: str) -> None:
    cls, section, parent = TABLES[table]
    rows = _tables()[table]
    documented = [row[0].strip("`") for row in rows]
    assert documented == list(spec_fields(cls)), "same keys, in schema order"
    for row, (name, field) in zip(rows, spec_fields(cls).items(), strict=True):
        assert row[2] == _default(field.metadata["default"]), name
        live = (parent or name) in RELOADABLE[section]
        assert row[3] == ("yes" if live else "restart"), name
        assert row[4], f"{name} has no meaning"
