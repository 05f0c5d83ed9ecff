"""Client-observed VIP failover: imapha vipd against keepalived, in one run.

A two-node lab (imapha.lab, needs root): node a is the VIP's home (priority
150), node b the backup (100); each runs a TCP server on 0.0.0.0:7143 that
answers with its name, so a client in its own namespace, opening a new
connection every 20 ms (each in its own thread, so one waiting for a SYN
retransmission holds none back), sees who holds the VIP.

For each implementation and advert interval (1 s, 0.1 s), repeated runs of:

- ``sigkill``: every process of a SIGKILLed (``host.kill()``); then restarted;
- ``linkdown``: a's cable pulled at the switch; then plugged back;
- ``drain``: vipd ``POST /drain`` then ``/undrain`` (keepalived has no drain:
  its graceful resignation is SIGTERM, priority 0, then a restart).

Measured: failover = from the event to the first connect answered by b;
fail-back = from the restore action to the first connect answered by a (for
a restart this includes starting the processes, and for vipd waiting until
its tracked service is ready); ``lost`` = connects refused or timed out (3 s),
counted for the failover and the fail-back half of each run. vipd's tracked
service is ``imapha.testdaemon --role proxy`` (always ready here).

Run: ``.venv/bin/python -m bench.vip_failover [--runs N] [--intervals 1,0.1]``
(as root; about 25 min for 20 runs).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Result, report, summarize
from imapha.lab import Lab, LabProcess
from tests.support import wait_for
from tests.vip.vipd_lab import VIP1, Node, Probe, who, write_config

ONE_VIP = (f'[[vips]]\nname = "v1"\naddress = "{VIP1}/24"\nvrid = 51\nhome = "a"\n'
           'priority = 150\n')
SCENARIOS = ("sigkill", "linkdown", "drain")


@dataclass
class Series:
    failover: list[float] = field(default_factory=list)
    failback: list[float] = field(default_factory=list)
    lost_over: list[int] = field(default_factory=list)
    lost_back: list[int] = field(default_factory=list)
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)


class Impl:
    """One VRRP implementation on nodes a and b."""

    name = ""

    def __init__(self, lab: Lab, root: Path, interval: float) -> None:
        self.lab, self.root, self.interval = lab, root, interval
        config = write_config(root, interval=f"{round(interval * 1000)}ms", vips=ONE_VIP)
        self.a = Node("a", lab.add_host("a", ["192.0.2.11/24"]), config, root)
        self.b = Node("b", lab.add_host("b", ["192.0.2.12/24"]), config, root)
        self.client = lab.add_client("c", ["192.0.2.100/24"])

    def start(self, node: Node) -> None:
        raise NotImplementedError

    def resign(self) -> None:
        raise NotImplementedError

    def unresign(self) -> None:
        raise NotImplementedError


class Vipd(Impl):
    name = "vipd"

    def start(self, node: Node) -> None:
        node.start()

    def resign(self) -> None:
        assert self.a.call("vipd", "POST", "/drain").ok

    def unresign(self) -> None:
        assert self.a.call("vipd", "POST", "/undrain").ok


class Keepalived(Impl):
    name = "keepalived"

    def __init__(self, lab: Lab, root: Path, interval: float) -> None:
        super().__init__(lab, root, interval)
        self.procs: dict[str, LabProcess] = {}
        self.starts = 0

    def start(self, node: Node) -> None:
        if node.server is None or not node.server.alive():
            node.start_server()
        self.starts += 1
        priority = 150 if node.name == "a" else 100
        conf = self.root / f"ka-{node.name}-{self.starts}.conf"
        conf.write_text(
            "global_defs {\n  vrrp_version 3\n  router_id bench\n}\n"
            "vrrp_instance V {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n"
            f"  priority {priority}\n  advert_int {self.interval:g}\n"
            f"  virtual_ipaddress {{\n    {VIP1}/24\n  }}\n}}\n")
        binary = shutil.which("keepalived") or "/usr/sbin/keepalived"
        tag = f"{node.name}{self.starts}"
        self.procs[node.name] = node.host.spawn(
            [binary, "-n", "-l", "-P", "-D", "-f", str(conf), "-p",
             str(self.root / f"k{tag}.pid"), "-r", str(self.root / f"v{tag}.pid")])

    def resign(self) -> None:
        self.procs["a"].stop(5.0)  # SIGTERM: priority 0

    def unresign(self) -> None:
        proc = self.procs["a"]
        if proc.alive():
            proc.stop(5.0)
        self.start(self.a)


def one_run(impl: Impl, scenario: str, series: Series) -> None:
    a, client = impl.a, impl.client
    wait_for(lambda: who(client, VIP1, 0.3) == "a", 30, "VIP on a before the run")
    time.sleep(5 * impl.interval + 0.2)
    probe = Probe(client, VIP1).start()
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        if scenario == "sigkill":
            a.host.kill()
        elif scenario == "linkdown":
            a.host.link_down()
        else:
            impl.resign()
        wait_for(lambda: any(r[2] == "b" and r[0] + r[1] > t0 for r in list(probe.results)),
                 30, "a connect answered by b")
        first_b = min(r[0] + r[1] for r in list(probe.results) if r[2] == "b")
        time.sleep(max(1.0, 4 * impl.interval))
        t1 = time.monotonic()
        if scenario == "sigkill":
            impl.start(a)
        elif scenario == "linkdown":
            a.host.link_up()
        else:
            impl.unresign()
        wait_for(lambda: any(r[2] == "a" and r[0] >= t1 for r in list(probe.results)),
                 60, "a connect answered by a again")
        first_a = min(r[0] + r[1] for r in list(probe.results) if r[2] == "a" and r[0] >= t1)
        time.sleep(0.5)
    finally:
        results = probe.stop()
    series.failover.append(first_b - t0)
    series.failback.append(first_a - t1)
    lost = [r for r in results if r[2] not in ("a", "b")]
    series.lost_over.append(sum(1 for r in lost if r[0] < t1))
    series.lost_back.append(sum(1 for r in lost if r[0] >= t1))
    series.kinds.update(r[2] for r in lost)


@contextlib.contextmanager
def lab_for(kind: type[Impl], interval: float) -> Iterator[Impl]:
    root = Path(tempfile.mkdtemp(prefix="vb", dir="/tmp"))
    try:
        with Lab(workdir=root / "lab") as lab:
            impl = kind(lab, root, interval)
            impl.start(impl.a)
            impl.start(impl.b)
            yield impl
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fmt(values: list[float]) -> str:
    s = summarize(values)
    return (f"median {s.median:.3f} s, p99 {s.p99:.3f}, min {s.minimum:.3f}, "
            f"max {s.maximum:.3f} (n={s.n})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--intervals", default="1,0.1")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    options = parser.parse_args()
    intervals = [float(x) for x in options.intervals.split(",")]
    scenarios = options.scenarios.split(",")
    table: dict[tuple[str, float, str], Series] = {}
    kinds: list[type[Impl]] = [Vipd, Keepalived]
    for interval in intervals:
        for kind in kinds:
            with lab_for(kind, interval) as impl:
                for scenario in scenarios:
                    series = table.setdefault((kind.name, interval, scenario), Series())
                    for run in range(options.runs):
                        try:
                            one_run(impl, scenario, series)
                        except AssertionError as exc:
                            print(f"  {kind.name} {interval}s {scenario} run {run}: {exc}",
                                  flush=True)
                    print(f"{kind.name} interval {interval:g}s {scenario}: failover "
                          f"{fmt(series.failover)}; fail-back {fmt(series.failback)}; "
                          f"lost connects {sum(series.lost_over)} at failover, "
                          f"{sum(series.lost_back)} at fail-back in {len(series.failover)} runs"
                          f" {dict(series.kinds)}",
                          flush=True)
    for interval in intervals:
        for scenario in scenarios:
            ours = table.get(("vipd", interval, scenario))
            base = table.get(("keepalived", interval, scenario))
            if ours and base and ours.failover and base.failover:
                report(Result(f"vip failover {scenario} at {interval:g}s (median)",
                              statistics.median(ours.failover),
                              statistics.median(base.failover), "s", "keepalived",
                              higher_is_better=False))
                report(Result(f"vip fail-back {scenario} at {interval:g}s (median)",
                              statistics.median(ours.failback),
                              statistics.median(base.failback), "s", "keepalived",
                              higher_is_better=False))


if __name__ == "__main__":
    main()
