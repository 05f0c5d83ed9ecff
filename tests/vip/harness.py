"""A fake clock around one VirtualRouter: feed events, run timers, record actions."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from imapha.vip.machine import (
    Action,
    AdvertReceived,
    Event,
    RouterConfig,
    SendAdvert,
    State,
    TimerFired,
    VirtualRouter,
)
from imapha.vip.packet import Advertisement, IPAddress

VIPS: tuple[IPAddress, ...] = (ipaddress.IPv4Address("192.0.2.100"),)


def addr(last: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(f"192.0.2.{last}")


def config(priority: int = 100, *, me: int = 1, **kw: Any) -> RouterConfig:
    return RouterConfig(vrid=51, priority=priority, addresses=VIPS, primary=addr(me), **kw)


@dataclass
class Harness:
    router: VirtualRouter
    now: float = 0.0
    log: list[tuple[float, Action]] = field(default_factory=list)

    def feed(self, event: Event) -> list[Action]:
        actions = self.router.handle(event)
        self.log.extend((self.now, a) for a in actions)
        return actions

    def run_until(self, t: float) -> list[Action]:
        """Fire every timer due up to t, exactly at its deadline; then set now = t."""
        out: list[Action] = []
        for _ in range(100_000):
            due = self.router.next_deadline()
            if due is None or due > t:
                break
            self.now = max(self.now, due)
            out.extend(self.feed(TimerFired(self.now)))
        else:
            raise AssertionError("timer loop did not settle")
        self.now = t
        return out

    def hear(self, priority: int, *, src: int = 2, interval_cs: int = 100,
             addresses: tuple[IPAddress, ...] = VIPS, vrid: int = 51) -> list[Action]:
        adv = Advertisement(vrid, priority, interval_cs, addresses)
        return self.feed(AdvertReceived(self.now, adv, addr(src)))

    def state(self) -> State:
        return self.router.state

    def adverts(self, since: float = -1.0) -> list[tuple[float, SendAdvert]]:
        return [(t, a) for t, a in self.log if isinstance(a, SendAdvert) and t >= since]
