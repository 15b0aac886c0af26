"""Fit a :class:`~labrram.devices.PCMModel` to PCM characterization data (scikit-learn style).

Estimators
----------
1. **Per device** (:mod:`.pcm_drift`): the drift curve ``g = A x^-nu (1 + noise)``,
   ``x = (t + t0)/t0``, by generalized least squares on the relative residual (the domain where
   the 1/f read noise is additive, with its covariance across the read times), giving ``A_d``
   (the conductance at the end of programming), ``nu_d`` and an unbiased ``Q_d²``.
2. **Per level** (devices programmed to one target):

   * ``nu_mean`` = mean of ``nu_d``: the mean drift exponent of the devices the ladder
     programmed to that level (``nu_mean@<level>``), which sit around ``x̄`` (their mean
     ``ln ĝ``, a few % below a 2 µS target), not exactly at the target: the law at the target
     is the model's ``nu_mean(g_T)``;
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
   by inverse-variance weighted least squares, the global minimum over every regime (which
   levels sit on the floor; where the minimum is a flat valley, as when a single level lies
   above the floor and leaves the slope free, the point nearest the prior). The weights of the spreads
   come from the law's spread at each level, not from each level's own noisy estimate (which
   favoured the levels that came out low: the floor was ~3 % low). ``Q_s = q_s_coeff /
   ĝ^q_s_exp`` from ``ln mean Q_d² = 2 ln q_s_coeff - 2 q_s_exp x̄ + 2 q_s_exp² s²`` (weights:
   devices per level).

The device's programming noise ``sigma_prog`` (``prog_c0..c2``) is not measured: what a
write-verify achieves depends on its window, and the characterization ladder's window is not
the device's. The model keeps the prior's values for it.

Intervals: 95 % bootstrap over devices, resampled within each level (the design fixes how many
devices each level has); every statistic, law fit included, is recomputed per resample:
percentile intervals, BCa for the ladder's spreads (a noise-subtracted standard deviation, whose
percentile interval sat low). The two drift-exponent laws get 95 % profile-likelihood intervals
instead (:func:`profile_intervals`): their clip makes the fit pick a regime, and a bootstrap
stays in the one the data picked, narrow when it was the wrong one; the profile refits every
regime, and where the design leaves a parameter unbounded (one level above the floor) the
interval runs to the search limit. Unconverged devices (stuck ones) and devices with a zero read
are excluded.
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


#: Δ(weighted sum of squares) of a 95 % profile interval of one parameter (χ² with 1 dof)
PROFILE_DELTA = 3.841458820694124
#: search limits of each law parameter's profile: an interval that reaches one is open on that
#: side (the design does not bound the parameter there) and ends at the limit (a floor's upper
#: limit is the law's cap)
PROFILE_LIMITS = {"slope": (-1.0, 1.0), "offset": (-1.0, 1.0), "floor": (0.0, None)}


def _clip_law(p: np.ndarray, x: np.ndarray, hi: float) -> np.ndarray:
    """``clip(slope x + offset, floor, hi)`` for ``p = (slope, offset, floor)``."""
    return np.clip(p[0] * x + p[1], p[2], max(hi, p[2]))


def _law_starts(x: np.ndarray, y: np.ndarray, w: np.ndarray, fixed: dict[int, float]) -> list[np.ndarray]:
    """Starting points of the clipped-law fit: for every split of the levels (sorted by ``x``)
    into a sloped part and a floor, the weighted line through the one and the weighted mean of
    the other, with the parameters in ``fixed`` held (so no regime is missed by a local search)."""
    order = np.argsort(x)
    starts = []
    for k in range(1, x.size + 1):
        for line in (order[:k], order[x.size - k :]):
            rest = np.setdiff1d(order, line)
            xl, yl, wl = x[line], y[line], w[line]
            if 0 in fixed and 1 in fixed:
                slope, offset = fixed[0], fixed[1]
            elif 0 in fixed:
                slope, offset = fixed[0], float(np.average(yl - fixed[0] * xl, weights=wl))
            elif 1 in fixed:
                slope, offset = float(np.sum(wl * xl * (yl - fixed[1])) / max(np.sum(wl * xl**2), 1e-300)), fixed[1]
            elif line.size >= 2 and np.ptp(xl) > 0:
                slope, offset, _ = linear_fit(xl, yl, wl)
            else:
                slope, offset = 0.0, float(np.average(yl, weights=wl))
            floor = float(np.average(y[rest], weights=w[rest])) if rest.size else float(np.min(slope * xl + offset))
            p = np.array([slope, offset, fixed.get(2, floor)])
            for j, v in fixed.items():
                p[j] = v
            starts.append(p)
    return starts


def _fit_law(x: np.ndarray, y: np.ndarray, w: np.ndarray, hi: float, x0: np.ndarray, fixed: dict[int, float] | None = None) -> tuple[np.ndarray, float]:
    """Weighted least squares of ``clip(slope x + offset, floor, hi)`` (parameters in ``fixed``
    held), the global minimum over local searches from every regime's start (:func:`_law_starts`)
    and ``x0``. Returns (slope, offset, floor) and the weighted sum of squares; where the minimum
    is not unique (a flat valley), the point the search from ``x0`` reaches."""
    fixed = fixed or {}
    free = [j for j in range(3) if j not in fixed]
    sw = np.sqrt(w)

    def cost_of(p: np.ndarray) -> float:
        return float(np.sum(w * (_clip_law(p, x, hi) - y) ** 2))

    prior = np.asarray(x0, float).copy()
    for j, v in fixed.items():
        prior[j] = v
    starts = _law_starts(x, y, w, fixed)
    for p in starts:
        for j, v in fixed.items():
            p[j] = v
    starts.sort(key=cost_of)

    def local(p: np.ndarray) -> tuple[np.ndarray, float]:
        def resid(q):
            r = p.copy()
            r[free] = q
            return sw * (_clip_law(r, x, hi) - y)

        sol = least_squares(resid, x0=p[free], method="trf")
        q = p.copy()
        q[free] = sol.x
        return q, cost_of(q)

    # the search from the prior first: where the minimum is a flat valley (one level above the
    # floor leaves the slope free), the valley's point nearest the prior is kept
    best, best_cost = local(prior)
    for p in starts[:3]:  # and from the three most promising regimes, for the global minimum
        q, c = local(p)
        if c < best_cost - 1e-6 * (1.0 + best_cost):
            best, best_cost = q, c
    return best, best_cost


def _clipped_log_law(x: np.ndarray, y: np.ndarray, w: np.ndarray, hi: float, x0: tuple[float, float, float]) -> tuple[float, float, float]:
    """Weighted least-squares (slope, offset, floor) of ``clip(slope x + offset, floor, hi)``."""
    p, _ = _fit_law(np.asarray(x, float), np.asarray(y, float), np.asarray(w, float), hi, np.asarray(x0, float))
    return float(p[0]), float(p[1]), float(p[2])


def _profile_bound(x: np.ndarray, y: np.ndarray, w: np.ndarray, hi: float, best: np.ndarray, cost0: float, j: int, direction: float, limit: float | None, scale: float, delta: float) -> float:
    """Where the profile of parameter ``j`` (the others refitted) rises ``delta`` above the
    minimum ``cost0``, on one side of ``best[j]``; ``limit`` (or ±inf) when it never does."""
    start = float(best[j])

    def excess(v: float) -> float:
        _, c = _fit_law(x, y, w, hi, best, {j: v})
        return c - cost0 - delta

    step = scale
    inside = start
    for _ in range(40):
        v = start + direction * step
        if limit is not None and direction * (v - limit) >= 0:
            v = limit
            if excess(v) < 0:
                return float(limit)
            break
        if excess(v) >= 0:
            break
        inside = v
        step *= 2.0
    else:
        return float(direction * np.inf)
    outside = v
    for _ in range(30):  # bisection to a relative precision far below the interval's own noise
        mid = 0.5 * (inside + outside)
        if excess(mid) < 0:
            inside = mid
        else:
            outside = mid
        if abs(outside - inside) <= 1e-4 * scale:
            break
    return float(0.5 * (inside + outside))


def profile_intervals(x: np.ndarray, y: np.ndarray, w: np.ndarray, hi: float, x0: tuple[float, float, float]) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Fit ``clip(slope x + offset, floor, hi)`` and the 95 % profile-likelihood interval of each
    parameter (the set of values whose best fit, the other two refitted, costs less than
    :data:`PROFILE_DELTA` more than the best fit).

    The levels' values ``y`` are taken as normal with variances ``1 / w``; when the best fit's
    weighted sum of squares exceeds its degrees of freedom (levels less three), the threshold
    is scaled by their ratio (the Birge ratio, as the Particle Data Group scales its errors):
    a law that misses the levels by more than their intervals allow says those are narrow.

    Unlike a bootstrap of the fit, the profile sees the fits of every regime: when a level sits
    near the corner of the clip, the slope of a fit that puts it on the floor and that of one
    that puts it on the line both enter the interval; where the design cannot bound a parameter
    (a law with one level above its floor has no measured slope), the interval runs to the
    search limit (:data:`PROFILE_LIMITS`), honestly wide.

    Returns
    -------
    params : ndarray
        (slope, offset, floor) of the best fit.
    intervals : list of (float, float)
        Their 95 % intervals.
    """
    x, y, w = (np.asarray(a, float) for a in (x, y, w))
    best, cost0 = _fit_law(x, y, w, hi, np.asarray(x0, float))
    dof = x.size - 3
    delta = PROFILE_DELTA * (max(1.0, cost0 / dof) if dof > 0 else 1.0)
    sd = 1.0 / np.sqrt(np.max(w))
    scales = [sd / max(np.ptp(x), 1e-3), sd, sd]
    intervals = []
    for j, name in enumerate(("slope", "offset", "floor")):
        lo_lim, hi_lim = PROFILE_LIMITS[name]
        if name == "floor":
            hi_lim = hi
        lo = _profile_bound(x, y, w, hi, best, cost0, j, -1.0, lo_lim, scales[j], delta)
        up = _profile_bound(x, y, w, hi, best, cost0, j, +1.0, hi_lim, scales[j], delta)
        intervals.append((lo, up))
    return best, intervals


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
        keys = ("n", "x", "s2", "nu_mean", "nu_mean_var", "nu_std", "nu_noise", "q2", "ladder_spread", "g_mean")
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
            out["nu_noise"][lv] = q2 * c.var_nu  # read-noise variance of one device's slope
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

    def _nu_std_weights(self, lv: dict[str, np.ndarray], sd_law: np.ndarray | None) -> np.ndarray:
        """Inverse variances of the levels' ``nu_std``: a sample variance of ``n`` slopes has
        variance ``2 (sigma² + noise)² / (n - 1)``, carried to its square root. ``sigma`` is the
        law's at the level (``sd_law``, or the level's own value on the first pass): weights
        computed from each level's own noisy spread would favour the levels that came out low
        and bias the law (its floor came out ~3 % low)."""
        sigma = lv["nu_std"] if sd_law is None else sd_law
        sigma2 = np.maximum(sigma, 1e-4) ** 2
        var = 2 * (sigma2 + lv["nu_noise"]) ** 2 / (lv["n"] - 1) / (4 * sigma2)
        return 1.0 / var

    def _law_data(self, lv: dict[str, np.ndarray], spread: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float, tuple[float, float, float]]] | None:
        """Per law (``"nu_mu"``, and ``"nu_sigma"`` with ``spread``): the levels' (x, y, weights,
        cap) and the fitted (slope, offset, floor); None when undetermined."""
        m = self.prior
        # a level whose devices all drift alike gives its mean slope no variance, hence no
        # weight: such data (e.g. devices that never moved) cannot set a law
        ok = np.isfinite(lv["nu_mean"]) & (lv["nu_mean_var"] > 0)
        if ok.sum() < 3:  # undetermined: the clipped laws have three parameters
            return None
        x = lv["x"][ok]
        mu0 = (m.nu_mu_slope, m.nu_mu_offset, m.nu_mu_min)
        sd0 = (m.nu_sigma_slope, m.nu_sigma_offset, m.nu_sigma_min)
        mu_w = 1 / lv["nu_mean_var"][ok]
        mu = _clipped_log_law(x, lv["nu_mean"][ok], mu_w, m.nu_mu_max, mu0)
        if not spread:
            return {"nu_mu": (x, lv["nu_mean"][ok], mu_w, m.nu_mu_max, mu)}
        sub = {k: v[ok] for k, v in lv.items() if isinstance(v, np.ndarray) and v.shape == ok.shape}
        sd, sd_pred = sd0, None
        for _ in range(3):  # weights from the law's spread at each level, refitted
            sd_w = self._nu_std_weights(sub, sd_pred)
            sd = _clipped_log_law(x, lv["nu_std"][ok], sd_w, m.nu_sigma_max, sd)
            sd_pred = _clip_law(np.asarray(sd), x, m.nu_sigma_max)
        sd_w = self._nu_std_weights(sub, sd_pred)
        return {
            "nu_mu": (x, lv["nu_mean"][ok], mu_w, m.nu_mu_max, mu),
            "nu_sigma": (x, lv["nu_std"][ok], sd_w, m.nu_sigma_max, sd),
        }

    def _laws(self, lv: dict[str, np.ndarray], spread: bool = True) -> dict[str, float]:
        """The laws' parameters; without ``spread`` the nu-spread law is left NaN (a resample:
        its intervals come from the profile, :meth:`_law_intervals`)."""
        data = self._law_data(lv, spread)
        if data is None:
            return {name: float("nan") for name in LAW_UNITS}
        mu = data["nu_mu"][4]
        sd = data["nu_sigma"][4] if spread else (float("nan"),) * 3
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
        laws = self._laws(lv, spread=idx is None)
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

        ci = bootstrap(resampled, int(good.sum()), self.n_boot, self.seed, strata=level, bca=tuple(protocol))
        ci.update(self._law_intervals(levels))
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

    def _law_intervals(self, levels: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
        """95 % profile-likelihood intervals of the drift-exponent laws (:func:`profile_intervals`):
        a bootstrap of a clipped fit stays in the regime the data chose (a level near the
        corner on the line, or on the floor) and was narrow when that choice was wrong."""
        data = self._law_data(levels)
        if data is None:
            return {}
        out = {}
        for law, names in (("nu_mu", ("nu_mu_slope", "nu_mu_offset", "nu_mu_min")), ("nu_sigma", ("nu_sigma_slope", "nu_sigma_offset", "nu_sigma_min"))):
            x, y, w, hi, p0 = data[law]
            _, intervals = profile_intervals(x, y, w, hi, p0)
            out.update(zip(names, intervals))
        return out

    def _goodness(self, levels: dict[str, np.ndarray]) -> dict[str, Any]:
        m = self.model_
        ok = np.isfinite(levels["nu_mean"]) & np.isfinite(levels["q2"])
        g = levels["g_mean"][ok]
        return {
            "nu_mean_max_relative_residual": float(np.max(np.abs(m.nu_mean(g) / levels["nu_mean"][ok] - 1))),
            "nu_std_max_abs_residual": float(np.max(np.abs(m.nu_std(g) - levels["nu_std"][ok]))),
            "q_s_max_relative_residual": float(np.max(np.abs(m.q_s(g) / np.sqrt(levels["q2"][ok]) - 1))),
        }
