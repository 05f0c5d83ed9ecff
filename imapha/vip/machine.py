"""The VRRPv3 virtual-router state machine (RFC 5798 §6, RFC 9568 §6), sans-I/O.

Theory of operation
-------------------
One :class:`VirtualRouter` per VRID. Everything that changes its state comes in
through :meth:`VirtualRouter.handle` as an event carrying the current time
(seconds, any monotonic origin); everything it wants done comes back as a list
of actions. The caller owns the clock: after each call it (re)schedules a timer
for :meth:`VirtualRouter.next_deadline` and feeds ``TimerFired(now)`` when it
expires. There are no sockets, threads or clocks in here.

States and the transitions between them are the table :data:`TRANSITIONS`;
:meth:`VirtualRouter._move` refuses anything not in it and emits the entry/exit
actions (§6.4.1-§6.4.3):

- entering MASTER: an advertisement, the addresses, a gratuitous ARP/NA burst,
  Adver_Timer = Advertisement_Interval;
- leaving MASTER: the addresses go at once (a priority-0 advertisement first,
  unless a better master took over);
- entering BACKUP: Master_Down_Timer = Master_Down_Interval.

Timings (§6.1), in centiseconds on the wire, seconds here:
Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time and
Skew_Time = ((256 - Priority) x Master_Adver_Interval) / 256. A backup adopts the
interval the master advertises (v3; there is no interval-mismatch drop).

Our additions, beyond the RFC, each documented in docs/vrrp.md:

- Own clock. Periodic advertisements leave at fixed multiples of the interval
  from the moment we became master; no received packet moves that schedule
  (REFERENCE.md: keepalived's "any packet delays the next advert" bug). Replies
  to a priority-0 advert or to a stale master are extra adverts, at most one per
  interval, and never shift the periodic ones. (RFC 5798 §6.4.3 says "reset the
  Adver_Timer" after the priority-0 reply; not doing so only ever makes the next
  advert earlier.)
- Stale master: a MASTER hearing a worse master (split brain healing) sends an
  advert and a gratuitous burst at once, so the other side yields and the
  switches relearn where the addresses live.
- Preempt delay (keepalived's ``preempt_delay``): for that long after start-up,
  readiness or undrain we act as Preempt_Mode = False.
- Readiness gating: a node whose service is not ready never preempts, gives up
  MASTER (priority-0 advert) when it becomes not ready, and takes the addresses
  when no master exists only if ``takeover_when_not_ready``; then it
  advertises priority 1 so any ready router with preemption takes over.
- Resign (drain): send priority 0, go BACKUP and stay there, whatever happens,
  until Unresign.
- Relisten (the link came back): a backup forgets that no master was heard
  while it was deaf and waits a whole Master_Down_Interval again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from imapha.vip.packet import (
    PRIORITY_OWNER,
    PRIORITY_RESIGN,
    Advertisement,
    DecodeError,
    DropReason,
    IPAddress,
    check_group,
)

PRIORITY_NOT_READY = 1
"""What a not-ready master advertises: no worse than nothing, no better than anyone."""


class State(enum.Enum):
    INITIALIZE = "initialize"
    BACKUP = "backup"
    MASTER = "master"


class Cause(enum.Enum):
    """Why a transition happened; the label of StateChanged and of metrics."""

    STARTUP = "startup"
    OWNER_STARTUP = "owner_startup"  # §6.4.1: Priority = 255
    MASTER_DOWN = "master_down"  # §6.4.2: Master_Down_Timer fired
    NO_MASTER = "no_master"  # became ready/undrained while no master was heard
    PREEMPTED = "preempted"  # §6.4.3: a better advertisement arrived
    RESIGN = "resign"  # operator drain
    NOT_READY = "not_ready"  # tracked service not ready
    SHUTDOWN = "shutdown"


TRANSITIONS: dict[tuple[State, Cause], State] = {
    (State.INITIALIZE, Cause.OWNER_STARTUP): State.MASTER,
    (State.INITIALIZE, Cause.STARTUP): State.BACKUP,
    (State.BACKUP, Cause.MASTER_DOWN): State.MASTER,
    (State.BACKUP, Cause.NO_MASTER): State.MASTER,
    (State.BACKUP, Cause.SHUTDOWN): State.INITIALIZE,
    (State.MASTER, Cause.PREEMPTED): State.BACKUP,
    (State.MASTER, Cause.RESIGN): State.BACKUP,
    (State.MASTER, Cause.NOT_READY): State.BACKUP,
    (State.MASTER, Cause.SHUTDOWN): State.INITIALIZE,
}
"""Every legal transition. Leaving MASTER for any cause but PREEMPTED announces
priority 0 (§6.4.3 Shutdown; our resign and not-ready follow the same path)."""


class AdvertCause(enum.Enum):
    PERIODIC = "periodic"  # Adver_Timer
    TAKEOVER = "takeover"  # on becoming master
    REPLY = "reply"  # to a priority-0 advert or a stale master
    RESIGN = "resign"  # priority 0 on leaving master


# ---- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Startup:
    now: float


@dataclass(frozen=True, slots=True)
class Shutdown:
    now: float


@dataclass(frozen=True, slots=True)
class TimerFired:
    now: float


@dataclass(frozen=True, slots=True)
class AdvertReceived:
    """A packet that passed decode() and the TTL check; src is the sender's IP."""

    now: float
    advert: Advertisement
    src: IPAddress


