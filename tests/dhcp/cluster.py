"""A two-node `imapha dhcp` pair in lab namespaces, with real DHCP clients, for the daemon tests.

Servers a (192.0.2.11) and b (192.0.2.12) on 192.0.2.0/24; the DHCP VIP is
192.0.2.250. Each daemon is the real ``imapha dhcp`` process, reached through
its control socket (the test plays vipd with ``POST /vip``). Clients are busybox
``udhcpc`` or ISC ``dhclient`` in address-less client hosts; each client's
script records what it was given, so the test can compare the clients' own
beliefs with both servers' stores.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from imapha.control import ControlClientError, ControlResponse, request
from imapha.lab.proc import LabProcess
from imapha.lab.topology import Host, Lab
from tests.prereq import need_binary

VIP = "192.0.2.250"
NET = "192.0.2.0/24"
POOL = ("192.0.2.100", "192.0.2.139")
RELAYED_POOL = ("198.51.100.100", "198.51.100.119")
IMAPHA = [sys.executable, "-m", "imapha"]

UDHCPC_SCRIPT = """#!/bin/sh
# records every event: OUT.bound, OUT.renew, OUT.deconfig ... (the last one wins)
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    ;;
  deconfig) ip addr flush dev "$interface" ;;
esac
env | sort > "$OUT.$1.tmp" && mv "$OUT.$1.tmp" "$OUT.$1"
echo "$1 $ip $serverid" >> "$OUT.events"
"""

DHCLIENT_SCRIPT = """#!/bin/sh
OUT={out}
echo "$reason $new_ip_address $new_dhcp_server_identifier" >> "$OUT.events"
case "$reason" in BOUND|REBOOT|RENEW|REBIND) ;; *) exit 0 ;; esac
ip addr flush dev "$interface"
ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
env | sort > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
"""


def config_text(root: Path, *, mode: str = "split", mclt: str = "1h", lease: str = "10m",
                registrations: Path | None = None, relayed: bool = False,
                pool: tuple[str, str] = POOL, vrrp: str = "", lease_db: str | None = None,
                probe_timeout: str | None = None) -> str:
    regs = f'registrations = "{registrations}"\n' if registrations else ""
    if probe_timeout is not None:
        regs += f'probe_timeout = "{probe_timeout}"\n'
    if lease_db is not None:
        regs += f'lease_db = "{lease_db}"\n'
    relayed_subnet = (
        '\n[[dhcp.subnets]]\nsubnet = "198.51.100.0/24"\n'
        f'pools = ["{RELAYED_POOL[0]}-{RELAYED_POOL[1]}"]\nrouters = ["198.51.100.1"]\n'
        'lease_time = "15m"\n' if relayed else ""
    )
    return f"""
[cluster]
name = "dhcptest"
run_dir = "{root}/{{node}}/run"
state_dir = "{root}/{{node}}/state"

[nodes.a]
address = "192.0.2.11"
interface = "eth0"

[nodes.b]
address = "192.0.2.12"
interface = "eth0"

[[vips]]
name = "dhcp1"
address = "{VIP}/24"
vrid = 61
home = "a"
track = "dhcp"

{vrrp}
[[backends]]
name = "be"
address = "192.0.2.11:11143"
tls = "none"

