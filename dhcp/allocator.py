"""Allocation policy: which addresses this server may newly hand out.

Theory of operation
-------------------
The logic asks :meth:`Allocator.allows` before it offers a pool address the
client does not already hold, and before it re-creates a binding it has no
record of (a renewal after the database was lost). Addresses a client already
holds are never asked about, so a policy can shrink what is handed out without
breaking existing leases. Stand-alone, :class:`EveryAddress` allows all; a
failover pair splits the pool (ISC failover: each peer allocates only from its
own half while the partner's state is unknown), for which
:class:`AddressParity` is the simplest split.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Protocol

from dhcp.store import ClientKey


class Allocator(Protocol):
    """Which addresses this server may newly hand out (failover restricts it)."""

    def allows(self, address: IPv4Address, client: ClientKey) -> bool: ...


class EveryAddress:
    """The stand-alone policy: every pool address is ours to give."""

    def allows(self, address: IPv4Address, client: ClientKey) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class AddressParity:
    """A split-pool policy: only addresses whose last bit is ``parity`` are ours."""

    parity: int

    def allows(self, address: IPv4Address, client: ClientKey) -> bool:
        return int(address) & 1 == self.parity
