"""A real Prometheus scrapes a running lab cluster and answers the dashboard's queries.

Prometheus (the Debian package) runs in the lab's client namespace, with the
scrape config docs/operations.md gives (job ``imapha-ROLE``, a ``node`` label
per target), scraping every daemon's metrics address every second. Real IMAP
clients log in through both VIPs; then every expression of
grafana/imapha.json, with Grafana's variables substituted as the dashboard's
defaults set them, goes to Prometheus' HTTP API: each must be accepted, and
the panels a running cluster always feeds must return data.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapha import metrics
from imapha.lab.cluster import DHCP_VIP, NODES, VIPS, Cluster
from tests.ops import cluster as opscluster
from tests.ops import dashboard, prom
from tests.ops.prom import Prometheus, running_prometheus
from tests.prereq import need_root

pytestmark = [pytest.mark.slow, pytest.mark.netns, pytest.mark.timeout(400)]

#: Declared metrics that exist only in a mode the lab cluster does not run.
ONLY_IN_A_MODE = {
    "imapha_proxy_workers_running": "[proxy] workers > 1",
    "imapha_proxy_worker_restarts_total": "[proxy] workers > 1",
}

PORTS = {"proxy": 9143, "backend": 9144, "vipd": 9150}

#: Panels (title -> refIds) that a running cluster with logged-in clients always feeds.
MUST_HAVE_DATA: dict[str, str] = {
    "VIP ownership: who is master of each VIP": "A",
    "State transitions by cause (failovers)": "A",
    "VIP masters now (count per VIP: 1 is healthy, 0 is down, 2 is split brain)": "A",
    "Adverts sent": "A",
    "Adverts received": "A",
    "Effective priority": "A",
    "Tracked service ready / link up": "AB",
    "Relayed sessions per node": "A",
    "Relayed sessions per backend": "A",
    "Client connections open (incl. pre-login)": "A",
    "Logins by outcome": "A",
    "Login latency (client login command to our answer)": "ABCD",
    "Logins per backend": "A",
    "Relayed bytes": "A",
    "Backend up (as each proxy's health probe sees it)": "A",
    "Backend drained (drain-backend)": "A",
    "Embedded backend: connections and logins": "AB",
    "Embedded backend: commands by status": "A",
    "Embedded backend: command latency p99": "A",
    "Daemon ready / drained": "A",
    "CPU": "A",
    "Resident memory": "A",
    "Uptime and version": "A",
    "Open file descriptors": "AB",
}


def scrape_config() -> str:
    """The Prometheus config of docs/operations.md, for the lab's two nodes."""
    return prom.scrape_config({f"imapha-{role}": {node: f"{address}:{port}"
                                                  for node, address in NODES.items()}
                               for role, port in PORTS.items()})


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    need_root()
    with opscluster.running_cluster() as running:
        yield running


@pytest.fixture(scope="module")
def prometheus(cluster: Cluster) -> Iterator[Prometheus]:
    with running_prometheus(cluster.client, cluster.root / "prometheus",
                            scrape_config(), cluster.root / "logs") as prom:
        prom.wait('up{job=~"imapha-.*"} == 1', lambda r: len(r) == 6, 60,
                  "every daemon scraped")
        yield prom


def _scrape(cluster: Cluster, address: str) -> str:
    code = ("import sys, urllib.request; "
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())")
    out = cluster.client.run([sys.executable, "-c", code, f"http://{address}/metrics"],
                             timeout=30)
    return out.stdout


def test_each_role_exports_its_declared_metrics_in_a_real_scrape(cluster: Cluster) -> None:
    declared = dashboard.declared()  # imports every role's module: DEFINED is full
    for node, address in NODES.items():
        for role, port in PORTS.items():
            text = _scrape(cluster, f"{address}:{port}")
            families = {line.split()[2] for line in text.splitlines()
                        if line.startswith("# TYPE ")}
            samples = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
                       if line and not line.startswith("#")}
            wanted = [spec.name for spec in metrics.DEFINED.values()
                      if spec.role == role and "testdaemon" not in spec.name
                      and spec.name not in ONLY_IN_A_MODE]
            assert wanted, role
            missing = [name for name in wanted if name not in families]
            assert not missing, f"{node}/{role} does not export {missing}"
            assert any(line.startswith("imapha_build_info{") and f'node="{node}"' in line
                       and f'role="{role}"' in line for line in text.splitlines()), text
            for name in ("imapha_daemon_ready_state", "process_cpu_seconds_total",
                         "process_resident_memory_bytes"):
                assert name in samples, f"{node}/{role} has no {name} sample"
            assert samples <= set(declared) | {n + "_created" for n in declared} | {
                n.removesuffix("_total") + "_created" for n in declared}, \
                f"{node}/{role} exports undeclared {sorted(samples - set(declared))}"


