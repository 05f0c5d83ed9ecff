"""Static registrations: hosts that always get one address (and a host name).

Theory of operation
-------------------
The file is TOML, one table per host::

    [[host]]
    mac = "52:54:00:12:34:56"       # and/or
    client_id = "01:52:54:00:12:34:56"
    address = "192.0.2.10"
    hostname = "printer-3"          # optional, sent as option 12

:func:`load` is pure: it reads the file and returns a :class:`LoadResult`, either
a new :class:`Registrations` or the list of every :class:`Problem` found, each
naming the file, the line and the key, so a bad edit is reported whole and the
caller keeps the old set in force. Errors: TOML syntax, unknown keys, a host
with neither ``mac`` nor ``client_id``, malformed values, an address outside
every configured subnet or on its network/broadcast address, the same MAC,
client identifier or address twice, an invalid host name (RFC 1123).

Decision on registered addresses inside a dynamic pool: allowed, with a
warning. The logic never hands a registered address to anyone but its host
(dynamic allocation skips it), so it is safe; the warning tells the operator
that the pool is smaller than it looks.

Matching (RFC 2131 §4.2 identities): a host matches a client whose option 61
equals ``client_id``, or whose hardware type is Ethernet and chaddr equals
``mac``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address
from pathlib import Path

from dhcp.network import Subnet
from dhcp.packet import HTYPE_ETHERNET

KEYS = ("mac", "client_id", "address", "hostname")
_HEX_BYTES = re.compile(r"^[0-9a-fA-F]{2}([:-]?[0-9a-fA-F]{2})*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_SYNTAX_LINE = re.compile(r"line (\d+)")


@dataclass(frozen=True, slots=True)
class Registration:
    address: IPv4Address
    mac: bytes | None = None
    client_id: bytes | None = None
    hostname: str | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class Registrations:
    """An immutable, indexed set of registrations."""

    def __init__(self, hosts: Iterable[Registration] = ()) -> None:
        self._hosts = tuple(hosts)
        self._by_mac = {h.mac: h for h in self._hosts if h.mac is not None}
        self._by_client_id = {h.client_id: h for h in self._hosts if h.client_id is not None}
        self._by_address = {h.address: h for h in self._hosts}

    def __len__(self) -> int:
        return len(self._hosts)

    def __iter__(self) -> Iterator[Registration]:
        return iter(self._hosts)

    def for_client(self, client_id: bytes | None, htype: int, hwaddr: bytes) -> Registration | None:
        if client_id is not None:
            host = self._by_client_id.get(client_id)
            if host is not None:
                return host
        if htype == HTYPE_ETHERNET:
            return self._by_mac.get(hwaddr)
        return None

    def owner_of(self, address: IPv4Address) -> Registration | None:
        return self._by_address.get(address)


@dataclass(frozen=True)
class LoadResult:
    registrations: Registrations | None
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return self.registrations is not None


def _parse_hex(text: str) -> bytes | None:
    if not _HEX_BYTES.match(text):
        return None
    return bytes.fromhex(text.replace(":", "").replace("-", ""))


def _host_lines(text: str) -> list[tuple[int, dict[str, int]]]:
    """For each ``[[host]]`` header: its line and the line of each key below it."""
    hosts: list[tuple[int, dict[str, int]]] = []
    current: dict[str, int] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("["):
            current = None
            if re.match(r"^\[\[\s*host\s*\]\]", line):
                current = {}
                hosts.append((number, current))
        elif current is not None:
            match = re.match(r"^\"?([A-Za-z0-9_-]+)\"?\s*=", line)
            if match:
                current.setdefault(match.group(1), number)
    return hosts


def load(path: Path, subnets: Sequence[Subnet]) -> LoadResult:
    """Read and validate a registrations file; never raises for bad content."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except OSError as exc:
        return LoadResult(None, (Problem(name, 0, "", f"cannot read: {exc.strerror}"),))
    except UnicodeDecodeError:
        return LoadResult(None, (Problem(name, 0, "", "not UTF-8"),))
    except tomllib.TOMLDecodeError as exc:
        match = _SYNTAX_LINE.search(str(exc))
        line = int(match.group(1)) if match else 0
        return LoadResult(None, (Problem(name, line, "", f"TOML syntax: {exc}"),))
    return validate(data, subnets, name, _host_lines(text))


