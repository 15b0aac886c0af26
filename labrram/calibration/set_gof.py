"""Does the Gaussian SET model fit? A goodness-of-fit test per gate level, and the measured
quantile table that replaces the Gaussian when it does not.

Test
----
At each gate level the characterization holds ``n_cycles`` SETs of ``n_devices`` devices.
Each device's mean over its cycles is removed (device-to-device spread is a separate law),
the residuals are pooled over the devices and divided by their root mean square,
and the Anderson–Darling statistic ``A²`` measures their distance from a standard normal.

The residuals are not independent draws with known parameters (each device's residuals sum to
zero, the scale is estimated), so the textbook ``A²`` tables do not apply. The reference
distribution is instead simulated for the very design: the same statistic of
``n_cycles x n_devices`` normal draws, :data:`NULL_REPLICATES` times (the statistic does not
depend on the mean, the spread or the device offsets of a Gaussian model, so this null is
exact up to Monte-Carlo error). The p-value of a level is the fraction of the null at least
as large as the observed statistic. The Gaussian is rejected when the smallest p-value falls
below ``alpha / n_levels`` (Bonferroni: the chance of a false rejection over all levels stays
at most ``alpha``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from scipy import special

from ..devices.set_families import QuantileTable, default_probabilities

#: simulated designs of the reference distribution
NULL_REPLICATES = 2000
#: default family-wise false-rejection rate of the test
ALPHA = 0.01


def anderson_darling(z: np.ndarray) -> np.ndarray:
    """Anderson–Darling statistic of standardized samples against N(0, 1), along the last axis."""
    z = np.sort(np.asarray(z, dtype=float), axis=-1)
    n = z.shape[-1]
    logcdf = special.log_ndtr(z)
    logsf = special.log_ndtr(-z[..., ::-1])
    i = np.arange(1, n + 1)
    return -n - np.sum((2 * i - 1) * (logcdf + logsf), axis=-1) / n


def residuals(g: np.ndarray) -> np.ndarray:
    """Pooled standardized cycle-to-cycle residuals of ``g`` (..., cycle, device): each device's
    mean removed, divided by the pooled standard deviation; returns (..., cycle * device)."""
    r = g - g.mean(axis=-2, keepdims=True)
    s = np.sqrt(np.mean(r**2, axis=(-2, -1), keepdims=True))  # the residuals' own spread: unit variance
    return (r / s).reshape(g.shape[:-2] + (g.shape[-2] * g.shape[-1],))


@lru_cache(maxsize=16)
def null_statistics(n_cycles: int, n_devices: int, replicates: int = NULL_REPLICATES, seed: int = 0) -> np.ndarray:
    """Sorted ``A²`` of the :func:`residuals` of Gaussian data of this design (the reference)."""
    rng = np.random.default_rng(np.random.SeedSequence([0x60F, n_cycles, n_devices, seed]))
    out = np.empty(replicates)
    step = max(1, 4_000_000 // (n_cycles * n_devices))
    for s in range(0, replicates, step):
        k = min(step, replicates - s)
        out[s : s + k] = anderson_darling(residuals(rng.standard_normal((k, n_cycles, n_devices))))
    out.sort()
    out.flags.writeable = False
    return out


def gaussian_test(g_set: np.ndarray, alpha: float = ALPHA, replicates: int = NULL_REPLICATES) -> dict[str, Any]:
    """The test of the module docstring on SET reads ``g_set`` (cycle, level, device), S.

    Returns
    -------
    dict
        ``ad_statistic_per_level`` (``A²``), ``ad_pvalue_per_level`` (Monte-Carlo, at least
        ``1 / (replicates + 1)``), ``ad_critical_value`` (the null's ``1 - alpha / levels``
        quantile), ``alpha``, ``rejected_levels`` (indices), ``gaussian_rejected`` (bool),
        ``null_replicates``.
    """
    g = np.asarray(g_set, dtype=float)
    if g.ndim != 3 or g.shape[0] < 2 or g.shape[2] < 2:
        raise ValueError("the Gaussian test needs g_set of shape (cycle >= 2, level, device >= 2)")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    n_c, n_l, n_d = g.shape
    null = null_statistics(n_c, n_d, replicates)
    stat = anderson_darling(residuals(np.moveaxis(g, 1, 0)))
    above = null.size - np.searchsorted(null, stat, side="left")
    p = (1 + above) / (null.size + 1)
    level_alpha = alpha / n_l
    rejected = np.flatnonzero(p < level_alpha)
    return {
        "ad_statistic_per_level": [float(x) for x in stat],
        "ad_pvalue_per_level": [float(x) for x in p],
        "ad_critical_value": float(np.quantile(null, 1 - level_alpha)),
        "alpha": float(alpha),
        "null_replicates": int(null.size),
        "rejected_levels": [int(i) for i in rejected],
        "gaussian_rejected": bool(rejected.size),
    }


def quantile_table(
    g_set: np.ndarray,
    gates: np.ndarray,
    read_rel: float,
    shift: float,
    shift_var: float,
    probabilities: np.ndarray | None = None,
) -> QuantileTable:
    """Quantiles of the SET conductance over the device population at each gate level.

    The pooled reads of a level (every cycle of every device) carry the read noise (relative
    size ``read_rel``) and the relaxation of the read delay (mean ``shift``, variance
    ``shift_var``, S and S²), which the Gaussian laws remove: the quantiles are moved by
    ``-shift`` and their distance from the level's median shrunk by
    ``sqrt(1 - (read variance + shift_var) / variance)`` so the table describes the device
    itself, as the laws do.
    """
    g = np.asarray(g_set, dtype=float)
    p = default_probabilities() if probabilities is None else np.asarray(probabilities, dtype=float)
    pooled = np.moveaxis(g, 1, 0).reshape(g.shape[1], -1)  # (level, sample)
    q = np.quantile(pooled, p, axis=1).T  # (level, probability)
    med = np.median(pooled, axis=1)
    var = np.var(pooled, axis=1, ddof=1)
    noise = np.mean((read_rel * pooled) ** 2, axis=1) + shift_var
    k = np.sqrt(np.clip(1 - noise / var, 0.0, 1.0))
    q = med[:, None] - shift + k[:, None] * (q - med[:, None])
    return QuantileTable(np.asarray(gates, dtype=float), p, np.maximum.accumulate(q, axis=1))
