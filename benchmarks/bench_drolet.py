"""Hardware-aware training for passive crossbars (Drolet et al., arXiv 2305.18495).

A 2-8-2 network on half moons (84 devices as differential pairs on a simulated 32x32 passive
TiO2 array, shipped calibration: its as-fabricated state and its tuning imprecision are
measured by the passive characterization) is trained regularly and hardware-aware (dropout,
calibrated weight noise by the reparametrization trick, range regularizer; one network per
biasing scheme), then transferred ``LABRRAM_BENCH_TRANSFERS`` times (default 1000) per training
and scheme with the fast path (:func:`labrram.nn.hardware_aware.transfer_trial`, a local process
pool). Metric: the fraction of the 300 test points classified correctly in >= 95 % of the
transfers. ``LABRRAM_DROLET_PLOT=<png>`` also draws the per-point correct-fraction maps.

The pulse level: ``LABRRAM_DROLET_PULSE=N`` (default 1000, 0 skips it) programs every
(training, scheme) network ``N`` times, each on a fresh simulated passive chip (drawn by the
simulator, not from the calibration), through the instruments with the pulse-level protocol
(:func:`labrram.nn.hardware_aware.pulse_transfer_trial`: half-select disturb and read noise
included), as a Monte Carlo study on Dask: an embedded ``LocalCluster`` of
``LABRRAM_DROLET_WORKERS`` processes (default 2) or the cluster at ``LABRRAM_DASK_SCHEDULER``.
They run in blocks of :data:`BLOCK` transfers, one block of every configuration in turn.
Every study writes its zarr store under ``LABRRAM_BENCH_OUT`` (default a temporary directory)
as chunks complete and resumes from it, so an interrupted run loses nothing;
``LABRRAM_DROLET_PULSE_STORED=1`` makes the tables from the stored transfers only (a study
still running elsewhere).
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
    rows, maps, fast_correct = [], {}, {}
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
            fast_correct[(training, scheme)] = np.asarray(res["correct"])
            rows.append({
                "training": training, "scheme": scheme, "transfers": n_transfers,
                "metric": ha.robust_fraction(res["correct"]), "software": sw,
                "mean_acc": float(np.mean(res["accuracy"])), "min_acc": float(np.min(res["accuracy"])),
                "wall": wall,
            })
    return {"rows": rows, "maps": maps, "fast_correct": fast_correct, **trained}


def diff_interval(fast: np.ndarray, pulse: np.ndarray, n_boot: int = 200, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of ``robust_fraction(fast) - robust_fraction(pulse)`` over the
    transfers of each path (resampled independently): the sampling noise of the comparison."""
    rng = np.random.default_rng(seed)
    fast, pulse = np.asarray(fast, float), np.asarray(pulse, float)
    d = [ha.robust_fraction(fast[rng.integers(0, len(fast), len(fast))]) - ha.robust_fraction(pulse[rng.integers(0, len(pulse), len(pulse))])
         for _ in range(n_boot)]  # fmt: skip
    return float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))


def _row(result: dict, training: str, scheme: str, res: dict[str, np.ndarray]) -> dict:
    c = np.asarray(res["correct"], float)
    fc = result["fast_correct"][(training, scheme)][: c.shape[0]]
    fast = result["maps"][(training, scheme)]
    pulse = ha.correct_fraction(c)
    fast_row = next(r for r in result["rows"] if r["training"] == training and r["scheme"] == scheme)
    return {
        "training": training, "scheme": scheme, "transfers": int(c.shape[0]),
        "robust": ha.robust_fraction(c), "fast_robust": float(np.mean(fast >= 0.95)),
        # the metric over as many fast transfers as the pulse level has (it depends on the count)
        "fast_robust_n": ha.robust_fraction(fc), "diff_ci": diff_interval(fc, c),
        "mean_acc": float(c.mean()), "fast_mean_acc": fast_row["mean_acc"], "min_acc": float(c.mean(axis=1).min()),
        # per point: the fraction of pulse-level transfers that classify it correctly against
        # the fast path's, and how often both call it robust (or not) alike
        "point_mad": float(np.mean(np.abs(pulse - fast))),
        "verdict_agree": float(np.mean((pulse >= 0.95) == (fast >= 0.95))),
        "g_err_rms": float(np.mean(res["g_err_rms"])), "pulses": float(np.mean(res["pulses_per_device"])),
        "converged": float(np.mean(res["converged_fraction"])), "drift": float(np.mean(res["unused_drift_rms"])),
    }


