"""Statistical and pulse-level model of a 1T1R phase-change memory (PCM) device.

Every quantity is in SI units: siemens, amperes, volts, seconds. Normalized conductances are
written ``ĝ = g / g_max``.

Statistics after write-verify (Nandakumar et al., ICECS 2019, as coded in IBM aihwkit's
``PCMLikeNoiseModel``; the defaults of :class:`PCMModel` are that preset)
----------------------------------------------------------------------------------------------
* Programming noise of an iteratively programmed (write-verified) device::

      g_prog = g_T + N(0, sigma_prog),   sigma_prog = (c0 + c1 ĝ_T + c2 ĝ_T²) · g_max / 25 µS

  with ``c0, c1, c2 = 0.26348, 1.9650, -1.1731`` µS, ``sigma_prog`` clipped at >= 0 and
  ``g_prog`` clipped at >= 0.
* Conductance drift, ``t`` seconds after the end of programming::

      g(t) = g_prog · ((t + t0) / t0) ** (-nu),   t0 = 20 s

  with a per-device exponent ``nu = |N(mu_nu(ĝ), sigma_nu(ĝ))|`` drawn once per programming
  event and kept::

      mu_nu    = clip(-0.0155 ln ĝ + 0.0244, 0.049, 0.1)
      sigma_nu = clip(-0.0125 ln ĝ - 0.0059, 0.008, 0.045)

  (``ĝ`` clamped at >= 1e-7 before the logarithm, as aihwkit does).
* 1/f read noise accumulated ``t`` seconds after programming::

      sigma_read(t) = |g(t)| · Q_s · sqrt(ln((t + t_read) / (2 t_read))),   t_read = 250 ns
      Q_s = min(0.0088 / ĝ ** 0.65, 0.2)

  The logarithm is floored at 0 (the law holds for ``t >> t_read``). aihwkit evaluates the same
  expression at ``t + t0`` (its clock starts ``t0`` before inference time zero); the two differ
  by < 1 % in sigma beyond one minute.

Pulse response (compact physical model of a mushroom doped-GST cell behind an access transistor)
----------------------------------------------------------------------------------------------
PCM is unipolar (Joule heating): only ``|V|`` matters, whichever line drives the pulse.

* Drive. The access transistor (square law, :class:`~labrram.devices.reram.AccessTransistor`)
  passes at most ``I_sat = k (V_G - V_T)^2``. The cell voltage that heats the cell is::

      V_c = min(|V|, V_hold + I_sat · R_on)   (V_c = 0 when V_G <= V_T: no current flows)

* Partial SET (cumulative crystallization), ``V_th,set <= V_c < V_melt``, pulse width ``w``::

      dG = kappa_i · (V_c - V_th,set) · eta(w) · (1 - G / G_sat,i) · (1 + c_set · xi)
      eta(w) = 1 - exp(-max(w - t_inc, 0) / tau_cr)

  ``xi ~ N(0, 1)`` (cycle-to-cycle noise); ``kappa_i`` and ``G_sat,i`` are per-device
  (device-to-device spread). The step grows with the over-drive ``V_c - V_th,set``, vanishes
  as ``G`` approaches the crystalline ceiling ``G_sat`` (> g_max) and needs an incubation time
  ``t_inc`` (no crystallization by a short, RESET-like pulse; a ~100 ns pulse is partly
  effective, >= 500 ns fully).
* RESET (melt-quench), ``V_c >= V_melt,i`` and ``w >= t_melt``: the molten volume grows with
  the drive, so the final conductance decreases with ``V``::

      x = clip((V_c - V_melt,i) / (V_full - V_melt), 0, 1)
      L(V) = G_R + (G_sat,i - G_R) · (1 - x) ** p
      G'   = min(G, L(V) · exp(s_R · xi))

  (a melt never crystallizes: a gentler RESET leaves a more amorphous cell as it was).
* Limits: ``|V| >= V_bd`` across a cell is a hard breakdown to a stuck-SET (shorted) device;
  fractions ``p_stuck_set`` / ``p_stuck_reset`` of devices come out of fabrication stuck.

How the pulse-level noise reproduces ``sigma_prog``
---------------------------------------------------
``sigma_prog`` is the spread of the *true* conductance at the end of a write-verify, not a
property of a single pulse. In this model it is the sum of two independent parts:

1. the verify window: the loop stops at the first read inside ``g_T ± delta``. Because the
   cycle-to-cycle noise of a SET step (``c_set`` ~ 0.5) and of a RESET level (``s_R``) is as
   large as the window, the accepted states fill it roughly uniformly: variance ``delta² / 3``;
2. the 1/f noise of the accepting verify read, ``t_v`` after the last pulse:
   ``sigma_read(g_T, t_v)``; the true state differs from what the loop accepted by that much.

Hence ``sigma_prog² ≈ delta² / 3 + sigma_read(g_T, t_v)²``. :meth:`PCMModel.verify_half_width`
inverts it: the Nandakumar preset corresponds to windows of about ±0.5 µS at the lowest levels
rising to ±1.5 µS near g_max (for ``t_v`` = 1 ms), the range of Joshi et al.'s write-verify
(99.1 % of devices within 1.2 µS). The simulated chip's tests check the resulting spread
against ``sigma_prog``: with Bonnet et al.'s Alg. 2 ladder (SET staircase 1.1 -> 1.8 V in 0.1 V
steps of 1 µs; RESET staircase 2.9 -> 2.7 V of 50 ns; verify read 1 ms after each pulse) the true
spread at ĝ = 0.25 / 0.5 / 1 comes within ~10 % of ``sigma_prog`` and the mean within about
0.25 ``sigma_prog`` of the target (slightly low: the ladder climbs into the window from below),
over ten chip seeds. :meth:`PCMModel.sample_program` draws the same statistics directly, for
mapping and training, without simulating pulses.

The same class is the simulator's hidden truth (with a chip-to-chip variant drawn by
:meth:`PCMModel.variant`) and the model that calibration fits: every constant is a field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from .reram import AccessTransistor

ArrayLike = np.ndarray | float

EULER_GAMMA = 0.5772156649015329


def _as_float(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=float)


@dataclass(frozen=True)
class PCMModel:
    """PCM device statistics and pulse response (see the module docstring for the equations).

    Parameters
    ----------
    g_max : float
        Conductance that the largest weight maps to, S (25 µS in the preset).
    prog_c0, prog_c1, prog_c2 : float
        Programming-noise polynomial ``sigma_prog = c0 + c1 ĝ + c2 ĝ²``, S, fitted at
        ``g_max = prog_g_ref``; scaled by ``g_max / prog_g_ref``.
    prog_g_ref : float
        The ``g_max`` the programming-noise polynomial was fitted at, S.
    t0 : float
        Drift reference time, s.
    nu_mu_slope, nu_mu_offset, nu_mu_min, nu_mu_max : float
        Mean drift exponent ``clip(slope ln ĝ + offset, min, max)``.
    nu_sigma_slope, nu_sigma_offset, nu_sigma_min, nu_sigma_max : float
        Spread of the drift exponent ``clip(slope ln ĝ + offset, min, max)``.
    nu_g_floor : float
        Smallest ``ĝ`` used in the logarithms of the drift laws.
    t_read : float
        Read duration of the 1/f noise law, s.
    q_s_coeff, q_s_exp, q_s_max : float
        1/f noise amplitude ``Q_s = min(q_s_coeff / ĝ ** q_s_exp, q_s_max)``.
    transistor : AccessTransistor
        Access transistor of every cell (limits the programming current).
    r_on : float
        On-state (threshold-switched) series resistance of cell and heater, Ω.
    v_hold : float
        Holding voltage of the threshold-switched cell, V.
    v_th_set : float
        Cell voltage from which a pulse crystallizes (threshold switching), V.
    set_rate : float
        Crystallization step per volt of over-drive at ``G = 0`` for a long pulse, S/V.
    set_c2c : float
        Relative cycle-to-cycle spread of a SET step.
    set_t_inc : float
        Crystallization incubation time, s.
    set_tau : float
        Crystallization time constant beyond the incubation, s.
    g_sat : float
        Conductance of the fully crystalline cell (ceiling of cumulative SET), S.
    v_melt : float
        Cell voltage at which the active region melts (RESET threshold), V.
    v_reset_full : float
        Cell voltage from which the amorphous plug covers the heater fully, V.
    reset_exp : float
        Exponent ``p`` of the RESET level law.
    g_reset : float
        Median conductance after a full RESET, S.
    reset_sigma_log : float
        Log-normal spread (natural log) of the level a RESET leaves.
    t_melt : float
        Shortest pulse that melts the cell, s.
    set_rate_d2d : float
        Log-normal device-to-device spread of ``set_rate``.
    g_sat_d2d : float
        Relative device-to-device spread of ``g_sat``.
    v_melt_d2d : float
        Device-to-device spread of ``v_melt``, V.
    v_breakdown : float
        Voltage across a cell that destroys it (stuck SET), V.
    p_stuck_set, p_stuck_reset : float
        Fractions of devices stuck crystalline (short) / amorphous (open) from fabrication.
    g_stuck_set, g_stuck_reset : float
        Conductances of stuck-SET / stuck-RESET devices, S.
    g_min : float
        Floor of any physical conductance, S.
    """

    # --- Nandakumar 2019 / aihwkit PCMLikeNoiseModel statistics ------------------------------
    g_max: float = 25e-6
    prog_c0: float = 0.26348e-6
    prog_c1: float = 1.9650e-6
    prog_c2: float = -1.1731e-6
    prog_g_ref: float = 25e-6
    t0: float = 20.0
    nu_mu_slope: float = -0.0155
    nu_mu_offset: float = 0.0244
    nu_mu_min: float = 0.049
    nu_mu_max: float = 0.1
    nu_sigma_slope: float = -0.0125
    nu_sigma_offset: float = -0.0059
    nu_sigma_min: float = 0.008
    nu_sigma_max: float = 0.045
    nu_g_floor: float = 1e-7
    t_read: float = 250e-9
    q_s_coeff: float = 0.0088
    q_s_exp: float = 0.65
    q_s_max: float = 0.2
    # --- pulse response (compact model; defaults are sensible, calibration refits them) -------
    transistor: AccessTransistor = AccessTransistor(v_th=0.8, k=2e-4)
    r_on: float = 2e3
    v_hold: float = 0.5
    v_th_set: float = 1.0
    set_rate: float = 10e-6
    set_c2c: float = 0.5
    set_t_inc: float = 50e-9
    set_tau: float = 100e-9
    g_sat: float = 40e-6
    v_melt: float = 2.0
    v_reset_full: float = 2.8
    reset_exp: float = 2.0
    g_reset: float = 0.1e-6
    reset_sigma_log: float = 0.3
    t_melt: float = 10e-9
    set_rate_d2d: float = 0.15
    g_sat_d2d: float = 0.05
    v_melt_d2d: float = 0.03
    v_breakdown: float = 4.0
    p_stuck_set: float = 0.002
    p_stuck_reset: float = 0.002
    g_stuck_set: float = 100e-6
    g_stuck_reset: float = 0.01e-6
    g_min: float = 1e-9

    def __post_init__(self) -> None:
        positive = (
            "g_max", "prog_g_ref", "t0", "nu_g_floor", "t_read", "q_s_coeff", "q_s_max", "r_on",
            "set_rate", "set_tau", "g_sat", "g_reset", "t_melt", "v_breakdown", "g_min", "reset_exp",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"PCM model parameter {name} must be finite and > 0, got {value!r}")
        non_negative = (
            "set_c2c", "set_t_inc", "reset_sigma_log", "set_rate_d2d", "g_sat_d2d", "v_melt_d2d",
            "nu_mu_min", "nu_sigma_min", "p_stuck_set", "p_stuck_reset", "q_s_exp", "v_hold",
        )  # fmt: skip
        for name in non_negative:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"PCM model parameter {name} must be finite and >= 0, got {value!r}")
        if self.nu_mu_max < self.nu_mu_min or self.nu_sigma_max < self.nu_sigma_min:
            raise ValueError("drift-exponent clip bounds must satisfy min <= max")
        if not (0 < self.v_th_set < self.v_melt < self.v_reset_full < self.v_breakdown):
            raise ValueError("pulse thresholds must satisfy 0 < v_th_set < v_melt < v_reset_full < v_breakdown")
        if self.p_stuck_set + self.p_stuck_reset > 1:
            raise ValueError("p_stuck_set + p_stuck_reset must be <= 1")
        if not self.g_reset < self.g_sat:
            raise ValueError("g_reset must be below g_sat")

    # --- normalization --------------------------------------------------------------------
    def normalized(self, g: ArrayLike) -> np.ndarray:
        """``ĝ = g / g_max`` (dimensionless)."""
        return _as_float(g) / self.g_max

    @staticmethod
    def _check_non_negative(g: np.ndarray, what: str) -> None:
        if np.any(g < 0) or np.any(np.isnan(g)):
            raise ValueError(f"{what} must be >= 0 S and not NaN")

    # --- programming noise ----------------------------------------------------------------
    def sigma_prog(self, g_target: ArrayLike) -> np.ndarray:
        """Standard deviation of the programmed conductance after write-verify, S.

        ``sigma_prog = max(c0 + c1 ĝ + c2 ĝ², 0) · g_max / prog_g_ref`` with ``ĝ = g_T / g_max``
        (Nandakumar et al. 2019; aihwkit ``PCMLikeNoiseModel.prog_coeff``). For the preset it is
        0.263 / 0.953 / 1.055 µS at ĝ = 0 / 0.5 / 1.

        Raises
        ------
        ValueError
            If a target is negative or NaN.
        """
        g = _as_float(g_target)
        self._check_non_negative(g, "target conductance")
        gh = g / self.g_max
        sigma = self.prog_c0 + self.prog_c1 * gh + self.prog_c2 * gh**2
        return np.maximum(sigma, 0.0) * (self.g_max / self.prog_g_ref)

    def sample_program(self, g_target: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        """Conductance after a write-verify to ``g_target``: ``max(g_T + sigma_prog N(0,1), 0)``, S."""
        g = _as_float(g_target)
        sigma = self.sigma_prog(g)
        return np.maximum(g + sigma * rng.standard_normal(g.shape), 0.0)

    # --- drift ----------------------------------------------------------------------------
    def _log_gh(self, g: ArrayLike) -> np.ndarray:
        gh = np.maximum(np.abs(_as_float(g)) / self.g_max, self.nu_g_floor)
        return np.log(gh)

    def nu_mean(self, g: ArrayLike) -> np.ndarray:
        """Mean drift exponent ``mu_nu = clip(-0.0155 ln ĝ + 0.0244, 0.049, 0.1)`` (preset values)."""
        return np.clip(self.nu_mu_slope * self._log_gh(g) + self.nu_mu_offset, self.nu_mu_min, self.nu_mu_max)

    def nu_std(self, g: ArrayLike) -> np.ndarray:
        """Spread of the drift exponent ``sigma_nu = clip(-0.0125 ln ĝ - 0.0059, 0.008, 0.045)``."""
        return np.clip(
            self.nu_sigma_slope * self._log_gh(g) + self.nu_sigma_offset, self.nu_sigma_min, self.nu_sigma_max
        )

    def sample_nu(self, g: ArrayLike, rng: np.random.Generator) -> np.ndarray:
        """Per-device drift exponents ``nu = |N(mu_nu(ĝ), sigma_nu(ĝ))|`` for programmed states ``g``."""
        g = _as_float(g)
        return np.abs(self.nu_mean(g) + self.nu_std(g) * rng.standard_normal(g.shape))

    def drift(self, g_prog: ArrayLike, t: ArrayLike, nu: ArrayLike) -> np.ndarray:
        """Drifted conductance ``g_prog ((t + t0) / t0) ** (-nu)``, ``t`` s after programming, S.

        Raises
        ------
        ValueError
            If a time is negative.
        """
        t = _as_float(t)
        if np.any(t < 0):
            raise ValueError("time since programming must be >= 0 s")
        return _as_float(g_prog) * ((t + self.t0) / self.t0) ** (-_as_float(nu))

    def expected_drift_factor(self, g_prog: ArrayLike, t: ArrayLike) -> np.ndarray:
        """``E[((t + t0)/t0)^-nu]`` over the drift-exponent distribution at ``g_prog``.

        Uses the Gaussian moment generating function
        ``exp(-mu L + sigma² L² / 2)`` with ``L = ln((t + t0)/t0)``; exact when the folding of
        ``|N(mu, sigma)|`` is negligible (``mu / sigma >= 2``, true for ĝ >= 0.02 in the preset).
        """
        t = _as_float(t)
        if np.any(t < 0):
            raise ValueError("time since programming must be >= 0 s")
        lt = np.log((t + self.t0) / self.t0)
        mu, sd = self.nu_mean(g_prog), self.nu_std(g_prog)
        return np.exp(-mu * lt + 0.5 * (sd * lt) ** 2)

    # --- 1/f read noise -------------------------------------------------------------------
    def q_s(self, g: ArrayLike) -> np.ndarray:
        """1/f noise amplitude ``Q_s = min(0.0088 / ĝ ** 0.65, 0.2)`` (preset values)."""
        gh = np.abs(_as_float(g)) / self.g_max
        with np.errstate(divide="ignore"):
            q = self.q_s_coeff / np.maximum(gh, 1e-300) ** self.q_s_exp
        return np.minimum(q, self.q_s_max)

    def noise_log_term(self, t: ArrayLike) -> np.ndarray:
        """``max(ln((t + t_read) / (2 t_read)), 0)``: variance of the 1/f noise in units of ``Q_s²``."""
        t = _as_float(t)
        if np.any(t < 0):
            raise ValueError("time since programming must be >= 0 s")
        return np.maximum(np.log((t + self.t_read) / (2.0 * self.t_read)), 0.0)

    def read_noise_sigma(self, g: ArrayLike, t: ArrayLike, g_prog: ArrayLike | None = None) -> np.ndarray:
        """1/f read-noise standard deviation ``|g| Q_s sqrt(ln((t + t_read)/(2 t_read)))``, S.

        Parameters
        ----------
        g : array_like
            Conductance being read (drifted), S.
        t : array_like
            Time since the end of programming, s.
        g_prog : array_like, optional
            Programmed conductance that sets ``Q_s`` (aihwkit uses it); defaults to ``g``.
        """
        g = _as_float(g)
        q = self.q_s(g if g_prog is None else g_prog)
        return np.abs(g) * q * np.sqrt(self.noise_log_term(t))

    def one_over_f_components(self, t_max: float = 1e10) -> tuple[np.ndarray, np.ndarray]:
        """Time constants and variances of a sum of Ornstein–Uhlenbeck processes with 1/f statistics.

        A process ``Y = sum_k Y_k`` with ``Y_k`` OU processes of time constant ``tau_k`` and
        stationary variance ``w_k``, all started at 0 at programming, has
        ``Var Y(t) = sum_k w_k (1 - exp(-2 t / tau_k))``. With one component per decade,
        ``w_k = ln 10`` and ``tau_k = 4 e^gamma t_read · 10^(k + 1/2)``, this equals
        ``ln((t + t_read)/(2 t_read))`` within 1.5 % in sigma from ``16 t_read`` (4 µs) up to
        ``t_max / 100``, and within 8 % between ``2 t_read`` and ``16 t_read`` where the law itself
        is only approximate (the continuum limit of the sum is the exponential integral
        ``Ein(2t/tau_0) ≈ ln(2t/tau_0) + gamma``).
        Reads of ``g (1 + Q_s Y)`` then carry the 1/f noise law with the right correlation in time:
        two reads ``dt`` apart differ only by the components faster than ``dt``.

        Returns
        -------
        tau : ndarray
            Time constants, s.
        weight : ndarray
            Stationary variances (dimensionless).
        """
        if not t_max > 100 * self.t_read:
            raise ValueError("t_max must exceed 100 t_read")
        tau0 = 4.0 * math.exp(EULER_GAMMA) * self.t_read
        n = int(math.ceil(math.log10(t_max / tau0))) + 1
        tau = tau0 * 10.0 ** (np.arange(n) + 0.5)
        return tau, np.full(n, math.log(10.0))

    def verify_half_width(self, g_target: ArrayLike, t_verify: float = 1e-3) -> np.ndarray:
        """Half-width of the verify window whose write-verify reproduces ``sigma_prog``, S.

        ``delta = sqrt(3 max(sigma_prog² - sigma_read(g_T, t_verify)², 0))``: accepted states
        fill the window ``g_T ± delta`` about uniformly (variance ``delta²/3``) and the accepting
        read is off by the 1/f noise ``t_verify`` after the last pulse (see the module docstring).
        A floor of ``0.25 sigma_prog`` keeps the window usable where read noise dominates.
        """
        g = _as_float(g_target)
        s_prog = self.sigma_prog(g)
        s_read = self.read_noise_sigma(g, t_verify)
        delta = np.sqrt(3.0 * np.maximum(s_prog**2 - s_read**2, 0.0))
        return np.maximum(delta, 0.25 * s_prog)

    # --- pulse response -------------------------------------------------------------------
    def cell_voltage(self, v: ArrayLike, gate: ArrayLike) -> np.ndarray:
        """Voltage that heats the cell: ``min(|V|, V_hold + I_sat(V_G) R_on)``, 0 with the gate off, V."""
        v = np.abs(_as_float(v))
        i_sat = self.transistor.compliance(gate)
        v_c = np.minimum(v, self.v_hold + i_sat * self.r_on)
        return np.where(i_sat > 0, v_c, 0.0)

    def set_efficiency(self, width: ArrayLike) -> np.ndarray:
        """Fraction of a full crystallization step a pulse of ``width`` achieves, ``eta(w)``."""
        w = _as_float(width)
        if np.any(w < 0) or np.any(np.isnan(w)):
            raise ValueError("pulse width must be >= 0 s")
        return 1.0 - np.exp(-np.maximum(w - self.set_t_inc, 0.0) / self.set_tau)

    def set_step_mean(
        self,
        g: ArrayLike,
        v_cell: ArrayLike,
        width: ArrayLike,
        rate_factor: ArrayLike = 1.0,
        g_sat: ArrayLike | None = None,
        v_melt: ArrayLike | None = None,
    ) -> np.ndarray:
        """Mean conductance step of one SET pulse at cell voltage ``v_cell``, S.

        ``kappa (V_c - V_th,set) eta(w) (1 - G / G_sat)`` for ``V_th,set <= V_c < V_melt``, else 0.
        """
        g = _as_float(g)
        v_c = _as_float(v_cell)
        g_sat = self.g_sat if g_sat is None else _as_float(g_sat)
        v_melt = self.v_melt if v_melt is None else _as_float(v_melt)
        over = np.where((v_c >= self.v_th_set) & (v_c < v_melt), v_c - self.v_th_set, 0.0)
        room = np.clip(1.0 - g / g_sat, 0.0, 1.0)
        return self.set_rate * _as_float(rate_factor) * over * self.set_efficiency(width) * room

    def reset_level(
        self, v_cell: ArrayLike, g_sat: ArrayLike | None = None, v_melt: ArrayLike | None = None
    ) -> np.ndarray:
        """Median conductance a melt-quench at cell voltage ``v_cell`` leaves, S.

        ``L = G_R + (G_sat - G_R) (1 - x)^p`` with ``x = clip((V_c - V_melt)/(V_full - V_melt), 0, 1)``:
        decreasing in ``V_c``; equal to ``G_sat`` (no effect) below ``V_melt``.
        """
        v_c = _as_float(v_cell)
        g_sat = self.g_sat if g_sat is None else _as_float(g_sat)
        v_melt = self.v_melt if v_melt is None else _as_float(v_melt)
        x = np.clip((v_c - v_melt) / (self.v_reset_full - self.v_melt), 0.0, 1.0)
        return self.g_reset + (g_sat - self.g_reset) * (1.0 - x) ** self.reset_exp

    def apply_pulse(
        self,
        g: ArrayLike,
        v: ArrayLike,
        gate: ArrayLike,
        width: ArrayLike,
        rng: np.random.Generator,
        rate_factor: ArrayLike = 1.0,
        g_sat: ArrayLike | None = None,
        v_melt: ArrayLike | None = None,
        slow_quench: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Conductance after one pulse of amplitude ``v`` and ``width`` with gate ``gate``.

        Parameters
        ----------
        g : array_like
            Conductance before the pulse (drifted, as it is now), S.
        v, gate, width : array_like
            Pulse amplitude across the cell (sign ignored), word-line voltage, width (V, V, s).
        rng : numpy.random.Generator
            Source of the cycle-to-cycle noise.
        rate_factor, g_sat, v_melt : array_like, optional
            Per-device ``kappa_i / set_rate``, ``G_sat,i`` and ``V_melt,i`` (device-to-device).
        slow_quench : bool
            The pulse ends slowly (an SMU switching off in µs, not a pulse generator's ns edge):
            a melted cell then recrystallizes fully to ``G_sat,i`` instead of amorphizing.

        Returns
        -------
        g_new : ndarray
            Conductance after the pulse, S.
        programmed : ndarray of bool
            Where the pulse changed the phase configuration (a crystallization step or a melt):
            these devices start a new drift history.
        """
        g, v, gate, width = np.broadcast_arrays(_as_float(g), _as_float(v), _as_float(gate), _as_float(width))
        g_sat_i = np.broadcast_to(self.g_sat if g_sat is None else _as_float(g_sat), g.shape)
        v_melt_i = np.broadcast_to(self.v_melt if v_melt is None else _as_float(v_melt), g.shape)
        v_c = self.cell_voltage(v, gate)
        g_new = g.copy()

        crystallize = (v_c >= self.v_th_set) & (v_c < v_melt_i) & (width > self.set_t_inc)
        if np.any(crystallize):
            rate_i = np.broadcast_to(_as_float(rate_factor), g.shape)
            k = crystallize
            step = self.set_step_mean(g[k], v_c[k], width[k], rate_i[k], g_sat_i[k], v_melt_i[k])
            step = step * (1.0 + self.set_c2c * rng.standard_normal(step.shape))
            g_new[crystallize] = np.clip(g[crystallize] + step, self.g_min, g_sat_i[crystallize])

        melt = (v_c >= v_melt_i) & (width >= self.t_melt)
        if np.any(melt) and slow_quench:
            g_new[melt] = g_sat_i[melt]
        elif np.any(melt):
            level = self.reset_level(v_c[melt], g_sat_i[melt], v_melt_i[melt])
            level = level * np.exp(self.reset_sigma_log * rng.standard_normal(level.shape))
            g_new[melt] = np.maximum(np.minimum(g[melt], level), self.g_min)
        return g_new, crystallize | melt

    # --- device-to-device draws -----------------------------------------------------------
    def sample_device_params(self, shape: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Per-device ``rate_factor``, ``g_sat`` and ``v_melt`` (device-to-device spread)."""
        return {
            "rate_factor": np.exp(self.set_rate_d2d * rng.standard_normal(shape)),
            "g_sat": self.g_sat * np.maximum(1.0 + self.g_sat_d2d * rng.standard_normal(shape), 0.5),
            "v_melt": np.clip(
                self.v_melt + self.v_melt_d2d * rng.standard_normal(shape),
                self.v_th_set + 0.1,
                self.v_reset_full - 0.05,
            ),
        }

    def sample_reset_state(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Conductance after a full RESET, log-normal around ``g_reset``, S."""
        return np.maximum(self.g_reset * np.exp(self.reset_sigma_log * rng.standard_normal(shape)), self.g_min)

    # --- presets and chip-to-chip variation ----------------------------------------------
    @classmethod
    def preset_nandakumar2019(cls) -> "PCMModel":
        """The Nandakumar et al. 2019 preset (aihwkit ``PCMLikeNoiseModel`` defaults, g_max = 25 µS)."""
        return cls()

    def variant(self, rng: np.random.Generator) -> "PCMModel":
        """A chip drawn around this nominal model (wafer-level variation of the laws)."""
        t = self.transistor

        def rel(x: float, s: float) -> float:
            return float(x * (1.0 + s * rng.standard_normal()))

        return replace(
            self,
            transistor=AccessTransistor(v_th=t.v_th + 0.03 * rng.standard_normal(), k=rel(t.k, 0.05)),
            prog_c0=rel(self.prog_c0, 0.05),
            prog_c1=rel(self.prog_c1, 0.05),
            prog_c2=rel(self.prog_c2, 0.05),
            nu_mu_offset=self.nu_mu_offset + 0.002 * rng.standard_normal(),
            nu_mu_min=max(rel(self.nu_mu_min, 0.05), 0.0),
            nu_sigma_min=max(rel(self.nu_sigma_min, 0.05), 0.0),
            q_s_coeff=rel(self.q_s_coeff, 0.08),
            set_rate=rel(self.set_rate, 0.08),
            set_c2c=max(rel(self.set_c2c, 0.05), 0.0),
            g_sat=rel(self.g_sat, 0.04),
            v_th_set=self.v_th_set + 0.02 * rng.standard_normal(),
            v_melt=self.v_melt + 0.03 * rng.standard_normal(),
            g_reset=self.g_reset * float(np.exp(0.15 * rng.standard_normal())),
        )

    # --- serialization --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON parameters (nested transistor as a dict)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PCMModel":
        """Build from :meth:`to_dict` output; unknown keys are an error."""
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown PCM model parameters: {sorted(unknown)}")
        tr = data.pop("transistor", None)
        if isinstance(tr, dict):
            tr = AccessTransistor(**tr)
        elif tr is None:
            tr = cls.__dataclass_fields__["transistor"].default
        elif not isinstance(tr, AccessTransistor):
            raise ValueError(f"transistor must be a dict or AccessTransistor, got {type(tr).__name__}")
        return cls(transistor=tr, **{k: float(v) for k, v in data.items()})


def preset_nandakumar2019() -> PCMModel:
    """The Nandakumar et al. 2019 preset (aihwkit ``PCMLikeNoiseModel`` defaults, g_max = 25 µS)."""
    return PCMModel.preset_nandakumar2019()
