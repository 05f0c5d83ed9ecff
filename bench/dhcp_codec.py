"""DHCP benchmarks: codec rate against dpkt, and in-process exchanges per second.

1. Decode + encode of a DISCOVER/REQUEST mix (dhclient's and udhcpc's shapes),
   imapha's typed codec against dpkt's untyped one, in the same run.
2. Whole DISCOVER/OFFER/REQUEST/ACK exchanges through the RFC 2131 logic, the
   codec and the SQLite store (WAL, synchronous=FULL: every ACK waits for an
   fsync), against the same logic over the in-memory store: the ratio is what
   durability costs. No sockets: this is the ceiling of the I/O layer.

Run: ``.venv/bin/python -m bench.dhcp_codec`` (about 13 s).
"""

from __future__ import annotations

import itertools
import shutil
import struct
import tempfile
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import dpkt

from bench.common import Result, rate, report
from dhcp.logic import Ingress, Reply, Server, apply
from dhcp.memory_store import MemoryStore
from dhcp.network import Pool, ServerConfig, Subnet
from dhcp.options import MessageType, Opt, Options, OptionValue
from dhcp.packet import BOOTREQUEST, Packet, decode, encode
from dhcp.sqlite_store import SQLiteStore
from dhcp.store import LeaseStore, client_key

MAC = bytes.fromhex("525400a1b2c3")
SERVER_ID = IPv4Address("198.51.100.2")
INGRESS = Ingress("eth0", (IPv4Interface("198.51.100.2/24"),))
SECONDS = 2.5


def sample_messages() -> list[bytes]:
    dhclient = dpkt.dhcp.DHCP(
        op=1,
        xid=0x3903F326,
        chaddr=MAC,
        opts=[
            (53, b"\x01"),
            (50, bytes([198, 51, 100, 44])),
            (12, b"ws-17"),
            (55, bytes([1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42])),
        ],
    )
    udhcpc = dpkt.dhcp.DHCP(
        op=1,
        xid=0x7A6B1C2D,
        chaddr=MAC,
        opts=[
            (53, b"\x03"),
            (61, b"\x01" + MAC),
            (50, bytes([198, 51, 100, 45])),
            (54, SERVER_ID.packed),
            (57, struct.pack("!H", 576)),
            (55, bytes([1, 3, 6, 12, 15, 28, 42])),
            (60, b"udhcp 1.35.0"),
            (12, b"sensor"),
        ],
    )
    return [bytes(dhclient).ljust(300, b"\0"), bytes(udhcpc)]


def codec_rates() -> Result:
    messages = itertools.cycle(sample_messages())

    def ours() -> None:
        encode(decode(next(messages)))

    def theirs() -> None:
        bytes(dpkt.dhcp.DHCP(next(messages)))

    return Result(
        "dhcp codec decode+encode",
        rate(ours, SECONDS),
        rate(theirs, SECONDS),
        "msg/s",
        "dpkt",
    )


BATCH = 32


def batch_loop(store: LeaseStore) -> Callable[[], None]:
    """One call = BATCH clients' exchanges: one group commit for the DISCOVERs, one for
    the REQUESTs (the ACKs would be sent after each batch commits)."""
    server = _server(store)
    clients = itertools.cycle(range(200))
    clock = itertools.count(1_700_000_000)

    def step() -> None:
        ns = [next(clients) for _ in range(BATCH)]
        now = float(next(clock))
        discovers = [(decode(_request(n, MessageType.DISCOVER, {})), INGRESS) for n in ns]
        offers = server.handle_batch(discovers, now)
        requests = []
        for n, handled in zip(ns, offers, strict=True):
            assert isinstance(handled.result, Reply)
            address = decode(encode(handled.result.packet)).yiaddr
            extra: dict[int, OptionValue] = {Opt.SERVER_ID: SERVER_ID, Opt.REQUESTED_IP: address}
            requests.append((decode(_request(n, MessageType.REQUEST, extra)), INGRESS))
        for handled in server.handle_batch(requests, now):
            assert isinstance(handled.result, Reply)
            encode(handled.result.packet)
        with store.batch():
            for n in ns[::4]:
                for lease in store.by_client(client_key(None, 1, hw_of(n))):
                    store.release(lease.address, lease.client, now)

    return step


