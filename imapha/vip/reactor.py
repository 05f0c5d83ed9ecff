"""Run virtual routers under a Twisted reactor: one transport, any number of VRIDs.

Theory of operation
-------------------
:class:`ReactorRunner` is the whole event loop of the VIP manager: it adds the
transport's :class:`~imapha.vip.transport.Reader` to the reactor, routes what
arrives through a :class:`~imapha.vip.transport.Demux` to the
:class:`~imapha.vip.speaker.Speaker` of its VRID, and after every event gives
each speaker exactly one ``callLater`` for its machine's next deadline. An
optional ``observer`` sees every packet batch after the machines did (vipd
uses it to notice a peer that comes back). Time is
the reactor's (``reactor.seconds()``), the same clock ``callLater`` uses. A
timer that fires a hair early is harmless: the machine does nothing before its
deadline and the runner schedules again.

:class:`SpacedAnnouncements` wraps an address driver so that one SendGratuitous
becomes ``count`` announcements ``interval`` apart (config ``garp_count`` and
``garp_interval``): switches that missed the first burst learn later. Removing
the addresses cancels what is still pending, so a router that lost MASTER never
announces afterwards. With ``tail`` set, a burst that would end sooner than
``tail`` seconds gets one more announcement at ``tail``: Linux ignores an ARP
update to an entry changed less than its ``locktime`` (1 s) ago, so when a VIP
moves twice within a second (a heal right after a partition's promotions) only
an announcement after that second repoints the hosts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from imapha.vip.addresses import AddressDriver
from imapha.vip.machine import AdvertReceived, Event, Shutdown, Startup, TimerFired
from imapha.vip.packet import IPAddress
from imapha.vip.speaker import Speaker
from imapha.vip.transport import (
    Demux,
    RawIPv4Transport,
    RawIPv6Transport,
    Reader,
    Received,
    UdpTransport,
)


class ReactorRunner:
    def __init__(
        self,
        reactor: Any,
        transport: RawIPv4Transport | RawIPv6Transport | UdpTransport,
        speakers: Sequence[Speaker],
        observer: Callable[[list[Received]], None] | None = None,
    ) -> None:
        self.reactor = reactor
        self.observer = observer
        self.transport = transport
        self.speakers = {s.router.config.vrid: s for s in speakers}
        if len(self.speakers) != len(speakers):
            raise ValueError("two virtual routers with one VRID on one transport")
        self.demux = Demux()
        for vrid in self.speakers:
            self.demux.register(vrid, self._handler(vrid))
        self.reader = Reader(transport, self._deliver)
        self._calls: dict[int, Any] = {}
        self.running = False

    def now(self) -> float:
        return float(self.reactor.seconds())

    def _deliver(self, packets: list[Received]) -> None:
        self.demux.dispatch(packets)
        if self.observer is not None:
            self.observer(packets)  # after the machines: it sees their new states

    def _handler(self, vrid: int) -> Any:
        def handle(pkt: Received) -> None:
            self.feed(vrid, AdvertReceived(self.now(), pkt.advert, pkt.src))

        return handle

    def start(self) -> None:
        self.running = True
        self.reactor.addReader(self.reader)
        for vrid in self.speakers:
            self.feed(vrid, Startup(self.now()))

    def feed(self, vrid: int, event: Event) -> None:
        """Give one router an event (SetReady, Resign, ...) and reschedule its timer."""
        speaker = self.speakers[vrid]
        speaker.feed(event)
        self._reschedule(vrid, speaker)

    def _reschedule(self, vrid: int, speaker: Speaker) -> None:
        call = self._calls.pop(vrid, None)
        if call is not None and call.active():
            call.cancel()
        due = speaker.deadline()
        if due is not None and self.running:
            delay = max(0.0, due - self.now())
            self._calls[vrid] = self.reactor.callLater(delay, self._fire, vrid)

    def _fire(self, vrid: int) -> None:
        self._calls.pop(vrid, None)
        self.feed(vrid, TimerFired(self.now()))

    def stop(self, *, graceful: bool = True) -> None:
        """Shut every router down (priority-0 adverts) unless graceful is False."""
        if graceful:
            for vrid in self.speakers:
                self.feed(vrid, Shutdown(self.now()))
        self.running = False
        for call in self._calls.values():
            if call.active():
                call.cancel()
        self._calls.clear()
        self.reactor.removeReader(self.reader)


class SpacedAnnouncements:
    """An AddressDriver whose announce() repeats `count` times, `interval` apart."""

    def __init__(
        self, driver: AddressDriver, reactor: Any, count: int, interval: float,
        tail: float | None = None,
    ) -> None:
        self.driver = driver
        self.reactor = reactor
        self.count = count
        self.interval = interval
        self.tail = tail
        self._pending: list[Any] = []

    def add(self, addresses: Sequence[IPAddress]) -> None:
        self.driver.add(addresses)

    def remove(self, addresses: Sequence[IPAddress]) -> None:
        self.cancel()
        self.driver.remove(addresses)

    def flush(self) -> list[IPAddress]:
        self.cancel()
        return self.driver.flush()

    def announce(self, addresses: Sequence[IPAddress]) -> None:
        self.cancel()
        if self.count < 1:
            return
        self.driver.announce(addresses)
        for i in range(1, self.count):
            self._pending.append(
                self.reactor.callLater(i * self.interval, self.driver.announce, tuple(addresses))
            )
        if self.tail is not None and (self.count - 1) * self.interval < self.tail:
            self._pending.append(
                self.reactor.callLater(self.tail, self.driver.announce, tuple(addresses))
            )

    def cancel(self) -> None:
        for call in self._pending:
            if call.active():
                call.cancel()
        self._pending.clear()
