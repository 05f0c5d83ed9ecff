"""ReactorRunner under a real Twisted reactor (in a subprocess: a reactor runs once)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_two_routers_under_twisted_elect_and_fail_over() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.vip.twisted_pair"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before"] == {"a": ["master", ["127.0.0.100"]], "b": ["backup", []]}
    assert result["after"]["b"] == ["master", ["127.0.0.100"]]
    # Master_Down_Interval at 0.1 s and priority 100 is 0.361 s from the last advert.
    assert 0.361 - 0.1 - 0.02 < result["takeover_s"] < 0.361 + 0.5
    # A was master ~1.2 s at 0.1 s intervals: its own clock kept ticking.
    assert 9 <= result["periodic_a"] <= 15
