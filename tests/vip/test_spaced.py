"""Gratuitous announcements spaced in time, and silenced when the VIP goes."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from twisted.internet.task import Clock

from imapha.vip.packet import IPAddress
from imapha.vip.reactor import SpacedAnnouncements

VIP = ipaddress.IPv4Address("192.0.2.100")


class Recorder:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.events: list[tuple[float, str]] = []

    def add(self, addresses: Sequence[IPAddress]) -> None:
        self.events.append((self.clock.seconds(), "add"))

    def remove(self, addresses: Sequence[IPAddress]) -> None:
        self.events.append((self.clock.seconds(), "remove"))

    def flush(self) -> list[IPAddress]:
        return []

    def announce(self, addresses: Sequence[IPAddress]) -> None:
        self.events.append((self.clock.seconds(), "announce"))


def test_announcements_are_spaced_and_stop_when_addresses_go() -> None:
    clock = Clock()
    rec = Recorder(clock)
    spaced = SpacedAnnouncements(rec, clock, count=5, interval=0.1)
    spaced.add([VIP])
    spaced.announce([VIP])
    clock.advance(0.1)
    clock.advance(0.1)
    spaced.remove([VIP])  # lost MASTER after the third announcement
    clock.pump([0.1] * 10)
    assert rec.events == [
        (0.0, "add"), (0.0, "announce"), (0.1, "announce"), (0.2, "announce"), (0.2, "remove"),
    ]


def test_a_new_burst_replaces_the_pending_one() -> None:
    clock = Clock()
    rec = Recorder(clock)
    spaced = SpacedAnnouncements(rec, clock, count=3, interval=1.0)
    spaced.announce([VIP])
    clock.advance(0.5)
    spaced.announce([VIP])  # stale-master reply: start over
    clock.pump([0.5] * 10)
    times = [t for t, e in rec.events if e == "announce"]
    assert times == [0.0, 0.5, 1.5, 2.5]


def test_a_short_burst_gets_a_tail_after_the_arp_locktime() -> None:
    clock = Clock()
    rec = Recorder(clock)
    spaced = SpacedAnnouncements(rec, clock, count=3, interval=0.05, tail=1.1)
    spaced.announce([VIP])
    clock.pump([0.05] * 40)
    times = [round(t, 2) for t, e in rec.events if e == "announce"]
    assert times == [0.0, 0.05, 0.1, 1.1]
    # A burst that already spans the locktime gets nothing more; removal cancels the tail.
    rec.events.clear()
    long = SpacedAnnouncements(rec, clock, count=3, interval=0.6, tail=1.1)
    long.announce([VIP])
    clock.pump([0.1] * 20)
    assert len(rec.events) == 3
    rec.events.clear()
    spaced.announce([VIP])
    spaced.remove([VIP])
    clock.pump([0.1] * 20)
    assert [e for _, e in rec.events] == ["announce", "remove"]
