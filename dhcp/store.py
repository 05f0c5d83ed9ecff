"""The lease store: what every backend (memory, SQLite, later PostgreSQL) must do.

Theory of operation
-------------------
The store keeps one record per address: the address is the key, so an address
can never be held by two clients at once, whatever the logic above does. A
record is in one :class:`LeaseState`; it *holds* the address for its client
while OFFERED or BOUND and unexpired, and *blocks* the address for everybody
while it holds it or while DECLINED (quarantine) and unexpired. Expiry is a
comparison with ``now``, not a sweep: :meth:`LeaseStore.expire` only tidies.

Every write checks, atomically with the write, that the address is free for
the client (:func:`admits`); if not it raises :class:`LeaseConflict` and changes
nothing. That check is the last line of defence when two servers, or two
threads, race for one address.

Durability: :meth:`LeaseStore.commit` and :meth:`LeaseStore.decline` are on
stable storage when they return (RFC 2131 §4.3.2: the binding is recorded
before the DHCPACK goes out) or, inside :meth:`LeaseStore.batch`, when the
block ends (group commit: one fsync for many ACKs). Offers, releases and expiries may be lost in a
crash: the worst outcome is a client NAKed or an address idle until expiry.

Client keys are strings (:func:`client_key`): ``id:`` and the hex of option 61
when the client sent one (RFC 2131 §4.2), else ``hw:``, the hardware type and
the hex of chaddr, so the two name spaces never collide.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol

ClientKey = str


def client_key(client_id: bytes | None, htype: int, hwaddr: bytes) -> ClientKey:
    """The identity of a client: option 61 if present, else (htype, chaddr)."""
    if client_id is not None:
        return "id:" + client_id.hex()
    return f"hw:{htype}:{hwaddr.hex()}"


class LeaseState(enum.Enum):
    OFFERED = "offered"
    BOUND = "bound"
    RELEASED = "released"
    EXPIRED = "expired"
    DECLINED = "declined"


HOLDING = (LeaseState.OFFERED, LeaseState.BOUND)
BLOCKING = (LeaseState.OFFERED, LeaseState.BOUND, LeaseState.DECLINED)


@dataclass(frozen=True, slots=True)
class Lease:
    address: IPv4Address
    client: ClientKey
    hwaddr: bytes
    state: LeaseState
    starts: float
    expires: float
    hostname: str | None = None

    def holds(self, now: float) -> bool:
        """The address is this record's client's at ``now`` (offered or bound)."""
        return self.state in HOLDING and self.expires > now

    def blocks(self, now: float) -> bool:
        """Nobody else may have the address at ``now``."""
        return self.state in BLOCKING and self.expires > now


@dataclass(frozen=True, slots=True)
class PoolUsage:
    total: int
    bound: int
    offered: int
    declined: int

    @property
    def free(self) -> int:
        return self.total - self.bound - self.offered - self.declined


@dataclass(frozen=True, slots=True)
class FailoverRecord:
    """A node's failover state as persisted in its store (ISC keeps it in its lease file).

    ``state`` is a :class:`dhcp.failover.State` value; ``peer_state`` what this node
    last knew of its peer (its failover state, or ``unknown``); ``peer_seen`` when
    the peer link was last up (None: never); ``stopped`` when the daemon stopped
    cleanly, having said ``bye`` to the peer (None: it is running, or it crashed).
    """

    node: str
    state: str
    since: float
    peer_state: str
    peer_seen: float | None
    stopped: float | None = None


class LeaseConflict(Exception):
    """The address is held or quarantined for someone else; nothing was written."""

    def __init__(self, address: IPv4Address, holder: Lease) -> None:
        super().__init__(f"{address} is {holder.state.value} until {holder.expires:.0f}")
        self.address = address
        self.holder = holder


def admits(existing: Lease | None, client: ClientKey, now: float) -> bool:
    """May ``client`` take an address whose current record is ``existing``?"""
    if existing is None or not existing.blocks(now):
        return True
    return existing.state in HOLDING and existing.client == client


class LeaseStore(Protocol):
    """What the server logic needs from a lease database."""

    def get(self, address: IPv4Address) -> Lease | None:
        """The record of ``address``, in whatever state, or None."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Group commit: the block's writes become durable together when it ends."""
        ...

    def by_client(self, client: ClientKey) -> list[Lease]:
        """Every record naming ``client``, newest ``starts`` first."""
        ...

    def unavailable(self, first: IPv4Address, last: IPv4Address, now: float) -> set[IPv4Address]:
        """Addresses in [first, last] that are blocked at ``now``."""
        ...

    def reserve(
        self, address: IPv4Address, client: ClientKey, hwaddr: bytes, now: float, until: float
    ) -> Lease:
        """Hold ``address`` for an offer until ``until`` (a bound lease stays bound)."""
        ...

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
        """Bind ``address`` to ``client``; durable before it returns."""
        ...

    def release(self, address: IPv4Address, client: ClientKey, now: float) -> bool:
        """End ``client``'s hold on ``address``; False if it held nothing there."""
        ...

    def decline(self, address: IPv4Address, client: ClientKey, now: float, until: float) -> bool:
        """Quarantine ``address`` until ``until`` if ``client`` held it (RFC 2131 §4.3.3)."""
        ...

    def expire(self, now: float) -> int:
        """Mark records past their time EXPIRED; return how many changed."""
        ...

    def leases(self) -> Iterator[Lease]:
        """Every record, in address order."""
        ...

    def usage(self, first: IPv4Address, last: IPv4Address, now: float) -> PoolUsage:
        """Counts of [first, last] by what its addresses are at ``now``."""
        ...

    def merge(self, lease: Lease, now: float) -> bool:
        """Take a record from the failover peer (:func:`merged_record`); True if written.

        Raises :class:`LeaseConflict` (writing nothing) when ``lease`` would take an
        address another client holds here.
        """
        ...

    def save_failover(self, record: FailoverRecord) -> None:
        """Persist ``record`` (durable before it returns), replacing the node's last one."""
        ...

    def load_failover(self, node: str) -> FailoverRecord | None:
        """The last record saved for ``node``, or None."""
        ...

    def close(self) -> None: ...


