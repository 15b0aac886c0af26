"""Passive (0T1R) TiO2 crossbar: a nonlinear device model and an exact circuit model of the array.

Every quantity is in SI units: siemens, amperes, volts, seconds, ohms.

Device (:class:`PassiveDeviceModel`)
------------------------------------
* I–V: ``I = k sinh(a V)`` with ``k = G / a``; the programmed state of a device is its
  small-signal conductance ``G = dI/dV (V = 0) = k a``. ``a = 0`` is the linear (ohmic) limit.
  The differential conductance is ``G cosh(a V)``; the excess over the linear current is
  ``eta(V) = G V (sinh(a V) / (a V) - 1)``.
* Switching (bipolar): a cell voltage ``V >= v_set`` SETs, ``V <= -v_reset`` RESETs. With the
  normalized state ``x = (G - g_min) / (g_max - g_min)`` the rate equations are::

      SET:    dx/dt =  r_set(V)   (1 - x)^p         r_set(V)   = rate_set   ((V - v_set) / v_set)^gamma_set
      RESET:  dx/dt = -r_reset(V) x^p               r_reset(V) = rate_reset ((|V| - v_reset) / v_reset)^gamma_reset

  integrated exactly over the pulse width ``t`` (``p = 1``: ``1 - x(t) = (1 - x0) exp(-r t)``),
  so the step grows with the overdrive ``|V| - v_th`` and shrinks near the end of the window.
  Each device has its own thresholds (device-to-device spread ``v_th_d2d_rel``) and rate factor
  (log-normal ``rate_d2d_rel``); each pulse draws a log-normal rate factor (``rate_c2c_rel``).
* Tuning imprecision: the state a programming event lands in deviates from its nominal value
  by a relative error ``eps ~ N(0, tuning_sigma_rel)`` truncated to ``|eps| <= tuning_tolerance_rel``
  (:meth:`PassiveDeviceModel.sample_landing`, :meth:`PassiveDeviceModel.sample_tuned`).
* Half-select disturb: a cell held below its threshold at ``|V|`` for ``t`` suffers a Poisson
  number of small switching events with mean
  ``lambda = disturb_rate t exp((|V| - v_th) / disturb_v0)``; each moves the state a fraction
  ``disturb_step`` of the remaining window (``x += step (1 - x)^p`` for positive,
  ``x -= step x^p`` for negative voltages). At V/2 or V/3 of a typical write this is a slow,
  accumulating drift.
* Reads carry multiplicative noise ``read_noise_rel`` per device and an instrument floor.

Circuit (:class:`CrossbarCircuit`)
----------------------------------
An ``m x n`` crossbar is a resistor network: each row line is a chain of ``n`` wire segments
``r_row`` driven from its left end (column 0 side), each column line a chain of ``m`` segments
``r_col`` driven / sensed at its bottom end (row ``m - 1`` side); cell ``(i, j)`` joins row node
``(i, j)`` to column node ``(i, j)``. Cell ``(0, n - 1)`` is the farthest from both drivers.
Nodal analysis gives ``2 m n`` unknown node voltages (fewer when a wire resistance is 0 and its
line is one node); see :class:`CrossbarCircuit` for the algorithms.

Defaults are "inferred" in the sense of SCIENCE.md: sensible, calibration replaces them.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp
from scipy.linalg import blas, lapack
from scipy.sparse.linalg import splu

SCHEMES = ("V/2", "V/3", "float", "ground")
"""Biasing schemes of a selected cell ``(i, j)`` at voltage ``V``:

* ``"V/2"``: row ``i`` at ``V``, column ``j`` at 0, every other line at ``V/2``;
* ``"V/3"``: row ``i`` at ``V``, column ``j`` at 0, other rows at ``V/3``, other columns at ``2V/3``;
* ``"float"``: row ``i`` at ``V``, column ``j`` at 0, every other line floating (no driver);
* ``"ground"``: row ``i`` at ``V``, every other line (column ``j`` included) at 0.
"""


_BORN_LIMIT = {"V/2": 1.2, "V/3": 1.2, "ground": 0.6, "float": 0.6}
"""Largest ``a |V|`` for which ``read_cells(method="auto")`` uses the fast corrected-linear path."""


# --------------------------------------------------------------------------------------------
# device I–V, cancellation-free
# --------------------------------------------------------------------------------------------
def _shc1(x: np.ndarray) -> np.ndarray:
    """``sinh(x) / x - 1``, accurate for all ``x``: Taylor series (to ``x^8``) below
    ``|x| = 0.1``, else ``(e^x - e^-x) / 2x - 1`` (``np.exp`` is 3x faster than ``np.sinh``)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 0:
        return _shc1(x.reshape(1)).reshape(())
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        e = np.exp(x)
        out = e - 1.0 / e
        out *= 0.5
        out /= x
        out -= 1.0
    small = np.abs(x) < 0.1
    if small.any():
        xs = x[small]
        x2 = xs * xs
        out[small] = x2 * (1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (1.0 / 5040.0 + x2 / 362880.0)))
    return out


def _sinh_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(sinh(x)/x - 1, sinh(x), cosh(x))`` from one ``exp`` (series for ``|x| < 0.1``)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 0:
        return tuple(p.reshape(()) for p in _sinh_parts(x.reshape(1)))
    with np.errstate(over="ignore"):
        e = np.exp(x)
    ei = 1.0 / e
    sh = e - ei
    sh *= 0.5
    ch = e + ei
    ch *= 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        s1 = sh / x
    s1 -= 1.0
    small = np.abs(x) < 0.1
    if small.any():
        xs = x[small]
        x2 = xs * xs
        s1[small] = x2 * (1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (1.0 / 5040.0 + x2 / 362880.0)))
    return s1, sh, ch


def device_current(g, a, v) -> np.ndarray:
    """Cell current ``I = (G / a) sinh(a V)`` (``G V`` when ``a = 0``), A."""
    g, a, v = np.asarray(g, float), np.asarray(a, float), np.asarray(v, float)
    return g * v * (1.0 + _shc1(a * v))


def device_excess(g, a, v) -> np.ndarray:
    """Nonlinear excess current ``eta(V) = (G / a) sinh(a V) - G V``, A."""
    g, a, v = np.asarray(g, float), np.asarray(a, float), np.asarray(v, float)
    return g * v * _shc1(a * v)


def device_conductance(g, a, v) -> np.ndarray:
    """Differential conductance ``dI/dV = G cosh(a V)``, S."""
    g, a, v = np.asarray(g, float), np.asarray(a, float), np.asarray(v, float)
    s = np.sinh(0.5 * a * v)
    return g * (1.0 + 2.0 * s * s)


def _device_excess_slope(g, a, v) -> np.ndarray:
    """``d eta / dV = G (cosh(a V) - 1) = 2 G sinh(a V / 2)^2 >= 0``, S."""
    s = np.sinh(0.5 * a * v)
    return 2.0 * g * s * s


