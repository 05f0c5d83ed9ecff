"""The proxy's Prometheus metrics, declared the way :mod:`imapha.metrics` says.

Labels: ``listener`` is ``imap`` (STARTTLS) or ``imaps`` (implicit TLS);
``outcome`` of a connection is how it ended (``relayed``, ``prelogin``,
``refused``); of a login ``ok``, ``failed`` (wrong credentials),
``unavailable`` (no backend could answer) or ``backend_error`` (one backend
failed before answering, another may have been tried); ``limit`` names the
limit of :mod:`imapha.proxy.limits` or the config key that was hit.
"""

from __future__ import annotations

from typing import Final

from imapha import metrics

CONNECTIONS_ACTIVE: Final = metrics.gauge(
    "proxy", "imapha_proxy_connections_active", "Client connections open now", ("listener",))
CONNECTIONS: Final = metrics.counter(
    "proxy", "imapha_proxy_connections_total", "Client connections by listener and outcome",
    ("listener", "outcome"))
LOGINS: Final = metrics.counter(
    "proxy", "imapha_proxy_logins_total", "Login attempts by outcome and backend",
    ("outcome", "backend"))
LOGIN_SECONDS: Final = metrics.histogram(
    "proxy", "imapha_proxy_login_duration_seconds",
    "Time from the client's login command to our answer (penalty delay excluded)",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
BYTES: Final = metrics.counter(
    "proxy", "imapha_proxy_relayed_bytes_total",
    "Bytes relayed after login: to_backend (from clients) and to_client", ("direction",))
BACKEND_UP: Final = metrics.gauge(
    "proxy", "imapha_proxy_backend_up_state", "1 while the backend passes its health probe",
    ("backend",))
BACKEND_DRAINING: Final = metrics.gauge(
    "proxy", "imapha_proxy_backend_draining_state",
    "1 while the backend is drained by an operator (drain-backend)", ("backend",))
SESSIONS: Final = metrics.gauge(
    "proxy", "imapha_proxy_sessions_active", "Logged-in sessions relayed now, per backend",
    ("backend",))
LIMIT_HITS: Final = metrics.counter(
    "proxy", "imapha_proxy_limit_hits_total", "Times a named limit refused or ended something",
    ("limit",))
PROBES: Final = metrics.counter(
    "proxy", "imapha_proxy_health_probes_total", "Backend health probes by result",
    ("backend", "result"))
WORKERS_RUNNING: Final = metrics.gauge(
    "proxy", "imapha_proxy_workers_running",
    "Worker processes alive now (workers > 1; exported by the parent)")
WORKER_RESTARTS: Final = metrics.counter(
    "proxy", "imapha_proxy_worker_restarts_total",
    "Worker processes started again after one died (workers > 1)")
