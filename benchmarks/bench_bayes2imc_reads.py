"""How independent the Bayes2IMC sampling reads are, and the sampling floor that follows.

The Fashion-MNIST pages score each deployment on ``M`` = 32 networks from 32 whole-array reads
1 s apart, and compare its spread over chips with a floor: software draws of the same ``M``
networks, each independent. A device's reads are not quite independent draws: the part of its
1/f noise slower than the spacing carries from one read to the next. This benchmark programs
the hardware-aware network on ``LABRRAM_BENCH_DEPLOYMENTS`` (default 4) chips as the
two-attempt pages with the weights left out at their mean do (tile references, 2 attempts,
``left_out="mean"``), and from 10 min after programming reads each chip 16 × 32 times at each
spacing of ``LABRRAM_B2IMC_SPACINGS`` (default 1, 4 and 16 s). For each spacing,
:func:`~labrram.nn.bayes2imc.effective_samples` gives how many independent draws a run of 32
successive reads is worth. Then the floor: the spread of software accuracy over 16 draws of 32
independent networks, and of as many as the reads 1 s apart are worth, on the first 600 test
images, as the 600-image study pages score.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np

from labrram.nn.bayes2imc import SamplerSettings, effective_samples
from labrram.nn.drift import format_time, wait_after_programming

from .common import env_int, fashion_mnist_missing, table

WINDOW = 32  # reads per run: the pages' M networks per inference
RUNS = 16
START = 600.0


def spacings() -> list[float]:
    """The read spacings to measure (``LABRRAM_B2IMC_SPACINGS``, s, comma-separated, increasing)."""
    raw = os.environ.get("LABRRAM_B2IMC_SPACINGS", "1,4,16")
    try:
        out = [float(v) for v in raw.split(",")]
    except ValueError:
        raise SystemExit(f"LABRRAM_B2IMC_SPACINGS must be comma-separated numbers of seconds, got {raw!r}") from None
    if not out or any(not (np.isfinite(v) and v > 0) for v in out):
        raise SystemExit(f"LABRRAM_B2IMC_SPACINGS must be positive numbers of seconds, got {raw!r}")
    return out


def main() -> None:
    from .bayes2imc_fmnist import M, images, programmed_chip, software_accuracies, trained

    if M != WINDOW:
        raise SystemExit(f"the pages score {M} networks per inference; this benchmark measures runs of {WINDOW}")

    if fashion_mnist_missing("bayes2imc_reads"):
        return
    gaps = spacings()
    n_chips = env_int("LABRRAM_BENCH_DEPLOYMENTS", 4)
    if n_chips < 1:
        raise SystemExit(f"LABRRAM_BENCH_DEPLOYMENTS must be >= 1, got {n_chips}")
    net, _, _ = trained("hardware-aware", env_int("LABRRAM_B2IMC_TRAIN", 30000))
    t0 = time.perf_counter()
    found: dict[float, list] = {g: [] for g in gaps}
    sampler = SamplerSettings(reference="tile", attempts=2, left_out="mean")
    for seed in range(n_chips):
        with programmed_chip(net, seed, sampler) as (xb, timer, dep, _):
            wait_after_programming(timer, dep.t_programmed, START)
            for g in gaps:  # the same chip and deployment, its reads spaced g apart
                spaced = replace(dep, settings=replace(sampler, interval=g))
                spaced.last_read = dep.last_read
                found[g].append(effective_samples(spaced.sample(xb, timer, WINDOW * RUNS), spaced.ok(), WINDOW))
                dep.last_read = spaced.last_read
        print(f"  chip {seed}: " + ", ".join(f"{g:g} s: {found[g][-1].effective:.1f}" for g in gaps) + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    rows = []
    for g in gaps:
        eff = np.array([e.effective for e in found[g]])
        ratio = np.array([e.variance_ratio for e in found[g]])
        rows.append([f"{g:g} s", format_time(WINDOW * RUNS * g), f"{eff.mean():.1f} [{eff.min():.1f}, {eff.max():.1f}]", f"{ratio.mean():.2f}", f"{np.mean([e.weights for e in found[g]]):,.0f}"])
    table(
        f"how many independent draws {WINDOW} successive sampling reads are worth: hardware-aware Fashion-MNIST network, tile references, "
        f"2 attempts, weights left out at their mean; {n_chips} chips, {RUNS} runs of {WINDOW} reads each from {format_time(START)} after programming "
        f"(mean [min, max] over chips)",
        ["read spacing", "the runs span", f"independent draws in {WINDOW} reads", "variance of a run's fraction of +1 / independent reads", "weights measured (reading both signs)"],
        rows,
    )
    n_eff = max(2, int(round(float(np.mean([e.effective for e in found[gaps[0]]])))))
    X, y = images("test", env_int("LABRRAM_B2IMC_TEST", 600))
    n_dep = 16
    floor = []
    for m in (M, n_eff):
        acc = 100 * np.array(software_accuracies(net, X, y, m, n_dep))
        floor.append([f"{m}", f"{acc.mean():.1f}", f"{acc.std(ddof=1):.2f}"])
    table(
        f"sampling floor: software accuracy % over {n_dep} draws of independent networks on {len(X)} test images "
        f"({M}: the pages' floor row; {n_eff}: what {M} reads {gaps[0]:g} s apart are worth, above)",
        ["networks per draw", "accuracy, mean", "spread (std, points)"],
        floor,
    )
    print(f"(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
