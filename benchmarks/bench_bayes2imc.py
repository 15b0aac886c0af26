"""Binary Bayesian network on PCM with device noise as the sampler (Bayes2IMC, Katti et al. 2025).

By default: a binary Bayesian CNN on Fashion-MNIST sampled against reference PCM devices on a
multi-tile chip (:mod:`benchmarks.bayes2imc_fmnist`, which writes
docs/bench/bayes2imc_fmnist_*.md). With ``LABRRAM_B2IMC_TASK=digits``: the earlier experiment
below, written to docs/bench/bayes2imc.md.

A 64-100-10 binary Bayesian network (Bernoulli posteriors, hardware-aware training) is trained
once on the bundled digits, then deployed on ``LABRRAM_BENCH_DEPLOYMENTS`` (default 8)
simulated 128×128 PCM chips. On each chip: the sampler's read-to-read noise is measured on
spare devices, the 7,400 weights are programmed one device each by write-verify (a weight whose
device is left out of sampling reads 0), 64 calibration reads of their own give the
final-layer logit correction, and the network is scored from
``M`` = 64 whole-array reads (each read thresholded at the reference is one network; no
random-number generator) 2 min, 1 h, 1 day and 1 week after programming, with drift
compensation and the correction, without the correction, and without drift compensation.
Software: the same posteriors sampled by a random-number generator, 64 networks per draw. The correction also fits an affine map of the
logits on 256 unlabelled training inputs.

The accuracy-versus-time plot of the hardware-aware network goes to
docs/methods/bayes2imc/accuracy_vs_time.png, which the method page shows beside the tables
(``LABRRAM_B2IMC_PLOT``: another PNG path, also for the ablation); ``LABRRAM_B2IMC_TRAINING=ideal``
trains for an ideal sampler (no hardware-aware jitter), the ablation.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from labrram import sim
from labrram.nn.bayes2imc import (
    VARIANTS,
    BinaryLayout,
    SamplerSettings,
    calibrate_sampler,
    deploy_binary,
    evaluate_deployment,
    realization_error,
)
from labrram.nn.binary_bayes import BinarySettings, train_binary_bayes
from labrram.nn.datasets import load_task
from labrram.nn.drift import format_time
from labrram.station import load_station

from .common import table

SIZES = (64, 100, 10)
TIMES = (120.0, 3600.0, 86400.0, 7 * 86400.0)
M = 64
#: where the digits run draws its accuracy-versus-time plot (the method page shows it)
PLOT = "docs/methods/bayes2imc/accuracy_vs_time.png"
N_CAL = 256
#: reads of its own the digits run measures the logit correction from, at each time (the
#: correction on the final layer only, `match_norms=False`, and weights left out reading 0: the
#: settings this page was made with)
N_CAL_READS = 64
TRAININGS = {
    "hardware-aware": BinarySettings(seed=0, z_noise=2.0, kl_weight=0.05),
    "ideal": BinarySettings(seed=0, z_noise=0.0, kl_weight=0.2),
}
"""Hardware-aware training (the default): the probit argument of every weight jitters by
N(0, 2²) in training, the size of the programming-plus-drift error measured on the array after
a day. ``LABRRAM_B2IMC_TRAINING=ideal`` trains for an ideal sampler instead (the ablation)."""
LABELS = {"corrected": "drift comp. + logit correction", "uncorrected": "drift comp., no correction", "uncompensated": "no drift comp."}


def deployment(net, task, seed: int, settings: SamplerSettings = SamplerSettings(left_out="zero")) -> dict:
    """One chip: calibrate the sampler, program, correct, score over time."""
    sim.configure_bench("bayes2imc", seed=seed, kind="pcm")
    with load_station().with_simulation(bench="bayes2imc", seed=seed, kind="pcm").connect() as st:
        xb, timer = st.crossbar, st.timer
        layout = BinaryLayout.pack(net.sizes, tuple(xb.shape))
        rows, cols = np.meshgrid(np.arange(xb.shape[0]), np.arange(layout.used_columns, xb.shape[1]), indexing="ij")
        noise = calibrate_sampler(xb, timer, (rows.ravel()[:1000], cols.ravel()[:1000]), interval=settings.interval)
        dep = deploy_binary(xb, timer, net, noise, settings, layout)
        _, scores = evaluate_deployment(xb, timer, dep, task.X_test, task.y_test, TIMES, n_samples=M, n_calibration=N_CAL_READS, X_cal=task.X_train[:N_CAL], match_norms=False)
        realized = [realization_error(row.pop("p_plus"), net.lambdas, M, settings.z_max) for row in scores]
        return {"scores": scores, "realized": realized, **dep.summary()}


def _spread(v, scale: float, fmt: str) -> str:
    a = scale * np.asarray(v, dtype=float)
    return f"{fmt.format(a.mean())} [{fmt.format(a.min())}, {fmt.format(a.max())}]"


def _fmt(v) -> str:
    a = 100 * np.asarray(v)
    return f"{a.mean():.1f} [{a.min():.1f}, {a.max():.1f}]"


def drift_tables(results: list[dict], software: list[float], labels: dict[str, str], n_times: int, i0: int, i_day: int) -> dict:
    """The rows both Bayes2IMC benchmarks print from their deployments: accuracy per variant and
    time (``accuracy``, software first), software − hardware at time ``i0`` and ``i_day`` with
    the drop between them (``drop``), and the deployment-to-deployment spread with the ratio the
    logit correction gives (``spread``), the software's spread over as many draws of the same
    number of networks (the sampling floor, ``floor``, points: no correction narrows a spread
    below it) and the largest ratio that floor leaves at each time (``ratio`` and ``most``, per
    time). Also the accuracies (``acc``, % per variant, deployments x times) and spreads
    (``std``) they come from."""
    accuracy = [["software (RNG)"] + [_fmt(software)] * n_times]
    for v in VARIANTS:
        accuracy.append([labels[v]] + [_fmt([r["scores"][i][v] for r in results]) for i in range(n_times)])
    sw = 100 * np.mean(software)
    acc = {v: 100 * np.array([[r["scores"][i][v] for i in range(n_times)] for r in results]) for v in VARIANTS}
    drop_rows = []
    for v in VARIANTS:
        a = acc[v]
        drop = a[:, i0] - a[:, i_day]
        drop_rows.append([labels[v], f"{sw - a[:, i0].mean():+.2f}", f"{drop.mean():+.2f} [{drop.min():+.1f}, {drop.max():+.1f}]", f"{sw - a[:, i_day].mean():+.2f}"])
    std = {v: acc[v].std(axis=0, ddof=1) for v in ("uncorrected", "corrected")}
    spread = [[labels[v]] + [f"{x:.2f}" for x in std[v]] for v in ("uncorrected", "corrected")]
    ratio = std["uncorrected"] / std["corrected"]
    floor = float(100 * np.std(software, ddof=1))
    most = np.array([ceiling(a, floor) for a in std["uncorrected"]])
    spread.append(["ratio uncorrected / corrected"] + [f"{x:.2f}" for x in ratio])
    spread.append(["software (RNG), same M (sampling floor)"] + [f"{floor:.2f}"] * n_times)
    spread.append(["largest ratio the floor leaves (uncorrected / floor)"] + [f"{x:.2f}" for x in most])
    return {"accuracy": accuracy, "drop": drop_rows, "spread": spread, "acc": acc, "std": std, "sw": sw, "floor": floor, "ratio": ratio, "most": most}


def ceiling(uncorrected: float, floor: float) -> float:
    """The largest spread ratio a correction can reach: the uncorrected spread over the
    sampling floor (infinite when the floor is 0)."""
    return uncorrected / floor if floor > 0 else float("inf")


def plot(software: list[float], results: list[dict], path: str) -> None:
    """Accuracy versus time after programming: mean and every deployment, per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.0))
    for ax, variants in zip(axes, (VARIANTS, VARIANTS[:2])):
        ax.axhspan(100 * min(software), 100 * max(software), color="0.8", label="software (RNG), range")
        for v, color in zip(variants, ("C0", "C1", "C3")):
            acc = 100 * np.array([[row[v] for row in r["scores"]] for r in results])
            ax.plot(TIMES, acc.T, color=color, lw=0.5, alpha=0.35)
            ax.plot(TIMES, acc.mean(axis=0), color=color, marker="o", ms=3, label=LABELS[v])
        ax.set_xscale("log")
        ax.set_xticks(TIMES, [format_time(t) for t in TIMES])
        ax.set_xlabel("time after programming")
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7, loc="lower left")
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, 100)
    axes[0].set_title(f"digits 64-100-10 on PCM, {len(results)} deployments", fontsize=10)
    axes[1].set_title("with drift compensation (zoom)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    """The Fashion-MNIST CNN (default), or the digits MLP with ``LABRRAM_B2IMC_TASK=digits``."""
    task = os.environ.get("LABRRAM_B2IMC_TASK", "fmnist")
    if task == "fmnist":
        from .bayes2imc_fmnist import main as fmnist

        return fmnist()
    if task != "digits":
        raise SystemExit(f"LABRRAM_B2IMC_TASK must be fmnist or digits, got {task!r}")
    digits()


def digits() -> None:
    """The 64-100-10 digits network with a digital reference (docs/bench/bayes2imc.md)."""
    n = int(os.environ.get("LABRRAM_BENCH_DEPLOYMENTS", "8"))
    t0 = time.perf_counter()
    task = load_task("digits", seed=0)
    training = os.environ.get("LABRRAM_B2IMC_TRAINING", "hardware-aware")
    if training not in TRAININGS:
        raise SystemExit(f"LABRRAM_B2IMC_TRAINING must be one of {sorted(TRAININGS)}, got {training!r}")
    print(f"training: {training} {TRAININGS[training]}")
    model, _ = train_binary_bayes(task.X_train, task.y_train, SIZES, TRAININGS[training])
    net = model.to_numpy()
    software = [net.accuracy(task.X_test, task.y_test, list(zip(*net.sample_weights(M, seed)))) for seed in range(n)]
    results, walls = [], []
    for seed in range(n):
        t1 = time.perf_counter()
        results.append(deployment(net, task, seed))
        walls.append(time.perf_counter() - t1)
    conv = [r["converged_fraction"] for r in results]
    header = ["variant"] + [format_time(t) for t in TIMES]
    rows = drift_tables(results, software, LABELS, len(TIMES), TIMES.index(120.0), TIMES.index(86400.0))
    table(
        f"digits {'-'.join(map(str, SIZES))}, test accuracy % (mean [min, max] over {n} deployments, {M} sampled networks each); "
        f"write-verify converged on {100 * min(conv):.1f}–{100 * max(conv):.1f} % of {results[0]['devices']} devices",
        header,
        rows["accuracy"],
    )
    print()
    table(
        "points: software − hardware at 2 min; accuracy drop from 2 min to 1 day (mean [min, max]); software − hardware at 1 day",
        ["variant", "sw − hw, 2 min", "drop 2 min → 1 d", "sw − hw, 1 d"],
        rows["drop"],
    )
    print()
    table("deployment-to-deployment spread (std of accuracy across deployments, points)", header, rows["spread"])
    print()
    realized = [
        ["z error of the realized probabilities, RMS (read-noise σ)"] + [_spread([r["realized"][i]["z_rms"] for r in results], 1, "{:.2f}") for i in range(len(TIMES))],
        ["confident weights (z = ±6): reads with the wrong sign, %"] + [_spread([r["realized"][i]["flip_rate"] for r in results], 100, "{:.2f}") for i in range(len(TIMES))],
    ]  # fmt: skip
    r0 = results[0]["realized"][0]
    table(
        f"what the array does to the probabilities: each weight's fraction of +1 over the {M} reads of an evaluation against its "
        f"posterior's (mean [min, max] over deployments; the z error over the {r0['informative']:,} weights with |z| ≤ 1.5 of the first "
        f"chip and the like, less the binomial spread of {M} independent reads; {r0['confident']:,} confident weights on the first chip)",
        ["measure"] + header[1:],
        realized,
    )  # fmt: skip
    print()
    s = [r["sigma_a"] * 1e6 for r in results]
    table(
        "the deployments",
        ["", ""],
        [
            ["sampler noise measured (mean over chips)", f"σ(G) = a (G/1 µS)^b, a = {np.mean(s):.3f} µS, b = {np.mean([r['sigma_b'] for r in results]):.2f}"],
            ["wall time per deployment on this machine (sampler calibration, write-verify, reads, scoring)", f"{np.median(walls):.1f} s (median of {n})"],
        ],
    )  # fmt: skip
    path = os.environ.get("LABRRAM_B2IMC_PLOT") or (str(Path(__file__).resolve().parent.parent / PLOT) if training == "hardware-aware" else None)
    if path:
        plot(software, results, path)
        print(f"plot: {path}")
    print(f"(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
