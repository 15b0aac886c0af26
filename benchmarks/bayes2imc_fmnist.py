"""Bayes2IMC at Fashion-MNIST scale: a binary Bayesian CNN sampled against reference PCM devices.

The network (:class:`~labrram.nn.binary_bayes.BinaryCNNSpec` below: 5×5 convolutions with 8 and
16 maps, each with batch norm, ReLU and 2×2 max pooling, then 256-100-10 fully connected; every
weight ±1 with a learned Bernoulli probability) is trained on the first
``LABRRAM_B2IMC_TRAIN`` training images (default 30,000) on one CPU thread and cached in
``runs/cache/`` as ``.npz`` (plain arrays, no pickle). Each configuration
(``LABRRAM_B2IMC_CONFIGS``, default both) is deployed on ``LABRRAM_BENCH_DEPLOYMENTS``
(default 16) simulated PCM chips of 1×4 tiles of 128×128 (one 128×512 array, all tiles
programmed in one write-verify job): the last 8 rows of every tile hold reference devices
programmed at ``G_ref`` with the weights, and every weight device is compared with the mean read
of the 1,024 reference devices of its tile in the same read (``LABRRAM_B2IMC_REFERENCE=column``:
the 8 of its tile column). On each chip: the sampler's comparison noise is
measured on spare devices against their own references, the network is programmed, and it is
scored on the first ``LABRRAM_B2IMC_TEST`` test images (default all 10,000, the paper's test set
size) at 1 s, 10 min, 1 h and 1 d after programming, from ``M`` = 32 whole-array reads each (one
network per read), with the logit correction (measured again at each time from those 32 reads
and 512 unlabelled training images; ``LABRRAM_B2IMC_CAL_READS=N``: from N reads of its own),
without it, and against a fixed digital reference (no drift tracking, 8 reads). The correction
matches the hidden layers' batch norms to the software on those images, then corrects the final
layer (``LABRRAM_B2IMC_NORMS=0``: the final layer only). A weight left
out of sampling takes its posterior mean in every network (``LABRRAM_B2IMC_LEFT_OUT=zero``: it
reads 0).
Software: the same posteriors sampled by a random-number generator, 32 networks per draw.

Each configuration writes docs/bench/bayes2imc_fmnist_<config>.md, with a suffix for each
setting off its default (:func:`page_name`): ``_column`` with the column
reference; ``_reads<N>`` with ``LABRRAM_B2IMC_READS=N`` verify reads averaged by the
write-verify; ``_attempts<N>`` with ``LABRRAM_B2IMC_ATTEMPTS=N`` full write-verify attempts per
device; ``_remap`` with ``LABRRAM_B2IMC_REMAP=1``: each layer's inputs routed to the rows whose
off-target devices serve them best, the moved devices programmed again; ``_z<value>`` with
``LABRRAM_B2IMC_Z_NOISE`` set to another probit jitter than 2 for the hardware-aware training;
``_cal<N>`` with ``LABRRAM_B2IMC_CAL_READS=N`` reads of its own for the logit correction;
``_logitsonly`` with ``LABRRAM_B2IMC_NORMS=0``; ``_zero`` with ``LABRRAM_B2IMC_LEFT_OUT=zero``; ``_test<N>`` when scored on the first N test
images only.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from labrram import sim
from labrram.nn.bayes2imc import LEFT_OUT as LEFT_OUT_CHOICES
from labrram.nn.bayes2imc import (
    VARIANTS,
    BinaryBayesNetwork,
    BinaryLayout,
    SamplerSettings,
    calibrate_sampler,
    deploy_binary,
    evaluate_deployment,
)
from labrram.nn.drift import format_time
from labrram.station import load_station

from .bench_bayes2imc import drift_tables
from .common import against, env_float, env_int, fashion_mnist_missing, markdown_table, table, write_page

TIMES = (1.0, 600.0, 3600.0, 86400.0)
M = 32
M_FIXED = 8
#: reads the logit correction is measured from at each time (``LABRRAM_B2IMC_CAL_READS``,
#: default 0: the reads of the networks it corrects); another number, reads of its own, writes
#: its own page, ``..._cal<N>.md``
N_CAL_READS = env_int("LABRRAM_B2IMC_CAL_READS", 0)
if N_CAL_READS < 0 or N_CAL_READS == 1:
    raise SystemExit(f"LABRRAM_B2IMC_CAL_READS must be 0 (the scored networks' own reads) or >= 2 (the correction needs two reads), got {N_CAL_READS}")
#: ``LABRRAM_B2IMC_NORMS=0``: the correction on the final layer only, the hidden batch norms as
#: trained (``evaluate_deployment(..., match_norms=False)``), its own page ``..._logitsonly.md``
NORMS = env_int("LABRRAM_B2IMC_NORMS", 1)
if NORMS not in (0, 1):
    raise SystemExit(f"LABRRAM_B2IMC_NORMS must be 0 or 1, got {NORMS}")
N_CAL_INPUTS = 512
#: the Fashion-MNIST test set, every image of which a page scores by default
N_TEST_ALL = 10000
TILE = (128, 128)
TILES = 4
REF_ROWS = 8
N_SPARE = 1000
REFERENCE = os.environ.get("LABRRAM_B2IMC_REFERENCE", "tile")
"""Every weight is compared with all the reference devices of its tile (``column``: those of its
tile column only)."""
#: reads averaged by every verify of the write-verify (``LABRRAM_B2IMC_READS``, default 1);
#: more than one writes its own page, ``..._reads<N>.md``
READS = env_int("LABRRAM_B2IMC_READS", 1)
#: full write-verify attempts per device (``LABRRAM_B2IMC_ATTEMPTS``, default 1): a device the
#: first attempt leaves out of its window starts its ladders again; more than one writes its own
#: page, ``..._attempts<N>.md``
ATTEMPTS = env_int("LABRRAM_B2IMC_ATTEMPTS", 1)
#: ``LABRRAM_B2IMC_REMAP=1``: fault-aware input order after the write-verify
#: (``SamplerSettings(remap_inputs=True)``), its own page ``..._remap.md``
REMAP = env_int("LABRRAM_B2IMC_REMAP", 0)
if REMAP not in (0, 1):
    raise SystemExit(f"LABRRAM_B2IMC_REMAP must be 0 or 1, got {REMAP}")
#: the hardware-aware training's probit jitter (``LABRRAM_B2IMC_Z_NOISE``, default 2); another
#: value writes its own page, ``..._z<value>.md``, and trains (and caches) its own network
Z_NOISE = env_float("LABRRAM_B2IMC_Z_NOISE", 2.0)
if Z_NOISE < 0:
    raise SystemExit(f"LABRRAM_B2IMC_Z_NOISE must be >= 0, got {Z_NOISE:g}")
#: what a weight left out of sampling contributes (``LABRRAM_B2IMC_LEFT_OUT``, default
#: ``mean``: its posterior mean, ``SamplerSettings(left_out="mean")``; ``zero``: its own page
#: ``..._zero.md``)
LEFT_OUT = os.environ.get("LABRRAM_B2IMC_LEFT_OUT", "mean")
if LEFT_OUT not in LEFT_OUT_CHOICES:
    raise SystemExit(f"LABRRAM_B2IMC_LEFT_OUT must be one of {LEFT_OUT_CHOICES}, got {LEFT_OUT!r}")
LABELS = {
    "corrected": "reference devices + logit correction",
    "uncorrected": "reference devices, no correction",
    "uncompensated": "fixed digital reference (no drift tracking)",
}


def configs():
    """Training configurations: hardware-aware (probit jitter N(0, 2²)) and ideal-sampler."""
    from labrram.nn.binary_bayes import BinaryCNNSpec, BinarySettings

    spec = BinaryCNNSpec(image=(1, 28, 28), channels=(8, 16), kernel=5, pool=2, hidden=(100,), n_classes=10)
    epochs = env_int("LABRRAM_B2IMC_EPOCHS", 12)
    return spec, {
        "hardware-aware": BinarySettings(epochs=epochs, lr=0.3, batch_size=100, z_noise=Z_NOISE, kl_weight=0.05, seed=0),
        "ideal": BinarySettings(epochs=epochs, lr=0.3, batch_size=100, z_noise=0.0, kl_weight=0.05, seed=0),
    }


def z_suffix(name: str) -> str:
    """The page-name suffix of a hardware-aware jitter other than the default 2 (``_z3``)."""
    return "" if name != "hardware-aware" or Z_NOISE == 2.0 else f"_z{Z_NOISE:g}"


def page_name(name: str, n_test: int) -> str:
    """The page a configuration writes: one suffix for each setting off its default, in a
    fixed order (``docs/bench/bayes2imc_fmnist_hardware-aware_attempts2_cal32_logitsonly_zero_test600.md``)."""
    suffixes = (
        "" if REFERENCE == "tile" else f"_{REFERENCE}",
        "" if READS == 1 else f"_reads{READS}",
        "" if ATTEMPTS == 1 else f"_attempts{ATTEMPTS}",
        "_remap" if REMAP else "",
        z_suffix(name),
        "" if N_CAL_READS == 0 else f"_cal{N_CAL_READS}",
        "" if NORMS else "_logitsonly",
        "" if LEFT_OUT == "mean" else f"_{LEFT_OUT}",
        "" if n_test == N_TEST_ALL else f"_test{n_test}",
    )
    return f"docs/bench/bayes2imc_fmnist_{name}{''.join(suffixes)}.md"


def images(split: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Flattened Fashion-MNIST images in [0, 1] (float32) and their labels."""
    from labrram.nn.datasets import load_fashion_mnist

    x, y = load_fashion_mnist(split, limit=limit)
    return (x.reshape(len(x), -1) / 255.0).astype(np.float32), y.astype(np.int64)


