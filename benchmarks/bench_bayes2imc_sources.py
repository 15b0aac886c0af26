"""What the Bayes2IMC logit correction can and cannot undo, in software (no array).

The Fashion-MNIST benchmark's corrected deployments stay further apart than the sampling floor
on most pages. This benchmark takes the same hardware-aware network (the Fashion-MNIST
benchmark's cached one, or trained as there) and makes 16 "deployments" of it in software,
each with one kind of error put into the posteriors, in chosen layers:

- *probability error*: every weight's probit ``z`` moved by ``N(0, s²)``, each weight its own
  (``s`` = ``LABRRAM_B2IMC_SOURCES_Z``, default 1: the size of the realized z error the digits
  page measures right after programming);
- *left out*: a random fraction of the weights (``LABRRAM_B2IMC_SOURCES_LEFT``, default 0.5 %,
  between the one- and two-attempt pages' counts) read 0 in every network, as a weight whose
  device the write-verify gave up on — or, in the last rows, take their posterior mean
  ``tanh λ`` in every network, as ``SamplerSettings(left_out="mean")`` has them on the array.

Each deployment is scored as the Fashion-MNIST benchmark's 600-image study pages score it at
one time: 32 networks drawn from its posteriors, the logit correction measured from 32 other
draws (``LABRRAM_B2IMC_CAL_READS=32`` on the array) and 512
unlabelled training images (:func:`~labrram.nn.bayes2imc.measure_correction`, as on the array:
a weight left out gets no shift), on the first 600 test images; the spread is the std of accuracy
over the 16 deployments, with and without the correction. No device model takes part, so the
rows separate the sources of the spread: what the correction removes of each, and what it
leaves above the floor (no error: the draws' own spread).
"""

from __future__ import annotations

import os
import time

import numpy as np

from labrram.nn.bayes2imc import PROBIT_SCALE, SoftwareReference, measure_correction
from labrram.nn.binary_network import BinaryBayesNetwork

from .common import env_float, env_int, fashion_mnist_missing, table

M = 32
N_CAL_READS = 32
N_CAL_INPUTS = 512


def deployment(
    net: BinaryBayesNetwork, layers: list[int], z_error: float, left: float, seed: int, X, y, X_cal, sw_cal, left_out: str = "zero"
) -> tuple[float, float]:
    """Accuracy (%) with and without the logit correction of one software deployment whose
    ``layers`` carry a probit error of ``z_error`` and a fraction ``left`` of weights left out
    (``left_out``: read 0, or ``"mean"``: take their posterior mean)."""
    rng = np.random.default_rng(seed)
    lambdas = [lam + (rng.normal(0.0, z_error / PROBIT_SCALE, lam.shape) if i in layers and z_error else 0.0) for i, lam in enumerate(net.lambdas)]
    realized = BinaryBayesNetwork(lambdas, net.norms, net.convs)
    kept = [np.where((rng.random(lam.shape) < left) & (i in layers), 0.0, 1.0) for i, lam in enumerate(lambdas)]
    fill = [(1.0 - k) * (np.tanh(lam) if left_out == "mean" else 0.0) for k, lam in zip(kept, net.lambdas)]

    def draws(n: int) -> list[list[np.ndarray]]:  # the weights not kept read 0 (or their mean)
        return [[w * k + f for w, k, f in zip(ws, kept, fill)] for ws in realized.software_samples(n, rng)]

    samples, cal = draws(M), draws(N_CAL_READS)
    # as on the array: no shift for a weight left out; the final layer only, as when this study was made
    correction = measure_correction(net, cal, kept[-1] > 0, X_cal, sw_cal, match_norms=False)
    corrected, uncorrected = net.accuracies(X, y, samples, [correction, None])
    return 100 * corrected, 100 * uncorrected


def main() -> None:
    from .bayes2imc_fmnist import images, trained

    if fashion_mnist_missing("bayes2imc_sources"):
        return
    n_dep = env_int("LABRRAM_BENCH_DEPLOYMENTS", 16)
    z_error = env_float("LABRRAM_B2IMC_SOURCES_Z", 1.0)
    left = env_float("LABRRAM_B2IMC_SOURCES_LEFT", 0.005)
    if n_dep < 2 or z_error < 0 or not 0 <= left < 1:
        raise SystemExit(f"need LABRRAM_BENCH_DEPLOYMENTS >= 2, LABRRAM_B2IMC_SOURCES_Z >= 0 and 0 <= LABRRAM_B2IMC_SOURCES_LEFT < 1; got {n_dep}, {z_error:g}, {left:g}")
    n_train = env_int("LABRRAM_B2IMC_TRAIN", 30000)
    net, _, _ = trained("hardware-aware", n_train)
    X, y = images("test", env_int("LABRRAM_B2IMC_TEST", 600))
    X_cal = images("train", n_train + N_CAL_INPUTS)[0][n_train:]
    sw_cal = SoftwareReference.measure(net, X_cal, 64, 0)
    last = len(net.lambdas) - 1
    where = {"every layer": list(range(last + 1)), "hidden layers only": list(range(last)), "output layer only": [last]}
    cases = [("none (the sampling floor)", [], 0.0, 0.0, "zero")]
    cases += [(f"probability error, {w}", layers, z_error, 0.0, "zero") for w, layers in where.items()]
    cases += [(f"probability error + weights left out, {w}", layers, z_error, left, "zero") for w, layers in where.items()]
    cases += [(f"probability error + weights left out at their mean, {w}", where[w], z_error, left, "mean") for w in ("every layer", "hidden layers only")]
    rows = []
    t0 = time.perf_counter()
    for name, layers, z, lo, left_out in cases:
        acc = np.array([deployment(net, layers, z, lo, 1000 + d, X, y, X_cal, sw_cal, left_out) for d in range(n_dep)])
        s_c, s_u = acc.std(axis=0, ddof=1)
        rows.append([name, f"{acc[:, 1].mean():.1f}", f"{acc[:, 0].mean():.1f}", f"{s_u:.2f}", f"{s_c:.2f}", f"{s_u / s_c:.2f}" if s_c > 0 else "-"])
        print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    table(
        f"sources of the deployment spread, in software: the Fashion-MNIST hardware-aware network, {n_dep} deployments, "
        f"{M} networks each on {len(X)} test images; probability error s = {z_error:g} in probit units, "
        f"{100 * left:g} % of the weights left out (read 0, or at their mean); correction from {N_CAL_READS} draws and {N_CAL_INPUTS} inputs",
        ["error put in", "accuracy, no correction", "accuracy, corrected", "spread, no correction", "spread, corrected", "ratio"],
        rows,
    )
    print(f"(total {time.perf_counter() - t0:.0f} s; {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
