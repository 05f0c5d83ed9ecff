"""What vipd tracks, and how it turns into a VRRP priority and readiness.

Theory of operation
-------------------
Every input vipd watches becomes a :class:`Check` value: a name, whether it
currently fails, and what a failure does (a priority weight, or fault when the
weight is 0, as keepalived does). :func:`assess` folds the checks of one VIP
into an :class:`Assessment`: the effective priority and the reasons the VIP is
in *fault* (not ready). The daemon feeds the result to the machine as
``SetPriority`` and ``SetReady``; nothing in here does I/O except the two small
readers at the bottom, which the daemon calls from its poll loop.

The inputs (docs/vrrp.md, "Tracking"):

- the tracked service's ``GET /ready`` on this node's control socket: fault
  while it answers anything but 200 or does not answer at all;
- the link of the VIP's interface: fault while it is not up with a carrier;
- ``track_scripts``: exit status 0 within ``timeout`` passes; a failing
  script adds its ``weight`` to the priority (0: fault);
- ``track_files``: absent = no effect. Present: the content is read as an
  integer ``n`` (empty or not a number counts as 1) and ``n x weight`` is
  added to the priority; with ``weight = 0`` a non-zero ``n`` is a fault and
  ``0`` is healthy. This is keepalived's track_file rule, with "exists" as
  the default value so that ``touch FILE`` is a maintenance switch.

A check whose state is not known yet (the first poll has not answered) counts
as failing: a node that just started must prove it is ready before it takes a
VIP.

Priority arithmetic: base (``priority_for(node)``) plus the weights of the
failing checks, clamped to 1..254. An address owner (255) stays 255 only while
no weight applies: a degraded owner is no longer the owner.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from imapha.vip.packet import PRIORITY_OWNER

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 64

IFF_UP = 0x1
IFF_LOWER_UP = 0x10000


@dataclass(frozen=True, slots=True)
class Check:
    """One tracked input. ``weight`` 0 = fault while failing; else added to the priority."""

    name: str
    failing: bool
    weight: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Assessment:
    priority: int
    faults: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.faults


def assess(base: int, checks: Iterable[Check]) -> Assessment:
    """Effective priority and fault reasons of one VIP (see the module docstring)."""
    adjust = 0
    weighted = False
    faults: list[str] = []
    for check in checks:
        if not check.failing:
            continue
        if check.weight == 0:
            faults.append(f"{check.name}: {check.detail}" if check.detail else check.name)
        else:
            adjust += check.weight
            weighted = True
    if base == PRIORITY_OWNER and not weighted:
        return Assessment(PRIORITY_OWNER, tuple(faults))
    return Assessment(max(1, min(PRIORITY_OWNER - 1, base + adjust)), tuple(faults))


def file_check(name: str, path: Path, weight: int) -> Check:
    """A ``track_files`` entry as a :class:`Check` (read now)."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES)
    except FileNotFoundError:
        return Check(f"file {name}", False, weight)
    except OSError as exc:
        # Unreadable but present: the operator meant something; count it as set.
        log.warning("track file %s (%s) unreadable: %s", name, path, exc.strerror or exc)
        raw = b""
    text = raw.decode("ascii", "replace").strip()
    try:
        value = int(text) if text else 1
    except ValueError:
        value = 1
    if weight == 0:
        return Check(f"file {name}", value != 0, 0, f"{path} = {value}")
    return Check(f"file {name}", value != 0, weight * value, f"{path} = {value}")


def link_is_up(flags: int) -> bool:
    """Administratively up and with a carrier (IFF_UP and IFF_LOWER_UP)."""
    return bool(flags & IFF_UP) and bool(flags & IFF_LOWER_UP)
