"""Passive (0T1R) TiO2 devices: a nonlinear device model (numpy only).

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

The nodal-analysis model of a whole array, wires included, is
:class:`labrram.circuit.CrossbarCircuit` (its own room: scipy, BLAS threading).

Defaults are "inferred" in the sense of SCIENCE.md: sensible, calibration replaces them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

SCHEMES = ("V/2", "V/3", "float", "ground")
"""Biasing schemes of a selected cell ``(i, j)`` at voltage ``V``:

* ``"V/2"``: row ``i`` at ``V``, column ``j`` at 0, every other line at ``V/2``;
* ``"V/3"``: row ``i`` at ``V``, column ``j`` at 0, other rows at ``V/3``, other columns at ``2V/3``;
* ``"float"``: row ``i`` at ``V``, column ``j`` at 0, every other line floating (no driver);
* ``"ground"``: row ``i`` at ``V``, every other line (column ``j`` included) at 0.
"""




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


