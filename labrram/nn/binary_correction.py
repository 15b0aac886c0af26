"""The digital correction of a binary Bayesian network deployed on an array (Bayes2IMC), measured
without labels: the hidden layers' batch norms matched to what software draws give on unlabelled
calibration inputs, the output layer's realized mean weights, and an affine map of the logits.

The deployment that measures it: :mod:`labrram.nn.bayes2imc` (its module text gives the method).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from labrram.nn.binary_network import BinaryBayesNetwork
from labrram.nn.drift import BatchNorm

__all__ = ["LogitCorrection", "SoftwareReference", "fit_logit_map", "measure_correction"]


@dataclass(frozen=True)
class LogitCorrection:
    """Digital correction of a deployment, measured without labels.

    The output layer's pre-activations get ``h · delta`` added (``delta = tanh λ − μ̂``: the
    trained mean weights minus those measured on the array); then the logits are mapped
    ``logits @ matrix + offset`` (an affine map of the ``n_classes`` logits, fitted to the
    software logits of calibration inputs; the identity without them). With calibration inputs
    the hidden layers' digital batch norms may also be matched (``norms``), so that each
    channel's products have, over the hardware's networks, the mean and spread they have over
    the software's on the same inputs.

    Attributes
    ----------
    delta : ndarray
        ``(n_hidden, n_classes)``.
    reads : int
        Calibration reads it was measured from.
    matrix : ndarray or None
        ``(n_classes, n_classes)``: column ``c`` gives class ``c``'s corrected logit as a
        combination of the hardware's logits (the identity: no change).
    offset : ndarray or None
        ``(n_classes,)``.
    inputs : int
        Calibration inputs the affine part was fitted on (0: none).
    norms : tuple of BatchNorm or None
        The hidden layers' batch norms matched to the software on the calibration inputs
        (:meth:`BinaryBayesNetwork.hidden_moments`), used in place of the trained ones; None:
        the trained ones.
    """

    delta: np.ndarray
    reads: int
    matrix: np.ndarray | None = None
    offset: np.ndarray | None = None
    inputs: int = 0
    norms: tuple[BatchNorm, ...] | None = None

    def apply(self, logits: np.ndarray) -> np.ndarray:
        """The affine map of (already shifted) logits ``(..., n_classes)``."""
        if self.matrix is None:
            return logits
        return logits @ self.matrix.astype(logits.dtype) + self.offset.astype(logits.dtype)


@dataclass(frozen=True)
class SoftwareReference:
    """What software draws of the posteriors give on unlabelled calibration inputs: what
    :func:`measure_correction` brings the hardware's networks back to
    (:meth:`measure`; the same at every time, so it is measured once).

    Attributes
    ----------
    logits : ndarray
        ``(K, n_classes)``: the sample-mean logits of the ``K`` inputs.
    moments : list of (ndarray, ndarray)
        Per hidden layer, the mean and standard deviation of each channel's products over the
        draws and inputs (:meth:`BinaryBayesNetwork.hidden_moments`).
    draws : int
        Software networks drawn.
    """

    logits: np.ndarray
    moments: list[tuple[np.ndarray, np.ndarray]]
    draws: int

    @classmethod
    def measure(cls, net: BinaryBayesNetwork, X_cal: np.ndarray, n_software: int = 64, seed: int = 0) -> "SoftwareReference":
        """What ``n_software`` software draws (a random-number generator, ``seed``) of
        ``net``'s posteriors give on the unlabelled inputs ``X_cal`` ``(K, n_in)``."""
        X_cal = np.asarray(X_cal, dtype=float)
        if int(n_software) != n_software or n_software < 1:
            raise ValueError(f"n_software must be a positive integer, got {n_software!r}")
        draws = net.software_samples(int(n_software), seed)
        logits = net.sample_logits(X_cal, draws).mean(axis=0)
        return cls(logits, net.hidden_moments(X_cal, draws)[0] if net.n_layers > 1 else [], int(n_software))


