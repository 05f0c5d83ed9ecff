"""IMAP dates: INTERNALDATE both ways, SEARCH dates, and RFC 5322 Date headers.

Theory of operation
-------------------
* ``date-time`` (RFC 3501 §9): ``"dd-Mon-yyyy hh:mm:ss +zzzz"``. The grammar
  allows the day as SP DIGIT or 2DIGIT; we write two digits (``07-Feb-1994``),
  as Dovecot does, since some clients choke on the leading space, and accept
  either (or a lone digit) when parsing.
* ``date`` (SEARCH BEFORE/ON/SINCE...): ``d-Mon-yyyy``, optionally quoted by
  the client (the wire layer has removed the quotes already).
* SEARCH compares dates "disregarding time and timezone" (RFC 3501 §6.4.4):
  for INTERNALDATE we take the calendar date in the time zone the server
  reports INTERNALDATE in (its offset is passed in; the host's local zone by
  default, as Dovecot does); for SENTBEFORE/ON/SINCE the date as written in the
  Date header, in the sender's own zone. A message without a parsable Date
  header matches no SENT* key.
Month names are English and case-insensitive on input.
"""

from __future__ import annotations

import datetime as dt
import re
import time

__all__ = [
    "format_internaldate",
    "internal_day",
    "local_offset",
    "parse_date",
    "parse_internaldate",
    "sent_day",
]

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUM = {m.lower(): i for i, m in enumerate(MONTHS, 1)}

_DATE_TIME_RE = re.compile(
    r" ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"
)
_DATE_RE = re.compile(r"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")


def local_offset(ts: float) -> int:
    """The host's UTC offset in seconds at ``ts``."""
    return time.localtime(ts).tm_gmtoff


def format_internaldate(ts: float, offset: int | None = None) -> str:
    """``ts`` (POSIX seconds) as ``dd-Mon-yyyy hh:mm:ss +zzzz`` in zone ``offset`` (seconds)."""
    if offset is None:
        offset = local_offset(ts)
    tz = dt.timezone(dt.timedelta(seconds=offset))
    d = dt.datetime.fromtimestamp(int(ts), tz)
    sign = "+" if offset >= 0 else "-"
    hh, mm = divmod(abs(offset) // 60, 60)
    return (
        f"{d.day:02d}-{MONTHS[d.month - 1]}-{d.year:04d} "
        f"{d.hour:02d}:{d.minute:02d}:{d.second:02d} {sign}{hh:02d}{mm:02d}"
    )


def parse_internaldate(text: str) -> float | None:
    """A date-time (APPEND's argument) -> POSIX seconds; None if invalid."""
    m = _DATE_TIME_RE.fullmatch(text)
    if m is None:
        return None
    month = _MONTH_NUM.get(m[2].lower())
    if month is None:
        return None
    offset = (int(m[8]) * 60 + int(m[9])) * 60 * (1 if m[7] == "+" else -1)
    try:
        d = dt.datetime(
            int(m[3]), month, int(m[1]), int(m[4]), int(m[5]), int(m[6]),
            tzinfo=dt.timezone(dt.timedelta(seconds=offset)),
        )
    except ValueError:
        return None
    return d.timestamp()


def parse_date(text: str) -> dt.date | None:
    """A SEARCH ``date`` (``1-Feb-1994``) -> date; None if invalid."""
    m = _DATE_RE.fullmatch(text)
    if m is None:
        return None
    month = _MONTH_NUM.get(m[2].lower())
    if month is None:
        return None
    try:
        return dt.date(int(m[3]), month, int(m[1]))
    except ValueError:
        return None


def internal_day(ts: float, offset: int | None = None) -> dt.date:
    """The calendar date of INTERNALDATE ``ts`` in zone ``offset`` (host zone by default)."""
    if offset is None:
        offset = local_offset(ts)
    return dt.datetime.fromtimestamp(int(ts), dt.timezone(dt.timedelta(seconds=offset))).date()


# RFC 5322 §3.3 date-time, with the obsolete forms that matter: optional day name,
# two-digit years, missing seconds; the zone is not needed for the date as written.
_RFC5322_RE = re.compile(
    rb"(?:[A-Za-z]+\s*,\s*)?([0-9]{1,2})\s+([A-Za-z]{3})[A-Za-z]*\.?\s+([0-9]{2,4})\b"
)


def sent_day(value: bytes | None) -> dt.date | None:
    """The date as written in a Date header value (sender's zone); None if unparsable."""
    if not value:
        return None
    m = _RFC5322_RE.search(value)
    if m is None:
        return None
    month = _MONTH_NUM.get(m[2].decode("ascii").lower())
    if month is None:
        return None
    year = int(m[3])
    if len(m[3]) == 2:
        year += 2000 if year < 50 else 1900  # RFC 5322 §4.3
    elif len(m[3]) == 3:
        year += 1900
    try:
        return dt.date(year, month, int(m[1]))
    except ValueError:
        return None