[dhcp]
mode = "{mode}"
vip = "dhcp1"
interfaces = ["eth0"]
secret_file = "{root}/peer.key"
mclt = "{mclt}"
{regs}
[[dhcp.subnets]]
subnet = "{NET}"
pools = ["{pool[0]}-{pool[1]}"]
routers = ["192.0.2.1"]
dns = ["192.0.2.53"]
domain = "lab.example"
lease_time = "{lease}"
{relayed_subnet}"""


@dataclass
class Client:
    """One DHCP client machine and the client program running in it."""

    host: Host
    out: Path
    process: LabProcess | None = None

    def events(self) -> list[list[str]]:
        path = Path(f"{self.out}.events")
        if not path.exists():
            return []
        return [line.split() for line in path.read_text().splitlines()]

    def bound(self) -> IPv4Address | None:
        """The address the client itself believes it holds now (its last event)."""
        for event in reversed(self.events()):
            if event[0] in ("bound", "renew", "BOUND", "REBOOT", "RENEW", "REBIND"):
                return IPv4Address(event[1]) if len(event) > 1 else None
            if event[0] in ("deconfig", "leasefail", "nak", "EXPIRE", "FAIL", "RELEASE", "STOP"):
                return None
        return None

    def wait_bound(self, timeout: float = 15.0) -> float:
        """Seconds until the client holds an address (AssertionError after ``timeout``)."""
        return Pair.wait(lambda: self.bound() is not None, timeout,
                         f"{self.host.name} to get a lease")

    def mac(self) -> str:
        return self.host.interface().mac

    def configured(self) -> list[str]:
        out = self.host.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        return [word.split("/")[0] for line in out.splitlines() for word in line.split()[3:4]]


@dataclass
class Pair:
    lab: Lab
    root: Path
    a: Host
    b: Host
    config: Path
    procs: dict[str, LabProcess] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)  # more `imapha dhcp` arguments
    clients: list[Client] = field(default_factory=list)

    def host(self, node: str) -> Host:
        return self.a if node == "a" else self.b

    def socket(self, node: str) -> Path:
        return self.root / node / "run" / "dhcp.sock"

    def start(self, node: str, *, wait_ready: bool = False, timeout: float = 15.0) -> LabProcess:
        env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        process = self.host(node).spawn(
            [*IMAPHA, "dhcp", "--config", str(self.config), "--node", node, *self.args],
            env=env)
        self.procs[node] = process
        if wait_ready:
            self.wait(lambda: self.ready(node), timeout, f"{node} ready")
        else:
            self.wait(lambda: self.answers(node), timeout, f"{node} control socket")
        return process

    def kill(self, node: str) -> None:
        process = self.procs.pop(node)
        process.send_signal(signal.SIGKILL)
        process.wait(5)

    def stop(self, node: str) -> None:
        process = self.procs.pop(node)
        process.stop(5.0)

    def log(self, node: str) -> str:
        process = self.procs.get(node)
        return process.output() if process is not None else ""

    def ctl(self, node: str, method: str, target: str,
            body: dict[str, Any] | None = None) -> ControlResponse:
        return request(self.socket(node), method, target, body, timeout=5.0)

    def answers(self, node: str) -> bool:
        try:
            self.ctl(node, "GET", "/status")
        except ControlClientError:
            return False
        return True

    def ready(self, node: str) -> bool:
        try:
            return self.ctl(node, "GET", "/ready").ok
        except ControlClientError:
            return False

    def status(self, node: str) -> dict[str, Any]:
        return self.ctl(node, "GET", "/status").body

    def failover(self, node: str) -> str:
        return str(self.status(node).get("failover"))

    def vip(self, node: str, state: str) -> None:
        """Play vipd: tell ``node`` its role for the DHCP VIP (and move the address)."""
        host = self.host(node)
        if state == "master":
            host.run(["ip", "addr", "replace", f"{VIP}/24", "dev", "eth0"])
        else:
            host.run(["ip", "addr", "del", f"{VIP}/24", "dev", "eth0"], check=False)
        reply = self.ctl(node, "POST", "/vip", {"vip": "dhcp1", "state": state})
        assert reply.ok, reply.body

    def leases(self, node: str) -> list[dict[str, Any]]:
        reply = self.ctl(node, "GET", "/leases")
        assert reply.ok, reply.body
        return list(reply.body["leases"])

    def active(self, node: str) -> dict[str, str]:
        """address -> client of every record holding its address, in ``node``'s store."""
        return {x["address"]: x["client"] for x in self.leases(node) if x["active"]
                and x["state"] == "bound"}

    @staticmethod
    def wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            if condition():
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")

    # -- clients -------------------------------------------------------------------

    def udhcpc(self, name: str, *, once: bool = False, extra: list[str] | None = None,
               network: str = NET, host: Host | None = None) -> Client:
        udhcpc = need_binary("udhcpc")
        if host is None:
            host = self.lab.add_client(name, networks=[network])
        script = self.root / "udhcpc.sh"
        if not script.exists():
            script.write_text(UDHCPC_SCRIPT)
            script.chmod(0o755)
        client = Client(host, self.root / f"client-{name}")
        argv = [udhcpc, "-i", "eth0", "-f", "-t", "20", "-T", "1", "-A", "1", "-s", str(script)]
        if once:
            argv += ["-q", "-n"]
        client.process = host.spawn([*argv, *(extra or [])], env={"OUT": str(client.out)})
        self.clients.append(client)
        return client

    def dhclient(self, name: str) -> Client:
        dhclient = need_binary("dhclient")
        host = self.lab.add_client(name, networks=[NET])
        client = Client(host, self.root / f"client-{name}")
        script = self.root / f"dhclient-{name}.sh"
        script.write_text(DHCLIENT_SCRIPT.replace("{out}", shlex.quote(str(client.out))))
        script.chmod(0o755)
        client.process = host.spawn([
            dhclient, "-d", "-sf", str(script), "-lf", str(self.root / f"dhclient-{name}.leases"),
            "-pf", str(self.root / f"dhclient-{name}.pid"), "eth0",
        ])
        self.clients.append(client)
        return client

    def check_unique(self) -> dict[str, str]:
        """No address held by two clients: the clients' beliefs and both stores agree."""
        beliefs: dict[IPv4Address, str] = {}
        for client in self.clients:
            address = client.bound()
            if address is None:
                continue
            assert address not in beliefs, (
                f"{address} is held by both {beliefs[address]} and {client.host.name}")
            beliefs[address] = client.host.name
        stores = {node: self.active(node) for node in ("a", "b") if self.answers(node)}
        for node, held in stores.items():
            for other, other_held in stores.items():
                for text, holder in held.items():
                    if text in other_held:
                        assert other_held[text] == holder, (
                            f"{text}: {node} says {holder}, {other} says {other_held[text]}")
        return {str(a): c for a, c in beliefs.items()}


def make_pair(lab: Lab, root: Path, *, relay: bool = False, **config: Any) -> Pair:
    root.mkdir(parents=True, exist_ok=True)
    (root / "peer.key").write_text(os.urandom(24).hex() + "\n")
    path = root / "imapha.toml"
    path.write_text(config_text(root, relayed=relay, **config))
    a = lab.add_host("a", ["192.0.2.11/24"])
    b = lab.add_host("b", ["192.0.2.12/24"])
    if relay:
        for host in (a, b):
            host.run(["ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.254"])
    return Pair(lab, root, a, b, path)


def dump(pair: Pair) -> str:
    """Diagnostics for an assertion message."""
    parts = []
    for node in ("a", "b"):
        try:
            parts.append(f"--- {node} status {json.dumps(pair.status(node))}")
        except (ControlClientError, AssertionError) as exc:
            parts.append(f"--- {node} status: {exc}")
        parts.append(pair.log(node)[-3000:])
    for client in pair.clients:
        parts.append(f"--- client {client.host.name}: {client.events()}")
    return "\n".join(parts)
