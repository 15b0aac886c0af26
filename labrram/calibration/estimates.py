"""Fitted parameters with uncertainties, and the regressions the fits share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A fitted value with its 95 % confidence interval (bootstrap, profile likelihood or exact).

    Attributes
    ----------
    value : float
        The fitted value, in ``unit``.
    low, high : float
        The 95 % interval's bounds, in ``unit`` (the calibration file stores them as
        ``"ci95": [low, high]``).
    unit : str
        SI unit (``"S"``, ``"V"``, ``"s"``; ``"1"`` for a ratio).
    """

    value: float
    low: float
    high: float
    unit: str = ""

    @property
    def width(self) -> float:
        """``high - low``, in ``unit``."""
        return self.high - self.low

    @property
    def relative_width(self) -> float:
        """The interval's width over ``|value|`` (inf for a zero value)."""
        return self.width / abs(self.value) if self.value else float("inf")

    def to_dict(self) -> dict[str, object]:
        """``{"value": value, "ci95": [low, high], "unit": unit}``: the calibration file's form."""
        return {"value": self.value, "ci95": [self.low, self.high], "unit": self.unit}

    @classmethod
    def from_dict(cls, data: dict) -> "Estimate":
        """The estimate of its calibration-file form (:meth:`to_dict`).

        Parameters
        ----------
        data : dict
            ``{"value": ..., "ci95": [low, high], "unit": ...}``.
        """
        lo, hi = data["ci95"]
        return cls(float(data["value"]), float(lo), float(hi), str(data.get("unit", "")))