def validate(
    data: dict[str, object],
    subnets: Sequence[Subnet],
    name: str = "<registrations>",
    lines: Sequence[tuple[int, dict[str, int]]] = (),
) -> LoadResult:
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for key in data:
        if key != "host":
            errors.append(Problem(name, 0, key, "unknown top-level key (expected [[host]])"))
    hosts = data.get("host", [])
    if not isinstance(hosts, list):
        errors.append(Problem(name, 0, "host", "must be an array of tables ([[host]])"))
        hosts = []
    seen_mac: dict[bytes, int] = {}
    seen_cid: dict[bytes, int] = {}
    seen_address: dict[IPv4Address, int] = {}
    result: list[Registration] = []
    for index, host in enumerate(hosts):
        start, keylines = lines[index] if index < len(lines) else (0, {})

        def problem(
            key: str, message: str, *, _s: int = start, _k: dict[str, int] = keylines
        ) -> Problem:
            return Problem(name, _k.get(key, _s), key, message)

        if not isinstance(host, dict):
            errors.append(problem("host", "must be a table"))
            continue
        bad = len(errors)
        for key in host:
            if key not in KEYS:
                errors.append(problem(key, f"unknown key (expected one of {', '.join(KEYS)})"))
        mac = client_id = None
        address: IPv4Address | None = None
        hostname: str | None = None
        for key in ("mac", "client_id"):
            value = host.get(key)
            if value is None:
                continue
            parsed = _parse_hex(value) if isinstance(value, str) else None
            if parsed is None or (key == "mac" and len(parsed) != 6):
                what = "6 hex octets" if key == "mac" else "hex octets"
                errors.append(problem(key, f"expected {what} like 52:54:00:12:34:56"))
            elif key == "client_id" and len(parsed) < 2:  # RFC 2132 §9.14
                errors.append(problem(key, "a client identifier has at least 2 octets"))
            elif key == "mac":
                mac = parsed
            else:
                client_id = parsed
        if "mac" not in host and "client_id" not in host:
            errors.append(problem("address", "a host needs mac or client_id"))
        raw_address = host.get("address")
        if raw_address is None:
            errors.append(problem("host", "missing key: address"))
        else:
            try:
                if not isinstance(raw_address, str):
                    raise AddressValueError("not a string")
                address = IPv4Address(raw_address)
            except AddressValueError:
                errors.append(problem("address", f"not an IPv4 address: {raw_address!r}"))
        if address is not None:
            subnet = next((s for s in subnets if address in s.network), None)
            if subnet is None:
                errors.append(problem("address", f"{address} is outside every configured subnet"))
            elif subnet.network.prefixlen < 31 and address in (
                subnet.network.network_address,
                subnet.network.broadcast_address,
            ):
                errors.append(problem("address", f"{address} is the network or broadcast address"))
            elif subnet.in_pool(address):
                warnings.append(
                    problem("address", f"{address} is inside a dynamic pool (kept for this host)")
                )
        raw_name = host.get("hostname")
        if raw_name is not None:
            if (
                isinstance(raw_name, str)
                and len(raw_name) <= 253
                and all(_LABEL.match(label) for label in raw_name.split("."))
            ):
                hostname = raw_name
            else:
                errors.append(problem("hostname", f"not a valid host name: {raw_name!r}"))
        for key, value, seen in (("mac", mac, seen_mac), ("client_id", client_id, seen_cid)):
            if value is not None:
                if value in seen:
                    errors.append(problem(key, f"also registered at line {seen[value]}"))
                else:
                    seen[value] = keylines.get(key, start)
        if address is not None:
            if address in seen_address:
                errors.append(
                    problem("address", f"{address} also registered at line {seen_address[address]}")
                )
            else:
                seen_address[address] = keylines.get("address", start)
        if len(errors) == bad and address is not None:
            result.append(Registration(address, mac, client_id, hostname, start))
    if errors:
        return LoadResult(None, tuple(errors), tuple(warnings))
    return LoadResult(Registrations(result), (), tuple(warnings))
