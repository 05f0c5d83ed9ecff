"""``imapha ctl``: the operator's client of every daemon's control API.

Theory of operation
-------------------
ctl reads the cluster config, so it knows every node, the roles configured on
each and where each role's control socket lives
(:meth:`ClusterConfig.control_socket`). It talks to a daemon only through that
Unix socket (:func:`imapha.control.request`); it opens no network port and
needs none.

- ``status [--json]`` asks ``GET /status`` of every (node, role) whose socket
  exists on this host and prints a table (or a JSON list). A socket that is
  absent or refuses is shown ``unreachable``.
- ``drain NODE`` posts ``/drain`` to the node's daemons in the order vipd,
  proxy, backend, dhcp (the VIPs move away first, then the services stop
  taking new work) and follows the maintenance through: after vipd it polls
  vipd's ``/status`` until it is master of no VIP (so the proxy stops
  listening only once clients reach the other node), after the proxy it polls
  the proxy's ``/status`` until no relayed session is left (they end at safe
  points after the proxy's ``drain_grace``; draining the embedded backend
  first would cut them with ``BYE``), printing progress, all within the
  action's ``--timeout`` (default 60 s; ``--no-wait`` posts without waiting).
  A wait that runs out does not stop the drain: the rest is still drained.
- ``undrain NODE`` posts ``/undrain`` in the reverse order, then waits until
  every daemon of the node answers ``GET /ready`` with 200 and, when its vipd
  reports VIPs, until it is master again of the VIPs whose home it is.

A wait prints a line only when there is something to wait for (a VIP held,
a session left, a daemon not ready yet), so a node with nothing to move
shows just the one line per daemon.
- ``kick USER`` and ``drain-backend NAME`` go to every reachable proxy.

Exit codes: 0 all answered and agreed (and, for drain/undrain, the node
reached the state waited for); 1 some daemon was unreachable or refused;
2 usage (bad arguments, unusable config, unknown node or backend); 3 drain or
undrain was accepted by every daemon but the node did not get there within
``--timeout`` (a VIP still held, sessions left, a daemon not ready, a home
VIP not back): the drain stays in force, the sessions keep running.

Other nodes
-----------
A node's sockets exist only on that node (``run_dir`` is per node), and ctl
deliberately adds no network listener. Two ways to reach them:

1. ``imapha ctl status --ssh`` runs ``ssh -o BatchMode=yes NODE_ADDRESS imapha
   ctl --config SAME_PATH status --json --only-node NODE`` for each node whose
   sockets are not on this host, and merges the answers into one table.
   ``--ssh-command`` replaces the ``ssh ...`` part (a jump host, a key...).
   ``drain NODE --ssh`` / ``undrain NODE --ssh`` likewise run ``imapha ctl
   drain NODE`` on the node when none of its sockets is here; by hand it
   works for any verb: ``ssh b imapha ctl kick alice``.
2. Forward one socket: ``ssh -N -L /tmp/b-proxy.sock:/run/imapha/b/proxy.sock b``,
   then ``curl --unix-socket /tmp/b-proxy.sock http://x/status``.

Both rely on SSH's authentication; the sockets stay mode 0660.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from dhcp import ctlverbs as dhcp_ctlverbs
from imapha.config import ClusterConfig, ConfigError, load_config
from imapha.control import ControlClientError, JsonObject, request

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_TIMEOUT: Final = 3

#: How long drain/undrain wait for the node to get there, by default.
DEFAULT_WAIT: Final = 60.0
POLL_INTERVAL: Final = 0.2
#: Seconds between two "N sessions left" lines while they do not change.
PROGRESS_EVERY: Final = 5.0

#: drain goes in this order (VIPs move first); undrain in the reverse.
ROLE_ORDER: Final = ("vipd", "proxy", "backend", "dhcp")
DEFAULT_SSH: Final = "ssh -o BatchMode=yes -o ConnectTimeout=5"
REMOTE_PROGRAM: Final = "imapha"


@dataclass
class Row:
    """One daemon in ``ctl status``; also the JSON object of ``--json``."""

    node: str
    role: str
    socket: str
    reachable: bool = False
    state: str = "unreachable"
    pid: int | None = None
    uptime: float | None = None
    detail: str = ""
    via: str = "local"
    status: JsonObject = field(default_factory=dict)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for each daemon (default %(default)s)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        # Accept --config after the action too (`imapha ctl status --config F`).
        sp.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help="cluster config file")
        return sp

    def add_ssh(sp: argparse.ArgumentParser, what: str) -> None:
        sp.add_argument("--ssh", action="store_true",
                        help=f"{what} over ssh when its sockets are not on this host")
        sp.add_argument("--ssh-command", default=DEFAULT_SSH,
                        help="how to run a command on a node (default: %(default)s)")

    status = add("status", "show every daemon of the cluster reachable from here")
    status.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    add_ssh(status, "ask a node")
    status.add_argument("--only-node", metavar="NODE", help="only this node's daemons")
    drain = add("drain", "stop NODE taking new work: its VIPs move away, sessions finish")
    drain.add_argument("target", metavar="NODE")
    add_ssh(drain, "drain the node")
    undrain = add("undrain", "let NODE take work (and its VIPs) again")
    undrain.add_argument("target", metavar="NODE")
    add_ssh(undrain, "undrain the node")
    for sp, what in ((drain, "its VIPs to move away and its sessions to end"),
                     (undrain, "its daemons to be ready and its home VIPs back")):
        sp.add_argument("--timeout", dest="wait_timeout", type=float, default=DEFAULT_WAIT,
                        metavar="SECONDS",
                        help=f"how long to wait for {what} (default %(default)g; exit 3 "
                             "if not)")
        sp.add_argument("--no-wait", action="store_true",
                        help="return once every daemon has answered, without waiting")
    kick = add("kick", "end USER's sessions on every proxy")
    kick.add_argument("target", metavar="USER")
    drain_backend = add("drain-backend", "route no new session to backend NAME")
    drain_backend.add_argument("target", metavar="NAME")
    dhcp_ctlverbs.configure(add("dhcp", "DHCP server: leases, failover, partner-down, sync"))


def run(args: argparse.Namespace) -> int:
    out: TextIO = sys.stdout
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"imapha ctl: {issue}", file=sys.stderr)
        if not exc.issues:
            print(f"imapha ctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"imapha ctl: cannot read {args.config}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    timeout: float = args.timeout
    if args.action == "status":
        return _status(config, args, timeout, out)
    if args.action in {"drain", "undrain"}:
        wait = None if args.no_wait else max(0.0, args.wait_timeout)
        return _drain(config, args.action, args.target, timeout, out,
                      ssh_command=args.ssh_command if args.ssh else None, wait=wait)
    if args.action == "dhcp":
        return dhcp_ctlverbs.run(config, args, timeout, out)
    if args.action == "kick":
        return _to_proxies(config, "/kick", {"user": args.target}, timeout, out)
    if args.action == "drain-backend":
        names = [b.name for b in config.backends]
        if args.target not in names:
            print(f"imapha ctl: no backend named {args.target!r} (backends: "
                  f"{', '.join(names) or 'none'})", file=sys.stderr)
            return EXIT_USAGE
        return _to_proxies(config, "/drain-backend", {"name": args.target}, timeout, out)
    print(f"imapha ctl: unknown action {args.action!r}", file=sys.stderr)
    return EXIT_USAGE


# ---------------------------------------------------------------- status


def _targets(config: ClusterConfig, nodes: Iterable[str]) -> list[Row]:
    rows = []
    for node in nodes:
        roles = config.roles(node)
        for role in ROLE_ORDER:
            if role in roles:
                rows.append(Row(node, role, str(config.control_socket(node, role))))
    return rows


def state_of(status: JsonObject) -> str:
    """The one-word state ``ctl status`` shows for a daemon's /status."""
    state = str(status.get("state", "running"))
    if state != "running":
        return state
    if status.get("draining"):
        return "draining"
    return "ready" if status.get("ready") else "not ready"