def linear_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> tuple[float, float, float]:
    """Weighted least squares ``y = slope * x + intercept``; returns (slope, intercept, R^2)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    w = np.ones_like(x) if w is None else np.asarray(w, float)
    if x.size < 2 or np.ptp(x) == 0:
        raise ValueError("a line needs at least two distinct x values")
    xm, ym = np.average(x, weights=w), np.average(y, weights=w)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = np.sum(w * (x - xm) * (y - ym)) / sxx
    intercept = ym - slope * xm
    ss_res = np.sum(w * (y - slope * x - intercept) ** 2)
    ss_tot = np.sum(w * (y - ym) ** 2)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return float(slope), float(intercept), float(r2)


def bootstrap(
    fit: Callable[[np.ndarray], dict[str, float]],
    n_units: int,
    n_boot: int = 200,
    seed: int = 0,
    strata: np.ndarray | None = None,
    bca: tuple[str, ...] = (),
    jackknife_groups: int = 40,
    full: dict[str, float] | None = None,
    jackknife: Callable[[np.ndarray], dict[str, float]] | None = None,
) -> dict[str, tuple[float, float]]:
    """95 % intervals of ``fit(indices)`` over resamples of the units (devices).

    ``fit`` receives an index array (a resample with replacement of ``range(n_units)``) and
    returns named values. With ``strata`` (one label per unit), every stratum is resampled
    within itself, so each keeps its size (a design that fixed how many devices each level
    has). Resamples whose fit fails are dropped (at most 10 % tolerated); a quantity that some
    resample leaves undetermined (NaN) gets a NaN interval.

    Parameters
    ----------
    fit : callable
        Index array -> named values.
    n_units : int
        Units (devices) to resample.
    n_boot : int
        Resamples.
    seed : int
        Seed of the resampling (and of the jackknife's groups).
    strata : ndarray, optional
        One label per unit; each stratum is resampled within itself.
    bca : tuple of str
        Names that get bias-corrected and accelerated intervals (BCa, Efron 1987): the
        percentiles are moved by the median bias ``z0`` (the fraction of resampled values below
        the full-sample value) and by the skewness of the estimator's influence (``a``, from a
        grouped delete-a-group jackknife), which makes the interval right to second order where
        a percentile interval of a skewed or biased statistic (a standard deviation, a
        noise-subtracted spread) sits low and narrow. The others get the 2.5 and 97.5
        percentiles of the resampled values.
    jackknife_groups : int
        Groups of units the jackknife deletes one at a time (each stratum is shared out over
        the groups); the units themselves when there are fewer.
    full : dict, optional
        The full-sample values (BCa's reference); ``fit(arange(n_units))`` by default.
    jackknife : callable, optional
        What the jackknife evaluates on its subsets; ``fit`` by default. Give it when ``fit``
        also resamples something else (a deterministic version of ``fit``).

    Returns
    -------
    dict
        Name -> (low, high).
    """
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    failures = 0
    groups = None
    if strata is not None:
        strata = np.asarray(strata)
        if strata.shape != (n_units,):
            raise ValueError(f"strata must give one label per unit ({n_units}), got shape {strata.shape}")
        groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    for _ in range(n_boot):
        if groups is None:
            idx = rng.integers(0, n_units, n_units)
        else:
            idx = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
        try:
            values = fit(idx)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            failures += 1
            continue
        for k, v in values.items():
            samples.setdefault(k, []).append(v)
    if failures > n_boot // 10:
        raise ValueError(f"bootstrap: {failures} of {n_boot} resamples failed to fit; too little data")
    out = {k: _percentiles(np.asarray(v, float), 0.025, 0.975) for k, v in samples.items()}
    names = [k for k in samples if k in bca]
    if not names:
        return out
    full = fit(np.arange(n_units)) if full is None else full
    jack = _grouped_jackknife(jackknife or fit, n_units, groups, jackknife_groups, np.random.default_rng(seed + 7919))
    for k in names:
        out[k] = _bca(np.asarray(samples[k], float), float(full.get(k, np.nan)), np.asarray([j.get(k, np.nan) for j in jack], float))
    return out


def _percentiles(v: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """Percentiles ``lo``, ``hi`` (fractions) of ``v``; NaN when a value is NaN (a resample
    that left the quantity undetermined)."""
    if v.size == 0 or np.any(np.isnan(v)):
        return float("nan"), float("nan")
    return float(np.quantile(v, lo)), float(np.quantile(v, hi))


def _grouped_jackknife(
    fit: Callable[[np.ndarray], dict[str, float]], n_units: int, strata_groups: list[np.ndarray] | None, n_groups: int, rng: np.random.Generator
) -> list[dict[str, float]]:
    """``fit`` with each of ``n_groups`` random groups of units left out in turn (a stratified
    design keeps every stratum in every group); failed fits are skipped."""
    strata_groups = [np.arange(n_units)] if strata_groups is None else strata_groups
    n_groups = max(2, min(n_groups, n_units))
    label = np.empty(n_units, int)
    offset = int(rng.integers(n_groups))
    for g in strata_groups:  # deal each stratum out over the groups, in a random order
        order = rng.permutation(g)
        label[order] = (np.arange(g.size) + offset) % n_groups
        offset += g.size
    out = []
    for j in range(n_groups):
        try:
            out.append(fit(np.flatnonzero(label != j)))
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            continue
    return out


def _bca(boot: np.ndarray, full: float, jack: np.ndarray) -> tuple[float, float]:
    """BCa 95 % interval from resampled values ``boot``, the full-sample value and the
    jackknife values (Efron & Tibshirani 1993, ch. 14); the percentile interval when the
    corrections are undefined (a NaN value, a degenerate resample distribution)."""
    from scipy.stats import norm

    if boot.size < 10 or np.any(np.isnan(boot)) or not np.isfinite(full) or np.ptp(boot) == 0:
        return _percentiles(boot, 0.025, 0.975)
    b = boot
    j = jack[np.isfinite(jack)]
    frac = (np.sum(b < full) + 0.5 * np.sum(b == full)) / b.size
    frac = float(np.clip(frac, 0.5 / b.size, 1 - 0.5 / b.size))
    z0 = float(norm.ppf(frac))
    a = 0.0
    if j.size >= 3:
        u = j.mean() - j
        den = 6.0 * np.sum(u**2) ** 1.5
        a = float(np.sum(u**3) / den) if den > 0 else 0.0
    bounds = []
    for alpha in (0.025, 0.975):
        z = norm.ppf(alpha)
        q = norm.cdf(z0 + (z0 + z) / (1.0 - a * (z0 + z)))
        bounds.append(float(np.quantile(b, float(np.clip(q, 0.0, 1.0)))))
    return bounds[0], bounds[1]
