"""Drift compensation for networks programmed on PCM (Joshi et al., Nat. Commun. 2020), numpy only.

PCM conductances drift down as ``g(t) = g_prog ((t + t0)/t0)^-nu`` with a per-device ``nu``
(about 0.05–0.1): one day after programming a weight has lost roughly 40 % of its magnitude,
and layers followed by a batch norm with frozen statistics, or by a digital bias, stop working.
Two compensations, both measured on the array itself, never on the chip's hidden state:

* **Global drift compensation (GDC).** Right after programming, a fixed calibration input
  ``x_cal`` (``K`` vectors, the same every time) goes through each layer of the array; the mean
  absolute output ``r0 = mean |x_cal · W(0)|`` is stored. At time ``t`` the same input gives
  ``r_t`` and the layer's outputs are multiplied by ``alpha = r0 / r_t`` before the digital
  periphery (bias, batch norm, activation). ``granularity="column"`` keeps one ``r0`` per
  output column instead (:class:`GlobalDriftCompensation`).
* **Batch-norm recalibration.** A few hundred training inputs are run through the drifted
  weights and every batch norm's running mean and variance are recomputed
  (:func:`recalibrate_batchnorm`); GDC still scales the layers without a batch norm after
  them (the output layer).

:class:`Network` is the digital twin of the trained torch network (weights ``(n_in, n_out)``
as laid on the array rows x columns; biases and batch norms stay digital).
:func:`deploy_pcm` maps it onto differential pairs, programs them by write-verify
(:func:`labrram.protocols.write_verify_pcm.write_verify_pcm`) and :func:`evaluate_drift`
reads the array back through the instruments at chosen times after programming (waiting on the
station's timer: the virtual clock on the simulated bench) and scores every compensation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from labrram.crossbar import Crossbar
from labrram.devices.pcm import PCMModel
from labrram.mapping import DifferentialMapping, Placement, copy_weights, fault_aware_order, fill_copies, lost_pairs, place
from labrram.protocols.results import ProgramResult
from labrram.protocols.write_verify_pcm import PCMWriteVerify, write_verify_pcm

__all__ = [
    "BatchNorm",
    "DeploySettings",
    "GlobalDriftCompensation",
    "Network",
    "PCMDeployment",
    "calibration_inputs",
    "deploy_pcm",
    "evaluate_drift",
    "format_time",
    "recalibrate_batchnorm",
]

_GRANULARITIES = ("layer", "column")
COMPENSATIONS = ("none", "gdc", "bn")
"""Names of the compensations :func:`evaluate_drift` scores."""


# --- the digital twin ------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class BatchNorm:
    """Inference-time batch norm ``gamma (z - mean) / sqrt(var + eps) + beta`` on ``n`` features."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def __post_init__(self) -> None:
        n = np.shape(self.gamma)
        for name in ("beta", "mean", "var"):
            if np.shape(getattr(self, name)) != n:
                raise ValueError(f"batch norm {name} has shape {np.shape(getattr(self, name))}, gamma has {n}")
        if np.any(np.asarray(self.var) < 0) or not self.eps > 0:
            raise ValueError("batch norm variances must be >= 0 and eps > 0")

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self.gamma * (z - self.mean) / np.sqrt(self.var + self.eps) + self.beta

    def recalibrated(self, z: np.ndarray) -> "BatchNorm":
        """The same batch norm with running statistics recomputed on pre-activations ``z`` (N, n)."""
        z = np.asarray(z, dtype=float)
        if z.ndim != 2 or z.shape[1] != np.shape(self.gamma)[0] or z.shape[0] < 2:
            raise ValueError(f"need pre-activations of shape (N >= 2, {np.shape(self.gamma)[0]}), got {z.shape}")
        return replace(self, mean=z.mean(axis=0), var=z.var(axis=0))

    def matched(self, measured: tuple[Any, Any], target: tuple[Any, Any]) -> "BatchNorm":
        """The same batch norm for inputs whose per-feature mean and standard deviation are
        ``measured`` where the statistics were meant for inputs with ``target``'s.

        Each input is first mapped ``(z − m) · s_target / s + m_target``, and the map is folded
        into the running statistics (nothing is added at inference). A feature with a zero
        standard deviation on either side keeps its scale and has only its mean moved.

        Parameters
        ----------
        measured, target : (array_like, array_like)
            ``(mean, std)``, ``(n,)`` each.
        """
        n = np.shape(self.gamma)
        (m, s), (mt, st) = ((np.asarray(a, dtype=float) for a in pair) for pair in (measured, target))
        for name, a in (("measured mean", m), ("measured std", s), ("target mean", mt), ("target std", st)):
            if a.shape != n:
                raise ValueError(f"{name} has shape {a.shape}, the batch norm has {n} features")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name} holds NaN or infinite values")
        if np.any(s < 0) or np.any(st < 0):
            raise ValueError("standard deviations must be >= 0")
        ratio = np.where((s > 0) & (st > 0), s / np.where(st > 0, st, 1.0), 1.0)
        mean = m - (mt - np.asarray(self.mean)) * ratio
        var = np.maximum((np.asarray(self.var) + self.eps) * ratio**2 - self.eps, 0.0)
        return replace(self, mean=mean, var=var)


