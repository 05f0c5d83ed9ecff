"""A whole imapha cluster in a lab: two nodes, two VIPs, proxies, backends, vipd.

Theory of operation
-------------------
:class:`Cluster` is what ``imapha demo``, the end-to-end tests and the
benchmarks stand up. In a :class:`~imapha.lab.Lab` it makes host namespaces
``a`` (192.0.2.11) and ``b`` (192.0.2.12) and a client namespace ``c``
(192.0.2.100) on one bridge, writes one cluster config for both nodes (as a
real site has one file), a CA and the proxies' certificate, a passwd-file
with the demo users and their Maildirs under one shared root (the lab's
stand-in for NFS: both namespaces see the same filesystem), then starts each
node's daemons through the real ``imapha`` command, in the order a host
boots them: backend, proxy, vipd.

The VIPs ``imap1`` (192.0.2.101, home ``a``) and ``imap2`` (192.0.2.102, home
``b``) are managed by vipd with real VRRP multicast and netlink; who holds a
VIP is read from the kernel (``ip addr`` in each node), not from vipd's own
word, so a lying vipd cannot fool the checks.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imapha import control
from imapha.config import ConfigError, load_config
from imapha.lab.pki import Pki, make_pki
from imapha.lab.proc import LabProcess
from imapha.lab.topology import Host, Lab

NODES = {"a": "192.0.2.11", "b": "192.0.2.12"}
CLIENT = "192.0.2.100"
VIPS = [("imap1", "192.0.2.101", 51, "a"), ("imap2", "192.0.2.102", 52, "b")]
#: The DHCP pair's VIP (hot-standby: only its holder answers) and pool, on the same link.
DHCP_VIP = ("dhcp1", "192.0.2.103", 53, "a")
DHCP_POOL = ("192.0.2.150", "192.0.2.199")
BACKEND_PORT = 1143
IMAP_PORT = 143
IMAPS_PORT = 993
ROLES = ("backend", "proxy", "dhcp", "vipd")  # start order; stop order is the reverse
SERVICE_NAME = "imap.cs.example.org"


class ClusterError(RuntimeError):
    """The cluster could not be brought to the state asked for."""


@dataclass(frozen=True)
class User:
    name: str
    password: str


def _users(count: int) -> list[User]:
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
    return [User(names[i % len(names)] + (str(i // len(names)) if i >= len(names) else ""),
                 secrets.token_urlsafe(9)) for i in range(count)]


def render_config(root: Path, pki: Pki, advert_interval: str) -> str:
    """The cluster TOML both nodes read."""
    lines = [
        "[cluster]",
        'name = "demo"',
        f'run_dir = "{root}/run/{{node}}"',
        f'state_dir = "{root}/state/{{node}}"',
    ]
    for node, address in NODES.items():
        lines += ["", f"[nodes.{node}]", f'address = "{address}"', 'interface = "eth0"']
    for name, address, vrid, home in VIPS:
        lines += ["", "[[vips]]", f'name = "{name}"', f'address = "{address}"',
                  f"vrid = {vrid}", f'home = "{home}"', 'track = "proxy"', "priority = 150"]
    name, address, vrid, home = DHCP_VIP
    lines += ["", "[[vips]]", f'name = "{name}"', f'address = "{address}/24"',
              f"vrid = {vrid}", f'home = "{home}"', 'track = "dhcp"', "priority = 150"]
    lines += [
        "", "[vrrp]", f'advert_interval = "{advert_interval}"', 'transport = "multicast"',
        'address_driver = "netlink"', 'preempt_delay = "1s"',
        "", "[proxy]", f'imap = ["0.0.0.0:{IMAP_PORT}"]', f'imaps = ["0.0.0.0:{IMAPS_PORT}"]',
        f'tls_cert = "{pki.cert}"', f'tls_key = "{pki.key}"',
        'probe_user = "probe"', f'probe_password_file = "{root}/probe.secret"',
        'health_interval = "1s"', 'health_timeout = "1s"', "health_fall = 2",
        "health_rise = 2", 'drain_grace = "2s"', 'auth_penalty_max = "2s"',
    ]
    for node, address in NODES.items():
        lines += ["", "[[backends]]", f'name = "be-{node}"',
                  f'address = "{address}:{BACKEND_PORT}"', 'tls = "none"']
    lines += [
        "", "[backend]", f'imap = ["0.0.0.0:{BACKEND_PORT}"]',
        f'maildir_root = "{root}/mail"', f'passwd_file = "{root}/passwd"',
        'trusted_proxies = ["192.0.2.0/24"]',
        "", "[dhcp]", 'mode = "hot-standby"', f'vip = "{DHCP_VIP[0]}"', 'interfaces = ["eth0"]',
        f'secret_file = "{root}/dhcp-peer.key"', 'mclt = "1h"',
        "", "[[dhcp.subnets]]", 'subnet = "192.0.2.0/24"',
        f'pools = ["{DHCP_POOL[0]}-{DHCP_POOL[1]}"]', 'routers = ["192.0.2.1"]',
        'dns = ["192.0.2.53"]', 'domain = "cs.example.org"', 'lease_time = "10m"',
    ]
    for node, address in NODES.items():
        for role, port in (("proxy", 9143), ("backend", 9144), ("vrrp", 9150), ("dhcp", 9167)):
            lines += ["", f"[nodes.{node}.{role}]", f'metrics = "{address}:{port}"']
    return "\n".join(lines) + "\n"


@dataclass
class Node:
    name: str
    host: Host
    processes: dict[str, LabProcess] = field(default_factory=dict)
    dead: bool = False  # killed and unplugged, like a host that lost power


class Cluster:
    """Two nodes and a client in a lab, running the real daemons."""

    def __init__(self, lab: Lab, root: Path, *, users: int = 4,
                 advert_interval: str = "100ms") -> None:
        self.lab = lab
        self.root = root
        self.users = [User("probe", secrets.token_urlsafe(12)), *_users(users)]
        self.advert_interval = advert_interval
        self.nodes: dict[str, Node] = {}
        root.mkdir(parents=True, exist_ok=True)
        for node, address in NODES.items():
            self.nodes[node] = Node(node, lab.add_host(node, [f"{address}/24"]))
        self.client = lab.add_client("c", [f"{CLIENT}/24"])
        # An unconfigured machine on the servers' link, for outside DHCP clients.
        self.dhcp_client = lab.add_client("d", networks=["192.0.2.0/24"])
        self.pki = make_pki(root / "tls", [SERVICE_NAME],
                            [a for _, a, _, _ in VIPS] + list(NODES.values()))
        (root / "probe.secret").write_text(self.users[0].password + "\n")
        (root / "probe.secret").chmod(0o600)
        (root / "dhcp-peer.key").write_text(secrets.token_hex(24) + "\n")
        (root / "dhcp-peer.key").chmod(0o600)
        self._write_users()
        self.config = root / "imapha.toml"
        self.config.write_text(render_config(root, self.pki, advert_interval))
        try:
            load_config(self.config)
        except ConfigError as exc:
            raise ClusterError(f"the generated config is not valid:\n{exc}") from exc

    def _write_users(self) -> None:
        lines = []
        for user in self.users:
            # Dovecot passwd-file: user:{SCHEME}password:uid:gid::home::
            lines.append(f"{user.name}:{{PLAIN}}{user.password}::::"
                         f"{self.root / 'mail' / user.name}::")
            for sub in ("cur", "new", "tmp"):
                (self.root / "mail" / user.name / "Maildir" / sub).mkdir(
                    parents=True, exist_ok=True)
        passwd = self.root / "passwd"
        passwd.write_text("\n".join(lines) + "\n")
        passwd.chmod(0o640)

    @property
    def mail_users(self) -> list[User]:
        return self.users[1:]

    def control_socket(self, node: str, role: str) -> Path:
        return self.root / "run" / node / f"{role}.sock"

    # -- daemons -------------------------------------------------------------

    def start_role(self, node: str, role: str) -> LabProcess:
        n = self.nodes[node]
        argv = [sys.executable, "-m", "imapha", role, "--config", str(self.config),
                "--node", node]
        process = n.host.spawn(argv, log=self.root / "logs" / f"{node}-{role}.log")
        n.processes[role] = process
        return process

    def start_node(self, node: str, roles: Sequence[str] = ROLES) -> None:
        n = self.nodes[node]
        if n.dead:
            n.host.link_up()  # powered on again; vipd flushes what the crash left behind
            n.dead = False
        for role in roles:
            self.start_role(node, role)

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            self.start_node(node)
        self.wait_ready(timeout)
        self.wait_vips_home(timeout)

    def kill_node(self, node: str) -> None:
        """A host dies: every process SIGKILLed at once and its cable pulled.

        Without the link down the namespace's kernel would live on and keep
        answering ARP for the VIPs it held, which no dead machine does.
        """
        n = self.nodes[node]
        n.host.link_down()
        n.host.kill()
        n.processes.clear()
        n.dead = True

    def kill_daemons(self, node: str) -> None:
        """Every imapha process of the node SIGKILLed; the host itself stays up."""
        self.nodes[node].host.kill()
        self.nodes[node].processes.clear()

    def stop_node(self, node: str, grace: float = 10.0) -> None:
        n = self.nodes[node]
        for role in reversed(ROLES):
            process = n.processes.pop(role, None)
            if process is not None:
                process.stop(grace)

    def ready(self, node: str, role: str) -> bool:
        sock = self.control_socket(node, role)
        try:
            return control.request(sock, "GET", "/ready", timeout=2.0).ok
        except control.ControlClientError:
            return False

    def answering(self, node: str, role: str) -> bool:
        """The daemon's control API answers (ready or not, drained or not)."""
        try:
            return control.request(self.control_socket(node, role), "GET", "/status",
                                   timeout=2.0).ok
        except control.ControlClientError:
            return False

    def wait_answering(self, timeout: float, node: str) -> None:
        self._wait(lambda: all(self.answering(node, r) for r in ROLES), timeout,
                   lambda: "not answering: " + ", ".join(
                       f"{node}/{r}" for r in ROLES if not self.answering(node, r)))

    def wait_ready(self, timeout: float, nodes: Sequence[str] | None = None) -> None:
        targets = [(n, r) for n in (nodes or list(self.nodes)) for r in ROLES]
        self._wait(lambda: all(self.ready(n, r) for n, r in targets), timeout,
                   lambda: "not ready: " + ", ".join(
                       f"{n}/{r}" for n, r in targets if not self.ready(n, r)))

    def backends_up(self) -> bool:
        """Every live node's proxy sees every backend up."""
        for name, node in self.nodes.items():
            if node.dead:
                continue
            try:
                reply = control.request(self.control_socket(name, "proxy"), "GET", "/status",
                                        timeout=2.0)
            except control.ControlClientError:
                return False
            backends = reply.body.get("backends", {})
            if not backends or not all(b.get("up") for b in backends.values()):
                return False
        return True

    def wait_backends_up(self, timeout: float) -> None:
        self._wait(self.backends_up, timeout, lambda: "some proxy still sees a backend down")

    # -- VIPs ----------------------------------------------------------------

    def vip_holders(self, address: str) -> list[str]:
        """Live nodes whose kernel has ``address`` configured (two = split brain)."""
        holders = []
        for name, node in self.nodes.items():
            if node.dead:
                continue
            out = node.host.run(["ip", "-4", "-o", "addr", "show"], check=False).stdout
            if f" {address}/" in out:
                holders.append(name)
        return holders

    def wait_vips_home(self, timeout: float) -> None:
        every = [*VIPS, DHCP_VIP]
        self._wait(lambda: all(self.vip_holders(a) == [h] for _, a, _, h in every), timeout,
                   lambda: "VIPs not at home: " + ", ".join(
                       f"{a} on {self.vip_holders(a)}" for _, a, _, _ in every))

    @staticmethod
    def _wait(check: Callable[[], bool], timeout: float, why: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise ClusterError(why())

    # -- DHCP ----------------------------------------------------------------

    def dhcp_lease(self, timeout: float = 10.0) -> tuple[str, str] | None:
        """Run udhcpc once on the DHCP client machine: (address, server id), or None."""
        script = self.root / "udhcpc.sh"
        if not script.exists():
            script.write_text('#!/bin/sh\n[ "$1" = bound ] && echo "LEASE $ip $serverid"\n'
                              "exit 0\n")
            script.chmod(0o755)
        tries = max(1, int(timeout))
        result = self.dhcp_client.run(
            ["udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", str(tries), "-T", "1",
             "-s", str(script)], timeout=timeout + 5, check=False)
        for line in result.stdout.splitlines():
            if line.startswith("LEASE "):
                _, address, server = line.split()[:3]
                return address, server
        return None

    # -- description ---------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The ``--state-file`` document of DESIGN.md's demo contract."""
        metrics_ports = {"proxy": 9143, "backend": 9144, "vipd": 9150, "dhcp": 9167}
        return {
            "mode": "netns",
            "client_netns": self.client.netns,
            "config": str(self.config),
            "vips": [{"name": name, "address": address, "imap_port": IMAP_PORT,
                      "imaps_port": IMAPS_PORT, "home": home, "vrid": vrid}
                     for name, address, vrid, home in VIPS],
            "ca_cert": str(self.pki.ca_cert),
            "service_name": SERVICE_NAME,
            "users": [{"name": u.name, "password": u.password} for u in self.mail_users],
            "maildir_root": str(self.root / "mail"),
            "dhcp": {"client_netns": self.dhcp_client.netns, "ifname": "eth0",
                     "vip": DHCP_VIP[1], "pool": list(DHCP_POOL)},
            "nodes": {
                name: {
                    "netns": node.host.netns,
                    "address": NODES[name],
                    "control": {r: str(self.control_socket(name, r)) for r in ROLES},
                    "metrics": {r: f"{NODES[name]}:{p}" for r, p in metrics_ports.items()},
                    "pids": {r: [p.pid] for r, p in node.processes.items() if p.alive()},
                    "logs": {r: str(self.root / "logs" / f"{name}-{r}.log") for r in ROLES},
                }
                for name, node in self.nodes.items()
            },
        }
