"""The backend's Prometheus metrics (``imapha_backend_*``), declared once."""

from __future__ import annotations

from imapha import metrics

SESSIONS = metrics.gauge("backend", "imapha_backend_sessions_active",
                         "IMAP connections open now")
LOGINS = metrics.counter("backend", "imapha_backend_logins_total",
                         "Successful IMAP logins")
COMMANDS = metrics.counter("backend", "imapha_backend_commands_total",
                           "IMAP commands answered, by name and status",
                           labels=("command", "status"))
COMMAND_SECONDS = metrics.histogram(
    "backend", "imapha_backend_command_duration_seconds",
    "Time from a command's last octet to its tagged response", labels=("command",),
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
APPENDS = metrics.counter("backend", "imapha_backend_appends_total", "Messages APPENDed")
DELIVERIES = metrics.counter("backend", "imapha_backend_deliveries_total",
                             "LMTP deliveries, by outcome", labels=("outcome",))
