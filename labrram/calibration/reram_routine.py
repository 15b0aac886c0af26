"""Characterization of a 1T1R ReRAM array, run on any :class:`~labrram.crossbar.Crossbar`.

The routine measures, through the instruments only:

1. the access transistor: the saturation current of a few fully SET cells at each word-line
   level (SMU routed to the cell, bit line at ``transistor_voltage``, below the SET threshold);
2. the SET statistics: ``cycles`` x ``gates`` RESET / SET cycles on ``n_devices`` devices, each
   read ``read_delay`` seconds after its SET (the relaxation of the first seconds is the same
   for every level, as in Bonnet et al. 2023);
3. read noise: ``read_repeats`` reads of devices SET at the middle level;
4. relaxation: reads of freshly SET devices at ``relaxation_delays`` after the SET.

Waiting uses the bench timer (virtual time on the simulated bench). Every array is written to
the run store with dimension names and SI units as it is measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from ..crossbar import Crossbar
from ..timing import BenchTimer

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ReRAMCharacterization:
    """Settings of :func:`characterize_reram` (SI units)."""

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
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_devices < 8:
            raise ValueError("n_devices must be at least 8")
        if self.cycles < 2:
            raise ValueError("cycles must be at least 2 (the cycle-to-cycle spread needs repeats)")
        if len(self.gates) < 3 or sorted(self.gates) != list(self.gates):
            raise ValueError("gates must be at least 3 increasing word-line voltages")
        if self.read_repeats < 2:
            raise ValueError("read_repeats must be at least 2")
        if self.transistor_cells < 1 or self.transistor_cells > self.n_devices:
            raise ValueError("transistor_cells must be between 1 and n_devices")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def select_devices(shape: tuple[int, int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct cells spread at random over the array (seeded), row-major sorted."""
    total = shape[0] * shape[1]
    if n > total:
        raise ValueError(f"cannot select {n} devices from a {shape[0]}x{shape[1]} array")
    flat = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    return flat // shape[1], flat % shape[1]


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
    }

    def save(self, store) -> None:
        for name, dims in self.DIMS.items():
            store.write(name, getattr(self, name), dims, self.UNITS[name])

    @classmethod
    def load(cls, store) -> "ReRAMData":
        arrays = {name: store.read(name) for name in cls.DIMS}
        return cls(**arrays, settings=store.attrs.get("settings", {}))


def characterize_reram(
    xb: Crossbar,
    timer: BenchTimer,
    settings: ReRAMCharacterization = ReRAMCharacterization(),
    progress: Progress | None = None,
) -> ReRAMData:
    """Run the characterization (see the module docstring) and return the raw data."""
    s = settings
    rows, cols = select_devices(xb.shape, s.n_devices, s.seed)
    cells = (rows, cols)
    gates = np.asarray(s.gates, dtype=float)
    n_lv = gates.size
    total = 1 + s.cycles * n_lv + 2
    step = 0

    def tick(label: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(label, step, total)

    def do_reset(target=cells) -> np.ndarray:
        return xb.reset(target, gate=s.reset_gate, amplitude=s.reset_amplitude, width=s.reset_width, read=True)

    def do_set(gate, target=cells, read: bool = False):
        return xb.set(target, gate=gate, amplitude=s.set_amplitude, width=s.set_width, read=read)

    # 1. access transistor: saturation current of fully SET cells at each gate level
    t_cells = (rows[: s.transistor_cells], cols[: s.transistor_cells])
    do_reset(t_cells)
    do_set(float(gates[-1]), t_cells)
    transistor = np.empty((n_lv, s.transistor_cells))
    for k in range(s.transistor_cells):
        for lv, gate in enumerate(gates):
            transistor[lv, k] = xb.iv_sweep(int(t_cells[0][k]), int(t_cells[1][k]), [s.transistor_voltage], gate=float(gate))[0]
    tick("transistor")

    # 2. RESET / SET cycles at every level, read after read_delay
    g_set = np.empty((s.cycles, n_lv, s.n_devices))
    g_reset = np.empty_like(g_set)
    for cycle in range(s.cycles):
        for lv, gate in enumerate(gates):
            g_reset[cycle, lv] = do_reset()
            do_set(float(gate))
            timer.wait(s.read_delay)
            g_set[cycle, lv] = xb.read(cells)
            tick(f"cycle {cycle + 1}/{s.cycles}, gate {gate:.2f} V")

    # 3. read noise at the middle level
    mid = float(gates[n_lv // 2])
    do_reset()
    do_set(mid)
    timer.wait(s.read_delay)
    repeats = np.stack([xb.read(cells) for _ in range(s.read_repeats)])
    tick("read noise")

    # 4. relaxation after a fresh SET
    do_reset()
    g0 = do_set(mid, read=True)
    t0 = timer.now()
    delays = np.asarray(s.relaxation_delays, dtype=float)
    relax = np.empty((delays.size, s.n_devices))
    times = np.empty(delays.size)
    for j, delay in enumerate(delays):
        timer.wait(max(t0 + delay - timer.now(), 0.0))
        times[j] = timer.now() - t0
        relax[j] = np.mean([xb.read(cells) for _ in range(s.relaxation_reads)], axis=0)
    tick("relaxation")

    return ReRAMData(rows, cols, gates, transistor, g_set, g_reset, repeats, g0, times, relax, settings=s.to_dict())
