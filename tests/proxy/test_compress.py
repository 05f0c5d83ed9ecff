"""COMPRESS=DEFLATE (RFC 4978) passes through the proxy, and a kick still ends it."""

from __future__ import annotations

import socket
import ssl
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from imapha.proxy.relay import END_WITHIN
from tests.prereq import need_binary
from tests.proxy.harness import Backends, Certs, ProxyProcess, proxy_config

USERS = {"zed": "pw-zed", "probe": "probe-pw"}
ZLIB = """
mail_plugins = $mail_plugins zlib
protocol imap {
  mail_plugins = $mail_plugins imap_zlib
}
"""


@pytest.fixture(scope="module")
def backends() -> Iterator[Backends]:
    need_binary("dovecot")
    be = Backends(1, USERS, extra_config=ZLIB)
    try:
        yield be.start()
    finally:
        be.stop()


def _read_line(sock: ssl.SSLSocket, inflate: zlib._Decompress | None, buf: bytearray) -> bytes:
    deadline = time.monotonic() + 10
    while b"\r\n" not in buf:
        assert time.monotonic() < deadline, bytes(buf)
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed; got {bytes(buf)!r}")
        buf += inflate.decompress(data) if inflate else data
    line, _, rest = bytes(buf).partition(b"\r\n")
    buf[:] = rest
    return line


def test_compress_deflate_passes_through_and_kick_still_ends_it(
        backends: Backends, tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    certs = Certs(tmp_path / "certs")
    cfg = proxy_config(tmp_path, [("z0", "127.0.0.1", backends.servers[0].imap_port)], certs,
                       extra='auth_penalty_max = "0s"')
    with ProxyProcess(cfg) as proxy:
        raw = socket.create_connection(("127.0.0.1", proxy.imaps_port), timeout=10)
        sock = certs.client_context().wrap_socket(raw, server_hostname="localhost")
        buf = bytearray()
        assert _read_line(sock, None, buf).startswith(b"* OK")
        sock.sendall(b"a LOGIN zed pw-zed\r\n")
        ok = _read_line(sock, None, buf)
        assert ok.startswith(b"a OK") and b"COMPRESS=DEFLATE" in ok, ok
        sock.sendall(b"b COMPRESS DEFLATE\r\n")
        assert _read_line(sock, None, buf).startswith(b"b OK")
        deflate = zlib.compressobj(wbits=-15)
        inflate = zlib.decompressobj(wbits=-15)

        def send(line: bytes) -> None:
            sock.sendall(deflate.compress(line) + deflate.flush(zlib.Z_SYNC_FLUSH))

        send(b"c SELECT INBOX\r\n")
        lines = []
        while not (line := _read_line(sock, inflate, buf)).startswith(b"c "):
            lines.append(line)
        assert line.startswith(b"c OK"), line
        assert any(b"UIDVALIDITY" in x for x in lines)
        send(b"d NOOP\r\n")
        while not (line := _read_line(sock, inflate, buf)).startswith(b"d "):
            pass
        assert line.startswith(b"d OK")
        # The relay cannot see a safe point in deflated streams: a kick ends the
        # session at its hard deadline instead.
        kicked = time.monotonic()
        assert proxy.request("POST", "/kick", {"user": "zed"})
        sock.settimeout(END_WITHIN + 10)
        with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
            while True:
                _read_line(sock, inflate, buf)
        took = time.monotonic() - kicked
        assert END_WITHIN - 1 <= took <= END_WITHIN + 5, took
        sock.close()