CONFIGS = [(t, s) for s in ("V/2", "V/3") for t in ("regular", "hardware-aware")]


def _weights(result: dict, training: str, scheme: str) -> list[np.ndarray]:
    return result["nets"]["regular" if training == "regular" else f"hardware-aware {scheme}"]


def _name(training: str, scheme: str) -> str:
    return f"{training}-{scheme.replace('/', '')}"


def run_pulse_level(result: dict, n_transfers: int, out_dir: Path, seed: int = 0, workers: int = 2,
                    scheduler: str | None = None, compute: bool = True) -> list[dict]:  # fmt: skip
    """The pulse-level studies of every (training, scheme) network, next to the fast path.

    The transfers run in blocks of :data:`BLOCK`, one block of every configuration in turn
    (an interrupted run leaves every configuration with about as many), each block a Monte
    Carlo study (its own store ``pulse-NAME-bBB.zarr``, resumable) on one Dask cluster: the one
    at ``scheduler``, or an embedded ``LocalCluster`` of ``workers`` processes. With
    ``compute=False`` only the stored transfers are read (a study still running elsewhere).
    """
    blocks = -(-n_transfers // BLOCK)
    if compute:
        cluster = None
        if scheduler is None:
            import logging

            from distributed import LocalCluster

            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=logging.ERROR)  # fmt: skip
            scheduler = cluster.scheduler_address
        try:
            for b in range(blocks):
                for training, scheme in CONFIGS:
                    pulse_block(_weights(result, training, scheme), scheme, _name(training, scheme), b,
                                min(BLOCK, n_transfers - b * BLOCK), out_dir, seed, scheduler)  # fmt: skip
        finally:
            if cluster is not None:
                cluster.close()
    rows = []
    for training, scheme in CONFIGS:
        res = stored_pulse(_weights(result, training, scheme), _name(training, scheme), out_dir, blocks)
        if res is not None:
            rows.append(_row(result, training, scheme, res))
    return rows


def stored_pulse(weights: list[np.ndarray], name: str, out_dir: Path, blocks: int) -> dict[str, np.ndarray] | None:
    """The done transfers of the first ``blocks`` block stores of a configuration, concatenated;
    a store of other weights is an error (it belongs to another training)."""
    from labrram.montecarlo import load_study

    parts: dict[str, list[np.ndarray]] = {}
    want = [np.asarray(x, float).tolist() for x in weights]
    for b in range(blocks):
        path = out_dir / f"pulse-{name}-b{b:02d}.zarr"
        if not path.exists():
            continue
        res, done, study = load_study(path)
        if study["params"]["weights"] != want:
            raise RuntimeError(f"{path} holds transfers of other weights; remove it (or choose another LABRRAM_BENCH_OUT)")
        for k, v in res.items():
            parts.setdefault(k, []).append(v[done])
    if not parts or sum(len(p) for p in parts["correct"]) == 0:
        return None
    return {k: np.concatenate(v) for k, v in parts.items()}


def calibration_rows(cal, errors: dict) -> list[list[str]]:
    """The measured quantities the fast path and the training use, with their 95 % intervals."""
    rows = []
    what = [
        ("g_init_median", cal.estimates, 1e6, "uS", "as-fabricated median (unused cells)"),
        ("g_init_sigma_log", cal.estimates, 1.0, "", "as-fabricated log-spread (unused cells)"),
        ("tune_sigma_abs", cal.protocol_estimates, 1e6, "uS", "tuning imprecision, absolute part"),
        ("tune_sigma_rel", cal.protocol_estimates, 100.0, "%", "tuning imprecision, relative part"),
        ("tune_bias_rel", cal.protocol_estimates, 100.0, "%", "mean tuning deviation"),
        ("read_noise_sensed_rel", cal.estimates, 100.0, "%", "noise of a sensed verify current"),
    ]
    for name, block, k, unit, meaning in what:
        if name in block:
            e = block[name]
            rows.append([name, meaning, f"{e.value * k:.3g} {unit}".strip(), f"[{e.low * k:.3g}, {e.high * k:.3g}] {unit}".strip()])
    for scheme, em in errors.items():
        rows.append([f"error model {scheme}", "column offset / per device / relative / mean (training noise)",
                     f"{em.s_col * 1e6:.2f} / {em.s_add * 1e6:.2f} uS / {em.s_rel:.1%} / {em.bias * 1e6:+.2f} uS", "-"])  # fmt: skip
    return rows


