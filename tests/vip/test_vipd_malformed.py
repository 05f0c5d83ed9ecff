"""Malformed and foreign VRRP packets sent at running vipd nodes change nothing.

From the client namespace a raw socket (IP_HDRINCL, spoofed source
192.0.2.50) floods 224.0.0.18 with packets that would each move a VIP if they
were believed (priority 254 for the master's VRID, priority 0 for the
backup's): bad checksum, TTL 254, another VRID, a different VIP list,
truncated. A capture socket in the client namespace timestamps the master's
adverts: its rhythm stays one interval, and no node changes state.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
import statistics
import struct
import threading
import time

import pytest

from imapha.lab import Lab
from imapha.vip.packet import Advertisement, encode
from tests.support import short_tmp, wait_for

from .vipd_lab import VIP1, VIP2, cluster, who

pytestmark = pytest.mark.netns

GROUP = ipaddress.IPv4Address("224.0.0.18")
FAKE = ipaddress.IPv4Address("192.0.2.50")
A = "192.0.2.11"
V1 = ipaddress.IPv4Address(VIP1)
V2 = ipaddress.IPv4Address(VIP2)


def ip_packet(payload: bytes, ttl: int = 255) -> bytes:
    # Version/IHL, TOS, total length, id, frag, TTL, protocol 112, checksum (kernel), src, dst.
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, ttl, 112, 0,
                       FAKE.packed, GROUP.packed) + payload


def bad_packets() -> dict[str, bytes]:
    good = encode(Advertisement(51, 254, 10, (V1,)), FAKE, GROUP)
    resign_v2 = encode(Advertisement(52, 0, 10, (V2,)), FAKE, GROUP)
    flip = bytes([good[6] ^ 0xFF]) + good[7:]
    return {
        "bad_checksum": ip_packet(good[:6] + flip),
        "bad_checksum_resign": ip_packet(resign_v2[:6] + bytes([resign_v2[6] ^ 0x55])
                                         + resign_v2[7:]),
        "bad_ttl": ip_packet(good, ttl=254),
        "other_vrid": ip_packet(encode(Advertisement(99, 254, 10, (V1,)), FAKE, GROUP)),
        "address_mismatch": ip_packet(encode(Advertisement(51, 254, 10,
                                                           (ipaddress.IPv4Address("192.0.2.199"),)),
                                             FAKE, GROUP)),
        "truncated": ip_packet(good[:6]),
    }


def test_bad_packets_change_neither_state_nor_advert_rhythm(lab: Lab) -> None:
    with short_tmp() as root, cluster(lab, root) as cl:
        cl.a.start()
        cl.b.start()
        wait_for(lambda: who(cl.client, VIP1, 0.3) == "a" and who(cl.client, VIP2, 0.3) == "b",
                 10, "homes")
        before = {n.name: [v["transitions"] for v in n.status()["vips"]] for n in cl.nodes()}
        with cl.client.entered():
            capture = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
            capture.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
            ifindex = socket.if_nametoindex("eth0")
            capture.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                               GROUP.packed + bytes(4) + struct.pack("@i", ifindex))
            sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            sender.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
        capture.settimeout(0.2)
        stamps: list[float] = []
        stop = threading.Event()

        def listen() -> None:
            while not stop.is_set():
                try:
                    data = capture.recv(2048)
                except TimeoutError:
                    continue
                # IP source is a, VRRP VRID 51, priority > 0: a periodic advert of the master.
                if socket.inet_ntoa(data[12:16]) == A and data[21] == 51 and data[22] > 0:
                    stamps.append(time.monotonic())

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        packets = bad_packets()
        try:
            time.sleep(1.0)  # a second of the undisturbed rhythm
            flood_start = time.monotonic()
            sent = 0
            for _ in range(400):  # 2 s at 200 rounds/s, every kind each round
                for packet in packets.values():
                    sender.sendto(packet, (str(GROUP), 0))
                    sent += 1
                time.sleep(0.005)
            flood_end = time.monotonic()
            time.sleep(0.5)
        finally:
            stop.set()
            listener.join(5)
            capture.close()
            sender.close()
        assert sent == 400 * len(packets)
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        during = [b - a for a, b in itertools.pairwise(stamps)
                  if flood_start <= a and b <= flood_end]
        assert len(during) >= 15, stamps
        assert max(gaps) < 0.16, gaps
        assert min(gaps) > 0.04, gaps
        assert abs(statistics.median(during) - 0.1) < 0.01, during
        after = {n.name: [v["transitions"] for v in n.status()["vips"]] for n in cl.nodes()}
        assert after == before
        assert cl.a.vip_states() == {"v1": "master", "v2": "backup"}
        assert cl.b.vip_states() == {"v1": "backup", "v2": "master"}
        for node in cl.nodes():
            dropped = node.status()["dropped"]
            for reason in ("bad_checksum", "bad_ttl", "other_vrid", "address_mismatch",
                           "too_short"):
                assert dropped.get(reason, 0) >= 300, (node.name, dropped)
