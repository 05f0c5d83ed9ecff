"""Real proxies in front of real Dovecots, for the proxy's tests and benchmarks.

``Backends`` starts N Dovecot instances sharing one Maildir root (as N NFS
clients would); ``ProxyProcess`` writes a cluster config naming them and runs
``python -m imapha proxy`` as a subprocess, its listeners on OS-chosen
loopback ports (read back from ``/status``). Certificates come from trustme.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import trustme

from imapha import control
from imapha.lab.dovecot import DovecotServer, traversable_dir

USERS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "probe": "probe-pw"}
ROOT = Path(__file__).resolve().parents[2]


class Certs:
    """A CA and a server certificate for localhost/127.0.0.1, as files."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.ca_path = directory / "ca.pem"
        self.cert_path = directory / "cert.pem"
        self.key_path = directory / "key.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        cert.private_key_pem.write_to_path(str(self.key_path))
        with self.cert_path.open("wb") as fh:
            for blob in cert.cert_chain_pems:
                fh.write(blob.bytes())

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        return ctx


class Backends:
    """N Dovecots on one shared Maildir root; ``stop()`` removes everything."""

    def __init__(self, count: int = 2, users: Mapping[str, str] = USERS,
                 ssl_files: tuple[Path, Path] | None = None, **kwargs: Any) -> None:
        self.root = traversable_dir("imapha-proxy-test-")
        self.maildir_root = self.root / "mail"
        self.servers = [
            DovecotServer(self.root / f"dovecot{i}", users, self.maildir_root, ssl=ssl_files,
                          **kwargs)
            for i in range(count)
        ]

    def start(self) -> Backends:
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop(grace=2.0)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Backends:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def which_logged_in(self, user: str) -> list[int]:
        """Indexes of the Dovecots whose log shows a login of ``user``."""
        needle = f"Login: user=<{user}>"
        return [i for i, s in enumerate(self.servers) if needle in s.log_text()]


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def proxy_config(directory: Path, backends: Sequence[tuple[str, str, int]], certs: Certs,
                 *, nodes: Sequence[str] = ("a",), extra: str = "",
                 backend_extra: str = "") -> Path:
    """Write a cluster config; ``backends`` is (name, host, port) each."""
    lines = [
        "[cluster]",
        'name = "t"',
        f"run_dir = {_toml_str(str(directory / '{node}' / 'run'))}",
        f"state_dir = {_toml_str(str(directory / '{node}' / 'state'))}",
    ]
    for i, node in enumerate(nodes):
        lines += [f"[nodes.{node}]", f'address = "127.0.0.{i + 1}"', 'interface = "lo"']
    lines += [
        "[proxy]",
        'imap = ["127.0.0.1:0"]',
        'imaps = ["127.0.0.1:0"]',
        f"tls_cert = {_toml_str(str(certs.cert_path))}",
        f"tls_key = {_toml_str(str(certs.key_path))}",
        'health_interval = "300ms"',
        'health_timeout = "300ms"',
        "health_fall = 2",
        "health_rise = 1",
        extra,
    ]
    for name, host, port in backends:
        lines += ["[[backends]]", f'name = "{name}"', f'address = "{host}:{port}"',
                  backend_extra]
    path = directory / "imapha.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class ProxyProcess:
    """``python -m imapha proxy`` as a subprocess; ports learnt from /status."""

    def __init__(self, config: Path, node: str = "a", *, log_level: str = "info") -> None:
        self.config = config
        self.node = node
        self.log_path = config.parent / f"proxy-{node}.log"
        self.socket = config.parent / node / "run" / "proxy.sock"
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None
        self.imap_port = 0
        self.imaps_port = 0

    def start(self, timeout: float = 20.0, *, wait_ready: bool = True) -> ProxyProcess:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "imapha", "proxy", "--config", str(self.config),
                 "--node", self.node, "--log-level", self.log_level],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"proxy exited {self.proc.returncode}:\n{self.log()}")
            try:
                st = self.status()
            except control.ControlClientError:
                time.sleep(0.05)
                continue
            if st.get("state") == "running" and (st.get("ready") or not wait_ready):
                self.refresh_ports()
                return self
            time.sleep(0.05)
        raise RuntimeError(f"proxy not ready in {timeout}s:\n{self.log()}")

    def refresh_ports(self) -> None:
        """Read the listeners' ports (they change when an undrain binds port 0 again)."""
        for listener in self.status()["listeners"]:
            port = int(listener["address"].rsplit(":", 1)[1])
            if listener["kind"] == "imap":
                self.imap_port = port
            else:
                self.imaps_port = port

    def request(self, method: str, target: str, body: dict[str, Any] | None = None) -> Any:
        return control.request(self.socket, method, target, body, timeout=5.0)

    def status(self) -> dict[str, Any]:
        reply = self.request("GET", "/status")
        body: dict[str, Any] = reply.body
        return body

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self, timeout: float = 15.0) -> int | None:
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.proc = None
        return proc.returncode

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
