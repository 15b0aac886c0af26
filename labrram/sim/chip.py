"""A simulated chip: a 1T1R ReRAM array with hidden true device state.

The chip is the die on the simulated bench. Instrument emulators (the board, the SMUs) call
into it with physical quantities (line voltages, gate voltages, durations); nothing above the
transport sees it. Its true parameters are private (``_truth``); tests may read them through
:meth:`ReRAMChip.reveal_truth` to judge calibration, nothing in labrram's stack does.

Array geometry: row ``r`` has word line ``WL_r`` (the access-transistor gates) and source line
``SL_r``; column ``c`` has bit line ``BL_c``. SET drives ``BL`` positive with ``SL`` grounded,
RESET drives ``SL`` positive with ``BL`` grounded; the gate voltage sets the SET compliance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..devices.reram import LEVEL_INSTABILITY_PRESETS, LevelInstability, ReRAMModel
from ..devices.set_families import FAMILIES, QuantileTable
from .clock import VirtualClock


def set_family_option(value: str) -> tuple[str, QuantileTable | None]:
    """``(family, table)`` of a chip's ``set_distribution`` option (see :class:`ReRAMChip`);
    a ValueError names what is wrong."""
    if not isinstance(value, str):
        raise ValueError(f"set_distribution must be a string, got {value!r}")
    name, sep, path = value.partition(":")
    if name == "empirical":
        if not sep or not path.strip():
            raise ValueError('set_distribution "empirical" needs a quantile table file: "empirical:FILE"')
        return "empirical", QuantileTable.load(path.strip())
    if sep or name not in FAMILIES:
        choices = [f for f in FAMILIES if f != "empirical"] + ["empirical:FILE"]
        raise ValueError(f"set_distribution must be one of {choices}, got {value!r}")
    return name, None

PULSE_DTYPE = np.dtype(
    [
        ("t", "f8"),  # virtual time of the pulse, s
        ("row", "u2"),
        ("col", "u2"),
        ("kind", "u1"),  # see PulseKind
        ("amplitude", "f4"),  # BL-SL voltage for SET / bias, SL-BL voltage for RESET, V
        ("gate", "f4"),  # word-line voltage, V
        ("width", "f8"),  # pulse width or bias duration, s
        ("source", "u1"),  # 0 board, 1 SMU
    ]
)


class PulseKind:
    SET = 0
    RESET = 1
    BIAS = 2  # an SMU holding a voltage across a routed cell
    NAMES = {0: "set", 1: "reset", 2: "bias"}


class PulseLog:
    """Append-only record of every pulse and bias that reached the die.

    At most :attr:`memory_records` records are held in memory; older ones move to a temporary
    file (read back by :attr:`records`, for audits), so the simulated bench's memory stays flat
    on big arrays."""

    #: records held in memory before they move to the file
    memory_records = 1 << 16

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._n = 0
        self._on_file = 0  # records in the file
        self._file: Any = None

    def append(self, t: float, rows, cols, kind: int, amplitude, gate, width, source: int) -> None:
        rows = np.atleast_1d(np.asarray(rows))
        n = rows.size
        if n == 0:
            return
        rec = np.empty(n, dtype=PULSE_DTYPE)
        rec["t"] = t
        rec["row"] = rows
        rec["col"] = np.atleast_1d(cols)
        rec["kind"] = kind
        rec["amplitude"] = amplitude
        rec["gate"] = gate
        rec["width"] = width
        rec["source"] = source
        self._chunks.append(rec)
        self._n += n
        if self._n - self._on_file > self.memory_records:
            self._spill()

    def _spill(self) -> None:
        """Move the records held in memory to the file."""
        if self._file is None:
            import tempfile

            self._file = tempfile.TemporaryFile()
        self._file.seek(0, 2)
        for rec in self._chunks:
            self._file.write(rec.tobytes())
        self._on_file = self._n
        self._chunks = []

    def __len__(self) -> int:
        return self._n

    @property
    def records(self) -> np.ndarray:
        """All records as one structured array (fields of :data:`PULSE_DTYPE`)."""
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        memory = self._chunks[0] if self._chunks else np.empty(0, dtype=PULSE_DTYPE)
        if not self._on_file:
            return memory
        self._file.seek(0)
        on_file = np.frombuffer(self._file.read(self._on_file * PULSE_DTYPE.itemsize), dtype=PULSE_DTYPE)
        return np.concatenate([on_file, memory])

    def clear(self) -> None:
        self._chunks = []
        self._n = self._on_file = 0
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass(frozen=True)
class ChipInfo:
    """What the outside world may know about a chip: its kind, size and serial."""

    kind: str
    rows: int
    cols: int
    serial: str


class ChipBase:
    """What every simulated chip shares: its identity, clock, pulse log, seeded random state,
    and the address and value checks."""

    kind = "chip"
    rows: int
    cols: int

    def _setup(self, rows: int, cols: int, seed: int, clock: VirtualClock | None, serial_prefix: str, rng_key: int) -> None:
        """Common construction; the subclass then draws ``self._truth`` from ``self._rng``."""
        if rows < 1 or cols < 1 or rows > 4096 or cols > 4096:
            raise ValueError(f"chip size {rows}x{cols} out of range (1..4096)")
        self.rows, self.cols, self.seed = int(rows), int(cols), int(seed)
        self.clock = clock if clock is not None else VirtualClock()
        self.info = ChipInfo(self.kind, self.rows, self.cols, f"{serial_prefix}{self.seed:06d}")
        self.pulse_log = PulseLog()
        self.read_count = 0
        self.dirty = False  # the state changed since a persistent bench last saved it
        self.max_read_voltage = 0.0
        self._rng = np.random.default_rng(np.random.SeedSequence([rng_key, self.seed]))

    def _check_cells(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(rows, dtype=np.intp)
        cols = np.asarray(cols, dtype=np.intp)
        if rows.shape != cols.shape:
            raise ValueError("rows and cols must have the same shape")
        if rows.size and (rows.min() < 0 or rows.max() >= self.rows or cols.min() < 0 or cols.max() >= self.cols):
            raise IndexError("cell address outside the array")
        return rows, cols

    #: codes of a chip's device faults: 0 healthy, 1 stuck at LRS (SET), 2 stuck at HRS (RESET),
    #: 3 dead (keeps its present conductance, no longer switches)
    FAULT_CODES = {"stuck_lrs": 1, "stuck_hrs": 2, "dead": 3}

    def _fault_mask(self, kind: str, mask: Any) -> tuple[int, np.ndarray]:
        """The code of device fault ``kind`` (:data:`FAULT_CODES`) and ``mask`` as a boolean map
        of the chip; ValueError naming an unknown kind or a mask of another shape."""
        try:
            code = self.FAULT_CODES[kind]
        except KeyError:
            raise ValueError(f"unknown device fault {kind!r}; known: {sorted(self.FAULT_CODES)}") from None
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.rows, self.cols):
            raise ValueError(f"fault mask has shape {mask.shape}, the chip is {(self.rows, self.cols)}")
        return code, mask

    @staticmethod
    def _check_finite(**values) -> None:
        for name, x in values.items():
            if not np.all(np.isfinite(np.asarray(x, dtype=float))):
                raise ValueError(f"{name} must be finite")


class ReRAMChip(ChipBase):
    """A rows x cols HfOx 1T1R array drawn from a nominal :class:`ReRAMModel`.

    Parameters
    ----------
    rows, cols : int
        Array size (128 x 128 by default).
    seed : int
        Seeds the chip's hidden parameters, its initial state and all its noise.
    clock : VirtualClock
        The bench clock (time stamps of pulses, relaxation).
    nominal : ReRAMModel, optional
        Nominal model the chip's hidden truth is drawn around.
    set_distribution : str
        Shape of the chip's SET conductance distribution (the station's ``[simulation]
        set_distribution``): ``"gaussian"``, ``"lognormal"``, ``"skewed"``, ``"heavy"``, or
        ``"empirical:FILE"`` (the shape of a quantile table, :class:`QuantileTable` JSON or a
        calibration file carrying one). The median and spread laws drawn for the chip are kept;
        only the shape changes (:mod:`labrram.devices.set_families`).
    level_spread : str or LevelInstability
        Level-dependent post-programming instability of the chip
        (:class:`~labrram.devices.reram.LevelInstability`): ``"none"`` (default) or a preset of
        :data:`~labrram.devices.reram.LEVEL_INSTABILITY_PRESETS` (``"hfox-mlc"``: one broad
        intermediate level, as measured multi-level HfOx cells show), or an instance. Hidden
        like the rest of the truth; with ``"none"`` the chip is exactly the chip without it.
    """

    kind = "reram"

    def __init__(
        self,
        rows: int = 128,
        cols: int = 128,
        seed: int = 0,
        clock: VirtualClock | None = None,
        nominal: ReRAMModel | None = None,
        set_distribution: str = "gaussian",
        level_spread: str | LevelInstability = "none",
    ) -> None:
        self._setup(rows, cols, seed, clock, "RR", 0x1AB)
        if isinstance(level_spread, LevelInstability):
            self._instability: LevelInstability | None = level_spread
        elif isinstance(level_spread, str) and level_spread in LEVEL_INSTABILITY_PRESETS:
            self._instability = LEVEL_INSTABILITY_PRESETS[level_spread]
        else:
            raise ValueError(f"level_spread must be one of {sorted(LEVEL_INSTABILITY_PRESETS)} or a LevelInstability, got {level_spread!r}")
        family, table = set_family_option(set_distribution)
        self._truth = replace((nominal or ReRAMModel()).variant(self._rng), set_family=family, set_table=table)
        self._init_state()

    def _init_state(self) -> None:
        m, shape, rng = self._truth, (self.rows, self.cols), self._rng
        self._factor = m.sample_device_factors(shape, rng)
        self._g = m.sample_hrs(shape, rng)  # formed, then RESET
        self._t_prog = np.full(shape, self.clock.now)
        self._z = rng.standard_normal(shape)
        u = rng.random(shape)
        self._stuck = np.zeros(shape, dtype=np.int8)  # 0 ok, 1 stuck LRS, 2 stuck HRS
        self._stuck[u < m.p_stuck_lrs] = 1
        self._stuck[(u >= m.p_stuck_lrs) & (u < m.p_stuck_lrs + m.p_stuck_hrs)] = 2
        self._g_stuck_hrs = m.sample_hrs(shape, rng)

    def reveal_truth(self) -> ReRAMModel:
        """The hidden device model of this chip. For tests that judge calibration only."""
        return self._truth

    def reveal_instability(self) -> LevelInstability | None:
        """The chip's hidden level-dependent instability (None: none). For tests only."""
        return self._instability

    def inject_fault(self, kind: str, mask: np.ndarray) -> None:
        """Make the devices of ``mask`` fail from now on (fault injection; see :data:`FAULT_CODES`)."""
        code, mask = self._fault_mask(kind, mask)
        self._stuck[mask] = code
        self.dirty = True

    # --- state ---------------------------------------------------------------------------
    def _conductance(self, rows, cols) -> np.ndarray:
        m = self._truth
        dt = self.clock.now - self._t_prog[rows, cols]
        g = self._g[rows, cols] + m.relaxation(dt, self._z[rows, cols])
        if self._instability is not None:
            g = g + self._instability.shift(self._g[rows, cols], self._z[rows, cols], dt)
        g = np.maximum(g, m.g_min)
        stuck = self._stuck[rows, cols]
        g = np.where(stuck == 1, m.g_stuck_lrs * self._factor[rows, cols], g)
        return np.where(stuck == 2, self._g_stuck_hrs[rows, cols], g)

    # --- reads -------------------------------------------------------------------------
    def read(self, rows, cols, v_read: float, gate: float) -> np.ndarray:
        """Currents of cells at read voltage ``v_read`` on the bit line (SL grounded), A."""
        rows, cols = self._check_cells(rows, cols)
        m = self._truth
        self.read_count += rows.size
        self.max_read_voltage = max(self.max_read_voltage, abs(v_read))
        self._disturb(rows, cols, v_read, gate)
        g = self._conductance(rows, cols)
        i_sat = m.transistor.compliance(gate)
        i = np.clip(g * v_read, -i_sat, i_sat)
        return i * (1.0 + m.read_noise_rel * self._rng.standard_normal(g.shape))

    def mvm(self, v_rows: np.ndarray, gate: float) -> np.ndarray:
        """Column currents with voltages ``v_rows`` on the source lines, bit lines at virtual ground, A.

        The current into each bit line is ``sum_r G[r, c] * v_rows[r]``, each cell's share
        carrying its own read noise.
        """
        v_rows = np.asarray(v_rows, dtype=float)
        if v_rows.shape != (self.rows,):
            raise ValueError(f"mvm needs {self.rows} row voltages")
        m = self._truth
        self.read_count += self.rows * self.cols
        self.max_read_voltage = max(self.max_read_voltage, float(np.max(np.abs(v_rows), initial=0.0)))
        every = slice(None)  # the whole array by basic indexing: a view, no index arrays
        g = self._conductance(every, every)
        noisy = g * (1.0 + m.read_noise_rel * self._rng.standard_normal(g.shape))
        i_cells = noisy * v_rows[:, None]
        i_sat = m.transistor.compliance(gate)
        return np.clip(i_cells, -i_sat, i_sat).sum(axis=0)

    def _disturb(self, rows, cols, v: float, gate: float) -> None:
        """A 'read' above the switching thresholds is a pulse: the physics does not care."""
        m = self._truth
        if v >= m.v_set or v <= -m.v_reset or abs(v) >= m.v_breakdown:
            self._switch(rows, cols, v, gate, 1e-3)

    # --- pulses --------------------------------------------------------------------------
    def pulse_set(self, rows, cols, v_bl, v_wl, width, source: int = 0) -> None:
        """SET pulses: bit line at ``v_bl`` for ``width`` seconds with gate ``v_wl``."""
        rows, cols = self._check_cells(rows, cols)
        v_bl, v_wl, width = (np.broadcast_to(np.asarray(x, dtype=float), rows.shape) for x in (v_bl, v_wl, width))
        self.pulse_log.append(self.clock.now, rows, cols, PulseKind.SET, v_bl, v_wl, width, source)
        self._switch(rows, cols, v_bl, v_wl, width)

    def pulse_reset(self, rows, cols, v_sl, v_wl, width, source: int = 0) -> None:
        """RESET pulses: source line at ``v_sl`` for ``width`` seconds with gate ``v_wl``."""
        rows, cols = self._check_cells(rows, cols)
        v_sl, v_wl, width = (np.broadcast_to(np.asarray(x, dtype=float), rows.shape) for x in (v_sl, v_wl, width))
        self.pulse_log.append(self.clock.now, rows, cols, PulseKind.RESET, v_sl, v_wl, width, source)
        self._switch(rows, cols, -v_sl, v_wl, width)

    def bias(self, row: int, col: int, v: float, gate: float, duration: float) -> float:
        """An SMU holds ``v`` (BL minus SL) across one cell for ``duration``; returns its current, A."""
        rows, cols = self._check_cells(np.array([row]), np.array([col]))
        self.dirty = True
        self.pulse_log.append(self.clock.now, rows, cols, PulseKind.BIAS, v, gate, duration, 1)
        if duration > 0:
            self._switch(rows, cols, np.array([v]), np.array([gate]), np.array([duration]))
        m = self._truth
        g = self._conductance(rows, cols)[0]
        i_sat = float(m.transistor.compliance(gate))
        i = float(np.clip(g * v, -i_sat, i_sat))
        return i * (1.0 + m.read_noise_rel * float(self._rng.standard_normal()))

    def _switch(self, rows, cols, v, v_wl, width) -> None:
        """Apply signed cell voltages ``v`` (positive SETs, negative RESETs)."""
        self.dirty = True
        m = self._truth
        v = np.broadcast_to(np.asarray(v, dtype=float), rows.shape)
        v_wl = np.broadcast_to(np.asarray(v_wl, dtype=float), rows.shape)
        width = np.broadcast_to(np.asarray(width, dtype=float), rows.shape)
        long_enough = width >= m.t_switch
        free = self._stuck[rows, cols] == 0
        now = self.clock.now

        broken = np.abs(v) >= m.v_breakdown
        if np.any(broken):
            self._stuck[rows[broken], cols[broken]] = 1

        set_mask = (v >= m.v_set) & long_enough & free & ~broken
        if np.any(set_mask):
            r, c = rows[set_mask], cols[set_mask]
            i_cc = m.transistor.compliance(v_wl[set_mask])
            g_new = m.sample_set(i_cc, self._rng, self._factor[r, c])
            g_now = self._conductance(r, c)
            grows = g_new > g_now
            r, c = r[grows], c[grows]
            self._g[r, c] = g_new[grows]
            self._t_prog[r, c] = now
            self._z[r, c] = self._rng.standard_normal(r.size)

        reset_mask = (v <= -m.v_reset) & (v_wl >= m.v_gate_reset) & long_enough & free & ~broken
        if np.any(reset_mask):
            r, c = rows[reset_mask], cols[reset_mask]
            self._g[r, c] = m.sample_hrs(r.shape, self._rng)
            self._t_prog[r, c] = now
            self._z[r, c] = self._rng.standard_normal(r.size)
