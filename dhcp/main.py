"""``imapha dhcp``: run the DHCPv4 failover server (see :mod:`dhcp.service`)."""

from __future__ import annotations

import argparse

from imapha.daemon import DaemonContext, Service, run_daemon


def configure(parser: argparse.ArgumentParser) -> None:
    """No options beyond the common ones: everything is in the config file."""


def run(args: argparse.Namespace) -> int:
    def factory(ctx: DaemonContext) -> Service:
        from dhcp.service import DhcpService

        return DhcpService(ctx)

    return run_daemon("dhcp", args.config, args.node, factory)
