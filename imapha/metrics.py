"""Prometheus metrics: one way to name, define and serve them in every daemon.

Theory of operation
-------------------
Metrics are *declared* at import time, as module-level constants, with
:func:`counter`, :func:`gauge` or :func:`histogram`::

    SESSIONS = metrics.gauge("proxy", "imapha_proxy_sessions_active",
                             "IMAP sessions relayed right now", labels=("backend",))

Each declaration is a frozen :class:`MetricSpec`; its name is checked against
the project's rule (``imapha_<role>_<thing>_<unit>``; the DHCP server's are
``dhcp_<thing>_<unit>``; counters end in ``_total``; base units only) and it
is recorded in :data:`DEFINED`, the module-level list of every metric the code
can export (the Grafana dashboard check reads it through :func:`exported_names`
after importing the daemons' modules).

A running daemon owns one :class:`DaemonMetrics`: its own
``CollectorRegistry`` (never the global one, so several daemons can live in
one test process), the process/platform/GC collectors,
``imapha_build_info{version,role,node} 1`` and the runtime's own
``imapha_daemon_*`` metrics. The daemon turns a spec into a live
prometheus-client object with ``daemon_metrics.counter(SPEC)`` (and
``gauge``/``histogram``), created on first use in that registry.

:func:`listen_metrics` serves ``GET /metrics`` from the Twisted reactor with a
plain twisted.web resource: exposition runs in the reactor thread (it takes
well under a millisecond for a daemon's few hundred series), which avoids the
thread pool prometheus_client.twisted would use and keeps metric objects
single-threaded.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, cast

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IReactorTCP
from twisted.web.resource import Resource

from imapha.control import quiet_site

ROLE_PREFIXES: Final[dict[str, str]] = {
    "proxy": "imapha_proxy_",
    "backend": "imapha_backend_",
    "vipd": "imapha_vipd_",
    "dhcp": "dhcp_",
    # The runtime shared by all roles (imapha.daemon); labelled with the role.
    "daemon": "imapha_daemon_",
}

_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")
_LABEL_RE: Final = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Suffixes prometheus-client generates itself for some types.
_RESERVED_SUFFIXES: Final = ("_created", "_bucket", "_count", "_sum", "_info")
# Prometheus naming: base units only (seconds, bytes, ratios).
_NON_BASE_UNITS: Final = frozenset({
    "ms", "msec", "milliseconds", "us", "microseconds", "ns", "nanoseconds", "minutes",
    "hours", "days", "kb", "kib", "mb", "mib", "gb", "gib", "kilobytes", "megabytes",
    "percent", "pct",
})


class MetricKind(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class MetricSpec:
    """A metric as the code declares it; the name is the full exported name."""

    role: str
    kind: MetricKind
    name: str
    doc: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None

    def series_names(self) -> tuple[str, ...]:
        """The sample names this metric produces in the exposition."""
        if self.kind is MetricKind.HISTOGRAM:
            return (f"{self.name}_bucket", f"{self.name}_count", f"{self.name}_sum")
        return (self.name,)


class MetricNameError(ValueError):
    """A metric declaration breaks the naming rule; the message says which part."""


#: Every metric the code declares, by exported name, in declaration order.
DEFINED: dict[str, MetricSpec] = {}

#: Metrics every daemon exports whatever its role (besides process_*, python_*).
BUILD_INFO: Final = "imapha_build_info"


def validate_name(role: str, kind: MetricKind, name: str) -> None:
    """Raise :class:`MetricNameError` unless ``name`` follows the project's rule."""
    prefix = ROLE_PREFIXES.get(role)
    if prefix is None:
        raise MetricNameError(
            f"{name}: unknown role {role!r} (one of {', '.join(ROLE_PREFIXES)})"
        )
    if not _NAME_RE.match(name):
        raise MetricNameError(f"{name}: metric names are lower_snake_case words")
    if not name.startswith(prefix):
        raise MetricNameError(f"{name}: {role} metrics are named {prefix}<thing>_<unit>")
    if kind is MetricKind.COUNTER:
        if not name.endswith("_total"):
            raise MetricNameError(f"{name}: counter names end in _total")
    elif name.endswith("_total"):
        raise MetricNameError(f"{name}: only counters end in _total")
    rest = name[len(prefix):].split("_")
    if len(rest) < 2:
        raise MetricNameError(f"{name}: name both the thing and the unit: {prefix}<thing>_<unit>")
    bad_units = _NON_BASE_UNITS.intersection(rest)
    if bad_units:
        raise MetricNameError(
            f"{name}: use base units (seconds, bytes, ratio), not {sorted(bad_units)[0]}"
        )
    for suffix in _RESERVED_SUFFIXES:
        if name.endswith(suffix):
            raise MetricNameError(f"{name}: the suffix {suffix} is reserved by the exposition")


def _declare(spec: MetricSpec) -> MetricSpec:
    validate_name(spec.role, spec.kind, spec.name)
    for label in spec.labels:
        if not _LABEL_RE.match(label) or label.startswith("__") or label in {"le", "quantile"}:
            raise MetricNameError(f"{spec.name}: invalid label name {label!r}")
    if len(set(spec.labels)) != len(spec.labels):
        raise MetricNameError(f"{spec.name}: duplicate label names")
    existing = DEFINED.get(spec.name)
    if existing is not None:
        if existing != spec:
            raise MetricNameError(f"{spec.name}: declared twice, differently")
        return existing
    DEFINED[spec.name] = spec
    return spec


