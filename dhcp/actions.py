"""What the server logic outputs: ordered actions for the I/O layer, and reply addressing.

Theory of operation
-------------------
:meth:`dhcp.logic.Server.handle` returns an :class:`Outcome`: store writes
(:class:`Reserve`, :class:`Commit`, :class:`Release`, :class:`Decline`) in the
order they must happen, then at most one :class:`Reply` to send, or a
:class:`Probe` to run before the offer goes out. :func:`apply` executes the
writes in order and stops at the first :class:`dhcp.store.LeaseConflict`, so a
reply is never sent for a binding that was not recorded (RFC 2131 §4.3.2).

:func:`addressing` is RFC 2131 §4.1's table of where a reply goes; the
:class:`Delivery` value tells the I/O layer which kind of send it needs.
:class:`DropReason` values are metric labels, like
:class:`dhcp.options.DecodeReason`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from dhcp.options import MessageType
from dhcp.packet import CLIENT_PORT, FLAG_BROADCAST, SERVER_PORT, ZERO, Packet
from dhcp.store import ClientKey, LeaseConflict, LeaseStore

BROADCAST = IPv4Address("255.255.255.255")


@dataclass(frozen=True, slots=True)
class Ingress:
    """How a request reached us, as the I/O layer saw it."""

    interface: str
    addresses: tuple[IPv4Interface, ...] = ()
    broadcast: bool = True  # sent to 255.255.255.255 (vs unicast to us)


class Delivery(enum.Enum):
    """How the I/O layer must send a reply (RFC 2131 §4.1)."""

    RELAY = "relay"  # unicast to giaddr, port 67
    UNICAST = "unicast"  # unicast to ciaddr, port 68
    BROADCAST = "broadcast"  # 255.255.255.255, port 68
    HARDWARE = "hardware"  # to yiaddr, port 68, link-layer destination chaddr


class DropReason(enum.Enum):
    """Why a request got no reply; the value is the metric label."""

    NOT_A_REQUEST = "not_a_request"
    NO_MESSAGE_TYPE = "no_message_type"
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"
    NO_SUBNET = "no_subnet"
    NO_ADDRESS = "no_address"
    NOT_FOR_US = "not_for_us"
    NO_RECORD = "no_record"
    NOT_OURS = "not_ours"
    MALFORMED_REQUEST = "malformed_request"
    WRONG_NETWORK = "wrong_network"


@dataclass(frozen=True, slots=True)
class Reserve:
    address: IPv4Address
    client: ClientKey
    hwaddr: bytes
    now: float
    until: float


@dataclass(frozen=True, slots=True)
class Commit:
    address: IPv4Address
    client: ClientKey
    hwaddr: bytes
    starts: float
    expires: float
    hostname: str | None


@dataclass(frozen=True, slots=True)
class Release:
    address: IPv4Address
    client: ClientKey
    now: float


@dataclass(frozen=True, slots=True)
class Decline:
    address: IPv4Address
    client: ClientKey
    now: float
    until: float


@dataclass(frozen=True, slots=True)
class Reply:
    packet: Packet
    destination: IPv4Address
    port: int
    delivery: Delivery
    hwaddr: bytes | None  # link-layer destination, for HARDWARE delivery
    source: IPv4Address  # the server identifier: replies leave from it
    interface: str
    max_size: int  # octets the client accepts (RFC 2132 §9.10)


@dataclass(frozen=True, slots=True)
class Probe:
    """Before offering ``address``, check that nothing answers there (ICMP echo or ARP).

    The I/O layer probes; on silence it sends ``reply``; if something answers it
    calls :meth:`Server.address_in_use`, which quarantines the address and
    picks another (never one in ``tried``).
    """

    address: IPv4Address
    client: ClientKey
    request: Packet
    ingress: Ingress
    reply: Reply
    tried: frozenset[IPv4Address]


StoreAction = Reserve | Commit | Release | Decline
Action = StoreAction | Reply | Probe


@dataclass(frozen=True, slots=True)
class Outcome:
    actions: tuple[Action, ...] = ()
    drop: DropReason | None = None

    @property
    def reply(self) -> Reply | None:
        last = self.actions[-1] if self.actions else None
        return last if isinstance(last, Reply) else None

    @property
    def probe(self) -> Probe | None:
        last = self.actions[-1] if self.actions else None
        return last if isinstance(last, Probe) else None


@dataclass(frozen=True, slots=True)
class Handled:
    """One request of a batch: what the logic decided and what is left to send."""

    outcome: Outcome
    result: Reply | Probe | None
    conflict: LeaseConflict | None = None


def apply(outcome: Outcome, store: LeaseStore) -> Reply | Probe | None:
    """Run the store writes in order, then return the reply to send (or the probe to run).

    A :class:`dhcp.store.LeaseConflict` propagates: nothing after it runs, so
    the reply is not sent.
    """
    for action in outcome.actions:
        if isinstance(action, Reserve):
            store.reserve(
                action.address, action.client, action.hwaddr, now=action.now, until=action.until
            )
        elif isinstance(action, Commit):
            store.commit(
                action.address,
                action.client,
                action.hwaddr,
                starts=action.starts,
                expires=action.expires,
                hostname=action.hostname,
            )
        elif isinstance(action, Release):
            store.release(action.address, action.client, action.now)
        elif isinstance(action, Decline):
            store.decline(action.address, action.client, action.now, action.until)
        else:
            return action
    return None


def addressing(request: Packet, reply_type: MessageType) -> tuple[IPv4Address, int, Delivery]:
    """Where a reply goes, RFC 2131 §4.1 (and §4.3.2 for DHCPNAK)."""
    if request.giaddr != ZERO:
        return request.giaddr, SERVER_PORT, Delivery.RELAY
    if reply_type is MessageType.NAK:
        return BROADCAST, CLIENT_PORT, Delivery.BROADCAST
    if request.ciaddr != ZERO:
        return request.ciaddr, CLIENT_PORT, Delivery.UNICAST
    if request.flags & FLAG_BROADCAST:
        return BROADCAST, CLIENT_PORT, Delivery.BROADCAST
    return ZERO, CLIENT_PORT, Delivery.HARDWARE
