"""The static registrations file: validation with file/line/key, atomic reload."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

from dhcp.registrations import Registrations, load
from tests.dhcp.lab import SUBNETS, mac

GOOD = """\
# campus printers and servers
[[host]]
mac = "52:54:00:00:00:32"
address = "192.0.2.10"
hostname = "printer"

[[host]]
client_id = "00:6e:61:73"
address = "192.0.2.150"   # inside the dynamic pool
hostname = "nas.lab.example"

[[host]]
mac = "52-54-00-00-00-33"
address = "198.51.100.30"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hosts.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_loads_with_a_warning_for_the_pool_address(tmp_path: Path) -> None:
    result = load(write(tmp_path, GOOD), SUBNETS)
    assert result.ok and result.errors == ()
    hosts = result.registrations
    assert isinstance(hosts, Registrations) and len(hosts) == 3
    printer = hosts.for_client(None, 1, mac(50))
    assert printer is not None and printer.address == IPv4Address("192.0.2.10")
    assert printer.hostname == "printer"
    nas = hosts.for_client(b"\x00nas", 1, mac(99))
    assert nas is not None and nas.address == IPv4Address("192.0.2.150")
    assert hosts.for_client(None, 6, mac(50)) is None  # not Ethernet: MAC does not apply
    assert hosts.owner_of(IPv4Address("198.51.100.30")) is hosts.for_client(None, 1, mac(51))
    [warning] = result.warnings
    assert (warning.line, warning.key) == (9, "address")
    assert "dynamic pool" in warning.message
    assert str(warning).startswith(f"{tmp_path / 'hosts.toml'}:9: address:")


def test_every_problem_is_reported_with_its_line_and_key(tmp_path: Path) -> None:
    text = """\
[[host]]
mac = "52:54:00:00:00:32"
address = "192.0.2.10"

[[host]]
mac = "52:54:00:00:00:32"
address = "192.0.2.10"

[[host]]
mac = "52:54:00:zz"
address = "10.1.2.3"
colour = "blue"

[[host]]
address = "192.0.2.11"
hostname = "bad_name!"

[[host]]
client_id = "01"
address = "192.0.2.255"
"""
    result = load(write(tmp_path, text), SUBNETS)
    assert not result.ok and result.registrations is None
    found = {(p.line, p.key) for p in result.errors}
    assert found == {
        (6, "mac"),  # duplicate MAC
        (7, "address"),  # duplicate address
        (10, "mac"),  # malformed MAC
        (11, "address"),  # outside every subnet
        (12, "colour"),  # unknown key
        (15, "address"),  # neither mac nor client_id
        (16, "hostname"),
        (19, "client_id"),  # shorter than 2 octets
        (20, "address"),  # broadcast address
    }
    duplicate = next(p for p in result.errors if p.line == 6)
    assert "line 2" in duplicate.message


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    result = load(write(tmp_path, GOOD + '\n[[host]]\nmac = "52:54:00:00:00:40\n'), SUBNETS)
    assert not result.ok
    [problem] = result.errors
    assert problem.line == 17 and "TOML syntax" in problem.message


def test_missing_file_is_an_error_not_an_exception(tmp_path: Path) -> None:
    result = load(tmp_path / "absent.toml", SUBNETS)
    assert not result.ok and "cannot read" in result.errors[0].message


def test_a_bad_edit_leaves_the_old_set_in_force(tmp_path: Path) -> None:
    """The caller's reload pattern: keep the old set unless the new one loads whole."""
    path = write(tmp_path, GOOD)
    first = load(path, SUBNETS)
    assert first.registrations is not None
    in_force = first.registrations
    path.write_text(GOOD.replace('address = "198.51.100.30"', 'address = "192.0.2.10"'))
    second = load(path, SUBNETS)
    assert not second.ok
    in_force = second.registrations or in_force
    assert in_force is first.registrations and len(in_force) == 3


def test_empty_file_is_an_empty_set(tmp_path: Path) -> None:
    result = load(write(tmp_path, "# nobody yet\n"), SUBNETS)
    assert result.registrations is not None and len(result.registrations) == 0
