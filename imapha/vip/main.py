"""``imapha vipd``: run the VIP manager (see :mod:`imapha.vip.service`)."""

from __future__ import annotations

import argparse

from imapha.daemon import DaemonContext, Service, run_daemon


def configure(parser: argparse.ArgumentParser) -> None:
    """No options beyond the common ones: everything is in the config file."""


def run(args: argparse.Namespace) -> int:
    def factory(ctx: DaemonContext) -> Service:
        from imapha.vip.service import VipdService

        return VipdService(ctx)

    return run_daemon("vipd", args.config, args.node, factory)
