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
from typing import Any

import numpy as np

from ..crossbar import Crossbar
from ..timing import BenchTimer
from .reram_routine import Progress, select_devices

SCHEMES = {"V/2": "HALF", "V/3": "THIRD", "float": "FLOAT"}


@dataclass(frozen=True)
class PassiveCharacterization:
    """Settings of :func:`characterize_passive` (SI units)."""

    n_devices: int = 64
    scheme: str = "V/2"
    iv_voltages: tuple[float, ...] = tuple(np.round(np.linspace(0.05, 0.6, 12), 4))
    ramp_amplitudes: tuple[float, ...] = tuple(np.round(np.arange(0.5, 1.85, 0.05), 3))
    ramp_width: float = 1e-6
    switch_fraction: float = 0.05
    read_repeats: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {sorted(SCHEMES)}")
        if self.n_devices < 8:
            raise ValueError("n_devices must be at least 8")
        if len(self.iv_voltages) < 4:
            raise ValueError("iv_voltages needs at least 4 voltages")

    def to_dict(self) -> dict[str, Any]:
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


def _ramp(xb: Crossbar, cells, amplitudes, width: float, kind: str, fraction: float) -> np.ndarray:
    """Amplitude at which each device's reading first moves: by ``fraction`` of the reading or,
    if the sneak background makes that too coarse, by 6 sigma of the read noise."""
    rows, cols = cells
    g0 = xb.read(cells)
    g0b = xb.read(cells)
    noise_rel = 1.4826 * float(np.median(np.abs(g0b - g0) / np.abs(g0))) / np.sqrt(2)
    step = np.minimum(fraction, max(6 * noise_rel, 1e-3))
    threshold = np.full(rows.size, np.nan)
    for amp in amplitudes:
        todo = np.isnan(threshold)
        if not todo.any():
            break
        sub = (rows[todo], cols[todo])
        fn = xb.set if kind == "SET" else xb.reset
        g = fn(sub, amplitude=float(amp), gate=0.0, width=width, read=True)
        moved = np.abs(g - g0[todo]) > step * g0[todo]
        idx = np.nonzero(todo)[0][moved]
        threshold[idx] = amp
    return threshold


def characterize_passive(
    xb: Crossbar,
    timer: BenchTimer,
    settings: PassiveCharacterization = PassiveCharacterization(),
    progress: Progress | None = None,
) -> PassiveData:
    """Run the passive characterization (see the module docstring) and return the raw data."""
    s = settings
    board = xb.board
    board.write(f":ARR:BIAS {SCHEMES[s.scheme]}")
    board.check_errors()
    rows, cols = select_devices(xb.shape, 2 * s.n_devices, s.seed)
    iv_cells = (rows[: s.n_devices], cols[: s.n_devices])
    ramp_cells = (rows[s.n_devices :], cols[s.n_devices :])
    total = 3

    # 1. I-V under the biasing scheme (board reads: column currents)
    volts = np.asarray(s.iv_voltages, dtype=float)
    current = np.empty((volts.size, s.n_devices))
    for k, v in enumerate(volts):
        board.read_voltage = float(v)
        current[k] = board.measure_cells(*iv_cells)
    board.read_voltage = xb.read_voltage  # back to the crossbar's read voltage
    if progress:
        progress("I-V", 1, total)

    # 2. threshold ramps on fresh devices
    amps = np.asarray(s.ramp_amplitudes, dtype=float)
    v_set = _ramp(xb, ramp_cells, amps, s.ramp_width, "SET", s.switch_fraction)
    v_reset = _ramp(xb, ramp_cells, amps, s.ramp_width, "RESET", s.switch_fraction)
    if progress:
        progress("thresholds", 2, total)

    # 3. read noise
    repeats = np.stack([xb.read(iv_cells) for _ in range(s.read_repeats)])
    if progress:
        progress("done", total, total)
    return PassiveData(iv_cells[0], iv_cells[1], volts, current, amps, v_set, v_reset, repeats, settings=s.to_dict())
