"""Deterministic weight → conductance mapping: differential pairs and bit slices.

Every conductance is in siemens; weights are in whatever unit the network uses. numpy only:
this room never imports torch, the simulator, the drivers or ``labrram.nn``.

Differential mapping (methods 3 and 5, write-verify in general)
----------------------------------------------------------------
A weight matrix ``W`` of shape ``(n_in, n_out)`` (rows = inputs = array rows, columns =
outputs) becomes two conductance matrices of the same shape::

    W ↦ (G⁺ − G⁻) / γ,      G⁺ = g_min + γ·max(W, 0),      G⁻ = g_min + γ·max(−W, 0)

with ``γ = (g_max − g_min) / max|W|`` in S per weight unit, one per layer (``scale="layer"``)
or one per output column (``scale="column"``). Only the device matching the weight's sign is
raised above ``g_min``; the other stays at ``g_min`` (the conductance that means "zero": the
HRS floor or the lowest programmable level). Optionally the weights are first clipped at
``±clip_sigma·std(W)`` (Joshi et al. 2020 use 2.0–2.5), so that a few outliers do not squeeze
every other weight into the bottom of the conductance range.

Bit-sliced mapping (method 5, Diware et al. 2023)
-------------------------------------------------
``W`` is quantized to signed ``bits``-bit integers ``q ∈ [−(2^(bits−1) − 1), 2^(bits−1) − 1]``
(``W ≈ step·q``, one ``step`` per layer or per column). The magnitude ``|q|`` is cut into
``n_slices = ceil((bits − 1) / slice_bits)`` digits of ``slice_bits`` bits (for the default
8 / 2 that is the four 2-bit slices of the method); digit ``d_k`` of slice ``k`` is the level
``g_min + d_k·Δg`` with ``Δg = (g_max − g_min) / (2^slice_bits − 1)``, on the device of the
slice's differential pair that matches the sign. Reading back::

    W = step · Σ_k 2^(slice_bits·k) · (G⁺_k − G⁻_k) / Δg = Σ_k (G⁺_k − G⁻_k) / γ_k

so each slice has its own scale ``γ_k = Δg / (step · 2^(slice_bits·k))``; slice 0 is the
least significant.

Placement of mapped layers onto arrays (tiles, packing, read-back, MVM by tile) is
:mod:`labrram.mapping.placement`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = [
    "BitSlicedLayer",
    "BitSlicedMapping",
    "DifferentialMapping",
    "MappedLayer",
    "input_order",
]

_SCALES = ("layer", "column")


# --- validation ----------------------------------------------------------------------------
def _weights(W: Any) -> np.ndarray:
    """A weight matrix as a float (n_in, n_out) array, or a ValueError naming the problem."""
    try:
        w = np.array(W, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("weights must be numbers (a 2-D array of floats)") from None
    if w.ndim != 2:
        raise ValueError(f"weights must be 2-D (in_features × out_features), got {w.ndim}-D with shape {w.shape}")
    if w.size == 0:
        raise ValueError(f"weights are empty (shape {w.shape})")
    bad = ~np.isfinite(w)
    if np.any(bad):
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{int(bad.sum())} weight(s) are not finite (first at [{r}, {c}]: {w[r, c]})")
    if not np.any(w):
        raise ValueError("weights are all zero: there is no scale to map them with")
    return w


def _check_range(g_min: float, g_max: float, scale: str, clip_sigma: float | None) -> None:
    if not (math.isfinite(g_min) and math.isfinite(g_max)):
        raise ValueError(f"g_min and g_max must be finite, got {g_min!r}, {g_max!r}")
    if g_min < 0:
        raise ValueError(f"g_min must be >= 0 S, got {g_min!r}")
    if not g_max > g_min:
        raise ValueError(f"g_max ({g_max!r} S) must be above g_min ({g_min!r} S)")
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {_SCALES}, got {scale!r}")
    if clip_sigma is not None and not (math.isfinite(clip_sigma) and clip_sigma > 0):
        raise ValueError(f"clip_sigma must be None or a positive number, got {clip_sigma!r}")


def _clip(w: np.ndarray, clip_sigma: float | None) -> tuple[np.ndarray, float | None, int]:
    """Clip at ±clip_sigma·std(W); return (clipped W, threshold or None, count clipped)."""
    if clip_sigma is None:
        return w, None, 0
    sd = float(np.std(w))
    if sd == 0.0:  # every weight equal: nothing stands out, clipping at 0 would erase them all
        return w, None, 0
    t = clip_sigma * sd
    n = int(np.count_nonzero(np.abs(w) > t))
    return np.clip(w, -t, t), t, n


def _column_max(w: np.ndarray, scale: str) -> np.ndarray:
    """max|W| per output column (layer scale: the layer's max on every column). An all-zero
    column in per-column mode takes the layer's max, so its scale stays finite."""
    layer = float(np.max(np.abs(w)))
    if scale == "layer":
        return np.full(w.shape[1], layer)
    m = np.max(np.abs(w), axis=0)
    return np.where(m > 0, m, layer)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _measured(name: str, g: Any, shape: tuple[int, ...]) -> np.ndarray:
    try:
        a = np.asarray(g, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers (conductances in S)") from None
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, the layer's devices are {shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has {int((~np.isfinite(a)).sum())} value(s) that are not finite")
    return a


def input_order(order: Any, n_in: int) -> np.ndarray:
    """``order`` as an integer array; ValueError unless a permutation of ``0 … n_in − 1``."""
    o = np.asarray(order)
    if o.shape != (n_in,) or o.dtype.kind not in "iu" or not np.array_equal(np.sort(o), np.arange(n_in)):
        raise ValueError(f"order must be a permutation of the layer's {n_in} inputs, got {order!r}")
    return o


# --- mapped layers -------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class MappedLayer:
    """A weight matrix mapped onto differential pairs.

    Attributes
    ----------
    g_plus, g_minus : ndarray (n_in, n_out)
        Conductance targets of the positive and negative devices, S.
    gamma : ndarray (n_out,)
        Scale of every output column, S per weight unit (all equal for ``scale="layer"``).
    g_min, g_max : float
        The conductance range, S.
    scale : str
        ``"layer"`` or ``"column"``.
    clip : float or None
        Clipping threshold applied, in weight units (``clip_sigma·std(W)``), None if none.
    clipped : int
        Number of weights that were clipped.
    target_weights : ndarray (n_in, n_out)
        The weights the targets encode exactly (W after clipping).
    """

    g_plus: np.ndarray
    g_minus: np.ndarray
    gamma: np.ndarray
    g_min: float
    g_max: float
    scale: str
    clip: float | None
    clipped: int
    target_weights: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """Weight shape ``(n_in, n_out)``."""
        return self.target_weights.shape  # type: ignore[return-value]

    @property
    def n_slices(self) -> int:
        """Differential pairs per weight (1 here; the bit-sliced layer has more)."""
        return 1

    @property
    def n_devices(self) -> int:
        """Devices the layer needs: two per weight and slice."""
        return 2 * self.n_slices * self.target_weights.size

    def weights_from(self, g_plus_measured: Any, g_minus_measured: Any) -> np.ndarray:
        """Effective weights ``(G⁺ − G⁻)/γ`` of measured conductances (S, the shape of
        :attr:`g_plus`)."""
        gp = _measured("g_plus_measured", g_plus_measured, self.g_plus.shape)
        gm = _measured("g_minus_measured", g_minus_measured, self.g_minus.shape)
        return (gp - gm) / self.gamma

    def mvm_weights(self, g_plus: Any = None, g_minus: Any = None) -> np.ndarray:
        """The matrix the array multiplies by: from measured conductances when given, else the
        ideal one the targets encode (:attr:`target_weights`)."""
        if g_plus is None and g_minus is None:
            return self.target_weights
        if g_plus is None or g_minus is None:
            raise ValueError("give both g_plus and g_minus, or neither")
        return self.weights_from(g_plus, g_minus)

    def mvm(self, x: Any, g_plus: Any = None, g_minus: Any = None) -> np.ndarray:
        """``y = x · W`` through the mapped (or measured) conductances; ``x`` is (n_in,) or
        (batch, n_in)."""
        x = np.asarray(x, dtype=float)
        if x.shape[-1:] != (self.shape[0],):
            raise ValueError(f"x has shape {x.shape}, the layer takes {self.shape[0]} inputs")
        return x @ self.mvm_weights(g_plus, g_minus)

    def with_input_order(self, order: Any) -> "MappedLayer":
        """The same layer with its inputs in another order: row ``p`` of the result is row
        ``order[p]`` of this one (a permutation of ``0 … n_in − 1``). Scales and clipping do not
        depend on the order, so this is what mapping the reordered matrix gives."""
        o = input_order(order, self.shape[0])
        stacked = {k: _frozen(self._unstack(self._stack(getattr(self, k))[:, o])) for k in ("g_plus", "g_minus")}
        return replace(self, target_weights=_frozen(self.target_weights[o]), **self._reordered(o), **stacked)

    def _reordered(self, order: np.ndarray) -> dict[str, np.ndarray]:
        """Further per-input fields of a subclass, in ``order``."""
        return {}

    # the slice-stacked view used by placement: (n_slices, n_in, n_out) and (n_slices, n_out)
    def _stack(self, g: np.ndarray) -> np.ndarray:
        return g[None]

    def _unstack(self, g: np.ndarray) -> np.ndarray:
        return g[0]

    def _gammas(self) -> np.ndarray:
        return self.gamma[None]


@dataclass(frozen=True, eq=False)
class BitSlicedLayer(MappedLayer):
    """A weight matrix quantized and bit-sliced onto ``n_slices`` differential pairs per weight.

    ``g_plus`` and ``g_minus`` have shape ``(n_slices, n_in, n_out)``, slice 0 least
    significant; ``gamma`` has shape ``(n_slices, n_out)``. ``codes`` are the signed integers
    (``target_weights = step · codes``), ``step`` the weight per LSB of every column, ``delta_g``
    the conductance between adjacent levels.
    """

    bits: int = 8
    slice_bits: int = 2
    step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    codes: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    delta_g: float = 0.0

    @property
    def n_slices(self) -> int:
        return int(self.g_plus.shape[0])

    @property
    def significance(self) -> np.ndarray:
        """Binary weight of each slice, ``2^(slice_bits·k)``."""
        return 2.0 ** (self.slice_bits * np.arange(self.n_slices))

    def weights_from(self, g_plus_measured: Any, g_minus_measured: Any, snap: bool = False) -> np.ndarray:
        """Recombine measured slices: ``Σ_k (G⁺_k − G⁻_k)/γ_k``. With ``snap`` each slice's
        level difference is rounded to the nearest integer first (a digital multi-level read),
        which removes programming error smaller than half a level."""
        gp = _measured("g_plus_measured", g_plus_measured, self.g_plus.shape)
        gm = _measured("g_minus_measured", g_minus_measured, self.g_minus.shape)
        levels = (gp - gm) / self.delta_g
        if snap:
            levels = np.rint(levels)
        return self.step * np.tensordot(self.significance, levels, axes=1)

    def _reordered(self, order: np.ndarray) -> dict[str, np.ndarray]:
        return {"codes": _frozen(self.codes[order])}

    def _stack(self, g: np.ndarray) -> np.ndarray:
        return g

    def _unstack(self, g: np.ndarray) -> np.ndarray:
        return g

    def _gammas(self) -> np.ndarray:
        return self.gamma


# --- mappings ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DifferentialMapping:
    """Deterministic differential mapping ``W ↦ (G⁺ − G⁻)/γ`` (see the module docstring).

    Parameters
    ----------
    g_min : float
        Conductance that means "zero" (HRS floor or lowest programmable level), S.
    g_max : float
        Conductance that ``max|W|`` reaches on its device, S.
    scale : str
        ``"layer"``: one γ for the whole matrix; ``"column"``: one γ per output column.
    clip_sigma : float or None
        Clip weights at ``±clip_sigma·std(W)`` before scaling (None: no clipping).
    """

    g_min: float
    g_max: float
    scale: str = "layer"
    clip_sigma: float | None = None

    def __post_init__(self) -> None:
        _check_range(self.g_min, self.g_max, self.scale, self.clip_sigma)

    def map(self, W: Any) -> MappedLayer:
        """Map a weight matrix (in_features × out_features) onto conductance targets."""
        w = _weights(W)
        w, t, n = _clip(w, self.clip_sigma)
        gamma = (self.g_max - self.g_min) / _column_max(w, self.scale)
        g_plus = self.g_min + gamma * np.maximum(w, 0.0)
        g_minus = self.g_min + gamma * np.maximum(-w, 0.0)
        return MappedLayer(
            g_plus=_frozen(g_plus),
            g_minus=_frozen(g_minus),
            gamma=_frozen(gamma),
            g_min=float(self.g_min),
            g_max=float(self.g_max),
            scale=self.scale,
            clip=t,
            clipped=n,
            target_weights=_frozen(w),
        )


@dataclass(frozen=True, kw_only=True)
class BitSlicedMapping:
    """Bit-sliced mapping: signed ``bits``-bit integers, magnitude cut into ``slice_bits``-bit
    slices, one differential pair per slice (see the module docstring).

    Parameters
    ----------
    g_min, g_max : float
        Lowest and highest of the ``2^slice_bits`` levels of every slice, S.
    bits : int
        Bits of the signed integers (sign included), >= 2.
    slice_bits : int
        Bits per slice, >= 1.
    scale : str
        ``"layer"`` or ``"column"``: one quantization step per layer or per output column.
    clip_sigma : float or None
        Clip at ``±clip_sigma·std(W)`` before quantizing.
    """

    g_min: float
    g_max: float
    bits: int = 8
    slice_bits: int = 2
    scale: str = "layer"
    clip_sigma: float | None = None

    def __post_init__(self) -> None:
        _check_range(self.g_min, self.g_max, self.scale, self.clip_sigma)
        for name in ("bits", "slice_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{name} must be an integer, got {v!r}")
        if self.bits < 2:
            raise ValueError(f"bits must be >= 2 (sign + magnitude), got {self.bits}")
        if self.slice_bits < 1:
            raise ValueError(f"slice_bits must be >= 1, got {self.slice_bits}")

    @property
    def n_slices(self) -> int:
        """Slices per weight: ``ceil((bits − 1) / slice_bits)`` (the sign lives in the pair)."""
        return -(-(self.bits - 1) // self.slice_bits)

    @property
    def q_max(self) -> int:
        """Largest magnitude of the signed integers, ``2^(bits−1) − 1``."""
        return 2 ** (self.bits - 1) - 1

    @property
    def delta_g(self) -> float:
        """Conductance between adjacent levels of one slice, S."""
        return (self.g_max - self.g_min) / (2**self.slice_bits - 1)

    def map(self, W: Any) -> BitSlicedLayer:
        """Quantize, slice and map a weight matrix (in_features × out_features)."""
        w = _weights(W)
        w, t, n = _clip(w, self.clip_sigma)
        step = _column_max(w, self.scale) / self.q_max
        codes = np.clip(np.rint(w / step), -self.q_max, self.q_max).astype(np.int64)
        mag = np.abs(codes)
        base = 2**self.slice_bits
        digits = np.stack([(mag >> (self.slice_bits * k)) & (base - 1) for k in range(self.n_slices)])
        dg = self.delta_g
        raised = self.g_min + dg * digits
        g_plus = np.where(codes > 0, raised, self.g_min)
        g_minus = np.where(codes < 0, raised, self.g_min)
        significance = 2.0 ** (self.slice_bits * np.arange(self.n_slices))
        gamma = dg / (step[None, :] * significance[:, None])
        return BitSlicedLayer(
            g_plus=_frozen(g_plus),
            g_minus=_frozen(g_minus),
            gamma=_frozen(gamma),
            g_min=float(self.g_min),
            g_max=float(self.g_max),
            scale=self.scale,
            clip=t,
            clipped=n,
            target_weights=_frozen(step * codes),
            bits=int(self.bits),
            slice_bits=int(self.slice_bits),
            step=_frozen(step),
            codes=_frozen(codes),
            delta_g=float(dg),
        )
