"""The lab topology: networks (bridges), hosts (namespaces) and faults between them.

Theory of operation
-------------------
A :class:`Lab` owns one *switch* namespace ``<prefix>-sw``.  Each network is a
Linux bridge in it (``<prefix>br<N>``, one per subnet, multicast snooping off
so VRRP's 224.0.0.18 and DHCP broadcasts reach every port, forward delay 0 so
ports forward at once).  A host is a namespace ``<prefix>-<host>``; for each
network it sits on, a veth pair is created inside the switch namespace with
the peer end born in the host namespace as ``eth0``, ``eth1``, … .  The switch
end ``<prefix><host><N>`` is enslaved to the network's bridge.  No link ever
exists in the caller's namespace, so deleting the namespaces removes every
link, and the prefix on every name lets ``imapha lab cleanup`` find what a
killed run left.

Addresses are restricted to the documentation networks of RFC 5737
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24); anything else is refused, so
the lab can never shadow a real network.  Host MAC addresses are locally
administered and derived from the prefix and the host's index, so captures
and ARP tables are readable.

Faults:

* ``host.link_down(side=…)`` sets the host's veth down at the bridge port (the
  cable pulled at the switch: the host sees NO-CARRIER) or inside the host.
* ``lab.partition(a, b)`` drops, in the switch's nftables ``bridge`` forward
  hook, every frame going from a port of *a* to a port of *b* and back.  The
  forward hook runs once per output port, also for flooded frames, so unicast,
  broadcast and multicast (VRRP adverts) are all caught, whatever source
  address or MAC (a VIP, a virtual MAC) the frame carries, while both hosts
  still reach every other port.  ``lab.heal()`` removes the rules.  The whole
  rule set is replaced in one nft transaction on every change.

Teardown (``close``, the context manager, or an ``atexit`` hook for labs still
open at interpreter exit) stops every process of every host (see
:mod:`imapha.lab.proc`) and then deletes the namespaces.  A Lab object is not
thread-safe; use it from one thread.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from imapha.lab import netns, proc
from imapha.lab.netns import LabError
from imapha.lab.proc import LabProcess

log = logging.getLogger(__name__)

ALLOWED_NETWORKS = tuple(
    ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)
"""RFC 5737 documentation networks: the only addresses the lab hands out."""
DEFAULT_NETWORK = ipaddress.IPv4Network("192.0.2.0/24")
MAX_NETWORKS = 10
"""Bridge-port names end in one digit, the network's index."""
HOST_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,6}$")
RESERVED_NAMES = frozenset({"sw"})
NFT_TABLE = "imapha_lab"
CLIENT_FIRST_HOST = 100
"""Clients given no address get the next free one from .100 of the default network."""

Side = Literal["bridge", "host"]
_Socket = socket.socket


class AddressNotAllowed(LabError, ValueError):
    """An address or subnet outside the RFC 5737 documentation networks."""


def check_subnet(subnet: str | ipaddress.IPv4Network) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(subnet, strict=False)
    except ValueError as exc:
        raise AddressNotAllowed(f"{subnet!r} is not an IPv4 network: {exc}") from None
    if not any(net.subnet_of(allowed) for allowed in ALLOWED_NETWORKS):
        raise AddressNotAllowed(
            f"{net} is outside the lab's networks ({', '.join(str(n) for n in ALLOWED_NETWORKS)})"
        )
    return net


def check_address(address: str | ipaddress.IPv4Interface) -> ipaddress.IPv4Interface:
    """Parse ``"192.0.2.11/24"`` (prefix required) and refuse non-lab addresses."""
    text = str(address)
    if "/" not in text:
        raise AddressNotAllowed(f"{text!r} needs a prefix length, e.g. {text}/24")
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError as exc:
        raise AddressNotAllowed(f"{text!r} is not an IPv4 address: {exc}") from None
    check_subnet(iface.network)
    if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        raise AddressNotAllowed(f"{text} is the network or broadcast address of its subnet")
    return iface


@dataclass(frozen=True)
class Network:
    """One L2 segment: a bridge in the switch namespace carrying one subnet."""

    index: int
    subnet: ipaddress.IPv4Network
    bridge: str


@dataclass
class Interface:
    """A host's attachment to a network: ``name`` inside the host, ``port`` on the bridge."""

    name: str
    port: str
    network: Network
    mac: str
    addresses: list[ipaddress.IPv4Interface] = field(default_factory=list)
    up: bool = True


