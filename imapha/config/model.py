"""The config schema: one frozen dataclass per section, one field per key.

Theory of operation
-------------------
Every key's type, default and meaning is declared here and nowhere else: the
field's type is what code reads, ``meta(converter, raw_default)`` says how the
TOML value becomes it (see :mod:`imapha.config.convert`). Raw defaults are
written as in the TOML file, placeholders included, and validated like user
values. ``docs/config.md`` describes the same keys for operators (with which
of them a SIGHUP reload may change); the tests check the two agree.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from imapha.config import convert as c
from imapha.config.issues import ConfigError, ConfigIssue
from imapha.config.units import HostPort

ROLES = ("proxy", "backend", "vipd", "dhcp")
SECTION_OF_ROLE = {"proxy": "proxy", "backend": "backend", "vipd": "vrrp", "dhcp": "dhcp"}
ROLE_OF_SECTION = {section: role for role, section in SECTION_OF_ROLE.items()}
NON_HOME_PRIORITY = 100

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_duration = c.duration()


# -- [cluster] and [nodes.NAME] ------------------------------------------------------------
@dataclass(frozen=True)
class ClusterSection:
    name: str = field(metadata=c.meta(c.name))
    run_dir: str = field(metadata=c.meta(c.string, "/run/imapha/{node}"))
    state_dir: str = field(metadata=c.meta(c.string, "/var/lib/imapha/{node}"))


@dataclass(frozen=True)
class NodeSection:
    address: IPAddress = field(metadata=c.meta(c.ip_address))
    interface: str = field(metadata=c.meta(c.interface))
    run_dir: str | None = field(metadata=c.meta(c.optional(c.string), None))
    state_dir: str | None = field(metadata=c.meta(c.optional(c.string), None))


# -- [[vips]] ------------------------------------------------------------------------------
@dataclass(frozen=True)
class VipConfig:
    """One virtual IP: a VRRPv3 virtual router with a single address."""

    name: str = field(metadata=c.meta(c.name))
    address: IPInterface = field(metadata=c.meta(c.ip_interface))
    vrid: int = field(metadata=c.meta(c.integer(1, 255)))
    home: str = field(metadata=c.meta(c.string))
    track: Literal["proxy", "dhcp", "backend", "none"] = field(
        metadata=c.meta(c.choice("proxy", "dhcp", "backend", "none"), "proxy"))
    priority: int = field(metadata=c.meta(c.integer(1, 255), 150))
    interface: str | None = field(metadata=c.meta(c.optional(c.interface), None))

    def priority_for(self, node: str) -> int:
        """RFC 5798 §5.2.4 priority of ``node`` for this VIP: high at home, 100 elsewhere."""
        return self.priority if node == self.home else NON_HOME_PRIORITY

    def interface_for(self, node: NodeConfig) -> str:
        return self.interface or node.interface


# -- [vrrp] --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hooks:
    """Commands run on state changes (shell words; empty = none)."""

    master: str = field(metadata=c.meta(c.string, ""))
    backup: str = field(metadata=c.meta(c.string, ""))
    fault: str = field(metadata=c.meta(c.string, ""))
    stop: str = field(metadata=c.meta(c.string, ""))


@dataclass(frozen=True)
class TrackScript:
    name: str = field(metadata=c.meta(c.name))
    command: str = field(metadata=c.meta(c.string))
    interval: float = field(metadata=c.meta(c.duration(0.01), "2s"), )
    timeout: float = field(metadata=c.meta(c.duration(0.01), "2s"))
    weight: int = field(metadata=c.meta(c.integer(-254, 254), 0))


@dataclass(frozen=True)
class TrackFile:
    name: str = field(metadata=c.meta(c.name))
    path: Path = field(metadata=c.meta(c.path))
    weight: int = field(metadata=c.meta(c.integer(-254, 254), 0))


@dataclass(frozen=True)
class VrrpConfig:
    """The ``vipd`` role: VRRPv3 timers, transport, hooks and tracking."""

    # RFC 5798 §5.2.7: a 12-bit count of centiseconds.
    advert_interval: float = field(metadata=c.meta(c.duration(0.01, 40.95), "1s"))
    transport: Literal["multicast", "unicast", "udp"] = field(
        metadata=c.meta(c.choice("multicast", "unicast", "udp"), "multicast"))
    address_driver: Literal["netlink", "listener"] = field(
        metadata=c.meta(c.choice("netlink", "listener"), "netlink"))
    preempt: bool = field(metadata=c.meta(c.boolean, True))
    preempt_delay: float = field(metadata=c.meta(_duration, "0s"))
    takeover_when_not_ready: bool = field(metadata=c.meta(c.boolean, False))
    accept_mode: bool = field(metadata=c.meta(c.boolean, False))
    garp_count: int = field(metadata=c.meta(c.integer(0, 100), 5))
    garp_interval: float = field(metadata=c.meta(_duration, "100ms"))
    hook_timeout: float = field(metadata=c.meta(c.duration(0.001), "10s"))
    hooks: Hooks = field(metadata=c.meta(c.table(Hooks), {}))
    track_scripts: tuple[TrackScript, ...] = field(
        metadata=c.meta(c.array_of(c.table(TrackScript)), []))
    track_files: tuple[TrackFile, ...] = field(
        metadata=c.meta(c.array_of(c.table(TrackFile)), []))
    control: Path = field(metadata=c.meta(c.path, "{run_dir}/vipd.sock"))
    metrics: HostPort | None = field(metadata=c.meta(c.optional_listen, None))


# -- [proxy] and [[backends]] --------------------------------------------------------------
@dataclass(frozen=True)
class ProxyConfig:
    """The ``proxy`` role: listeners, TLS, limits, health checks."""

    imap: tuple[HostPort, ...] = field(metadata=c.meta(c.array_of(c.listen), ["0.0.0.0:143"]))
    imaps: tuple[HostPort, ...] = field(metadata=c.meta(c.array_of(c.listen), ["0.0.0.0:993"]))
    tls_cert: Path = field(metadata=c.meta(c.path, "/etc/imapha/tls/cert.pem"))
    tls_key: Path = field(metadata=c.meta(c.path, "/etc/imapha/tls/key.pem"))
    plaintext_auth_networks: tuple[IPNetwork, ...] = field(
        metadata=c.meta(c.array_of(c.network), []))
    prelogin_timeout: float = field(metadata=c.meta(c.duration(0.001), "60s"))
    idle_timeout: float = field(metadata=c.meta(c.duration(0.001), "35m"))
    max_connections: int = field(metadata=c.meta(c.integer(1), 10000))
    max_connections_per_ip: int = field(metadata=c.meta(c.integer(1), 100))
    max_prelogin_commands: int = field(metadata=c.meta(c.integer(1), 20))
    max_line_length: int = field(metadata=c.meta(c.size(1024), "64KiB"))
    max_literal_size: int = field(metadata=c.meta(c.size(0), "64KiB"))
    auth_penalty_max: float = field(metadata=c.meta(_duration, "15s"))
    login_retries: int = field(metadata=c.meta(c.integer(0, 10), 2))
    forward: Literal["id", "proxy-v2", "none"] = field(
        metadata=c.meta(c.choice("id", "proxy-v2", "none"), "id"))
    user_map: Path | None = field(metadata=c.meta(c.optional_path, None))
    probe_user: str = field(metadata=c.meta(c.string, ""))
    probe_password: str = field(metadata=c.meta(c.string, "", secret=True), repr=False)
    probe_password_file: Path | None = field(metadata=c.meta(c.optional_path, None))
    health_interval: float = field(metadata=c.meta(c.duration(0.01), "2s"))
    health_timeout: float = field(metadata=c.meta(c.duration(0.01), "2s"))
    health_fall: int = field(metadata=c.meta(c.integer(1, 100), 3))
    health_rise: int = field(metadata=c.meta(c.integer(1, 100), 2))
    drain_grace: float = field(metadata=c.meta(_duration, "30s"))
    workers: int = field(metadata=c.meta(c.integer(1, 256), 1))
    control: Path = field(metadata=c.meta(c.path, "{run_dir}/proxy.sock"))
    metrics: HostPort | None = field(metadata=c.meta(c.optional_listen, None))

    def probe_secret(self) -> str:
        """The probe password, read from ``probe_password_file`` when that is set."""
        if self.probe_password_file is not None:
            return self.probe_password_file.read_text().strip()
        return self.probe_password


@dataclass(frozen=True)
class BackendRef:
    """One IMAP server behind the proxy (the embedded backend or Dovecot)."""

    name: str = field(metadata=c.meta(c.name))
    address: HostPort = field(metadata=c.meta(c.remote))
    tls: Literal["none", "starttls", "implicit"] = field(
        metadata=c.meta(c.choice("none", "starttls", "implicit"), "none"))
    tls_verify: bool = field(metadata=c.meta(c.boolean, True))
    tls_ca: Path | None = field(metadata=c.meta(c.optional_path, None))
    weight: float = field(metadata=c.meta(c.positive_number, 1))
    proxy_protocol: bool = field(metadata=c.meta(c.boolean, False))


# -- [backend] -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BackendConfig:
    """The ``backend`` role: the embedded Maildir IMAP server."""

    imap: tuple[HostPort, ...] = field(metadata=c.meta(c.array_of(c.listen), ["0.0.0.0:1143"]))
    lmtp: HostPort | None = field(metadata=c.meta(c.optional_listen, None))
    maildir_root: Path = field(metadata=c.meta(c.path, "/srv/mail"))
    passwd_file: Path = field(metadata=c.meta(c.path, "/etc/imapha/passwd"))
    trusted_proxies: tuple[IPNetwork, ...] = field(metadata=c.meta(c.array_of(c.network), []))
    tls_cert: Path | None = field(metadata=c.meta(c.optional_path, None))
    tls_key: Path | None = field(metadata=c.meta(c.optional_path, None))
    control: Path = field(metadata=c.meta(c.path, "{run_dir}/backend.sock"))
    metrics: HostPort | None = field(metadata=c.meta(c.optional_listen, None))


# -- [dhcp] --------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class DhcpPool:
    """An inclusive address range ``first``..``last``."""

    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def __contains__(self, address: object) -> bool:
        return isinstance(address, ipaddress.IPv4Address) and self.first <= address <= self.last

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1


def _pool(value: object, at: c.At) -> DhcpPool:
    """``"198.51.100.100-198.51.100.199"`` or a CIDR block ``"198.51.100.128/25"``."""
    text = c.string(value, at)
    if "/" in text:
        net = c.ipv4_network(text, at)
        return DhcpPool(net.network_address, net.broadcast_address)
    first, sep, last = text.partition("-")
    try:
        if not sep:
            raise ValueError
        pool = DhcpPool(ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip()))
    except ValueError:
        raise c.Invalid(
            f"expected a range like '198.51.100.100-198.51.100.199', got {c.show(text)}"
        ) from None
    if pool.first > pool.last:
        raise c.Invalid(f"range {text!r} is reversed: {pool.first} comes after {pool.last}")
    return pool


@dataclass(frozen=True)
class DhcpSubnet:
    subnet: ipaddress.IPv4Network = field(metadata=c.meta(c.ipv4_network))
    pools: tuple[DhcpPool, ...] = field(metadata=c.meta(c.array_of(_pool), []))
    routers: tuple[ipaddress.IPv4Address, ...] = field(
        metadata=c.meta(c.array_of(c.ipv4_address), []))
    dns: tuple[ipaddress.IPv4Address, ...] = field(
        metadata=c.meta(c.array_of(c.ipv4_address), []))
    domain: str = field(metadata=c.meta(c.string, ""))
    lease_time: float = field(metadata=c.meta(c.duration(1), "1h"))


def _lease_db(value: object, at: c.At) -> str:
    text = c.string(value, at)
    if text.startswith("sqlite:///") or text.startswith(("postgresql://", "postgres://")):
        return text
    raise c.Invalid(
        "expected 'sqlite:///ABSOLUTE/PATH' or 'postgresql://USER@HOST/DB', got " + c.show(text)
    )


@dataclass(frozen=True)
class DhcpConfig:
    """The ``dhcp`` role: the DHCPv4 server and its failover with the peer."""

    mode: Literal["split", "hot-standby"] = field(
        metadata=c.meta(c.choice("split", "hot-standby"), "split"))
    vip: str | None = field(metadata=c.meta(c.optional(c.string), None))
    interfaces: tuple[str, ...] = field(metadata=c.meta(c.array_of(c.interface), []))
    # repr=False: a PostgreSQL URL may hold a password.
    lease_db: str = field(metadata=c.meta(_lease_db, "sqlite://{state_dir}/leases.db"),
                          repr=False)
    peer_port: int = field(metadata=c.meta(c.integer(1, 65535), 6470))
    secret_file: Path | None = field(metadata=c.meta(c.optional_path, None))
    mclt: float = field(metadata=c.meta(c.duration(1), "1h"))
    registrations: Path | None = field(metadata=c.meta(c.optional_path, None))
    authoritative: bool = field(metadata=c.meta(c.boolean, True))
    decline_probation: float = field(metadata=c.meta(_duration, "24h"))
    probe_timeout: float = field(metadata=c.meta(c.duration(0.0, 5.0), "0s"))
    control: Path = field(metadata=c.meta(c.path, "{run_dir}/dhcp.sock"))
    metrics: HostPort | None = field(metadata=c.meta(c.optional_listen, None))
    subnets: tuple[DhcpSubnet, ...] = field(
        metadata=c.meta(c.array_of(c.table(DhcpSubnet, "dhcp.subnets")), []))


SECTIONS: dict[str, type] = {
    "vrrp": VrrpConfig, "proxy": ProxyConfig, "backend": BackendConfig, "dhcp": DhcpConfig,
}


# -- the whole cluster ---------------------------------------------------------------------
@dataclass(frozen=True)
class NodeConfig:
    """One node's effective view: per-node overrides merged, placeholders substituted."""

    name: str
    address: IPAddress
    interface: str
    run_dir: Path
    state_dir: Path
    vrrp: VrrpConfig
    proxy: ProxyConfig
    backend: BackendConfig
    dhcp: DhcpConfig | None
    roles: tuple[str, ...]

    def section(self, role: str) -> VrrpConfig | ProxyConfig | BackendConfig | DhcpConfig | None:
        """The config section of ``role`` (``vipd`` -> ``vrrp``)."""
        section: VrrpConfig | ProxyConfig | BackendConfig | DhcpConfig | None = getattr(
            self, SECTION_OF_ROLE[role])
        return section


