"""``imapha dhcp``: run the DHCPv4 failover server (see :mod:`dhcp.service`)."""

from __future__ import annotations

import argparse

from imapha.daemon import DaemonContext, Service, run_daemon


def configure(parser: argparse.ArgumentParser) -> None:
    """Everything else is in the config file."""
    parser.add_argument(
        "--probe-timeout", type=float, default=None, metavar="SECONDS",
        help="override [dhcp] probe_timeout: before offering an address nobody holds, "
             "ARP/ping it and wait this long for an answer; 0 = no probe")


def run(args: argparse.Namespace) -> int:
    def factory(ctx: DaemonContext) -> Service:
        from dhcp.service import DhcpService

        override = None if args.probe_timeout is None else max(0.0, args.probe_timeout)
        return DhcpService(ctx, probe_timeout=override)

    return run_daemon("dhcp", args.config, args.node, factory)
