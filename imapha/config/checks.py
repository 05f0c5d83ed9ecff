"""Cross-checks: the mistakes no single key shows.

Theory of operation
-------------------
After every key converted cleanly, the cluster is checked as a whole: VIPs
against nodes (home, VRID per interface and family, addresses), backends
against each other, each node's sockets against each other (two roles on one
port, one control socket or metrics port for two roles), and DHCP pools
against their subnets and each other. A finding is reported at the key that
makes it wrong, written where the operator wrote it: the override line when
the node overrides the key. A problem every node shares is one issue naming
all of them ("on nodes a, b").
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from imapha.config import convert as c
from imapha.config.lines import Path as KeyPath
from imapha.config.lines import dotted
from imapha.config.model import (
    NON_HOME_PRIORITY,
    SECTION_OF_ROLE,
    ClusterConfig,
    DhcpConfig,
    NodeConfig,
)
from imapha.config.units import HostPort, format_duration

# sun_path is 108 bytes on Linux, one of them the terminating NUL.
UNIX_PATH_MAX = 107


class _Findings:
    """Per-node findings, merged across nodes that share them."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[KeyPath, str], list[str]] = defaultdict(list)

    def add(self, node: str, path: KeyPath, message: str) -> None:
        if node not in self.nodes[(path, message)]:
            self.nodes[(path, message)].append(node)

    def flush(self, ctx: c.Context, total: int) -> None:
        for (path, message), nodes in self.nodes.items():
            if path[:1] == ("nodes",) or len(nodes) == total:
                ctx.report(path, message)
            else:
                which = f"node {nodes[0]}" if len(nodes) == 1 else f"nodes {', '.join(nodes)}"
                ctx.report(path, f"{message} (on {which})")


def check(config: ClusterConfig, raw_nodes: Mapping[str, Any], ctx: c.Context, *,
          backends_known: bool = True) -> None:
    """Report cross-key problems; ``config`` may hold only the nodes that converted."""
    findings = _Findings()

    def where(node: str, section: str, key: str) -> KeyPath:
        """Where ``node`` got ``section.key``: its override, else the shared section."""
        override = raw_nodes.get(node, {}).get(section, {})
        if isinstance(override, dict) and key in override:
            return ("nodes", node, section, key)
        return (section, key)

    _check_nodes(config, ctx)
    _check_vips(config, list(raw_nodes), ctx, findings)
    if backends_known:
        _check_backends(config, ctx)
    for node in config.nodes.values():
        _check_sockets(node, findings, where)
        _check_node_sections(config, node, findings, where)
        if node.dhcp is not None:
            _check_dhcp(config, node, node.dhcp, findings, where)
    findings.flush(ctx, len(raw_nodes))


def _check_nodes(config: ClusterConfig, ctx: c.Context) -> None:
    seen: dict[object, str] = {}
    for node in config.nodes.values():
        if node.address in seen:
            ctx.report(("nodes", node.name, "address"),
                       f"{node.address} is also the address of node {seen[node.address]!r}")
        seen.setdefault(node.address, node.name)


def _check_vips(config: ClusterConfig, node_names: list[str], ctx: c.Context,
                findings: _Findings) -> None:
    names: dict[str, int] = {}
    addresses: dict[object, int] = {}
    node_addresses = {node.address: node.name for node in config.nodes.values()}
    for i, vip in enumerate(config.vips):
        if vip.name in names:
            ctx.report(("vips", i, "name"),
                       f"VIP name {vip.name!r} is also used by vips[{names[vip.name]}]")
        names.setdefault(vip.name, i)
        ip = vip.address.ip
        if ip in addresses:
            ctx.report(("vips", i, "address"),
                       f"{ip} is also the address of vips[{addresses[ip]}]")
        addresses.setdefault(ip, i)
        if ip in node_addresses:
            ctx.report(("vips", i, "address"),
                       f"{ip} is node {node_addresses[ip]!r}'s own address; a VIP must be spare")
        if vip.home not in node_names:
            ctx.report(("vips", i, "home"),
                       f"home {vip.home!r} is not a node (nodes: {', '.join(node_names)})"
                       + c.suggest(vip.home, node_names))
        if vip.priority <= NON_HOME_PRIORITY:
            ctx.report(("vips", i, "priority"),
                       f"must be above {NON_HOME_PRIORITY}, the priority of the other nodes, "
                       f"or the VIP does not return home; got {vip.priority}")
        for node in config.nodes.values():
            role = {"proxy": "proxy", "backend": "backend", "dhcp": "dhcp"}.get(vip.track)
            if role is not None and role not in node.roles:
                findings.add(node.name, ("vips", i, "track"),
                             f"tracks {vip.track!r} but the node has no {role} role"
                             f" (add a [{SECTION_OF_ROLE[role]}] section)")
    # RFC 5798 §5.2.3: a VRID names one virtual router per interface and address family.
    for node in config.nodes.values():
        routers: dict[tuple[str, int, int], int] = {}
        for i, vip in enumerate(config.vips):
            key = (vip.interface_for(node), vip.vrid, vip.address.version)
            if key in routers:
                j = routers[key]
                findings.add(node.name, ("vips", i, "vrid"),
                             f"VRID {vip.vrid} is also used by vips[{j}] ({config.vips[j].name!r})"
                             f" on interface {key[0]}")
            routers.setdefault(key, i)


