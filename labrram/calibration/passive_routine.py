"""Characterization of a passive (0T1R) crossbar, run on any :class:`~labrram.crossbar.Crossbar`.

Every read of a passive array carries the sneak currents of the biasing scheme; the routine
works with what the board measures (column currents) and leaves their separation to the fit.

1. **I–V**: the column current of each selected device at ``iv_voltages`` (below the switching
   thresholds), under the station's biasing scheme (V/2 by default);
2. **threshold ramps**: fresh devices get SET pulses of rising amplitude, each followed by a
   read, until their conductance moves by ``switch_fraction``; then RESET pulses likewise;
3. **read noise**: ``read_repeats`` reads of the I–V devices.

(Conductance tuning imprecision is not measured yet: a verify loop on a passive array must
separate each device from the sneak background of its column, which changes as neighbours are
programmed; the model's nominal ``tuning_sigma_rel`` stands until it is.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..crossbar import Crossbar
from ..protocols.engine import Progress, run_plan
from ..protocols.messages import BIAS_SCHEMES, Bias, Measure, Pulse, Read, Report
from ..protocols.plan import PlanRun, check_pulse_settings, register
from ..timing import BenchTimer
from .routine import CharacterizationPlan, select_devices



@dataclass(frozen=True)
class PassiveCharacterization:
    """Settings of the passive-array characterization (:func:`labrram.characterize` with
    ``kind="passive"``).

    Attributes
    ----------
    n_devices : int
        Devices of each measurement: ``2 * n_devices`` distinct cells are drawn at random over
        the whole array (seeded by ``seed``), the first half for the I–V and read noise, the
        second for the threshold ramps.
    scheme : str
        Biasing scheme of the unselected lines: ``"V/2"``, ``"V/3"`` or ``"float"``.
    iv_voltages : tuple of float
        Read voltages of the I–V, V (below the switching thresholds).
    ramp_amplitudes : tuple of float
        Pulse amplitudes of the threshold ramps, V.
    ramp_width : float
        Width of the ramp pulses, s.
    switch_fraction : float
        Relative change of conductance that counts as switching.
    read_repeats : int
        Back-to-back reads for the read noise.
    seed : int
        Seed of the device selection.
    """

    n_devices: int = 64
    scheme: str = "V/2"
    iv_voltages: tuple[float, ...] = tuple(np.round(np.linspace(0.05, 0.6, 12), 4))
    ramp_amplitudes: tuple[float, ...] = tuple(np.round(np.arange(0.5, 1.85, 0.05), 3))
    ramp_width: float = 1e-6
    switch_fraction: float = 0.05
    read_repeats: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in BIAS_SCHEMES:
            raise ValueError(f"scheme must be one of {sorted(BIAS_SCHEMES)}")
        if self.n_devices < 8:
            raise ValueError("n_devices must be at least 8")
        if len(self.iv_voltages) < 4:
            raise ValueError("iv_voltages needs at least 4 voltages")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data (tuples as lists), as a run store records them."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass
class PassiveData:
    """Raw passive-array characterization data, all SI."""

    rows: np.ndarray
    cols: np.ndarray
    iv_voltages: np.ndarray  # (voltage,)
    iv_current: np.ndarray  # (voltage, device), A
    ramp_amplitudes: np.ndarray  # (step,)
    set_threshold: np.ndarray  # (device,), V, NaN if it never switched
    reset_threshold: np.ndarray  # (device,), V
    read_repeats: np.ndarray  # (repeat, device), S
    settings: dict[str, Any] = field(default_factory=dict)

    DIMS = {
        "rows": ("device",),
        "cols": ("device",),
        "iv_voltages": ("voltage",),
        "iv_current": ("voltage", "device"),
        "ramp_amplitudes": ("step",),
        "set_threshold": ("device",),
        "reset_threshold": ("device",),
        "read_repeats": ("repeat", "device"),
    }
    UNITS = {
        "rows": "1", "cols": "1", "iv_voltages": "V", "iv_current": "A", "ramp_amplitudes": "V",
        "set_threshold": "V", "reset_threshold": "V", "read_repeats": "S",
    }  # fmt: skip

    def save(self, store) -> None:
        for name, dims in self.DIMS.items():
            store.write(name, getattr(self, name), dims, self.UNITS[name])

    @classmethod
    def load(cls, store) -> "PassiveData":
        return cls(**{name: store.read(name) for name in cls.DIMS}, settings=store.attrs.get("settings", {}))


def _ramp(rows: np.ndarray, cols: np.ndarray, amplitudes: np.ndarray, width: float, kind: str, fraction: float) -> PlanRun:
    """Amplitude at which each device's reading first moves: by ``fraction`` of the reading or,
    if the sneak background makes that too coarse, by 6 sigma of the read noise."""
    g0 = yield Read(rows, cols)
    g0b = yield Read(rows, cols)
    noise_rel = 1.4826 * float(np.median(np.abs(g0b - g0) / np.abs(g0))) / np.sqrt(2)
    step = np.minimum(fraction, max(6 * noise_rel, 1e-3))
    threshold = np.full(rows.size, np.nan)
    for amp in amplitudes:
        todo = np.isnan(threshold)
        if not todo.any():
            break
        r = yield Pulse(kind, rows[todo], cols[todo], float(amp), 0.0, width, read=True)
        moved = ~r.refused & (np.abs(r.g - g0[todo]) > step * g0[todo])
        idx = np.nonzero(todo)[0][moved]
        threshold[idx] = amp
    return threshold


@register
class CharacterizePassive(CharacterizationPlan):
    """The passive characterization as a plan (module docstring); returns :class:`PassiveData`."""

    name = "characterize-passive"
    device_kind = "passive"
    settings_class = PassiveCharacterization

    def check(self, xb: Crossbar) -> None:
        s = self.settings
        check_pulse_settings(xb, "passive characterization ramps", list(s.ramp_amplitudes), 0.0, s.ramp_width)
        for v in s.iv_voltages:
            xb.limits.check_voltage(v, "iv_voltages")
        select_devices(xb.shape, 2 * s.n_devices, s.seed)  # enough devices

    def run(self, shape: tuple[int, int]) -> PlanRun:
        s = self.settings
        yield Bias.of(s.scheme)
        rows, cols = select_devices(shape, 2 * s.n_devices, s.seed)
        iv_rows, iv_cols = rows[: s.n_devices], cols[: s.n_devices]
        ramp_rows, ramp_cols = rows[s.n_devices :], cols[s.n_devices :]

        # 1. I-V under the biasing scheme (board reads: column currents)
        volts = np.asarray(s.iv_voltages, dtype=float)
        current = np.empty((volts.size, s.n_devices))
        for k, v in enumerate(volts):
            current[k] = yield Measure(iv_rows, iv_cols, voltage=float(v))
        yield Report("I-V", 1, 3)

        # 2. threshold ramps on fresh devices
        amps = np.asarray(s.ramp_amplitudes, dtype=float)
        v_set = yield from _ramp(ramp_rows, ramp_cols, amps, s.ramp_width, "SET", s.switch_fraction)
        v_reset = yield from _ramp(ramp_rows, ramp_cols, amps, s.ramp_width, "RESET", s.switch_fraction)
        yield Report("thresholds", 2, 3)

        # 3. read noise
        repeats = np.empty((s.read_repeats, s.n_devices))
        for k in range(s.read_repeats):
            repeats[k] = yield Read(iv_rows, iv_cols)
        yield Report("done", 3, 3)
        return PassiveData(iv_rows, iv_cols, volts, current, amps, v_set, v_reset, repeats, settings=s.to_dict())


def characterize_passive(
    xb: Crossbar,
    timer: BenchTimer | None = None,
    settings: PassiveCharacterization = PassiveCharacterization(),
    progress: Progress | None = None,
    out: str | Path | None = None,
) -> PassiveData:
    """Run :class:`CharacterizePassive` on ``xb`` through the engine and return the raw data."""
    return run_plan(xb, CharacterizePassive(settings), out, timer=timer, progress=progress)
