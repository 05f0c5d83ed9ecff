"""The ``imapha`` entry point and the shared logging setup."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from imapha import cli, log


def _imapha(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imapha", *args],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )


def test_help_lists_every_subcommand() -> None:
    result = _imapha("--help")
    assert result.returncode == 0
    for name in cli.COMMANDS:
        assert name in result.stdout


def test_common_options_on_every_subcommand() -> None:
    parser, _ = cli.build_parser(None)
    for name in cli.COMMANDS:
        args = parser.parse_args([name, "--node", "x", "--log-format", "json"])
        assert args.node == "x"
        assert args.log_format == "json"


def test_unknown_log_format_is_a_usage_error() -> None:
    result = _imapha("ctl", "--log-format", "xml")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_secret_never_prints() -> None:
    pw = log.Secret("hunter2")
    assert "hunter2" not in f"{pw} {pw!r} {pw:>10}"
    assert "hunter2" not in str([pw])
    assert pw.reveal() == "hunter2"
    assert pw == "hunter2"


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("imapha.test", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_extras_and_hide_secrets() -> None:
    line = log.JsonFormatter().format(
        _record("login %s failed", "alice", password=log.Secret("hunter2"), attempts=3)
    )
    doc = json.loads(line)
    assert doc["msg"] == "login alice failed"
    assert doc["level"] == "warning"
    assert doc["attempts"] == 3
    assert doc["password"] == "***"
    assert "hunter2" not in line


def test_text_lines_under_journald_carry_priority() -> None:
    line = log.TextFormatter(journal=True).format(_record("backend %s down", "be1"))
    assert line == "<4>imapha.test: backend be1 down"


def test_setup_rejects_bad_level() -> None:
    with pytest.raises(ValueError, match="log level"):
        log.setup("loud", "text")
