"""The level table of a multi-level cell, measured on the chip, and the code sets it allows.

Diware et al. (AICAS 2023) rank the conductance states of a 2-bit cell by the error current
their variation causes, from a table of measured levels. Here that table is measured the way a
lab measures it: :func:`measure_levels` programs a block of devices to every level with the
write-verify plan (through the engine and the drivers), waits, reads the block back in one
whole-array read and keeps each level's mean and standard deviation. Nothing is taken from a
device model: a chip whose intermediate level relaxes after write-verify (a hidden property of
the simulated chip, :class:`labrram.devices.reram.LevelInstability`) shows up in the table
only because its reads are broad.

From the table:

* :func:`level_ranking` — the error current ``V_read · σ_l · 2^(slice_bits·k)`` of every
  (slice, level) state (:func:`labrram.nn.mapping_aware.rank_states`); within a slice the
  levels rank by ``σ_l``;
* :func:`forbidden_levels` — the worst level of every slice (the paper's "config-3"), or of
  the most significant slices only;
* :func:`allowed_codes` — the unsigned codes whose every digit is an allowed level;
* :func:`choose_offset` — the offset for a constrained column: the allowed code that puts the
  most allowed codes within ``±2^(bits−2)`` of it, so zero is exact and small weights of
  both signs are reachable (with the worst level forbidden in the top slice, the conventional
  offset ``2^(bits−1)`` is not an allowed code at all when that level is the third);
* :func:`code_values` — the signed values ``u − offset`` a constrained column may take.

numpy only (the protocols run the programming).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labrram.crossbar import Crossbar
from labrram.devices.reram import ReRAMModel
from labrram.mapping.offset import misprogrammed
from labrram.protocols.engine import run_plan
from labrram.protocols.write_verify import ReRAMWriteVerify, WriteVerifyReRAM

__all__ = [
    "LevelTable",
    "allowed_codes",
    "choose_offset",
    "code_values",
    "forbidden_levels",
    "level_cells",
    "level_ranking",
    "measure_levels",
]


@dataclass(frozen=True)
class LevelTable:
    """Measured levels of a multi-level cell.

    Attributes
    ----------
    targets : ndarray (n_levels,)
        Write-verify target of each level, S.
    mean, std : ndarray (n_levels,)
        Mean and standard deviation of the read-back conductance of each level's devices, S:
        all but the misprogrammed ones (write-verify gave up on them more than half a level
        step from the level, :func:`labrram.mapping.offset.misprogrammed`: stuck devices, not
        the level's spread). A device that relaxed out of its verify band is the level's
        spread and counts.
    count : ndarray (n_levels,)
        Devices programmed per level.
    converged : ndarray (n_levels,)
        Fraction of them write-verify accepted.
    delay : float
        Time between the end of programming and the read-back, s.
    bench_time : float
        Bench time of the measurement (programming, wait, read), s.
    """

    targets: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray
    converged: np.ndarray
    delay: float
    bench_time: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_levels(self) -> int:
        """Levels of the cell."""
        return int(self.targets.size)

    def rows(self) -> list[dict[str, float]]:
        """One JSON-ready row per level (µS for display)."""
        return [
            {"level": i, "target_uS": 1e6 * float(t), "mean_uS": 1e6 * float(m), "std_uS": 1e6 * float(s), "devices": int(n), "converged": float(c)}
            for i, (t, m, s, n, c) in enumerate(zip(self.targets, self.mean, self.std, self.count, self.converged))
        ]


def level_cells(shape: tuple[int, int], n_levels: int, per_level: int) -> np.ndarray:
    """Level of every cell of a block (−1: unused): the first ``n_levels · per_level`` cells in
    row-major order, level ``(row + col) mod n_levels`` (a diagonal pattern, so every row and
    column holds every level)."""
    rows, cols = int(shape[0]), int(shape[1])
    n = int(n_levels) * int(per_level)
    if n_levels < 2 or per_level < 1 or n > rows * cols:
        raise ValueError(f"{n_levels} levels × {per_level} devices do not fit a {rows}×{cols} array (need n_levels >= 2, per_level >= 1)")
    r, c = np.divmod(np.arange(rows * cols), cols)
    lev = ((r + c) % n_levels).reshape(rows, cols)
    # keep per_level cells of each level, the first in row-major order
    out = np.full((rows, cols), -1)
    flat, used = lev.ravel(), out.ravel()
    for lv in range(n_levels):
        idx = np.flatnonzero(flat == lv)[:per_level]
        if idx.size < per_level:
            raise ValueError(f"the array has only {idx.size} cells for level {lv}, {per_level} asked")
        used[idx] = lv
    return out


def measure_levels(
    xb: Crossbar,
    targets: Any,
    model: ReRAMModel,
    *,
    per_level: int = 512,
    delay: float = 1.0,
    timer: Any = None,
    settings: ReRAMWriteVerify | None = None,
    out: str | Path | None = None,
) -> LevelTable:
    """Program ``per_level`` devices to every level by write-verify, wait ``delay`` s, read the
    whole array once and tabulate each level (module docstring).

    Parameters
    ----------
    xb : Crossbar
    targets : array (n_levels,)
        Conductance of each level, S.
    model : ReRAMModel
        The calibration write-verify aims with (the chip's own fitted model or the shipped one).
    per_level : int
        Devices per level.
    delay : float
        Wait between the end of programming and the read-back, s (on the bench clock).
    timer : BenchTimer, optional
        The bench clock (``station.timer``); needed for the wait and the bench time.
    settings : ReRAMWriteVerify, optional
    out : str or Path, optional
        Run store of the programming job.
    """
    t = np.asarray(targets, dtype=float)
    if t.ndim != 1 or t.size < 2 or not np.all(np.isfinite(t) & (t > 0)):
        raise ValueError("targets must be a 1-D array of at least two positive conductances (S)")
    if not (math.isfinite(delay) and delay >= 0):
        raise ValueError(f"delay must be a time >= 0 s, got {delay!r}")
    if timer is None and delay > 0:
        raise ValueError("a delay needs the bench timer (station.timer)")
    lev = level_cells(xb.shape, t.size, per_level)
    tmap = np.where(lev >= 0, t[np.maximum(lev, 0)], np.nan)
    t0 = timer.now() if timer is not None else 0.0
    res = run_plan(xb, WriteVerifyReRAM(tmap, model, settings or ReRAMWriteVerify()), out, timer=timer, attrs={"job": "level table"})
    if delay > 0:
        timer.wait(delay)
    g = xb.read()
    bench = (timer.now() - t0) if timer is not None else float(res.bench_time or 0.0)
    mean, std, count, conv = (np.zeros(t.size) for _ in range(4))
    wrong = misprogrammed(tmap, res.achieved, res.converged, t)  # a level step or more off: not the level's spread
    for lv in range(t.size):
        on = lev == lv
        ok = on & ~wrong
        gl = g[ok] if ok.any() else g[on]
        mean[lv], std[lv] = float(np.mean(gl)), float(np.std(gl, ddof=1)) if gl.size > 1 else 0.0
        count[lv], conv[lv] = on.sum(), (on & res.converged).sum() / max(on.sum(), 1)
    return LevelTable(t, mean, std, count.astype(int), conv, float(delay), float(bench))


def level_ranking(table: LevelTable, n_slices: int, slice_bits: int = 2, v_read: float = 0.2):
    """States ``(slice, level)`` ranked by error current (a
    :class:`~labrram.nn.mapping_aware.StateRanking`) from a measured table."""
    from .mapping_aware import rank_states  # (imports torch)

    if 2**slice_bits != table.n_levels:
        raise ValueError(f"{slice_bits}-bit slices need {2**slice_bits} levels, the table has {table.n_levels}")
    return rank_states(table.std, 2.0 ** (slice_bits * np.arange(n_slices)), v_read)


def forbidden_levels(ranking: Any, slices: Any = None) -> np.ndarray:
    """Boolean ``(n_slices, n_levels)``: the worst level (largest error current) of each slice
    in ``slices`` (default every slice: the paper's config-3) is forbidden."""
    err = np.asarray(ranking.error_current)
    which = range(err.shape[0]) if slices is None else [int(k) for k in slices]
    out = np.zeros(err.shape, dtype=bool)
    for k in which:
        if not 0 <= k < err.shape[0]:
            raise ValueError(f"slice {k} out of range 0 … {err.shape[0] - 1}")
        out[k, int(np.argmax(err[k]))] = True
    return out


def allowed_codes(forbidden: Any, bits: int = 8, slice_bits: int = 2) -> np.ndarray:
    """Sorted unsigned codes ``0 … 2^bits − 1`` none of whose digits is a forbidden level of
    its slice (``forbidden``: boolean ``(n_slices, 2^slice_bits)``)."""
    f = np.asarray(forbidden, dtype=bool)
    n = -(-bits // slice_bits)
    if f.shape != (n, 2**slice_bits):
        raise ValueError(f"forbidden must have shape {(n, 2**slice_bits)} for {bits}-bit codes in {slice_bits}-bit slices, got {f.shape}")
    u = np.arange(2**bits)
    ok = np.ones(u.size, dtype=bool)
    for k in range(n):
        ok &= ~f[k, (u >> (slice_bits * k)) & (2**slice_bits - 1)]
    if not ok.any():
        raise ValueError("every code uses a forbidden level")
    return u[ok]


def choose_offset(codes: Any, bits: int = 8) -> int:
    """The offset of a constrained column: the allowed code with the most allowed codes within
    ``[o − 2^(bits−2), o + 2^(bits−2))``; ties go to the code nearest ``2^(bits−1)``."""
    u = np.unique(np.asarray(codes, dtype=np.int64))
    if u.size == 0:
        raise ValueError("no allowed codes")
    h, mid = 2 ** (bits - 2), 2 ** (bits - 1)
    count = np.array([np.sum((u >= o - h) & (u < o + h)) for o in u])
    best = np.flatnonzero(count == count.max())
    return int(u[best[np.argmin(np.abs(u[best] - mid))]])


def code_values(codes: Any, offset: int, bits: int = 8) -> np.ndarray:
    """Signed values ``u − offset`` of allowed codes within ``±(2^(bits−1) − 1)`` (the layer's
    step range), sorted; 0 must be among them."""
    v = np.asarray(codes, dtype=np.int64) - int(offset)
    lim = 2 ** (bits - 1) - 1
    v = np.unique(v[np.abs(v) <= lim])
    if 0 not in v:
        raise ValueError(f"offset {offset} is not an allowed code: zero is not representable")
    return v
