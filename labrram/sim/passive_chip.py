"""A simulated chip: a passive (0T1R) TiO2 crossbar with hidden true device state.

Same interface as :class:`labrram.sim.chip.ReRAMChip`; the instrument emulators call into it
with physical quantities (line voltages, durations). There is no access transistor: every
``gate`` argument is accepted and ignored. The true parameters are private (``_truth``, a
:class:`~labrram.devices.passive.PassiveDeviceModel` variant); tests may read them through
:meth:`PassiveChip.reveal_truth` to judge calibration, nothing in labrram's stack does.

Array geometry: row line ``r`` (driven from its column-0 end) and column line ``c`` (driven or
sensed at its row-``m-1`` end) with wire resistance per segment; device ``(r, c)`` joins them.
SET needs a positive cell voltage (row above column), RESET a negative one.

Biasing
-------
:attr:`PassiveChip.bias_scheme` (``"V/2"`` by default; the board sets it) decides what every
other line does while one cell is selected (:data:`labrram.devices.passive.SCHEMES`). A read of
cell ``(r, c)`` at ``v_read`` is the current the sense amplifier measures on column ``c`` with
row ``r`` at ``v_read``: sneak paths, half-selected cells and IR drops included, computed
through :class:`~labrram.circuit.CrossbarCircuit`. Many cells (a whole-array read of
128 x 128 takes a few tenths of a second) go through the circuit's cached port responses: the
exact linear network plus a second-order nonlinear correction (relative error <= 3e-4 at the
default 0.2 V read, <= 5e-3 at ``a V = 1.2`` with 90 % IR drop; the read noise is 1 %). Up to
64 cells use the circuit's ``"auto"`` choice (exact Newton beyond the validated range), up to
4 cells of a large array without cached port responses one exact Newton solve each. The
circuit follows the devices lazily: cells changed by pulses are pushed before the next read as
rank-1 updates (or a rebuild after many). Read noise is independent per device on the sensed
column: ``sigma^2 = read_noise_rel^2 sum_k I_kj^2 + read_noise_floor^2``.

Writes (``write_voltage_model = "ideal"``, default): the selected cell sees the full amplitude,
the cells sharing its row or column see the scheme's half-select voltage (``V/2``, ``±V/3``,
or ``V`` on the selected row with ``"ground"``), the rest the scheme's residual voltage. Below
their (per-device) thresholds they accumulate Poisson disturb events; above they switch. With
``"circuit"`` (and always for ``"float"``) every pulse's cell voltages come from the exact
nonlinear circuit with IR drops (slower: one Newton solve per pulse). The difference matters
on large arrays: at 128 x 128 with 1 ohm segments a 1.5 V V/2 write leaves the far corner
cell with about 0.9 V, below its threshold.

Reads stress the array the same way for ``t_read``; with floating lines a read stresses only the
selected cell (sneak-path cells see at most a fraction of a read voltage).

Virtual time only: the chip never sleeps and never advances the clock (the emulators do).
"""

from __future__ import annotations

import numpy as np

from ..circuit import CrossbarCircuit
from ..devices.passive import SCHEMES, PassiveDeviceModel, line_voltages
from .chip import ChipBase, PulseKind
from .clock import VirtualClock

WRITE_VOLTAGE_MODELS = ("ideal", "circuit")

_EXACT_READ_MAX = 4
"""Reads of at most this many cells use exact Newton solves while no port responses are cached
(cheaper than building them on a large array)."""
_AUTO_READ_MAX = 64
"""Larger reads always take the fast corrected-linear path of the circuit, also beyond its
validated range (error <= 5e-3 at ``a |V| = 1.2`` with 90 % IR drop, below the read noise):
one exact Newton solve per cell would take minutes for a whole 128 x 128 array."""