class Host:
    """A lab host: a network namespace with one interface per network it is on."""

    def __init__(self, lab: Lab, name: str, index: int, role: str) -> None:
        self.lab = lab
        self.name = name
        self.index = index
        self.role = role
        self.netns = f"{lab.prefix}-{name}"
        self.interfaces: list[Interface] = []
        self.processes: list[LabProcess] = []
        self._spawned = 0

    def __repr__(self) -> str:
        addrs = ", ".join(str(a) for i in self.interfaces for a in i.addresses)
        return f"<Host {self.name} netns={self.netns} [{addrs}]>"

    # -- addressing ---------------------------------------------------------------
    @property
    def address(self) -> str:
        """The host's first IPv4 address, without prefix length."""
        for iface in self.interfaces:
            if iface.addresses:
                return str(iface.addresses[0].ip)
        raise LabError(f"host {self.name} has no address")

    @property
    def addresses(self) -> list[str]:
        return [str(a.ip) for i in self.interfaces for a in i.addresses]

    def interface(self, which: str | Network | None = None) -> Interface:
        """The interface by name, by network, or the first one."""
        for iface in self.interfaces:
            if which is None or which in (iface.name, iface.network):
                return iface
        raise LabError(f"host {self.name} has no interface {which!r}")

    # -- processes -----------------------------------------------------------------
    def spawn(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        log: Path | str | None = None,
        cwd: Path | str | None = None,
    ) -> LabProcess:
        """Start *argv* in this host; output goes to *log* (default: the lab's log dir)."""
        self.lab._check_open()
        self._spawned += 1
        if log is None:
            stem = Path(str(argv[0])).name if argv else "cmd"
            log = self.lab.workdir / "logs" / f"{self.name}-{self._spawned}-{stem}.log"
        process = proc.spawn(self.netns, argv, log_path=Path(log), env=env, cwd=cwd)
        self.processes.append(process)
        return process

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = proc.RUN_TIMEOUT,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command in this host; see :func:`imapha.lab.proc.run_in`."""
        return proc.run_in(self.netns, argv, timeout=timeout, check=check, env=env, input=input)

    def sysctl(self, key: str, value: str | int | None = None) -> str:
        """Read (and, given *value*, first set) a sysctl of this host's namespace."""
        if not re.fullmatch(r"[a-z0-9_]+(\.[A-Za-z0-9_@-]+)+", key):
            raise LabError(f"not a sysctl name: {key!r}")
        path = "/proc/sys/" + key.replace(".", "/")
        if value is not None:
            self.run(["sh", "-c", 'printf "%s\\n" "$2" > "$1"', "sh", path, str(value)])
        return self.run(["cat", path]).stdout.strip()

    def pids(self) -> list[int]:
        """Every live process in this host's namespace, tracked or not."""
        return netns.pids_in(self.netns)

    def kill(self) -> list[int]:
        """SIGKILL every process of this host at once (a crash); return survivors."""
        return proc.stop_namespace(self.netns, self.processes, grace=0)

    def stop(self, grace: float = proc.STOP_GRACE) -> list[int]:
        """SIGTERM every process of this host, SIGKILL after *grace*; return survivors."""
        return proc.stop_namespace(self.netns, self.processes, grace=grace)

    # -- sockets from the test process ----------------------------------------------
    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block with this thread in the host's namespace (sockets stay there)."""
        with netns.entered(self.netns):
            yield

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> _Socket:
        """A socket of the calling process that lives in this host's namespace."""
        with self.entered():
            return socket.socket(family, type, proto)

    def connect(self, address: str, port: int, timeout: float = 5.0) -> _Socket:
        """A TCP connection from this host to *address*:*port*, retried until *timeout*."""
        deadline = time.monotonic() + timeout
        while True:
            sock = self.socket()
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                sock.connect((address, port))
            except OSError:
                sock.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
            else:
                sock.settimeout(None)
                return sock

    def ping(self, address: str, count: int = 1, wait: float = 1.0) -> bool:
        """True if *address* answers ICMP echo from this host."""
        done = self.run(
            ["ping", "-n", "-q", "-c", str(count), "-W", str(wait), address],
            check=False,
            timeout=count * wait + 5,
        )
        return done.returncode == 0

    # -- faults ----------------------------------------------------------------------
    def link_down(self, which: str | Network | None = None, side: Side = "bridge") -> None:
        """Cut the host's link: at the bridge port (default) or inside the host."""
        self._set_link(which, side, "down")

    def link_up(self, which: str | Network | None = None, side: Side = "bridge") -> None:
        self._set_link(which, side, "up")

    def _set_link(self, which: str | Network | None, side: Side, state: str) -> None:
        iface = self.interface(which)
        if side == "bridge":
            netns.ip_batch(self.lab.switch, [f"link set {iface.port} {state}"])
        elif side == "host":
            netns.ip_batch(self.netns, [f"link set {iface.name} {state}"])
        else:
            raise LabError(f"side must be 'bridge' or 'host', not {side!r}")
        iface.up = state == "up"

    def describe(self) -> dict[str, Any]:
        return {
            "netns": self.netns,
            "role": self.role,
            "interfaces": [
                {
                    "name": i.name,
                    "mac": i.mac,
                    "port": i.port,
                    "network": str(i.network.subnet),
                    "addresses": [str(a) for a in i.addresses],
                }
                for i in self.interfaces
            ],
            "pids": [p.pid for p in self.processes if p.alive()],
        }