@dataclass(frozen=True)
class ClusterConfig:
    path: Path
    name: str
    nodes: Mapping[str, NodeConfig]
    vips: tuple[VipConfig, ...]
    backends: tuple[BackendRef, ...]

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(self.nodes)

    def _error(self, key: str, message: str) -> ConfigError:
        return ConfigError([ConfigIssue(str(self.path), None, key, message)])

    def node(self, name: str) -> NodeConfig:
        """The node called ``name``; :class:`ConfigError` naming it if there is none."""
        try:
            return self.nodes[name]
        except KeyError:
            known = ", ".join(self.nodes)
            hint = c.suggest(name, list(self.nodes))
            raise self._error(
                f"nodes.{name}",
                f"no node {name!r} in this config (nodes: {known}){hint}; pass --node NAME",
            ) from None

    def _role(self, node: str, role: str) -> VrrpConfig | ProxyConfig | BackendConfig | DhcpConfig:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        config = self.node(node)
        section = config.section(role)
        if section is None or role not in config.roles:
            raise self._error(SECTION_OF_ROLE[role], f"node {node!r} has no {role} role")
        return section

    def control_socket(self, node: str, role: str) -> Path:
        return self._role(node, role).control

    def metrics_address(self, node: str, role: str) -> tuple[str, int] | None:
        metrics = self._role(node, role).metrics
        return None if metrics is None else metrics.as_tuple()

    def roles(self, node: str) -> tuple[str, ...]:
        return self.node(node).roles

    def vip(self, name: str) -> VipConfig:
        for vip in self.vips:
            if vip.name == name:
                return vip
        raise self._error("vips", f"no VIP named {name!r}")

