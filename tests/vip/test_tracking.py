"""Tracking arithmetic (priority, fault) and the command runner hooks and scripts use."""

from __future__ import annotations

import os
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from imapha.vip.tracking import Check, assess, file_check, link_is_up
from imapha.vip.work import Outcome, run_command

checks = st.lists(st.builds(Check, st.text(min_size=1, max_size=5), st.booleans(),
                            st.integers(-254, 254)), max_size=8)


@given(st.integers(1, 255), checks)
def test_priority_stays_in_range_and_faults_are_the_failing_zero_weights(
    base: int, items: list[Check]
) -> None:
    result = assess(base, items)
    assert 1 <= result.priority <= 255
    assert len(result.faults) == sum(1 for c in items if c.failing and c.weight == 0)
    assert result.ready == (not result.faults)
    weights = sum(c.weight for c in items if c.failing and c.weight != 0)
    if base == 255 and not any(c.failing and c.weight != 0 for c in items):
        assert result.priority == 255  # the owner stays the owner while undegraded
    else:
        assert result.priority == max(1, min(254, base + weights))


def test_passing_checks_change_nothing() -> None:
    assert assess(150, [Check("x", False, -100), Check("y", False, 0)]).priority == 150
    assert assess(150, [Check("x", True, -100)]).priority == 50
    assert assess(150, [Check("y", True, 0, "down")]).faults == ("y: down",)


def test_track_file_rules(tmp_path: Path) -> None:
    path = tmp_path / "flag"
    assert not file_check("f", path, 0).failing  # absent: no effect
    path.write_text("")
    assert file_check("f", path, 0).failing  # present, empty: 1, so fault
    path.write_text("0\n")
    assert not file_check("f", path, 0).failing  # keepalived: 0 is healthy
    path.write_text("3\n")
    check = file_check("f", path, -10)
    assert check.failing and check.weight == -30  # n x weight
    assert assess(150, [check]).priority == 120
    path.write_text("junk")
    assert file_check("f", path, -10).weight == -10  # not a number: counts as 1


def test_link_flags() -> None:
    assert link_is_up(0x1 | 0x10000)
    assert not link_is_up(0x1)  # no carrier
    assert not link_is_up(0x10000)  # administratively down


def test_run_command_outcomes_and_environment(tmp_path: Path) -> None:
    ok = run_command("sh -c 'echo $IMAPHA_STATE'", 5, {"IMAPHA_STATE": "master"})
    assert ok.outcome is Outcome.OK and ok.output == "master"
    failed = run_command("sh -c 'exit 3'", 5)
    assert failed.outcome is Outcome.FAILED and failed.returncode == 3
    assert run_command("/nonexistent/hook", 5).outcome is Outcome.ERROR
    assert run_command("'unbalanced", 5).outcome is Outcome.ERROR


def test_run_command_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    start = time.monotonic()
    result = run_command(f"sh -c 'sleep 30 & echo $! > {pidfile}; wait'", 0.5)
    assert result.outcome is Outcome.TIMEOUT
    assert time.monotonic() - start < 5
    child = int(pidfile.read_text())
    for _ in range(100):  # the grandchild goes too (bounded wait for the kernel)
        if not Path(f"/proc/{child}").exists() or "Z" in _state(child):
            break
        time.sleep(0.02)
    else:
        os.kill(child, 9)
        raise AssertionError("the hook's grandchild survived its timeout")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"