HostRef = Host | str


class Lab:
    """A whole cluster's network on this machine; a context manager that tears it down."""

    def __init__(
        self,
        prefix: str | None = None,
        *,
        workdir: Path | str | None = None,
        stop_grace: float = 1.0,
    ) -> None:
        if os.geteuid() != 0:
            raise LabError("the lab needs root (network namespaces)")
        for tool in ("ip",):
            if shutil.which(tool) is None:
                raise LabError(f"the lab needs {tool!r} (iproute2)")
        self.prefix = netns.check_prefix(prefix) if prefix else netns.new_prefix()
        if netns.lab_namespaces(self.prefix):
            raise LabError(f"namespaces with prefix {self.prefix} already exist")
        self.switch = f"{self.prefix}-sw"
        self.stop_grace = stop_grace
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"imapha-lab-{self.prefix}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.networks: dict[ipaddress.IPv4Network, Network] = {}
        self.hosts: dict[str, Host] = {}
        self._partitions: set[frozenset[str]] = set()
        self._closed = False
        self._creator = os.getpid()
        self._mac_seed = hashlib.sha256(self.prefix.encode()).digest()[:2]
        _LIVE[id(self)] = self
        try:
            netns.add(self.switch)
            netns.ip_batch(self.switch, ["link set lo up"])
        except BaseException:
            self.close()
            raise
        log.info("lab %s up (switch %s, workdir %s)", self.prefix, self.switch, self.workdir)

    # -- context manager ---------------------------------------------------------------
    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Lab {self.prefix} hosts={list(self.hosts)}>"

    # -- building -------------------------------------------------------------------------
    def network(self, subnet: str | ipaddress.IPv4Network = DEFAULT_NETWORK) -> Network:
        """The network (bridge) for *subnet*, created on first use."""
        net = check_subnet(subnet)
        if net in self.networks:
            return self.networks[net]
        for existing in self.networks:
            if existing.overlaps(net):
                raise LabError(f"{net} overlaps the lab's network {existing}")
        if len(self.networks) >= MAX_NETWORKS:
            raise LabError(f"at most {MAX_NETWORKS} networks per lab")
        self._check_open()
        index = len(self.networks)
        network = Network(index=index, subnet=net, bridge=f"{self.prefix}br{index}")
        netns.ip_batch(
            self.switch,
            [
                f"link add {network.bridge} type bridge"
                " mcast_snooping 0 forward_delay 0 stp_state 0",
                f"link set {network.bridge} up",
            ],
        )
        self.networks[net] = network
        return network

    def add_host(
        self,
        name: str,
        addresses: Iterable[str] = (),
        *,
        networks: Iterable[str | ipaddress.IPv4Network] = (),
        role: str = "server",
    ) -> Host:
        """Create a host with *addresses* (``"192.0.2.11/24"``), one interface per subnet.

        *networks* attaches the host to further networks without an address (a
        DHCP client's interface).  The host's interfaces are ``eth0``, ``eth1``, …
        in the order the networks are first named.
        """
        self._check_open()
        if not HOST_NAME_RE.match(name) or name in RESERVED_NAMES:
            raise LabError(f"host name {name!r}: 1-7 of [a-z0-9] starting with a letter, not 'sw'")
        if name in self.hosts:
            raise LabError(f"host {name!r} already exists in lab {self.prefix}")
        parsed = [check_address(a) for a in addresses]
        plan: dict[ipaddress.IPv4Network, list[ipaddress.IPv4Interface]] = {}
        for parsed_addr in parsed:
            plan.setdefault(parsed_addr.network, []).append(parsed_addr)
        for extra in networks:
            plan.setdefault(check_subnet(extra), [])
        if not plan:
            raise LabError(f"host {name!r} needs an address or a network")
        taken = {a.ip: h for h in self.hosts.values() for i in h.interfaces for a in i.addresses}
        for parsed_addr in parsed:
            if parsed_addr.ip in taken:
                owner = taken[parsed_addr.ip].name
                raise LabError(f"{parsed_addr.ip} is already host {owner}'s address")
        nets = [self.network(subnet) for subnet in plan]

        host = Host(self, name, index=len(self.hosts) + 1, role=role)
        self.hosts[name] = host  # before creating anything, so close() finds it
        netns.add(host.netns)
        switch_cmds: list[str] = []
        host_cmds = ["link set lo up"]
        for n, network in enumerate(nets):
            iface = Interface(
                name=f"eth{n}",
                port=f"{self.prefix}{name}{network.index}",
                network=network,
                mac=self._mac(host.index, network.index),
                addresses=plan[network.subnet],
            )
            host.interfaces.append(iface)
            switch_cmds += [
                f"link add {iface.port} type veth peer name {iface.name} "
                f"address {iface.mac} netns {host.netns}",
                f"link set {iface.port} master {network.bridge}",
                f"link set {iface.port} up",
            ]
            host_cmds.append(f"link set {iface.name} up")
            host_cmds += [f"addr add {a} dev {iface.name}" for a in iface.addresses]
        netns.ip_batch(self.switch, switch_cmds)
        netns.ip_batch(host.netns, host_cmds)
        log.debug("lab %s: added %r", self.prefix, host)
        return host

    def add_client(
        self,
        name: str,
        addresses: Iterable[str] | None = None,
        *,
        networks: Iterable[str | ipaddress.IPv4Network] = (),
    ) -> Host:
        """A host in the client role.  Given neither addresses nor networks, it gets
        the next free address from .100 up on 192.0.2.0/24."""
        networks = list(networks)
        if addresses is None:
            addresses = [] if networks else [self._free_address(DEFAULT_NETWORK)]
        return self.add_host(name, addresses, networks=networks, role="client")

    def host(self, ref: HostRef) -> Host:
        if isinstance(ref, Host):
            return ref
        try:
            return self.hosts[ref]
        except KeyError:
            raise LabError(f"lab {self.prefix} has no host {ref!r}") from None

    @property
    def clients(self) -> list[Host]:
        return [h for h in self.hosts.values() if h.role == "client"]

    def _free_address(self, subnet: ipaddress.IPv4Network) -> str:
        used = {a.ip for h in self.hosts.values() for i in h.interfaces for a in i.addresses}
        for n in range(CLIENT_FIRST_HOST, subnet.num_addresses - 1):
            candidate = subnet.network_address + n
            if candidate not in used:
                return f"{candidate}/{subnet.prefixlen}"
        raise LabError(f"no free address left in {subnet}")

    def _mac(self, host_index: int, net_index: int) -> str:
        octets = [0x02, 0x1A, *self._mac_seed, host_index & 0xFF, net_index]
        return ":".join(f"{o:02x}" for o in octets)

    # -- faults ---------------------------------------------------------------------------
    def partition(self, a: HostRef | Iterable[HostRef], b: HostRef | Iterable[HostRef]) -> None:
        """Drop all traffic between the hosts of *a* and those of *b* (both ways)."""
        self._check_open()
        left, right = self._group(a), self._group(b)
        if left & right:
            raise LabError(f"cannot partition {sorted(left & right)} from itself")
        pairs = {frozenset((x, y)) for x in left for y in right}
        self._apply_partitions(self._partitions | pairs)

    def heal(
        self,
        a: HostRef | Iterable[HostRef] | None = None,
        b: HostRef | Iterable[HostRef] | None = None,
    ) -> None:
        """Undo :meth:`partition`: between *a* and *b*, or every partition if none given."""
        if a is None or b is None:
            remaining: set[frozenset[str]] = set()
        else:
            left, right = self._group(a), self._group(b)
            cut = {frozenset((x, y)) for x in left for y in right}
            remaining = self._partitions - cut
        self._apply_partitions(remaining)

    @property
    def partitions(self) -> set[frozenset[str]]:
        return set(self._partitions)

    def _group(self, ref: HostRef | Iterable[HostRef]) -> set[str]:
        refs: Iterable[HostRef] = [ref] if isinstance(ref, Host | str) else ref
        return {self.host(r).name for r in refs}

    def _apply_partitions(self, pairs: set[frozenset[str]]) -> None:
        if not pairs and not self._partitions:
            return
        if shutil.which("nft") is None:
            raise LabError("lab.partition needs nft (Debian package 'nftables')")
        rules = []
        for pair in sorted(pairs, key=sorted):
            x, y = (self.hosts[n] for n in sorted(pair))
            for ix in x.interfaces:
                for iy in y.interfaces:
                    if ix.network == iy.network:
                        rules.append(f'iifname "{ix.port}" oifname "{iy.port}" drop')
                        rules.append(f'iifname "{iy.port}" oifname "{ix.port}" drop')
        # Create-then-delete makes the delete safe when the table does not exist yet;
        # the whole script is one atomic nft transaction.
        script = [f"table bridge {NFT_TABLE} {{}}", f"delete table bridge {NFT_TABLE}"]
        if rules:
            script += [
                f"table bridge {NFT_TABLE} {{",
                "  chain forward {",
                "    type filter hook forward priority 0; policy accept;",
                *(f"    {r}" for r in rules),
                "  }",
                "}",
            ]
        netns.run_cmd(
            ["ip", "netns", "exec", self.switch, "nft", "-f", "-"], stdin="\n".join(script) + "\n"
        )
        self._partitions = set(pairs)

    # -- state -------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """A JSON-able description (namespaces, interfaces, addresses, PIDs)."""
        return {
            "prefix": self.prefix,
            "switch_netns": self.switch,
            "workdir": str(self.workdir),
            "networks": {
                str(n.subnet): {"bridge": n.bridge, "index": n.index}
                for n in self.networks.values()
            },
            "hosts": {name: h.describe() for name, h in self.hosts.items()},
            "partitions": sorted(sorted(p) for p in self._partitions),
        }

    def write_state(self, path: Path | str) -> None:
        """Write :meth:`describe` to *path* atomically."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.describe(), indent=2) + "\n")
        tmp.replace(target)

    # -- teardown ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise LabError(f"lab {self.prefix} is closed")

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop every process of every host, delete every namespace.  Idempotent."""
        if self._closed or os.getpid() != self._creator:
            return
        self._closed = True
        _LIVE.pop(id(self), None)
        problems = teardown(
            self.prefix, [h.processes for h in self.hosts.values()], grace=self.stop_grace
        )
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        log.info("lab %s torn down", self.prefix)
        if problems:
            raise LabError(f"lab {self.prefix} teardown: {'; '.join(problems)}")


