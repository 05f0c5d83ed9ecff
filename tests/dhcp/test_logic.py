"""RFC 2131 §4.3 server behaviour and §4.1 reply addressing, bytes in and actions out."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dhcp.logic import (
    AddressParity,
    Commit,
    Delivery,
    DropReason,
    Ingress,
    Reply,
    Reserve,
    Server,
    addressing,
    apply,
)
from dhcp.memory_store import MemoryStore
from dhcp.options import MessageType, Opt, RelayAgentInfo
from dhcp.packet import BOOTREPLY, FLAG_BROADCAST, SERVER_PORT, ZERO, Packet
from dhcp.registrations import Registration, Registrations
from dhcp.sqlite_store import SQLiteStore
from dhcp.store import LeaseConflict, LeaseState, LeaseStore, client_key
from tests.dhcp.lab import (
    CAMPUS_GIADDR,
    LOCAL,
    LOCAL_UNICAST,
    RELAY_GIADDR,
    SERVER_ID,
    T0,
    Client,
    config,
    ip,
    lease_for,
    mac,
    make_server,
    run,
)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LeaseStore]:
    made: LeaseStore = (
        MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "l.db")
    )
    yield made
    made.close()


@pytest.fixture
def server(store: LeaseStore) -> Server:
    return make_server(store)


# -- DISCOVER / OFFER (§4.3.1) ---------------------------------------------------------


def test_discover_gets_an_offer_reserved_before_it_is_sent(server: Server) -> None:
    client = Client(mac(1))
    request = client.discover()
    outcome = server.handle(request, LOCAL, T0)
    reserve, reply = outcome.actions
    assert isinstance(reserve, Reserve) and reserve.until == T0 + 30
    assert outcome.reply is reply
    offer = outcome.reply.packet
    assert offer.op == BOOTREPLY and offer.xid == request.xid and offer.chaddr == request.chaddr
    assert offer.message_type is MessageType.OFFER
    assert offer.yiaddr == ip("192.0.2.100") and offer.ciaddr == ZERO
    opts = offer.options
    assert opts.server_id == SERVER_ID
    assert opts.lease_time == 3600
    assert opts.get(Opt.RENEWAL_TIME) == 1800 and opts.get(Opt.REBINDING_TIME) == 3150
    assert opts.get(Opt.SUBNET_MASK) == ip("255.255.255.0")
    assert opts.get(Opt.ROUTERS) == (ip("192.0.2.1"),)
    assert opts.get(Opt.DNS_SERVERS) == (ip("192.0.2.53"), ip("192.0.2.54"))
    assert opts.get(Opt.DOMAIN_NAME) == "lab.example"
    assert opts.get(Opt.BROADCAST_ADDRESS) == ip("192.0.2.255")
    assert opts.codes()[0] == Opt.MESSAGE_TYPE
    # Table 3: no requested IP, request list or max size in a reply
    for code in (Opt.REQUESTED_IP, Opt.PARAMETER_REQUEST_LIST, Opt.MAX_MESSAGE_SIZE):
        assert code not in opts
    apply(outcome, server.store)
    lease = server.store.get(offer.yiaddr)
    assert lease is not None and lease.state is LeaseState.OFFERED


def test_offers_to_different_clients_differ_and_repeat_for_the_same(server: Server) -> None:
    one, two = Client(mac(1)), Client(mac(2))
    _, a = run(server, one.discover())
    _, b = run(server, two.discover())
    _, a_again = run(server, one.discover(), now=T0 + 5)
    assert a and b and a_again
    assert a.packet.yiaddr != b.packet.yiaddr
    assert a_again.packet.yiaddr == a.packet.yiaddr


def test_requested_address_is_offered_when_free(server: Server) -> None:
    _, reply = run(server, Client(mac(1)).discover(requested_ip=ip("192.0.2.150")))
    assert reply is not None and reply.packet.yiaddr == ip("192.0.2.150")
    _, reply = run(server, Client(mac(2)).discover(requested_ip=ip("192.0.2.150")))
    assert reply is not None and reply.packet.yiaddr != ip("192.0.2.150")
    _, reply = run(server, Client(mac(3)).discover(requested_ip=ip("192.0.2.20")))  # off-pool
    assert reply is not None and reply.packet.yiaddr != ip("192.0.2.20")


def test_lease_time_request_is_clamped(server: Server) -> None:
    _, reply = run(server, Client(mac(1)).discover(lease_time=100_000))
    assert reply is not None and reply.packet.options.lease_time == 7200
    assert reply.packet.options.get(Opt.RENEWAL_TIME) == 3600
    assert reply.packet.options.get(Opt.REBINDING_TIME) == 6300
    _, reply = run(server, Client(mac(2)).discover(lease_time=5))
    assert reply is not None and reply.packet.options.lease_time == 60


def test_pool_exhaustion_drops(store: LeaseStore) -> None:
    server = make_server(store)
    client = Client(mac(99), giaddr=RELAY_GIADDR)
    for n in range(11):
        address = lease_for(server, Client(mac(n), giaddr=RELAY_GIADDR))
        assert address in server.config.subnets[1].pools[0]
    outcome, reply = run(server, client.discover())
    assert reply is None and outcome.drop is DropReason.NO_ADDRESS


def test_unknown_link_is_dropped(server: Server) -> None:
    outcome, reply = run(server, Client(mac(1)).discover(), Ingress("eth9", ()))
    assert reply is None and outcome.drop is DropReason.NO_SUBNET


def test_bootp_and_replies_are_ignored(server: Server) -> None:
    bootp = Packet(op=1, xid=1, chaddr=mac(1))
    assert server.handle(bootp, LOCAL, T0).drop is DropReason.NO_MESSAGE_TYPE
    offer = Packet(op=2, xid=1, chaddr=mac(1), options=Client(mac(1)).discover().options)
    assert server.handle(offer, LOCAL, T0).drop is DropReason.NOT_A_REQUEST


# -- REQUEST: SELECTING ---------------------------------------------------------------


def test_selecting_request_is_committed_before_the_ack(server: Server) -> None:
    client = Client(mac(1), client_id=b"\x01" + mac(1))
    _, offer = run(server, client.discover())
    assert offer is not None
    outcome = server.handle(client.select(offer.packet.yiaddr), LOCAL, T0 + 1)
    commit, reply = outcome.actions
    assert isinstance(commit, Commit) and commit.expires == T0 + 1 + 3600
    assert outcome.reply is reply
    ack = outcome.reply.packet
    assert ack.message_type is MessageType.ACK and ack.yiaddr == offer.packet.yiaddr
    assert ack.options.client_id == b"\x01" + mac(1)  # RFC 6842
    apply(outcome, server.store)
    lease = server.store.get(ack.yiaddr)
    assert lease is not None and lease.state is LeaseState.BOUND
    assert lease.client == client_key(b"\x01" + mac(1), 1, mac(1))
    assert lease.expires == T0 + 1 + 3600


def test_request_for_another_server_frees_our_offer(server: Server) -> None:
    client, other = Client(mac(1)), Client(mac(2))
    _, offer = run(server, client.discover())
    assert offer is not None
    outcome, reply = run(server, client.select(offer.packet.yiaddr, ip("192.0.2.251")), now=T0 + 1)
    assert reply is None and outcome.drop is DropReason.NOT_FOR_US
    _, offer2 = run(server, other.discover(), now=T0 + 2)
    assert offer2 is not None and offer2.packet.yiaddr == offer.packet.yiaddr


def test_selecting_an_address_held_by_another_is_naked(server: Server) -> None:
    taken = lease_for(server, Client(mac(1)))
    _, nak = run(server, Client(mac(2)).select(taken), now=T0 + 1)
    assert nak is not None and nak.packet.message_type is MessageType.NAK
    packet = nak.packet
    assert packet.yiaddr == ZERO and packet.ciaddr == ZERO
    assert packet.options.server_id == SERVER_ID
    assert Opt.MESSAGE in packet.options
    for code in (Opt.LEASE_TIME, Opt.RENEWAL_TIME, Opt.SUBNET_MASK, Opt.ROUTERS):
        assert code not in packet.options  # Table 3: all others MUST NOT
    assert nak.delivery is Delivery.BROADCAST and nak.destination == ip("255.255.255.255")


def test_selecting_after_the_offer_expired_still_acks_a_free_address(server: Server) -> None:
    client = Client(mac(1))
    _, offer = run(server, client.discover())
    assert offer is not None
    _, ack = run(server, client.select(offer.packet.yiaddr), now=T0 + 300)
    assert ack is not None and ack.packet.message_type is MessageType.ACK


def test_selecting_without_requested_address_is_malformed(server: Server) -> None:
    client = Client(mac(1))
    bad = client.packet(MessageType.REQUEST, extra={Opt.SERVER_ID: SERVER_ID})
    assert server.handle(bad, LOCAL, T0).drop is DropReason.MALFORMED_REQUEST
    neither = client.packet(MessageType.REQUEST)
    assert server.handle(neither, LOCAL, T0).drop is DropReason.MALFORMED_REQUEST


# -- REQUEST: INIT-REBOOT ------------------------------------------------------------


def test_init_reboot_with_its_own_address_is_acked(server: Server) -> None:
    client = Client(mac(1))
    address = lease_for(server, client)
    _, ack = run(server, client.init_reboot(address), now=T0 + 100)
    assert ack is not None and ack.packet.message_type is MessageType.ACK
    assert ack.packet.yiaddr == address
    lease = server.store.get(address)
    assert lease is not None and lease.expires == T0 + 100 + 3600


def test_init_reboot_on_the_wrong_network_is_naked(server: Server) -> None:
    client = Client(mac(1))
    lease_for(server, client)
    _, nak = run(server, client.init_reboot(ip("198.51.100.15")))
    assert nak is not None and nak.packet.message_type is MessageType.NAK
    assert nak.delivery is Delivery.BROADCAST


def test_init_reboot_wrong_network_is_silent_when_not_authoritative(store: LeaseStore) -> None:
    server = make_server(store, authoritative=False)
    outcome, reply = run(server, Client(mac(1)).init_reboot(ip("198.51.100.15")))
    assert reply is None and outcome.drop is DropReason.WRONG_NETWORK


def test_init_reboot_from_an_unknown_client_is_silent(server: Server) -> None:
    outcome, reply = run(server, Client(mac(1)).init_reboot(ip("192.0.2.120")))
    assert reply is None and outcome.drop is DropReason.NO_RECORD


def test_init_reboot_with_someone_elses_address_is_naked(server: Server) -> None:
    taken = lease_for(server, Client(mac(1)))
    _, nak = run(server, Client(mac(2)).init_reboot(taken))
    assert nak is not None and nak.packet.message_type is MessageType.NAK
    mover = Client(mac(3))
    mine = lease_for(server, mover)
    _, nak = run(server, mover.init_reboot(ip("192.0.2.180")))
    assert mine != ip("192.0.2.180")
    assert nak is not None and nak.packet.message_type is MessageType.NAK


# -- REQUEST: RENEWING / REBINDING ---------------------------------------------------


def test_renewing_by_unicast_extends_and_answers_ciaddr(server: Server) -> None:
    client = Client(mac(1))
    address = lease_for(server, client)
    request = client.renew(address)
    _, ack = run(server, request, LOCAL_UNICAST, now=T0 + 1800)
    assert ack is not None and ack.packet.message_type is MessageType.ACK
    assert ack.packet.ciaddr == address and ack.packet.yiaddr == address
    assert (ack.destination, ack.port, ack.delivery) == (address, 68, Delivery.UNICAST)
    lease = server.store.get(address)
    assert lease is not None and lease.expires == T0 + 1800 + 3600


def test_rebinding_by_broadcast_is_acked(server: Server) -> None:
    client = Client(mac(1))
    address = lease_for(server, client)
    _, ack = run(server, client.renew(address), LOCAL, now=T0 + 3200)
    assert ack is not None and ack.packet.message_type is MessageType.ACK
    assert ack.delivery is Delivery.UNICAST and ack.destination == address


def test_renewing_after_expiry_rebinds_a_still_free_address(server: Server) -> None:
    client = Client(mac(1))
    address = lease_for(server, client)
    _, ack = run(server, client.renew(address), LOCAL_UNICAST, now=T0 + 4000)
    assert ack is not None and ack.packet.message_type is MessageType.ACK


def test_renewing_someone_elses_address_is_naked(server: Server) -> None:
    address = lease_for(server, Client(mac(1)))
    _, nak = run(server, Client(mac(2)).renew(address), LOCAL_UNICAST, now=T0 + 10)
    assert nak is not None and nak.packet.message_type is MessageType.NAK
    assert nak.delivery is Delivery.BROADCAST  # §4.1: NAKs are broadcast without a relay


def test_rebinding_from_the_wrong_network_is_naked(server: Server) -> None:
    client = Client(mac(1), giaddr=RELAY_GIADDR)
    address = lease_for(server, client)
    moved = Client(mac(1))  # now on the local link, broadcasting its old address
    _, nak = run(server, moved.renew(address), LOCAL, now=T0 + 10)
    assert nak is not None and nak.packet.message_type is MessageType.NAK


def test_relayed_client_renews_by_unicast_without_giaddr(server: Server) -> None:
    address = lease_for(server, Client(mac(1), giaddr=RELAY_GIADDR))
    _, ack = run(server, Client(mac(1)).renew(address), LOCAL_UNICAST, now=T0 + 300)
    assert ack is not None and ack.packet.message_type is MessageType.ACK
    assert ack.packet.options.lease_time == 600  # the relayed subnet's
    assert ack.packet.options.get(Opt.ROUTERS) == (RELAY_GIADDR,)


# -- relays (§4.1, RFC 3046) -------------------------------------------------------------


def test_relayed_discover_uses_giaddr_subnet_and_echoes_option_82(server: Server) -> None:
    info = RelayAgentInfo(((1, b"ge-0/0/1"), (2, b"switch-7")))
    client = Client(mac(1), giaddr=RELAY_GIADDR, relay_info=info)
    _, offer = run(server, client.discover())
    assert offer is not None
    assert offer.packet.yiaddr in server.config.subnets[1].pools[0]
    assert offer.packet.giaddr == RELAY_GIADDR
    assert (offer.destination, offer.port, offer.delivery) == (
        RELAY_GIADDR,
        SERVER_PORT,
        Delivery.RELAY,
    )
    assert offer.packet.options.codes()[-1] == Opt.RELAY_AGENT_INFO
    assert offer.packet.options.relay_agent_info == info
    _, nak = run(server, client.init_reboot(ip("192.0.2.150")))  # wrong network
    assert nak is not None and nak.packet.message_type is MessageType.NAK
    assert nak.delivery is Delivery.RELAY and nak.packet.flags & FLAG_BROADCAST
    assert nak.packet.options.relay_agent_info == info


def test_shared_network_spills_into_its_second_subnet(server: Server) -> None:
    addresses = [lease_for(server, Client(mac(n), giaddr=CAMPUS_GIADDR)) for n in range(5)]
    assert addresses[:3] == [ip("203.0.113.10"), ip("203.0.113.11"), ip("203.0.113.12")]
    assert addresses[3:] == [ip("203.0.113.140"), ip("203.0.113.141")]
    _, ack = run(server, Client(mac(4), giaddr=CAMPUS_GIADDR).renew(addresses[4]))
    assert ack is not None and ack.packet.options.get(Opt.SUBNET_MASK) == ip("255.255.255.128")
    assert ack.packet.options.get(Opt.ROUTERS) == (ip("203.0.113.129"),)


# -- DECLINE, RELEASE, INFORM ---------------------------------------------------------


def test_decline_quarantines_the_address(store: LeaseStore) -> None:
    server = make_server(store, decline_quarantine=600.0)
    client = Client(mac(1))
    address = lease_for(server, client)
    outcome, reply = run(server, client.decline(address), now=T0 + 1)
    assert reply is None and outcome.drop is None
    lease = store.get(address)
    assert lease is not None and lease.state is LeaseState.DECLINED
    _, offer = run(server, client.discover(requested_ip=address), now=T0 + 2)
    assert offer is not None and offer.packet.yiaddr != address
    _, nak = run(server, Client(mac(2)).select(address), now=T0 + 3)
    assert nak is not None and nak.packet.message_type is MessageType.NAK
    _, offer = run(server, Client(mac(3)).discover(requested_ip=address), now=T0 + 601)
    assert offer is not None and offer.packet.yiaddr == address


def test_decline_of_an_address_not_held_is_ignored(server: Server) -> None:
    address = lease_for(server, Client(mac(1)))
    run(server, Client(mac(2)).decline(address))
    lease = server.store.get(address)
    assert lease is not None and lease.state is LeaseState.BOUND


def test_release_frees_the_address_for_others(server: Server) -> None:
    client = Client(mac(1))
    address = lease_for(server, client)
    outcome, reply = run(server, client.release(address, ip("192.0.2.251")), now=T0 + 5)
    assert reply is None and outcome.drop is DropReason.NOT_FOR_US
    outcome, reply = run(server, client.release(address), now=T0 + 5)
    assert reply is None and outcome.drop is None
    lease = server.store.get(address)
    assert lease is not None and lease.state is LeaseState.RELEASED
    assert lease_for(server, Client(mac(2)), now=T0 + 6) == address


def test_inform_gets_parameters_but_no_lease(server: Server) -> None:
    request = Client(mac(1)).inform(ip("192.0.2.20"))
    outcome, ack = run(server, request, LOCAL_UNICAST)
    assert ack is not None and outcome.actions == (ack,)  # no store write
    packet = ack.packet
    assert packet.message_type is MessageType.ACK
    assert packet.yiaddr == ZERO and packet.ciaddr == ip("192.0.2.20")
    for code in (Opt.LEASE_TIME, Opt.RENEWAL_TIME, Opt.REBINDING_TIME):
        assert code not in packet.options
    assert packet.options.get(Opt.DNS_SERVERS) == (ip("192.0.2.53"), ip("192.0.2.54"))
    assert (ack.destination, ack.port, ack.delivery) == (ip("192.0.2.20"), 68, Delivery.UNICAST)
    assert list(server.store.leases()) == []


def test_inform_without_ciaddr_is_answered_by_broadcast(server: Server) -> None:
    _, ack = run(server, Client(mac(1)).inform(ZERO))
    assert ack is not None and ack.delivery is Delivery.BROADCAST
    assert ack.destination == ip("255.255.255.255")


# -- addressing (§4.1) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("giaddr", "ciaddr", "flags", "kind", "expected"),
    [
        ("198.51.100.1", "0.0.0.0", 0, MessageType.OFFER, ("198.51.100.1", 67, Delivery.RELAY)),
        ("198.51.100.1", "198.51.100.9", 0, MessageType.NAK, ("198.51.100.1", 67, Delivery.RELAY)),
        ("0.0.0.0", "192.0.2.9", 0, MessageType.ACK, ("192.0.2.9", 68, Delivery.UNICAST)),
        (
            "0.0.0.0",
            "192.0.2.9",
            0,
            MessageType.NAK,
            ("255.255.255.255", 68, Delivery.BROADCAST),
        ),
        (
            "0.0.0.0",
            "0.0.0.0",
            FLAG_BROADCAST,
            MessageType.OFFER,
            ("255.255.255.255", 68, Delivery.BROADCAST),
        ),
        ("0.0.0.0", "0.0.0.0", 0, MessageType.NAK, ("255.255.255.255", 68, Delivery.BROADCAST)),
        ("0.0.0.0", "0.0.0.0", 0, MessageType.OFFER, ("0.0.0.0", 68, Delivery.HARDWARE)),
    ],
)
def test_reply_addressing_table(
    giaddr: str,
    ciaddr: str,
    flags: int,
    kind: MessageType,
    expected: tuple[str, int, Delivery],
) -> None:
    request = Packet(op=1, xid=1, chaddr=mac(1), giaddr=ip(giaddr), ciaddr=ip(ciaddr), flags=flags)
    address, port, delivery = addressing(request, kind)
    assert (address, port, delivery) == (ip(expected[0]), expected[1], expected[2])


def test_hardware_unicast_offer_names_yiaddr_and_chaddr(server: Server) -> None:
    _, offer = run(server, Client(mac(7)).discover())
    assert offer is not None and offer.delivery is Delivery.HARDWARE
    assert offer.destination == offer.packet.yiaddr and offer.hwaddr == mac(7)
    assert offer.source == SERVER_ID and offer.interface == "eth0"
    _, offer = run(server, Client(mac(8), broadcast=True).discover())
    assert offer is not None and offer.delivery is Delivery.BROADCAST and offer.hwaddr is None


def test_reply_size_follows_option_57(server: Server) -> None:
    _, small = run(server, Client(mac(1)).discover())
    _, large = run(server, Client(mac(2)).discover(mms=1500))
    _, tiny = run(server, Client(mac(3)).discover(mms=300))
    assert small and large and tiny
    assert (small.max_size, large.max_size, tiny.max_size) == (548, 1472, 548)


# -- client identity ----------------------------------------------------------------


def test_client_id_and_hardware_address_are_distinct_identities(server: Server) -> None:
    plain = lease_for(server, Client(mac(1)))
    with_id = lease_for(server, Client(mac(1), client_id=b"\x00vm-42"))
    assert plain != with_id


def test_a_returning_client_gets_its_previous_address(server: Server) -> None:
    client = Client(mac(1))
    address = lease_for(server, client)
    lease_for(server, Client(mac(2)))
    run(server, client.release(address), now=T0 + 10)
    assert lease_for(server, client, now=T0 + 20) == address


# -- registrations -------------------------------------------------------------------


def _registered(store: LeaseStore) -> Server:
    hosts = Registrations(
        [
            Registration(ip("192.0.2.10"), mac=mac(50), hostname="printer"),
            Registration(ip("192.0.2.100"), client_id=b"\x00nas", hostname="nas"),  # in pool
        ]
    )
    return make_server(store, hosts)


def test_registered_host_gets_its_address_and_name(store: LeaseStore) -> None:
    server = _registered(store)
    printer = Client(mac(50))
    _, offer = run(server, printer.discover(requested_ip=ip("192.0.2.150")))
    assert offer is not None and offer.packet.yiaddr == ip("192.0.2.10")
    assert offer.packet.options.hostname == "printer"
    _, ack = run(server, printer.select(ip("192.0.2.10")))
    assert ack is not None and ack.packet.options.hostname == "printer"
    lease = store.get(ip("192.0.2.10"))
    assert lease is not None and lease.hostname == "printer"
    nas = Client(mac(51), client_id=b"\x00nas")
    assert lease_for(server, nas) == ip("192.0.2.100")


def test_registered_addresses_are_never_given_to_others(store: LeaseStore) -> None:
    server = _registered(store)
    stranger = Client(mac(60))
    assert lease_for(server, stranger) == ip("192.0.2.101")  # .100 is the NAS's
    for request in (
        stranger.select(ip("192.0.2.10")),
        stranger.init_reboot(ip("192.0.2.100")),
    ):
        _, nak = run(server, request, now=T0 + 1)
        assert nak is not None and nak.packet.message_type is MessageType.NAK
    _, offer = run(server, Client(mac(61)).discover(requested_ip=ip("192.0.2.100")))
    assert offer is not None and offer.packet.yiaddr not in (ip("192.0.2.10"), ip("192.0.2.100"))


def test_registration_added_over_a_dynamic_lease(store: LeaseStore) -> None:
    dynamic = make_server(store)
    squatter = Client(mac(70))
    held = lease_for(dynamic, squatter)  # 192.0.2.100
    server = make_server(
        store, Registrations([Registration(held, mac=mac(71), hostname="new-host")])
    )
    owner = Client(mac(71))
    interim = lease_for(server, owner, now=T0 + 5)
    assert interim != held  # still held by the squatter: a dynamic one meanwhile
    _, nak = run(server, squatter.renew(held), LOCAL_UNICAST, now=T0 + 1800)
    assert nak is not None and nak.packet.message_type is MessageType.NAK
    assert lease_for(server, owner, now=T0 + 3601) == held
    interim_lease = store.get(interim)  # one binding per client per link
    assert interim_lease is not None and interim_lease.state is LeaseState.RELEASED


# -- allocation policy and races ------------------------------------------------------


def test_allocator_restricts_new_addresses_to_our_half(store: LeaseStore) -> None:
    server = Server(config(), store, allocator=AddressParity(1))
    addresses = [lease_for(server, Client(mac(n))) for n in range(4)]
    assert all(int(a) % 2 == 1 for a in addresses)
    outcome, reply = run(server, Client(mac(9)).renew(ip("192.0.2.150")), LOCAL_UNICAST)
    assert reply is None and outcome.drop is DropReason.NOT_OURS  # the partner's to answer
    # a SELECTING request for an address of the partner's (it offered it under the
    # same server id, the VIP, in a split brain) gets no NAK from us either
    outcome, reply = run(server, Client(mac(10)).select(ip("192.0.2.150")))
    assert reply is None and outcome.drop is DropReason.NOT_OURS
    assert store.get(ip("192.0.2.150")) is None


def test_a_lost_race_sends_no_ack(tmp_path: Path) -> None:
    """Two servers on one database: the one whose commit fails never ACKs."""
    path = tmp_path / "shared.db"
    one, two = SQLiteStore(path), SQLiteStore(path)
    first, second = make_server(one), make_server(two)
    a, b = Client(mac(1)), Client(mac(2))
    outcome_a = first.handle(a.select(ip("192.0.2.120")), LOCAL, T0)
    outcome_b = second.handle(b.select(ip("192.0.2.120")), LOCAL, T0)
    assert outcome_a.reply is not None and outcome_b.reply is not None  # both would ACK
    assert apply(outcome_a, one) is not None
    with pytest.raises(LeaseConflict):
        apply(outcome_b, two)
    lease = one.get(ip("192.0.2.120"))
    assert lease is not None and lease.client == client_key(None, 1, mac(1))
    one.close()
    two.close()


def test_a_lost_race_sends_no_ack_on_postgresql(pg_dsn: str) -> None:
    """Two servers on one PostgreSQL database: the one whose commit fails never ACKs."""
    from dhcp.pg_store import PgStore

    one, two = PgStore(pg_dsn), PgStore(pg_dsn)
    first, second = make_server(one), make_server(two)
    a, b = Client(mac(1)), Client(mac(2))
    outcome_a = first.handle(a.select(ip("192.0.2.120")), LOCAL, T0)
    outcome_b = second.handle(b.select(ip("192.0.2.120")), LOCAL, T0)
    assert outcome_a.reply is not None and outcome_b.reply is not None  # both would ACK
    assert apply(outcome_a, one) is not None
    with pytest.raises(LeaseConflict):
        apply(outcome_b, two)
    lease = two.get(ip("192.0.2.120"))
    assert lease is not None and lease.client == client_key(None, 1, mac(1))
    one.close()
    two.close()


def test_server_identifier_is_the_configured_vip(store: LeaseStore) -> None:
    server = make_server(store, server_id=ip("192.0.2.249"))
    _, offer = run(server, Client(mac(1)).discover())
    assert offer is not None and offer.packet.options.server_id == ip("192.0.2.249")
    assert offer.source == ip("192.0.2.249")


# -- probing before an offer ------------------------------------------------------------


def test_probe_runs_before_a_new_offer_and_a_silent_address_is_offered(store: LeaseStore) -> None:
    server = make_server(store, probe=True)
    client = Client(mac(1))
    outcome = server.handle(client.discover(), LOCAL, T0)
    reserve, probe = outcome.actions
    assert isinstance(reserve, Reserve) and outcome.probe is probe and outcome.reply is None
    assert probe.address == ip("192.0.2.100") and probe.reply.packet.yiaddr == probe.address
    address = lease_for(server, client, now=T0 + 1)
    _, offer = run(server, client.discover(), now=T0 + 2)  # its own bound address: no probe
    assert server.handle(client.discover(), LOCAL, T0 + 2).probe is None
    assert offer is not None and offer.packet.yiaddr == address


def test_an_answered_probe_quarantines_and_offers_another(store: LeaseStore) -> None:
    server = make_server(store, probe=True, decline_quarantine=600.0)
    squatted = frozenset({ip("192.0.2.100"), ip("192.0.2.101")})
    _, offer = run(server, Client(mac(1)).discover(), answering=squatted)
    assert offer is not None and offer.packet.yiaddr == ip("192.0.2.102")
    for address in squatted:
        lease = store.get(address)
        assert lease is not None and lease.state is LeaseState.DECLINED
    _, offer = run(server, Client(mac(2)).discover(), now=T0 + 1)
    assert offer is not None and offer.packet.yiaddr == ip("192.0.2.103")


def test_option_82_from_a_layer2_relay_is_echoed_without_giaddr(server: Server) -> None:
    info = RelayAgentInfo(((1, b"port-3"),))
    _, offer = run(server, Client(mac(1), relay_info=info).discover())
    assert offer is not None and offer.packet.options.relay_agent_info == info
    assert offer.packet.options.codes()[-1] == Opt.RELAY_AGENT_INFO


def test_batch_of_requests_is_handled_in_order_with_one_commit(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "batch.db")
    server = make_server(store)
    clients = [Client(mac(n)) for n in range(10)]
    offers = server.handle_batch([(c.discover(), LOCAL) for c in clients], T0)
    addresses = [h.result.packet.yiaddr for h in offers if isinstance(h.result, Reply)]
    assert len(set(addresses)) == 10  # each saw the reservations before it
    stranger = Client(mac(99))
    requests = [(c.select(a), LOCAL) for c, a in zip(clients, addresses, strict=True)]
    requests.append((stranger.select(addresses[0]), LOCAL))
    acks = server.handle_batch(requests, T0 + 1)
    kinds = [h.result.packet.message_type for h in acks if isinstance(h.result, Reply)]
    assert kinds == [MessageType.ACK] * 10 + [MessageType.NAK]
    reopened = SQLiteStore(tmp_path / "batch.db")
    assert sum(1 for lease in reopened.leases() if lease.state is LeaseState.BOUND) == 10
    reopened.close()
    store.close()


def test_a_newly_registered_host_is_moved_to_its_address_at_renewal(store: LeaseStore) -> None:
    host = Client(mac(72))
    dynamic = lease_for(make_server(store), host)
    registered = ip("192.0.2.11")
    server = make_server(store, Registrations([Registration(registered, mac=mac(72))]))
    for request, ingress in (
        (host.renew(dynamic), LOCAL_UNICAST),
        (host.init_reboot(dynamic), LOCAL),
        (host.select(dynamic), LOCAL),
    ):
        _, nak = run(server, request, ingress, now=T0 + 100)
        assert nak is not None and nak.packet.message_type is MessageType.NAK
    assert lease_for(server, host, now=T0 + 101) == registered
    old = store.get(dynamic)
    assert old is not None and old.state is LeaseState.RELEASED


def test_a_renewal_carrying_our_server_id_is_treated_as_renewing(server: Server) -> None:
    client = Client(mac(1))
    address = lease_for(server, client)
    request = client.packet(MessageType.REQUEST, ciaddr=address, extra={Opt.SERVER_ID: SERVER_ID})
    _, ack = run(server, request, LOCAL_UNICAST, now=T0 + 1800)
    assert ack is not None and ack.packet.message_type is MessageType.ACK
    assert ack.delivery is Delivery.UNICAST
    other = Client(mac(2)).packet(
        MessageType.REQUEST, ciaddr=address, extra={Opt.SERVER_ID: SERVER_ID}
    )
    _, nak = run(server, other, LOCAL_UNICAST, now=T0 + 1801)
    assert nak is not None and nak.packet.message_type is MessageType.NAK
