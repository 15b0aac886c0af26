"""Offset encoding: a weight as ``n`` single-device slices, ``w = step · (code − offset)``.

An ``bits``-bit unsigned code ``u`` is cut into ``n = ceil(bits / slice_bits)`` digits of
``slice_bits`` bits, least significant first; digit ``d_k`` is one device at level
``G_d = g_min + d · ΔG`` (``2^slice_bits`` levels evenly spaced over ``[g_min, g_max]``). No
differential pair, no idle device: 4 devices per 8-bit weight in 2-bit slices (ISAAC/PUMA style;
Diware et al. 2023). The signed weight is ``step · (u − offset)``, ``offset = 2^(bits−1)`` by
default; a column may have its own offset (a digital constant).

Decoding a column's currents (digital, after the array): with row voltages ``v`` the device of
slice ``k`` in output column ``j`` carries ``I_kj = Σ_i v_i G_ikj``, so

``Σ_i v_i u_ij = Σ_k 2^(slice_bits·k) (I_kj − g_min Σ_i v_i) / ΔG``

and the output is ``step_j · (that − offset_j · Σ_i v_i p_ij)`` with ``p`` the mask of the
entries that hold a weight. Entries without a weight (the off-diagonal blocks of replicated
kernels) are programmed at level 0 in every slice (code 0, the lowest and narrowest level) and
left out of the offset term, so they add only their small spread.

Placement reuses :mod:`labrram.mapping.placement`'s packing: an output takes
``2·ceil(n/2)`` adjacent columns (its slices in order; with an odd ``n`` the last column is
unused), layers never share an array image unless placed together.

numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping, Sequence

import numpy as np

from .differential import _frozen
from .placement import PlacementError, Tile, _array_shape, _layer_dict, _pack

__all__ = ["OffsetSlicedLayer", "OffsetSlicedMapping", "OffsetPlacement", "misprogrammed", "place_offset"]

ReadFn = Callable[[int, np.ndarray], np.ndarray]


def misprogrammed(targets: Any, achieved: Any, converged: Any, levels: Any) -> np.ndarray:
    """Devices left a level step or more from their target: write-verify gave up on them and
    their last read lies more than half the gap to the nearest other level from their target.

    A device write-verify gave up on but whose last read is within half a level step of its
    target (a broad level that relaxed out of the verify band, a device that ran out of pulses
    close to its target) holds its level with an error — variation, like any converged
    device's. One farther out (stuck, or driven past a neighbouring level) holds the wrong
    level: an error of a level step or more, known from its last read.

    Parameters
    ----------
    targets : array
        Target conductance of every device, S (NaN: no device); each must be one of ``levels``.
    achieved : array, same shape
        Last read of every device by write-verify, S.
    converged : array of bool, same shape
        Devices write-verify placed inside their verify band.
    levels : array (n_levels,)
        The levels, S (at least two, distinct).

    Returns
    -------
    ndarray of bool, the shape of ``targets``
    """
    t = np.asarray(targets, dtype=float)
    g = np.asarray(achieved, dtype=float)
    ok = np.asarray(converged, dtype=bool)
    lv = np.sort(np.asarray(levels, dtype=float).ravel())
    if lv.size < 2 or not np.all(np.isfinite(lv)) or np.any(np.diff(lv) <= 0):
        raise ValueError("levels must be at least two distinct finite conductances (S)")
    if g.shape != t.shape or ok.shape != t.shape:
        raise ValueError(f"targets {t.shape}, achieved {g.shape} and converged {ok.shape} must have one shape")
    have = np.isfinite(t)
    tt = np.where(have, t, lv[0])
    k = np.argmin(np.abs(tt[..., None] - lv), axis=-1)
    if np.any(have & ~np.isclose(tt, lv[k], rtol=1e-9, atol=0.0)):
        raise ValueError("every target must be one of the levels")
    gaps = np.diff(lv)
    half = np.minimum(np.concatenate(([np.inf], gaps)), np.concatenate((gaps, [np.inf])))[k] / 2
    far = ~(np.abs(g - tt) <= half)  # a NaN read counts as far
    return have & ~ok & far


@dataclass(frozen=True, eq=False)
class OffsetSlicedLayer:
    """A weight matrix in offset encoding (module docstring).

    Attributes
    ----------
    codes : ndarray (n_in, n_out) of int
        Unsigned codes ``0 … 2^bits − 1``.
    offsets : ndarray (n_out,) of int
        Offset of every column.
    step : ndarray (n_out,)
        Weight per code unit of every column.
    present : ndarray (n_in, n_out) of bool
        Entries that hold a weight (the others are code 0 and outside the offset term).
    levels : ndarray (2^slice_bits,)
        Conductance of each level, S.
    bits, slice_bits : int
    """

    codes: np.ndarray
    offsets: np.ndarray
    step: np.ndarray
    present: np.ndarray
    levels: np.ndarray
    bits: int
    slice_bits: int

    @property
    def shape(self) -> tuple[int, int]:
        """Weight shape ``(n_in, n_out)``."""
        return self.codes.shape  # type: ignore[return-value]

    @property
    def n_slices(self) -> int:
        """Devices per weight."""
        return -(-self.bits // self.slice_bits)

    @property
    def n_devices(self) -> int:
        """Devices the layer needs (one per weight and slice)."""
        return self.n_slices * self.codes.size

    @property
    def delta_g(self) -> float:
        """Conductance between adjacent levels, S."""
        return float(self.levels[1] - self.levels[0])

    @property
    def significance(self) -> np.ndarray:
        """``2^(slice_bits·k)`` of every slice."""
        return 2.0 ** (self.slice_bits * np.arange(self.n_slices))

    @property
    def digits(self) -> np.ndarray:
        """Level of every device ``(n_slices, n_in, n_out)``."""
        base = 2**self.slice_bits
        return np.stack([(self.codes >> (self.slice_bits * k)) & (base - 1) for k in range(self.n_slices)])

    @property
    def targets(self) -> np.ndarray:
        """Conductance target of every device ``(n_slices, n_in, n_out)``, S."""
        return self.levels[self.digits]

    @property
    def target_weights(self) -> np.ndarray:
        """The weights the codes encode exactly (0 where no weight)."""
        return np.where(self.present, self.step * (self.codes - self.offsets[None, :]), 0.0)

    def weights_from(self, g_measured: Any) -> np.ndarray:
        """Effective weights of measured conductances ``(n_slices, n_in, n_out)`` (S): the
        matrix the array multiplies by after the digital decoding (module docstring)."""
        g = np.asarray(g_measured, dtype=float)
        want = (self.n_slices, *self.shape)
        if g.shape != want:
            raise ValueError(f"g_measured has shape {g.shape}, the layer's devices are {want}")
        if not np.all(np.isfinite(g)):
            raise ValueError("g_measured has values that are not finite")
        u = np.tensordot(self.significance, (g - self.levels[0]) / self.delta_g, axes=1)
        return self.step * (u - self.offsets[None, :] * self.present)


@dataclass(frozen=True)
class OffsetSlicedMapping:
    """Weights → offset-encoded codes on single-device slices (module docstring).

    Parameters
    ----------
    g_min, g_max : float
        Lowest and highest level, S.
    bits : int
        Bits of the unsigned code.
    slice_bits : int
        Bits per slice (levels per device: ``2^slice_bits``).
    """

    g_min: float = 10e-6
    g_max: float = 200e-6
    bits: int = 8
    slice_bits: int = 2

    def __post_init__(self) -> None:
        if not (math.isfinite(self.g_min) and math.isfinite(self.g_max) and 0 < self.g_min < self.g_max):
            raise ValueError(f"need 0 < g_min < g_max (S), got {self.g_min!r}, {self.g_max!r}")
        for name in ("bits", "slice_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.slice_bits > self.bits:
            raise ValueError(f"slice_bits ({self.slice_bits}) exceeds bits ({self.bits})")

    @property
    def levels(self) -> np.ndarray:
        """Conductance of each level, S."""
        return np.linspace(self.g_min, self.g_max, 2**self.slice_bits)

    @property
    def offset(self) -> int:
        """Default offset ``2^(bits−1)``."""
        return 2 ** (self.bits - 1)

    @property
    def code_max(self) -> int:
        """Largest code ``2^bits − 1``."""
        return 2**self.bits - 1

    def step_for(self, W: Any) -> float:
        """Per-layer step ``max|W| / (2^(bits−1) − 1)``."""
        a = float(np.max(np.abs(np.asarray(W, dtype=float)), initial=0.0))
        return (a if a > 0 else 1.0) / (self.offset - 1)

    def map(self, W: Any, step: float | None = None, offsets: Any = None, present: Any = None) -> OffsetSlicedLayer:
        """Round ``W`` (n_in, n_out) to codes ``rint(W/step) + offset`` clipped to ``0 … 2^bits − 1``.

        Parameters
        ----------
        W : array (n_in, n_out)
        step : float, optional
            Weight per code unit (default :meth:`step_for`).
        offsets : int or array (n_out,), optional
            Offset of every column (default ``2^(bits−1)``).
        present : array of bool (n_in, n_out), optional
            Entries holding a weight (default all); the others get code 0.
        """
        w = np.asarray(W, dtype=float)
        if w.ndim != 2 or w.size == 0 or not np.all(np.isfinite(w)):
            raise ValueError(f"W must be a non-empty 2-D array of finite weights, got shape {w.shape}")
        step = self.step_for(w) if step is None else float(step)
        if not (math.isfinite(step) and step > 0):
            raise ValueError(f"step must be a positive number, got {step!r}")
        off = self._offsets(offsets, w.shape[1])
        codes = np.clip(np.rint(w / step) + off[None, :], 0, self.code_max).astype(np.int64)
        return self.from_codes(codes, step, off, present)

    def from_codes(self, codes: Any, step: Any, offsets: Any = None, present: Any = None) -> OffsetSlicedLayer:
        """A layer of given codes (n_in, n_out), step (scalar or per column), offsets, mask."""
        c = np.asarray(codes)
        if c.ndim != 2 or not np.issubdtype(c.dtype, np.integer) or c.size == 0:
            raise ValueError("codes must be a non-empty 2-D array of integers")
        if c.min() < 0 or c.max() > self.code_max:
            raise ValueError(f"codes must lie in 0 … {self.code_max}")
        n_out = c.shape[1]
        st = np.broadcast_to(np.asarray(step, dtype=float), (n_out,)).copy()
        if not np.all(np.isfinite(st) & (st > 0)):
            raise ValueError("step must be positive")
        off = self._offsets(offsets, n_out)
        p = np.ones(c.shape, dtype=bool) if present is None else np.asarray(present, dtype=bool)
        if p.shape != c.shape:
            raise ValueError(f"present has shape {p.shape}, the codes {c.shape}")
        c = np.where(p, c, 0).astype(np.int64)
        return OffsetSlicedLayer(_frozen(c), _frozen(off), _frozen(st), _frozen(p), _frozen(self.levels), int(self.bits), int(self.slice_bits))

    def _offsets(self, offsets: Any, n_out: int) -> np.ndarray:
        off = np.broadcast_to(np.asarray(self.offset if offsets is None else offsets), (n_out,)).astype(np.int64)
        if off.min() < 0 or off.max() > self.code_max:
            raise ValueError(f"offsets must lie in 0 … {self.code_max}")
        return off


@dataclass(frozen=True, eq=False)
class OffsetPlacement:
    """Where every device of offset-encoded layers sits.

    Attributes
    ----------
    array_shape : (int, int)
    n_arrays : int
    tiles : tuple of Tile
        Blocks of the layers; output ``j`` of a tile takes columns ``col + per_output·j …``
        (:attr:`per_output`), slice ``k`` at column ``k`` of those.
    layers : dict
        The placed layers by key.
    """

    array_shape: tuple[int, int]
    n_arrays: int
    tiles: tuple[Tile, ...]
    layers: dict[Hashable, OffsetSlicedLayer]

    @staticmethod
    def per_output(layer: OffsetSlicedLayer) -> int:
        """Adjacent columns one output takes."""
        return 2 * (-(-layer.n_slices // 2))

    @property
    def n_devices(self) -> int:
        """Devices of every layer."""
        return sum(lay.n_devices for lay in self.layers.values())

    def tiles_of(self, layer: Hashable) -> list[Tile]:
        """Tiles of one layer."""
        if layer not in self.layers:
            raise KeyError(f"no layer {layer!r} in this placement (layers: {list(self.layers)})")
        return [t for t in self.tiles if t.layer == layer]

    def tiles_on(self, array_index: int) -> list[Tile]:
        """Tiles on one array image."""
        if not 0 <= int(array_index) < self.n_arrays:
            raise IndexError(f"array index {array_index!r} out of range: the placement uses {self.n_arrays} array(s)")
        return [t for t in self.tiles if t.array == array_index]

    def tile_devices(self, t: Tile) -> int:
        """Devices of one tile."""
        return t.n_rows * t.n_outputs * self.layers[t.layer].n_slices

    def _cols(self, t: Tile) -> np.ndarray:
        lay = self.layers[t.layer]
        po = self.per_output(lay)
        return t.col + po * np.arange(t.n_outputs)[:, None] + np.arange(lay.n_slices)[None, :]  # (m, S)

    def layout(self, array_index: int, values: Mapping[Hashable, Any]) -> np.ndarray:
        """Per-device values ``{layer: (n_slices, n_in, n_out)}`` laid on one array; NaN elsewhere."""
        out = np.full(self.array_shape, np.nan)
        for t in self.tiles_on(array_index):
            v = np.asarray(values[t.layer], dtype=float)
            blk = v[:, t.inputs, t.outputs]  # (S, r, m)
            cols = self._cols(t)
            out[t.row : t.row + t.n_rows, cols.T.ravel()] = blk.transpose(1, 0, 2).reshape(t.n_rows, -1)
        return out

    def targets(self, array_index: int) -> np.ndarray:
        """Conductance targets of one array image, S; NaN where no device."""
        return self.layout(array_index, {k: lay.targets for k, lay in self.layers.items()})

    def gather(self, layer: Hashable, conductances: Mapping[int, Any]) -> np.ndarray:
        """Measured conductances of one layer's devices ``(n_slices, n_in, n_out)`` from
        ``{array index: (rows, cols) map}``."""
        lay = self.layers[layer]
        out = np.full((lay.n_slices, *lay.shape), np.nan)
        for t in self.tiles_of(layer):
            if t.array not in conductances:
                raise ValueError(f"no conductances for array {t.array} (given: {sorted(conductances)})")
            g = np.asarray(conductances[t.array], dtype=float)
            if g.shape != self.array_shape:
                raise ValueError(f"conductances of array {t.array} have shape {g.shape}, the array is {self.array_shape}")
            cols = self._cols(t)
            blk = g[t.row : t.row + t.n_rows][:, cols.T.ravel()].reshape(t.n_rows, lay.n_slices, t.n_outputs)
            out[:, t.inputs, t.outputs] = blk.transpose(1, 0, 2)
        return out

    def weights(self, layer: Hashable, conductances: Mapping[int, Any]) -> np.ndarray:
        """Effective weights of one layer from measured conductances."""
        return self.layers[layer].weights_from(self.gather(layer, conductances))

    def mvm(self, layer: Hashable, x: Any, read: ReadFn, v_read: float = 1.0, tiles: Sequence[Tile] | None = None) -> np.ndarray:
        """``y = x · W`` of one layer tile by tile, as the hardware does it (module docstring).

        Parameters
        ----------
        layer : hashable
        x : array (batch, n_in)
        read : callable
            ``read(array_index, row_voltages) -> column currents`` (A), e.g. a crossbar's mvm.
        v_read : float
            Volts per input unit.
        tiles : list of Tile, optional
            Only these tiles (those of the array image programmed now); default all of the layer.
        """
        lay = self.layers[layer]
        xb = np.atleast_2d(np.asarray(x, dtype=float))
        if xb.shape[1] != lay.shape[0]:
            raise ValueError(f"x has {xb.shape[1]} inputs, layer {layer!r} takes {lay.shape[0]}")
        y = np.zeros((xb.shape[0], lay.shape[1]))
        sig, g0, dg = lay.significance, lay.levels[0], lay.delta_g
        for t in self.tiles_of(layer) if tiles is None else tiles:
            v = v_read * xb[:, t.inputs]
            cols = self._cols(t)
            cur = np.empty((xb.shape[0], t.n_outputs, lay.n_slices))
            for b in range(xb.shape[0]):
                full = np.zeros(self.array_shape[0])
                full[t.row : t.row + t.n_rows] = v[b]
                col_i = np.asarray(read(t.array, full), dtype=float)
                if col_i.shape != (self.array_shape[1],):
                    raise ValueError(f"read() returned shape {col_i.shape}, expected ({self.array_shape[1]},)")
                cur[b] = col_i[cols]
            vsum = v.sum(axis=1)[:, None, None]
            u = np.tensordot((cur - g0 * vsum) / dg, sig, axes=([2], [0]))  # (batch, m) = Σ_i v_i u_ij
            off = lay.offsets[t.outputs] * (v @ lay.present[t.inputs, t.outputs])
            y[:, t.outputs] += lay.step[t.outputs] * (u - off) / v_read
        return y


def place_offset(
    layers: Sequence[OffsetSlicedLayer] | Mapping[Hashable, OffsetSlicedLayer],
    array_shape: tuple[int, int] = (128, 128),
    max_arrays: int | None = None,
) -> OffsetPlacement:
    """Lay offset-encoded layers onto arrays (the packing of :func:`labrram.mapping.place`,
    ``2·ceil(n_slices/2)`` columns per output). Raises :class:`PlacementError` when a layer
    does not fit ``max_arrays``."""
    shape = _array_shape(array_shape)
    lays = _layer_dict(layers, OffsetSlicedLayer, "an OffsetSlicedLayer")
    specs = [(k, *lay.shape, -(-lay.n_slices // 2)) for k, lay in lays.items()]
    tiles, n = _pack(specs, shape, max_arrays)
    return OffsetPlacement(shape, n, tuple(tiles), lays)
