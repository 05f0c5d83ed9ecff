"""The RFC 2131 server, sans-I/O: a decoded request in, an ordered list of actions out.

Theory of operation
-------------------
:meth:`Server.handle` takes a decoded :class:`Packet`, the :class:`Ingress` it
came through (interface and its addresses, whether it was broadcast) and the
time, reads the lease store, and returns an :class:`Outcome`: the store writes
to make, in order, then at most one :class:`Reply`. The caller runs them in
that order with :func:`apply`; a write that raises :class:`LeaseConflict`
(another server or thread won the address) stops the list, so a reply is never
sent for a binding that was not recorded (RFC 2131 §4.3.2: the binding is
committed before the DHCPACK). Nothing here touches a socket or a clock.

Which link the client is on (§4.3.1): the relay's ``giaddr`` if set; else
``ciaddr`` if the request came by unicast (a renewal from a relayed subnet
arrives with no giaddr); else the receiving interface's networks. The subnets
of that shared network are where the client may get an address.

Message handling, RFC 2131 §4.3:

- DISCOVER: pick an address (registration, the client's current or previous
  address, the requested address, then the first free pool address the
  :class:`Allocator` allows), reserve it for ``offer_hold`` and OFFER it.
- REQUEST, told apart as in §4.3.2: SELECTING (option 54 present: ours, or
  drop and free our offer), INIT-REBOOT (option 50, no ciaddr: NAK if on the
  wrong network or if the address is not the client's, silent if we have no
  record of the client), RENEWING/REBINDING (ciaddr). ACK carries lease time,
  T1 = 0.5 and T2 = 0.875 of it (§4.4.5).
- DECLINE: quarantine the address for ``decline_quarantine`` (§4.3.3).
- RELEASE: free the address if it is the client's (§4.3.4).
- INFORM: ACK with parameters, no yiaddr and no lease times (§4.3.5).

A client has one binding per shared network: the ACK of a new address also
releases whatever else the client held on that link.

The actions and §4.1 reply addressing are in :mod:`dhcp.actions`, the
allocation policy in :mod:`dhcp.allocator`. Replies echo option 61
(RFC 6842) and option 82 (RFC 3046 §2.2, last). Option 54 is the configured
server identifier: the VIP, so renewals follow the active node.

A registered address is only ever offered to its own host: dynamic allocation
skips registered addresses, and a renewal of one by another client is NAKed.
A registered host asking to keep any other address on that link is NAKed, so
it comes back with DISCOVER and gets its registered one.
If a host's registered address is still held by someone else's lease, the host
gets a dynamic address meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from dhcp.actions import (
    BROADCAST,
    Action,
    Commit,
    Decline,
    Delivery,
    DropReason,
    Handled,
    Ingress,
    Outcome,
    Probe,
    Release,
    Reply,
    Reserve,
    StoreAction,
    addressing,
    apply,
)
from dhcp.allocator import AddressParity, Allocator, EveryAddress
from dhcp.network import ServerConfig, Subnet
from dhcp.options import MessageType, Opt, Options, OptionValue
from dhcp.packet import BOOTREPLY, BOOTREQUEST, DEFAULT_MAX_MESSAGE, FLAG_BROADCAST, ZERO, Packet
from dhcp.registrations import Registration, Registrations
from dhcp.store import ClientKey, LeaseConflict, LeaseState, LeaseStore, admits, client_key

# The logic's whole interface, importable from this one module.
__all__ = [
    "Action",
    "AddressParity",
    "Allocator",
    "Commit",
    "Decline",
    "Delivery",
    "DropReason",
    "EveryAddress",
    "Handled",
    "Ingress",
    "Outcome",
    "Probe",
    "Release",
    "Reply",
    "Reserve",
    "Server",
    "StoreAction",
    "addressing",
    "apply",
    "lease_times",
]
# Parameters sent whether or not the client asked for them (when configured).
ALWAYS_SENT = (Opt.SUBNET_MASK, Opt.ROUTERS, Opt.DNS_SERVERS, Opt.DOMAIN_NAME)
MAX_REPLY = 1500 - 28  # never build a reply beyond an Ethernet MTU


def lease_times(lease_time: int) -> tuple[int, int]:
    """T1 and T2 for a lease (RFC 2131 §4.4.5: 0.5 and 0.875 of it)."""
    return lease_time // 2, lease_time * 7 // 8


def _clean_hostname(name: str | None) -> str | None:
    """A client's option 12 as worth recording, or None (NULs and bad UTF-8 dropped)."""
    if name is None:
        return None
    name = name.strip("\0 ")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return name or None


