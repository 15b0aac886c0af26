"""Shapes of the ReRAM SET conductance distribution, and tables of its measured quantiles.

:class:`~labrram.devices.reram.ReRAMModel` describes one SET by a median law and a spread law;
``set_family`` says what shape the cycle-to-cycle distribution has around each device's
median ``mu`` with standard deviation ``sigma`` (all families keep that median and that
standard deviation, only the shape changes):

``"gaussian"``
    ``G = mu + sigma Z``, ``Z ~ N(0, 1)``.
``"lognormal"``
    ``G = mu exp(s N)``, ``N ~ N(0, 1)``, with ``s`` solving ``e^{s²}(e^{s²} − 1) = (sigma/mu)²``:
    skewed to high conductance where the relative spread is large (low compliance).
``"skewed"``
    a skew-normal of shape :data:`SKEW_ALPHA`, shifted and scaled to median ``mu`` and standard
    deviation ``sigma`` (skewness ≈ 0.78 at every level).
``"heavy"``
    a Student-t of :data:`HEAVY_DOF` degrees of freedom scaled to standard deviation ``sigma``
    (excess kurtosis ``6 / (nu − 4)`` = 6).
``"empirical"``
    the shape of a :class:`QuantileTable` of measured conductance quantiles per gate voltage,
    interpolated between its gates (each row standardized to median 0, standard deviation 1).

numpy only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FAMILIES = ("gaussian", "lognormal", "skewed", "heavy", "empirical")
"""Names of the SET distribution families (module docstring)."""
SKEW_ALPHA = 4.0
"""Shape parameter of the ``"skewed"`` family's skew-normal."""
HEAVY_DOF = 5.0
"""Degrees of freedom of the ``"heavy"`` family's Student-t."""

_erf = np.vectorize(math.erf, otypes=[float])


def normal_cdf(z: Any) -> np.ndarray:
    """Standard normal cumulative distribution (numpy only)."""
    return 0.5 * (1.0 + _erf(np.asarray(z, dtype=float) / math.sqrt(2.0)))


def default_probabilities(n: int = 67, z_max: float = 3.3) -> np.ndarray:
    """Probabilities at which a calibration stores quantiles: ``Phi(z)`` for ``n`` values of
    ``z`` evenly spaced over ``[-z_max, z_max]`` (dense in the tails, where a shape differs)."""
    return normal_cdf(np.linspace(-z_max, z_max, n))


def _skewnormal_standard() -> tuple[float, float, float]:
    """(median, mean, std) of the standard skew-normal of shape :data:`SKEW_ALPHA`."""
    a = SKEW_ALPHA
    delta = a / math.sqrt(1 + a * a)
    mean = delta * math.sqrt(2 / math.pi)
    std = math.sqrt(1 - 2 * delta * delta / math.pi)
    x = np.linspace(-6.0, 8.0, 28001)
    pdf = 2 * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) * normal_cdf(a * x)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(x))])
    median = float(np.interp(0.5, cdf / cdf[-1], x))
    return median, mean, std


_SKEW = _skewnormal_standard()


def lognormal_s(rel: Any) -> np.ndarray:
    """Log-spread ``s`` of the log-normal whose median is 1 and standard deviation ``rel``."""
    rel = np.asarray(rel, dtype=float)
    return np.sqrt(np.log((1 + np.sqrt(1 + 4 * rel**2)) / 2))


def standard_draws(family: str, rel: np.ndarray, rng: np.random.Generator, gate: Any = None, table: "QuantileTable | None" = None) -> np.ndarray:
    """Draws ``Z`` of median 0 and standard deviation 1 in the shape of ``family``, one per
    element of ``rel`` (the relative spread ``sigma / mu`` of each, which only the log-normal
    reads); ``gate`` (V) and ``table`` are the empirical family's."""
    rel = np.asarray(rel, dtype=float)
    shape = rel.shape
    if family == "gaussian":
        return rng.standard_normal(shape)
    if family == "lognormal":
        r = np.maximum(rel, 1e-12)
        return np.expm1(lognormal_s(r) * rng.standard_normal(shape)) / r
    if family == "skewed":
        median, _, std = _SKEW
        delta = SKEW_ALPHA / math.sqrt(1 + SKEW_ALPHA**2)
        x = delta * np.abs(rng.standard_normal(shape)) + math.sqrt(1 - delta**2) * rng.standard_normal(shape)
        return (x - median) / std
    if family == "heavy":
        return rng.standard_t(HEAVY_DOF, shape) * math.sqrt((HEAVY_DOF - 2) / HEAVY_DOF)
    if family == "empirical":
        if table is None:
            raise ValueError("the empirical SET family needs a quantile table")
        return table.draw_standardized(np.broadcast_to(np.asarray(gate, dtype=float), shape), rng)
    raise ValueError(f"unknown SET distribution family {family!r}; known: {list(FAMILIES)}")


