"""Durations, sizes and host:port strings: parsing and canonical printing.

Theory of operation
-------------------
Operators write ``"100ms"``, ``"1h30m"``, ``"64KiB"`` and
``"[2001:db8::1]:143"``; code wants ``float`` seconds, ``int`` bytes and a
:class:`HostPort`. Each parser raises :class:`ValueError` whose text is the
sentence an operator should read ("expected a duration like '2s' ..."). Each
printer is the parser's inverse: ``parse(format(x)) == x`` for every value the
parser can return, so ``check-config`` shows values in the form they are
written, and property tests hold the two together.

Arithmetic goes through :class:`~decimal.Decimal` so that ``"100ms"`` is
exactly ``0.1`` (the float nearest one tenth), not ``100 * 0.001``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"

# Largest first: the order a duration's parts must be written in.
DURATION_UNITS: dict[str, Decimal] = {
    "d": Decimal(86400),
    "h": Decimal(3600),
    "m": Decimal(60),
    "s": Decimal(1),
    "ms": Decimal("0.001"),
}
_DURATION_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|s|m|h|d)\s*")

SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
_SIZE = re.compile(rf"\s*({_NUMBER})\s*([a-zA-Z]*)\s*")
_SIZE_PRINT = [("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024),
               ("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)]


def _duration_error(text: str) -> ValueError:
    return ValueError(
        f"expected a duration like '2s', '100ms' or '1h30m', got {text!r}"
        " (units: d, h, m, s, ms)"
    )


def parse_duration(value: str | int | float) -> float:
    """Seconds from ``"1h30m"``, ``"250ms"``, ``"1.5s"`` or a number of seconds."""
    if isinstance(value, bool):
        raise _duration_error(str(value).lower())
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"expected a duration of zero or more seconds, got {value}")
        return float(value)
    total = Decimal(0)
    pos, seen = 0, -1
    order = list(DURATION_UNITS)
    while pos < len(value):
        m = _DURATION_PART.match(value, pos)
        if m is None or m.end() == pos:
            raise _duration_error(value)
        rank = order.index(m.group(2))
        if rank <= seen:
            raise ValueError(f"duration {value!r}: write each unit once, largest first")
        seen = rank
        total += Decimal(m.group(1)) * DURATION_UNITS[m.group(2)]
        pos = m.end()
    if seen < 0:
        raise _duration_error(value)
    result = float(total)
    if not math.isfinite(result):
        raise ValueError(f"duration {value!r} is too long")
    return result


def format_duration(seconds: float) -> str:
    """The canonical text of a duration: ``0.1 -> "100ms"``, ``5400 -> "1h30m"``."""
    ms = round(seconds * 1000)
    if ms / 1000 != seconds:
        return f"{seconds!r}s"
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    if ms:
        whole, frac = divmod(ms, 1000)
        if not whole:
            parts.append(f"{frac}ms")
        elif frac:
            parts.append(f"{whole}.{frac:03d}".rstrip("0") + "s")
        else:
            parts.append(f"{whole}s")
    return "".join(parts)


def parse_size(value: str | int | float) -> int:
    """Bytes from ``"64KiB"``, ``"20MB"``, ``"1.5GiB"`` or a whole number of bytes."""
    if isinstance(value, bool | float):
        raise ValueError(f"expected a size like '64KiB' or a whole number of bytes, got {value}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected a size of zero or more bytes, got {value}")
        return value
    m = _SIZE.fullmatch(value)
    unit = m.group(2).lower() if m else ""
    if m is None or (unit and unit not in SIZE_UNITS):
        raise ValueError(
            f"expected a size like '64KiB', '20MB' or '1GiB', got {value!r}"
            " (units: B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    try:
        exact = Decimal(m.group(1)) * SIZE_UNITS[unit or "b"]
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"size {value!r} is not a number") from exc
    if exact != exact.to_integral_value():
        raise ValueError(f"size {value!r} is not a whole number of bytes")
    if exact >= 2**63:
        raise ValueError(f"size {value!r} is too large")
    return int(exact)


def format_size(size: int) -> str:
    """The canonical text of a size: ``65536 -> "64KiB"``, ``20_000_000 -> "20MB"``."""
    for unit, scale in _SIZE_PRINT:
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"


@dataclass(frozen=True, order=True)
class HostPort:
    """A TCP endpoint: ``host`` is an IP literal (no brackets) or a DNS name."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """The host as an address, or ``None`` for a DNS name."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None

    def as_tuple(self) -> tuple[str, int]:
        return (self.host, self.port)


_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9][A-Za-z0-9-]{0,62}(?:\.[A-Za-z0-9-]{1,63})*\.?")


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def parse_hostport(text: str, *, ip_only: bool, min_port: int = 1) -> HostPort:
    """``"192.0.2.1:143"``, ``"[2001:db8::1]:993"`` or (unless ``ip_only``) ``"name:143"``."""
    example = "'192.0.2.1:143' or '[2001:db8::1]:143'"
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected host:port like {example}, got {text!r}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected host:port like {example}, got {text!r}")
        if ":" in host:
            raise ValueError(f"put an IPv6 address in brackets, like {example}, got {text!r}")
        if not _is_ipv4(host):
            if ip_only:
                raise ValueError(f"expected an IP address and port like {example}, got {text!r}")
            if not _HOSTNAME.fullmatch(host) or host.replace(".", "").isdigit():
                raise ValueError(f"{host!r} in {text!r} is neither an IP address nor a host name")
    if not port_text.isdigit() or not min_port <= int(port_text) <= 65535:
        raise ValueError(f"port of {text!r} must be a number from {min_port} to 65535")
    return HostPort(host, int(port_text))
