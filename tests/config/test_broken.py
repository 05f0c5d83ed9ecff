"""Broken configs: each issue names the file, the line and the key, and says what to do.

Each case is the small valid config of ``helpers.BASE`` changed in one way; the
line the issue must point at carries the marker ``#!``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from imapha.config import ConfigError, load_config
from tests.config.helpers import BASE, write

MARK = "#!"


@dataclass(frozen=True)
class Case:
    id: str
    key: str
    message: str  # a substring of the issue's message
    append: str = ""  # added at the end (after the [[backends]] table!)
    prepend: str = ""  # added at the top, before [cluster]
    replace: tuple[str, str] | None = None

    def text(self) -> str:
        text = BASE
        if self.replace:
            assert self.replace[0] in text
            text = text.replace(self.replace[0], self.replace[1], 1)
        return self.prepend + text + self.append


DHCP = """
[dhcp]
interfaces = ["eth1"]
[[dhcp.subnets]]
subnet = "198.51.100.0/24"
"""

CASES = [
    Case("unknown key with suggestion", "proxy.max_conections",
         "unknown key (did you mean 'max_connections'?)",
         append='[proxy]\nmax_conections = 5  #!\n'),
    Case("key in the wrong section", "proxy.advert_interval",
         "'advert_interval' belongs in [vrrp]",
         append='[proxy]\nadvert_interval = "1s"  #!\n'),
    Case("malformed duration", "proxy.idle_timeout",
         "expected a duration like '2s', '100ms' or '1h30m', got '12.5.3'",
         append='[proxy]\nidle_timeout = "12.5.3"  #!\n'),
    Case("string for a number", "proxy.max_connections",
         'expected a whole number, got "many"',
         append='[proxy]\nmax_connections = "many"  #!\n'),
    Case("bad size unit", "proxy.max_line_length",
         "expected a size like '64KiB'",
         append='[proxy]\nmax_line_length = "64 parsecs"  #!\n'),
    Case("missing required key at the table line", "nodes.c.address",
         "missing required key 'address'",
         append='[nodes.c]  #!\ninterface = "eth0"\n'),
    Case("missing cluster name", "cluster.name", "missing required key 'name'",
         replace=('[cluster]\nname = "t"\n', '[cluster]  #!\nrun_dir = "/run/x/{node}"\n')),
    Case("VIP home not a node", "vips[0].home", "home 'c' is not a node (nodes: a, b)",
         replace=('home = "a"', 'home = "c"  #!')),
    Case("VIP home typo", "vips[0].home", "(did you mean 'a'?)",
         replace=('home = "a"', 'home = "aa"  #!')),
    Case("duplicate VRID on an interface", "vips[1].vrid",
         "VRID 51 is also used by vips[0] ('imap1') on interface eth0",
         append='[[vips]]\nname = "imap2"\naddress = "192.0.2.102"\nvrid = 51  #!\nhome = "b"\n'),
    Case("duplicate VIP address", "vips[1].address",
         "192.0.2.101 is also the address of vips[0]",
         append='[[vips]]\nname = "imap2"\naddress = "192.0.2.101/24"  #!\n'
                'vrid = 52\nhome = "b"\n'),
    Case("duplicate VIP name", "vips[1].name", "VIP name 'imap1' is also used by vips[0]",
         append='[[vips]]\nname = "imap1"  #!\naddress = "192.0.2.102"\nvrid = 52\nhome = "b"\n'),
    Case("VIP priority not above the others", "vips[0].priority", "must be above 100",
         replace=('home = "a"', 'home = "a"\npriority = 100  #!')),
    Case("unparsable backend address", "backends[0].address",
         "expected host:port like '192.0.2.1:143'",
         replace=('address = "192.0.2.21:143"', 'address = "192.0.2.21"  #!')),
    Case("backend port out of range", "backends[0].address",
         "must be a number from 1 to 65535",
         replace=('address = "192.0.2.21:143"', 'address = "192.0.2.21:99999"  #!')),
    Case("duplicate backend name", "backends[1].name",
         "backend name 'be1' is also used by backends[0]",
         append='[[backends]]\nname = "be1"  #!\naddress = "192.0.2.22:143"\n'),
    Case("two roles on one port", "backend.imap[0]",
         "0.0.0.0:143 clashes with proxy.imap[0]",
         append='[backend]\nimap = ["0.0.0.0:143"]  #!\n'),
    Case("wildcard clashes with a specific address", "backend.imap[0]",
         "0.0.0.0:143 clashes with proxy.imap[0] (192.0.2.101:143)",
         append='[proxy]\nimap = ["192.0.2.101:143"]\n[backend]\nimap = ["0.0.0.0:143"]  #!\n'),
    Case("metrics shared by two roles", "vrrp.metrics",
         "127.0.0.1:9100 clashes with proxy.metrics",
         append='[proxy]\nmetrics = "127.0.0.1:9100"\n[vrrp]\nmetrics = "127.0.0.1:9100"  #!\n'),
    Case("control socket shared by two roles", "vrrp.control",
         "control socket /run/x/a.sock is also the proxy role's",
         append='[proxy]\ncontrol = "/run/x/{node}.sock"\n'
                '[vrrp]\ncontrol = "/run/x/{node}.sock"  #!\n'),
    Case("control socket path too long", "proxy.control",
         "Unix sockets allow at most 107",
         append=f'[proxy]\ncontrol = "/run/{"x" * 110}.sock"  #!\n'),
    Case("DHCP pool outside its subnet", "dhcp.subnets[0].pools[0]",
         "pool 203.0.113.10-203.0.113.20 is not inside subnet 198.51.100.0/24",
         append=DHCP + 'pools = ["203.0.113.10-203.0.113.20"]  #!\n'),
    Case("reversed DHCP pool", "dhcp.subnets[0].pools[0]",
         "range '198.51.100.200-198.51.100.100' is reversed",
         append=DHCP + 'pools = ["198.51.100.200-198.51.100.100"]  #!\n'),
    Case("overlapping DHCP pools", "dhcp.subnets[0].pools[1]",
         "pool 198.51.100.128-198.51.100.255 overlaps dhcp.subnets[0].pools[0]",
         append=DHCP + 'pools = [\n  "198.51.100.100-198.51.100.150",\n'
                       '  "198.51.100.128/25",  #!\n]\n'),
    Case("DHCP pool with the broadcast address", "dhcp.subnets[0].pools[0]",
         "includes the network or broadcast address",
         append=DHCP + 'pools = ["198.51.100.200-198.51.100.255"]  #!\n'),
    Case("hot-standby without a VIP", "dhcp.vip", "hot-standby needs the name",
         append='\n[dhcp]  #!\nmode = "hot-standby"\ninterfaces = ["eth1"]\n'
                '[[dhcp.subnets]]\nsubnet = "198.51.100.0/24"\n'),
    Case("DHCP follows an unknown VIP", "dhcp.vip", "no [[vips]] entry named 'imap2'",
         append='\n[dhcp]\nmode = "hot-standby"\nvip = "imap2"  #!\ninterfaces = ["eth1"]\n'
                '[[dhcp.subnets]]\nsubnet = "198.51.100.0/24"\n'),
    Case("override for an unknown node", "nodes.c",
         "overrides for unknown node 'c'",
         append='[nodes.c.proxy]  #!\nmetrics = "127.0.0.1:9143"\n'),
    Case("unknown section under a node", "nodes.a.proxi",
         "unknown key (did you mean 'proxy'?)",
         append='[nodes.a.proxi]  #!\nworkers = 2\n'),
    Case("bad override reported at the override", "nodes.b.proxy.max_connections",
         "must be at least 1, got 0",
         append='[proxy]\nmax_connections = 10\n[nodes.b.proxy]\nmax_connections = 0  #!\n'),
    Case("advert_interval out of range", "vrrp.advert_interval",
         "must be from 10ms to 40.95s, got \"50s\"",
         append='[vrrp]\nadvert_interval = "50s"  #!\n'),
    Case("advert_interval below a centisecond step", "vrrp.advert_interval",
         "15ms is not a whole number of centiseconds",
         append='[vrrp]\nadvert_interval = "15ms"  #!\n'),
    Case("choice typo", "vrrp.transport",
         "expected one of 'multicast', 'unicast', 'udp', got \"multicas\" "
         "(did you mean 'multicast'?)",
         append='[vrrp]\ntransport = "multicas"  #!\n'),
    Case("unknown top-level section", "proxi", "unknown section or key (did you mean 'proxy'?)",
         append='[proxi]  #!\nworkers = 2\n'),
    Case("TOML syntax error keeps its line", "", "TOML syntax error",
         append='[proxy]\nworkers = = 2  #!\n'),
    Case("line after a multi-line string", "proxy.workers", "must be from 1 to 256, got 0",
         append='[proxy]\nprobe_user = """\nsomeone\n"""\nworkers = 0  #!\n'),
    Case("key inside an inline table in an array", "vrrp.track_scripts[1].interval",
         "expected a duration like '2s', '100ms' or '1h30m', got 'fast'",
         append='[vrrp]\ntrack_scripts = [\n  { name = "nfs", command = "true" },\n'
                '  { name = "x", command = "true", interval = "fast" },  #!\n]\n'),
    Case("dotted key at top level", "proxy.workers", "must be from 1 to 256, got 0",
         prepend='proxy.workers = 0  #!\n'),
    Case("table where an array of tables belongs", "vrrp.track_files",
         "expected an array, got a table",
         append='[vrrp.track_files]  #!\nname = "x"\n'),
    Case("interface name too long", "nodes.b.interface",
         "expected a network interface name (1 to 15 characters)",
         replace=('address = "192.0.2.12"\ninterface = "eth0"',
                  'address = "192.0.2.12"\ninterface = "enp0s31f6-uplink-1"  #!')),
    Case("two nodes with one address", "nodes.b.address",
         "192.0.2.11 is also the address of node 'a'",
         replace=('address = "192.0.2.12"', 'address = "192.0.2.11"  #!')),
    Case("probe password twice", "proxy.probe_password_file",
         "set probe_password or probe_password_file, not both",
         append='[proxy]\nprobe_password = "x"\nprobe_password_file = "/etc/p"  #!\n'),
    Case("probe password without a user", "proxy.probe_user",
         "a probe password is set but probe_user is empty",
         append='[proxy]  #!\nprobe_password = "x"\n'),
    Case("network with host bits", "proxy.plaintext_auth_networks[0]",
         "'10.0.0.1/8' has host bits set; did you mean '10.0.0.0/8'?",
         append='[proxy]\nplaintext_auth_networks = ["10.0.0.1/8"]  #!\n'),
    Case("string where an array belongs", "proxy.imap",
         'expected an array, got "0.0.0.0:143" (write ["0.0.0.0:143"])',
         append='[proxy]\nimap = "0.0.0.0:143"  #!\n'),
    Case("IPv6 listener without brackets", "proxy.imaps[0]", "put an IPv6 address in brackets",
         append='[proxy]\nimaps = ["2001:db8::1:993"]  #!\n'),
    Case("VIP tracks a role the node lacks", "vips[0].track",
         "tracks 'backend' but the node has no backend role",
         replace=('home = "a"', 'home = "a"\ntrack = "backend"  #!')),
]


def _expected_line(text: str) -> int | None:
    lines = [i for i, line in enumerate(text.splitlines(), 1) if MARK in line]
    assert len(lines) <= 1, "one marker per case"
    return lines[0] if lines else None


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_broken_config_names_file_line_and_key(case: Case, tmp_path: Path) -> None:
    text = case.text()
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    issues = caught.value.issues
    matching = [i for i in issues if i.key == case.key and case.message in i.message]
    assert matching, f"no issue at {case.key!r} saying {case.message!r}; got:\n{caught.value}"
    issue = matching[0]
    assert issue.file == str(path)
    assert issue.line == _expected_line(text), str(issue)
    assert str(issue).startswith(f"{path}:{issue.line}: ")


def test_at_least_twenty_cases() -> None:
    assert len(CASES) >= 20


def test_every_issue_is_reported_at_once(tmp_path: Path) -> None:
    text = BASE.replace('home = "a"', 'home = "z"') + (
        '[proxy]\nworkers = 0\nmax_conections = 1\n'
        '[vrrp]\nadvert_interval = "1 minute"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    keys = [issue.key for issue in caught.value.issues]
    assert keys == ["vips[0].home", "proxy.workers", "proxy.max_conections",
                    "vrrp.advert_interval"]
    assert len(str(caught.value).splitlines()) == 4


def test_a_shared_problem_is_reported_once_not_per_node(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BASE + '[proxy]\nworkers = 0\n'))
    assert [i.key for i in caught.value.issues] == ["proxy.workers"]


def test_a_problem_of_one_node_says_which(tmp_path: Path) -> None:
    text = BASE + '[nodes.a.backend]\nimap = ["0.0.0.0:993"]\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    (issue,) = caught.value.issues
    assert issue.key == "nodes.a.backend.imap[0]"
    assert "clashes with proxy.imaps[0]" in issue.message


def test_unicast_needs_another_node(tmp_path: Path) -> None:
    text = BASE.replace('[nodes.b]\naddress = "192.0.2.12"\ninterface = "eth0"\n', "")
    text += '[vrrp]\ntransport = "unicast"\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    (issue,) = caught.value.issues
    assert issue.key == "vrrp.transport" and "there are none" in issue.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.toml")
    assert str(caught.value) == f"{tmp_path / 'nope.toml'}: cannot read: No such file or directory"


def test_no_nodes_and_no_backends(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[cluster]\nname = "x"\n'))
    messages = [i.message for i in caught.value.issues]
    assert any(m.startswith("no nodes") for m in messages)
    assert any(m.startswith("no [[backends]]") for m in messages)


def test_sections_are_checked_even_without_nodes(tmp_path: Path) -> None:
    text = '[cluster]\nname = "x"\n[proxy]\nworkers = 0\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert "<tmp>:4: proxy.workers: must be from 1 to 256, got 0".replace(
        "<tmp>", str(tmp_path / "imapha.toml")) in str(caught.value).splitlines()


def test_a_url_password_is_never_echoed(tmp_path: Path) -> None:
    text = BASE + '[dhcp]\nlease_db = "mysql://dhcp:hunter2@db/leases"\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert "hunter2" not in str(caught.value)
    assert 'got "mysql://dhcp:***@db/leases"' in str(caught.value)


def test_a_secret_is_never_echoed(tmp_path: Path) -> None:
    text = BASE + '[proxy]\nprobe_password = 123456789\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    (issue,) = caught.value.issues
    assert issue.key == "proxy.probe_password" and "123456789" not in str(caught.value)


@pytest.mark.parametrize(("text", "message"), [
    ('[proxy]\ncontrol = "{rundir}/p.sock"\n',
     "unknown placeholder {rundir} in \"{rundir}/p.sock\" "
     "(placeholders here: {node}, {run_dir}, {state_dir})"),
    ('[[backends]]\nname = "be2"\naddress = "192.0.2.22:993"\ntls_ca = "/etc/{node}.pem"\n',
     "unknown placeholder {node} in \"/etc/{node}.pem\" (placeholders here: none)"),
])
def test_unknown_placeholders(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BASE + text))
    assert [i.message for i in caught.value.issues] == [message]


def test_run_dir_cannot_use_itself(tmp_path: Path) -> None:
    text = BASE.replace('name = "t"\n', 'name = "t"\nrun_dir = "{run_dir}/x"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert {i.key for i in caught.value.issues} == {"cluster.run_dir"}
    assert "placeholders here: {node}" in str(caught.value)


def test_node_issues_are_reported_even_when_cluster_is_wrong(tmp_path: Path) -> None:
    text = BASE.replace('name = "t"\n', "") + '[nodes.a.proxy]\nworkers = 0\n'
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert [i.key for i in caught.value.issues] == ["cluster.name", "nodes.a.proxy.workers"]
