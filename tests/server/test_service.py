"""``imapha backend`` as a daemon: STARTTLS, trusted-proxy ID, metrics, kick, drain, stop."""

from __future__ import annotations

import imaplib
import re
import shutil
import socket
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from imapha.lab.dovecot import traversable_dir
from tests.prereq import need_binary
from tests.server.harness import ImaphaBackend, Raw, free_port

USERS = {f"user{i}": f"pw-{i}" for i in range(10)}


class Certs:
    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.ca_path = directory / "ca.pem"
        self.cert_path = directory / "cert.pem"
        self.key_path = directory / "key.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        cert.private_key_pem.write_to_path(str(self.key_path))
        cert.cert_chain_pems[0].write_to_path(str(self.cert_path))


@pytest.fixture(scope="module")
def backend() -> Iterator[tuple[ImaphaBackend, Certs, int]]:
    need_binary("doveadm")
    root = traversable_dir("imapha-backend-svc-")
    certs = Certs(root)
    metrics_port = free_port()
    extra = (f'tls_cert = "{certs.cert_path}"\ntls_key = "{certs.key_path}"\n'
             f'metrics = "127.0.0.1:{metrics_port}"')
    try:
        with ImaphaBackend(root / "imapha", USERS, root / "mail", extra=extra) as be:
            yield be, certs, metrics_port
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_starttls_then_login(backend: tuple[ImaphaBackend, Certs, int]) -> None:
    be, certs, _ = backend
    m: Any = imaplib.IMAP4(be.host, be.imap_port)
    try:
        assert "STARTTLS" in m.capabilities
        m.starttls(_context(certs))
        m._get_capabilities()
        assert "STARTTLS" not in m.capabilities
        assert m.login("user1", "pw-1")[0] == "OK"
        assert m.select("INBOX")[0] == "OK"
    finally:
        m.logout()


def _context(certs: Certs) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certs.ca_path))


def test_plaintext_injected_after_starttls_is_ignored(
        backend: tuple[ImaphaBackend, Certs, int]) -> None:
    be, certs, _ = backend
    with socket.create_connection((be.host, be.imap_port), timeout=10) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"s1 STARTTLS\r\ns2 LOGIN user2 pw-2\r\n")
        assert f.readline().startswith(b"s1 OK")
        tls = _context(certs).wrap_socket(sock, server_hostname="localhost")
        tls.sendall(b"s3 NOOP\r\n")
        reply = tls.recv(4096)
        assert reply.startswith(b"s3 OK"), reply  # s2 never ran
        tls.close()


def test_trusted_proxy_id_sets_the_client_address(
        backend: tuple[ImaphaBackend, Certs, int]) -> None:
    be, _, _ = backend
    with Raw(be.host, be.imap_port) as c:
        c.ok('ID ("x-originating-ip" "203.0.113.77" "x-originating-port" "40000")')
        c.ok("LOGIN user3 pw-3")
    deadline = time.monotonic() + 5
    while "login user=user3 from 203.0.113.77" not in be.log():
        assert time.monotonic() < deadline, be.log()
        time.sleep(0.05)


def test_metrics_count_commands_and_sessions(backend: tuple[ImaphaBackend, Certs, int]) -> None:
    be, _, port = backend
    with Raw(be.host, be.imap_port) as c:
        c.ok("LOGIN user4 pw-4")
        c.ok("SELECT INBOX")
        c.command("LOGIN user4 pw-4")  # wrong state: BAD
    deadline = time.monotonic() + 5
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        if re.search(rb'imapha_backend_commands_total\{command="SELECT",status="OK"\} [1-9]', text):
            break
        assert time.monotonic() < deadline, text.decode()
        time.sleep(0.05)
    assert re.search(rb'imapha_backend_commands_total\{command="LOGIN",status="BAD"\} [1-9]', text)
    assert b"imapha_backend_command_duration_seconds_bucket" in text
    assert re.search(rb"imapha_backend_logins_total [1-9]", text)


def test_kick_ends_a_users_sessions(backend: tuple[ImaphaBackend, Certs, int]) -> None:
    be, _, _ = backend
    with Raw(be.host, be.imap_port) as c, Raw(be.host, be.imap_port) as other:
        c.ok("LOGIN user5 pw-5")
        other.ok("LOGIN user6 pw-6")
        c.ok("SELECT INBOX")
        tag = c.tag()
        c.send(f"{tag} IDLE\r\n".encode())
        assert c.read_line().startswith(b"+")
        reply = be.request("POST", "/kick", {"user": "user5"})
        assert reply.body["sessions"] == 1
        assert c.read_line(timeout=5).startswith(b"* BYE [UNAVAILABLE]")
        other.ok("NOOP")


