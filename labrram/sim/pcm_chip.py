"""A simulated chip: a 1T1R phase-change memory (PCM) array with hidden true device state.

Same interface as :class:`labrram.sim.chip.ReRAMChip`; the instrument emulators call into it
with physical quantities (line voltages, gate voltages, durations). Its true parameters are
private (``_truth``, a :class:`~labrram.devices.pcm.PCMModel` variant); tests may read them
through :meth:`PCMChip.reveal_truth` to judge calibration, nothing in labrram's stack does.

Array geometry as for the ReRAM chip: word line ``WL_r`` (access-transistor gates), source line
``SL_r``, bit line ``BL_c``. PCM switching is thermal, hence unipolar: a pulse acts through
``|V|`` whether the board calls it SET or RESET; what it does depends on its amplitude and width
(:meth:`PCMModel.apply_pulse`): below ``v_th_set`` nothing, up to the melt threshold a partial
crystallization step (needs >= ~100 ns), above it a melt-quench RESET (~50 ns suffices) to a
level that decreases with the amplitude.

Device state, per cell
----------------------
* ``g_prog``, ``t_prog``: conductance at, and virtual time of, the last programming event
  (any pulse that crystallized or melted);
* ``nu``: drift exponent drawn from the model at each programming event and kept;
  the true conductance now is ``g_prog ((now - t_prog + t0)/t0) ** -nu`` (:meth:`_conductance`);
* 1/f noise: ``Q_s(g_prog)`` and the states of the Ornstein–Uhlenbeck components of
  :meth:`PCMModel.one_over_f_components`, zeroed at programming and advanced exactly to the
  time of each read. A read sees ``G (1 + Q_s Y)``: its spread around ``G`` grows as
  ``Q_s sqrt(ln((t + t_read)/(2 t_read)))`` with the time ``t`` since programming (Nandakumar's
  law) and successive reads are correlated as 1/f noise is (only components faster than the
  interval between them are renewed);
* device-to-device factors (SET rate, crystalline ceiling, melt threshold) and stuck faults.

As fabricated (after the back-end anneal) every device is crystalline, at its ``G_sat``.
Limits: ``|V| >= v_breakdown`` on a cell's lines destroys it (stuck SET, ~100 µS) whatever the
gate, a conservative rule; fabrication leaves ``p_stuck_set`` / ``p_stuck_reset`` of the devices
stuck. A stuck device neither drifts nor shows 1/f noise.
Virtual time only: the chip never sleeps and never advances the clock (the emulators do).
"""

from __future__ import annotations

import numpy as np

from ..devices.pcm import PCMModel
from .chip import ChipBase, PulseKind
from .clock import VirtualClock

READ_DURATION = 10e-6
"""How long a read holds its voltage on the cell (for read disturb above threshold), s."""

#: device states: the codes of :data:`ChipBase.FAULT_CODES`
_OK, _STUCK_SET, _STUCK_RESET, _DEAD = 0, ChipBase.FAULT_CODES["stuck_lrs"], ChipBase.FAULT_CODES["stuck_hrs"], ChipBase.FAULT_CODES["dead"]


