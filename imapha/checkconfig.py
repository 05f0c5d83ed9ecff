"""``imapha check-config FILE``: validate the cluster config, show a node's view.

Valid: print the effective config of ``--node`` as TOML, or ``--json``, and
exit 0. Without ``--node``, the node is this host's name if the config has
such a node, else every node is shown (``--all-nodes`` forces that).
Invalid: print every issue, one per line as ``file:line: key: message``, to
stderr, and exit 1 (with ``--json``, also ``{"valid": false, "issues": [...]}``
on stdout for tools).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Collection
from pathlib import Path

from imapha.cli import default_node
from imapha.config import ConfigError, load_config
from imapha.config.render import config_json, config_toml

EX_INVALID = 1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", type=Path, default=None,
                        help="config file to check (default: --config)")
    parser.add_argument("--json", action="store_true",
                        help="print the effective config (or the issues) as JSON")
    parser.add_argument("--all-nodes", action="store_true",
                        help="show every node even if --node is set")


def _which_node(args: argparse.Namespace, nodes: Collection[str]) -> str | None:
    """The node to show, or None for all: ``--node``, unless it is only the host-name default."""
    node: str | None = getattr(args, "node", None)
    if node is None or getattr(args, "all_nodes", False):
        return None
    if node not in nodes and node == default_node():
        return None
    return node


def run(args: argparse.Namespace) -> int:
    path: Path = args.file if getattr(args, "file", None) is not None else args.config
    as_json = bool(getattr(args, "json", False))
    try:
        config = load_config(path)
        node = _which_node(args, config.nodes)
        if node is not None:
            config.node(node)  # a ConfigError naming the unknown node
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        if as_json:
            issues = [
                {"file": i.file, "line": i.line, "key": i.key, "message": i.message}
                for i in exc.issues
            ]
            print(json.dumps({"valid": False, "issues": issues}, indent=2))
        return EX_INVALID
    text = config_json(config, node) if as_json else config_toml(config, node)
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `imapha check-config | head` is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
