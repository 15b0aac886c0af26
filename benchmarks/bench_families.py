"""Chips whose SET distribution is not the Gaussian of the fitted laws.

For every family of simulated chip (``[simulation] set_distribution``) and chip seed:
characterize 256 devices through the instruments, fit the ReRAM model, and run the test of
the Gaussian SET (Anderson–Darling per level, alpha 0.01 over the levels). Then run the
ex-situ Bayesian transfer on half moons twice on the same chip: programmed from the fitted
model's empirical quantiles, and from its Gaussian laws (the same data, ``set_family``
switched). Metrics on the 60×60 grid: decision agreement and the correlation of the predictive
entropy between software and hardware. ``LABRRAM_BENCH_SEEDS`` (default 3) sets the number of
chips per family of the transfer; the test's rejection rates are counted over
``LABRRAM_BENCH_GOF_CHIPS`` (default 20) chips per family, each characterized through the
instruments.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np

from labrram.calibration import ReRAMCharacterization, ReRAMFit, characterize_reram
from labrram.nn.exsitu import ExSituSettings, run_exsitu
from labrram.station import load_station

from .common import table

FAMILIES = ("gaussian", "lognormal", "skewed", "heavy")


def _fmt(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    v = np.asarray(values, dtype=float) * scale
    return f"{np.mean(v):.{digits}f} [{np.min(v):.{digits}f}, {np.max(v):.{digits}f}]"


def rejection_rates(chips: int) -> None:
    rows = []
    for family in FAMILIES:
        rejected, levels = [], []
        for seed in range(100, 100 + chips):
            with load_station().with_simulation(bench=f"families-gof-{family}", seed=seed, set_distribution=family).connect() as c:
                fit = ReRAMFit(n_boot=2, seed=seed).fit(characterize_reram(c.crossbar, c.timer, ReRAMCharacterization(seed=seed)))
            rejected.append(fit.gof_["gaussian_rejected"])
            levels.append(len(fit.gof_["rejected_levels"]))
        rows.append([family, f"{sum(rejected)}/{chips}", f"{np.mean(levels):.2f}", "empirical" if family != "gaussian" else "gaussian (when accepted)"])
    table(
        f"the Gaussian test (Anderson-Darling per level, alpha 0.01 over 8 levels) on {chips} chips per family, 256 devices x 8 cycles",
        ["chip family", "Gaussian rejected", "levels rejected (mean of 8)", "auto programs from"],
        rows,
    )


def main() -> None:
    n = int(os.environ.get("LABRRAM_BENCH_SEEDS", "3"))
    t0 = time.perf_counter()
    rejection_rates(int(os.environ.get("LABRRAM_BENCH_GOF_CHIPS", "20")))
    print()
    rows = []
    for family in FAMILIES:
        rejected, levels = 0, []
        runs: dict[str, list[dict]] = {"empirical": [], "gaussian": []}
        for seed in range(n):
            with load_station().with_simulation(bench=f"families-{family}", seed=seed, set_distribution=family).connect() as c:
                fit = ReRAMFit(seed=seed).fit(characterize_reram(c.crossbar, c.timer, ReRAMCharacterization(seed=seed)))
                rejected += fit.gof_["gaussian_rejected"]
                levels.append(len(fit.gof_["rejected_levels"]))
                for name in runs:
                    model = replace(fit.model_, set_family=name)
                    runs[name].append(run_exsitu(c.crossbar, model, ExSituSettings(seed=seed)).summary["grid"])
        for name, grid in runs.items():
            rows.append(
                [
                    family,
                    f"{rejected}/{n}",
                    f"{np.mean(levels):.1f}",
                    name,
                    _fmt([g["agreement"] for g in grid], 100),
                    _fmt([g["entropy_correlation"] for g in grid], 1, 3),
                    _fmt([g["entropy_mae"] for g in grid], 1, 3),
                ]
            )
    table(
        f"half moons on chips of each SET family, {n} chips each (mean [min, max])",
        ["chip family", "Gaussian rejected", "levels rejected (of 8)", "programmed from", "agreement %", "entropy r", "entropy MAE (nats)"],
        rows,
    )
    print(f"(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
