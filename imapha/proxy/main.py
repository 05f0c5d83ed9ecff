"""``imapha proxy``: run the IMAP proxy daemon (:mod:`imapha.proxy.service`; with
``workers > 1`` the supervisor :mod:`imapha.proxy.workers`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from imapha.daemon import DaemonContext, Service, run_daemon


def configure(parser: argparse.ArgumentParser) -> None:
    """No options beyond the common ones: everything is in the config file."""


def run(args: argparse.Namespace) -> int:
    def factory(ctx: DaemonContext) -> Service:
        proxy = ctx.node_config.proxy
        if proxy is not None and proxy.workers > 1:
            from imapha.proxy.workers import WorkerPool

            return WorkerPool(ctx, Path(args.config).resolve(),
                              log_level=getattr(args, "log_level", "info"),
                              log_format=getattr(args, "log_format", "text"))
        from imapha.proxy.service import ProxyService

        return ProxyService(ctx)

    return run_daemon("proxy", args.config, args.node, factory)
