"""An in-memory :class:`dhcp.store.LeaseStore`: the reference model, for tests and demos.

It keeps nothing across restarts, so it never satisfies the durability half of
the contract; everything else behaves exactly as the SQLite store does (the
same store test suite runs against both).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address

from dhcp.store import (
    BLOCKING,
    ClientKey,
    FailoverRecord,
    Lease,
    LeaseState,
    PoolUsage,
    bound_record,
    declined_record,
    merged_record,
    reserved_record,
)


class MemoryStore:
    def __init__(self) -> None:
        self._rows: dict[IPv4Address, Lease] = {}
        self._failover: dict[str, FailoverRecord] = {}

    def save_failover(self, record: FailoverRecord) -> None:
        self._failover[record.node] = record

    def load_failover(self, node: str) -> FailoverRecord | None:
        return self._failover.get(node)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        yield  # every write is immediate (and never durable)

    def get(self, address: IPv4Address) -> Lease | None:
        return self._rows.get(address)

    def by_client(self, client: ClientKey) -> list[Lease]:
        rows = [row for row in self._rows.values() if row.client == client]
        return sorted(rows, key=lambda row: -row.starts)

    def unavailable(self, first: IPv4Address, last: IPv4Address, now: float) -> set[IPv4Address]:
        low, high = int(first), int(last)
        return {
            address
            for address, row in self._rows.items()
            if low <= int(address) <= high and row.blocks(now)
        }

    def reserve(
        self, address: IPv4Address, client: ClientKey, hwaddr: bytes, now: float, until: float
    ) -> Lease:
        row = reserved_record(
            self._rows.get(address), address, client, hwaddr, now=now, until=until
        )
        self._rows[address] = row
        return row

    def commit(
        self,
        address: IPv4Address,
        client: ClientKey,
        hwaddr: bytes,
        *,
        starts: float,
        expires: float,
        hostname: str | None,
    ) -> Lease:
        row = bound_record(self._rows.get(address), address, client, hwaddr, starts=starts,
                           expires=expires, hostname=hostname)
        self._rows[address] = row
        return row

    def release(self, address: IPv4Address, client: ClientKey, now: float) -> bool:
        row = self._rows.get(address)
        if row is None or row.client != client or not row.holds(now):
            return False
        self._rows[address] = replace(row, state=LeaseState.RELEASED, expires=now)
        return True

    def decline(self, address: IPv4Address, client: ClientKey, now: float, until: float) -> bool:
        row = declined_record(self._rows.get(address), client, until)
        if row is None:
            return False
        self._rows[address] = row
        return True

    def expire(self, now: float) -> int:
        changed = 0
        for address, row in list(self._rows.items()):
            if row.state in BLOCKING and row.expires <= now:
                self._rows[address] = replace(row, state=LeaseState.EXPIRED)
                changed += 1
        return changed

    def leases(self) -> Iterator[Lease]:
        return iter(sorted(self._rows.values(), key=lambda row: row.address))

    def usage(self, first: IPv4Address, last: IPv4Address, now: float) -> PoolUsage:
        counts = dict.fromkeys(LeaseState, 0)
        for address, row in self._rows.items():
            if first <= address <= last and row.blocks(now):
                counts[row.state] += 1
        return PoolUsage(
            total=int(last) - int(first) + 1,
            bound=counts[LeaseState.BOUND],
            offered=counts[LeaseState.OFFERED],
            declined=counts[LeaseState.DECLINED],
        )

    def merge(self, lease: Lease, now: float) -> bool:
        row = merged_record(self._rows.get(lease.address), lease, now)
        if row is None:
            return False
        self._rows[lease.address] = row
        return True

    def close(self) -> None:
        self._rows.clear()
