"""Networks spread over many arrays: convolutions unrolled to MVMs, weight matrices tiled over
128×128 arrays, and one array reprogrammed tile by tile.

numpy only (the torch side is :mod:`labrram.nn.lenet`). A network is a list of :class:`Conv`
and :class:`Dense` layers; ReLU, max pooling and flattening between them are digital.

Unrolling (im2col)
------------------
A convolution with ``C_in`` input channels, ``k×k`` kernels and ``C_out`` output channels is
the augmented ``(C_in·k·k + 1) × C_out`` matrix ``[K; b]`` (kernel rows ordered channel, kernel
row, kernel column, then the bias row). Each output position is one matrix-vector product: the
``C_in·k·k`` pixels under the kernel there, and a 1 for the bias, applied as row voltages. A
small kernel leaves most of an array idle, so it is *replicated*: ``r`` copies sit on the
diagonal of one ``(r·C_in·k·k + 1) × r·C_out`` matrix (one shared bias row), and one MVM computes
``r`` output positions at once — the weight duplication of ISAAC and NeuRRAM, which trades
devices for MVMs. ``r`` is the largest that fits one array's rows and columns.

Tiling
------
Every layer's augmented matrix is mapped onto differential pairs
(:class:`~labrram.mapping.DifferentialMapping`, ``W ↦ (G⁺ − G⁻)/γ``) and laid onto arrays by
:func:`~labrram.mapping.place`: inputs that do not fit the rows become row tiles whose partial
column currents are added digitally, outputs that do not fit the columns become column tiles;
small tiles of one layer share an array. The same code as every other transfer in labrram does
the mapping, the layout and the tile-by-tile MVM (:meth:`~labrram.mapping.Placement.mvm`);
this module only adds the unrolling and the order of work. Layers are placed one by one, so an
array image never mixes two layers.

One array, reprogrammed tile by tile
------------------------------------
labrram's board carries one die (docs/board-protocol.md), as the boards of the labs that
inspired it do (ArC ONE, ArC TWO: one crossbar per board). A network larger than that array is
run the way such a lab runs it: the one array is programmed with one *array image* (the tiles of
one layer that :func:`~labrram.mapping.place` put on one array), every MVM of those tiles is
issued for every image of the batch, and the partial results are kept digitally; then the
array is reprogrammed with the next image. Layer ``l + 1`` starts when layer ``l`` is done for
the whole batch. This needs no new board protocol and no multi-array station; each programming
job is the write-verify plan that ``labrram program`` runs
(:class:`~labrram.protocols.write_verify.WriteVerifyReRAM` through the engine and the drivers,
with its own run store when asked, the station and calibration in its attributes), so it is
recorded, resumable and accounted in bench time like any other; the MVMs are the board's ``:MEAS:MVM?`` through
:meth:`labrram.crossbar.Crossbar.mvm`. A station with several arrays would program each image
once and keep it; here the programming is paid once per batch and layer image, which the
report states (:meth:`InArrayRun.projection`).

Cells outside the tile being read keep whatever an earlier image left there; they add no current,
because every row not driven by the tile is held at 0 V and only the tile's columns are sensed
(1T1R cells have no sneak paths).

Failed devices: write-verify gives up on a device that does not reach its band (a stuck
device). A weight whose one device failed is repaired through its partner: the healthy device
is retargeted so that the pair's difference is the weight's again (``G⁻ ← G⁻ + (G⁺_read −
G⁺_target)`` when ``G⁺`` failed, and symmetrically), clipped to the reachable range, and
programmed in a second, small write-verify job on the same image (:func:`compensate_pairs`).
Without it one device stuck at LRS (≈ 400 µS) in a 10–200 µS mapping is a weight twice the
largest; a pair whose two devices failed stays as it is.

Input voltages: the inputs of every layer are clipped to a range ``x_max`` fixed beforehand
from the software network on calibration images (:func:`input_ranges`), and scaled so that
``max(x_max, 1)`` (the bias input is 1) is ``v_max`` volts (0.2 V by default, the read voltage,
well below the SET threshold); column currents are turned back into numbers with the layer's
``γ`` and that scale.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from labrram.calibration.files import Calibration, default_calibration, load_calibration
from labrram.mapping import DifferentialMapping, MappedLayer, Placement, place
from labrram.protocols.engine import run_plan
from labrram.protocols.results import ProgramResult
from labrram.protocols.write_verify import ReRAMWriteVerify, WriteVerifyReRAM, reachable_range

__all__ = [
    "Conv",
    "Dense",
    "ArrayJob",
    "InArrayRun",
    "LayerPlan",
    "NetworkPlan",
    "forward",
    "im2col",
    "input_ranges",
    "compensate_pairs",
    "plan_network",
    "replicate",
    "run_in_array",
]

#: default conductance range of the differential pairs, S: the "zero" device a little above the
#: lowest write-verify target of the shipped ReRAM calibration (8 µS), the largest weight at
#: 200 µS (write-verify converges there in a few pulses)
G_ZERO = 10e-6
G_TOP = 200e-6
#: largest MVM row voltage the board accepts, V (docs/board-protocol.md)
MAX_MVM_VOLTAGE = 1.0


# --- layers ----------------------------------------------------------------------------------
def _array(name: str, a: Any, ndim: int) -> np.ndarray:
    try:
        out = np.array(a, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers") from None
    if out.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} has values that are not finite")
    out.setflags(write=False)
    return out


def _positive_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or int(v) != v or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


@dataclass(frozen=True, eq=False)
class Conv:
    """A 2-D convolution, then ReLU (``relu``) and ``pool × pool`` max pooling (digital).

    Parameters
    ----------
    weight : array (C_out, C_in, k, k)
        Kernels (torch's layout).
    bias : array (C_out,)
    stride, padding : int
        Stride and zero padding of the convolution.
    relu : bool
        Rectify the outputs.
    pool : int
        Max-pooling window and stride after the activation (1: none).
    """

    weight: np.ndarray
    bias: np.ndarray
    stride: int = 1
    padding: int = 0
    relu: bool = True
    pool: int = 1

    def __post_init__(self) -> None:
        w = _array("Conv weight", self.weight, 4)
        b = _array("Conv bias", self.bias, 1)
        if w.shape[2] != w.shape[3]:
            raise ValueError(f"Conv kernels must be square, got {w.shape[2]}×{w.shape[3]}")
        if b.shape != (w.shape[0],):
            raise ValueError(f"Conv bias has shape {b.shape}, the layer has {w.shape[0]} output channels")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)
        _positive_int("stride", self.stride)
        _positive_int("pool", self.pool)
        if isinstance(self.padding, bool) or int(self.padding) != self.padding or self.padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got {self.padding!r}")

    @property
    def kernel(self) -> int:
        """Side of the square kernels."""
        return int(self.weight.shape[2])

    def matrix(self) -> np.ndarray:
        """The augmented ``(C_in·k·k + 1, C_out)`` matrix (module docstring)."""
        return np.vstack([self.weight.reshape(self.weight.shape[0], -1).T, self.bias[None]])

    def conv_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """``(C_out, H_out, W_out)`` before pooling, for an input ``(C, H, W)``."""
        if len(in_shape) != 3 or in_shape[0] != self.weight.shape[1]:
            raise ValueError(f"Conv takes (C={self.weight.shape[1]}, H, W) inputs, got {tuple(in_shape)}")
        k, s, p = self.kernel, int(self.stride), int(self.padding)
        h, w = (in_shape[1] + 2 * p - k) // s + 1, (in_shape[2] + 2 * p - k) // s + 1
        if h < 1 or w < 1:
            raise ValueError(f"a {k}×{k} kernel does not fit inputs of shape {tuple(in_shape)} (padding {p})")
        return int(self.weight.shape[0]), h, w

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """``(C_out, H, W)`` after pooling, for an input ``(C, H, W)``."""
        c, h, w = self.conv_shape(in_shape)
        if h < self.pool or w < self.pool:
            raise ValueError(f"pooling {self.pool}×{self.pool} does not fit {h}×{w} feature maps")
        return c, h // self.pool, w // self.pool


@dataclass(frozen=True, eq=False)
class Dense:
    """A fully connected layer ``y = W x + b``, then ReLU (``relu``); inputs are flattened in
    (channel, row, column) order, as torch's ``flatten`` does.

    Parameters
    ----------
    weight : array (n_out, n_in)
        Weights (torch's layout).
    bias : array (n_out,)
    relu : bool
    """

    weight: np.ndarray
    bias: np.ndarray
    relu: bool = False

    def __post_init__(self) -> None:
        w = _array("Dense weight", self.weight, 2)
        b = _array("Dense bias", self.bias, 1)
        if b.shape != (w.shape[0],):
            raise ValueError(f"Dense bias has shape {b.shape}, the layer has {w.shape[0]} outputs")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    def matrix(self) -> np.ndarray:
        """The augmented ``(n_in + 1, n_out)`` matrix."""
        return np.vstack([self.weight.T, self.bias[None]])

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int]:
        """``(n_out,)`` for an input of any shape holding ``n_in`` values."""
        n = int(np.prod(in_shape))
        if n != self.weight.shape[1]:
            raise ValueError(f"Dense takes {self.weight.shape[1]} inputs, got {n} (shape {tuple(in_shape)})")
        return (int(self.weight.shape[0]),)


Layer = Conv | Dense


# --- unrolling and the digital parts -----------------------------------------------------------
def im2col(x: np.ndarray, kernel: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Patches of ``x`` (N, C, H, W) under a ``kernel × kernel`` window: ``(N, P, C·k·k)``, P the
    output positions in row-major order, each patch ordered (channel, kernel row, kernel
    column) like ``weight.reshape(C_out, -1)``. float32 inputs stay float32; anything else
    becomes float64."""
    x = np.asarray(x)
    x = x if x.dtype == np.float32 else x.astype(float)
    if x.ndim != 4:
        raise ValueError(f"im2col takes (N, C, H, W) inputs, got shape {x.shape}")
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]
    n, c, h, w = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n, h * w, c * kernel * kernel)


