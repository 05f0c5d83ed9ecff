"""The embedded lease store: one SQLite file in WAL mode.

Theory of operation
-------------------
One table, one row per address, the address (as an integer) its PRIMARY KEY:
the schema itself makes it impossible for two clients to hold one address at
once. A CHECK constraint keeps ``state`` to the five :class:`LeaseState` values.

Each write is one ``BEGIN IMMEDIATE`` transaction that reads the row, decides
with the same pure rules as every store (:func:`dhcp.store.admits`), and writes
or raises :class:`LeaseConflict` having written nothing; IMMEDIATE takes the
write lock first, so a second process on the same file cannot slip in between
the read and the write.

Durability: ``journal_mode=WAL``. :meth:`SQLiteStore.commit` and
:meth:`SQLiteStore.decline` run with ``synchronous=FULL``, so the WAL is
fsynced before they return (the ACK is sent after). Offers, releases and
expiries run with ``synchronous=NORMAL``: they reach the disk with the next
FULL commit or checkpoint, and losing them in a crash is harmless (see
:mod:`dhcp.store`). The connection is opened with ``check_same_thread=False``
and a lock serialises its use, so a thread pool may call it.

Group commit: inside :meth:`SQLiteStore.batch` every write is a SAVEPOINT of
one transaction that commits, with one fsync, when the block ends; a
conflicting write rolls back to its savepoint alone.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

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

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    address  INTEGER PRIMARY KEY CHECK (address BETWEEN 0 AND 4294967295),
    client   TEXT NOT NULL,
    hwaddr   BLOB NOT NULL,
    state    TEXT NOT NULL
             CHECK (state IN ('offered', 'bound', 'released', 'expired', 'declined')),
    starts   REAL NOT NULL,
    expires  REAL NOT NULL,
    hostname TEXT
);
CREATE INDEX IF NOT EXISTS leases_by_client ON leases (client);
CREATE TABLE IF NOT EXISTS failover (
    node       TEXT PRIMARY KEY,
    state      TEXT NOT NULL,
    since      REAL NOT NULL,
    peer_state TEXT NOT NULL,
    peer_seen  REAL,
    stopped    REAL
);
"""

_COLUMNS = "address, client, hwaddr, state, starts, expires, hostname"
_Row = tuple[int, str, bytes, str, float, float, str | None]


def _lease(row: _Row) -> Lease:
    address, client, hwaddr, state, starts, expires, hostname = row
    return Lease(
        IPv4Address(address), client, bytes(hwaddr), LeaseState(state), starts, expires, hostname
    )


