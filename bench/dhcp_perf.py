"""DHCP server throughput and takeover: imapha dhcp against Kea, in the same namespaces, one run.

Lab: servers a (192.0.2.11) and b (192.0.2.12), a load host p (192.0.2.230,
perfdhcp needs an address) and client hosts for the takeover clients, all on
one bridge. The same pool (200 addresses) and lease time for both servers.

1. Exchanges/s at < 1 % drops: perfdhcp (Debian ``kea-admin``) broadcasts
   DISCOVER/REQUEST for 150 simulated clients at a ladder of rates, ``-p``
   seconds each; the best rate whose DISCOVER-OFFER and REQUEST-ACK drops both
   stay under 1 % is the result. Four targets: imapha alone, the imapha split
   pair (both answering, peer link up: every ACK waits for the peer's
   acknowledgement), Kea alone (memfile, one thread, as REFERENCE.md measured),
   and the Kea hot-standby pair (HA hook, dedicated HTTP listener, which needs
   Kea's multi-threading).
2. Takeover after SIGKILL of the active server: time from the kill until a new
   busybox udhcpc client holds a lease. imapha hot-standby: the bench plays
   vipd and promotes b at once (vipd's own detection, about 3 advert
   intervals, comes on top); imapha split: nothing to promote. Kea
   hot-standby: its own heartbeat detection (100 ms heartbeats, 300 ms max
   response delay, ``max-unacked-clients`` 0).

Differences worth knowing: imapha's SQLite store fsyncs every batch before the
ACKs go out; Kea's memfile appends to a CSV file without fsync.

Run: ``.venv/bin/python -m bench.dhcp_perf`` as root (about 3-4 minutes).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import Result, report
from imapha.lab.proc import LabProcess
from imapha.lab.topology import Host, Lab
from tests.dhcp.cluster import Client, Pair, make_pair

POOL = ("192.0.2.20", "192.0.2.219")
CLIENTS = 150
PERIOD = 3
RATES = (250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000)
HOOKS = Path("/usr/lib/x86_64-linux-gnu/kea/hooks")
KEA = "/usr/sbin/kea-dhcp4"


@dataclass(frozen=True)
class Step:
    rate: int
    achieved: float
    drops: tuple[float, float]

    @property
    def clean(self) -> bool:
        return max(self.drops) < 1.0


def perfdhcp(load: Host, rate: int) -> Step:
    # -W: wait 1 s after the last send, so answers still in flight are not counted as drops
    out = load.run(["perfdhcp", "-4", "-l", "eth0", "-r", str(rate), "-p", str(PERIOD),
                    "-R", str(CLIENTS), "-W", "1000000"], check=False, timeout=PERIOD + 30).stdout
    achieved = re.search(r"Rate: ([0-9.]+)", out)
    drops = [float(x) for x in re.findall(r"drops ratio: ([0-9.]+) %", out)]
    if achieved is None or len(drops) < 2:
        return Step(rate, 0.0, (100.0, 100.0))
    return Step(rate, float(achieved.group(1)), (drops[0], drops[1]))


def ladder(name: str, load: Host) -> float:
    """The best exchange rate with < 1 % drops (0 if even the lowest rate drops)."""
    best = 0.0
    for rate in RATES:
        step = perfdhcp(load, rate)
        print(f"  {name}: offered {rate}/s, got {step.achieved:.0f}/s, drops "
              f"{step.drops[0]:.2f} % / {step.drops[1]:.2f} %", flush=True)
        if step.clean:  # perfdhcp's own "Rate" divides by the period plus the -W wait
            best = max(best, float(step.rate))
        elif max(step.drops) > 10:
            break
    return best


# -- imapha --------------------------------------------------------------------------------


def imapha_pair(lab: Lab, root: Path, mode: str) -> Pair:
    pair = make_pair(lab, root, mode=mode, pool=POOL, lease="10m")
    return pair


def wait_normal(pair: Pair) -> None:
    Pair.wait(lambda: pair.failover("a") == "normal" == pair.failover("b"), 15, "normal")


def stop_all(pair: Pair) -> None:
    for node in list(pair.procs):
        pair.stop(node)
    for node in ("a", "b"):
        for path in (pair.root / node / "state").glob("leases.db*"):
            path.unlink()


# -- Kea -----------------------------------------------------------------------------------


def kea_config(root: Path, node: str, *, ha: bool) -> Path:
    address = {"a": "192.0.2.11", "b": "192.0.2.12"}
    config: dict[str, object] = {
        "interfaces-config": {"interfaces": ["eth0"]},
        "lease-database": {"type": "memfile", "persist": True,
                           "name": str(root / f"kea-{node}.csv"), "lfc-interval": 0},
        "valid-lifetime": 600,
        "subnet4": [{"id": 1, "subnet": "192.0.2.0/24",
                     "pools": [{"pool": f"{POOL[0]} - {POOL[1]}"}],
                     "option-data": [{"name": "routers", "data": "192.0.2.1"}]}],
        "loggers": [{"name": "kea-dhcp4", "severity": "WARN",
                     "output_options": [{"output": str(root / f"kea-{node}.log")}]}],
        "multi-threading": {"enable-multi-threading": ha, "thread-pool-size": 2,
                            "packet-queue-size": 64},
    }
    if ha:
        config["hooks-libraries"] = [
            {"library": str(HOOKS / "libdhcp_lease_cmds.so")},
            {"library": str(HOOKS / "libdhcp_ha.so"), "parameters": {"high-availability": [{
                "this-server-name": node, "mode": "hot-standby",
                "heartbeat-delay": 100, "max-response-delay": 300, "max-ack-delay": 100,
                "max-unacked-clients": 0,
                "multi-threading": {"enable-multi-threading": True,
                                    "http-dedicated-listener": True,
                                    "http-listener-threads": 1, "http-client-threads": 1},
                "peers": [
                    {"name": "a", "url": f"http://{address['a']}:8001/", "role": "primary",
                     "auto-failover": True},
                    {"name": "b", "url": f"http://{address['b']}:8001/", "role": "standby",
                     "auto-failover": True},
                ]}]}},
        ]
    path = root / f"kea-{node}.json"
    path.write_text(json.dumps({"Dhcp4": config}, indent=1))
    (root / f"kea-{node}.csv").unlink(missing_ok=True)
    return path


@contextmanager
def kea(hosts: dict[str, Host], root: Path, *, ha: bool) -> Iterator[dict[str, LabProcess]]:
    procs = {}
    for node, host in hosts.items():
        procs[node] = host.spawn([KEA, "-c", str(kea_config(root, node, ha=ha))],
                                 env={"KEA_PIDFILE_DIR": str(root),
                                      "KEA_LOCKFILE_DIR": str(root)})
    time.sleep(3.0 if ha else 1.0)  # HA: the pair syncs and reaches hot-standby
    try:
        yield procs
    finally:
        for process in procs.values():
            process.stop(2.0)


# -- takeover --------------------------------------------------------------------------------


def new_client(pair: Pair, name: str) -> Client:
    return pair.udhcpc(name)


def takeover(kill: Callable[[], None], promote: Callable[[], None], pair: Pair,
             name: str) -> float:
    """Seconds from SIGKILL of the active server to a new client holding a lease."""
    started = time.monotonic()
    kill()
    promote()
    client = new_client(pair, name)
    Pair.wait(lambda: client.bound() is not None, 60, f"{name} bound")
    elapsed = time.monotonic() - started
    assert client.process is not None
    client.process.stop()
    return elapsed


def main() -> int:
    if shutil.which("perfdhcp") is None or not Path(KEA).exists():
        print("needs perfdhcp and kea-dhcp4 (Debian kea-admin, kea-dhcp4-server)",
              file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="dhp", dir="/tmp"))
    results: dict[str, float] = {}
    try:
        with Lab(workdir=root / "lab") as lab:
            pair = imapha_pair(lab, root, "split")
            load = lab.add_host("p", ["192.0.2.230/24"])
            hosts = {"a": pair.a, "b": pair.b}

            print("imapha alone (operator partner-down on a):", flush=True)
            pair.start("a")
            pair.ctl("a", "POST", "/partner-down")
            Pair.wait(lambda: pair.ready("a"), 10, "a ready")
            results["imapha_one"] = ladder("imapha one", load)
            stop_all(pair)

            print("imapha split pair:", flush=True)
            pair.start("a")
            pair.start("b")
            wait_normal(pair)
            results["imapha_pair"] = ladder("imapha pair", load)
            results["imapha_split_takeover"] = takeover(
                lambda: pair.kill("a"), lambda: None, pair, "t1")
            stop_all(pair)

            print("Kea alone:", flush=True)
            with kea({"a": pair.a}, root, ha=False):
                results["kea_one"] = ladder("kea one", load)
            print("Kea hot-standby pair:", flush=True)
            with kea(hosts, root, ha=True) as procs:
                results["kea_pair"] = ladder("kea pair", load)

                def kill_kea() -> None:
                    procs["a"].send_signal(signal.SIGKILL)
                    procs["a"].wait(5)

                results["kea_takeover"] = takeover(kill_kea, lambda: None, pair, "t2")

            print("imapha hot-standby takeover:", flush=True)
            config = pair.config.read_text().replace('mode = "split"', 'mode = "hot-standby"')
            pair.config.write_text(config)
            pair.start("a")
            pair.start("b")
            wait_normal(pair)
            pair.vip("a", "master")
            pair.vip("b", "backup")
            warm = new_client(pair, "t3")
            warm.wait_bound(15)
            results["imapha_hot_standby_takeover"] = takeover(
                lambda: pair.kill("a"), lambda: pair.vip("b", "master"), pair, "t4")
            pair.check_unique()
            stop_all(pair)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results, indent=1))
    report(Result("dhcp exchanges/s at <1% drops, one server", results["imapha_one"],
                  results["kea_one"], "exchanges/s", "kea"))
    report(Result("dhcp exchanges/s at <1% drops, failover pair", results["imapha_pair"],
                  results["kea_pair"], "exchanges/s", "kea hot-standby pair"))
    report(Result("dhcp takeover after SIGKILL, hot-standby (imapha promoted at once)",
                  results["imapha_hot_standby_takeover"], results["kea_takeover"], "s", "kea",
                  higher_is_better=False))
    report(Result("dhcp takeover after SIGKILL, split pair", results["imapha_split_takeover"],
                  results["kea_takeover"], "s", "kea hot-standby", higher_is_better=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