def _check_backends(config: ClusterConfig, ctx: c.Context) -> None:
    if not config.backends:
        ctx.report((), "no [[backends]]: the proxy needs at least one IMAP server to send users to")
    names: dict[str, int] = {}
    addresses: dict[HostPort, int] = {}
    for i, backend in enumerate(config.backends):
        if backend.name in names:
            ctx.report(("backends", i, "name"),
                       f"backend name {backend.name!r} is also used by "
                       f"backends[{names[backend.name]}]")
        names.setdefault(backend.name, i)
        if backend.address in addresses:
            ctx.report(("backends", i, "address"),
                       f"{backend.address} is also the address of "
                       f"backends[{addresses[backend.address]}]")
        addresses.setdefault(backend.address, i)
        if backend.tls == "none" and backend.tls_ca is not None:
            ctx.report(("backends", i, "tls_ca"), "has no effect with tls = \"none\"")


def _clashes(a: HostPort, b: HostPort) -> bool:
    """Whether binding both would fail: same port and overlapping addresses."""
    if a.port != b.port or a.port == 0:
        return False
    ip_a, ip_b = a.ip, b.ip
    if ip_a is None or ip_b is None:
        return a.host == b.host
    if ip_a == ip_b:
        return True
    # 0.0.0.0 takes every IPv4 address; [::] (not IPV6_V6ONLY, Linux's default) takes all.
    for wild, other in ((ip_a, ip_b), (ip_b, ip_a)):
        if wild.is_unspecified and wild.version in (6, other.version):
            return True
    return False


def _check_sockets(node: NodeConfig, findings: _Findings, where: Any) -> None:
    bindings: list[tuple[KeyPath, HostPort]] = []

    def listeners(section: str, key: str, values: tuple[HostPort, ...] | HostPort | None) -> None:
        if values is None:
            return
        if isinstance(values, HostPort):
            bindings.append((where(node.name, section, key), values))
            return
        base = where(node.name, section, key)
        bindings.extend(((*base, i), hp) for i, hp in enumerate(values))

    listeners("proxy", "imap", node.proxy.imap)
    listeners("proxy", "imaps", node.proxy.imaps)
    if "backend" in node.roles:
        listeners("backend", "imap", node.backend.imap)
        listeners("backend", "lmtp", node.backend.lmtp)
    for role in node.roles:
        section = SECTION_OF_ROLE[role]
        listeners(section, "metrics", getattr(node, section).metrics)
    if node.dhcp is not None:
        listeners("dhcp", "peer_port", HostPort(str(node.address), node.dhcp.peer_port))
    for i, (path, hp) in enumerate(bindings):
        for earlier_path, earlier in bindings[:i]:
            if _clashes(hp, earlier):
                same = "" if earlier == hp else f" ({earlier})"
                findings.add(node.name, path,
                             f"{hp} clashes with {dotted(earlier_path)}{same}: "
                             "two listeners cannot share an address and port")
                break

    controls: dict[object, str] = {}
    for role in node.roles:
        section = SECTION_OF_ROLE[role]
        control: object = getattr(node, section).control
        path = where(node.name, section, "control")
        if control in controls:
            findings.add(node.name, path,
                         f"control socket {control} is also the {controls[control]} role's")
        controls.setdefault(control, role)
        if len(str(control).encode()) > UNIX_PATH_MAX:
            findings.add(node.name, path,
                         f"control socket path {control} is {len(str(control).encode())} bytes;"
                         f" Unix sockets allow at most {UNIX_PATH_MAX}")