def query(row: Row, timeout: float) -> Row:
    """Fill ``row`` from the daemon's GET /status (in place) and return it."""
    try:
        resp = request(row.socket, "GET", "/status", timeout=timeout)
    except ControlClientError as exc:
        row.detail = exc.message
        return row
    if not resp.ok:
        row.detail = f"/status answered {resp.status}: {resp.error}"
        return row
    body = resp.body
    row.reachable = True
    row.status = body
    row.state = state_of(body)
    pid = body.get("pid")
    row.pid = pid if isinstance(pid, int) else None
    uptime = body.get("uptime")
    row.uptime = float(uptime) if isinstance(uptime, int | float) else None
    parts = []
    if row.state == "not ready" and body.get("reason"):
        parts.append(str(body["reason"]))
    if body.get("detail"):
        parts.append(str(body["detail"]))
    row.detail = "; ".join(parts)
    return row


def _status(config: ClusterConfig, args: argparse.Namespace, timeout: float,
            out: TextIO) -> int:
    nodes = list(config.node_names)
    if args.only_node is not None:
        if args.only_node not in nodes:
            print(f"imapha ctl: no node {args.only_node!r} (nodes: {', '.join(nodes)})",
                  file=sys.stderr)
            return EXIT_USAGE
        nodes = [args.only_node]
    rows = _targets(config, nodes)
    local: list[Row] = []
    remote_nodes: list[str] = []
    for row in rows:
        if Path(row.socket).exists():
            local.append(row)
        else:
            row.detail = "no socket on this host" + ("" if args.ssh else
                                                     " (down, or a remote node: try --ssh)")
            if args.ssh and row.node not in remote_nodes:
                remote_nodes.append(row.node)
    # In parallel, so a hung daemon or a slow ssh costs one timeout, not one each.
    # Each task fills in only its own rows.
    with ThreadPoolExecutor(max_workers=min(16, len(local) + len(remote_nodes) or 1)) as pool:
        tasks: list[Future[Any]] = [pool.submit(query, row, timeout) for row in local]
        tasks += [pool.submit(_merge_remote, config, node, rows, args.ssh_command, timeout)
                  for node in remote_nodes]
        for task in tasks:
            task.result()
    if args.json:
        json.dump([asdict(r) for r in rows], out, indent=2, sort_keys=True, default=str)
        out.write("\n")
    else:
        print_table(rows, out)
    return EXIT_OK if all(r.reachable for r in rows) else EXIT_FAILED


