"""Glue of one virtual router: machine actions -> transport and address driver.

Theory of operation
-------------------
:class:`Speaker` owns a :class:`~imapha.vip.machine.VirtualRouter`, the transport
its adverts leave by and the :class:`~imapha.vip.addresses.AddressDriver` its
VIPs go through. The event loop (Twisted in the daemon, a select loop in tests)
calls :meth:`Speaker.feed` with events and :meth:`Speaker.deadline` to schedule
the next ``TimerFired``; the speaker carries out the actions in the order the
machine gave them (so on leaving MASTER the priority-0 advert leaves before the
addresses go, and on promotion the addresses are up before the ARP burst), and
keeps the counters the daemon exports. It decides nothing.

A driver that raises (an interface gone, netlink refusing) is logged and
counted in :attr:`Speaker.driver_errors`, never propagated: the machine's
clock must keep running whatever the host does to its addresses.
:attr:`Speaker.last_heard` remembers the sender, priority and time of the
last advertisement the machine accepted (``/status`` shows the master seen).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from imapha.vip.addresses import AddressDriver
from imapha.vip.machine import (
    Action,
    AddAddresses,
    AdvertCause,
    AdvertReceived,
    Discarded,
    Event,
    Notice,
    RemoveAddresses,
    SendAdvert,
    SendGratuitous,
    StateChanged,
    VirtualRouter,
)
from imapha.vip.packet import Advertisement, DropReason, IPAddress
from imapha.vip.transport import Received

log = logging.getLogger(__name__)


class Sender(Protocol):
    def send(self, advert: Advertisement) -> None: ...


@dataclass
class Speaker:
    router: VirtualRouter
    transport: Sender
    driver: AddressDriver
    on_state: Callable[[StateChanged, float], None] | None = None
    adverts_sent: collections.Counter[AdvertCause] = field(default_factory=collections.Counter)
    drops: collections.Counter[DropReason] = field(default_factory=collections.Counter)
    transitions: list[tuple[float, StateChanged]] = field(default_factory=list)
    adverts_received: int = 0
    driver_errors: int = 0
    last_heard: tuple[IPAddress, int, float] | None = None

    def feed(self, event: Event) -> None:
        actions = self.router.handle(event)
        if isinstance(event, AdvertReceived):
            self.adverts_received += 1
            if not any(isinstance(a, Discarded) for a in actions):
                self.last_heard = (event.src, event.advert.priority, event.now)
        self.apply(actions, event.now)

    def received(self, packet: Received, now: float) -> None:
        self.feed(AdvertReceived(now, packet.advert, packet.src))

    def deadline(self) -> float | None:
        return self.router.next_deadline()

    def apply(self, actions: list[Action], now: float) -> None:
        vrid = self.router.config.vrid
        for action in actions:
            match action:
                case SendAdvert():
                    self.transport.send(action.advert)
                    self.adverts_sent[action.cause] += 1
                case AddAddresses():
                    self._drive("add", self.driver.add, action.addresses)
                case RemoveAddresses():
                    self._drive("remove", self.driver.remove, action.addresses)
                case SendGratuitous():
                    self._drive("announce", self.driver.announce, action.addresses)
                case StateChanged():
                    self.transitions.append((now, action))
                    log.info(
                        "vrid %d: %s -> %s (%s)",
                        vrid, action.old.value, action.new.value, action.cause.value,
                    )
                    if self.on_state is not None:
                        self.on_state(action, now)
                case Discarded():
                    self.drops[action.reason] += 1
                    log.debug("vrid %d: advert dropped: %s %s", vrid, action.reason.value,
                              action.detail)
                case Notice():
                    log.warning("vrid %d: %s", vrid, action.text)

    def _drive(
        self, what: str, call: Callable[[tuple[IPAddress, ...]], None],
        addresses: tuple[IPAddress, ...],
    ) -> None:
        try:
            call(addresses)
        except Exception:
            self.driver_errors += 1
            log.exception("vrid %d: cannot %s %s", self.router.config.vrid, what,
                          ", ".join(map(str, addresses)))
