"""The effective config as check-config prints it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from imapha.config import loads_config
from imapha.config.render import config_json, config_toml, node_toml
from tests.config.helpers import BASE, load_text

ONE_NODE = """\
[cluster]
name = "solo"
run_dir = "/run/solo/{node}"

[nodes.n1]
address = "192.0.2.11"
interface = "eth0"

[[vips]]
name = "imap1"
address = "192.0.2.101/24"
vrid = 51
home = "n1"

[vrrp]
advert_interval = "250ms"
hooks = { master = "/bin/echo master" }
track_scripts = [ { name = "nfs", command = "true", weight = -50 } ]
track_files = [ { name = "maint", path = "/etc/maint" } ]

[proxy]
imap = ["192.0.2.101:143", "[2001:db8::1]:143"]
max_literal_size = "1MiB"
plaintext_auth_networks = ["10.0.0.0/8"]
user_map = "map.txt"

[[backends]]
name = "be1"
address = "mail.example.org:993"
tls = "implicit"
weight = 2.5

[backend]
lmtp = "127.0.0.1:24"

[dhcp]
interfaces = ["eth1"]
[[dhcp.subnets]]
subnet = "198.51.100.0/24"
pools = ["198.51.100.10-198.51.100.20"]
"""


def test_printed_config_reads_back_as_the_same_node(tmp_path: Path) -> None:
    config = loads_config(ONE_NODE, path=tmp_path / "one.toml")
    text = config_toml(config, "n1")
    again = loads_config(text, path=tmp_path / "again.toml")
    assert again.node("n1") == config.node("n1")
    assert again.backends == config.backends
    assert [v.interface_for(again.node("n1")) for v in again.vips] == ["eth0"]


def test_printed_values_are_in_operator_units(tmp_path: Path) -> None:
    config = loads_config(ONE_NODE, path=tmp_path / "one.toml")
    doc = tomllib.loads(node_toml(config, config.node("n1")))
    assert doc["vrrp"]["advert_interval"] == "250ms"
    assert doc["proxy"]["idle_timeout"] == "35m"
    assert doc["proxy"]["max_literal_size"] == "1MiB"
    assert doc["proxy"]["imap"] == ["192.0.2.101:143", "[2001:db8::1]:143"]
    assert doc["proxy"]["user_map"] == str(tmp_path / "map.txt")
    assert doc["proxy"]["control"] == "/run/solo/n1/proxy.sock"
    assert doc["dhcp"]["lease_db"] == "sqlite:///var/lib/imapha/n1/leases.db"
    assert doc["dhcp"]["subnets"][0]["pools"] == ["198.51.100.10-198.51.100.20"]


def test_secrets_are_masked(tmp_path: Path) -> None:
    config = load_text(tmp_path, BASE + '[proxy]\nprobe_user = "probe"\n'
                       'probe_password = "hunter2"\n')
    text = config_toml(config)
    data = config_json(config)
    assert "hunter2" not in text and "hunter2" not in data
    assert 'probe_password = "***"' in text
    assert json.loads(data)["nodes"]["a"]["proxy"]["probe_password"] == "***"
    assert 'probe_user = "probe"' in text


def test_all_nodes_and_notes(tmp_path: Path) -> None:
    config = load_text(tmp_path, BASE)
    text = config_toml(config)
    assert text.count("# effective config of node") == 2
    assert "priority = 150  # this node: 150 (home)" in text
    assert "priority = 150  # this node: 100 (backup, home is a)" in text
    assert "[backend]" not in text  # not a role of these nodes


def test_url_passwords_are_masked(tmp_path: Path) -> None:
    text = BASE + ('[dhcp]\ninterfaces = ["eth1"]\n'
                   'lease_db = "postgresql://dhcp:hunter2@db.example.org/leases"\n'
                   '[[dhcp.subnets]]\nsubnet = "198.51.100.0/24"\n')
    config = load_text(tmp_path, text)
    dhcp = config.node("a").dhcp
    assert dhcp is not None and "hunter2" in dhcp.lease_db  # the daemon gets the real URL
    for shown in (config_toml(config), config_json(config)):
        assert "hunter2" not in shown
        assert "postgresql://dhcp:***@db.example.org/leases" in shown
