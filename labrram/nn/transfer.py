"""Ex-situ transfer of a trained network to programmed arrays, and inference through them.

* :func:`transfer_bayesian` — Dalgaty et al. 2021 / Bonnet et al. 2023: every Gaussian weight
  posterior becomes a pair of devices at the KL-nearest calibrated stochastic-SET condition
  (:mod:`labrram.mapping.posterior`), ``M`` copies of the network, each device SET once by
  :func:`labrram.protocols.single_shot.stochastic_set`.
* :func:`transfer_deterministic` — the ablation: fixed weights as differential pairs programmed
  open-loop by :func:`labrram.protocols.single_shot.single_shot`, in as many copies.

Either way the result reads its networks back through the instruments:
:meth:`Transfer.read_weights` measures every array in one batched read and returns the
``M`` sampled networks; :meth:`Transfer.mvm_probabilities` instead applies the inputs as row
voltages and senses the column currents, layer by layer. numpy only (no torch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from labrram.crossbar import Crossbar
from labrram.devices.reram import ReRAMModel
from labrram.mapping import (
    Conditions,
    CopyPlacement,
    DifferentialMapping,
    Placement,
    PosteriorMapping,
    copy_weights,
    max_copies,
    place,
    place_copies,
)
from labrram.protocols.results import ProgramResult, Progress
from labrram.protocols.engine import run_plan
from labrram.protocols.single_shot import OneShotSettings, SingleShot, StochasticSet, population_sigma

from .sampled import forward, softmax

__all__ = ["Transfer", "TransferSettings", "transfer_bayesian", "transfer_deterministic"]


@dataclass(frozen=True)
class TransferSettings:
    """How a network is laid onto the arrays and programmed.

    Parameters
    ----------
    copies : int or None
        Programmed copies of the network (``M``; each read-back copy is one sample). None:
        as many as fit on the arrays.
    grid : int
        Calibrated conditions (gate voltages) the mapping chooses from.
    read_delay : float
        Delay between programming and inference reads that the conditions account for
        (calibrated relaxation), s.
    protocol : OneShotSettings
        Pulse settings of the one-shot programming.
    screen : float or None
        Fault screening threshold of the read-back, in calibrated standard deviations
        (:class:`Transfer`); None: no screening.
    """

    copies: int | None = None
    grid: int = 161
    read_delay: float = 0.0
    protocol: OneShotSettings = field(default_factory=OneShotSettings)
    screen: float | None = 6.0

    def __post_init__(self) -> None:
        if self.screen is not None and not (np.isfinite(self.screen) and self.screen > 0):
            raise ValueError(f"screen must be a positive number of standard deviations or None, got {self.screen!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"copies": self.copies, "grid": self.grid, "read_delay": self.read_delay, "protocol": self.protocol.to_dict(), "screen": self.screen}


def _crossbars(crossbars: Crossbar | Sequence[Crossbar]) -> list[Crossbar]:
    xbs = [crossbars] if isinstance(crossbars, Crossbar) else list(crossbars)
    if not xbs:
        raise ValueError("no crossbar to program")
    shapes = {xb.shape for xb in xbs}
    if len(shapes) != 1:
        raise ValueError(f"the arrays must all have one shape, got {sorted(shapes)}")
    return xbs


def _shapes(layers: Sequence[Any]) -> list[tuple[int, int]]:
    shapes = [tuple(np.shape(w)) for w in layers]
    for i, s in enumerate(shapes):
        if len(s) != 2:
            raise ValueError(f"layer {i} must be an augmented (n_in + 1, n_out) matrix, got shape {s}")
    for i in range(1, len(shapes)):
        if shapes[i][0] != shapes[i - 1][1] + 1:
            raise ValueError(f"layer {i} takes {shapes[i][0] - 1} inputs but layer {i - 1} has {shapes[i - 1][1]} outputs")
    return shapes  # type: ignore[return-value]


def _copies(shapes: list[tuple[int, int]], xbs: list[Crossbar], copies: int | None) -> int:
    fit = max_copies(shapes, xbs[0].shape, len(xbs))
    if fit == 0:
        raise ValueError(f"one copy of the network ({2 * sum(a * b for a, b in shapes)} devices) does not fit {len(xbs)} array(s) of {xbs[0].shape}")
    if copies is None:
        return fit
    if copies < 1 or copies > fit:
        raise ValueError(f"copies must be in [1, {fit}] for {len(xbs)} array(s) of {xbs[0].shape}, got {copies}")
    return int(copies)


@dataclass
class Transfer:
    """A network programmed onto arrays.

    Attributes
    ----------
    kind : str
        ``"bayesian"`` (stochastic SET of posteriors) or ``"deterministic"`` (single-shot).
    placement : Placement
        Where every device sits; layer ``(l, m)`` is copy ``m`` of layer ``l``.
    n_layers, copies : int
    results : list of ProgramResult
        One per array.
    mapping : CopyPlacement or None
        The posterior mapping (Bayesian transfers).
    wall_time : float
        Wall time of mapping and programming, s.
    expected : dict
        ``{array index: (mu, sigma) maps}``: the calibrated distribution each device was
        programmed from (S; NaN where no device sits).
    screen : float or None
        Fault screening threshold: a device read more than ``screen`` calibrated standard
        deviations from its condition's mean is faulty (a stuck or broken device, not a
        sample); None disables screening.
    faulty : dict
        ``{array index: bool map}`` of the devices the last read found faulty.

    Notes
    -----
    A weight sample that uses a faulty device is not a draw from the programmed distribution.
    :meth:`weights_from` replaces it by the same weight read from a healthy copy chosen at
    random, so every network sample stays a measured one (the number of distinct samples of
    that weight drops by one).
    """

    kind: str
    placement: Placement
    n_layers: int
    copies: int
    results: list[ProgramResult]
    mapping: CopyPlacement | None = None
    wall_time: float = 0.0
    expected: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    screen: float | None = 6.0
    faulty: dict[int, np.ndarray] = field(default_factory=dict)

    def weights_from(self, conductances: dict[int, np.ndarray]) -> list[np.ndarray]:
        """The ``M`` sampled networks, one ``(M, n_in + 1, n_out)`` array per layer, from
        conductance maps ``{array index: (rows, cols), S}``, with the samples of faulty
        devices replaced (class notes)."""
        weights = copy_weights(self.placement, self.n_layers, self.copies, conductances)
        self.faulty = self.find_faulty(conductances)
        if not any(f.any() for f in self.faulty.values()):
            return weights
        masks = {i: f.astype(float) for i, f in self.faulty.items()}
        per_copy = self.placement.gather(masks)
        bad = [np.stack([np.add(*per_copy[(li, m)]) > 0 for m in range(self.copies)]) for li in range(self.n_layers)]
        rng = np.random.default_rng(0)
        for w, b in zip(weights, bad):
            for i, j in zip(*np.nonzero(b.any(axis=0))):
                good = np.flatnonzero(~b[:, i, j])
                if good.size:
                    w[b[:, i, j], i, j] = w[rng.choice(good, size=int(b[:, i, j].sum())), i, j]
        return weights

    def find_faulty(self, conductances: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Devices read more than :attr:`screen` calibrated standard deviations away from
        their condition's mean (``{array index: bool map}``; none without :attr:`expected`)."""
        out = {}
        for i, g in conductances.items():
            if self.screen is None or i not in self.expected:
                out[i] = np.zeros(np.shape(g), bool)
                continue
            mu, sd = self.expected[i]
            with np.errstate(invalid="ignore"):
                out[i] = np.isfinite(mu) & (np.abs(np.asarray(g) - mu) > self.screen * sd)
        return out

    def read_conductances(self, crossbars: Crossbar | Sequence[Crossbar]) -> dict[int, np.ndarray]:
        """One batched whole-array read of every array, S."""
        xbs = _crossbars(crossbars)
        if len(xbs) < self.placement.n_arrays:
            raise ValueError(f"the transfer uses {self.placement.n_arrays} array(s), {len(xbs)} given")
        return {i: xbs[i].read() for i in range(self.placement.n_arrays)}

    def read_weights(self, crossbars: Crossbar | Sequence[Crossbar]) -> list[np.ndarray]:
        """Measure the arrays and return the programmed networks (see :meth:`weights_from`)."""
        return self.weights_from(self.read_conductances(crossbars))

    def mvm_probabilities(self, crossbars: Crossbar | Sequence[Crossbar], X: Any, copies: Sequence[int] | None = None, v_max: float = 0.2) -> np.ndarray:
        """Class probabilities ``(len(copies), N, C)`` computed by the arrays themselves: each
        layer's inputs (with the bias input 1) are applied as row voltages scaled so the
        largest is ``v_max`` (V), the column currents are sensed, and the differential pairs
        are combined digitally; ReLU between layers and the final softmax are digital."""
        xbs = _crossbars(crossbars)
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if not (np.isfinite(v_max) and 0 < v_max <= 1.0):
            raise ValueError(f"v_max must be in (0, 1] V, got {v_max!r}")
        which = range(self.copies) if copies is None else list(copies)
        reads = [xb.mvm for xb in xbs]
        out = []
        for m in which:
            h = X
            for li in range(self.n_layers):
                xa = np.concatenate([h, np.ones((h.shape[0], 1))], axis=1)
                scale = v_max / max(float(np.max(np.abs(xa))), 1e-12)
                y = self.placement.mvm((li, m), xa * scale, lambda a, v: reads[a](v), v_read=1.0) / scale
                h = np.maximum(y, 0.0) if li < self.n_layers - 1 else y
            out.append(softmax(h, axis=1))
        return np.stack(out)

    def probabilities(self, weights: Sequence[np.ndarray], X: Any) -> np.ndarray:
        """Class probabilities ``(M, N, C)`` of read-back networks (see :meth:`read_weights`)."""
        return forward(weights, X)

    def summary(self) -> dict[str, Any]:
        s = [r.summary() for r in self.results]
        out: dict[str, Any] = {
            "kind": self.kind,
            "copies": self.copies,
            "devices": int(sum(x["devices"] for x in s)),
            "arrays": self.placement.n_arrays,
            "wall_time": self.wall_time,
            "bench_time": None if any(x["bench_time"] is None for x in s) else float(sum(x["bench_time"] for x in s)),
            "pulses_per_device": float(np.average([x["pulses_per_device"] for x in s], weights=[x["devices"] for x in s])),
        }
        out["faulty_devices"] = int(sum(f.sum() for f in self.faulty.values()))
        if self.mapping is not None:
            out["layers"] = [lay.summary() for lay in self.mapping.layers]
        return out


