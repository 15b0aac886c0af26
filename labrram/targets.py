"""Conductance targets from what a user hands in: an array, a ``.npy`` file, or a pattern.

Patterns (conductances in S): ``constant:G``, ``uniform:LO:HI`` (seeded), ``checkerboard:LO:HI``,
``gradient:LO:HI`` (along the columns). ``.npy`` files are read without pickle
(:mod:`labrram.npyfile`). NaN marks a device to leave alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .npyfile import ArrayFileError, load_array

PATTERNS = "constant:G | uniform:LO:HI | checkerboard:LO:HI | gradient:LO:HI (S)"


class TargetSpecError(ValueError):
    """A targets or sigma specification that cannot be used; nothing was programmed."""


def parse_pattern(spec: str) -> tuple[str, list[float]]:
    """Parse and check a targets pattern (see :data:`PATTERNS`) without knowing the array."""
    kind, _, rest = spec.partition(":")
    try:
        values = [float(x) for x in rest.split(":")] if rest else []
    except ValueError:
        raise TargetSpecError(f"bad numbers in targets pattern {spec!r}; patterns: {PATTERNS}") from None
    if not ((kind == "constant" and len(values) == 1) or (kind in ("uniform", "checkerboard", "gradient") and len(values) == 2)):
        raise TargetSpecError(f"unknown targets {spec!r}: give FILE.npy or a pattern: {PATTERNS}")
    if not all(np.isfinite(values)):
        raise TargetSpecError(f"targets pattern {spec!r}: conductances must be finite numbers (S)")
    if kind == "uniform" and values[0] > values[1]:
        raise TargetSpecError(f"targets pattern {spec!r}: LO must not exceed HI")
    return kind, values


def load_npy(path: str | Path, what: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A user's 2-D ``.npy`` array: header checked first, never unpickled."""
    try:
        return load_array(str(path), what, shape=shape, ndim=2)
    except ArrayFileError as exc:
        raise TargetSpecError(f"cannot load {what}: {exc}") from None


def resolve_targets(spec: Any, shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Targets (S) of the array's ``shape`` from an array, a ``.npy`` path or a pattern."""
    if isinstance(spec, (str, Path)):
        text = str(spec)
        if text.lower().endswith(".npy"):
            return load_npy(text, "targets", shape)
        kind, values = parse_pattern(text)
        rows, cols = np.indices(shape)
        if kind == "constant":
            return np.full(shape, values[0])
        lo, hi = values
        if kind == "uniform":
            return np.random.default_rng(seed).uniform(lo, hi, shape)
        if kind == "checkerboard":
            return np.where((rows + cols) % 2 == 0, lo, hi).astype(float)
        return lo + (hi - lo) * cols / max(shape[1] - 1, 1)
    if np.ma.isMaskedArray(spec) and spec.dtype.kind in "fiu":  # a masked device is left alone, as NaN says
        return np.ma.filled(spec.astype(float), np.nan)
    return np.asarray(spec)


def resolve_sigma(spec: Any, mu: np.ndarray) -> np.ndarray | None:
    """The wanted spread per device (S) for stochastic SET: None or ``"calibrated"`` (the
    calibrated population spread, chosen by the plan), a number, an array or a ``.npy`` path."""
    if spec is None or (isinstance(spec, str) and spec == "calibrated"):
        return None
    if isinstance(spec, (str, Path)) and str(spec).lower().endswith(".npy"):
        sigma = load_npy(spec, "sigma", mu.shape)
    elif isinstance(spec, (str, int, float)):
        try:
            sigma = np.full(mu.shape, float(spec))
        except ValueError:
            raise TargetSpecError(f"sigma must be 'calibrated', a number (S) or FILE.npy, got {spec!r}") from None
    else:
        sigma = np.asarray(spec, dtype=float)
    return sigma
