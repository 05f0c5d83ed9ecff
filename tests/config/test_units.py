"""Durations, sizes and endpoints: parsers and printers are each other's inverse."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imapha.config import (
    HostPort,
    format_duration,
    format_size,
    parse_duration,
    parse_hostport,
    parse_size,
)

seconds = st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(seconds)
def test_duration_round_trip(x: float) -> None:
    assert parse_duration(format_duration(x)) == x


@given(st.integers(min_value=0, max_value=10**12))
def test_millisecond_durations_print_in_units(ms: int) -> None:
    text = format_duration(ms / 1000)
    assert "e" not in text and text[-1] in "smhd"
    assert parse_duration(text) == ms / 1000


@given(st.integers(0, 99), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
       st.integers(0, 999))
def test_composed_duration(d: int, h: int, m: int, s: int, ms: int) -> None:
    parts = [(d, "d"), (h, "h"), (m, "m"), (s, "s"), (ms, "ms")]
    text = "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"
    expected = (((d * 24 + h) * 60 + m) * 60 + s) + ms / 1000
    assert parse_duration(text) == expected
    assert format_duration(parse_duration(text)) == format_duration(expected)


@pytest.mark.parametrize(("text", "value"), [
    ("100ms", 0.1), ("2s", 2.0), ("5m", 300.0), ("1h", 3600.0), ("1h30m", 5400.0),
    ("1.5s", 1.5), ("40.95s", 40.95), ("0s", 0.0), (" 2 s ", 2.0), ("1d", 86400.0),
    (12, 12.0), (0.25, 0.25),
])
def test_duration_examples(text: str | float, value: float) -> None:
    assert parse_duration(text) == value


@pytest.mark.parametrize(("text", "message"), [
    ("12.5.3", "expected a duration like '2s'"),
    ("2", "expected a duration like '2s'"),
    ("fast", "expected a duration like '2s'"),
    ("1s1h", "write each unit once, largest first"),
    ("1s2s", "write each unit once, largest first"),
    (-1, "zero or more seconds"),
])
def test_bad_durations(text: str | int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=2**60))
def test_size_round_trip(n: int) -> None:
    assert parse_size(format_size(n)) == n


@pytest.mark.parametrize(("text", "value"), [
    ("64KiB", 65536), ("20MB", 20_000_000), ("1GiB", 2**30), ("1.5KiB", 1536),
    ("512", 512), ("512B", 512), ("4kb", 4000), (4096, 4096),
])
def test_size_examples(text: str | int, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["64 parsecs", "1.3B", "KiB", "-1KiB", "1e400KiB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


@given(st.ip_addresses(), st.integers(min_value=1, max_value=65535))
def test_hostport_round_trip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                             port: int) -> None:
    hp = HostPort(str(ip), port)
    assert parse_hostport(str(hp), ip_only=True) == hp
    assert hp.ip == ip


@pytest.mark.parametrize(("text", "message"), [
    ("192.0.2.1", "expected host:port"),
    ("2001:db8::1:143", "brackets"),
    ("[192.0.2.1]:143", "not an IPv6 address"),
    ("192.0.2.1:0", "from 1 to 65535"),
    ("192.0.2.1:http", "from 1 to 65535"),
    ("mail.example.org:143", "expected an IP address and port"),
])
def test_bad_endpoints(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_hostport(text, ip_only=True)


def test_host_names_allowed_for_backends() -> None:
    assert parse_hostport("mail.example.org:143", ip_only=False) == HostPort(
        "mail.example.org", 143)
    with pytest.raises(ValueError, match="neither an IP address nor a host name"):
        parse_hostport("mail_1:143", ip_only=False)
