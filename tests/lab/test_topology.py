"""Building lab topologies: reachability, TCP, multicast, addressing rules."""

from __future__ import annotations

import ipaddress
import socket
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imapha.lab import ALLOWED_NETWORKS, AddressNotAllowed, Lab, LabError, netns
from imapha.lab.fixtures import TwoNodeLab, need_lab_prerequisites
from imapha.lab.topology import check_address
from tests.lab.helpers import (
    ECHO_SERVER,
    eventually,
    multicast_listener,
    received,
    send_multicast,
    tcp_echo,
)


def test_two_hosts_and_a_client_ping_each_other_and_talk_tcp(two_node_lab: TwoNodeLab) -> None:
    a, b, c = two_node_lab.a, two_node_lab.b, two_node_lab.client
    for src, dst in [(a, b), (b, a), (c, a), (c, b), (a, c), (b, c)]:
        assert src.ping(dst.address), f"{src.name} cannot ping {dst.name}"

    server = a.spawn([sys.executable, "-c", ECHO_SERVER, "7001"])
    assert eventually(lambda: "listening" in server.output()), server.output()
    assert tcp_echo(c, a.address, 7001)
    assert tcp_echo(b, a.address, 7001)
    assert server.pid in a.pids()


def test_multicast_crosses_the_bridge(two_node_lab: TwoNodeLab) -> None:
    a, b, c = two_node_lab.a, two_node_lab.b, two_node_lab.client
    with multicast_listener(b) as on_b, multicast_listener(c) as on_c:
        payload = send_multicast(a)
        assert received(on_b, payload)
        assert received(on_c, payload)


def test_a_host_on_two_networks_and_an_addressless_dhcp_client(lab: Lab) -> None:
    a = lab.add_host("a", ["192.0.2.11/24", "198.51.100.11/24"])
    b = lab.add_host("b", ["192.0.2.12/24"])
    d = lab.add_client("d", networks=["198.51.100.0/24"])
    assert [i.name for i in a.interfaces] == ["eth0", "eth1"]
    assert a.ping(b.address)
    assert d.addresses == []
    shown = d.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
    assert shown.strip() == ""
    assert "state UP" in d.run(["ip", "link", "show", "dev", "eth0"]).stdout

    # A broadcast on the DHCP network reaches the address-less client, as a
    # DHCPOFFER would, and does not leak onto the other network.
    with d.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("0.0.0.0", 6868))
        listener.settimeout(2.0)
        with a.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            sender.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth1")
            sender.sendto(b"offer", ("255.255.255.255", 6868))
        data, (source, _) = listener.recvfrom(64)
    assert (data, source) == (b"offer", "198.51.100.11")
    assert not b.ping("198.51.100.11", wait=0.3)  # no route: separate network


def test_clients_without_addresses_get_the_next_free_one(lab: Lab) -> None:
    first = lab.add_client("c1")
    second = lab.add_client("c2")
    assert (first.address, second.address) == ("192.0.2.100", "192.0.2.101")
    assert first.ping(second.address)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1/24",
        "192.168.1.5/24",
        "8.8.8.8/32",
        "192.0.2.0/24",
        "192.0.2.255/24",
        "192.0.2.11",
        "192.0.2.11/16",
        "not-an-address/24",
        "2001:db8::1/64",
    ],
)
def test_addresses_outside_the_documentation_networks_are_refused(lab: Lab, address: str) -> None:
    with pytest.raises(AddressNotAllowed):
        lab.add_host("x", [address])
    assert "x" not in lab.hosts
    assert not netns.exists(f"{lab.prefix}-x")


def test_duplicate_names_and_addresses_are_refused(lab: Lab) -> None:
    lab.add_host("a", ["203.0.113.1/24"])
    with pytest.raises(LabError, match="already"):
        lab.add_host("a", ["203.0.113.2/24"])
    with pytest.raises(LabError, match="already"):
        lab.add_host("b", ["203.0.113.1/24"])


@given(
    address=st.ip_addresses(v=4),
    prefixlen=st.integers(min_value=24, max_value=30),
)
def test_check_address_accepts_exactly_the_documentation_networks(
    address: ipaddress.IPv4Address, prefixlen: int
) -> None:
    iface = ipaddress.IPv4Interface(f"{address}/{prefixlen}")
    inside = any(iface.network.subnet_of(n) for n in ALLOWED_NETWORKS)
    edge = address in (iface.network.network_address, iface.network.broadcast_address)
    if inside and not edge:
        assert check_address(str(iface)) == iface
    else:
        with pytest.raises(AddressNotAllowed):
            check_address(str(iface))


def test_build_and_teardown_of_two_hosts_and_a_client_is_quick(tmp_path: object) -> None:
    need_lab_prerequisites()
    start = time.monotonic()
    with Lab() as lab:
        prefix = lab.prefix
        lab.add_host("a", ["192.0.2.11/24"])
        lab.add_host("b", ["192.0.2.12/24"])
        lab.add_client("c")
        built = time.monotonic() - start
    total = time.monotonic() - start
    print(f"\nlab build {built * 1000:.0f} ms, build+teardown {total * 1000:.0f} ms")
    assert netns.lab_namespaces(prefix) == []
    assert total < 15.0  # sanity bound only; bench/ measures speed


def test_sysctl_is_per_host(two_node_lab: TwoNodeLab) -> None:
    a, b = two_node_lab.a, two_node_lab.b
    assert a.sysctl("net.ipv4.ip_nonlocal_bind") == "0"
    assert a.sysctl("net.ipv4.ip_nonlocal_bind", 1) == "1"
    assert a.sysctl("net.ipv4.conf.eth0.arp_notify", "1") == "1"
    assert b.sysctl("net.ipv4.ip_nonlocal_bind") == "0"
    with pytest.raises(LabError):
        a.sysctl("../../etc/passwd")
