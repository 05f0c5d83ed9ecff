"""`imapha dhcp` as a daemon: real clients in namespaces against a split pair and a hot standby.

What a user checks: a client gets an address, the address is in the pool, the
client really has it configured and both servers' stores agree on who holds it.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from dhcp.options import MessageType, Opt, Options, OptionValue
from dhcp.packet import BOOTREQUEST, CLIENT_PORT, SERVER_PORT, Packet, decode, encode
from imapha.lab.topology import Lab
from tests.dhcp.cluster import POOL, VIP, Pair, dump, make_pair

pytestmark = pytest.mark.netns


@pytest.fixture
def root() -> Iterator[Path]:
    # short: control socket paths must fit sockaddr_un
    path = Path(tempfile.mkdtemp(prefix="dh", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def in_pool(address: IPv4Address | None) -> bool:
    return address is not None and IPv4Address(POOL[0]) <= address <= IPv4Address(POOL[1])


def test_split_pair_serves_udhcpc_and_replicates(lab: Lab, root: Path) -> None:
    pair = make_pair(lab, root)
    pair.start("a")
    pair.start("b")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    clients = [pair.udhcpc(f"c{i}") for i in range(4)]
    try:
        for client in clients:
            client.wait_bound(15)
    except AssertionError:
        raise AssertionError(dump(pair)) from None
    for client in clients:
        address = client.bound()
        assert in_pool(address)
        assert str(address) in client.configured()
    held = pair.check_unique()
    assert len(held) == 4
    # both stores know every lease, whichever node gave it
    for node in ("a", "b"):
        assert set(pair.active(node)) == set(held), dump(pair)


def serverid(client_events: list[list[str]]) -> str:
    bound = [e for e in client_events if e[0] in ("bound", "renew")]
    return bound[-1][2] if bound and len(bound[-1]) > 2 else ""


def reply_source(lab: Lab, taken: IPv4Address) -> str:
    """Ask to renew someone else's address; return the IP source of the NAK we get."""
    host = lab.add_client("probe", ["192.0.2.66/24"])
    sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        sock.bind(("0.0.0.0", CLIENT_PORT))
        sock.settimeout(3.0)
        options: dict[int, OptionValue] = {Opt.MESSAGE_TYPE: MessageType.REQUEST,
                                           Opt.REQUESTED_IP: taken}
        request = Packet(op=BOOTREQUEST, xid=99, chaddr=bytes.fromhex("0200000000aa"),
                         options=Options.of(options))  # INIT-REBOOT for a taken address
        sock.sendto(encode(request), ("255.255.255.255", SERVER_PORT))
        for _ in range(10):
            data, (source, _port) = sock.recvfrom(2048)
            reply = decode(data)
            if reply.xid == 99:
                assert reply.message_type is MessageType.NAK
                return str(source)
        raise AssertionError("no NAK")
    finally:
        sock.close()


def test_hot_standby_master_answers_standby_takes_over_after_sigkill(
    lab: Lab, root: Path
) -> None:
    pair = make_pair(lab, root, mode="hot-standby")
    pair.start("a")
    pair.start("b")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    pair.vip("a", "master")
    pair.vip("b", "backup")
    first = pair.udhcpc("c1")
    Pair.wait(lambda: first.bound() is not None, 15, "c1 bound")
    assert serverid(first.events()) == VIP  # option 54 = the VIP, reply from the VIP
    address = str(first.bound())
    # the standby acknowledged the lease before the client got its ACK
    assert pair.active("b").get(address) == pair.active("a")[address]
    assert pair.status("b")["answering"] is False
    assert reply_source(lab, IPv4Address(address)) == VIP  # replies leave from the VIP

    pair.kill("a")  # SIGKILL: no goodbye on the peer link
    pair.vip("b", "master")  # what vipd does when a's adverts stop
    second = pair.udhcpc("c2")
    took = Pair.wait(lambda: second.bound() is not None, 10, "c2 bound by b")
    assert took < 1.0, f"new client served {took:.2f} s after the promotion"
    assert serverid(second.events()) == VIP
    assert pair.check_unique()
    Pair.wait(lambda: pair.failover("b") == "partner-down", 5, "b partner-down")

    # a comes back with an empty store: it resyncs before it may become active
    for path in (root / "a" / "state").glob("leases.db*"):
        path.unlink()
    pair.start("a")
    assert not pair.ready("a") or set(pair.active("a")) >= {address}
    Pair.wait(lambda: pair.ready("a"), 10, "a ready again")
    held = pair.check_unique()
    assert set(pair.active("a")) == set(held) == set(pair.active("b")), dump(pair)