def _merge_remote(config: ClusterConfig, node: str, rows: list[Row], ssh_command: str,
                  timeout: float) -> None:
    """Replace ``node``'s local rows by what ``ssh NODE imapha ctl status --json`` says."""
    host = str(config.node(node).address)
    command = [*shlex.split(ssh_command), host, REMOTE_PROGRAM, "ctl",
               "--config", str(config.path), "--timeout", f"{timeout:g}",
               "status", "--json", "--only-node", node]
    mine = [r for r in rows if r.node == node]
    try:
        proc = subprocess.run(command, capture_output=True, text=True,
                              timeout=timeout * (len(mine) + 1) + 10, check=False)
        remote = json.loads(proc.stdout) if proc.stdout.strip() else None
        if not isinstance(remote, list):
            last = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            raise ValueError(last)
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        for row in mine:
            if not row.reachable:
                row.detail = f"ssh {host}: {exc}"
        return
    by_role = {str(item.get("role")): item for item in remote if isinstance(item, dict)}
    for row in mine:
        if row.reachable:
            continue
        item = by_role.get(row.role)
        if item is None:
            row.detail = f"ssh {host}: no answer for {row.role}"
            continue
        for key in ("reachable", "state", "pid", "uptime", "detail", "status"):
            if key in item:
                setattr(row, key, item[key])
        row.via = f"ssh {host}"