def measure_correction(
    net: BinaryBayesNetwork,
    samples: Sequence[Sequence[np.ndarray]],
    ok: np.ndarray | None = None,
    X_cal: np.ndarray | None = None,
    software: SoftwareReference | None = None,
    match_norms: bool = True,
) -> LogitCorrection:
    """The correction of ``net`` from calibration ``samples`` (networks read or drawn right
    now, at least 2): what :meth:`BinaryDeployment.correction` measures.

    Parameters
    ----------
    net : BinaryBayesNetwork
        The trained posteriors.
    samples : list
        The calibration networks (per layer ``(n_in, n_out)``).
    ok : ndarray of bool, optional
        The output layer's weights that are sampled; the others (left out: the same value,
        0 or their mean, in every network) get no shift. Default: all.
    X_cal : ndarray, optional
        Unlabelled calibration inputs ``(K, n_in)``, ``K >= 3``: with them (and ``software``)
        the hidden batch norms are matched (``match_norms``) and the logits get the affine map
        of :func:`fit_logit_map`.
    software : SoftwareReference, optional
        The software's draws on ``X_cal`` (:meth:`SoftwareReference.measure`); required with
        ``X_cal``.
    match_norms : bool
        With ``X_cal``: match the hidden layers' batch norms to the software's moments first
        (:meth:`BinaryBayesNetwork.hidden_moments`), then measure the rest through them. False:
        the final layer only (the shift and the affine map).
    """
    if len(samples) < 2:
        raise ValueError("the logit correction needs at least 2 calibration reads")
    mu_hat = np.mean([s[-1] for s in samples], axis=0)
    delta = np.tanh(net.lambdas[-1]) - mu_hat
    if ok is not None:
        delta = np.where(ok, delta, 0.0)
    if X_cal is None:
        return LogitCorrection(delta, len(samples))
    X_cal = np.asarray(X_cal, dtype=float)
    if X_cal.ndim != 2 or X_cal.shape[0] < 3:
        raise ValueError(f"X_cal must hold at least 3 inputs (K, n_in), got shape {X_cal.shape}")
    if not isinstance(software, SoftwareReference):
        raise ValueError("X_cal needs the software's draws on the same inputs (software=SoftwareReference.measure(net, X_cal))")
    norms = tuple(net.hidden_moments(X_cal, samples, software.moments)[1]) if match_norms and net.n_layers > 1 else None
    hw = net.sample_logits(X_cal, samples, LogitCorrection(delta, len(samples), norms=norms)).mean(axis=0)
    if software.logits.shape != hw.shape:
        raise ValueError(f"software logits have shape {software.logits.shape}, the calibration inputs give {hw.shape}")
    matrix, offset = fit_logit_map(hw, software.logits)
    return LogitCorrection(delta, len(samples), matrix, offset, int(X_cal.shape[0]), norms)


def fit_logit_map(hw: np.ndarray, sw: np.ndarray, ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Affine map ``hw @ matrix + offset ≈ sw`` of logits, by least squares.

    The fit is pulled toward the identity (no change) by ``ridge`` times the mean squared
    centred logit per class, so that few or nearly collinear calibration inputs give a map
    close to the identity rather than a wild one.

    Parameters
    ----------
    hw, sw : ndarray
        ``(K, n_classes)``: the hardware's and the software's sample-mean logits of the same
        ``K`` calibration inputs.
    ridge : float
        Relative pull toward the identity (0: plain least squares).

    Returns
    -------
    matrix : ndarray
        ``(n_classes, n_classes)``.
    offset : ndarray
        ``(n_classes,)``.
    """
    hw, sw = np.asarray(hw, dtype=float), np.asarray(sw, dtype=float)
    if hw.ndim != 2 or hw.shape != sw.shape:
        raise ValueError(f"hardware and software logits must have the same shape (K, n_classes), got {hw.shape} and {sw.shape}")
    if not ridge >= 0:
        raise ValueError(f"ridge must be >= 0, got {ridge!r}")
    if not (np.isfinite(hw).all() and np.isfinite(sw).all()):
        raise ValueError("the logits to fit hold NaN or infinite values")
    mh, ms = hw.mean(axis=0), sw.mean(axis=0)
    xc, yc = hw - mh, sw - ms
    n = hw.shape[1]
    lam = ridge * float(np.sum(xc * xc)) / n + 1e-12
    matrix = np.linalg.solve(xc.T @ xc + lam * np.eye(n), xc.T @ yc + lam * np.eye(n))
    return matrix, ms - mh @ matrix
