"""Property: whatever a valid TOML file holds, loading it yields a config or a
ConfigError whose issues all name a key or a line; never any other exception."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from imapha.config import ClusterConfig, ConfigError, loads_config
from imapha.config import model as m
from imapha.config.convert import spec_fields
from tests.config.helpers import BASE

SECTION_CLASSES: dict[str, type] = {
    "cluster": m.ClusterSection, "vrrp": m.VrrpConfig, "proxy": m.ProxyConfig,
    "backend": m.BackendConfig, "dhcp": m.DhcpConfig,
}
ITEM_CLASSES: dict[str, type] = {"vips": m.VipConfig, "backends": m.BackendRef}

# Values of the shapes and near-misses operators write.
strings = st.sampled_from([
    "", "1s", "100ms", "1h30m", "12.5.3", "64KiB", "1.3B", "0.0.0.0:143", "[::]:993",
    "192.0.2.11", "192.0.2.101/24", "198.51.100.0/24", "198.51.100.10-198.51.100.20",
    "198.51.100.20-198.51.100.10", "a", "b", "imap1", "eth0", "proxy", "dhcp", "none",
    "udp", "split", "hot-standby", "{node}", "{run_dir}/x.sock", "/run/x/{node}",
    "sqlite:///x", "mail.example.org:143", "x" * 120,
])
scalars = st.one_of(strings, st.integers(-3, 70000), st.booleans(),
                    st.sampled_from([0.25, 1.5, -1.0]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["name", "command", "path",
                                                             "subnet", "pools", "weight"]),
                                            inner, max_size=3)),
    max_leaves=6,
)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


@st.composite
def documents(draw: st.DrawFn) -> str:
    lines = [BASE] if draw(st.booleans()) else []
    used: set[str] = set(["cluster", "vips", "backends", "nodes"] if lines else [])
    for section, cls in SECTION_CLASSES.items():
        if section in used or not draw(st.booleans()):
            continue
        lines.append(f"[{section}]")
        keys = draw(st.lists(st.sampled_from([*spec_fields(cls), "bogus"]), unique=True,
                             max_size=5))
        lines += [f"{key} = {toml_value(draw(values))}" for key in keys]
    for array, cls in ITEM_CLASSES.items():
        if array in used:
            continue
        for _ in range(draw(st.integers(0, 2))):
            lines.append(f"[[{array}]]")
            keys = draw(st.lists(st.sampled_from(list(spec_fields(cls))), unique=True,
                                 max_size=5))
            lines += [f"{key} = {toml_value(draw(values))}" for key in keys]
    for node in draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=2)):
        section = draw(st.sampled_from(["proxy", "vrrp", "backend", "dhcp"]))
        lines.append(f"[nodes.{node}.{section}]")
        key = draw(st.sampled_from(list(spec_fields(SECTION_CLASSES[section]))))
        lines.append(f"{key} = {toml_value(draw(values))}")
    return "\n".join(lines) + "\n"


@settings(max_examples=200, deadline=None)
@given(documents())
def test_load_never_crashes(text: str) -> None:
    try:
        config = loads_config(text, path="/etc/imapha/fuzz.toml")
    except ConfigError as exc:
        assert exc.issues, text
        for issue in exc.issues:
            assert issue.file == "/etc/imapha/fuzz.toml"
            assert issue.key or issue.line is not None or issue.message.startswith("no "), issue
    else:
        assert isinstance(config, ClusterConfig)
