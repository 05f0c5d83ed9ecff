"""Per-node overrides, placeholders, defaults and the accessor methods."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from imapha.config import ROLES, ConfigError, HostPort, loads_config
from tests.config.helpers import BASE, load_text


def test_defaults_fill_every_section(tmp_path: Path) -> None:
    config = load_text(tmp_path, BASE)
    a = config.node("a")
    assert a.run_dir == Path("/run/imapha/a") and a.state_dir == Path("/var/lib/imapha/a")
    assert a.proxy.imap == (HostPort("0.0.0.0", 143),)
    assert a.proxy.imaps == (HostPort("0.0.0.0", 993),)
    assert a.proxy.idle_timeout == 35 * 60 and a.proxy.max_line_length == 64 * 1024
    assert a.proxy.forward == "id" and a.proxy.user_map is None and a.proxy.metrics is None
    assert a.vrrp.advert_interval == 1.0 and a.vrrp.garp_interval == 0.1
    assert a.vrrp.hooks.master == "" and a.vrrp.track_scripts == ()
    assert a.address == ipaddress.IPv4Address("192.0.2.11")
    vip = config.vips[0]
    assert vip.address == ipaddress.IPv4Interface("192.0.2.101/32")
    assert (vip.track, vip.priority, vip.interface) == ("proxy", 150, None)
    assert config.backends[0].address == HostPort("192.0.2.21", 143)
    assert config.backends[0].tls == "none" and config.backends[0].weight == 1.0


def test_roles_follow_the_sections(tmp_path: Path) -> None:
    config = load_text(tmp_path, BASE)
    assert config.roles("a") == ("proxy", "vipd")
    config = load_text(tmp_path, BASE + '[backend]\n[dhcp]\ninterfaces = ["eth1"]\n'
                       '[[dhcp.subnets]]\nsubnet = "198.51.100.0/24"\n')
    assert config.roles("b") == ROLES
    config = load_text(tmp_path, BASE + '[nodes.b.backend]\nmaildir_root = "/srv/b"\n')
    assert config.roles("a") == ("proxy", "vipd")
    assert config.roles("b") == ("proxy", "backend", "vipd")
    with pytest.raises(ConfigError, match="node 'a' has no backend role"):
        config.control_socket("a", "backend")


def test_node_placeholder_in_paths(tmp_path: Path) -> None:
    text = BASE.replace('name = "t"\n', 'name = "t"\nrun_dir = "/run/t/{node}"\n'
                        'state_dir = "/var/lib/t/{node}"\n') + (
        '[backend]\nmaildir_root = "{state_dir}/mail"\npasswd_file = "/etc/{node}.passwd"\n'
        '[proxy]\nuser_map = "{run_dir}/../{node}.map"\n'
    )
    config = load_text(tmp_path, text)
    for name in ("a", "b"):
        node = config.node(name)
        assert node.run_dir == Path(f"/run/t/{name}")
        assert config.control_socket(name, "proxy") == Path(f"/run/t/{name}/proxy.sock")
        assert config.control_socket(name, "vipd") == Path(f"/run/t/{name}/vipd.sock")
        assert config.control_socket(name, "backend") == Path(f"/run/t/{name}/backend.sock")
        assert node.backend.maildir_root == Path(f"/var/lib/t/{name}/mail")
        assert node.backend.passwd_file == Path(f"/etc/{name}.passwd")
        assert node.proxy.user_map == Path(f"/run/t/{name}/../{name}.map")


def test_node_may_set_its_own_directories(tmp_path: Path) -> None:
    text = BASE.replace('interface = "eth0"\n', 'interface = "eth0"\nrun_dir = "/srv/run"\n', 1)
    config = load_text(tmp_path, text)
    assert config.node("a").run_dir == Path("/srv/run")
    assert config.control_socket("a", "proxy") == Path("/srv/run/proxy.sock")
    assert config.node("b").run_dir == Path("/run/imapha/b")


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    text = BASE.replace('name = "t"\n', 'name = "t"\nrun_dir = "run/{node}"\n')
    config = loads_config(text + '[proxy]\ntls_cert = "tls/cert.pem"\n', path=sub / "x.toml")
    assert config.node("a").run_dir == sub / "run" / "a"
    assert config.node("b").proxy.tls_cert == sub / "tls" / "cert.pem"


def test_override_replaces_one_key_for_one_node(tmp_path: Path) -> None:
    text = BASE + (
        '[proxy]\nmax_connections = 500\nmetrics = "127.0.0.1:9143"\n'
        '[vrrp]\nhooks = { master = "/bin/m", backup = "/bin/b" }\n'
        '[nodes.a.proxy]\nmetrics = "192.0.2.11:9143"\n'
        '[nodes.b.vrrp]\nhooks = { master = "/bin/other" }\nadvert_interval = "250ms"\n'
    )
    config = load_text(tmp_path, text)
    a, b = config.node("a"), config.node("b")
    assert config.metrics_address("a", "proxy") == ("192.0.2.11", 9143)
    assert config.metrics_address("b", "proxy") == ("127.0.0.1", 9143)
    assert a.proxy.max_connections == b.proxy.max_connections == 500
    assert a.vrrp.hooks.backup == "/bin/b"
    # An override replaces the whole value of its key, inline tables included.
    assert (b.vrrp.hooks.master, b.vrrp.hooks.backup) == ("/bin/other", "")
    assert (a.vrrp.advert_interval, b.vrrp.advert_interval) == (1.0, 0.25)
    assert config.metrics_address("a", "vipd") is None


def test_override_may_fix_a_per_node_clash(tmp_path: Path) -> None:
    """Two nodes on one machine: a shared value clashes, a per-node one does not."""
    text = BASE + '[backend]\nimap = ["0.0.0.0:143"]\n'
    with pytest.raises(ConfigError):
        load_text(tmp_path, text)
    text += ('[nodes.a.backend]\nimap = ["127.0.0.1:1143"]\n'
             '[nodes.b.backend]\nimap = ["[::1]:1143"]\n')
    config = load_text(tmp_path, text)
    assert config.node("b").backend.imap == (HostPort("::1", 1143),)


def test_vip_priority_and_interface_per_node(tmp_path: Path) -> None:
    text = BASE + '[[vips]]\nname = "dhcp1"\naddress = "198.51.100.2/24"\nvrid = 60\n' \
        'home = "b"\npriority = 200\ntrack = "none"\ninterface = "eth1"\n'
    config = load_text(tmp_path, text)
    imap1, dhcp1 = config.vips
    assert (imap1.priority_for("a"), imap1.priority_for("b")) == (150, 100)
    assert (dhcp1.priority_for("a"), dhcp1.priority_for("b")) == (100, 200)
    assert imap1.interface_for(config.node("a")) == "eth0"
    assert dhcp1.interface_for(config.node("a")) == "eth1"
    assert config.vip("dhcp1") is dhcp1
    assert dhcp1.address.network == ipaddress.IPv4Network("198.51.100.0/24")


def test_same_vrid_on_other_interface_or_family_is_fine(tmp_path: Path) -> None:
    text = BASE + (
        '[[vips]]\nname = "v6"\naddress = "2001:db8::101"\nvrid = 51\nhome = "a"\n'
        '[[vips]]\nname = "other"\naddress = "192.0.2.102"\nvrid = 51\nhome = "b"\n'
        'interface = "eth1"\n'
    )
    assert len(load_text(tmp_path, text).vips) == 3


def test_unknown_node_is_a_config_error(tmp_path: Path) -> None:
    config = load_text(tmp_path, BASE)
    with pytest.raises(ConfigError) as caught:
        config.node("c")
    (issue,) = caught.value.issues
    assert issue.key == "nodes.c" and "nodes: a, b" in issue.message
    assert config.node_names == ("a", "b")


def test_dhcp_section(tmp_path: Path) -> None:
    text = BASE + (
        '[[vips]]\nname = "dhcp1"\naddress = "198.51.100.2/24"\nvrid = 60\nhome = "a"\n'
        'track = "dhcp"\n'
        '[dhcp]\nmode = "hot-standby"\nvip = "dhcp1"\ninterfaces = ["eth1"]\n'
        '[[dhcp.subnets]]\nsubnet = "198.51.100.0/24"\n'
        'pools = ["198.51.100.100-198.51.100.149", "198.51.100.192/27"]\n'
        'routers = ["198.51.100.1"]\nlease_time = "2h"\n'
    )
    config = load_text(tmp_path, text)
    dhcp = config.node("b").dhcp
    assert dhcp is not None
    assert dhcp.lease_db == "sqlite:///var/lib/imapha/b/leases.db"
    assert dhcp.mclt == 3600 and dhcp.peer_port == 6470
    (subnet,) = dhcp.subnets
    assert [str(p) for p in subnet.pools] == ["198.51.100.100-198.51.100.149",
                                              "198.51.100.192-198.51.100.223"]
    assert subnet.pools[0].size == 50 and subnet.lease_time == 7200
    assert ipaddress.IPv4Address("198.51.100.120") in subnet.pools[0]


def test_dhcp_override_without_dhcp_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no \\[dhcp\\] section"):
        load_text(tmp_path, BASE + '[nodes.a.dhcp]\nmode = "split"\n')


def test_probe_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "probe").write_text("s3cret\n")
    text = BASE + '[proxy]\nprobe_user = "p"\nprobe_password_file = "probe"\n'
    config = load_text(tmp_path, text)
    assert config.node("a").proxy.probe_secret() == "s3cret"
    assert "s3cret" not in repr(config)


def test_config_is_immutable(tmp_path: Path) -> None:
    config = load_text(tmp_path, BASE)
    with pytest.raises(AttributeError):
        config.node("a").proxy.workers = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.nodes["c"] = config.node("a")  # type: ignore[index]