class SQLiteStore:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._in_batch = False
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=10.0
        )
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise RuntimeError(f"{self.path}: cannot use WAL journal mode (got {mode})")
        self._sync = ""
        self._synchronous("FULL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(f"{self.path}: lease schema {version}, expected {SCHEMA_VERSION}")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _synchronous(self, level: str) -> None:
        if self._sync != level:
            self._db.execute(f"PRAGMA synchronous={level}")
            self._sync = level

    def _row(self, address: IPv4Address) -> Lease | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM leases WHERE address = ?", (int(address),)
        ).fetchone()
        return None if row is None else _lease(row)

    def _write(self, lease: Lease) -> None:
        self._db.execute(
            f"INSERT OR REPLACE INTO leases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                int(lease.address),
                lease.client,
                lease.hwaddr,
                lease.state.value,
                lease.starts,
                lease.expires,
                lease.hostname,
            ),
        )

    def get(self, address: IPv4Address) -> Lease | None:
        with self._lock:
            return self._row(address)

    def by_client(self, client: ClientKey) -> list[Lease]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM leases WHERE client = ? ORDER BY starts DESC", (client,)
            ).fetchall()
        return [_lease(row) for row in rows]

    def unavailable(self, first: IPv4Address, last: IPv4Address, now: float) -> set[IPv4Address]:
        with self._lock:
            rows = self._db.execute(
                "SELECT address FROM leases WHERE address BETWEEN ? AND ?"
                " AND state IN ('offered', 'bound', 'declined') AND expires > ?",
                (int(first), int(last), now),
            ).fetchall()
        return {IPv4Address(row[0]) for row in rows}

    @contextlib.contextmanager
    def _transaction(self, level: str) -> Iterator[None]:
        """One write: its own transaction, or a savepoint inside :meth:`batch`."""
        with self._lock:
            if self._in_batch:
                self._db.execute("SAVEPOINT write")
                try:
                    yield
                except BaseException:
                    self._db.execute("ROLLBACK TO write")
                    self._db.execute("RELEASE write")
                    raise
                self._db.execute("RELEASE write")
                return
            self._synchronous(level)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group commit: every write in the block is durable, with one fsync, at its end.

        A write that raises (a :class:`LeaseConflict`) is undone alone; the
        others stand. Nothing is durable before the block ends, so replies for
        its writes must wait until it has.
        """
        with self._lock:
            if self._in_batch:
                yield
                return
            self._synchronous("FULL")
            self._db.execute("BEGIN IMMEDIATE")
            self._in_batch = True
            try:
                yield
            except BaseException:
                self._in_batch = False
                self._db.execute("ROLLBACK")
                raise
            self._in_batch = False
            self._db.execute("COMMIT")

    def reserve(
        self, address: IPv4Address, client: ClientKey, hwaddr: bytes, now: float, until: float
    ) -> Lease:
        with self._transaction("NORMAL"):
            existing = self._row(address)
            lease = reserved_record(existing, address, client, hwaddr, now=now, until=until)
            if lease is not existing:
                self._write(lease)
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
        with self._transaction("FULL"):
            lease = bound_record(self._row(address), address, client, hwaddr, starts=starts,
                                 expires=expires, hostname=hostname)
            self._write(lease)
        return lease

    def release(self, address: IPv4Address, client: ClientKey, now: float) -> bool:
        with self._transaction("NORMAL"):
            cursor = self._db.execute(
                "UPDATE leases SET state = 'released', expires = ?"
                " WHERE address = ? AND client = ? AND state IN ('offered', 'bound')"
                " AND expires > ?",
                (now, int(address), client, now),
            )
        return cursor.rowcount == 1

    def decline(self, address: IPv4Address, client: ClientKey, now: float, until: float) -> bool:
        with self._transaction("FULL"):
            lease = declined_record(self._row(address), client, until)
            if lease is not None:
                self._write(lease)
        return lease is not None

    def expire(self, now: float) -> int:
        with self._transaction("NORMAL"):
            cursor = self._db.execute(
                "UPDATE leases SET state = 'expired'"
                " WHERE state IN ('offered', 'bound', 'declined') AND expires <= ?",
                (now,),
            )
        return cursor.rowcount

    def leases(self) -> Iterator[Lease]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM leases ORDER BY address").fetchall()
        return iter([_lease(row) for row in rows])

    def usage(self, first: IPv4Address, last: IPv4Address, now: float) -> PoolUsage:
        with self._lock:
            rows = self._db.execute(
                "SELECT state, count(*) FROM leases WHERE address BETWEEN ? AND ?"
                " AND state IN ('offered', 'bound', 'declined') AND expires > ? GROUP BY state",
                (int(first), int(last), now),
            ).fetchall()
        counts = {LeaseState(state): int(n) for state, n in rows}
        return PoolUsage(
            total=int(last) - int(first) + 1,
            bound=counts.get(LeaseState.BOUND, 0),
            offered=counts.get(LeaseState.OFFERED, 0),
            declined=counts.get(LeaseState.DECLINED, 0),
        )

    def merge(self, lease: Lease, now: float) -> bool:
        with self._transaction("FULL"):
            row = merged_record(self._row(lease.address), lease, now)
            if row is not None:
                self._write(row)
        return row is not None

    def save_failover(self, record: FailoverRecord) -> None:
        with self._transaction("FULL"):
            self._db.execute(
                "INSERT OR REPLACE INTO failover"
                " (node, state, since, peer_state, peer_seen, stopped) VALUES (?, ?, ?, ?, ?, ?)",
                (record.node, record.state, record.since, record.peer_state, record.peer_seen,
                 record.stopped),
            )

    def load_failover(self, node: str) -> FailoverRecord | None:
        with self._lock:
            row = self._db.execute(
                "SELECT node, state, since, peer_state, peer_seen, stopped FROM failover"
                " WHERE node = ?",
                (node,),
            ).fetchone()
        if row is None:
            return None
        return FailoverRecord(row[0], row[1], float(row[2]), row[3],
                              None if row[4] is None else float(row[4]),
                              None if row[5] is None else float(row[5]))

    def close(self) -> None:
        with self._lock:
            self._db.close()
