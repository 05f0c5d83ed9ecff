"""Real DHCP clients (busybox udhcpc, ISC dhclient, via ISC dhcrelay) against our core.

A two-host lab: the server host (192.0.2.1) and a client host with an
unconfigured interface. The test process answers on UDP port 67 inside the
server's namespace with a minimal loop (decode, ``Server.handle``, ``apply``,
encode, send): not the daemon's I/O layer, just enough to let a real client
finish DISCOVER/OFFER/REQUEST/ACK. The client's script configures the address
it was given, and the test checks what a user would: the client host has the
address and reaches the server, and the lease is in the database.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from dhcp.logic import Delivery, Ingress, Reply, Server, apply
from dhcp.network import Pool, ServerConfig, Subnet
from dhcp.options import DecodeError, MessageType
from dhcp.packet import CLIENT_PORT, SERVER_PORT, Packet, decode, encode
from dhcp.sqlite_store import SQLiteStore
from dhcp.store import LeaseState
from imapha.lab.topology import Host, Lab
from tests.prereq import need_binary

pytestmark = pytest.mark.netns

SERVER = IPv4Interface("192.0.2.1/24")
POOL = Pool(IPv4Address("192.0.2.100"), IPv4Address("192.0.2.109"))
LIMIT = 20.0  # seconds any one exchange may take
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux value; Python 3.11 lacks the name

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound)
    ip addr add "$ip/$mask" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    ;;
  renew) OUT="$OUT.renew" ;;
  *) exit 0 ;;
esac
env | sort > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
"""

# dhclient gives its script a clean environment: OUT is written into the script.
DHCLIENT_SCRIPT = """#!/bin/sh
OUT={out}
case "$reason" in BOUND|REBOOT) ;; *) exit 0 ;; esac
ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
env | sort > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
"""


@contextlib.contextmanager
def dhcp_socket(host: Host) -> Iterator[socket.socket]:
    sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        # 255.255.255.255 has no route; bound to the device it leaves by eth0.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.bind(("0.0.0.0", SERVER_PORT))
        yield sock
    finally:
        sock.close()


def _destination(ancillary: list[tuple[int, int, bytes]]) -> IPv4Address | None:
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
            _ifindex, _local, dest = struct.unpack("i4s4s", data[:12])
            return IPv4Address(dest)
    return None


def serve_until_bound(sock: socket.socket, server: Server, done: Path) -> list[str]:
    """Answer requests until the client's script wrote ``done``; return the exchange."""
    return serve_until(sock, server, done.exists)


def serve_until(
    sock: socket.socket,
    server: Server,
    finished: Callable[[], bool],
    log: list[tuple[Packet, Reply | None]] | None = None,
) -> list[str]:
    """Answer requests until ``finished()`` (bounded by LIMIT); return what was seen.

    A request that reached us by unicast is noted as ``REQUEST/unicast``; each
    request and its reply are appended to ``log`` if given.
    """
    seen: list[str] = []
    deadline = time.monotonic() + LIMIT
    while not finished() and time.monotonic() < deadline:
        sock.settimeout(0.2)
        try:
            data, ancillary, _flags, _src = sock.recvmsg(4096, 256)
        except TimeoutError:
            continue
        try:
            request = decode(data)
        except DecodeError as exc:
            seen.append(f"malformed:{exc.reason.value}")
            continue
        destination = _destination(ancillary)
        broadcast = destination is None or destination == IPv4Address("255.255.255.255")
        ingress = Ingress("eth0", (SERVER,), broadcast=broadcast)
        outcome = server.handle(request, ingress, time.time())
        reply = apply(outcome, server.store)
        name = MessageType(request.message_type or 0).name
        seen.append(name if broadcast else f"{name}/unicast")
        if log is not None:
            log.append((request, reply if isinstance(reply, Reply) else None))
        if not isinstance(reply, Reply):
            continue
        seen.append(str(MessageType(reply.packet.message_type or 0).name))
        if reply.delivery is Delivery.RELAY:
            target = (str(reply.destination), SERVER_PORT)
        elif reply.delivery is Delivery.UNICAST:
            target = (str(reply.destination), CLIENT_PORT)
        else:  # no raw socket here: a broadcast reaches a client without an address too
            target = ("255.255.255.255", CLIENT_PORT)
        sock.sendto(encode(reply.packet, reply.max_size), target)
    return seen


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


RELAYED = Subnet(
    IPv4Network("198.51.100.0/24"),
    pools=(Pool(IPv4Address("198.51.100.100"), IPv4Address("198.51.100.109")),),
    routers=(IPv4Address("198.51.100.1"),),
    lease_time=900,
)


