"""From raw TOML values to typed fields, reporting every problem with its place.

Theory of operation
-------------------
Each section of the config is a frozen dataclass whose fields carry, in their
``metadata``, a *converter* and the raw default (a TOML-level value such as
``"{run_dir}/proxy.sock"``). :func:`build` walks a raw table against such a
class: unknown keys get a "did you mean", missing required keys are reported
at the table's line, every present value (and every default) goes through
``{node}``/``{run_dir}``/``{state_dir}`` substitution and then its converter.
So defaults are validated exactly like what an operator writes, and the schema
lives in one place: the dataclass.

A converter is ``conv(value, at) -> typed`` and raises :class:`Invalid` with
the operator-facing sentence; :class:`At` knows the dotted path, hence the
line, of the value. Converters of nested tables report their own issues and
raise :class:`Reported` so the parent only knows the field failed.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from imapha.config.issues import ConfigIssue
from imapha.config.lines import Path as KeyPath
from imapha.config.lines import dotted, line_of
from imapha.config.units import (
    HostPort,
    format_duration,
    parse_duration,
    parse_hostport,
    parse_size,
)

T = TypeVar("T")
Conv = Callable[[object, "At"], Any]
REQUIRED: Final = MISSING  # raw default of a field that must be written
_KINDS: dict[Conv, str] = {}  # converter -> "duration" | "size", for printing values back


class Invalid(Exception):
    """A value is wrong; the text is the message an operator reads."""


class Reported(Exception):
    """A nested value is wrong and its issues are already recorded."""


@dataclass
class Context:
    """What one load shares: the file, its line index, the issues found so far."""

    file: str
    base_dir: Path
    lines: dict[KeyPath, int]
    issues: list[ConfigIssue]
    section_keys: dict[str, frozenset[str]]  # section -> its keys, for "belongs in" hints

    def report(self, path: KeyPath, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, line_of(self.lines, path), dotted(path), message))


@dataclass(frozen=True)
class At:
    """Where a value is (``path``) and the placeholders in force there."""

    ctx: Context
    path: KeyPath
    subst: Mapping[str, str]

    def sub(self, key: str | int) -> At:
        return At(self.ctx, (*self.path, key), self.subst)

    def moved(self, path: KeyPath) -> At:
        return At(self.ctx, path, self.subst)

    def report(self, message: str) -> None:
        self.ctx.report(self.path, message)


def meta(conv: Conv, default: object = REQUIRED, *, secret: bool = False) -> dict[str, object]:
    """Field metadata: how to convert the key, its raw default, whether to mask it."""
    return {"conv": conv, "default": default, "secret": secret}


def kind_of(conv: Conv) -> str:
    """``"duration"``, ``"size"`` or ``""``: how a field's value is best printed."""
    return _KINDS.get(conv, "")


def spec_fields(cls: type) -> dict[str, Field[Any]]:
    return {f.name: f for f in fields(cls) if "conv" in f.metadata}


_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)[^@/]*@")


def mask_url(text: str) -> str:
    """``postgresql://u:pw@h/db`` -> ``postgresql://u:***@h/db``; other text unchanged."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def show(value: object) -> str:
    """A raw value as an operator would have written it in TOML (URL passwords masked)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(mask_url(value), ensure_ascii=False)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


def substitute(value: object, subst: Mapping[str, str]) -> object:
    if isinstance(value, str):
        for name, text in subst.items():
            value = value.replace("{" + name + "}", text)
        return value
    if isinstance(value, list):
        return [substitute(v, subst) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, subst) for k, v in value.items()}
    return value


def suggest(key: str, known: Sequence[str]) -> str:
    match = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def unknown_key_message(key: str, known: Sequence[str], ctx: Context, section: str) -> str:
    homes = [s for s, keys in ctx.section_keys.items() if key in keys and s != section]
    if homes:
        return f"unknown key here; {key!r} belongs in [{homes[0]}]"
    return f"unknown key{suggest(key, known)}"


