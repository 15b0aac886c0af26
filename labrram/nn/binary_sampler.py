"""The sampler of a binary Bayesian network on PCM (:mod:`labrram.nn.bayes2imc`): the read-to-read
noise of programmed devices, measured through the instruments, as a power law of conductance.

A weight device compared with a reference draws ``w = sign(G + n − G_ref)``; the spread of ``n``
at the read spacing of inference sets how far from the reference each weight is programmed.
:func:`calibrate_sampler` programs spare devices to a ladder of levels (and, with reference
devices, those references with them), reads them ``n`` times ``interval`` apart, and fits
``σ(G) = a (G / 1 µS)^b`` to the per-device spreads (:class:`SamplerNoise`).

Successive reads are not quite independent draws: the part of the 1/f noise slower than their
spacing carries from one read to the next. :func:`effective_samples` measures, from the reads
themselves, how many independent draws a run of successive reads is worth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from labrram.crossbar import Crossbar
from labrram.protocols.write_verify_pcm import PCMWriteVerify, write_verify_pcm

__all__ = ["EffectiveSamples", "SamplerNoise", "calibrate_sampler", "effective_samples"]


@dataclass(frozen=True)
class SamplerNoise:
    """Measured read-to-read noise ``σ(G) = a (G / 1 µS)^b`` at a read spacing ``interval``.

    Attributes
    ----------
    a : float
        σ at 1 µS, S.
    b : float
        Power-law exponent.
    interval : float
        Spacing of the reads it was measured with, s.
    levels, sigmas : ndarray
        The calibration levels (S) and the median measured σ at each (S).
    """

    a: float
    b: float
    interval: float
    levels: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    sigmas: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def sigma(self, g: Any) -> np.ndarray:
        """Sampling noise at conductance ``g`` (S)."""
        return self.a * (np.maximum(np.asarray(g, dtype=float), 1e-9) / 1e-6) ** self.b

    def targets(self, g_ref: float, z: Any, iterations: int = 20) -> np.ndarray:
        """Conductances ``G`` with ``G − g_ref = z σ(G)`` (fixed point), S."""
        z = np.asarray(z, dtype=float)
        g = g_ref + z * self.sigma(g_ref)
        for _ in range(iterations):
            g = g_ref + z * self.sigma(np.maximum(g, 0.1 * g_ref))
        return g


def _read_series(xb: Crossbar, timer, n: int, interval: float, cells=None) -> np.ndarray:
    out = []
    for k in range(int(n)):
        if k:
            timer.wait(interval)
        out.append(xb.read() if cells is None else xb.read(cells))
    return np.stack(out)


def calibrate_sampler(
    xb: Crossbar,
    timer,
    cells: tuple[np.ndarray, np.ndarray],
    levels: Sequence[float] = (3e-6, 5e-6, 8e-6, 11e-6, 14e-6),
    n_reads: int = 24,
    interval: float = 1.0,
    settle: float = 60.0,
    half_width: float = 0.3e-6,
    references: tuple[np.ndarray, np.ndarray] | None = None,
    g_ref: float = 8e-6,
) -> SamplerNoise:
    """Measure the read-to-read noise of programmed devices and fit ``σ(G) = a (G/1 µS)^b``.

    Parameters
    ----------
    xb : Crossbar
        The PCM array.
    timer : BenchTimer
        The station's timer.
    cells : (rows, cols)
        Spare devices to use (at least 5 per level).
    levels : sequence of float
        Conductance levels to program, cycled over ``cells``, S.
    n_reads : int
        Reads per device.
    interval : float
        Spacing of the reads, s (that of the later sampling).
    settle : float
        Wait after programming before reading, s.
    half_width : float
        Write-verify window, S.
    references : (rows, cols), optional
        Two ``(k, n_cells)`` index arrays: the reference devices each cell is compared with
        (:meth:`BinaryLayout.references_of`). They are programmed to ``g_ref`` with the cells
        and read with them, and σ is then the spread of ``G − mean(references)``: the noise of
        the comparison that sampling makes, reference noise included.
    g_ref : float
        Level of the reference devices, S.

    Raises
    ------
    ValueError
        For too few cells or reads, badly shaped references, or when no level gives a usable
        spread.
    """
    rows, cols = (np.asarray(c, dtype=int).ravel() for c in cells)
    levels = np.asarray(levels, dtype=float)
    if rows.size != cols.size or rows.size < 5 * levels.size:
        raise ValueError(f"need at least {5 * levels.size} calibration cells for {levels.size} levels, got {rows.size}")
    if int(n_reads) != n_reads or n_reads < 4:
        raise ValueError(f"n_reads must be an integer >= 4, got {n_reads!r}")
    targets = np.full(xb.shape, np.nan)
    lvl = levels[np.arange(rows.size) % levels.size]
    if references is not None:
        ref_r, ref_c = (np.asarray(a, dtype=int) for a in references)
        if ref_r.ndim != 2 or ref_r.shape != ref_c.shape or ref_r.shape[1] != rows.size:
            raise ValueError(f"references must be two (k, {rows.size}) index arrays, got shapes {ref_r.shape} and {ref_c.shape}")
        if not (math.isfinite(g_ref) and g_ref > 0):
            raise ValueError(f"g_ref must be a finite number > 0, got {g_ref!r}")
        targets[ref_r, ref_c] = g_ref
    targets[rows, cols] = lvl
    res = write_verify_pcm(xb, targets, PCMWriteVerify(half_width=half_width, max_iterations=200))
    timer.wait(settle)
    ok = res.converged[rows, cols] & res.mask[rows, cols]
    if references is None:
        reads = _read_series(xb, timer, n_reads, interval, (rows, cols))
    else:
        flat = np.r_[rows * xb.shape[1] + cols, (ref_r * xb.shape[1] + ref_c).ravel()]
        cells_read, where = np.unique(flat, return_inverse=True)  # a reference shared by many cells is read once
        got = _read_series(xb, timer, n_reads, interval, (cells_read // xb.shape[1], cells_read % xb.shape[1]))[:, where]
        refs = got[:, rows.size :].reshape((n_reads,) + ref_r.shape)
        ref_ok = res.converged[ref_r, ref_c] & res.mask[ref_r, ref_c]  # as in sampling: working references only
        n_ok = ref_ok.sum(axis=0)
        reads = got[:, : rows.size] - (refs * ref_ok).sum(axis=1) / np.maximum(n_ok, 1)
        ok &= n_ok > 0
    sd = reads.std(axis=0, ddof=1)
    meds = np.array([np.median(sd[ok & (lvl == g)]) if np.any(ok & (lvl == g)) else np.nan for g in levels])
    good = np.isfinite(meds) & (meds > 0)
    if good.sum() < 2:
        raise ValueError("the sampler calibration found fewer than two levels with a measurable read spread")
    b, log_a = np.polyfit(np.log(levels[good] / 1e-6), np.log(meds[good]), 1)
    return SamplerNoise(float(np.exp(log_a)), float(b), float(interval), levels, meds)


@dataclass(frozen=True)
class EffectiveSamples:
    """How many independent draws a run of ``window`` successive sampling reads is worth.

    Attributes
    ----------
    window : int
        Successive reads per run (the networks of one inference).
    windows : int
        Runs the reads were cut into.
    weights : int
        Sampled weights the estimate rests on (those that read both signs).
    variance_ratio : float
        Spread of a weight's fraction of +1 reads from run to run, over what ``window``
        independent draws of its probability would give (pooled over the weights): 1 for
        independent reads, more when successive reads are correlated.
    effective : float
        ``window / variance_ratio``: the independent draws the run is worth.
    """

    window: int
    windows: int
    weights: int
    variance_ratio: float
    effective: float


def effective_samples(samples: Sequence[Sequence[np.ndarray]], ok: Sequence[np.ndarray], window: int) -> EffectiveSamples:
    """How many independent draws ``window`` successive reads are worth, by batch means.

    The reads ``samples`` (successive networks, each a list of per-layer ±1 arrays, in the order
    they were read) are cut into runs of ``window``. For every sampled weight (``ok``) that reads
    both signs, the fraction of +1 reads in each run varies from run to run; were the reads
    independent draws of the weight's probability ``p``, its variance would be
    ``p (1 − p) / window``. The ratio of the two, pooled over the weights, is how much the
    correlation of successive reads (1/f noise slower than their spacing) inflates it.

    Parameters
    ----------
    samples : sequence of networks
        At least ``2 * window`` successive reads, one network each (a multiple of ``window``
        is used; reads past the last whole run are left out).
    ok : sequence of ndarray of bool
        Per layer, the weights that are sampled (:meth:`BinaryDeployment.ok`).
    window : int
        Reads per run, >= 2.

    Returns
    -------
    EffectiveSamples
    """
    if int(window) != window or window < 2:
        raise ValueError(f"window must be an integer >= 2, got {window!r}")
    window = int(window)
    runs = len(samples) // window
    if runs < 2:
        raise ValueError(f"{len(samples)} reads make fewer than 2 runs of {window}")
    if any(len(net) != len(ok) for net in samples):
        raise ValueError(f"every network needs {len(ok)} layers, as ok has")
    for l, m in enumerate(ok):
        if any(np.shape(net[l]) != np.shape(m) for net in samples):
            raise ValueError(f"layer {l}: the networks' weights and ok must have the same shape {np.shape(m)}")
    n = runs * window
    plus = np.concatenate(
        [np.stack([np.asarray(net[l])[m] > 0 for net in samples[:n]]).astype(float) for l, m in enumerate(ok)], axis=1
    )  # (n reads, sampled weights)
    p = plus.mean(axis=0)
    mixed = (p > 0) & (p < 1)
    if not mixed.any():
        raise ValueError("no sampled weight reads both signs: nothing to measure the correlation on")
    plus, p = plus[:, mixed], p[mixed]
    between = plus.reshape(runs, window, -1).mean(axis=1).var(axis=0, ddof=1).sum()
    binomial = (p * (1 - p) * n / (n - 1)).sum() / window
    ratio = float(between / binomial)
    return EffectiveSamples(window, runs, int(mixed.sum()), ratio, window / ratio)