def counter(role: str, name: str, doc: str, labels: Iterable[str] = ()) -> MetricSpec:
    return _declare(MetricSpec(role, MetricKind.COUNTER, name, doc, tuple(labels)))


def gauge(role: str, name: str, doc: str, labels: Iterable[str] = ()) -> MetricSpec:
    return _declare(MetricSpec(role, MetricKind.GAUGE, name, doc, tuple(labels)))


def histogram(role: str, name: str, doc: str, labels: Iterable[str] = (),
              buckets: Iterable[float] | None = None) -> MetricSpec:
    bounds = tuple(buckets) if buckets is not None else None
    if bounds is not None and list(bounds) != sorted(set(bounds)):
        raise MetricNameError(f"{name}: buckets must be strictly increasing")
    return _declare(MetricSpec(role, MetricKind.HISTOGRAM, name, doc, tuple(labels), bounds))


def exported_names() -> list[str]:
    """Every sample name the code can export, for checking dashboards and alerts."""
    names = [BUILD_INFO]
    for spec in DEFINED.values():
        names.extend(spec.series_names())
    return sorted(set(names))


# The runtime's own metrics (imapha.daemon sets them).
DAEMON_READY: Final = gauge("daemon", "imapha_daemon_ready_state",
                            "1 when the daemon reports ready (GET /ready is 200)", ("role",))
DAEMON_DRAINING: Final = gauge("daemon", "imapha_daemon_draining_state",
                               "1 while the daemon is drained by an operator", ("role",))
DAEMON_START_TIME: Final = gauge("daemon", "imapha_daemon_start_time_seconds",
                                 "Unix time the daemon started serving", ("role",))
DAEMON_RELOADS: Final = counter("daemon", "imapha_daemon_reloads_total",
                                "Config reloads (SIGHUP) by result: applied or rejected",
                                ("role", "result"))
DAEMON_CONTROL_REQUESTS: Final = counter(
    "daemon", "imapha_daemon_control_requests_total",
    "Control API requests by verb and HTTP status", ("role", "verb", "code"))


class DaemonMetrics:
    """One daemon's registry: process metrics, build info and its role's metrics."""

    def __init__(self, role: str, node: str, version: str) -> None:
        if role not in ROLE_PREFIXES or role == "daemon":
            raise ValueError(f"unknown role {role!r}")
        self.role = role
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        info = Gauge(BUILD_INFO, "imapha version, role and node of this daemon (always 1)",
                     ("version", "role", "node"), registry=self.registry)
        info.labels(version=version, role=role, node=node).set(1)
        self._live: dict[str, Any] = {}

    def _get(self, spec: MetricSpec, kind: MetricKind) -> Any:
        if spec.kind is not kind:
            raise TypeError(f"{spec.name} is a {spec.kind.value}, not a {kind.value}")
        if spec.role not in {self.role, "daemon"}:
            raise ValueError(f"{spec.name} belongs to role {spec.role}, this is {self.role}")
        live = self._live.get(spec.name)
        if live is None:
            live = self._create(spec)
            self._live[spec.name] = live
        return live

    def _create(self, spec: MetricSpec) -> Any:
        if spec.kind is MetricKind.COUNTER:
            return Counter(spec.name, spec.doc, spec.labels, registry=self.registry)
        if spec.kind is MetricKind.GAUGE:
            return Gauge(spec.name, spec.doc, spec.labels, registry=self.registry)
        if spec.buckets is not None:
            return Histogram(spec.name, spec.doc, spec.labels, registry=self.registry,
                             buckets=spec.buckets)
        return Histogram(spec.name, spec.doc, spec.labels, registry=self.registry)

    def counter(self, spec: MetricSpec) -> Counter:
        live: Counter = self._get(spec, MetricKind.COUNTER)
        return live

    def gauge(self, spec: MetricSpec) -> Gauge:
        live: Gauge = self._get(spec, MetricKind.GAUGE)
        return live

    def histogram(self, spec: MetricSpec) -> Histogram:
        live: Histogram = self._get(spec, MetricKind.HISTOGRAM)
        return live


class MetricsResource(Resource):
    """``/metrics`` in the Prometheus text (or OpenMetrics, if asked) format."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        cast(Any, super()).__init__()
        self.registry = registry

    def render_GET(self, request: Any) -> bytes:
        if request.path not in {b"/metrics", b"/metrics/"}:
            request.setResponseCode(404)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"not found: try /metrics\n"
        accept = (request.getHeader(b"accept") or b"").decode("latin-1")
        encoder, content_type = choose_encoder(accept)
        body: bytes = encoder(self.registry)
        request.setHeader(b"Content-Type", content_type.encode())
        return body


def listen_metrics(reactor: IReactorTCP, registry: CollectorRegistry, host: str,
                   port: int) -> Deferred[IListeningPort]:
    """Serve ``/metrics`` on host:port (port 0: the OS picks; see getHost())."""
    site = quiet_site(MetricsResource(registry), "metrics")
    host = host.strip("[]")
    kind: Any = TCP6ServerEndpoint if ":" in host else TCP4ServerEndpoint
    endpoint: Any = kind(reactor, port, interface=host)
    listening: Deferred[IListeningPort] = endpoint.listen(site)
    return listening