def make_server(tmp_path: Path) -> Server:
    subnet = Subnet(
        IPv4Network("192.0.2.0/24"),
        pools=(POOL,),
        routers=(SERVER.ip,),
        dns_servers=(SERVER.ip,),
        domain_name="lab.example",
        lease_time=600,
    )
    config = ServerConfig(SERVER.ip, (subnet, RELAYED))
    return Server(config, SQLiteStore(tmp_path / "leases.db"))


def setup(lab: Lab) -> tuple[Host, Host]:
    return (
        lab.add_host("srv", [str(SERVER)]),
        lab.add_client("c", networks=["192.0.2.0/24"]),
    )


def check_bound(client: Host, server: Server, env_address: str) -> None:
    address = IPv4Address(env_address)
    assert address in POOL
    assert f"{address}/24" in [str(a) for a in _addresses(client)]
    assert client.ping(str(SERVER.ip), count=1, wait=2.0)
    lease = server.store.get(address)
    assert lease is not None and lease.state is LeaseState.BOUND
    assert lease.hwaddr == bytes.fromhex(client.interface().mac.replace(":", ""))


def _addresses(host: Host) -> list[IPv4Interface]:
    out = host.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
    return [IPv4Interface(word) for line in out.splitlines() for word in line.split()[3:4]]


def test_udhcpc_gets_a_lease(lab: Lab, tmp_path: Path) -> None:
    udhcpc = need_binary("udhcpc")
    srv, client = setup(lab)
    server = make_server(tmp_path)
    script = tmp_path / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    done = tmp_path / "udhcpc.env"
    with dhcp_socket(srv) as sock:
        process = client.spawn(
            [udhcpc, "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", str(script)],
            env={"OUT": str(done)},
        )
        seen = serve_until_bound(sock, server, done)
    assert done.exists(), f"udhcpc got no lease; exchange {seen}; log:\n{process.log.read_text()}"
    assert seen[:4] == ["DISCOVER", "OFFER", "REQUEST", "ACK"]
    env = read_env(done)
    assert env["serverid"] == str(SERVER.ip)
    assert env["router"].split() == [str(SERVER.ip)]
    assert env["domain"] == "lab.example"
    assert env["lease"] == "600"
    check_bound(client, server, env["ip"])
    mac = bytes.fromhex(client.interface().mac.replace(":", ""))
    lease = server.store.get(IPv4Address(env["ip"]))
    assert lease is not None and lease.client == "id:01" + mac.hex()  # udhcpc sends option 61
    server.store.close()


def test_dhclient_gets_a_lease_and_reboots_into_it(lab: Lab, tmp_path: Path) -> None:
    """DORA, then INIT-REBOOT (§4.3.2) twice: kept address ACKed; taken address NAKed."""
    dhclient = need_binary("dhclient")
    srv, client = setup(lab)
    server = make_server(tmp_path)
    script = tmp_path / "dhclient.sh"
    done = tmp_path / "dhclient.env"
    script.write_text(DHCLIENT_SCRIPT.replace("{out}", shlex.quote(str(done))))
    script.chmod(0o755)
    argv = [
        dhclient,
        "-d",
        "-1",
        "-sf",
        str(script),
        "-lf",
        str(tmp_path / "dhclient.leases"),  # kept across runs: dhclient remembers its lease
        "-pf",
        str(tmp_path / "dhclient.pid"),
        "eth0",
    ]

    def boot() -> tuple[list[str], dict[str, str]]:
        done.unlink(missing_ok=True)
        client.run(["ip", "-4", "addr", "flush", "dev", "eth0"])
        process = client.spawn(argv, env={"OUT": str(done)})
        seen = serve_until_bound(sock, server, done)
        assert done.exists(), f"dhclient got no lease; {seen}; log:\n{process.log.read_text()}"
        process.stop()
        return seen, read_env(done)

    with dhcp_socket(srv) as sock:
        seen, env = boot()
        assert seen[:4] == ["DISCOVER", "OFFER", "REQUEST", "ACK"]
        assert env["new_dhcp_server_identifier"] == str(SERVER.ip)
        assert env["new_subnet_mask"] == "255.255.255.0"
        assert env["new_dhcp_lease_time"] == "600"
        check_bound(client, server, env["new_ip_address"])
        first = IPv4Address(env["new_ip_address"])

        seen, env = boot()  # INIT-REBOOT: the remembered address is still its own
        assert seen[:2] == ["REQUEST", "ACK"] and env["reason"] == "REBOOT"
        assert IPv4Address(env["new_ip_address"]) == first

        # While it was away its lease ended and another machine got the address.
        now = time.time()
        holder = server.store.get(first)
        assert holder is not None
        server.store.release(first, holder.client, now)
        server.store.commit(
            first, "hw:1:0200000000ff", b"", starts=now, expires=now + 600, hostname=None
        )
        seen, env = boot()
        assert seen[:6] == ["REQUEST", "NAK", "DISCOVER", "OFFER", "REQUEST", "ACK"]
        second = IPv4Address(env["new_ip_address"])
        assert second != first
        check_bound(client, server, str(second))
    server.store.close()


