"""Metrics: naming rules, and a real daemon scraped over HTTP and parsed."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from imapha import metrics
from imapha.metrics import MetricKind, MetricNameError, validate_name
from tests.runtime.helpers import Daemons
from tests.support import wait_for


def scrape(address: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str,
          **labels: str) -> float:
    for got_labels, got in samples.get(name, []):
        if all(got_labels.get(k) == v for k, v in labels.items()):
            return got
    raise AssertionError(f"no sample {name}{labels} in {sorted(samples)}")


def test_daemon_metrics_scraped_and_parsed(config: Path, daemons: Daemons) -> None:
    d = daemons.start(config, "a", "proxy")
    address = d.status()["metrics"]
    assert address.startswith("127.0.0.1:") and not address.endswith(":0")
    samples = scrape(address)
    assert value(samples, "imapha_build_info", role="proxy", node="a") == 1.0
    assert value(samples, "process_resident_memory_bytes") > 0
    assert value(samples, "imapha_daemon_ready_state", role="proxy") == 1.0
    assert value(samples, "imapha_proxy_testdaemon_pokes_total") == 0.0
    assert not any(name.endswith("_created") for name in samples)

    for _ in range(3):
        assert d.post("/poke").ok
    d.post("/set-ready", {"ready": False})
    d.post("/drain")
    samples = scrape(address)
    assert value(samples, "imapha_proxy_testdaemon_pokes_total") == 3.0
    assert value(samples, "imapha_daemon_ready_state", role="proxy") == 0.0
    assert value(samples, "imapha_daemon_draining_state", role="proxy") == 1.0
    assert value(samples, "imapha_daemon_control_requests_total", role="proxy",
                 verb="POST /poke", code="200") == 3.0

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"http://{address}/other", timeout=5)
    assert info.value.code == 404


def test_dhcp_metrics_use_the_dhcp_prefix(root: Path, daemons: Daemons) -> None:
    from tests.runtime.helpers import write_config

    config = write_config(root, extra="""
[dhcp]
mode = "split"
interfaces = ["lo"]
secret_file = "/nonexistent/key"
metrics = "127.0.0.1:0"
[[dhcp.subnets]]
subnet = "198.51.100.0/24"
pools = ["198.51.100.100-198.51.100.199"]
""")
    d = daemons.start(config, "b", "dhcp")
    d.post("/poke")
    samples = wait_for(lambda: scrape(d.status()["metrics"]), what="a scrape")
    assert value(samples, "dhcp_testdaemon_pokes_total") == 1.0
    assert value(samples, "imapha_build_info", role="dhcp", node="b") == 1.0


def test_no_metrics_server_without_an_address(config: Path, daemons: Daemons) -> None:
    config.write_text(config.read_text().replace('[vrrp]\nmetrics = "127.0.0.1:0"\n', ""))
    d = daemons.start(config, "a", "vipd")
    assert d.status()["metrics"] is None


@pytest.mark.parametrize(("role", "kind", "name"), [
    ("proxy", MetricKind.GAUGE, "imapha_proxy_sessions_active"),
    ("proxy", MetricKind.COUNTER, "imapha_proxy_logins_total"),
    ("backend", MetricKind.HISTOGRAM, "imapha_backend_fetch_duration_seconds"),
    ("vipd", MetricKind.GAUGE, "imapha_vipd_vrrp_state"),
    ("dhcp", MetricKind.COUNTER, "dhcp_acks_sent_total"),
])
def test_good_names(role: str, kind: MetricKind, name: str) -> None:
    validate_name(role, kind, name)


@pytest.mark.parametrize(("role", "kind", "name", "why"), [
    ("proxy", MetricKind.GAUGE, "imapha_backend_sessions_active", "imapha_proxy_"),
    ("dhcp", MetricKind.COUNTER, "imapha_dhcp_acks_total", "dhcp_"),
    ("proxy", MetricKind.COUNTER, "imapha_proxy_logins", "end in _total"),
    ("proxy", MetricKind.GAUGE, "imapha_proxy_logins_total", "only counters"),
    ("proxy", MetricKind.HISTOGRAM, "imapha_proxy_login_ms", "base units"),
    ("proxy", MetricKind.GAUGE, "imapha_proxy_sessions", "thing and the unit"),
    ("proxy", MetricKind.GAUGE, "imapha_proxy_Sessions_active", "lower_snake_case"),
    ("proxy", MetricKind.GAUGE, "imapha_proxy_build_info", "reserved"),
    ("mail", MetricKind.GAUGE, "imapha_mail_x_y", "unknown role"),
])
def test_bad_names_say_why(role: str, kind: MetricKind, name: str, why: str) -> None:
    with pytest.raises(MetricNameError, match=why):
        validate_name(role, kind, name)


def test_declarations_are_listed_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # A private copy: other tests in this worker (a dashboard check) see only real metrics.
    monkeypatch.setattr(metrics, "DEFINED", dict(metrics.DEFINED))
    spec = metrics.histogram("proxy", "imapha_proxy_rtt_test_seconds", "test", ("backend",),
                             buckets=(0.1, 1.0))
    assert metrics.histogram("proxy", "imapha_proxy_rtt_test_seconds", "test", ("backend",),
                             buckets=(0.1, 1.0)) is spec
    assert "imapha_proxy_rtt_test_seconds_bucket" in metrics.exported_names()
    assert "imapha_daemon_control_requests_total" in metrics.exported_names()
    with pytest.raises(MetricNameError, match="declared twice"):
        metrics.gauge("proxy", "imapha_proxy_rtt_test_seconds", "other")
    with pytest.raises(MetricNameError, match="label"):
        metrics.gauge("proxy", "imapha_proxy_bad_label_state", "x", ("le",))
    live = metrics.DaemonMetrics("proxy", "a", "0")
    with pytest.raises(TypeError, match="histogram"):
        live.counter(spec)
    with pytest.raises(ValueError, match="role"):
        metrics.DaemonMetrics("backend", "a", "0").histogram(spec)
    live.histogram(spec).labels(backend="be1").observe(0.5)
    assert live.registry.get_sample_value("imapha_proxy_rtt_test_seconds_count",
                                          {"backend": "be1"}) == 1.0
    monkeypatch.undo()
    assert "imapha_proxy_rtt_test_seconds" not in metrics.DEFINED
