"""``imapha dhcp``: run the DHCPv4 failover server (see :mod:`dhcp.service`)."""

from __future__ import annotations

import argparse

from imapha.daemon import DaemonContext, Service, run_daemon

#: The probe before an offer (ARP on the link, ICMP echo behind a relay): off unless asked.
DEFAULT_PROBE_TIMEOUT = 0.0


def configure(parser: argparse.ArgumentParser) -> None:
    """Everything else is in the config file."""
    parser.add_argument(
        "--probe-timeout", type=float, default=DEFAULT_PROBE_TIMEOUT, metavar="SECONDS",
        help="before offering an address nobody holds, ARP/ping it and wait this long for an "
             "answer (an answer quarantines it for decline_probation); 0 = no probe "
             "(default); 0.3 is what ISC and Kea use roughly")


def run(args: argparse.Namespace) -> int:
    def factory(ctx: DaemonContext) -> Service:
        from dhcp.service import DhcpService

        return DhcpService(ctx, probe_timeout=max(0.0, args.probe_timeout))

    return run_daemon("dhcp", args.config, args.node, factory)
