"""Characterization of a 1T1R ReRAM array, run on any :class:`~labrram.crossbar.Crossbar`.

The routine measures, through the instruments only:

1. the access transistor: the saturation current of a few fully SET cells at each word-line
   level (SMU routed to the cell, bit line at ``transistor_voltage``, below the SET threshold);
2. the SET statistics: ``cycles`` x ``gates`` RESET / SET cycles on ``n_devices`` devices, each
   read ``read_delay`` seconds after its SET (the relaxation of the first seconds is the same
   for every level, as in Bonnet et al. 2023);
3. read noise: ``read_repeats`` reads of devices SET at the middle level;
4. relaxation: reads of freshly SET devices at ``relaxation_delays`` after the SET;
5. stuck-device survey (``survey``): every other cell of the array is RESET and read, SET at
   the top gate and read, and RESET again: a stuck device is one in ~500, so the stuck
   fractions need the whole array, not ``n_devices`` (with 256 devices the expected count of
   stuck-at-HRS devices is 0.5, and no interval on it can hold a 95 % coverage). It leaves every
   surveyed cell RESET.

A plan (:class:`CharacterizeReRAM`) that the engine runs: waiting uses the bench clock (virtual
time on the simulated bench), every step is recorded as it is measured, and an interrupted
characterization resumes where it stopped. The raw data is written to the run store with
dimension names and SI units when it ends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..crossbar import Crossbar
from ..protocols.engine import Progress, run_plan
from ..protocols.messages import Now, Pulse, Read, Report, Sweep, Wait
from ..protocols.plan import PlanRun, check_pulse_settings, register
from ..timing import BenchTimer
from .routine import CharacterizationPlan, select_devices


#: most SET readings (cycles x levels x devices) one characterization holds (8 bytes each)
MAX_SET_READINGS = 50_000_000


@dataclass(frozen=True)
class ReRAMCharacterization:
    """Settings of the ReRAM characterization (:func:`labrram.characterize` with ``kind="reram"``).

    Attributes
    ----------
    n_devices : int
        Devices measured: distinct cells drawn at random over the whole array (seeded by
        ``seed``); the first ``transistor_cells`` of them also measure the access transistor.
    gates : tuple of float
        Word-line (gate) voltages of the SETs, V, increasing: the compliance levels.
    cycles : int
        RESET/SET cycles per level and device.
    read_delay : float
        Time from a SET to its read, s.
    set_amplitude, set_width : float
        SET pulse on the bit line: V, s.
    reset_amplitude, reset_gate, reset_width : float
        RESET pulse on the source line: V; its gate, V; its width, s.
    transistor_cells : int
        Cells whose saturation current is measured at each gate level.
    transistor_voltage : float
        Bit-line voltage of that measurement, V (below the SET threshold).
    read_repeats : int
        Back-to-back reads for the read noise.
    relaxation_delays : tuple of float
        Times after a SET of the relaxation reads, s.
    relaxation_reads : int
        Devices read for the relaxation.
    survey : bool
        Survey every other cell of the array for stuck devices (step 5).
    seed : int
        Seed of the device selection.
    """

    n_devices: int = 256
    gates: tuple[float, ...] = tuple(np.round(np.linspace(1.4, 2.2, 8), 4))
    cycles: int = 8
    read_delay: float = 6.0
    set_amplitude: float = 1.8
    set_width: float = 1e-6
    reset_amplitude: float = 2.6
    reset_gate: float = 4.8
    reset_width: float = 100e-9
    transistor_cells: int = 8
    transistor_voltage: float = 1.1
    read_repeats: int = 32
    relaxation_delays: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
    relaxation_reads: int = 32
    survey: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_devices < 8:
            raise ValueError("n_devices must be at least 8")
        if self.cycles < 2:
            raise ValueError("cycles must be at least 2 (the cycle-to-cycle spread needs repeats)")
        if self.cycles * len(self.gates) * self.n_devices > MAX_SET_READINGS:
            raise ValueError(f"{self.cycles} cycles x {len(self.gates)} levels x {self.n_devices} devices is more than "
                             f"{MAX_SET_READINGS:,} SET readings (the data held in memory); characterize in several runs")  # fmt: skip
        if len(self.gates) < 3 or sorted(self.gates) != list(self.gates):
            raise ValueError("gates must be at least 3 increasing word-line voltages")
        if self.read_repeats < 2:
            raise ValueError("read_repeats must be at least 2")
        if self.transistor_cells < 1 or self.transistor_cells > self.n_devices:
            raise ValueError("transistor_cells must be between 1 and n_devices")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data (tuples as lists), as a run store records them."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass
class ReRAMData:
    """Raw characterization data (what the fit consumes), all SI."""

    rows: np.ndarray
    cols: np.ndarray
    gates: np.ndarray
    transistor_current: np.ndarray  # (level, cell), A
    g_set: np.ndarray  # (cycle, level, device), S, read at read_delay
    g_reset: np.ndarray  # (cycle, level, device), S, read right after the RESET
    read_repeats: np.ndarray  # (repeat, device), S
    relax_g0: np.ndarray  # (device,), S, read back in the SET pulse's own transaction
    relax_times: np.ndarray  # (delay,), s after the SET
    relax_g: np.ndarray  # (delay, device), S
    survey_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (survey_cell,)
    survey_cols: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (survey_cell,)
    survey_g_reset: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (survey_cell,), S, after a RESET
    survey_g_set: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (survey_cell,), S, after a SET at the top gate
    settings: dict[str, Any] = field(default_factory=dict)

    DIMS = {
        "rows": ("device",),
        "cols": ("device",),
        "gates": ("level",),
        "transistor_current": ("level", "transistor_cell"),
        "g_set": ("cycle", "level", "device"),
        "g_reset": ("cycle", "level", "device"),
        "read_repeats": ("repeat", "device"),
        "relax_g0": ("device",),
        "relax_times": ("delay",),
        "relax_g": ("delay", "device"),
        "survey_rows": ("survey_cell",),
        "survey_cols": ("survey_cell",),
        "survey_g_reset": ("survey_cell",),
        "survey_g_set": ("survey_cell",),
    }
    UNITS = {
        "rows": "1",
        "cols": "1",
        "gates": "V",
        "transistor_current": "A",
        "g_set": "S",
        "g_reset": "S",
        "read_repeats": "S",
        "relax_g0": "S",
        "relax_times": "s",
        "relax_g": "S",
        "survey_rows": "1",
        "survey_cols": "1",
        "survey_g_reset": "S",
        "survey_g_set": "S",
    }
    #: measured only by step 5 (absent from older or imported runs: the fit then counts stuck
    #: devices among the characterized ones)
    OPTIONAL = ("survey_rows", "survey_cols", "survey_g_reset", "survey_g_set")

    def save(self, store) -> None:
        for name, dims in self.DIMS.items():
            store.write(name, getattr(self, name), dims, self.UNITS[name])

    @classmethod
    def load(cls, store) -> "ReRAMData":
        have = set(store.group.array_keys())
        arrays = {name: store.read(name) for name in cls.DIMS if name in have or name not in cls.OPTIONAL}
        return cls(**arrays, settings=store.attrs.get("settings", {}))


@register
class CharacterizeReRAM(CharacterizationPlan):
    """The ReRAM characterization as a plan (module docstring); returns :class:`ReRAMData`."""

    name = "characterize-reram"
    device_kind = "reram"
    settings_class = ReRAMCharacterization

    def check(self, xb: Crossbar) -> None:
        s = self.settings
        check_pulse_settings(xb, "ReRAM characterization SET", s.set_amplitude, [min(s.gates), max(s.gates)], s.set_width)
        check_pulse_settings(xb, "ReRAM characterization RESET", s.reset_amplitude, s.reset_gate, s.reset_width)
        xb.limits.check_voltage(s.transistor_voltage, "transistor_voltage")
        select_devices(xb.shape, s.n_devices, s.seed)  # enough devices

    def run(self, shape: tuple[int, int]) -> PlanRun:
        s = self.settings
        rows, cols = select_devices(shape, s.n_devices, s.seed)
        gates = np.asarray(s.gates, dtype=float)
        n_lv = gates.size
        total = 1 + s.cycles * n_lv + 2 + int(s.survey)

        def reset(r=rows, c=cols):
            return Pulse("RESET", r, c, s.reset_amplitude, s.reset_gate, s.reset_width, read=True)

        def set_(gate: float, r=rows, c=cols, read: bool = False):
            return Pulse("SET", r, c, s.set_amplitude, gate, s.set_width, read=read)

        # 1. access transistor: saturation current of fully SET cells at each gate level
        tr, tc = rows[: s.transistor_cells], cols[: s.transistor_cells]
        yield reset(tr, tc)
        yield set_(float(gates[-1]), tr, tc)
        transistor = np.empty((n_lv, s.transistor_cells))
        for k in range(s.transistor_cells):
            for lv, gate in enumerate(gates):
                transistor[lv, k] = (yield Sweep(int(tr[k]), int(tc[k]), [s.transistor_voltage], gate=float(gate)))[0]
        yield Report("transistor", 1, total)

        # 2. RESET / SET cycles at every level, read after read_delay
        g_set = np.empty((s.cycles, n_lv, s.n_devices))
        g_reset = np.empty_like(g_set)
        step = 1
        for cycle in range(s.cycles):
            for lv, gate in enumerate(gates):
                g_reset[cycle, lv] = (yield reset()).g
                yield set_(float(gate))
                yield Wait(s.read_delay)
                g_set[cycle, lv] = yield Read(rows, cols)
                step += 1
                yield Report(f"cycle {cycle + 1}/{s.cycles}, gate {gate:.2f} V", step, total)

        # 3. read noise at the middle level
        mid = float(gates[n_lv // 2])
        yield reset()
        yield set_(mid)
        yield Wait(s.read_delay)
        repeats = np.empty((s.read_repeats, s.n_devices))
        for k in range(s.read_repeats):
            repeats[k] = yield Read(rows, cols)
        yield Report("read noise", total - 1, total)

        # 4. relaxation after a fresh SET
        yield reset()
        g0 = (yield set_(mid, read=True)).g
        t0 = yield Now()
        delays = np.asarray(s.relaxation_delays, dtype=float)
        relax = np.empty((delays.size, s.n_devices))
        times = np.empty(delays.size)
        for j, delay in enumerate(delays):
            now = yield Now()
            yield Wait(max(t0 + delay - now, 0.0))
            times[j] = (yield Now()) - t0
            reads = np.empty((s.relaxation_reads, s.n_devices))
            for k in range(s.relaxation_reads):
                reads[k] = yield Read(rows, cols)
            relax[j] = reads.mean(axis=0)
        yield Report("relaxation", total - int(s.survey), total)

        # 5. stuck-device survey: every other cell RESET and read, SET at the top gate and read, RESET
        survey = {}
        if s.survey:
            other = np.ones(shape, dtype=bool)
            other[rows, cols] = False
            sr, sc = np.nonzero(other)
            survey["survey_rows"], survey["survey_cols"] = sr, sc
            survey["survey_g_reset"] = (yield reset(sr, sc)).g
            survey["survey_g_set"] = (yield set_(float(gates[-1]), sr, sc, read=True)).g
            yield Pulse("RESET", sr, sc, s.reset_amplitude, s.reset_gate, s.reset_width)
            yield Report("stuck-device survey", total, total)
        return ReRAMData(rows, cols, gates, transistor, g_set, g_reset, repeats, g0, times, relax, **survey, settings=s.to_dict())


def characterize_reram(
    xb: Crossbar,
    timer: BenchTimer | None = None,
    settings: ReRAMCharacterization = ReRAMCharacterization(),
    progress: Progress | None = None,
    out: str | Path | None = None,
) -> ReRAMData:
    """Run :class:`CharacterizeReRAM` on ``xb`` through the engine and return the raw data."""
    return run_plan(xb, CharacterizeReRAM(settings), out, timer=timer, progress=progress)
