"""A small valid cluster config that tests extend, and a way to load text from a file."""

from __future__ import annotations

from pathlib import Path

from imapha.config import ClusterConfig, load_config

BASE = """\
[cluster]
name = "t"

[nodes.a]
address = "192.0.2.11"
interface = "eth0"

[nodes.b]
address = "192.0.2.12"
interface = "eth0"

[[vips]]
name = "imap1"
address = "192.0.2.101"
vrid = 51
home = "a"

[[backends]]
name = "be1"
address = "192.0.2.21:143"
"""


def write(tmp_path: Path, text: str, name: str = "imapha.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str) -> ClusterConfig:
    return load_config(write(tmp_path, text))
