"""Probes shared by the lab tests: bounded waits, multicast send/receive, TCP echo."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

from imapha.lab import Host

VRRP_GROUP = "224.0.0.18"
VRRP_PROTO = 112


def eventually(check: Callable[[], bool], timeout: float = 5.0, interval: float = 0.05) -> bool:
    """True as soon as *check* is; False if it is still false after *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def multicast_listener(host: Host) -> socket.socket:
    """A raw IP-protocol-112 socket in *host* joined to 224.0.0.18, as a VRRP speaker has."""
    sock = host.socket(socket.AF_INET, socket.SOCK_RAW, VRRP_PROTO)
    membership = socket.inet_aton(VRRP_GROUP) + socket.inet_aton(host.address)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    sock.settimeout(0.2)
    return sock


def send_multicast(host: Host) -> bytes:
    """Send one protocol-112 datagram to 224.0.0.18 with TTL 255; return its payload."""
    payload = b"imapha-lab " + os.urandom(8).hex().encode()
    with host.socket(socket.AF_INET, socket.SOCK_RAW, VRRP_PROTO) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(host.address))
        sock.sendto(payload, (VRRP_GROUP, 0))
    return payload


def received(sock: socket.socket, payload: bytes, timeout: float = 1.0) -> bool:
    """True if a datagram ending in *payload* arrives on raw *sock* within *timeout*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(2048)
        except TimeoutError:
            continue
        if data.endswith(payload):  # raw sockets deliver the IP header too
            return True
    return False


def tcp_echo(client: Host, address: str, port: int, timeout: float = 3.0) -> bool:
    """True if a TCP echo round trip from *client* to *address*:*port* works."""
    try:
        sock = client.connect(address, port, timeout=timeout)
    except OSError:
        return False
    with sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(b"ping\n")
            return sock.recv(16) == b"ping\n"
        except OSError:
            return False


ECHO_SERVER = """
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1])))
srv.listen(16)
print("listening", flush=True)
while True:
    conn, _ = srv.accept()
    with conn:
        conn.sendall(conn.recv(64))
"""
