"""The Dovecot runner: a real Dovecot 2.3 starts, serves IMAP/LMTP/TLS, stops and dies."""

from __future__ import annotations

import imaplib
import os
import smtplib
import socket
import ssl
import sys
from pathlib import Path

import pytest

from imapha.lab.dovecot import DovecotError, DovecotServer, _descendants
from tests.prereq import need_binary, need_root


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_login_select_and_lmtp_delivery(dovecot_dir: Path) -> None:
    with DovecotServer(dovecot_dir, {"alice": "s3cret", "bob": "pw2"}, lmtp=True) as dv:
        assert dv.running and dv.imap_port > 0 and dv.lmtp_port > 0
        lmtp = smtplib.LMTP(dv.listen, dv.lmtp_port)
        try:
            refused = lmtp.sendmail("x@example.org", ["alice"], b"Subject: hi\r\n\r\nbody\r\n")
        finally:
            lmtp.quit()
        assert refused == {}
        imap = imaplib.IMAP4(dv.listen, dv.imap_port)
        try:
            assert imap.login("alice", "s3cret")[0] == "OK"
            typ, data = imap.select("INBOX")
            assert (typ, data) == ("OK", [b"1"])
            typ, fetched = imap.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK"
            assert b"Subject: hi" in repr(fetched).encode()
        finally:
            imap.logout()
        with pytest.raises(imaplib.IMAP4.error):
            imaplib.IMAP4(dv.listen, dv.imap_port).login("bob", "wrong")
        files = list((dv.maildir("alice") / "new").iterdir())
        files += list((dv.maildir("alice") / "cur").iterdir())
        assert len(files) == 1
        assert "s3cret" not in dv.passwd_path.read_text()
    assert not dv.running


def test_id_forwarding_from_trusted_network(dovecot_dir: Path) -> None:
    with DovecotServer(dovecot_dir, {"alice": "pw"}) as dv:
        with socket.create_connection((dv.listen, dv.imap_port), timeout=10) as sock:
            stream = sock.makefile("rwb")
            assert stream.readline().startswith(b"* OK")
            stream.write(b'a ID ("x-originating-ip" "192.0.2.77" "x-originating-port" "40000")\r\n')
            stream.write(b"b LOGIN alice pw\r\nc LOGOUT\r\n")
            stream.flush()
            replies = stream.read()
        assert b"a OK" in replies and b"b OK" in replies
        dv.stop()
        assert "user=<alice>" in dv.log_text()
        assert "rip=192.0.2.77" in dv.log_text()


def test_implicit_tls(dovecot_dir: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(dovecot_dir / "cert.pem"))
    cert.private_key_pem.write_to_path(str(dovecot_dir / "key.pem"))
    with DovecotServer(
        dovecot_dir, {"alice": "pw"}, ssl=(dovecot_dir / "cert.pem", dovecot_dir / "key.pem")
    ) as dv:
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        imap = imaplib.IMAP4_SSL("127.0.0.1", dv.imaps_port, ssl_context=ctx)
        assert imap.login("alice", "pw")[0] == "OK"
        imap.logout()
        plain = imaplib.IMAP4(dv.listen, dv.imap_port)
        assert "STARTTLS" in plain.capabilities
        plain.starttls(ctx)
        assert plain.login("alice", "pw")[0] == "OK"
        plain.logout()


def test_proxy_mode_forwards_to_backend(dovecot_dir: Path) -> None:
    backend = DovecotServer(dovecot_dir / "be", {"alice": "pw"}, dovecot_dir / "mail")
    with backend:
        proxy = DovecotServer(
            dovecot_dir / "px",
            {"alice": "pw"},
            proxy_mode=True,
            proxy_to=("127.0.0.1", backend.imap_port),
        )
        with proxy:
            imap = imaplib.IMAP4(proxy.listen, proxy.imap_port)
            assert imap.login("alice", "pw")[0] == "OK"
            assert imap.select("INBOX")[0] == "OK"
            imap.logout()
        backend.stop()
        assert "user=<alice>" in backend.log_text()
        assert "proxy(alice," in proxy.log_text()
        assert "Started proxying" in proxy.log_text()


def test_kill_leaves_no_process_and_restart_works(dovecot_dir: Path) -> None:
    dv = DovecotServer(dovecot_dir, {"alice": "pw"})
    dv.start()
    try:
        imap = imaplib.IMAP4(dv.listen, dv.imap_port)
        imap.login("alice", "pw")  # an imap process exists now
        family = [dv.pid, *_descendants(dv.pid)]
        assert len(family) > 3
        dv.kill()
        assert not any(_alive(pid) for pid in family)
        dv.start()
        assert dv.pid not in family
        assert imaplib.IMAP4(dv.listen, dv.imap_port).login("alice", "pw")[0] == "OK"
    finally:
        dv.stop()
    assert not dv.running


def test_untraversable_root_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root runs mail processes as another user")
    tmp_path.parent.chmod(0o700)
    with pytest.raises(DovecotError, match="not traversable"):
        DovecotServer(tmp_path / "dv", {"alice": "pw"}).start()


def test_start_failure_reports_the_log(dovecot_dir: Path) -> None:
    dv = DovecotServer(dovecot_dir, {"alice": "pw"}, extra_config="no_such_setting = 1\n")
    with pytest.raises(DovecotError, match="no_such_setting"):
        dv.start()
    assert not dv.running


CLIENT_SCRIPT = """
import imaplib, sys
imap = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]), timeout=20)
print(imap.login("alice", "pw")[0], imap.select("INBOX")[0])
imap.logout()
"""


def test_runs_inside_a_lab_namespace(dovecot_dir: Path, tmp_path: Path) -> None:
    need_root()
    need_binary("ip")
    from imapha.lab.topology import Lab

    with Lab(workdir=tmp_path / "lab") as lab:
        host = lab.add_host("dv", ["192.0.2.31/24"])
        client = lab.add_client("cl", ["192.0.2.131/24"])
        dv = DovecotServer(dovecot_dir, {"alice": "pw"}, listen="192.0.2.31",
                           spawn=host.spawn)
        with dv:
            assert dv.pid in host.pids()
            done = client.run([sys.executable, "-c", CLIENT_SCRIPT, "192.0.2.31",
                               str(dv.imap_port)], timeout=60)
            assert done.stdout.split() == ["OK", "OK"]
            dv.kill()
            assert not dv.running
            assert not [pid for pid in host.pids() if _alive(pid)]
