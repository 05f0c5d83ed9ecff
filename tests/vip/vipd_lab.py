"""A two-node vipd cluster in an imapha.lab: config, daemons, TCP servers, a probing client.

Each node runs ``imapha vipd`` and ``imapha.testdaemon --role proxy`` (the
tracked service, whose readiness a test flips with ``POST /set-ready``) and a
tiny TCP server on 0.0.0.0:PORT that answers every connection with the node's
name, so a client connecting to a VIP learns which node holds it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from imapha.control import ControlClientError, ControlResponse, request
from imapha.lab import Host, Lab, LabProcess
from tests.support import wait_for

REPO = Path(__file__).resolve().parents[2]
PORT = 7143
VIP1 = "192.0.2.101"
VIP2 = "192.0.2.102"
T = TypeVar("T")

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(512)
while True:
    c, _ = s.accept()
    try:
        c.sendall(sys.argv[1].encode() + b"\\n")
    except OSError:
        pass
    c.close()
"""




def write_config(root: Path, *, interval: str = "100ms", extra_vrrp: str = "",
                 vips: str | None = None, nodes: str | None = None) -> Path:
    nodes = nodes or ('[nodes.a]\naddress = "192.0.2.11"\ninterface = "eth0"\n\n'
                      '[nodes.b]\naddress = "192.0.2.12"\ninterface = "eth0"\n')
    vips = vips or (f'[[vips]]\nname = "v1"\naddress = "{VIP1}/24"\nvrid = 51\nhome = "a"\n'
                    'priority = 150\n\n'
                    f'[[vips]]\nname = "v2"\naddress = "{VIP2}/24"\nvrid = 52\nhome = "b"\n'
                    'priority = 150\n')
    text = f"""\
[cluster]
name = "vt"
run_dir = "{root}/run/{{node}}"
state_dir = "{root}/state/{{node}}"

{nodes}
{vips}
[vrrp]
advert_interval = "{interval}"
garp_count = 3
garp_interval = "50ms"
{extra_vrrp}

[proxy]

[[backends]]
name = "be1"
address = "192.0.2.21:143"
"""
    path = root / "imapha.toml"
    path.write_text(text)
    return path


@dataclass
class Node:
    name: str
    host: Host
    config: Path
    root: Path
    vipd: LabProcess | None = None
    service: LabProcess | None = None
    server: LabProcess | None = None

    @property
    def run_dir(self) -> Path:
        return self.root / "run" / self.name

    def control(self, role: str) -> Path:
        return self.run_dir / f"{role}.sock"

    def call(self, role: str, method: str, target: str,
             body: dict[str, Any] | None = None) -> ControlResponse:
        return request(self.control(role), method, target, body, timeout=5.0)

    def status(self) -> dict[str, Any]:
        return self.call("vipd", "GET", "/status").body

    def vip_states(self) -> dict[str, str]:
        try:
            body = self.status()
        except ControlClientError:
            return {}
        return {v["name"]: v["state"] for v in body.get("vips", [])}

    def start_service(self, *args: str) -> None:
        self.service = self.host.spawn(
            [sys.executable, "-m", "imapha.testdaemon", "--config", str(self.config),
             "--node", self.name, "--role", "proxy", *args], cwd=REPO)
        wait_for(lambda: self._answers("proxy"), 15, f"proxy@{self.name}")

    def start_vipd(self, *, wait: bool = True) -> None:
        self.vipd = self.host.spawn(
            [sys.executable, "-m", "imapha", "vipd", "--config", str(self.config),
             "--node", self.name, "--log-level", "debug"], cwd=REPO)
        if wait:
            wait_for(lambda: self._answers("vipd"), 15, f"vipd@{self.name}")

    def start_server(self) -> None:
        self.server = self.host.spawn([sys.executable, "-c", SERVER, self.name, str(PORT)])

    def start(self, *service_args: str) -> None:
        self.start_server()
        self.start_service(*service_args)
        self.start_vipd()

    def set_ready(self, ready: bool) -> None:
        assert self.call("proxy", "POST", "/set-ready", {"ready": ready}).ok

    def _answers(self, role: str) -> bool:
        proc = self.vipd if role == "vipd" else self.service
        if proc is not None and not proc.alive():
            raise AssertionError(f"{role}@{self.name} exited:\n{proc.output()}")
        try:
            return self.call(role, "GET", "/status").body.get("state") == "running"
        except ControlClientError:
            return False

    def has_address(self, address: str) -> bool:
        out = self.host.run(["ip", "-j", "-4", "addr", "show", "dev", "eth0"]).stdout
        return any(i.get("local") == address for d in json.loads(out)
                   for i in d.get("addr_info", []))

    def log(self) -> str:
        return self.vipd.output() if self.vipd is not None else ""


def who(client: Host, address: str, timeout: float = 0.5) -> str | None:
    """The node name answering on address:PORT from the client, or None."""
    sock = client.socket()
    sock.settimeout(timeout)
    try:
        sock.connect((address, PORT))
        return sock.recv(64).decode().strip() or None
    except OSError:
        return None
    finally:
        sock.close()


@dataclass
class Probe:
    """A client connecting to one VIP every ``period`` from its namespace, in a thread."""

    client: Host
    address: str
    period: float = 0.02
    timeout: float = 3.0
    results: list[tuple[float, float, str]] = field(default_factory=list)  # start, took, what
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def start(self) -> Probe:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        # One new connection every period, each in its own worker, so a connect
        # waiting for a SYN retransmission does not hold the next ones back.
        with self.client.entered(), ThreadPoolExecutor(max_workers=256) as pool:
            for _ in range(100_000):
                if self._stop.is_set():
                    return
                start = time.monotonic()
                sock = socket.socket()  # created in the client's namespace
                pool.submit(self._once, sock, start)
                rest = self.period - (time.monotonic() - start)
                if rest > 0:
                    time.sleep(rest)

    def _once(self, sock: socket.socket, start: float) -> None:
        sock.settimeout(self.timeout)
        try:
            sock.connect((self.address, PORT))
            name = sock.recv(64).decode().strip()
            what = name or "empty"
        except ConnectionRefusedError:
            what = "refused"
        except TimeoutError:
            what = "timeout"
        except OSError as exc:
            what = errno.errorcode.get(exc.errno or 0, str(exc))
        finally:
            sock.close()
        with self._lock:
            self.results.append((start, time.monotonic() - start, what))

    def stop(self) -> list[tuple[float, float, str]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)
        with self._lock:
            return sorted(self.results)

    def failures(self) -> list[tuple[float, float, str]]:
        return [r for r in self.results if r[2] not in ("a", "b")]


@dataclass
class Cluster:
    lab: Lab
    a: Node
    b: Node
    client: Host

    def nodes(self) -> list[Node]:
        return [self.a, self.b]


@contextlib.contextmanager
def cluster(lab: Lab, root: Path, **config: Any) -> Iterator[Cluster]:
    cfg = write_config(root, **config)
    a = lab.add_host("a", ["192.0.2.11/24"])
    b = lab.add_host("b", ["192.0.2.12/24"])
    c = lab.add_client("c", ["192.0.2.100/24"])
    yield Cluster(lab, Node("a", a, cfg, root), Node("b", b, cfg, root), c)
