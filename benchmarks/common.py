"""Small helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def timed(fn: Callable[[], object], repeat: int = 5) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``repeat`` runs, and all the times (s)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print an aligned plain-text table."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(title)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
