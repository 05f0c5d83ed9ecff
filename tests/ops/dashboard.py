"""The Grafana dashboard's queries, and the metric names the code can export."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imapha import metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "grafana" / "imapha.json"

#: Modules that declare metrics at import time (every role's).
METRIC_MODULES = ("imapha.daemon", "imapha.proxy.metrics", "imapha.server.metrics",
                  "imapha.vip.service", "dhcp.metrics")

#: Labels Prometheus adds from the scrape config (docs/operations.md).
TARGET_LABELS = frozenset({"node", "job", "instance"})


@dataclass(frozen=True)
class DashQuery:
    where: str  # "panel 'VIP ownership' A", for messages
    panel: str
    expr: str


def load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in items:
        yield panel
        yield from _panels(panel.get("panels", []))


def queries(dash: dict[str, Any] | None = None) -> list[DashQuery]:
    """Every PromQL expression of the dashboard: panel targets and annotations."""
    dash = dash if dash is not None else load()
    found = []
    for panel in _panels(dash["panels"]):
        for target in panel.get("targets", []):
            found.append(DashQuery(f"panel {panel['title']!r} {target['refId']}",
                                   panel["title"], target["expr"]))
    for note in dash.get("annotations", {}).get("list", []):
        if "expr" in note:
            found.append(DashQuery(f"annotation {note['name']!r}", "", note["expr"]))
    return found


def declared() -> dict[str, frozenset[str]]:
    """Every sample name the code can export, with the labels a series of it may carry."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names: dict[str, frozenset[str]] = {metrics.BUILD_INFO: frozenset({"version", "role",
                                                                       "node"})}
    for spec in metrics.DEFINED.values():
        for series in spec.series_names():
            extra = {"le"} if series.endswith("_bucket") else set()
            names[series] = frozenset(spec.labels) | extra
    # The process, platform and GC collectors every daemon registers.
    standard = metrics.DaemonMetrics("proxy", "x", "0")
    for family in standard.registry.collect():
        for sample in family.samples:
            if sample.name not in names:
                names[sample.name] = frozenset()
            names[sample.name] |= frozenset(sample.labels)
    return {name: labels | TARGET_LABELS for name, labels in names.items()}


def substitute(expr: str, *, node: str = ".*", rate_interval: str = "30s") -> str:
    """Grafana's variables as the dashboard's defaults set them."""
    return expr.replace("$__rate_interval", rate_interval).replace("$node", node)
