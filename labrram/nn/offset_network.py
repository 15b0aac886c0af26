"""A convolutional network in offset encoding, programmed array image by array image and run by
in-array MVMs; read-back evaluation at amplified variation.

numpy only. The layers are :mod:`labrram.nn.tiled`'s :class:`~labrram.nn.tiled.Conv` and
:class:`~labrram.nn.tiled.Dense`, unrolled the same way (im2col, small kernels replicated on
the diagonal of one matrix, :func:`~labrram.nn.tiled.replicate`), but every augmented matrix is
in offset encoding (:mod:`labrram.mapping.offset`: 4 devices per 8-bit weight, one per 2-bit
slice, ``w = step·(code − offset)``) instead of differential pairs. The off-diagonal blocks of
replicated kernels hold no weight: code 0 (level 0 in every slice), outside the offset term.

Running (:func:`run_offset_network`) follows :func:`labrram.nn.tiled.run_in_array`: the one
array of the station is programmed with one array image at a time by the write-verify plan
(engine, drivers, optional run store), the bench waits ``settle`` seconds (the chip relaxes
after programming; every read of the image comes after it), the whole array is read once (the
*read-back* map of that image), and every MVM of the image's tiles is issued for the batch
through :meth:`labrram.crossbar.Crossbar.mvm`.

Misprogrammed devices: offset encoding has no partner device to retarget (the repair of
:func:`labrram.nn.tiled.compensate_pairs`), and a device stuck at LRS (≈ 400 µS) in the most
significant slice is an error of hundreds of codes. A device write-verify gives up on is known
after programming, with its last read. When that read lies more than half a level step from its
target (:func:`labrram.mapping.offset.misprogrammed`: stuck, or past a neighbouring level), its
error ``G_last − T`` is subtracted digitally from its column's current
(``I ← I − v_row·(G_last − T)``: a sparse correction over the ≈ 0.3 % of the devices,
:attr:`OffsetImage.correction`), the way the read-back maps are corrected too. The other devices
write-verify gave up on — a broad level that relaxed out of its verify band, on a chip where one
level is unstable a tenth of that level's devices — keep their error: it is the level's
variation, as measured, and correcting it would hide exactly what a level table ranks.

Amplified variation without reprogramming (:func:`readback_logits`): each device's measured
deviation from its target in the read-back map is scaled by ``alpha``,
``G = T + alpha·(G_read − T)``, and the network is evaluated digitally with the weights those
conductances encode (``alpha = 1``: the read-back as measured; ``alpha = 0``: the quantized
software network). This amplifies everything that separates a device from its target
(write-verify tolerance, post-programming relaxation, read noise, stuck devices); it uses one
read per device instead of one read per MVM.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from labrram.calibration.files import Calibration, default_calibration, load_calibration
from labrram.mapping.offset import OffsetPlacement, OffsetSlicedLayer, OffsetSlicedMapping, misprogrammed, place_offset
from labrram.protocols.engine import run_plan
from labrram.protocols.write_verify import ReRAMWriteVerify, WriteVerifyReRAM

from .tiled import MAX_MVM_VOLTAGE, BatchTotals, Conv, Dense, LayerPlan, forward, replicate

__all__ = [
    "OffsetImage",
    "OffsetLayerPlan",
    "OffsetNetwork",
    "OffsetNetworkPlan",
    "OffsetRun",
    "plan_offset_network",
    "quantize_network",
    "readback_logits",
    "readback_weights",
    "run_offset_network",
]

Layer = Conv | Dense


def _from_matrix(lay: Layer, mat: np.ndarray) -> Layer:
    """A layer like ``lay`` whose augmented matrix is ``mat``."""
    w, b = mat[:-1], mat[-1]
    if isinstance(lay, Conv):
        return Conv(w.T.reshape(lay.weight.shape), b, lay.stride, lay.padding, lay.relu, lay.pool)
    return Dense(w.T, b, lay.relu)


@dataclass(frozen=True, eq=False)
class OffsetNetwork:
    """A network of integer codes (:func:`quantize_network`).

    Attributes
    ----------
    layers : tuple of Conv and Dense
        The network with the weights the codes encode exactly (the quantized software network).
    codes : tuple of ndarray
        Augmented ``(n_in + 1, n_out)`` unsigned codes of every layer.
    steps : tuple of float
        Weight per code unit of every layer.
    offsets : tuple of ndarray
        Offset of every column of every layer.
    constrained : tuple of ndarray
        Columns restricted to allowed codes (boolean, per layer).
    """

    layers: tuple[Layer, ...]
    codes: tuple[np.ndarray, ...]
    steps: tuple[float, ...]
    offsets: tuple[np.ndarray, ...]
    constrained: tuple[np.ndarray, ...]

    def digit_histogram(self, bits: int = 8, slice_bits: int = 2) -> np.ndarray:
        """Fraction of devices at every level, per slice ``(n_slices, 2^slice_bits)``."""
        n = -(-bits // slice_bits)
        u = np.concatenate([c.ravel() for c in self.codes])
        return np.stack([np.bincount((u >> (slice_bits * k)) & (2**slice_bits - 1), minlength=2**slice_bits) / u.size for k in range(n)])


def quantize_network(
    layers: Sequence[Layer],
    mapping: OffsetSlicedMapping,
    steps: Sequence[float] | None = None,
    constrained: Sequence[Any] | None = None,
    offset: int | None = None,
) -> OffsetNetwork:
    """Codes of a network: ``rint(w/step) + offset`` per column, clipped to the code range.

    Parameters
    ----------
    layers : list of Conv and Dense
    mapping : OffsetSlicedMapping
    steps : list of float, optional
        Step of every layer (default ``max|W|/(2^(bits−1) − 1)`` of its augmented matrix).
    constrained : list of bool arrays, optional
        Columns of every layer that take ``offset`` instead of the mapping's; their weights
        must already be multiples of the step whose codes are allowed (the biased training's
        projection): they are rounded like the others.
    offset : int, optional
        Offset of the constrained columns.
    """
    layers = tuple(layers)
    mats = [lay.matrix() for lay in layers]
    steps = [mapping.step_for(m) for m in mats] if steps is None else [float(s) for s in steps]
    if len(steps) != len(layers):
        raise ValueError(f"steps has {len(steps)} entries for {len(layers)} layers")
    cons = [np.zeros(m.shape[1], bool) for m in mats] if constrained is None else [np.asarray(c, bool) for c in constrained]
    if any(c.shape != (m.shape[1],) for c, m in zip(cons, mats)) or len(cons) != len(mats):
        raise ValueError("constrained must give one boolean per output column of every layer")
    if any(c.any() for c in cons) and offset is None:
        raise ValueError("constrained columns need their offset")
    codes, offs, out = [], [], []
    for lay, m, s, c in zip(layers, mats, steps, cons):
        off = np.where(c, mapping.offset if offset is None else int(offset), mapping.offset).astype(np.int64)
        u = np.clip(np.rint(m / s) + off[None, :], 0, mapping.code_max).astype(np.int64)
        codes.append(u)
        offs.append(off)
        out.append(_from_matrix(lay, s * (u - off[None, :])))
    return OffsetNetwork(tuple(out), tuple(codes), tuple(steps), tuple(offs), tuple(cons))


@dataclass(frozen=True, eq=False)
class OffsetLayerPlan(LayerPlan):
    """One layer of an :class:`OffsetNetworkPlan`: the fields and counts of
    :class:`labrram.nn.tiled.LayerPlan`, with ``mapped`` an :class:`OffsetSlicedLayer` and
    ``placement`` an :class:`OffsetPlacement` (4 devices per entry of the replicated matrix)."""


@dataclass(frozen=True, eq=False)
class OffsetNetworkPlan:
    """A network in offset encoding, unrolled and tiled (:func:`plan_offset_network`)."""

    network: OffsetNetwork
    plans: tuple[OffsetLayerPlan, ...]
    array_shape: tuple[int, int]
    input_shape: tuple[int, ...]

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The quantized software layers."""
        return self.network.layers

    @property
    def arrays(self) -> int:
        """Array images (programming jobs per batch)."""
        return sum(p.arrays for p in self.plans)

    @property
    def tiles(self) -> int:
        """Tiles of every layer."""
        return sum(p.tiles for p in self.plans)

    @property
    def devices(self) -> int:
        """Devices of every layer."""
        return sum(p.devices for p in self.plans)

    @property
    def weights(self) -> int:
        """Weights and biases (before replication)."""
        return sum(c.size for c in self.network.codes)

    @property
    def mvms_per_image(self) -> int:
        """MVMs of one image run alone."""
        return sum(p.mvms_per_image for p in self.plans)

    def mvms(self, n_images: int) -> int:
        """MVMs for a batch of ``n_images``."""
        return sum(p.mvms(n_images) for p in self.plans)