def trained(name: str, n_train: int) -> tuple[BinaryBayesNetwork, float, bool]:
    """The configuration's network: from the cache, else trained (and cached). Returns the
    network, the training wall time (s, 0 when cached) and whether it came from the cache."""
    from labrram.nn.binary_bayes import train_binary_bayes

    spec, settings = configs()
    s = settings[name]
    key = hashlib.sha256(json.dumps([repr(spec), repr(s), n_train]).encode()).hexdigest()[:12]
    path = Path(__file__).resolve().parent.parent / "runs" / "cache" / f"bayes2imc_fmnist_{name}_{key}.npz"
    if path.exists():
        return BinaryBayesNetwork.load(path), 0.0, True
    X, y = images("train", n_train)
    t0 = time.perf_counter()
    model, hist = train_binary_bayes(X, y, spec, s)
    wall = time.perf_counter() - t0
    net = model.to_numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    net.save(path)
    print(f"{name}: trained in {wall:.0f} s, train accuracy (sampled) {100 * hist[-1]['train_acc']:.1f} %, cached in {path}")
    return net, wall, False


def software_accuracies(net: BinaryBayesNetwork, X, y, m: int, n_draws: int) -> list[float]:
    """Accuracy (fraction) of ``n_draws`` software draws of ``m`` independent networks each
    (seeds 1000, 1001, …): the pages' sampling floor."""
    return [net.accuracy(X, y, net.software_samples(m, 1000 + s)) for s in range(n_draws)]


