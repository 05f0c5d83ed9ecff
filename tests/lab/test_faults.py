"""Faults: links cut and restored, partitions that block exactly host-to-host traffic."""

from __future__ import annotations

import sys

import pytest

from imapha.lab import Lab
from imapha.lab.fixtures import TwoNodeLab
from imapha.lab.topology import Side
from tests.lab.helpers import (
    ECHO_SERVER,
    eventually,
    multicast_listener,
    received,
    send_multicast,
    tcp_echo,
)


@pytest.mark.parametrize("side", ["bridge", "host"])
def test_link_down_cuts_the_host_off_and_link_up_restores_it(
    two_node_lab: TwoNodeLab, side: Side
) -> None:
    a, b, c = two_node_lab.a, two_node_lab.b, two_node_lab.client
    assert c.ping(a.address)

    a.link_down(side=side)
    link = a.run(["ip", "link", "show", "dev", "eth0"]).stdout
    assert ("NO-CARRIER" if side == "bridge" else "state DOWN") in link
    assert not c.ping(a.address, wait=0.3)
    assert not a.ping(b.address, wait=0.3)
    assert c.ping(b.address)  # the rest of the network is untouched

    a.link_up(side=side)
    assert eventually(lambda: c.ping(a.address, wait=0.3), timeout=5.0)
    assert a.ping(b.address)


def test_partition_blocks_exactly_host_to_host_traffic_and_heal_restores_it(
    two_node_lab: TwoNodeLab,
) -> None:
    lab, a, b, c = two_node_lab.lab, two_node_lab.a, two_node_lab.b, two_node_lab.client
    servers = [host.spawn([sys.executable, "-c", ECHO_SERVER, "7002"]) for host in (a, b)]
    assert eventually(lambda: all("listening" in s.output() for s in servers))
    assert tcp_echo(b, a.address, 7002)

    lab.partition(a, b)
    assert lab.partitions == {frozenset({"a", "b"})}
    # unicast between the two hosts: ICMP and TCP, both directions
    assert not a.ping(b.address, wait=0.3)
    assert not b.ping(a.address, wait=0.3)
    assert not tcp_echo(b, a.address, 7002, timeout=0.5)
    assert not tcp_echo(a, b.address, 7002, timeout=0.5)
    # clients still reach both
    assert c.ping(a.address) and c.ping(b.address)
    assert tcp_echo(c, a.address, 7002) and tcp_echo(c, b.address, 7002)
    # multicast (a VRRP advert's path): each host's reaches the client, not the peer
    with (
        multicast_listener(a) as on_a,
        multicast_listener(b) as on_b,
        multicast_listener(c) as on_c,
    ):
        from_a = send_multicast(a)
        assert received(on_c, from_a)
        assert not received(on_b, from_a, timeout=0.5)
        from_b = send_multicast(b)
        assert received(on_c, from_b)
        assert not received(on_a, from_b, timeout=0.5)

        lab.heal()
        assert lab.partitions == set()
        assert eventually(lambda: a.ping(b.address, wait=0.3))
        assert tcp_echo(b, a.address, 7002)
        from_a = send_multicast(a)
        assert received(on_b, from_a)
        from_b = send_multicast(b)
        assert received(on_a, from_b)


def test_partition_is_pairwise_and_heals_one_pair_at_a_time(lab: Lab) -> None:
    a = lab.add_host("a", ["192.0.2.11/24", "198.51.100.11/24"])
    b = lab.add_host("b", ["192.0.2.12/24", "198.51.100.12/24"])
    x = lab.add_host("x", ["192.0.2.13/24"])
    lab.partition(a, [b, x])
    # cut on every network the hosts share
    assert not a.ping("192.0.2.12", wait=0.3) and not a.ping("198.51.100.12", wait=0.3)
    assert not a.ping(x.address, wait=0.3)
    assert b.ping(x.address)  # b and x were not partitioned from each other

    lab.heal(a, x)
    assert lab.partitions == {frozenset({"a", "b"})}
    assert eventually(lambda: a.ping(x.address, wait=0.3))
    assert not a.ping(b.address, wait=0.3)
    lab.heal()
    assert eventually(lambda: a.ping("198.51.100.12", wait=0.3))
