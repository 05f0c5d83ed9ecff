"""The DHCP server's metrics: declared ones in a real scrape, and the dashboard's DHCP row.

A real ``imapha dhcp`` (node a of the dhcp tests' pair, told its peer is down
so it serves the whole pool) hands a lease to a real ``udhcpc``; then its
``/metrics`` must carry every ``dhcp_*`` metric the code declares, and a real
Prometheus scraping it must return data for every query of the dashboard's
DHCP row.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapha import metrics
from imapha.lab.topology import Lab
from tests.dhcp.cluster import Pair, make_pair
from tests.ops import dashboard, prom

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.timeout(240)]

METRICS_HOST, METRICS_PORT = "192.0.2.11", 9167
METRICS = f"{METRICS_HOST}:{METRICS_PORT}"
#: Counters the dhcp service creates at their first event (dhcp/service.py calls
#: ``metrics.counter(SPEC)`` where it counts), so a scrape has them only after one:
#: no drop, send error, conflict or registrations reload happens in this test.
FIRST_EVENT = frozenset({"dhcp_packets_dropped_total", "dhcp_send_errors_total",
                         "dhcp_lease_conflicts_total", "dhcp_registration_reloads_total"})
DHCP_PANELS = ("Requests received by type", "Replies sent by type", "Pool usage",
               "Failover state", "Replication lag and RTT, store commit p99")


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="opsd", dir="/tmp"))  # short: socket paths
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _scrape(pair: Pair) -> str:
    with pair.a.connect(METRICS_HOST, METRICS_PORT) as conn:
        conn.sendall(b"GET /metrics HTTP/1.0\r\nHost: a\r\n\r\n")
        return b"".join(iter(lambda: conn.recv(65536), b"")).decode()


def test_dhcp_exports_what_it_declares_and_feeds_the_dashboard(lab: Lab, root: Path) -> None:
    pair = make_pair(lab, root)
    with pair.config.open("a") as config:
        config.write(f'\n[nodes.a.dhcp]\nmetrics = "{METRICS}"\n')
    pair.start("a")
    try:
        assert pair.ctl("a", "POST", "/partner-down").ok
        Pair.wait(lambda: pair.ready("a"), 10, "a ready")
        client = pair.udhcpc("c1")
        Pair.wait(lambda: client.bound() is not None, 20, "a lease")

        text = _scrape(pair)
        families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}
        dashboard.declared()  # every role's declarations imported
        wanted = [s.name for s in metrics.DEFINED.values()
                  if s.role == "dhcp" and s.name not in FIRST_EVENT]
        assert len(wanted) >= 8
        assert [name for name in wanted if name not in families] == []

        queries = [q for q in dashboard.queries() if q.panel in DHCP_PANELS]
        assert {q.panel for q in queries} == set(DHCP_PANELS)
        config_text = prom.scrape_config({"imapha-dhcp": {"a": METRICS}})
        with contextlib.ExitStack() as stack:
            prometheus = stack.enter_context(prom.running_prometheus(
                pair.a, root / "prometheus", config_text, root / "logs"))
            prometheus.wait('up{job="imapha-dhcp"} == 1', lambda r: len(r) == 1, 60,
                            "the dhcp server scraped")
            # rate() needs two samples after the counters appeared.
            prometheus.wait("count_over_time(dhcp_leases_active[1m])",
                            lambda r: r and float(r[0]["value"][1]) >= 3, 30, "samples")
            answers = prometheus.query(*(dashboard.substitute(q.expr, rate_interval="1m")
                                         for q in queries))
        empty = [q.where for q, a in zip(queries, answers, strict=True)
                 if a.get("status") != "success" or not a["data"]["result"]]
        # The peer is down in this test: its link, lag and RTT still report (0), the
        # commit histogram has the lease's commits.
        assert empty == [], empty
    finally:
        pair.stop("a")