def transfer_bayesian(
    crossbars: Crossbar | Sequence[Crossbar],
    posteriors: Sequence[tuple[Any, Any]],
    model: ReRAMModel,
    settings: TransferSettings = TransferSettings(),
    stores: Callable[[int], Any] | None = None,
    progress: Progress | None = None,
    gammas: Sequence[float] | None = None,
    attrs: dict[str, Any] | None = None,
) -> Transfer:
    """Program a Bayesian network's posteriors in one step (module docstring).

    Parameters
    ----------
    crossbars : Crossbar or list of Crossbar
        The arrays (one is enough when the network's copies fit it).
    posteriors : list of (mu, sigma)
        Augmented ``(n_in + 1, n_out)`` posterior mean and spread of every layer, weight units.
    model : ReRAMModel
        The calibrated device model (never the chip's hidden truth).
    stores : callable, optional
        ``stores(array_index)`` → the path of a new run store for that array's programming run
        (recorded and resumable), or None.
    attrs : dict, optional
        Extra attributes of those run stores (station, calibration provenance, network).
    gammas : list of float, optional
        Fixed per-layer scales (S per weight unit) instead of the KL scale search.
    """
    t0 = time.perf_counter()
    xbs = _crossbars(crossbars)
    shapes = _shapes([mu for mu, _ in posteriors])
    for i, (mu, sigma) in enumerate(posteriors):
        if np.shape(sigma) != np.shape(mu):
            raise ValueError(f"layer {i}: sigma has shape {np.shape(sigma)}, mu has {np.shape(mu)}")
    m = _copies(shapes, xbs, settings.copies)
    conditions = Conditions.from_reram(model, settings.protocol, settings.grid, settings.read_delay)
    layers = PosteriorMapping(conditions).map(posteriors, gammas)
    cp = place_copies(layers, conditions, m, xbs[0].shape, len(xbs))
    results, expected = [], {}
    for i in range(cp.n_arrays):
        mu_map, sd_map = cp.targets(i)
        results.append(run_plan(xbs[i], StochasticSet(mu_map, sd_map, model, settings.protocol), stores(i) if stores else None, progress=progress, attrs=attrs))
        expected[i] = (mu_map, sd_map)
    return Transfer("bayesian", cp.placement, len(layers), m, results, cp, time.perf_counter() - t0, expected, settings.screen)


