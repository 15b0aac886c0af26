"""Ex-situ Bayesian transfer (Dalgaty et al. 2021 / Bonnet et al. 2023) over several chips.

For every chip seed: characterize 256 devices and fit the ReRAM model on that chip, then for
each variant train → transfer onto the 128×128 array (as many network copies as fit) → read
back → compare with the software network:

* **Bayesian** — Bayes-by-Backprop with the technological loss, stochastic-SET transfer;
* **no technological loss** — the same without the loss (ablation);
* **deterministic, single-shot** — a plain network programmed open loop in as many copies
  (ablation: its spread comes from programming noise, not from a learned posterior).

Moons metrics are on a 60×60 grid: decision agreement, Pearson correlation of the predictive
entropy, mean |software − hardware| entropy; accuracies are on the 300 held-out points. The
other tasks (iris, digits) use their test sets. ``LABRRAM_BENCH_SEEDS`` (default 5) sets the
number of chips.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np

from labrram import sim
from labrram.calibration import ReRAMCharacterization, ReRAMFit, characterize_reram
from labrram.nn.exsitu import ExSituSettings, run_exsitu
from labrram.station import load_station

from .common import table


def _fmt(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    v = np.asarray(values, dtype=float) * scale
    return f"{np.mean(v):.{digits}f} [{np.min(v):.{digits}f}, {np.max(v):.{digits}f}]"


def study(task: str, seeds: list[int], variants: list[ExSituSettings]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {s.variant: [] for s in variants}
    for seed in seeds:
        sim.configure_bench("exsitu", seed=seed)
        with load_station().with_simulation(bench="exsitu", seed=seed).connect() as c:
            data = characterize_reram(c.crossbar, c.timer, ReRAMCharacterization(seed=seed))
            model = ReRAMFit(seed=seed).fit(data).model_
            for v in variants:
                r = run_exsitu(c.crossbar, model, replace(v, task=task, seed=seed))
                out[v.variant].append(r.summary)
    return out


def main() -> None:
    n = int(os.environ.get("LABRRAM_BENCH_SEEDS", "5"))
    seeds = list(range(n))
    t0 = time.perf_counter()
    base = ExSituSettings()
    variants = [base, replace(base, technological=False), replace(base, bayesian=False)]
    res = study("moons", seeds, variants)
    rows = []
    for name, runs in res.items():
        g = [r["grid"] for r in runs]
        rows.append(
            [
                name,
                _fmt([r["software_accuracy"] for r in runs], 100),
                _fmt([r["hardware_accuracy"] for r in runs], 100),
                _fmt([r["hardware_accuracy"] - r["software_accuracy"] for r in runs], 100),
                _fmt([x["agreement"] for x in g], 100),
                _fmt([x["entropy_correlation"] for x in g], 1, 3),
                _fmt([x["entropy_mae"] for x in g], 1, 3),
                _fmt([x["epistemic_correlation"] for x in g], 1, 3) if name != "deterministic, single-shot" else "—",
            ]
        )
    table(
        f"half moons, {len(seeds)} chips (mean [min, max]); 98 copies × 164 devices = 16,072 devices per transfer",
        ["variant", "sw acc %", "hw acc %", "hw − sw (points)", "agreement %", "entropy r", "entropy MAE (nats)", "epistemic r"],
        rows,
    )
    print()
    rows = []
    for name, runs in res.items():
        inside = [r["posteriors_inside_domain"] for r in runs]
        near = [r["posteriors_within_2delta"] for r in runs]
        rows.append(
            [
                name,
                _fmt(inside, 100, 0) if None not in inside else "—",
                _fmt(near, 100, 0) if None not in near else "—",
                _fmt([r["transfer"]["faulty_devices"] for r in runs], 1, 0),
            ]
        )
    table(
        f"half moons, {len(seeds)} chips (mean [min, max]): trained posteriors inside the technological domain, and faulty devices the transfer screened out",
        ["variant", "posteriors inside the domain %", "within 2δ of it %", "faulty devices screened"],
        rows,
    )
    print()
    rows = []
    for task, hidden in (("iris", (16,)), ("digits", (16,))):
        s = replace(base, hidden=hidden)
        runs = study(task, seeds[: max(1, min(3, n))], [s])[s.variant]
        t = [r["test"] for r in runs]
        rows.append(
            [
                task,
                "-".join(str(x) for x in runs[0]["sizes"]),
                str(runs[0]["transfer"]["copies"]),
                _fmt([r["software_accuracy"] for r in runs], 100),
                _fmt([r["hardware_accuracy"] for r in runs], 100),
                _fmt([x["agreement"] for x in t], 100),
                _fmt([x["entropy_correlation"] for x in t], 1, 3),
            ]
        )
    table(
        "other tasks, Bayesian with the technological loss (test set)",
        ["task", "network", "copies", "sw acc %", "hw acc %", "agreement %", "entropy r"],
        rows,
    )
    print(f"(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