def standard_mean(family: str, rel: Any) -> np.ndarray:
    """Mean of the standardized (median 0, standard deviation 1) shape of a parametric family."""
    rel = np.asarray(rel, dtype=float)
    if family == "gaussian" or family == "heavy":
        return np.zeros_like(rel)
    if family == "lognormal":
        r = np.maximum(rel, 1e-12)
        return np.expm1(lognormal_s(r) ** 2 / 2) / r
    if family == "skewed":
        median, mean, std = _SKEW
        return np.full_like(rel, (mean - median) / std)
    raise ValueError(f"family {family!r} has no closed-form mean")


def _vector(name: str, v: Any, where: str) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"{where}: {name} must be a list of at least 2 numbers")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{where}: {name} has values that are not finite")
    if np.any(np.diff(a) <= 0):
        raise ValueError(f"{where}: {name} must be strictly increasing")
    return a


@dataclass(frozen=True, eq=False)
class QuantileTable:
    """Quantiles of the conductance after one SET, at a few gate voltages.

    The distribution at each gate is the one whose quantile function is piecewise linear
    through the stored points, flat beyond the first and last probability; its moments
    (:meth:`moments`) and its draws (:meth:`draw_standardized`) are exact for that
    distribution.

    Attributes
    ----------
    gates : ndarray (K,)
        Gate (word-line) voltages, V, increasing.
    probabilities : ndarray (P,)
        Probabilities in (0, 1), increasing.
    quantiles : ndarray (K, P)
        Conductance quantiles, S, non-decreasing along each row.
    """

    gates: np.ndarray
    probabilities: np.ndarray
    quantiles: np.ndarray

    def __post_init__(self) -> None:
        where = "quantile table"
        g = _vector("gates", self.gates, where)
        p = _vector("probabilities", self.probabilities, where)
        if p[0] <= 0 or p[-1] >= 1:
            raise ValueError(f"{where}: probabilities must lie strictly between 0 and 1")
        q = np.asarray(self.quantiles, dtype=float)
        if q.shape != (g.size, p.size):
            raise ValueError(f"{where}: quantiles must be one row of {p.size} per gate ({g.size} rows), got shape {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"{where}: quantiles have values that are not finite")
        if np.any(np.diff(q, axis=1) < 0):
            raise ValueError(f"{where}: each gate's quantiles must not decrease with the probability")
        if np.any(q[:, -1] <= q[:, 0]):
            raise ValueError(f"{where}: each gate's quantiles must spread (last above first)")
        for name, a in (("gates", g), ("probabilities", p), ("quantiles", q)):
            a = a.copy()
            a.flags.writeable = False
            object.__setattr__(self, name, a)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantileTable):
            return NotImplemented
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in ("gates", "probabilities", "quantiles"))

    def __hash__(self) -> int:
        return hash((self.gates.tobytes(), self.probabilities.tobytes(), self.quantiles.tobytes()))

    # --- the distribution of each row -------------------------------------------------------
    def row_moments(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(median, mean, std) of quantile rows ``q`` (..., P) at :attr:`probabilities`."""
        p = self.probabilities
        dp = np.diff(p)
        a, b = q[..., :-1], q[..., 1:]
        mean = p[0] * q[..., 0] + (1 - p[-1]) * q[..., -1] + np.sum(dp * (a + b) / 2, axis=-1)
        m2 = p[0] * q[..., 0] ** 2 + (1 - p[-1]) * q[..., -1] ** 2 + np.sum(dp * (a * a + a * b + b * b) / 3, axis=-1)
        median = np.apply_along_axis(lambda row: np.interp(0.5, p, row), -1, q)
        return median, mean, np.sqrt(np.maximum(m2 - mean**2, 0.0))

    def moments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(median, mean, std) of each gate's distribution, S."""
        return self.row_moments(self.quantiles)

    def normalized(self, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Rows ``(q_k - center_k) / scale_k`` (K, P)."""
        return (self.quantiles - np.asarray(center, float)[:, None]) / np.asarray(scale, float)[:, None]

    def interpolate(self, rows: np.ndarray, gate: Any) -> np.ndarray:
        """Rows (K, P) interpolated linearly in the gate voltage, held beyond the first and
        last gate; returns (..., P) for gates of any shape (V)."""
        gate = np.asarray(gate, dtype=float)
        g = self.gates
        x = np.clip(gate, g[0], g[-1])
        k = np.clip(np.searchsorted(g, x, side="right") - 1, 0, g.size - 2)
        w = ((x - g[k]) / (g[k + 1] - g[k]))[..., None]
        return (1 - w) * rows[k] + w * rows[k + 1]

    def standardized_rows(self) -> np.ndarray:
        """Each row standardized to median 0 and standard deviation 1 (its shape), (K, P)."""
        median, _, std = self.moments()
        return self.normalized(median, std)

    def draw_standardized(self, gate: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One draw per element of ``gate`` (V) of the table's shape there (median 0,
        standard deviation 1 at the stored gates; interpolated shapes between them)."""
        z = self.interpolate(self.standardized_rows(), gate)
        u = rng.random(np.shape(gate))
        p = self.probabilities
        j = np.clip(np.searchsorted(p, u, side="right") - 1, 0, p.size - 2)
        w = np.clip((u - p[j]) / (p[j + 1] - p[j]), 0.0, 1.0)
        zj = np.take_along_axis(z, j[..., None], -1)[..., 0]
        zk = np.take_along_axis(z, j[..., None] + 1, -1)[..., 0]
        return (1 - w) * zj + w * zk

    # --- files -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """``{"gates": [V], "probabilities": [...], "quantiles": [[S per probability] per gate]}``."""
        return {"gates": self.gates.tolist(), "probabilities": self.probabilities.tolist(), "quantiles": self.quantiles.tolist()}

    @classmethod
    def from_dict(cls, data: Any, where: str = "quantile table") -> "QuantileTable":
        """Validate :meth:`to_dict`'s form; errors name ``where`` and the key."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: must be an object with gates, probabilities and quantiles")
        unknown = sorted(set(data) - {"gates", "probabilities", "quantiles"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; expected gates, probabilities, quantiles")
        missing = [k for k in ("gates", "probabilities", "quantiles") if k not in data]
        if missing:
            raise ValueError(f"{where}: missing {missing}")
        try:
            q = np.asarray(data["quantiles"], dtype=float)
            g = np.asarray(data["gates"], dtype=float)
            p = np.asarray(data["probabilities"], dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: gates, probabilities and quantiles must be numbers (quantiles a list of rows)") from None
        try:
            return cls(g, p, q)
        except ValueError as exc:
            raise ValueError(str(exc).replace("quantile table", where, 1)) from None

    @classmethod
    def load(cls, path: str | Path) -> "QuantileTable":
        """Read a table from a JSON file: :meth:`to_dict`'s object, or a labrram calibration
        file whose model carries one (``model.set_table``)."""
        from ..textfile import check_depth, read_user_text

        path = Path(path)
        text = read_user_text(path, "quantile table", "JSON", ValueError)  # a regular file of bounded size, UTF-8
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError(f"{path}: JSON nested too deeply for a quantile table") from None
        check_depth(data, str(path), ValueError)
        if isinstance(data, dict) and "labrram_calibration" in data:
            table = (data.get("model") or {}).get("set_table")
            if table is None:
                raise ValueError(f"{path}: a calibration file without a quantile table (model.set_table)")
            return cls.from_dict(table, f"{path}: model.set_table")
        return cls.from_dict(data, str(path))
