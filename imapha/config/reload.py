"""Which keys a SIGHUP reload may change, and which need a restart.

Theory of operation
-------------------
A daemon reloading its config applies what it can live and must say what it
cannot. The contract is one table, :data:`RELOADABLE`: per section, the keys a
reload may change. Everything else (listen addresses, control sockets,
metrics addresses, VRIDs and VIP addresses, transports, directories) needs a
restart, because changing it live would mean re-binding sockets or a
different VRRP identity on the wire. :func:`restart_changes` compares two
loads for one node and role and lists the restart-only keys that differ, so a
service's ``reload()`` can refuse or warn with names an operator recognises.
``docs/config.md`` shows the same table; a test keeps them in step.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Final

from imapha.config.model import SECTION_OF_ROLE, ClusterConfig, VipConfig

RELOADABLE: Final[dict[str, frozenset[str]]] = {
    "cluster": frozenset(),
    "nodes": frozenset(),
    "vips": frozenset({"priority", "track"}),
    "vrrp": frozenset({
        "preempt", "preempt_delay", "takeover_when_not_ready", "garp_count",
        "garp_interval", "hook_timeout", "hooks", "track_scripts", "track_files",
    }),
    "proxy": frozenset({
        "tls_cert", "tls_key", "plaintext_auth_networks", "prelogin_timeout",
        "idle_timeout", "max_connections", "max_connections_per_ip",
        "max_prelogin_commands", "max_line_length", "max_literal_size",
        "auth_penalty_max", "login_retries", "forward", "user_map", "probe_user",
        "probe_password", "probe_password_file", "health_interval", "health_timeout",
        "health_fall", "health_rise", "drain_grace",
    }),
    "backends": frozenset({"name", "address", "tls", "tls_verify", "tls_ca", "weight",
                           "proxy_protocol"}),
    "backend": frozenset({"passwd_file", "trusted_proxies", "tls_cert", "tls_key"}),
    "dhcp": frozenset({"mclt", "registrations", "authoritative", "decline_probation",
                       "subnets"}),
}


def _vip_identity(vip: VipConfig) -> tuple[object, ...]:
    return tuple(getattr(vip, f.name) for f in fields(vip)
                 if f.name not in RELOADABLE["vips"])


def restart_changes(old: ClusterConfig, new: ClusterConfig, node: str, role: str) -> list[str]:
    """Dotted keys that differ between ``old`` and ``new`` for ``role`` on ``node``
    and that only a restart applies."""
    before, after = old.node(node), new.node(node)
    changed = [f"nodes.{node}.{key}" for key in ("address", "interface", "run_dir", "state_dir")
               if getattr(before, key) != getattr(after, key)]
    section = SECTION_OF_ROLE[role]
    old_section, new_section = getattr(before, section), getattr(after, section)
    if old_section is None or new_section is None:
        return [*changed, section] if old_section != new_section else changed
    changed += [
        f"{section}.{f.name}" for f in fields(old_section)
        if f.name not in RELOADABLE[section]
        and getattr(old_section, f.name) != getattr(new_section, f.name)
    ]
    if role == "vipd":
        old_vips = [_vip_identity(v) for v in old.vips]
        new_vips = [_vip_identity(v) for v in new.vips]
        if old_vips != new_vips:
            changed.append("vips")
    return changed
