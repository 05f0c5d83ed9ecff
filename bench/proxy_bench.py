"""IMAP proxy benchmarks: imapha against direct Dovecot, Dovecot's proxy, nginx, HAProxy.

1. Logins: connect + LOGIN + SELECT INBOX + LOGOUT, 32 concurrent asyncio
   workers: straight to Dovecot (the baseline) and through imapha in six
   interleaved rounds (the per-round ratios are printed), then Dovecot in
   proxy mode and nginx's mail proxy (when installed), one run each.
   Logins/s and p50/p99 latency. Everything is cleartext on loopback (the
   proxy's ``plaintext_auth_networks`` covers it), so the comparison is of the
   proxying, not of TLS.
2. FETCH throughput: one 50 MB message, ``FETCH 1 BODY.PEEK[]`` read as fast
   as the client can: direct, through imapha, through HAProxy in TCP mode
   (best of 5 interleaved runs).
3. Memory per idle logged-in session: N sessions (5,000 by default) opened
   through imapha and through HAProxy (TCP mode) to a minimal stub IMAP
   server run by this script (Dovecot would need one process per session),
   RSS growth of the proxy process divided by N.

The proxy's CPU time per login (parent and workers, user + system, from
/proc) is printed with the login figures; FETCH through imapha is measured
on the cleartext port and, separately, with the client on implicit TLS
(``imaps``; the backend side stays cleartext).

Run: ``.venv/bin/python -m bench.proxy_bench`` (about 4 minutes, as root or
not; needs dovecot, and haproxy/nginx for their baselines). Options:
``--seconds S`` per login run, ``--sessions N``, ``--fetch-mb M``,
``--workers N`` (imapha's ``[proxy] workers``; memory then sums every
worker's RSS).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.common import Result, report, rss_bytes, summarize
from imapha.lab.dovecot import DovecotServer
from tests.proxy.harness import Backends, Certs, ProxyProcess, free_port, proxy_config

WORKERS = 32
USERS = {f"b{i}": f"pw{i}" for i in range(WORKERS)} | {"big": "bigpw"}


# -- clients -------------------------------------------------------------------------------


async def _read_until(reader: asyncio.StreamReader, tag: bytes) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line.startswith(tag):
            return line


async def _one_login(port: int, user: str) -> float:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reader.readline()
        writer.write(f"a LOGIN {user} {USERS[user]}\r\n".encode())
        line = await _read_until(reader, b"a ")
        if not line.startswith(b"a OK"):
            raise RuntimeError(f"login failed: {line!r}")
        writer.write(b"b SELECT INBOX\r\n")
        await _read_until(reader, b"b ")
        writer.write(b"c LOGOUT\r\n")
        await _read_until(reader, b"c ")
    finally:
        writer.close()
    return time.perf_counter() - t0


async def _login_run(port: int, seconds: float) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        user = f"b{i}"
        while time.perf_counter() < stop:
            try:
                latencies.append(await _one_login(port, user))
            except (OSError, RuntimeError, ConnectionError):
                errors += 1
                await asyncio.sleep(0.01)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(WORKERS)))
    return len(latencies) / (time.perf_counter() - t0), latencies, errors


def login_bench(port: int, seconds: float, label: str) -> tuple[float, float, float]:
    asyncio.run(_login_run(port, 1.0))  # warm-up: login processes, caches
    rate, lat, errors = asyncio.run(_login_run(port, seconds))
    s = summarize(lat)
    print(f"  logins {label}: {rate:,.0f}/s, p50 {s.median * 1000:.1f} ms, "
          f"p99 {s.p99 * 1000:.1f} ms, errors {errors}", flush=True)
    return rate, s.median, s.p99


def login_compare(ports: dict[str, int], seconds: float, rounds: int,
                  cpu_pids: dict[str, list[int]] | None = None,
                  ) -> dict[str, tuple[float, float, float, list[float]]]:
    """Interleaved short runs (A B, B A, ...): neighbours' load hits both alike.

    Returns per label: overall rate, p50, p99, and the per-round rates. For the
    labels in ``cpu_pids`` the CPU those processes spent per login is printed.
    """
    cpu: dict[str, float] = {}
    for port in ports.values():
        asyncio.run(_login_run(port, 1.0))
    done: dict[str, tuple[int, float, list[float], list[float]]] = {
        k: (0, 0.0, [], []) for k in ports}
    labels = list(ports)
    for r in range(rounds):
        for label in labels if r % 2 == 0 else labels[::-1]:
            t0 = time.perf_counter()
            pids = (cpu_pids or {}).get(label)
            c0 = cpu_seconds(pids) if pids else 0.0
            rate, lat, _errors = asyncio.run(_login_run(ports[label], seconds / rounds))
            if pids:
                cpu[label] = cpu.get(label, 0.0) + cpu_seconds(pids) - c0
            n, t, all_lat, rates = done[label]
            done[label] = (n + len(lat), t + time.perf_counter() - t0, all_lat + lat,
                           [*rates, rate])
    out = {}
    for label, (n, t, lat, rates) in done.items():
        s = summarize(lat)
        out[label] = (n / t, s.median, s.p99, rates)
        print(f"  logins {label}: {n / t:,.0f}/s (rounds: "
              f"{', '.join(f'{x:.0f}' for x in rates)}), p50 {s.median * 1000:.1f} ms, "
              f"p99 {s.p99 * 1000:.1f} ms", flush=True)
        if label in cpu and n:
            print(f"  {label} CPU per login: {cpu[label] / n * 1000:.2f} ms", flush=True)
    return out


def fetch_once(port: int, user: str, tls: ssl.SSLContext | None = None) -> float:
    """Seconds for FETCH 1 BODY.PEEK[] of the user's only message."""
    raw = socket.create_connection(("127.0.0.1", port))
    sock = raw if tls is None else tls.wrap_socket(raw, server_hostname="localhost")
    with sock:
        buf = bytearray(1 << 20)
        view = memoryview(buf)

        def until(tag: bytes) -> None:
            tail = b""
            while tag not in tail:
                n = sock.recv_into(view)
                if not n:
                    raise ConnectionError("closed")
                tail = (tail + bytes(view[max(0, n - 512):n]))[-1024:]

        until(b"\r\n")
        sock.sendall(f"a LOGIN {user} {USERS[user]}\r\nb SELECT INBOX\r\n".encode())
        until(b"b OK")
        t0 = time.perf_counter()
        sock.sendall(b"c FETCH 1 BODY.PEEK[]\r\n")
        until(b"c OK")
        elapsed = time.perf_counter() - t0
        sock.sendall(b"d LOGOUT\r\n")
    return elapsed


