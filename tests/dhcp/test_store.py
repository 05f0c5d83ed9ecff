"""The lease store contract, written once and run against every implementation."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from dhcp.memory_store import MemoryStore
from dhcp.sqlite_store import SQLiteStore
from dhcp.store import FailoverRecord, Lease, LeaseConflict, LeaseState, LeaseStore, client_key

A = IPv4Address("192.0.2.10")
B = IPv4Address("192.0.2.11")
ALICE = client_key(b"\x01alice", 1, b"")
BOB = client_key(None, 1, bytes.fromhex("525400000002"))
HW = bytes.fromhex("525400000001")
T0 = 1_700_000_000.0

Factory = Callable[[Path], LeaseStore]
FACTORIES: dict[str, Factory] = {
    "memory": lambda _path: MemoryStore(),
    "sqlite": lambda path: SQLiteStore(path / "leases.db"),
}


@pytest.fixture(params=[*sorted(FACTORIES), "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LeaseStore]:
    if request.param == "postgresql":
        from dhcp.pg_store import PgStore

        made: LeaseStore = PgStore(request.getfixturevalue("pg_dsn"))
    else:
        made = FACTORIES[request.param](tmp_path)
    yield made
    made.close()


def test_client_keys_keep_client_id_and_hardware_apart() -> None:
    mac = bytes.fromhex("525400000001")
    assert client_key(b"\x01" + mac, 1, mac) != client_key(None, 1, mac)
    assert client_key(None, 1, mac) != client_key(None, 6, mac)


def test_empty_store(store: LeaseStore) -> None:
    assert store.get(A) is None
    assert store.by_client(ALICE) == []
    assert list(store.leases()) == []
    assert store.unavailable(A, B, T0) == set()


def test_offer_then_commit_binds_the_address(store: LeaseStore) -> None:
    offered = store.reserve(A, ALICE, HW, now=T0, until=T0 + 30)
    assert offered.state is LeaseState.OFFERED and offered.holds(T0 + 29)
    assert store.unavailable(A, B, T0) == {A}
    bound = store.commit(A, ALICE, HW, starts=T0 + 1, expires=T0 + 3601, hostname="ws")
    assert bound.state is LeaseState.BOUND
    assert store.get(A) == bound
    assert store.by_client(ALICE) == [bound]
    assert store.get(A).hostname == "ws"  # type: ignore[union-attr]


def test_an_address_is_never_held_for_two_clients(store: LeaseStore) -> None:
    store.reserve(A, ALICE, HW, now=T0, until=T0 + 30)
    with pytest.raises(LeaseConflict):
        store.reserve(A, BOB, HW, now=T0 + 1, until=T0 + 31)
    with pytest.raises(LeaseConflict):
        store.commit(A, BOB, HW, starts=T0 + 1, expires=T0 + 100, hostname=None)
    store.commit(A, ALICE, HW, starts=T0 + 2, expires=T0 + 100, hostname=None)
    with pytest.raises(LeaseConflict) as info:
        store.commit(A, BOB, HW, starts=T0 + 50, expires=T0 + 150, hostname=None)
    assert info.value.holder.client == ALICE
    assert store.get(A).client == ALICE  # type: ignore[union-attr]


def test_an_expired_offer_or_lease_frees_the_address(store: LeaseStore) -> None:
    store.reserve(A, ALICE, HW, now=T0, until=T0 + 30)
    store.reserve(A, BOB, HW, now=T0 + 30, until=T0 + 60)  # expiry is a comparison
    store.commit(A, BOB, HW, starts=T0 + 31, expires=T0 + 100, hostname=None)
    assert store.unavailable(A, A, T0 + 99) == {A}
    assert store.unavailable(A, A, T0 + 100) == set()
    lease = store.commit(A, ALICE, HW, starts=T0 + 100, expires=T0 + 200, hostname=None)
    assert lease.client == ALICE


def test_reserving_a_bound_address_keeps_it_bound(store: LeaseStore) -> None:
    store.commit(A, ALICE, HW, starts=T0, expires=T0 + 3600, hostname=None)
    again = store.reserve(A, ALICE, HW, now=T0 + 10, until=T0 + 40)
    assert again.state is LeaseState.BOUND and again.expires == T0 + 3600


def test_release_only_by_the_holder(store: LeaseStore) -> None:
    store.commit(A, ALICE, HW, starts=T0, expires=T0 + 3600, hostname=None)
    assert not store.release(A, BOB, T0 + 5)
    assert store.get(A).state is LeaseState.BOUND  # type: ignore[union-attr]
    assert store.release(A, ALICE, T0 + 5)
    assert store.get(A).state is LeaseState.RELEASED  # type: ignore[union-attr]
    assert not store.release(A, ALICE, T0 + 6)
    assert store.unavailable(A, B, T0 + 6) == set()
    store.commit(A, BOB, HW, starts=T0 + 6, expires=T0 + 100, hostname=None)


def test_decline_quarantines_for_everybody(store: LeaseStore) -> None:
    assert not store.decline(A, ALICE, T0, T0 + 500)  # never held: ignored
    store.commit(A, ALICE, HW, starts=T0, expires=T0 + 3600, hostname=None)
    assert not store.decline(A, BOB, T0, T0 + 500)
    assert store.decline(A, ALICE, T0 + 1, T0 + 500)
    assert store.get(A).state is LeaseState.DECLINED  # type: ignore[union-attr]
    for client in (ALICE, BOB):
        with pytest.raises(LeaseConflict):
            store.reserve(A, client, HW, now=T0 + 2, until=T0 + 32)
        with pytest.raises(LeaseConflict):
            store.commit(A, client, HW, starts=T0 + 2, expires=T0 + 32, hostname=None)
    assert store.unavailable(A, B, T0 + 499) == {A}
    store.commit(A, BOB, HW, starts=T0 + 500, expires=T0 + 600, hostname=None)


def test_expire_marks_and_usage_counts(store: LeaseStore) -> None:
    store.commit(A, ALICE, HW, starts=T0, expires=T0 + 100, hostname=None)
    store.reserve(B, BOB, HW, now=T0, until=T0 + 30)
    usage = store.usage(IPv4Address("192.0.2.0"), IPv4Address("192.0.2.255"), T0 + 1)
    assert (usage.total, usage.bound, usage.offered, usage.declined, usage.free) == (
        256,
        1,
        1,
        0,
        254,
    )
    assert store.expire(T0 + 30) == 1
    assert store.get(B).state is LeaseState.EXPIRED  # type: ignore[union-attr]
    assert store.expire(T0 + 30) == 0
    assert store.expire(T0 + 100) == 1
    assert [lease.address for lease in store.leases()] == [A, B]
    assert store.usage(A, B, T0 + 100).free == 2


def test_by_client_is_newest_first(store: LeaseStore) -> None:
    store.commit(A, ALICE, HW, starts=T0, expires=T0 + 10, hostname=None)
    store.commit(B, ALICE, HW, starts=T0 + 20, expires=T0 + 30, hostname=None)
    assert [lease.address for lease in store.by_client(ALICE)] == [B, A]


# -- SQLite specifics --------------------------------------------------------------


def test_sqlite_is_wal_and_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    store = SQLiteStore(path)
    store.commit(A, ALICE, HW, starts=T0, expires=T0 + 3600, hostname="ws")
    store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    again = SQLiteStore(path)
    assert again.get(A) is not None and again.get(A).hostname == "ws"  # type: ignore[union-attr]
    again.close()


def test_sqlite_schema_refuses_two_rows_for_one_address(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    row = (int(A), ALICE, HW, "bound", T0, T0 + 10, None)
    db.execute("INSERT INTO leases VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO leases VALUES (?, ?, ?, ?, ?, ?, ?)", (*row[:1], BOB, *row[2:]))
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE leases SET state = 'stolen'")
    db.close()


def test_sqlite_commit_is_durable_when_the_process_dies(tmp_path: Path) -> None:
    """A commit that returned is on disk even if the process is killed right after."""
    path = tmp_path / "leases.db"
    code = (
        "import os, ipaddress\n"
        "from dhcp.sqlite_store import SQLiteStore\n"
        f"s = SQLiteStore({str(path)!r})\n"
        f"s.commit(ipaddress.IPv4Address({str(A)!r}), {ALICE!r}, b'', starts={T0}, "
        f"expires={T0 + 60}, hostname=None)\n"
        "os._exit(0)\n"  # no close(), no checkpoint
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    store = SQLiteStore(path)
    assert store.get(A) is not None and store.get(A).client == ALICE  # type: ignore[union-attr]
    store.close()


def test_sqlite_two_connections_cannot_both_take_an_address(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    one, two = SQLiteStore(path), SQLiteStore(path)
    one.commit(A, ALICE, HW, starts=T0, expires=T0 + 60, hostname=None)
    with pytest.raises(LeaseConflict):
        two.commit(A, BOB, HW, starts=T0 + 1, expires=T0 + 60, hostname=None)
    one.close()
    two.close()


# -- group commit --------------------------------------------------------------------


def test_batch_undoes_only_the_conflicting_write(store: LeaseStore) -> None:
    store.commit(A, ALICE, HW, starts=T0, expires=T0 + 100, hostname=None)
    with store.batch():
        store.commit(B, BOB, HW, starts=T0, expires=T0 + 100, hostname=None)
        with pytest.raises(LeaseConflict):
            store.commit(A, BOB, HW, starts=T0, expires=T0 + 100, hostname=None)
        assert store.get(B) is not None  # earlier writes are visible inside the batch
    lease_a, lease_b = store.get(A), store.get(B)
    assert lease_a is not None and lease_a.client == ALICE
    assert lease_b is not None and lease_b.client == BOB


def test_sqlite_batch_is_durable_at_its_end_and_not_before(tmp_path: Path) -> None:
    path = tmp_path / "leases.db"
    store, reader = SQLiteStore(path), SQLiteStore(path)
    with store.batch():
        store.commit(A, ALICE, HW, starts=T0, expires=T0 + 100, hostname=None)
        store.reserve(B, BOB, HW, now=T0, until=T0 + 30)
        assert reader.get(A) is None  # not committed yet: no reply may go out
    assert reader.get(A) is not None and reader.get(B) is not None
    with pytest.raises(RuntimeError), store.batch():
        store.release(A, ALICE, T0 + 1)
        raise RuntimeError("the I/O layer failed mid-batch")
    lease = reader.get(A)
    assert lease is not None and lease.state is LeaseState.BOUND  # the whole batch undone
    store.close()
    reader.close()


# -- merge: records from the failover peer -------------------------------------------


def _bound(address: IPv4Address, client: str, starts: float, expires: float) -> Lease:
    return Lease(address, client, HW, LeaseState.BOUND, starts, expires)


def test_merge_takes_a_new_record_and_ignores_a_repeat(store: LeaseStore) -> None:
    lease = _bound(A, ALICE, T0, T0 + 600)
    assert store.merge(lease, T0) is True
    assert store.get(A) == lease
    assert store.merge(lease, T0) is False


def test_merge_keeps_the_newer_record_of_one_client_whatever_the_order(
    store: LeaseStore,
) -> None:
    bound = _bound(A, ALICE, T0, T0 + 600)
    renewed = _bound(A, ALICE, T0 + 100, T0 + 700)
    released = Lease(A, ALICE, HW, LeaseState.RELEASED, T0 + 100, T0 + 200)
    store.merge(renewed, T0 + 100)
    assert store.merge(bound, T0 + 100) is False  # older: a late update
    assert store.get(A) == renewed
    assert store.merge(released, T0 + 200) is True
    assert store.merge(renewed, T0 + 200) is False  # the release happened after it
    lease = store.get(A)
    assert lease is not None and lease.state is LeaseState.RELEASED


def test_merge_refuses_a_second_holder_and_writes_nothing(store: LeaseStore) -> None:
    store.commit(A, ALICE, HW, starts=T0, expires=T0 + 600, hostname=None)
    with pytest.raises(LeaseConflict):
        store.merge(_bound(A, BOB, T0 + 10, T0 + 600), T0 + 10)
    lease = store.get(A)
    assert lease is not None and lease.client == ALICE
    # once Alice's lease is over, Bob's record is taken
    assert store.merge(_bound(A, BOB, T0 + 700, T0 + 1300), T0 + 700) is True
    # and Alice's old record, arriving late, does not take the address back
    assert store.merge(_bound(A, ALICE, T0, T0 + 600), T0 + 700) is False
    lease = store.get(A)
    assert lease is not None and lease.client == BOB


# -- failover state ------------------------------------------------------------------


def test_failover_record_is_kept_per_node_and_replaced(store: LeaseStore) -> None:
    assert store.load_failover("a") is None
    first = FailoverRecord("a", "normal", T0, "normal", T0)
    store.save_failover(first)
    store.save_failover(FailoverRecord("b", "startup", T0, "unknown", None))
    assert store.load_failover("a") == first
    later = FailoverRecord("a", "partner-down", T0 + 5, "unknown", T0 + 1, stopped=T0 + 9)
    store.save_failover(later)
    assert store.load_failover("a") == later
    assert store.load_failover("b") == FailoverRecord("b", "startup", T0, "unknown", None)


def test_sqlite_failover_record_survives_reopening(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "leases.db")
    record = FailoverRecord("a", "partner-down", T0, "unknown", T0 - 3)
    store.save_failover(record)
    store.close()
    again = SQLiteStore(tmp_path / "leases.db")
    assert again.load_failover("a") == record
    again.close()


# -- PostgreSQL specifics -------------------------------------------------------------


def test_pg_schema_refuses_two_rows_for_one_address(pg_dsn: str) -> None:
    import psycopg

    from dhcp.pg_store import PgStore

    PgStore(pg_dsn).close()
    row = (int(A), ALICE, HW, "bound", T0, T0 + 10, None)
    insert = "INSERT INTO dhcp_leases VALUES (%s, %s, %s, %s, %s, %s, %s)"
    with psycopg.connect(pg_dsn, autocommit=True) as db:
        db.execute(insert, row)
        with pytest.raises(psycopg.errors.UniqueViolation):
            db.execute(insert, (*row[:1], BOB, *row[2:]))
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute("UPDATE dhcp_leases SET state = 'stolen'")


def test_pg_two_servers_cannot_both_take_an_address(pg_dsn: str) -> None:
    from dhcp.pg_store import PgStore

    one, two = PgStore(pg_dsn), PgStore(pg_dsn)
    one.commit(A, ALICE, HW, starts=T0, expires=T0 + 60, hostname=None)
    with pytest.raises(LeaseConflict) as info:
        two.commit(A, BOB, HW, starts=T0 + 1, expires=T0 + 60, hostname=None)
    assert info.value.holder.client == ALICE
    with pytest.raises(LeaseConflict):
        two.reserve(A, BOB, HW, now=T0 + 1, until=T0 + 31)
    one.close()
    two.close()


def test_pg_two_writers_racing_for_the_same_addresses(pg_dsn: str) -> None:
    """Two servers (connections, threads) commit the same 40 fresh addresses at once:
    exactly one commit per address succeeds, and the table names its client."""
    from dhcp.pg_store import PgStore

    addresses = [IPv4Address(int(A) + i) for i in range(40)]
    stores = [PgStore(pg_dsn), PgStore(pg_dsn)]
    clients = [ALICE, BOB]
    barrier = threading.Barrier(2, timeout=30)
    won: list[list[IPv4Address]] = [[], []]
    lost: list[list[IPv4Address]] = [[], []]

    def writer(index: int) -> None:
        barrier.wait()
        for address in addresses:
            try:
                stores[index].commit(address, clients[index], HW, starts=T0,
                                     expires=T0 + 600, hostname=None)
                won[index].append(address)
            except LeaseConflict:
                lost[index].append(address)

    threads = [threading.Thread(target=writer, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert sorted(won[0] + won[1]) == addresses  # every address taken exactly once
    assert not set(won[0]) & set(won[1])
    for index in (0, 1):
        assert set(lost[index]) == set(won[1 - index])
        for address in won[index]:
            lease = stores[1 - index].get(address)
            assert lease is not None and lease.client == clients[index]
    for store in stores:
        store.close()


def test_pg_batch_is_durable_at_its_end_and_not_before(pg_dsn: str) -> None:
    from dhcp.pg_store import PgStore

    store, reader = PgStore(pg_dsn), PgStore(pg_dsn)
    with store.batch():
        store.commit(A, ALICE, HW, starts=T0, expires=T0 + 100, hostname=None)
        store.reserve(B, BOB, HW, now=T0, until=T0 + 30)
        assert reader.get(A) is None  # not committed yet: no reply may go out
    assert reader.get(A) is not None and reader.get(B) is not None
    with pytest.raises(RuntimeError), store.batch():
        store.release(A, ALICE, T0 + 1)
        raise RuntimeError("the I/O layer failed mid-batch")
    lease = reader.get(A)
    assert lease is not None and lease.state is LeaseState.BOUND  # the whole batch undone
    store.close()
    reader.close()


def test_pg_commit_survives_the_writer_dying(pg_dsn: str) -> None:
    """A commit that returned is in the database even if its process is killed after."""
    code = (
        "import os, ipaddress\n"
        "from dhcp.pg_store import PgStore\n"
        f"s = PgStore({pg_dsn!r})\n"
        f"s.commit(ipaddress.IPv4Address({str(A)!r}), {ALICE!r}, b'', starts={T0}, "
        f"expires={T0 + 60}, hostname=None)\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    from dhcp.pg_store import PgStore

    store = PgStore(pg_dsn)
    assert store.get(A) is not None and store.get(A).client == ALICE  # type: ignore[union-attr]
    store.close()


def test_pg_store_reconnects_after_the_database_drops_it(pg_dsn: str) -> None:
    """The database ends our session (a restart would): the write under way fails,
    a batch that lost its connection fails whole, and the next write reconnects."""
    import psycopg

    from dhcp.pg_store import PgStore

    store = PgStore(pg_dsn)
    store.commit(A, ALICE, HW, starts=T0, expires=T0 + 600, hostname=None)

    def kill_session() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")

    kill_session()
    with pytest.raises(psycopg.OperationalError):
        store.get(A)
    lease = store.get(A)  # a new connection
    assert lease is not None and lease.client == ALICE
    with pytest.raises(psycopg.Error), store.batch():
        store.commit(B, BOB, HW, starts=T0, expires=T0 + 600, hostname=None)
        kill_session()
        store.release(A, ALICE, T0 + 1)
    assert store.get(B) is None  # the batch's first write died with the session
    lease = store.get(A)
    assert lease is not None and lease.state is LeaseState.BOUND
    store.close()
