"""``[proxy] workers = 2``: real worker processes before two real Dovecots.

Two workers share the listeners (SO_REUSEPORT); the parent aggregates their
status and metrics, fans drain and verbs out to both, and restarts a worker
that was SIGKILLed while the node stays ready.
"""

from __future__ import annotations

import imaplib
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapha.proxy.workers import aggregate_metrics
from tests.prereq import need_binary
from tests.proxy.harness import Backends, Certs, ProxyProcess, free_port, proxy_config
from tests.proxy.test_proxy_dovecot import NAMES, USERS, backend_of, read_until


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def backends() -> Iterator[Backends]:
    need_binary("dovecot")
    be = Backends(2, USERS)
    try:
        be.start()
        yield be
    finally:
        be.stop()


@pytest.fixture
def pool(tmp_path: Path, backends: Backends, certs: Certs) -> Iterator[ProxyProcess]:
    port = free_port()
    cfg = proxy_config(tmp_path, [(n, "127.0.0.1", s.imap_port)
                                  for n, s in zip(NAMES, backends.servers, strict=True)],
                       certs, extra=f'workers = 2\nauth_penalty_max = "0s"\n'
                                    f'drain_grace = "1s"\nmetrics = "127.0.0.1:{port}"')
    proxy = ProxyProcess(cfg)
    try:
        yield proxy.start()
    finally:
        proxy.stop()


def _login(certs: Certs, proxy: ProxyProcess, i: int) -> imaplib.IMAP4_SSL:
    c = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=certs.client_context(),
                          timeout=10)
    c.login(f"u{i}", USERS[f"u{i}"])
    c.select("INBOX")
    return c


def _metric(proxy: ProxyProcess, line_start: str) -> float:
    text = urllib.request.urlopen(f"http://{proxy.status()['metrics']}/metrics",
                                  timeout=5).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(line_start))


