"""Gaussian weight posteriors → devices programmed once each (Bonnet et al. 2023, Methods).

A Bayesian network's weight ``w ~ N(mu, sigma)`` (weight units) is realized in hardware by
devices that are each SET once under a chosen condition: device randomness does the sampling.

1. **Conditions.** One SET at condition ``k`` (a gate voltage for 1T1R ReRAM) gives
   ``G ~ N(m_k, s_k)`` over the population (cycle-to-cycle and device-to-device spread
   together); :class:`Conditions` is that calibrated table.
2. **Pairs.** Each weight sample is ``(G_a − G_b)/γ`` of two devices programmed
   independently, so the pair ``(a, b)`` gives ``N(m_a − m_b, sqrt(s_a² + s_b²))``: the 1-D curve
   of single-device conditions becomes a 2-D domain of achievable (mean, spread) pairs
   (:class:`PairDomain`; its :meth:`~PairDomain.envelope` is what the technological loss of
   training keeps posteriors inside).
3. **Scale.** ``γ`` (S per weight unit, one per layer) is chosen by a grid search minimizing the
   summed KL divergence of the layer's posteriors to their nearest achievable pairs.
4. **Nearest.** Every weight takes the pair nearest to ``N(γ mu, γ sigma)`` in
   ``KL(wanted || achieved)``.
5. **Copies.** ``M`` copies of the whole network are programmed, each device once; copy ``m``
   read back is the ``m``-th sample of the network (:class:`CopyPlacement`).

Weights use the augmented convention of :mod:`labrram.nn`: a layer with ``n_in`` inputs and
``n_out`` outputs is an ``(n_in + 1, n_out)`` matrix whose last row is the bias, so on the
array the bias is one more row driven at the read voltage. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from labrram.devices.reram import ReRAMModel
from labrram.protocols.single_shot import OneShotSettings, condition_table, kl_normal

from .copies import copy_weights, max_copies
from .differential import MappedLayer, _frozen
from .placement import Placement, PlacementError, place

__all__ = [
    "Conditions",
    "CopyPlacement",
    "PairDomain",
    "PosteriorLayer",
    "PosteriorMapping",
    "max_copies",
    "copy_weights",
    "place_copies",
]


def _vector(name: str, values: Any) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 values, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has values that are not finite")
    return a


@dataclass(frozen=True, eq=False)
class Conditions:
    """What one device SET once under each programming condition gives.

    Attributes
    ----------
    param : ndarray (K,)
        The condition's programming parameter (the SET gate voltage for 1T1R ReRAM, V).
    mu, sigma : ndarray (K,)
        Mean and spread of the conductance over the device population, S.
    """

    param: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray

    def __post_init__(self) -> None:
        p, m, s = (_vector(n, getattr(self, n)) for n in ("param", "mu", "sigma"))
        if not (p.size == m.size == s.size):
            raise ValueError(f"param, mu and sigma must have the same length, got {p.size}, {m.size}, {s.size}")
        if np.any(s <= 0):
            raise ValueError("every condition's sigma must be > 0 S")
        for n, a in (("param", p), ("mu", m), ("sigma", s)):
            object.__setattr__(self, n, _frozen(a))

    @classmethod
    def from_reram(
        cls,
        model: ReRAMModel,
        settings: OneShotSettings = OneShotSettings(),
        grid: int = 161,
        read_delay: float = 0.0,
    ) -> "Conditions":
        """The stochastic-SET conditions of a calibrated ReRAM model.

        ``grid`` gate voltages evenly spaced over the settings' gate range (161 points share
        the gates of the protocol's own 801-point table, so the protocol programs exactly the
        chosen conditions). ``read_delay`` (s) shifts and widens each condition by the
        calibrated relaxation at that delay after programming.
        """
        if read_delay < 0 or not np.isfinite(read_delay):
            raise ValueError(f"read_delay must be a finite time >= 0 s, got {read_delay!r}")
        gates, m, s = condition_table(model, settings, grid)
        ln = np.log1p(read_delay / model.relax_tau)
        return cls(gates, m + model.relax_mean * ln, np.sqrt(s**2 + (model.relax_sigma * ln) ** 2))

    def pairs(self, stride: int = 1) -> "PairDomain":
        """Every ordered pair ``(a, b)`` of conditions (every ``stride``-th condition)."""
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        k = np.arange(0, self.mu.size, stride)
        a, b = (g.ravel() for g in np.meshgrid(k, k, indexing="ij"))
        return PairDomain(self, a, b)


@dataclass(frozen=True, eq=False)
class PairDomain:
    """Achievable weight-sample distributions ``G_a − G_b`` of two devices, in S.

    Attributes
    ----------
    conditions : Conditions
    a, b : ndarray of int
        Condition index of the positive and the negative device of every pair.
    mu, sigma : ndarray
        Mean ``m_a − m_b`` and spread ``sqrt(s_a² + s_b²)`` of every pair, S.
    """

    conditions: Conditions
    a: np.ndarray
    b: np.ndarray
    mu: np.ndarray = field(init=False)
    sigma: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        c = self.conditions
        object.__setattr__(self, "mu", _frozen(c.mu[self.a] - c.mu[self.b]))
        object.__setattr__(self, "sigma", _frozen(np.hypot(c.sigma[self.a], c.sigma[self.b])))

    @property
    def mu_max(self) -> float:
        """Largest achievable |mean|, S."""
        return float(np.max(np.abs(self.mu)))

    def envelope(self, gamma: float, bins: int = 129) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The domain in weight units at scale ``gamma`` (S per weight unit), for the
        technological loss: ``(mu_grid, sigma_lo, sigma_hi)`` with ``mu_grid`` uniform and
        symmetric over ``±mu_max/gamma``; at each mean the achievable spread lies in
        ``[sigma_lo, sigma_hi]`` (bin-wise extremes of the pairs, empty bins interpolated)."""
        if not (np.isfinite(gamma) and gamma > 0):
            raise ValueError(f"gamma must be a positive finite scale (S per weight unit), got {gamma!r}")
        if bins < 3:
            raise ValueError(f"bins must be >= 3, got {bins}")
        edges = np.linspace(-self.mu_max, self.mu_max, bins + 1)
        idx = np.clip(np.digitize(self.mu, edges) - 1, 0, bins - 1)
        lo = np.full(bins, np.inf)
        hi = np.full(bins, -np.inf)
        np.minimum.at(lo, idx, self.sigma)
        np.maximum.at(hi, idx, self.sigma)
        centers = 0.5 * (edges[:-1] + edges[1:])
        ok = np.isfinite(lo)
        lo = np.interp(centers, centers[ok], lo[ok])
        hi = np.interp(centers, centers[ok], hi[ok])
        return centers / gamma, lo / gamma, hi / gamma

    def nearest(self, mu: Any, sigma: Any, chunk: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
        """Index of the pair nearest to each wanted ``N(mu, sigma)`` (S) in
        ``KL(wanted || achieved)``, and that divergence."""
        mu = np.asarray(mu, dtype=float).ravel()
        sigma = np.asarray(sigma, dtype=float).ravel()
        best = np.empty(mu.size, dtype=np.int64)
        kl = np.empty(mu.size)
        step = max(1, chunk // self.mu.size)
        for s in range(0, mu.size, step):
            d = kl_normal(mu[s : s + step, None], sigma[s : s + step, None], self.mu[None], self.sigma[None])
            best[s : s + step] = np.argmin(d, axis=1)
            kl[s : s + step] = d[np.arange(d.shape[0]), best[s : s + step]]
        return best, kl


@dataclass(frozen=True, eq=False)
class PosteriorLayer:
    """One layer's posterior mapped onto device pairs.

    Attributes
    ----------
    mu, sigma : ndarray (n_in + 1, n_out)
        The wanted posterior, weight units.
    gamma : float
        Scale, S per weight unit.
    cond_a, cond_b : ndarray of int (n_in + 1, n_out)
        Condition index of the positive and negative device of every weight.
    achieved_mu, achieved_sigma : ndarray (n_in + 1, n_out)
        The distribution the pair realizes, weight units.
    kl : ndarray (n_in + 1, n_out)
        ``KL(wanted || achieved)`` of every weight.
    """

    mu: np.ndarray
    sigma: np.ndarray
    gamma: float
    cond_a: np.ndarray
    cond_b: np.ndarray
    achieved_mu: np.ndarray
    achieved_sigma: np.ndarray
    kl: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.mu.shape  # type: ignore[return-value]

    def device_targets(self, conditions: Conditions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(mu_plus, sigma_plus, mu_minus, sigma_minus)`` of the two devices of every weight, S."""
        c = conditions
        return c.mu[self.cond_a], c.sigma[self.cond_a], c.mu[self.cond_b], c.sigma[self.cond_b]

    def summary(self) -> dict[str, float]:
        """Scale and how well the pairs match the posterior."""
        rel = np.abs(self.achieved_sigma - self.sigma) / self.sigma
        return {
            "gamma_S": float(self.gamma),
            "weights": int(self.mu.size),
            "kl_mean": float(np.mean(self.kl)),
            "kl_median": float(np.median(self.kl)),
            "sigma_rel_error_median": float(np.median(rel)),
            "mu_abs_error_median": float(np.median(np.abs(self.achieved_mu - self.mu))),
        }


def _posterior(i: int, mu: Any, sigma: Any) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(mu, dtype=float)
    s = np.asarray(sigma, dtype=float)
    if m.ndim != 2 or m.shape != s.shape:
        raise ValueError(f"layer {i}: mu and sigma must be 2-D arrays of one shape, got {m.shape} and {s.shape}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(s))):
        raise ValueError(f"layer {i}: the posterior has values that are not finite")
    if np.any(s <= 0):
        raise ValueError(f"layer {i}: every posterior sigma must be > 0")
    return m, s


@dataclass(frozen=True)
class PosteriorMapping:
    """Map Gaussian posteriors onto pairs of once-programmed devices (module docstring).

    Parameters
    ----------
    conditions : Conditions
        The calibrated one-SET conditions.
    gammas : int
        Points of the per-layer scale search (log-spaced, then refined around the best).
    search_stride : int
        Use every ``search_stride``-th condition during the scale search (the final nearest
        pair is chosen among all of them).
    """

    conditions: Conditions
    gammas: int = 48
    search_stride: int = 4

    def __post_init__(self) -> None:
        if self.gammas < 4:
            raise ValueError(f"gammas must be >= 4, got {self.gammas}")
        if self.search_stride < 1:
            raise ValueError(f"search_stride must be >= 1, got {self.search_stride}")

    @property
    def domain(self) -> PairDomain:
        return self.conditions.pairs()

    def scale_for(self, mu: Any, sigma: Any) -> float:
        """The scale (S per weight unit) minimizing the summed KL divergence of the posterior
        ``(mu, sigma)`` (weight units) to its nearest achievable pairs."""
        m, s = _posterior(0, mu, sigma)
        coarse = self.conditions.pairs(self.search_stride)
        ref = coarse.mu_max / max(float(np.max(np.abs(m) + 2 * s)), 1e-12)
        sub = np.random.default_rng(0).choice(m.size, size=min(m.size, 2000), replace=False)
        m, s = m.ravel()[sub], s.ravel()[sub]

        def cost(g: float) -> float:
            return float(np.sum(coarse.nearest(g * m, g * s)[1]))

        grid = ref * np.logspace(-1.5, 0.5, self.gammas)
        costs = np.array([cost(g) for g in grid])
        k = int(np.argmin(costs))
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
        fine = np.geomspace(lo, hi, 17)
        return float(fine[int(np.argmin([cost(g) for g in fine]))])

    def map(self, posteriors: Sequence[tuple[Any, Any]], gammas: Sequence[float] | None = None) -> list[PosteriorLayer]:
        """Map every layer's ``(mu, sigma)`` (augmented matrices, weight units); ``gammas``
        fixes the scales instead of searching them."""
        if len(posteriors) == 0:
            raise ValueError("no layers to map")
        if gammas is not None and len(gammas) != len(posteriors):
            raise ValueError(f"{len(gammas)} scale(s) for {len(posteriors)} layer(s)")
        dom = self.domain
        out = []
        for i, (mu, sigma) in enumerate(posteriors):
            m, s = _posterior(i, mu, sigma)
            g = self.scale_for(m, s) if gammas is None else float(gammas[i])
            if not (np.isfinite(g) and g > 0):
                raise ValueError(f"layer {i}: scale must be a positive finite number, got {g!r}")
            k, kl = dom.nearest(g * m, g * s)
            out.append(
                PosteriorLayer(
                    mu=_frozen(m),
                    sigma=_frozen(s),
                    gamma=g,
                    cond_a=_frozen(dom.a[k].reshape(m.shape)),
                    cond_b=_frozen(dom.b[k].reshape(m.shape)),
                    achieved_mu=_frozen(dom.mu[k].reshape(m.shape) / g),
                    achieved_sigma=_frozen(dom.sigma[k].reshape(m.shape) / g),
                    kl=_frozen(kl.reshape(m.shape)),
                )
            )
        return out


# --- M copies on arrays ----------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CopyPlacement:
    """``copies`` copies of a mapped network laid onto arrays; copy ``m`` of layer ``l`` is the
    placement's layer ``(l, m)``.

    Attributes
    ----------
    placement : Placement
    layers : list of PosteriorLayer
    conditions : Conditions
    copies : int
    """

    placement: Placement
    layers: list[PosteriorLayer]
    conditions: Conditions
    copies: int

    @property
    def n_arrays(self) -> int:
        return self.placement.n_arrays

    @property
    def n_devices(self) -> int:
        return self.placement.n_devices

    def targets(self, array_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Wanted ``(mu, sigma)`` of every device of one array (S, NaN where no device sits):
        the input of the stochastic-SET protocol."""
        mus: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}
        sds: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}
        for li, lay in enumerate(self.layers):
            mp, sp, mm, sm = lay.device_targets(self.conditions)
            for m in range(self.copies):
                mus[(li, m)] = (mp, mm)
                sds[(li, m)] = (sp, sm)
        pl = self.placement
        return pl.layout(array_index, mus), pl.layout(array_index, sds)

    def weights(self, conductances: Mapping[int, Any]) -> list[np.ndarray]:
        """The sampled networks read back: one ``(copies, n_in + 1, n_out)`` array per layer
        from measured conductances ``{array index: (rows, cols) map, S}``."""
        return copy_weights(self.placement, len(self.layers), self.copies, conductances)

    def summary(self) -> dict[str, Any]:
        return {
            "copies": self.copies,
            "devices": self.n_devices,
            "arrays": self.n_arrays,
            "utilization": [self.placement.utilization(i) for i in range(self.n_arrays)],
            "layers": [lay.summary() for lay in self.layers],
        }


def _copy_layers(layers: Sequence[PosteriorLayer], conditions: Conditions, copies: int) -> dict[Hashable, MappedLayer]:
    lo, hi = float(np.min(conditions.mu)), float(np.max(conditions.mu))
    out: dict[Hashable, MappedLayer] = {}
    for li, lay in enumerate(layers):
        mp, _, mm, _ = lay.device_targets(conditions)
        mapped = MappedLayer(
            g_plus=_frozen(mp),
            g_minus=_frozen(mm),
            gamma=_frozen(np.full(lay.shape[1], lay.gamma)),
            g_min=lo,
            g_max=hi,
            scale="layer",
            clip=None,
            clipped=0,
            target_weights=lay.achieved_mu,
        )
        for m in range(copies):
            out[(li, m)] = mapped
    return out


def place_copies(
    layers: Sequence[PosteriorLayer],
    conditions: Conditions,
    copies: int,
    array_shape: tuple[int, int] = (128, 128),
    max_arrays: int | None = None,
) -> CopyPlacement:
    """Lay ``copies`` copies of the mapped network onto arrays (``place`` of
    :mod:`labrram.mapping.placement`); :class:`PlacementError` if they do not fit."""
    if not isinstance(copies, (int, np.integer)) or copies < 1:
        raise ValueError(f"copies must be a positive integer, got {copies!r}")
    if not layers:
        raise PlacementError("no layers to place")
    pl = place(_copy_layers(layers, conditions, int(copies)), array_shape, max_arrays)
    return CopyPlacement(pl, list(layers), conditions, int(copies))
