"""The shared lease store: one PostgreSQL table, for sites that keep state in a database.

Theory of operation
-------------------
Same contract as :mod:`dhcp.sqlite_store` (see :mod:`dhcp.store`), on a server
that several DHCP servers may use at once. One table, ``dhcp_leases``, one row
per address, the address (as a ``bigint``) its PRIMARY KEY: the schema makes
two holders of one address impossible. A CHECK keeps ``state`` to the five
:class:`~dhcp.store.LeaseState` values.

Each write is one transaction (READ COMMITTED) that locks the address's row
with ``SELECT ... FOR UPDATE``, decides with the shared pure rules
(:func:`dhcp.store.admits`, :func:`dhcp.store.reserved_record`, ...) and writes
or raises :class:`~dhcp.store.LeaseConflict` having written nothing. A row that
does not exist yet cannot be locked, so a first write is ``INSERT ... ON
CONFLICT DO NOTHING``: if another server inserted the address in between (the
insert waits for that transaction to end), nothing is written and the decision
is taken again on the row it left (at most :data:`RETRIES` times). Two servers
racing for one address therefore serialise on the row: the second sees the
first's binding and gets :class:`~dhcp.store.LeaseConflict`.

Durability: :meth:`PgStore.commit`, :meth:`PgStore.decline` and :meth:`PgStore.merge`
commit with ``synchronous_commit = on``, set per transaction whatever the
server's default (the WAL is flushed on the database
server before COMMIT returns, so before the DHCPACK is sent); offers,
releases and expiries set ``synchronous_commit = off`` for their transaction
(losing one in a database crash only NAKs a client or idles an address).

Group commit: inside :meth:`PgStore.batch` every write is a SAVEPOINT of one
transaction committed (one WAL flush) when the block ends; a conflicting write
rolls back to its savepoint alone.

The failover state of each node is kept in ``dhcp_failover`` (see
:class:`dhcp.store.FailoverRecord`), written with ``synchronous_commit = on``.

``psycopg`` (version 3) is imported when a store is opened, so servers that use
SQLite do not need it. One connection per store, used under a lock; if the
database drops it (restart, failover of the database), the operation under
way fails (so its batch sends nothing) and the next one reconnects.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import Any

from dhcp.store import (
    ClientKey,
    FailoverRecord,
    Lease,
    LeaseState,
    PoolUsage,
    bound_record,
    declined_record,
    merged_record,
    reserved_record,
)

log = logging.getLogger(__name__)

#: How many times a write re-decides after losing an insert race.
RETRIES = 3
#: The advisory lock key that serialises schema creation between servers.
_SCHEMA_LOCK = 0x696D6170

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS dhcp_leases (
        address  bigint PRIMARY KEY CHECK (address BETWEEN 0 AND 4294967295),
        client   text NOT NULL,
        hwaddr   bytea NOT NULL,
        state    text NOT NULL
                 CHECK (state IN ('offered', 'bound', 'released', 'expired', 'declined')),
        starts   double precision NOT NULL,
        expires  double precision NOT NULL,
        hostname text
    )
    """,
    "CREATE INDEX IF NOT EXISTS dhcp_leases_by_client ON dhcp_leases (client)",
    """
    CREATE TABLE IF NOT EXISTS dhcp_failover (
        node       text PRIMARY KEY,
        state      text NOT NULL,
        since      double precision NOT NULL,
        peer_state text NOT NULL,
        peer_seen  double precision,
        stopped    double precision
    )
    """,
)

_COLUMNS = "address, client, hwaddr, state, starts, expires, hostname"


class _LostRace(Exception):
    """Another server inserted the address between our read and our insert."""


def _lease(row: tuple[Any, ...]) -> Lease:
    address, client, hwaddr, state, starts, expires, hostname = row
    return Lease(IPv4Address(int(address)), str(client), bytes(hwaddr), LeaseState(state),
                 float(starts), float(expires), hostname)


def _values(lease: Lease) -> tuple[object, ...]:
    return (int(lease.address), lease.client, lease.hwaddr, lease.state.value, lease.starts,
            lease.expires, lease.hostname)