@dataclass(frozen=True, slots=True)
class _Client:
    key: ClientKey
    hwaddr: bytes
    registration: Registration | None


class Server:
    """The DHCP server logic over a store, registrations and an allocation policy."""

    def __init__(
        self,
        config: ServerConfig,
        store: LeaseStore,
        registrations: Registrations | None = None,
        allocator: Allocator | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.registrations = registrations if registrations is not None else Registrations()
        self.allocator: Allocator = allocator if allocator is not None else EveryAddress()
        #: Failover's bound on every lease granted now (MCLT while the peer is unknown).
        self.lease_cap: int | None = None

    # -- entry point -------------------------------------------------------

    def handle(self, request: Packet, ingress: Ingress, now: float) -> Outcome:
        if request.op != BOOTREQUEST:
            return Outcome(drop=DropReason.NOT_A_REQUEST)
        kind = request.message_type
        if kind is None:
            return Outcome(drop=DropReason.NO_MESSAGE_TYPE)  # BOOTP is not served
        client = self._client(request)
        if kind == MessageType.DISCOVER:
            return self._discover(request, ingress, client, now)
        if kind == MessageType.REQUEST:
            return self._request(request, ingress, client, now)
        if kind == MessageType.DECLINE:
            return self._decline(request, client, now)
        if kind == MessageType.RELEASE:
            return self._release(request, client, now)
        if kind == MessageType.INFORM:
            return self._inform(request, ingress)
        if kind in (MessageType.OFFER, MessageType.ACK, MessageType.NAK):
            return Outcome(drop=DropReason.NOT_A_REQUEST)
        return Outcome(drop=DropReason.UNKNOWN_MESSAGE_TYPE)

    def _client(self, request: Packet) -> _Client:
        client_id = request.options.client_id
        return _Client(
            client_key(client_id, request.htype, request.hwaddr),
            request.hwaddr,
            self.registrations.for_client(client_id, request.htype, request.hwaddr),
        )

    def handle_batch(self, requests: Sequence[tuple[Packet, Ingress]], now: float) -> list[Handled]:
        """Handle requests in order under one group commit (:meth:`LeaseStore.batch`).

        Each request sees the writes of those before it. Send the results only
        after this returns: that is when their bindings are durable. A request
        whose write conflicts gets ``conflict`` set and nothing to send.
        """
        handled: list[Handled] = []
        with self.store.batch():
            for packet, ingress in requests:
                outcome = self.handle(packet, ingress, now)
                try:
                    handled.append(Handled(outcome, apply(outcome, self.store)))
                except LeaseConflict as conflict:
                    handled.append(Handled(outcome, None, conflict))
        return handled

    # -- where the client is -----------------------------------------------

    def link(self, request: Packet, ingress: Ingress) -> tuple[Subnet, ...]:
        """The subnets of the client's shared network (§4.3.1), or ()."""
        if request.giaddr != ZERO:
            return self.config.link_of(request.giaddr)
        if request.ciaddr != ZERO and not ingress.broadcast:
            return self.config.link_of(request.ciaddr)
        for iface in ingress.addresses:
            link = self.config.link_of(iface.ip)
            if link:
                return link
        return ()

    @staticmethod
    def _subnet(link: Sequence[Subnet], address: IPv4Address) -> Subnet | None:
        for subnet in link:
            if address in subnet.network:
                return subnet
        return None

    def _usable(self, subnet: Subnet, address: IPv4Address, client: _Client) -> bool:
        """May ``client`` have ``address`` of ``subnet`` at all (store aside)?"""
        owner = self.registrations.owner_of(address)
        if owner is not None:
            return owner == client.registration
        if subnet.network.prefixlen < 31 and address in (
            subnet.network.network_address,
            subnet.network.broadcast_address,
        ):
            return False
        return subnet.in_pool(address)

    def _registered_elsewhere(
        self, link: Sequence[Subnet], client: _Client, address: IPv4Address, now: float
    ) -> bool:
        """The client has a registration on this link, free for it, at another address."""
        reg = client.registration
        return (
            reg is not None
            and reg.address != address
            and self._subnet(link, reg.address) is not None
            and self._free(reg.address, client, now)
        )

    # -- choosing an address (DISCOVER) ------------------------------------

    def _free(self, address: IPv4Address, client: _Client, now: float) -> bool:
        return admits(self.store.get(address), client.key, now)

    def _choose(
        self,
        request: Packet,
        link: Sequence[Subnet],
        client: _Client,
        now: float,
        exclude: frozenset[IPv4Address] = frozenset(),
    ) -> tuple[Subnet, IPv4Address, bool] | None:
        """The address to offer (§4.3.1 order), its subnet, and whether the client holds it."""
        reg = client.registration
        if reg is not None and reg.address not in exclude:
            subnet = self._subnet(link, reg.address)
            if subnet is not None and self._free(reg.address, client, now):
                existing = self.store.get(reg.address)
                held = existing is not None and existing.holds(now)
                return subnet, reg.address, held
        for lease in self.store.by_client(client.key):
            subnet = self._subnet(link, lease.address)
            if (
                subnet is None
                or lease.address in exclude
                or lease.state is LeaseState.DECLINED
                or not self._usable(subnet, lease.address, client)
            ):
                continue
            if lease.holds(now):
                return subnet, lease.address, True
            if self._free(lease.address, client, now) and self.allocator.allows(
                lease.address, client.key
            ):
                return subnet, lease.address, False
        wanted = request.options.requested_ip
        if wanted is not None and wanted not in exclude:
            subnet = self._subnet(link, wanted)
            if (
                subnet is not None
                and self._usable(subnet, wanted, client)
                and self.allocator.allows(wanted, client.key)
                and self._free(wanted, client, now)
            ):
                return subnet, wanted, False
        skip = {int(a) for a in exclude}
        for subnet in link:
            for pool in subnet.pools:
                blocked = {int(a) for a in self.store.unavailable(pool.first, pool.last, now)}
                for number in range(int(pool.first), int(pool.last) + 1):
                    if number in blocked or number in skip:
                        continue
                    address = IPv4Address(number)
                    if self.registrations.owner_of(address) is None and self.allocator.allows(
                        address, client.key
                    ):
                        return subnet, address, False
        return None

    # -- building replies --------------------------------------------------

    def _lease_time(self, subnet: Subnet, request: Packet) -> int:
        wanted = request.options.lease_time
        if wanted is None:
            granted = subnet.lease_time
        else:
            granted = max(subnet.min_lease_time, min(wanted, subnet.max_lease_time))
        return granted if self.lease_cap is None else max(1, min(granted, self.lease_cap))

    def _reply(
        self,
        request: Packet,
        ingress: Ingress,
        kind: MessageType,
        *,
        yiaddr: IPv4Address = ZERO,
        subnet: Subnet | None = None,
        lease_time: int | None = None,
        hostname: str | None = None,
        message: str | None = None,
    ) -> Reply:
        opts: dict[int, OptionValue] = {
            Opt.MESSAGE_TYPE: kind,
            Opt.SERVER_ID: self.config.server_id,
        }
        if lease_time is not None:
            t1, t2 = lease_times(lease_time)
            opts[Opt.LEASE_TIME] = lease_time
            opts[Opt.RENEWAL_TIME] = t1
            opts[Opt.REBINDING_TIME] = t2
        if subnet is not None:
            params = subnet.parameters()
            if hostname:
                params[Opt.HOSTNAME] = hostname
            wanted = request.options.parameter_request_list
            if wanted is None:
                opts.update(params)
            else:
                for code in (*ALWAYS_SENT, *wanted):
                    if code in params and code not in opts:
                        opts[code] = params[code]
                if Opt.HOSTNAME in params:
                    opts.setdefault(Opt.HOSTNAME, params[Opt.HOSTNAME])
        if message is not None:
            opts[Opt.MESSAGE] = message
        client_id = request.options.client_id
        if client_id is not None:  # RFC 6842
            opts[Opt.CLIENT_ID] = client_id
        relay = request.options.relay_agent_info
        if relay is not None:  # RFC 3046 §2.2: in all replies, last (§2.1: giaddr may be 0)
            opts[Opt.RELAY_AGENT_INFO] = relay
        nak = kind is MessageType.NAK
        packet = Packet(
            op=BOOTREPLY,
            htype=request.htype,
            hlen=request.hlen,
            xid=request.xid,
            # §4.3.2: a NAK through a relay has the broadcast bit set.
            flags=request.flags | (FLAG_BROADCAST if nak and request.giaddr != ZERO else 0),
            ciaddr=request.ciaddr if kind is MessageType.ACK else ZERO,
            yiaddr=yiaddr,
            giaddr=request.giaddr,
            chaddr=request.chaddr,
            options=Options.of(opts),
        )
        destination, port, delivery = addressing(request, kind)
        if delivery is Delivery.HARDWARE:
            destination = yiaddr
            if yiaddr == ZERO:  # an INFORM without ciaddr: nowhere to unicast
                destination, delivery = BROADCAST, Delivery.BROADCAST
        mms = request.options.max_message_size
        max_size = DEFAULT_MAX_MESSAGE if mms is None else max(mms - 28, DEFAULT_MAX_MESSAGE)
        return Reply(
            packet=packet,
            destination=destination,
            port=port,
            delivery=delivery,
            hwaddr=request.hwaddr if delivery is Delivery.HARDWARE else None,
            source=self.config.server_id,
            interface=ingress.interface,
            max_size=min(max_size, MAX_REPLY),
        )

    def _nak(self, request: Packet, ingress: Ingress, message: str) -> Outcome:
        return Outcome((self._reply(request, ingress, MessageType.NAK, message=message),))

    def _ack(
        self,
        request: Packet,
        ingress: Ingress,
        client: _Client,
        now: float,
        *,
        subnet: Subnet,
        address: IPv4Address,
    ) -> Outcome:
        lease_time = self._lease_time(subnet, request)
        hostname = client.registration.hostname if client.registration else None
        commit = Commit(
            address,
            client.key,
            client.hwaddr,
            now,
            now + lease_time,
            hostname or _clean_hostname(request.options.hostname),
        )
        reply = self._reply(
            request,
            ingress,
            MessageType.ACK,
            yiaddr=address,
            subnet=subnet,
            lease_time=lease_time,
            hostname=hostname,
        )
        # One binding per client per link: what else it held there goes back.
        link = self.config.link_of(address)
        stale = tuple(
            Release(lease.address, client.key, now)
            for lease in self.store.by_client(client.key)
            if lease.address != address
            and lease.holds(now)
            and self._subnet(link, lease.address) is not None
        )
        return Outcome((commit, *stale, reply))

    # -- the messages ------------------------------------------------------

    def _discover(
        self,
        request: Packet,
        ingress: Ingress,
        client: _Client,
        now: float,
        exclude: frozenset[IPv4Address] = frozenset(),
    ) -> Outcome:
        link = self.link(request, ingress)
        if not link:
            return Outcome(drop=DropReason.NO_SUBNET)
        chosen = self._choose(request, link, client, now, exclude)
        if chosen is None:
            return Outcome(drop=DropReason.NO_ADDRESS)
        subnet, address, held = chosen
        reserve = Reserve(address, client.key, client.hwaddr, now, now + self.config.offer_hold)
        reply = self._reply(
            request,
            ingress,
            MessageType.OFFER,
            yiaddr=address,
            subnet=subnet,
            lease_time=self._lease_time(subnet, request),
            hostname=client.registration.hostname if client.registration else None,
        )
        if self.config.probe and not held:
            probe = Probe(address, client.key, request, ingress, reply, exclude | {address})
            return Outcome((reserve, probe))
        return Outcome((reserve, reply))

    def address_in_use(self, probe: Probe, now: float) -> Outcome:
        """Something answered the probe: quarantine the address and offer another one."""
        client = self._client(probe.request)
        until = now + self.config.decline_quarantine
        quarantine = Decline(probe.address, probe.client, now, until)
        again = self._discover(probe.request, probe.ingress, client, now, probe.tried)
        return Outcome((quarantine, *again.actions), drop=again.drop)

    def _request(self, request: Packet, ingress: Ingress, client: _Client, now: float) -> Outcome:
        opts = request.options
        server_id, wanted, ciaddr = opts.server_id, opts.requested_ip, request.ciaddr
        if server_id is not None:
            return self._selecting(request, ingress, client, now)
        if wanted is not None and ciaddr == ZERO:
            return self._init_reboot(request, ingress, client, wanted, now)
        if ciaddr != ZERO:
            return self._renewing(request, ingress, client, now)
        return Outcome(drop=DropReason.MALFORMED_REQUEST)

    def _selecting(self, request: Packet, ingress: Ingress, client: _Client, now: float) -> Outcome:
        wanted = request.options.requested_ip
        if request.options.server_id != self.config.server_id:
            # The client chose another server: free what we offered it.
            offers = [
                Release(lease.address, client.key, now)
                for lease in self.store.by_client(client.key)
                if lease.state is LeaseState.OFFERED and lease.holds(now)
            ]
            return Outcome(tuple(offers), drop=DropReason.NOT_FOR_US)
        if wanted is None and request.ciaddr != ZERO:
            # Server id in a renewal breaks §4.4.5, but some clients do it: the
            # RENEWING checks are as strict, so answer it as one.
            return self._renewing(request, ingress, client, now)
        if wanted is None or request.ciaddr != ZERO:
            return Outcome(drop=DropReason.MALFORMED_REQUEST)  # §4.3.2 SELECTING
        link = self.link(request, ingress)
        subnet = self._subnet(link, wanted)
        if subnet is None or not self._usable(subnet, wanted, client):
            return self._nak(request, ingress, "requested address is not available")
        existing = self.store.get(wanted)
        if not admits(existing, client.key, now):
            return self._nak(request, ingress, "requested address is not available")
        mine = existing is not None and existing.client == client.key
        if not mine and not self.allocator.allows(wanted, client.key):
            # Free, but the failover partner's to give: in a split brain the partner
            # (same server id: the VIP) offered it and will ACK; a NAK would undo that.
            return Outcome(drop=DropReason.NOT_OURS)
        if self._registered_elsewhere(link, client, wanted, now):
            return self._nak(request, ingress, "this host has a registered address")
        return self._ack(request, ingress, client, now, subnet=subnet, address=wanted)

    def _init_reboot(
        self,
        request: Packet,
        ingress: Ingress,
        client: _Client,
        wanted: IPv4Address,
        now: float,
    ) -> Outcome:
        link = self.link(request, ingress)
        if not link:
            return Outcome(drop=DropReason.NO_SUBNET)
        subnet = self._subnet(link, wanted)
        if subnet is None:
            if self.config.authoritative:
                return self._nak(request, ingress, "wrong network")
            return Outcome(drop=DropReason.WRONG_NETWORK)
        existing = self.store.get(wanted)
        registered = client.registration is not None and client.registration.address == wanted
        records = [
            r for r in self.store.by_client(client.key) if r.state is not LeaseState.DECLINED
        ]
        if (
            not admits(existing, client.key, now)
            or not self._usable(subnet, wanted, client)
            or self._registered_elsewhere(link, client, wanted, now)
        ):
            return self._nak(request, ingress, "address is not yours")
        if registered or any(r.address == wanted for r in records):
            return self._ack(request, ingress, client, now, subnet=subnet, address=wanted)
        if records or client.registration is not None:
            return self._nak(request, ingress, "address is not yours")
        return Outcome(drop=DropReason.NO_RECORD)  # §4.3.2: MUST remain silent

    def _renewing(self, request: Packet, ingress: Ingress, client: _Client, now: float) -> Outcome:
        address = request.ciaddr
        link = self.link(request, ingress)
        subnet = self._subnet(link, address)
        if subnet is None:
            if self.config.authoritative and link:
                return self._nak(request, ingress, "wrong network")
            return Outcome(drop=DropReason.WRONG_NETWORK)
        existing = self.store.get(address)
        if not admits(existing, client.key, now) or not self._usable(subnet, address, client):
            if self.config.authoritative:
                return self._nak(request, ingress, "address is not yours")
            return Outcome(drop=DropReason.NOT_OURS)
        mine = existing is not None and existing.client == client.key
        registered = client.registration is not None and client.registration.address == address
        if not (mine or registered) and not self.allocator.allows(address, client.key):
            return Outcome(drop=DropReason.NOT_OURS)  # the partner's to answer
        if self._registered_elsewhere(link, client, address, now):
            return self._nak(request, ingress, "this host has a registered address")
        return self._ack(request, ingress, client, now, subnet=subnet, address=address)

    def _decline(self, request: Packet, client: _Client, now: float) -> Outcome:
        opts = request.options
        if opts.server_id is not None and opts.server_id != self.config.server_id:
            return Outcome(drop=DropReason.NOT_FOR_US)
        address = opts.requested_ip
        if address is None:
            return Outcome(drop=DropReason.MALFORMED_REQUEST)
        until = now + self.config.decline_quarantine
        return Outcome((Decline(address, client.key, now, until),))

    def _release(self, request: Packet, client: _Client, now: float) -> Outcome:
        opts = request.options
        if opts.server_id is not None and opts.server_id != self.config.server_id:
            return Outcome(drop=DropReason.NOT_FOR_US)
        if request.ciaddr == ZERO:
            return Outcome(drop=DropReason.MALFORMED_REQUEST)
        return Outcome((Release(request.ciaddr, client.key, now),))

    def _inform(self, request: Packet, ingress: Ingress) -> Outcome:
        link = self.link(request, ingress)
        address = request.ciaddr
        subnet = self._subnet(link, address) if address != ZERO else None
        if subnet is None:
            subnet = link[0] if link else None
        if subnet is None:
            return Outcome(drop=DropReason.NO_SUBNET)
        return Outcome((self._reply(request, ingress, MessageType.ACK, subnet=subnet),))
