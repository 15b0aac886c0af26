"""Weights → conductance targets, and placement onto crossbar arrays.

* :mod:`labrram.mapping.differential` — deterministic weights: differential pairs, bit slices,
  per-layer or per-column scales, clipping, and tiling onto arrays (:func:`place`).
* :mod:`labrram.mapping.posterior` — Gaussian posteriors: each weight sample the difference of
  two devices SET once at the KL-nearest calibrated condition, ``M`` copies of the network.

numpy only: this room never imports torch, the simulator, the drivers or ``labrram.nn``.
"""

from .differential import (
    BitSlicedLayer,
    BitSlicedMapping,
    DifferentialMapping,
    MappedLayer,
    Placement,
    PlacementError,
    Tile,
    place,
    tile_count,
)
from .posterior import (
    Conditions,
    CopyPlacement,
    PairDomain,
    PosteriorLayer,
    PosteriorMapping,
    copy_weights,
    max_copies,
    place_copies,
)

__all__ = [
    "BitSlicedLayer",
    "BitSlicedMapping",
    "Conditions",
    "CopyPlacement",
    "DifferentialMapping",
    "MappedLayer",
    "PairDomain",
    "Placement",
    "PlacementError",
    "PosteriorLayer",
    "PosteriorMapping",
    "Tile",
    "copy_weights",
    "max_copies",
    "place",
    "place_copies",
    "tile_count",
]
