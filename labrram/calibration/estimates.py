"""Fitted parameters with uncertainties, and the regressions the fits share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Estimate:
    """A fitted value with its 95 % confidence interval (bootstrap percentiles).

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
) -> dict[str, tuple[float, float]]:
    """Percentile 95 % intervals of ``fit(indices)`` over resamples of the units (devices).

    ``fit`` receives an index array (a resample with replacement of ``range(n_units)``) and
    returns named values. With ``strata`` (one label per unit), every stratum is resampled
    within itself, so each keeps its size (a design that fixed how many devices each level
    has). Resamples whose fit fails are dropped (at most 10 % tolerated).
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
    return {k: (float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))) for k, v in samples.items()}