def transfer_deterministic(
    crossbars: Crossbar | Sequence[Crossbar],
    weights: Sequence[Any],
    model: ReRAMModel,
    settings: TransferSettings = TransferSettings(),
    stores: Callable[[int], Any] | None = None,
    progress: Progress | None = None,
    attrs: dict[str, Any] | None = None,
) -> Transfer:
    """Program fixed augmented weight matrices as differential pairs, open loop (single-shot,
    target = the calibrated median of the chosen compliance), in ``settings.copies`` copies;
    the scale is per layer over the conditions' conductance range. ``stores`` and ``attrs`` as
    for :func:`transfer_bayesian`."""
    t0 = time.perf_counter()
    xbs = _crossbars(crossbars)
    shapes = _shapes(weights)
    m = _copies(shapes, xbs, settings.copies)
    conditions = Conditions.from_reram(model, settings.protocol, settings.grid, settings.read_delay)
    # the conditions' range, kept a hair inside so rounding never leaves the reachable range
    lo, hi = float(conditions.mu.min()), float(conditions.mu.max())
    mapping = DifferentialMapping(lo * (1 + 1e-9), hi * (1 - 1e-9))
    mapped = [mapping.map(w) for w in weights]
    pl = place({(li, k): lay for li, lay in enumerate(mapped) for k in range(m)}, xbs[0].shape, len(xbs))
    results, expected = [], {}
    for i in range(pl.n_arrays):
        targets = pl.targets(i)
        results.append(run_plan(xbs[i], SingleShot(targets, model, settings.protocol), stores(i) if stores else None, progress=progress, attrs=attrs))
        expected[i] = (targets, population_sigma(model, np.where(np.isnan(targets), 1e-6, targets)))
    return Transfer("deterministic", pl, len(mapped), m, results, None, time.perf_counter() - t0, expected, settings.screen)
