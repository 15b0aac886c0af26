"""The timing model's read cost: one conversion per distinct row, a cell listed k times k."""

import numpy as np
import pytest

from labrram import timing


def test_a_row_converts_once_per_listing_of_its_most_listed_cell():
    # row 0: cell (0, 0) listed twice, (0, 3) once -> 2 conversions; row 2: one cell -> 1
    assert timing.reads_time([0, 0, 0, 2], [0, 0, 3, 5]) == pytest.approx(3 * timing.T_ROW_READ)
    assert timing.reads_time([], []) == 0.0


@pytest.mark.parametrize("distinct", [False, True])
@pytest.mark.parametrize("n, size", [(3, 1024), (40, 128), (1500, 128), (16384, 128), (70000, 128), (500, 8), (60, 8)])
def test_large_and_sparse_reads_count_the_same(n, size, distinct):
    """Large reads count every cell of the rows they span, sparse ones sort the cells: the two
    ways give the same conversions, with cells listed more than once or each once."""
    rng = np.random.default_rng(n)
    if distinct:
        n = min(n, size * size)
        flat = rng.choice(size * size, n, replace=False)
        rows, cols = flat // size, flat % size
    else:
        rows, cols = rng.integers(0, size, n), rng.integers(0, size, n)
    flat = rows * (cols.max() + 1) + cols
    cells, counts = np.unique(flat, return_counts=True)
    per_row: dict[int, int] = {}
    for cell, k in zip(cells // (cols.max() + 1), counts):
        per_row[int(cell)] = max(per_row.get(int(cell), 0), int(k))
    assert timing.reads_time(rows, cols) == pytest.approx(timing.T_ROW_READ * sum(per_row.values()))