class PgStore:
    """A :class:`dhcp.store.LeaseStore` in PostgreSQL; ``dsn`` is a ``postgresql://`` URI."""

    def __init__(self, dsn: str, *, connect_timeout: float = 10.0) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - depends on the site
            raise RuntimeError("dhcp.lease_db: PostgreSQL needs the psycopg package "
                               "(pip install 'imapha[pg]')") from exc
        self._psycopg: Any = psycopg
        self._dsn = dsn  # never logged: it may hold a password
        self._timeout = max(1, int(connect_timeout))
        self._lock = threading.RLock()
        self._in_batch = False
        self._closed = False
        self._conn: Any = self._connect()

    def _connect(self) -> Any:
        psycopg = self._psycopg
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._timeout)
        except psycopg.OperationalError as exc:
            raise RuntimeError(f"dhcp.lease_db: cannot connect: {exc}".strip()) from None
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    conn.execute(statement)
        except psycopg.Error as exc:
            conn.close()
            raise RuntimeError(f"dhcp.lease_db: cannot create the lease tables: {exc}") from None
        return conn

    @property
    def _db(self) -> Any:
        """The connection; a lost one is replaced before the next transaction.

        Never inside :meth:`batch`: its earlier writes died with the connection,
        so the batch must fail (nothing of it is durable, no reply goes out).
        """
        if self._conn.closed and not self._closed and not self._in_batch:
            self._conn = self._connect()
            log.warning("dhcp.lease_db: the PostgreSQL connection was lost; reconnected")
        return self._conn

    # -- reading -------------------------------------------------------------

    def _row(self, address: IPv4Address, *, lock: bool = False) -> Lease | None:
        suffix = " FOR UPDATE" if lock else ""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM dhcp_leases WHERE address = %s{suffix}", (int(address),)
        ).fetchone()
        return None if row is None else _lease(row)

    def get(self, address: IPv4Address) -> Lease | None:
        with self._lock:
            return self._row(address)

    def by_client(self, client: ClientKey) -> list[Lease]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM dhcp_leases WHERE client = %s"
                " ORDER BY starts DESC, address", (client,)).fetchall()
        return [_lease(row) for row in rows]

    def unavailable(self, first: IPv4Address, last: IPv4Address, now: float) -> set[IPv4Address]:
        with self._lock:
            rows = self._db.execute(
                "SELECT address FROM dhcp_leases WHERE address BETWEEN %s AND %s"
                " AND state IN ('offered', 'bound', 'declined') AND expires > %s",
                (int(first), int(last), now)).fetchall()
        return {IPv4Address(int(row[0])) for row in rows}

    def leases(self) -> Iterator[Lease]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM dhcp_leases ORDER BY address").fetchall()
        return iter([_lease(row) for row in rows])

    def usage(self, first: IPv4Address, last: IPv4Address, now: float) -> PoolUsage:
        with self._lock:
            rows = self._db.execute(
                "SELECT state, count(*) FROM dhcp_leases WHERE address BETWEEN %s AND %s"
                " AND state IN ('offered', 'bound', 'declined') AND expires > %s"
                " GROUP BY state", (int(first), int(last), now)).fetchall()
        counts = {LeaseState(state): int(n) for state, n in rows}
        return PoolUsage(
            total=int(last) - int(first) + 1,
            bound=counts.get(LeaseState.BOUND, 0),
            offered=counts.get(LeaseState.OFFERED, 0),
            declined=counts.get(LeaseState.DECLINED, 0),
        )

    # -- writing -------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, durable: bool) -> Iterator[None]:
        """One write: its own transaction, or a savepoint inside :meth:`batch`."""
        with self._lock, self._db.transaction():
            if not self._in_batch:  # explicit: the server's default may be off
                level = "on" if durable else "off"
                self._db.execute(f"SET LOCAL synchronous_commit = {level}")
            yield

    def _write(self, lease: Lease, existing: Lease | None) -> None:
        if existing is not None:  # the row is locked (FOR UPDATE)
            self._db.execute(
                "UPDATE dhcp_leases SET client = %s, hwaddr = %s, state = %s, starts = %s,"
                " expires = %s, hostname = %s WHERE address = %s",
                (*_values(lease)[1:], int(lease.address)))
            return
        cursor = self._db.execute(
            f"INSERT INTO dhcp_leases ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (address) DO NOTHING", _values(lease))
        if cursor.rowcount != 1:
            raise _LostRace

    def _decide(self, address: IPv4Address, durable: bool,
                decide: Any) -> Lease | None:
        """Lock ``address``'s row, ``decide(existing)`` what to write, write it.

        ``decide`` returns the record to write or None for nothing; it may raise
        :class:`LeaseConflict`. Returns what was written (or None).
        """
        for _ in range(RETRIES):
            try:
                with self._transaction(durable):
                    existing = self._row(address, lock=True)
                    lease: Lease | None = decide(existing)
                    if lease is not None and lease is not existing:
                        self._write(lease, existing)
                    return lease
            except _LostRace:
                continue
        raise RuntimeError(f"{address}: lost {RETRIES} insert races in a row")

    def reserve(
        self, address: IPv4Address, client: ClientKey, hwaddr: bytes, now: float, until: float
    ) -> Lease:
        lease = self._decide(address, False, lambda existing: reserved_record(
            existing, address, client, hwaddr, now=now, until=until))
        assert lease is not None
        return lease

    def commit(
        self,
        address: IPv4Address,
        client: ClientKey,
        hwaddr: bytes,
        *,
        starts: float,
        expires: float,
        hostname: str | None,
    ) -> Lease:
        lease = self._decide(address, True, lambda existing: bound_record(
            existing, address, client, hwaddr, starts=starts, expires=expires, hostname=hostname))
        assert lease is not None
        return lease

    def release(self, address: IPv4Address, client: ClientKey, now: float) -> bool:
        with self._transaction(False):
            cursor = self._db.execute(
                "UPDATE dhcp_leases SET state = 'released', expires = %s"
                " WHERE address = %s AND client = %s AND state IN ('offered', 'bound')"
                " AND expires > %s", (now, int(address), client, now))
        return bool(cursor.rowcount == 1)

    def decline(self, address: IPv4Address, client: ClientKey, now: float, until: float) -> bool:
        lease = self._decide(address, True,
                             lambda existing: declined_record(existing, client, until))
        return lease is not None

    def expire(self, now: float) -> int:
        with self._transaction(False):
            cursor = self._db.execute(
                "UPDATE dhcp_leases SET state = 'expired'"
                " WHERE state IN ('offered', 'bound', 'declined') AND expires <= %s", (now,))
        return int(cursor.rowcount)

    def merge(self, lease: Lease, now: float) -> bool:
        written = self._decide(lease.address, True,
                               lambda existing: merged_record(existing, lease, now))
        return written is not None

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: every write in the block is durable, with one WAL flush, at its end.

        A write that raises (a :class:`LeaseConflict`) is undone alone (its
        savepoint); an exception out of the block undoes the whole batch.
        """
        with self._lock:
            if self._in_batch:
                yield
                return
            with self._db.transaction():
                self._db.execute("SET LOCAL synchronous_commit = on")
                self._in_batch = True
                try:
                    yield
                finally:
                    self._in_batch = False

    # -- failover state ------------------------------------------------------

    def save_failover(self, record: FailoverRecord) -> None:
        with self._lock, self._db.transaction():
            self._db.execute("SET LOCAL synchronous_commit = on")
            self._db.execute(
                "INSERT INTO dhcp_failover (node, state, since, peer_state, peer_seen, stopped)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (node) DO UPDATE SET"
                " state = EXCLUDED.state, since = EXCLUDED.since,"
                " peer_state = EXCLUDED.peer_state, peer_seen = EXCLUDED.peer_seen,"
                " stopped = EXCLUDED.stopped",
                (record.node, record.state, record.since, record.peer_state, record.peer_seen,
                 record.stopped))

    def load_failover(self, node: str) -> FailoverRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT node, state, since, peer_state, peer_seen, stopped FROM dhcp_failover"
                " WHERE node = %s", (node,)).fetchone()
        if row is None:
            return None
        return FailoverRecord(str(row[0]), str(row[1]), float(row[2]), str(row[3]),
                              None if row[4] is None else float(row[4]),
                              None if row[5] is None else float(row[5]))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()