def _server(store: LeaseStore) -> Server:
    subnet = Subnet(
        IPv4Network("198.51.100.0/24"),
        pools=(Pool(IPv4Address("198.51.100.10"), IPv4Address("198.51.100.250")),),
        routers=(IPv4Address("198.51.100.1"),),
        dns_servers=(IPv4Address("198.51.100.53"),),
    )
    return Server(ServerConfig(SERVER_ID, (subnet,)), store)


def _request(n: int, kind: MessageType, extra: dict[int, OptionValue]) -> bytes:
    opts: dict[int, OptionValue] = {Opt.MESSAGE_TYPE: kind, **extra}
    opts[Opt.PARAMETER_REQUEST_LIST] = (1, 3, 6, 15, 28)
    return encode(Packet(op=BOOTREQUEST, xid=n, chaddr=hw_of(n), options=Options.of(opts)))


def hw_of(n: int) -> bytes:
    return bytes.fromhex("525400") + n.to_bytes(3, "big")


def exchange_loop(store: LeaseStore) -> Callable[[], None]:
    """One call = one client's DISCOVER/OFFER/REQUEST/ACK, bytes to bytes, then RELEASE."""
    server = _server(store)
    clients = itertools.cycle(range(200))
    clock = itertools.count(1_700_000_000)
    request = _request

    def step() -> None:
        n = next(clients)
        now = float(next(clock))
        offer = apply(
            server.handle(decode(request(n, MessageType.DISCOVER, {})), INGRESS, now), store
        )
        assert isinstance(offer, Reply)
        address = decode(encode(offer.packet, offer.max_size)).yiaddr
        wire = request(
            n, MessageType.REQUEST, {Opt.SERVER_ID: SERVER_ID, Opt.REQUESTED_IP: address}
        )
        ack = apply(server.handle(decode(wire), INGRESS, now), store)
        assert isinstance(ack, Reply) and ack.packet.message_type is MessageType.ACK
        encode(ack.packet, ack.max_size)
        if n % 4 == 0:
            store.release(address, client_key(None, 1, hw_of(n)), now)

    return step


def _sqlite_rate(parent: str | None, batch: bool = False) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="dhcp-bench-", dir=parent))
    try:
        store = SQLiteStore(tmp / "leases.db")
        try:
            if batch:
                return BATCH * rate(batch_loop(store), SECONDS, max_calls=10_000)
            return rate(exchange_loop(store), SECONDS, max_calls=200_000)
        finally:
            store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def exchange_rates() -> list[Result]:
    memory = rate(exchange_loop(MemoryStore()), SECONDS, max_calls=200_000)
    results = [
        Result(
            "dhcp exchanges in-process (logic + codec + SQLite on disk, WAL, synchronous=FULL)",
            _sqlite_rate(None),
            memory,
            "exchanges/s",
            "same logic on the memory store",
        )
    ]
    results.append(
        Result(
            f"dhcp exchanges in-process (SQLite on disk, group commit of {BATCH})",
            _sqlite_rate(None, batch=True),
            memory,
            "exchanges/s",
            "same logic on the memory store",
        )
    )
    if Path("/dev/shm").is_dir():  # fsync is free on tmpfs: the CPU cost of SQLite alone
        results.append(
            Result(
                "dhcp exchanges in-process (logic + codec + SQLite on tmpfs)",
                _sqlite_rate("/dev/shm"),
                memory,
                "exchanges/s",
                "same logic on the memory store",
            )
        )
    return results


def main() -> None:
    report(codec_rates())
    for result in exchange_rates():
        report(result)


if __name__ == "__main__":
    main()