@dataclass(frozen=True, eq=False)
class Network:
    """A ReLU network whose matrix products run on the array and everything else digitally.

    Layer ``l`` computes ``z = alpha_l * (x @ W_l) + b_l``, then ``BN_l`` (if any) and ReLU
    (except the last layer, which gives logits).

    Attributes
    ----------
    weights : list of ndarray
        ``(n_in, n_out)`` per layer (array rows = inputs, columns = outputs).
    biases : list of ndarray or None
        Digital bias per layer (None: no bias).
    norms : list of BatchNorm or None
        Batch norm after each layer's product (None: none).
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray | None]
    norms: list[BatchNorm | None]

    def __post_init__(self) -> None:
        if not self.weights:
            raise ValueError("a network needs at least one layer")
        if not (len(self.weights) == len(self.biases) == len(self.norms)):
            raise ValueError("weights, biases and norms need one entry per layer")
        for i, w in enumerate(self.weights):
            if np.ndim(w) != 2:
                raise ValueError(f"layer {i}: weights must be 2-D (n_in, n_out), got shape {np.shape(w)}")
            if i and np.shape(w)[0] != np.shape(self.weights[i - 1])[1]:
                raise ValueError(f"layer {i} takes {np.shape(w)[0]} inputs, layer {i - 1} gives {np.shape(self.weights[i - 1])[1]}")

    @property
    def n_layers(self) -> int:
        return len(self.weights)

    @property
    def sizes(self) -> tuple[int, ...]:
        return (int(np.shape(self.weights[0])[0]),) + tuple(int(np.shape(w)[1]) for w in self.weights)

    def _check(self, name: str, values: Sequence[Any] | None) -> list[Any]:
        if values is None:
            return [None] * self.n_layers
        values = list(values)
        if len(values) != self.n_layers:
            raise ValueError(f"{name} needs one entry per layer ({self.n_layers}), got {len(values)}")
        return values

    def preactivations(
        self,
        X: np.ndarray,
        weights: Sequence[np.ndarray] | None = None,
        gains: Sequence[Any] | None = None,
        norms: Sequence[BatchNorm | None] | None = None,
    ) -> list[np.ndarray]:
        """Every layer's ``alpha * (x @ W) + b`` (before batch norm and ReLU), input first to last.

        ``weights`` replaces the stored weights (e.g. read back from the array), ``gains`` gives
        each layer's drift-compensation factor (scalar or one per column; None: 1) and ``norms``
        replaces the batch norms.
        """
        x = np.asarray(X, dtype=float)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"X must have shape (N, {self.sizes[0]}), got {x.shape}")
        ws = self.weights if weights is None else self._check("weights", weights)
        gs, bn = self._check("gains", gains), self.norms if norms is None else self._check("norms", norms)
        out = []
        for i, (w, b, g, n) in enumerate(zip(ws, self.biases, gs, bn)):
            z = x @ np.asarray(w, dtype=float)
            if g is not None:
                z = z * np.asarray(g, dtype=float)
            if b is not None:
                z = z + b
            out.append(z)
            if i < self.n_layers - 1:
                x = np.maximum(n(z) if n is not None else z, 0.0)
        return out

    def logits(self, X: np.ndarray, weights=None, gains=None, norms=None) -> np.ndarray:
        """Output logits ``(N, n_classes)``; arguments as :meth:`preactivations`."""
        z = self.preactivations(X, weights, gains, norms)[-1]
        n = (self.norms if norms is None else list(norms))[-1]
        return n(z) if n is not None else z

    def accuracy(self, X: np.ndarray, y: np.ndarray, weights=None, gains=None, norms=None) -> float:
        """Fraction of ``X`` classified as ``y``."""
        return float(np.mean(self.logits(X, weights, gains, norms).argmax(axis=1) == np.asarray(y)))


# --- compensations ---------------------------------------------------------------------------
@dataclass
class GlobalDriftCompensation:
    """``alpha = r0 / r_t`` from the mean absolute outputs of a fixed calibration input.

    Use :meth:`reference` once right after programming with the calibration outputs
    ``y0`` (K, n_out), then :meth:`factors` with the outputs of the same input at time t.

    Parameters
    ----------
    granularity : str
        ``"layer"``: one factor per layer (Joshi's GDC); ``"column"``: one per output column.
    """

    granularity: str = "layer"
    r0: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.granularity not in _GRANULARITIES:
            raise ValueError(f"granularity must be one of {_GRANULARITIES}, got {self.granularity!r}")

    def _readout(self, y: Any) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        if y.ndim != 2 or y.size == 0 or not np.all(np.isfinite(y)):
            raise ValueError(f"calibration outputs must be a finite (K, n_out) array, got shape {y.shape}")
        r = np.abs(y).mean(axis=0)
        return np.atleast_1d(r.mean()) if self.granularity == "layer" else r

    def reference(self, y0: Any) -> "GlobalDriftCompensation":
        """Store ``r0`` from the calibration outputs right after programming; returns self."""
        r0 = self._readout(y0)
        if np.any(r0 <= 0):
            raise ValueError("the calibration input gives zero output on some column: no scale to track")
        self.r0 = r0
        return self

    def factors(self, y_t: Any) -> np.ndarray:
        """``alpha = r0 / r_t``: shape (1,) per layer or (n_out,) per column."""
        if self.r0 is None:
            raise ValueError("call reference() with the outputs right after programming first")
        r = self._readout(y_t)
        if r.shape != self.r0.shape:
            raise ValueError(f"calibration outputs give {r.shape[0]} readouts, the reference has {self.r0.shape[0]}")
        return self.r0 / np.maximum(r, 1e-300)


def calibration_inputs(n_in: int, k: int = 8, seed: int = 0) -> np.ndarray:
    """``k`` fixed random ±1 calibration vectors of length ``n_in`` (the GDC input)."""
    if n_in < 1 or k < 1:
        raise ValueError(f"need n_in >= 1 and k >= 1, got {n_in}, {k}")
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(k, n_in))


def recalibrate_batchnorm(
    net: Any, X: np.ndarray, weights: Sequence[np.ndarray] | None = None, gains: Sequence[Any] | None = None
) -> list[BatchNorm | None]:
    """Batch norms with running statistics recomputed on inputs ``X`` through ``weights``.

    ``net`` is a :class:`Network` or a network with its own ``recalibrate_norms(X, weights,
    gains)`` (:class:`~labrram.nn.resnet_twin.ResNetTwin`: images in, batch-norm statistics per
    channel).

    Layers are recalibrated in order, each with the statistics of its pre-activations given the
    already recalibrated layers before it (as a forward pass in training mode would).
    """
    if hasattr(net, "recalibrate_norms"):  # networks with their own forward (ResNetTwin)
        return net.recalibrate_norms(X, weights, gains)
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"need at least 2 inputs (N, n_in) to recompute statistics, got shape {X.shape}")
    norms = list(net.norms)
    for i, n in enumerate(net.norms):
        if n is None:
            continue
        z = net.preactivations(X, weights, gains, norms)[i]
        norms[i] = n.recalibrated(z)
    return norms


# --- deployment on a PCM array ---------------------------------------------------------------
@dataclass(frozen=True)
class DeploySettings:
    """How :func:`deploy_pcm` programs a network.

    Parameters
    ----------
    g_min : float
        Target of the device that means zero (S); the write-verify's lowest target. A fully
        RESET device (~0.1 µS) lies inside its verify window, so it is accepted as is.
    g_max : float or None
        Conductance of the largest weight (S); None: the calibrated model's ``g_max``.
    scale : str
        ``"layer"`` or ``"column"`` scale of the differential mapping.
    clip_sigma : float or None
        Clip at ±clip_sigma·std(W) while mapping (None: the training already clipped).
    write_verify : PCMWriteVerify
        Ladder settings of the write-verify.
    copies : int, tuple of int, or "fill"
        Differential pairs per weight, each programmed to the whole weight
        (:mod:`labrram.mapping.copies`): one number for every layer, one per layer, or
        ``"fill"`` — the room the network leaves on the array goes to its smallest layers
        first (:func:`~labrram.mapping.fill_copies`, at most ``max_copies``). A weight reads
        back as the mean of its healthy copies, so a stuck device costs a copy, not the weight.
    max_copies : int
        Most copies of a layer with ``copies="fill"``.
    remap_inputs : bool
        After the write-verify, route each layer's inputs to its array rows in the order that
        loses the least weight to the devices it left off target (stuck, or out of
        iterations; :func:`labrram.mapping.fault_aware_order`), and program again the rows
        whose input changed. A stuck device then sits under a weight it already serves, or a
        small one. The copies of a layer are ordered in turn, each given the others: a pair
        lost where another copy holds the weight costs nothing.
    """

    g_min: float = 0.5e-6
    g_max: float | None = None
    scale: str = "layer"
    clip_sigma: float | None = None
    write_verify: PCMWriteVerify = PCMWriteVerify()
    copies: int | tuple[int, ...] | str = 1
    max_copies: int = 4
    remap_inputs: bool = False

    def __post_init__(self) -> None:
        c = self.copies
        if isinstance(c, str):
            if c != "fill":
                raise ValueError(f'copies must be a positive integer, one per layer, or "fill"; got {c!r}')
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if c < 1:
                raise ValueError(f"copies must be >= 1, got {c!r}")
        else:
            try:
                object.__setattr__(self, "copies", tuple(int(x) for x in c))
            except (TypeError, ValueError):
                raise ValueError(f'copies must be a positive integer, one per layer, or "fill"; got {c!r}') from None
            if not self.copies or min(self.copies) < 1 or any(float(x) != int(x) for x in c):
                raise ValueError(f"copies per layer must be integers >= 1, got {c!r}")
        if not isinstance(self.max_copies, (int, np.integer)) or self.max_copies < 1:
            raise ValueError(f"max_copies must be a positive integer, got {self.max_copies!r}")
        if not isinstance(self.remap_inputs, (bool, np.bool_)):
            raise ValueError(f"remap_inputs must be True or False, got {self.remap_inputs!r}")

    def copies_for(self, shapes: Sequence[tuple[int, int]], array_shape: tuple[int, int]) -> list[int]:
        """Copies of each layer of weight ``shapes`` on one array of ``array_shape``."""
        if self.copies == "fill":
            return fill_copies(shapes, array_shape, self.max_copies)
        if isinstance(self.copies, tuple):
            if len(self.copies) != len(shapes):
                raise ValueError(f"copies names {len(self.copies)} layers, the network has {len(shapes)}")
            return list(self.copies)
        return [int(self.copies)] * len(shapes)


@dataclass(frozen=True, eq=False)
class PCMDeployment:
    """A network programmed on one PCM array.

    Attributes
    ----------
    placement : Placement
        Where every differential pair sits: layer ``(i, m)`` is copy ``m`` of layer ``i``, its
        rows in slot order (``orders``: a remapped layer's row ``p`` is network input
        ``orders[(i, m)][p]``); :meth:`weights_from`, :meth:`healthy` and :meth:`mvm` speak
        the network's order.
    result : ProgramResult
        The write-verify's outcome (both jobs', as one, with ``remap_inputs``).
    t_programmed : float
        Timer time at the end of programming, s (drift times count from here). With
        ``remap_inputs`` it is the end of the second job: the devices that job did not touch
        were programmed earlier by up to its length, as devices programmed early in one job are.
    program_bench_time : float
        Bench time the programming took, s (both jobs with ``remap_inputs``).
    orders : dict
        Placed layer ``(i, m)`` → the order of its inputs on its rows (``orders[k][p]`` is the
        input that slot ``p`` carries); missing layers keep the network's order.
    before_remap : dict or None
        ``faulty_weights`` and ``lost_weight`` (:meth:`summary`) after the first job, when the
        inputs were remapped.
    """

    placement: Placement
    result: ProgramResult
    t_programmed: float
    program_bench_time: float = 0.0
    orders: dict = field(default_factory=dict)
    before_remap: dict | None = None

    @property
    def copies(self) -> list[int]:
        """Copies (differential pairs per weight) of every layer."""
        n: dict[int, int] = {}
        for i, m in self.placement.layers:
            n[i] = max(n.get(i, 0), m + 1)
        return [n[i] for i in range(len(n))]

    def summary(self) -> dict[str, Any]:
        """Arrays, tiles, devices, the used fraction of the array, copies per layer, the
        write-verify's convergence, the faulty weights (no healthy copy) and the fraction of the
        network's total ``|W|`` they hold (``lost_weight``), the inputs the fault-aware order
        moved, and the programming's bench time (s), as JSON-ready numbers."""
        res = self.result.summary()
        healthy = self.healthy()
        faulty = [~h.any(axis=0) for h in healthy]
        return {
            "arrays": self.placement.n_arrays, "array_shape": list(self.placement.array_shape),
            "tiles": len(self.placement.tiles), "devices": self.placement.n_devices,
            "utilization": float(np.mean([self.placement.utilization(a) for a in range(self.placement.n_arrays)])),
            "copies": self.copies, "converged_fraction": res["converged_fraction"],
            "faulty_weights": int(sum(f.sum() for f in faulty)),
            "lost_weight": self._lost_weight(faulty),
            "faulty_copies": int(sum((~h).sum() for h in healthy)),
            "program_bench_time": float(self.program_bench_time),
            "remapped_inputs": int(sum((o != np.arange(o.size)).sum() for o in self.orders.values())),
            "before_remap": self.before_remap,
        }  # fmt: skip

    def healthy(self) -> list[np.ndarray]:
        """Per layer, boolean ``(copies, n_in, n_out)``: copies whose two devices the
        write-verify brought into their windows (neither stuck nor unconverged)."""
        conv = np.where(self.result.mask, self.result.converged, True).astype(float)
        g = self.placement.gather({0: conv})
        return [np.stack([self._network_order((i, m), (g[(i, m)][0] >= 1) & (g[(i, m)][1] >= 1)) for m in range(c)])
                for i, c in enumerate(self.copies)]  # fmt: skip

    def _network_order(self, key: tuple[int, int], a: np.ndarray) -> np.ndarray:
        """Rows of a placed layer's ``(n_in, …)`` array in the network's input order."""
        order = self.orders.get(key)
        return a if order is None else a[np.argsort(order)]

    def lost_weight(self) -> float:
        """Fraction of the network's total ``|W|`` held by :meth:`faulty` weights (what the
        read-back drops)."""
        return self._lost_weight(self.faulty())

    def _lost_weight(self, faulty: list[np.ndarray]) -> float:
        w = [np.abs(self._network_order((i, 0), self.placement.layers[(i, 0)].target_weights)) for i in range(len(self.copies))]
        total = sum(float(x.sum()) for x in w)
        return sum(float(x[f].sum()) for x, f in zip(w, faulty)) / (total or 1.0)

    def faulty(self) -> list[np.ndarray]:
        """Per layer, the weights none of whose copies the write-verify could bring into its
        window (stuck or unconverged), as boolean ``(n_in, n_out)`` masks."""
        return [~h.any(axis=0) for h in self.healthy()]

    def weights_from(self, g: np.ndarray, mask_faulty: bool = True) -> list[np.ndarray]:
        """Effective weights of every layer from a whole-array read (S): the mean over copies of
        ``(G⁺ − G⁻)/γ``. With ``mask_faulty`` the copies that are not :meth:`healthy` are left
        out, and a weight with none left is 0 (the digital read-back drops it)."""
        copies = self.copies
        per_copy = copy_weights(self.placement, len(copies), copies, {0: g})
        w = [np.stack([self._network_order((i, m), x[m]) for m in range(len(x))]) for i, x in enumerate(per_copy)]
        if not mask_faulty:
            return [x.mean(axis=0) for x in w]
        out = []
        for x, h in zip(w, self.healthy()):
            n = h.sum(axis=0)
            out.append(np.where(h, x, 0.0).sum(axis=0) / np.maximum(n, 1))
        return out

    def read_weights(self, xb: Crossbar, mask_faulty: bool = True) -> list[np.ndarray]:
        """Read the whole array once through the instruments; every layer's weights."""
        return self.weights_from(xb.read(), mask_faulty)

    def mvm(self, xb: Crossbar, layer: int, X: np.ndarray, v_read: float = 0.1) -> np.ndarray:
        """``X @ W_layer`` computed in the array (row voltages ``v_read·x``, one MVM per input,
        tile and copy; the copies' results averaged digitally — every copy's current counts,
        a stuck device's included)."""
        X = np.asarray(X, dtype=float)
        outs = [self.placement.mvm((layer, m), X[..., self.orders[(layer, m)]] if (layer, m) in self.orders else X, lambda _i, v: xb.mvm(v), v_read=v_read)
                for m in range(self.copies[layer])]  # fmt: skip
        return outs[0] if len(outs) == 1 else np.mean(outs, axis=0)

    def matvec(self, xb: Crossbar, v_max: float = 0.1):
        """``matvec(layer, v) -> v @ W_layer`` computed in the array, for a network's forward
        (e.g. :meth:`labrram.nn.resnet_twin.ResNetTwin.forward`): each call's inputs are scaled so
        that the largest ``|v|`` is ``v_max`` volts (the DAC range set per layer and batch), one
        MVM per input vector, tile and copy."""
        if not 0 < v_max <= 0.2:
            raise ValueError(f"v_max must be in (0, 0.2] V (a read, far below the SET threshold), got {v_max!r}")

        def mv(layer: int, v: np.ndarray) -> np.ndarray:
            top = float(np.max(np.abs(v), initial=0.0)) or 1.0
            return self.mvm(xb, layer, np.asarray(v, dtype=float) / top, v_read=v_max) * top

        return mv