def _check_node_sections(config: ClusterConfig, node: NodeConfig, findings: _Findings,
                         where: Any) -> None:
    vrrp, proxy, backend = node.vrrp, node.proxy, node.backend
    # RFC 5798 §5.2.7: Max Advertise Interval is carried in centiseconds.
    centis = vrrp.advert_interval * 100
    if abs(centis - round(centis)) > 1e-6:
        findings.add(node.name, where(node.name, "vrrp", "advert_interval"),
                     f"{format_duration(vrrp.advert_interval)} is not a whole number of "
                     "centiseconds (VRRPv3 carries it in 10ms units)")
    named = {"track_scripts": [t.name for t in vrrp.track_scripts],
             "track_files": [t.name for t in vrrp.track_files]}
    for kind, names in named.items():
        for i, track in enumerate(names):
            if track in names[:i]:
                findings.add(node.name, (*where(node.name, "vrrp", kind), i, "name"),
                             f"{track!r} is used by an earlier entry")
    if proxy.probe_password and proxy.probe_password_file is not None:
        findings.add(node.name, where(node.name, "proxy", "probe_password_file"),
                     "set probe_password or probe_password_file, not both")
    if (proxy.probe_password or proxy.probe_password_file) and not proxy.probe_user:
        findings.add(node.name, where(node.name, "proxy", "probe_user"),
                     "a probe password is set but probe_user is empty")
    if vrrp.transport == "unicast" and len(config.nodes) < 2:
        findings.add(node.name, where(node.name, "vrrp", "transport"),
                     "unicast adverts go to the other nodes, and there are none")
    if proxy.health_timeout > proxy.health_interval:
        findings.add(node.name, where(node.name, "proxy", "health_timeout"),
                     f"{format_duration(proxy.health_timeout)} is longer than health_interval "
                     f"({format_duration(proxy.health_interval)}): probes would overlap")
    if not proxy.imap and not proxy.imaps:
        findings.add(node.name, where(node.name, "proxy", "imaps"),
                     "the proxy has no listeners: set imap or imaps")
    if "backend" in node.roles:
        if (backend.tls_cert is None) != (backend.tls_key is None):
            missing = "tls_key" if backend.tls_key is None else "tls_cert"
            findings.add(node.name, where(node.name, "backend", missing),
                         "tls_cert and tls_key go together: set both or neither")
        if not backend.imap:
            findings.add(node.name, where(node.name, "backend", "imap"),
                         "the backend has no IMAP listener")


def _check_dhcp(config: ClusterConfig, node: NodeConfig, dhcp: DhcpConfig,
                findings: _Findings, where: Any) -> None:
    vip_names = [vip.name for vip in config.vips]
    if dhcp.mode == "hot-standby" and dhcp.vip is None:
        findings.add(node.name, where(node.name, "dhcp", "vip"),
                     "hot-standby needs the name of the [[vips]] entry the active server follows")
    if dhcp.vip is not None:
        if dhcp.vip not in vip_names:
            findings.add(node.name, where(node.name, "dhcp", "vip"),
                         f"no [[vips]] entry named {dhcp.vip!r}" + c.suggest(dhcp.vip, vip_names))
        elif config.vip(dhcp.vip).track != "dhcp":
            findings.add(node.name, where(node.name, "dhcp", "vip"),
                         f"VIP {dhcp.vip!r} tracks {config.vip(dhcp.vip).track!r}; set its "
                         'track = "dhcp" so it moves when the DHCP server is not ready')
    if not dhcp.interfaces:
        findings.add(node.name, where(node.name, "dhcp", "interfaces"),
                     "list the interfaces the DHCP server answers on")
    subnets_at = where(node.name, "dhcp", "subnets")
    if not dhcp.subnets:
        findings.add(node.name, subnets_at, "no [[dhcp.subnets]]: nothing to hand out")
    pools: list[tuple[KeyPath, ipaddress.IPv4Address, ipaddress.IPv4Address]] = []
    for i, subnet in enumerate(dhcp.subnets):
        net = subnet.subnet
        for j, other in enumerate(dhcp.subnets[:i]):
            if net.overlaps(other.subnet):
                findings.add(node.name, (*subnets_at, i, "subnet"),
                             f"{net} overlaps {dotted((*subnets_at, j, 'subnet'))}"
                             f" ({other.subnet})")
        for j, pool in enumerate(subnet.pools):
            at = (*subnets_at, i, "pools", j)
            if pool.first not in net or pool.last not in net:
                findings.add(node.name, at, f"pool {pool} is not inside subnet {net}")
            elif net.prefixlen < 31 and (
                    net.network_address in pool or net.broadcast_address in pool):
                findings.add(node.name, at,
                             f"pool {pool} includes the network or broadcast address of {net}")
            for other_at, first, last in pools:
                if pool.first <= last and first <= pool.last:
                    findings.add(node.name, at,
                                 f"pool {pool} overlaps {dotted(other_at)} ({first}-{last})")
                    break
            pools.append((at, pool.first, pool.last))
        for j, router in enumerate(subnet.routers):
            if router not in net:
                findings.add(node.name, (*subnets_at, i, "routers", j),
                             f"router {router} is not inside subnet {net}")