def _pool(x: np.ndarray, p: int) -> np.ndarray:
    if p == 1:
        return x
    n, c, h, w = x.shape
    h, w = h // p, w // p
    return x[:, :, : h * p, : w * p].reshape(n, c, h, p, w, p).max(axis=(3, 5))


def _inputs(x: np.ndarray, layer: Layer) -> np.ndarray:
    """The vectors one layer multiplies: ``(N, P, n_in)`` (P = 1 for Dense)."""
    if isinstance(layer, Conv):
        return im2col(x, layer.kernel, int(layer.stride), int(layer.padding))
    return x.reshape(x.shape[0], 1, -1)


def _outputs(y: np.ndarray, layer: Layer, in_shape: tuple[int, ...]) -> np.ndarray:
    """Products ``(N, P, n_out)`` → the layer's activations."""
    if layer.relu:
        y = np.maximum(y, 0.0)
    if isinstance(layer, Conv):
        c, h, w = layer.conv_shape(in_shape)
        return _pool(y.reshape(y.shape[0], h, w, c).transpose(0, 3, 1, 2), int(layer.pool))
    return y[:, 0]


MatVec = Callable[[int, np.ndarray], np.ndarray]


def forward(layers: Sequence[Layer], X: Any, matvec: MatVec | None = None, trace: list | None = None) -> np.ndarray:
    """Outputs (logits) of the network for inputs ``X`` (N, C, H, W) or (N, n).

    ``matvec(layer_index, inputs)`` computes ``[inputs, 1] @ matrix`` for inputs ``(M, n_in)``
    — by default exactly in float64 (the software network); :func:`run_in_array` passes the
    arrays. ``trace``, when a list, receives every layer's inputs ``(N, P, n_in)``.
    """
    x = np.asarray(X, dtype=float)
    mats = [lay.matrix() for lay in layers]
    exact: MatVec = lambda i, v: v @ mats[i][:-1] + mats[i][-1]  # noqa: E731
    matvec = matvec or exact
    for i, lay in enumerate(layers):
        in_shape = x.shape[1:]
        lay.out_shape(in_shape)  # checks the shapes
        v = _inputs(x, lay)
        if trace is not None:
            trace.append(v)
        n, p, k = v.shape
        y = np.asarray(matvec(i, v.reshape(n * p, k)), dtype=float).reshape(n, p, -1)
        x = _outputs(y, lay, in_shape)
    return x


