"""Fit a :class:`~labrram.devices.passive.PassiveDeviceModel` to passive-array data.

* **I–V nonlinearity** ``a``: under V/2 biasing the sensed column current of a selected device
  is its own ``(G/a) sinh(a V)`` plus the half-selected cells of its column at ``V/2``,
  ``(B/a) sinh(a V/2)`` (V/3: ``V/3``). For a shared ``a`` the model is linear in each device's
  ``(G, B)``; ``a`` minimizes the total squared residual (profile least squares, bounded scalar
  search);
* **switching amplitudes**: the median ramp amplitude at which a 1 µs pulse visibly moved a
  device (half a ramp step below it), and their relative spread. These are practical write
  voltages: above the model's onset thresholds by the overdrive a 1 µs pulse needs, so they are
  reported as estimates and do not replace ``v_set`` / ``v_reset``;
* **read noise of the sensed current** (sneak background included): RMS relative standard
  deviation of repeated reads.
* **as-fabricated state** ``g_init_median``, ``g_init_sigma_log``: every cell of the map columns
  from its column read (``I_k = G_k (s(V) - s(u)) + S s(u)``, :func:`column_conductances`,
  with the fitted ``a``), averaged over the repeats; the median and the log-spread of the cells,
  the read noise's share of the spread (from the scatter of the repeats) removed.
* **tuning imprecision** (protocol estimates, not device parameters): the deviations
  ``G - target`` of the devices that :mod:`labrram.protocols.tune_passive` tuned, each
  measured from its column read, follow ``E[(G - target)^2] = tune_sigma_abs^2 +
  tune_sigma_rel^2 target^2`` (the protocol's band is ``max(2 % of target, 1 µS)``; read
  noise removed); ``tune_bias_rel`` is their mean relative deviation. They describe what the tuning protocol achieves with the
  settings recorded in the run, on top of the sneak-path offsets of a ``"believed"`` read-out.

``a``, ``g_init_median`` and ``g_init_sigma_log`` go into the fitted model; the other device
parameters keep their nominal values.

Intervals: 95 % bootstrap over devices (the map's cells, the tuned devices).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from ..devices.passive import PassiveDeviceModel
from .estimates import Estimate, bootstrap
from .passive_routine import PassiveData


def column_conductances(current: np.ndarray, voltage: float, a: float, frac: float) -> np.ndarray:
    """Conductances of every cell of fully read columns, S.

    Parameters
    ----------
    current : ndarray (..., rows, cols)
        Sensed currents with each cell of a column selected in turn, A.
    voltage : float
        Read voltage, V.
    a : float
        I-V nonlinearity, 1/V.
    frac : float
        Half-selected fraction of the scheme (1/2 for V/2, 1/3 for V/3).

    Returns
    -------
    ndarray
        ``G_k = (I_k - S s(u)) / (s(V) - s(u))`` with the column sum
        ``S = sum_k I_k / (s(V) + (m - 1) s(u))`` and ``s(v) = sinh(a v) / a``.
    """
    current = np.asarray(current, float)
    m = current.shape[-2]
    s_sel = float(np.sinh(a * voltage) / a)
    s_half = float(np.sinh(a * frac * voltage) / a)
    total = current.sum(axis=-2, keepdims=True) / (s_sel + (m - 1) * s_half)
    return (current - total * s_half) / (s_sel - s_half)


def _cell_means(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the repeats (axis 0) and the variance of that mean, per cell."""
    n = g.shape[0]
    return g.mean(axis=0), g.var(axis=0, ddof=1) / n


def _fab_values(g: np.ndarray, var: np.ndarray) -> dict[str, float]:
    """As-fabricated median and log-spread of cells ``g`` (S) whose means carry variance ``var``."""
    if np.any(g <= 0):
        raise ValueError("the as-fabricated map holds non-positive conductances: the column read-out failed")
    lg = np.log(g)
    noise = float(np.mean(var / g**2))
    return {"g_init_median": float(np.exp(np.median(lg))), "g_init_sigma_log": float(np.sqrt(max(np.var(lg, ddof=1) - noise, 0.0)))}


