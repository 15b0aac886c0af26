"""Where the devices of a binary network sit on a PCM array: one device per weight, and the
reference devices the weights are compared with.

numpy, and :func:`labrram.mapping.differential.input_order` for row orders. A layer's
``(n_in, n_out)`` matrix is cut into *pieces* (a block of its rows and columns), each laid on
a rectangle of the array. Two ways to lay a network:

* :meth:`BinaryLayout.pack`: every layer whole, side by side from row 0 (a small network on one
  array, compared with a digital threshold);
* :meth:`BinaryLayout.tile`: the array is a grid of ``tile`` sub-arrays (128×128 by default, the
  crossbar tile size of the project), all programmed at once. The last ``ref_rows`` rows of each
  tile hold *reference devices*: a weight device is compared with the mean read of reference
  devices of its tile — all of them (``pool="tile"``: one reference current per tile, made of
  ``ref_rows × tile columns`` devices in parallel, scaled) or the ``ref_rows`` of its own column
  (``pool="column"``: a reference per sense amplifier, whose own read noise is then shared by
  every weight of the column in each read). A layer larger
  than a tile's weight rows or columns is cut into pieces; pieces are stacked in the columns
  of earlier pieces when they fit under them, else given new columns, else the next tile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from labrram.mapping.differential import input_order

__all__ = ["BinaryLayout", "Piece"]


@dataclass(frozen=True)
class Piece:
    """Rows ``[row0, row0 + n_rows)`` × columns ``[col0, col0 + n_cols)`` of layer ``layer``'s
    matrix, at array rows ``[arow, arow + n_rows)`` × columns ``[acol, acol + n_cols)``."""

    layer: int
    row0: int
    col0: int
    n_rows: int
    n_cols: int
    arow: int
    acol: int


@dataclass(frozen=True)
class BinaryLayout:
    """One device per weight, and where each weight's reference devices are.

    Attributes
    ----------
    shape : (int, int)
        Array shape.
    shapes : list of (int, int)
        ``(n_in, n_out)`` of every layer.
    pieces : list of Piece
        Where every part of every layer sits.
    tile : (int, int) or None
        Tile shape of a tiled layout (None: :meth:`pack`).
    ref_rows : int
        Reference devices per tile column (the last rows of each tile); 0: none.
    orders : tuple
        Per layer, which row of the layer's matrix each of its row slots carries (``order[p]``:
        the input on slot ``p``), or None for the matrix's own order; empty: every layer in
        its own order (:meth:`with_orders`). The pieces say where the slots sit;
        :meth:`layer` and :meth:`place` speak the matrix's order.
    """

    shape: tuple[int, int]
    shapes: list[tuple[int, int]]
    pieces: list[Piece]
    tile: tuple[int, int] | None = None
    ref_rows: int = 0
    orders: tuple[tuple[int, ...] | None, ...] = ()

    def __post_init__(self) -> None:
        if self.orders:
            checked = self._checked_orders(self.orders)
            object.__setattr__(self, "orders", tuple(checked) if any(o is not None for o in checked) else ())

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def pack(cls, sizes: Sequence[int], shape: tuple[int, int], col0: int = 0) -> "BinaryLayout":
        """Layers of a multilayer perceptron ``sizes`` side by side from column ``col0``, rows from
        0; raises ValueError when they do not fit."""
        rows, cols = int(shape[0]), int(shape[1])
        pieces, c = [], int(col0)
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            if n_in > rows:
                raise ValueError(f"a layer with {n_in} inputs needs {n_in} rows, the array has {rows}")
            pieces.append(Piece(l, 0, 0, int(n_in), int(n_out), 0, c))
            c += int(n_out)
        if c > cols:
            raise ValueError(f"the network needs {c - col0} columns from column {col0}, the array has {cols}")
        return cls((rows, cols), [(int(a), int(b)) for a, b in zip(sizes[:-1], sizes[1:])], pieces)

    @classmethod
    def tile_grid(
        cls, shapes: Sequence[tuple[int, int]], shape: tuple[int, int], tile: tuple[int, int] = (128, 128), ref_rows: int = 8
    ) -> "BinaryLayout":
        """Lay matrices ``shapes`` (``(n_in, n_out)`` per layer) on a grid of tiles with
        ``ref_rows`` reference rows each (module docstring).

        Raises
        ------
        ValueError
            If the array is not a whole number of tiles, the tiles leave no weight rows, or
            the network does not fit.
        """
        rows, cols = int(shape[0]), int(shape[1])
        tr, tc = int(tile[0]), int(tile[1])
        ref_rows = int(ref_rows)
        if tr < 1 or tc < 1 or rows % tr or cols % tc:
            raise ValueError(f"a {rows}×{cols} array is not a whole number of {tr}×{tc} tiles")
        if not 1 <= ref_rows < tr:
            raise ValueError(f"ref_rows must be in 1..{tr - 1} (a tile has {tr} rows), got {ref_rows}")
        wr = tr - ref_rows
        n_tiles = (rows // tr) * (cols // tc)
        origin = [((k // (cols // tc)) * tr, (k % (cols // tc)) * tc) for k in range(n_tiles)]
        parts = []
        for l, (n_in, n_out) in enumerate(shapes):
            for r0 in range(0, int(n_in), wr):
                for c0 in range(0, int(n_out), tc):
                    parts.append((l, r0, c0, min(wr, int(n_in) - r0), min(tc, int(n_out) - c0)))
        shelves: list[list[int]] = []  # [tile, col, width, rows used]
        used_cols = [0] * n_tiles
        pieces = []
        for l, r0, c0, h, w in parts:
            spot = next((s for s in shelves if s[2] >= w and s[3] + h <= wr), None)
            if spot is None:
                k = next((k for k in range(n_tiles) if used_cols[k] + w <= tc), None)
                if k is None:
                    need = sum(p[3] * p[4] for p in parts)
                    raise ValueError(f"the network ({need} weights in {len(parts)} pieces) does not fit {n_tiles} tiles of {wr}×{tc} weight devices")
                spot = [k, used_cols[k], w, 0]
                used_cols[k] += w
                shelves.append(spot)
            k, col, _, used = spot
            pieces.append(Piece(l, r0, c0, h, w, origin[k][0] + used, origin[k][1] + col))
            spot[3] += h
        return cls((rows, cols), [(int(a), int(b)) for a, b in shapes], pieces, (tr, tc), ref_rows)

    def with_orders(self, orders: Sequence[Sequence[int] | None]) -> "BinaryLayout":
        """This layout with layer ``l``'s row slot ``p`` carrying row ``orders[l][p]`` of its
        matrix (None: the matrix's own order). The input vector of the layer is routed to
        the rows in that order; the devices stay where the pieces put them.

        Raises
        ------
        ValueError
            If there is not one entry per layer, or an order is not a permutation of the
            layer's rows.
        """
        return replace(self, orders=tuple(self._checked_orders(orders)))

    def _checked_orders(self, orders: Sequence[Sequence[int] | None]) -> list[tuple[int, ...] | None]:
        """``orders`` as tuples (None for a layer in its own order); ValueError naming the
        layer whose order is not a permutation of its rows."""
        if len(orders) != len(self.shapes):
            raise ValueError(f"orders names {len(orders)} layers, the layout holds {len(self.shapes)}")
        out: list[tuple[int, ...] | None] = []
        for l, (o, (n_in, _)) in enumerate(zip(orders, self.shapes)):
            if o is None:
                out.append(None)
                continue
            try:
                a = input_order(o, n_in)
            except ValueError:
                raise ValueError(f"the order of layer {l} must be a permutation of its {n_in} rows, got {np.asarray(o).dtype} {np.shape(o)}") from None
            out.append(None if np.array_equal(a, np.arange(n_in)) else tuple(int(x) for x in a))
        return out

    def order(self, l: int) -> np.ndarray:
        """Layer ``l``'s row order (:attr:`orders`): ``order[p]`` is the matrix row on slot ``p``."""
        o = self.orders[l] if self.orders else None
        return np.arange(self.shapes[l][0]) if o is None else np.asarray(o, dtype=np.int64)

    # --- reading and writing maps ----------------------------------------------------------------
    @property
    def blocks(self) -> list[tuple[int, int, int]]:
        """``(n_in, col0, n_out)`` per layer of a :meth:`pack` layout."""
        if self.tile is not None:
            raise ValueError("blocks describe packed layouts; a tiled layout has pieces")
        return [(p.n_rows, p.acol, p.n_cols) for p in self.pieces]

    @property
    def used_columns(self) -> int:
        """Columns from 0 up to the last one holding a weight."""
        return max(p.acol + p.n_cols for p in self.pieces)

    @property
    def n_tiles(self) -> int:
        """Tiles holding at least one weight (1 for a packed layout)."""
        if self.tile is None:
            return 1
        return len({(p.arow // self.tile[0], p.acol // self.tile[1]) for p in self.pieces})

    @property
    def weight_devices(self) -> int:
        return int(sum(p.n_rows * p.n_cols for p in self.pieces))

    def weight_mask(self) -> np.ndarray:
        """Array-shaped: True on every weight device."""
        m = np.zeros(self.shape, dtype=bool)
        for p in self.pieces:
            m[p.arow : p.arow + p.n_rows, p.acol : p.acol + p.n_cols] = True
        return m

    def reference_mask(self) -> np.ndarray:
        """Array-shaped: True on every reference device (the last ``ref_rows`` rows of every tile)."""
        m = np.zeros(self.shape, dtype=bool)
        if self.tile is not None and self.ref_rows:
            tr = self.tile[0]
            for r0 in range(0, self.shape[0], tr):
                m[r0 + tr - self.ref_rows : r0 + tr, :] = True
        return m

    def free_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, cols)`` of the devices that are neither weights nor references, column by
        column from the last column (spares, e.g. for the sampler calibration)."""
        free = ~(self.weight_mask() | self.reference_mask())
        cols, rows = np.nonzero(free.T[::-1])
        return rows, self.shape[1] - 1 - cols

    def references_of(self, rows: np.ndarray, cols: np.ndarray, pool: str = "tile") -> tuple[np.ndarray, np.ndarray]:
        """The reference devices of cells ``(rows, cols)``: two ``(k, n)`` index arrays.

        ``pool="column"``: the ``ref_rows`` reference devices of each cell's tile column;
        ``pool="tile"``: every reference device of each cell's tile (``ref_rows × tile columns``).
        """
        self._check_pool(pool)
        rows, cols = np.asarray(rows, dtype=int).ravel(), np.asarray(cols, dtype=int).ravel()
        tr, tc = self.tile  # type: ignore[misc]
        base = (rows // tr) * tr + tr - self.ref_rows
        if pool == "column":
            ref_r = base[None, :] + np.arange(self.ref_rows)[:, None]
            return ref_r, np.broadcast_to(cols, ref_r.shape).copy()
        rr, cc = np.meshgrid(np.arange(self.ref_rows), np.arange(tc), indexing="ij")
        ref_r = base[None, :] + rr.ravel()[:, None]
        ref_c = (cols // tc * tc)[None, :] + cc.ravel()[:, None]
        return ref_r, ref_c

    def _check_pool(self, pool: str) -> None:
        if self.tile is None or not self.ref_rows:
            raise ValueError("this layout has no reference devices (BinaryLayout.tile_grid lays them)")
        if pool not in ("column", "tile"):
            raise ValueError(f"pool must be 'column' or 'tile', got {pool!r}")

    def reference_levels(self, g: np.ndarray, ok: np.ndarray | None = None, pool: str = "tile") -> np.ndarray:
        """Array-shaped: for every cell, the mean read of its reference devices
        (:meth:`references_of`) in one whole-array read ``g`` (``(..., rows, cols)``); ``ok``
        (array-shaped bool) leaves out reference devices that failed to program (a cell with
        none left gets NaN)."""
        self._check_pool(pool)
        tr, tc = self.tile  # type: ignore[misc]
        g = np.asarray(g, dtype=float)
        lead = g.shape[:-2]
        nr, nc = self.shape[0] // tr, self.shape[1] // tc
        t = g.reshape(lead + (nr, tr, nc, tc))[..., tr - self.ref_rows :, :, :]
        m = np.ones(t.shape[-4:], dtype=bool) if ok is None else np.asarray(ok, dtype=bool).reshape(nr, tr, nc, tc)[:, tr - self.ref_rows :, :, :]
        axes = (-3,) if pool == "column" else (-3, -1)
        n = m.sum(axis=axes, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            ref = np.where(n > 0, (t * m).sum(axis=axes, keepdims=True) / np.maximum(n, 1), np.nan)
        full = np.broadcast_to(ref, lead + (nr, tr, nc, tc))
        return full.reshape(g.shape)

    def layer(self, a: np.ndarray, l: int) -> np.ndarray:
        """Layer ``l``'s ``(n_in, n_out)`` matrix, in the matrix's row order (:attr:`orders`),
        gathered from a whole-array map ``a`` (``(..., rows, cols)``)."""
        a = np.asarray(a)
        out = np.empty(a.shape[:-2] + self.shapes[l], dtype=a.dtype)
        for p in self.pieces:
            if p.layer == l:
                out[..., p.row0 : p.row0 + p.n_rows, p.col0 : p.col0 + p.n_cols] = a[..., p.arow : p.arow + p.n_rows, p.acol : p.acol + p.n_cols]
        if not (self.orders and self.orders[l] is not None):
            return out
        rows = np.empty_like(out)
        rows[..., self.order(l), :] = out  # slot p holds matrix row order[p]
        return rows

    def place(self, per_layer: Sequence[np.ndarray], fill: float = np.nan) -> np.ndarray:
        """A whole-array map holding ``per_layer[l]`` (``(n_in, n_out)``, in the matrix's row
        order) on layer ``l``'s devices, each row on the slot that carries it (:attr:`orders`)."""
        out = np.full(self.shape, fill, dtype=float)
        for p in self.pieces:
            v = np.broadcast_to(np.asarray(per_layer[p.layer], dtype=float), self.shapes[p.layer])
            if self.orders and self.orders[p.layer] is not None:
                v = v[self.order(p.layer)]  # slot s carries matrix row order[s]
            out[p.arow : p.arow + p.n_rows, p.acol : p.acol + p.n_cols] = v[p.row0 : p.row0 + p.n_rows, p.col0 : p.col0 + p.n_cols]
        return out