def deploy_pcm(xb: Crossbar, timer, net: Any, model: PCMModel, settings: DeploySettings = DeploySettings(), out: str | None = None) -> PCMDeployment:
    """Map ``net``'s weights onto differential pairs and program them by write-verify.

    Every layer's tiles are packed onto the one array together (persistent placement): after
    this one programming job the whole network stays programmed, so it can be read or run by
    MVMs at any later time (drift) without reprogramming. A network that does not fit raises
    :class:`~labrram.mapping.PlacementError` naming the layer; a larger array
    (``station.with_simulation(rows=..., cols=...)`` on the simulated bench) holds it.
    ``settings.copies`` puts each weight of a layer on several pairs (redundancy: the layer
    ``(i, m)`` of the placement is copy ``m`` of layer ``i``); the write-verify programs them
    all in the same job. With ``settings.remap_inputs`` a second write-verify job programs the
    rows whose input the fault-aware order moved (:class:`DeploySettings`); its run store is
    ``out`` with ``-remap`` before the suffix.

    Parameters
    ----------
    xb : Crossbar
        The PCM array (all layers must fit it: see :func:`labrram.mapping.place`).
    timer : BenchTimer
        The station's timer (time stamp of the end of programming, bench time).
    net : Network or ResNetTwin
        Weights to program: any network whose ``weights`` are ``(n_in, n_out)`` matrices.
    model : PCMModel
        Calibrated PCM model (its ``g_max`` when ``settings.g_max`` is None).
    settings : DeploySettings
        Mapping and write-verify settings.
    out : str, optional
        Run store of the write-verify (recorded and resumable through the engine).
    """
    if not isinstance(model, PCMModel):
        raise ValueError(f"model must be a calibrated PCMModel, got {type(model).__name__}")
    g_max = model.g_max if settings.g_max is None else float(settings.g_max)
    lo, hi = settings.write_verify.g_range
    if not (lo <= settings.g_min < g_max <= hi):
        raise ValueError(f"need {lo} <= g_min < g_max <= {hi} S (the write-verify's range), got {settings.g_min}, {g_max}")
    mapping = DifferentialMapping(settings.g_min, g_max, scale=settings.scale, clip_sigma=settings.clip_sigma)
    mapped = [mapping.map(w) for w in net.weights]
    copies = settings.copies_for([m.shape for m in mapped], xb.shape)
    placement = place({(i, m): lay for i, (lay, c) in enumerate(zip(mapped, copies)) for m in range(c)}, xb.shape, max_arrays=1)
    t0 = float(timer.now())
    result = write_verify_pcm(xb, placement.targets(0), settings.write_verify, out=out, timer=timer)
    dep = PCMDeployment(placement, result, float(timer.now()), float(timer.now()) - t0)
    return _remap_inputs(xb, timer, dep, settings, out, t0) if settings.remap_inputs else dep


