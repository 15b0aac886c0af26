"""Mapping-aware biased training (Diware et al., AICAS 2023) for bit-sliced ReRAM arrays.

A weight is a signed 8-bit integer ``q`` times a per-layer step; ``|q|`` is cut into four 2-bit
slices, each slice a differential pair whose raised device sits at one of four conductance
levels (:class:`labrram.mapping.BitSlicedMapping`). Level 0 is the RESET (HRS) state — the
device is RESET and never SET — and levels 1–3 are single-SET levels evenly spaced up to
``g_max``.

The method has four steps:

1. **Rank the states.** For slice ``k`` and level ``l`` the error current is
   ``I_err(k, l) = V_read · σ_l · 2^(2k)``: the calibrated conductance spread of programming
   level ``l`` (HRS log-normal spread for level 0, population spread c2c + d2d for SET
   levels, plus read noise) times the slice's significance — what the variation of that
   state adds to the column current, in units of the least significant slice
   (:func:`level_spreads`, :func:`rank_states`).
2. **Robust states.** The usable states minus the ``n_drop`` of largest error current are
   robust (level 0 always: the idle device of every pair sits there); the integers whose
   slices use only robust states form the constrained code set (:func:`robust_mask`,
   :func:`allowed_magnitudes`). On the shipped calibration the worst state by far is the
   raised level of the most significant slice, so ``n_drop = 1`` bounds the constrained codes
   to ``|q| ≤ 63``.
3. **Important columns.** A column (an output neuron: one crossbar column group) is ranked by
   its first-order Taylor importance ``Σ_i |w_ij · ∂L/∂w_ij|`` over the training set; the top
   ``fraction`` of every layer's columns is constrained (:func:`column_importance`,
   :func:`select_columns`).
4. **Biased training.** Starting from the conventionally trained network, training continues
   with the important columns projected onto the constrained code set in the forward pass
   (straight-through estimator on the latent float weights); at the end they are projected
   for good (:func:`train_biased`). The other columns are quantized to plain 8-bit codes.

Programming (:func:`program_network`) lays the network on one array with
:func:`labrram.mapping.place`, RESETs every level-0 device through the crossbar and programs
the SET levels with the single-shot (open-loop) or the write-verify protocol. Read-back
(:func:`read_weights`) is one batched whole-array read; a variation ``multiplier`` scales each
device's measured deviation from its target, ``G = T + multiplier·(G_read − T)``, to emulate a
more variable chip on the same measurement (``1`` is the chip as measured).

Everything here uses the calibrated model (never the simulated chip's hidden truth).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from labrram.crossbar import Crossbar
from labrram.devices.reram import ReRAMModel
from labrram.mapping import BitSlicedLayer, BitSlicedMapping, Placement, place
from labrram.protocols.single_shot import OneShotSettings, population_sigma, single_shot
from labrram.protocols.write_verify import ReRAMWriteVerify, write_verify_reram

from .bayes import MLP, augment
from .train import TrainSettings, _check_data, _threads, train_deterministic

__all__ = [
    "BiasedNetwork",
    "DiwareSettings",
    "StateRanking",
    "allowed_magnitudes",
    "column_importance",
    "hardware_accuracy",
    "level_spreads",
    "map_network",
    "program_network",
    "project",
    "rank_states",
    "read_weights",
    "robust_mask",
    "usable_states",
    "conventional",
    "software_accuracy",
    "train_conventional",
    "weights_from",
    "select_columns",
    "slice_levels",
    "train_biased",
]

PROTOCOLS = ("single-shot", "write-verify")


# --- 1. ranking of the conductance states ----------------------------------------------------
def slice_levels(model: ReRAMModel, g_max: float, slice_bits: int = 2) -> np.ndarray:
    """Conductances of the ``2^slice_bits`` levels of a slice, S: level 0 is the calibrated HRS
    median (RESET state), the others evenly spaced up to ``g_max`` (as
    :class:`~labrram.mapping.BitSlicedMapping` lays them)."""
    g0 = float(model.hrs_median)
    if not (math.isfinite(g_max) and g_max > g0):
        raise ValueError(f"g_max must be above the HRS median ({g0:.3g} S), got {g_max!r}")
    if int(slice_bits) != slice_bits or slice_bits < 1:
        raise ValueError(f"slice_bits must be a positive integer, got {slice_bits!r}")
    return np.linspace(g0, g_max, 2 ** int(slice_bits))


def level_spreads(model: ReRAMModel, levels: Any) -> np.ndarray:
    """Calibrated standard deviation of the conductance of each level over the array, S.

    Level 0 (the first) is the RESET state: the log-normal HRS spread
    ``median·exp(s²/2)·sqrt(exp(s²) − 1)``. The others are one SET at the level's compliance:
    the population spread (cycle-to-cycle and device-to-device). Read noise is added to all.
    """
    g = np.asarray(levels, dtype=float)
    if g.ndim != 1 or g.size < 2 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError("levels must be a 1-D array of at least two positive conductances (S)")
    s = float(model.hrs_sigma_log)
    hrs = model.hrs_median * math.exp(s * s / 2) * math.sqrt(math.expm1(s * s))
    sd = np.concatenate([[hrs], population_sigma(model, g[1:])])
    return np.sqrt(sd**2 + (model.read_noise_rel * g) ** 2)


@dataclass(frozen=True)
class StateRanking:
    """Conductance states ranked by the error current their variation causes.

    Attributes
    ----------
    sigma : ndarray (n_levels,)
        Conductance spread of each level, S.
    significance : ndarray (n_slices,)
        Binary weight of each slice (``2^(slice_bits·k)``).
    v_read : float
        Read voltage, V.
    error_current : ndarray (n_slices, n_levels)
        ``v_read · sigma[l] · significance[k]``, A (in least-significant-slice units).
    order : ndarray (n_slices · n_levels, 2)
        ``(slice, level)`` pairs, most robust (smallest error current) first.
    """

    sigma: np.ndarray
    significance: np.ndarray
    v_read: float
    error_current: np.ndarray
    order: np.ndarray

    def level_order(self, slice_index: int) -> np.ndarray:
        """Levels of one slice, most robust first."""
        if not 0 <= slice_index < self.significance.size:
            raise ValueError(f"slice_index must be in [0, {self.significance.size}), got {slice_index}")
        return np.argsort(self.error_current[slice_index], kind="stable")


def rank_states(sigma: Any, significance: Any, v_read: float = 0.2) -> StateRanking:
    """Rank every (slice, level) state by its error current ``v_read·σ_l·significance_k``.

    Parameters
    ----------
    sigma : array (n_levels,)
        Conductance spread of each level, S (:func:`level_spreads`).
    significance : array (n_slices,)
        Binary weight of each slice.
    v_read : float
        Read (input) voltage, V.
    """
    s = np.asarray(sigma, dtype=float)
    w = np.asarray(significance, dtype=float)
    if s.ndim != 1 or s.size < 2 or not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("sigma must be a 1-D array of at least two finite spreads >= 0 (S)")
    if w.ndim != 1 or w.size < 1 or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("significance must be a 1-D array of positive numbers")
    if not (math.isfinite(v_read) and v_read > 0):
        raise ValueError(f"v_read must be a positive voltage, got {v_read!r}")
    err = v_read * w[:, None] * s[None, :]
    flat = np.argsort(err.ravel(), kind="stable")
    order = np.column_stack(np.unravel_index(flat, err.shape))
    return StateRanking(s, w, float(v_read), err, order)


def usable_states(bits: int = 8, slice_bits: int = 2) -> np.ndarray:
    """States ``(n_slices, 2^slice_bits)`` that some magnitude ``0 … 2^(bits−1) − 1`` uses (the
    most significant slice of 8-bit codes in 2-bit slices only holds the digits 0 and 1)."""
    if int(bits) != bits or bits < 2 or int(slice_bits) != slice_bits or slice_bits < 1:
        raise ValueError(f"bits must be an integer >= 2 and slice_bits >= 1, got {bits!r}, {slice_bits!r}")
    n_slices = -(-(bits - 1) // slice_bits)
    q_max = 2 ** (bits - 1) - 1
    levels = np.arange(2**slice_bits)
    return np.stack([levels <= min(q_max >> (slice_bits * k), 2**slice_bits - 1) for k in range(n_slices)])


def robust_mask(ranking: StateRanking, n_drop: int = 1, usable: Any = None) -> np.ndarray:
    """Robust states ``(n_slices, n_levels)``: every usable state except the ``n_drop`` with the
    largest error current. Level 0 is always kept (the idle device of every pair sits there).

    ``usable`` is a boolean ``(n_slices, n_levels)`` mask of the states codes can use
    (:func:`usable_states`; None: all).
    """
    shape = ranking.error_current.shape
    use = np.ones(shape, dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    if use.shape != shape:
        raise ValueError(f"usable must have shape {shape}, got {use.shape}")
    if int(n_drop) != n_drop or n_drop < 0:
        raise ValueError(f"n_drop must be an integer >= 0, got {n_drop!r}")
    candidates = [(int(k), int(l)) for k, l in ranking.order if use[k, l] and l != 0]
    if n_drop > len(candidates):
        raise ValueError(f"n_drop = {n_drop} exceeds the {len(candidates)} usable non-zero states")
    mask = use.copy()
    for k, l in candidates[len(candidates) - int(n_drop):]:
        mask[k, l] = False
    mask[:, 0] = True
    return mask


def allowed_magnitudes(mask: Any, bits: int = 8, slice_bits: int = 2) -> np.ndarray:
    """Sorted integer magnitudes ``0 … 2^(bits−1) − 1`` whose every slice digit is an allowed
    level of ``mask`` ``(n_slices, 2^slice_bits)``."""
    m = np.asarray(mask, dtype=bool)
    n_slices = -(-(bits - 1) // slice_bits)
    if m.shape != (n_slices, 2**slice_bits):
        raise ValueError(f"mask must have shape {(n_slices, 2**slice_bits)} for {bits}-bit codes in {slice_bits}-bit slices, got {m.shape}")
    q = np.arange(2 ** (bits - 1))
    ok = np.ones(q.size, dtype=bool)
    for k in range(n_slices):
        ok &= m[k, (q >> (slice_bits * k)) & (2**slice_bits - 1)]
    return q[ok]


# --- 2. column importance --------------------------------------------------------------------
def column_importance(model: MLP, X: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """First-order Taylor importance of every output column, per layer:
    ``Σ_i |w_ij · ∂L/∂w_ij|`` (bias included) of the mean cross-entropy over ``(X, y)``."""
    Xt, yt, _ = _check_data(X, y, model.sizes)
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(Xt), yt).backward()
    out = []
    with torch.no_grad():
        for layer in model.layers:
            w = augment(layer.weight, layer.bias)
            g = augment(layer.weight.grad, layer.bias.grad)
            out.append((w * g).abs().sum(dim=0).double().numpy())
    model.zero_grad(set_to_none=True)
    return out


def select_columns(importance: Sequence[Any], fraction: float) -> list[np.ndarray]:
    """Boolean masks of the top ``fraction`` of each layer's columns by importance
    (``ceil(fraction·n_out)`` per layer; ties broken by column order)."""
    if not (math.isfinite(fraction) and 0 <= fraction <= 1):
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    out = []
    for imp in importance:
        a = np.asarray(imp, dtype=float)
        if a.ndim != 1 or not np.all(np.isfinite(a)):
            raise ValueError("every layer's importance must be a 1-D array of finite numbers")
        n = math.ceil(fraction * a.size - 1e-9)
        m = np.zeros(a.size, dtype=bool)
        m[np.argsort(-a, kind="stable")[:n]] = True
        out.append(m)
    return out


# --- 3. projection and biased training -------------------------------------------------------
def project(W: Any, step: float, magnitudes: Any) -> np.ndarray:
    """Nearest value of ``±step·magnitudes`` to every weight (beyond the largest: clipped)."""
    w = torch.as_tensor(np.asarray(W, dtype=float))
    return _project_t(w, torch.as_tensor(np.asarray(magnitudes, dtype=float)), float(step)).numpy()


def _project_t(w: torch.Tensor, mags: torch.Tensor, step: float) -> torch.Tensor:
    a = (w.abs() / step).clamp(max=float(mags[-1]))
    i = torch.searchsorted(mags.to(a.dtype), a.contiguous()).clamp(1, mags.numel() - 1)
    lo, hi = mags[i - 1].to(a.dtype), mags[i].to(a.dtype)
    m = torch.where(a - lo <= hi - a, lo, hi)
    return torch.sign(w) * m * step


@dataclass(frozen=True)
class DiwareSettings:
    """Settings of the study (SI units).

    Attributes
    ----------
    hidden : int
        Hidden width of the ``n_in-hidden-n_classes`` ReLU network.
    fraction : float
        Fraction ``m`` of each layer's columns constrained to robust states.
    n_drop : int
        Most error-prone usable states excluded from the robust set.
    bits, slice_bits : int
        Weight codes (sign included) and bits per slice.
    g_max : float
        Highest slice level, S.
    v_read : float
        Read voltage for the error currents, V.
    pretrain : TrainSettings
        Conventional training (also the starting point of the biased one).
    finetune_epochs : int
        Epochs of biased training with the projection.
    finetune_lr : float
        Adam learning rate of the biased training.
    """

    hidden: int = 16
    fraction: float = 1.0
    n_drop: int = 1
    bits: int = 8
    slice_bits: int = 2
    g_max: float = 200e-6
    v_read: float = 0.2
    pretrain: TrainSettings = TrainSettings(epochs=80, lr=1e-2, batch_size=100, weight_decay=1e-4)
    finetune_epochs: int = 40
    finetune_lr: float = 3e-3

    def __post_init__(self) -> None:
        if int(self.hidden) != self.hidden or self.hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {self.hidden!r}")
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"fraction must be in [0, 1], got {self.fraction!r}")
        if int(self.finetune_epochs) != self.finetune_epochs or self.finetune_epochs < 0:
            raise ValueError(f"finetune_epochs must be an integer >= 0, got {self.finetune_epochs!r}")
        if not (math.isfinite(self.finetune_lr) and self.finetune_lr > 0):
            raise ValueError(f"finetune_lr must be positive, got {self.finetune_lr!r}")

    def mapping(self, model: ReRAMModel) -> BitSlicedMapping:
        """The bit-sliced mapping: level 0 at the calibrated HRS median, top level ``g_max``."""
        return BitSlicedMapping(g_min=float(model.hrs_median), g_max=self.g_max, bits=self.bits, slice_bits=self.slice_bits)

    def ranking(self, model: ReRAMModel) -> StateRanking:
        """States ranked from the calibrated model."""
        mp = self.mapping(model)
        sig = 2.0 ** (self.slice_bits * np.arange(mp.n_slices))
        return rank_states(level_spreads(model, slice_levels(model, self.g_max, self.slice_bits)), sig, self.v_read)

    def magnitudes(self, model: ReRAMModel) -> np.ndarray:
        """The constrained code set (magnitudes using robust states only)."""
        usable = usable_states(self.bits, self.slice_bits)
        return allowed_magnitudes(robust_mask(self.ranking(model), self.n_drop, usable), self.bits, self.slice_bits)


@dataclass
class BiasedNetwork:
    """A trained network ready for bit-sliced mapping.

    Attributes
    ----------
    weights : list of ndarray
        Augmented ``(n_in + 1, n_out)`` weights; constrained columns are exact robust codes.
    steps : list of float
        Quantization step of every layer (weight per LSB).
    columns : list of ndarray
        Boolean masks of the constrained columns.
    importance : list of ndarray
        Column importance of the conventional network.
    magnitudes : ndarray
        The constrained code set.
    """

    weights: list[np.ndarray]
    steps: list[float]
    columns: list[np.ndarray]
    importance: list[np.ndarray]
    magnitudes: np.ndarray

    def codes(self, q_max: int) -> list[np.ndarray]:
        """Signed integer codes of every layer (rounded, clipped to ``±q_max``)."""
        return [np.clip(np.rint(w / s), -q_max, q_max).astype(np.int64) for w, s in zip(self.weights, self.steps)]


def _steps(weights: Sequence[np.ndarray], q_max: int) -> list[float]:
    return [float(np.max(np.abs(w))) / q_max for w in weights]


def conventional(model: MLP, q_max: int = 127) -> BiasedNetwork:
    """The conventionally trained network as a :class:`BiasedNetwork` with no constrained
    column (plain 8-bit codes at the per-layer step ``max|W|/q_max``)."""
    w = model.weights()
    return BiasedNetwork(w, _steps(w, q_max), [np.zeros(x.shape[1], bool) for x in w], [], np.arange(q_max + 1))


def train_biased(
    X: np.ndarray,
    y: np.ndarray,
    base: MLP,
    magnitudes: Any,
    fraction: float,
    epochs: int = 100,
    lr: float = 3e-3,
    batch_size: int | None = 100,
    seed: int = 0,
    q_max: int = 127,
) -> BiasedNetwork:
    """Continue training ``base`` (a conventionally trained :class:`MLP`, left untouched) with
    the top ``fraction`` of each layer's columns projected onto ``±step·magnitudes`` in the
    forward pass (straight-through estimator), then project them for good.

    The step of each layer is fixed from ``base`` (``max|W|/q_max``), and every weight is held
    within ``±q_max·step`` so that the mapping's scale does not move.
    """
    mags = np.unique(np.asarray(magnitudes, dtype=np.int64))
    if mags.size < 2 or mags[0] != 0 or mags[-1] > q_max:
        raise ValueError(f"magnitudes must include 0 and at least one code in [1, {q_max}], got {mags.tolist()}")
    Xt, yt, sizes = _check_data(X, y, base.sizes)
    importance = column_importance(base, X, y)
    columns = select_columns(importance, fraction)
    w0 = base.weights()
    steps = _steps(w0, q_max)
    with _threads(1):
        gen = torch.Generator().manual_seed(int(seed))
        model = MLP(sizes)
        model.load_state_dict(base.state_dict())
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        mags_t = torch.as_tensor(mags, dtype=torch.float32)
        cols_t = [torch.as_tensor(c) for c in columns]
        lims = [q_max * s for s in steps]

        def effective(li: int, layer: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
            w = augment(layer.weight, layer.bias)  # (n_in + 1, n_out)
            p = _project_t(w, mags_t, steps[li])
            w = torch.where(cols_t[li][None, :], w + (p - w).detach(), w)  # straight through
            return w[:-1].t(), w[-1]

        n = Xt.shape[0]
        model.train()
        for _ in range(int(epochs)):
            perm = torch.randperm(n, generator=gen)
            for idx in torch.split(perm, n if batch_size is None else int(batch_size)):
                h = Xt[idx]
                for li, layer in enumerate(model.layers):
                    wt, b = effective(li, layer)
                    h = F.linear(h, wt, b)
                    if li < len(model.layers) - 1:
                        h = F.relu(h)
                loss = F.cross_entropy(h, yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    for layer, lim in zip(model.layers, lims):
                        layer.weight.clamp_(-lim, lim)
                        layer.bias.clamp_(-lim, lim)
        model.eval()
    weights = []
    for w, s, c in zip(model.weights(), steps, columns):
        w = w.copy()
        w[:, c] = project(w[:, c], s, mags)
        weights.append(w)
    return BiasedNetwork(weights, steps, columns, importance, mags)


def software_accuracy(weights: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of augmented weights (numpy forward pass, ReLU hidden layers)."""
    h = np.asarray(X, dtype=float)
    for i, w in enumerate(weights):
        h = np.concatenate([h, np.ones((h.shape[0], 1))], axis=1) @ w
        if i < len(weights) - 1:
            h = np.maximum(h, 0.0)
    return float(np.mean(np.argmax(h, axis=1) == np.asarray(y)))


