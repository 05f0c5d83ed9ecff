"""``imapha proxy``: run the IMAP proxy daemon (see :mod:`imapha.proxy.service`)."""

from __future__ import annotations

import argparse

from imapha.daemon import DaemonContext, Service, run_daemon


def configure(parser: argparse.ArgumentParser) -> None:
    """No options beyond the common ones: everything is in the config file."""


def run(args: argparse.Namespace) -> int:
    def factory(ctx: DaemonContext) -> Service:
        from imapha.proxy.service import ProxyService

        return ProxyService(ctx)

    return run_daemon("proxy", args.config, args.node, factory)
