"""The ``imapha`` command: one subcommand per daemon or tool.

Each subcommand lives in its own module, which defines
``configure(parser)`` (its own arguments) and ``run(args) -> int``. Only the
module of the subcommand being run is imported, so ``imapha ctl`` starts fast
and a role that is not built yet says so and exits 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Final

from imapha import __version__, log

DEFAULT_CONFIG: Final = Path("/etc/imapha/imapha.toml")
EX_USAGE: Final = 2

# name -> (module, one-line help). Order is the order of ``imapha --help``.
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "proxy": ("imapha.proxy.main", "run the IMAP proxy daemon (143/993)"),
    "backend": ("imapha.server.main", "run the embedded Maildir IMAP backend"),
    "vipd": ("imapha.vip.main", "run the VIP manager (VRRPv3)"),
    "dhcp": ("dhcp.main", "run the DHCPv4 failover server"),
    "ctl": ("imapha.ctl", "operator client of the daemons' control APIs"),
    "deliver": ("imapha.deliver", "deliver a message from stdin into a user's Maildir"),
    "demo": ("imapha.lab.demo", "a whole two-node cluster on this machine"),
    "check-config": ("imapha.checkconfig", "validate the cluster config, show a node's view"),
    "lab": ("imapha.lab.cli", "build, list and clean up network-namespace labs"),
}


def default_node() -> str:
    return os.environ.get("IMAPHA_NODE") or socket.gethostname().split(".", 1)[0]


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument(
        "--config", type=Path,
        default=Path(os.environ.get("IMAPHA_CONFIG", str(DEFAULT_CONFIG))),
        help="cluster config file (default: $IMAPHA_CONFIG or %(default)s)",
    )
    group.add_argument("--node", default=default_node(),
                       help="which node of the config this is (default: the host name)")
    group.add_argument("--log-level", default="info", choices=log.LEVELS)
    group.add_argument("--log-format", default="text", choices=log.FORMATS)
    return common


def _load(command: str) -> ModuleType | None:
    module_name = COMMANDS[command][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            return None
        raise


def build_parser(selected: str | None) -> tuple[argparse.ArgumentParser, ModuleType | None]:
    """The parser; only ``selected``'s module is imported and asked for its options."""
    parser = argparse.ArgumentParser(
        prog="imapha", description="High-availability IMAP, VIPs and DHCP for mail sites."
    )
    parser.add_argument("--version", action="version", version=f"imapha {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _common_options()
    module = None
    for name, (_, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        if name == selected:
            module = _load(name)
            if module is not None:
                module.configure(sp)
            else:
                sp.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser, module


def _selected(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    selected = _selected(args_list)
    parser, module = build_parser(selected)
    args = parser.parse_args(args_list)
    if module is None:
        print(f"imapha {args.command}: not built yet in this version", file=sys.stderr)
        return EX_USAGE
    log.setup(args.log_level, args.log_format)
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
