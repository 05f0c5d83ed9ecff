"""Many clients doing random DHCP things over time: no address is ever leased twice.

A hypothesis state machine drives the real logic over the real SQLite store
(and the memory store, for more examples per second). Each simulated client
remembers what the server told it, as a real client would: an ACK makes it
believe it holds the address until the lease ends; a NAK, a RELEASE or a
DECLINE ends the belief. Clients move between a local link and a relayed
shared network, and some misbehave: they claim addresses nobody gave them, by
INIT-REBOOT or by a unicast renewal. The invariant is what a
network operator cares about: at no moment do two clients believe they hold
the same address, every belief is backed by a BOUND record in the store, and
a registered address is only ever held by its own host.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dhcp.logic import Ingress, Reply, Server, apply
from dhcp.memory_store import MemoryStore
from dhcp.network import Pool, ServerConfig, Subnet
from dhcp.options import MessageType
from dhcp.packet import Packet
from dhcp.registrations import Registration, Registrations
from dhcp.sqlite_store import SQLiteStore
from dhcp.store import LeaseState, LeaseStore, client_key
from tests.dhcp.lab import SERVER_ID, T0, Client, ip, mac

N_CLIENTS = 8
POOL = Pool(ip("192.0.2.100"), ip("192.0.2.105"))
# A relayed shared network of two small subnets ("campus"), behind giaddr 203.0.113.1.
CAMPUS_POOLS = (
    Pool(ip("203.0.113.10"), ip("203.0.113.11")),
    Pool(ip("203.0.113.140"), ip("203.0.113.141")),
)
CAMPUS_GIADDR = ip("203.0.113.1")
REGISTERED = {0: ip("192.0.2.100"), 1: ip("192.0.2.20")}  # one inside the pool, one outside
LOCAL = Ingress("eth0", (IPv4Interface("192.0.2.2/24"),), broadcast=True)
UNICAST = Ingress("eth0", (IPv4Interface("192.0.2.2/24"),), broadcast=False)
CLAIMABLE = [
    *POOL,
    *CAMPUS_POOLS[0],
    *CAMPUS_POOLS[1],
    ip("192.0.2.20"),
    ip("192.0.2.30"),
    ip("198.51.100.7"),
]

clients = st.integers(0, N_CLIENTS - 1)


class Fleet(RuleBasedStateMachine):
    use_sqlite = True

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="dhcp-fleet-"))
        self.store: LeaseStore = (
            SQLiteStore(self.dir / "leases.db") if self.use_sqlite else MemoryStore()
        )
        subnets = (
            Subnet(IPv4Network("192.0.2.0/24"), pools=(POOL,), lease_time=300),
            Subnet(
                IPv4Network("203.0.113.0/25"),
                pools=(CAMPUS_POOLS[0],),
                lease_time=200,
                shared_network="campus",
            ),
            Subnet(
                IPv4Network("203.0.113.128/25"),
                pools=(CAMPUS_POOLS[1],),
                lease_time=400,
                shared_network="campus",
            ),
        )
        config = ServerConfig(SERVER_ID, subnets, offer_hold=30.0, decline_quarantine=500.0)
        hosts = Registrations(
            [
                Registration(REGISTERED[0], mac=mac(0)),
                Registration(REGISTERED[1], client_id=b"\x00host-1"),
            ]
        )
        self.server = Server(config, self.store, hosts)
        self.clients = [
            Client(mac(n), client_id=b"\x00host-1" if n == 1 else None) for n in range(N_CLIENTS)
        ]
        self.now = T0
        self.offers: dict[int, IPv4Address] = {}
        self.beliefs: dict[int, tuple[IPv4Address, float]] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _send(self, n: int, packet: Packet, ingress: Ingress = LOCAL) -> None:
        outcome = self.server.handle(packet, ingress, self.now)
        reply = apply(outcome, self.store)  # a LeaseConflict here would fail the test
        if not isinstance(reply, Reply):
            return
        answer = reply.packet
        if answer.message_type is MessageType.OFFER:
            self.offers[n] = answer.yiaddr
        elif answer.message_type is MessageType.ACK and answer.yiaddr != IPv4Address(0):
            lease_time = answer.options.lease_time
            assert lease_time is not None
            self.beliefs[n] = (answer.yiaddr, self.now + lease_time)
        elif answer.message_type is MessageType.NAK:
            self.beliefs.pop(n, None)

    @rule(n=clients)
    def discover(self, n: int) -> None:
        self._send(n, self.clients[n].discover())

    @rule(n=clients, ours=st.booleans())
    def select(self, n: int, ours: bool) -> None:
        offer = self.offers.pop(n, None)
        if offer is not None:
            server_id = SERVER_ID if ours else ip("192.0.2.251")
            self._send(n, self.clients[n].select(offer, server_id))

    @rule(n=clients)
    def init_reboot(self, n: int) -> None:
        if n in self.beliefs:
            self._send(n, self.clients[n].init_reboot(self.beliefs[n][0]))

    @rule(n=clients, unicast=st.booleans())
    def renew(self, n: int, unicast: bool) -> None:
        """RENEWING goes straight to the server (no relay); REBINDING is broadcast."""
        if n in self.beliefs:
            client = self.clients[n]
            if unicast:
                client = dataclasses.replace(client, giaddr=IPv4Address(0))
            self._send(n, client.renew(self.beliefs[n][0]), UNICAST if unicast else LOCAL)

    @rule(n=clients)
    def move(self, n: int) -> None:
        """The client's cable moves to the other link; it keeps what it believes."""
        client = self.clients[n]
        client.giaddr = CAMPUS_GIADDR if client.giaddr == IPv4Address(0) else IPv4Address(0)
        self.offers.pop(n, None)

    @rule(n=clients, address=st.sampled_from(CLAIMABLE), reboot=st.booleans())
    def claim(self, n: int, address: IPv4Address, reboot: bool) -> None:
        """A confused or hostile client asks for an address nobody gave it."""
        if n in self.beliefs:
            return
        packet = self.clients[n].init_reboot(address) if reboot else self.clients[n].renew(address)
        self._send(n, packet, LOCAL if reboot else UNICAST)

    @rule(n=clients)
    def release(self, n: int) -> None:
        if n in self.beliefs:
            self._send(n, self.clients[n].release(self.beliefs.pop(n)[0]))

    @rule(n=clients)
    def decline(self, n: int) -> None:
        if n in self.beliefs:
            self._send(n, self.clients[n].decline(self.beliefs.pop(n)[0]))

    @rule(seconds=st.sampled_from([1, 10, 29, 31, 150, 299, 301, 501]))
    def wait(self, seconds: int) -> None:
        self.now += seconds
        self.beliefs = {n: b for n, b in self.beliefs.items() if b[1] > self.now}

    @rule()
    def sweep(self) -> None:
        self.store.expire(self.now)

    @invariant()
    def no_address_is_held_by_two_clients(self) -> None:
        held = [address for address, _ in self.beliefs.values()]
        assert len(held) == len(set(held)), self.beliefs

    @invariant()
    def every_belief_is_a_bound_record(self) -> None:
        for n, (address, expires) in self.beliefs.items():
            lease = self.store.get(address)
            assert lease is not None and lease.state is LeaseState.BOUND
            client = self.clients[n]
            assert lease.client == client_key(client.client_id, 1, client.hw)
            assert lease.expires == expires

    @invariant()
    def registered_addresses_only_go_to_their_hosts(self) -> None:
        for n, (address, _) in self.beliefs.items():
            for owner, registered in REGISTERED.items():
                if address == registered:
                    assert n == owner
            if n not in REGISTERED:
                assert any(address in pool for pool in (POOL, *CAMPUS_POOLS))


class MemoryFleet(Fleet):
    use_sqlite = False


TestFleetOnSQLite = Fleet.TestCase
TestFleetOnSQLite.settings = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFleetInMemory = MemoryFleet.TestCase
TestFleetInMemory.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
