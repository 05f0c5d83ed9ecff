"""A node's effective config as text (TOML) or plain data (JSON).

Theory of operation
-------------------
``check-config`` shows what a node will really run with: defaults filled in,
overrides merged, placeholders substituted, paths made absolute. The text form
is TOML that :func:`imapha.config.loads_config` reads back (one node per
document; ``None`` prints as ``""``, which every optional key reads as unset),
durations and sizes in their canonical units. Secrets (fields marked
``secret``) print as ``"***"`` in both forms, and so do passwords in URLs
(``postgresql://dhcp:***@db/leases``).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from imapha.config.convert import kind_of, mask_url, spec_fields
from imapha.config.model import SECTION_OF_ROLE, ClusterConfig, NodeConfig
from imapha.config.units import HostPort, format_duration, format_size

MASK = "***"
_SCALARS = (str, Path, HostPort, ipaddress.IPv4Address, ipaddress.IPv6Address,
            ipaddress.IPv4Interface, ipaddress.IPv6Interface,
            ipaddress.IPv4Network, ipaddress.IPv6Network)


def _fields(obj: Any) -> list[tuple[str, Any, str, bool]]:
    """(name, value, kind, secret) of a section dataclass, in schema order."""
    specs = spec_fields(type(obj))
    out = []
    for f in fields(obj):
        spec = specs.get(f.name)
        kind = kind_of(spec.metadata["conv"]) if spec else ""
        secret = bool(spec.metadata["secret"]) if spec else False
        out.append((f.name, getattr(obj, f.name), kind, secret))
    return out


# -- plain data (JSON) ---------------------------------------------------------------------
def plain(value: Any, secret: bool = False) -> Any:
    """JSON-ready data: seconds and bytes as numbers, endpoints and paths as strings."""
    if secret:
        return MASK if value else value
    if isinstance(value, _SCALARS):
        return mask_url(str(value))
    if is_dataclass(value) and not isinstance(value, type):
        if spec_fields(type(value)):
            return {name: plain(v, s) for name, v, _, s in _fields(value)}
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


def node_plain(config: ClusterConfig, node: NodeConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": node.name,
        "address": str(node.address),
        "interface": node.interface,
        "run_dir": str(node.run_dir),
        "state_dir": str(node.state_dir),
        "roles": list(node.roles),
        "vips": [
            {**plain(vip), "interface": vip.interface_for(node),
             "priority": vip.priority_for(node.name)}
            for vip in config.vips
        ],
        "backends": plain(config.backends),
    }
    for role in node.roles:
        section = SECTION_OF_ROLE[role]
        out[section] = plain(getattr(node, section))
    return out


def config_json(config: ClusterConfig, node: str | None = None) -> str:
    names = [node] if node is not None else list(config.nodes)
    doc = {
        "file": str(config.path),
        "cluster": config.name,
        "nodes": {n: node_plain(config, config.node(n)) for n in names},
    }
    return json.dumps(doc, indent=2)


# -- TOML text -----------------------------------------------------------------------------
def _toml(value: Any, kind: str = "", secret: bool = False) -> str:
    if secret and value:
        return json.dumps(MASK)
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "duration":
        return json.dumps(format_duration(value))
    if kind == "size":
        return json.dumps(format_size(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, _SCALARS):
        return json.dumps(mask_url(str(value)), ensure_ascii=False)
    if is_dataclass(value) and not isinstance(value, type):
        if not spec_fields(type(value)):  # e.g. a DHCP pool: its text form
            return json.dumps(str(value))
        inner = ", ".join(f"{n} = {_toml(v, k, s)}" for n, v, k, s in _fields(value))
        return "{ " + inner + " }"
    if isinstance(value, tuple | list):
        items = [_toml(v) for v in value]
        if value and is_dataclass(value[0]) and spec_fields(type(value[0])):
            return "[\n" + "".join(f"  {item},\n" for item in items) + "]"
        return "[" + ", ".join(items) + "]"
    return json.dumps(str(value))


def _table(header: str, obj: Any, skip: tuple[str, ...] = (),
           notes: dict[str, str] | None = None) -> list[str]:
    lines = [header]
    for name, value, kind, secret in _fields(obj):
        if name in skip:
            continue
        note = f"  # {notes[name]}" if notes and name in notes else ""
        lines.append(f"{name} = {_toml(value, kind, secret)}{note}")
    return [*lines, ""]


def node_toml(config: ClusterConfig, node: NodeConfig) -> str:
    out = [
        f"# effective config of node {node.name!r} of cluster {config.name!r}",
        f"# from {config.path}; roles: {', '.join(node.roles)}",
        "[cluster]",
        f"name = {json.dumps(config.name)}",
        "",
        f"[nodes.{node.name}]",
        f"address = {json.dumps(str(node.address))}",
        f"interface = {json.dumps(node.interface)}",
        f"run_dir = {json.dumps(str(node.run_dir))}",
        f"state_dir = {json.dumps(str(node.state_dir))}",
        "",
    ]
    for vip in config.vips:
        role = "home" if vip.home == node.name else f"backup, home is {vip.home}"
        shown = replace(vip, interface=vip.interface_for(node))
        notes = {"priority": f"this node: {vip.priority_for(node.name)} ({role})"}
        if vip.interface is None:
            notes["interface"] = "the node's interface"
        out += _table("[[vips]]", shown, notes=notes)
    out += _table("[vrrp]", node.vrrp)
    out += _table("[proxy]", node.proxy)
    for backend in config.backends:
        out += _table("[[backends]]", backend)
    if "backend" in node.roles:
        out += _table("[backend]", node.backend)
    if node.dhcp is not None:
        out += _table("[dhcp]", node.dhcp, skip=("subnets",))
        for subnet in node.dhcp.subnets:
            out += _table("[[dhcp.subnets]]", subnet)
    return "\n".join(out)


def config_toml(config: ClusterConfig, node: str | None = None) -> str:
    names = [node] if node is not None else list(config.nodes)
    return "\n".join(node_toml(config, config.node(n)) for n in names)