def teardown(
    prefix: str | None,
    tracked: Iterable[Sequence[LabProcess]] = (),
    *,
    grace: float = 1.0,
) -> list[str]:
    """Stop processes in and delete every lab namespace of *prefix* (all labs if None).

    Also deletes stray prefixed links in the caller's namespace.  Returns a list
    of problems (empty when everything is gone).
    """
    problems: list[str] = []
    names = netns.lab_namespaces(prefix)
    tracked_all = [p for group in tracked for p in group]
    for name in names:
        mine = [p for p in tracked_all if p.netns == name]
        survivors = proc.stop_namespace(name, mine, grace=grace)
        if survivors:
            problems.append(f"{name}: pids {survivors} survived SIGKILL")
    try:
        netns.delete(names)
    except LabError as exc:
        problems.append(str(exc))
    for link in netns.root_links(prefix):
        try:
            netns.run_cmd(["ip", "link", "del", link])
        except LabError as exc:
            problems.append(str(exc))
    return problems


_LIVE: dict[int, Lab] = {}


@atexit.register
def _close_live_labs() -> None:
    for lab in list(_LIVE.values()):
        try:
            lab.close()
        except Exception:
            log.exception("tearing down lab %s at exit", lab.prefix)


__all__ = [
    "ALLOWED_NETWORKS",
    "AddressNotAllowed",
    "Host",
    "Interface",
    "Lab",
    "LabError",
    "Network",
    "teardown",
]