class PassiveChip(ChipBase):
    """A rows x cols passive TiO2 crossbar drawn from a nominal :class:`PassiveDeviceModel`.

    Parameters
    ----------
    rows, cols : int
        Array size (128 x 128 by default).
    seed : int
        Seeds the chip's hidden parameters, its initial state and all its noise.
    clock : VirtualClock
        The bench clock (time stamps of pulses).
    nominal : PassiveDeviceModel, optional
        Nominal model the chip's hidden truth is drawn around.
    bias_scheme : str
        Initial biasing scheme of unselected lines (``"V/2"``, ``"V/3"``, ``"float"``, ``"ground"``).
    write_voltage_model : str
        ``"ideal"`` (ideal-line write voltages) or ``"circuit"`` (exact circuit per pulse).
    """

    kind = "passive"

    def __init__(
        self,
        rows: int = 128,
        cols: int = 128,
        seed: int = 0,
        clock: VirtualClock | None = None,
        nominal: PassiveDeviceModel | None = None,
        *,
        bias_scheme: str = "V/2",
        write_voltage_model: str = "ideal",
    ) -> None:
        if nominal is not None and not isinstance(nominal, PassiveDeviceModel):
            raise TypeError(f"nominal must be a PassiveDeviceModel, got {type(nominal).__name__}")
        self._setup(rows, cols, seed, clock, "PX", 0x0A55)
        self.bias_scheme = bias_scheme
        self.write_voltage_model = write_voltage_model
        self._truth = (nominal or PassiveDeviceModel()).variant(self._rng)
        self._init_state()

    def _init_state(self) -> None:
        m, shape, rng = self._truth, (self.rows, self.cols), self._rng
        self._g = m.sample_initial(shape, rng)
        self._v_set, self._v_reset = m.sample_thresholds(shape, rng)
        self._rate = m.sample_rate_factors(shape, rng)
        # per-device factors of the separable disturb law: exp((v_th_nominal - v_th) / v0)
        self._phi_set = np.exp((m.v_set - self._v_set) / m.disturb_v0)
        self._phi_reset = np.exp((m.v_reset - self._v_reset) / m.disturb_v0)
        self._v_th_min = float(min(self._v_set.min(), self._v_reset.min()))
        self._circuit: CrossbarCircuit | None = None
        self._dirty = np.zeros(shape, dtype=bool)

    def reveal_truth(self) -> PassiveDeviceModel:
        """The hidden device model of this chip. For tests that judge calibration only."""
        return self._truth

    # --- configuration ---------------------------------------------------------------------
    @property
    def bias_scheme(self) -> str:
        """Biasing scheme of unselected lines for reads, pulses and SMU biasing."""
        return self._bias_scheme

    @bias_scheme.setter
    def bias_scheme(self, scheme: str) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"unknown bias scheme {scheme!r}; known: {list(SCHEMES)}")
        self._bias_scheme = scheme

    @property
    def write_voltage_model(self) -> str:
        return self._write_model

    @write_voltage_model.setter
    def write_voltage_model(self, model: str) -> None:
        if model not in WRITE_VOLTAGE_MODELS:
            raise ValueError(f"unknown write voltage model {model!r}; known: {list(WRITE_VOLTAGE_MODELS)}")
        self._write_model = model

    # --- state -------------------------------------------------------------------------------
    def _conductance(self, rows, cols) -> np.ndarray:
        """True small-signal conductance ``G = dI/dV (0)``, S."""
        return self._g[rows, cols].copy()

    @property
    def circuit(self) -> CrossbarCircuit:
        """The circuit of the present true state (hidden truth: for tests and analysis)."""
        return self._sync()

    def _sync(self) -> CrossbarCircuit:
        """Bring the circuit up to date with the devices (rank-1 updates, or a rebuild)."""
        if self._circuit is None:
            m = self._truth
            self._circuit = CrossbarCircuit(self._g, m.a, m.r_wire_row, m.r_wire_col)
            self._dirty[:] = False
        elif self._dirty.any():
            r, c = np.nonzero(self._dirty)
            self._circuit.update_cells(r, c, self._g[r, c])
            self._dirty[:] = False
        return self._circuit

    def _noise(self, current: np.ndarray, sq: np.ndarray) -> np.ndarray:
        """Independent per-device read noise of the cells on the sensed line plus the floor, A."""
        m = self._truth
        sigma = np.sqrt((m.read_noise_rel**2) * sq + m.read_noise_floor**2)
        return current + sigma * self._rng.standard_normal(np.shape(current))

    # --- reads -----------------------------------------------------------------------------
    def read(self, rows, cols, v_read: float, gate: float) -> np.ndarray:
        """Currents measured on the selected columns, one cell selected at a time, A.

        ``gate`` is ignored (no transistor). Sneak paths, half-selected cells and IR drops of
        the present :attr:`bias_scheme` are part of every value.
        """
        rows, cols = self._check_cells(rows, cols)
        self._check_finite(v_read=v_read)
        v_read = float(v_read)
        self.read_count += rows.size
        self.max_read_voltage = max(self.max_read_voltage, abs(v_read))
        if rows.size == 0:
            return np.zeros(rows.shape)
        circ = self._sync()
        few = rows.size <= _EXACT_READ_MAX and not circ.has_port_responses
        if few and self.bias_scheme != "float" and self.rows * self.cols > 1024:
            method = "exact"
        elif rows.size <= _AUTO_READ_MAX:
            method = "auto"
        else:
            method = "born"
        cur, sq = circ.read_cells(
            rows.ravel(), cols.ravel(), v_read, self.bias_scheme, method=method, return_column_sq=True
        )
        out = self._noise(cur, sq).reshape(rows.shape)
        t_read = np.full(rows.size, self._truth.t_read)
        self._stress(rows.ravel(), cols.ravel(), np.full(rows.size, v_read), t_read, from_read=True)
        return out

    def mvm(self, v_rows: np.ndarray, gate: float) -> np.ndarray:
        """Column currents with voltages ``v_rows`` on the rows, columns at virtual ground, A.

        Exact nonlinear solve with IR drops; each column carries the independent read noise of
        its devices.
        """
        v_rows = np.asarray(v_rows, dtype=float)
        if v_rows.shape != (self.rows,):
            raise ValueError(f"mvm needs {self.rows} row voltages")
        self._check_finite(v_rows=v_rows)
        self.read_count += self.rows * self.cols
        self.max_read_voltage = max(self.max_read_voltage, float(np.max(np.abs(v_rows), initial=0.0)))
        sol = self._sync().mvm(v_rows, return_solution=True)
        out = self._noise(sol.sensed_currents, np.sum(sol.cell_currents**2, axis=0))
        self._stress_map(sol.cell_voltages, self._truth.t_read)
        return out

    def bias(self, row: int, col: int, v: float, gate: float, duration: float) -> float:
        """An SMU drives row ``row`` at ``v`` with column ``col`` grounded for ``duration``; returns
        the current it sources into the row, A.

        The other lines follow :attr:`bias_scheme`, so the current includes whatever the row
        feeds besides the selected cell (half-selected cells on the row, sneak paths).
        """
        rows, cols = self._check_cells(np.array([row]), np.array([col]))
        self._check_finite(v=v, duration=duration)
        if duration < 0:
            raise ValueError("duration must be >= 0 s")
        self.pulse_log.append(self.clock.now, rows, cols, PulseKind.BIAS, v, gate, duration, 1)
        if duration > 0:
            self._stress(rows, cols, np.array([float(v)]), np.array([float(duration)]))
        circ = self._sync()
        rv, cv = line_voltages(self.bias_scheme, self.rows, self.cols, int(row), int(col), float(v))
        sol = circ.solve(rv, cv)
        i = sol.row_currents[int(row)]
        return float(self._noise(np.array([i]), np.array([np.sum(sol.cell_currents[int(row)] ** 2)]))[0])

    # --- pulses ----------------------------------------------------------------------------
    def pulse_set(self, rows, cols, amplitude, gate, width, source: int = 0) -> None:
        """SET pulses: the selected cell's row ``amplitude`` volts above its column for ``width`` s."""
        self._pulse(rows, cols, amplitude, gate, width, source, PulseKind.SET, +1.0)

    def pulse_reset(self, rows, cols, amplitude, gate, width, source: int = 0) -> None:
        """RESET pulses: the selected cell's column ``amplitude`` volts above its row for ``width`` s."""
        self._pulse(rows, cols, amplitude, gate, width, source, PulseKind.RESET, -1.0)

    def _pulse(self, rows, cols, amplitude, gate, width, source, kind, sign) -> None:
        rows, cols = self._check_cells(rows, cols)
        rows, cols = rows.ravel(), cols.ravel()
        amplitude, gate, width = (
            np.broadcast_to(np.asarray(x, dtype=float), rows.shape) for x in (amplitude, gate, width)
        )
        self._check_finite(amplitude=amplitude, width=width)
        if np.any(width < 0):
            raise ValueError("pulse width must be >= 0 s")
        self.pulse_log.append(self.clock.now, rows, cols, kind, amplitude, gate, width, source)
        self._stress(rows, cols, sign * amplitude, width)

    # --- the physics of a stress -------------------------------------------------------------
    def _levels(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ideal-line voltages of (selected-row, selected-column, other) cells for selections at ``v``."""
        s = self.bias_scheme
        if s == "V/2":
            return 0.5 * v, 0.5 * v, np.zeros_like(v)
        if s == "V/3":
            return v / 3.0, v / 3.0, -v / 3.0
        return v.copy(), np.zeros_like(v), np.zeros_like(v)  # ground

    def _stress(self, rows, cols, v, width, *, from_read: bool = False) -> None:
        """Apply selections ``(rows[k], cols[k])`` at signed cell voltage ``v[k]`` for ``width[k]``, in order."""
        if rows.size == 0:
            return
        scheme = self.bias_scheme
        lam_set = np.zeros((self.rows, self.cols))
        lam_reset = np.zeros((self.rows, self.cols))
        if scheme == "float" and from_read:
            self._apply_events(rows, cols, v, width, lam_set, lam_reset)
        elif scheme == "float" or (self.write_voltage_model == "circuit" and not from_read):
            self._stress_each(rows, cols, v, width, lam_set, lam_reset, circuit=True)
        elif not self._stress_ideal(rows, cols, v, width, lam_set, lam_reset):
            self._stress_each(rows, cols, v, width, lam_set, lam_reset, circuit=False)
        self._apply_disturb(lam_set, lam_reset)

    def _stress_ideal(self, rows, cols, v, width, lam_set, lam_reset) -> bool:
        """Ideal-line stress of a batch, vectorized over pulses.

        Unselected cells sit at three levels (selected row, selected column, the rest). A level
        below every device's threshold only disturbs: accumulated separably. A level that may
        reach some threshold is expanded into (pulse, cell) pairs: those at or above their
        threshold switch, in pulse order together with the selected cells. Returns False when
        the "rest" level reaches a threshold (every cell would need pairs: see _stress_each).
        """
        u_row, u_col, u_rest = self._levels(v)
        thr = self._v_th_min
        if np.any(np.abs(u_rest) >= thr):
            return False
        kk = np.arange(rows.size)
        parts = [(kk, rows, cols, v)]
        safe = []
        for u, length, along_row in ((u_row, self.cols, True), (u_col, self.rows, False)):
            amb = np.abs(u) >= thr
            safe.append(np.where(amb, 0.0, u))
            if np.any(amb):
                ka = kk[amb]
                pk = np.repeat(ka, length)
                pos = np.tile(np.arange(length), ka.size)
                pr, pc = (rows[pk], pos) if along_row else (pos, cols[pk])
                keep = (pr != rows[pk]) | (pc != cols[pk])
                parts.append((pk[keep], pr[keep], pc[keep], u[pk[keep]]))
        self._accumulate_half_select(rows, cols, width, safe[0], safe[1], u_rest, lam_set, lam_reset)
        if len(parts) == 1:
            self._apply_events(rows, cols, v, width, lam_set, lam_reset)
        else:
            pk, pr, pc, pu = (np.concatenate(x) for x in zip(*parts))
            order = np.argsort(pk, kind="stable")
            pk = pk[order]
            self._apply_events(pr[order], pc[order], pu[order], width[pk], lam_set, lam_reset)
        return True

    def _apply_events(self, rows, cols, v, width, lam_set, lam_reset) -> None:
        """Cells ``(rows, cols)`` at voltage ``v`` for ``width``, listed in pulse order:
        switching at or above their thresholds, disturb below. A cell hit several times is
        advanced through its pulses in order (vectorized over cells, round by round)."""
        m = self._truth
        vs, vr = self._v_set[rows, cols], self._v_reset[rows, cols]
        sw = ((v >= vs) | (v <= -vr)) & (width > 0)
        sub = ~sw & (v != 0)
        if np.any(sub):
            ls, lr = m.disturb_lambda(v[sub], width[sub], vs[sub], vr[sub])
            np.add.at(lam_set, (rows[sub], cols[sub]), ls)
            np.add.at(lam_reset, (rows[sub], cols[sub]), lr)
        if not np.any(sw):
            return
        r, c = rows[sw], cols[sw]
        c2c = np.exp(m.rate_c2c_rel * self._rng.standard_normal(r.size))
        dose = m.pulse_dose(v[sw], width[sw], vs[sw], vr[sw], self._rate[r, c] * c2c)
        eps = m.sample_landing_error(r.shape, self._rng)
        flat = r * self.cols + c
        order = np.argsort(flat, kind="stable")
        sflat = flat[order]
        first = np.r_[True, sflat[1:] != sflat[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(flat.size), 0))
        rank = np.empty(flat.size, dtype=np.intp)
        rank[order] = np.arange(flat.size) - start
        n_rounds = int(rank.max()) + 1
        j = 0
        while j < n_rounds:
            sel = np.flatnonzero(rank == j)
            if sel.size < 8 and n_rounds - j > 8:
                break  # a few cells hit many times: finish them one by one below
            rs, cs = r[sel], c[sel]
            self._g[rs, cs] = m.land(m.advance(self._g[rs, cs], dose[sel]), eps[sel])
            j += 1
        if j < n_rounds:
            lo, hi = m.g_min, m.g_max
            late = rank >= j
            for cell in np.unique(flat[late]):
                sel = np.flatnonzero(late & (flat == cell))  # in pulse order
                ci, cj = divmod(int(cell), self.cols)
                g = float(self._g[ci, cj])
                for d, e in zip(dose[sel].tolist(), eps[sel].tolist()):
                    g = min(max(m.advance_scalar(g, d) * (1.0 + e), lo), hi)
                self._g[ci, cj] = g
        self._dirty[r, c] = True

    def _accumulate_half_select(self, rows, cols, width, u_row, u_col, u_rest, lam_set, lam_reset) -> None:
        """Disturb of the unselected cells at levels below every threshold (separable, O(pulses + cells)).

        ``lambda = disturb_rate t exp((|u| - v_th) / v0)`` factors into a pulse term (with the
        nominal threshold) and a device term ``phi = exp((v_th,nominal - v_th) / v0)``.
        """
        m = self._truth
        mm, nn = self.rows, self.cols
        polarities = ((lam_set, 1.0, m.v_set, self._phi_set), (lam_reset, -1.0, m.v_reset, self._phi_reset))
        for lam, sign, v_nom, phi in polarities:
            glob = 0.0
            acc_r = np.zeros(mm)
            acc_c = np.zeros(nn)
            acc_p = np.zeros((mm, nn))

            def f(u):
                su = sign * u
                return np.where(su > 0, m.disturb_rate * width * np.exp((su - v_nom) / m.disturb_v0), 0.0)

            fr, fc, fo = f(u_row), f(u_col), f(u_rest)
            if np.any(fr):
                np.add.at(acc_r, rows, fr)
                np.add.at(acc_p, (rows, cols), -fr)
            if np.any(fc):
                np.add.at(acc_c, cols, fc)
                np.add.at(acc_p, (rows, cols), -fc)
            if np.any(fo):
                glob += float(fo.sum())
                np.add.at(acc_r, rows, -fo)
                np.add.at(acc_c, cols, -fo)
                np.add.at(acc_p, (rows, cols), fo)
            if glob or acc_r.any() or acc_c.any():
                lam += phi * np.maximum(glob + acc_r[:, None] + acc_c[None, :] + acc_p, 0.0)

    def _stress_each(self, rows, cols, v, width, lam_set, lam_reset, *, circuit: bool) -> None:
        """General path: the full cell-voltage map of every selection, applied in order."""
        for r, c, vv, ww in zip(rows.tolist(), cols.tolist(), v.tolist(), width.tolist()):
            if circuit:
                rv, cv = line_voltages(self.bias_scheme, self.rows, self.cols, r, c, vv)
                vmap = self._sync().solve(rv, cv).cell_voltages
            else:
                rv, cv = line_voltages(self.bias_scheme, self.rows, self.cols, r, c, vv)
                vmap = rv[:, None] - cv[None, :]
            self._stress_map(vmap, ww, lam_set, lam_reset)

    def _stress_map(self, vmap: np.ndarray, width: float, lam_set=None, lam_reset=None) -> None:
        """Every cell at its own voltage ``vmap`` for ``width``: switching above, disturb below."""
        m = self._truth
        own = lam_set is None
        if own:
            lam_set = np.zeros((self.rows, self.cols))
            lam_reset = np.zeros((self.rows, self.cols))
        if width > 0:
            sw = (vmap >= self._v_set) | (vmap <= -self._v_reset)
            if np.any(sw):
                self._g[sw] = m.sample_pulse(
                    self._g[sw], vmap[sw], width, self._rng, self._v_set[sw], self._v_reset[sw], self._rate[sw]
                )
                self._dirty |= sw
            ls, lr = m.disturb_lambda(vmap, width, self._v_set, self._v_reset)
            lam_set += ls
            lam_reset += lr
        if own:
            self._apply_disturb(lam_set, lam_reset)

    def _apply_disturb(self, lam_set: np.ndarray, lam_reset: np.ndarray) -> None:
        """Draw the Poisson numbers of disturb events and move the hit devices."""
        if not (lam_set.any() or lam_reset.any()):
            return
        n_set = self._rng.poisson(lam_set)
        n_reset = self._rng.poisson(lam_reset)
        hit = (n_set > 0) | (n_reset > 0)
        if np.any(hit):
            self._g[hit] = self._truth.apply_disturb(self._g[hit], n_set[hit], n_reset[hit])
            self._dirty |= hit
