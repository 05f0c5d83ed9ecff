"""Fixtures of the dhcp tests: a throw-away PostgreSQL cluster (one per xdist worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dhcp.pgcluster import PgCluster, need_psycopg


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    need_psycopg()
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> str:
    """The DSN of a new, empty database in the session's cluster."""
    return pg_cluster.database()
