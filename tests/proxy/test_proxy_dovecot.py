"""The proxy daemon end to end: real `imapha proxy` processes before two real Dovecots.

Clients are Python's imaplib, imapclient and aioimaplib, and raw sockets where
the exact bytes matter. The Dovecots share one Maildir root; a user's expected
backend is computed with the same rendezvous hash the proxy uses.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import os
import random
import signal
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import imapclient
import pytest
from aioimaplib import IMAP4_SSL as AioIMAP4_SSL

from imapha.proxy.routing import Candidate, preference
from tests.prereq import need_binary
from tests.proxy.harness import Backends, Certs, ProxyProcess, free_port, proxy_config

USERS = {f"u{i}": f"pw-{i}" for i in range(16)} | {"probe": "probe-pw"}
NAMES = ("d0", "d1")
StartProxy = Callable[..., ProxyProcess]


def backend_of(user: str) -> int:
    return NAMES.index(preference(user, [Candidate(n) for n in NAMES])[0])


def user_on(index: int, skip: int = 0) -> str:
    found = [u for u in sorted(USERS) if u != "probe" and backend_of(u) == index]
    return found[skip]


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


def _start(tmp_path: Path, be: Backends, certs: Certs, started: list[ProxyProcess], *,
           extra: str, nodes: tuple[str, ...], node: str, wait_ready: bool) -> ProxyProcess:
    directory = tmp_path / f"proxy-{len(started)}"
    directory.mkdir()
    cfg = proxy_config(directory, [(n, "127.0.0.1", s.imap_port)
                                   for n, s in zip(NAMES, be.servers, strict=True)],
                       certs, nodes=nodes, extra=extra)
    proxy = ProxyProcess(cfg, node)
    started.append(proxy)
    return proxy.start(wait_ready=wait_ready)


@pytest.fixture
def start_proxy(tmp_path: Path, backends: Backends, certs: Certs) -> Iterator[StartProxy]:
    started: list[ProxyProcess] = []

    def start(extra: str = 'auth_penalty_max = "0s"', *, nodes: tuple[str, ...] = ("a",),
              node: str = "a", be: Backends | None = None,
              wait_ready: bool = True) -> ProxyProcess:
        return _start(tmp_path, be or backends, certs, started, extra=extra, nodes=nodes,
                      node=node, wait_ready=wait_ready)

    yield start
    for proxy in started:
        proxy.stop()


def tls_socket(certs: Certs, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return certs.client_context().wrap_socket(raw, server_hostname="localhost")


def read_until(sock: socket.socket, needle: bytes, limit: float = 10.0) -> bytes:
    data = b""
    deadline = time.monotonic() + limit
    while needle not in data:
        if time.monotonic() > deadline:
            raise AssertionError(f"no {needle!r} in {data[-300:]!r}")
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


# -- logins ---------------------------------------------------------------------------


def test_starttls_logindisabled_then_login(start_proxy: StartProxy, certs: Certs) -> None:
    proxy = start_proxy()
    client = imaplib.IMAP4("127.0.0.1", proxy.imap_port)
    assert "LOGINDISABLED" in client.capabilities and "STARTTLS" in client.capabilities
    typ, data = client._simple_command("LOGIN", "u0", "pw-0")
    assert (typ, data[0][:18]) == ("NO", b"[PRIVACYREQUIRED] ")
    client.starttls(certs.client_context())
    assert "AUTH=PLAIN" in client.capabilities and "LOGINDISABLED" not in client.capabilities
    typ, data = client.login("u0", "pw-0")
    assert typ == "OK" and b"[CAPABILITY IMAP4rev1" in data[0]
    assert b"UNAUTHENTICATE" not in data[0] and b"AUTH=" not in data[0]
    assert client.select("INBOX")[0] == "OK"
    assert client.logout()[0] == "BYE"


def test_implicit_tls_with_imapclient_and_preauth_id(start_proxy: StartProxy,
                                                      certs: Certs) -> None:
    proxy = start_proxy()
    client = imapclient.IMAPClient("127.0.0.1", port=proxy.imaps_port, ssl=True,
                                   ssl_context=certs.client_context(), timeout=10)
    server_id = client.id_({"name": "pytest", "version": "1"})
    (flat,) = server_id  # imapclient: a 1-tuple holding the flat field/value list
    pairs = dict(zip(flat[::2], flat[1::2], strict=True))
    assert pairs[b"name"] == b"imapha", server_id
    client.login("u1", "pw-1")
    assert b"INBOX" in [f[2].encode() if isinstance(f[2], str) else f[2]
                        for f in client.list_folders()]
    client.logout()


def test_aioimaplib_over_implicit_tls(start_proxy: StartProxy, certs: Certs) -> None:
    proxy = start_proxy()

    async def go() -> list[str]:
        client = AioIMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=certs.client_context())
        await client.wait_hello_from_server()
        login = await client.login("u2", "pw-2")
        select = await client.select("INBOX")
        await client.logout()
        return [login.result, select.result]

    assert asyncio.run(go()) == ["OK", "OK"]


def test_sasl_ir_authenticate_plain_and_login_mechanism(start_proxy: StartProxy,
                                                         certs: Certs) -> None:
    proxy = start_proxy()
    sock = tls_socket(certs, proxy.imaps_port)
    read_until(sock, b"\r\n")
    ir = base64.b64encode(b"\0u3\0pw-3")
    sock.sendall(b"a AUTHENTICATE PLAIN " + ir + b"\r\nb NOOP\r\n")
    data = read_until(sock, b"b OK")
    assert b"a OK [CAPABILITY IMAP4rev1" in data
    sock.sendall(b"c UNAUTHENTICATE\r\nd NOOP\r\n")  # RFC 8437: never relayed as such
    data = read_until(sock, b"d OK")
    assert b"c BAD" in data and b"c OK" not in data
    sock.close()
    client = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=certs.client_context())
    answers = iter([b"u4", b"pw-4"])
    assert client.authenticate("LOGIN", lambda _challenge: next(answers))[0] == "OK"
    client.logout()


def test_wrong_password_fails_and_penalty_delays_next(start_proxy: StartProxy,
                                                      certs: Certs) -> None:
    proxy = start_proxy(f'auth_penalty_max = "15s"\nmetrics = "127.0.0.1:{free_port()}"')
    ctx = certs.client_context()
    client = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=ctx)
    t0 = time.monotonic()
    with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\]"):
        client.login("u5", "wrong")
    first = time.monotonic() - t0
    t1 = time.monotonic()
    with pytest.raises(imaplib.IMAP4.error, match=r"\[AUTHENTICATIONFAILED\] Authentication"):
        client.login("nosuchuser", "wrong")
    second = time.monotonic() - t1
    assert first < 1.0 and second >= 1.9  # the first failure costs the next 2 s
    t2 = time.monotonic()
    assert client.login("u5", "pw-5")[0] == "OK"  # delayed 4 s, then succeeds
    assert time.monotonic() - t2 >= 3.9
    client.logout()
    metrics_ok = [line for line in _metrics(proxy).splitlines()
                  if line.startswith('imapha_proxy_logins_total{backend="d')]
    assert any('outcome="failed"' in line for line in metrics_ok)


def _metrics(proxy: ProxyProcess) -> str:
    address = proxy.status()["metrics"]
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as resp:
        text: str = resp.read().decode()
    return text


def test_same_user_through_two_proxies_lands_on_one_backend(
        start_proxy: StartProxy, backends: Backends, certs: Certs) -> None:
    nodes = ("a", "b")
    port_a, port_b = free_port(), free_port()
    extra = f'auth_penalty_max = "0s"\nmetrics = "127.0.0.1:{port_a}"'
    pa = start_proxy(extra, nodes=nodes, node="a")
    pb = start_proxy(f'auth_penalty_max = "0s"\nmetrics = "127.0.0.1:{port_b}"',
                     nodes=nodes, node="b")
    for user in ("u6", "u7", "u8", "u9"):
        for proxy in (pa, pb):
            c = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=certs.client_context())
            c.login(user, USERS[user])
            c.logout()
        assert backends.which_logged_in(user) == [backend_of(user)]
    text = _metrics(pa)
    assert "imapha_proxy_backend_up_state{backend=\"d0\"} 1.0" in text
    assert "imapha_proxy_login_duration_seconds_bucket" in text


# -- backend failures -----------------------------------------------------------------


def test_killed_backend_bye_mid_session_and_next_login_elsewhere(
        start_proxy: StartProxy, certs: Certs) -> None:
    with Backends(2, USERS) as be:
        proxy = start_proxy('auth_penalty_max = "0s"', be=be)
        user = user_on(0)
        sock = tls_socket(certs, proxy.imaps_port)
        read_until(sock, b"\r\n")
        sock.sendall(f"a LOGIN {user} {USERS[user]}\r\nb SELECT INBOX\r\n".encode())
        read_until(sock, b"b OK")
        assert be.which_logged_in(user) == [0]
        be.servers[0].kill()
        data = read_until(sock, b"\r\n", limit=10)
        assert data.startswith(b"* BYE [UNAVAILABLE]")
        assert sock.recv(100) == b""  # then closed
        t0 = time.monotonic()
        c = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=certs.client_context())
        assert c.login(user, USERS[user])[0] == "OK"
        assert time.monotonic() - t0 < 5
        assert be.which_logged_in(user) == [0, 1]
        c.logout()
        deadline = time.monotonic() + 10
        while proxy.status()["backends"]["d0"]["up"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proxy.status()["backends"]["d0"]["up"] is False
        assert proxy.status()["ready"] is True  # d1 still serves
        be.servers[1].kill()
        deadline = time.monotonic() + 10
        while proxy.status()["ready"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proxy.status()["ready"] is False
        c = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=certs.client_context())
        with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\]"):
            c.login(user, USERS[user])


def _put_message(be: Backends, user: str, size: int) -> None:
    server = be.servers[0]
    maildir = server.maildir(user)
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    path = maildir / "new" / f"{time.time_ns()}.big.test"
    line = b"x" * 76 + b"\r\n"
    with path.open("wb") as fh:
        fh.write(b"From: a@example.org\r\nSubject: big\r\n\r\n")
        fh.write(line * (size // len(line)))
    for root, dirs, files in os.walk(server.maildir_root / user):
        for name in dirs + files:
            os.chown(os.path.join(root, name), server.mail_uid, server.mail_gid)
    os.chown(server.maildir_root / user, server.mail_uid, server.mail_gid)


def _fetch_start(certs: Certs, proxy: ProxyProcess, user: str) -> ssl.SSLSocket:
    sock = tls_socket(certs, proxy.imaps_port)
    read_until(sock, b"\r\n")
    sock.sendall(f"a LOGIN {user} {USERS[user]}\r\nb SELECT INBOX\r\n".encode())
    read_until(sock, b"b OK")
    sock.sendall(b"c FETCH 1 BODY.PEEK[]\r\n")
    return sock


def test_drain_lets_a_fetch_finish_then_bye(start_proxy: StartProxy, backends: Backends,
                                            certs: Certs) -> None:
    user = "u10"
    _put_message(backends, user, 4 << 20)
    proxy = start_proxy('auth_penalty_max = "0s"\ndrain_grace = "0s"')
    sock = _fetch_start(certs, proxy, user)
    first = sock.recv(1000)  # the FETCH is under way, most of it unread
    assert b"* 1 FETCH" in first
    idle = tls_socket(certs, proxy.imaps_port)
    read_until(idle, b"\r\n")
    idle.sendall(f"a LOGIN u11 {USERS['u11']}\r\n".encode())
    read_until(idle, b"a OK")
    assert proxy.request("POST", "/drain").ok
    assert read_until(idle, b"\r\n").startswith(b"* BYE [UNAVAILABLE]")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.imaps_port), timeout=2).close()
    time.sleep(0.5)
    rest = first + read_until(sock, b"* BYE", limit=20)
    body_end = rest.index(b"c OK")
    assert body_end > 4 << 20  # the whole message came before the tagged OK
    assert rest[body_end:].split(b"\r\n")[1].startswith(b"* BYE [UNAVAILABLE]")
    assert proxy.status()["ready"] is False
    assert proxy.request("POST", "/undrain").ok
    proxy.refresh_ports()
    c = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=certs.client_context())
    assert c.login("u12", USERS["u12"])[0] == "OK"
    c.logout()


def test_kick_and_drain_backend(start_proxy: StartProxy, certs: Certs) -> None:
    proxy = start_proxy()
    user = user_on(0, 1)
    sessions = []
    for _ in range(2):
        s = tls_socket(certs, proxy.imaps_port)
        read_until(s, b"\r\n")
        s.sendall(f"a LOGIN {user} {USERS[user]}\r\nb SELECT INBOX\r\nc IDLE\r\n".encode())
        read_until(s, b"+ ")
        sessions.append(s)
    reply = proxy.request("POST", "/kick", {"user": user.upper()})
    assert reply.ok and reply.body["sessions"] == 2
    for s in sessions:
        assert b"* BYE Session ended by an administrator" in read_until(s, b"* BYE")
    s = tls_socket(certs, proxy.imaps_port)
    read_until(s, b"\r\n")
    s.sendall(f"a LOGIN {user} {USERS[user]}\r\n".encode())
    read_until(s, b"a OK")
    assert proxy.status()["backends"]["d0"]["sessions"] == 1
    reply = proxy.request("POST", "/drain-backend", {"name": "d0"})
    assert reply.ok and reply.body["sessions"] == 1
    assert read_until(s, b"\r\n").startswith(b"* BYE [UNAVAILABLE]")
    c = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=certs.client_context())
    c.login(user, USERS[user])
    c.logout()
    status = proxy.status()["backends"]
    assert status["d0"]["draining"] is True and status["d0"]["sessions"] == 0
    assert proxy.request("POST", "/drain-backend", {"name": "nope"}).status == 404


# -- limits ----------------------------------------------------------------------------


def test_connection_command_line_and_time_limits(start_proxy: StartProxy,
                                                 certs: Certs) -> None:
    proxy = start_proxy('auth_penalty_max = "0s"\nmax_connections_per_ip = 3\n'
                        'max_connections = 4\n'
                        'max_prelogin_commands = 3\nprelogin_timeout = "1s"\n'
                        'max_line_length = "1KiB"')
    held = [socket.create_connection(("127.0.0.1", proxy.imap_port)) for _ in range(3)]
    for s in held:
        assert read_until(s, b"\r\n").startswith(b"* OK [CAPABILITY")
    extra = socket.create_connection(("127.0.0.1", proxy.imap_port))
    assert read_until(extra, b"\r\n").startswith(b"* BYE [LIMIT] Too many connections")
    fourth = socket.create_connection(("127.0.0.1", proxy.imap_port),
                                      source_address=("127.0.0.2", 0))
    assert read_until(fourth, b"\r\n").startswith(b"* OK")
    fifth = socket.create_connection(("127.0.0.1", proxy.imap_port),
                                     source_address=("127.0.0.3", 0))
    assert read_until(fifth, b"\r\n").startswith(b"* BYE [UNAVAILABLE] Too many connections")
    fourth.close()
    fifth.close()
    s0, s1, s2 = held
    s0.sendall(b"a NOOP\r\nb NOOP\r\nc NOOP\r\nd NOOP\r\n")
    assert b"* BYE [LIMIT] Too many commands before login" in read_until(s0, b"* BYE")
    s1.sendall(b"a " + b"X" * 2000 + b"\r\n")
    assert b"[TOOBIG]" in read_until(s1, b"\r\n")
    t0 = time.monotonic()
    assert b"* BYE [LIMIT] Disconnected for inactivity" in read_until(s2, b"* BYE")
    assert time.monotonic() - t0 < 2.5
    text = _metrics_if_any(proxy)
    assert text is None or "max_connections_per_ip" in text
    for s in (*held, extra):
        s.close()


def _metrics_if_any(proxy: ProxyProcess) -> str | None:
    return _metrics(proxy) if proxy.status().get("metrics") else None


# -- robustness and resources -----------------------------------------------------------


def test_fuzzed_prelogin_never_disturbs_a_session(start_proxy: StartProxy,
                                                   certs: Certs) -> None:
    proxy = start_proxy('auth_penalty_max = "0s"\nmax_connections_per_ip = 1000')
    session = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=certs.client_context())
    session.login("u13", USERS["u13"])
    session.select("INBOX")
    rng = random.Random(1234)
    pieces = [b"a LOGIN ", b"{5}\r\n", b"{99999999}\r\n", b"\r\n", b"\x00", b"\xff" * 10,
              b"AUTHENTICATE PLAIN", b" =", b"(", b")" * 40, b'"', b"\\", b"ID (", b" NIL",
              b"STARTTLS\r\n", b"* ", b"+ ", b"~{3+}\r\nabc"]
    for _ in range(60):
        blob = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))
        if rng.random() < 0.3:
            blob += os.urandom(rng.randint(1, 300))
        s = socket.create_connection(("127.0.0.1", proxy.imap_port), timeout=5)
        try:
            s.sendall(blob)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(2)
            while s.recv(65536):
                pass
        except OSError:
            pass
        finally:
            s.close()
    assert session.noop()[0] == "OK"
    assert session.select("INBOX")[0] == "OK"
    session.logout()
    assert proxy.proc is not None and proxy.proc.poll() is None


@pytest.mark.slow
def test_large_fetch_to_a_stalled_client_keeps_rss_flat(start_proxy: StartProxy,
                                                        backends: Backends,
                                                        certs: Certs) -> None:
    user = "u14"
    size = 50 << 20
    _put_message(backends, user, size)
    proxy = start_proxy()
    before = proxy.rss_kib()
    sock = _fetch_start(certs, proxy, user)
    peak = before
    deadline = time.monotonic() + 3  # the client reads nothing for 3 s
    while time.monotonic() < deadline:
        peak = max(peak, proxy.rss_kib())
        time.sleep(0.1)
    got = 0
    tail = b""
    while b"c OK" not in tail:
        chunk = sock.recv(1 << 16)
        assert chunk, "connection closed early"
        got += len(chunk)
        tail = (tail + chunk)[-200:]
        if got % (8 << 20) < (1 << 16):
            peak = max(peak, proxy.rss_kib())
            time.sleep(0.05)  # still slower than the backend
    peak = max(peak, proxy.rss_kib())
    assert got > size
    assert peak - before < 6 * 1024, f"RSS grew by {peak - before} KiB"
    sock.close()


def test_metrics_names_are_exported(start_proxy: StartProxy, certs: Certs) -> None:
    port = free_port()
    proxy = start_proxy(f'auth_penalty_max = "0s"\nmetrics = "127.0.0.1:{port}"')
    c = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=certs.client_context())
    c.login("u15", USERS["u15"])
    c.select("INBOX")
    c.logout()
    time.sleep(0.2)
    text = _metrics(proxy)
    for name in ("imapha_proxy_connections_active", "imapha_proxy_connections_total",
                 'imapha_proxy_logins_total{backend="d', "imapha_proxy_relayed_bytes_total",
                 "imapha_proxy_sessions_active", "imapha_proxy_health_probes_total"):
        assert name in text, name
    relayed = [line for line in text.splitlines()
               if line.startswith('imapha_proxy_relayed_bytes_total{direction="to_client"}')]
    assert relayed and float(relayed[0].split()[-1]) > 0




def test_sighup_reloads_certificate_and_rejects_listener_change(start_proxy: StartProxy,
                                                                 certs: Certs) -> None:
    proxy = start_proxy()
    first = tls_socket(certs, proxy.imaps_port)
    old_der = first.getpeercert(binary_form=True)
    first.close()
    cert_file = Path(proxy.status()["config"]).parent / "new-cert.pem"
    key_file = cert_file.with_name("new-key.pem")
    fresh = certs.ca.issue_cert("localhost", "127.0.0.1")
    fresh.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(b.bytes() for b in fresh.cert_chain_pems))
    config = Path(proxy.status()["config"])
    text = config.read_text()
    config.write_text(text.replace(str(certs.cert_path), str(cert_file))
                      .replace(str(certs.key_path), str(key_file)))
    assert proxy.proc is not None
    proxy.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while proxy.status()["reloads"]["applied"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    second = tls_socket(certs, proxy.imaps_port)
    assert second.getpeercert(binary_form=True) != old_der
    second.close()
    config.write_text(config.read_text().replace('imap = ["127.0.0.1:0"]',
                                                 'imap = ["127.0.0.1:1"]'))
    proxy.proc.send_signal(signal.SIGHUP)
    while proxy.status()["reloads"]["rejected"] < 1 and time.monotonic() < deadline + 10:
        time.sleep(0.05)
    assert "proxy.imap cannot change live" in proxy.status()["last_reload"]


def test_backend_tls_verified_id_forwarded_and_bad_ca_falls_back(
        start_proxy: StartProxy, tmp_path: Path, certs: Certs) -> None:
    other_ca = Certs(tmp_path)  # a CA the backends' certificate does not come from
    with Backends(2, USERS, ssl_files=(certs.cert_path, certs.key_path)) as be:
        good = (f'tls_ca = "{certs.ca_path}"', f'tls_ca = "{certs.ca_path}"')
        bad = (f'tls_ca = "{other_ca.ca_path}"', good[1])
        for n, cas in enumerate((good, bad)):
            directory = tmp_path / f"tls-{n}"
            directory.mkdir()
            cfg = proxy_config(directory, [], certs,
                               extra='auth_penalty_max = "0s"\nprobe_user = "probe"\n'
                                     'probe_password = "probe-pw"')
            cfg.write_text(cfg.read_text() + "\n".join([
                "[[backends]]", 'name = "d0"', f'address = "127.0.0.1:{be.servers[0].imap_port}"',
                'tls = "starttls"', cas[0],
                "[[backends]]", 'name = "d1"',
                f'address = "127.0.0.1:{be.servers[1].imaps_port}"', 'tls = "implicit"', cas[1],
            ]) + "\n")
            proxy = ProxyProcess(cfg).start()
            try:
                status = proxy.status()["backends"]
                d0_ok = cas[0] == good[0]
                assert status["d0"]["up"] is d0_ok and status["d1"]["up"] is True
                for index in (0, 1):
                    user = user_on(index, 2 if d0_ok else 3)
                    c = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port,
                                          ssl_context=certs.client_context())
                    c.login(user, USERS[user])
                    c.logout()
                    lands = index if d0_ok else 1
                    lines = [line for line in be.servers[lands].log_text().splitlines()
                             if f"Login: user=<{user}>" in line]
                    assert lines and ", TLS" in lines[-1], lines
                    ours = [line for line in proxy.log().splitlines()
                            if f"'{user}' from 127.0.0.1 logged in" in line]
                    session = ours[-1].split("session ", 1)[1].split(":", 1)[0]
                    assert f"session=<{session}>" in lines[-1]  # x-session-id honoured
            finally:
                proxy.stop()


# -- the static user map --------------------------------------------------------------


def _landed_on(backends: Backends, certs: Certs, proxy: ProxyProcess, user: str) -> int:
    """Log ``user`` in through ``proxy``; the index of the Dovecot that got the login."""
    needle = f"Login: user=<{user}>"
    before = [s.log_text().count(needle) for s in backends.servers]
    c = imaplib.IMAP4_SSL("127.0.0.1", proxy.imaps_port, ssl_context=certs.client_context())
    c.login(user, USERS[user])
    c.logout()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        counts = [s.log_text().count(needle) for s in backends.servers]
        grown = [i for i, n in enumerate(counts) if n > before[i]]
        if grown:
            return grown[0]
        time.sleep(0.05)
    raise AssertionError(f"no Dovecot logged {user}'s login")


def _replace(path: Path, text: str) -> None:
    """Save as editors do: a new file renamed over the old one."""
    tmp = path.with_suffix(".new")
    tmp.write_text(text)
    tmp.replace(path)


def test_user_map_pins_users_and_follows_edits_live(
        start_proxy: StartProxy, backends: Backends, certs: Certs, tmp_path: Path) -> None:
    user = user_on(0, skip=2)  # hashed to d0
    umap = tmp_path / "users.map"
    umap.write_text(f"{user} d1\n")
    proxy = start_proxy(f'auth_penalty_max = "0s"\nuser_map = "{umap}"')
    assert _landed_on(backends, certs, proxy, user) == 1  # pinned against the hash
    _replace(umap, f"# back home\n{user} d0\n")
    deadline = time.monotonic() + 10
    while _landed_on(backends, certs, proxy, user) != 0:  # no restart, no SIGHUP
        assert time.monotonic() < deadline, "the edit was not picked up"
        time.sleep(0.2)
    _replace(umap, f"{user} d1 extra-field\n")  # a bad edit
    deadline = time.monotonic() + 10
    while "users.map:1" not in proxy.status()["user_map_error"]:
        assert time.monotonic() < deadline, proxy.status()
        time.sleep(0.1)
    assert _landed_on(backends, certs, proxy, user) == 0  # the old map stays in force
    assert "the previous map stays in force" in proxy.log()


def test_vipd_reports_its_state_for_a_vip(start_proxy: StartProxy) -> None:
    proxy = start_proxy()
    reply = proxy.request("POST", "/vip", {"vip": "imap1", "state": "master",
                                           "address": "192.0.2.101", "vrid": 51, "node": "a"})
    assert reply.ok, reply.body
    assert proxy.status()["vips"] == {"imap1": "master"}
    bad = proxy.request("POST", "/vip", {"vip": "imap1", "state": "boss"})
    assert bad.status == 400
    assert proxy.status()["vips"] == {"imap1": "master"}
