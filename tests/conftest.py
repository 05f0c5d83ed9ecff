"""Suite-wide rules.

Under CI (``CI=true``) a green run must mean everything ran: a test that would
skip for a missing prerequisite is reported as a failure there instead.
Tests state prerequisites with ``tests.prereq.need_binary`` / ``need_root``.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

pytest_plugins = ["imapha.lab.fixtures"]

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under CI=true, which is a failure: {reason}"
    return report
