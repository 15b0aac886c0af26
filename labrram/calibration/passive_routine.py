"""Characterization of a passive (0T1R) crossbar, run on any :class:`~labrram.crossbar.Crossbar`.

Every read of a passive array carries the sneak currents of the biasing scheme; the routine
works with what the board measures (column currents) and leaves their separation to the fit.

1. **I–V**: the column current of each selected device at ``iv_voltages`` (below the switching
   thresholds), under the station's biasing scheme (V/2 by default);
2. **threshold ramps**: fresh devices get SET pulses of rising amplitude, each followed by a
   read, until their conductance moves by ``switch_fraction``; then RESET pulses likewise;
3. **read noise**: ``read_repeats`` reads of the I–V devices.
4. **as-fabricated map**: every cell of ``map_columns`` untouched columns is read at
   ``map_voltage``, ``map_repeats`` times (before any pulse). On a column read cell by cell
   under V/2 or V/3, ``I_k = G_k (s(V) - s(u)) + S s(u)`` (``s(v) = sinh(a v)/a``, ``u`` the
   half-selected voltage, ``S`` the column sum), so the fit separates every cell from the sneak
   background of its column without assuming what the column holds: the as-fabricated median
   and spread of the cells that a transfer leaves unused.
5. **tuning imprecision**: ``tune_devices`` fresh devices, one per further column, are tuned to
   targets spread over the window by :mod:`labrram.protocols.tune_passive` (``"measured"``
   background: every read separates the device from its column), then their columns are read
   ``map_repeats`` times as in step 4. The relative deviation of each tuned device from its
   target is what the tuning protocol achieves (a protocol estimate, apart from the device
   parameters).

Steps 4 and 5 need a driven scheme (V/2 or V/3); with ``"float"`` they are skipped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..crossbar import Crossbar
from ..devices.passive import PassiveDeviceModel
from ..protocols.engine import Progress, run_plan
from ..protocols.messages import BIAS_SCHEMES, Bias, Measure, Pulse, Read, Report
from ..protocols.plan import PlanRun, check_pulse_settings, register
from ..protocols.tune_passive import PassiveTuning, TunePassive
from ..timing import BenchTimer
from .routine import CharacterizationPlan, select_devices

#: schemes under which a column read separates each cell from its column (steps 4 and 5)
TUNE_SCHEMES = ("V/2", "V/3")


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
    map_columns : int
        Untouched columns read cell by cell for the as-fabricated map (0 skips it).
    map_repeats : int
        Reads of every cell of the map and of the tuned devices' columns.
    map_voltage : float
        Read voltage of the column reads, V.
    tune_devices : int
        Devices tuned for the tuning imprecision, one per column (0 skips it; capped at the
        columns the map leaves).
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
    map_columns: int = 4
    map_repeats: int = 4
    map_voltage: float = 0.2
    tune_devices: int = 24
    seed: int = 0

    def __post_init__(self) -> None:
        if self.scheme not in BIAS_SCHEMES:
            raise ValueError(f"scheme must be one of {sorted(BIAS_SCHEMES)}")
        if self.n_devices < 8:
            raise ValueError("n_devices must be at least 8")
        if len(self.iv_voltages) < 4:
            raise ValueError("iv_voltages needs at least 4 voltages")
        for name in ("map_columns", "tune_devices"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {getattr(self, name)!r}")
        if int(self.map_repeats) != self.map_repeats or self.map_repeats < 2:
            raise ValueError(f"map_repeats must be an integer >= 2 (the read noise of the map), got {self.map_repeats!r}")
        if not 0 < self.map_voltage <= 0.5:
            raise ValueError(f"map_voltage must lie in (0, 0.5] V (below the switching thresholds), got {self.map_voltage!r}")

    def columns(self, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
        """Columns of the as-fabricated map and of the tuned devices (distinct, seeded)."""
        if self.scheme not in TUNE_SCHEMES:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        perm = np.random.default_rng([self.seed, 1]).permutation(n_cols)
        k = min(int(self.map_columns), n_cols)
        return np.sort(perm[:k]), perm[k : k + int(self.tune_devices)]

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
    fab_cols: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (map_col,)
    fab_current: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # (map_repeat, row, map_col), A
    tune_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (tuned,)
    tune_cols: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (tuned,)
    tune_targets: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (tuned,), S
    tune_current: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0)))  # (map_repeat, row, tuned), A
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
        "fab_cols": ("map_col",),
        "fab_current": ("map_repeat", "row", "map_col"),
        "tune_rows": ("tuned",),
        "tune_cols": ("tuned",),
        "tune_targets": ("tuned",),
        "tune_current": ("map_repeat", "row", "tuned"),
    }
    UNITS = {
        "rows": "1", "cols": "1", "iv_voltages": "V", "iv_current": "A", "ramp_amplitudes": "V",
        "set_threshold": "V", "reset_threshold": "V", "read_repeats": "S", "fab_cols": "1", "fab_current": "A",
        "tune_rows": "1", "tune_cols": "1", "tune_targets": "S", "tune_current": "A",
    }  # fmt: skip
    #: measured only by this routine's steps 4 and 5 (absent from older or imported runs)
    OPTIONAL = ("fab_cols", "fab_current", "tune_rows", "tune_cols", "tune_targets", "tune_current")

    def save(self, store) -> None:
        for name, dims in self.DIMS.items():
            store.write(name, getattr(self, name), dims, self.UNITS[name])

    @classmethod
    def load(cls, store) -> "PassiveData":
        have = set(store.group.array_keys())
        values = {name: store.read(name) for name in cls.DIMS if name in have or name not in cls.OPTIONAL}
        return cls(**values, settings=store.attrs.get("settings", {}))


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


def _column_reads(m: int, cols: np.ndarray, repeats: int, voltage: float) -> PlanRun:
    """Every cell of ``cols`` read ``repeats`` times at ``voltage``: ``(repeat, row, col)`` currents, A."""
    out = np.empty((repeats, m, cols.size))
    if cols.size == 0:
        return out
    rr = np.repeat(np.arange(m), cols.size)
    cc = np.tile(cols, m)
    for k in range(repeats):
        out[k] = (yield Measure(rr, cc, voltage=float(voltage))).reshape(m, cols.size)
    return out


@register
class CharacterizePassive(CharacterizationPlan):
    """The passive characterization as a plan (module docstring); returns :class:`PassiveData`."""

    name = "characterize-passive"
    device_kind = "passive"
    settings_class = PassiveCharacterization

    def check(self, xb: Crossbar) -> None:
        s = self.settings
        check_pulse_settings(xb, "passive characterization ramps", list(s.ramp_amplitudes), 0.0, s.ramp_width)
        for v in [*s.iv_voltages, s.map_voltage]:
            xb.limits.check_voltage(v, "iv_voltages and map_voltage")
        select_devices(xb.shape, 2 * s.n_devices, s.seed)  # enough devices
        self._tuner = None
        _, tune_cols = s.columns(xb.shape[1])
        if tune_cols.size:
            tuner = TunePassive(self._tune_targets(xb.shape), PassiveDeviceModel(), PassiveTuning(scheme=s.scheme, background="measured"))
            tuner.check(xb)  # the protocol's own limits and half-select checks, before any byte
            self._tuner = tuner

    def _tune_targets(self, shape: tuple[int, int]) -> np.ndarray:
        """Targets of step 5 (NaN elsewhere): one device per tuned column, the targets spread
        log-evenly over the inner part of the nominal window (2 g_min .. 0.8 g_max), in a random
        row that none of the other steps touches."""
        s, nominal = self.settings, PassiveDeviceModel()
        _, tune_cols = s.columns(shape[1])
        rows, cols = select_devices(shape, 2 * s.n_devices, s.seed)
        touched = set(zip(rows.tolist(), cols.tolist()))
        rng = np.random.default_rng([s.seed, 2])
        values = np.geomspace(2 * nominal.g_min, 0.8 * nominal.g_max, tune_cols.size)
        targets = np.full(shape, np.nan)
        for c, g in zip(tune_cols.tolist(), rng.permutation(values).tolist()):
            free = [r for r in range(shape[0]) if (r, c) not in touched]
            targets[int(rng.choice(free)), c] = g
        return targets

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
        yield Report("I-V", 1, 5)

        # 4. (before any pulse) the as-fabricated map: untouched columns, cell by cell
        fab_cols, tune_cols = s.columns(shape[1])
        fab_current = yield from _column_reads(shape[0], fab_cols, s.map_repeats, s.map_voltage)
        yield Report("as-fabricated map", 2, 5)

        # 2. threshold ramps on fresh devices
        amps = np.asarray(s.ramp_amplitudes, dtype=float)
        v_set = yield from _ramp(ramp_rows, ramp_cols, amps, s.ramp_width, "SET", s.switch_fraction)
        v_reset = yield from _ramp(ramp_rows, ramp_cols, amps, s.ramp_width, "RESET", s.switch_fraction)
        yield Report("thresholds", 3, 5)

        # 3. read noise
        repeats = np.empty((s.read_repeats, s.n_devices))
        for k in range(s.read_repeats):
            repeats[k] = yield Read(iv_rows, iv_cols)
        yield Report("read noise", 4, 5)

        # 5. tuning imprecision: the tuning protocol on fresh devices, then their columns read
        tune_rows, tune_targets = np.zeros(0, np.int64), np.zeros(0)
        tune_current = np.zeros((s.map_repeats, shape[0], 0))
        if tune_cols.size and self._tuner is not None:
            targets = self._tuner.targets
            tune_rows = np.array([int(np.flatnonzero(np.isfinite(targets[:, c]))[0]) for c in tune_cols])
            tune_targets = targets[tune_rows, tune_cols]
            yield from self._tuner.run(shape)
            yield Bias.of(s.scheme)
            tune_current = yield from _column_reads(shape[0], tune_cols, s.map_repeats, s.map_voltage)
        yield Report("done", 5, 5)
        return PassiveData(iv_rows, iv_cols, volts, current, amps, v_set, v_reset, repeats, fab_cols, fab_current,
                           tune_rows, tune_cols, tune_targets, tune_current, settings=s.to_dict())  # fmt: skip


def characterize_passive(
    xb: Crossbar,
    timer: BenchTimer | None = None,
    settings: PassiveCharacterization = PassiveCharacterization(),
    progress: Progress | None = None,
    out: str | Path | None = None,
) -> PassiveData:
    """Run :class:`CharacterizePassive` on ``xb`` through the engine and return the raw data."""
    return run_plan(xb, CharacterizePassive(settings), out, timer=timer, progress=progress)
