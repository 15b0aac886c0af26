"""Deterministic weight → conductance mapping, and placement of layers onto crossbar arrays.

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

Placement onto arrays
---------------------
Layout of one tile (a block ``W[inputs, outputs]`` of a layer on one array): the tile's inputs
drive consecutive array rows; each output takes ``2·n_slices`` consecutive array columns, the
differential pairs adjacent and the slices in order of significance::

    output j:  [slice0 G⁺, slice0 G⁻, slice1 G⁺, slice1 G⁻, ...]   (plain mapping: [G⁺, G⁻])

A layer whose inputs do not fit the array's rows is cut into *row tiles*: each gives partial
column currents for its inputs and the partial results of one output are added digitally. A
layer whose outputs do not fit the columns is cut into *column tiles*, which are independent.
Cuts are balanced (a 64×100 layer on 128 columns becomes two 64×50 halves, not 64 + 36).

Tiles are packed with a maximal-rectangles first-fit: layers in order of decreasing device
count, each tile at the top-most, then left-most free position of the first array that has
room. When a layer's minimal cut does not fit the arrays already opened, a few finer cuts are
tried before a new array is opened (arrays are the scarce resource; tiles only cost read
phases). Tiles may therefore share rows (side by side) or columns (stacked) with other tiles:
every tile is read on its own — its rows driven with its inputs, every other row at 0 V, only
its columns sensed — which is what :meth:`Placement.mvm` does. Rows at 0 V add no current and
columns not sensed are ignored, so tiles never disturb each other.

The 64-100-10 digits network (2·(64·100 + 100·10) = 14,800 devices) fits one 128×128 array::

    rows   0– 63, cols   0– 99   layer 0, outputs  0–49   (64 inputs × 50 pairs)
    rows  64–127, cols   0– 99   layer 0, outputs 50–99   (same inputs, second read phase)
    rows   0– 99, cols 100–119   layer 1, outputs  0– 9   (100 inputs × 10 pairs)

(the 64×100 layer needs 200 columns, more than the array has; its two column halves are stacked
on the row space that its 64 inputs leave free).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "BitSlicedLayer",
    "BitSlicedMapping",
    "DifferentialMapping",
    "MappedLayer",
    "Placement",
    "PlacementError",
    "Tile",
    "place",
    "tile_count",
]

_SCALES = ("layer", "column")


class PlacementError(ValueError):
    """Layers that cannot be laid onto the arrays as asked."""


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


# --- placement -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Tile:
    """One block ``W[inputs, outputs]`` of a layer laid on one array.

    The block's inputs occupy array rows ``row … row + n_rows − 1``; output ``j`` of the block
    occupies columns ``col + 2·n_slices·j … + 2·n_slices − 1`` as
    ``[slice0 G⁺, slice0 G⁻, slice1 G⁺, …]``.
    """

    layer: Hashable
    array: int
    row: int
    col: int
    inputs: slice
    outputs: slice
    n_slices: int = 1

    @property
    def n_rows(self) -> int:
        return self.inputs.stop - self.inputs.start

    @property
    def n_outputs(self) -> int:
        return self.outputs.stop - self.outputs.start

    @property
    def n_cols(self) -> int:
        return 2 * self.n_slices * self.n_outputs

    @property
    def shape(self) -> tuple[int, int]:
        """Array cells the tile covers, (rows, cols)."""
        return self.n_rows, self.n_cols

    @property
    def rows(self) -> slice:
        """Array rows of the tile."""
        return slice(self.row, self.row + self.n_rows)

    @property
    def cols(self) -> slice:
        """Array columns of the tile."""
        return slice(self.col, self.col + self.n_cols)

    @property
    def n_devices(self) -> int:
        return self.n_rows * self.n_cols


class _Free:
    """Free space of one array as maximal free rectangles (row, col, height, width)."""

    def __init__(self, shape: tuple[int, int], rects: list[tuple[int, int, int, int]] | None = None):
        self.shape = shape
        self.rects = [(0, 0, shape[0], shape[1])] if rects is None else list(rects)

    def copy(self) -> "_Free":
        return _Free(self.shape, self.rects)

    def find(self, h: int, w: int) -> tuple[int, int] | None:
        fits = [(r, c) for r, c, fh, fw in self.rects if h <= fh and w <= fw]
        return min(fits) if fits else None

    def occupy(self, r: int, c: int, h: int, w: int) -> None:
        out = []
        for fr, fc, fh, fw in self.rects:
            if r >= fr + fh or fr >= r + h or c >= fc + fw or fc >= c + w:
                out.append((fr, fc, fh, fw))
                continue
            if r > fr:
                out.append((fr, fc, r - fr, fw))
            if r + h < fr + fh:
                out.append((r + h, fc, fr + fh - r - h, fw))
            if c > fc:
                out.append((fr, fc, fh, c - fc))
            if c + w < fc + fw:
                out.append((fr, c + w, fh, fc + fw - c - w))
        out = sorted(set(out))
        self.rects = [
            a
            for i, a in enumerate(out)
            if not any(
                j != i and b[0] <= a[0] and b[1] <= a[1] and a[0] + a[2] <= b[0] + b[2] and a[1] + a[3] <= b[1] + b[3]
                for j, b in enumerate(out)
            )
        ]


def _cuts(n: int, k: int) -> list[slice]:
    """``n`` items in ``k`` balanced consecutive parts."""
    q, r = divmod(n, k)
    out, start = [], 0
    for i in range(k):
        size = q + (1 if i < r else 0)
        out.append(slice(start, start + size))
        start += size
    return out


def _array_shape(array_shape: Any) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in array_shape)
    except (TypeError, ValueError):
        raise PlacementError(f"array_shape must be (rows, cols), got {array_shape!r}") from None
    if rows < 1 or cols < 1:
        raise PlacementError(f"array_shape must be positive, got {(rows, cols)}")
    return rows, cols


def _pack(
    specs: Sequence[tuple[Hashable, int, int, int]],
    array_shape: tuple[int, int],
    max_arrays: int | None,
    refine: int = 3,
) -> tuple[list[Tile], int]:
    """Lay layers ``(key, n_in, n_out, n_slices)`` onto arrays (see the module docstring)."""
    R, C = array_shape
    arrays: list[_Free] = []
    placed: list[tuple[int, Tile]] = []
    order = sorted(range(len(specs)), key=lambda i: -specs[i][1] * specs[i][2] * specs[i][3])
    for i in order:
        key, n_in, n_out, S = specs[i]
        per_out = 2 * S
        if per_out > C:
            raise PlacementError(
                f"layer {key!r}: one output needs {per_out} adjacent columns ({S} differential pair(s)), "
                f"the array has {C}"
            )
        nr0 = -(-n_in // R)
        nc0 = -(-n_out // (C // per_out))
        candidates = sorted(
            ((nr, nc) for nr in range(nr0, min(n_in, nr0 + refine) + 1) for nc in range(nc0, min(n_out, nc0 + refine) + 1)),
            key=lambda p: (p[0] * p[1], p[0]),
        )
        done: list[tuple[int, int, int, slice, slice]] | None = None
        for nr, nc in candidates if arrays else ():
            trial = [a.copy() for a in arrays]
            spots = []
            for ins in _cuts(n_in, nr):
                for outs in _cuts(n_out, nc):
                    h, w = ins.stop - ins.start, per_out * (outs.stop - outs.start)
                    for ai, a in enumerate(trial):
                        pos = a.find(h, w)
                        if pos is not None:
                            a.occupy(*pos, h, w)
                            spots.append((ai, *pos, ins, outs))
                            break
                    else:
                        break
                else:
                    continue
                break
            if len(spots) == nr * nc:
                arrays, done = trial, spots
                break
        if done is None:  # the minimal cut, first fit, opening arrays as needed
            done = []
            for ins in _cuts(n_in, nr0):
                for outs in _cuts(n_out, nc0):
                    h, w = ins.stop - ins.start, per_out * (outs.stop - outs.start)
                    for ai, a in enumerate(arrays):
                        pos = a.find(h, w)
                        if pos is not None:
                            break
                    else:
                        if max_arrays is not None and len(arrays) >= max_arrays:
                            raise PlacementError(
                                f"layer {key!r} ({n_in}×{n_out}, {2 * S * n_in * n_out} devices) does not fit: "
                                f"{max_arrays} array(s) of {R}×{C} are full"
                            )
                        arrays.append(_Free((R, C)))
                        ai, pos = len(arrays) - 1, (0, 0)
                    arrays[ai].occupy(*pos, h, w)
                    done.append((ai, *pos, ins, outs))
        for ai, r, c, ins, outs in done:
            placed.append((i, Tile(key, ai, r, c, ins, outs, S)))
    placed.sort(key=lambda p: (p[0], p[1].inputs.start, p[1].outputs.start))
    return [t for _, t in placed], len(arrays)


def _layer_dict(layers: Any) -> dict[Hashable, MappedLayer]:
    if isinstance(layers, MappedLayer):
        raise PlacementError("place() takes a list or dict of MappedLayer, not a single layer")
    items = list(layers.items()) if isinstance(layers, Mapping) else list(enumerate(layers))
    if not items:
        raise PlacementError("no layers to place")
    for key, layer in items:
        if not isinstance(layer, MappedLayer):
            raise PlacementError(f"layer {key!r} is a {type(layer).__name__}, not a MappedLayer (map it first)")
    return dict(items)


ReadFn = Callable[[int, np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class Placement:
    """Where every device of every layer sits.

    Attributes
    ----------
    array_shape : (int, int)
        Rows and columns of one array.
    n_arrays : int
        Arrays used (indices ``0 … n_arrays − 1``).
    tiles : tuple of Tile
        Every block, by layer (input order) then position in the weight matrix.
    layers : dict
        The placed layers by key (list positions when placed from a list).
    """

    array_shape: tuple[int, int]
    n_arrays: int
    tiles: tuple[Tile, ...]
    layers: dict[Hashable, MappedLayer]

    # --- queries ---------------------------------------------------------------------------
    @property
    def n_devices(self) -> int:
        return sum(t.n_devices for t in self.tiles)

    def tiles_of(self, layer: Hashable) -> list[Tile]:
        """Tiles of one layer."""
        self._layer(layer)
        return [t for t in self.tiles if t.layer == layer]

    def tiles_on(self, array_index: int) -> list[Tile]:
        """Tiles on one array."""
        self._array(array_index)
        return [t for t in self.tiles if t.array == array_index]

    def used(self, array_index: int) -> np.ndarray:
        """Boolean mask of the array's cells that hold a device of some layer."""
        m = np.zeros(self.array_shape, dtype=bool)
        for t in self.tiles_on(array_index):
            m[t.rows, t.cols] = True
        return m

    def utilization(self, array_index: int) -> float:
        """Fraction of the array's cells in use."""
        return float(self.used(array_index).mean())

    def cells(self, layer: Hashable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(array, row, col)`` of every device of a layer, each of shape ``(2, *g_plus.shape)``
        (index 0: the G⁺ device, 1: the G⁻ device)."""
        lay = self._layer(layer)
        S = lay.n_slices
        n_in, n_out = lay.shape
        out = [np.full((2, S, n_in, n_out), -1, dtype=np.int64) for _ in range(3)]
        for t in self.tiles_of(layer):
            r = t.row + np.arange(t.n_rows)
            j = np.arange(t.n_outputs)
            k = np.arange(S)
            for sign in (0, 1):
                c = t.col + 2 * S * j[None, :] + 2 * k[:, None] + sign  # (S, m)
                out[0][sign, :, t.inputs, t.outputs] = t.array
                out[1][sign, :, t.inputs, t.outputs] = r[None, :, None]
                out[2][sign, :, t.inputs, t.outputs] = c[:, None, :]
        if S == 1 and not isinstance(lay, BitSlicedLayer):
            out = [o[:, 0] for o in out]
        return out[0], out[1], out[2]

    # --- targets and read-back -------------------------------------------------------------
    def targets(self, array_index: int) -> np.ndarray:
        """Conductance targets of one array, S, shape ``array_shape``; NaN where no device of
        any layer sits (leave those alone)."""
        return self.layout(array_index, {k: (lay.g_plus, lay.g_minus) for k, lay in self.layers.items()})

    def layout(self, array_index: int, values: Mapping[Hashable, tuple[Any, Any]]) -> np.ndarray:
        """Per-device values laid out on one array where the devices sit.

        ``values`` maps each layer on the array to a pair ``(plus, minus)`` of arrays in the
        shape of the layer's :attr:`MappedLayer.g_plus` (one value per G⁺ and per G⁻ device),
        for example the wanted spread of each device of a stochastic-SET transfer. Returns a
        map of shape ``array_shape``, NaN where no device of a layer sits.
        """
        out = np.full(self.array_shape, np.nan)
        for t in self.tiles_on(array_index):
            lay = self.layers[t.layer]
            if t.layer not in values:
                raise ValueError(f"no values for layer {t.layer!r}, which has devices on array {array_index}")
            plus, minus = values[t.layer]
            plus = _measured(f"values of layer {t.layer!r} (plus)", plus, lay.g_plus.shape)
            minus = _measured(f"values of layer {t.layer!r} (minus)", minus, lay.g_minus.shape)
            out[t.rows, t.cols] = self._block(t, lay._stack(plus), lay._stack(minus))
        return out

    def gather(self, conductances: Mapping[int, Any]) -> dict[Hashable, tuple[np.ndarray, np.ndarray]]:
        """Read programmed conductances back into layers: ``{array index: (rows, cols) array,
        S}`` → ``{layer: (g_plus, g_minus)}`` in each layer's own shape."""
        maps = self._maps(conductances)
        out = {}
        for key, lay in self.layers.items():
            gp = np.full(lay._stack(lay.g_plus).shape, np.nan)
            gm = np.full_like(gp, np.nan)
            for t in self.tiles_of(key):
                blk = maps[t.array][t.rows, t.cols].reshape(t.n_rows, t.n_outputs, t.n_slices, 2)
                gp[:, t.inputs, t.outputs] = blk[..., 0].transpose(2, 0, 1)
                gm[:, t.inputs, t.outputs] = blk[..., 1].transpose(2, 0, 1)
            out[key] = (lay._unstack(gp), lay._unstack(gm))
        return out

    def weights(self, conductances: Mapping[int, Any]) -> dict[Hashable, np.ndarray]:
        """Effective weights of every layer from programmed conductances (via
        :meth:`MappedLayer.weights_from`)."""
        return {k: self.layers[k].weights_from(gp, gm) for k, (gp, gm) in self.gather(conductances).items()}

    def mvm(self, layer: Hashable, x: Any, conductances: Mapping[int, Any] | ReadFn, v_read: float = 1.0) -> np.ndarray:
        """``y = x · W`` of one layer computed tile by tile, as the hardware does it.

        For each tile its rows are driven with ``v_read·x[inputs]`` (every other row at 0 V) and
        its column currents are sensed; each differential pair gives ``I⁺ − I⁻``, slices are
        combined with their γ, and the partial results of row tiles are summed. ``conductances``
        is ``{array index: (rows, cols) array, S}`` or a function ``read(array_index,
        row_voltages) -> column currents`` (for example a crossbar's ``mvm``). ``x`` is
        ``(n_in,)`` or ``(batch, n_in)``; ``v_read`` is volts per input unit.
        """
        lay = self._layer(layer)
        x = np.asarray(x, dtype=float)
        n_in, n_out = lay.shape
        if x.shape[-1:] != (n_in,) or x.ndim > 2:
            raise ValueError(f"x has shape {x.shape}, layer {layer!r} takes (n_in,) or (batch, n_in) with n_in = {n_in}")
        batch = np.atleast_2d(x)
        y = np.zeros((batch.shape[0], n_out))
        gam = lay._gammas()  # (S, n_out)
        maps = None if callable(conductances) else self._maps(conductances, only={t.array for t in self.tiles_of(layer)})
        for t in self.tiles_of(layer):
            v = v_read * batch[:, t.inputs]
            if maps is not None:
                cur = v @ maps[t.array][t.rows, t.cols]
            else:
                cur = np.empty((batch.shape[0], t.n_cols))
                for b in range(batch.shape[0]):
                    full = np.zeros(self.array_shape[0])
                    full[t.rows] = v[b]
                    col_i = np.asarray(conductances(t.array, full), dtype=float)
                    if col_i.shape != (self.array_shape[1],):
                        raise ValueError(f"read() returned shape {col_i.shape}, expected ({self.array_shape[1]},)")
                    cur[b] = col_i[t.cols]
            cur = cur.reshape(batch.shape[0], t.n_outputs, t.n_slices, 2)
            diff = cur[..., 0] - cur[..., 1]  # (batch, m, S)
            y[:, t.outputs] += np.sum(diff / gam[:, t.outputs].T[None], axis=2) / v_read
        return y if x.ndim == 2 else y[0]

    def summary(self) -> list[dict[str, Any]]:
        """One row per tile: layer, array, offsets, the block of W and its size."""
        return [
            {
                "layer": t.layer,
                "array": t.array,
                "row": t.row,
                "col": t.col,
                "inputs": (t.inputs.start, t.inputs.stop),
                "outputs": (t.outputs.start, t.outputs.stop),
                "devices": t.n_devices,
            }
            for t in self.tiles
        ]

    # --- helpers ---------------------------------------------------------------------------
    def _layer(self, layer: Hashable) -> MappedLayer:
        try:
            return self.layers[layer]
        except (KeyError, TypeError):
            raise KeyError(f"no layer {layer!r} in this placement (layers: {list(self.layers)})") from None

    def _array(self, i: int) -> None:
        if not (isinstance(i, (int, np.integer)) and 0 <= i < self.n_arrays):
            raise IndexError(f"array index {i!r} out of range: the placement uses {self.n_arrays} array(s)")

    def _maps(self, conductances: Mapping[int, Any], only: Iterable[int] | None = None) -> dict[int, np.ndarray]:
        need = sorted(set(only) if only is not None else {t.array for t in self.tiles})
        maps = {}
        for i in need:
            if i not in conductances:
                raise ValueError(f"no conductances for array {i} (given: {sorted(conductances)})")
            g = np.asarray(conductances[i], dtype=float)
            if g.shape != self.array_shape:
                raise ValueError(f"conductances of array {i} have shape {g.shape}, the array is {self.array_shape}")
            maps[i] = g
        return maps

    @staticmethod
    def _block(t: Tile, gp: np.ndarray, gm: np.ndarray) -> np.ndarray:
        """The tile's cells (n_rows, n_cols) from slice-stacked G⁺/G⁻ (S, n_in, n_out)."""
        both = np.stack([gp[:, t.inputs, t.outputs], gm[:, t.inputs, t.outputs]], axis=-1)  # (S, r, m, 2)
        return both.transpose(1, 2, 0, 3).reshape(t.n_rows, t.n_cols)


def place(
    layers: Sequence[MappedLayer] | Mapping[Hashable, MappedLayer],
    array_shape: tuple[int, int] = (128, 128),
    max_arrays: int | None = None,
) -> Placement:
    """Lay mapped layers onto arrays of ``array_shape`` (layout and packing: module docstring).

    ``layers`` is a list (keys 0, 1, …) or a dict of :class:`MappedLayer`. ``max_arrays``
    bounds the arrays available; a layer that does not fit raises :class:`PlacementError`.
    """
    shape = _array_shape(array_shape)
    lays = _layer_dict(layers)
    specs = [(k, *lay.shape, lay.n_slices) for k, lay in lays.items()]
    tiles, n = _pack(specs, shape, max_arrays)
    return Placement(array_shape=shape, n_arrays=n, tiles=tuple(tiles), layers=lays)


def tile_count(
    layers: Sequence[MappedLayer | tuple[int, int]] | Mapping[Hashable, MappedLayer | tuple[int, int]],
    array_shape: tuple[int, int] = (128, 128),
    max_arrays: int | None = None,
) -> int:
    """Number of arrays of ``array_shape`` that :func:`place` needs for these layers.

    Layers may be :class:`MappedLayer` or plain weight shapes ``(n_in, n_out)`` (plain
    differential pairs), so a network can be planned before it is mapped. The number of blocks
    is ``len(place(...).tiles)``.
    """
    shape = _array_shape(array_shape)
    items = list(layers.items()) if isinstance(layers, Mapping) else list(enumerate(layers))
    if not items:
        raise PlacementError("no layers to place")
    specs = []
    for key, lay in items:
        if isinstance(lay, MappedLayer):
            specs.append((key, *lay.shape, lay.n_slices))
            continue
        try:
            n_in, n_out = (int(v) for v in lay)
        except (TypeError, ValueError):
            raise PlacementError(f"layer {key!r} must be a MappedLayer or an (n_in, n_out) shape, got {lay!r}") from None
        if n_in < 1 or n_out < 1:
            raise PlacementError(f"layer {key!r} has shape {(n_in, n_out)}; both sizes must be >= 1")
        specs.append((key, n_in, n_out, 1))
    return _pack(specs, shape, max_arrays)[1]
