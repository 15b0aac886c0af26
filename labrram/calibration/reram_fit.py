"""Fit a :class:`~labrram.devices.ReRAMModel` to characterization data (scikit-learn style).

``ReRAMFit().fit(data)`` works on plain arrays (a :class:`ReRAMData`) and leaves the fitted
model in ``model_``, every parameter with a 95 % bootstrap interval (resampling devices) in
``estimates_`` and goodness-of-fit figures in ``gof_``. It never sees the simulator's truth.

Estimators
----------
* transistor: ``sqrt(I_sat) = sqrt(k) (V_WL - V_th)``, a line through the per-level medians;
* median law: ``ln mu_l = ln a + b ln(I_cc,l / 100 uA)`` over the per-level medians;
* cycle-to-cycle spread: the pooled within-device standard deviation across cycles at each
  level, then ``ln sigma_l = ln c + d ln(mu_l / 100 uS)``;
* device-to-device spread: per level, ``(var of device means - sigma_l^2 / n_cycles) / mu_l^2``,
  averaged over levels;
* HRS: log-normal (median, sigma of ln G) of every post-RESET read;
* read noise: the RMS relative standard deviation of repeated reads;
* relaxation: ``G(t) = G_0 + (m + s z) ln(1 + t / tau)`` with tau = 1 s: one line per device,
  ``m`` the mean slope, ``s`` the spread of the slopes after removing the read noise that each
  device's residuals measure;
* stuck devices: post-RESET median above 30 uS (stuck at LRS) or top-level SET median below
  10 uS (stuck at HRS); they are excluded from every other estimate.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from scipy import stats

from ..devices.reram import G_REF, I_REF, AccessTransistor, ReRAMModel
from .estimates import Estimate, bootstrap, linear_fit
from .reram_routine import ReRAMData

STUCK_LRS_THRESHOLD = 30e-6
STUCK_HRS_THRESHOLD = 10e-6
RELAX_TAU = 1.0


def _transistor(gates: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    """(k, v_th, R^2) from saturation currents (level, cell)."""
    med = np.median(current, axis=1)
    slope, intercept, r2 = linear_fit(gates, np.sqrt(np.maximum(med, 0.0)))
    if slope <= 0:
        raise ValueError("transistor current does not grow with the gate voltage")
    return slope**2, -intercept / slope, r2


def _laws(g_set: np.ndarray, icc: np.ndarray, read_rel: float) -> dict[str, float]:
    """Median, spread and device-to-device laws from g_set (cycle, level, device).

    Every read carries read noise of relative size ``read_rel``; its variance is removed from
    the within-device (cycle-to-cycle) variance.
    """
    n_cycles = g_set.shape[0]
    med = np.median(g_set, axis=(0, 2))
    b, ln_a, r2_med = linear_fit(np.log(icc / I_REF), np.log(med))
    pooled = np.mean(np.var(g_set, axis=0, ddof=1), axis=1)
    read_var = np.mean((read_rel * g_set) ** 2, axis=(0, 2))
    if np.any(pooled <= read_var):
        raise ValueError("cycle-to-cycle spread not resolved above the read noise")
    within = np.sqrt(pooled - read_var)  # pooled, per level
    d, ln_c, r2_sig = linear_fit(np.log(med / G_REF), np.log(within))
    dev_means = np.mean(g_set, axis=0)  # (level, device)
    between = np.var(dev_means, axis=1, ddof=1) - within**2 / n_cycles
    d2d = float(np.sqrt(max(np.mean(np.maximum(between, 0.0) / med**2), 0.0)))
    return {"a": float(np.exp(ln_a)), "b": b, "c": float(np.exp(ln_c)), "d": d, "d2d_rel": d2d, "r2_median": r2_med, "r2_sigma": r2_sig}


class ReRAMFit:
    """Fit a ReRAM device model to :class:`ReRAMData`.

    Parameters
    ----------
    n_boot : int
        Bootstrap resamples of the devices for the confidence intervals.
    seed : int
        Seed of the resampling.
    """

    def __init__(self, n_boot: int = 200, seed: int = 0) -> None:
        self.n_boot = n_boot
        self.seed = seed

    def fit(self, data: ReRAMData) -> "ReRAMFit":
        g_set, g_reset = np.asarray(data.g_set, float), np.asarray(data.g_reset, float)
        if g_set.ndim != 3 or g_set.shape != g_reset.shape:
            raise ValueError("g_set and g_reset must both be (cycle, level, device) arrays")
        if not (np.all(np.isfinite(g_set)) and np.all(np.isfinite(g_reset))):
            raise ValueError("characterization data contain NaN or inf")
        gates = np.asarray(data.gates, float)
        if gates.size != g_set.shape[1]:
            raise ValueError(f"{gates.size} gate levels but g_set has {g_set.shape[1]}")

        # stuck devices
        stuck_lrs = np.median(g_reset, axis=(0, 1)) > STUCK_LRS_THRESHOLD
        stuck_hrs = (np.median(g_set[:, -1, :], axis=0) < STUCK_HRS_THRESHOLD) & ~stuck_lrs
        good = ~(stuck_lrs | stuck_hrs)
        if good.sum() < 4:
            raise ValueError("fewer than 4 working devices: nothing to fit")
        gs, gr = g_set[:, :, good], g_reset[:, :, good]
        n_dev = int(good.sum())

        k, v_th, r2_tr = _transistor(gates, np.asarray(data.transistor_current, float))
        icc = k * (gates - v_th) ** 2
        if np.any(icc <= 0):
            raise ValueError("fitted transistor gives no current at some gate levels")
        rep = np.asarray(data.read_repeats, float)[:, good]
        read_rel = float(np.sqrt(np.mean((np.std(rep, axis=0, ddof=1) / np.mean(rep, axis=0)) ** 2)))
        laws = _laws(gs, icc, read_rel)

        hrs_log = np.log(gr.ravel())
        hrs_median, hrs_sigma = float(np.exp(np.median(hrs_log))), float(np.std(hrs_log, ddof=1))

        m, s = self._relaxation(data, good)

        # 95 % intervals: resample devices (and, for the transistor, its cells)
        def resampled(idx: np.ndarray) -> dict[str, float]:
            r = rep[:, idx]
            rel = float(np.sqrt(np.mean((np.std(r, axis=0, ddof=1) / np.mean(r, axis=0)) ** 2)))
            out = _laws(gs[:, :, idx], icc, rel)
            hl = np.log(gr[:, :, idx].ravel())
            out["hrs_median"], out["hrs_sigma_log"] = float(np.exp(np.median(hl))), float(np.std(hl, ddof=1))
            out["read_noise_rel"] = rel
            return out

        ci = bootstrap(resampled, n_dev, self.n_boot, self.seed)
        tcur = np.asarray(data.transistor_current, float)
        ci_tr = bootstrap(lambda idx: dict(zip(("k", "v_th"), _transistor(gates, tcur[:, idx])[:2])), tcur.shape[1], self.n_boot, self.seed + 1)
        ci.update(ci_tr)

        units = {"a": "S", "b": "1", "c": "S", "d": "1", "d2d_rel": "1", "hrs_median": "S", "hrs_sigma_log": "1", "read_noise_rel": "1", "k": "A/V^2", "v_th": "V"}
        values = {**{key: laws[key] for key in ("a", "b", "c", "d", "d2d_rel")}, "hrs_median": hrs_median, "hrs_sigma_log": hrs_sigma, "read_noise_rel": read_rel, "k": k, "v_th": v_th}
        self.estimates_ = {name: Estimate(float(values[name]), *ci[name], unit=units[name]) for name in values}
        self.estimates_["relax_mean"] = Estimate(m[0], m[1], m[2], "S")
        self.estimates_["relax_sigma"] = Estimate(s[0], s[1], s[2], "S")
        n_total = good.size
        self.estimates_["p_stuck_lrs"] = _proportion(int(stuck_lrs.sum()), n_total)
        self.estimates_["p_stuck_hrs"] = _proportion(int(stuck_hrs.sum()), n_total)

        self.model_ = replace(
            ReRAMModel(),
            transistor=AccessTransistor(v_th=v_th, k=k),
            **{name: self.estimates_[name].value for name in ("a", "b", "c", "d", "d2d_rel", "hrs_median", "hrs_sigma_log", "read_noise_rel", "relax_mean", "relax_sigma", "p_stuck_lrs", "p_stuck_hrs")},
        )
        self.gof_ = self._goodness(gs, icc, laws, r2_tr)
        self.n_devices_ = n_dev
        self.compliance_currents_ = icc
        return self

    # --- pieces ------------------------------------------------------------------------
    @staticmethod
    def _relaxation(data: ReRAMData, good: np.ndarray) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Relaxation law from reads after a fresh SET.

        Each device's drift is a line in ``L = ln(1 + t / tau)``: ``G(t) = alpha_d + beta_d L``
        (the intercept absorbs the read noise of the reference read). The mean of ``beta_d``
        estimates ``m``; their variance is ``s^2`` plus the read noise ``resid_var_d / Sxx``,
        which each device's own residuals measure and which is subtracted.
        """
        g = np.asarray(data.relax_g, float)[:, good]
        t = np.asarray(data.relax_times, float)
        if t.size < 3:
            raise ValueError("relaxation needs reads at 3 or more delays")
        L = np.log1p(t / RELAX_TAU)
        Lc = L - L.mean()
        sxx = float(np.sum(Lc**2))
        beta = Lc @ (g - g.mean(axis=0)) / sxx
        resid = g - g.mean(axis=0) - np.outer(Lc, beta)
        resid_var = np.sum(resid**2, axis=0) / (t.size - 2)
        n = beta.size
        m = float(np.mean(beta))
        se_m = float(np.std(beta, ddof=1) / np.sqrt(n))
        s2 = float(np.var(beta, ddof=1) - np.mean(resid_var) / sxx)
        s_val = float(np.sqrt(max(s2, 0.0)))
        # delta method on s^2: var(sample variance) ~ 2 var^2 / (n - 1), plus the noise term's own spread
        se_s2 = np.sqrt(2.0 / (n - 1)) * np.var(beta, ddof=1) + np.std(resid_var, ddof=1) / np.sqrt(n) / sxx
        lo = float(np.sqrt(max(s2 - 1.96 * se_s2, 0.0)))
        hi = float(np.sqrt(max(s2 + 1.96 * se_s2, 0.0)))
        return (m, m - 1.96 * se_m, m + 1.96 * se_m), (s_val, lo, hi)

    @staticmethod
    def _goodness(gs: np.ndarray, icc: np.ndarray, laws: dict[str, float], r2_tr: float) -> dict[str, Any]:
        """R^2 of the three law fits, and a per-level KS test of normality of the SET
        conductance of each device around its own mean (cycle-to-cycle residuals)."""
        ks = []
        for lv in range(gs.shape[1]):
            resid = gs[:, lv, :] - gs[:, lv, :].mean(axis=0, keepdims=True)
            z = (resid / resid.std(ddof=1)).ravel()
            ks.append(float(stats.kstest(z, "norm").pvalue))
        return {
            "r2_transistor": r2_tr,
            "r2_median_law": laws["r2_median"],
            "r2_spread_law": laws["r2_sigma"],
            "ks_normal_pvalue_per_level": ks,
        }


def _proportion(k: int, n: int) -> Estimate:
    """Wilson 95 % interval of a proportion."""
    p = k / n
    z = 1.96
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return Estimate(p, max(centre - half, 0.0), min(centre + half, 1.0), "1")
