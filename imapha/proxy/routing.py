"""User-affine backend choice: weighted rendezvous hashing, plus a static map.

Theory of operation
-------------------
Every proxy must send a user to the same backend with no coordination, and
losing a backend must move only that backend's users. Rendezvous
(highest-random-weight) hashing gives both: each (user, backend) pair gets a
pseudo-random score from a keyed hash, and the user's backends in order of
preference are the backends sorted by score. Weights use the logarithmic
method (score = -weight / ln(u), u uniform in (0, 1)), under which a backend
of weight w receives w / sum(weights) of the users and changing one weight
moves users only to or from that backend.

The order is over *all* configured backends; health and drain only filter it.
So the next backend a user falls back to is the same on every proxy, and a
backend that comes back up gets exactly its own users back.

Backends that health checks call down (but no operator drained) follow the
usable ones as a last resort: health lags reality by a few probes, and in a
rolling restart the backend just restarted may already serve while the one
being drained refuses. Trying it costs one refused connect, and only when
every backend thought healthy has already failed the login.

A static map (user -> backend name) pins chosen users; a pinned user whose
backend is unusable falls back to the hashed order rather than failing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_HASH_SPACE = float(1 << 64)


@dataclass(frozen=True)
class Candidate:
    """A backend as routing sees it."""

    name: str
    weight: float = 1.0


def normalize_user(user: str) -> str:
    """The routing key of a login name: surrounding blanks dropped, case folded.

    Case folding matches Dovecot's ``auth_username_format = %Lu``, the usual
    setting; a site whose user names are case-sensitive still routes a user's
    every spelling to one place, which is all affinity needs.
    """
    return user.strip().casefold()


def _score(user_key: bytes, backend: Candidate) -> float:
    digest = hashlib.blake2b(user_key, digest_size=8, key=backend.name.encode()).digest()
    # (n + 0.5) / 2**64 lies strictly inside (0, 1): ln() is finite and negative.
    unit = (int.from_bytes(digest, "big") + 0.5) / _HASH_SPACE
    return -backend.weight / math.log(unit)


def preference(user: str, backends: Iterable[Candidate]) -> list[str]:
    """Every backend's name, the user's first choice first."""
    key = normalize_user(user).encode()
    ranked = sorted(backends, key=lambda b: (_score(key, b), b.name), reverse=True)
    return [b.name for b in ranked]


class Router:
    """The order in which to try backends for a user, given who is usable now."""

    def __init__(
        self,
        backends: Sequence[Candidate],
        usable: Callable[[str], bool],
        pinned: Mapping[str, str] | None = None,
        last_resort: Callable[[str], bool] | None = None,
    ) -> None:
        names = [b.name for b in backends]
        if len(set(names)) != len(names):
            raise ValueError("backend names must be unique")
        if any(b.weight <= 0 for b in backends):
            raise ValueError("backend weights must be positive")
        self._backends = tuple(backends)
        self._usable = usable
        self._last_resort = last_resort
        self._pinned: dict[str, str] = {}
        self.set_pinned(pinned or {})

    def set_pinned(self, pinned: Mapping[str, str]) -> None:
        known = {b.name for b in self._backends}
        unknown = sorted({b for b in pinned.values() if b not in known})
        if unknown:
            raise ValueError(f"user map names unknown backends: {', '.join(unknown)}")
        self._pinned = {normalize_user(u): b for u, b in pinned.items()}

    def route(self, user: str, limit: int | None = None) -> list[str]:
        """Backends for ``user`` in the order to try them (at most ``limit``).

        The usable ones first, then those only allowed as a last resort.
        """
        order = preference(user, self._backends)
        pin = self._pinned.get(normalize_user(user))
        if pin is not None:
            order.remove(pin)
            order.insert(0, pin)
        usable = [name for name in order if self._usable(name)]
        if self._last_resort is not None:
            usable += [n for n in order if n not in usable and self._last_resort(n)]
        return usable if limit is None else usable[:limit]


class UserMapError(ValueError):
    """A user map file that cannot be used; the text names file and line."""


def parse_user_map(path: Path) -> dict[str, str]:
    """Read a static map: one ``user backend`` pair a line, ``#`` comments.

    A user named twice is an error, so an edit never silently overrides.
    """
    pinned: dict[str, str] = {}
    seen_at: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserMapError(f"{path}: cannot read user map: {exc}") from exc
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2:
            raise UserMapError(f"{path}:{number}: expected 'user backend', got {raw.strip()!r}")
        user, backend = normalize_user(fields[0]), fields[1]
        if user in seen_at:
            raise UserMapError(
                f"{path}:{number}: user {fields[0]!r} already mapped on line {seen_at[user]}"
            )
        seen_at[user] = number
        pinned[user] = backend
    return pinned
