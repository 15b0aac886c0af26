"""Hardware-aware training for passive TiO2 crossbars (Drolet et al., arXiv 2305.18495).

A small network (half moons, ``2-8-2`` with biases, 84 devices as differential pairs on one 32×32 passive
array) is trained twice: *regularly* (Adam on the cross-entropy) and *hardware-aware*:

* dropout on the hidden units;
* the reparametrization trick: every forward pass uses ``w + sigma(w) * eps``, ``eps ~ N(0, 1)``,
  where ``sigma(w)`` is the weight error the calibrated passive array makes when it realizes
  ``w`` as ``(G+ - G-)/gamma`` (:class:`ErrorModel`: conductance tuning imprecision plus the
  error a sneak-path-corrupted verify read leaves under V/2 or V/3 biasing);
* a range regularizer ``lambda * sum relu(|w| - w_max)^2`` that keeps the weights inside the
  range the conductance window realizes without squeezing the rest.

The error model is *estimated* by simulating transfers on the calibrated model
(:func:`estimate_errors`), never from a chip's hidden truth.

Transfer (:func:`transfer`) — the fast path
-------------------------------------------
A pulse-level transfer through :mod:`labrram.crossbar` of ~60 devices costs seconds on the
simulated bench; thousands of them do not fit a 2-core machine. Each transfer here is instead:

1. a chip drawn around the calibrated model (:meth:`PassiveDeviceModel.variant`), its
   as-fabricated array (:meth:`PassiveDeviceModel.sample_initial`);
2. the weights mapped with :class:`~labrram.mapping.DifferentialMapping` and laid out with
   :func:`~labrram.mapping.place` on the 32×32 array;
3. tuning: each device lands at :meth:`PassiveDeviceModel.sample_tuned` of its target (the
   tuning imprecision draw), then a final verify pass reads every device through the chip's
   :class:`~labrram.circuit.CrossbarCircuit` (nodal analysis, wires, sinh devices) under
   the biasing scheme. The tuner converts the sensed current to a conductance with the
   calibrated column-background model of :class:`~labrram.calibration.PassiveFit`,
   ``I = (G/a) sinh(a V) + (B/a) sinh(a u)`` with ``u`` the half-selected bias (``V/2`` or
   ``V/3``) and ``B`` what it believes the other cells of the column hold (their targets; the
   calibrated as-fabricated median for unused cells). The difference between the read value
   and the truth — the sneak-path error — is corrected by one more tuning step, which lands
   with a fresh imprecision draw;
4. inference on the array: each layer's inputs and bias become row voltages (at most
   ``v_max``), the column currents of each pair are subtracted (ReLU and argmax digital). The
   currents are the exact linear nodal solution with wire resistance (the circuit's port
   responses) plus the devices' sinh excess at the driven voltages.

:func:`transfer_trial` is the Monte Carlo trial (:mod:`labrram.montecarlo`) of one transfer.

Transfer (:func:`transfer_pulse_level`) — the real protocol
-----------------------------------------------------------
The same mapping and placement, programmed on a :class:`~labrram.crossbar.Crossbar` (the
passive simulated station, or a real one) by the pulse-level write-verify of
:mod:`labrram.protocols.tune_passive`: SET / RESET staircases one selected cell at a time
under the V/2 or V/3 scheme (switching dynamics, half-select disturb and read noise of the
chip included), verify reads through the crossbar with the same believed-background read-out
as the fast path. It cross-checks the fast path (``benchmarks/bench_drolet.py``,
``LABRRAM_DROLET_PULSE``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from labrram.devices.passive import PassiveDeviceModel, device_current
from labrram.mapping import DifferentialMapping, place

__all__ = [
    "ErrorModel",
    "HardwareAwareSettings",
    "PassiveTransfer",
    "TransferModel",
    "correct_fraction",
    "estimate_errors",
    "forward",
    "robust_fraction",
    "train_network",
    "transfer",
    "pulse_transfer_trial",
    "transfer_pulse_level",
    "transfer_trial",
]

ARRAY_SHAPE = (32, 32)


# --------------------------------------------------------------------------------------------
# numpy inference
# --------------------------------------------------------------------------------------------
def forward(weights: Sequence[np.ndarray], X: np.ndarray) -> np.ndarray:
    """Logits of an augmented ReLU network (``[x, 1] @ W`` per layer, ReLU between layers)."""
    h = np.asarray(X, float)
    for k, W in enumerate(weights):
        h = np.concatenate([h, np.ones((h.shape[0], 1))], axis=1) @ np.asarray(W, float)
        if k < len(weights) - 1:
            h = np.maximum(h, 0.0)
    return h


# --------------------------------------------------------------------------------------------
# the passive transfer
# --------------------------------------------------------------------------------------------
def _check_scheme(scheme: str) -> str:
    if scheme not in ("V/2", "V/3"):
        raise ValueError(f"scheme must be 'V/2' or 'V/3', got {scheme!r}")
    return scheme


@dataclass(frozen=True)
class PassiveTransfer:
    """One network programmed on one (simulated) passive array.

    Attributes
    ----------
    g : ndarray (32, 32)
        Conductances of the whole array after tuning, S.
    targets : ndarray (32, 32)
        Conductance targets, NaN on unused cells, S.
    read_error : ndarray (32, 32)
        Conductance error of the final verify read (read minus truth) before the correction, S.
    weights : list of ndarray
        Effective augmented weights ``(G+ - G-)/gamma`` of every layer.
    """

    g: np.ndarray
    targets: np.ndarray
    read_error: np.ndarray
    weights: list[np.ndarray]
    placement: Any
    mapped: list[Any]
    a: float
    r_row: float
    r_col: float


@dataclass(frozen=True)
class TransferModel:
    """What the fast path knows of the tuning and the verify reads (SI units).

    Attributes
    ----------
    sigma_abs, sigma_rel : float
        Tuning imprecision: a tuned device lands at ``target + e``,
        ``e ~ N(0, sqrt(sigma_abs^2 + (sigma_rel target)^2))``, relative to a sneak-free read
        (the calibration's protocol estimates ``tune_sigma_abs``, ``tune_sigma_rel``).
    read_noise_rel : float
        Relative noise of a sensed verify current (``read_noise_sensed_rel``; the last verify
        read, reported as ``read_error``).
    tolerance, abs_tolerance, reenter : float
        The tuner's band ``max(tolerance * target, abs_tolerance)`` and its re-entry factor
        (:class:`~labrram.protocols.tune_passive.PassiveTuning`).
    rounds : int
        Most verify-and-correct rounds of the fixed-point solve (it stops once every device
        reads within a tenth of its band, or sits at a window edge).
    """

    sigma_abs: float = 0.0
    sigma_rel: float = 0.01
    read_noise_rel: float = 0.0
    tolerance: float = 0.02
    abs_tolerance: float = 1e-6
    reenter: float = 2.0
    rounds: int = 10

    def __post_init__(self) -> None:
        for name in ("sigma_abs", "sigma_rel", "read_noise_rel", "tolerance", "abs_tolerance"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {getattr(self, name)!r}")
        if self.reenter < 1 or int(self.rounds) != self.rounds or self.rounds < 0:
            raise ValueError("reenter must be >= 1 and rounds a non-negative integer")

    @classmethod
    def of_calibration(cls, cal: Any, **changes: Any) -> "TransferModel":
        """From a passive :class:`~labrram.calibration.Calibration`: its measured tuning
        imprecision and sensed read noise, and the tuning protocol's default band.

        A calibration without the tuning measurement (an older file) falls back to the
        model's nominal relative ``tuning_sigma_rel``; one without the read noise to none.

        Parameters
        ----------
        cal : labrram.calibration.Calibration
            A passive calibration.
        **changes
            Fields to override (e.g. ``rounds``).
        """
        from labrram.protocols.tune_passive import PassiveTuning

        pe, est, t = cal.protocol_estimates, cal.estimates, PassiveTuning()
        if "tune_sigma_abs" in pe and "tune_sigma_rel" in pe:
            sa, sr = pe["tune_sigma_abs"].value, pe["tune_sigma_rel"].value
        else:
            sa, sr = 0.0, cal.model.tuning_sigma_rel
        rn = est["read_noise_sensed_rel"].value if "read_noise_sensed_rel" in est else 0.0
        base = dict(sigma_abs=sa, sigma_rel=sr, read_noise_rel=rn, tolerance=t.tolerance, abs_tolerance=t.abs_tolerance, reenter=t.reenter)
        return cls(**{**base, **changes})

    def land(self, nominal: np.ndarray, target: np.ndarray, rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
        """Conductances tuned toward ``nominal`` (S): the imprecision of ``target``, inside ``[lo, hi]``.

        Parameters
        ----------
        nominal : ndarray
            Where the tuner aims each device, S.
        target : ndarray
            The devices' targets (they set the relative part of the imprecision), S.
        rng : numpy.random.Generator
            Source of the draws.
        lo, hi : float
            The chip's window, S.
        """
        sigma = np.sqrt(self.sigma_abs**2 + (self.sigma_rel * target) ** 2)
        return np.clip(nominal + sigma * rng.standard_normal(np.shape(nominal)), lo, hi)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _column_step(err: np.ndarray, cols: np.ndarray, free: np.ndarray, s_sel: float, s_half: float) -> np.ndarray:
    """Moves ``d`` of the devices (S) that zero their read-out errors ``err`` under the column
    model: a device's read-out changes by ``d_i + (s_half / s_sel) sum_{k != i} d_k`` over the
    free devices ``k`` of its column (fixed ones do not move)."""
    r = s_half / s_sel
    e = np.where(free, err, 0.0)
    n = np.bincount(cols, weights=free.astype(float), minlength=int(cols.max()) + 1)
    e_sum = np.bincount(cols, weights=e, minlength=n.size)
    # (1 - r) d_i + r D = -e_i with D the column sum of d:  D = -E / (1 - r + r n)
    D = -e_sum / (1.0 - r + r * n)
    return np.where(free, (-e - r * D[cols]) / (1.0 - r), 0.0)


def transfer(
    weights: Sequence[np.ndarray],
    model: PassiveDeviceModel,
    rng: np.random.Generator,
    scheme: str = "V/2",
    v_read: float = 0.2,
    chip_variation: bool = True,
    tuning: TransferModel | None = None,
) -> PassiveTransfer:
    """Program augmented ``weights`` on a simulated passive array (fast path, module docstring).

    Parameters
    ----------
    weights : sequence of ndarray
        Augmented ``(n_in + 1, n_out)`` matrices.
    model : PassiveDeviceModel
        The calibrated model (what the tuner knows; its as-fabricated median and spread make
        the unused cells).
    rng : numpy.random.Generator
        Source of the chip draw, the as-fabricated states and the tuning draws.
    scheme : str
        Biasing of the verify reads, ``"V/2"`` or ``"V/3"``.
    v_read : float
        Verify read voltage, V.
    chip_variation : bool
        Draw the chip around the calibrated model (True) or use the model itself.
    tuning : TransferModel, optional
        Tuning imprecision, verify-read noise and the tuner's band (default: the model's
        nominal relative imprecision, no read noise, the protocol's band).
    """
    scheme = _check_scheme(scheme)
    if not (0 < v_read <= 0.5):
        raise ValueError(f"v_read must lie in (0, 0.5] V, got {v_read!r}")
    tm = tuning if tuning is not None else TransferModel(sigma_rel=model.tuning_sigma_rel)
    chip = model.variant(rng) if chip_variation else model
    mapping = DifferentialMapping(g_min=model.g_min, g_max=model.g_max)
    mapped = [mapping.map(np.asarray(W, float)) for W in weights]
    placement = place(mapped, ARRAY_SHAPE, max_arrays=1)
    targets = placement.targets(0)
    used = np.isfinite(targets)
    rows, cols = np.nonzero(used)
    tgt = np.clip(targets[rows, cols], model.g_min, model.g_max)  # what the tuner aims at
    g = chip.sample_initial(ARRAY_SHAPE, rng)
    lo, hi = chip.g_min, chip.g_max
    g[rows, cols] = tgt
    from labrram.circuit import CrossbarCircuit

    # the tuner's read-out: calibrated column-background model, believed column contents
    u = v_read / 2.0 if scheme == "V/2" else v_read / 3.0
    believed = np.where(used, targets, model.g_init_median)
    believed[rows, cols] = tgt
    col_sum = believed.sum(axis=0)
    s_sel = float(device_current(1.0, model.a, v_read))
    s_half = float(device_current(1.0, model.a, u))
    background = (col_sum[cols] - believed[rows, cols]) * s_half
    band = np.maximum(tm.tolerance * tgt, tm.abs_tolerance)
    read_error = np.zeros(ARRAY_SHAPE)
    # the state the verify loop converges to: every device reads its target through the chip's
    # circuit (the sneak paths of the true column), or sits at the window edge that its
    # read-out offset pushes it to (the pulse-level tuner gets there by small pulses; here
    # Newton steps of the column-background model, each checked on the circuit); then every
    # device lands with the measured imprecision of the tuning protocol
    g_nom = g[rows, cols].copy()
    for _ in range(int(tm.rounds)):
        g[rows, cols] = g_nom
        sensed = CrossbarCircuit.of_model(chip, g).read_cells(rows, cols, v_read, scheme)
        err = (sensed - background) / s_sel - tgt
        # a device its read-out pushes beyond the window stays at the edge
        free = ~(((g_nom <= lo) & (err > 0)) | ((g_nom >= hi) & (err < 0)))
        if np.all(~free | (np.abs(err) <= 0.1 * band)):
            break
        g_nom = np.clip(g_nom + _column_step(err, cols, free, s_sel, s_half), lo, hi)
    g[rows, cols] = tm.land(g_nom, tgt, rng, lo, hi)
    sensed = CrossbarCircuit.of_model(chip, g).read_cells(rows, cols, v_read, scheme)
    if tm.read_noise_rel > 0:
        sensed = sensed * (1.0 + tm.read_noise_rel * rng.standard_normal(sensed.shape))
    read_error[rows, cols] = (sensed - background) / s_sel - g[rows, cols]
    eff = []
    for k, lay in enumerate(mapped):
        _, r, c = placement.cells(k)
        eff.append(lay.weights_from(g[r[0], c[0]], g[r[1], c[1]]))
    return PassiveTransfer(g, targets, read_error, eff, placement, mapped, chip.a, chip.r_wire_row, chip.r_wire_col)


def transfer_pulse_level(
    weights: Sequence[np.ndarray],
    xb: Any,
    model: PassiveDeviceModel,
    scheme: str = "V/2",
    settings: Any = None,
    truth: Callable[[], tuple[np.ndarray, float, float, float]] | None = None,
) -> tuple[PassiveTransfer, Any]:
    """Program augmented ``weights`` on a passive crossbar with the pulse-level protocol.

    Parameters
    ----------
    weights : sequence of ndarray
        Augmented ``(n_in + 1, n_out)`` matrices.
    xb : labrram.crossbar.Crossbar
        A 32×32 passive array (the board takes ``:ARR:BIAS``).
    model : PassiveDeviceModel
        The calibrated model (mapping window, read-out, thresholds).
    scheme : str
        Biasing of every pulse and verify read, ``"V/2"`` or ``"V/3"``.
    settings : labrram.protocols.tune_passive.PassiveTuning, optional
        Protocol settings; its ``scheme`` is replaced by ``scheme``. Default: the protocol's
        defaults (believed background, as the fast path's tuner).
    truth : callable, optional
        Returns the array's true state ``(g, a, r_wire_row, r_wire_col)`` after programming
        (a simulated chip's hidden truth, to judge the transfer). Without it the transfer
        holds what the tuner read back (the protocol's last verify read for the programmed
        cells, the calibrated as-fabricated median for the others) and the calibrated ``a``
        and wires; ``read_error`` is then zero.

    Returns
    -------
    (PassiveTransfer, ProgramResult)
        The transfer (for :func:`array_forward`) and the protocol's result.
    """
    from dataclasses import replace as _replace

    from labrram.protocols.tune_passive import PassiveTuning, tune_passive

    scheme = _check_scheme(scheme)
    if tuple(xb.shape) != ARRAY_SHAPE:
        raise ValueError(f"the network is laid out on a {ARRAY_SHAPE} array, the crossbar is {tuple(xb.shape)}")
    s = _replace(settings if settings is not None else PassiveTuning(), scheme=scheme)
    mapping = DifferentialMapping(g_min=model.g_min, g_max=model.g_max)
    mapped = [mapping.map(np.asarray(W, float)) for W in weights]
    placement = place(mapped, ARRAY_SHAPE, max_arrays=1)
    targets = placement.targets(0)
    used = np.isfinite(targets)
    tuned = np.where(used, np.clip(targets, model.g_min, model.g_max), np.nan)  # rounding of the mapping
    result = tune_passive(xb, tuned, model, s)
    readback = np.where(used, result.achieved, model.g_init_median)
    if truth is None:
        g, a, r_row, r_col = readback, model.a, model.r_wire_row, model.r_wire_col
    else:
        g, a, r_row, r_col = truth()
        g = np.array(g, dtype=float, copy=True)
    read_error = np.where(used, readback - g, 0.0)
    eff = []
    for k, lay in enumerate(mapped):
        _, r, c = placement.cells(k)
        eff.append(lay.weights_from(g[r[0], c[0]], g[r[1], c[1]]))
    return PassiveTransfer(g, targets, read_error, eff, placement, mapped, float(a), float(r_row), float(r_col)), result


def array_forward(tr: PassiveTransfer, X: np.ndarray, x_scales: Sequence[float], v_max: float = 0.2) -> np.ndarray:
    """Logits computed by the programmed array (module docstring, step 4).

    ``x_scales[k]`` is the activation magnitude of layer ``k``'s inputs that maps to ``v_max``
    volts (at least 1, so the bias input, 1, is at most ``v_max`` too).
    """
    from labrram.circuit import CrossbarCircuit

    m, n = ARRAY_SHAPE
    circuit = CrossbarCircuit(tr.g, tr.a, tr.r_row, tr.r_col)
    _, Y = circuit.port_responses()
    Ycr = -Y[m:, :m]  # sensed column currents per volt on each row, (n, m)
    h = np.asarray(X, float)
    for k, lay in enumerate(tr.mapped):
        if len(x_scales) != len(tr.mapped):
            raise ValueError("one x_scale per layer is needed")
        scale = v_max / float(x_scales[k])
        v_in = np.concatenate([h * scale, np.full((h.shape[0], 1), scale)], axis=1)
        v_in = np.clip(v_in, -v_max * 1.5, v_max * 1.5)  # the driver's range
        out = np.zeros((h.shape[0], lay.shape[1]))
        for tile in tr.placement.tiles_of(k):
            rows = np.arange(tile.rows.start, tile.rows.stop)
            cols = np.arange(tile.cols.start, tile.cols.stop)
            V = np.zeros((h.shape[0], m))
            V[:, rows] = v_in[:, tile.inputs]
            cur = V @ Ycr[cols].T  # linear nodal solution with wires
            gsub = tr.g[np.ix_(rows, cols)]
            vin = V[:, rows]
            # sinh excess of each driven cell at its row voltage
            if tr.a != 0:
                cur += (device_current(gsub[None], tr.a, vin[:, :, None]) - gsub[None] * vin[:, :, None]).sum(axis=1)
            diff = cur[:, 0::2] - cur[:, 1::2]
            out[:, tile.outputs] += diff / (lay.gamma[tile.outputs] * scale)
        h = out if k == len(tr.mapped) - 1 else np.maximum(out, 0.0)
    return h


def activation_scales(weights: Sequence[np.ndarray], X: np.ndarray) -> list[float]:
    """Largest input magnitude of each layer over ``X`` (maps to ``v_max`` on the array)."""
    scales, h = [], np.asarray(X, float)
    for k, W in enumerate(weights):
        scales.append(float(max(np.max(np.abs(h)), 1.0)))  # the bias input (1) fits too
        h = np.concatenate([h, np.ones((h.shape[0], 1))], axis=1) @ W
        h = np.maximum(h, 0.0)
    return scales


# --------------------------------------------------------------------------------------------
# the error model used in training
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorModel:
    """Conductance error of a tuned device, as the training samples it (SI units).

    ``G = target + e_col + e_dev``: ``e_col ~ N(0, s_col)`` is shared by every device of an
    array column (the sneak-path error of the column background the verify read subtracts),
    ``e_dev ~ N(0, sqrt(s_add^2 + (s_rel target)^2))`` is per device (``s_rel``: the
    calibration's tuning imprecision). ``bias`` is the mean error (reported, not trained on).
    """

    s_col: float
    s_add: float
    s_rel: float
    bias: float
    scheme: str
    g_min: float
    g_max: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def estimate_errors(
    model: PassiveDeviceModel,
    scheme: str,
    n_transfers: int = 8,
    seed: int = 0,
    sizes: Sequence[int] = (2, 8, 2),
    tuning: TransferModel | None = None,
) -> ErrorModel:
    """Fit :class:`ErrorModel` to simulated transfers of random networks on the calibrated model.

    Each transfer programs random weights with :func:`transfer` on the calibrated model (no
    chip variation) and records ``G - target`` of every used device. ``s_col`` is the spread of
    the column means of the error, ``s_add`` what is left of the within-column spread after
    tuning imprecision ``s_rel`` (``tuning.sigma_rel``; default the model's nominal
    ``tuning_sigma_rel``). ``tuning`` is passed to :func:`transfer`.
    """
    _check_scheme(scheme)
    if int(n_transfers) != n_transfers or n_transfers < 1:
        raise ValueError(f"n_transfers must be a positive integer, got {n_transfers!r}")
    rng = np.random.default_rng(seed)
    col_means, within, tgt, allerr = [], [], [], []
    for _ in range(int(n_transfers)):
        ws = [rng.standard_normal((a + 1, b)) for a, b in zip(sizes[:-1], sizes[1:])]
        tr = transfer(ws, model, rng, scheme, chip_variation=False, tuning=tuning)
        used = np.isfinite(tr.targets)
        err = np.where(used, tr.g - np.nan_to_num(tr.targets), np.nan)
        for j in np.flatnonzero(used.any(axis=0)):
            e = err[used[:, j], j]
            col_means.append(e.mean())
            within.append(e - e.mean())
        tgt.append(tr.targets[used])
        allerr.append(err[used])
    bias = float(np.mean(np.concatenate(allerr)))
    s_rel = float(model.tuning_sigma_rel if tuning is None else tuning.sigma_rel)
    t = np.concatenate(tgt)
    s_col = float(np.std(col_means))
    s_add2 = float(np.mean(np.concatenate(within) ** 2)) - s_rel**2 * float(np.mean(t**2))
    return ErrorModel(s_col, math.sqrt(max(s_add2, 0.0)), s_rel, bias, scheme, model.g_min, model.g_max)


# --------------------------------------------------------------------------------------------
# training (torch imported lazily: the Monte Carlo workers never need it)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HardwareAwareSettings:
    """Training settings.

    Attributes
    ----------
    hidden : int
        Hidden units (``2-hidden-2``; ``2·(3·hidden + 2·(hidden + 1))`` devices).
    epochs : int
        Full-batch Adam steps.
    lr : float
        Adam learning rate.
    dropout : float
        Dropout probability of the hidden units (hardware-aware only).
    noise_scale : float
        Multiplies the error model's sigma in the reparametrization trick.
    w_max : float
        Weight range the regularizer keeps (hardware-aware only).
    range_weight : float
        ``lambda`` of the range regularizer.
    seed : int
        Initial weights, dropout and noise draws.
    """

    hidden: int = 8
    epochs: int = 600
    lr: float = 0.05
    dropout: float = 0.1
    noise_scale: float = 1.0
    w_max: float = 3.0
    range_weight: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.hidden) != self.hidden or self.hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {self.hidden!r}")
        if int(self.epochs) != self.epochs or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")
        if self.noise_scale < 0 or self.w_max <= 0 or self.range_weight < 0 or self.lr <= 0:
            raise ValueError("noise_scale, range_weight >= 0 and w_max, lr > 0 are required")


def train_network(
    X: np.ndarray,
    y: np.ndarray,
    settings: HardwareAwareSettings = HardwareAwareSettings(),
    errors: ErrorModel | None = None,
) -> list[np.ndarray]:
    """Train a ``2-H-2`` ReLU network; hardware-aware when ``errors`` is given.

    Returns the augmented weights ``[(3, H), (H + 1, 2)]``.
    """
    import torch
    import torch.nn.functional as F

    from labrram.nn.train import _threads

    X = np.asarray(X, float)
    y = np.asarray(y, np.int64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError("X must be (N, d) and y (N,)")
    s = settings
    aware = errors is not None
    gen = torch.Generator().manual_seed(int(s.seed))
    sizes = (X.shape[1], int(s.hidden), int(y.max()) + 1)
    Ws = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(a)
        Ws.append(((torch.rand(a + 1, b, generator=gen, dtype=torch.float64) * 2 - 1) * bound).requires_grad_())
    Xt = torch.tensor(np.concatenate([X, np.ones((X.shape[0], 1))], axis=1))
    yt = torch.tensor(y)
    opt = torch.optim.Adam(Ws, lr=s.lr)

    def noisy(W: torch.Tensor) -> torch.Tensor:
        # the reparametrization trick with the calibrated array's error (weight units)
        gmin, gmax = errors.g_min, errors.g_max
        gamma = (gmax - gmin) / W.detach().abs().max().clamp_min(1e-12)
        gp = gmin + gamma * W.clamp_min(0.0)
        gm = gmin - gamma * W.clamp_max(0.0)
        sigma_dev = (2 * errors.s_add**2 + errors.s_rel**2 * (gp**2 + gm**2)).sqrt() / gamma
        sigma_col = math.sqrt(2.0) * errors.s_col / gamma
        eps_dev = torch.randn(W.shape, generator=gen, dtype=W.dtype)
        eps_col = torch.randn((1, W.shape[1]), generator=gen, dtype=W.dtype)
        return W + s.noise_scale * (sigma_dev * eps_dev + sigma_col * eps_col)

    with _threads(1):
        for _ in range(int(s.epochs)):
            opt.zero_grad()
            h = Xt
            for k, W in enumerate(Ws):
                Wk = noisy(W) if aware else W
                h = h @ Wk
                if k < len(Ws) - 1:
                    h = torch.relu(h)
                    if aware and s.dropout > 0:
                        keep = (torch.rand(h.shape, generator=gen, dtype=h.dtype) >= s.dropout).to(h.dtype)
                        h = h * keep / (1 - s.dropout)
                    h = torch.cat([h, torch.ones(h.shape[0], 1, dtype=h.dtype)], dim=1)
            loss = F.cross_entropy(h, yt)
            if aware and s.range_weight > 0:
                loss = loss + s.range_weight * sum(((W.abs() - s.w_max).clamp_min(0.0) ** 2).sum() for W in Ws)
            loss.backward()
            opt.step()
    return [W.detach().numpy().copy() for W in Ws]


# --------------------------------------------------------------------------------------------
# the Monte Carlo trial and the metric
# --------------------------------------------------------------------------------------------
def _trial_inputs(weights: list, task_seed: int, calibration: str | None) -> tuple[Any, Any, list[np.ndarray], list[float]]:
    """What a transfer trial starts from: the calibration (default: the shipped passive one),
    the moons task, the weights as arrays and their activation scales."""
    from labrram.calibration.files import default_calibration, load_calibration
    from labrram.nn.datasets import load_task

    cal = default_calibration("passive") if calibration is None else load_calibration(calibration)
    task = load_task("moons", seed=int(task_seed))
    ws = [np.asarray(W, float) for W in weights]
    return cal, task, ws, activation_scales(ws, task.X_train)


def transfer_trial(
    trial_index: int,
    seed: int,
    weights: list,
    scheme: str = "V/2",
    task_seed: int = 0,
    calibration: str | None = None,
    v_max: float = 0.2,
) -> dict[str, Any]:
    """One transfer of ``weights`` (nested lists) and inference on the moons test set.

    Returns ``correct`` (n_test,) 0/1 per test point, ``accuracy`` and ``read_error_rms`` (S).
    ``calibration`` is a calibration JSON path (default: the shipped passive calibration).
    """
    cal, task, ws, scales = _trial_inputs(weights, task_seed, calibration)
    tr = transfer(ws, cal.model, np.random.default_rng(seed), scheme, tuning=TransferModel.of_calibration(cal))
    logits = array_forward(tr, task.X_test, scales, v_max)
    correct = (np.argmax(logits, axis=1) == task.y_test).astype(np.int8)
    used = np.isfinite(tr.targets)
    return {
        "correct": correct,
        "accuracy": float(correct.mean()),
        "read_error_rms": float(np.sqrt(np.mean(tr.read_error[used] ** 2))),
    }


#: tuning settings of the pulse-level study: the protocol's defaults, iterations capped at 60
#: (past ~50 iterations the devices left are the ones a column offset puts beyond their window
#: edge; more iterations change the programmed array by < 0.2 µS rms, see docs/methods/drolet.md)
PULSE_MAX_ITERATIONS = 60


def pulse_transfer_trial(
    trial_index: int,
    seed: int,
    weights: list,
    scheme: str = "V/2",
    task_seed: int = 0,
    calibration: str | None = None,
    v_max: float = 0.2,
    max_iterations: int = PULSE_MAX_ITERATIONS,
    rows: int = ARRAY_SHAPE[0],
) -> dict[str, Any]:
    """One pulse-level transfer of ``weights`` on a fresh simulated passive chip (Monte Carlo trial).

    A simulated 32×32 passive bench is built with chip seed ``seed`` (its hidden parameters
    drawn around the simulator's own nominal model, not the calibration), the weights are
    programmed through the station's instruments by :func:`transfer_pulse_level` (SET/RESET
    staircases under ``scheme``, half-select disturb and read noise of the chip included), and
    the programmed array (its hidden state, only to judge the transfer) classifies the moons
    test set with :func:`array_forward`.

    Parameters
    ----------
    trial_index : int
        Index of the trial in its study (unused: the seed makes the trial).
    seed : int
        Seed of the simulated chip (its hidden parameters, state and noise).
    weights : list
        Augmented weights as nested lists (JSON).
    scheme : str
        ``"V/2"`` or ``"V/3"``: biasing of every pulse and verify read.
    task_seed : int
        Seed of the moons data set.
    calibration : str, optional
        Calibration JSON path (default: the shipped passive calibration): the tuner's model.
    v_max : float
        Largest inference row voltage, V.
    max_iterations : int
        Iteration cap of the tuning protocol.
    rows : int
        Array size (rows = columns; the network is laid out on 32×32).

    Returns
    -------
    dict
        ``correct`` (n_test,) 0/1 per test point, ``accuracy``, ``g_err_rms`` (S, true
        conductance minus target over the used devices), ``pulses_per_device``,
        ``converged_fraction`` and ``unused_drift_rms`` (relative rms drift of the unused cells
        during programming: half-select disturb).
    """
    import os

    from labrram import sim
    from labrram.protocols.tune_passive import PassiveTuning
    from labrram.station import load_station

    cal, task, ws, scales = _trial_inputs(weights, task_seed, calibration)
    bench = f"drolet-pulse-{os.getpid()}"
    n = int(rows)
    sim.configure_bench(bench, seed=int(seed), kind="passive", rows=n, cols=n)
    station = load_station().with_simulation(bench=bench, seed=int(seed), kind="passive", rows=n, cols=n)
    with station.connect() as st:
        chip = st.bench.chip
        truth = chip.reveal_truth()  # only to judge the transfer, never given to the tuner
        g0 = chip._g.copy()
        tr, res = transfer_pulse_level(
            ws, st.crossbar, cal.model, scheme, PassiveTuning(max_iterations=int(max_iterations)),
            truth=lambda: (chip._g, truth.a, truth.r_wire_row, truth.r_wire_col),
        )
    logits = array_forward(tr, task.X_test, scales, v_max)
    correct = (np.argmax(logits, axis=1) == task.y_test).astype(np.int8)
    used = np.isfinite(tr.targets)
    summ = res.summary()
    return {
        "correct": correct,
        "accuracy": float(correct.mean()),
        "g_err_rms": float(np.sqrt(np.mean((tr.g - np.clip(tr.targets, cal.model.g_min, cal.model.g_max))[used] ** 2))),
        "pulses_per_device": float(summ["pulses_per_device"]),
        "converged_fraction": float(summ["converged_fraction"]),
        "unused_drift_rms": float(np.sqrt(np.mean(((tr.g - g0) / g0)[~used] ** 2))),
    }


def correct_fraction(correct: np.ndarray) -> np.ndarray:
    """Per test point, the fraction of transfers that classify it correctly (``correct``: (T, N))."""
    c = np.asarray(correct, float)
    if c.ndim != 2:
        raise ValueError("correct must be (transfers, test points)")
    return c.mean(axis=0)


def robust_fraction(correct: np.ndarray, threshold: float = 0.95) -> float:
    """The metric: fraction of test points classified correctly in ``>= threshold`` of transfers."""
    return float(np.mean(correct_fraction(correct) >= threshold))
