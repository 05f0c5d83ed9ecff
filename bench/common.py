"""Shared helpers of the benchmarks: timing, summaries, ratios, process memory.

Every benchmark measures imapha and a baseline in the same run (these machines
are shared and noisy) and prints a ratio, through :func:`report`, in one
format: ``name: imapha X unit, baseline Y unit, ratio R (higher is better)``.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p99: float
    minimum: float
    maximum: float


def summarize(samples: Sequence[float]) -> Summary:
    if not samples:
        raise ValueError("no samples")
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return Summary(len(ordered), statistics.median(ordered), p99, ordered[0], ordered[-1])


def rate(fn: Callable[[], object], seconds: float = 2.0, max_calls: int = 10_000_000) -> float:
    """Calls of ``fn`` per second over about ``seconds`` (bounded in count too)."""
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while calls < max_calls:
        fn()
        calls += 1
        if calls % 64 == 0 and time.perf_counter() >= deadline:
            break
    return calls / (time.perf_counter() - start)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass(frozen=True)
class Result:
    name: str
    imapha: float
    baseline: float
    unit: str
    baseline_name: str
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        return self.imapha / self.baseline if self.baseline else float("inf")


def report(result: Result) -> None:
    """Print one result line; with BENCH_JSON set, also a JSON line."""
    better = "higher" if result.higher_is_better else "lower"
    print(
        f"{result.name}: imapha {result.imapha:,.3g} {result.unit}, "
        f"{result.baseline_name} {result.baseline:,.3g} {result.unit}, "
        f"ratio {result.ratio:.2f} ({better} is better)",
        flush=True,
    )
    if os.environ.get("BENCH_JSON"):
        print(json.dumps({**asdict(result), "ratio": result.ratio}), flush=True)