def sampler_settings() -> SamplerSettings:
    """The sampler settings the environment asks for."""
    return SamplerSettings(reference=REFERENCE, reads=READS, attempts=ATTEMPTS, remap_inputs=bool(REMAP), left_out=LEFT_OUT)


@contextmanager
def programmed_chip(net: BinaryBayesNetwork, seed: int, sampler: SamplerSettings) -> Iterator[tuple]:
    """One simulated chip with the sampler calibrated against its reference devices and ``net``
    programmed: yields the crossbar, the timer, the deployment and a dict of the bench times
    (``t_calibrate``, ``t_program``, s) and spare devices used (``spares``)."""
    shape = (TILE[0], TILE[1] * TILES)
    kw = dict(seed=seed, kind="pcm", rows=shape[0], cols=shape[1])
    sim.configure_bench("bayes2imc-fmnist", **kw)
    with load_station().with_simulation(bench="bayes2imc-fmnist", **kw).connect() as st:
        xb, timer = st.crossbar, st.timer
        layout = BinaryLayout.tile_grid(net.shapes, tuple(xb.shape), TILE, REF_ROWS)
        rows, cols = layout.free_cells()
        rows, cols = rows[:N_SPARE], cols[:N_SPARE]
        t0 = timer.now()
        noise = calibrate_sampler(xb, timer, (rows, cols), interval=sampler.interval, references=layout.references_of(rows, cols, sampler.reference), g_ref=sampler.g_ref)
        t1 = timer.now()
        dep = deploy_binary(xb, timer, net, noise, sampler, layout)
        yield xb, timer, dep, {"t_calibrate": t1 - t0, "t_program": timer.now() - t1, "spares": int(rows.size)}


