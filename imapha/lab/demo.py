"""``imapha demo``: a whole two-node cluster on this machine, and its stories.

Theory of operation
-------------------
As root the demo builds :class:`~imapha.lab.cluster.Cluster` in network
namespaces: two nodes each running backend, proxy and vipd, two VIPs with
real VRRP, and a client namespace. A *story* (``--scenario``) runs real IMAP
clients (:mod:`imapha.lab.workload`) against both VIPs while it does
something to a node, then judges: every confirmed message must be in the
Maildirs exactly once, and the clients' disruption must stay within what the
story allows. Each story prints what it measured and the exit code is its
verdict (0 passed, 1 failed, 2 could not run).

``--hold`` keeps the cluster up and writes the state file (DESIGN.md's demo
contract) once it is ready, until SIGINT or SIGTERM. Interactively (a
terminal, no scenario) a live status view (:mod:`imapha.lab.liveview`) shows
who holds which VIP, health and sessions per node and the failovers seen, and
single keys kill, start, drain and undrain nodes. Without a terminal, plain
``imapha demo`` runs the failover story.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from imapha.lab.cluster import DHCP_VIP, NODES, VIPS, Cluster, ClusterError
from imapha.lab.liveview import LiveView
from imapha.lab.topology import Lab
from imapha.lab.workload import disruption, load_logs, verify_mail

STORIES = ("failover", "drain", "backend-loss", "rolling-restart")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", choices=STORIES,
                        help="run a scripted story and exit with its verdict")
    parser.add_argument("--hold", action="store_true",
                        help="keep the cluster up until SIGINT/SIGTERM")
    parser.add_argument("--state-file", type=Path,
                        help="with --hold: where to write the cluster's JSON description")
    parser.add_argument("--workdir", type=Path,
                        help="keep configs, logs and Maildirs here (default: a temp dir)")
    parser.add_argument("--users", type=int, default=4, help="demo mail users")
    parser.add_argument("--advert-interval", default="100ms", help="VRRP advert interval")


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@dataclass(frozen=True)
class Allowance:
    """How much disruption a story tolerates.

    A session that was under way when the story acted (a window) may fail:
    TCP cannot follow a VIP to another host, and a dead host's sessions die
    with it. A session started outside every window must succeed, and no
    client may go longer than ``longest_outage`` without a good session.
    """

    longest_outage: float


ALLOWED = {
    "failover": Allowance(8.0),
    "backend-loss": Allowance(8.0),
    "drain": Allowance(5.0),
    "rolling-restart": Allowance(5.0),
}

Windows = list[tuple[float, float]]

#: How long after a VIP moves a client may still be sent to the old holder.
ARP_SETTLE = 1.5


def _wait_holder(cluster: Cluster, address: str, node: str, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if cluster.vip_holders(address) == [node]:
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def _ctl(cluster: Cluster, *words: str) -> int:
    from imapha import cli

    return cli.main(["ctl", "--config", str(cluster.config), *words])


def _moved(cluster: Cluster, address: str, node: str, *, timeout: float,
           windows: Windows, what: str) -> bool:
    """Wait for ``address`` to be on ``node`` only; the wait is an allowed window."""
    start = time.time()
    took = _wait_holder(cluster, address, node, timeout)
    # Clients learn the new holder from its gratuitous ARP; Linux ignores an ARP
    # update within a second of the last (locktime), so vipd repeats it 1.1 s on.
    windows.append((start, time.time() + ARP_SETTLE))
    say(f"{address} {what} after {took:.3f} s" if took is not None
        else f"{address} did not reach {node} within {timeout:.0f} s")
    return took is not None


def _dhcp_check(cluster: Cluster, when: str) -> tuple[str, str] | None:
    lease = cluster.dhcp_lease()
    if lease is None:
        say(f"DHCP {when}: the client got NO lease")
    else:
        say(f"DHCP {when}: the client got {lease[0]} from server {lease[1]}")
    return lease


def _story_failover(cluster: Cluster, windows: Windows) -> bool:
    vip = VIPS[0][1]
    before = _dhcp_check(cluster, "before")
    say(f"node a dies: every process SIGKILLed, its cable pulled; {vip} and {DHCP_VIP[1]} "
        "must move to b")
    cluster.kill_node("a")
    moved = _moved(cluster, vip, "b", timeout=10, windows=windows, what="answered from b")
    dhcp_moved = _moved(cluster, DHCP_VIP[1], "b", timeout=10, windows=windows,
                        what="(the DHCP VIP) on b")
    after = _dhcp_check(cluster, "with a dead")
    # The standby had every lease replicated before it was ACKed: same address again.
    dhcp_ok = before is not None and after is not None and before[0] == after[0]
    time.sleep(3)
    say("node a powers on again; its VIP returns only once its proxy is ready")
    cluster.start_node("a")
    back = _moved(cluster, vip, "a", timeout=30, windows=windows, what="back on a")
    return moved and back and dhcp_moved and dhcp_ok


def _story_drain(cluster: Cluster, windows: Windows) -> bool:
    vip = VIPS[0][1]
    say("imapha ctl drain a: vipd resigns, the proxy stops accepting, sessions end at safe points")
    start = time.time()
    rc = _ctl(cluster, "drain", "a")
    moved = _moved(cluster, vip, "b", timeout=10, windows=windows, what="on b")
    windows.append((start, time.time()))
    time.sleep(3)
    say("imapha ctl undrain a")
    start = time.time()
    rc2 = _ctl(cluster, "undrain", "a")
    back = _moved(cluster, vip, "a", timeout=30, windows=windows, what="back on a")
    windows.append((start, time.time()))
    return rc == 0 and rc2 == 0 and moved and back


def _story_backend_loss(cluster: Cluster, windows: Windows) -> bool:
    say("killing the backend of node a only; its users move to be-b")
    start = time.time()
    process = cluster.nodes["a"].processes.pop("backend")
    process.send_signal(signal.SIGKILL)
    time.sleep(0.5)
    windows.append((start, time.time()))
    time.sleep(3.5)
    say("restarting the backend of node a")
    start = time.time()
    cluster.start_role("a", "backend")
    cluster.wait_ready(30, ["a"])
    windows.append((start, time.time() + 1.0))
    return True


def _story_rolling_restart(cluster: Cluster, windows: Windows) -> bool:
    for node in NODES:
        say(f"rolling restart of {node}: drain, stop, start, wait ready, undrain")
        start = time.time()
        if _ctl(cluster, "drain", node) != 0:
            return False
        time.sleep(1)
        cluster.stop_node(node)
        cluster.start_node(node)  # a drain outlives a restart: it starts drained
        cluster.wait_answering(30, node)
        if _ctl(cluster, "undrain", node) != 0:
            return False
        cluster.wait_ready(30, [node])
        cluster.wait_backends_up(30)  # before the next node goes, every proxy sees this one
        time.sleep(1)
        windows.append((start, time.time()))
    return True


STORY_FUNCS: dict[str, Callable[[Cluster, Windows], bool]] = {
    "failover": _story_failover,
    "drain": _story_drain,
    "backend-loss": _story_backend_loss,
    "rolling-restart": _story_rolling_restart,
}


def run_story(cluster: Cluster, story: str, warmup: float = 3.0) -> bool:
    spec = {
        "vips": [address for _, address, _, _ in VIPS],
        "port": 993,
        "ca_cert": str(cluster.pki.ca_cert),
        "users": [[u.name, u.password] for u in cluster.mail_users],
        "duration": 600.0,
        "workers": 2 * len(cluster.mail_users),
    }
    spec_path = cluster.root / f"workload-{story}.json"
    out_path = cluster.root / f"workload-{story}.out.json"
    spec_path.write_text(json.dumps(spec))
    say(f"story {story}: {spec['workers']} IMAP clients log in, select, append and fetch "
        "in a loop through both VIPs")
    clients = cluster.client.spawn([sys.executable, "-m", "imapha.lab.workload",
                                    str(spec_path), str(out_path)],
                                   log=cluster.root / "logs" / f"workload-{story}.log")
    time.sleep(warmup)
    windows: Windows = []
    try:
        acted = STORY_FUNCS[story](cluster, windows)
    finally:
        time.sleep(warmup)
        clients.send_signal(signal.SIGTERM)
        clients.wait(30)
    logs = load_logs(out_path)
    seen = disruption(logs, windows)
    mail = verify_mail(cluster.root / "mail", logs)
    allowed = ALLOWED[story]
    say(f"clients: {seen.sessions} sessions, {seen.failed} failed "
        f"({seen.failed - seen.failed_outside} under way while the story acted, "
        f"{seen.failed_outside} outside: must be 0); longest outage a client saw "
        f"{seen.longest_outage:.2f} s (allowed {allowed.longest_outage} s)")
    say(f"mail: {mail.checked} confirmed messages checked, {len(mail.missing)} missing, "
        f"{len(mail.duplicated)} duplicated")
    ok = (acted and mail.ok and seen.longest_outage <= allowed.longest_outage
          and seen.failed_outside == 0 and seen.sessions > 0)
    say(f"story {story}: {'PASSED' if ok else 'FAILED'}")
    return ok


def _hold(cluster: Cluster, state_file: Path | None) -> None:
    if state_file is not None:
        tmp = state_file.with_suffix(state_file.suffix + ".tmp")
        tmp.write_text(json.dumps(cluster.state(), indent=2))
        tmp.replace(state_file)
        say(f"state written to {state_file}")
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    say("cluster held; SIGINT or SIGTERM tears it down")
    stop.wait()


def missing_roles() -> list[str]:
    """The daemons the demo needs that this version does not have yet."""
    from imapha import cli

    return [
        role for role in ("backend", "proxy", "vipd")
        if importlib.util.find_spec(cli.COMMANDS[role][0]) is None
    ]


def run(args: argparse.Namespace) -> int:
    absent = missing_roles()
    if absent:
        print(
            "imapha demo: this version does not have these daemons yet: "
            + ", ".join(f"imapha {r}" for r in absent)
            + ".\nWhat exists can be tried on its own: `imapha lab up` builds the namespace "
            "lab, `imapha check-config deploy/examples/lab.toml` shows a cluster config.",
            file=sys.stderr,
        )
        return 2
    if os.geteuid() != 0:
        print(
            "imapha demo: the namespace demo needs root (network namespaces, real VRRP).\n"
            "The unprivileged loopback mode (UDP VRRP transport, listener address driver)\n"
            "is not built yet in this version. Run `sudo make demo`.",
            file=sys.stderr,
        )
        return 2
    story = args.scenario
    if story is None and not args.hold and not sys.stdin.isatty():
        story = "failover"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="imapha-demo-"))
    say(f"building a two-node cluster in network namespaces (files in {workdir})")
    try:
        with Lab(workdir=workdir / "lab") as lab:
            cluster = Cluster(lab, workdir, users=args.users,
                              advert_interval=args.advert_interval)
            say(f"lab {lab.prefix}: nodes a {NODES['a']}, b {NODES['b']}, client "
                f"{cluster.client.netns}; starting backend, proxy, dhcp and vipd on each node")
            cluster.start()
            for name, address, _, home in VIPS:
                say(f"{name} {address} is on its home node {home}")
            if story is not None:
                return 0 if run_story(cluster, story) else 1
            if args.hold:
                _hold(cluster, args.state_file)
                return 0
            LiveView(cluster).run()
            return 0
    except ClusterError as exc:
        say(f"the cluster did not come up: {exc} (logs in {workdir / 'logs'})")
        return 2