PULSE_TRIAL = "labrram.nn.hardware_aware:pulse_transfer_trial"
#: pulse-level transfers per block study
BLOCK = 50


def pulse_block(weights: list[np.ndarray], scheme: str, name: str, block: int, n: int, out_dir: Path, seed: int,
                scheduler: str) -> dict[str, np.ndarray]:  # fmt: skip
    """Block ``block`` of ``n`` pulse-level transfers of ``weights`` (a fresh simulated chip
    each) as a Monte Carlo study on the Dask cluster at ``scheduler``, written to
    ``out_dir/pulse-NAME-bBB.zarr`` as chunks complete and resumed from it."""
    t0 = time.perf_counter()
    res = run_study(
        PULSE_TRIAL, n, {"weights": [x.tolist() for x in weights], "scheme": scheme},
        seed=(seed + 2) * 1000 + block, out=out_dir / f"pulse-{name}-b{block:02d}.zarr", resume=True, chunk=5,
        backend="dask", scheduler=scheduler,
    )  # fmt: skip
    print(f"  pulse {name} block {block}: {n} transfers in {time.perf_counter() - t0:.0f} s", flush=True)
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
    n_pulse = int(os.environ.get("LABRRAM_DROLET_PULSE", "1000"))
    workers = int(os.environ.get("LABRRAM_DROLET_WORKERS", "2"))
    scheduler = os.environ.get("LABRRAM_DASK_SCHEDULER") or None
    out = os.environ.get("LABRRAM_BENCH_OUT")
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(out) if out else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        result = run(n, out_dir, workers=workers)
        stored = os.environ.get("LABRRAM_DROLET_PULSE_STORED") == "1"
        pulse_rows = run_pulse_level(result, n_pulse, out_dir, workers=workers, scheduler=scheduler, compute=not stored) if n_pulse > 0 else []
    print(f"training (3 networks): {result['t_train']:.1f} s")
    prov = result["calibration"].provenance
    table(
        f"Measured by the passive characterization (calibration_data/passive.json, {prov.get('chip', '?')}; 95 % bootstrap intervals)",
        ["quantity", "meaning", "value", "95 % interval"], calibration_rows(result["calibration"], result["errors"]),
    )
    table(
        f"Fast path: 2-8-2 moons on a 32x32 passive array ({n} transfers per row)",
        ["training", "scheme", "transfers", ">=95% correct", "software acc", "mean acc", "min acc", "wall"],
        [[r["training"], r["scheme"], str(r["transfers"]), f"{r['metric']:.1%}", f"{r['software']:.1%}",
          f"{r['mean_acc']:.1%}", f"{r['min_acc']:.1%}", f"{r['wall']:.1f} s"] for r in result["rows"]],
    )
    if pulse_rows:
        table(
            f"Pulse level (Dask studies, up to {n_pulse} transfers per row) against the fast path ({n} per row)",
            ["training", "scheme", "pulse transfers", ">=95% pulse", ">=95% fast (same count)", "fast - pulse", "95 % interval", "within 3 points",
             ">=95% fast (all)", "mean acc pulse", "mean acc fast",
             "min acc pulse", "per-point |diff|", "verdict agree", "G err rms", "pulses/dev", "converged", "unused drift"],
            [[r["training"], r["scheme"], str(r["transfers"]), f"{r['robust']:.1%}", f"{r['fast_robust_n']:.1%}",
              f"{(r['fast_robust_n'] - r['robust']) * 100:+.1f}", f"[{r['diff_ci'][0] * 100:+.1f}, {r['diff_ci'][1] * 100:+.1f}]", "yes" if abs(r["fast_robust_n"] - r["robust"]) <= 0.03 else "no",
              f"{r['fast_robust']:.1%}",
              f"{r['mean_acc']:.1%}", f"{r['fast_mean_acc']:.1%}", f"{r['min_acc']:.1%}", f"{r['point_mad']:.3f}",
              f"{r['verdict_agree']:.1%}", f"{r['g_err_rms'] * 1e6:.2f} uS", f"{r['pulses']:.1f}", f"{r['converged']:.1%}",
              f"{r['drift']:.2%}"]
             for r in pulse_rows],
        )
    if os.environ.get("LABRRAM_DROLET_PLOT"):
        plot(result, os.environ["LABRRAM_DROLET_PLOT"])
