"""A throw-away PostgreSQL cluster for tests: initdb in a temp dir, Unix socket only.

``PgCluster.start()`` runs Debian's ``initdb`` and ``pg_ctl start`` (as the
``postgres`` user when the tests run as root, through ``runuser``) with
``listen_addresses=''``: no TCP port is opened, clients connect over the socket
in the cluster's own directory. ``database()`` creates a fresh database and
returns its DSN (a fresh schema); ``stop()`` stops the server (``pg_ctl stop -m immediate``)
and removes the directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.prereq import need_binary


def pg_binary(name: str) -> str:
    """Debian keeps initdb/pg_ctl under /usr/lib/postgresql/<version>/bin."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    return need_binary(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    def __init__(self) -> None:
        self.initdb = pg_binary("initdb")
        self.pg_ctl = pg_binary("pg_ctl")
        self.root = Path(tempfile.mkdtemp(prefix="imapha-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("prerequisite missing: the postgres user (Debian postgresql)")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        self.pid: int | None = None

    def _run(self, *argv: str, timeout: float = 60.0) -> None:
        command = list(argv)
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, timeout=timeout, capture_output=True)

    def start(self) -> PgCluster:
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")
        options = f"-k {self.root} -p {self.port} -c listen_addresses=''"
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                  "-t", "60", "-o", options, "start", timeout=90.0)
        pidfile = self.data / "postmaster.pid"
        self.pid = int(pidfile.read_text().split()[0])
        return self

    def dsn(self, schema: str | None = None) -> str:
        dsn = f"postgresql://postgres@/postgres?host={self.root}&port={self.port}"
        if schema is not None:  # every table the store creates goes into that schema
            dsn += f"&options=-c%20search_path%3D{schema}"
        return dsn

    def database(self) -> str:
        """A new empty schema (cheaper than a database); the DSN that uses it."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.dsn(), autocommit=True) as db:
            db.execute(f"CREATE SCHEMA {name}")
        return self.dsn(name)

    def stop(self) -> None:
        if self.pid is not None:
            try:
                self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except subprocess.SubprocessError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, 9)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(self.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            self.pid = None
        shutil.rmtree(self.root, ignore_errors=True)


def need_psycopg() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("prerequisite missing: psycopg (pip install psycopg[binary])")
        pytest.skip("prerequisite missing: psycopg (pip install psycopg[binary])")
