"""`imapha dhcp` with real clients: registrations reloaded live, a relay, renew, rebind, release.

One server (node a, its peer declared down by the operator) unless the test
needs the pair. The clients are busybox udhcpc and ISC dhclient in their own
namespaces; ISC dhcrelay runs in a router namespace.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from dhcp.options import MessageType, Opt, Options, OptionValue
from dhcp.packet import BOOTREQUEST, CLIENT_PORT, SERVER_PORT, Packet, encode
from imapha.lab.topology import Lab
from tests.dhcp.cluster import POOL, RELAYED_POOL, Pair, dump, make_pair
from tests.prereq import need_binary

pytestmark = pytest.mark.netns


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dh", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def solo(pair: Pair) -> None:
    """Run node a alone: the operator declares b down, so a serves the whole pool."""
    pair.start("a")
    reply = pair.ctl("a", "POST", "/partner-down")
    assert reply.ok, reply.body
    Pair.wait(lambda: pair.ready("a"), 5, "a ready")


REGISTRATION = """
[[host]]
mac = "{mac}"
address = "{address}"
hostname = "printer-3"
"""


def test_registered_mac_gets_its_address_and_edits_apply_live(lab: Lab, root: Path) -> None:
    regs = root / "registrations.toml"
    regs.write_text("")
    pair = make_pair(lab, root, registrations=regs)
    host = lab.add_client("reg", networks=["192.0.2.0/24"])
    regs.write_text(REGISTRATION.format(mac=host.interface().mac, address="192.0.2.20"))
    solo(pair)
    first = pair.udhcpc("reg", host=host)
    Pair.wait(lambda: first.bound() is not None, 15, "registered client bound")
    assert first.bound() == IPv4Address("192.0.2.20")
    env = (root / "client-reg.bound").read_text()
    assert "hostname=printer-3" in env

    # an edit: the next answer changes, no restart
    regs.write_text(REGISTRATION.format(mac=host.interface().mac, address="192.0.2.21"))
    Pair.wait(lambda: pair.status("a")["registrations_error"] == ""
              and "registration(s)" in pair.log("a") and "applied" in pair.log("a"),
              5, "reload applied")
    assert first.process is not None
    first.process.stop()
    host.run(["ip", "addr", "flush", "dev", "eth0"])
    Path(f"{first.out}.events").unlink()
    second = pair.udhcpc("reg2", host=host)
    Pair.wait(lambda: second.bound() is not None, 15, "bound after the edit")
    assert second.bound() == IPv4Address("192.0.2.21"), dump(pair)

    # a bad edit is reported with file, line and key, and the old set stays
    regs.write_text(REGISTRATION.format(mac=host.interface().mac, address="192.0.2.22")
                    + 'colour = "blue"\n')
    Pair.wait(lambda: "colour" in pair.status("a")["registrations_error"], 5, "rejection")
    error = pair.status("a")["registrations_error"]
    assert f"{regs}:" in error and "colour" in error
    assert second.process is not None
    second.process.stop()
    host.run(["ip", "addr", "flush", "dev", "eth0"])
    Path(f"{second.out}.events").unlink()
    third = pair.udhcpc("reg3", host=host)
    Pair.wait(lambda: third.bound() is not None, 15, "bound after the bad edit")
    assert third.bound() == IPv4Address("192.0.2.21")


def test_udhcpc_through_isc_dhcrelay_to_the_pair(lab: Lab, root: Path) -> None:
    dhcrelay = need_binary("dhcrelay")
    pair = make_pair(lab, root, relay=True)
    relay = lab.add_host("rly", ["192.0.2.254/24", "198.51.100.1/24"])
    relay.sysctl("net.ipv4.ip_forward", 1)
    pair.start("a")
    pair.start("b")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    relay.spawn([dhcrelay, "-4", "-d", "-a", "-pf", str(root / "relay.pid"),
                 "-id", "eth1", "-iu", "eth0", "192.0.2.11", "192.0.2.12"])
    time.sleep(0.5)  # dhcrelay opens its sockets
    clients = [pair.udhcpc(f"r{i}", network="198.51.100.0/24") for i in range(2)]
    for client in clients:
        client.wait_bound(15)
        address = client.bound()
        assert address is not None
        assert IPv4Address(RELAYED_POOL[0]) <= address <= IPv4Address(RELAYED_POOL[1])
        env = Path(f"{client.out}.bound").read_text()
        assert "router=198.51.100.1" in env and "lease=900" in env
    assert len(pair.check_unique()) == 2
    # routed back through the relay to the server that answered
    for client in clients:
        assert client.host.run(["ip", "route", "add", "default", "via", "198.51.100.1"],
                               check=False) is not None
        assert client.host.ping("192.0.2.11", count=1, wait=2.0)


def test_udhcpc_renews_by_unicast_and_releases(lab: Lab, root: Path) -> None:
    pair = make_pair(lab, root)
    solo(pair)
    client = pair.udhcpc("c")
    Pair.wait(lambda: client.bound() is not None, 15, "bound")
    address = str(client.bound())
    first = pair.active("a")
    before = next(x for x in pair.leases("a") if x["address"] == address)
    time.sleep(1.1)
    assert client.process is not None
    client.process.send_signal(signal.SIGUSR1)  # busybox: renew now (unicast to option 54)
    Pair.wait(lambda: any(e[0] == "renew" for e in client.events()), 10, "renewed")
    after = next(x for x in pair.leases("a") if x["address"] == address)
    assert after["expires"] > before["expires"] and after["state"] == "bound"
    assert pair.active("a") == first
    client.process.send_signal(signal.SIGUSR2)  # busybox: release
    Pair.wait(lambda: next(x for x in pair.leases("a") if x["address"] == address)["state"]
              == "released", 10, "released")


def test_dhclient_gets_a_lease_and_releases_it(lab: Lab, root: Path) -> None:
    dhclient = need_binary("dhclient")
    pair = make_pair(lab, root)
    solo(pair)
    client = pair.dhclient("d")
    Pair.wait(lambda: client.bound() is not None, 20, "dhclient bound")
    address = client.bound()
    assert address is not None and IPv4Address(POOL[0]) <= address <= IPv4Address(POOL[1])
    assert str(address) in client.configured()
    assert client.host.ping("192.0.2.11", count=1, wait=2.0)
    lease = next(x for x in pair.leases("a") if x["address"] == str(address))
    assert lease["hwaddr"] == client.mac() and lease["state"] == "bound"
    # what the operator sees, through the real command: imapha ctl dhcp leases / lease IP / status
    for argv, expected in ((["leases"], f"{address} "), (["lease", str(address)], client.mac()),
                           (["status"], "failover partner-down, answering")):
        shown = subprocess.run(
            [sys.executable, "-m", "imapha", "ctl", "--config", str(pair.config), "dhcp",
             "--node", "a", *argv], capture_output=True, text=True, timeout=60, check=False)
        assert shown.returncode == 0, shown.stderr
        assert expected in shown.stdout, shown.stdout
    # dhclient -r: the running client sends RELEASE (and stops)
    client.host.run([dhclient, "-r", "-sf", "/bin/true", "-lf", str(root / "dhclient-d.leases"),
                     "-pf", str(root / "dhclient-d.pid"), "eth0"], timeout=20)
    Pair.wait(lambda: next(x for x in pair.leases("a") if x["address"] == str(address))["state"]
              == "released", 10, "released")


@pytest.mark.slow
def test_udhcpc_rebinds_to_the_survivor_when_its_server_dies(lab: Lab, root: Path) -> None:
    """RFC 2131 §4.4.5 REBINDING: renewals to a dead server fail; the broadcast reaches b."""
    pair = make_pair(lab, root, lease="20s")
    solo(pair)  # a alone gives the lease (server id 192.0.2.11) ...
    victim = pair.udhcpc("c")
    victim.wait_bound(15)
    pair.start("b")  # ... then b joins and learns it in the bulk resync
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    assert victim.events()[-1][2] == "192.0.2.11"
    pair.kill("a")
    address = victim.bound()
    # T1 = 10 s: unicast renewals to a go unanswered; T2 = 17 s: broadcast, b answers
    Pair.wait(lambda: victim.events()[-1][0] == "renew"
              and victim.events()[-1][2] == "192.0.2.12", 25, "rebound by b")
    assert victim.bound() == address, victim.events()
    pair.check_unique()


def test_malformed_packets_never_crash_the_server_or_change_a_lease(
    lab: Lab, root: Path
) -> None:
    pair = make_pair(lab, root)
    with pair.config.open("a") as config:  # a /metrics endpoint on node a
        config.write('\n[nodes.a.dhcp]\nmetrics = "192.0.2.11:9167"\n')
    solo(pair)
    good = pair.udhcpc("good")
    Pair.wait(lambda: good.bound() is not None, 15, "bound")
    before = pair.leases("a")
    bad = lab.add_client("bad", ["192.0.2.66/24"])
    sock = bad.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        sock.bind(("0.0.0.0", CLIENT_PORT))
        held = good.bound()
        assert held is not None
        renew: dict[int, OptionValue] = {Opt.MESSAGE_TYPE: MessageType.REQUEST}
        give_back: dict[int, OptionValue] = {Opt.MESSAGE_TYPE: MessageType.RELEASE}
        thief = Packet(op=BOOTREQUEST, xid=7, chaddr=bytes.fromhex("020000000bad"),
                       ciaddr=held, options=Options.of(renew))
        release = Packet(op=BOOTREQUEST, xid=8, chaddr=bytes.fromhex("020000000bad"),
                         ciaddr=held, options=Options.of(give_back))
        valid = encode(thief)
        payloads = [b"", b"\x01", b"\x00" * 300, valid[:240], valid[:236] + b"\x00\x00\x00\x00",
                    valid[:240] + b"\x35\x05\x01", valid[:240] + b"\x34\x01\x07\x35\x01\x01\xff",
                    valid[:240] + b"\x52\x03\x01\x05\x00\xff", bytes(range(256)) * 4,
                    encode(release)]
        for target in ("255.255.255.255", "192.0.2.11"):
            for payload in payloads:
                sock.sendto(payload, (target, SERVER_PORT))
            sock.sendto(valid, (target, SERVER_PORT))  # a renewal of someone else's address
        time.sleep(1.0)
    finally:
        sock.close()
    assert pair.answers("a"), pair.log("a")
    dropped = pair.status("a")["packets"]["dropped"]
    for reason in ("too_short", "bad_cookie", "truncated_option", "bad_relay_agent_info"):
        assert dropped.get(reason, 0) >= 2, dropped  # counted, once per target
    after = pair.leases("a")
    assert [x for x in after if x["active"]] == [x for x in before if x["active"]]
    with pair.a.connect("192.0.2.11", 9167) as conn:  # what Prometheus scrapes
        conn.sendall(b"GET /metrics HTTP/1.0\r\nHost: a\r\n\r\n")
        text = b"".join(iter(lambda: conn.recv(65536), b"")).decode()
    for reason in ("too_short", "bad_cookie", "truncated_option"):
        line = f'dhcp_packets_dropped_total{{reason="{reason}"}} {float(dropped[reason])}'
        assert line in text, text[-2000:]
    assert 'dhcp_failover_state_bool{state="partner-down"} 1.0' in text
    assert 'dhcp_replies_sent_total{delivery="broadcast",type="nak"}' in text
    late = pair.udhcpc("late")
    Pair.wait(lambda: late.bound() is not None, 15, "still serving")
    assert late.bound() != good.bound()
