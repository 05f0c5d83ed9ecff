"""Every shipped example validates, through the API and through the real CLI."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from imapha import checkconfig
from imapha.config import load_config
from tests.config.helpers import BASE

ROOT = Path(__file__).resolve().parents[2]
LINE = len(BASE.splitlines()) + 2  # of `workers = 0` after BASE + "[proxy]"
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("*.toml"))


def test_the_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"site.toml", "lab.toml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_loads(path: Path) -> None:
    config = load_config(path)
    assert len(config.nodes) >= 2
    assert config.vips and config.backends


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_passes_check_config_cli(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "imapha", "check-config", str(path), "--all-nodes"],
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    config = load_config(path)
    for node in config.nodes:
        assert f"# effective config of node {node!r}" in result.stdout


def test_site_is_production_shaped() -> None:
    config = load_config(ROOT / "deploy" / "examples" / "site.toml")
    homes = {vip.home for vip in config.vips if vip.track == "proxy"}
    assert homes == set(config.nodes), "each host is home to one IMAP VIP"
    assert all(b.tls == "starttls" for b in config.backends)
    assert all(n.vrrp.transport == "multicast" for n in config.nodes.values())
    assert all(n.dhcp is not None and n.dhcp.mode == "split" for n in config.nodes.values())
    assert all("backend" not in n.roles for n in config.nodes.values())


def test_lab_runs_unprivileged_on_loopback() -> None:
    config = load_config(ROOT / "deploy" / "examples" / "lab.toml")
    for node in config.nodes.values():
        assert node.address.is_loopback
        assert node.vrrp.transport == "udp" and node.vrrp.address_driver == "listener"
        assert "backend" in node.roles
        assert node.name in str(node.run_dir)
        for hp in (*node.proxy.imap, *node.proxy.imaps, *node.backend.imap):
            assert hp.port > 1024
    assert all(vip.address.ip.is_loopback for vip in config.vips)
    controls = {config.control_socket(n, r) for n in config.nodes for r in config.roles(n)}
    assert len(controls) == sum(len(config.roles(n)) for n in config.nodes)


def _args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"config": Path("/nonexistent"), "node": "a", "json": False,
                               "file": None, "all_nodes": False}
    return argparse.Namespace(**{**base, **kw})


def test_run_shows_one_node_as_toml(capsys: pytest.CaptureFixture[str]) -> None:
    lab = ROOT / "deploy" / "examples" / "lab.toml"
    assert checkconfig.run(_args(file=lab, node="b")) == 0
    out = capsys.readouterr().out
    assert "# effective config of node 'b'" in out
    assert "node 'a'" not in out
    assert 'control = "/tmp/imapha-lab/b/run/proxy.sock"' in out
    assert 'probe_password = "***"' in out
    assert "probe-secret" not in out


def test_run_json(capsys: pytest.CaptureFixture[str]) -> None:
    site = ROOT / "deploy" / "examples" / "site.toml"
    assert checkconfig.run(_args(config=site, node="mx-b", json=True)) == 0
    doc = json.loads(capsys.readouterr().out)
    node = doc["nodes"]["mx-b"]
    assert doc["cluster"] == "cs" and list(doc["nodes"]) == ["mx-b"]
    assert node["proxy"]["metrics"] == "192.0.2.12:9143"
    assert node["proxy"]["idle_timeout"] == 2100.0
    assert node["dhcp"]["interfaces"] == ["eth2"]
    assert [v["priority"] for v in node["vips"]] == [100, 150]


def test_run_invalid_prints_issues_to_stderr(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + '[proxy]\nworkers = 0\nidle = "1s"\n')
    assert checkconfig.run(_args(file=bad)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert f"{bad}:{LINE}: proxy.workers: must be from 1 to 256, got 0" in lines
    assert any(line.startswith(f"{bad}:{LINE + 1}: proxy.idle: unknown key") for line in lines)


def test_run_invalid_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + '[proxy]\nworkers = 0\n')
    assert checkconfig.run(_args(file=bad, json=True)) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["valid"] is False
    assert {"file": str(bad), "line": LINE, "key": "proxy.workers",
            "message": "must be from 1 to 256, got 0"} in doc["issues"]


def test_run_unknown_node(capsys: pytest.CaptureFixture[str]) -> None:
    site = ROOT / "deploy" / "examples" / "site.toml"
    assert checkconfig.run(_args(file=site, node="mx-c")) == 1
    err = capsys.readouterr().err
    assert f"{site}: nodes.mx-c: no node 'mx-c' in this config (nodes: mx-a, mx-b)" in err
