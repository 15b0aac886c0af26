"""Statistical model of an HfOx 1T1R ReRAM device.

Every quantity is in SI units: siemens, amperes, volts, seconds.

The model follows the compliance-limited SET picture of Bonnet et al. 2023 (Methods):

* the word-line (gate) voltage of the access transistor sets the SET compliance current
  ``I_cc = k (V_WL - V_th)^2`` (square-law saturation current);
* after one SET the conductance has median ``mu(I_cc) * f_i`` and standard deviation
  ``sigma_c2c`` with the median law ``mu = a (I_cc / I_ref)^b`` and the cycle-to-cycle spread
  law ``sigma_c2c = c (mu / G_ref)^d``; ``f_i ~ N(1, d2d_rel)`` is a per-device factor
  (device-to-device spread); its shape is ``set_family`` (normal by default; log-normal,
  skewed, heavy-tailed or a measured quantile table: :mod:`labrram.devices.set_families`);
* SET only grows the filament: a SET whose compliance is below the present state leaves it;
* RESET returns the device to a log-normal high-resistance state;
* after programming, conductance relaxes as ``(m + s z) ln(1 + dt / tau)`` with a per-program
  random ``z ~ N(0, 1)`` (mean shift and spread both grow with ln t);
* reads carry multiplicative Gaussian noise of ``read_noise_rel``;
* optionally (a property of a simulated chip, :class:`LevelInstability`, off by default), a
  level-dependent post-programming instability: within ``tau`` of a SET the conductance moves
  by ``sigma_b(G) z`` with ``sigma_b`` a bump in ``log G`` that makes one intermediate level of
  a multi-level cell much broader than the others after write-verify.

The same class is the simulator's hidden truth (with a chip-to-chip variant drawn by
:meth:`ReRAMModel.variant`) and the model that calibration fits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, ClassVar

import numpy as np

from .set_families import FAMILIES, QuantileTable, standard_draws, standard_mean

I_REF = 100e-6
"""Reference compliance current of the median law, A."""
G_REF = 100e-6
"""Reference conductance of the spread law, S."""


@dataclass(frozen=True)
class AccessTransistor:
    """Square-law access transistor that limits the SET current.

    Parameters
    ----------
    v_th : float
        Threshold voltage, V.
    k : float
        Transconductance factor, A/V^2; ``I_cc = k (V_WL - v_th)^2`` above threshold.
    """

    v_th: float = 1.0
    k: float = 1.4e-4

    def compliance(self, v_wl: np.ndarray | float) -> np.ndarray:
        """Saturation (compliance) current for a word-line voltage, A."""
        overdrive = np.maximum(np.asarray(v_wl, dtype=float) - self.v_th, 0.0)
        return self.k * overdrive**2

    def gate_for(self, i_cc: np.ndarray | float) -> np.ndarray:
        """Word-line voltage that gives compliance current ``i_cc``, V."""
        i_cc = np.asarray(i_cc, dtype=float)
        if np.any(i_cc < 0):
            raise ValueError("compliance current must be >= 0 A")
        return self.v_th + np.sqrt(i_cc / self.k)


@dataclass(frozen=True)
class ReRAMModel:
    """HfOx 1T1R ReRAM device statistics (see module docstring for the equations).

    Parameters
    ----------
    transistor : AccessTransistor
        Access transistor of every cell.
    a, b : float
        Median law ``mu = a (I_cc / 100 uA)^b``; ``a`` in S.
    c, d : float
        Cycle-to-cycle spread ``sigma = c (mu / 100 uS)^d``; ``c`` in S. ``d`` may take
        either sign.
    d2d_rel : float
        Relative device-to-device spread of the median.
    hrs_median : float
        Median conductance after RESET, S.
    hrs_sigma_log : float
        Log-normal spread (natural log) of the HRS conductance.
    read_noise_rel : float
        Relative standard deviation of one read.
    relax_mean, relax_sigma : float
        Relaxation drift per unit of ``ln(1 + dt / relax_tau)``: mean and spread, S.
    relax_tau : float
        Relaxation time constant, s.
    v_set : float
        Minimum bit-line voltage that SETs a device, V.
    v_reset : float
        Minimum source-line voltage that RESETs a device, V.
    v_gate_reset : float
        Minimum word-line voltage that lets a RESET current flow, V.
    t_switch : float
        Minimum pulse width that switches a device, s.
    v_breakdown : float
        Voltage across a cell that destroys it (hard breakdown to a stuck LRS), V.
    p_stuck_lrs, p_stuck_hrs : float
        Fractions of devices stuck at low / high resistance.
    g_stuck_lrs : float
        Conductance of a stuck-LRS device, S.
    g_min : float
        Floor of any conductance, S.
    set_family : str
        Shape of the SET conductance distribution (:data:`~labrram.devices.set_families.FAMILIES`):
        the simulator's draws take it; programming reads :meth:`set_conditions`, which for
        ``"empirical"`` comes from ``set_table``.
    set_table : QuantileTable or None
        Measured quantiles of the conductance of one SET over the device population at a few
        gate voltages (what calibration stores); needed by ``"empirical"``.
    """

    #: parameters a calibration file may omit (their defaults: a Gaussian SET, no table)
    optional_parameters: ClassVar[tuple[str, ...]] = ("set_family", "set_table")

    transistor: AccessTransistor = AccessTransistor()
    a: float = 160e-6
    b: float = 0.95
    c: float = 6e-6
    d: float = -0.4
    d2d_rel: float = 0.05
    hrs_median: float = 2e-6
    hrs_sigma_log: float = 0.5
    read_noise_rel: float = 0.01
    relax_mean: float = -0.089e-6
    relax_sigma: float = 0.042e-6
    relax_tau: float = 1.0
    v_set: float = 1.2
    v_reset: float = 1.8
    v_gate_reset: float = 2.5
    t_switch: float = 20e-9
    v_breakdown: float = 5.0
    p_stuck_lrs: float = 0.001
    p_stuck_hrs: float = 0.002
    g_stuck_lrs: float = 400e-6
    g_min: float = 0.1e-6
    set_family: str = "gaussian"
    set_table: QuantileTable | None = None

    def __post_init__(self) -> None:
        if self.set_family not in FAMILIES:
            raise ValueError(f"set_family must be one of {list(FAMILIES)}, got {self.set_family!r}")
        if self.set_family == "empirical" and self.set_table is None:
            raise ValueError("set_family 'empirical' needs set_table (quantiles of the SET conductance per gate)")
        if self.set_table is not None and not isinstance(self.set_table, QuantileTable):
            raise ValueError("set_table must be a QuantileTable")

    # --- the laws -------------------------------------------------------------------------
    def median(self, i_cc: np.ndarray | float) -> np.ndarray:
        """Median conductance after one SET at compliance ``i_cc``, S."""
        i_cc = np.maximum(np.asarray(i_cc, dtype=float), 0.0)
        return self.a * (i_cc / I_REF) ** self.b

    def compliance_for(self, g_median: np.ndarray | float) -> np.ndarray:
        """Compliance current whose median conductance is ``g_median``, A (inverse of :meth:`median`)."""
        g = np.asarray(g_median, dtype=float)
        if np.any(g <= 0):
            raise ValueError("median conductance must be > 0 S")
        return I_REF * (g / self.a) ** (1.0 / self.b)

    def sigma_c2c(self, g_median: np.ndarray | float) -> np.ndarray:
        """Cycle-to-cycle standard deviation at median ``g_median``, S."""
        g = np.maximum(np.asarray(g_median, dtype=float), self.g_min)
        return self.c * (g / G_REF) ** self.d

    def population_sigma(self, g_median: np.ndarray | float) -> np.ndarray:
        """Standard deviation of the conductance of many devices each SET once at median
        ``g_median`` (cycle-to-cycle and device-to-device spread together), S."""
        mu = np.asarray(g_median, dtype=float)
        return np.sqrt(self.sigma_c2c(mu) ** 2 + (self.d2d_rel * mu) ** 2)

    def set_conditions(self, gates: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the conductance of one SET at gate voltages ``gates``
        (V) over the device population, S: what the stochastic-SET protocol and the posterior
        mapping choose conditions by.

        ``"gaussian"``: the median law and :meth:`population_sigma`. Log-normal, skewed and
        heavy: the same spread, the mean of the family's shape. ``"empirical"``: the moments of
        :attr:`set_table`'s quantiles, each stored level expressed in units of the laws (its
        quantiles less the median law, over the population spread) and that normalized shape
        interpolated linearly in the gate between levels (held beyond the first and last), so
        the stored levels are reproduced exactly and the laws carry the trend between them.
        """
        gates = np.asarray(gates, dtype=float)
        mu = self.median(self.transistor.compliance(gates))
        sd = self.population_sigma(mu)
        if self.set_family == "gaussian":
            return mu, sd
        if self.set_family != "empirical":
            sc = self.sigma_c2c(mu)
            return mu + sc * standard_mean(self.set_family, sc / np.maximum(mu, self.g_min)), sd
        t = self.set_table
        assert t is not None
        center = self.median(self.transistor.compliance(t.gates))
        z = t.interpolate(t.normalized(center, self.population_sigma(center)), gates)
        _, mean, std = t.row_moments(mu[..., None] + sd[..., None] * z)
        return mean, std

    # --- sampling -------------------------------------------------------------------------
    def sample_device_factors(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Per-device multiplicative factors of the median (device-to-device spread)."""
        return np.maximum(1.0 + self.d2d_rel * rng.standard_normal(shape), 0.2)

    def sample_set(
        self, i_cc: np.ndarray, rng: np.random.Generator, device_factor: np.ndarray | float = 1.0
    ) -> np.ndarray:
        """Conductance after one SET at compliance ``i_cc`` (no previous state), S: median
        ``median(i_cc) * device_factor``, standard deviation :meth:`sigma_c2c` of it, in the
        shape of :attr:`set_family` (the empirical family: the shape of :attr:`set_table` at
        the gate that gives ``i_cc``)."""
        mu = self.median(i_cc) * device_factor
        sigma = self.sigma_c2c(mu)
        gate = self.transistor.gate_for(np.maximum(np.asarray(i_cc, dtype=float), 0.0)) if self.set_family == "empirical" else None
        z = standard_draws(self.set_family, sigma / np.maximum(mu, self.g_min), rng, gate, self.set_table)
        return np.maximum(mu + sigma * z, self.g_min)

    def sample_hrs(self, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        """Conductance after RESET, S."""
        return np.maximum(self.hrs_median * np.exp(self.hrs_sigma_log * rng.standard_normal(shape)), self.g_min)

    def relaxation(self, dt: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Conductance change ``dt`` seconds after programming for per-program draws ``z``, S."""
        dt = np.maximum(np.asarray(dt, dtype=float), 0.0)
        return (self.relax_mean + self.relax_sigma * z) * np.log1p(dt / self.relax_tau)

    # --- chip-to-chip variation --------------------------------------------------------
    def variant(self, rng: np.random.Generator) -> "ReRAMModel":
        """A chip drawn around this nominal model (wafer-level variation of the laws)."""
        t = self.transistor
        return replace(
            self,
            transistor=AccessTransistor(v_th=t.v_th + 0.03 * rng.standard_normal(), k=t.k * (1 + 0.05 * rng.standard_normal())),
            a=self.a * (1 + 0.08 * rng.standard_normal()),
            b=self.b + 0.04 * rng.standard_normal(),
            c=self.c * (1 + 0.12 * rng.standard_normal()),
            d=self.d + 0.06 * rng.standard_normal(),
            d2d_rel=self.d2d_rel * (1 + 0.1 * rng.standard_normal()),
            hrs_median=self.hrs_median * float(np.exp(0.15 * rng.standard_normal())),
            read_noise_rel=self.read_noise_rel * (1 + 0.1 * rng.standard_normal()),
        )

    # --- serialization -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON parameters (nested transistor and quantile table as dicts)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["transistor"] = asdict(self.transistor)
        out["set_table"] = None if self.set_table is None else self.set_table.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReRAMModel":
        """Build from :meth:`to_dict` output; unknown keys are an error."""
        data = dict(data)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ReRAM model parameters: {sorted(unknown)}")
        tr = data.pop("transistor", None)
        transistor = AccessTransistor(**tr) if isinstance(tr, dict) else AccessTransistor()
        family = data.pop("set_family", "gaussian")
        if not isinstance(family, str):
            raise ValueError(f"set_family must be a string, one of {list(FAMILIES)}")
        table = data.pop("set_table", None)
        table = None if table is None else QuantileTable.from_dict(table, "set_table")
        return cls(transistor=transistor, set_family=family, set_table=table, **{k: float(v) for k, v in data.items()})


# --- level-dependent post-programming instability (multi-level cells) ----------------------------
@dataclass(frozen=True)
class LevelInstability:
    """Level-dependent post-programming instability of a multi-level HfOx cell.

    Measured multi-level HfOx 1T1R data show that, once write-verify has placed a device inside
    its band, the conductance does not stay there: within milliseconds to seconds after the
    last pulse it relaxes, and this post-programming spread depends on the level. The lowest
    levels (a thin, well-RESET filament) and the highest (a thick filament) stay narrow; an
    intermediate range — a filament of a few conduction channels, near one to two conductance
    quanta ``G0 = 2e²/h ≈ 77.5 µS`` — broadens most (Perez et al., IEEE J-EDS 7, 740 (2019):
    post-algorithm instability of multi-level HfO2 RRAM arrays; Esmanhotto et al., IEDM 2020:
    relaxation broadens intermediate levels of 1T1R multi-level cells most). Diware et al.
    (AICAS 2023) rank the four levels of their measured 2-bit cell G00 > G01 > G11 > G10: the
    third level (G10) is by far the broadest.

    The shape here is stylized, not fitted: the extra spread is a Gaussian bump in ``log10 G``,

    ``sigma_b(G) = peak · exp(-½ (log10(G / center) / width)²)``,

    and a device SET at ``G`` moves by ``sigma_b(G) · z · (1 − exp(−dt / tau))``, ``z ~ N(0, 1)``
    drawn anew by every program (the simulator reuses the draw of the relaxation term, so the
    random streams of chips without instability are unchanged), ``dt`` the time since that
    program. Verify reads right after a pulse do not see it; any read later than a few ``tau``
    sees all of it, so write-verify cannot remove it.

    The simulated chip holds it with its hidden truth (``ReRAMChip(level_spread=...)``);
    calibration never sees it: a level table has to be measured by programming levels and
    reading them back (:func:`labrram.nn.level_table.measure_levels`).

    Parameters
    ----------
    peak : float
        Largest extra standard deviation, S.
    center : float
        Conductance where it peaks, S.
    width : float
        Width of the bump, decades of conductance.
    tau : float
        Time constant of its onset after a program, s.
    """

    peak: float = 12e-6
    center: float = 137e-6
    width: float = 0.08
    tau: float = 0.05

    def __post_init__(self) -> None:
        for name in ("peak", "center", "width", "tau"):
            v = getattr(self, name)
            if not (np.isfinite(v) and (v >= 0 if name == "peak" else v > 0)):
                raise ValueError(f"LevelInstability.{name} must be {'>= 0' if name == 'peak' else '> 0'}, got {v!r}")

    def sigma(self, g: np.ndarray | float) -> np.ndarray:
        """Extra standard deviation at programmed conductance ``g`` (S), S."""
        g = np.maximum(np.asarray(g, dtype=float), 1e-12)
        return self.peak * np.exp(-0.5 * (np.log10(g / self.center) / self.width) ** 2)

    def shift(self, g: np.ndarray, z: np.ndarray, dt: np.ndarray) -> np.ndarray:
        """Conductance change ``dt`` s after programming to ``g`` (S) for draws ``z``, S."""
        dt = np.maximum(np.asarray(dt, dtype=float), 0.0)
        return self.sigma(g) * z * -np.expm1(-dt / self.tau)


#: named presets of :class:`LevelInstability` for a simulated chip (``level_spread`` option)
LEVEL_INSTABILITY_PRESETS: dict[str, LevelInstability | None] = {
    "none": None,
    # the broad level at ≈ 137 µS: the third of four levels evenly spaced over 10-200 µS
    "hfox-mlc": LevelInstability(),
}