class PCMChip(ChipBase):
    """A rows x cols 1T1R PCM array drawn from a nominal :class:`PCMModel`.

    Parameters
    ----------
    rows, cols : int
        Array size (128 x 128 by default).
    seed : int
        Seeds the chip's hidden parameters, its initial state and all its noise.
    clock : VirtualClock
        The bench clock (time stamps of pulses, drift, 1/f noise).
    nominal : PCMModel, optional
        Nominal model the chip's hidden truth is drawn around (the Nandakumar 2019 preset).
    """

    kind = "pcm"

    def __init__(
        self,
        rows: int = 128,
        cols: int = 128,
        seed: int = 0,
        clock: VirtualClock | None = None,
        nominal: PCMModel | None = None,
    ) -> None:
        if nominal is not None and not isinstance(nominal, PCMModel):
            raise TypeError(f"nominal must be a PCMModel, got {type(nominal).__name__}")
        self._setup(rows, cols, seed, clock, "PC", 0x9C3)
        self._truth = (nominal or PCMModel.preset_nandakumar2019()).variant(self._rng)
        self._init_state()

    def _init_state(self) -> None:
        m, shape, rng = self._truth, (self.rows, self.cols), self._rng
        dev = m.sample_device_params(shape, rng)
        self._rate, self._gsat, self._vmelt = dev["rate_factor"], dev["g_sat"], dev["v_melt"]
        self._tau, self._w = m.one_over_f_components()
        self._g_prog = self._gsat.copy()  # crystalline as fabricated
        self._t_prog = np.full(shape, self.clock.now)
        self._nu = m.sample_nu(self._g_prog, rng)
        self._qs = m.q_s(self._g_prog)
        self._y = np.zeros(shape + (self._tau.size,), dtype=np.float32)
        self._t_y = np.full(shape, self.clock.now)
        u = rng.random(shape)
        self._stuck = np.zeros(shape, dtype=np.int8)  # 0 ok, 1 stuck SET (short), 2 stuck RESET (open), 3 dead
        self._stuck[u < m.p_stuck_set] = _STUCK_SET
        self._stuck[(u >= m.p_stuck_set) & (u < m.p_stuck_set + m.p_stuck_reset)] = _STUCK_RESET
        for code, g in ((_STUCK_SET, m.g_stuck_set), (_STUCK_RESET, m.g_stuck_reset)):
            self._make_stuck(self._stuck == code, code, g)

    def inject_fault(self, kind: str, mask: np.ndarray) -> None:
        """Make the devices of ``mask`` fail from now on. ``stuck_lrs`` and ``stuck_hrs`` are a
        PCM device stuck SET (a short, at ``g_stuck_set``) or stuck RESET (open, at
        ``g_stuck_reset``), as fabrication leaves them: no drift, no 1/f noise; a ``dead``
        device stops switching where it is (and drifts on)."""
        code, mask = self._fault_mask(kind, mask)
        if code == _DEAD:
            self._stuck[mask] = code
        else:
            self._make_stuck(mask, code, self._truth.g_stuck_set if code == _STUCK_SET else self._truth.g_stuck_reset)
        self.dirty = True

    def _make_stuck(self, mask: np.ndarray, code: int, g: float) -> None:
        self._stuck[mask] = code
        self._g_prog[mask] = g
        self._nu[mask] = 0.0
        self._qs[mask] = 0.0
        self._y[mask] = 0.0

    def reveal_truth(self) -> PCMModel:
        """The hidden device model of this chip. For tests that judge calibration only."""
        return self._truth

    # --- state ---------------------------------------------------------------------------
    def _conductance(self, rows, cols) -> np.ndarray:
        """True (1/f-noise-free) conductance now, drift included, S."""
        m = self._truth
        dt = np.maximum(self.clock.now - self._t_prog[rows, cols], 0.0)
        g = m.drift(self._g_prog[rows, cols], dt, self._nu[rows, cols])
        return np.maximum(g, m.g_min)

    def _programmed_conductance(self, rows, cols) -> np.ndarray:
        """True conductance the cells were left at by their last programming, before any drift
        (a stuck cell: where it is stuck), S. For judges only."""
        return np.maximum(self._g_prog[rows, cols], self._truth.g_min)

    def _noisy_conductance(self, rows, cols) -> np.ndarray:
        """Instantaneous conductance ``G (1 + Q_s Y)`` with the 1/f state advanced to now, S."""
        now = self.clock.now
        dt = np.maximum(now - self._t_y[rows, cols], 0.0)
        y = self._y[rows, cols]
        if dt.size and np.all(dt == dt.flat[0]):  # common case: cells last seen together
            if dt.flat[0] > 0:
                decay = np.exp(-dt.flat[0] / self._tau)
                kick = np.sqrt(self._w * (1.0 - decay**2))
                noise = self._rng.standard_normal(y.shape, dtype=np.float32)
                y = y * decay.astype(np.float32) + kick.astype(np.float32) * noise
        else:
            decay = np.exp(-dt[..., None] / self._tau)
            noise = self._rng.standard_normal(y.shape, dtype=np.float32)
            y = y * decay + np.sqrt(self._w * (1.0 - decay**2)) * noise
        self._y[rows, cols] = y
        self._t_y[rows, cols] = now
        g = self._conductance(rows, cols)
        return np.maximum(g * (1.0 + self._qs[rows, cols] * y.sum(axis=-1)), 0.0)

    def _program(self, r: np.ndarray, c: np.ndarray, g_new: np.ndarray) -> None:
        """Start a new drift and 1/f history at ``g_new`` for cells ``(r, c)``."""
        m = self._truth
        now = self.clock.now
        self._g_prog[r, c] = g_new
        self._t_prog[r, c] = now
        self._nu[r, c] = m.sample_nu(g_new, self._rng)
        self._qs[r, c] = m.q_s(g_new)
        self._y[r, c] = 0.0
        self._t_y[r, c] = now

    def _current(self, g: np.ndarray, v, gate) -> np.ndarray:
        """Cell current at bias ``v``: ohmic below threshold switching, on-state above, clipped by the transistor, A."""
        m = self._truth
        v = np.asarray(v, dtype=float)
        i = g * v
        on = np.abs(v) >= m.v_th_set
        if np.any(on):
            i_on = np.sign(v) * np.maximum(np.abs(v) - m.v_hold, 0.0) / m.r_on
            i = np.where(on & (np.abs(i_on) > np.abs(i)), i_on, i)
        i_sat = m.transistor.compliance(gate)
        return np.clip(i, -i_sat, i_sat)

    # --- reads -------------------------------------------------------------------------
    def read(self, rows, cols, v_read: float, gate: float) -> np.ndarray:
        """Currents of cells at read voltage ``v_read`` on the bit line (SL grounded), A.

        Each read sees the device's instantaneous conductance, 1/f noise included. A "read"
        above the crystallization threshold is a pulse of :data:`READ_DURATION`.
        """
        rows, cols = self._check_cells(rows, cols)
        self._check_finite(v_read=v_read, gate=gate)
        self.read_count += rows.size
        self.max_read_voltage = max(self.max_read_voltage, abs(float(v_read)))
        self._disturb(rows, cols, v_read, gate)
        g = self._noisy_conductance(rows, cols)
        return self._current(g, v_read, gate)

    def mvm(self, v_rows: np.ndarray, gate: float) -> np.ndarray:
        """Column currents with voltages ``v_rows`` on the source lines, bit lines at virtual ground, A.

        The current into each bit line is ``sum_r G[r, c] * v_rows[r]``, each cell's share
        carrying its own 1/f noise and clipped by its access transistor.
        """
        v_rows = np.asarray(v_rows, dtype=float)
        if v_rows.shape != (self.rows,):
            raise ValueError(f"mvm needs {self.rows} row voltages")
        self._check_finite(v_rows=v_rows, gate=gate)
        self.read_count += self.rows * self.cols
        self.max_read_voltage = max(self.max_read_voltage, float(np.max(np.abs(v_rows), initial=0.0)))
        hot = np.abs(v_rows) >= self._truth.v_th_set
        if np.any(hot):
            rr, cc = np.indices((self.rows, self.cols))
            self._disturb(rr[hot].ravel(), cc[hot].ravel(), np.repeat(v_rows[hot], self.cols), gate)
        everything = slice(None)
        g = self._noisy_conductance(everything, everything)
        return self._current(g, v_rows[:, None], gate).sum(axis=0)

    def _disturb(self, rows, cols, v, gate) -> None:
        """A 'read' above the crystallization threshold is a pulse: the physics does not care."""
        m = self._truth
        v = np.asarray(v, dtype=float)
        if np.any(np.abs(v) >= m.v_th_set):
            self._switch(rows, cols, v, gate, READ_DURATION)

    # --- pulses --------------------------------------------------------------------------
    def pulse_set(self, rows, cols, amplitude, gate, width, source: int = 0) -> None:
        """SET (crystallizing) pulses of ``amplitude`` V across the cells for ``width`` s with gate ``gate`` V.

        Typical: 1.1–1.8 V, >= 100 ns (1 µs fully effective). An amplitude above the melt
        threshold melts the cell: the board's fast edge then quenches it amorphous (a RESET).
        """
        self._pulse(PulseKind.SET, rows, cols, amplitude, gate, width, source)

    def pulse_reset(self, rows, cols, amplitude, gate, width, source: int = 0) -> None:
        """RESET (melt-quench) pulses of ``amplitude`` V across the cells for ``width`` s with gate ``gate`` V.

        Typical: 2.0–3.0 V, ~50 ns; the higher the amplitude, the lower the conductance left.
        """
        self._pulse(PulseKind.RESET, rows, cols, amplitude, gate, width, source)

    def _pulse(self, kind: int, rows, cols, amplitude, gate, width, source: int) -> None:
        rows, cols = self._check_cells(rows, cols)
        amplitude, gate, width = (
            np.broadcast_to(np.asarray(x, dtype=float), rows.shape) for x in (amplitude, gate, width)
        )
        self._check_finite(amplitude=amplitude, gate=gate, width=width)
        if np.any(width < 0):
            raise ValueError("pulse width must be >= 0 s")
        self.pulse_log.append(self.clock.now, rows, cols, kind, amplitude, gate, width, source)
        self._switch(rows, cols, amplitude, gate, width)

    def bias(self, row: int, col: int, v: float, gate: float, duration: float) -> float:
        """An SMU holds ``v`` (BL minus SL) across one cell for ``duration``; returns its current, A.

        Above the crystallization threshold the bias is a (long) SET pulse; above the melt
        threshold the SMU's slow switch-off recrystallizes the molten cell (a melt-SET).
        """
        rows, cols = self._check_cells(np.array([row]), np.array([col]))
        self._check_finite(v=v, gate=gate, duration=duration)
        if duration < 0:
            raise ValueError("bias duration must be >= 0 s")
        self.pulse_log.append(self.clock.now, rows, cols, PulseKind.BIAS, v, gate, duration, 1)
        if duration > 0:
            self._switch(rows, cols, np.array([v]), np.array([gate]), np.array([duration]), slow_quench=True)
        g = self._noisy_conductance(rows, cols)
        return float(self._current(g, v, gate)[0])

    def _switch(self, rows, cols, v, gate, width, slow_quench: bool = False) -> None:
        """Apply pulses of amplitude ``v`` (sign irrelevant) to cells ``(rows, cols)``."""
        m = self._truth
        v = np.broadcast_to(np.asarray(v, dtype=float), rows.shape)
        gate = np.broadcast_to(np.asarray(gate, dtype=float), rows.shape)
        width = np.broadcast_to(np.asarray(width, dtype=float), rows.shape)

        broken = np.abs(v) >= m.v_breakdown
        if np.any(broken):
            mask = np.zeros((self.rows, self.cols), dtype=bool)
            mask[rows[broken], cols[broken]] = True
            self._make_stuck(mask, _STUCK_SET, m.g_stuck_set)

        active = (self._stuck[rows, cols] == _OK) & (np.abs(v) >= m.v_th_set)
        if not np.any(active):
            return
        r, c = rows[active], cols[active]
        g_new, programmed = m.apply_pulse(
            self._conductance(r, c), v[active], gate[active], width[active], self._rng,
            rate_factor=self._rate[r, c], g_sat=self._gsat[r, c], v_melt=self._vmelt[r, c],
            slow_quench=slow_quench,
        )  # fmt: skip
        if np.any(programmed):
            self._program(r[programmed], c[programmed], g_new[programmed])
