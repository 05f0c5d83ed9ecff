"""INTERNALDATE both ways, SEARCH dates and Date headers."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from imapha.server.imapdate import (
    format_internaldate,
    internal_day,
    parse_date,
    parse_internaldate,
    sent_day,
)


def test_format_matches_rfc3501_examples() -> None:
    assert format_internaldate(760_686_745, -8 * 3600) == "07-Feb-1994 21:52:25 -0800"
    assert format_internaldate(0, 0) == "01-Jan-1970 00:00:00 +0000"
    assert format_internaldate(1_700_000_000, 5 * 3600 + 1800) == "15-Nov-2023 03:43:20 +0530"


@given(st.integers(0, 2**32), st.integers(-12 * 60, 14 * 60).map(lambda m: m * 60))
def test_format_then_parse_round_trips(ts: int, offset: int) -> None:
    assert parse_internaldate(format_internaldate(ts, offset)) == ts


def test_parse_accepts_space_or_one_digit_days_and_rejects_nonsense() -> None:
    assert parse_internaldate(" 7-Feb-1994 21:52:25 -0800") == 760_686_745
    assert parse_internaldate("7-feb-1994 21:52:25 -0800") == 760_686_745
    for bad in ("31-Feb-1994 00:00:00 +0000", "07-Foo-1994 00:00:00 +0000",
                "07-Feb-1994 25:00:00 +0000", "07-Feb-1994 00:00:00", ""):
        assert parse_internaldate(bad) is None


def test_search_dates() -> None:
    assert parse_date("1-Feb-1994") == dt.date(1994, 2, 1)
    assert parse_date("01-FEB-1994") == dt.date(1994, 2, 1)
    assert parse_date("1994-02-01") is None
    assert parse_date("30-Feb-1994") is None
    assert internal_day(1_700_000_000, 0) == dt.date(2023, 11, 14)
    assert internal_day(1_700_000_000, 7200) == dt.date(2023, 11, 15)


def test_date_headers_as_written() -> None:
    assert sent_day(b"Mon, 7 Feb 1994 21:52:25 -0800 (PST)") == dt.date(1994, 2, 7)
    assert sent_day(b"7 Feb 94 21:52 GMT") == dt.date(1994, 2, 7)
    assert sent_day(b"Thu, 1 January 2015 00:00:00 +0000") == dt.date(2015, 1, 1)
    assert sent_day(b"garbage") is None
    assert sent_day(None) is None