# -- baselines ----------------------------------------------------------------------------


@contextmanager
def haproxy(backend_port: int, workdir: Path,
            certs: Certs | None = None) -> Iterator[tuple[int, int, int | None]]:
    """HAProxy in TCP mode: (cleartext port, pid, TLS-terminating port if ``certs``)."""
    port = free_port()
    tls_port = free_port() if certs is not None else None
    tls_frontend = ""
    if certs is not None:
        pem = workdir / "haproxy.pem"
        pem.write_bytes(certs.cert_path.read_bytes() + certs.key_path.read_bytes())
        tls_frontend = (f"frontend imaps\n    bind 127.0.0.1:{tls_port} ssl crt {pem}\n"
                        "    default_backend be\n")
    cfg = workdir / "haproxy.cfg"
    cfg.write_text(f"""global
    maxconn 9000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend imap
    bind 127.0.0.1:{port}
    default_backend be
{tls_frontend}backend be
    server s1 127.0.0.1:{backend_port}
""")
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_port(port)
        yield port, proc.pid, tls_port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _NginxAuth(BaseHTTPRequestHandler):
    """nginx mail's auth_http: every user goes to the one backend (Dovecot checks)."""

    backend_port = 0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Auth-Status", "OK")
        self.send_header("Auth-Server", "127.0.0.1")
        self.send_header("Auth-Port", str(self.backend_port))
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def nginx_mail(backend_port: int, workdir: Path) -> Iterator[int | None]:
    module = Path("/usr/lib/nginx/modules/ngx_mail_module.so")
    if (not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists()) or \
            not module.exists():
        yield None
        return
    _NginxAuth.backend_port = backend_port
    auth = ThreadingHTTPServer(("127.0.0.1", 0), _NginxAuth)
    threading.Thread(target=auth.serve_forever, daemon=True).start()
    port = free_port()
    (workdir / "nginx").mkdir(exist_ok=True)
    cfg = workdir / "nginx" / "nginx.conf"
    cfg.write_text(f"""load_module {module};
daemon off;
worker_processes 1;
pid {workdir}/nginx/nginx.pid;
error_log {workdir}/nginx/error.log;
events {{ worker_connections 20000; }}
mail {{
    auth_http 127.0.0.1:{auth.server_address[1]}/auth;
    proxy_pass_error_message on;
    imap_capabilities IMAP4rev1 LITERAL+ SASL-IR ID;
    server {{
        listen 127.0.0.1:{port};
        protocol imap;
        imap_auth login plain;
    }}
}}
""")
    proc = subprocess.Popen(["/usr/sbin/nginx", "-c", str(cfg), "-p", str(workdir / "nginx")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        _wait_port(port)
        yield port
    finally:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        auth.shutdown()


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


# -- stub backend for the memory test ------------------------------------------------------


def _stub_server(port_out: list[int], ready: threading.Event, stop: threading.Event) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1 ID LITERAL+] stub\r\n")
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                tag, _, rest = line.partition(b" ")
                name = rest.split(b" ", 1)[0].strip().upper()
                if name == b"LOGIN":
                    writer.write(tag + b" OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n")
                elif name == b"CAPABILITY":
                    writer.write(b"* CAPABILITY IMAP4rev1 ID LITERAL+\r\n" + tag + b" OK\r\n")
                elif name == b"LOGOUT":
                    writer.write(b"* BYE\r\n" + tag + b" OK\r\n")
                    break
                else:
                    writer.write(tag + b" OK done\r\n")
        except ConnectionError:
            pass
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
        port_out.append(server.sockets[0].getsockname()[1])
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.1)
        server.close()

    asyncio.run(main())


