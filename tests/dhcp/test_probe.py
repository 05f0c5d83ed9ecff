"""The address probe before an OFFER: the codec, ICMP on loopback, and ARP through the daemon.

What a user checks: an address that some machine already uses (configured by
hand, never leased) is not offered to a DHCP client; the client gets the next
one, and the squatted address is quarantined in the store.
"""

from __future__ import annotations

import select
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from dhcp.probe import (
    Prober,
    _checksum,
    arp_probe,
    arp_sender,
    echo_reply_from,
    icmp_echo,
)
from imapha.lab.topology import Lab
from tests.dhcp.cluster import POOL, RELAYED_POOL, Pair, dump, make_pair
from tests.prereq import need_binary, need_root

MAC = bytes.fromhex("525400abcdef")


def test_arp_probe_is_an_rfc5227_probe_and_a_reply_names_its_sender() -> None:
    frame = arp_probe(MAC, IPv4Address("192.0.2.100"))
    assert len(frame) == 28
    assert frame[:8] == bytes.fromhex("0001080006040001")  # Ethernet, IPv4, request
    assert frame[8:14] == MAC and frame[14:18] == bytes(4)  # sender IP 0.0.0.0
    assert frame[24:28] == IPv4Address("192.0.2.100").packed
    assert arp_sender(frame) is None  # a probe (sender 0.0.0.0) names nobody
    reply = (bytes.fromhex("0001080006040002") + bytes.fromhex("020000000001")
             + IPv4Address("192.0.2.100").packed + MAC + bytes(4))
    assert arp_sender(reply) == IPv4Address("192.0.2.100")
    assert arp_sender(reply[:20]) is None
    assert arp_sender(reply[:6] + b"\x00\x09" + reply[8:]) is None  # not request/reply


def test_icmp_echo_checksum_and_reply_parsing() -> None:
    echo = icmp_echo(0x1234, 7)
    assert echo[0] == 8 and _checksum(echo) == 0  # a valid checksum sums to zero
    ip_header = bytes([0x45, 0, 0, 48, 0, 0, 0, 0, 64, 1, 0, 0]) + bytes([192, 0, 2, 9]) + bytes(4)
    reply = bytes([0]) + echo[1:]
    assert echo_reply_from(ip_header + reply, 0x1234) == IPv4Address("192.0.2.9")
    assert echo_reply_from(ip_header + reply, 0x4321) is None  # someone else's ping
    assert echo_reply_from(ip_header + echo, 0x1234) is None  # a request, not a reply
    assert echo_reply_from(ip_header[:10], 0x1234) is None


class PollReactor:
    """Just enough reactor for :class:`Prober`: readers polled, timers run in order."""

    def __init__(self) -> None:
        self.readers: list[Any] = []
        self.timers: list[Timer] = []

    def addReader(self, reader: Any) -> None:
        self.readers.append(reader)

    def removeReader(self, reader: Any) -> None:
        self.readers.remove(reader)

    def callLater(self, delay: float, fn: Callable[..., None], *args: Any) -> Any:
        timer = Timer(time.monotonic() + delay, fn, args)
        self.timers.append(timer)
        return timer

    def run_until(self, condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            ready, _, _ = select.select(self.readers, [], [], 0.01)
            for reader in ready:
                reader.doRead()
            for timer in list(self.timers):
                if timer.live and time.monotonic() >= timer.at:
                    timer.live = False
                    timer.fn(*timer.args)


class Timer:
    def __init__(self, at: float, fn: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.at, self.fn, self.args, self.live = at, fn, args, True

    def active(self) -> bool:
        return self.live

    def cancel(self) -> None:
        self.live = False


def test_icmp_probe_of_a_live_address_says_in_use_before_the_timeout() -> None:
    need_root()  # a raw ICMP socket
    reactor = PollReactor()
    prober = Prober(reactor, ["lo"], timeout=2.0)
    prober.start()
    results: list[bool] = []
    started = time.monotonic()
    try:
        prober.probe(IPv4Address("127.0.0.1"), "lo", False, results.append)
        reactor.run_until(lambda: bool(results), 5.0)
    finally:
        prober.stop()
    assert results == [True]
    assert time.monotonic() - started < 1.5  # the answer, not the timeout
    assert (prober.answered, prober.silent) == (1, 0)


# -- through the daemon: a squatter on the address the pool would hand out next ---------


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dp", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.netns
def test_daemon_does_not_offer_an_address_a_machine_already_uses(lab: Lab, root: Path) -> None:
    pair = make_pair(lab, root, mode="hot-standby", probe_timeout="300ms")  # the config key
    first = IPv4Address(POOL[0])
    # a machine configured by hand with the pool's first address, never leased
    squatter = lab.add_client("squat", [f"{first}/24"])
    pair.start("a")
    pair.start("b")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    pair.vip("a", "master")
    pair.vip("b", "backup")
    client = pair.udhcpc("c1")
    try:
        client.wait_bound(15)
    except AssertionError:
        raise AssertionError(dump(pair)) from None
    assert client.bound() == first + 1, dump(pair)
    record = pair.ctl("a", "POST", "/lease", {"ip": str(first)}).body["lease"]
    assert record is not None and record["state"] == "declined"
    assert record["expires"] > time.time() + 3600  # quarantined for decline_probation
    probes = pair.status("a")["probes"]
    assert probes["answered"] == 1 and probes["silent"] >= 1
    # the quarantine reached the standby too
    Pair.wait(lambda: pair.ctl("b", "POST", "/lease", {"ip": str(first)}).body["lease"]
              is not None, 5, "b knows the quarantine")
    # the squatter still has its address and nobody else was told they hold it
    assert str(first) in squatter.run(["ip", "-4", "-o", "addr"]).stdout
    held = pair.check_unique()
    assert str(first) not in held


@pytest.mark.netns
def test_daemon_pings_a_relayed_address_before_offering_it(lab: Lab, root: Path) -> None:
    """Behind a relay ARP cannot reach the client's link: the probe is an ICMP echo."""
    dhcrelay = need_binary("dhcrelay")
    pair = make_pair(lab, root, mode="hot-standby", relay=True)
    pair.args = ["--probe-timeout", "0.3"]
    relay = lab.add_host("rly", ["192.0.2.254/24", "198.51.100.1/24"])
    relay.sysctl("net.ipv4.ip_forward", 1)
    first = IPv4Address(RELAYED_POOL[0])
    squatter = lab.add_client("squat", [f"{first}/24"])
    squatter.run(["ip", "route", "add", "default", "via", "198.51.100.1"])
    pair.start("a")
    pair.start("b")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    pair.vip("a", "master")
    pair.vip("b", "backup")
    relay.spawn([dhcrelay, "-4", "-d", "-a", "-pf", str(root / "relay.pid"),
                 "-id", "eth1", "-iu", "eth0", "192.0.2.11", "192.0.2.12"])
    time.sleep(0.5)  # dhcrelay opens its sockets
    client = pair.udhcpc("r0", network="198.51.100.0/24")
    try:
        client.wait_bound(15)
    except AssertionError:
        raise AssertionError(dump(pair)) from None
    assert client.bound() == first + 1, dump(pair)
    record = pair.ctl("a", "POST", "/lease", {"ip": str(first)}).body["lease"]
    assert record is not None and record["state"] == "declined"
    assert pair.status("a")["probes"]["answered"] == 1
    assert str(first) not in pair.check_unique()