def plan_offset_network(
    network: OffsetNetwork,
    input_shape: tuple[int, ...],
    mapping: OffsetSlicedMapping,
    array_shape: tuple[int, int] = (128, 128),
    replicate_kernels: bool = True,
) -> OffsetNetworkPlan:
    """Unroll, encode and tile a network of codes (module docstring)."""
    shape = tuple(int(s) for s in input_shape)
    R, C = int(array_shape[0]), int(array_shape[1])
    n_sl = -(-mapping.bits // mapping.slice_bits)
    per_out = 2 * (-(-n_sl // 2))
    plans = []
    for i, (lay, u, s, off) in enumerate(zip(network.layers, network.codes, network.steps, network.offsets)):
        out = lay.out_shape(shape)
        if isinstance(lay, Conv):
            _, h, w = lay.conv_shape(shape)
            positions, kind = h * w, "conv"
        else:
            positions, kind = 1, "dense"
        n, m = u.shape[0] - 1, u.shape[1]
        r = max(1, min((R - 1) // n, C // (per_out * m), positions)) if (replicate_kernels and kind == "conv") else 1
        codes = replicate(u.astype(float), r).astype(np.int64) if r > 1 else u
        present = replicate(np.ones(u.shape), r) > 0 if r > 1 else np.ones(u.shape, bool)
        mapped = mapping.from_codes(np.where(present, codes, 0), s, np.tile(off, r), present)
        plans.append(OffsetLayerPlan(i, kind, shape, out, positions, r, mapped, place_offset([mapped], (R, C))))
        shape = out
    return OffsetNetworkPlan(network, tuple(plans), (R, C), tuple(int(v) for v in input_shape))


def _packed(lp: OffsetLayerPlan, v: np.ndarray, rng: float, mvm: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``[clip(v), 1] @ W`` of a layer's (replicated) matrix: ``r`` consecutive vectors per MVM
    (the last padded with zero inputs), ``mvm`` applied to ``(n_vec, r·n_in + 1)``."""
    r, k = lp.replicas, v.shape[1]
    m = lp.mapped.shape[1] // r
    x = np.clip(v, -rng, rng)
    if r > 1:
        n_vec = -(-x.shape[0] // r)
        x = np.vstack([x, np.zeros((n_vec * r - x.shape[0], k))]).reshape(n_vec, r * k)
    y = mvm(np.hstack([x, np.ones((x.shape[0], 1))]))
    return y.reshape(-1, m)[: v.shape[0]] if r > 1 else y


@dataclass
class OffsetImage:
    """One array image: programming, read-back and MVMs.

    Attributes
    ----------
    layer, array, tiles, devices : int
    targets : ndarray
        The image's target map, S (NaN: no device).
    read : ndarray
        The whole-array read after programming and ``settle``, S.
    correction : ndarray
        ``G_last − T`` of every misprogrammed device (write-verify gave up on it more than
        half a level step from its target, :func:`labrram.mapping.offset.misprogrammed`),
        0 elsewhere, S.
    failed : int
        Devices write-verify gave up on.
    corrected : int
        The misprogrammed ones among them, whose error is corrected digitally.
    converged_fraction : float
    program_bench_time, program_wall_time : float
        Programming (and the settle wait and read), s.
    mvms : int
    mvm_bench_time, mvm_wall_time : float
    """

    layer: int
    array: int
    tiles: int
    devices: int
    targets: np.ndarray
    read: np.ndarray
    correction: np.ndarray
    failed: int
    corrected: int
    converged_fraction: float
    program_bench_time: float
    program_wall_time: float
    mvms: int = 0
    mvm_bench_time: float = 0.0
    mvm_wall_time: float = 0.0


@dataclass
class OffsetRun(BatchTotals):
    """Outcome of :func:`run_offset_network`.

    Attributes
    ----------
    plan : OffsetNetworkPlan
    logits : ndarray (N, n_out) or None
        Outputs computed by in-array MVMs (None when no inputs were run).
    images : list of OffsetImage
    ranges : list of float
    v_max : float
    """

    plan: OffsetNetworkPlan
    logits: np.ndarray | None
    images: list[OffsetImage] = field(default_factory=list)
    ranges: list[float] = field(default_factory=list)
    v_max: float = 0.2

    def _records(self) -> list[OffsetImage]:
        return self.images

    @property
    def converged_fraction(self) -> float:
        """Fraction of the devices write-verify accepted."""
        return float(sum(j.converged_fraction * j.devices for j in self.images) / max(self.devices_programmed, 1))

    def projection(self, n_images: int) -> dict[str, float]:
        """Projected bench time for ``n_images`` (programming once + MVMs at the measured time
        per MVM), s: ``program``, ``inference``, ``total``, ``per_mvm``."""
        per = self.mvm_bench_time / max(self.mvms, 1) if self.mvms else float("nan")
        inf = self.plan.mvms(n_images) * per
        return {"program": self.program_bench_time, "inference": inf, "total": self.program_bench_time + inf, "per_mvm": per}

    def accuracy(self, y: Any) -> float:
        """In-array accuracy against labels ``y``."""
        if self.logits is None:
            raise ValueError("no in-array inference in this run")
        y = np.asarray(y)
        if y.shape != (self.logits.shape[0],):
            raise ValueError(f"y has shape {y.shape}, the run has {self.logits.shape[0]} images")
        return float(np.mean(np.argmax(self.logits, axis=1) == y))


def run_offset_network(
    station: Any,
    plan: OffsetNetworkPlan,
    X: Any,
    ranges: Sequence[float],
    *,
    v_max: float = 0.2,
    settle: float = 1.0,
    calibration: Any = None,
    settings: ReRAMWriteVerify | None = None,
    out_dir: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> OffsetRun:
    """Program the station's array image by image, read each image back, and compute the
    network on ``X`` by in-array MVMs (module docstring).

    Parameters
    ----------
    station : ConnectedStation
        An open simulated or real station whose array has ``plan.array_shape``.
    plan : OffsetNetworkPlan
    X : array or None
        Inputs ``(N, *plan.input_shape)``; None or empty: program and read back only.
    ranges : list of float
        Input range of every layer (:func:`labrram.nn.tiled.input_ranges`).
    v_max : float
        Row voltage of the largest input, V.
    settle : float
        Wait after programming each image, before its read-back and MVMs, s.
    calibration : Calibration, str or Path, optional
        The ReRAM calibration write-verify aims with (default the shipped one).
    settings : ReRAMWriteVerify, optional
    out_dir : str or Path, optional
        A new directory for the run store of every programming job.
    progress : callable, optional
        ``progress(label, done, total)`` after every image.
    """
    xb, timer = station.crossbar, station.timer
    if xb.array_kind() != "reram":
        raise ValueError("run_offset_network programs 1T1R ReRAM arrays by write-verify")
    cal = calibration if isinstance(calibration, Calibration) else (default_calibration("reram") if calibration is None else load_calibration(calibration))
    if tuple(xb.shape) != tuple(plan.array_shape):
        raise ValueError(f"the plan is for {plan.array_shape} arrays, the station's array is {xb.shape}")
    v_top = min(MAX_MVM_VOLTAGE, float(xb.limits.max_voltage))
    if not (math.isfinite(v_max) and 0 < v_max <= v_top):
        raise ValueError(f"v_max must be in (0, {v_top:g}] V, got {v_max!r}")
    if not (math.isfinite(settle) and settle >= 0):
        raise ValueError(f"settle must be a time >= 0 s, got {settle!r}")
    ranges = [float(r) for r in ranges]
    if len(ranges) != len(plan.plans) or not all(math.isfinite(r) and r > 0 for r in ranges):
        raise ValueError(f"ranges must give one positive input range per layer ({len(plan.plans)}), got {ranges}")
    if out_dir is not None:
        out_dir = Path(out_dir)
        if out_dir.exists():
            raise FileExistsError(f"{out_dir} already exists; choose a new directory for the run stores")
        out_dir.mkdir(parents=True)
    wv = settings or ReRAMWriteVerify()
    attrs = {"calibration": cal.provenance, "chip": xb.identify(), "device_kind": "reram", "encoding": "offset"}
    images: list[OffsetImage] = []

    def program(i: int, a: int) -> OffsetImage:
        lp = plan.plans[i]
        t0, w0 = timer.now(), time.perf_counter()
        targets = lp.placement.targets(a)
        out = None if out_dir is None else str(out_dir / f"layer{i}-array{a}.zarr")
        res = run_plan(xb, WriteVerifyReRAM(targets, cal.model, wv), out, timer=timer, attrs={**attrs, "network_job": f"layer {i}, array image {a}"})
        if settle > 0:
            timer.wait(settle)
        g = xb.read()
        mask = np.isfinite(targets)
        bad = misprogrammed(targets, res.achieved, res.converged, lp.mapped.levels)
        corr = np.where(bad, np.nan_to_num(res.achieved) - np.nan_to_num(targets), 0.0)
        tiles = lp.placement.tiles_on(a)
        img = OffsetImage(i, a, len(tiles), sum(lp.placement.tile_devices(t) for t in tiles), targets, g, corr,
                          int((mask & ~res.converged).sum()), int(bad.sum()), float(res.converged[mask].mean()), timer.now() - t0,
                          time.perf_counter() - w0)  # fmt: skip
        images.append(img)
        if progress is not None:
            progress(f"layer {i} array {a}", len(images), plan.arrays)
        return img

    X = None if X is None else np.asarray(X, dtype=float)
    if X is None or X.shape[0] == 0:
        for lp in plan.plans:
            for a in range(lp.arrays):
                program(lp.index, a)
        return OffsetRun(plan, None, images, ranges, float(v_max))
    if X.shape[1:] != plan.input_shape:
        raise ValueError(f"X has shape {X.shape}, the plan takes (N, {', '.join(map(str, plan.input_shape))})")

    def matvec(i: int, v: np.ndarray) -> np.ndarray:
        lp = plan.plans[i]
        v_read = v_max / max(ranges[i], 1.0)

        def on_array(xa: np.ndarray) -> np.ndarray:
            y = np.zeros((xa.shape[0], lp.mapped.shape[1]))
            for a in range(lp.arrays):
                img = program(i, a)
                count = [0]

                def read(_a: int, volts: np.ndarray, corr: np.ndarray = img.correction) -> np.ndarray:
                    count[0] += 1
                    return xb.mvm(volts) - volts @ corr  # the misprogrammed devices' known error, digitally

                t0, w0 = timer.now(), time.perf_counter()
                y += lp.placement.mvm(0, xa, read, v_read=v_read, tiles=lp.placement.tiles_on(a))
                img.mvms, img.mvm_bench_time, img.mvm_wall_time = count[0], timer.now() - t0, time.perf_counter() - w0
            return y

        return _packed(lp, v, ranges[i], on_array)

    logits = forward(plan.layers, X, matvec)
    return OffsetRun(plan, logits, images, ranges, float(v_max))


def readback_weights(run: OffsetRun, alpha: float = 1.0) -> list[np.ndarray]:
    """Effective (replicated) matrices of every layer from the read-back maps (misprogrammed devices
    corrected as in the MVMs) with each device's deviation from its target scaled by ``alpha``."""
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a number >= 0, got {alpha!r}")
    out = []
    for lp in run.plan.plans:
        maps = {}
        for img in run.images:
            if img.layer == lp.index:
                t = img.targets
                g = img.read - img.correction
                maps[img.array] = np.where(np.isfinite(t), np.nan_to_num(t) + alpha * (g - np.nan_to_num(t)), g)
        if len(maps) != lp.arrays:
            raise ValueError(f"layer {lp.index}: {len(maps)} of its {lp.arrays} array images were read back")
        out.append(lp.placement.weights(0, maps))
    return out


def readback_logits(run: OffsetRun, X: Any, alpha: float = 1.0, weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Outputs of the network on ``X`` computed digitally from the read-back conductances at
    variation multiplier ``alpha`` (module docstring); inputs clipped to the run's ranges as
    in the array."""
    W = list(weights) if weights is not None else readback_weights(run, alpha)
    plans = run.plan.plans

    def matvec(i: int, v: np.ndarray) -> np.ndarray:
        return _packed(plans[i], v, run.ranges[i], lambda xa: xa @ W[i])

    return forward(run.plan.layers, np.asarray(X, dtype=float), matvec)
