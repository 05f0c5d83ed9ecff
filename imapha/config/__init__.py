"""The cluster config: one TOML file for every node -> frozen dataclasses.

Theory of operation
-------------------
:func:`load_config` reads the file, converts every key of every section with
the schema in :mod:`.model`, merges each node's ``[nodes.N.SECTION]``
overrides, substitutes ``{node}``/``{run_dir}``/``{state_dir}``, cross-checks
the whole (:mod:`.checks`) and returns a :class:`ClusterConfig`, or raises
:class:`ConfigError` listing every issue with its file, line and dotted key.
Durations are ``float`` seconds, sizes ``int`` bytes, addresses
:mod:`ipaddress` objects and endpoints :class:`HostPort`. Relative paths are
relative to the config file's directory.
"""

from imapha.config.issues import ConfigError, ConfigIssue
from imapha.config.loader import load_config, loads_config
from imapha.config.model import (
    ROLES,
    SECTION_OF_ROLE,
    BackendConfig,
    BackendRef,
    ClusterConfig,
    DhcpConfig,
    DhcpPool,
    DhcpSubnet,
    Hooks,
    NodeConfig,
    ProxyConfig,
    TrackFile,
    TrackScript,
    VipConfig,
    VrrpConfig,
)
from imapha.config.reload import RELOADABLE, restart_changes
from imapha.config.units import (
    HostPort,
    format_duration,
    format_size,
    parse_duration,
    parse_hostport,
    parse_size,
)

__all__ = [
    "RELOADABLE",
    "ROLES",
    "SECTION_OF_ROLE",
    "BackendConfig",
    "BackendRef",
    "ClusterConfig",
    "ConfigError",
    "ConfigIssue",
    "DhcpConfig",
    "DhcpPool",
    "DhcpSubnet",
    "Hooks",
    "HostPort",
    "NodeConfig",
    "ProxyConfig",
    "TrackFile",
    "TrackScript",
    "VipConfig",
    "VrrpConfig",
    "format_duration",
    "format_size",
    "load_config",
    "loads_config",
    "parse_duration",
    "parse_hostport",
    "parse_size",
    "restart_changes",
]
