"""Fit a :class:`~labrram.devices.PCMModel` to PCM characterization data (scikit-learn style).

Estimators
----------
1. **Per device** (:mod:`.pcm_drift`): the drift curve ``g = A x^-nu (1 + noise)``,
   ``x = (t + t0)/t0``, by generalized least squares on the relative residual (the domain where
   the 1/f read noise is additive, with its covariance across the read times), giving ``A_d``
   (the conductance at the end of programming), ``nu_d`` and an unbiased ``Q_d²``.
2. **Per level** (devices programmed to one target):

   * ``nu_mean`` = mean of ``nu_d``;
   * ``nu_std`` = ``sqrt(var nu_d - mean Q_d² · v_nu)``, the read-noise part of each slope
     (``v_nu`` = its GLS variance per unit ``Q_s²``) removed;
   * ``Q_s²`` of the devices = mean of ``Q_d²``, less its second-order bias ``kappa Q_s⁴``
     (:func:`~.pcm_drift.residual_bias`, which also inflates ``var A_d`` and ``var nu_d`` alike,
     so the raw mean is what their noise corrections use); reported at the target conductance by the
     law's exponent ``e``: ``Q_s(g_T)² = mean Q_d² · exp(2e (x̄ - ln ĝ_T) - 2e² s²)``, with
     ``x̄`` and ``s²`` the mean and (noise-free) variance of ``ln ĝ`` over the level's devices
     (``E[ĝ^-2e]`` of a log-normal spread);
   * the spread the programming achieved, ``sqrt(var A_d - mean(A_d² Q_d²) · v_A)``: the
     characterization ladder's fixed verify window sets it, so it describes that protocol
     (``protocol_estimates_``, ``ladder_spread@<level>``), not the device's ``sigma_prog``.
3. **Laws** across levels, each against the level's measured ``x̄`` (not the target):
   ``nu_mean`` and ``nu_std`` = ``clip(slope ln ĝ + offset, min, max)`` (cap fixed at the prior's)
   by inverse-variance weighted least squares; ``Q_s = q_s_coeff / ĝ^q_s_exp`` from
   ``ln mean Q_d² = 2 ln q_s_coeff - 2 q_s_exp x̄ + 2 q_s_exp² s²`` (weights: devices per level).

The device's programming noise ``sigma_prog`` (``prog_c0..c2``) is not measured: what a
write-verify achieves depends on its window, and the characterization ladder's window is not
the device's. The model keeps the prior's values for it.

Intervals: 95 % percentile bootstrap over devices, resampled within each level (the design fixes
how many devices each level has); every statistic, law fit included, is recomputed per resample.
Unconverged devices (stuck ones) and devices with a zero read are excluded.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from ..devices.pcm import PCMModel
from .estimates import Estimate, bootstrap, linear_fit
from .pcm_drift import DriftCurves, fit_drift_curves, read_noise_covariance, residual_bias
from .pcm_routine import PCMData

LAW_UNITS = {
    "nu_mu_slope": "1", "nu_mu_offset": "1", "nu_mu_min": "1",
    "nu_sigma_slope": "1", "nu_sigma_offset": "1", "nu_sigma_min": "1",
    "q_s_coeff": "1", "q_s_exp": "1",
}  # fmt: skip


def level_label(target: float) -> str:
    """``"2uS"`` for a 2 µS level: the suffix of per-level estimate names."""
    return f"{target * 1e6:.3g}uS"


def _clipped_log_law(x: np.ndarray, y: np.ndarray, w: np.ndarray, hi: float, x0: tuple[float, float, float]) -> tuple[float, float, float]:
    """Weighted least-squares (slope, offset, floor) of ``clip(slope x + offset, floor, hi)``."""

    def resid(p):
        return np.sqrt(w) * (np.clip(p[0] * x + p[1], p[2], hi) - y)

    sol = least_squares(resid, x0=np.asarray(x0, float), method="trf")
    return float(sol.x[0]), float(sol.x[1]), float(sol.x[2])


class PCMFit:
    """Fit the PCM statistics (drift-exponent laws, 1/f read noise) and the ladder's spread.

    Parameters
    ----------
    prior : PCMModel, optional
        Fixed constants (``g_max``, ``t0``, ``t_read``, clip caps) and the parameters that
        are not fitted; the Nandakumar 2019 preset by default.
    n_boot : int
        Bootstrap resamples for the 95 % intervals.
    seed : int
        Seed of the resampling.
    read_noise_correlation : {"1/f", "independent"}
        How the read noise of one device is correlated across the drift reads
        (:func:`~labrram.calibration.pcm_drift.read_noise_covariance`): ``"1/f"`` for a real
        1/f source (and the simulated chip), ``"independent"`` for data drawn like aihwkit's
        ``PCMLikeNoiseModel``.
    """

    def __init__(self, prior: PCMModel | None = None, n_boot: int = 200, seed: int = 0, read_noise_correlation: str = "1/f") -> None:
        self.prior = prior or PCMModel()
        self.n_boot = n_boot
        self.seed = seed
        self.read_noise_correlation = read_noise_correlation

    # --- per level ------------------------------------------------------------------------
    def _levels(self, c: DriftCurves, level: np.ndarray, n_levels: int, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if idx is not None:
            c = DriftCurves(c.g_prog[idx], c.nu[idx], c.q2[idx], c.var_log_g_prog, c.var_nu)
            level = level[idx]
        keys = ("n", "x", "s2", "nu_mean", "nu_mean_var", "nu_std", "nu_std_var", "q2", "ladder_spread", "g_mean")
        out = {k: np.full(n_levels, np.nan) for k in keys}
        lx = np.log(c.g_prog / self.prior.g_max)
        for lv in range(n_levels):
            sel = level == lv
            n = int(sel.sum())
            if n < 3:
                continue
            q2 = float(c.q2[sel].mean())  # carries the second-order inflation that var A_d and var nu_d share
            nu_var = float(c.nu[sel].var(ddof=1))
            nu_s2 = max(nu_var - q2 * c.var_nu, 0.0)
            a = c.g_prog[sel]
            out["n"][lv] = n
            out["x"][lv] = lx[sel].mean()
            out["s2"][lv] = max(lx[sel].var(ddof=1) - q2 * c.var_log_g_prog, 0.0)
            out["nu_mean"][lv] = c.nu[sel].mean()
            out["nu_mean_var"][lv] = nu_var / n
            out["nu_std"][lv] = np.sqrt(nu_s2)
            # variance of a sample variance, 2 var² / (n - 1), carried to the standard deviation
            out["nu_std_var"][lv] = 2 * nu_var**2 / (n - 1) / (4 * max(nu_s2, 1e-6))
            out["q2"][lv] = q2 / (1.0 + self.kappa_ * q2)
            out["ladder_spread"][lv] = np.sqrt(max(a.var(ddof=1) - np.mean(a**2 * c.q2[sel]) * c.var_log_g_prog, 0.0))
            out["g_mean"][lv] = float(np.exp(out["x"][lv]) * self.prior.g_max)
        return out

    # --- laws -----------------------------------------------------------------------------
    def _q_law(self, lv: dict[str, np.ndarray]) -> tuple[float, float]:
        """(q_s_coeff, q_s_exp) from the levels below the cap (log-normal spread of ĝ corrected)."""
        m = self.prior
        ok = np.isfinite(lv["q2"]) & (np.sqrt(lv["q2"]) < 0.95 * m.q_s_max)
        if ok.sum() < 2:  # undetermined: too few levels below the cap
            return float("nan"), float("nan")
        e = m.q_s_exp
        for _ in range(6):
            slope, intercept, _ = linear_fit(lv["x"][ok], np.log(lv["q2"][ok]) - 2 * e**2 * lv["s2"][ok], lv["n"][ok])
            e = -slope / 2
        return float(np.exp(intercept / 2)), float(e)

    def _laws(self, lv: dict[str, np.ndarray]) -> dict[str, float]:
        m = self.prior
        ok = np.isfinite(lv["nu_mean"])
        if ok.sum() < 3:  # undetermined: the clipped laws have three parameters
            return {name: float("nan") for name in LAW_UNITS}
        x = lv["x"][ok]
        mu = _clipped_log_law(x, lv["nu_mean"][ok], 1 / lv["nu_mean_var"][ok], m.nu_mu_max, (m.nu_mu_slope, m.nu_mu_offset, m.nu_mu_min))
        sd = _clipped_log_law(x, lv["nu_std"][ok], 1 / lv["nu_std_var"][ok], m.nu_sigma_max, (m.nu_sigma_slope, m.nu_sigma_offset, m.nu_sigma_min))
        q_coeff, q_exp = self._q_law(lv)
        return {
            "nu_mu_slope": mu[0], "nu_mu_offset": mu[1], "nu_mu_min": mu[2],
            "nu_sigma_slope": sd[0], "nu_sigma_offset": sd[1], "nu_sigma_min": sd[2],
            "q_s_coeff": q_coeff, "q_s_exp": q_exp,
        }  # fmt: skip

    def _q_s_at_targets(self, lv: dict[str, np.ndarray], targets: np.ndarray, q_exp: float) -> np.ndarray:
        """Each level's ``Q_s`` at its target conductance (from its devices' mean ``Q_d²``)."""
        shift = 2 * q_exp * (lv["x"] - np.log(targets / self.prior.g_max)) - 2 * q_exp**2 * lv["s2"]
        return np.sqrt(lv["q2"] * np.exp(shift))

    def _statistics(self, c: DriftCurves, level: np.ndarray, targets: np.ndarray, idx: np.ndarray | None = None) -> tuple[dict[str, float], dict[str, float], dict[str, np.ndarray]]:
        """(laws, per-level and protocol values by estimate name, level arrays) of one (re)sample."""
        lv = self._levels(c, level, targets.size, idx)
        laws = self._laws(lv)
        lv["q_s"] = self._q_s_at_targets(lv, targets, laws["q_s_exp"])
        per_level = {}
        protocol = {}
        for i, t in enumerate(targets):
            name = level_label(t)
            per_level[f"nu_mean@{name}"] = float(lv["nu_mean"][i])
            protocol[f"ladder_spread@{name}"] = float(lv["ladder_spread"][i])
        return {**laws, **per_level}, protocol, lv

    # --- fit ------------------------------------------------------------------------------
    def curves(self, data: PCMData) -> tuple[DriftCurves, np.ndarray]:
        """Per-device drift curves of the usable devices, and the mask of those devices."""
        drift_g = np.asarray(data.drift_g, float)
        if drift_g.ndim != 2 or drift_g.shape[1] != np.asarray(data.rows).size:
            raise ValueError("drift_g must be (time, device)")
        if not np.all(np.isfinite(drift_g)):
            raise ValueError("characterization data contain NaN or inf")
        good = np.asarray(data.converged, bool) & np.all(drift_g > 0, axis=0)
        if good.sum() < 10:
            raise ValueError("fewer than 10 programmed devices: nothing to fit")
        n_avg = int(data.settings.get("reads_per_time", 1))
        times = np.asarray(data.drift_times, float)
        cov = read_noise_covariance(self.prior, times, self.read_noise_correlation, n_avg)
        self.kappa_ = residual_bias(times, self.prior.t0, cov, n_sim=40000, seed=self.seed)
        return fit_drift_curves(times, drift_g[:, good], self.prior.t0, cov), good

    def fit(self, data: PCMData) -> "PCMFit":
        curves, good = self.curves(data)
        level = np.asarray(data.level)[good]
        targets = np.asarray(data.targets, float)
        values, protocol, levels = self._statistics(curves, level, targets)

        def resampled(idx: np.ndarray) -> dict[str, float]:
            try:
                v, p, _ = self._statistics(curves, level, targets, idx)
            except (ValueError, FloatingPointError, ZeroDivisionError):  # a resample that leaves a law undetermined
                return {k: float("nan") for k in (*values, *protocol)}
            return {**v, **p}

        ci = bootstrap(resampled, int(good.sum()), self.n_boot, self.seed, strata=level)
        self.estimates_ = {k: Estimate(v, *ci[k], unit=LAW_UNITS.get(k, "1")) for k, v in values.items()}
        self.protocol_estimates_ = {k: Estimate(v, *ci[k], unit="S") for k, v in protocol.items()}
        # an undetermined law keeps the prior's value in the model (its estimate stays NaN)
        self.model_ = replace(self.prior, **{k: values[k] for k in LAW_UNITS if np.isfinite(values[k])})
        self.levels_ = levels
        self.curves_ = curves
        self.gof_ = self._goodness(levels)
        self.gof_["read_noise_correlation"] = self.read_noise_correlation
        self.n_devices_ = int(good.sum())
        self.converged_fraction_ = float(np.mean(data.converged))
        return self

    def _goodness(self, levels: dict[str, np.ndarray]) -> dict[str, Any]:
        m = self.model_
        ok = np.isfinite(levels["nu_mean"]) & np.isfinite(levels["q2"])
        g = levels["g_mean"][ok]
        return {
            "nu_mean_max_relative_residual": float(np.max(np.abs(m.nu_mean(g) / levels["nu_mean"][ok] - 1))),
            "nu_std_max_abs_residual": float(np.max(np.abs(m.nu_std(g) - levels["nu_std"][ok]))),
            "q_s_max_relative_residual": float(np.max(np.abs(m.q_s(g) / np.sqrt(levels["q2"][ok]) - 1))),
        }