def deployment(net: BinaryBayesNetwork, X_test, y_test, X_cal, seed: int) -> dict:
    """One chip: calibrate the sampler against reference devices, program, score over time."""
    with programmed_chip(net, seed, sampler_settings()) as (xb, timer, dep, times):
        _, scores = evaluate_deployment(
            xb, timer, dep, X_test, y_test, TIMES, n_samples=M, n_calibration=N_CAL_READS, X_cal=X_cal, n_fixed=M_FIXED,
            match_norms=bool(NORMS),
        )
        # bench time of one network (one whole-array read at the sampling spacing)
        r0 = timer.now()
        xb.read()
        t_read = timer.now() - r0
        return {"scores": scores, **dep.summary(), **times, "t_read": t_read}


def _s(t: float) -> str:
    return f"{t:.1f} s" if t < 120 else f"{t / 60:.1f} min"


def run(name: str, n_dep: int, n_train: int, n_test: int) -> None:
    net, t_train, cached = trained(name, n_train)
    X_test, y_test = images("test", n_test)
    X_cal = images("train", n_train + N_CAL_INPUTS)[0][n_train:]  # unlabelled images not used in training
    software = software_accuracies(net, X_test, y_test, M, n_dep)
    results = []
    for seed in range(n_dep):
        w0 = time.perf_counter()
        results.append(deployment(net, X_test, y_test, X_cal, seed))
        r = results[-1]["scores"]
        print(f"  {name} chip {seed}: " + ", ".join(f"{format_time(x['t'])} {100 * x['corrected']:.1f}/{100 * x['uncorrected']:.1f}/{100 * x['uncompensated']:.1f}" for x in r) + f"  ({time.perf_counter() - w0:.0f} s)")
    sections = []

    def add(title: str, header: list[str], rows: list[list[str]], notes: str = "") -> None:
        table(title, header, rows)
        print()
        sections.append(markdown_table(title, header, rows, notes))

    conv = [r["converged_fraction"] for r in results]
    header = ["variant"] + [format_time(t) for t in TIMES]
    i0, i_day = 0, TIMES.index(86400.0)
    tabs = drift_tables(results, software, LABELS, len(TIMES), i0, i_day)
    add(
        f"Fashion-MNIST binary Bayesian CNN ({name} training{f', z_noise = {Z_NOISE:g}' if z_suffix(name) else ''}), test accuracy % on {n_test} test images "
        f"(mean [min, max] over {n_dep} deployments; {M} sampled networks each, {M_FIXED} for the fixed reference); "
        f"write-verify converged on {100 * min(conv):.1f}–{100 * max(conv):.1f} % of the devices"
        + ("" if ATTEMPTS == 1 else f" in up to {ATTEMPTS} attempts each")
        + ("; inputs remapped around the devices left off target" if REMAP else "")
        + (f"; logit correction measured from {N_CAL_READS} reads of its own" if N_CAL_READS else f"; logit correction measured from the {M} scored networks' own reads")
        + (", with the hidden batch norms matched to the software" if NORMS else ", on the final layer only (hidden batch norms as trained)")
        + ("; a weight left out of sampling takes its posterior mean in every network" if LEFT_OUT == "mean" else "; a weight left out of sampling reads 0"),
        header,
        tabs["accuracy"],
    )
    add(
        "points: software − hardware at 1 s; accuracy drop from 1 s to 1 day (mean [min, max] over deployments); software − hardware at 1 day",
        ["variant", "sw − hw, 1 s", "drop 1 s → 1 d", "sw − hw, 1 d"],
        tabs["drop"],
    )
    add(f"deployment-to-deployment spread (std of accuracy over {n_dep} deployments, points)", header, tabs["spread"])
    sw, acc, ratios = tabs["sw"], tabs["acc"], tabs["ratio"]
    gap = sw - acc["corrected"].mean(axis=0)
    drop = (acc["corrected"][:, i0] - acc["corrected"][:, i_day]).mean()
    worst = int(np.argmin(ratios))
    most = tabs["most"][worst]
    gap_txt, gap_ok = against(gap.max(), 1.0, at_most=True)
    ratio_txt, ratio_ok = against(ratios.min(), 2.0, at_most=False)
    drop_txt, drop_ok = against(drop, 0.5, at_most=True, sign="+")
    rows = [
        ["hardware ≤ 1 point below software (with the correction), every time", f"{gap_txt} points at worst ({', '.join(f'{g:+.2f}' for g in gap)})", gap_ok],
        ["logit correction cuts the spread over ≥ 16 deployments ≥ 2×, every time", f"{ratio_txt}× at worst over {n_dep} deployments ({format_time(TIMES[worst])}; the sampling floor leaves at most {most:.2f}× there)", ratio_ok if n_dep >= 16 else "not met"],
        ["≤ 0.5 point drop from 1 s to 1 day with drift tracking (reference devices + correction)", f"{drop_txt} points (mean over deployments)", drop_ok],
    ]
    add("reproduction targets, from the numbers above", ["target", "measured", "status"], rows)
    r0 = results[0]
    left = [r["left_out"] for r in results]
    t_prog = [r["t_program"] for r in results]
    t_cal = [r["t_calibrate"] for r in results]
    infer = M * max(r0["t_read"], SamplerSettings().interval)
    rows = [
        ["chip", f"one {r0['array_shape'][0]}×{r0['array_shape'][1]} PCM array = {TILES} tiles of {TILE[0]}×{TILE[1]}, programmed in one write-verify job" + (", then the devices of the moved inputs in a second" if REMAP else "")],
        ["tiles holding weights", str(r0["tiles"])],
        ["weights (one device each)", f"{r0['weight_devices']:,}"],
        ["reference devices", f"{r0['reference_devices']:,} ({REF_ROWS} rows per tile at G_ref = {r0['g_ref'] * 1e6:.0f} µS; each weight compared with those of its {REFERENCE})"],
        ["devices programmed for the network", f"{r0['devices']:,}"],
        ["weights left out of sampling (the write-verify gave up on the device, and a read right after programming finds "
         + ("that sampling it would cost more than leaving its weight at the posterior mean, binary_off_target); each takes its posterior mean, tanh λ, in every network (a digital product)"
            if LEFT_OUT == "mean" else "it farther from the weight's mean than a 0 would be); each reads 0"),
         f"{np.mean(left):.0f} [{min(left)}, {max(left)}] per chip"],
    ]
    if REMAP:
        before = [r["before_remap"]["left_out"] for r in results]
        moved = [r["remapped_inputs"] for r in results]
        rows += [
            ["weights left out before the inputs were remapped", f"{np.mean(before):.0f} [{min(before)}, {max(before)}] per chip"],
            ["inputs moved to another row (their devices programmed again)", f"{np.mean(moved):.0f} [{min(moved)}, {max(moved)}] of {sum(n for n, _ in net.shapes):,} per chip"],
        ]
    rows += [
        ["spare devices for the sampler calibration", f"{r0['spares']:,} (compared with the same reference devices)"],
        ["projected bench time: sampler calibration", f"{_s(float(np.mean(t_cal)))} (mean over chips)"],
        ["projected bench time: programming (write-verify" + (", both jobs" if REMAP else "") + ")", f"{_s(float(np.mean(t_prog)))} [{_s(min(t_prog))}, {_s(max(t_prog))}]"],
        ["projected bench time: one sampled network (one whole-array read)", f"{r0['t_read'] * 1e3:.1f} ms (reads spaced {SamplerSettings().interval:g} s apart)"],
        ["projected bench time: one inference of M networks", f"{_s(infer)}"],
        ["training", f"{n_train:,} images, 1 CPU thread" + (f", {t_train:.0f} s" if not cached else " (cached network)")],
        ["sampler noise measured (comparison G − references)", f"σ(G) = a (G/1 µS)^b, a = {np.mean([r['sigma_a'] for r in results]) * 1e6:.3f} µS, b = {np.mean([r['sigma_b'] for r in results]):.2f} (mean over chips)"],
    ]
    add("arrays, devices and projected bench time (virtual clock of the simulated bench)", ["", ""], rows)
    write_page(page_name(name, n_test), sections)


def main() -> None:
    if fashion_mnist_missing("bayes2imc (fmnist)"):
        return
    _, settings = configs()
    chosen = os.environ.get("LABRRAM_B2IMC_CONFIGS", ",".join(settings)).split(",")
    unknown = set(chosen) - set(settings)
    if unknown:
        raise SystemExit(f"LABRRAM_B2IMC_CONFIGS: unknown {sorted(unknown)}; known: {sorted(settings)}")
    n_dep = env_int("LABRRAM_BENCH_DEPLOYMENTS", 16)
    n_train, n_test = env_int("LABRRAM_B2IMC_TRAIN", 30000), env_int("LABRRAM_B2IMC_TEST", N_TEST_ALL)
    t0 = time.perf_counter()
    for name in chosen:
        run(name, n_dep, n_train, n_test)
    print(f"(total {time.perf_counter() - t0:.0f} s)")
