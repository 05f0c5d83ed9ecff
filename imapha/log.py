"""Logging for every imapha command: stderr, in a form journald reads well.

Text lines carry a syslog priority prefix (``<6>``) when stderr is the journal
(``JOURNAL_STREAM`` set), so journald keeps levels, and a timestamp otherwise.
JSON lines are one object per record for log shippers.

Credentials are carried as :class:`Secret`, whose ``str`` and ``repr`` are
``***``: a password that reaches a log call by mistake prints as stars.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Final, cast

LEVELS: Final = ("debug", "info", "warning", "error", "critical")
FORMATS: Final = ("text", "json")

# RFC 5424 / sd-daemon priorities by Python level.
_SYSLOG_PRIORITY: Final = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}

# Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


class Secret(str):
    """A string that never shows itself in logs, tracebacks or reprs."""

    __slots__ = ()

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "Secret('***')"

    def __format__(self, spec: str) -> str:
        return "***"

    def reveal(self) -> str:
        """The real value, for the one place that must send it on the wire."""
        return str.__str__(self)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


class TextFormatter(logging.Formatter):
    def __init__(self, journal: bool) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        extras = _extras(record)
        if extras:
            msg += " " + " ".join(f"{k}={v}" for k, v in sorted(extras.items()))
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        if self.journal:
            prio = _SYSLOG_PRIORITY.get(record.levelno, 6)
            return f"<{prio}>{record.name}: {msg}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        return f"{stamp} {record.levelname:<7} {record.name}: {msg}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            doc[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def setup(level: str = "info", fmt: str = "text") -> None:
    """Send every logger to stderr at ``level`` in ``fmt`` (text or json)."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    else:
        formatter = TextFormatter(journal=bool(os.environ.get("JOURNAL_STREAM")))
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def bridge_twisted() -> None:
    """Route Twisted's own log events into the stdlib loggers set up above."""
    from twisted.logger import ILogObserver, STDLibLogObserver, globalLogBeginner

    observer = cast(ILogObserver, STDLibLogObserver(name="twisted"))
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
