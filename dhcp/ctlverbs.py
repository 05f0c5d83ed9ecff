"""``imapha ctl dhcp ...``: the operator's verbs for the DHCP server, for :mod:`imapha.ctl`.

Hook (in ``imapha/ctl.py``)::

    from dhcp import ctlverbs
    dhcp = add("dhcp", "DHCP server: leases, failover")     # in configure()
    ctlverbs.configure(dhcp)
    ...
    if args.action == "dhcp":                                # in run()
        return ctlverbs.run(config, args, timeout, out)

Verbs (``--node NODE`` picks the server; default: this host's node)::

    imapha ctl dhcp status              failover state, peer, pools (JSON with --json)
    imapha ctl dhcp leases [--json]     every lease record
    imapha ctl dhcp lease IP            one address's record
    imapha ctl dhcp partner-down        the peer is down: take its half of the pools
    imapha ctl dhcp sync                send every record to the peer again
    imapha ctl dhcp vip NAME STATE      what vipd says (master, backup, fault)
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from typing import Any, TextIO

from imapha.config import ClusterConfig, ConfigError
from imapha.control import ControlClientError, request

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2  # as every other `imapha ctl` action


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", dest="dhcp_node", metavar="NODE",
                        help="the DHCP server to ask (default: this host's node)")
    sub = parser.add_subparsers(dest="dhcp_verb", metavar="VERB", required=True)
    status = sub.add_parser("status", help="failover state, peer, pool usage")
    status.add_argument("--json", action="store_true")
    leases = sub.add_parser("leases", help="every lease record")
    leases.add_argument("--json", action="store_true")
    lease = sub.add_parser("lease", help="one address's lease record")
    lease.add_argument("ip")
    sub.add_parser("partner-down", help="assert the peer is down: take its half of the pools")
    sub.add_parser("sync", help="send every lease record to the peer again")
    vip = sub.add_parser("vip", help="tell the server its role for the DHCP VIP (as vipd does)")
    vip.add_argument("vip")
    vip.add_argument("state", choices=("master", "backup", "fault"))


def _node(config: ClusterConfig, args: argparse.Namespace) -> str:
    node = getattr(args, "dhcp_node", None) or getattr(args, "node", None)
    return str(node or socket.gethostname())


def _table(leases: list[dict[str, Any]], out: TextIO) -> None:
    print(f"{'ADDRESS':<16} {'STATE':<9} {'HWADDR':<18} {'EXPIRES':<20} CLIENT", file=out)
    for item in leases:
        expires = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(item["expires"])))
        print(f"{item['address']:<16} {item['state']:<9} {item['hwaddr']:<18} {expires:<20} "
              f"{item['client']}{' ' + item['hostname'] if item.get('hostname') else ''}",
              file=out)


def run(config: ClusterConfig, args: argparse.Namespace, timeout: float, out: TextIO) -> int:
    node = _node(config, args)
    try:
        path = config.control_socket(node, "dhcp")
    except ConfigError as exc:
        print(f"imapha ctl dhcp: {exc}", file=out)
        return EXIT_USAGE
    verb = args.dhcp_verb
    routes: dict[str, tuple[str, str, dict[str, Any] | None]] = {
        "status": ("GET", "/status", None),
        "leases": ("GET", "/leases", None),
        "lease": ("POST", "/lease", {"ip": getattr(args, "ip", "")}),
        "partner-down": ("POST", "/partner-down", {}),
        "sync": ("POST", "/sync", {}),
        "vip": ("POST", "/vip", {"vip": getattr(args, "vip", ""),
                                  "state": getattr(args, "state", "")}),
    }
    method, target, body = routes[verb]
    try:
        resp = request(path, method, target, body, timeout=timeout)
    except ControlClientError as exc:
        print(f"imapha ctl dhcp: {node}: {exc.message}", file=out)
        return EXIT_FAILED
    if not resp.ok:
        print(f"imapha ctl dhcp: {node}: refused: {resp.error} (HTTP {resp.status})", file=out)
        return EXIT_FAILED
    if verb == "leases" and not args.json:
        _table(list(resp.body.get("leases", [])), out)
    elif verb == "status" and not args.json:
        b = resp.body
        peer = b.get("peer") or {}
        print(f"{node}: {b.get('mode')} mode, failover {b.get('failover')}, "
              f"{'answering' if b.get('answering') else 'silent'}, server id "
              f"{b.get('server_id')}", file=out)
        if b.get("failover_hold"):
            print("held: this node crashed (or stopped over MCLT ago) and its peer may have "
                  "leased its half; it serves after the peer's resync, or after "
                  "`imapha ctl dhcp partner-down` if you know the peer leased nothing", file=out)
        if peer:
            print(f"peer {peer.get('node')}: {peer.get('state')} (its failover "
                  f"{peer.get('failover')}), replication lag {b.get('replication_lag', 0):.3f} s",
                  file=out)
        for pool in b.get("pools", []):
            print(f"pool {pool['pool']}: {pool['free']} free, {pool['bound']} bound, "
                  f"{pool['offered']} offered, {pool['declined']} declined", file=out)
    else:
        print(json.dumps(resp.body, indent=2, sort_keys=True), file=out)
    return EXIT_OK
