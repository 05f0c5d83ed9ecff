"""The DHCP server's Prometheus metrics (``dhcp_*``), declared once for the daemon and Grafana."""

from __future__ import annotations

from imapha import metrics

PACKETS_RECEIVED = metrics.counter(
    "dhcp", "dhcp_packets_received_total", "DHCP requests received, by message type",
    labels=("type",))
PACKETS_DROPPED = metrics.counter(
    "dhcp", "dhcp_packets_dropped_total",
    "requests not answered, by reason (decode errors, logic drops, failover, peer)",
    labels=("reason",))
REPLIES_SENT = metrics.counter(
    "dhcp", "dhcp_replies_sent_total", "replies sent, by message type and delivery",
    labels=("type", "delivery"))
SEND_ERRORS = metrics.counter(
    "dhcp", "dhcp_send_errors_total", "replies the kernel refused to send")
LEASE_CONFLICTS = metrics.counter(
    "dhcp", "dhcp_lease_conflicts_total",
    "store writes refused because another client holds the address, by source",
    labels=("source",))
POOL_ADDRESSES = metrics.gauge(
    "dhcp", "dhcp_pool_addresses", "dynamic pool addresses by subnet and state",
    labels=("subnet", "state"))
LEASES = metrics.gauge("dhcp", "dhcp_leases_active", "bound, unexpired leases in the store")
FAILOVER_STATE = metrics.gauge(
    "dhcp", "dhcp_failover_state_bool", "1 for the failover state this node is in",
    labels=("state",))
PEER_CONNECTED = metrics.gauge(
    "dhcp", "dhcp_peer_connected_bool", "1 while the authenticated peer link is up")
REPLICATION_LAG = metrics.gauge(
    "dhcp", "dhcp_replication_lag_seconds",
    "age of the oldest lease update the peer has not acknowledged (0 when none)")
REPLICATION_RTT = metrics.gauge(
    "dhcp", "dhcp_replication_rtt_seconds", "last round trip of an update or ping to the peer")
COMMIT_SECONDS = metrics.histogram(
    "dhcp", "dhcp_store_commit_seconds", "time to handle and durably commit one batch",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
REGISTRATION_RELOADS = metrics.counter(
    "dhcp", "dhcp_registration_reloads_total", "registrations file reloads, by result",
    labels=("result",))
