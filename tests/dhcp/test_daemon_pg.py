"""`imapha dhcp` with ``lease_db = "postgresql://..."``: a hot-standby pair sharing one database.

What a user checks: clients get leases, the database (so both servers) knows
each one the moment it is ACKed, the standby serves at once after the master
is SIGKILLed, the old master comes back on the same records, and no address is
ever held by two clients.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from imapha.lab.topology import Lab
from tests.dhcp.cluster import VIP, Pair, dump, make_pair
from tests.dhcp.pgcluster import PgCluster

pytestmark = pytest.mark.netns


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dg", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def rows(dsn: str) -> dict[str, str]:
    """address -> client of every bound row, read from PostgreSQL itself."""
    import psycopg

    with psycopg.connect(dsn) as db:
        found = db.execute("SELECT address, client FROM dhcp_leases WHERE state = 'bound'"
                           " AND expires > extract(epoch from now())").fetchall()
    return {str(IPv4Address(int(address))): str(client) for address, client in found}


def test_hot_standby_pair_on_one_postgresql_database(
    lab: Lab, root: Path, pg_cluster: PgCluster
) -> None:
    dsn = pg_cluster.database()
    pair = make_pair(lab, root, mode="hot-standby", lease_db=dsn)
    pair.start("a")
    pair.start("b")
    try:
        Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 10, "normal")
    except AssertionError:
        raise AssertionError(dump(pair)) from None
    assert not (root / "a" / "state" / "leases.db").exists()  # no SQLite file
    pair.vip("a", "master")
    pair.vip("b", "backup")
    first = pair.udhcpc("c1")
    first.wait_bound(15)
    address = str(first.bound())
    assert rows(dsn) == {address: pair.active("a")[address]}  # in the database at ACK time
    assert pair.active("b") == pair.active("a")

    pair.kill("a")
    pair.vip("b", "master")
    second = pair.udhcpc("c2")
    took = Pair.wait(lambda: second.bound() is not None, 10, "c2 bound by b")
    assert took < 1.5, f"new client served {took:.2f} s after the promotion"
    assert second.bound() != first.bound()
    held = pair.check_unique()
    assert set(rows(dsn)) == set(held)

    # a comes back: the shared database still has every lease, nothing to recover
    pair.start("a")
    Pair.wait(lambda: pair.ready("a"), 15, "a ready again")
    assert set(pair.active("a")) == set(held) == set(pair.active("b")), dump(pair)
    assert pair.ctl("a", "GET", "/status").body["server_id"] == VIP