def test_split_sigkill_survivor_serves_at_once_and_restart_with_empty_store(
    lab: Lab, root: Path
) -> None:
    pair = make_pair(lab, root)
    pair.start("a")
    pair.start("b")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    early = [pair.udhcpc(f"c{i}") for i in range(3)]
    for client in early:
        client.wait_bound(15)
    pair.kill("a")
    late = pair.udhcpc("late")
    took = Pair.wait(lambda: late.bound() is not None, 10, "late client bound by b")
    assert took < 1.0, f"new client served {took:.2f} s after a died"
    Pair.wait(lambda: pair.failover("b") == "partner-down", 5, "b partner-down")
    pair.check_unique()
    for path in (root / "a" / "state").glob("leases.db*"):
        path.unlink()
    pair.start("a")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal again")
    held = pair.check_unique()
    assert len(held) == 4
    assert set(pair.active("a")) == set(held) == set(pair.active("b")), dump(pair)
    more = pair.udhcpc("more")
    Pair.wait(lambda: more.bound() is not None, 15, "another client after the resync")
    assert len(pair.check_unique()) == 5


@pytest.mark.slow
def test_split_partition_both_serve_own_halves_then_heal(lab: Lab, root: Path) -> None:
    pair = make_pair(lab, root)
    pair.start("a")
    pair.start("b")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    before = [pair.udhcpc(f"c{i}") for i in range(2)]
    for client in before:
        client.wait_bound(15)
    lab.partition(pair.a, pair.b)  # both still reach every client
    Pair.wait(lambda: pair.failover("a") == "communications-interrupted"
              == pair.failover("b"), 10, "interrupted")
    during = [pair.udhcpc(f"p{i}") for i in range(6)]
    for client in during:
        took = client.wait_bound(10)
    assert took < 10
    held = pair.check_unique()
    assert len(held) == 8
    low, high = IPv4Address(POOL[0]), IPv4Address(POOL[1])
    middle = int(low) + (int(high) - int(low) + 1) // 2
    for client in during:  # each server gave only from its own half
        address = client.bound()
        assert address is not None
        owner = "192.0.2.11" if int(address) < middle else "192.0.2.12"
        assert serverid(client.events()) == owner, (address, client.events())
    lab.heal(pair.a, pair.b)
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "healed")
    held = pair.check_unique()
    assert set(pair.active("a")) == set(held) == set(pair.active("b")), dump(pair)


@pytest.mark.slow
def test_hot_standby_split_brain_two_masters_never_lease_twice(lab: Lab, root: Path) -> None:
    """A cut peer link makes vipd master on both nodes: each serves its own half."""
    pair = make_pair(lab, root, mode="hot-standby")
    pair.start("a")
    pair.start("b")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    pair.vip("a", "master")
    pair.vip("b", "backup")
    first = pair.udhcpc("c0")
    first.wait_bound(15)
    lab.partition(pair.a, pair.b)
    Pair.wait(lambda: pair.failover("a") == "communications-interrupted"
              == pair.failover("b"), 10, "interrupted")
    pair.vip("b", "master")  # VRRP on both sides of the cut: two masters, one VIP
    during = [pair.udhcpc(f"p{i}") for i in range(5)]
    for client in during:
        client.wait_bound(20)
    assert len(pair.check_unique()) == 6, dump(pair)
    lab.heal(pair.a, pair.b)
    pair.vip("b", "backup")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "healed")
    held = pair.check_unique()
    assert set(pair.active("a")) == set(held) == set(pair.active("b")), dump(pair)


def test_a_planned_restart_keeps_the_peer_interrupted_and_resyncs(lab: Lab, root: Path) -> None:
    pair = make_pair(lab, root)
    pair.start("a")
    pair.start("b")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    first = pair.udhcpc("c0")
    first.wait_bound(15)
    pair.stop("b")  # SIGTERM: b says bye on the peer link
    Pair.wait(lambda: pair.failover("a") == "communications-interrupted", 5, "a interrupted")
    time.sleep(1.5)  # b's port now refuses: still not partner-down
    assert pair.failover("a") == "communications-interrupted"
    during = pair.udhcpc("c1")  # a serves new clients from its own half meanwhile
    during.wait_bound(10)
    pair.start("b")  # b kept its store: startup, resync, normal
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal again")
    held = pair.check_unique()
    assert len(held) == 2
    assert set(pair.active("a")) == set(held) == set(pair.active("b")), dump(pair)