# --- 4. mapping, programming, read-back ----------------------------------------------------
def _layer_from_codes(mp: BitSlicedMapping, codes: np.ndarray, step: float) -> BitSlicedLayer:
    """A :class:`BitSlicedLayer` of given integer codes at a given step (the mapping's own
    layout; the mapping would otherwise re-derive the step from ``max|W|``)."""
    mag = np.abs(codes)
    base = 2**mp.slice_bits
    digits = np.stack([(mag >> (mp.slice_bits * k)) & (base - 1) for k in range(mp.n_slices)])
    raised = mp.g_min + mp.delta_g * digits
    sig = 2.0 ** (mp.slice_bits * np.arange(mp.n_slices))
    steps = np.full(codes.shape[1], step)
    gamma = mp.delta_g / (steps[None, :] * sig[:, None])
    ro = lambda a: (a.setflags(write=False), a)[1]  # noqa: E731
    return BitSlicedLayer(
        g_plus=ro(np.where(codes > 0, raised, mp.g_min)),
        g_minus=ro(np.where(codes < 0, raised, mp.g_min)),
        gamma=ro(gamma), g_min=mp.g_min, g_max=mp.g_max, scale="layer", clip=None, clipped=0,
        target_weights=ro(step * codes.astype(float)), bits=mp.bits, slice_bits=mp.slice_bits,
        step=ro(steps), codes=ro(codes.copy()), delta_g=mp.delta_g,
    )  # fmt: skip