def format_uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{s:02d}s"
    return f"{s}s"


def print_table(rows: Sequence[Row], out: TextIO) -> None:
    header = ("NODE", "ROLE", "PID", "STATE", "UPTIME", "DETAIL")
    table = [header] + [
        (r.node, r.role, str(r.pid) if r.pid is not None else "-", r.state,
         format_uptime(r.uptime), r.detail if r.via == "local" else f"{r.detail} [{r.via}]")
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    for line in table:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        out.write(("  ".join([*cells, line[-1]])).rstrip() + "\n")


# ---------------------------------------------------------------- actions


def _post(row: Row, target: str, body: JsonObject | None, timeout: float) -> tuple[bool, str]:
    """(success, one-line result) of one POST."""
    try:
        resp = request(row.socket, "POST", target, body, timeout=timeout)
    except ControlClientError as exc:
        return False, f"unreachable ({exc.message})"
    if not resp.ok:
        return False, f"refused: {resp.error} (HTTP {resp.status})"
    return True, _describe(target, resp.body)


def _describe(target: str, body: JsonObject) -> str:
    if target in {"/drain", "/undrain"}:
        word = "drained" if target == "/drain" else "undrained"
        return word if body.get("changed", True) else f"already {word}"
    return ", ".join(f"{k}={v}" for k, v in sorted(body.items()) if k not in {"role", "node"}) \
        or "ok"


def _drain(config: ClusterConfig, action: str, node: str, timeout: float, out: TextIO,
           *, ssh_command: str | None = None, wait: float | None = None) -> int:
    if node not in config.node_names:
        print(f"imapha ctl: no node {node!r} (nodes: {', '.join(config.node_names)})",
              file=sys.stderr)
        return EXIT_USAGE
    rows = _targets(config, [node])
    if ssh_command is not None and not any(Path(r.socket).exists() for r in rows):
        return _drain_remote(config, action, node, timeout, out, ssh_command=ssh_command,
                             wait=wait)
    if action == "undrain":
        rows.reverse()
    names = {str(config.node(n).address): n for n in config.node_names}
    waiter = None if wait is None else _Waiter(node, out, timeout, wait, names)
    ok = True
    arrived = True
    answered: list[Row] = []
    for row in rows:
        held = waiter.held(row) if waiter is not None and action == "drain" else []
        success, text = _post(row, f"/{action}", None, timeout)
        ok = ok and success
        out.write(f"{row.node}  {row.role:<8} {text}\n")
        out.flush()
        if not success:
            continue
        answered.append(row)
        # Drain: each step waits for the one before it to take effect, so the VIPs are
        # elsewhere before the proxy stops listening, and the proxy's sessions have
        # ended at their safe points before the backend they may use is drained.
        if waiter is not None and action == "drain":
            if row.role == "vipd":
                arrived = waiter.vips_gone(row, held) and arrived
            elif row.role == "proxy":
                arrived = waiter.sessions_end(row) and arrived
    if waiter is not None and action == "undrain":
        home = [v.name for v in config.vips if v.home == node]
        arrived = waiter.undrained(answered, home)
    if not ok:
        return EXIT_FAILED
    return EXIT_OK if arrived else EXIT_TIMEOUT


class _Waiter:
    """Polls a node's daemons after drain/undrain until it gets there or time is up."""

    def __init__(self, node: str, out: TextIO, timeout: float, budget: float,
                 names: dict[str, str] | None = None) -> None:
        self.node = node
        self.names = names or {}
        self.out = out
        self.timeout = timeout
        self.budget = budget
        self.started = time.monotonic()
        self.deadline = self.started + budget

    def say(self, what: str, text: str) -> None:
        self.out.write(f"{self.node}  {what:<8} {text}\n")
        self.out.flush()

    def _status(self, row: Row) -> JsonObject | None:
        try:
            resp = request(row.socket, "GET", "/status", timeout=self.timeout)
        except ControlClientError:
            return None
        return resp.body if resp.ok else None

    def _took(self) -> str:
        return f"{time.monotonic() - self.started:.1f} s"

    def _poll(self) -> bool:
        """Sleep one interval; False once the deadline has passed."""
        if time.monotonic() >= self.deadline:
            return False
        time.sleep(min(POLL_INTERVAL, max(0.0, self.deadline - time.monotonic())))
        return True

    @staticmethod
    def _vips(status: JsonObject | None) -> list[JsonObject] | None:
        vips = status.get("vips") if status is not None else None
        if not isinstance(vips, list):
            return None
        return [v for v in vips if isinstance(v, dict)]

    def held(self, vipd: Row) -> list[str]:
        """The VIPs ``vipd`` is master of now (none if it cannot tell)."""
        if vipd.role != "vipd":
            return []
        vips = self._vips(self._status(vipd)) or []
        return [str(v.get("name")) for v in vips if v.get("state") == "master"]

    def vips_gone(self, vipd: Row, before: Sequence[str]) -> bool:
        """Wait until ``vipd`` is master of no VIP and another node is of those it held.

        ``before``: the VIPs it held before the drain. vipd's ``/status`` names
        the master it hears from for each VIP; a VIP nobody advertises is down.
        """
        held: list[str] = []
        orphans: list[str] = []
        announced = False
        while True:
            vips = self._vips(self._status(vipd))
            if vips is None:
                if announced:
                    self.say("vips", "vipd stopped answering; cannot tell where the VIPs are")
                    return False
                return True  # a vipd that reports no VIPs: nothing to follow
            held = [str(v.get("name")) for v in vips if v.get("state") == "master"]
            masters = {str(v.get("name")): v.get("master") for v in vips}
            orphans = [name for name in before if not masters.get(name)]
            if not held and not orphans:
                if before:
                    where = ", ".join(f"{name} to {self._who(masters[name])}"
                                      for name in before)
                    self.say("vips", f"moved {where} after {self._took()}")
                elif vips and not announced:
                    self.say("vips", "none held here")
                return True
            if not announced:
                self.say("vips", f"waiting for {', '.join(held or orphans)} to move to another "
                                 "node")
                announced = True
            if not self._poll():
                break
        if held:
            self.say("vips", f"still master of {', '.join(held)} after {self.budget:g} s")
        if orphans:
            self.say("vips", f"{', '.join(orphans)} held by no node after {self.budget:g} s: "
                             "no other node takes over (all drained or down?)")
        return False

    def _who(self, address: object) -> str:
        return self.names.get(str(address), str(address))

    def sessions_end(self, proxy: Row) -> bool:
        left = -1
        said_at = 0.0
        while True:
            status = self._status(proxy)
            count = status.get("sessions") if status is not None else None
            if not isinstance(count, int):
                if left > 0:
                    self.say("sessions", "the proxy stopped answering (stopped?)")
                return left <= 0
            if count == 0:
                if left > 0:
                    self.say("sessions", f"all ended after {self._took()}")
                return True
            now = time.monotonic()
            if (count != left and (left < 0 or now - said_at >= 1.0)) \
                    or now - said_at >= PROGRESS_EVERY:
                self.say("sessions", f"{count} left on the proxy")
                said_at = now
            left = count
            if not self._poll():
                break
        self.say("sessions", f"{left} still open after {self.budget:g} s (the proxy ends "
                             "them after its drain_grace)")
        return False

    def undrained(self, rows: Sequence[Row], home: Sequence[str]) -> bool:
        ok = self._ready(rows)
        vipd = next((r for r in rows if r.role == "vipd"), None)
        if ok and vipd is not None and home:
            ok = self._home_back(vipd, home)
        return ok

    def _ready(self, rows: Sequence[Row]) -> bool:
        waiting: list[Row] = list(rows)
        announced = False
        reasons: dict[str, str] = {}
        while True:
            still = []
            for row in waiting:
                try:
                    resp = request(row.socket, "GET", "/ready", timeout=self.timeout)
                except ControlClientError as exc:
                    reasons[row.role] = exc.message
                    still.append(row)
                    continue
                if not resp.ok:
                    reasons[row.role] = str(resp.body.get("reason") or resp.error)
                    still.append(row)
            waiting = still
            if not waiting:
                if announced:
                    self.say("ready", f"every daemon ready after {self._took()}")
                return True
            if not announced:
                self.say("ready", "waiting for " + ", ".join(
                    f"{r.role} ({reasons.get(r.role, 'not ready')})" for r in waiting))
                announced = True
            if not self._poll():
                break
        self.say("ready", f"not ready after {self.budget:g} s: " + ", ".join(
            f"{r.role} ({reasons.get(r.role, 'not ready')})" for r in waiting))
        return False

    def _home_back(self, vipd: Row, home: Sequence[str]) -> bool:
        missing: list[str] = list(home)
        announced = False
        while True:
            vips = self._vips(self._status(vipd))
            if vips is None:
                return not announced  # no VIP report: nothing we can follow
            known = {str(v.get("name")) for v in vips}
            masters = {str(v.get("name")) for v in vips if v.get("state") == "master"}
            missing = [name for name in home if name in known and name not in masters]
            if not missing:
                if announced:
                    self.say("vips", f"{', '.join(home)} back after {self._took()}")
                return True
            if not announced:
                self.say("vips", f"waiting for {', '.join(missing)} to come home")
                announced = True
            if not self._poll():
                break
        self.say("vips", f"{', '.join(missing)} not back after {self.budget:g} s")
        return False


def _drain_remote(config: ClusterConfig, action: str, node: str, timeout: float, out: TextIO, *,
                  ssh_command: str, wait: float | None = None) -> int:
    """``ssh NODE imapha ctl drain NODE``: the node drains its own daemons, in order."""
    host = str(config.node(node).address)
    command = [*shlex.split(ssh_command), host, REMOTE_PROGRAM, "ctl",
               "--config", str(config.path), "--timeout", f"{timeout:g}", action, node]
    # The remote ctl waits as this one was asked to (its default needs no words).
    if wait is None:
        command.append("--no-wait")
    elif wait != DEFAULT_WAIT:
        command += ["--timeout", f"{wait:g}"]
    try:
        proc = subprocess.run(command, capture_output=True, text=True,
                              timeout=timeout * len(ROLE_ORDER) + (wait or 0.0) + 10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        out.write(f"{node}  ssh {host}: {exc}\n")
        return EXIT_FAILED
    for line in proc.stdout.splitlines():
        out.write(f"{line}  [ssh {host}]\n")
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    if proc.returncode in {EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_TIMEOUT}:
        return proc.returncode
    return EXIT_FAILED  # ssh's own 255, or anything else: not done


def _to_proxies(config: ClusterConfig, target: str, body: JsonObject, timeout: float,
                out: TextIO) -> int:
    rows = [r for r in _targets(config, config.node_names) if r.role == "proxy"]
    if not rows:
        print("imapha ctl: no proxy is configured", file=sys.stderr)
        return EXIT_USAGE
    ok = True
    for row in rows:
        success, text = _post(row, target, body, timeout)
        ok = ok and success
        out.write(f"{row.node}  {row.role:<8} {text}\n")
    return EXIT_OK if ok else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m imapha.ctl``: the same as ``imapha ctl`` without the other commands."""
    parser = argparse.ArgumentParser(prog="imapha ctl")
    parser.add_argument("--config", type=Path, default=Path("/etc/imapha/imapha.toml"))
    configure(parser)
    args: Any = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
