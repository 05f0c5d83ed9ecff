"""Ask a real Dovecot what it answers to FETCH for the corpus (the test oracle).

The messages are written straight into the user's Maildir ``new/`` (as the mail
user), so Dovecot serves the very bytes our parser reads. Responses are read raw
from a socket, literals included, every wait bounded.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: mtime (INTERNALDATE) of the first message; each next one is an hour later.
BASE_TIME = 1_700_000_000
_LITERAL_END = re.compile(rb"\{(\d+)\}\r\n$")


class RawImap:
    """A minimal blocking IMAP client that returns responses as raw bytes."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""
        self.n = 0
        self._read_line()  # greeting

    def _read_line(self) -> bytes:
        deadline = time.monotonic() + 10
        while b"\r\n" not in self.buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no line from Dovecot")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Dovecot closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def _read_exact(self, n: int) -> bytes:
        deadline = time.monotonic() + 10
        while len(self.buf) < n:
            if time.monotonic() > deadline:
                raise TimeoutError("short literal from Dovecot")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Dovecot closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_response(self) -> bytes:
        """One whole response: a line plus every literal and continuation it announces."""
        out = b""
        for _ in range(10000):
            line = self._read_line()
            out += line
            m = _LITERAL_END.search(line)
            if m is None:
                return out
            out += self._read_exact(int(m[1]))
        raise RuntimeError("response too long")

    def command(self, text: bytes) -> tuple[list[bytes], bytes]:
        """Untagged responses and the tagged one."""
        self.n += 1
        tag = b"t%d" % self.n
        self.sock.sendall(tag + b" " + text + b"\r\n")
        untagged: list[bytes] = []
        for _ in range(100000):
            resp = self._read_response()
            if resp.startswith(tag + b" "):
                if not resp.startswith(tag + b" OK"):
                    raise RuntimeError(f"Dovecot said {resp!r} to {text!r}")
                return untagged, resp
            untagged.append(resp)
        raise RuntimeError("no tagged response")

    def fetch(self, seq: int, item: str) -> bytes:
        """The FETCH response's payload after ``* seq FETCH (`` up to the final ``)``."""
        untagged, _ = self.command(b"FETCH %d (%s)" % (seq, item.encode()))
        prefix = b"* %d FETCH (" % seq
        for resp in untagged:
            if resp.startswith(prefix):
                return resp[len(prefix) : -3]
        raise RuntimeError(f"no FETCH response for {seq} {item}")

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.command(b"LOGOUT")
        self.sock.close()


def deliver_files(maildir: Path, messages: list[bytes], uid: int, gid: int) -> None:
    """Write the messages into Maildir/new in order, owned by the mail user."""
    for sub in ("", "cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
        os.chown(maildir / sub, uid, gid)
    os.chown(maildir.parent, uid, gid)
    for i, raw in enumerate(messages):
        path = maildir / "new" / f"{BASE_TIME + i}.M{i}P1.imapha-test"
        path.write_bytes(raw)
        os.chown(path, uid, gid)
        t = BASE_TIME + i * 3600
        os.utime(path, (t, t))


@contextmanager
def dovecot_with(messages: list[bytes]) -> Iterator[RawImap]:
    import shutil

    from imapha.lab.dovecot import DovecotServer, traversable_dir

    root = traversable_dir("imapha-servermsg-")
    try:
        with DovecotServer(root, {"alice": "pw"}) as dv:
            deliver_files(dv.maildir("alice"), messages, dv.mail_uid, dv.mail_gid)
            client = RawImap(dv.listen, dv.imap_port)
            try:
                client.command(b"LOGIN alice pw")
                client.command(b"SELECT INBOX")
                yield client
            finally:
                client.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def search_args(*parts: str | bytes) -> bytes:
    """SEARCH arguments on one line: ``str`` as is, ``bytes`` as a LITERAL+ string."""
    out = b""
    for part in parts:
        out += b" " if out else b""
        if isinstance(part, str):
            out += part.encode()
        else:
            out += b"{%d+}\r\n" % len(part) + part
    return out


def dovecot_search(client: RawImap, args: bytes) -> set[int] | None:
    """Sequence numbers Dovecot finds, or None if it refuses the command."""
    try:
        untagged, _ = client.command(b"SEARCH " + args)
    except RuntimeError:
        return None
    found: set[int] = set()
    for resp in untagged:
        if resp.startswith(b"* SEARCH"):
            found.update(int(n) for n in resp[8:].split())
    return found
