"""Hardware-aware training for passive crossbars (Drolet et al., arXiv 2305.18495).

A 2-8-2 network on half moons (84 devices as differential pairs on a simulated 32x32 passive
TiO2 array, shipped calibration) is trained regularly and hardware-aware (dropout, calibrated
weight noise by the reparametrization trick, range regularizer; one network per biasing
scheme), then transferred ``LABRRAM_BENCH_TRANSFERS`` times (default 1000) per training and
scheme with :func:`labrram.montecarlo.run_study` (results in zarr under
``LABRRAM_BENCH_OUT``, default a temporary directory). Metric: the fraction of the 300 test
points classified correctly in >= 95 % of the transfers. ``LABRRAM_DROLET_PLOT=<png>`` also
draws the per-point correct-fraction maps.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from labrram.calibration.files import default_calibration
from labrram.montecarlo import run_study
from labrram.nn import hardware_aware as ha
from labrram.nn.datasets import load_task

from .common import table

TRIAL = "labrram.nn.hardware_aware:transfer_trial"


def run(n_transfers: int, out_dir: Path, workers: int | None = None, seed: int = 0) -> dict:
    """Train the networks and run every study; returns the rows and per-point fractions."""
    model = default_calibration("passive").model
    task = load_task("moons", seed=0)
    settings = ha.HardwareAwareSettings(seed=seed)
    t0 = time.perf_counter()
    nets = {"regular": ha.train_network(task.X_train, task.y_train, settings)}
    errors = {}
    for scheme in ("V/2", "V/3"):
        errors[scheme] = ha.estimate_errors(model, scheme, seed=seed)
        nets[f"hardware-aware {scheme}"] = ha.train_network(task.X_train, task.y_train, settings, errors[scheme])
    t_train = time.perf_counter() - t0
    rows, maps = [], {}
    for scheme in ("V/2", "V/3"):
        for training in ("regular", "hardware-aware"):
            w = nets["regular" if training == "regular" else f"hardware-aware {scheme}"]
            sw = float(np.mean(np.argmax(ha.forward(w, task.X_test), axis=1) == task.y_test))
            name = f"{training}-{scheme.replace('/', '')}"
            t1 = time.perf_counter()
            res = run_study(
                TRIAL, n_transfers, {"weights": [x.tolist() for x in w], "scheme": scheme},
                seed=seed + 1, out=out_dir / f"{name}.zarr", workers=workers, resume=True,
            )
            wall = time.perf_counter() - t1
            frac = ha.correct_fraction(res["correct"])
            maps[(training, scheme)] = frac
            rows.append({
                "training": training, "scheme": scheme, "transfers": n_transfers,
                "metric": ha.robust_fraction(res["correct"]), "software": sw,
                "mean_acc": float(np.mean(res["accuracy"])), "min_acc": float(np.min(res["accuracy"])),
                "wall": wall,
            })
    return {"rows": rows, "maps": maps, "errors": errors, "task": task, "t_train": t_train}


def plot(result: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task = result["task"]
    fig, axes = plt.subplots(2, 2, figsize=(8.5, 7.5), sharex=True, sharey=True)
    for ax, ((training, scheme), frac) in zip(axes.T.ravel(), sorted(result["maps"].items(), key=lambda kv: (kv[0][1], kv[0][0] != "regular"))):
        sc = ax.scatter(task.X_test[:, 0], task.X_test[:, 1], c=frac, cmap="RdYlGn", vmin=0.5, vmax=1.0, s=14,
                        edgecolors=np.where(frac >= 0.95, "none", "k"), linewidths=0.6)
        ax.set_title(f"{training}, {scheme}\n{np.mean(frac >= 0.95):.1%} of points correct in ≥ 95 %", fontsize=10)
    fig.colorbar(sc, ax=axes, label="fraction of transfers correct (outlined: < 95 %)")
    for ax in axes[-1]:
        ax.set_xlabel("x0 (standardized)")
    for ax in axes[:, 0]:
        ax.set_ylabel("x1 (standardized)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    n = int(os.environ.get("LABRRAM_BENCH_TRANSFERS", "1000"))
    out = os.environ.get("LABRRAM_BENCH_OUT")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(out) if out else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        result = run(n, out_dir)
    for scheme, em in result["errors"].items():
        print(f"error model {scheme}: column {em.s_col * 1e6:.2f} uS, device {em.s_add * 1e6:.2f} uS "
              f"+ {em.s_rel:.1%} of G, mean {em.bias * 1e6:+.2f} uS")
    print(f"training (3 networks): {result['t_train']:.1f} s")
    table(
        f"Drolet et al.: 2-8-2 moons on a 32x32 passive array ({n} transfers per row)",
        ["training", "scheme", "transfers", ">=95% correct", "software acc", "mean acc", "min acc", "wall"],
        [[r["training"], r["scheme"], str(r["transfers"]), f"{r['metric']:.1%}", f"{r['software']:.1%}",
          f"{r['mean_acc']:.1%}", f"{r['min_acc']:.1%}", f"{r['wall']:.1f} s"] for r in result["rows"]],
    )
    if os.environ.get("LABRRAM_DROLET_PLOT"):
        plot(result, os.environ["LABRRAM_DROLET_PLOT"])
