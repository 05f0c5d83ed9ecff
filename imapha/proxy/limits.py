"""Per-address and total limits of the proxy, and the failed-login penalty.

Theory of operation
-------------------
Each limit has a name, a default in the config, and a counter in the metrics;
this module only decides. Time is passed in (seconds, monotonic), so every
rule is testable without a clock.

* Connections: at most ``max_total`` open at once and ``max_per_ip`` from one
  client address (IPv6 clients are grouped by /64, since one host owns a whole
  /64 and could otherwise walk through addresses).
* Failed logins: like Dovecot's auth penalty, each failure from an address
  delays that address's next login answer: 2 s after the first failure,
  doubling, capped at ``penalty_max``. A success clears the address; an
  address quiet for ``forget_after`` is forgotten, so the table stays bounded
  by recent offenders, and at most ``max_tracked`` addresses are kept (the
  longest-quiet dropped first).
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass

PENALTY_INITIAL = 2.0


@functools.lru_cache(maxsize=8192)
def client_key(address: str) -> str:
    """The unit a per-address limit counts: the IPv4 address, or the IPv6 /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # e.g. a Unix socket peer: its own key
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Refusal(enum.Enum):
    """Why a connection was refused (a label of the limit-hit counter)."""

    TOTAL = "max_connections"
    PER_IP = "max_connections_per_ip"


@dataclass
class ConnectionLimiter:
    max_total: int
    max_per_ip: int
    total: int = 0

    def __post_init__(self) -> None:
        self._per_key: dict[str, int] = {}

    def admit(self, address: str) -> Refusal | None:
        """Count a new connection in, or say which limit refuses it."""
        key = client_key(address)
        if self.total >= self.max_total:
            return Refusal.TOTAL
        if self._per_key.get(key, 0) >= self.max_per_ip:
            return Refusal.PER_IP
        self.total += 1
        self._per_key[key] = self._per_key.get(key, 0) + 1
        return None

    def release(self, address: str) -> None:
        key = client_key(address)
        count = self._per_key.get(key, 0)
        if count <= 0:
            return
        self.total -= 1
        if count == 1:
            del self._per_key[key]
        else:
            self._per_key[key] = count - 1

    def count(self, address: str) -> int:
        return self._per_key.get(client_key(address), 0)


@dataclass
class _Offender:
    failures: int
    last: float


class AuthPenalty:
    """Growing delay before answering logins from addresses that failed."""

    def __init__(
        self, penalty_max: float, forget_after: float = 3600.0, max_tracked: int = 100_000
    ) -> None:
        self.penalty_max = penalty_max
        self.forget_after = forget_after
        self.max_tracked = max_tracked
        self._offenders: OrderedDict[str, _Offender] = OrderedDict()

    def delay(self, address: str, now: float) -> float:
        """Seconds to wait before answering a login attempt from ``address``."""
        entry = self._offenders.get(client_key(address))
        if entry is None or self.penalty_max <= 0:
            return 0.0
        if now - entry.last > self.forget_after:
            del self._offenders[client_key(address)]
            return 0.0
        return min(self.penalty_max, PENALTY_INITIAL * float(2 ** (entry.failures - 1)))

    def failed(self, address: str, now: float) -> None:
        key = client_key(address)
        entry = self._offenders.pop(key, None)
        if entry is None or now - entry.last > self.forget_after:
            entry = _Offender(0, now)
        entry.failures = min(entry.failures + 1, 32)
        entry.last = now
        self._offenders[key] = entry  # most recent last
        while len(self._offenders) > self.max_tracked:
            self._offenders.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._offenders.pop(client_key(address), None)

    def __len__(self) -> int:
        return len(self._offenders)