def build(cls: type[T], raw: Mapping[str, object], at: At, *,
          sources: Mapping[str, KeyPath] | None = None, section: str = "",
          extra_known: Sequence[str] = ()) -> T:
    """Make ``cls`` from ``raw``; report every issue; raise :class:`Reported` on any."""
    specs = spec_fields(cls)
    sources = sources or {}
    failed = False
    for key in raw:
        if key not in specs and key not in extra_known:
            where = at.moved(sources[key]) if key in sources else at.sub(key)
            where.report(unknown_key_message(key, [*specs, *extra_known], at.ctx, section))
            failed = True
    values: dict[str, object] = {}
    for name, f in specs.items():
        where = at.moved(sources[name]) if name in sources else at.sub(name)
        if name in raw:
            value = raw[name]
        elif f.metadata["default"] is REQUIRED:
            where.report(f"missing required key {name!r}")
            failed = True
            continue
        else:
            value = f.metadata["default"]
        try:
            values[name] = f.metadata["conv"](substitute(value, where.subst), where)
        except Invalid as exc:
            # Never echo a secret, even a mistyped one, into logs.
            where.report("invalid value (not shown: it is a secret)" if f.metadata["secret"]
                         else str(exc))
            failed = True
        except Reported:
            failed = True
    if failed:
        raise Reported
    return cls(**values)


# -- scalar converters ---------------------------------------------------------------------
def _expect(kind: str, value: object) -> Invalid:
    return Invalid(f"expected {kind}, got {show(value)}")


def string(value: object, at: At) -> str:
    if not isinstance(value, str):
        raise _expect("a string", value)
    return value


def boolean(value: object, at: At) -> bool:
    if not isinstance(value, bool):
        raise _expect("true or false", value)
    return value


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def name(value: object, at: At) -> str:
    """A name used in paths, metrics labels and the control API."""
    text = string(value, at)
    if not _NAME.fullmatch(text):
        raise Invalid(f"expected a name of letters, digits, '.', '_' or '-', got {show(text)}")
    return text


def interface(value: object, at: At) -> str:
    text = string(value, at)
    if not text or len(text) > 15 or "/" in text or text.strip() != text:
        raise Invalid(f"expected a network interface name (1 to 15 characters), got {show(text)}")
    return text


def integer(low: int, high: int | None = None) -> Conv:
    def conv(value: object, at: At) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expect("a whole number", value)
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise Invalid(f"must be {bounds}, got {value}")
        return value
    return conv


def positive_number(value: object, at: At) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _expect("a number", value)
    if not value > 0:
        raise Invalid(f"must be greater than 0, got {value}")
    return float(value)


def choice(*options: str) -> Conv:
    def conv(value: object, at: At) -> str:
        if not isinstance(value, str) or value not in options:
            listed = ", ".join(repr(o) for o in options)
            hint = suggest(value, options) if isinstance(value, str) else ""
            raise Invalid(f"expected one of {listed}, got {show(value)}{hint}")
        return value
    return conv


def duration(low: float = 0.0, high: float | None = None) -> Conv:
    def conv(value: object, at: At) -> float:
        if not isinstance(value, str | int | float):
            raise Invalid(f"expected a duration like '2s', got {show(value)}")
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        if seconds < low or (high is not None and seconds > high):
            bounds = (f"from {format_duration(low)} to {format_duration(high)}"
                      if high is not None else f"at least {format_duration(low)}")
            raise Invalid(f"must be {bounds}, got {show(value)}")
        return seconds
    _KINDS[conv] = "duration"
    return conv


def size(low: int = 0) -> Conv:
    def conv(value: object, at: At) -> int:
        if not isinstance(value, str | int | float):
            raise Invalid(f"expected a size like '64KiB', got {show(value)}")
        try:
            result = parse_size(value)
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        if result < low:
            raise Invalid(f"must be at least {low} bytes, got {show(value)}")
        return result
    _KINDS[conv] = "size"
    return conv


