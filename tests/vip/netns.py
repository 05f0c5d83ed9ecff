"""Private fixture: two network namespaces joined by a veth pair, and setns().

Sockets (raw, packet, netlink) belong to the namespace they were created in, so
a test creates them inside :func:`inside` and uses them from anywhere after.
Names carry a random per-run tag; teardown deletes both namespaces (and so the
veth pair) whatever happened.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextmanager
def inside(netns: str) -> Iterator[None]:
    """Run the block with this thread in the named network namespace."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


def ip(*args: str) -> str:
    done = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=20, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Side:
    netns: str
    ifname: str
    address: str  # IPv4, in 192.0.2.0/24
    link_local: str  # IPv6, added without DAD so it is usable at once


@dataclass(frozen=True)
class Link:
    a: Side
    b: Side


@contextmanager
def veth_link() -> Iterator[Link]:
    tag = secrets.token_hex(3)
    a = Side(f"ihvip-{tag}-a", f"iv{tag}a", "192.0.2.1", "fe80::1")
    b = Side(f"ihvip-{tag}-b", f"iv{tag}b", "192.0.2.2", "fe80::2")
    made: list[str] = []
    try:
        for side in (a, b):
            ip("netns", "add", side.netns)
            made.append(side.netns)
            with inside(side.netns):
                # No DAD: addresses (and so the ff00::/8 route addrconf adds once the
                # link-local is usable) are there the moment the link is up.
                for conf in ("default", "all"):
                    with open(f"/proc/sys/net/ipv6/conf/{conf}/accept_dad", "w") as f:
                        f.write("0")
        ip("link", "add", a.ifname, "netns", a.netns, "type", "veth",
           "peer", "name", b.ifname, "netns", b.netns)
        for side in (a, b):
            ip("-n", side.netns, "link", "set", "lo", "up")
            ip("-n", side.netns, "addr", "add", f"{side.address}/24", "dev", side.ifname)
            ip("-n", side.netns, "addr", "add", f"{side.link_local}/64", "dev", side.ifname,
               "nodad")
            ip("-n", side.netns, "link", "set", side.ifname, "up")
        yield Link(a, b)
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20,
                           check=False)


def wait_ipv6_multicast(side: Side, timeout: float = 5.0) -> float:
    """Wait until addrconf has put ff00::/8 on the link (it does so only after the
    carrier is seen, up to a second after `link set up`); return the wait."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        routes = ip("-n", side.netns, "-6", "route", "show", "table", "local", "dev", side.ifname)
        if "ff00::/8" in routes:
            return time.monotonic() - start
        time.sleep(0.05)
    raise TimeoutError(f"no IPv6 multicast route on {side.ifname} after {timeout} s")
