"""Real servers for the backend's tests: ``imapha backend`` as a subprocess and Dovecot.

``ImaphaBackend`` writes a cluster config and a Dovecot-format passwd-file
(SHA512-CRYPT hashes made by ``doveadm pw``) and runs ``python -m imapha
backend``; its ports are read back from ``/status``. ``Target`` is what a
conformance test gets, whichever server it is: host, port, users, the Maildir
root. :class:`Raw` is a minimal blocking IMAP client that returns responses as
bytes, literals included, every wait bounded, for exact wire checks.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imapha import control
from imapha.lab.dovecot import hash_password

ROOT = Path(__file__).resolve().parents[2]
_LITERAL_END = re.compile(rb"\{(\d+)\+?\}\r\n$")


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_passwd(path: Path, users: dict[str, str]) -> None:
    hashes: dict[str, str] = {}
    rows = []
    for name, password in sorted(users.items()):
        if password not in hashes:
            hashes[password] = hash_password(password)
        rows.append(f"{name}:{hashes[password]}::::::")
    path.write_text("\n".join(rows) + "\n")


class ImaphaBackend:
    """``python -m imapha backend`` on loopback ports chosen by the OS."""

    def __init__(self, root: Path, users: dict[str, str], maildir_root: Path, *,
                 node: str = "a", lmtp: bool = True, extra: str = "",
                 trusted: str = "127.0.0.0/8") -> None:
        self.root = Path(root)
        self.users = dict(users)
        self.maildir_root = Path(maildir_root)
        self.node = node
        self.lmtp = lmtp
        self.extra = extra
        self.trusted = trusted
        self.config = self.root / f"imapha-{node}.toml"
        self.passwd = self.root / "imapha-passwd"
        self.log_path = self.root / f"backend-{node}.log"
        self.socket = self.root / node / "run" / "backend.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = "127.0.0.1"
        self.imap_port = 0
        self.lmtp_port = 0

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.maildir_root.mkdir(parents=True, exist_ok=True)
        if not self.passwd.exists():
            write_passwd(self.passwd, self.users)
        lines = [
            "[cluster]", 'name = "t"',
            f"run_dir = {_toml(str(self.root / '{node}' / 'run'))}",
            f"state_dir = {_toml(str(self.root / '{node}' / 'state'))}",
            f"[nodes.{self.node}]", 'address = "127.0.0.1"', 'interface = "lo"',
            "[backend]", 'imap = ["127.0.0.1:0"]',
            f"maildir_root = {_toml(str(self.maildir_root))}",
            f"passwd_file = {_toml(str(self.passwd))}",
            f"trusted_proxies = [{_toml(self.trusted)}]" if self.trusted else
            "trusted_proxies = []",
        ]
        if self.lmtp:
            lines.append('lmtp = "127.0.0.1:0"')
        lines += [self.extra, "[[backends]]", 'name = "b1"', 'address = "127.0.0.1:1"']
        self.config.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 20.0) -> ImaphaBackend:
        self.write_config()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "imapha", "backend", "--config", str(self.config),
                 "--node", self.node], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"backend exited {self.proc.returncode}:\n{self.log()}")
            try:
                st = self.status()
            except control.ControlClientError:
                time.sleep(0.05)
                continue
            if st.get("state") == "running" and st.get("ready"):
                for listener in st["listeners"]:
                    port = int(listener["address"].rsplit(":", 1)[1])
                    if listener["kind"] == "imap":
                        self.imap_port = port
                    elif listener["kind"] == "lmtp":
                        self.lmtp_port = port
                return self
            time.sleep(0.05)
        raise RuntimeError(f"backend not ready in {timeout}s:\n{self.log()}")

    def request(self, method: str, target: str, body: dict[str, Any] | None = None) -> Any:
        return control.request(self.socket, method, target, body, timeout=5.0)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = self.request("GET", "/status").body
        return body

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 15.0) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        return proc.returncode

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> ImaphaBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Target:
    """One running server as a test sees it."""

    kind: str  # "imapha" or "dovecot"
    host: str
    port: int
    maildir_root: Path
    users: dict[str, str]
    server: Any = None
    _free: list[str] = field(default_factory=list)

    def maildir(self, user: str) -> Path:
        return self.maildir_root / user / "Maildir"

    def take_user(self) -> tuple[str, str]:
        """A user no other test of this server used (tests stay independent)."""
        name = self._free.pop(0)
        return name, self.users[name]

    def raw(self) -> Raw:
        return Raw(self.host, self.port)

    def login(self) -> tuple[Raw, str]:
        user, password = self.take_user()
        client = self.raw()
        client.ok(f"LOGIN {user} {password}")
        return client, user


class Raw:
    """A blocking IMAP client that returns raw responses (see module doc)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.n = 0
        self.greeting = self.read_response()

    def _fill(self, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError("no data from the server")
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def read_line(self, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def read_response(self, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        out = b""
        for _ in range(100_000):
            line = self.read_line(timeout)
            out += line
            m = _LITERAL_END.search(line)
            if m is None:
                return out
            n = int(m[1])
            while len(self.buf) < n:
                self._fill(deadline)
            out += self.buf[:n]
            self.buf = self.buf[n:]
        raise RuntimeError("response too long")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def tag(self) -> str:
        self.n += 1
        return f"t{self.n}"

    def command(self, text: str | bytes) -> tuple[list[bytes], bytes]:
        """Untagged responses and the tagged one."""
        tag = self.tag()
        raw = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + raw + b"\r\n")
        return self.collect(tag)

    def collect(self, tag: str) -> tuple[list[bytes], bytes]:
        untagged: list[bytes] = []
        for _ in range(1_000_000):
            resp = self.read_response()
            if resp.startswith(tag.encode() + b" "):
                return untagged, resp
            untagged.append(resp)
        raise RuntimeError("no tagged response")

    def ok(self, text: str | bytes) -> list[bytes]:
        untagged, tagged = self.command(text)
        assert b" OK" in tagged.split(b"\r\n")[0][:20], (text, tagged, untagged)
        return untagged

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError, TimeoutError, ConnectionError):
            self.command("LOGOUT")
        self.sock.close()

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