def _wait(what: str, check: object, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not {what} within {limit}s")


def test_two_workers_accept_and_status_metrics_aggregate(pool: ProxyProcess,
                                                         certs: Certs) -> None:
    status = pool.status()
    pids = {w["pid"] for w in status["workers"]}
    assert len(pids) == 2 and pool.pid not in pids
    clients = [_login(certs, pool, i) for i in range(12)]
    try:
        _wait("12 sessions in /status", lambda: pool.status()["sessions"] == 12)
        per_worker = [w["sessions"] for w in pool.status()["workers"]]
        assert sum(per_worker) == 12
        assert all(n > 0 for n in per_worker), per_worker  # (1/2)^11 chance of a false alarm
        _wait("12 sessions in /metrics",
              lambda: _metric(pool, "imapha_proxy_sessions_active{") == 12)
        assert _metric(pool, 'imapha_proxy_logins_total{backend="d') >= 12
        assert _metric(pool, "imapha_proxy_workers_running ") == 2
        for c in clients:
            assert c.noop()[0] == "OK"
    finally:
        for c in clients:
            c.logout()
    _wait("sessions gone", lambda: pool.status()["sessions"] == 0)


def test_sigkilled_worker_is_restarted_and_node_stays_ready(pool: ProxyProcess,
                                                            certs: Certs) -> None:
    victim = pool.status()["workers"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    logins = 0
    while time.monotonic() < deadline:
        st = pool.status()
        assert st["ready"], st["reason"]  # the other worker carries the node
        w0 = st["workers"][0]
        # Once the parent saw the death, the victim's socket is closed and every new
        # connection goes to a live worker (one queued at the instant of the kill
        # is reset by the kernel: that is SO_REUSEPORT's known limit).
        if not w0["alive"] or w0["pid"] != victim:
            c = _login(certs, pool, logins % 16)
            c.logout()
            logins += 1
        if w0["alive"] and w0["pid"] != victim and w0["ready"]:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"worker 0 not restarted: {pool.status()['workers']}")
    assert w0["restarts"] == 1
    assert logins > 0
    assert _metric(pool, "imapha_proxy_worker_restarts_total ") == 1
    # both workers serve again
    clients = [_login(certs, pool, i) for i in range(12)]
    _wait("sessions on both workers",
          lambda: all(w["sessions"] > 0 for w in pool.status()["workers"]))
    for c in clients:
        c.logout()


def test_drain_kick_and_drain_backend_reach_every_worker(pool: ProxyProcess,
                                                         certs: Certs) -> None:
    clients = [_login(certs, pool, i) for i in range(12)]
    _wait("sessions on both workers",
          lambda: all(w["sessions"] > 0 for w in pool.status()["workers"]))
    kicked = pool.request("POST", "/kick", {"user": "U0"})
    assert kicked.ok and kicked.body["sessions"] == 1 and kicked.body["workers"] == 2
    d0 = pool.request("POST", "/drain-backend", {"name": "d0"})
    assert d0.ok and d0.body["workers"] == 2
    on_d0 = sum(1 for i in range(1, 12) if _backend_of(i) == 0)
    assert d0.body["sessions"] == on_d0
    assert pool.request("POST", "/undrain-backend", {"name": "d0"}).ok
    survivors = [c for i, c in enumerate(clients) if i != 0 and _backend_of(i) == 1]
    assert pool.request("POST", "/drain").ok
    assert not pool.status()["ready"]
    for port in (pool.imap_port, pool.imaps_port):  # every worker closed its listener
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    for c in survivors:  # after drain_grace each worker ends its sessions with BYE
        c.sock.settimeout(5)
        assert b"* BYE [UNAVAILABLE]" in read_until(c.sock, b"* BYE", 8)
    _wait("no sessions", lambda: pool.status()["sessions"] == 0)
    assert pool.request("POST", "/undrain").ok
    _wait("ready again", lambda: pool.status()["ready"])
    _login(certs, pool, 3).logout()


def _backend_of(i: int) -> int:
    return backend_of(f"u{i}")


def test_aggregate_metrics_sums_counters_and_maxes_states() -> None:
    a = ('# TYPE imapha_proxy_logins_total counter\n'
         'imapha_proxy_logins_total{backend="d0",outcome="ok"} 3.0\n'
         '# TYPE imapha_proxy_backend_up_state gauge\n'
         'imapha_proxy_backend_up_state{backend="d0"} 0.0\n'
         '# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 5.0\n')
    b = ('# TYPE imapha_proxy_logins_total counter\n'
         'imapha_proxy_logins_total{backend="d0",outcome="ok"} 4.0\n'
         'imapha_proxy_logins_total{backend="d1",outcome="ok"} 1.0\n'
         '# TYPE imapha_proxy_backend_up_state gauge\n'
         'imapha_proxy_backend_up_state{backend="d0"} 1.0\n')
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for f in aggregate_metrics([a, b]) for s in f.samples}
    assert got == {
        ("imapha_proxy_logins_total", (("backend", "d0"), ("outcome", "ok"))): 7.0,
        ("imapha_proxy_logins_total", (("backend", "d1"), ("outcome", "ok"))): 1.0,
        ("imapha_proxy_backend_up_state", (("backend", "d0"),)): 1.0,
    }


def test_sighup_reload_reaches_every_worker(pool: ProxyProcess, certs: Certs) -> None:
    clients = [_login(certs, pool, i) for i in range(12)]
    on_d1 = [c for i, c in enumerate(clients) if _backend_of(i) == 1]
    _wait("sessions on both workers",
          lambda: all(w["sessions"] > 0 for w in pool.status()["workers"]))
    # A restart-only key is refused by the daemon; every worker keeps going.
    text = pool.config.read_text()
    pool.config.write_text(text.replace("workers = 2", "workers = 3"))
    assert pool.proc is not None
    pool.proc.send_signal(signal.SIGHUP)
    _wait("the reload rejected", lambda: pool.status()["reloads"]["rejected"] == 1)
    # Removing backend d1 is applied live by each worker: d1's sessions end with BYE.
    head, _, _ = text.partition('[[backends]]\nname = "d1"')
    pool.config.write_text(head)
    pool.proc.send_signal(signal.SIGHUP)
    _wait("the reload applied", lambda: pool.status()["reloads"]["applied"] == 1)
    for c in on_d1:
        c.sock.settimeout(5)
        assert b"* BYE [UNAVAILABLE]" in read_until(c.sock, b"* BYE", 8)
    _wait("only d0 left", lambda: set(pool.status()["backends"]) == {"d0"})
    assert len(pool.status()["workers"]) == 2
    for i, c in enumerate(clients):
        if _backend_of(i) == 0:
            assert c.noop()[0] == "OK"
            c.logout()
