"""grafana/imapha.json asks only for metrics (and labels) the code really exports."""

from __future__ import annotations

import json

import pytest

from tests.ops import dashboard, promql

DECLARED = dashboard.declared()


def _problems(expr: str) -> list[str]:
    query = promql.scan(expr)
    problems = [f"no metric {name}" for name in query.metrics if name not in DECLARED]
    for metric, label in query.matchers:
        if metric in DECLARED and label not in DECLARED[metric]:
            problems.append(f"{metric} has no label {label!r}")
    usable = set().union(*(DECLARED.get(name, frozenset()) for name in query.metrics))
    problems += [f"grouping by {label!r}, which none of its metrics has"
                 for label in query.grouping if label not in usable]
    return problems


def test_the_dashboard_is_a_grafana_dashboard_with_its_variables() -> None:
    dash = dashboard.load()
    assert 36 <= dash["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    node = variables["node"]
    assert promql.label_values_metric(node["definition"]) == "imapha_build_info"
    assert "node" in DECLARED["imapha_build_info"]
    ids = [p["id"] for p in dashboard._panels(dash["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard._panels(dash["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert panel["targets"], panel["title"]
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]


def test_every_query_names_only_exported_metrics_and_labels() -> None:
    queries = dashboard.queries()
    assert len(queries) >= 40
    bad = {q.where: p for q in queries if (p := _problems(q.expr))}
    assert not bad, json.dumps(bad, indent=1)


def test_every_node_filtered_query_filters_every_selector() -> None:
    """Choosing a node narrows every series of a panel that uses the variable."""
    for q in dashboard.queries():
        if "$node" not in q.expr:
            continue
        for name in promql.scan(q.expr).metrics:
            assert ("node", name) in {(label, metric) for metric, label
                                      in promql.scan(q.expr).matchers}, (q.where, name)


def test_the_dashboard_covers_every_role() -> None:
    used = {name for q in dashboard.queries() for name in promql.scan(q.expr).metrics}
    for prefix in ("imapha_proxy_", "imapha_backend_", "imapha_vipd_", "dhcp_",
                   "imapha_daemon_", "process_"):
        assert any(name.startswith(prefix) for name in used), prefix
    # The histograms are read as histograms.
    assert "imapha_proxy_login_duration_seconds_bucket" in used
    assert "imapha_backend_command_duration_seconds_bucket" in used


@pytest.mark.parametrize(("expr", "problem"), [
    ("rate(imapha_proxy_loginz_total[5m])", "no metric imapha_proxy_loginz_total"),
    ('sum by (vip) (imapha_proxy_sessions_active{node=~"$node"})',
     "grouping by 'vip', which none of its metrics has"),
    ('imapha_proxy_backend_up_state{backnd="be-a"}',
     "imapha_proxy_backend_up_state has no label 'backnd'"),
    ("imapha_proxy_login_duration_seconds", "no metric imapha_proxy_login_duration_seconds"),
    ("imapha_vipd_transitions", "no metric imapha_vipd_transitions"),
])
def test_the_check_catches_a_wrong_query(expr: str, problem: str) -> None:
    assert problem in _problems(expr)


def test_the_reader_takes_apart_a_real_query() -> None:
    q = promql.scan('histogram_quantile(0.99, sum by (le, command) (rate('
                    'imapha_backend_command_duration_seconds_bucket{node=~"$node"}'
                    '[$__rate_interval]))) > bool 0.5 or on(node) vector(0)')
    assert q.metrics == ["imapha_backend_command_duration_seconds_bucket"]
    assert q.functions == ["histogram_quantile", "sum", "rate", "vector"]
    assert q.grouping == ["le", "command", "node"]
    assert q.matchers == [("imapha_backend_command_duration_seconds_bucket", "node")]
    assert _problems('sum by (le) (rate(imapha_proxy_login_duration_seconds_bucket[1m]))') == []
    with pytest.raises(promql.PromQLSyntaxError):
        promql.scan("sum(rate(x[1m])")
    with pytest.raises(promql.PromQLSyntaxError):
        promql.scan('x{a="b" c}')
