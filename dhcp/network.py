"""What the server serves: subnets, their dynamic pools, shared networks, timers.

Theory of operation
-------------------
A :class:`Subnet` is one IPv4 network (the link a client is on, as seen through
a relay's giaddr or the receiving interface), with zero or more dynamic
:class:`Pool` ranges and the parameters handed to its clients. Subnets with the
same ``shared_network`` name are one physical link carrying several networks
(ISC's "shared-network"): a client on any of them may be given an address from
any of them. A subnet with no name is a shared network of its own.

:class:`ServerConfig` validates the whole set when it is built (no overlapping
subnets or pools, pools inside their subnet and off its network and broadcast
addresses, lease times in order) so the logic never meets a bad configuration.
The cluster TOML's ``[dhcp]`` section is turned into these by the config loader.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from dhcp.options import Opt, Options, OptionValue


@dataclass(frozen=True, slots=True)
class Pool:
    """An inclusive range of dynamically assignable addresses."""

    first: IPv4Address
    last: IPv4Address

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise ValueError(f"pool {self.first}-{self.last} is empty")

    def __contains__(self, address: object) -> bool:
        return isinstance(address, IPv4Address) and self.first <= address <= self.last

    def __iter__(self) -> Iterator[IPv4Address]:
        for n in range(int(self.first), int(self.last) + 1):
            yield IPv4Address(n)

    def __len__(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class Subnet:
    network: IPv4Network
    pools: tuple[Pool, ...] = ()
    routers: tuple[IPv4Address, ...] = ()
    dns_servers: tuple[IPv4Address, ...] = ()
    domain_name: str | None = None
    lease_time: int = 3600
    max_lease_time: int = 86400
    min_lease_time: int = 60
    options: Options = field(default_factory=Options)
    shared_network: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.min_lease_time <= self.lease_time <= self.max_lease_time < 2**32 - 1:
            raise ValueError(f"subnet {self.network}: need 0 < min <= lease <= max lease time")
        for pool in self.pools:
            if pool.first not in self.network or pool.last not in self.network:
                raise ValueError(f"pool {pool} is not inside subnet {self.network}")
            if self.network.prefixlen < 31 and (
                self.network.network_address in pool or self.network.broadcast_address in pool
            ):
                raise ValueError(f"pool {pool} includes the network or broadcast address")
        ordered = sorted(self.pools, key=lambda pool: pool.first)
        for a, b in itertools.pairwise(ordered):
            if b.first <= a.last:
                raise ValueError(f"pools {a} and {b} overlap")

    def in_pool(self, address: IPv4Address) -> bool:
        return any(address in pool for pool in self.pools)

    def parameters(self) -> dict[int, OptionValue]:
        """The options this subnet's clients get (RFC 2132), in sending order."""
        params: dict[int, OptionValue] = {
            Opt.SUBNET_MASK: self.network.netmask,
            Opt.BROADCAST_ADDRESS: self.network.broadcast_address,
        }
        if self.routers:
            params[Opt.ROUTERS] = self.routers
        if self.dns_servers:
            params[Opt.DNS_SERVERS] = self.dns_servers
        if self.domain_name:
            params[Opt.DOMAIN_NAME] = self.domain_name
        for code, value in self.options:
            params[code] = value
        return params


@dataclass(frozen=True)
class ServerConfig:
    """Everything the logic needs besides the store and the registrations."""

    server_id: IPv4Address
    subnets: tuple[Subnet, ...]
    authoritative: bool = True
    offer_hold: float = 30.0
    decline_quarantine: float = 86400.0
    probe: bool = False  # ping/ARP a new address before offering it
    _links: dict[IPv4Network, tuple[Subnet, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if self.offer_hold <= 0 or self.decline_quarantine <= 0:
            raise ValueError("offer_hold and decline_quarantine must be positive")
        nets = sorted(self.subnets, key=lambda s: s.network)
        for a, b in itertools.pairwise(nets):
            if a.network.overlaps(b.network):
                raise ValueError(f"subnets {a.network} and {b.network} overlap")
        for subnet in self.subnets:
            if subnet.in_pool(self.server_id):
                raise ValueError(f"server_id {self.server_id} is inside a pool of {subnet.network}")
        groups: dict[str, list[Subnet]] = {}
        for subnet in self.subnets:
            if subnet.shared_network is not None:
                groups.setdefault(subnet.shared_network, []).append(subnet)
        for subnet in self.subnets:
            name = subnet.shared_network
            self._links[subnet.network] = tuple(groups[name]) if name is not None else (subnet,)

    def subnet_of(self, address: IPv4Address) -> Subnet | None:
        for subnet in self.subnets:
            if address in subnet.network:
                return subnet
        return None

    def link_of(self, address: IPv4Address) -> tuple[Subnet, ...]:
        """The subnets of the shared network ``address`` is on (empty if none)."""
        subnet = self.subnet_of(address)
        return () if subnet is None else self._links[subnet.network]