def test_drain_says_bye_and_stops_listening_then_undrain() -> None:
    need_binary("doveadm")
    root = traversable_dir("imapha-backend-drain-")
    try:
        with ImaphaBackend(root / "imapha", USERS, root / "mail") as be:
            c = Raw(be.host, be.imap_port)
            c.ok("LOGIN user1 pw-1")
            c.ok("SELECT INBOX")
            tag = c.tag()
            c.send(f"{tag} IDLE\r\n".encode())
            assert c.read_line().startswith(b"+")
            assert be.request("POST", "/drain").status == 200
            assert c.read_line(timeout=5).startswith(b"* BYE [UNAVAILABLE]")
            with pytest.raises(OSError):
                socket.create_connection((be.host, be.imap_port), timeout=2).close()
            assert be.request("GET", "/ready").status != 200
            assert be.request("POST", "/undrain").status == 200
            port = next(int(x["address"].rsplit(":", 1)[1]) for x in be.status()["listeners"]
                        if x["kind"] == "imap")
            with Raw(be.host, port) as again:
                again.ok("LOGIN user1 pw-1")
            assert be.stop() == 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def test_slow_reader_of_a_big_fetch_costs_bounded_memory(
        backend: tuple[ImaphaBackend, Certs, int]) -> None:
    be, _, _ = backend
    assert be.proc is not None
    big = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 1000  # ~1 MB
    with Raw(be.host, be.imap_port, timeout=60) as c:
        c.ok("LOGIN user7 pw-7")
        for _ in range(40):
            tag = c.tag()
            c.send(f"{tag} APPEND INBOX {{{len(big)}+}}\r\n".encode() + big + b"\r\n")
            c.collect(tag)
        c.ok("SELECT INBOX")
        c.ok("FETCH 1 BODY.PEEK[]")  # warm up: parse paths, buffers
        before = _rss_kib(be.proc.pid)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(b"big FETCH 1:* BODY.PEEK[]\r\n")
        time.sleep(2.0)  # not reading: the server must stop producing
        grown = _rss_kib(be.proc.pid) - before
        _, tagged = c.collect("big")
        assert b"big OK" in tagged
    assert grown < 20_000, f"RSS grew {grown} KiB while the reader stalled (40 MB response)"


def test_unready_while_the_maildir_root_is_gone(
        backend: tuple[ImaphaBackend, Certs, int]) -> None:
    be, _, _ = backend
    root = be.maildir_root
    aside = root.with_name(root.name + ".aside")

    def ready() -> bool:
        return bool(be.request("GET", "/ready").status == 200)

    def wait_for(want: bool) -> None:
        deadline = time.monotonic() + 5
        while ready() != want:
            assert time.monotonic() < deadline, f"ready never became {want}"
            time.sleep(0.1)

    wait_for(True)
    root.rename(aside)
    try:
        wait_for(False)
        assert "maildir root" in be.status()["reason"]
    finally:
        aside.rename(root)
    wait_for(True)


def test_failed_logins_are_answered_late_and_hold_what_follows() -> None:
    # A client straight from the network (no trusted proxy in front): the
    # proxy's penalty, 2 s after the first failure from an address, 4 s after
    # the second; a login pipelined behind a failure waits for it.
    need_binary("doveadm")
    root = traversable_dir("imapha-backend-penalty-")
    try:
        with ImaphaBackend(root / "imapha", USERS, root / "mail", lmtp=False,
                           trusted="") as be:
            with Raw(be.host, be.imap_port) as c:
                start = time.monotonic()
                c.send(b"a LOGIN user1 wrong\r\nb LOGIN user1 pw-1\r\n")
                first = c.read_line(timeout=10)
                failed_after = time.monotonic() - start
                second = c.read_line(timeout=10)
            assert first.startswith(b"a NO [AUTHENTICATIONFAILED]")
            assert second.startswith(b"b OK")
            assert 1.9 <= failed_after < 3.5
            with Raw(be.host, be.imap_port) as c:
                c.ok("LOGIN user1 pw-1")  # a success is never delayed ...
            with Raw(be.host, be.imap_port) as c:
                start = time.monotonic()
                _, tagged = c.command("LOGIN user2 wrong")
                assert tagged.split()[1] == b"NO"
                assert 1.9 <= time.monotonic() - start < 3.5  # ... and it reset the count
                start = time.monotonic()
                _, tagged = c.command("LOGIN user2 wrong-again")
                assert tagged.split()[1] == b"NO"
                assert 3.9 <= time.monotonic() - start < 6.0
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_trusted_proxy_is_not_penalized(backend: tuple[ImaphaBackend, Certs, int]) -> None:
    # The proxy in front penalizes the client's address itself, first hand.
    be, _, _ = backend
    with Raw(be.host, be.imap_port) as c:
        for attempt in range(3):
            start = time.monotonic()
            _, tagged = c.command(f"LOGIN user3 wrong-{attempt}")
            assert tagged.split()[1] == b"NO"
            assert time.monotonic() - start < 1.0
