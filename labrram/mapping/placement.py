"""Placement of mapped layers onto crossbar arrays: tiles, packing, read-back and MVM by tile.

The layers are those of :mod:`labrram.mapping.differential` (differential pairs, bit slices).
numpy only: this room never imports torch, the simulator, the drivers or ``labrram.nn``.

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

from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

import numpy as np

from .differential import BitSlicedLayer, MappedLayer, _measured

__all__ = ["Placement", "PlacementError", "Tile", "place", "tile_count"]


class PlacementError(ValueError):
    """Layers that cannot be laid onto the arrays as asked."""


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


def _layer_dict(layers: Any, kind: type = MappedLayer, expected: str = "a MappedLayer (map it first)") -> dict[Hashable, Any]:
    """The layers to place, keyed (a list by index), each checked to be a ``kind``
    (``expected`` names it in the error)."""
    if isinstance(layers, kind):
        raise PlacementError(f"layers to place come as a list or dict of {kind.__name__}, not a single layer")
    items = list(layers.items()) if isinstance(layers, Mapping) else list(enumerate(layers))
    if not items:
        raise PlacementError("no layers to place")
    for key, layer in items:
        if not isinstance(layer, kind):
            raise PlacementError(f"layer {key!r} is a {type(layer).__name__}, not {expected}")
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