@dataclass(frozen=True, slots=True)
class SetPriority:
    now: float
    priority: int


@dataclass(frozen=True, slots=True)
class SetReady:
    now: float
    ready: bool


@dataclass(frozen=True, slots=True)
class Resign:
    now: float


@dataclass(frozen=True, slots=True)
class Unresign:
    now: float


@dataclass(frozen=True, slots=True)
class Relisten:
    """We could not hear the link (it was down): what we missed proves nothing.

    A backup forgets that Master_Down fired unanswered and listens for a whole
    Master_Down_Interval again, so a node whose cable comes back does not claim
    a VIP that a live master holds (it would flap it: claim, hear the master,
    yield).
    """

    now: float


Event = (
    Startup | Shutdown | TimerFired | AdvertReceived | SetPriority | SetReady | Resign
    | Unresign | Relisten
)

# ---- actions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendAdvert:
    advert: Advertisement
    cause: AdvertCause

    @property
    def priority(self) -> int:
        return self.advert.priority

    @property
    def interval_cs(self) -> int:
        return self.advert.interval_cs


@dataclass(frozen=True, slots=True)
class AddAddresses:
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class RemoveAddresses:
    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class SendGratuitous:
    """Gratuitous ARP (IPv4) / unsolicited NA (IPv6) for these addresses."""

    addresses: tuple[IPAddress, ...]


@dataclass(frozen=True, slots=True)
class StateChanged:
    old: State
    new: State
    cause: Cause


