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

Only ``a`` goes into the fitted model; the other parameters keep their nominal values until a
routine measures them (see the note in passive_routine).

Intervals: 95 % bootstrap over devices.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from ..devices.passive import PassiveDeviceModel
from .estimates import Estimate, bootstrap
from .passive_routine import PassiveData

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
        ssr, coef = _profile(values["a"], np.asarray(data.iv_voltages, float), cur, HALF_SELECT[data.settings.get("scheme", "V/2")])
        self.device_g_, self.column_background_ = coef[0], coef[1]
        self.gof_: dict[str, Any] = {"iv_rms_relative_residual": float(np.sqrt(ssr / cur.size))}
        self.n_devices_ = n
        return self
