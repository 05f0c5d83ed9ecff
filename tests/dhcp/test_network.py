"""Server configuration is checked when it is built: the logic never meets a bad one."""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network

import pytest

from dhcp.network import Pool, ServerConfig, Subnet

ip = IPv4Address
NET = IPv4Network("192.0.2.0/24")


def test_a_good_configuration_groups_shared_networks() -> None:
    a = Subnet(IPv4Network("203.0.113.0/25"), shared_network="campus")
    b = Subnet(IPv4Network("203.0.113.128/25"), shared_network="campus")
    alone = Subnet(NET, pools=(Pool(ip("192.0.2.100"), ip("192.0.2.199")),))
    config = ServerConfig(ip("192.0.2.1"), (a, b, alone))
    assert config.link_of(ip("203.0.113.200")) == (a, b)
    assert config.link_of(ip("192.0.2.7")) == (alone,)
    assert config.link_of(ip("198.51.100.1")) == ()
    assert len(alone.pools[0]) == 100 and ip("192.0.2.150") in alone.pools[0]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Pool(ip("192.0.2.9"), ip("192.0.2.1")), "empty"),
        (lambda: Subnet(NET, pools=(Pool(ip("192.0.2.250"), ip("192.0.3.5")),)), "not inside"),
        (lambda: Subnet(NET, pools=(Pool(ip("192.0.2.0"), ip("192.0.2.5")),)), "network or"),
        (lambda: Subnet(NET, pools=(Pool(ip("192.0.2.250"), ip("192.0.2.255")),)), "network or"),
        (
            lambda: Subnet(
                NET,
                pools=(
                    Pool(ip("192.0.2.10"), ip("192.0.2.20")),
                    Pool(ip("192.0.2.20"), ip("192.0.2.30")),
                ),
            ),
            "overlap",
        ),
        (lambda: Subnet(NET, lease_time=100, max_lease_time=50), "lease"),
        (lambda: Subnet(NET, min_lease_time=0), "lease"),
        (
            lambda: ServerConfig(
                ip("192.0.2.1"), (Subnet(NET), Subnet(IPv4Network("192.0.2.128/25")))
            ),
            "overlap",
        ),
        (
            lambda: ServerConfig(
                ip("192.0.2.150"),
                (Subnet(NET, pools=(Pool(ip("192.0.2.100"), ip("192.0.2.199")),)),),
            ),
            "server_id",
        ),
        (lambda: ServerConfig(ip("192.0.2.1"), (), offer_hold=0), "positive"),
    ],
)
def test_bad_configurations_are_refused(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()
