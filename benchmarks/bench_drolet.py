"""Hardware-aware training for passive crossbars (Drolet et al., arXiv 2305.18495).

A 2-8-2 network on half moons (84 devices as differential pairs on a simulated 32x32 passive
TiO2 array, shipped calibration) is trained regularly and hardware-aware (dropout, calibrated
weight noise by the reparametrization trick, range regularizer; one network per biasing
scheme), then transferred ``LABRRAM_BENCH_TRANSFERS`` times (default 1000) per training and
scheme with :func:`labrram.montecarlo.run_study` (results in zarr under
``LABRRAM_BENCH_OUT``, default a temporary directory). Metric: the fraction of the 300 test
points classified correctly in >= 95 % of the transfers. ``LABRRAM_DROLET_PLOT=<png>`` also
draws the per-point correct-fraction maps.

Cross-check of the fast path: ``LABRRAM_DROLET_PULSE=N`` (default 10, 0 skips it) programs
every (training, scheme) network ``N`` times on a simulated passive station (a fresh chip drawn
around the calibration each time) with the pulse-level protocol
(:func:`labrram.nn.hardware_aware.transfer_pulse_level`) and prints its accuracy and per-point
correctness next to the fast path's.
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


def train(seed: int = 0) -> dict:
    """The regular network and one hardware-aware network per scheme, trained with the error
    model of the shipped (measured) passive calibration."""
    cal = default_calibration("passive")
    tuning = ha.TransferModel.of_calibration(cal)
    task = load_task("moons", seed=0)
    settings = ha.HardwareAwareSettings(seed=seed)
    t0 = time.perf_counter()
    nets = {"regular": ha.train_network(task.X_train, task.y_train, settings)}
    errors = {}
    for scheme in ("V/2", "V/3"):
        errors[scheme] = ha.estimate_errors(cal.model, scheme, seed=seed, tuning=tuning)
        nets[f"hardware-aware {scheme}"] = ha.train_network(task.X_train, task.y_train, settings, errors[scheme])
    return {"nets": nets, "errors": errors, "task": task, "t_train": time.perf_counter() - t0, "calibration": cal, "tuning": tuning}


def run(n_transfers: int, out_dir: Path, workers: int | None = None, seed: int = 0) -> dict:
    """Train the networks and run every fast-path study; returns the rows and per-point fractions."""
    trained = train(seed)
    nets, errors, task, t_train = trained["nets"], trained["errors"], trained["task"], trained["t_train"]
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
    return {"rows": rows, "maps": maps, **trained}


def run_pulse_level(result: dict, n_transfers: int, seed: int = 0) -> list[dict]:
    """``n_transfers`` pulse-level transfers per (training, scheme) on simulated passive stations."""
    from labrram import sim
    from labrram.station import load_station

    model = default_calibration("passive").model
    task, nets = result["task"], result["nets"]
    out = []
    for scheme in ("V/2", "V/3"):
        for training in ("regular", "hardware-aware"):
            w = nets["regular" if training == "regular" else f"hardware-aware {scheme}"]
            scales = ha.activation_scales(w, task.X_train)
            correct, walls, ppd, conv, err = [], [], [], [], []
            for k in range(n_transfers):
                chip_seed = 1000 * (seed + 1) + k
                sim.configure_bench("drolet-pulse", seed=chip_seed, kind="passive", rows=32, cols=32, chip_options={"nominal": model})
                station = load_station().with_simulation(bench="drolet-pulse", seed=chip_seed, kind="passive", rows=32, cols=32)
                with station.connect() as st:
                    chip = st.bench.chip
                    truth = chip.reveal_truth()
                    t0 = time.perf_counter()
                    tr, res = ha.transfer_pulse_level(
                        w, st.crossbar, model, scheme, truth=lambda: (chip._g, truth.a, truth.r_wire_row, truth.r_wire_col))
                    walls.append(time.perf_counter() - t0)
                summ = res.summary()
                ppd.append(summ["pulses_per_device"])
                conv.append(summ["converged_fraction"])
                used = np.isfinite(tr.targets)
                err.append(float(np.sqrt(np.mean((tr.g - tr.targets)[used] ** 2))))
                logits = ha.array_forward(tr, task.X_test, scales)
                correct.append(np.argmax(logits, axis=1) == task.y_test)
            c = np.array(correct, dtype=float)
            fast = result["maps"][(training, scheme)]
            pulse = ha.correct_fraction(c)
            out.append({
                "training": training, "scheme": scheme, "transfers": n_transfers,
                "mean_acc": float(c.mean()), "min_acc": float(c.mean(axis=1).min()),
                "fast_mean_acc": next(r["mean_acc"] for r in result["rows"] if r["training"] == training and r["scheme"] == scheme),
                "robust": ha.robust_fraction(c), "fast_robust": float(np.mean(fast >= 0.95)),
                # per point: the fraction of pulse-level transfers that classify it correctly
                # against the fast path's, and how often the fast path's robust verdict holds
                "point_mad": float(np.mean(np.abs(pulse - fast))),
                "verdict_agree": float(np.mean((pulse >= 0.95) == (fast >= 0.95))),
                "wall": float(np.median(walls)), "pulses": float(np.mean(ppd)), "converged": float(np.mean(conv)),
                "g_err_rms": float(np.mean(err)),
            })
    return out


PULSE_TRIAL = "labrram.nn.hardware_aware:pulse_transfer_trial"


def pulse_study(weights: list[np.ndarray], scheme: str, name: str, n_transfers: int, out_dir: Path, seed: int = 0,
                workers: int = 1, scheduler: str | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """``n_transfers`` pulse-level transfers of ``weights`` (one fresh simulated chip each) as a
    Monte Carlo study on Dask (an embedded ``LocalCluster`` of ``workers`` processes, or the
    cluster at ``scheduler``), written to ``out_dir/pulse-NAME.zarr`` as chunks complete and
    resumed from it."""
    t0 = time.perf_counter()
    res = run_study(
        PULSE_TRIAL, n_transfers, {"weights": [x.tolist() for x in weights], "scheme": scheme},
        seed=seed + 2, out=out_dir / f"pulse-{name}.zarr", workers=workers, resume=True, chunk=10,
        backend="dask", scheduler=scheduler,
        progress=lambda d, n: print(f"  pulse {name}: {d}/{n} transfers ({time.perf_counter() - t0:.0f} s)", flush=True),
    )  # fmt: skip
    return res


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
    n_pulse = int(os.environ.get("LABRRAM_DROLET_PULSE", "10"))
    out = os.environ.get("LABRRAM_BENCH_OUT")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(out) if out else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        result = run(n, out_dir)
    pulse_rows = run_pulse_level(result, n_pulse) if n_pulse > 0 else []
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
    if pulse_rows:
        table(
            f"Cross-check: pulse-level transfers ({n_pulse} per row) against the fast path ({n} per row)",
            ["training", "scheme", "mean acc pulse", "mean acc fast", "min acc pulse", ">=95% pulse", ">=95% fast",
             "per-point |diff|", "verdict agree", "G err rms", "pulses/dev", "converged", "wall/transfer"],
            [[r["training"], r["scheme"], f"{r['mean_acc']:.1%}", f"{r['fast_mean_acc']:.1%}", f"{r['min_acc']:.1%}",
              f"{r['robust']:.1%}", f"{r['fast_robust']:.1%}", f"{r['point_mad']:.3f}", f"{r['verdict_agree']:.1%}",
              f"{r['g_err_rms'] * 1e6:.2f} uS", f"{r['pulses']:.1f}", f"{r['converged']:.1%}", f"{r['wall']:.2f} s"]
             for r in pulse_rows],
        )
    if os.environ.get("LABRRAM_DROLET_PLOT"):
        plot(result, os.environ["LABRRAM_DROLET_PLOT"])