def _remap_inputs(xb: Crossbar, timer, dep: PCMDeployment, settings: DeploySettings, out: str | None, t0: float) -> PCMDeployment:
    """``dep`` with every layer's inputs in the fault-aware order, the moved rows programmed again."""
    res, pl = dep.result, dep.placement
    achieved = pl.gather({0: res.achieved})
    converged = pl.gather({0: np.where(res.mask, res.converged, True).astype(float)})
    hw = settings.write_verify.half_width
    ok = {k: tuple(c >= 1 for c in converged[k]) for k in pl.layers}
    orders = {}
    # the first job laid every layer out in the network's order, so the copies of a layer share
    # their row order here; they are ordered in turn, each given the others
    for i, c in enumerate(dep.copies):
        keys = [(i, m) for m in range(c)]
        lost = {k: lost_pairs(pl.layers[k], achieved[k], ok[k], hw) for k in keys}
        for k in keys:
            others = [lost[o] for o in keys if o != k]
            spared = ~np.logical_and.reduce(others) if others else None
            orders[k] = fault_aware_order(pl.layers[k], achieved[k], ok[k], hw, spared)
            lost[k] = lost_pairs(pl.layers[k], achieved[k], ok[k], hw, orders[k])
    orders = {k: o for k, o in orders.items() if np.any(o != np.arange(o.size))}
    before = {"faulty_weights": int(sum(f.sum() for f in dep.faulty())), "lost_weight": dep.lost_weight()}
    if not orders:
        return replace(dep, before_remap=before)
    moved = replace(pl, layers={k: lay.with_input_order(orders[k]) if k in orders else lay for k, lay in pl.layers.items()})
    old, new = pl.targets(0), moved.targets(0)
    again = np.where(new != old, new, np.nan)
    if np.all(np.isnan(again)):  # moves between rows of equal weights: nothing to program
        return PCMDeployment(moved, res, dep.t_programmed, dep.program_bench_time, orders, before)
    store = None if out is None else str(Path(out).with_name(f"{Path(out).stem}-remap{Path(out).suffix}"))
    result = res.followed_by(write_verify_pcm(xb, again, settings.write_verify, out=store, timer=timer))
    return PCMDeployment(moved, result, float(timer.now()), float(timer.now()) - t0, orders, before)


