"""A bounded select loop driving Speakers in real time (what the daemon does with Twisted)."""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from imapha.vip.machine import TimerFired
from imapha.vip.speaker import Speaker
from imapha.vip.transport import Received


class Readable(Protocol):
    def fileno(self) -> int: ...
    def receive(self) -> list[Received]: ...


@dataclass
class Running:
    speaker: Speaker
    transport: Readable
    alive: bool = True


def run(nodes: Sequence[Running], until: Callable[[], bool], timeout: float) -> float:
    """Run until `until()` is true (return the time it took) or raise after timeout."""
    start = time.monotonic()
    for _ in range(1_000_000):
        now = time.monotonic()
        if until():
            return now - start
        if now - start > timeout:
            raise TimeoutError(f"condition not met within {timeout} s")
        live = [n for n in nodes if n.alive]
        for n in live:
            due = n.speaker.deadline()
            if due is not None and due <= now:
                n.speaker.feed(TimerFired(now))
        deadlines = [d for n in live if (d := n.speaker.deadline()) is not None]
        wait = max(0.0, min([*deadlines, now + 0.05]) - time.monotonic())
        ready, _, _ = select.select([n.transport for n in live], [], [], wait)
        now = time.monotonic()
        for n in live:
            if n.transport in ready:
                for pkt in n.transport.receive():
                    n.speaker.received(pkt, now)
    raise AssertionError("loop bound reached")
