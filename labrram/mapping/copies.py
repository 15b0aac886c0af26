"""Copies of a network's layers on arrays: several differential pairs per weight.

A placement whose layer key ``(l, m)`` is copy ``m`` of layer ``l`` holds ``copies[l]`` pairs
for every weight of layer ``l``. Two uses:

* **samples** (:mod:`.posterior`): each copy is one independent sample of a Bayesian network;
  :func:`max_copies` is how many whole networks fit.
* **redundancy** (PCM deployment, :func:`labrram.nn.drift.deploy_pcm`): every copy holds the
  same weight, and the weight read back is the mean of its healthy copies — a stuck device
  costs one copy, not the weight, and the programming error of a layer with ``c`` copies
  shrinks by ``sqrt(c)``. :func:`fill_copies` spends the room a network leaves on its arrays
  on its smallest layers first, where one lost weight weighs most (a 3×3 stem convolution on
  one input channel has 9 weights per output channel).

numpy only.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .placement import Placement, PlacementError, tile_count

__all__ = ["copy_weights", "fill_copies", "max_copies"]


def copy_weights(placement: Placement, n_layers: int, copies: int | Sequence[int], conductances: Mapping[int, Any]) -> list[np.ndarray]:
    """Networks read back from a placement whose layer ``(l, m)`` is copy ``m`` of layer
    ``l``: one ``(copies, n_in, n_out)`` array per layer, from conductance maps
    ``{array index: (rows, cols), S}``. ``copies``: the same number for every layer, or one
    number per layer."""
    per_layer = [int(copies)] * n_layers if isinstance(copies, (int, np.integer)) else [int(c) for c in copies]
    if len(per_layer) != n_layers:
        raise ValueError(f"copies names {len(per_layer)} layers, the network has {n_layers}")
    w = placement.weights(conductances)
    return [np.stack([w[(li, m)] for m in range(c)]) for li, c in enumerate(per_layer)]


def max_copies(shapes: Sequence[tuple[int, int]], array_shape: tuple[int, int] = (128, 128), max_arrays: int = 1) -> int:
    """Most copies of a network with augmented layer ``shapes`` that fit ``max_arrays`` arrays
    (0 if not even one does)."""

    def fits(m: int) -> bool:
        return _fits(shapes, [m] * len(shapes), array_shape, max_arrays)

    per_copy = 2 * sum(int(a) * int(b) for a, b in shapes)
    hi = max(1, (array_shape[0] * array_shape[1] * max_arrays) // per_copy)
    lo = 0
    while lo < hi:  # largest m in [0, hi] that fits
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def fill_copies(shapes: Sequence[tuple[int, int]], array_shape: tuple[int, int] = (128, 128), max_copies: int = 4, max_arrays: int = 1) -> list[int]:
    """Copies per layer that fill the room a network of weight ``shapes`` (``(n_in, n_out)``
    per layer) leaves on ``max_arrays`` arrays: every layer once, then, smallest layer first,
    each layer takes more copies (up to ``max_copies``) as long as the whole still fits.

    Raises
    ------
    PlacementError
        If one copy of every layer does not fit.
    ValueError
        If ``max_copies`` is not a positive integer.
    """
    if not isinstance(max_copies, (int, np.integer)) or max_copies < 1:
        raise ValueError(f"max_copies must be a positive integer, got {max_copies!r}")
    shapes = [(int(a), int(b)) for a, b in shapes]
    copies = [1] * len(shapes)
    tile_count(_layout(shapes, copies), array_shape, max_arrays)  # one copy of everything must fit: raises if not
    for i in sorted(range(len(shapes)), key=lambda k: (shapes[k][0] * shapes[k][1], k)):
        while copies[i] < max_copies:
            copies[i] += 1
            if not _fits(shapes, copies, array_shape, max_arrays):
                copies[i] -= 1
                break
    return copies


def _layout(shapes: Sequence[tuple[int, int]], copies: Sequence[int]) -> dict[tuple[int, int], tuple[int, int]]:
    """Layer ``(l, m)``: copy ``m`` of layer ``l``, for ``copies[l]`` copies of each."""
    return {(i, m): s for i, s in enumerate(shapes) for m in range(copies[i])}


def _fits(shapes: Sequence[tuple[int, int]], copies: Sequence[int], array_shape: tuple[int, int], max_arrays: int) -> bool:
    """Whether ``copies[l]`` copies of every layer fit ``max_arrays`` arrays."""
    try:
        tile_count(_layout(shapes, copies), array_shape, max_arrays)
    except PlacementError:
        return False
    return True