async def _hold_sessions(port: int, count: int) -> list[asyncio.StreamWriter]:
    sem = asyncio.Semaphore(100)
    writers: list[asyncio.StreamWriter] = []

    async def one(i: int) -> None:
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.readline()
            writer.write(f"a LOGIN s{i} x\r\n".encode())
            line = await _read_until(reader, b"a ")
            if not line.startswith(b"a OK"):
                raise RuntimeError(f"stub login failed: {line!r}")
            writers.append(writer)

    await asyncio.gather(*(one(i) for i in range(count)))
    return writers


def memory_per_session(port: int, pids: list[int], count: int) -> float:
    async def run() -> float:
        warm = await _hold_sessions(port, 50)
        await asyncio.sleep(1.0)
        before = sum(rss_bytes(pid) for pid in pids)
        writers = await _hold_sessions(port, count)
        await asyncio.sleep(2.0)
        after = sum(rss_bytes(pid) for pid in pids)
        for w in writers + warm:
            w.close()
        await asyncio.sleep(0.5)
        return (after - before) / count

    return asyncio.run(run())


# -- main ----------------------------------------------------------------------------------


def put_big_message(server: DovecotServer, user: str, size: int) -> None:
    maildir = server.maildir(user)
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    line = b"y" * 76 + b"\r\n"
    with (maildir / "new" / "1.bench.big").open("wb") as fh:
        fh.write(b"Subject: big\r\n\r\n")
        fh.write(line * (size // len(line)))
    for root, dirs, files in os.walk(server.maildir_root / user):
        for name in dirs + files:
            os.chown(os.path.join(root, name), server.mail_uid, server.mail_gid)
    os.chown(server.maildir_root / user, server.mail_uid, server.mail_gid)


def proxy_pids(proxy: ProxyProcess) -> list[int]:
    """The daemon's pid and its workers' (workers > 1)."""
    return [proxy.pid, *(int(w["pid"]) for w in proxy.status().get("workers", ()))]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far, from /proc."""
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def start_imapha(workdir: Path, certs: Certs, backend_port: int, name: str,
                 workers: int = 1) -> ProxyProcess:
    directory = workdir / name
    directory.mkdir()
    extra = ('plaintext_auth_networks = ["127.0.0.0/8"]\nauth_penalty_max = "0s"\n'
             "max_connections = 20000\nmax_connections_per_ip = 20000\n"
             f'health_interval = "2s"\nhealth_timeout = "2s"\nworkers = {workers}')
    cfg = proxy_config(directory, [("d0", "127.0.0.1", backend_port)], certs, extra=extra)
    text = cfg.read_text().replace('health_interval = "300ms"\n', "").replace(
        'health_timeout = "300ms"\n', "")
    cfg.write_text(text)
    return ProxyProcess(cfg, log_level="warning").start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--fetch-mb", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--skip", action="append", default=[],
                        choices=["logins", "fetch", "memory"])
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the finally: clean up
    workdir = Path(tempfile.mkdtemp(prefix="imapha-proxy-bench-"))
    workdir.chmod(0o755)  # Dovecot's unprivileged processes must traverse it
    certs = Certs(workdir)
    extra = ("default_process_limit = 500\ndefault_client_limit = 5000\n"
             "service imap-login {\n  service_count = 0\n  process_min_avail = 2\n}\n")
    be = Backends(1, USERS, extra_config=extra).start()
    dovecot = be.servers[0]
    proxies: list[ProxyProcess] = []
    try:
        proxy = start_imapha(workdir, certs, dovecot.imap_port, "imapha", args.workers)
        proxies.append(proxy)
        print(f"# {WORKERS} client tasks, Dovecot {dovecot.imap_port}, imapha {proxy.imap_port} "
              f"(workers = {args.workers}); load average {os.getloadavg()[0]:.1f}", flush=True)
        if "logins" not in args.skip:
            cmp = login_compare({"direct Dovecot": dovecot.imap_port,
                                 "imapha": proxy.imap_port}, args.seconds * 2, 6,
                                cpu_pids={"imapha": proxy_pids(proxy)})
            direct, ours = cmp["direct Dovecot"], cmp["imapha"]
            ratios = [a / b for a, b in zip(ours[3], direct[3], strict=True) if b]
            print(f"  per-round ratios imapha/direct: {', '.join(f'{x:.2f}' for x in ratios)}; "
                  f"median {summarize(ratios).median:.2f}", flush=True)
            report(Result("logins/s (connect+LOGIN+SELECT+LOGOUT, 32 workers)", ours[0],
                          direct[0], "logins/s", "direct Dovecot"))
            report(Result("login p50 latency", ours[1] * 1000, direct[1] * 1000, "ms",
                          "direct Dovecot", higher_is_better=False))
            report(Result("login p99 latency", ours[2] * 1000, direct[2] * 1000, "ms",
                          "direct Dovecot", higher_is_better=False))
            dproxy = DovecotServer(workdir / "dovecot-proxy", USERS, proxy_mode=True,
                                   proxy_to=("127.0.0.1", dovecot.imap_port),
                                   extra_config=extra).start()
            try:
                theirs = login_bench(dproxy.imap_port, args.seconds, "through Dovecot proxy")
            finally:
                dproxy.stop()
            report(Result("logins/s vs Dovecot proxy mode", ours[0], theirs[0], "logins/s",
                          "Dovecot proxy"))
            with nginx_mail(dovecot.imap_port, workdir) as nport:
                if nport is None:
                    print("  nginx mail module not installed: skipped", flush=True)
                else:
                    ng = login_bench(nport, args.seconds, "through nginx mail")
                    report(Result("logins/s vs nginx mail proxy", ours[0], ng[0], "logins/s",
                                  "nginx mail"))
        if "fetch" not in args.skip:
            size = args.fetch_mb << 20
            put_big_message(dovecot, "big", size)
            fetch_once(dovecot.imap_port, "big")  # warm the page cache
            with haproxy(dovecot.imap_port, workdir, certs) as (hport, _pid, htls):
                rows: dict[str, list[float]] = {"direct": [], "imapha": [], "imapha TLS": [],
                                                "haproxy": [], "haproxy TLS": []}
                tls = certs.client_context()
                for _ in range(5):
                    for label, port in (("direct", dovecot.imap_port),
                                        ("imapha", proxy.imap_port),
                                        ("imapha TLS", proxy.imaps_port), ("haproxy", hport),
                                        ("haproxy TLS", htls or 0)):
                        secure = tls if label.endswith("TLS") else None
                        rows[label].append(size / fetch_once(port, "big", secure) / 1e6)
            # Best of 5, interleaved: on a shared machine the best run is the one
            # least disturbed by neighbours; the medians are printed too.
            best = {k: summarize(v).maximum for k, v in rows.items()}
            print(f"  FETCH {args.fetch_mb} MB, MB/s best of 5 (median): " +
                  ", ".join(f"{k} {v:,.0f} ({summarize(rows[k]).median:,.0f})"
                            for k, v in best.items()), flush=True)
            report(Result(f"FETCH {args.fetch_mb} MB throughput", best["imapha"],
                          best["direct"], "MB/s", "direct Dovecot"))
            report(Result(f"FETCH {args.fetch_mb} MB throughput", best["imapha"],
                          best["haproxy"], "MB/s", "HAProxy tcp"))
            report(Result(f"FETCH {args.fetch_mb} MB throughput, client on TLS",
                          best["imapha TLS"], best["direct"], "MB/s",
                          "direct Dovecot (cleartext)"))
            report(Result(f"FETCH {args.fetch_mb} MB throughput, client on TLS",
                          best["imapha TLS"], best["haproxy TLS"], "MB/s",
                          "HAProxy terminating TLS"))
        if "memory" not in args.skip:
            port_box: list[int] = []
            ready, stop = threading.Event(), threading.Event()
            stub = threading.Thread(target=_stub_server, args=(port_box, ready, stop),
                                    daemon=True)
            stub.start()
            ready.wait(10)
            stub_proxy = start_imapha(workdir, certs, port_box[0], "imapha-mem", args.workers)
            proxies.append(stub_proxy)
            ours_mem = memory_per_session(stub_proxy.imap_port, proxy_pids(stub_proxy),
                                          args.sessions)
            with haproxy(port_box[0], workdir) as (hport, hpid, _):
                theirs_mem = memory_per_session(hport, [hpid], args.sessions)
            stop.set()
            print(f"  idle sessions: {args.sessions}", flush=True)
            report(Result("memory per idle logged-in session", ours_mem / 1024,
                          theirs_mem / 1024, "KiB", "HAProxy tcp", higher_is_better=False))
    finally:
        for p in proxies:
            p.stop()
        be.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0



if __name__ == "__main__":
    sys.exit(main())
