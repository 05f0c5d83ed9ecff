"""``imapha lab``: build a small lab and hold it, list labs, clean up leftovers.

    imapha lab up [--state-file F] [--prefix P] [--dhcp-net]
    imapha lab list [--json]
    imapha lab cleanup (--prefix P | --all)

``up`` builds hosts a (192.0.2.11) and b (192.0.2.12) and client c
(192.0.2.100), writes the lab's description as JSON to the state file once it
is ready, and holds it until SIGINT or SIGTERM, then tears it down.
``cleanup`` stops every process inside and deletes every namespace (and stray
prefixed link) of one lab prefix, or of every lab with ``--all``; it is how
the leftovers of a SIGKILLed run are removed.  Runs standalone as
``python -m imapha.lab.cli`` too.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections import defaultdict
from pathlib import Path
from types import FrameType

from imapha.lab import netns
from imapha.lab.netns import LabError
from imapha.lab.topology import Lab, teardown

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="build a two-host lab and hold it until SIGINT/SIGTERM")
    up.add_argument("--state-file", type=Path, help="write the lab's JSON description here")
    up.add_argument("--prefix", help="lab prefix ('ih' + 5 of [a-z0-9]); random by default")
    up.add_argument(
        "--dhcp-net",
        action="store_true",
        help="also put a and b on 198.51.100.0/24 with an address-less client d",
    )
    listing = sub.add_parser("list", help="show lab namespaces present on this machine")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cleanup = sub.add_parser("cleanup", help="remove a lab's namespaces, links and processes")
    which = cleanup.add_mutually_exclusive_group(required=True)
    which.add_argument("--prefix", help="the prefix of the lab to remove")
    which.add_argument("--all", action="store_true", help="every lab namespace on this machine")


def run(args: argparse.Namespace) -> int:
    try:
        if args.lab_command == "up":
            return _up(args)
        if args.lab_command == "list":
            return _list(args)
        if args.lab_command == "cleanup":
            return _cleanup(args)
    except LabError as exc:
        print(f"imapha lab: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(f"unknown lab command {args.lab_command!r}")


def _up(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    with Lab(prefix=args.prefix) as lab:
        extra = ["198.51.100.11/24"] if args.dhcp_net else []
        lab.add_host("a", ["192.0.2.11/24", *extra])
        extra = ["198.51.100.12/24"] if args.dhcp_net else []
        lab.add_host("b", ["192.0.2.12/24", *extra])
        lab.add_client("c", ["192.0.2.100/24"])
        if args.dhcp_net:
            lab.add_client("d", networks=["198.51.100.0/24"])
        if args.state_file:
            lab.write_state(args.state_file)
        print(f"lab {lab.prefix} is up; Ctrl-C or SIGTERM tears it down", flush=True)
        for host in lab.hosts.values():
            addrs = " ".join(host.addresses) or "(no address)"
            print(f"  {host.name:<3} {addrs:<34} ip netns exec {host.netns} bash", flush=True)
        print(f"  leftovers after a crash: imapha lab cleanup --prefix {lab.prefix}", flush=True)
        while not stop.wait(0.5):
            pass
        print(f"tearing down lab {lab.prefix}", flush=True)
    return 0


def _list(args: argparse.Namespace) -> int:
    labs: dict[str, list[dict[str, object]]] = defaultdict(list)
    for name in netns.lab_namespaces():
        prefix = name.split("-", 1)[0]
        labs[prefix].append({"netns": name, "pids": netns.pids_in(name)})
    if args.json:
        print(json.dumps(labs, indent=2))
        return 0
    if not labs:
        print("no lab namespaces")
        return 0
    print(f"{'PREFIX':<9} {'NAMESPACE':<18} PIDS")
    for prefix, entries in sorted(labs.items()):
        for entry in entries:
            pids = entry["pids"]
            assert isinstance(pids, list)
            shown = " ".join(str(p) for p in pids[:8]) + (" …" if len(pids) > 8 else "")
            print(f"{prefix:<9} {entry['netns']!s:<18} {shown or '-'}")
    return 0


def _cleanup(args: argparse.Namespace) -> int:
    prefix = None if args.all else netns.check_prefix(args.prefix)
    names = netns.lab_namespaces(prefix)
    links = netns.root_links(prefix)
    pids = sum(len(netns.pids_in(n)) for n in names)
    problems = teardown(prefix, grace=1.0)
    for problem in problems:
        print(f"imapha lab cleanup: {problem}", file=sys.stderr)
    print(
        f"removed {len(names)} namespaces, {len(links)} links, stopped {pids} processes"
        + (f" (prefix {prefix})" if prefix else " (all labs)")
    )
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imapha lab", description=__doc__.split("\n")[0])
    configure(parser)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