def test_prometheus_answers_every_dashboard_query(cluster: Cluster,
                                                  prometheus: Prometheus) -> None:
    holder = opscluster.hold_sessions(cluster, VIPS[0][1], 2, 120)
    try:
        # A counter with labels appears at its first increment; rate() and increase()
        # need a sample before the logins being counted, so one round comes first.
        vips = [address for _, address, _, _ in VIPS]
        opscluster.logins(cluster, vips, rounds=1)
        prometheus.wait('count(imapha_proxy_logins_total{outcome="ok"})',
                        lambda r: r and float(r[0]["value"][1]) >= 2, 30, "login counters")
        done = opscluster.logins(cluster, vips, rounds=2)
        assert done == 2 * 2 * len(cluster.mail_users)
        # Scraped after the logins, with two samples since in every rate window.
        prometheus.wait('sum by (node) (imapha_proxy_sessions_active)', lambda r: sorted(
            (s["metric"]["node"], s["value"][1]) for s in r) == [("a", "2"), ("b", "0")],
            30, "the two held sessions on a, none left on b")
        prometheus.wait('sum(increase(imapha_proxy_logins_total{outcome="ok"}[30s]))',
                        lambda r: r and float(r[0]["value"][1]) >= done, 30,
                        "the logins counted")
        queries = dashboard.queries()
        answers = prometheus.query(*(dashboard.substitute(q.expr) for q in queries))
        refused = {q.where: a.get("error") for q, a in zip(queries, answers, strict=True)
                   if a.get("status") != "success"}
        assert not refused, json.dumps(refused, indent=1)
        empty = []
        for q, a in zip(queries, answers, strict=True):
            ref = q.where.rsplit(" ", 1)[-1]
            if ref in MUST_HAVE_DATA.get(q.panel, "") and not a["data"]["result"]:
                empty.append(q.where)
        assert not empty, f"no data for {empty}"
        checked = sum(len(refs) for refs in MUST_HAVE_DATA.values())
        assert checked >= 30

        # What the panels show is what the cluster is.
        owners = prometheus.vector('imapha_vipd_vip_state{state="master"} == 1')
        assert sorted((s["metric"]["vip"], s["metric"]["node"]) for s in owners) == sorted(
            (name, home) for name, _, _, home in [*VIPS, DHCP_VIP])
        # The dashboard's node variable: label_values(imapha_build_info, node).
        nodes = prometheus.vector("count by (node) (imapha_build_info)")
        assert sorted(s["metric"]["node"] for s in nodes) == sorted(NODES)
        up = prometheus.vector("imapha_proxy_backend_up_state")
        assert len(up) == 4 and all(s["value"][1] == "1" for s in up)
        per_node = prometheus.vector(dashboard.substitute(
            'sum by (node) (imapha_proxy_sessions_active{node=~"$node"})', node="a"))
        assert [(s["metric"]["node"], s["value"][1]) for s in per_node] == [("a", "2")]
        outcomes = prometheus.vector(dashboard.substitute(
            'sum by (outcome) (rate(imapha_proxy_logins_total{node=~"$node"}[$__rate_interval]))'))
        assert {s["metric"]["outcome"] for s in outcomes} >= {"ok"}
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(10)


def test_the_panels_that_must_have_data_exist() -> None:
    titles = {q.panel for q in dashboard.queries()}
    assert set(MUST_HAVE_DATA) <= titles, set(MUST_HAVE_DATA) - titles


def test_the_scrape_config_is_what_the_guide_gives() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for line in ("job_name: imapha-proxy", "job_name: imapha-backend", "job_name: imapha-vipd",
                 "job_name: imapha-dhcp", "labels: {node: a}"):
        assert line in guide, line
