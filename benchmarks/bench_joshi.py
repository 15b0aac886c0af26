"""Noise-injection training and drift compensation on PCM (Joshi et al., Nat. Commun. 2020).

For every chip seed: train a 64-100-10 digits network (batch norm on the hidden layer) twice —
with Joshi's weight noise (3.8 % of W_max, clipping at 2.5 sigma_W) and plainly — program each
in turn as differential pairs by write-verify on a simulated 128×128 PCM array (14,800
devices), then read it back through the instruments 1 s, 1 min, 1 h, 1 day, 1 week and
1 month after programming (the station's virtual clock) and score the test set with no
compensation, with global drift compensation (per column, calibration input through the
array by analog MVM) and with batch-norm recalibration (256 training inputs). Conductances
are scaled per column; pairs the write-verify could not program (stuck devices) read as 0. The mapping and write-verify use the shipped PCM calibration only.

``LABRRAM_BENCH_SEEDS`` (default 3) sets the number of chips. The accuracy-versus-time plot goes
to docs/methods/joshi/accuracy_vs_time.png, which the method page shows (``LABRRAM_JOSHI_PLOT``:
another PNG path).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from dataclasses import replace

import numpy as np

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.nn.datasets import load_task
from labrram.nn.drift import COMPENSATIONS, DeploySettings, deploy_pcm, evaluate_drift, format_time
from labrram.nn.noise_injection import NoiseSettings, train_noise_injection
from labrram.station import load_station

from .common import table

TIMES = (1.0, 60.0, 3600.0, 86400.0, 7 * 86400.0, 30 * 86400.0)
VARIANTS = {"noise-trained": NoiseSettings(), "plain": NoiseSettings.plain()}
LABELS = {"none": "no compensation", "gdc": "GDC", "bn": "BN recal"}
#: where the run draws its accuracy-versus-time plot (the method page shows it)
PLOT = "docs/methods/joshi/accuracy_vs_time.png"


def study(seed: int, times=TIMES, n_bn: int = 256) -> dict:
    """One chip: both trainings, each programmed, read back over time and scored."""
    task = load_task("digits", seed=seed)
    model = default_calibration("pcm").model
    rng = np.random.default_rng(seed)
    X_bn = task.X_train[rng.choice(len(task.X_train), n_bn, replace=False)]
    out: dict = {}
    sim.configure_bench("joshi", seed=seed, kind="pcm")
    with load_station().with_simulation(bench="joshi", seed=seed, kind="pcm").connect() as st:
        for name, s in VARIANTS.items():
            net = train_noise_injection(task.X_train, task.y_train, (64, 100, 10), replace(s, seed=seed))[0].to_network()
            dep = deploy_pcm(st.crossbar, st.timer, net, model, DeploySettings(scale="column"))
            rows = evaluate_drift(st.crossbar, st.timer, dep, net, task.X_test, task.y_test, X_bn, times, granularity="column", seed=seed)
            summary = dep.result.summary()
            out[name] = {
                "software": net.accuracy(task.X_test, task.y_test),
                "rows": rows,
                "converged": summary["converged_fraction"],
                "devices": summary["devices"],
                "faulty": int(sum(f.sum() for f in dep.faulty())),
            }
    return out


def _fmt(v: list[float]) -> str:
    a = 100 * np.asarray(v)
    return f"{a.mean():.1f} [{a.min():.1f}, {a.max():.1f}]"


def plot(results: list[dict], times, path: str) -> None:
    """Accuracy versus time after programming (mean over chips), one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colors = {"noise-trained": "C0", "plain": "C3"}
    styles = {"none": ":", "gdc": "--", "bn": "-"}
    for name in VARIANTS:
        sw = np.mean([r[name]["software"] for r in results]) * 100
        ax.axhline(sw, color=colors[name], lw=0.8, alpha=0.5)
        for comp in COMPENSATIONS:
            acc = np.mean([[row[comp] for row in r[name]["rows"]] for r in results], axis=0) * 100
            ax.plot(times, acc, styles[comp], marker="o", ms=3, color=colors[name], label=f"{name}, {LABELS[comp]}")
    ax.set_xscale("log")
    ax.set_xticks(times, [format_time(t) for t in times])
    ax.set_xlabel("time after programming")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"digits 64-100-10 on a simulated PCM array ({len(results)} chips)")
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    n = int(os.environ.get("LABRRAM_BENCH_SEEDS", "3"))
    t0 = time.perf_counter()
    results = [study(seed) for seed in range(n)]
    header = ["training", "compensation", "software"] + [format_time(t) for t in TIMES]
    rows = []
    for name in VARIANTS:
        sw = [r[name]["software"] for r in results]
        for comp in COMPENSATIONS:
            accs = [[r[name]["rows"][i][comp] for r in results] for i in range(len(TIMES))]
            rows.append([name, LABELS[comp], _fmt(sw)] + [_fmt(a) for a in accs])
    conv = [r[name]["converged"] for r in results for name in VARIANTS]
    table(
        f"digits 64-100-10, test accuracy % (mean [min, max] over {n} PCM chips), time after programming; "
        f"write-verify converged on {100 * min(conv):.1f}–{100 * max(conv):.1f} % of {results[0]['plain']['devices']} devices",
        header,
        rows,
    )
    print()
    day = TIMES.index(86400.0)
    rows = []
    for name in VARIANTS:
        for comp in COMPENSATIONS:
            drop = [r[name]["software"] - r[name]["rows"][day][comp] for r in results]
            rows.append([name, LABELS[comp], _fmt(drop)])
    table("accuracy drop after one day, software − hardware (points)", ["training", "compensation", "drop"], rows)
    print()
    rows = []
    for name in VARIANTS:  # GDC's factor r0 / r_t: how much the layers' outputs have shrunk
        alpha = [[float(np.mean(r[name]["rows"][i]["alpha"])) for r in results] for i in range(len(TIMES))]
        rows.append([name] + [f"{np.mean(a):.2f} [{min(a):.2f}, {max(a):.2f}]" for a in alpha])
    table("GDC's factor α = r0 / r_t, mean over the layers' columns (mean [min, max] over chips): the drift the array measures", ["training"] + [format_time(t) for t in TIMES], rows)
    path = os.environ.get("LABRRAM_JOSHI_PLOT") or str(Path(__file__).resolve().parent.parent / PLOT)
    plot(results, TIMES, path)
    print(f"plot: {path}")
    print(f"(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