def test_udhcpc_renews_by_unicast_and_releases(lab: Lab, tmp_path: Path) -> None:
    """RENEWING (RFC 2131 §4.4.5): unicast REQUEST, ACK to ciaddr; then RELEASE."""
    udhcpc = need_binary("udhcpc")
    srv, client = setup(lab)
    server = make_server(tmp_path)
    script = tmp_path / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    done = tmp_path / "udhcpc.env"
    renewed = tmp_path / "udhcpc.env.renew"
    with dhcp_socket(srv) as sock:
        process = client.spawn(
            [udhcpc, "-i", "eth0", "-f", "-t", "5", "-T", "1", "-s", str(script)],
            env={"OUT": str(done)},
        )
        serve_until_bound(sock, server, done)
        assert done.exists(), process.log.read_text()
        address = IPv4Address(read_env(done)["ip"])
        first = server.store.get(address)
        assert first is not None
        time.sleep(1.1)  # so the renewed lease ends measurably later
        process.send_signal(signal.SIGUSR1)  # busybox: renew now
        seen = serve_until(sock, server, renewed.exists)
        assert renewed.exists(), f"no renewal; exchange {seen}; log:\n{process.log.read_text()}"
        assert seen[:2] == ["REQUEST/unicast", "ACK"]
        second = server.store.get(address)
        assert second is not None and second.expires > first.expires
        assert second.state is LeaseState.BOUND
        process.send_signal(signal.SIGUSR2)  # busybox: release

        def released() -> bool:
            lease = server.store.get(address)
            return lease is not None and lease.state is LeaseState.RELEASED

        seen = serve_until(sock, server, released)
    assert released(), f"no release; exchange {seen}; log:\n{process.log.read_text()}"
    assert seen == ["RELEASE/unicast"]
    server.store.close()


def test_udhcpc_through_isc_dhcrelay_with_option_82(lab: Lab, tmp_path: Path) -> None:
    """Relayed (RFC 2131 §4.1, RFC 3046): subnet by giaddr, replies to giaddr:67, 82 echoed."""
    udhcpc = need_binary("udhcpc")
    dhcrelay = need_binary("dhcrelay")
    srv = lab.add_host("srv", [str(SERVER)])
    relay = lab.add_host("rly", ["192.0.2.254/24", "198.51.100.1/24"])
    client = lab.add_client("c", networks=["198.51.100.0/24"])
    srv.run(["ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.254"])
    relay.sysctl("net.ipv4.ip_forward", 1)
    server = make_server(tmp_path)
    script = tmp_path / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    done = tmp_path / "udhcpc.env"
    log: list[tuple[Packet, Reply | None]] = []
    with dhcp_socket(srv) as sock:
        pid_file = str(tmp_path / "relay.pid")
        relay.spawn(
            [dhcrelay, "-4", "-d", "-a", "-pf", pid_file, "-id", "eth1", "-iu", "eth0", "192.0.2.1"]
        )
        time.sleep(0.5)  # dhcrelay opens its sockets
        process = client.spawn(
            [udhcpc, "-i", "eth0", "-f", "-q", "-n", "-t", "8", "-T", "1", "-s", str(script)],
            env={"OUT": str(done)},
        )
        seen = serve_until(sock, server, done.exists, log)
    assert done.exists(), f"no lease through the relay; {seen}; log:\n{process.log.read_text()}"
    env = read_env(done)
    address = IPv4Address(env["ip"])
    assert address in RELAYED.pools[0]
    assert env["router"].split() == ["198.51.100.1"]
    assert env["lease"] == "900"
    assert env["serverid"] == str(SERVER.ip)
    request, reply = next((q, r) for q, r in log if r is not None)
    assert request.giaddr == IPv4Address("198.51.100.1") and request.hops >= 1
    info = request.options.relay_agent_info
    assert info is not None and info.circuit_id == b"eth1"  # dhcrelay -a: the interface
    assert reply is not None and reply.delivery is Delivery.RELAY
    assert (reply.destination, reply.port) == (IPv4Address("198.51.100.1"), SERVER_PORT)
    assert reply.packet.options.relay_agent_info == info
    assert client.ping(str(SERVER.ip), count=1, wait=2.0)  # routed back through the relay
    lease = server.store.get(address)
    assert lease is not None and lease.state is LeaseState.BOUND
    server.store.close()
