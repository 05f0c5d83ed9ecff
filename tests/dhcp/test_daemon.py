"""`imapha dhcp` as a daemon: real clients in namespaces against a split pair and a hot standby.

What a user checks: a client gets an address, the address is in the pool, the
client really has it configured and both servers' stores agree on who holds it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from imapha.lab.topology import Lab
from tests.dhcp.cluster import POOL, Pair, dump, make_pair

pytestmark = pytest.mark.netns


@pytest.fixture
def root() -> Iterator[Path]:
    # short: control socket paths must fit sockaddr_un
    path = Path(tempfile.mkdtemp(prefix="dh", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def in_pool(address: IPv4Address | None) -> bool:
    return address is not None and IPv4Address(POOL[0]) <= address <= IPv4Address(POOL[1])


def test_split_pair_serves_udhcpc_and_replicates(lab: Lab, root: Path) -> None:
    pair = make_pair(lab, root)
    pair.start("a")
    pair.start("b")
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    clients = [pair.udhcpc(f"c{i}") for i in range(4)]
    try:
        for client in clients:
            Pair.wait(lambda c=client: c.bound() is not None, 15, f"{client.host.name} bound")
    except AssertionError:
        raise AssertionError(dump(pair)) from None
    for client in clients:
        address = client.bound()
        assert in_pool(address)
        assert str(address) in client.configured()
    held = pair.check_unique()
    assert len(held) == 4
    # both stores know every lease, whichever node gave it
    for node in ("a", "b"):
        assert set(pair.active(node)) == set(held), dump(pair)
