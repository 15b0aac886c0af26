"""Fit a :class:`~labrram.devices.PCMModel` to PCM characterization data (scikit-learn style).

Per device, the reads at the drift times give a line
``ln G(t) = ln g_prog - nu * ln((t + t0) / t0) + e(t)`` (Nandakumar's drift law, ``t0`` = 20 s):

* ``nu`` per device is the slope; per level, the slope of the level's mean conductance
  estimates the mean drift exponent (averaging G, not ln G, keeps the 1/f noise from biasing
  it) and the spread of the devices' ``nu`` (minus the read-noise part, from each device's
  residuals) its standard deviation; the clipped log laws ``clip(slope ln ĝ + offset, min, max)`` are
  fitted across levels by least squares;
* the intercept estimates ``g_prog``: its spread within a level, minus the read-noise part, is
  the programming noise; ``sigma_prog = c0 + c1 ĝ + c2 ĝ²`` is fitted across levels (at the
  model's reference ``g_max``);
* the residuals are the 1/f read noise: ``var e = Q_s² ln((t + t_read) / (2 t_read))``, so
  ``Q_s`` per level, then ``Q_s = q_s_coeff / ĝ^q_s_exp`` below the cap.

Intervals: 95 % bootstrap over devices. Unconverged devices (stuck ones) are excluded.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from ..devices.pcm import PCMModel
from .estimates import Estimate, bootstrap, linear_fit
from .pcm_routine import PCMData


def _clipped_log_law(gh: np.ndarray, y: np.ndarray, w: np.ndarray, hi: float, x0: tuple[float, float, float]) -> tuple[float, float, float]:
    """Least-squares (slope, offset, floor) of ``max(slope ln ĝ + offset, floor)`` (cap ``hi`` fixed)."""

    def resid(p):
        return np.sqrt(w) * (np.clip(p[0] * np.log(gh) + p[1], p[2], hi) - y)

    sol = least_squares(resid, x0=np.asarray(x0, float), method="trf")
    return float(sol.x[0]), float(sol.x[1]), float(sol.x[2])


class PCMFit:
    """Fit the PCM statistics (drift exponent laws, programming noise, 1/f read noise)."""

    def __init__(self, prior: PCMModel | None = None, n_boot: int = 200, seed: int = 0) -> None:
        self.prior = prior or PCMModel()
        self.n_boot = n_boot
        self.seed = seed

    def _per_device(self, data: PCMData, good: np.ndarray):
        m = self.prior
        t = np.asarray(data.drift_times, float)
        x = np.log((t + m.t0) / m.t0)
        xc = x - x.mean()
        lg = np.log(np.maximum(np.asarray(data.drift_g, float)[:, good], 1e-12))
        slope = xc @ (lg - lg.mean(axis=0)) / np.sum(xc**2)
        intercept = lg.mean(axis=0) - slope * x.mean()
        resid = lg - intercept - np.outer(x, slope)
        resid_var = np.sum(resid**2, axis=0) / (t.size - 2)
        noise_term = np.log((t + m.t_read) / (2 * m.t_read))
        return -slope, np.exp(intercept), resid_var, float(np.sum(xc**2)), x, noise_term

    def _levels(self, data: PCMData, good: np.ndarray, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        nu, g_prog, rvar, sxx, x, noise_term = self._per_device(data, good)
        n_avg = max(int(data.settings.get("reads_per_time", 1)), 1)
        level = np.asarray(data.level)[good]
        g_t = np.asarray(data.drift_g, float)[:, good]
        if idx is not None:
            nu, g_prog, rvar, level, g_t = nu[idx], g_prog[idx], rvar[idx], level[idx], g_t[:, idx]
        targets = np.asarray(data.targets, float)
        out = {k: np.full(targets.size, np.nan) for k in ("nu_mean", "nu_std", "sigma_prog", "q_s", "n")}
        for lv in range(targets.size):
            sel = level == lv
            if sel.sum() < 3:
                continue
            out["n"][lv] = sel.sum()
            # the level's mean conductance drifts with the mean exponent; averaging G (not ln G)
            # over devices keeps the read noise from biasing the slope
            # (E[x^-nu] = exp(-mu x + sigma^2 x^2 / 2) for normal nu: remove the curvature)
            out["nu_std"][lv] = np.sqrt(max(nu[sel].var(ddof=1) - rvar[sel].mean() / sxx, 0.0))
            y = np.log(g_t[:, sel].mean(axis=1)) - out["nu_std"][lv] ** 2 * x**2 / 2
            out["nu_mean"][lv] = -linear_fit(x, y)[0]
            # intercept noise of a line fit: var(e) (1/n + xbar^2 / sxx), relative (log) units
            ivar = rvar[sel].mean() * (1 / x.size + x.mean() ** 2 / sxx)
            out["sigma_prog"][lv] = targets[lv] * np.sqrt(max(np.log(g_prog[sel]).var(ddof=1) - ivar, 0.0))
            out["q_s"][lv] = np.sqrt(n_avg * rvar[sel].mean() / noise_term.mean())
        return out

    def _laws(self, levels: dict[str, np.ndarray], targets: np.ndarray) -> dict[str, float]:
        m = self.prior
        gh = targets / m.g_max
        ok = np.isfinite(levels["nu_mean"])
        w = levels["n"][ok]
        mu = _clipped_log_law(gh[ok], levels["nu_mean"][ok], w, m.nu_mu_max, (m.nu_mu_slope, m.nu_mu_offset, m.nu_mu_min))
        sd = _clipped_log_law(gh[ok], levels["nu_std"][ok], w, m.nu_sigma_max, (m.nu_sigma_slope, m.nu_sigma_offset, m.nu_sigma_min))
        scale = m.g_max / m.prog_g_ref
        coef = np.polyfit(gh[ok], levels["sigma_prog"][ok] / scale, 2, w=np.sqrt(w))
        below = ok & (levels["q_s"] < 0.95 * m.q_s_max)
        q_exp, q_ln, _ = linear_fit(np.log(gh[below]), np.log(levels["q_s"][below]))
        return {
            "nu_mu_slope": mu[0], "nu_mu_offset": mu[1], "nu_mu_min": mu[2],
            "nu_sigma_slope": sd[0], "nu_sigma_offset": sd[1], "nu_sigma_min": sd[2],
            "prog_c0": float(coef[2]), "prog_c1": float(coef[1]), "prog_c2": float(coef[0]),
            "q_s_coeff": float(np.exp(q_ln)), "q_s_exp": float(-q_exp),
        }  # fmt: skip

    def fit(self, data: PCMData) -> "PCMFit":
        drift_g = np.asarray(data.drift_g, float)
        if drift_g.ndim != 2 or drift_g.shape[1] != np.asarray(data.rows).size:
            raise ValueError("drift_g must be (time, device)")
        if not np.all(np.isfinite(drift_g)):
            raise ValueError("characterization data contain NaN or inf")
        good = np.asarray(data.converged, bool) & np.all(drift_g > 0, axis=0)
        if good.sum() < 10:
            raise ValueError("fewer than 10 programmed devices: nothing to fit")
        targets = np.asarray(data.targets, float)
        levels = self._levels(data, good)
        laws = self._laws(levels, targets)
        ci = bootstrap(lambda idx: self._laws(self._levels(data, good, idx), targets), int(good.sum()), self.n_boot, self.seed)
        units = {k: "1" for k in laws}
        units.update(prog_c0="S", prog_c1="S", prog_c2="S")
        self.estimates_ = {k: Estimate(v, *ci[k], unit=units[k]) for k, v in laws.items()}
        for lv, t in enumerate(targets):
            self.estimates_[f"nu_mean@{t * 1e6:.3g}uS"] = Estimate(float(levels["nu_mean"][lv]), *_ci_level(data, good, lv, "nu_mean", self), unit="1")
        self.model_ = replace(self.prior, **laws)
        self.levels_ = levels
        self.gof_ = self._goodness(levels, targets)
        self.n_devices_ = int(good.sum())
        self.converged_fraction_ = float(np.mean(data.converged))
        return self

    def _goodness(self, levels: dict[str, np.ndarray], targets: np.ndarray) -> dict[str, Any]:
        m = self.model_
        ok = np.isfinite(levels["nu_mean"])
        pred = m.nu_mean(targets[ok])
        return {
            "nu_mean_max_relative_residual": float(np.max(np.abs(pred / levels["nu_mean"][ok] - 1))),
            "sigma_prog_rms_residual": float(np.sqrt(np.mean((m.sigma_prog(targets[ok]) - levels["sigma_prog"][ok]) ** 2))),
        }


def _ci_level(data: PCMData, good: np.ndarray, lv: int, key: str, fit: PCMFit) -> tuple[float, float]:
    ci = bootstrap(lambda idx: {key: float(fit._levels(data, good, idx)[key][lv])}, int(good.sum()), fit.n_boot, fit.seed + 7 + lv)
    return ci[key]
