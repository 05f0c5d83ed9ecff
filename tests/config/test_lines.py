"""The key -> line index, on the TOML shapes operators write."""

from __future__ import annotations

import tomllib

from imapha.config.lines import dotted, index_lines, line_of

TEXT = '''\
# a comment with [brackets] and "quotes"
[cluster]
name = "cs"  # trailing comment
[nodes.a]
address = "192.0.2.11"
[nodes.a.proxy]
metrics = "x"
[[vips]]
name = "one"
[[vips]]
name = """two
lines"""
vrid = 3
[vrrp]
hooks = { master = "/x", backup = "" }
track_scripts = [
  { name = "nfs", command = "a ] b } c # d", weight = -50 },
  # between elements
  { name = "x" },
]
"quoted.key" = "it's"
a.b.c = [1,
  2]
[[dhcp.subnets]]
subnet = "x"
pools = ["a", 'b']
[[dhcp.subnets]]
subnet = "y"
[[dhcp.subnets.options]]
z = 1
[dhcp]
mode = "split"
literal = \'\'\'
[not.a.table]
\'\'\'
after = 1
'''


def test_index() -> None:
    tomllib.loads(TEXT)  # the fixture is valid TOML
    lines = index_lines(TEXT)
    expect = {
        ("cluster",): 2, ("cluster", "name"): 3,
        ("nodes", "a"): 4, ("nodes", "a", "proxy", "metrics"): 7,
        ("vips", 0): 8, ("vips", 0, "name"): 9, ("vips", 1): 10, ("vips", 1, "vrid"): 13,
        ("vrrp", "hooks", "backup"): 15,
        ("vrrp", "track_scripts", 0, "weight"): 17, ("vrrp", "track_scripts", 1): 19,
        ("vrrp", "quoted.key"): 21, ("vrrp", "a", "b", "c", 1): 23,
        ("dhcp", "subnets", 0, "pools", 1): 26, ("dhcp", "subnets", 1, "subnet"): 28,
        ("dhcp", "subnets", 1, "options", 0, "z"): 30,
        ("dhcp",): 31,  # its header, though [[dhcp.subnets]] came first
        ("dhcp", "after"): 36,
    }
    assert {k: lines.get(k) for k in expect} == expect
    assert ("not", "a", "table") not in lines


def test_fallback_to_enclosing_table() -> None:
    lines = index_lines(TEXT)
    assert line_of(lines, ("vips", 1, "home")) == 10
    assert line_of(lines, ("nodes", "a", "interface")) == 4
    assert line_of(lines, ("nowhere",)) is None


def test_dotted_display() -> None:
    assert dotted(("vips", 1, "vrid")) == "vips[1].vrid"
    assert dotted(("nodes", "mx-a", "proxy")) == "nodes.mx-a.proxy"
    assert dotted(("vrrp", "quoted.key")) == 'vrrp."quoted.key"'


def test_never_raises_on_odd_input() -> None:
    assert index_lines("[unterminated\nx = ") == {}