_PLACEHOLDER = re.compile(r"\{[A-Za-z_]+\}")


def path(value: object, at: At) -> Path:
    """A file system path; relative paths are relative to the config file's directory."""
    text = string(value, at)
    if not text:
        raise Invalid("expected a path, got an empty string")
    if "\0" in text:
        raise Invalid("a path cannot contain a NUL character")
    left = _PLACEHOLDER.search(text)
    if left:
        usable = ", ".join("{" + name + "}" for name in at.subst) or "none"
        raise Invalid(f"unknown placeholder {left.group(0)} in {show(text)} "
                      f"(placeholders here: {usable})")
    return at.ctx.base_dir / Path(text)


def optional_path(value: object, at: At) -> Path | None:
    if value is None or value == "":
        return None
    return path(value, at)


def listen(value: object, at: At) -> HostPort:
    text = string(value, at)
    try:
        return parse_hostport(text, ip_only=True, min_port=0)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def optional_listen(value: object, at: At) -> HostPort | None:
    if value is None or value == "":
        return None
    return listen(value, at)


def remote(value: object, at: At) -> HostPort:
    text = string(value, at)
    try:
        return parse_hostport(text, ip_only=False)
    except ValueError as exc:
        raise Invalid(str(exc)) from None


def ip_address(value: object, at: At) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    text = string(value, at)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise Invalid(f"expected an IP address like '192.0.2.11', got {show(text)}") from None


def ipv4_address(value: object, at: At) -> ipaddress.IPv4Address:
    text = string(value, at)
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise Invalid(f"expected an IPv4 address like '198.51.100.1', got {show(text)}") from None


def ip_interface(value: object, at: At) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """``"192.0.2.101"`` (a /32, or /128) or ``"192.0.2.101/24"``."""
    text = string(value, at)
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise Invalid(
            f"expected an IP address with optional prefix like '192.0.2.101/24', got {show(text)}"
        ) from None


def network(value: object, at: At) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    text = string(value, at)
    try:
        return ipaddress.ip_network(text)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            net = ipaddress.ip_network(text, strict=False)
            raise Invalid(f"{text!r} has host bits set; did you mean {str(net)!r}?") from None
        raise Invalid(f"expected a network like '192.0.2.0/24', got {show(text)}") from None


def ipv4_network(value: object, at: At) -> ipaddress.IPv4Network:
    net = network(value, at)
    if not isinstance(net, ipaddress.IPv4Network):
        raise Invalid(f"expected an IPv4 network (DHCPv4), got {show(value)}")
    return net


def array_of(item: Conv) -> Conv:
    """A TOML array whose items each go through ``item``; problems name the index."""
    def conv(value: object, at: At) -> tuple[Any, ...]:
        if isinstance(value, str):
            raise Invalid(f"expected an array, got {show(value)} (write [{show(value)}])")
        if not isinstance(value, list):
            raise _expect("an array", value)
        out, failed = [], False
        for i, element in enumerate(value):
            try:
                out.append(item(element, at.sub(i)))
            except Invalid as exc:
                at.sub(i).report(str(exc))
                failed = True
            except Reported:
                failed = True
        if failed:
            raise Reported
        return tuple(out)
    return conv


def table(cls: type[Any], section: str = "") -> Conv:
    """An (inline or standard) table converted into dataclass ``cls``."""
    def conv(value: object, at: At) -> Any:
        if not isinstance(value, dict):
            raise _expect("a table", value)
        return build(cls, value, at, section=section)
    return conv


def optional(conv: Conv) -> Conv:
    def wrapped(value: object, at: At) -> Any:
        return None if value is None or value == "" else conv(value, at)
    return wrapped


def is_spec_dataclass(obj: object) -> bool:
    return is_dataclass(obj) and not isinstance(obj, type) and bool(spec_fields(type(obj)))
