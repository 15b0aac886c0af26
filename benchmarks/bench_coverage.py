"""Interval coverage: does every 95 % interval a calibration file stores hold the chip's truth
in 91-99 % of chips?

For ``LABRRAM_COVERAGE_CHIPS`` (default 100) simulated chips of each kind (seeds 0, 1, ...):
characterize through the instruments, fit with 200 bootstrap resamples (as ``labrram
calibrate``), and pair every stored estimate with the chip's truth (tests/calibration/chips.py:
the hidden model for device parameters, the chip's device population for what the
characterization's protocol shapes). Per interval: the fraction of chips it covers, the 95 %
Clopper-Pearson interval of that fraction, and whether the chips refute a coverage within
91-99 % (an exact one-sided binomial test, family-wise 5 % over the file's intervals), as the
slow test tests/calibration/test_coverage.py asserts. ``LABRRAM_BENCH_WORKERS`` (default: the
CPUs) processes share the chips.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats

from .common import markdown_table, write_page


@functools.lru_cache(maxsize=1)
def _chips():
    """tests/calibration/chips.py, the helpers the coverage test uses (loaded once per process)."""
    path = Path(__file__).resolve().parent.parent / "tests" / "calibration" / "chips.py"
    spec = importlib.util.spec_from_file_location("calibration_chips", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _record(kind_seed: tuple[str, int]) -> dict:
    kind, seed = kind_seed
    chips = _chips()
    return {"pcm": chips.pcm_record, "reram": chips.reram_record}[kind](seed)


def _fmt_interval(k: int, n: int) -> str:
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return f"[{ci.low:.3f}, {ci.high:.3f}]"


def main() -> None:
    n = int(os.environ.get("LABRRAM_COVERAGE_CHIPS", "100"))
    workers = int(os.environ.get("LABRRAM_BENCH_WORKERS", str(os.cpu_count() or 1)))
    chips = _chips()
    sections = []
    for kind in ("pcm", "reram"):
        t0 = time.perf_counter()
        jobs = [(kind, seed) for seed in range(n)]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                records = list(pool.map(_record, jobs))
        else:
            records = [_record(j) for j in jobs]
        cov = chips.coverage(records)
        bad = chips.refuted(cov, n)
        rows = []
        for name, c in cov.items():
            k = round(c * n)
            verdict = bad.get(name, "consistent with 91-99 %")
            rows.append([f"`{name}`", f"{k}/{n}", f"{c:.3f}", _fmt_interval(k, n), verdict])
            print(f"{kind} {name}: {k}/{n} {verdict}", flush=True)
        pooled = float(np.mean(list(cov.values())))
        lo, hi = chips.POOLED
        notes = (f"Pooled over the {len(cov)} intervals: {pooled:.3f} (must lie within {lo:.2f}-{hi:.2f}: "
                 f"{'yes' if lo <= pooled <= hi else 'no'}). {len(bad)} of {len(cov)} intervals refuted. "
                 f"{n} chips in {time.perf_counter() - t0:.0f} s.")  # fmt: skip
        print(notes, flush=True)
        title = f"{kind.upper() if kind == 'pcm' else 'ReRAM'} calibration: coverage of every stored 95 % interval over {n} simulated chips"
        sections.append(markdown_table(title, ["estimate", "chips covered", "coverage", "95 % interval of the coverage", "verdict"], rows, notes))
    write_page("docs/bench/coverage.md", sections)
