"""Per-device drift curves of PCM reads, fitted where the read noise is additive.

Each device ``d`` read at times ``t_j`` after programming gives (Nandakumar's drift law and
1/f read noise, :mod:`labrram.devices.pcm`)::

    g_dj = A_d x_j^(-nu_d) (1 + Q_d e_dj),   x_j = (t_j + t0) / t0,   Cov(e_d) = C

``Q_d`` is the 1/f amplitude ``Q_s`` of the device and ``C`` the shape of the read noise's
covariance across the read times (in units of ``Q_s²``): ``C_jj = ln((t_j + t_read)/(2 t_read))``
on the diagonal, and off it either 0 (reads independent, as aihwkit's ``PCMLikeNoiseModel``
draws them) or the covariance of the device model's 1/f process
(:meth:`~labrram.devices.pcm.PCMModel.one_over_f_components`: two reads share the noise
components slower than the time between them).

The noise is additive on ``g / (A x^-nu)``, not on ``ln g``: the logarithm of a read with 20 %
relative noise is biased by ``-Q² C_jj / 2`` and its variance inflated by ``~2.5 Q⁴ C_jj²``,
which biased ``Q_s`` high by 15 % at 2 µS. Here the curve is fitted by generalized least squares
on the relative residual ``r_j = g_j / f_j - 1`` (Gauss–Newton, weights fixed at the current
curve): its estimating equation ``Xᵀ C⁻¹ r = 0`` has expectation zero at the true curve. Then

* ``Q_d² = rᵀ C⁻¹ r / (n_t - 2)`` is unbiased for ``Q_d²``;
* the noise part of the fitted ``ln A_d`` and ``nu_d`` has covariance ``Q_d² (Xᵀ C⁻¹ X)⁻¹``,
  which the level statistics subtract.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..devices.pcm import PCMModel

CORRELATIONS = ("1/f", "independent")


def read_noise_covariance(model: PCMModel, times: np.ndarray, correlation: str = "1/f", n_avg: int = 1) -> np.ndarray:
    """Covariance of the relative read noise at ``times`` (s after programming), in units of ``Q_s²``.

    Parameters
    ----------
    model : PCMModel
        Supplies ``t_read`` and the 1/f process (its ``one_over_f_components``).
    times : ndarray
        Read times after programming, s (increasing).
    correlation : {"1/f", "independent"}
        ``"1/f"``: reads share the noise components slower than the time between them (the
        device model's process, what a real 1/f source does); ``"independent"``: every read
        draws its noise afresh (aihwkit's ``PCMLikeNoiseModel``).
    n_avg : int
        Back-to-back reads averaged into each value. Only independent reads average down
        (variance / ``n_avg``); under 1/f noise the back-to-back reads share all but their
        fastest components, by an amount that depends on their spacing, which the data do not
        record: refused.

    Raises
    ------
    ValueError
        On an unknown ``correlation``, or ``n_avg > 1`` with ``"1/f"``.
    """
    t = np.asarray(times, dtype=float)
    if correlation not in CORRELATIONS:
        raise ValueError(f"read-noise correlation must be one of {CORRELATIONS}, got {correlation!r}")
    if n_avg < 1:
        raise ValueError(f"reads averaged per value must be >= 1, got {n_avg}")
    if correlation == "independent":
        return np.diag(model.noise_log_term(t)) / n_avg
    if n_avg > 1:
        raise ValueError(
            f"each drift read averages {n_avg} back-to-back reads (reads_per_time): under correlated 1/f noise "
            "their variance depends on their spacing, which the data do not record; measure with reads_per_time=1 "
            "or fit with read-noise correlation 'independent' if the reads are independent"
        )
    tau, w = model.one_over_f_components(t_max=max(1e10, 1e3 * float(t.max())))
    s = np.minimum.outer(t, t)[..., None]
    d = np.abs(np.subtract.outer(t, t))[..., None]
    return np.sum(w * np.exp(-d / tau) * (1.0 - np.exp(-2.0 * s / tau)), axis=-1)


@dataclass(frozen=True)
class DriftCurves:
    """Per-device drift-curve fits (arrays over devices) and the noise projections they share.

    Attributes
    ----------
    g_prog : ndarray
        Fitted conductance at the end of programming ``A_d``, S.
    nu : ndarray
        Fitted drift exponent ``nu_d``.
    q2 : ndarray
        Unbiased estimate of the device's ``Q_s²`` from its residuals.
    var_log_g_prog, var_nu : float
        Noise variance of ``ln A_d`` and of ``nu_d`` per unit ``Q_s²`` (``(Xᵀ C⁻¹ X)⁻¹`` diagonal).
    """

    g_prog: np.ndarray
    nu: np.ndarray
    q2: np.ndarray
    var_log_g_prog: float
    var_nu: float


def fit_drift_curves(times: np.ndarray, g: np.ndarray, t0: float, cov: np.ndarray, iterations: int = 8) -> DriftCurves:
    """Fit ``g = A x^-nu (1 + noise)`` to every device (columns of ``g``, rows = ``times``).

    Parameters
    ----------
    times : ndarray
        Read times after programming, s.
    g : ndarray
        Reads, shape (time, device), S; all > 0.
    t0 : float
        Drift reference time, s.
    cov : ndarray
        Read-noise covariance shape (:func:`read_noise_covariance`).
    iterations : int
        Gauss–Newton steps (the problem is nearly linear: 4 reach 1e-9).
    """
    t = np.asarray(times, dtype=float)
    g = np.asarray(g, dtype=float)
    if g.ndim != 2 or g.shape[0] != t.size:
        raise ValueError(f"reads must be (time, device) with {t.size} times, got shape {g.shape}")
    if t.size < 3:
        raise ValueError("a drift curve needs reads at 3 or more times")
    if np.any(g <= 0) or not np.all(np.isfinite(g)):
        raise ValueError("drift reads must be finite and > 0 S")
    lx = np.log((t + t0) / t0)
    X = np.column_stack([np.ones_like(lx), -lx])
    cinv = np.linalg.inv(cov)
    info = X.T @ cinv @ X
    v = np.linalg.inv(info)
    proj = v @ X.T @ cinv  # (2, time): GLS step from relative residuals
    # start from a flat curve at the device's median read (a log-domain line would be thrown
    # far off by one read near zero); the problem is nearly linear from there
    theta = np.vstack([np.log(np.median(g, axis=0)), np.zeros(g.shape[1])])  # (2, device): ln A, nu
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        try:
            for _ in range(iterations):
                r = g / np.exp(theta[0] - np.outer(lx, theta[1])) - 1.0
                theta = theta + proj @ r
            r = g / np.exp(theta[0] - np.outer(lx, theta[1])) - 1.0
        except FloatingPointError:
            raise ValueError("a drift curve did not converge (reads far off any power law)") from None
    q2 = np.einsum("id,ij,jd->d", r, cinv, r) / (t.size - 2)
    return DriftCurves(np.exp(theta[0]), theta[1], q2, float(v[0, 0]), float(v[1, 1]))


def residual_bias(times: np.ndarray, t0: float, cov: np.ndarray, q_ref: float = 0.05, n_sim: int = 20000, seed: int = 0) -> float:
    """``kappa`` of ``E[Q_d² estimate] = Q² (1 + kappa Q²)``: the second-order bias of the residual
    variance of a curve fitted to reads with relative noise ``Q`` (the fitted curve absorbs a
    little more than a linear fit's two degrees of freedom when ``Q sqrt(C_jj)`` is ~20 %).

    Measured by simulating ``n_sim`` devices with noise ``q_ref`` and covariance ``cov`` at the
    same times (deterministic: fixed ``seed``); a property of the estimator, not of the data.
    """
    t = np.asarray(times, dtype=float)
    rng = np.random.default_rng(seed)
    lx = np.log((t + t0) / t0)
    e = np.linalg.cholesky(cov) @ rng.standard_normal((t.size, n_sim))
    g = np.exp(-0.06 * lx)[:, None] * (1.0 + q_ref * e)
    g = g[:, np.all(g > 0, axis=0)]
    q2 = fit_drift_curves(t, g, t0, cov).q2
    return float((q2.mean() / q_ref**2 - 1.0) / q_ref**2)
