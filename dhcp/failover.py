"""Failover between the two DHCP servers, sans-I/O: who answers, from which addresses, how long.

Theory of operation
-------------------
Two nodes serve the same pools. The safety rule is ISC failover's (draft-ietf-
dhc-failover-12, the MCLT rule): *while the partner's state is unknown, a
server allocates new addresses only from its own half of every pool, and every
lease it grants or renews lasts at most MCLT*; it takes the partner's half
only once the partner is known down. With that rule no address is leased to
two clients even when the peer link is cut while both servers still reach the
clients (the case Kea's hot-standby loses, see REFERENCE.md).

The halves (:func:`own_half`): each dynamic pool is cut at its middle; the node
whose name sorts first owns the lower part. Both nodes compute the same split
from the shared config, with no negotiation.

States (:class:`State`) and what each allows (:data:`POLICY`):

========================  ========  ====================  ===========
state                     answers   allocates new from    lease time
========================  ========  ====================  ===========
startup                   no        --                    --
recover                   no        --                    --
syncing                   see below own half              <= MCLT
normal                    yes       own half (split) /    full
                                    whole pool (hot-sby)
communications-interrupted yes      own half              <= MCLT
partner-down              yes       whole pool            full
========================  ========  ====================  ===========

A ``syncing`` node answers only once the peer's bulk resync has reached it
(the peer, in ``partner-down`` while we were away, may have given addresses of
our half), and a fresh node not before ``normal``.

In ``normal`` every lease change is acknowledged by the peer before the client
gets its ACK (:mod:`dhcp.peer`), so the peer knows every binding a client
believes in; that is what lets a hot-standby master hand out the whole pool,
and a survivor take the partner's half as soon as the partner is known down.

Known down vs unknown: a lost link whose reconnects are *refused* (the peer's
host answers but nothing listens: the daemon died) is ``known down``; a lost
link that times out (partition, dead host) is *unknown*. The state moves to
``partner-down`` when the peer has been known down for longer than MCLT, or
at once when the operator says so (``imapha ctl dhcp partner-down``), or at
once when the peer was known down straight from ``normal`` (it died with
nothing unacknowledged: every ACK it sent, we had recorded first).

A node that starts with an empty lease store (``fresh``) waits in ``recover``
until it has a bulk resync from the peer (it may have leases out there that
it forgot); a node with leases waits in ``startup`` for the peer: it serves
under the interrupted rules after :data:`STARTUP_WAIT` if the peer is known
down (its daemon refuses), after MCLT if the peer cannot be reached at all
(it may be in ``partner-down``, serving our half, on the other side of a
partition), or at once on the operator's ``partner-down``.

Persistence (:class:`dhcp.store.FailoverRecord`, saved in the lease store on
every state change and at a clean stop): a node that restarts reads its last
record, ``previous``, and its peer's refusal then means different things:

- it stopped cleanly (``bye``) less than MCLT ago: the peer cannot have taken
  our half (it does so only straight from ``normal`` on a crash, or after MCLT
  known down), so we serve our own half after :data:`STARTUP_WAIT` as before;
- it crashed (no clean stop recorded) or stopped longer than MCLT ago: the peer
  may have been in ``partner-down`` meanwhile and leased addresses of our half
  that we never heard of (the *double fault*: we crashed, the peer took over,
  then it died too). We ``hold``: no timeout serves us, only the peer's resync
  or the operator's ``partner-down``. With a store the peer writes too (one
  PostgreSQL database: its record is in our store), every lease it gave is in
  our store already and there is nothing to hold for.

A node with no record at all (a store from before records were kept) behaves
as before.

A peer that stops gracefully says ``bye`` first; its absence then never counts
as "known down straight from normal" (see :meth:`Failover.peer_refused`), so
a planned restart does not hand its half to us.

Split brain: with a partition, both nodes are ``communications-interrupted``
and answer everyone, each from its own half, leases capped at MCLT. A partition
longer than MCLT looks exactly like a dead peer only if its reconnects are
refused; a timing-out peer never becomes ``partner-down`` by itself.

Which node answers in ``normal``: in hot-standby, the node vipd made master
for the DHCP VIP; in split mode, RFC 3074 load balancing: the Pearson hash
of the client identifier (option 61, else chaddr) picks a bucket, the first
node serves buckets 0-127 and the second 128-255. Requests addressed to one
server (its server identifier in a SELECTING REQUEST, a unicast renewal) are
answered by that server whatever the bucket, and so is a client whose ``secs``
field says it has been trying for 3 s or more.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Final

from dhcp.network import Pool
from dhcp.store import ClientKey, FailoverRecord

#: Seconds a node with leases looks for a refusing peer before serving alone.
STARTUP_WAIT: Final = 3.0
#: A client trying this long (its ``secs``) is answered whatever its bucket (ISC's
#: load balance max seconds).
LOAD_BALANCE_MAX_SECONDS: Final = 3

# RFC 3074 §6: the Pearson hash's mixing table (a permutation of 0..255).
_LOADB_TABLE: Final = bytes((
    251, 175, 119, 215, 81, 14, 79, 191, 103, 49, 181, 143, 186, 157, 0,
    232, 31, 32, 55, 60, 152, 58, 17, 237, 174, 70, 160, 144, 220, 90, 57,
    223, 59, 3, 18, 140, 111, 166, 203, 196, 134, 243, 124, 95, 222, 179,
    197, 65, 180, 48, 36, 15, 107, 46, 233, 130, 165, 30, 123, 161, 209, 23,
    97, 16, 40, 91, 219, 61, 100, 10, 210, 109, 250, 127, 22, 138, 29, 108,
    244, 67, 207, 9, 178, 204, 74, 98, 126, 249, 167, 116, 34, 77, 193,
    200, 121, 5, 20, 113, 71, 35, 128, 13, 182, 94, 25, 226, 227, 199, 75,
    27, 41, 245, 230, 224, 43, 225, 177, 26, 155, 150, 212, 142, 218, 115,
    241, 73, 88, 105, 39, 114, 62, 255, 192, 201, 145, 214, 168, 158, 221,
    148, 154, 122, 12, 84, 82, 163, 44, 139, 228, 236, 205, 242, 217, 11,
    187, 146, 159, 64, 86, 239, 195, 42, 106, 198, 118, 112, 184, 172, 87,
    2, 173, 117, 176, 229, 247, 253, 137, 185, 99, 164, 102, 147, 45, 66,
    231, 52, 141, 211, 194, 206, 246, 238, 56, 110, 78, 248, 63, 240, 189,
    93, 92, 51, 53, 183, 19, 171, 72, 50, 33, 104, 101, 69, 8, 252, 83, 120,
    76, 135, 85, 54, 202, 125, 188, 213, 96, 235, 136, 208, 162, 129, 190,
    132, 156, 38, 47, 1, 7, 254, 24, 4, 216, 131, 89, 21, 28, 133, 37, 153,
    149, 80, 170, 68, 6, 169, 234, 151,
))


def loadb_hash(key: bytes) -> int:
    """RFC 3074 §6 hash bucket (0-255) of a client identifier."""
    value = len(key) & 0xFF
    for octet in reversed(key):
        value = _LOADB_TABLE[value ^ octet]
    return value


def own_half(pool: Pool, index: int) -> tuple[int, int]:
    """The inclusive integer range of ``pool`` that node ``index`` (0 or 1) owns."""
    first, last = int(pool.first), int(pool.last)
    middle = first + (last - first + 1) // 2  # node 0: [first, middle), node 1: [middle, last]
    return (first, middle - 1) if index == 0 else (middle, last)


class Mode(enum.Enum):
    SPLIT = "split"
    HOT_STANDBY = "hot-standby"


class State(enum.Enum):
    STARTUP = "startup"
    RECOVER = "recover"
    SYNCING = "syncing"
    NORMAL = "normal"
    INTERRUPTED = "communications-interrupted"
    PARTNER_DOWN = "partner-down"


class Event(enum.Enum):
    LINK_UP = "link-up"  # the peer link is authenticated; bulk resync starts
    SYNCED = "synced"  # both directions of the bulk resync are done
    LINK_LOST = "link-lost"
    STARTUP_TIMEOUT = "startup-timeout"
    RECOVER_TIMEOUT = "recover-timeout"  # fresh node waited MCLT without its peer
    PEER_DOWN_LONG = "peer-down-long"  # known down for longer than MCLT
    OPERATOR_PARTNER_DOWN = "partner-down"


#: The only legal moves. LINK_LOST from NORMAL goes to INTERRUPTED; the
#: immediate partner-down of a peer that died in NORMAL is the caller's
#: OPERATOR-like event (see :meth:`Failover.link_lost`).
TRANSITIONS: Final[Mapping[tuple[State, Event], State]] = {
    (State.STARTUP, Event.LINK_UP): State.SYNCING,
    (State.STARTUP, Event.STARTUP_TIMEOUT): State.INTERRUPTED,
    (State.STARTUP, Event.OPERATOR_PARTNER_DOWN): State.PARTNER_DOWN,
    (State.RECOVER, Event.LINK_UP): State.SYNCING,
    (State.RECOVER, Event.RECOVER_TIMEOUT): State.INTERRUPTED,
    (State.RECOVER, Event.OPERATOR_PARTNER_DOWN): State.PARTNER_DOWN,
    (State.SYNCING, Event.SYNCED): State.NORMAL,
    (State.SYNCING, Event.LINK_LOST): State.INTERRUPTED,
    (State.NORMAL, Event.LINK_LOST): State.INTERRUPTED,
    (State.INTERRUPTED, Event.LINK_UP): State.SYNCING,
    (State.INTERRUPTED, Event.PEER_DOWN_LONG): State.PARTNER_DOWN,
    (State.INTERRUPTED, Event.OPERATOR_PARTNER_DOWN): State.PARTNER_DOWN,
    (State.PARTNER_DOWN, Event.LINK_UP): State.SYNCING,
    (State.PARTNER_DOWN, Event.OPERATOR_PARTNER_DOWN): State.PARTNER_DOWN,
}


@dataclass(frozen=True, slots=True)
class Policy:
    answers: bool
    whole_pool: bool
    capped: bool


POLICY: Final[Mapping[State, Policy]] = {
    State.STARTUP: Policy(answers=False, whole_pool=False, capped=True),
    State.RECOVER: Policy(answers=False, whole_pool=False, capped=True),
    State.SYNCING: Policy(answers=True, whole_pool=False, capped=True),
    State.NORMAL: Policy(answers=True, whole_pool=False, capped=False),
    State.INTERRUPTED: Policy(answers=True, whole_pool=False, capped=True),
    State.PARTNER_DOWN: Policy(answers=True, whole_pool=True, capped=False),
}


class IllegalTransition(Exception):
    pass


class Failover:
    """One node's failover state. Time is passed in; nothing here does I/O."""

    def __init__(
        self,
        mode: Mode,
        index: int,
        pools: tuple[Pool, ...],
        mclt: float,
        now: float,
        *,
        fresh: bool,
        alone: bool = False,
        previous: FailoverRecord | None = None,
        shared_store: bool = False,
    ) -> None:
        self.mode = mode
        self.index = index
        self.mclt = mclt
        self.fresh = fresh  # started with an empty store: must resync first
        self.state = State.RECOVER if fresh else State.STARTUP
        self.since = now
        self.vip_master = False
        self.peer_known_down_since: float | None = None
        #: The peer's bulk resync has reached us on this connection: until then a
        #: syncing node may not know leases the peer gave from our half.
        self.sync_received = False
        self.history: list[tuple[float, State]] = [(now, self.state)]
        self._own = [own_half(pool, index) for pool in pools]
        #: The peer may have leased our half while we were away: no timeout serves us.
        self.hold = (
            previous is not None
            and not fresh
            and not shared_store
            and (previous.stopped is None or now - previous.stopped >= mclt)
        )
        if alone:  # no peer configured: a stand-alone server
            self.state = State.PARTNER_DOWN

    # -- events ------------------------------------------------------------

    def fire(self, event: Event, now: float) -> State:
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise IllegalTransition(f"{event.value} in {self.state.value}")
        if new is not self.state:
            self.state = new
            self.since = now
            self.history.append((now, new))
            if new is State.NORMAL:
                self.fresh = False
        return new

    def can(self, event: Event) -> bool:
        return (self.state, event) in TRANSITIONS

    def link_up(self, now: float) -> None:
        self.peer_known_down_since = None
        self.sync_received = False
        if self.can(Event.LINK_UP):
            self.fire(Event.LINK_UP, now)

    def synced(self, now: float) -> None:
        if self.can(Event.SYNCED):
            self.fire(Event.SYNCED, now)

    def link_lost(self, now: float) -> None:
        if self.can(Event.LINK_LOST):
            self.fire(Event.LINK_LOST, now)

    def peer_refused(self, now: float, *, was_normal: bool) -> None:
        """A reconnect was refused: the peer's daemon is not running (known down).

        Straight from ``normal`` the peer had nothing we had not acknowledged,
        so its half is ours at once; otherwise after MCLT.
        """
        if self.peer_known_down_since is None:
            self.peer_known_down_since = now
        if was_normal and self.state is State.INTERRUPTED:
            self.fire(Event.OPERATOR_PARTNER_DOWN, now)

    def peer_unknown(self) -> None:
        """A reconnect timed out: the peer may still be serving (partition)."""
        self.peer_known_down_since = None

    def partner_down(self, now: float) -> None:
        """The operator asserts the peer is down."""
        if self.state is State.SYNCING or self.state is State.NORMAL:
            raise IllegalTransition(f"the peer is connected ({self.state.value})")
        self.fire(Event.OPERATOR_PARTNER_DOWN, now)

    def tick(self, now: float) -> None:
        if self.state is State.STARTUP and self.hold:
            return  # the peer's resync or the operator
        if self.state is State.STARTUP and (
            (self.peer_known_down_since is not None and now - self.since >= STARTUP_WAIT)
            or now - self.since >= self.mclt
        ):
            self.fire(Event.STARTUP_TIMEOUT, now)
        elif self.state is State.RECOVER and now - self.since >= self.mclt:
            self.fire(Event.RECOVER_TIMEOUT, now)
        elif (
            self.state is State.INTERRUPTED
            and self.peer_known_down_since is not None
            and now - self.peer_known_down_since >= self.mclt
        ):
            self.fire(Event.PEER_DOWN_LONG, now)

    def record(self, node: str, *, peer_state: str, peer_seen: float | None,
               stopped: float | None = None) -> FailoverRecord:
        """What to persist now (see the module docstring)."""
        return FailoverRecord(node, self.state.value, self.since, peer_state, peer_seen,
                              stopped)

    # -- what the state allows ---------------------------------------------

    @property
    def policy(self) -> Policy:
        return POLICY[self.state]

    @property
    def serving(self) -> bool:
        """Does this node answer clients at all now (VIP and bucket aside)?"""
        if self.state is State.SYNCING:
            return not self.fresh and self.sync_received
        return self.policy.answers

    def answers(self, client_id: bytes, addressed_to_us: bool, secs: int = 0) -> bool:
        """Should this node answer a request from ``client_id`` now?

        ``secs`` is the request's seconds-since-start field: a client that has
        been trying for :data:`LOAD_BALANCE_MAX_SECONDS` is answered by both
        (its bucket's owner may be wedged with the link still up), from our half.
        """
        if not self.serving:
            return False
        if self.mode is Mode.HOT_STANDBY:
            return self.vip_master
        if self.state is not State.NORMAL or addressed_to_us:
            return True
        if secs >= LOAD_BALANCE_MAX_SECONDS:
            return True
        return (loadb_hash(client_id) >= 128) == (self.index == 1)

    def lease_cap(self) -> int | None:
        return max(1, int(self.mclt)) if self.policy.capped else None

    def owns(self, address: IPv4Address) -> bool:
        number = int(address)
        return any(low <= number <= high for low, high in self._own)

    def allows(self, address: IPv4Address, client: ClientKey) -> bool:
        """The :class:`dhcp.allocator.Allocator` of this node in its current state."""
        if self.policy.whole_pool:
            return True
        if self.state is State.NORMAL and self.mode is Mode.HOT_STANDBY:
            return True
        return self.owns(address)
