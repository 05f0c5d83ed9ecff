"""The suite's own rule: under CI a skip is a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_skipping_test(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (tmp_path / "test_skip.py").write_text(
        "import pytest\n\ndef test_missing():\n    pytest.skip('prerequisite missing: x')\n"
    )
    env = {**os.environ, "CI": ci}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_skip_fails_under_ci(tmp_path: Path) -> None:
    result = _run_skipping_test(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "1 failed" in result.stdout


def test_skip_stays_a_skip_outside_ci(tmp_path: Path) -> None:
    result = _run_skipping_test(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
