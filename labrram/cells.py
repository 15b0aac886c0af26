"""A cell selection that cannot be misread.

``([3, 4], [5, 6])`` and ``[[3, 4], [5, 6]]`` hold the same numbers and name different devices
((3, 5), (4, 6) against (3, 4), (5, 6)). labrram's crossbar calls take a :class:`Cells`, made by
a constructor that says which reading is meant, or a boolean mask of the array's shape; the
internal form, a tuple of two integer numpy arrays ``(rows, cols)`` as :func:`numpy.nonzero`
returns, is accepted too. Python lists and ``(N, 2)`` arrays are refused with a message that
names the constructors.

>>> Cells.pairs([(3, 4), (5, 6)]).rows
array([3, 5])
>>> Cells.rows_cols([3, 4], [5, 6]).cols
array([5, 6])
>>> Cells.block(rows=range(0, 2), cols=range(0, 2)).size
4
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

__all__ = ["Cells", "CellsError"]


class CellsError(ValueError):
    """A cell selection that is ambiguous, malformed or outside the array."""


def _ints(values: Any, what: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values))
    if arr.ndim != 1:
        raise CellsError(f"{what} must be a 1-D sequence of integers, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise CellsError(f"{what} must be integer indices, got {arr.dtype} values")
    return arr.astype(np.intp)


class Cells:
    """Devices of an array, as two index arrays: device ``i`` is ``(rows[i], cols[i])``.

    Build it with :meth:`pairs`, :meth:`rows_cols`, :meth:`block`, :meth:`mask` or :meth:`all`.
    """

    __slots__ = ("rows", "cols")

    def __init__(self, rows: np.ndarray, cols: np.ndarray) -> None:
        rows, cols = _ints(rows, "rows"), _ints(cols, "cols")
        if rows.shape != cols.shape:
            raise CellsError(f"{rows.size} rows for {cols.size} cols")
        self.rows, self.cols = rows, cols

    @classmethod
    def pairs(cls, pairs: Iterable[tuple[int, int]]) -> "Cells":
        """From ``(row, col)`` pairs: ``Cells.pairs([(3, 4), (5, 6)])`` is (3, 4) and (5, 6).

        Parameters
        ----------
        pairs : iterable of (int, int)
            (row, col) of each device.
        """
        arr = np.asarray(list(pairs))
        if arr.size == 0:
            return cls(np.empty(0, np.intp), np.empty(0, np.intp))
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise CellsError(f"pairs must be (row, col) pairs, got an array of shape {arr.shape}")
        return cls(arr[:, 0], arr[:, 1])

    @classmethod
    def rows_cols(cls, rows: Iterable[int], cols: Iterable[int]) -> "Cells":
        """From a list of rows and a list of columns, element by element:
        ``Cells.rows_cols([3, 4], [5, 6])`` is (3, 5) and (4, 6).

        Parameters
        ----------
        rows, cols : iterable of int
            Equally long: device ``i`` is ``(rows[i], cols[i])``.
        """
        return cls(np.asarray(list(rows)), np.asarray(list(cols)))

    @classmethod
    def block(cls, rows: Iterable[int] | slice, cols: Iterable[int] | slice, shape: tuple[int, int] | None = None) -> "Cells":
        """Every device of a rectangle, row-major: ``Cells.block(range(4), range(4))`` is the
        4x4 block at the corner.

        Parameters
        ----------
        rows, cols : iterable of int or slice
            The rectangle's rows and columns.
        shape : (int, int), optional
            The array's (rows, cols): needed for slices.
        """
        def idx(x: Any, n: int | None, what: str) -> np.ndarray:
            if isinstance(x, slice):
                if n is None:
                    raise CellsError(f"a slice of {what} needs the array's shape")
                return np.arange(n)[x]
            return _ints(list(x), what)

        r = idx(rows, None if shape is None else shape[0], "rows")
        c = idx(cols, None if shape is None else shape[1], "cols")
        rr, cc = np.meshgrid(r, c, indexing="ij")
        return cls(rr.ravel(), cc.ravel())

    @classmethod
    def mask(cls, mask: Any) -> "Cells":
        """The ``True`` devices of a boolean mask, row-major.

        Parameters
        ----------
        mask : array of bool
            Of the array's shape (rows, cols).
        """
        m = np.asarray(mask)
        if m.dtype != bool or m.ndim != 2:
            raise CellsError(f"a mask is a 2-D boolean array, got {m.dtype} of shape {m.shape}")
        r, c = np.nonzero(m)
        return cls(r, c)

    @classmethod
    def all(cls, shape: tuple[int, int]) -> "Cells":
        """Every device of an array, row-major.

        Parameters
        ----------
        shape : (int, int)
            The array's (rows, cols).
        """
        return cls.block(range(shape[0]), range(shape[1]))

    @property
    def size(self) -> int:
        """Number of devices."""
        return int(self.rows.size)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        shown = ", ".join(f"({r}, {c})" for r, c in zip(self.rows[:4], self.cols[:4]))
        return f"Cells([{shown}{', ...' if self.size > 4 else ''}], n={self.size})"

    def check(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The index arrays, after checking every device lies inside the array.

        Parameters
        ----------
        shape : (int, int)
            The array's (rows, cols).

        Returns
        -------
        (ndarray, ndarray)
            ``(rows, cols)``.

        Raises
        ------
        CellsError
            A device outside the array.
        """
        n_rows, n_cols = shape
        if self.size and (self.rows.min() < 0 or self.rows.max() >= n_rows or self.cols.min() < 0 or self.cols.max() >= n_cols):
            raise CellsError(f"cell index outside the {n_rows}x{n_cols} array")
        return self.rows, self.cols


AMBIGUOUS = (
    "is ambiguous: say which devices you mean with Cells.pairs([(row, col), ...]), "
    "Cells.rows_cols(rows, cols), Cells.block(rows, cols) or Cells.mask(mask) (from labrram import Cells)"
)


def as_cells(cells: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` index arrays from a :class:`Cells`, a boolean mask of the array's shape,
    or a tuple of two integer numpy arrays; anything else is refused (module docstring)."""
    if isinstance(cells, Cells):
        return cells.check(shape)
    if isinstance(cells, np.ndarray) and cells.dtype == bool:
        if cells.shape != tuple(shape):
            raise CellsError(f"cell mask has shape {cells.shape}, the array is {tuple(shape)}")
        return np.nonzero(cells)
    if isinstance(cells, tuple) and len(cells) == 2 and all(isinstance(x, np.ndarray) for x in cells):
        return Cells(cells[0], cells[1]).check(shape)
    what = type(cells).__name__
    if isinstance(cells, np.ndarray):
        what = f"a {cells.dtype} array of shape {cells.shape}"
    elif isinstance(cells, tuple):
        what = "a tuple of Python sequences"
    elif isinstance(cells, list):
        what = "a Python list"
    raise CellsError(f"a cell selection given as {what} {AMBIGUOUS}")
