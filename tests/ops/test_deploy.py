"""deploy/: the keepalived interop example agrees with site.toml and keepalived accepts it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from imapha.config import load_config
from tests.prereq import need_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KEEPALIVED = DEPLOY / "examples" / "keepalived-interop.conf"
SITE = DEPLOY / "examples" / "site.toml"
NODE = "mx-b"  # the host the example is written for


def _uncommented(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def instances(text: str) -> dict[str, dict[str, str]]:
    """``vrrp_instance NAME { key value ... }``: each instance's simple keywords and VIPs."""
    found: dict[str, dict[str, str]] = {}
    body = _uncommented(text)
    for m in re.finditer(r"vrrp_instance\s+(\S+)\s*\{(.*?)\n\}", body, re.S):
        name, block = m.group(1), m.group(2)
        keys: dict[str, str] = {}
        for key in ("state", "interface", "virtual_router_id", "priority", "advert_int",
                    "preempt_delay"):
            km = re.search(rf"^\s*{key}\s+(\S+)\s*$", block, re.M)
            if km:
                keys[key] = km.group(1)
        vm = re.search(r"virtual_ipaddress\s*\{([^}]*)\}", block)
        keys["virtual_ipaddress"] = " ".join(vm.group(1).split()) if vm else ""
        found[name] = keys
    return found


def test_the_keepalived_example_shares_every_vrrp_router_of_site_toml() -> None:
    config = load_config(SITE)
    node = config.node(NODE)
    text = KEEPALIVED.read_text()
    assert re.search(r"^\s*vrrp_version 3\s*$", _uncommented(text), re.M)
    assert "authentication" not in _uncommented(text)  # VRRPv3 has none
    found = instances(text)
    assert set(found) == {vip.name for vip in config.vips}
    for vip in config.vips:
        inst = found[vip.name]
        assert inst["virtual_router_id"] == str(vip.vrid), vip.name
        assert inst["virtual_ipaddress"] == str(vip.address), vip.name
        assert int(inst["priority"]) == vip.priority_for(NODE), vip.name
        assert float(inst["advert_int"]) == node.vrrp.advert_interval, vip.name
        assert inst["interface"] == node.interface, vip.name
        assert inst["state"] == "BACKUP", vip.name
        if vip.home == NODE:
            assert float(inst["preempt_delay"]) == node.vrrp.preempt_delay


def test_keepalived_accepts_the_example_and_would_refuse_a_broken_one(tmp_path: Path) -> None:
    binary = need_binary("keepalived")
    ok = subprocess.run([binary, "--config-test", "-f", str(KEEPALIVED)],
                        capture_output=True, text=True, timeout=30, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.conf"
    broken.write_text(KEEPALIVED.read_text().replace("advert_int 1", "advert_intt 1", 1))
    bad = subprocess.run([binary, "--config-test", "-f", str(broken)],
                         capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode != 0
    assert "advert_intt" in bad.stdout + bad.stderr


def test_deploy_readme_names_every_file() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.name != "README.md":
            assert str(path.relative_to(DEPLOY)) in readme, path
