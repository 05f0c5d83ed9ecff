"""A small configured server and client-side packet builders for the logic tests."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from dhcp.logic import Ingress, Outcome, Probe, Reply, Server, apply
from dhcp.network import Pool, ServerConfig, Subnet
from dhcp.options import MessageType, Opt, Options, OptionValue, RelayAgentInfo
from dhcp.packet import BOOTREQUEST, FLAG_BROADCAST, ZERO, Packet, decode, encode
from dhcp.registrations import Registrations
from dhcp.store import LeaseStore

ip = IPv4Address
SERVER_ID = ip("192.0.2.250")  # the VIP
LOCAL = Ingress("eth0", (IPv4Interface("192.0.2.2/24"),), broadcast=True)
LOCAL_UNICAST = Ingress("eth0", (IPv4Interface("192.0.2.2/24"),), broadcast=False)
RELAY_GIADDR = ip("198.51.100.1")
CAMPUS_GIADDR = ip("203.0.113.1")
T0 = 1_700_000_000.0

LOCAL_NET = Subnet(
    IPv4Network("192.0.2.0/24"),
    pools=(Pool(ip("192.0.2.100"), ip("192.0.2.199")),),
    routers=(ip("192.0.2.1"),),
    dns_servers=(ip("192.0.2.53"), ip("192.0.2.54")),
    domain_name="lab.example",
    lease_time=3600,
    max_lease_time=7200,
)
RELAYED_NET = Subnet(
    IPv4Network("198.51.100.0/24"),
    pools=(Pool(ip("198.51.100.10"), ip("198.51.100.20")),),
    routers=(RELAY_GIADDR,),
    lease_time=600,
)
CAMPUS_A = Subnet(
    IPv4Network("203.0.113.0/25"),
    pools=(Pool(ip("203.0.113.10"), ip("203.0.113.12")),),
    routers=(CAMPUS_GIADDR,),
    shared_network="campus",
)
CAMPUS_B = Subnet(
    IPv4Network("203.0.113.128/25"),
    pools=(Pool(ip("203.0.113.140"), ip("203.0.113.150")),),
    routers=(ip("203.0.113.129"),),
    shared_network="campus",
)
SUBNETS = (LOCAL_NET, RELAYED_NET, CAMPUS_A, CAMPUS_B)


def config(**overrides: object) -> ServerConfig:
    values: dict[str, object] = {"server_id": SERVER_ID, "subnets": SUBNETS}
    values.update(overrides)
    return ServerConfig(**values)  # type: ignore[arg-type]


def mac(n: int) -> bytes:
    return bytes.fromhex("525400") + n.to_bytes(3, "big")


@dataclass
class Client:
    """Builds the requests one client sends (RFC 2131 §4.4), as it would on the wire."""

    hw: bytes
    client_id: bytes | None = None
    giaddr: IPv4Address = ZERO
    relay_info: RelayAgentInfo | None = None
    xid: int = 0x1000
    broadcast: bool = False

    def packet(
        self,
        kind: MessageType,
        *,
        ciaddr: IPv4Address = ZERO,
        extra: dict[int, OptionValue] | None = None,
    ) -> Packet:
        self.xid += 1
        opts: dict[int, OptionValue] = {Opt.MESSAGE_TYPE: kind}
        if self.client_id is not None:
            opts[Opt.CLIENT_ID] = self.client_id
        opts.update(extra or {})
        opts.setdefault(Opt.PARAMETER_REQUEST_LIST, (1, 3, 6, 15, 28, 42))
        if self.relay_info is not None:
            opts[Opt.RELAY_AGENT_INFO] = self.relay_info
        packet = Packet(
            op=BOOTREQUEST,
            xid=self.xid,
            chaddr=self.hw,
            flags=FLAG_BROADCAST if self.broadcast else 0,
            ciaddr=ciaddr,
            giaddr=self.giaddr,
            hops=1 if self.giaddr != ZERO else 0,
            options=Options.of(opts),
        )
        return decode(encode(packet))  # what the server really receives

    def discover(self, **extra: OptionValue) -> Packet:
        return self.packet(MessageType.DISCOVER, extra=_named(extra))

    def select(self, address: IPv4Address, server_id: IPv4Address = SERVER_ID) -> Packet:
        return self.packet(
            MessageType.REQUEST,
            extra={Opt.SERVER_ID: server_id, Opt.REQUESTED_IP: address},
        )

    def init_reboot(self, address: IPv4Address) -> Packet:
        return self.packet(MessageType.REQUEST, extra={Opt.REQUESTED_IP: address})

    def renew(self, address: IPv4Address) -> Packet:
        return self.packet(MessageType.REQUEST, ciaddr=address)

    def release(self, address: IPv4Address, server_id: IPv4Address = SERVER_ID) -> Packet:
        return self.packet(MessageType.RELEASE, ciaddr=address, extra={Opt.SERVER_ID: server_id})

    def decline(self, address: IPv4Address) -> Packet:
        return self.packet(
            MessageType.DECLINE,
            extra={Opt.SERVER_ID: SERVER_ID, Opt.REQUESTED_IP: address},
        )

    def inform(self, address: IPv4Address) -> Packet:
        return self.packet(MessageType.INFORM, ciaddr=address)


_NAMES = {"requested_ip": Opt.REQUESTED_IP, "lease_time": Opt.LEASE_TIME, "mms": 57}


def _named(extra: dict[str, OptionValue]) -> dict[int, OptionValue]:
    return {_NAMES[name]: value for name, value in extra.items()}


def run(
    server: Server,
    packet: Packet,
    ingress: Ingress = LOCAL,
    now: float = T0,
    answering: frozenset[IPv4Address] = frozenset(),
) -> tuple[Outcome, Reply | None]:
    """Handle one request and execute its actions, as the I/O layer does.

    A probe is answered when its address is in ``answering`` (a device sits
    there), else it meets silence and the offer goes out.
    """
    outcome = server.handle(packet, ingress, now)
    result = apply(outcome, server.store)
    for _ in range(100):
        if not isinstance(result, Probe):
            break
        if result.address not in answering:
            result = result.reply
            break
        outcome = server.address_in_use(result, now)
        result = apply(outcome, server.store)
    assert not isinstance(result, Probe)
    if result is not None:
        # the reply must survive the wire in the size the client accepts
        assert decode(encode(result.packet, result.max_size)) == result.packet
    return outcome, result


def lease_for(
    server: Server, client: Client, ingress: Ingress = LOCAL, now: float = T0
) -> IPv4Address:
    """A full DISCOVER/OFFER/REQUEST/ACK exchange; returns the bound address."""
    _, offer = run(server, client.discover(), ingress, now)
    assert offer is not None
    _, ack = run(server, client.select(offer.packet.yiaddr), ingress, now)
    assert ack is not None and ack.packet.message_type is MessageType.ACK
    return ack.packet.yiaddr


def make_server(
    store: LeaseStore,
    registrations: Registrations | None = None,
    **overrides: object,
) -> Server:
    return Server(config(**overrides), store, registrations)