def _tune_values(dev: np.ndarray, var: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Tuning deviations ``dev = G - target`` (S; ``var`` their read-noise variance): the law
    ``E[dev^2] = s_abs^2 + s_rel^2 target^2`` (non-negative least squares on the squared
    deviations less their noise) and the mean relative deviation."""
    from scipy.optimize import nnls

    A = np.stack([np.ones_like(target), target**2], axis=1)
    w = 1.0 / np.maximum(target, 1e-12) ** 2  # relative weighting: every device counts alike
    coef, _ = nnls(A * w[:, None], (dev**2 - var) * w)
    return {"tune_sigma_abs": float(np.sqrt(coef[0])), "tune_sigma_rel": float(np.sqrt(coef[1])), "tune_bias_rel": float(np.mean(dev / target))}

HALF_SELECT = {"V/2": 0.5, "V/3": 1.0 / 3.0, "float": 0.5}


def _profile(a: float, v: np.ndarray, current: np.ndarray, frac: float) -> tuple[float, np.ndarray]:
    """Residual of the best per-device (G, B) for nonlinearity ``a``; returns (SSR, coefficients)."""
    basis = np.stack([np.sinh(a * v) / a, np.sinh(a * frac * v) / a], axis=1)
    coef, *_ = np.linalg.lstsq(basis, current, rcond=None)
    resid = current - basis @ coef
    return float(np.sum((resid / np.maximum(np.abs(current), 1e-12)) ** 2)), coef


def _fit_a(v: np.ndarray, current: np.ndarray, frac: float) -> float:
    sol = minimize_scalar(lambda a: _profile(a, v, current, frac)[0], bounds=(0.05, 10.0), method="bounded", options={"xatol": 1e-4})
    return float(sol.x)


class PassiveFit:
    """Fit the passive device statistics."""

    def __init__(self, prior: PassiveDeviceModel | None = None, n_boot: int = 200, seed: int = 0) -> None:
        self.prior = prior or PassiveDeviceModel()
        self.n_boot = n_boot
        self.seed = seed

    def _values(self, data: PassiveData, idx: np.ndarray | None = None) -> dict[str, float]:
        v = np.asarray(data.iv_voltages, float)
        cur = np.asarray(data.iv_current, float)
        frac = HALF_SELECT[data.settings.get("scheme", "V/2")]
        vs, vr = np.asarray(data.set_threshold, float), np.asarray(data.reset_threshold, float)
        rep = np.asarray(data.read_repeats, float)
        if idx is not None:
            cur, rep = cur[:, idx], rep[:, idx]
            vs, vr = vs[idx % vs.size], vr[idx % vr.size]
        amps = np.asarray(data.ramp_amplitudes, float)
        half_step = float(np.median(np.diff(amps))) / 2 if amps.size > 1 else 0.0
        vs, vr = vs[np.isfinite(vs)], vr[np.isfinite(vr)]
        if vs.size < 3 or vr.size < 3:
            raise ValueError("fewer than 3 devices switched in the threshold ramps")
        return {
            "a": _fit_a(v, cur, frac),
            "switch_set_1us": float(np.median(vs) - half_step),
            "switch_reset_1us": float(np.median(vr) - half_step),
            "switch_spread_rel": float(np.std(np.concatenate([vs / np.median(vs), vr / np.median(vr)]), ddof=1)),
            "read_noise_sensed_rel": float(np.sqrt(np.mean((rep.std(axis=0, ddof=1) / rep.mean(axis=0)) ** 2))),
        }

    def fit(self, data: PassiveData) -> "PassiveFit":
        cur = np.asarray(data.iv_current, float)
        if cur.ndim != 2 or cur.shape[0] != np.asarray(data.iv_voltages).size:
            raise ValueError("iv_current must be (voltage, device)")
        if not np.all(np.isfinite(cur)):
            raise ValueError("characterization data contain NaN or inf")
        values = self._values(data)
        n = cur.shape[1]
        ci = bootstrap(lambda idx: self._values(data, idx), n, self.n_boot, self.seed)
        units = {"a": "1/V", "switch_set_1us": "V", "switch_reset_1us": "V", "switch_spread_rel": "1", "read_noise_sensed_rel": "1"}
        self.estimates_ = {k: Estimate(val, *ci[k], unit=units[k]) for k, val in values.items()}
        self.model_ = replace(self.prior, a=values["a"])
        frac = HALF_SELECT[data.settings.get("scheme", "V/2")]
        v_map = float(data.settings.get("map_voltage", 0.2))
        self.protocol_estimates_: dict[str, Estimate] = {}
        self.map_g_ = self.tuned_g_ = np.zeros(0)
        fab = np.asarray(data.fab_current, float)
        if fab.size and np.all(np.isfinite(fab)):
            g, var = _cell_means(column_conductances(fab, v_map, values["a"], frac))
            g, var = g.ravel(), var.ravel()
            fv = _fab_values(g, var)
            fci = bootstrap(lambda idx: _fab_values(g[idx], var[idx]), g.size, self.n_boot, self.seed)
            self.estimates_.update({k: Estimate(v, *fci[k], unit="S" if k == "g_init_median" else "1") for k, v in fv.items()})
            self.model_ = replace(self.model_, **fv)
            self.map_g_ = g
        tc = np.asarray(data.tune_current, float)
        if tc.size and np.all(np.isfinite(tc)):
            k = np.arange(np.asarray(data.tune_cols).size)
            gt, vt = _cell_means(column_conductances(tc, v_map, values["a"], frac)[:, np.asarray(data.tune_rows, int), k])
            tgt = np.asarray(data.tune_targets, float)
            dev = gt - tgt
            if dev.size < 4:
                raise ValueError("fewer than 4 tuned devices: the tuning imprecision needs more")
            tv = _tune_values(dev, vt, tgt)
            tci = bootstrap(lambda idx: _tune_values(dev[idx], vt[idx], tgt[idx]), dev.size, self.n_boot, self.seed)
            self.protocol_estimates_ = {k: Estimate(v, *tci[k], unit="S" if k == "tune_sigma_abs" else "1") for k, v in tv.items()}
            self.tuned_g_ = gt
        ssr, coef = _profile(values["a"], np.asarray(data.iv_voltages, float), cur, frac)
        self.device_g_, self.column_background_ = coef[0], coef[1]
        self.gof_: dict[str, Any] = {"iv_rms_relative_residual": float(np.sqrt(ssr / cur.size))}
        self.n_devices_ = n
        return self