@dataclass(frozen=True, slots=True)
class Discarded:
    """A received advertisement dropped by the §7.1 checks (count it by reason)."""

    reason: DropReason
    detail: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something to log: accepted, but a sign of misconfiguration (§7.1)."""

    text: str


Action = (
    SendAdvert | AddAddresses | RemoveAddresses | SendGratuitous | StateChanged | Discarded | Notice
)


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """The §6.1 parameters of one virtual router, plus our extensions."""

    vrid: int
    priority: int
    addresses: tuple[IPAddress, ...]
    primary: IPAddress  # our own address on the interface: the advert source
    interval_cs: int = 100
    preempt: bool = True
    preempt_delay: float = 0.0
    takeover_when_not_ready: bool = False

    def __post_init__(self) -> None:
        # Validates vrid, priority, interval and the address list in one place.
        Advertisement(self.vrid, self.priority, self.interval_cs, self.addresses)
        if self.priority == PRIORITY_RESIGN:
            raise ValueError("priority 0 is reserved for resigning (RFC 5798 §5.2.4)")
        if self.primary.version != self.addresses[0].version:
            raise ValueError("primary address and virtual addresses of different families")
        if self.preempt_delay < 0:
            raise ValueError("preempt_delay must be >= 0")


def skew_time(priority: int, master_adver_interval_cs: int) -> float:
    """RFC 5798 §6.1 Skew_Time, in seconds."""
    return (256 - priority) * master_adver_interval_cs / 256 / 100


def master_down_interval(priority: int, master_adver_interval_cs: int) -> float:
    """RFC 5798 §6.1 Master_Down_Interval, in seconds."""
    return 3 * master_adver_interval_cs / 100 + skew_time(priority, master_adver_interval_cs)


@dataclass
class VirtualRouter:
    """One VRRPv3 virtual router. Feed events to handle(); obey the actions."""

    config: RouterConfig
    ready: bool = True
    resigned: bool = False
    state: State = State.INITIALIZE
    priority: int = field(init=False)
    master_adver_interval_cs: int = field(init=False)
    adver_deadline: float | None = field(default=None, init=False)
    master_down_deadline: float | None = field(default=None, init=False)
    no_master: bool = field(default=False, init=False)  # Master_Down fired, we stayed
    preempt_after: float = field(default=0.0, init=False)
    last_reply: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.priority = self.config.priority
        self.master_adver_interval_cs = self.config.interval_cs

    # ---- derived values -------------------------------------------------------------

    @property
    def interval(self) -> float:
        """Advertisement_Interval in seconds."""
        return self.config.interval_cs / 100

    @property
    def contending_priority(self) -> int:
        """The priority we advertise and compare with: 1 while not ready."""
        return self.priority if self.ready else PRIORITY_NOT_READY

    @property
    def master_down(self) -> float:
        return master_down_interval(self.contending_priority, self.master_adver_interval_cs)

    @property
    def skew(self) -> float:
        return skew_time(self.contending_priority, self.master_adver_interval_cs)

    def may_take_over(self) -> bool:
        return not self.resigned and (self.ready or self.config.takeover_when_not_ready)

    def preempting(self, now: float) -> bool:
        """Preempt_Mode as it applies right now (§6.1; owner always preempts)."""
        return (
            (self.config.preempt or self.priority == PRIORITY_OWNER)
            and self.ready
            and not self.resigned
            and now >= self.preempt_after
        )

    def next_deadline(self) -> float | None:
        """When the caller must send TimerFired, or None for no timer."""
        if self.state is State.MASTER:
            return self.adver_deadline
        if self.state is State.BACKUP:
            return self.master_down_deadline
        return None

    def _advert(self, priority: int) -> Advertisement:
        return Advertisement(
            self.config.vrid, priority, self.config.interval_cs, self.config.addresses
        )

    # ---- the transition table -------------------------------------------------------

    def _move(self, cause: Cause, now: float, out: list[Action]) -> None:
        old = self.state
        new = TRANSITIONS.get((old, cause))
        if new is None:
            raise AssertionError(f"no transition from {old.name} on {cause.name}")
        if old is State.MASTER:
            self.adver_deadline = None
            if cause is not Cause.PREEMPTED:
                out.append(SendAdvert(self._advert(PRIORITY_RESIGN), AdvertCause.RESIGN))
            out.append(RemoveAddresses(self.config.addresses))
        self.state = new
        out.append(StateChanged(old, new, cause))
        if new is State.MASTER:
            self.master_down_deadline = None
            self.no_master = False
            self.last_reply = None
            out.append(SendAdvert(self._advert(self.contending_priority), AdvertCause.TAKEOVER))
            out.append(AddAddresses(self.config.addresses))
            out.append(SendGratuitous(self.config.addresses))
            self.adver_deadline = now + self.interval
        elif new is State.BACKUP:
            self.master_down_deadline = now + self.master_down
        else:
            self.master_down_deadline = None
            self.no_master = False

    # ---- events ---------------------------------------------------------------------

    def handle(self, event: Event) -> list[Action]:
        """Process one event; return the actions to carry out, in order."""
        out: list[Action] = []
        match event:
            case Startup():
                self._on_startup(event, out)
            case Shutdown():
                self._on_shutdown(event, out)
            case TimerFired():
                self._on_timer(event, out)
            case AdvertReceived():
                self._on_advert(event, out)
            case SetPriority():
                self._on_set_priority(event, out)
            case SetReady():
                self._on_set_ready(event, out)
            case Resign():
                self._on_resign(event, out)
            case Unresign():
                self._on_unresign(event, out)
            case Relisten():
                self._on_relisten(event)
        return out

    def _on_startup(self, ev: Startup, out: list[Action]) -> None:
        if self.state is not State.INITIALIZE:
            return
        self.preempt_after = ev.now + self.config.preempt_delay
        self.master_adver_interval_cs = self.config.interval_cs
        if self.priority == PRIORITY_OWNER and self.ready and not self.resigned:
            self._move(Cause.OWNER_STARTUP, ev.now, out)  # §6.4.1
        else:
            self._move(Cause.STARTUP, ev.now, out)

    def _on_shutdown(self, ev: Shutdown, out: list[Action]) -> None:
        if self.state is not State.INITIALIZE:
            self._move(Cause.SHUTDOWN, ev.now, out)

    def _on_timer(self, ev: TimerFired, out: list[Action]) -> None:
        now = ev.now
        if self.state is State.MASTER and self.adver_deadline is not None:
            if now < self.adver_deadline:
                return
            out.append(SendAdvert(self._advert(self.contending_priority), AdvertCause.PERIODIC))
            nxt = self.adver_deadline + self.interval
            while nxt <= now:  # we were stalled: keep the original phase
                nxt += self.interval
            self.adver_deadline = nxt
        elif self.state is State.BACKUP and self.master_down_deadline is not None:
            if now < self.master_down_deadline:
                return
            self.master_down_deadline = None
            if self.may_take_over():
                self._move(Cause.MASTER_DOWN, now, out)  # §6.4.2
            else:
                self.no_master = True

    def _on_advert(self, ev: AdvertReceived, out: list[Action]) -> None:
        if self.state is State.INITIALIZE:
            return
        adv = ev.advert
        if ev.src == self.config.primary:
            out.append(Discarded(DropReason.OWN_PACKET, str(ev.src)))
            return
        try:
            check_group(adv, self.config.vrid, self.config.addresses)
        except DecodeError as exc:
            out.append(Discarded(exc.reason, exc.detail))
            return
        if set(adv.addresses) != set(self.config.addresses):
            out.append(Notice(f"owner {ev.src} advertises other addresses: {adv.addresses}"))
        if self.priority == PRIORITY_OWNER and adv.priority == PRIORITY_OWNER:
            # RFC 5798 §7.1 drops it; RFC 9568 erratum 8298 processes and logs.
            out.append(Notice(f"{ev.src} also claims to own VRID {adv.vrid}"))
        if self.state is State.BACKUP:
            self._backup_advert(ev, out)
        else:
            self._master_advert(ev, out)

    def _backup_advert(self, ev: AdvertReceived, out: list[Action]) -> None:
        adv, now = ev.advert, ev.now
        if adv.priority == PRIORITY_RESIGN:
            self.master_down_deadline = now + self.skew  # §6.4.2
            self.no_master = False
            return
        if not self.preempting(now) or adv.priority >= self.priority:
            self.master_adver_interval_cs = adv.interval_cs  # v3: adopt the interval
            self.master_down_deadline = now + self.master_down
            self.no_master = False
        # else: discard; our Master_Down_Timer runs out and we preempt (§6.4.2).

    def _master_advert(self, ev: AdvertReceived, out: list[Action]) -> None:
        adv, now = ev.advert, ev.now
        mine = self.contending_priority
        if adv.priority != PRIORITY_RESIGN and (
            adv.priority > mine or (adv.priority == mine and int(ev.src) > int(self.config.primary))
        ):
            self.master_adver_interval_cs = adv.interval_cs  # §6.4.3
            self._move(Cause.PREEMPTED, now, out)
            return
        # A priority-0 advert (§6.4.3: reply at once) or a stale, worse master.
        if self.last_reply is not None and now - self.last_reply < self.interval:
            return
        self.last_reply = now
        out.append(SendAdvert(self._advert(mine), AdvertCause.REPLY))
        if adv.priority != PRIORITY_RESIGN:
            out.append(SendGratuitous(self.config.addresses))

    def _on_set_priority(self, ev: SetPriority, out: list[Action]) -> None:
        if not 1 <= ev.priority <= 255:
            raise ValueError(f"priority {ev.priority} outside 1..255")
        self.priority = ev.priority

    def _on_set_ready(self, ev: SetReady, out: list[Action]) -> None:
        if ev.ready == self.ready:
            return
        self.ready = ev.ready
        if ev.ready:
            self.preempt_after = ev.now + self.config.preempt_delay
            self._claim_if_orphaned(ev.now, out)
        elif self.state is State.MASTER:
            self._move(Cause.NOT_READY, ev.now, out)

    def _on_resign(self, ev: Resign, out: list[Action]) -> None:
        self.resigned = True
        if self.state is State.MASTER:
            self._move(Cause.RESIGN, ev.now, out)

    def _on_unresign(self, ev: Unresign, out: list[Action]) -> None:
        if not self.resigned:
            return
        self.resigned = False
        self.preempt_after = ev.now + self.config.preempt_delay
        self._claim_if_orphaned(ev.now, out)

    def _on_relisten(self, ev: Relisten) -> None:
        if self.state is State.BACKUP:
            self.no_master = False
            self.master_down_deadline = ev.now + self.master_down

    def _claim_if_orphaned(self, now: float, out: list[Action]) -> None:
        """Back in the game while Master_Down had fired unanswered: take over now."""
        if self.state is State.BACKUP and self.no_master and self.may_take_over():
            self._move(Cause.NO_MASTER, now, out)