def reserved_record(
    existing: Lease | None,
    address: IPv4Address,
    client: ClientKey,
    hwaddr: bytes,
    *,
    now: float,
    until: float,
) -> Lease:
    """The record :meth:`LeaseStore.reserve` writes (shared by every backend)."""
    if not admits(existing, client, now):
        assert existing is not None
        raise LeaseConflict(address, existing)
    if existing is not None and existing.state is LeaseState.BOUND and existing.holds(now):
        return existing
    return Lease(address, client, hwaddr, LeaseState.OFFERED, now, until, None)


def bound_record(
    existing: Lease | None,
    address: IPv4Address,
    client: ClientKey,
    hwaddr: bytes,
    *,
    starts: float,
    expires: float,
    hostname: str | None,
) -> Lease:
    """The record :meth:`LeaseStore.commit` writes; LeaseConflict if another holds it."""
    if not admits(existing, client, starts):
        assert existing is not None
        raise LeaseConflict(address, existing)
    return Lease(address, client, hwaddr, LeaseState.BOUND, starts, expires, hostname)


def declined_record(existing: Lease | None, client: ClientKey, until: float) -> Lease | None:
    """The record :meth:`LeaseStore.decline` writes, or None to ignore the DECLINE."""
    if existing is None or existing.client != client or existing.state not in HOLDING:
        return None
    return Lease(
        existing.address,
        client,
        existing.hwaddr,
        LeaseState.DECLINED,
        existing.starts,
        until,
        None,
    )


def version(lease: Lease) -> float:
    """When a record last changed: ``starts``, or its end if it was released or declined."""
    return lease.starts if lease.state in HOLDING else max(lease.starts, lease.expires)


def merged_record(existing: Lease | None, incoming: Lease, now: float) -> Lease | None:
    """What :meth:`LeaseStore.merge` writes (None: keep ``existing``).

    Records of one client: the newer (:func:`version`) wins, so an update and a
    bulk resync may arrive in any order. Records of two clients: the one that
    blocks the address at ``now`` wins; if both do, that is a double lease in
    the making and :class:`LeaseConflict` is raised.
    """
    if existing is None:
        return incoming
    if existing == incoming:
        return None
    if existing.client != incoming.client:
        if existing.blocks(now) and incoming.blocks(now):
            raise LeaseConflict(incoming.address, existing)
        return None if existing.blocks(now) else incoming
    return None if version(incoming) < version(existing) else incoming