def check_times(times: Sequence[float]) -> list[float]:
    """``times`` (s after programming) as floats; ValueError unless >= 0 and strictly increasing."""
    times = [float(t) for t in times]
    if not times or any(t < 0 for t in times) or any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f"times must be >= 0 s and strictly increasing, got {times}")
    return times


def wait_after_programming(timer, t_programmed: float, t: float) -> None:
    """Wait on ``timer`` until ``t`` s after ``t_programmed``; ValueError if that is already past."""
    wait = t_programmed + t - timer.now()
    if wait < -1e-9:
        raise ValueError(f"t = {t} s after programming is already past (now {timer.now() - t_programmed:.3g} s)")
    if wait > 0:
        timer.wait(wait)


def _gdc_outputs(dep: PCMDeployment, xb: Crossbar, x_cal: list[np.ndarray], weights: list[np.ndarray] | None, v_read: float) -> list[np.ndarray]:
    """Per layer, the calibration outputs: in the array (``weights`` None) or from read-back weights."""
    if weights is None:
        return [dep.mvm(xb, i, x, v_read) for i, x in enumerate(x_cal)]
    return [x @ w for x, w in zip(x_cal, weights)]


def evaluate_drift(
    xb: Crossbar,
    timer,
    dep: PCMDeployment,
    net: Network,
    X_test: np.ndarray,
    y_test: np.ndarray,
    X_bn: np.ndarray,
    times: Sequence[float],
    granularity: str = "layer",
    n_calibration: int = 8,
    gdc_in_array: bool = True,
    v_read: float = 0.1,
    seed: int = 0,
    also_in_array: bool = False,
) -> list[dict[str, Any]]:
    """Accuracy of the programmed network at times after programming, with each compensation.

    Right after programming the GDC reference ``r0`` is measured. Then, for every ``t`` in
    ``times`` (s after the end of programming, increasing), the timer waits until ``t`` and:

    1. the calibration input goes through the array (``gdc_in_array``: analog MVM via
       ``crossbar.mvm``; else through weights from one whole-array read) → GDC factors;
    2. one whole-array read gives weights for batch-norm recalibration on ``X_bn``;
    3. one more whole-array read gives the weights used for inference on ``X_test``.

    With ``gdc_in_array=False`` and ``also_in_array``, the calibration input also goes through
    the array by MVM, and the rows carry the accuracy with those factors as ``gdc_array``: the
    two differ where devices the write-verify flagged (read back as weight 0) still add their
    current to the MVM.

    Returns
    -------
    list of dict
        One row per time: ``t``, ``none``, ``gdc``, ``bn`` (accuracies), ``gdc_array`` (with
        ``also_in_array``) and ``alpha`` (the per-layer mean GDC factors).

    Raises
    ------
    ValueError
        For times that are negative, not increasing, or already past.
    """
    times = check_times(times)
    gdc = [GlobalDriftCompensation(granularity) for _ in range(net.n_layers)]
    x_cal = [calibration_inputs(np.shape(w)[0], n_calibration, seed + i) for i, w in enumerate(net.weights)]

    def outputs() -> list[np.ndarray]:
        return _gdc_outputs(dep, xb, x_cal, None if gdc_in_array else dep.read_weights(xb), v_read)

    array_gdc = [GlobalDriftCompensation(granularity) for _ in range(net.n_layers)] if (also_in_array and not gdc_in_array) else None

    def array_outputs() -> list[np.ndarray]:
        return _gdc_outputs(dep, xb, x_cal, None, v_read)

    for g, y0 in zip(gdc, outputs()):
        g.reference(y0)
    if array_gdc is not None:
        for g, y0 in zip(array_gdc, array_outputs()):
            g.reference(y0)
    rows = []
    for t in times:
        if t > 0:
            wait_after_programming(timer, dep.t_programmed, t)
        alpha = [g.factors(y) for g, y in zip(gdc, outputs())]
        w_cal = dep.read_weights(xb)
        norms = recalibrate_batchnorm(net, X_bn, w_cal, alpha)
        w = dep.read_weights(xb)
        rows.append({
            "t": t,
            "none": net.accuracy(X_test, y_test, w),
            "gdc": net.accuracy(X_test, y_test, w, alpha),
            "bn": net.accuracy(X_test, y_test, w, alpha, norms),
            "alpha": [float(np.mean(a)) for a in alpha],
        })  # fmt: skip
        if array_gdc is not None:
            rows[-1]["gdc_array"] = net.accuracy(X_test, y_test, w, [g.factors(y) for g, y in zip(array_gdc, array_outputs())])
    return rows


def format_time(t: float) -> str:
    """``1 s``, ``1 min``, ``1 h``, ``1 d``, ``1 wk``, ``1 y`` style labels."""
    for unit, s in (("y", 365.25 * 86400), ("wk", 7 * 86400), ("d", 86400), ("h", 3600), ("min", 60)):
        if t >= s and math.isclose(t / s, round(t / s), rel_tol=1e-6):
            return f"{round(t / s)} {unit}"
    return f"{t:g} s"

