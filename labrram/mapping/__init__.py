"""Weights → conductance targets, and placement onto crossbar arrays.

* :mod:`labrram.mapping.differential` — deterministic weights: differential pairs, bit slices,
  per-layer or per-column scales, clipping.
* :mod:`labrram.mapping.placement` — mapped layers tiled and packed onto arrays (:func:`place`),
  read back and multiplied tile by tile.
* :mod:`labrram.mapping.offset` — offset encoding: ``w = step·(code − offset)``, one device per
  multi-level slice (4 devices per 8-bit weight), placed with the same packing.
* :mod:`labrram.mapping.posterior` — Gaussian posteriors: each weight sample the difference of
  two devices SET once at the KL-nearest calibrated condition, ``M`` copies of the network.
* :mod:`labrram.mapping.copies` — several differential pairs per weight: copies of a network
  (samples) or of its smallest layers (redundancy), read back per copy.
* :mod:`labrram.mapping.remap` — the order of a layer's inputs on its rows that puts the devices
  a programming job left off target under weights they serve or small ones.

numpy (and scipy's assignment solver) only: this room never imports torch, the simulator, the
drivers or ``labrram.nn``.
"""

from .differential import BitSlicedLayer, BitSlicedMapping, DifferentialMapping, MappedLayer
from .placement import Placement, PlacementError, Tile, place, tile_count
from .copies import copy_weights, fill_copies, max_copies
from .remap import STAND_INS, binary_fault_order, binary_off_target, fault_aware_order, least_cost_order, lost_pairs
from .offset import OffsetPlacement, OffsetSlicedLayer, OffsetSlicedMapping, misprogrammed, place_offset
from .posterior import (
    Conditions,
    CopyPlacement,
    PairDomain,
    PosteriorLayer,
    PosteriorMapping,
    place_copies,
)

__all__ = [
    "BitSlicedLayer",
    "BitSlicedMapping",
    "Conditions",
    "CopyPlacement",
    "DifferentialMapping",
    "MappedLayer",
    "OffsetPlacement",
    "OffsetSlicedLayer",
    "OffsetSlicedMapping",
    "PairDomain",
    "Placement",
    "PlacementError",
    "PosteriorLayer",
    "PosteriorMapping",
    "Tile",
    "STAND_INS",
    "binary_fault_order",
    "binary_off_target",
    "copy_weights",
    "fault_aware_order",
    "least_cost_order",
    "fill_copies",
    "lost_pairs",
    "max_copies",
    "misprogrammed",
    "place",
    "place_copies",
    "place_offset",
    "tile_count",
]