def map_network(net: BiasedNetwork, mapping: BitSlicedMapping) -> list[BitSlicedLayer]:
    """Bit-sliced layers of a network at its own per-layer steps."""
    return [_layer_from_codes(mapping, c, s) for c, s in zip(net.codes(mapping.q_max), net.steps)]


@dataclass
class Programmed:
    """A bit-sliced network on one array: placement, target map (S, NaN = unused) and the
    mask of the devices left at level 0 (RESET only)."""

    placement: Placement
    targets: np.ndarray
    level0: np.ndarray
    protocol: str


def program_network(
    xb: Crossbar,
    layers: Sequence[BitSlicedLayer],
    model: ReRAMModel,
    protocol: str = "single-shot",
) -> Programmed:
    """Program bit-sliced layers onto one array: RESET every level-0 device, then program the
    SET levels with ``protocol`` (``"single-shot"`` or ``"write-verify"``) from the calibrated
    ``model``. Raises :class:`~labrram.mapping.PlacementError` when the network needs more
    than the one array."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    pl = place(list(layers), xb.shape, max_arrays=1)
    t = pl.targets(0)
    g0 = layers[0].g_min
    level0 = np.isfinite(t) & np.isclose(t, g0, rtol=1e-9, atol=0.0)
    r, c = np.nonzero(level0)
    s = OneShotSettings()
    xb.reset((r, c), gate=s.reset_gate, amplitude=s.reset_amplitude, width=s.reset_width)
    setting = np.where(level0, np.nan, t)
    if protocol == "single-shot":
        single_shot(xb, setting, model)
    else:
        write_verify_reram(xb, setting, model, ReRAMWriteVerify())
    return Programmed(pl, t, level0, protocol)


def read_weights(xb: Crossbar, prog: Programmed, multiplier: float = 1.0) -> list[np.ndarray]:
    """Weights read back in one batched whole-array read; each device's deviation from its
    target is scaled by ``multiplier`` (1: as measured)."""
    return weights_from(xb.read(), prog, multiplier)


def weights_from(g: np.ndarray, prog: Programmed, multiplier: float = 1.0) -> list[np.ndarray]:
    """Weights of a measured conductance map (S) with the deviation scaled by ``multiplier``."""
    if not (math.isfinite(multiplier) and multiplier >= 0):
        raise ValueError(f"multiplier must be a number >= 0, got {multiplier!r}")
    t = prog.targets
    g = np.asarray(g, dtype=float)
    eff = np.where(np.isfinite(t), t + multiplier * (g - np.nan_to_num(t)), g)
    w = prog.placement.weights({0: eff})
    return [w[k] for k in sorted(w)]


def hardware_accuracy(weights: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of read-back weights (alias of :func:`software_accuracy`)."""
    return software_accuracy(weights, X, y)


def train_conventional(X: np.ndarray, y: np.ndarray, sizes: Sequence[int], settings: TrainSettings) -> MLP:
    """The conventional network (:func:`labrram.nn.train.train_deterministic`)."""
    return train_deterministic(X, y, sizes, settings)[0]