def input_ranges(layers: Sequence[Layer], X_cal: Any, quantile: float = 1.0) -> list[float]:
    """Per layer, the input range ``x_max`` (the ``quantile`` of |inputs| of the software
    network on calibration inputs ``X_cal``): the DAC range that :func:`run_in_array` scales to
    ``v_max`` and clips at."""
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile!r}")
    trace: list[np.ndarray] = []
    forward(layers, X_cal, trace=trace)
    return [max(float(np.quantile(np.abs(v), quantile)), 1e-12) for v in trace]


def replicate(matrix: np.ndarray, r: int) -> np.ndarray:
    """``r`` copies of an augmented ``(n + 1, m)`` matrix on the diagonal of one
    ``(r·n + 1, r·m)`` matrix, sharing the bias row."""
    matrix = np.asarray(matrix, dtype=float)
    n, m = matrix.shape[0] - 1, matrix.shape[1]
    out = np.zeros((r * n + 1, r * m))
    for j in range(r):
        out[j * n : (j + 1) * n, j * m : (j + 1) * m] = matrix[:-1]
        out[-1, j * m : (j + 1) * m] = matrix[-1]
    return out


# --- the plan ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class LayerPlan:
    """One layer laid onto arrays.

    Attributes
    ----------
    index : int
    kind : str
        ``"conv"`` or ``"dense"``.
    in_shape, out_shape : tuple of int
        The layer's input and output shapes (per image).
    positions : int
        MVM input vectors per image before replication (output positions; 1 for Dense).
    replicas : int
        Copies of the kernel computed by one MVM.
    mapped : MappedLayer
        The (replicated) augmented matrix on differential pairs.
    placement : Placement
        The layer's tiles on its array images (the layer is key 0).
    """

    index: int
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    positions: int
    replicas: int
    mapped: MappedLayer
    placement: Placement

    @property
    def tiles(self) -> int:
        """Tiles (blocks of the matrix, one MVM per input vector each)."""
        return len(self.placement.tiles)

    @property
    def arrays(self) -> int:
        """Array images: programming jobs of the one array."""
        return self.placement.n_arrays

    @property
    def devices(self) -> int:
        """Devices of the layer (two per entry of the replicated matrix)."""
        return self.placement.n_devices

    @property
    def vectors_per_image(self) -> int:
        """Input vectors per image after replication."""
        return -(-self.positions // self.replicas)

    @property
    def mvms_per_image(self) -> int:
        """MVMs per image: every vector on every tile."""
        return self.vectors_per_image * self.tiles

    def mvms(self, n_images: int) -> int:
        """MVMs for a batch of ``n_images``: the replicated copies take consecutive positions
        across image boundaries, so only the batch's last vector may be partly empty."""
        return -(-int(n_images) * self.positions // self.replicas) * self.tiles

    def summary(self) -> dict[str, Any]:
        """The layer's matrix shape, copies, tiles, array images, devices and MVMs per image."""
        n_in, n_out = self.mapped.shape
        return {
            "layer": self.index, "kind": self.kind, "matrix": (n_in, n_out), "replicas": self.replicas,
            "tiles": self.tiles, "arrays": self.arrays, "devices": self.devices, "mvms_per_image": self.mvms_per_image,
        }  # fmt: skip


@dataclass(frozen=True, eq=False)
class NetworkPlan:
    """A network unrolled and tiled (:func:`plan_network`)."""

    layers: tuple[Layer, ...]
    plans: tuple[LayerPlan, ...]
    array_shape: tuple[int, int]
    input_shape: tuple[int, ...]

    @property
    def tiles(self) -> int:
        """Tiles of every layer."""
        return sum(p.tiles for p in self.plans)

    @property
    def arrays(self) -> int:
        """Array images, i.e. programming jobs of the one array per batch."""
        return sum(p.arrays for p in self.plans)

    @property
    def devices(self) -> int:
        """Devices of every layer."""
        return sum(p.devices for p in self.plans)

    @property
    def mvms_per_image(self) -> int:
        """MVMs of one image run alone."""
        return sum(p.mvms_per_image for p in self.plans)

    def mvms(self, n_images: int) -> int:
        """MVMs for a batch of ``n_images`` (:meth:`LayerPlan.mvms`)."""
        return sum(p.mvms(n_images) for p in self.plans)

    @property
    def weights(self) -> int:
        """Weights and biases of the network (before replication)."""
        return sum(lay.matrix().size for lay in self.layers)

    def summary(self) -> dict[str, Any]:
        """Totals and one :meth:`LayerPlan.summary` per layer."""
        return {
            "array_shape": self.array_shape, "weights": self.weights, "tiles": self.tiles, "arrays": self.arrays,
            "devices": self.devices, "mvms_per_image": self.mvms_per_image, "layers": [p.summary() for p in self.plans],
        }  # fmt: skip


def _replicas(lay: Layer, array_shape: tuple[int, int], positions: int) -> int:
    if not isinstance(lay, Conv):
        return 1
    n, m = lay.matrix().shape[0] - 1, lay.matrix().shape[1]
    return max(1, min((array_shape[0] - 1) // n, array_shape[1] // (2 * m), positions))


def plan_network(
    layers: Sequence[Layer],
    input_shape: tuple[int, ...],
    mapping: DifferentialMapping | None = None,
    array_shape: tuple[int, int] = (128, 128),
    replicate_kernels: bool = True,
) -> NetworkPlan:
    """Unroll, map and tile a network (module docstring).

    Parameters
    ----------
    layers : list of Conv and Dense
    input_shape : tuple of int
        One input: ``(C, H, W)`` when the first layer is a Conv, ``(n,)`` otherwise.
    mapping : DifferentialMapping, optional
        Weight → conductance mapping; default ``g_min`` = 10 µS, ``g_max`` = 200 µS, one scale
        per layer.
    array_shape : (int, int)
        Rows and columns of the array.
    replicate_kernels : bool
        Replicate small convolution kernels so one MVM computes several positions.
    """
    layers = tuple(layers)
    if not layers:
        raise ValueError("the network has no layers")
    for i, lay in enumerate(layers):
        if not isinstance(lay, (Conv, Dense)):
            raise ValueError(f"layer {i} is a {type(lay).__name__}, not a Conv or Dense")
    mapping = mapping or DifferentialMapping(G_ZERO, G_TOP)
    shape = tuple(int(s) for s in input_shape)
    plans = []
    for i, lay in enumerate(layers):
        out = lay.out_shape(shape)
        if isinstance(lay, Conv):
            _, h, w = lay.conv_shape(shape)
            positions, kind = h * w, "conv"
        else:
            positions, kind = 1, "dense"
        r = _replicas(lay, array_shape, positions) if replicate_kernels else 1
        mat = replicate(lay.matrix(), r) if r > 1 else lay.matrix()
        mapped = mapping.map(mat)
        plans.append(LayerPlan(i, kind, shape, out, positions, r, mapped, place([mapped], array_shape)))
        shape = out
    return NetworkPlan(layers, tuple(plans), tuple(array_shape), tuple(int(s) for s in input_shape))  # type: ignore[arg-type]


# --- running on the array ----------------------------------------------------------------------
def compensate_pairs(placement: Placement, array_index: int, targets: np.ndarray, achieved: np.ndarray, failed: np.ndarray, g_range: tuple[float, float]) -> tuple[np.ndarray, int]:
    """New targets for the partners of failed devices (module docstring).

    Parameters
    ----------
    placement : Placement
        The layer's placement (one plain differential layer, key 0).
    array_index : int
        The array image that was programmed.
    targets, achieved : ndarray
        The image's targets (NaN: no device) and every device's last read, S, array-shaped.
    failed : ndarray of bool
        Devices that did not converge.
    g_range : (float, float)
        Conductances the healthy partner may be given, S.

    Returns
    -------
    new_targets : ndarray
        Array-shaped, NaN except on the partners to reprogram.
    n_pairs : int
        Pairs retargeted.
    """
    arr, row, col = placement.cells(0)
    on = arr[0] == array_index
    rp, cp, rm, cm = row[0][on], col[0][on], row[1][on], col[1][on]
    fp, fm = failed[rp, cp], failed[rm, cm]
    new = np.full(targets.shape, np.nan)
    lo, hi = g_range
    n = 0
    for f_is_plus in (True, False):
        sel = (fp & ~fm) if f_is_plus else (fm & ~fp)
        fr, fc, hr, hc = (rp, cp, rm, cm) if f_is_plus else (rm, cm, rp, cp)
        fr, fc, hr, hc = fr[sel], fc[sel], hr[sel], hc[sel]
        shift = achieved[fr, fc] - targets[fr, fc]  # the failed device's error, carried by its partner
        want = np.clip(targets[hr, hc] + shift, lo, hi)
        move = np.abs(want - targets[hr, hc]) > 0
        new[hr[move], hc[move]] = want[move]
        n += int(move.sum())
    return new, n


@dataclass
class ArrayJob:
    """One array image: its programming and its MVMs.

    Attributes
    ----------
    layer, array : int
        The layer and its array image.
    tiles, devices : int
    program : Any
        The :class:`~labrram.protocols.results.ProgramResult` of the write-verify.
    program_bench_time, program_wall_time : float
        Bench time and wall time of the programming, s.
    failed : int
        Devices whose write-verify failed.
    repaired : int
        Pairs whose healthy partner was retargeted (:func:`compensate_pairs`).
    mvms : int
        MVMs issued with this image.
    mvm_bench_time, mvm_wall_time : float
        Bench time and wall time of those MVMs, s.
    out : str or None
        The programming's run store (the repair job's is the same name with ``-repair``).
    """

    layer: int
    array: int
    tiles: int
    devices: int
    program: Any
    program_bench_time: float
    program_wall_time: float
    failed: int = 0
    repaired: int = 0
    mvms: int = 0
    mvm_bench_time: float = 0.0
    mvm_wall_time: float = 0.0
    out: str | None = None


class BatchTotals:
    """The bench accounting of a network run image by image on one array, summed over its
    per-image records (``_records()``: each with ``mvms``, ``program_bench_time`` (repairs
    included), ``mvm_bench_time`` and ``devices``); shared by :class:`InArrayRun` and
    :class:`labrram.nn.offset_network.OffsetRun`."""

    def _records(self) -> Sequence[Any]:  # pragma: no cover - each run says where its records are
        raise NotImplementedError

    @property
    def mvms(self) -> int:
        """MVMs issued in the run."""
        return sum(j.mvms for j in self._records())

    @property
    def program_bench_time(self) -> float:
        """Bench time of programming every array image (repairs, settle waits and read-backs included), s."""
        return float(sum(j.program_bench_time for j in self._records()))

    @property
    def mvm_bench_time(self) -> float:
        """Bench time of every MVM, s."""
        return float(sum(j.mvm_bench_time for j in self._records()))

    @property
    def devices_programmed(self) -> int:
        """Devices of every array image."""
        return int(sum(j.devices for j in self._records()))


@dataclass
class InArrayRun(BatchTotals):
    """Inference of a batch by in-array MVMs (:func:`run_in_array`).

    Attributes
    ----------
    plan : NetworkPlan
    logits : ndarray (N, n_out)
        The network's outputs computed by the array.
    jobs : list of ArrayJob
        Every array image, in the order run.
    ranges : list of float
        The input range of every layer.
    v_max : float
        Largest row voltage, V.
    """

    plan: NetworkPlan
    logits: np.ndarray
    jobs: list[ArrayJob] = field(default_factory=list)
    ranges: list[float] = field(default_factory=list)
    v_max: float = 0.2

    @property
    def n_images(self) -> int:
        """Images of the batch."""
        return int(self.logits.shape[0])

    def _records(self) -> list[ArrayJob]:
        return self.jobs

    def predictions(self) -> np.ndarray:
        """Predicted class of every image (argmax of :attr:`logits`)."""
        return np.argmax(self.logits, axis=1)

    def accuracy(self, y: Any) -> float:
        """Fraction of the images whose prediction is ``y`` (the true labels, shape (N,))."""
        y = np.asarray(y)
        if y.shape != (self.n_images,):
            raise ValueError(f"y has shape {y.shape}, the run has {self.n_images} images")
        return float(np.mean(self.predictions() == y))

    def projection(self, n_images: int) -> dict[str, float]:
        """Projected bench time for ``n_images`` images, s: programming every array image once
        (one batch), and the MVMs (:meth:`NetworkPlan.mvms`) at the bench time per MVM measured
        in this run.

        Parameters
        ----------
        n_images : int
            Images of the batch to project.

        Returns
        -------
        dict
            ``program``, ``inference``, ``total`` (s) and ``per_mvm`` (s per MVM).
        """
        per_mvm = self.mvm_bench_time / max(self.mvms, 1)
        infer = self.plan.mvms(n_images) * per_mvm
        return {"program": self.program_bench_time, "inference": infer, "total": self.program_bench_time + infer, "per_mvm": per_mvm}

    def summary(self) -> dict[str, Any]:
        """Images, tiles, array images, devices, MVMs, bench times (s) and the devices' write-verify
        convergence, as JSON-ready numbers."""
        return {
            "images": self.n_images, "tiles": self.plan.tiles, "arrays": self.plan.arrays, "devices": self.devices_programmed,
            "mvms": self.mvms, "mvms_per_image": self.plan.mvms_per_image, "program_bench_time": self.program_bench_time,
            "mvm_bench_time": self.mvm_bench_time, "bench_time_per_mvm": self.projection(1)["per_mvm"],
            "converged_fraction": float(
                sum(j.program.summary()["converged_fraction"] * j.devices for j in self.jobs) / max(self.devices_programmed, 1)
            ),
        }  # fmt: skip


Progress = Callable[[str, int, int], None]


def run_in_array(
    station: Any,
    plan: NetworkPlan,
    X: Any,
    ranges: Sequence[float],
    *,
    v_max: float = 0.2,
    out_dir: str | Path | None = None,
    calibration: Any = None,
    settings: Any = None,
    progress: Progress | None = None,
) -> InArrayRun:
    """Program the station's one array image by image and compute the network by in-array MVMs.

    Parameters
    ----------
    station : ConnectedStation
        An open station (``load_station(...).connect()``) whose array has
        ``plan.array_shape``; it stays open.
    plan : NetworkPlan
    X : array
        Inputs ``(N, *plan.input_shape)``.
    ranges : list of float
        Input range of every layer (:func:`input_ranges`); inputs are clipped to it.
    v_max : float
        Row voltage of the largest input, V (within the read-voltage limits).
    out_dir : str or Path, optional
        A new directory; each programming job writes its run store there
        (``layer{l}-array{a}.zarr``).
    calibration : Calibration, str or Path, optional
        The ReRAM calibration the write-verify aims with; default the shipped one.
    settings : ReRAMWriteVerify, optional
        Write-verify settings.
    progress : callable, optional
        ``progress(label, done, total)`` after every array image.
    """
    xb, timer = station.crossbar, station.timer
    kind = xb.array_kind()
    if kind != "reram":
        raise ValueError(f"run_in_array programs 1T1R ReRAM arrays by write-verify; the station's board reports {kind!r}")
    cal = calibration if isinstance(calibration, Calibration) else (default_calibration("reram") if calibration is None else load_calibration(calibration))
    if cal.kind != "reram":
        raise ValueError(f"the calibration is for {cal.kind!r} devices, the array is ReRAM")
    wv = settings or ReRAMWriteVerify()
    g_range = reachable_range(cal.model, wv.gate_min, wv.gate_max)
    attrs = {"station": station.station.to_dict(), "calibration": cal.provenance, "chip": xb.identify(), "device_kind": "reram"}

    def program(targets: np.ndarray, out: str | None, what: str) -> ProgramResult:
        return run_plan(xb, WriteVerifyReRAM(targets, cal.model, wv), out, timer=timer, attrs={**attrs, "network_job": what})

    if tuple(xb.shape) != tuple(plan.array_shape):
        raise ValueError(f"the plan is for {plan.array_shape} arrays, the station's array is {xb.shape}")
    v_top = min(MAX_MVM_VOLTAGE, float(xb.limits.max_voltage))
    if not (math.isfinite(v_max) and 0 < v_max <= v_top):
        raise ValueError(f"v_max must be in (0, {v_top:g}] V (MVM row voltages of the board and the bench limits), got {v_max!r}")
    ranges = [float(r) for r in ranges]
    if len(ranges) != len(plan.plans) or not all(math.isfinite(r) and r > 0 for r in ranges):
        raise ValueError(f"ranges must give one positive input range per layer ({len(plan.plans)}), got {ranges}")
    X = np.asarray(X, dtype=float)
    if X.shape[1:] != plan.input_shape:
        raise ValueError(f"X has shape {X.shape}, the plan takes (N, {', '.join(map(str, plan.input_shape))})")
    if out_dir is not None:
        out_dir = Path(out_dir)
        if out_dir.exists():
            raise FileExistsError(f"{out_dir} already exists; choose a new directory for the run stores")
        out_dir.mkdir(parents=True)
    jobs: list[ArrayJob] = []
    total = plan.arrays

    def matvec(i: int, v: np.ndarray) -> np.ndarray:
        lp = plan.plans[i]
        r, k = lp.replicas, v.shape[1]
        m = lp.mapped.shape[1] // r
        x = np.clip(v, -ranges[i], ranges[i])
        if r > 1:  # r consecutive positions per MVM; the last vector padded with zero inputs
            n_vec = -(-x.shape[0] // r)
            x = np.vstack([x, np.zeros((n_vec * r - x.shape[0], k))]).reshape(n_vec, r * k)
        xa = np.hstack([x, np.ones((x.shape[0], 1))])
        v_read = v_max / max(ranges[i], 1.0)
        y = np.zeros((xa.shape[0], lp.mapped.shape[1]))
        for a in range(lp.arrays):
            t0, w0 = timer.now(), time.perf_counter()
            out = None if out_dir is None else str(out_dir / f"layer{i}-array{a}.zarr")
            targets = lp.placement.targets(a)
            res = program(targets, out, f"layer {i}, array image {a}")
            failed = res.mask & ~res.converged
            fix, n_fix = compensate_pairs(lp.placement, a, targets, res.achieved, failed, g_range)
            if n_fix:
                program(fix, None if out is None else out[:-5] + "-repair.zarr", f"layer {i}, array image {a}: repair of {n_fix} pair(s)")
            tiles = lp.placement.tiles_on(a)
            job = ArrayJob(i, a, len(tiles), sum(t.n_devices for t in tiles), res, timer.now() - t0, time.perf_counter() - w0, int(failed.sum()), n_fix, out=out)
            jobs.append(job)
            sub = replace(lp.placement, tiles=tuple(tiles))
            count = [0]

            def read(_a: int, volts: np.ndarray) -> np.ndarray:
                count[0] += 1
                return xb.mvm(volts)

            t0, w0 = timer.now(), time.perf_counter()
            y += sub.mvm(0, xa, read, v_read=v_read)
            job.mvms, job.mvm_bench_time, job.mvm_wall_time = count[0], timer.now() - t0, time.perf_counter() - w0
            if progress is not None:
                progress(f"layer {i} array {a}", len(jobs), total)
        if r > 1:
            y = y.reshape(-1, m)[: v.shape[0]]
        return y

    logits = forward(plan.layers, X, matvec)
    return InArrayRun(plan, logits, jobs, ranges, float(v_max))
