"""The cluster config's ``[dhcp]`` section as the core's :class:`dhcp.network.ServerConfig`.

The server identifier (option 54) is where clients send renewals, so it must
reach whichever node answers: the DHCP VIP in hot-standby mode (it follows the
active node), the node's own address in split mode (each node answers its own
clients). Both nodes serve the same subnets, read from the shared file.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

from dhcp.network import Pool, ServerConfig, Subnet
from dhcp.sqlite_store import SQLiteStore
from dhcp.store import LeaseStore
from imapha.config import ClusterConfig, NodeConfig


class DhcpConfigError(Exception):
    """The section cannot be served as it is; the message names the key."""


def dhcp_nodes(cluster: ClusterConfig) -> list[str]:
    """The nodes with the dhcp role, sorted (index 0 owns the lower pool halves)."""
    return sorted(name for name, node in cluster.nodes.items() if "dhcp" in node.roles)


def peer_of(cluster: ClusterConfig, node: str) -> NodeConfig | None:
    others = [name for name in dhcp_nodes(cluster) if name != node]
    if len(others) > 1:
        raise DhcpConfigError(f"dhcp: {len(others) + 1} nodes have the dhcp role; failover "
                              "pairs two servers")
    return cluster.node(others[0]) if others else None


def server_id(cluster: ClusterConfig, node: str) -> IPv4Address:
    section = cluster.node(node).dhcp
    assert section is not None
    if section.mode == "hot-standby":
        if not section.vip:
            raise DhcpConfigError("dhcp.vip: hot-standby needs the VIP that follows the "
                                  "active server")
        address = cluster.vip(section.vip).address.ip
    else:
        address = cluster.node(node).address
    if not isinstance(address, IPv4Address):
        raise DhcpConfigError(f"dhcp: the server identifier {address} is not IPv4")
    return address


def server_config(cluster: ClusterConfig, node: str) -> ServerConfig:
    section = cluster.node(node).dhcp
    if section is None:
        raise DhcpConfigError(f"dhcp: node {node} has no [dhcp] section")
    subnets = []
    for item in section.subnets:
        lease = max(1, int(item.lease_time))
        subnets.append(Subnet(
            item.subnet,
            pools=tuple(Pool(p.first, p.last) for p in item.pools),
            routers=item.routers,
            dns_servers=item.dns,
            domain_name=item.domain or None,
            lease_time=lease,
            max_lease_time=lease,
            min_lease_time=min(60, lease),
        ))
    try:
        return ServerConfig(
            server_id(cluster, node),
            tuple(subnets),
            authoritative=section.authoritative,
            decline_quarantine=max(1.0, section.decline_probation),
        )
    except ValueError as exc:
        raise DhcpConfigError(f"dhcp.subnets: {exc}") from None


def store_path(lease_db: str) -> Path:
    if lease_db.startswith("sqlite://"):
        return Path(lease_db[len("sqlite://"):])
    raise DhcpConfigError("dhcp.lease_db: sqlite:///path or postgresql://... expected")


def is_postgresql(lease_db: str) -> bool:
    return lease_db.startswith(("postgresql://", "postgres://"))


def open_store(lease_db: str) -> LeaseStore:
    """The store ``lease_db`` names: ``sqlite:///path`` or a ``postgresql://`` URI."""
    if is_postgresql(lease_db):
        from dhcp.pg_store import PgStore

        return PgStore(lease_db)
    path = store_path(lease_db)
    path.parent.mkdir(parents=True, exist_ok=True)
    return SQLiteStore(path)
