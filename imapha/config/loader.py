"""``load_config``: a TOML file in, a :class:`ClusterConfig` or every issue out.

Theory of operation
-------------------
1. Read and parse with ``tomllib``; a syntax error becomes one issue with the
   line tomllib names. Then index every key's line (:mod:`.lines`).
2. Convert the global parts once: ``[cluster]``, ``[[vips]]``, ``[[backends]]``.
3. For each node, merge ``[nodes.N.SECTION]`` over ``[SECTION]`` key by key
   (an override replaces the whole value of its key, tables included), then
   convert with the node's placeholders: ``{node}``, ``{run_dir}``,
   ``{state_dir}``. Each merged key remembers where it was written, so a bad
   override is reported at the override's line. The same base problem seen by
   every node is reported once.
4. Cross-check what no single key can: see :mod:`.checks`.
Any issue anywhere raises :class:`ConfigError` with all of them.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from imapha.config import checks
from imapha.config import convert as c
from imapha.config.issues import ConfigError, ConfigIssue
from imapha.config.lines import index_lines
from imapha.config.model import (
    ROLES,
    SECTIONS,
    BackendRef,
    ClusterConfig,
    ClusterSection,
    NodeConfig,
    NodeSection,
    VipConfig,
)

T = TypeVar("T")
TOP_LEVEL = ("cluster", "nodes", "vips", "vrrp", "proxy", "backends", "backend", "dhcp")
NODE_KEYS = tuple(c.spec_fields(NodeSection))
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def load_config(path: str | Path) -> ClusterConfig:
    """Load and validate the cluster config; :class:`ConfigError` lists every issue."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        issue = ConfigIssue(str(path), None, "", f"cannot read: {exc.strerror}")
        raise ConfigError([issue]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError([ConfigIssue(str(path), line, "", "not UTF-8 text")]) from None
    return loads_config(text, path=path)


def loads_config(text: str, *, path: str | Path = "<string>") -> ClusterConfig:
    """Like :func:`load_config` for text; relative paths resolve against ``path``'s folder."""
    path = Path(path)
    file = str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = _TOML_POSITION.search(message)
        line = int(m.group(1)) if m else None
        if m:
            message = f"{message[: m.start()]} (column {m.group(2)})"
        raise ConfigError([ConfigIssue(file, line, "", f"TOML syntax error: {message}")]) from None
    ctx = c.Context(
        file=file,
        base_dir=path.parent.absolute(),
        lines=index_lines(text),
        issues=[],
        section_keys={s: frozenset(c.spec_fields(cls)) for s, cls in SECTIONS.items()},
    )
    config = _build(raw, ctx, path)
    if ctx.issues or config is None:
        raise ConfigError(ctx.issues)
    return config


def _table(raw: Mapping[str, Any], key: str, ctx: c.Context) -> dict[str, Any]:
    value = raw.get(key, {})
    if isinstance(value, dict):
        return value
    ctx.report((key,), f"expected a table ([{key}]), got {c.show(value)}")
    return {}


def _array_of_tables(raw: Mapping[str, Any], key: str, ctx: c.Context) -> list[Any]:
    value = raw.get(key, [])
    if isinstance(value, list):
        return value
    ctx.report((key,), f"expected an array of tables ([[{key}]]), got {c.show(value)}")
    return []


def _build(raw: dict[str, Any], ctx: c.Context, path: Path) -> ClusterConfig | None:
    top = c.At(ctx, (), {})
    for key in raw:
        if key not in TOP_LEVEL:
            hint = c.suggest(key, TOP_LEVEL)
            if not hint:
                homes = [s for s, keys in ctx.section_keys.items() if key in keys]
                hint = f"; {key!r} belongs in [{homes[0]}]" if homes else ""
            ctx.report((key,), f"unknown section or key{hint}")

    raw_cluster = _table(raw, "cluster", ctx)
    cluster = _try(lambda: c.build(ClusterSection, raw_cluster, top.sub("cluster")))
    vips = _try(lambda: c.array_of(c.table(VipConfig))(_array_of_tables(raw, "vips", ctx),
                                                       top.sub("vips")))
    backends = _try(lambda: c.array_of(c.table(BackendRef))(
        _array_of_tables(raw, "backends", ctx), top.sub("backends")))
    sections = {s: _table(raw, s, ctx) for s in SECTIONS}
    raw_nodes = _table(raw, "nodes", ctx)
    if not raw_nodes:
        if ("nodes",) not in ctx.lines:
            ctx.report((), "no nodes: add a [nodes.NAME] table for each host")
        # No node to see the sections through: still check their keys once.
        nobody = c.At(ctx, (), {"node": "NODE", "run_dir": "/run", "state_dir": "/state"})
        for section, cls in SECTIONS.items():
            if section in raw:
                with contextlib.suppress(c.Reported):
                    c.build(cls, sections[section], nobody.sub(section), section=section)

    # Nodes are built even when [cluster] is wrong, to report their issues too.
    dirs = cluster or _fallback_cluster(raw_cluster)
    nodes: dict[str, NodeConfig] = {}
    for name, raw_node in raw_nodes.items():
        node = _node(name, raw_node, dirs, sections=sections, raw=raw, ctx=ctx)
        if node is not None:
            nodes[name] = node

    config = ClusterConfig(
        path=path,
        name=cluster.name if cluster is not None else "",
        nodes=MappingProxyType(nodes),
        vips=vips or (),
        backends=backends or (),
    )
    # Cross-check what did convert, so one round reports as much as it can.
    checks.check(config, raw_nodes, ctx, backends_known=backends is not None)
    if cluster is None or vips is None or backends is None or len(nodes) != len(raw_nodes):
        return None
    return config


def _try(make: Callable[[], T]) -> T | None:
    """``make()``, or None if it reported issues."""
    try:
        return make()
    except c.Reported:
        return None


def _node(name: str, raw_node: object, cluster: ClusterSection, *,
          sections: Mapping[str, dict[str, Any]], raw: Mapping[str, Any],
          ctx: c.Context) -> NodeConfig | None:
    here: c.At = c.At(ctx, ("nodes", name), {"node": name})
    if not isinstance(raw_node, dict):
        here.report(f"expected a table ([nodes.{name}]), got {c.show(raw_node)}")
        return None
    try:
        c.name(name, here)
    except c.Invalid as exc:
        here.report(f"node name: {exc}")
        return None
    own = {k: v for k, v in raw_node.items() if k not in SECTIONS}
    if not own and raw_node:
        here.report(
            f"overrides for unknown node {name!r}: define it with [nodes.{name}] "
            "and its address and interface"
        )
        return None
    try:
        spec = c.build(NodeSection, own, here, extra_known=tuple(SECTIONS), section="nodes")
    except c.Reported:
        spec = None
    run_dir = _dir(spec.run_dir if spec and spec.run_dir else cluster.run_dir, here, "run_dir")
    state_dir = _dir(spec.state_dir if spec and spec.state_dir else cluster.state_dir, here,
                     "state_dir")
    if spec is None or run_dir is None or state_dir is None:
        return None
    at = c.At(ctx, (), {"node": name, "run_dir": str(run_dir), "state_dir": str(state_dir)})
    built: dict[str, Any] = {}
    failed = False
    for section, cls in SECTIONS.items():
        override = raw_node.get(section, {})
        if not isinstance(override, dict):
            ctx.report(("nodes", name, section),
                       f"expected a table ([nodes.{name}.{section}]), got {c.show(override)}")
            failed = True
            continue
        if section == "dhcp" and "dhcp" not in raw:
            if override:
                ctx.report(("nodes", name, "dhcp"),
                           "has no effect: there is no [dhcp] section for it to override")
                failed = True
            built[section] = None
            continue
        merged = {**sections[section], **override}
        sources = {k: ("nodes", name, section, k) for k in override}
        try:
            built[section] = c.build(cls, merged, at.sub(section), sources=sources,
                                     section=section)
        except c.Reported:
            failed = True
    if failed:
        return None
    # proxy and vipd run everywhere; backend where [backend] (or an override of it)
    # exists; dhcp where [dhcp] exists. ROLES order.
    has_backend = "backend" in raw or "backend" in raw_node
    roles = tuple(role for role in ROLES
                  if role in ("proxy", "vipd")
                  or (role == "backend" and has_backend)
                  or (role == "dhcp" and built["dhcp"] is not None))
    return NodeConfig(
        name=name,
        address=spec.address,
        interface=spec.interface,
        run_dir=run_dir,
        state_dir=state_dir,
        vrrp=built["vrrp"],
        proxy=built["proxy"],
        backend=built["backend"],
        dhcp=built["dhcp"],
        roles=roles,
    )


def _fallback_cluster(raw: Mapping[str, Any]) -> ClusterSection:
    """Directories to build nodes with when [cluster] itself has issues."""
    def pick(key: str) -> str:
        value = raw.get(key)
        default = c.spec_fields(ClusterSection)[key].metadata["default"]
        return value if isinstance(value, str) else str(default)
    return ClusterSection(name="", run_dir=pick("run_dir"), state_dir=pick("state_dir"))


def _dir(raw: str, here: c.At, key: str) -> Path | None:
    """A node's run_dir or state_dir, ``{node}`` substituted, relative to the config."""
    own = ("nodes", here.path[1], key) in here.ctx.lines
    where = here.sub(key) if own else here.moved(("cluster", key))
    try:
        return c.path(c.substitute(raw, {"node": str(here.path[1])}), where)
    except c.Invalid as exc:
        where.report(str(exc))
        return None
