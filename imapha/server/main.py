"""``imapha backend``: run the embedded Maildir IMAP server (see :mod:`imapha.server.service`)."""

from __future__ import annotations

import argparse

from imapha.daemon import DaemonContext, Service, run_daemon


def configure(parser: argparse.ArgumentParser) -> None:
    """No options beyond the common ones: everything is in the config file."""


def run(args: argparse.Namespace) -> int:
    def factory(ctx: DaemonContext) -> Service:
        from imapha.server.service import BackendService

        return BackendService(ctx)

    return run_daemon("backend", args.config, args.node, factory)