# --------------------------------------------------------------------------------------------
# the device model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PassiveDeviceModel:
    """TiO2 0T1R passive-crossbar device and array statistics (equations in the module docstring).

    Parameters
    ----------
    a : float
        I–V nonlinearity, 1/V: ``I = (G / a) sinh(a V)``.
    g_min, g_max : float
        Conductance window (small-signal), S.
    v_set, v_reset : float
        Switching thresholds (magnitudes; RESET needs a negative cell voltage), V. Chosen above
        half of a typical write voltage so that V/2 and V/3 half-selected cells do not switch.
    v_th_d2d_rel : float
        Relative device-to-device spread of the thresholds.
    rate_set, rate_reset : float
        Normalized switching rate at 100 % overdrive (``|V| = 2 v_th``), 1/s.
    gamma_set, gamma_reset : float
        Overdrive exponent: rate ``∝ ((|V| - v_th) / v_th)^gamma``.
    window_p : float
        State-window exponent ``p`` (> 0) of the rate equations.
    rate_d2d_rel, rate_c2c_rel : float
        Log-normal sigmas of the per-device and per-pulse rate factors.
    tuning_sigma_rel : float
        Relative spread of the state a programming event lands in.
    tuning_tolerance_rel : float
        Tolerance band: the landing error never exceeds this relative value.
    read_noise_rel : float
        Relative standard deviation of one device's current in one read.
    read_noise_floor : float
        Additive current noise of the read circuit, A.
    disturb_rate : float
        Rate of sub-threshold switching events at the threshold voltage, 1/s.
    disturb_v0 : float
        Voltage scale of the exponential disturb law, V.
    disturb_step : float
        Fraction of the remaining window one disturb event moves the state.
    g_init_median, g_init_sigma_log : float
        As-fabricated state: log-normal median (S) and sigma (natural log).
    r_wire_row, r_wire_col : float
        Wire resistance per row / column segment (one cell pitch), ohm.
    t_read : float
        How long a read holds its bias on the array (for read disturb), s.
    """

    a: float = 3.0
    g_min: float = 5e-6
    g_max: float = 100e-6
    v_set: float = 1.0
    v_reset: float = 1.1
    v_th_d2d_rel: float = 0.04
    rate_set: float = 2e5
    rate_reset: float = 2e5
    gamma_set: float = 1.0
    gamma_reset: float = 1.0
    window_p: float = 1.0
    rate_d2d_rel: float = 0.15
    rate_c2c_rel: float = 0.1
    tuning_sigma_rel: float = 0.01
    tuning_tolerance_rel: float = 0.03
    read_noise_rel: float = 0.01
    read_noise_floor: float = 1e-9
    disturb_rate: float = 1e4
    disturb_v0: float = 0.05
    disturb_step: float = 0.01
    g_init_median: float = 10e-6
    g_init_sigma_log: float = 0.3
    r_wire_row: float = 1.0
    r_wire_col: float = 1.0
    t_read: float = 1e-6

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number, got {value!r}")
        nonneg = (
            "a v_th_d2d_rel rate_set rate_reset rate_d2d_rel rate_c2c_rel tuning_sigma_rel "
            "tuning_tolerance_rel read_noise_rel read_noise_floor disturb_rate disturb_step "
            "g_init_sigma_log r_wire_row r_wire_col t_read"
        ).split()
        for name in nonneg:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        positive = "g_min g_max v_set v_reset gamma_set gamma_reset window_p disturb_v0 g_init_median".split()
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.g_min >= self.g_max:
            raise ValueError(f"g_min ({self.g_min}) must be below g_max ({self.g_max})")
        if self.disturb_step > 1:
            raise ValueError("disturb_step is a fraction of the window (<= 1)")

    # --- I–V --------------------------------------------------------------------------------
    def current(self, g, v) -> np.ndarray:
        """Device current at cell voltage ``v`` for small-signal conductance ``g``, A."""
        return device_current(g, self.a, v)

    def differential_conductance(self, g, v) -> np.ndarray:
        """``dI/dV = G cosh(a V)``, S."""
        return device_conductance(g, self.a, v)

    # --- switching -------------------------------------------------------------------------
    def _x(self, g) -> np.ndarray:
        return np.clip((np.asarray(g, float) - self.g_min) / (self.g_max - self.g_min), 0.0, 1.0)

    def _g(self, x) -> np.ndarray:
        return self.g_min + np.clip(x, 0.0, 1.0) * (self.g_max - self.g_min)

    def switching_rate(self, v, v_set=None, v_reset=None) -> np.ndarray:
        """Signed normalized rate ``dx/dt`` prefactor at cell voltage ``v`` (0 below threshold), 1/s.

        Positive above ``v_set`` (SET), negative below ``-v_reset`` (RESET). ``v_set`` and
        ``v_reset`` default to the nominal thresholds and may be per-device arrays.
        """
        v = np.asarray(v, float)
        vs = self.v_set if v_set is None else np.asarray(v_set, float)
        vr = self.v_reset if v_reset is None else np.asarray(v_reset, float)
        od_set = np.maximum(v - vs, 0.0) / vs
        od_reset = np.maximum(-v - vr, 0.0) / vr
        return self.rate_set * od_set**self.gamma_set - self.rate_reset * od_reset**self.gamma_reset

    def _integrate(self, y0: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Solve ``dy/dt = -y^p`` over "time" ``s`` (rate x width) from ``y0`` (exact)."""
        p = self.window_p
        if p == 1.0:
            return y0 * np.exp(-s)
        with np.errstate(divide="ignore", invalid="ignore"):
            base = np.power(y0, 1.0 - p) + (p - 1.0) * s
            if p > 1.0:
                return np.where(y0 > 0, np.power(base, 1.0 / (1.0 - p)), 0.0)
            return np.where(base > 0, np.power(np.maximum(base, 0.0), 1.0 / (1.0 - p)), 0.0)

    def pulse_dose(self, v, width, v_set=None, v_reset=None, rate_factor=1.0) -> np.ndarray:
        """Signed switching dose ``r(V) t`` of a pulse (positive SET, negative RESET, 0 below threshold)."""
        width = np.asarray(width, float)
        if np.any(width < 0):
            raise ValueError("pulse width must be >= 0 s")
        return self.switching_rate(v, v_set, v_reset) * np.asarray(rate_factor, float) * width

    def advance(self, g, dose) -> np.ndarray:
        """Deterministic state after a signed ``dose`` (exact integration of the rate equations), S."""
        g = np.asarray(g, float)
        dose = np.asarray(dose, float)
        x0 = self._x(g)
        s = np.abs(dose)
        x_set = 1.0 - self._integrate(1.0 - x0, s)
        x_reset = self._integrate(x0, s)
        x = np.where(dose > 0, x_set, np.where(dose < 0, x_reset, x0))
        return np.where(dose != 0, self._g(x), g)

    def advance_scalar(self, g: float, dose: float) -> float:
        """:meth:`advance` for one device with Python floats (fast in sequential loops), S."""
        if dose == 0.0:
            return g
        span = self.g_max - self.g_min
        x = min(max((g - self.g_min) / span, 0.0), 1.0)
        y = 1.0 - x if dose > 0 else x
        s, p = abs(dose), self.window_p
        if p == 1.0:
            y = y * math.exp(-s)
        elif p > 1.0:
            y = (y ** (1.0 - p) + (p - 1.0) * s) ** (1.0 / (1.0 - p)) if y > 0 else 0.0
        else:
            base = y ** (1.0 - p) - (1.0 - p) * s
            y = base ** (1.0 / (1.0 - p)) if base > 0 else 0.0
        x = 1.0 - y if dose > 0 else y
        return self.g_min + min(max(x, 0.0), 1.0) * span

    def pulse_response(self, g, v, width, v_set=None, v_reset=None, rate_factor=1.0) -> np.ndarray:
        """Deterministic conductance after a pulse of cell voltage ``v`` (signed) and ``width``, S.

        Exact integration of the rate equations of the module docstring; below both
        thresholds the state is unchanged.
        """
        return self.advance(g, self.pulse_dose(v, width, v_set, v_reset, rate_factor))

    def sample_landing_error(self, shape, rng: np.random.Generator) -> np.ndarray:
        """Relative landing errors ``eps ~ N(0, tuning_sigma_rel)`` truncated at ``±tuning_tolerance_rel``."""
        eps = self.tuning_sigma_rel * rng.standard_normal(shape)
        tol = self.tuning_tolerance_rel
        out = np.abs(eps) > tol
        # resample the (rare) draws outside the band: truncated normal, not clipped
        for _ in range(50):
            if not np.any(out):
                break
            eps[out] = self.tuning_sigma_rel * rng.standard_normal(int(out.sum()))
            out = np.abs(eps) > tol
        return np.clip(eps, -tol, tol)

    def land(self, g_nominal, eps) -> np.ndarray:
        """``G_nom (1 + eps)`` kept inside the conductance window, S."""
        return np.clip(np.asarray(g_nominal, float) * (1.0 + np.asarray(eps, float)), self.g_min, self.g_max)

    def sample_landing(self, g_nominal, rng: np.random.Generator) -> np.ndarray:
        """Tuning imprecision: ``G = G_nom (1 + eps)``, ``eps ~ N(0, sigma)`` truncated at ``±tol``, S."""
        g_nominal = np.asarray(g_nominal, float)
        return self.land(g_nominal, self.sample_landing_error(g_nominal.shape, rng))

    def sample_tuned(self, target, rng: np.random.Generator) -> np.ndarray:
        """Conductance a device tuned to ``target`` lands at (tuning imprecision), S.

        The statistical shortcut for transfer Monte Carlo: ``target`` is clipped to the window
        and carries the landing error of :meth:`sample_landing`.
        """
        target = np.asarray(target, float)
        if np.any(~np.isfinite(target)):
            raise ValueError("target conductance must be finite")
        return self.sample_landing(np.clip(target, self.g_min, self.g_max), rng)

    def sample_pulse(
        self, g, v, width, rng: np.random.Generator, v_set=None, v_reset=None, rate_factor=1.0
    ) -> np.ndarray:
        """Conductance after one pulse with cycle-to-cycle rate noise and landing imprecision, S.

        Devices whose voltage is below their threshold keep their state exactly.
        """
        g = np.asarray(g, float)
        shape = np.broadcast(g, np.asarray(v), np.asarray(width)).shape
        g = np.broadcast_to(g, shape)
        c2c = np.exp(self.rate_c2c_rel * rng.standard_normal(shape))
        nominal = self.pulse_response(g, v, width, v_set, v_reset, np.asarray(rate_factor) * c2c)
        switched = self.switching_rate(v, v_set, v_reset) != 0
        switched = np.broadcast_to(switched, shape)
        out = np.array(g, dtype=float, copy=True)
        if np.any(switched):
            out[switched] = self.sample_landing(nominal[switched], rng)
        return out

    # --- disturb -----------------------------------------------------------------------------
    def disturb_lambda(self, v, width, v_set=None, v_reset=None) -> tuple[np.ndarray, np.ndarray]:
        """Expected numbers of (SET-direction, RESET-direction) disturb events of a sub-threshold stress.

        ``lambda = disturb_rate * width * exp((|v| - v_th) / disturb_v0)`` for ``0 < |v| < v_th``
        of the voltage's polarity, 0 otherwise (at or above threshold the device switches).
        """
        v = np.asarray(v, float)
        width = np.asarray(width, float)
        vs = self.v_set if v_set is None else np.asarray(v_set, float)
        vr = self.v_reset if v_reset is None else np.asarray(v_reset, float)
        pos = (v > 0) & (v < vs)
        neg = (v < 0) & (-v < vr)
        lam_set = np.where(pos, self.disturb_rate * width * np.exp(np.minimum(v - vs, 0.0) / self.disturb_v0), 0.0)
        lam_reset = np.where(neg, self.disturb_rate * width * np.exp(np.minimum(-v - vr, 0.0) / self.disturb_v0), 0.0)
        return lam_set, lam_reset

    def apply_disturb(self, g, n_set, n_reset) -> np.ndarray:
        """State after ``n_set`` SET-direction and ``n_reset`` RESET-direction disturb events, S.

        One event: ``x -> x + step (1 - x)^p`` (SET) or ``x -> x - step x^p`` (RESET).
        """
        x = self._x(g)
        n_set = np.asarray(n_set, int)
        n_reset = np.asarray(n_reset, int)
        p, step = self.window_p, self.disturb_step
        for _ in range(int(np.max(n_set, initial=0))):
            x = np.where(n_set > 0, x + step * (1.0 - x) ** p, x)
            n_set = n_set - 1
        for _ in range(int(np.max(n_reset, initial=0))):
            x = np.where(n_reset > 0, x - step * x**p, x)
            n_reset = n_reset - 1
        return self._g(x)

    # --- per-device draws ----------------------------------------------------------------
    def sample_thresholds(self, shape: tuple[int, ...], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Per-device ``(v_set, v_reset)`` with relative spread ``v_th_d2d_rel``, V."""
        f = self.v_th_d2d_rel
        vs = self.v_set * np.maximum(1.0 + f * rng.standard_normal(shape), 0.5)
        vr = self.v_reset * np.maximum(1.0 + f * rng.standard_normal(shape), 0.5)
        return vs, vr

    def sample_rate_factors(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Per-device log-normal switching-rate factors."""
        return np.exp(self.rate_d2d_rel * rng.standard_normal(shape))

    def sample_initial(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """As-fabricated small-signal conductances, S."""
        g = self.g_init_median * np.exp(self.g_init_sigma_log * rng.standard_normal(shape))
        return np.clip(g, self.g_min, self.g_max)

    def circuit(self, g, **options) -> "CrossbarCircuit":
        """A :class:`CrossbarCircuit` of conductances ``g`` with this model's ``a`` and wires."""
        return CrossbarCircuit(g, self.a, self.r_wire_row, self.r_wire_col, **options)

    # --- chip-to-chip variation --------------------------------------------------------
    def variant(self, rng: np.random.Generator) -> "PassiveDeviceModel":
        """A chip drawn around this nominal model (wafer-level variation of the parameters)."""
        z = rng.standard_normal(13)
        g_min = self.g_min * float(np.exp(0.05 * z[1]))
        g_max = max(self.g_max * float(np.exp(0.05 * z[2])), 1.5 * g_min)
        return replace(
            self,
            a=self.a * (1 + 0.05 * z[0]) if self.a > 0 else 0.0,
            g_min=g_min,
            g_max=g_max,
            v_set=self.v_set * (1 + 0.03 * z[3]),
            v_reset=self.v_reset * (1 + 0.03 * z[4]),
            rate_set=self.rate_set * float(np.exp(0.2 * z[5])),
            rate_reset=self.rate_reset * float(np.exp(0.2 * z[6])),
            tuning_sigma_rel=self.tuning_sigma_rel * abs(1 + 0.1 * z[7]),
            read_noise_rel=self.read_noise_rel * abs(1 + 0.1 * z[8]),
            disturb_rate=self.disturb_rate * float(np.exp(0.3 * z[9])),
            g_init_median=self.g_init_median * float(np.exp(0.1 * z[10])),
            r_wire_row=self.r_wire_row * abs(1 + 0.05 * z[11]),
            r_wire_col=self.r_wire_col * abs(1 + 0.05 * z[12]),
        )

    # --- serialization -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON parameters."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PassiveDeviceModel":
        """Build from :meth:`to_dict` output; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown passive device model parameters: {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in data.items()})


# --------------------------------------------------------------------------------------------
# biasing schemes
# --------------------------------------------------------------------------------------------
def line_voltages(scheme: str, m: int, n: int, i: int, j: int, v: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column driver voltages selecting cell ``(i, j)`` at ``v`` (NaN = floating line), V."""
    base_r, base_c = _scheme_base(scheme, v)
    rows = np.full(m, base_r)
    cols = np.full(n, base_c)
    rows[i] = v
    cols[j] = 0.0
    return rows, cols


def _scheme_base(scheme: str, v: float) -> tuple[float, float]:
    """Unselected (row, column) voltages of a scheme (NaN = floating)."""
    if scheme == "V/2":
        return 0.5 * v, 0.5 * v
    if scheme == "V/3":
        return v / 3.0, 2.0 * v / 3.0
    if scheme == "ground":
        return 0.0, 0.0
    if scheme == "float":
        return math.nan, math.nan
    raise ValueError(f"unknown bias scheme {scheme!r}; known: {list(SCHEMES)}")


# --------------------------------------------------------------------------------------------
# threading: one BLAS thread per caller, two SuperLU solve threads
# --------------------------------------------------------------------------------------------
def _find_openblas_local_setters() -> list:
    """``openblas_set_num_threads_local`` of the OpenBLAS builds bundled with numpy and scipy.

    The circuit works on many small matrices and vectors (128 x 128 blocks, 32k-vectors) where
    OpenBLAS threads only synchronize; on a busy 2-core machine they slow a port build from
    0.3 s to several seconds. The setting is thread-local (OpenBLAS >= 0.3.27); when it is not
    available (other BLAS, other platforms) nothing is changed.
    """
    setters = []
    for mod in (np, scipy):
        libdir = os.path.join(os.path.dirname(os.path.dirname(mod.__file__)), mod.__name__ + ".libs")
        for path in sorted(glob.glob(os.path.join(libdir, "*openblas*"))):
            try:
                fn = ctypes.CDLL(path).openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_int]
            setters.append(fn)
    return setters


_BLAS_SETTERS = _find_openblas_local_setters()


@contextmanager
def _blas_single_thread():
    prev = [fn(1) for fn in _BLAS_SETTERS]
    try:
        yield
    finally:
        for fn, p in zip(_BLAS_SETTERS, prev):
            fn(p)


def _single_blas(method):
    """Run ``method`` with one BLAS thread in the calling thread (see above)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _blas_single_thread():
            return method(*args, **kwargs)

    return wrapper


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(
                max_workers=2,
                thread_name_prefix="labrram-splu",
                initializer=lambda: [fn(1) for fn in _BLAS_SETTERS],
            )
        return _POOL


class _Pattern:
    """A fixed sparsity pattern: COO entries scatter-added into a CSC matrix by ``np.bincount``."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> None:
        self.shape = shape
        keys = cols.astype(np.int64) * shape[0] + rows.astype(np.int64)
        uniq, self.inv = np.unique(keys, return_inverse=True)
        self.nnz = uniq.size
        self.indices = (uniq % shape[0]).astype(np.int32)
        counts = np.bincount(uniq // shape[0], minlength=shape[1])
        self.indptr = np.zeros(shape[1] + 1, dtype=np.int32)
        np.cumsum(counts, out=self.indptr[1:])

    def matrix(self, values: np.ndarray) -> sp.csc_matrix:
        data = np.bincount(self.inv, weights=values, minlength=self.nnz)
        mat = sp.csc_matrix((data, self.indices, self.indptr), shape=self.shape)
        mat.has_sorted_indices = True
        return mat


class ConvergenceError(RuntimeError):
    """The nonlinear circuit solve did not converge."""


@dataclass(frozen=True)
class CircuitSolution:
    """One operating point of the crossbar.

    Attributes
    ----------
    row_voltages, col_voltages : ndarray
        Driver-side terminal voltage of every row / column line (solved for floating lines), V.
    row_node_voltages, col_node_voltages : ndarray, shape (m, n)
        Voltage of the row / column wire at every cell, V.
    cell_voltages : ndarray, shape (m, n)
        Row node minus column node voltage of every cell, V.
    cell_currents : ndarray, shape (m, n)
        Current through every cell, row to column, A.
    row_currents, col_currents : ndarray
        Current from each line's driver into the array (0 for floating lines), A. The current a
        column's sense amplifier measures is ``-col_currents``.
    iterations : int
        Newton iterations used (0 for a linear or closed-form solve).
    residual : float
        Largest Kirchhoff current-law residual at any unknown node, A.
    """

    row_voltages: np.ndarray
    col_voltages: np.ndarray
    row_node_voltages: np.ndarray
    col_node_voltages: np.ndarray
    cell_voltages: np.ndarray
    cell_currents: np.ndarray
    row_currents: np.ndarray
    col_currents: np.ndarray
    iterations: int
    residual: float

    @property
    def sensed_currents(self) -> np.ndarray:
        """Current flowing out of each column into its (virtual-ground or driven) terminal, A."""
        return -self.col_currents


# --------------------------------------------------------------------------------------------
# topology and partitions
# --------------------------------------------------------------------------------------------
class _Topology:
    """Node numbering, wire Laplacian and cell incidence of an ``m x n`` crossbar.

    Nodes: internal row nodes (if ``r_row > 0``), internal column nodes (if ``r_col > 0``),
    then the ``m + n`` line terminals (rows first). With a zero wire resistance a line is one
    node: its terminal.
    """

    def __init__(self, m: int, n: int, r_row: float, r_col: float) -> None:
        self.m, self.n = m, n
        mn = m * n
        ii, ll = np.divmod(np.arange(mn), n)
        n_r = mn if r_row > 0 else 0
        n_c = mn if r_col > 0 else 0
        self.n_int = n_r + n_c
        self.n_all = self.n_int + m + n
        term_r = self.n_int + np.arange(m)
        term_c = self.n_int + m + np.arange(n)
        self.terminals = np.concatenate([term_r, term_c])
        self.cell_a = np.arange(mn) if n_r else term_r[ii]
        self.cell_b = n_r + np.arange(mn) if n_c else term_c[ll]
        e_u, e_v, e_g = [], [], []
        if n_r:
            g = 1.0 / r_row
            node = np.arange(mn).reshape(m, n)
            e_u += [term_r, node[:, :-1].ravel()]
            e_v += [node[:, 0], node[:, 1:].ravel()]
            e_g += [np.full(m, g), np.full(m * (n - 1), g)]
        if n_c:
            g = 1.0 / r_col
            node = n_r + np.arange(mn).reshape(m, n)
            e_u += [node[:-1, :].ravel(), node[-1, :]]
            e_v += [node[1:, :].ravel(), term_c]
            e_g += [np.full((m - 1) * n, g), np.full(n, g)]
        if e_u:
            self.edge_u = np.concatenate(e_u).astype(np.int64)
            self.edge_v = np.concatenate(e_v).astype(np.int64)
            self.edge_g = np.concatenate(e_g)
        else:
            self.edge_u = self.edge_v = np.zeros(0, np.int64)
            self.edge_g = np.zeros(0)
        self.g_wire_max = float(self.edge_g.max(initial=0.0))


class _Partition:
    """Unknown / driven split of the nodes for one set of driven line terminals.

    ``U`` = internal nodes and floating terminals (unknowns), ``D`` = driven terminals. Holds the
    wire blocks ``W_UU, W_UD, W_DU, W_DD``, the cell incidences ``P_U, P_D`` (``v = P_U x + P_D u``)
    and the pattern that assembles the small-signal matrix ``A = W_UU + P_U^T diag(G) P_U``.
    """

    def __init__(self, topo: _Topology, driven: np.ndarray) -> None:
        self.topo = topo
        self.driven = driven.copy()
        n_all = topo.n_all
        is_d = np.zeros(n_all, bool)
        is_d[topo.terminals[driven]] = True
        self.U = np.flatnonzero(~is_d)
        self.D = topo.terminals[driven]
        self.nU, self.nD = self.U.size, self.D.size
        pos = np.full(n_all, -1, np.int64)
        pos[self.U] = np.arange(self.nU)
        posd = np.full(n_all, -1, np.int64)
        posd[self.D] = np.arange(self.nD)
        mn = topo.m * topo.n
        cells = np.arange(mn)
        a_u, b_u = pos[topo.cell_a], pos[topo.cell_b]
        a_d, b_d = posd[topo.cell_a], posd[topo.cell_b]
        self.cell_aU, self.cell_bU = a_u, b_u  # -1 when that side is driven
        self.cell_aU_pad = np.where(a_u >= 0, a_u, self.nU)  # index of a zero pad entry instead of -1
        self.cell_bU_pad = np.where(b_u >= 0, b_u, self.nU)
        # incidences
        def incidence(pa, pb, ncols):
            ra, rb = pa >= 0, pb >= 0
            r = np.concatenate([cells[ra], cells[rb]])
            c = np.concatenate([pa[ra], pb[rb]])
            d = np.concatenate([np.ones(ra.sum()), -np.ones(rb.sum())])
            return sp.csr_matrix((d, (r, c)), shape=(mn, ncols))

        self.P_U = incidence(a_u, b_u, self.nU)
        self.P_D = incidence(a_d, b_d, self.nD)
        self.P_UT = self.P_U.T.tocsr()
        self.P_DT = self.P_D.T.tocsr()
        # wire blocks
        u, v, g = topo.edge_u, topo.edge_v, topo.edge_g
        L = sp.csr_matrix(
            (np.concatenate([g, g, -g, -g]), (np.concatenate([u, v, u, v]), np.concatenate([u, v, v, u]))),
            shape=(n_all, n_all),
        )
        self.W_UU = L[self.U][:, self.U].tocsr()
        self.W_UD = L[self.U][:, self.D].tocsr()
        self.W_DU = L[self.D][:, self.U].tocsr()
        self.W_DD = L[self.D][:, self.D].tocsr()
        # assembly pattern of A = W_UU + P_U^T diag(G) P_U
        wc = self.W_UU.tocoo()
        both = (a_u >= 0) & (b_u >= 0)
        ra, rb = a_u >= 0, b_u >= 0
        rows = [wc.row, a_u[ra], b_u[rb], a_u[both], b_u[both]]
        cols = [wc.col, a_u[ra], b_u[rb], b_u[both], a_u[both]]
        self._w_data = wc.data
        self._cells_ra, self._cells_rb, self._cells_both = cells[ra], cells[rb], cells[both]
        self.pattern = _Pattern(np.concatenate(rows), np.concatenate(cols), (self.nU, self.nU)) if self.nU else None

    def assemble(self, g_flat: np.ndarray) -> sp.csc_matrix:
        """Small-signal nodal matrix ``A`` at conductances ``g_flat`` (CSC)."""
        gb = g_flat[self._cells_both]
        values = np.concatenate([self._w_data, g_flat[self._cells_ra], g_flat[self._cells_rb], -gb, -gb])
        return self.pattern.matrix(values)

    def coupling(self, g_flat: np.ndarray) -> sp.csr_matrix:
        """Small-signal ``C = L[U, D] = W_UD + P_U^T diag(G) P_D``."""
        return (self.W_UD + self.P_UT @ sp.diags(g_flat) @ self.P_D).tocsr()

    def driven_block(self, g_flat: np.ndarray) -> sp.csr_matrix:
        """Small-signal ``E = L[D, D] = W_DD + P_D^T diag(G) P_D``."""
        return (self.W_DD + self.P_DT @ sp.diags(g_flat) @ self.P_D).tocsr()


# --------------------------------------------------------------------------------------------
# factorization with Woodbury updates
# --------------------------------------------------------------------------------------------
_SPLU_OPTIONS = dict(SymmetricMode=True, Equil=False, IterRefine="NOREFINE")


class _Factor:
    """Sparse LU of ``A0`` plus a Woodbury correction for cells changed since.

    ``A = A0 + U diag(delta) U^T`` with ``U`` the columns ``q_c = e_a(c) - e_b(c)`` of the changed
    cells. ``A^{-1} b = y - V (I + diag(delta) Q)^{-1} diag(delta) U^T y`` with ``y = A0^{-1} b``,
    ``V = A0^{-1} U`` and ``Q = U^T V`` (``k x k``), so each solve costs one LU solve plus
    ``O(N k)``. Repeated changes of one cell reuse its column.
    """

    def __init__(self, A: sp.csc_matrix, g_ref: np.ndarray, part: _Partition, capacity: int) -> None:
        self.lu = splu(A, permc_spec="MMD_AT_PLUS_A", options=_SPLU_OPTIONS)
        self.part = part
        self.N = A.shape[0]
        self.g_ref = g_ref.copy()
        self.capacity = capacity
        self.index: dict[int, int] = {}
        self.cells = np.zeros(capacity, np.int64)
        self.ea = np.zeros(capacity, np.int64)
        self.eb = np.zeros(capacity, np.int64)
        self.delta = np.zeros(capacity)
        self.V = np.zeros((self.N + 1, capacity))  # last row stays 0: the index of a driven side
        self.Q = np.zeros((capacity, capacity))
        self.k = 0

    @property
    def full(self) -> bool:
        return self.k >= self.capacity

    def base_solve(self, B: np.ndarray) -> np.ndarray:
        """``A0^{-1} B`` (columns solved in parallel threads: SuperLU releases the GIL)."""
        if B.ndim == 1:
            return self.lu.solve(B)
        K = B.shape[1]
        if K < 4:
            return np.column_stack([self.lu.solve(np.ascontiguousarray(B[:, c])) for c in range(K)])
        out = np.empty((self.N, K), order="F")

        def work(c: int) -> None:
            out[:, c] = self.lu.solve(np.ascontiguousarray(B[:, c]))

        list(_pool().map(work, range(K)))
        return out

    def _ut(self, Y: np.ndarray) -> np.ndarray:
        """``U^T Y`` for the changed cells (``Y`` padded with a zero row)."""
        k = self.k
        Yp = np.concatenate([Y, np.zeros((1,) + Y.shape[1:])], axis=0)
        return Yp[self.ea[:k]] - Yp[self.eb[:k]]

    def correct(self, Y: np.ndarray) -> np.ndarray:
        """Turn ``A0^{-1} B`` into ``A^{-1} B`` (in place)."""
        k = self.k
        if k == 0:
            return Y
        d = self.delta[:k]
        H = np.eye(k) + d[:, None] * self.Q[:k, :k]
        T = self._ut(Y)
        coef = np.linalg.solve(H, d[:, None] * T if T.ndim == 2 else d * T)
        Y -= self.V[: self.N, :k] @ coef
        return Y

    def solve(self, B: np.ndarray) -> np.ndarray:
        return self.correct(self.base_solve(B))

    def column(self, cell: int, aU: int, bU: int) -> tuple[np.ndarray, int]:
        """``A0^{-1} q_cell`` (from the Woodbury store if the cell is in it) and its slot or -1."""
        slot = self.index.get(cell, -1)
        if slot >= 0:
            return self.V[: self.N, slot].copy(), slot
        q = np.zeros(self.N)
        if aU >= 0:
            q[aU] += 1.0
        if bU >= 0:
            q[bU] -= 1.0
        return self.lu.solve(q), -1

    def add(self, cell: int, aU: int, bU: int, g_new: float, v0: np.ndarray | None = None) -> None:
        """Record that cell ``cell`` now has conductance ``g_new`` (``v0 = A0^{-1} q`` if known)."""
        slot = self.index.get(cell, -1)
        if slot < 0:
            if self.full:
                raise RuntimeError("Woodbury store full: refactor first")
            if v0 is None:
                v0, _ = self.column(cell, aU, bU)
            slot = self.k
            self.k += 1
            self.index[cell] = slot
            self.cells[slot] = cell
            self.ea[slot] = aU if aU >= 0 else self.N
            self.eb[slot] = bU if bU >= 0 else self.N
            self.V[: self.N, slot] = v0
            col = self.V[self.ea[: self.k], slot] - self.V[self.eb[: self.k], slot]  # U^T A0^-1 q
            self.Q[: self.k, slot] = col
            self.Q[slot, : self.k] = col
        self.delta[slot] = g_new - self.g_ref[cell]


# --------------------------------------------------------------------------------------------
# port responses by dense block elimination (both wire resistances > 0)
# --------------------------------------------------------------------------------------------
def _thomas_factor(d: np.ndarray, g: float) -> tuple[np.ndarray, np.ndarray]:
    """Thomas factors of tridiagonal systems: diagonal ``d`` (batch, chain), off-diagonals ``-g``."""
    n = d.shape[1]
    cp = np.empty_like(d)
    inv = np.empty_like(d)
    inv[:, 0] = 1.0 / d[:, 0]
    cp[:, 0] = -g * inv[:, 0]
    for l in range(1, n):
        inv[:, l] = 1.0 / (d[:, l] + g * cp[:, l - 1])
        cp[:, l] = -g * inv[:, l]
    return cp, inv


def _thomas_solve(cp: np.ndarray, inv: np.ndarray, g: float, B: np.ndarray) -> np.ndarray:
    """Solve in place; ``B`` has shape (batch, chain, rhs)."""
    n = B.shape[1]
    B[:, 0] *= inv[:, 0, None]
    for l in range(1, n):
        t = B[:, l]
        t += g * B[:, l - 1]
        t *= inv[:, l, None]
    for l in range(n - 2, -1, -1):
        B[:, l] -= cp[:, l, None] * B[:, l + 1]
    return B


def _spd_inverse(M: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix (Cholesky; LU if that fails)."""
    c, info = lapack.dpotrf(M, lower=1, clean=0)
    if info == 0:
        inv, info = lapack.dpotri(c, lower=1, overwrite_c=1)
        if info == 0:
            lower = np.tril(inv)
            return lower + np.tril(inv, -1).T
    return np.linalg.inv(M)


def _port_responses_block(G: np.ndarray, r_row: float, r_col: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell-voltage responses ``Zc`` (m, n, m+n) and port matrix ``Y`` of the linear network.

    Eliminates every row chain (tridiagonal ``R_i = g_row T + diag(G_i)``, Thomas algorithm),
    leaving the column nodes as a block-tridiagonal system with dense ``n x n`` blocks
    ``C_i = diag(G_i + column-wire terms) - diag(G_i) R_i^{-1} diag(G_i)`` and off-diagonal
    blocks ``-g_col I``, solved by block Gaussian elimination (``S_i = C_i - g_col^2 S_{i-1}^{-1}``)
    for all ``m + n`` unit port drives at once (BLAS-3); the row nodes follow from
    ``r_i = R_i^{-1} (g_row u_i e_0 + G_i c_i)``.
    """
    m, n = G.shape
    P = m + n
    gr, gc = 1.0 / r_row, 1.0 / r_col
    tdiag = np.full(n, 2.0)
    tdiag[-1] = 1.0
    if n == 1:
        tdiag[0] = 1.0
    d = gr * tdiag[None, :] + G  # (m, n)
    cp, inv = _thomas_factor(d, gr)
    idx = np.arange(n)
    # X = R_i^{-1} [diag(G_i) | g_row e_0]
    B = np.zeros((m, n, n + 1))
    B[:, idx, idx] = G
    B[:, 0, n] = gr
    X = _thomas_solve(cp, inv, gr, B)
    C = -(G[:, :, None] * X[:, :, :n])  # -diag(G) R^{-1} diag(G): (i, l, l')
    cd = np.full(m, 2.0 * gc)
    cd[0] = gc
    C[:, idx, idx] += G + cd[:, None]
    # right-hand sides, then forward elimination and back substitution in place (y -> c)
    c = np.zeros((m, n, P))
    c[np.arange(m), :, np.arange(m)] = G * X[:, :, n]
    c[m - 1, idx, m + idx] += gc
    Sinv = np.empty((m, n, n))
    for i in range(m):
        if i == 0:
            sig = C[0]
        else:
            sig = C[i] - (gc * gc) * Sinv[i - 1]
            c[i, :, : i + 1] += gc * (Sinv[i - 1] @ c[i - 1, :, : i + 1])
        Sinv[i] = _spd_inverse(sig)
    c[m - 1] = Sinv[m - 1] @ c[m - 1]
    for i in range(m - 2, -1, -1):
        rhs = c[i]
        rhs += gc * c[i + 1]
        c[i] = Sinv[i] @ rhs
    # row nodes, then cell voltages r - c (in place)
    Zc = G[:, :, None] * c
    Zc[np.arange(m), 0, np.arange(m)] += gr
    _thomas_solve(cp, inv, gr, Zc)  # now the row node voltages
    Y = np.empty((P, P))
    Y[:m] = -gr * Zc[:, 0, :]
    Y[np.arange(m), np.arange(m)] += gr
    Y[m:] = -gc * c[m - 1]
    Y[m + idx, m + idx] += gc
    Zc -= c
    Y = 0.5 * (Y + Y.T)
    return Zc, Y


class _Ports:
    """Linear port responses: ``Zc[i, j, p]`` cell voltage and ``Y[p, q]`` terminal current per unit drive."""

    def __init__(self, Zc: np.ndarray, Y: np.ndarray) -> None:
        self.Zc = Zc  # C-contiguous (m, n, P)
        self.Y = Y
        self.sm_updates = 0
        self._pinv: np.ndarray | None = None

    def pinv(self) -> np.ndarray:
        """Moore–Penrose inverse of the (singular, Laplacian) port matrix ``Y``."""
        if self._pinv is None:
            P = self.Y.shape[0]
            J = np.full((P, P), 1.0 / P)
            self._pinv = np.linalg.inv(self.Y + J) - J
        return self._pinv


# --------------------------------------------------------------------------------------------
# the circuit
# --------------------------------------------------------------------------------------------
class CrossbarCircuit:
    """Exact nodal-analysis model of an ``m x n`` passive crossbar with wire resistance.

    Parameters
    ----------
    g : array_like, shape (m, n)
        Small-signal conductances of the devices, S (> 0).
    a : float or array_like
        sinh nonlinearity of every device (scalar or (m, n)), 1/V; 0 = linear devices.
    r_row, r_col : float
        Wire resistance of one row / column segment, ohm (0 = ideal line).
    refactor_after : int
        Woodbury capacity: after this many distinct changed cells the LU is recomputed at the
        next solve (see *Updates*).
    port_update_max : int
        Largest batch of changed cells that updates the cached port responses in place;
        bigger batches drop them (rebuilt when next needed).

    Notes
    -----
    **Equations.** With unknown node voltages ``x`` (internal wire nodes and floating line
    terminals) and driven terminal voltages ``u``, Kirchhoff's current law reads ::

        F(x) = W_UU x + W_UD u + P_U^T I(v) = 0,     v = P_U x + P_D u,
        I(v) = (G / a) sinh(a v),

    ``W`` the wire Laplacian (segment conductances ``1/r``) and ``P`` the signed cell incidence.
    ``F`` is the gradient of the strictly convex co-content
    ``E(x) = 1/2 [x; u]^T W [x; u] + sum_c (G_c / a^2)(cosh(a v_c) - 1)``.

    **Linear algebra.** The small-signal matrix ``A = W_UU + P_U^T diag(G) P_U`` (SPD) is
    assembled from a precomputed pattern (``np.bincount`` scatter into CSC) and factorized once
    with SuperLU (minimum-degree ordering on ``A + A^T``). The nonlinear solve is Newton's
    method on ``E`` whose Jacobian ``J = A + P_U^T diag(G (cosh(a v) - 1)) P_U`` is never
    factorized: each Newton system is solved by conjugate gradients preconditioned with the
    factorization of ``A`` (``J - A`` is positive semidefinite, so ``A^{-1} J`` has eigenvalues
    ``>= 1`` and CG needs few iterations), followed by a line search on ``dE/dt``. The first
    Newton iterate is the linear solution, so reads at small ``a V`` take 1–3 solves.

    **Updates.** :meth:`update` changes one cell as a rank-1 modification
    ``A' = A + delta q q^T`` kept in Woodbury form on top of the existing LU (one LU solve per
    new cell, then ``O(N k)`` per solve for ``k`` changed cells). After ``refactor_after``
    distinct cells the LU is recomputed at the next solve (the refactor costs about as much as
    60 solves at 128 x 128, the Woodbury term by then about half a solve).

    **Whole-array reads.** For the V/2, V/3 and ground schemes every line is driven and a
    selection only changes the voltages of two terminals, so the exact linear response of every
    selection is a combination of the ``m + n`` unit port responses: ``Zc`` (cell voltages) and
    ``Y`` (terminal currents, summed from cell currents to avoid cancellation against the wire
    conductances). These are computed once per state, by dense block elimination when both
    wire resistances are > 0 (row chains by the Thomas algorithm, then a block-tridiagonal
    sweep over the column nodes with BLAS-3), else with the sparse LU, and kept current under
    small updates by Sherman–Morrison (``Zc' = Zc - alpha (M q) s^T``, ``Y' = Y + alpha s s^T``,
    ``s = Zc[cell]``, ``alpha = delta / (1 + delta q^T A^{-1} q)``).

    The sinh nonlinearity is a correction of that exact linear solution. First order (Born):
    the excess current ``eta_c(v0)`` of each cell at its linear voltage changes the sensed
    current by ``-Zc[c, col] eta_c`` (reciprocity). Second order: on the selected row and
    column, where the excess currents live, the IR drop they cause along the wires is fed back,
    ``v1 = v0 - K eta(v0)`` with the ideal-chain Green's functions ``K`` (a second chord
    iteration with the wire-only coupling), and ``eta(v1)`` replaces ``eta(v0)``. Cells off the
    selected lines are expanded to first order around the unselected (base) state. The result
    is exact for linear devices and for ideal wires; the error is third order in
    nonlinearity x IR drop. Measured against one exact Newton solve per cell, worst cases with
    G uniform in 5–100 uS, ``a = 3 /V``:

    ============================  ===========  ===========  ===========  ===========
    array, wire, IR-drop effect    V/2          V/3          ground       float
    ============================  ===========  ===========  ===========  ===========
    16x16, 3 ohm, a V = 0.6        1.3e-6       6e-7         8e-6         1.4e-4
    128x128, 1 ohm, 30-90 %, 0.6   1.4e-5       4e-6         2.6e-4       --
    128x128, 1 ohm, a V = 1.2      2.2e-4       5e-5         4.6e-3       --
    ============================  ===========  ===========  ===========  ===========

    ``method="auto"`` therefore uses this path for ``a |V| <= 1.2`` (V/2, V/3) or ``<= 0.6``
    (ground, float) and one exact Newton solve per cell beyond. Cost: ``O(m n (m + n))`` for
    all ``m n`` selections (``O((m n)^2 (m + n))`` for float, whose sneak paths involve every
    cell: practical up to about 64 x 64).
    """

    def __init__(
        self,
        g,
        a=0.0,
        r_row: float = 0.0,
        r_col: float = 0.0,
        *,
        refactor_after: int = 64,
        port_update_max: int = 32,
    ) -> None:
        g = np.array(g, dtype=float)
        if g.ndim != 2 or g.size == 0:
            raise ValueError(f"conductances must be a non-empty (m, n) array, got shape {g.shape}")
        if not np.all(np.isfinite(g)) or np.any(g <= 0):
            raise ValueError("conductances must be finite and > 0 S")
        a_arr = np.asarray(a, dtype=float)
        if a_arr.ndim not in (0, 2) or (a_arr.ndim == 2 and a_arr.shape != g.shape):
            raise ValueError("a must be a scalar or have the shape of g")
        if not np.all(np.isfinite(a_arr)) or np.any(a_arr < 0):
            raise ValueError("a must be finite and >= 0 (1/V)")
        for name, r in (("r_row", r_row), ("r_col", r_col)):
            if not math.isfinite(r) or r < 0:
                raise ValueError(f"{name} must be a finite resistance >= 0 ohm, got {r}")
        if refactor_after < 1 or port_update_max < 0:
            raise ValueError("refactor_after must be >= 1 and port_update_max >= 0")
        self.m, self.n = g.shape
        self.r_row, self.r_col = float(r_row), float(r_col)
        self._a = float(a_arr) if a_arr.ndim == 0 else a_arr.copy()
        self._a_flat = self._a if a_arr.ndim == 0 else self._a.ravel()
        self._linear = bool(np.all(a_arr == 0))
        self._g = g
        self._gf = self._g.reshape(-1)  # view
        self.refactor_after = int(refactor_after)
        self.port_update_max = int(port_update_max)
        self._topo = _Topology(self.m, self.n, self.r_row, self.r_col)
        self._parts: dict[bytes, _Partition] = {}
        self._std = self._partition(np.ones(self.m + self.n, bool))
        self._factor: _Factor | None = None
        self._ports_cache: _Ports | None = None
        self._version = 0
        self._A_cache: tuple[int, bytes, sp.csc_matrix] | None = None
        self._float_factor: tuple[int, bytes, _Factor] | None = None
        self.stats = {"factorizations": 0, "port_builds": 0, "solves": 0, "sm_updates": 0}

    # --- state --------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.m, self.n

    @property
    def g(self) -> np.ndarray:
        """Present small-signal conductances (read-only view), S."""
        v = self._g.view()
        v.flags.writeable = False
        return v

    @property
    def a(self):
        """sinh nonlinearity (scalar or per-device array), 1/V."""
        return self._a

    @property
    def has_port_responses(self) -> bool:
        """Whether the linear port responses of the present state are cached (fast reads)."""
        return self._ports_cache is not None

    def _check_cell(self, i: int, j: int) -> tuple[int, int]:
        i, j = int(i), int(j)
        if not (0 <= i < self.m and 0 <= j < self.n):
            raise IndexError(f"cell ({i}, {j}) outside the {self.m}x{self.n} array")
        return i, j

    @staticmethod
    def _check_scheme(scheme: str) -> str:
        if scheme not in SCHEMES:
            raise ValueError(f"unknown bias scheme {scheme!r}; known: {list(SCHEMES)}")
        return scheme

    def _partition(self, driven: np.ndarray) -> _Partition:
        key = np.packbits(driven).tobytes() + bytes([len(driven) % 256])
        part = self._parts.get(key)
        if part is None:
            if len(self._parts) > 8:
                self._parts = {k: p for k, p in self._parts.items() if p.driven.all()}
            part = _Partition(self._topo, driven)
            self._parts[key] = part
        return part

    # --- assembly and factorization ----------------------------------------------------
    def assemble(self, driven: np.ndarray | None = None) -> sp.csc_matrix:
        """Small-signal nodal matrix ``A`` (CSC) of the unknown nodes (all lines driven by default)."""
        part = self._std if driven is None else self._partition(np.asarray(driven, bool))
        if part.nU == 0:
            return sp.csc_matrix((0, 0))
        return part.assemble(self._gf)

    def _A(self, part: _Partition) -> sp.csc_matrix:
        key = part.driven.tobytes()
        if self._A_cache is not None and self._A_cache[0] == self._version and self._A_cache[1] == key:
            return self._A_cache[2]
        A = part.assemble(self._gf)
        self._A_cache = (self._version, key, A)
        return A

    @_single_blas
    def factorize(self) -> None:
        """(Re)factorize the all-lines-driven small-signal matrix at the present conductances."""
        if self._std.nU == 0:
            self._factor = None
            return
        self._factor = _Factor(self._A(self._std), self._gf, self._std, self.refactor_after)
        self.stats["factorizations"] += 1

    def _std_factor(self) -> _Factor:
        if self._factor is None or self._factor.full:
            self.factorize()
        return self._factor

    def _linear_solver(self, part: _Partition) -> _Factor:
        if part is self._std:
            return self._std_factor()
        key = part.driven.tobytes()
        ff = self._float_factor
        if ff is None or ff[0] != self._version or ff[1] != key:
            ff = (self._version, key, _Factor(part.assemble(self._gf), self._gf, part, 1))
            self._float_factor = ff
            self.stats["factorizations"] += 1
        return ff[2]

    @_single_blas
    def solve_linear(self, b: np.ndarray) -> np.ndarray:
        """``A^{-1} b`` for the all-lines-driven small-signal matrix (LU + Woodbury)."""
        self.stats["solves"] += 1
        return self._std_factor().solve(np.asarray(b, float))

    # --- updates -------------------------------------------------------------------------
    def update(self, i: int, j: int, new_g: float) -> None:
        """Set the small-signal conductance of cell ``(i, j)`` (rank-1 update, see class notes)."""
        i, j = self._check_cell(i, j)
        self.update_cells(np.array([i]), np.array([j]), np.array([float(new_g)]))

    @_single_blas
    def update_cells(self, rows, cols, new_g) -> None:
        """Set the conductances of several cells (the last value of a repeated cell wins)."""
        rows = np.atleast_1d(np.asarray(rows, np.int64))
        cols = np.atleast_1d(np.asarray(cols, np.int64))
        new_g = np.broadcast_to(np.asarray(new_g, float), rows.shape).copy()
        if rows.shape != cols.shape:
            raise ValueError("rows and cols must have the same shape")
        if rows.size and (rows.min() < 0 or rows.max() >= self.m or cols.min() < 0 or cols.max() >= self.n):
            raise IndexError("cell address outside the array")
        if not np.all(np.isfinite(new_g)) or np.any(new_g <= 0):
            raise ValueError("conductances must be finite and > 0 S")
        flat = rows * self.n + cols
        # last write wins
        _, last = np.unique(flat[::-1], return_index=True)
        keep = np.sort(flat.size - 1 - last)
        flat, new_g = flat[keep], new_g[keep]
        changed = new_g != self._gf[flat]
        flat, new_g = flat[changed], new_g[changed]
        if flat.size == 0:
            return
        part = self._std
        ports = self._ports_cache
        if ports is not None and flat.size > self.port_update_max:
            self._ports_cache = ports = None
        fac = self._factor
        if fac is not None and (fac.k + sum(int(c) not in fac.index for c in flat)) > fac.capacity:
            self._factor = fac = None  # too many: refactor lazily at the new state
        if ports is None and fac is None:
            self._gf[flat] = new_g
            self._version += 1
            return
        for c, gn in zip(flat.tolist(), new_g.tolist()):
            aU, bU = int(part.cell_aU[c]), int(part.cell_bU[c])
            delta = gn - self._gf[c]
            if ports is not None:
                if aU >= 0 or bU >= 0:
                    fac = self._std_factor()
                    v0, slot = fac.column(c, aU, bU)
                    u = fac.correct(v0.copy())  # A_old^{-1} q
                    mu = (u[aU] if aU >= 0 else 0.0) - (u[bU] if bU >= 0 else 0.0)
                    up = np.concatenate([u, [0.0]])
                    Mq = up[part.cell_aU_pad] - up[part.cell_bU_pad]  # cell-voltage response to q
                else:
                    v0, mu, Mq = None, 0.0, None
                alpha = delta / (1.0 + delta * mu)
                P = self.m + self.n
                Zf = ports.Zc.reshape(-1, P)
                s = Zf[c].copy()
                if Mq is not None:
                    # in-place rank-1 update of Zc^T (Fortran view of the C-ordered array)
                    ZT = Zf.T
                    res = blas.dger(-alpha, s, Mq, a=ZT, overwrite_a=1)
                    if res is not ZT and not np.shares_memory(res, ZT):  # pragma: no cover - BLAS copied
                        Zf[:] = res.T
                ports.Y += alpha * np.outer(s, s)
                ports._pinv = None
                ports.sm_updates += 1
                self.stats["sm_updates"] += 1
                self._gf[c] = gn
                self._version += 1
                if fac is not None and (aU >= 0 or bU >= 0):
                    fac.add(c, aU, bU, gn, v0 if slot < 0 else None)
            else:
                self._gf[c] = gn
                self._version += 1
                if aU >= 0 or bU >= 0:
                    fac = self._factor
                    if fac is not None:
                        fac.add(c, aU, bU, gn)
        self._version += 1

    def set_conductances(self, g) -> None:
        """Replace every conductance (drops the factorization and port responses)."""
        g = np.asarray(g, float)
        if g.shape != (self.m, self.n):
            raise ValueError(f"expected shape {(self.m, self.n)}, got {g.shape}")
        if not np.all(np.isfinite(g)) or np.any(g <= 0):
            raise ValueError("conductances must be finite and > 0 S")
        self._g[:] = g
        self._version += 1
        self._factor = None
        self._ports_cache = None

    # --- the exact (Newton) solve ------------------------------------------------------------
    @_single_blas
    def solve(self, row_v, col_v, *, rtol: float = 1e-10, max_iter: int = 50) -> CircuitSolution:
        """Operating point for driver voltages ``row_v`` (m,) and ``col_v`` (n,); NaN = floating.

        Newton's method with conjugate-gradient inner solves preconditioned by the small-signal
        factorization (class notes). Converged when the largest KCL residual is below
        ``rtol`` times the largest cell current (or the rounding floor of the wire currents).
        """
        row_v = np.asarray(row_v, float).reshape(-1)
        col_v = np.asarray(col_v, float).reshape(-1)
        if row_v.shape != (self.m,) or col_v.shape != (self.n,):
            raise ValueError(f"need {self.m} row and {self.n} column voltages")
        u_all = np.concatenate([row_v, col_v])
        driven = ~np.isnan(u_all)
        if not driven.any():
            raise ValueError("at least one line must be driven")
        if np.any(np.isinf(u_all)):
            raise ValueError("line voltages must be finite (NaN = floating)")
        part = self._std if driven.all() else self._partition(driven)
        uD = u_all[driven]
        g, a = self._gf, self._a_flat
        iters, resid = 0, 0.0
        if part.nU == 0:
            x = np.zeros(0)
            v = part.P_D @ uD
        else:
            fac = self._linear_solver(part)
            A = self._A(part)
            C = part.coupling(g)
            x = fac.solve(-(C @ uD))
            self.stats["solves"] += 1
            base = part.W_UD @ uD
            v = part.P_U @ x + part.P_D @ uD
            if self._linear:
                F = base + part.W_UU @ x + part.P_UT @ (g * v)
                resid = float(np.max(np.abs(F), initial=0.0))
            else:
                x, v, iters, resid = self._newton(part, fac, A, base, uD, x, rtol, max_iter)
        i_cell = device_current(g, a, v)
        I_D = part.W_DU @ x + part.W_DD @ uD + part.P_DT @ i_cell if part.nU else part.W_DD @ uD + part.P_DT @ i_cell
        term = np.zeros(self.m + self.n)
        term[driven] = I_D
        # voltages of every node
        allv = np.empty(self._topo.n_all)
        allv[part.U] = x
        allv[part.D] = uD
        t = self._topo
        shape = (self.m, self.n)
        return CircuitSolution(
            row_voltages=allv[t.terminals[: self.m]].copy(),
            col_voltages=allv[t.terminals[self.m :]].copy(),
            row_node_voltages=allv[t.cell_a].reshape(shape),
            col_node_voltages=allv[t.cell_b].reshape(shape),
            cell_voltages=v.reshape(shape),
            cell_currents=i_cell.reshape(shape),
            row_currents=term[: self.m],
            col_currents=term[self.m :],
            iterations=iters,
            residual=resid,
        )

    def _newton(self, part, fac, A, base, uD, x, rtol, max_iter):
        g, a = self._gf, self._a_flat
        PD_u = part.P_D @ uD

        def residual(x):
            v = part.P_U @ x + PD_u
            return base + part.W_UU @ x + part.P_UT @ device_current(g, a, v), v

        # rounding floor of a KCL sum: wire currents g_wire * u cancel down to device currents
        u_max = max(float(np.max(np.abs(uD))), 1e-30)
        floor = 64 * np.finfo(float).eps * max(self._topo.g_wire_max, float(g.max())) * u_max
        F, v = residual(x)
        for it in range(1, max_iter + 1):
            i_scale = float(np.max(np.abs(device_current(g, a, v)), initial=0.0))
            tol = max(rtol * i_scale, floor)
            fn = float(np.max(np.abs(F)))
            if fn <= tol:
                return x, v, it - 1, fn
            dg = _device_excess_slope(g, a, v)  # J = A + P^T diag(dg) P

            def jmv(y):
                py = part.P_U @ y
                return A @ y + part.P_UT @ (dg * py)

            dx = self._pcg(jmv, -F, fac, rel=min(0.1, max(1e-6, math.sqrt(fn / max(i_scale, 1e-300)))))
            slope0 = float(F @ dx)
            if not slope0 < 0:  # not a descent direction (inexact CG): fall back to the preconditioned gradient
                dx = -fac.solve(F)
                slope0 = float(F @ dx)
            t = 1.0
            for _ in range(40):
                F_new, v_new = residual(x + t * dx)
                if float(F_new @ dx) <= 0.5 * abs(slope0):
                    break
                t *= 0.5
            x = x + t * dx
            F, v = F_new, v_new
            if t * float(np.max(np.abs(dx))) <= 1e-15 * max(float(np.max(np.abs(uD))), 1e-30):
                fn = float(np.max(np.abs(F)))
                if fn <= 100 * tol:
                    return x, v, it, fn
        fn = float(np.max(np.abs(F)))
        if fn <= 100 * max(rtol * float(np.max(np.abs(device_current(g, a, v)), initial=0.0)), floor):
            return x, v, max_iter, fn
        raise ConvergenceError(
            f"crossbar solve did not converge in {max_iter} Newton iterations (residual {fn:.3e} A)"
        )

    def _pcg(self, jmv, b, fac, rel: float, max_iter: int = 200) -> np.ndarray:
        x = np.zeros_like(b)
        r = b.copy()
        z = fac.solve(r)
        self.stats["solves"] += 1
        p = z.copy()
        rz = float(r @ z)
        bnorm = math.sqrt(abs(rz))
        if bnorm == 0:
            return x
        for _ in range(max_iter):
            Ap = jmv(p)
            pAp = float(p @ Ap)
            if pAp <= 0:
                break
            alpha = rz / pAp
            x += alpha * p
            r -= alpha * Ap
            z = fac.solve(r)
            self.stats["solves"] += 1
            rz_new = float(r @ z)
            if math.sqrt(abs(rz_new)) <= rel * bnorm:
                break
            p = z + (rz_new / rz) * p
            rz = rz_new
        return x

    # --- reads, MVM, write voltages ----------------------------------------------------------
    def read_cell(self, i: int, j: int, v_read: float, scheme: str = "V/2") -> float:
        """Current measured at column ``j`` when cell ``(i, j)`` is read at ``v_read`` (exact), A.

        The sense amplifier holds column ``j`` at 0 V; the measured current includes every
        sneak path and half-selected cell the scheme leaves on column ``j``.
        """
        i, j = self._check_cell(i, j)
        scheme = self._check_scheme(scheme)
        v_read = self._check_voltage(v_read)
        rv, cv = line_voltages(scheme, self.m, self.n, i, j, v_read)
        return float(self.solve(rv, cv).sensed_currents[j])

    @staticmethod
    def _check_voltage(v) -> float:
        v = float(v)
        if not math.isfinite(v):
            raise ValueError("voltage must be finite")
        return v

    def cell_voltages(self, i: int, j: int, v: float, scheme: str = "V/2") -> np.ndarray:
        """Voltage across every cell (row minus column node) while ``(i, j)`` is written at ``v``, V.

        Exact nonlinear solve with wire resistance; half-selected cells see about ``v/2`` (V/2)
        or ``±v/3`` (V/3) minus their IR drops.
        """
        i, j = self._check_cell(i, j)
        scheme = self._check_scheme(scheme)
        rv, cv = line_voltages(scheme, self.m, self.n, i, j, self._check_voltage(v))
        return self.solve(rv, cv).cell_voltages.copy()

    def mvm(self, v_rows, v_cols=None, *, return_solution: bool = False):
        """Column currents with rows driven at ``v_rows`` and columns held at ``v_cols`` (default 0), A.

        The current of column ``j`` is the current its virtual-ground amplifier sinks,
        ``sum_i I_ij`` in the ideal-wire limit, with IR drops and device nonlinearity exact.
        """
        v_rows = np.asarray(v_rows, float)
        if v_rows.shape != (self.m,):
            raise ValueError(f"mvm needs {self.m} row voltages, got shape {v_rows.shape}")
        v_cols = np.zeros(self.n) if v_cols is None else np.asarray(v_cols, float)
        if v_cols.shape != (self.n,):
            raise ValueError(f"mvm needs {self.n} column voltages")
        if not (np.all(np.isfinite(v_rows)) and np.all(np.isfinite(v_cols))):
            raise ValueError("mvm voltages must be finite")
        sol = self.solve(v_rows, v_cols)
        return sol if return_solution else sol.sensed_currents.copy()

    # --- whole-array reads ---------------------------------------------------------------------
    def port_responses(self) -> tuple[np.ndarray, np.ndarray]:
        """Linear port responses ``(Zc, Y)``: ``Zc[i, j, p]`` is the voltage across cell ``(i, j)``
        and ``Y[p, q]`` the current from terminal ``p`` into the array for 1 V on terminal ``q``
        (all others at 0). Terminals are the rows, then the columns."""
        P = self._ports()
        return P.Zc, P.Y

    @_single_blas
    def _ports(self) -> _Ports:
        if self._ports_cache is not None:
            return self._ports_cache
        m, n, part = self.m, self.n, self._std
        if self.r_row > 0 and self.r_col > 0:
            Zc, Y = _port_responses_block(self._g, self.r_row, self.r_col)
        elif part.nU == 0:
            Zc = part.P_D.toarray().reshape(m, n, m + n)
            Y = part.driven_block(self._gf).toarray()
        else:
            C = part.coupling(self._gf)
            Z = -self._std_factor().solve(C.toarray())
            Zc = np.ascontiguousarray((part.P_U @ Z + part.P_D.toarray()).reshape(m, n, m + n))
            Y = part.driven_block(self._gf).toarray() + (C.T @ Z)
            Y = 0.5 * (Y + Y.T)
        # terminal currents as sums of cell currents: free of the cancellation in g_wire (1 - x_end)
        Y = np.empty((m + n, m + n))
        Y[:m] = np.einsum("ilp,il->ip", Zc, self._g)
        Y[m:] = -np.einsum("kjp,kj->jp", Zc, self._g)
        Y = 0.5 * (Y + Y.T)
        self.stats["port_builds"] += 1
        self._ports_cache = _Ports(Zc, Y)
        return self._ports_cache

    def read_all(self, v_read: float, scheme: str = "V/2", *, method: str = "auto", return_column_sq: bool = False):
        """Cell-by-cell read of the whole array: (m, n) currents measured at the selected columns, A.

        ``method``: ``"born"`` (exact linear network plus first-order nonlinear correction, see
        class notes; fast), ``"exact"`` (one Newton solve per cell; slow, for validation) or
        ``"auto"`` (``"born"`` within its validated range, see class notes). ``return_column_sq`` also returns
        ``sum_k I_kj^2`` over the cells of the sensed column (for independent per-device noise).
        """
        rows, cols = np.divmod(np.arange(self.m * self.n), self.n)
        out = self.read_cells(rows, cols, v_read, scheme, method=method, return_column_sq=return_column_sq)
        if return_column_sq:
            return out[0].reshape(self.m, self.n), out[1].reshape(self.m, self.n)
        return out.reshape(self.m, self.n)

    @_single_blas
    def read_cells(
        self,
        rows,
        cols,
        v_read: float,
        scheme: str = "V/2",
        *,
        method: str = "auto",
        return_column_sq: bool = False,
    ):
        """Currents measured when each listed cell is selected in turn (see :meth:`read_all`), A."""
        rows = np.atleast_1d(np.asarray(rows, np.int64)).ravel()
        cols = np.atleast_1d(np.asarray(cols, np.int64)).ravel()
        if rows.shape != cols.shape:
            raise ValueError("rows and cols must have the same shape")
        if rows.size and (rows.min() < 0 or rows.max() >= self.m or cols.min() < 0 or cols.max() >= self.n):
            raise IndexError("cell address outside the array")
        scheme = self._check_scheme(scheme)
        v = self._check_voltage(v_read)
        if method not in ("auto", "born", "exact"):
            raise ValueError(f"unknown read method {method!r}")
        if method == "auto":
            a_max = float(np.max(self._a))
            method = "born" if a_max * abs(v) <= _BORN_LIMIT[scheme] else "exact"
        if rows.size == 0:
            empty = np.zeros(0)
            return (empty, empty) if return_column_sq else empty
        if v == 0.0:
            z = np.zeros(rows.size)
            return (z, z.copy()) if return_column_sq else z
        if method == "exact":
            cur = np.empty(rows.size)
            sq = np.empty(rows.size)
            for k, (i, j) in enumerate(zip(rows.tolist(), cols.tolist())):
                rv, cv = line_voltages(scheme, self.m, self.n, i, j, v)
                sol = self.solve(rv, cv)
                cur[k] = sol.sensed_currents[j]
                sq[k] = float(np.sum(sol.cell_currents[:, j] ** 2))
        elif scheme == "float":
            cur, sq = self._born_float(rows, cols, v)
        elif self.r_row == 0 and self.r_col == 0:
            cur, sq = self._ideal_driven(rows, cols, v, scheme)
        else:
            cur, sq = self._born_driven(rows, cols, v, scheme)
        return (cur, sq) if return_column_sq else cur

    def _ideal_driven(self, rows, cols, v, scheme):
        """Closed form for ideal wires: ``I = sum_k I_kj(u_k) - I_ij(u_base) + I_ij(v)`` (exact)."""
        ur, _ = _scheme_base(scheme, v)
        g, a = self._g, self._a
        f_base = device_current(g, a, np.full_like(g, ur))
        f_sel = device_current(g, a, np.full_like(g, v))
        colsum = f_base.sum(axis=0)
        colsq = (f_base**2).sum(axis=0)
        cur = colsum[cols] - f_base[rows, cols] + f_sel[rows, cols]
        sq = colsq[cols] - f_base[rows, cols] ** 2 + f_sel[rows, cols] ** 2
        return cur, sq

    def _green_row(self) -> np.ndarray:
        """Row-wire Green's function ``K_row[l, l'] = r_row (min(l, l') + 1)``: drop of row node
        ``l`` per ampere drawn at node ``l'`` (driver at the column-0 end), ohm."""
        idx = np.arange(self.n)
        return self.r_row * (np.minimum.outer(idx, idx) + 1.0)

    def _green_col(self) -> np.ndarray:
        """Column-wire Green's function ``K_col[k, k'] = r_col (m - max(k, k'))`` (terminal at row m-1), ohm."""
        idx = np.arange(self.m)
        return self.r_col * (self.m - np.maximum.outer(idx, idx))

    def _born_driven(self, rows, cols, v, scheme):
        """Linear port solution + nonlinear correction for schemes that drive every line.

        First order: ``I = I_lin - sum_c Zc[c, col] eta_c(v0_c)`` with ``v0`` the linear cell
        voltages. Second order, on the selected row and column (where ``eta`` lives): the cell
        voltages are corrected by the IR drop the excess currents cause along the wires,
        ``v1 = v0 - K eta(v0)`` with ``K`` the Green's function of the ideal-line chains
        (``r min(l, l')`` along a row, ``r (m - max(k, k'))`` along a column), and ``eta(v1)``
        follows from ``eta(v0)`` by its Taylor series to second order in the (small) IR drop
        (a second chord iteration with the wire-only coupling).
        """
        ports = self._ports()
        m, n = self.m, self.n
        Zc, Y = ports.Zc, ports.Y
        ur, uc = _scheme_base(scheme, v)
        if scheme == "ground":
            ub = np.zeros(m + n)
        else:
            ub = np.concatenate([np.full(m, ur), np.full(n, uc)])
        dVr = v - ub[0]
        dVc = 0.0 - ub[m]
        g, a = self._g, self._a
        a_arr = np.broadcast_to(np.asarray(a, float), g.shape)
        safe_a = bool(np.all(a_arr > 0))  # eta = G (sinh(a v)/a - v) needs a > 0
        uniform = bool(np.all(ub == ub[0]))
        Yub = Y @ ub
        Krow, Kcol = self._green_row(), self._green_col()
        if uniform:
            vb = np.zeros_like(g)
        else:
            ZcF = Zc.reshape(-1, m + n)
            vb = (ZcF @ ub).reshape(m, n)
            eb = device_excess(g, a, vb)
            deb = _device_excess_slope(g, a, vb)
            krb = eb @ Krow  # (m, n): row-wire drops of the base excess currents
            kcb = Kcol @ eb  # (m, n): column-wire rises
            Zcols = ZcF[:, m:]
            T1 = Zcols.T @ eb.ravel()
            T3 = (Zcols * Zcols).T @ deb.ravel()
            if rows.size >= min(m, n):
                T2 = Zcols.T @ (deb.reshape(-1, 1) * ZcF[:, :m])  # (n, m)
                t2 = T2[cols, rows]
            else:
                t2 = np.einsum("kp,k,kp->p", Zcols[:, cols], deb.ravel(), ZcF[:, rows])
            ebT, debT, krbT = eb.T, deb.T, krb.T
        cur = np.empty(rows.size)
        sq = np.empty(rows.size)
        gT, aT, vbT = np.ascontiguousarray(g.T), np.ascontiguousarray(a_arr.T), np.ascontiguousarray(vb.T)
        jj = np.arange(n)
        W_all = np.ascontiguousarray(Zc[:, jj, m + jj].T)  # (n, m): Zc[k, j, col j]
        order = np.argsort(rows, kind="stable")
        bounds = np.flatnonzero(np.diff(rows[order])) + 1
        for grp in np.split(order, bounds):
            i = int(rows[grp[0]])
            cj = cols[grp]
            full = cj.size == n and np.array_equal(cj, jj)
            K = cj.size
            kk = np.arange(K)
            I0 = -(Yub[m + cj] + dVr * Y[m + cj, i] + dVc * Y[m + cj, m + cj])
            # linear voltages v0 of the selected row (K, n) and the selected column (K, m)
            W_r = Zc[i][:, m + cj].T
            d_r = dVc * W_r
            d_r += dVr * Zc[i, :, i]
            W_c, g_c, a_c, vb_c = (W_all, gT, aT, vbT) if full else (W_all[cj], gT[cj], aT[cj], vbT[cj])
            d_c = dVr * Zc[:, cj, i].T
            d_c += dVc * W_c
            g_r, a_r = g[i], a_arr[i]
            if uniform:
                v_r, v_c = d_r, d_c
            else:
                v_r, v_c = d_r + vb[i], d_c + vb_c
            if self._linear:
                e_r = np.zeros_like(v_r)
                e_c = np.zeros_like(v_c)
                f_c = g_c * v_c
                f_c[kk, i] = g[i, cj] * v_r[kk, cj]
            else:
                # excess currents at v0 (one exp per array: sinh, cosh and eta)
                if safe_a:
                    ex = np.exp(a_r * v_r)
                    exi = 1.0 / ex
                    sh_r, ch_r = 0.5 * (ex - exi), 0.5 * (ex + exi)
                    e_r0 = g_r * (sh_r / a_r - v_r)
                    ex = np.exp(a_c * v_c)
                    exi = 1.0 / ex
                    sh_c, ch_c = 0.5 * (ex - exi), 0.5 * (ex + exi)
                    e_c0 = g_c * (sh_c / a_c - v_c)
                else:
                    s1_r, sh_r, ch_r = _sinh_parts(a_r * v_r)
                    s1_c, sh_c, ch_c = _sinh_parts(a_c * v_c)
                    e_r0 = g_r * v_r * s1_r
                    e_c0 = g_c * v_c * s1_c
                # second order: IR drops of the excess currents along the wires
                col_drop = e_c0 @ Kcol  # rise of the selected column's nodes
                dv_r = -(e_r0 @ Krow)  # drop along the selected row
                dv_c = -col_drop
                if self.r_col > 0:
                    own_c = (self.r_col * (m - i)) * e_r0  # each row cell on its own column
                    if not uniform:
                        own_c += kcb[i] - (self.r_col * (m - i)) * eb[i]
                    own_c[kk, cj] = col_drop[kk, i]
                    dv_r -= own_c
                if self.r_row > 0:
                    own_r = (self.r_row * (cj + 1.0))[:, None] * e_c0  # each column cell on its own row
                    if not uniform:
                        own_r += krbT[cj] - (self.r_row * (cj + 1.0))[:, None] * ebT[cj]
                    dv_c -= own_r
                # eta(v0 + dv) by Taylor to second order in the IR drop (|a dv| << 1)
                e_r = e_r0 + g_r * dv_r * ((ch_r - 1.0) + (0.5 * a_r) * dv_r * sh_r)
                e_c = e_c0 + g_c * dv_c * ((ch_c - 1.0) + (0.5 * a_c) * dv_c * sh_c)
                v_r = v_r + dv_r
                v_c = v_c + dv_c
                f_c = g_c * v_c + e_c
                f_c[kk, i] = g[i, cj] * v_r[kk, cj] + e_r[kk, cj]
                if not uniform:
                    e_r -= eb[i] + deb[i] * d_r
                    e_c -= ebT[cj] + debT[cj] * d_c
            e_c[:, i] = 0.0  # the selected cell is counted with its row
            cur_k = I0 - np.einsum("kl,kl->k", W_r, e_r) - np.einsum("km,km->k", W_c, e_c)
            if not uniform:
                cur_k -= T1[cj] + dVr * t2[grp] + dVc * T3[cj]
            cur[grp] = cur_k
            sq[grp] = np.einsum("km,km->k", f_c, f_c)
        return cur, sq

    def _born_float(self, rows, cols, v, chunk: int = 256):
        """Floating unselected lines: exact linear two-terminal solve through the port matrix's
        pseudo-inverse, plus the Born term ``sum_c v0_c eta_c(v0_c) / V`` (Tellegen/reciprocity)."""
        ports = self._ports()
        m, n = self.m, self.n
        P = m + n
        Zf = ports.Zc.reshape(-1, P)
        Yp = ports.pinv()
        g, a = self._gf, self._a_flat
        cur = np.empty(rows.size)
        sq = np.empty(rows.size)
        for s0 in range(0, rows.size, chunk):
            ri = rows[s0 : s0 + chunk]
            cj = m + cols[s0 : s0 + chunk]
            reff = Yp[ri, ri] + Yp[cj, cj] - 2.0 * Yp[ri, cj]
            I0 = v / reff
            U = (Yp[:, ri] - Yp[:, cj]) * I0  # port voltages up to a constant
            U -= U[cj, np.arange(ri.size)]  # selected column at 0 V
            V0 = Zf @ U  # (mn, K) linear cell voltages
            eta = device_excess(g[:, None], a if np.ndim(a) == 0 else a[:, None], V0)
            cur[s0 : s0 + ri.size] = I0 + np.einsum("ck,ck->k", V0, eta) / v
            Vcol = V0.reshape(m, n, -1)[:, cols[s0 : s0 + chunk], np.arange(ri.size)]  # (m, K)
            gc = self._g[:, cols[s0 : s0 + chunk]]
            ac = np.broadcast_to(np.asarray(self._a, float), self._g.shape)[:, cols[s0 : s0 + chunk]]
            f = device_current(gc, ac, Vcol)
            sq[s0 : s0 + ri.size] = np.sum(f * f, axis=0)
        return cur, sq
