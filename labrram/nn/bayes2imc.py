"""Binary Bayesian networks on PCM with device noise as the sampler (Bayes2IMC), numpy only.

Katti et al., "Bayes2IMC: in-memory computing for Bayesian binary neural networks", IEEE TCAS-I
2025. A binary Bayesian network (:mod:`labrram.nn.binary_bayes`) has ±1 weights with
``P(w = +1) = sigmoid(2 λ)``. Instead of drawing them with a random-number generator, each
weight is one PCM device programmed near a reference conductance ``G_ref``; a read compares
the device with the reference and the device's own 1/f read noise ``n`` makes the answer
random::

    w = sign(G + n − G_ref),   P(w = +1) = Φ((G − G_ref) / σ(G))

so the device is programmed to ``G − G_ref = z σ(G)`` with ``z = c λ``, ``c = 2 / 1.702 ≈ 1.18``
(the logistic matched by a probit, ``sigmoid(x) ≈ Φ(x / 1.702)``). Very confident weights are
clipped at ``|z| = z_max``, far enough from the reference that they never flip.

Pipeline, all through the instruments:

1. :func:`calibrate_sampler` measures the sampling noise ``σ(G)`` itself: spare devices are
   programmed to a ladder of levels, read ``n`` times ``interval`` apart (the read spacing of
   inference, which sets how much of the 1/f noise is renewed between samples), and a power
   law ``σ = a (G / 1 µS)^b`` is fitted to the per-device spreads (:class:`SamplerNoise`).
2. :func:`deploy_binary` lays one device per weight on the array (:class:`BinaryLayout`) and
   programs ``G_T = G_ref + z σ(G_T)`` by PCM write-verify.
3. :meth:`BinaryDeployment.sample` draws ``M`` networks with ``M`` whole-array reads spaced
   by ``interval`` on the station's timer: each read, thresholded at the reference, is one
   network. **Drift compensation**: the reference follows the array. Each read also gives
   every layer's mean conductance; the threshold is ``G_ref · mean_t / mean_0`` with
   ``mean_0`` the mean of the write-verify's accepting reads (the array as programmed). PCM
   drift (``g ∝ t^-ν``) scales the device and its read noise alike, so a reference scaled by
   the measured drift keeps ``z``.
4. **Final-layer logit correction** (:class:`LogitCorrection`). Programming lands each device
   within the write-verify window, a fraction of a read-noise σ off target: every deployment
   realizes slightly different probabilities, and accuracy varies from one deployment to the
   next. The reads of the networks it corrects (or ``K`` reads of its own) measure each
   output-layer device's realized mean weight ``μ̂ = 2 p̂ − 1`` (the fraction of reads above the
   reference), and the output layer's pre-activations get ``h · (tanh λ − μ̂)`` added: the
   hardware's mean output is brought back to the trained one. Given unlabelled calibration
   inputs and what software draws of the posteriors give on them (:class:`SoftwareReference`),
   the hidden layers' digital batch norms are first matched, layer by layer, so that each
   channel's products have over the hardware's networks the mean and spread they have over the
   software's (:meth:`BinaryBayesNetwork.hidden_moments`; folded into the batch norms' running
   statistics, nothing is added at inference; ``match_norms=False`` leaves them as trained);
   then the logits get an affine map fitted to the software logits (:func:`fit_logit_map`: each
   corrected logit a combination of all the hardware's logits, plus an offset). The array's
   products are left as programmed; all of it is digital and needs reads and inputs, no
   labels, so it can be measured again at any time (:func:`evaluate_deployment` does, with
   ``refresh``).

**Reference devices** (``SamplerSettings(reference="tile")`` or ``"column"``, a layout from
:meth:`BinaryLayout.tile_grid`): instead of the number ``G_ref``, each weight is compared with
the mean read, in the same whole-array read, of reference PCM devices programmed at ``G_ref``
in the same write-verify job as the weights (all those of its 128×128 tile, or those of its tile
column). They drift as the weights do, so they track drift without any digital scaling, and
:func:`calibrate_sampler` (with ``references``) measures the noise of that comparison.

Only measured quantities enter: the sampler calibration, write-verify reads and inference
reads. A device the write-verify could not bring into its window is sampled as it is when a
whole-array read right after programming shows it realizes the weight better than leaving it
out would (:func:`labrram.mapping.binary_off_target`); otherwise it is masked out, and every
network takes its weight at the posterior mean ``tanh λ`` (``SamplerSettings(left_out="zero")``:
at 0, and then a confident weight's device stuck far on the right side of the reference is
sampled, since it still always gives the right sign). With
``SamplerSettings(remap_inputs=True)`` the layers' inputs are first routed to the rows whose
devices off target serve them best (:func:`labrram.mapping.binary_fault_order`: a device stuck
SET under a confident +1 weight), and the moved devices programmed again.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from labrram.crossbar import Crossbar
from labrram.devices.set_families import normal_cdf
from labrram.mapping import STAND_INS, binary_fault_order, binary_off_target
from labrram.nn.binary_layout import BinaryLayout
from labrram.nn.binary_correction import LogitCorrection, SoftwareReference, fit_logit_map, measure_correction
from labrram.nn.binary_network import BinaryBayesNetwork, BinaryConv
from labrram.nn.binary_sampler import EffectiveSamples, SamplerNoise, calibrate_sampler, effective_samples
from labrram.nn.drift import check_times, wait_after_programming
from labrram.protocols.results import ProgramResult
from labrram.protocols.write_verify_pcm import PCMWriteVerify, write_verify_pcm

__all__ = [
    "PROBIT_SCALE",
    "BinaryBayesNetwork",
    "BinaryConv",
    "BinaryDeployment",
    "BinaryLayout",
    "EffectiveSamples",
    "LogitCorrection",
    "SamplerNoise",
    "SamplerSettings",
    "SoftwareReference",
    "VARIANTS",
    "calibrate_sampler",
    "deploy_binary",
    "effective_samples",
    "evaluate_deployment",
    "fit_logit_map",
    "lambda_to_z",
    "measure_correction",
    "plus_fraction",
    "realization_error",
]

PROBIT_SCALE = 2.0 / 1.702
"""``c`` in ``z = c λ``: ``sigmoid(2 λ) ≈ Φ(c λ)`` (the 1.702 logistic-probit match)."""


# --- the network: labrram.nn.binary_network ----------------------------------------------------
def lambda_to_z(lam: Any, z_max: float = 6.0, c: float = PROBIT_SCALE) -> np.ndarray:
    """``z = clip(c λ, −z_max, z_max)``: the target offset from the reference in read-noise σ."""
    return np.clip(c * np.asarray(lam, dtype=float), -z_max, z_max)


# --- the sampler (its calibration: labrram.nn.binary_sampler) ----------------------------------
REFERENCES = ("digital", "tile", "column")
"""What a weight device is compared with (:class:`SamplerSettings`)."""
LEFT_OUT = STAND_INS
"""What a weight left out of sampling contributes to every network (:class:`SamplerSettings`)."""


@dataclass(frozen=True)
class SamplerSettings:
    """How the binary network is sampled from the array.

    Attributes
    ----------
    g_ref : float
        Reference conductance (S): a device at ``g_ref`` gives ``P(w = +1) = ½``.
    z_max : float
        Largest offset from the reference, in σ (confident weights).
    interval : float
        Spacing of successive sampling reads, s (1/f components slower than this carry over
        from one sample to the next).
    half_width : float
        Write-verify window half-width, S.
    drift_compensation : bool
        With a digital reference: scale it by each layer's measured mean drift (False: a fixed
        ``g_ref``). Reference devices drift with the weights and need no scaling.
    reference : str
        ``"digital"``: each read is compared with the number ``g_ref`` (scaled by the drift when
        ``drift_compensation``); ``"tile"`` / ``"column"``: with the mean read, in the same read,
        of the reference PCM devices programmed at ``g_ref`` with the weights, all those of the
        weight's tile or those of its tile column (a layout from :meth:`BinaryLayout.tile_grid`).
    reads : int
        Reads in a row averaged by every verify of the write-verify
        (:class:`~labrram.protocols.write_verify_pcm.PCMWriteVerify` ``reads``): the window is
        as narrow as one read's 1/f noise, so averaging lands the devices closer to target.
    attempts : int
        Full write-verify attempts per device (:class:`~labrram.protocols.write_verify_pcm.PCMWriteVerify`
        ``attempts``): a device the first attempt leaves out of its window — the read noise,
        as large as the window, can throw it across until its ladders run out — gets a fresh
        RESET and ladders again. What no attempt brings in is stuck.
    keep_unconverged : bool
        Sample a weight device the write-verify gave up on as it is when a whole-array read
        right after programming shows it realizes the weight better than leaving it out would
        (:meth:`BinaryDeployment.ok`, :func:`labrram.mapping.binary_off_target`). False: every
        such device is left out (its weight taken as ``left_out`` says).
    remap_inputs : bool
        After the write-verify, route each layer's inputs to its array rows in the order that
        the devices it left off target (stuck, mostly) serve best
        (:func:`labrram.mapping.binary_fault_order`: a device stuck high or low under a
        confident weight of its sign, not under an uncertain one), and program again the
        devices whose target changed, in a second job (:class:`BinaryLayout` ``orders``).
        A layout that already has orders keeps them where no move lowers the cost. The cost
        counts the devices off target, not the reprogramming: every moved row's devices are
        programmed again. Needs ``keep_unconverged`` (the devices off target are used).
    left_out : {"mean", "zero"}
        What every network takes for a weight that is not sampled (:meth:`BinaryDeployment.ok`):
        its posterior mean ``tanh λ`` (default; the periphery adds it as a digital product over
        the few weights left out, most of them confident, so within a hair of ±1), or 0.
        A weight that reads 0 in every network moves its feature map or unit the same way in
        every network, which a logit correction of the hidden layers cannot reach; at its mean
        it loses only its variance, so a device off target under a confident weight is then
        left out unless it realizes the weight almost exactly (docs/methods/bayes2imc.md).
    """

    g_ref: float = 8e-6
    z_max: float = 6.0
    interval: float = 1.0
    half_width: float = 0.3e-6
    drift_compensation: bool = True
    reference: str = "digital"
    reads: int = 1
    attempts: int = 1
    keep_unconverged: bool = True
    remap_inputs: bool = False
    left_out: str = "mean"

    def __post_init__(self) -> None:
        for name in ("g_ref", "z_max", "interval", "half_width"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        if self.reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {self.reference!r}")
        if self.left_out not in LEFT_OUT:
            raise ValueError(f"left_out must be one of {LEFT_OUT}, got {self.left_out!r}")
        for name in ("keep_unconverged", "remap_inputs"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.remap_inputs and not self.keep_unconverged:
            raise ValueError("remap_inputs=True needs keep_unconverged=True: the remap puts weights on the devices off target that serve them, and keep_unconverged=False leaves every such device out")
        self.write_verify()  # refuses a bad ``reads`` or ``attempts``

    def write_verify(self, max_iterations: int = 200) -> PCMWriteVerify:
        """The PCM write-verify settings with this window."""
        return PCMWriteVerify(half_width=self.half_width, max_iterations=max_iterations, reads=self.reads, attempts=self.attempts)


# --- deployment (the layout: labrram.nn.binary_layout) -------------------------------------------
@dataclass(eq=False)
class BinaryDeployment:
    """A binary Bayesian network programmed on a PCM array, and its hardware sampler.

    Attributes
    ----------
    net : BinaryBayesNetwork
        The trained posteriors.
    layout : BinaryLayout
        Where each weight's device sits.
    noise : SamplerNoise
        The measured sampling noise.
    settings : SamplerSettings
        Reference, clipping, read spacing, drift compensation.
    result : ProgramResult
        The write-verify's outcome.
    t_programmed : float
        Timer time at the end of programming, s.
    reference_means : list of float
        Each layer's mean conductance right after programming (S): the drift reference.
    last_read : float or None
        Timer time of the last sampling read, s.
    check : ndarray or None
        The whole-array read right after programming (``settings.keep_unconverged`` or
        ``remap_inputs``), S: where the devices the write-verify gave up on ended (its last
        verify read may precede its last pulse).
    before_remap : dict or None
        With ``settings.remap_inputs``: ``left_out`` (:meth:`summary`) after the first job.
    remapped_inputs : int
        Row slots whose input the remap changed (``settings.remap_inputs``), over all layers.
    """

    net: BinaryBayesNetwork
    layout: BinaryLayout
    noise: SamplerNoise
    settings: SamplerSettings
    result: ProgramResult
    t_programmed: float
    reference_means: list[float] | None = None
    last_read: float | None = None
    check: np.ndarray | None = None
    before_remap: dict | None = None
    remapped_inputs: int = 0
    _ok: list[np.ndarray] | None = field(default=None, init=False, repr=False)
    _stand_ins: list[np.ndarray] | None = field(default=None, init=False, repr=False)

    def converged(self) -> np.ndarray:
        """Array-shaped: the devices (weights and references) the write-verify brought into
        their window."""
        return np.where(self.result.mask, self.result.converged, False)

    def _with_reference(self) -> np.ndarray:
        """Array-shaped: cells with at least one working reference device (every cell with a
        digital reference)."""
        if self.settings.reference == "digital":
            return np.ones(self.layout.shape, dtype=bool)
        return np.isfinite(self.layout.reference_levels(np.ones(self.layout.shape), self.converged(), self.settings.reference))

    def programmed(self) -> list[np.ndarray]:
        """Per layer, the weight devices the write-verify brought into their window, with at
        least one working reference in their column (reference devices: those of their tile
        or tile column)."""
        conv = self.converged() & self._with_reference()
        return [self.layout.layer(conv, l) for l in range(self.net.n_layers)]

    def realized_means(self, g: np.ndarray) -> list[np.ndarray]:
        """Per layer, the mean weight ``2 Φ((G − level) / σ(G)) − 1`` each device realizes in
        one whole-array read ``g``, against the reference ``level`` of that read (its reference
        devices' mean, or ``g_ref``) with the measured sampling noise σ."""
        g = np.asarray(g, dtype=float)
        if self.settings.reference == "digital":
            level: Any = self.settings.g_ref
        else:
            level = self.layout.reference_levels(g, self.converged(), self.settings.reference)
        with np.errstate(invalid="ignore"):
            mu = 2.0 * normal_cdf((g - level) / self.noise.sigma(np.nan_to_num(g))) - 1.0  # NaN where no device
        return [self.layout.layer(mu, l) for l in range(self.net.n_layers)]

    def ok(self) -> list[np.ndarray]:
        """Per layer, the weight devices that are sampled: those of :meth:`programmed`, and
        (``settings.keep_unconverged``) those the write-verify gave up on whose realized mean
        weight in the read right after programming (:attr:`check`, :meth:`realized_means`)
        serves the trained ``tanh λ`` better than leaving the weight out at its stand-in
        (``settings.left_out``; :func:`labrram.mapping.binary_off_target`) — each with a
        working reference. Computed once per deployment."""
        if self._ok is None:
            ok = self.programmed()
            if self.settings.keep_unconverged and self.check is not None:
                has_ref = self._with_reference()
                for l, (mu, lam) in enumerate(zip(self.realized_means(self.check), self.net.lambdas)):
                    sampled = binary_off_target(np.tanh(lam), mu, self.settings.left_out)[0]
                    ok[l] = ok[l] | (sampled & self.layout.layer(has_ref, l))
            self._ok = ok
        return self._ok

    def thresholds(self, g: np.ndarray) -> list[Any]:
        """Each layer's comparison level for one whole-array read ``g``: a number per layer
        (digital reference, drift-compensated or fixed) or ``(n_in, n_out)`` per layer (the
        reference devices of every weight's column, read in the same read)."""
        g_ref = self.settings.g_ref
        if self.settings.reference != "digital":
            levels = self.layout.reference_levels(g, self.converged(), self.settings.reference)
            return [self.layout.layer(levels, l) for l in range(self.net.n_layers)]
        if not self.settings.drift_compensation:
            return [g_ref] * self.net.n_layers
        if self.reference_means is None:
            raise ValueError("drift compensation needs the reference means: call reference() after programming")
        return [g_ref * m / m0 for m, m0 in zip(self.layer_means(g), self.reference_means)]

    def layer_means(self, g: np.ndarray) -> list[float]:
        """Each layer's mean conductance (programmed devices only) in one whole-array read, S."""
        return [float(self.layout.layer(g, l)[ok].mean()) for l, ok in enumerate(self.programmed())]

    def reference(self) -> list[float]:
        """Each layer's mean accepted write-verify read (S): the drift reference, as programmed."""
        self.reference_means = self.layer_means(np.where(self.result.mask, self.result.achieved, np.nan))
        return self.reference_means

    def stand_ins(self) -> list[np.ndarray]:
        """Per layer, what every network takes for a weight that is not sampled (:meth:`ok`):
        0, or its posterior mean ``tanh λ`` (``settings.left_out == "mean"``); 0 where the
        weight is sampled. Computed once per deployment, as :meth:`ok`."""
        if self._stand_ins is None:
            if self.settings.left_out == "zero":
                self._stand_ins = [np.zeros(ok.shape) for ok in self.ok()]
            else:
                self._stand_ins = [np.where(ok, 0.0, np.tanh(lam)) for ok, lam in zip(self.ok(), self.net.lambdas)]
        return self._stand_ins

    def weights_from(self, g: np.ndarray) -> list[np.ndarray]:
        """The ±1 network one whole-array read ``g`` gives (weights not sampled:
        :meth:`stand_ins`)."""
        out = []
        for l, (ok, th, fill) in enumerate(zip(self.ok(), self.thresholds(g), self.stand_ins())):
            with np.errstate(invalid="ignore"):
                w = np.where(self.layout.layer(g, l) > th, 1.0, -1.0)
            out.append(np.where(ok, w, fill).astype(np.float32))
        return out

    def sample(self, xb: Crossbar, timer, n: int) -> list[list[np.ndarray]]:
        """``n`` networks from ``n`` whole-array reads, each at least ``settings.interval`` after
        the one before (also across calls), so that every sample has fresh read noise."""
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        out = []
        for _ in range(int(n)):
            if self.last_read is not None:
                timer.wait(max(self.last_read + self.settings.interval - timer.now(), 0.0))
            g = xb.read()
            self.last_read = float(timer.now())
            out.append(self.weights_from(g))
        return out

    def correction(
        self,
        samples: Sequence[Sequence[np.ndarray]],
        X_cal: np.ndarray | None = None,
        n_software: int = 64,
        seed: int = 0,
        software: SoftwareReference | None = None,
        match_norms: bool = True,
    ) -> LogitCorrection:
        """The correction from calibration ``samples`` (:meth:`sample`).

        Parameters
        ----------
        samples : list
            Networks read from the array right now (at least 2).
        X_cal : ndarray, optional
            Unlabelled calibration inputs ``(K, n_in)``: with them, the hidden batch norms are
            matched (``match_norms``) and the logits get an affine map (:func:`fit_logit_map`),
            both to what ``n_software`` software draws of the posteriors give on them.
        n_software, seed : int
            Software draws for that fit, and their seed.
        software : SoftwareReference, optional
            :meth:`SoftwareReference.measure` of ``X_cal``, measured beforehand.
        match_norms : bool
            See :func:`measure_correction`.
        """
        if X_cal is not None and software is None:
            software = SoftwareReference.measure(self.net, X_cal, n_software, seed)
        return measure_correction(self.net, samples, self.ok()[-1], X_cal, software, match_norms)

    def targets(self) -> list[np.ndarray]:
        """Programmed conductance per weight, S."""
        s = self.settings
        return [self.noise.targets(s.g_ref, lambda_to_z(lam, s.z_max)) for lam in self.net.lambdas]

    def summary(self) -> dict[str, Any]:
        """Devices, write-verify convergence (``left_out``: weights not sampled, :meth:`ok`), the
        inputs the fault-aware order moved (``remapped_inputs``, ``before_remap``) and the
        sampler's measured noise law."""
        out = self.result.summary()
        refs = int(self.layout.reference_mask().sum()) if self.settings.reference != "digital" else 0
        return {
            "devices": self.layout.weight_devices + refs,
            "weight_devices": self.layout.weight_devices,
            "reference_devices": refs,
            "tiles": self.layout.n_tiles,
            "array_shape": tuple(self.layout.shape),
            "converged_fraction": out["converged_fraction"],
            "attempts": self.settings.attempts,
            "left_out": int(sum(int((~ok).sum()) for ok in self.ok())),
            "remapped_inputs": self.remapped_inputs,
            "before_remap": self.before_remap,
            "sigma_a": self.noise.a,
            "sigma_b": self.noise.b,
            "g_ref": self.settings.g_ref,
        }


def deploy_binary(
    xb: Crossbar,
    timer,
    net: BinaryBayesNetwork,
    noise: SamplerNoise,
    settings: SamplerSettings = SamplerSettings(),
    layout: BinaryLayout | None = None,
) -> BinaryDeployment:
    """Program ``net`` one device per weight: ``G_T = G_ref + z σ(G_T)``, ``z = c λ`` clipped.

    Parameters
    ----------
    xb : Crossbar
        The PCM array.
    timer : BenchTimer
        The station's timer.
    net : BinaryBayesNetwork
        Trained posteriors.
    noise : SamplerNoise
        Measured sampling noise (:func:`calibrate_sampler`), at ``settings.interval``.
    settings : SamplerSettings
        Reference, clipping and write-verify window.
    layout : BinaryLayout, optional
        Where the layers go (default: packed from column 0).
    """
    if not math.isclose(noise.interval, settings.interval):
        raise ValueError(f"the sampler noise was measured at {noise.interval} s spacing, sampling uses {settings.interval} s")
    layout = layout or BinaryLayout.pack(net.sizes, tuple(xb.shape))
    if tuple(layout.shapes) != tuple(net.shapes):
        raise ValueError(f"the layout holds matrices {layout.shapes}, the network has {net.shapes}")
    if tuple(layout.shape) != tuple(xb.shape):
        raise ValueError(f"the layout is for a {layout.shape} array, the station's array is {tuple(xb.shape)}")
    if settings.reference != "digital" and not layout.ref_rows:
        raise ValueError(f"reference={settings.reference!r} needs a layout with reference devices (BinaryLayout.tile_grid)")
    dep = BinaryDeployment(net, layout, noise, settings, None, 0.0)  # type: ignore[arg-type]
    targets = layout.place(dep.targets())
    if settings.reference != "digital":
        targets[layout.reference_mask()] = settings.g_ref  # programmed with the weights, in the same job
    wv = settings.write_verify()
    lo, hi = wv.g_range
    finite = targets[np.isfinite(targets)]
    if finite.size and (finite.min() < lo or finite.max() > hi):
        raise ValueError(f"targets span {finite.min():.3g}–{finite.max():.3g} S, outside the write-verify range {lo}–{hi} S: lower z_max or move g_ref")
    dep.result = write_verify_pcm(xb, targets, wv)
    dep.t_programmed = float(timer.now())
    if settings.keep_unconverged or settings.remap_inputs:  # where the devices it gave up on ended, and their references with them
        dep.check = np.asarray(xb.read(), dtype=float)
    if settings.remap_inputs:
        dep = _remap_inputs(xb, timer, dep, wv)
    dep.reference()
    return dep


def _remap_inputs(xb: Crossbar, timer, dep: BinaryDeployment, wv: PCMWriteVerify) -> BinaryDeployment:
    """``dep`` with every layer's inputs in the order its off-target devices serve best
    (:func:`~labrram.mapping.binary_fault_order`), the devices whose target changed programmed
    again and read again."""
    orders, n_moved = [], 0
    for l, (lam, mu, done) in enumerate(zip(dep.net.lambdas, dep.realized_means(dep.check), dep.programmed())):
        slot = dep.layout.order(l)  # by row slot, as programmed: slot p holds matrix row slot[p]
        moves = binary_fault_order(np.tanh(lam)[slot], mu[slot], ~done[slot], dep.settings.left_out)  # identity: keep the order programmed
        orders.append(slot[moves])
        n_moved += int((moves != np.arange(moves.size)).sum())
    before = {"left_out": dep.summary()["left_out"]}
    moved = replace(dep, layout=dep.layout.with_orders(orders), before_remap=before, remapped_inputs=n_moved)
    targets = dep.targets()
    old, new = dep.layout.place(targets), moved.layout.place(targets)
    with np.errstate(invalid="ignore"):
        again = np.where(new != old, new, np.nan)  # rows swapped between equal targets stay as they are
    if np.isnan(again).all():
        return moved
    moved.result = dep.result.followed_by(write_verify_pcm(xb, again, wv))
    moved.t_programmed = float(timer.now())
    moved.check = np.asarray(xb.read(), dtype=float)
    return moved


VARIANTS = ("corrected", "uncorrected", "uncompensated")
"""What :func:`evaluate_deployment` scores at each time: the deployment's own reference (drift
tracking: reference devices, or the digital reference scaled by the measured drift) with and
without the logit correction, and a fixed digital reference ``G_ref`` (no drift tracking)."""


def evaluate_deployment(
    xb: Crossbar,
    timer,
    dep: BinaryDeployment,
    X_test: np.ndarray,
    y_test: np.ndarray,
    times: Sequence[float],
    n_samples: int = 32,
    n_calibration: int = 0,
    refresh: bool = True,
    X_cal: np.ndarray | None = None,
    n_software: int = 64,
    n_fixed: int | None = None,
    match_norms: bool = True,
) -> tuple[LogitCorrection, list[dict[str, Any]]]:
    """Score the deployment at times after programming, with and without the logit correction.

    For every ``t`` (s after the end of programming, increasing) the timer waits until ``t``;
    ``n_samples`` reads give the networks of the deployment's own reference, and the
    :class:`LogitCorrection` (reads only, and ``X_cal`` when given: no labels) is measured from
    those same networks and applied to them: no extra reads, and it follows what the slow part
    of the read noise does to those very reads (``n_calibration=0``, the default). With
    ``n_calibration`` ≥ 2 it is measured from that many reads of its own, taken just after them
    instead (it is digital and acts on the logits, so it may come after the networks it
    corrects; a run of reads leans its own way, so reads of its own see another lean); then
    ``n_fixed`` (default ``n_samples``) more reads give the networks of a fixed digital
    reference ``G_ref`` (scored with the correction). Without ``refresh`` the correction of the
    first time is used at every time. ``X_cal`` (unlabelled inputs) adds the matched hidden batch
    norms (unless ``match_norms`` is False) and the affine map of the logits
    (:meth:`BinaryDeployment.correction`, with ``n_software`` software draws).

    Returns
    -------
    correction : LogitCorrection
        The correction measured at the first time.
    rows : list of dict
        One per time: ``t``, the accuracies of :data:`VARIANTS`, and ``p_plus``: per layer, the
        fraction of the ``n_samples`` reads in which each weight read +1 (NaN for a weight that
        is not sampled), what :func:`realization_error` compares with the posterior.

    Raises
    ------
    ValueError
        For times that are negative, not increasing, or already past.
    """
    times = check_times(times)
    if int(n_calibration) != n_calibration or n_calibration == 1 or n_calibration < 0:
        raise ValueError(f"n_calibration must be 0 (the scored networks' own reads) or an integer >= 2, got {n_calibration!r}")
    rows: list[dict[str, Any]] = []
    first: LogitCorrection | None = None
    software = None if X_cal is None else SoftwareReference.measure(dep.net, X_cal, n_software)
    for t in times:
        wait_after_programming(timer, dep.t_programmed, t)
        samples = dep.sample(xb, timer, n_samples)
        if first is None or refresh:
            current = dep.correction(samples if n_calibration == 0 else dep.sample(xb, timer, n_calibration), X_cal, n_software, software=software, match_norms=match_norms)
            first = first or current
        else:
            current = first
        corrected, uncorrected = dep.net.accuracies(X_test, y_test, samples, [current, None])
        row = {"t": t, "corrected": corrected, "uncorrected": uncorrected, "p_plus": plus_fraction(samples, dep.ok())}
        fixed = replace(dep, settings=replace(dep.settings, reference="digital", drift_compensation=False))  # same array
        row["uncompensated"] = dep.net.accuracy(X_test, y_test, fixed.sample(xb, timer, n_fixed or n_samples), current)
        dep.last_read = fixed.last_read
        rows.append(row)
    assert first is not None
    return first, rows


def plus_fraction(samples: Sequence[Sequence[np.ndarray]], ok: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per layer, the fraction of the sampled networks ``samples`` in which each weight is +1;
    NaN where ``ok`` (per layer) says the weight is not sampled."""
    if not samples:
        raise ValueError("no sampled networks")
    return [np.where(m, np.mean([net[l] > 0 for net in samples], axis=0), np.nan) for l, m in enumerate(ok)]


def realization_error(
    p_plus: Sequence[np.ndarray], lambdas: Sequence[np.ndarray], n_reads: int, z_max: float = 6.0, z_informative: float = 1.5
) -> dict[str, float]:
    """How far the probabilities a deployment realizes are from its posterior's.

    Parameters
    ----------
    p_plus : sequence of ndarray
        Per layer, the fraction of ``n_reads`` reads in which each weight read +1 (NaN: not
        sampled), as :func:`evaluate_deployment`'s rows give it.
    lambdas : sequence of ndarray
        The posterior's natural parameters, per layer (``P(+1) = sigmoid(2 λ)``).
    n_reads : int
        Reads the fractions come from.
    z_max : float
        The clipping of the targets (:func:`lambda_to_z`): weights at ``|z| = z_max`` are the
        confident ones.
    z_informative : float
        Weights with ``|z| <= z_informative`` measure the error in ``z`` (nearer 0 or 1, a few
        reads cannot tell two probabilities apart).

    Returns
    -------
    dict
        ``z_rms``: the root-mean-square of ``Φ⁻¹(p̂) − z`` over the informative weights, in
        read-noise σ, less the spread that ``n_reads`` independent reads would give on their
        own (binomial): what programming error, drift and read noise slower than the reads'
        spacing leave. ``flip_rate``: over the confident weights, the fraction of reads whose
        sign is not that of ``λ``. ``informative`` and ``confident``: how many weights each
        figure rests on.
    """
    if int(n_reads) != n_reads or n_reads < 2:
        raise ValueError(f"n_reads must be an integer >= 2, got {n_reads!r}")
    if len(p_plus) != len(lambdas):
        raise ValueError(f"{len(p_plus)} layers of fractions for {len(lambdas)} layers of posteriors")
    p = np.concatenate([np.asarray(a, dtype=float).ravel() for a in p_plus])
    z = np.concatenate([lambda_to_z(lam, z_max).ravel() for lam in lambdas])
    if p.shape != z.shape:
        raise ValueError(f"the fractions hold {p.size} weights, the posteriors {z.size}")
    sampled = np.isfinite(p)
    informative = sampled & (np.abs(z) <= z_informative)
    confident = sampled & (np.abs(z) >= z_max)
    out = {"informative": int(informative.sum()), "confident": int(confident.sum()), "z_rms": float("nan"), "flip_rate": float("nan")}
    if informative.any():
        n = int(n_reads)
        inv = np.vectorize(statistics.NormalDist().inv_cdf, otypes=[float])
        z_hat = inv(np.clip(p[informative], 0.5 / n, 1 - 0.5 / n))
        zi = z[informative]
        q = normal_cdf(zi)
        binomial = q * (1 - q) / (n * (np.exp(-0.5 * zi**2) / math.sqrt(2 * math.pi)) ** 2)  # var of Φ⁻¹(p̂), delta method
        out["z_rms"] = float(np.sqrt(max(np.mean((z_hat - zi) ** 2) - np.mean(binomial), 0.0)))
    if confident.any():
        wrong = np.where(z[confident] > 0, 1.0 - p[confident], p[confident])
        out["flip_rate"] = float(wrong.mean())
    return out
