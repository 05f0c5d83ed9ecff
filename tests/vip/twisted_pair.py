"""Two routers under one real Twisted reactor over UDP loopback (run as a subprocess).

Prints one JSON object: who was master when, and how long takeovers took.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from twisted.internet import reactor as _reactor

from imapha.vip.addresses import ListenerDriver
from imapha.vip.machine import AdvertCause, RouterConfig, State, VirtualRouter
from imapha.vip.packet import IPAddress
from imapha.vip.reactor import ReactorRunner
from imapha.vip.speaker import Speaker
from imapha.vip.transport import UdpTransport

reactor: Any = _reactor
VIP = ipaddress.IPv4Address("127.0.0.100")


class Bound:
    def __init__(self) -> None:
        self.vips: set[IPAddress] = set()

    def bind_vip(self, address: IPAddress) -> None:
        self.vips.add(address)

    def unbind_vip(self, address: IPAddress) -> None:
        self.vips.discard(address)


def main() -> None:
    result: dict[str, object] = {}
    ta = UdpTransport((ipaddress.IPv4Address("127.0.0.41"), 0), ())
    tb = UdpTransport((ipaddress.IPv4Address("127.0.0.42"), 0), ())
    ta.peers = ((tb.primary, tb.port),)
    tb.peers = ((ta.primary, ta.port),)
    bound = {"a": Bound(), "b": Bound()}
    speakers = {}
    for name, t, prio in (("a", ta, 200), ("b", tb, 100)):
        cfg = RouterConfig(vrid=3, priority=prio, addresses=(VIP,), primary=t.primary,
                           interval_cs=10)
        speakers[name] = Speaker(VirtualRouter(cfg), t, ListenerDriver(bound[name], (VIP,)))
    ra = ReactorRunner(reactor, ta, [speakers["a"]])
    rb = ReactorRunner(reactor, tb, [speakers["b"]])
    ra.start()
    rb.start()
    marks: dict[str, float] = {}

    def snapshot(tag: str) -> None:
        result[tag] = {n: (s.router.state.value, sorted(map(str, bound[n].vips)))
                       for n, s in speakers.items()}

    def crash_a() -> None:
        snapshot("before")
        marks["crash"] = reactor.seconds()
        ra.stop(graceful=False)
        reactor.callLater(1.0, after)

    def after() -> None:
        snapshot("after")
        took = [t for t, c in speakers["b"].transitions if c.new is State.MASTER]
        result["takeover_s"] = took[0] - marks["crash"] if took else None
        result["periodic_a"] = speakers["a"].adverts_sent[AdvertCause.PERIODIC]
        rb.stop()
        reactor.stop()

    reactor.callLater(1.5, crash_a)
    reactor.callLater(10, reactor.stop)
    reactor.run()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
