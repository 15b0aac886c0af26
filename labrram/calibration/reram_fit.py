"""Fit a :class:`~labrram.devices.ReRAMModel` to characterization data (scikit-learn style).

``ReRAMFit().fit(data)`` works on plain arrays (a :class:`ReRAMData`) and leaves the fitted
model in ``model_``, every parameter with a 95 % bootstrap interval in ``estimates_`` and
goodness-of-fit figures in ``gof_``. It never sees the simulator's truth.

Estimators
----------
* transistor: ``sqrt(I_sat) = sqrt(k) (V_WL - V_th)``, a line through the per-level medians;
* relaxation: ``G(t) = G_0 + (m + s z) ln(1 + t / tau)`` with tau = 1 s: one line per device,
  ``m`` the mean slope, ``s`` the spread of the slopes after removing the read noise that each
  device's residuals measure;
* median law: the per-level median of the SET reads, less the mean relaxation of the
  ``read_delay`` between the SET and its read (``m ln(1 + read_delay / tau)``), then
  ``ln mu_l = ln a + b ln(I_cc,l / 100 uA)``;
* cycle-to-cycle spread: the pooled within-device variance across cycles at each level, less
  the read noise and the relaxation spread at the read delay, then
  ``ln sigma_l = ln c + d ln(mu_l / 100 uS)``;
* device-to-device spread: per level, ``(var of device means - pooled / n_cycles) / mu_l^2``
  (the pooled within-device variance, read noise included, is what a device mean of
  ``n_cycles`` reads carries), combined over levels with inverse-variance weights: the
  device factors are common to every level, only the cycle noise of the device means differs,
  and at the lowest gate (23 % cycle-to-cycle spread) it is nine times that of the top levels.
  An unweighted mean let the lowest levels' noise dominate; the weights come from the
  within-device variances (measured to ~3 %), never from the levels' own spread estimates;
* HRS: log-normal (median, sigma of ln G) of every post-RESET read;
* read noise: the RMS relative standard deviation of repeated reads;
* stuck devices: post-RESET median above 30 uS (stuck at LRS), or a top-level SET median below
  10 uS or below twice the post-RESET median (stuck at HRS, :func:`classify_stuck`); they are
  excluded from every other estimate. The stuck fractions count them among the characterized
  devices and, when the routine surveyed it (``survey_*``), the rest of the array (one RESET
  and one top-gate SET per cell, the same criteria); Jeffreys intervals.

SET distribution family: an Anderson–Darling test per gate level of the cycle-to-cycle
residuals against the normal (:mod:`labrram.calibration.set_gof`, goodness of fit keys
``ad_*`` and ``gaussian_rejected``), and the measured quantiles of the SET conductance per level
(``model_.set_table``, the empirical model). ``family`` chooses which one the fitted model's
``set_family`` names, that is which one programming uses: ``"auto"`` (default) takes the
empirical model when the test rejects the Gaussian, and logs a warning.

Intervals: 95 % bootstrap (:func:`~labrram.calibration.estimates.bootstrap`) that resamples
the devices and, independently, the cells the transistor was measured on; every estimate is
recomputed per resample, so the transistor's uncertainty reaches the laws written in compliance
current: percentile intervals (BCa intervals of the three spreads covered no better over 200
simulated chips: at 200 resamples their moved endpoints are noisier). Stuck fractions: Jeffreys
intervals.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
from scipy import stats

from ..devices.reram import G_REF, I_REF, AccessTransistor, ReRAMModel
from .estimates import Estimate, bootstrap, linear_fit
from .reram_routine import ReRAMData
from .set_gof import ALPHA, gaussian_test, quantile_table

log = logging.getLogger("labrram.calibration")
#: what ``ReRAMFit(family=...)`` accepts
FIT_FAMILIES = ("auto", "gaussian", "empirical")

STUCK_LRS_THRESHOLD = 30e-6
STUCK_HRS_THRESHOLD = 10e-6
#: a device whose conductance a SET at the top gate does not at least double (from its
#: post-RESET value) is stuck at HRS, whatever its HRS (a stuck device with a high HRS above
#: ``STUCK_HRS_THRESHOLD`` escaped the absolute threshold and inflated the device spread)
STUCK_SET_RISE = 2.0
RELAX_TAU = 1.0
UNITS = {
    "a": "S", "b": "1", "c": "S", "d": "1", "d2d_rel": "1", "hrs_median": "S", "hrs_sigma_log": "1", "read_noise_rel": "1",
    "k": "A/V^2", "v_th": "V", "relax_mean": "S", "relax_sigma": "S",
}  # fmt: skip


def _transistor(gates: np.ndarray, current: np.ndarray) -> tuple[float, float, float]:
    """(k, v_th, R^2) from saturation currents (level, cell)."""
    med = np.median(current, axis=1)
    slope, intercept, r2 = linear_fit(gates, np.sqrt(np.maximum(med, 0.0)))
    if slope <= 0:
        raise ValueError("transistor current does not grow with the gate voltage")
    return slope**2, -intercept / slope, r2


def _read_noise(rep: np.ndarray) -> float:
    """RMS over devices of the relative standard deviation of repeated reads."""
    return float(np.sqrt(np.mean((np.std(rep, axis=0, ddof=1) / np.mean(rep, axis=0)) ** 2)))


def _relaxation(g: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """(m, s) of the relaxation from reads (delay, device) after a fresh SET.

    Each device's drift is a line in ``L = ln(1 + t / tau)``: ``G(t) = alpha_d + beta_d L``
    (the intercept absorbs the read noise of the reference read). The mean of ``beta_d``
    estimates ``m``; their variance is ``s^2`` plus the read noise ``resid_var_d / Sxx``,
    which each device's own residuals measure and which is subtracted.
    """
    if t.size < 3:
        raise ValueError("relaxation needs reads at 3 or more delays")
    L = np.log1p(t / RELAX_TAU)
    Lc = L - L.mean()
    sxx = float(np.sum(Lc**2))
    beta = Lc @ (g - g.mean(axis=0)) / sxx
    resid = g - g.mean(axis=0) - np.outer(Lc, beta)
    resid_var = np.sum(resid**2, axis=0) / (t.size - 2)
    s2 = float(np.var(beta, ddof=1) - np.mean(resid_var) / sxx)
    return float(np.mean(beta)), float(np.sqrt(max(s2, 0.0)))


def _laws(g_set: np.ndarray, icc: np.ndarray, read_rel: float, shift: float, shift_var: float) -> dict[str, float]:
    """Median, spread and device-to-device laws from g_set (cycle, level, device).

    Every read carries read noise of relative size ``read_rel`` and the relaxation of the read
    delay: a mean ``shift`` and a variance ``shift_var`` (S, S²), both removed.
    """
    n_cycles = g_set.shape[0]
    med = np.median(g_set, axis=(0, 2)) - shift
    if np.any(med <= 0):
        raise ValueError("median SET conductance not above the relaxation shift")
    b, ln_a, r2_med = linear_fit(np.log(icc / I_REF), np.log(med))
    pooled = np.mean(np.var(g_set, axis=0, ddof=1), axis=1)
    read_var = np.mean((read_rel * g_set) ** 2, axis=(0, 2))
    if np.any(pooled <= read_var + shift_var):
        raise ValueError("cycle-to-cycle spread not resolved above the read noise")
    within = np.sqrt(pooled - read_var - shift_var)  # pooled, per level
    d, ln_c, r2_sig = linear_fit(np.log(med / G_REF), np.log(within))
    dev_means = np.mean(g_set, axis=0)  # (level, device)
    between = np.var(dev_means, axis=1, ddof=1) - pooled / n_cycles
    d2d = _device_spread(between / med**2, pooled / n_cycles / med**2, n_cycles, g_set.shape[2])
    return {
        "a": float(np.exp(ln_a)), "b": b, "c": float(np.exp(ln_c)), "d": d, "d2d_rel": d2d, "r2_median": r2_med, "r2_sigma": r2_sig,
        "levels": {"median": med, "sigma_c2c": within, "d2d_rel": np.sqrt(np.maximum(between, 0.0)) / med},
    }  # fmt: skip


def _device_spread(between: np.ndarray, noise: np.ndarray, n_cycles: int, n_devices: int) -> float:
    """Relative device-to-device spread from the levels' between-device variances ``between``
    (relative, noise removed) and the relative noise variance of one device mean ``noise``.

    Each level's estimate is the device factors' sample variance (the same at every level) plus
    a noise part of variance ``(4 s² noise + 2 noise² n_c / (n_c - 1)) / n_devices`` (the
    cross term of factor and noise, the noise's own sample variance and that of the pooled
    estimate removed); the levels are averaged with the inverse of it, ``s²`` refined from the
    weighted mean.
    """
    s2 = max(float(np.mean(between)), 0.0)
    for _ in range(3):
        var = (4 * s2 * noise + 2 * noise**2 * n_cycles / (n_cycles - 1)) / n_devices
        w = 1.0 / np.maximum(var, 1e-300)
        s2 = max(float(np.sum(w * between) / np.sum(w)), 0.0)
    return float(np.sqrt(s2))


class ReRAMFit:
    """Fit a ReRAM device model to :class:`ReRAMData`.

    Parameters
    ----------
    n_boot : int
        Bootstrap resamples of the devices for the confidence intervals.
    seed : int
        Seed of the resampling.
    family : str
        SET distribution the fitted model programs with: ``"gaussian"`` (the laws),
        ``"empirical"`` (the measured quantiles), or ``"auto"``: the empirical one when the
        Gaussian test rejects (module docstring).
    alpha : float
        False-rejection rate of the Gaussian test over all levels.

    Attributes
    ----------
    family_ : str
        The family chosen (``model_.set_family``).
    gaussian_rejected_ : bool
        Whether the test rejected the Gaussian SET distribution.
    """

    def __init__(self, n_boot: int = 200, seed: int = 0, family: str = "auto", alpha: float = ALPHA) -> None:
        if family not in FIT_FAMILIES:
            raise ValueError(f"family must be one of {list(FIT_FAMILIES)}, got {family!r}")
        self.n_boot = n_boot
        self.seed = seed
        self.family = family
        self.alpha = alpha

    def fit(self, data: ReRAMData) -> "ReRAMFit":
        g_set, g_reset = np.asarray(data.g_set, float), np.asarray(data.g_reset, float)
        if g_set.ndim != 3 or g_set.shape != g_reset.shape:
            raise ValueError("g_set and g_reset must both be (cycle, level, device) arrays")
        if not (np.all(np.isfinite(g_set)) and np.all(np.isfinite(g_reset))):
            raise ValueError("characterization data contain NaN or inf")
        gates = np.asarray(data.gates, float)
        if gates.size != g_set.shape[1]:
            raise ValueError(f"{gates.size} gate levels but g_set has {g_set.shape[1]}")
        read_delay = float(data.settings.get("read_delay", 6.0))
        if not (np.isfinite(read_delay) and read_delay >= 0):
            raise ValueError(f"read_delay must be a time >= 0 s, got {read_delay!r}")

        # stuck devices
        stuck_lrs, stuck_hrs = classify_stuck(np.median(g_reset, axis=(0, 1)), np.median(g_set[:, -1, :], axis=0))
        good = ~(stuck_lrs | stuck_hrs)
        if good.sum() < 4:
            raise ValueError("fewer than 4 working devices: nothing to fit")
        arrays = {
            "gs": g_set[:, :, good], "gr": g_reset[:, :, good], "rep": np.asarray(data.read_repeats, float)[:, good],
            "relax": np.asarray(data.relax_g, float)[:, good], "tcur": np.asarray(data.transistor_current, float),
        }  # fmt: skip
        relax_t = np.asarray(data.relax_times, float)
        n_dev, n_cells = int(good.sum()), arrays["tcur"].shape[1]

        def estimate(idx: np.ndarray | None = None, cells: np.ndarray | None = None) -> dict[str, float]:
            """Every estimate from the devices ``idx`` and the transistor cells ``cells`` (all by default)."""
            a = arrays if idx is None else {k: (v[..., idx] if k != "tcur" else v) for k, v in arrays.items()}
            tcur = a["tcur"] if cells is None else a["tcur"][:, cells]
            k, v_th, r2_tr = _transistor(gates, tcur)
            icc = k * (gates - v_th) ** 2
            if np.any(icc <= 0):
                raise ValueError("fitted transistor gives no current at some gate levels")
            m, s = _relaxation(a["relax"], relax_t)
            lrel = float(np.log1p(read_delay / RELAX_TAU))
            read_rel = _read_noise(a["rep"])
            out = _laws(a["gs"], icc, read_rel, m * lrel, (s * lrel) ** 2)
            hl = np.log(a["gr"].ravel())
            out.update(hrs_median=float(np.exp(np.median(hl))), hrs_sigma_log=float(np.std(hl, ddof=1)), read_noise_rel=read_rel)
            out.update(k=k, v_th=v_th, r2_transistor=r2_tr, relax_mean=m, relax_sigma=s)
            return out

        values = estimate()
        cell_rng = np.random.default_rng(self.seed + 1)

        def resampled(idx: np.ndarray) -> dict[str, float]:
            out = estimate(idx, cell_rng.integers(0, n_cells, n_cells))
            return {name: out[name] for name in UNITS}

        ci = bootstrap(resampled, n_dev, self.n_boot, self.seed)
        self.estimates_ = {name: Estimate(float(values[name]), *ci[name], unit=UNITS[name]) for name in UNITS}
        n_lrs, n_hrs, n_total = int(stuck_lrs.sum()), int(stuck_hrs.sum()), good.size
        survey_reset = np.asarray(getattr(data, "survey_g_reset", ()), float)
        survey_set = np.asarray(getattr(data, "survey_g_set", ()), float)
        surveyed = np.isfinite(survey_reset) & np.isfinite(survey_set)
        if surveyed.any():  # the rest of the array, surveyed for stuck devices (routine step 5)
            s_lrs, s_hrs = classify_stuck(survey_reset[surveyed], survey_set[surveyed])
            n_lrs, n_hrs, n_total = n_lrs + int(s_lrs.sum()), n_hrs + int(s_hrs.sum()), n_total + int(surveyed.sum())
        self.estimates_["p_stuck_lrs"] = _proportion(n_lrs, n_total)
        self.estimates_["p_stuck_hrs"] = _proportion(n_hrs, n_total)
        self.n_surveyed_ = n_total

        fitted = ("a", "b", "c", "d", "d2d_rel", "hrs_median", "hrs_sigma_log", "read_noise_rel", "relax_mean", "relax_sigma", "p_stuck_lrs", "p_stuck_hrs")
        self.model_ = replace(ReRAMModel(), transistor=AccessTransistor(v_th=values["v_th"], k=values["k"]), **{n: self.estimates_[n].value for n in fitted})
        icc = values["k"] * (gates - values["v_th"]) ** 2
        self.gof_ = self._goodness(arrays["gs"], icc, values, values["r2_transistor"])
        self.gof_.update(gaussian_test(arrays["gs"], self.alpha))
        lrel = float(np.log1p(read_delay / RELAX_TAU))
        table = quantile_table(arrays["gs"], gates, values["read_noise_rel"], values["relax_mean"] * lrel, (values["relax_sigma"] * lrel) ** 2)
        self.gaussian_rejected_ = bool(self.gof_["gaussian_rejected"])
        self.family_ = self.family if self.family != "auto" else ("empirical" if self.gaussian_rejected_ else "gaussian")
        self.gof_["set_family"] = self.family_
        self.model_ = replace(self.model_, set_family=self.family_, set_table=table)
        if self.gaussian_rejected_:
            levels = ", ".join(f"{gates[i]:.3g} V (p={self.gof_['ad_pvalue_per_level'][i]:.2g})" for i in self.gof_["rejected_levels"])
            log.warning("the SET conductance is not Gaussian at gate level(s) %s; programming uses the %s model", levels,
                        "empirical-quantile" if self.family_ == "empirical" else "Gaussian (as asked)")  # fmt: skip
        self.levels_ = {**values["levels"], "i_cc": icc}
        self.n_devices_ = n_dev
        self.compliance_currents_ = icc
        return self

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


def classify_stuck(g_after_reset: np.ndarray, g_after_set: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(stuck at LRS, stuck at HRS) masks of devices from their conductance after a RESET and
    after a SET at the top gate (S; medians over cycles where there are several).

    Stuck at LRS: above :data:`STUCK_LRS_THRESHOLD` after the RESET. Stuck at HRS (and not at
    LRS): the SET leaves it below :data:`STUCK_HRS_THRESHOLD` or fails to raise it
    :data:`STUCK_SET_RISE` times above its post-RESET conductance.
    """
    g_r, g_s = np.asarray(g_after_reset, float), np.asarray(g_after_set, float)
    lrs = g_r > STUCK_LRS_THRESHOLD
    hrs = ((g_s < STUCK_HRS_THRESHOLD) | (g_s < STUCK_SET_RISE * g_r)) & ~lrs
    return lrs, hrs


def _proportion(k: int, n: int) -> Estimate:
    """Jeffreys 95 % interval of a proportion ``k / n``: the 2.5 and 97.5 % quantiles of
    ``Beta(k + 1/2, n - k + 1/2)``, the lower bound 0 at ``k = 0`` and the upper 1 at ``k = n``
    (Brown, Cai & DasGupta 2001: coverage close to 95 % down to a few expected counts, where
    Wilson's dips below)."""
    p = k / n
    low = float(stats.beta.ppf(0.025, k + 0.5, n - k + 0.5)) if k > 0 else 0.0
    high = float(stats.beta.ppf(0.975, k + 0.5, n - k + 0.5)) if k < n else 1.0
    return Estimate(p, low, high, "1")
