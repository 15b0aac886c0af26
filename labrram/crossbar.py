"""The array under test: cells addressed by (row, col), batched reads, pulses and MVM.

A :class:`Crossbar` is built from a board driver and an SMU driver and knows nothing of the
transport. Bulk work goes through the board (a whole-array read is one transaction, a batch of
pulses is one transaction); the SMU, routed to a single cell by the board's relay matrix, gives
precise DC reads and I-V sweeps.

Cells are a :class:`~labrram.cells.Cells` (``Cells.pairs``, ``Cells.rows_cols``, ``Cells.block``,
``Cells.mask``), a boolean mask of the array's shape, or a tuple of two integer numpy arrays
``(rows, cols)``; lists, whose two readings name different devices, are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

import logging

from .cells import Cells, as_cells
from .drivers.board_base import BIAS_SCHEMES, Board
from .drivers.smu import SourceMeter
from .safety import SafeLimits


@dataclass(frozen=True)
class PulseSettings:
    """One kind of programming pulse (SI units)."""

    amplitude: float
    gate: float
    width: float


log = logging.getLogger("labrram.crossbar")

#: HfOx 1T1R defaults (Bonnet et al. 2023, Methods): SET on the bit line, RESET on the source line.
DEFAULT_SET = PulseSettings(amplitude=1.8, gate=1.8, width=1e-6)
DEFAULT_RESET = PulseSettings(amplitude=2.6, gate=4.8, width=100e-9)


class Crossbar:
    """A crossbar array on a board, with an SMU on the board's SMU connector.

    Parameters
    ----------
    board : Board
        Board driver (any crossbar-board role: labrram's board, ArC ONE, ArC TWO).
    smu : SourceMeter, optional
        SMU driver for precise reads and I-V sweeps.
    limits : SafeLimits, optional
        Bench limits (the drivers' own limits are used when omitted).
    read_voltage : float
        Read voltage on the bit lines, V.
    read_gate : float
        Word-line voltage during reads, V.
    smu_compliance : float
        SMU current compliance, A.
    smu_nplc : float
        SMU integration time, power-line cycles.
    array : int
        Which array of the board, 0-based (boards that carry several arrays, ``:ARR:COUN?``);
        selected before this crossbar's first operation and again whenever another crossbar
        on the same board selected another array.
    """

    def __init__(
        self,
        board: Board,
        smu: SourceMeter | None = None,
        limits: SafeLimits | None = None,
        read_voltage: float = 0.2,
        read_gate: float = 3.3,
        smu_compliance: float = 1e-3,
        smu_nplc: float = 1.0,
        array: int = 0,
    ) -> None:
        if isinstance(array, bool) or not isinstance(array, (int, np.integer)) or array < 0:
            raise ValueError(f"array must be a whole number >= 0, got {array!r}")
        self.board = board
        self.array = int(array)
        self._selected = False
        self.smu = smu
        self.limits = limits or board.limits
        self.limits.check_voltage(read_voltage, "read voltage")
        if read_voltage == 0:
            raise ValueError("read voltage must not be 0 V")
        self.limits.check_gate(read_gate, "read gate voltage")
        self.read_voltage = float(read_voltage)
        self.read_gate = float(read_gate)
        self.smu_compliance = float(smu_compliance)
        self.smu_nplc = float(smu_nplc)
        self._ready = False
        self._smu_ready = False

    # --- set-up ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the array (no byte when the board knows it: limits and cells are
        checked before any byte; the array is selected when another one is)."""
        if self.board.selected_array != self.array:
            self._select()
        return self.board.shape

    @property
    def size(self) -> int:
        """Number of devices."""
        r, c = self.shape
        return r * c

    @property
    def in_process(self) -> bool:
        """Whether the chip is emulated in this process and kept in its memory only (the
        simulated bench reached through its serial URL or VISA library, without a
        ``[simulation] state`` folder): a crash of the machine takes it away with whatever the
        process had not written to the disk."""
        return bool(getattr(getattr(self.board, "transport", None), "in_process", False))

    def _select(self) -> None:
        """This crossbar's array selected on the board (checked against the board's count
        before any byte; nothing is sent when it already is)."""
        if not self._selected or self.board.selected_array != self.array:
            self.board.select_array(self.array)
            self._selected = True

    def _setup(self) -> None:
        self._select()
        if not self._ready:
            # the board remembers the read settings and re-applies them after any link recovery
            self.board.configure(read_voltage=self.read_voltage, read_gate=self.read_gate)
            self._ready = True

    def _setup_smu(self) -> SourceMeter:
        if self.smu is None:
            raise RuntimeError("this crossbar has no SMU: precise reads and I-V sweeps need one")
        if not self._smu_ready:
            stale = self.smu.read_errors()  # left by an earlier session (a lost command, a crash): not ours
            if stale:
                log.warning("%s: stale errors in the queue at the start of this session: %s", self.smu.name, stale)
            self.smu.configure_voltage_source(self.smu_compliance, nplc=self.smu_nplc)
            self._smu_ready = True
        return self.smu

    def identify(self) -> str:
        """The board's identification (``*IDN?``) with this crossbar's array selected (labrram's
        board names the selected array's chip in it).

        Returns
        -------
        str
            The identification reply.
        """
        self._select()
        return str(self.board.idn)

    def array_kind(self) -> str:
        """What this crossbar's array is: ``"reram"``, ``"pcm"`` or ``"passive"``.

        Returns
        -------
        str
            The board's answer for the selected array.
        """
        self._select()
        return self.board.array_kind()

    # --- reads -------------------------------------------------------------------------
    def read(self, cells: Any = None) -> np.ndarray:
        """Read conductances through the board (one transaction).

        Parameters
        ----------
        cells : Cells, optional
            Which devices (:class:`~labrram.cells.Cells`, a boolean mask of the array's shape,
            or a tuple of two integer index arrays; plain lists are refused as ambiguous);
            None reads the whole array.

        Returns
        -------
        ndarray
            Conductances, S: shape (rows, cols) for the whole array, else one per selected
            device (a mask's devices in row-major order).
        """
        self._setup()
        if cells is None:
            return self.board.measure_all() / self.read_voltage
        rows, cols = as_cells(cells, self.shape)
        if rows.size == 0:
            return np.empty(0)
        return self.board.measure_cells(rows, cols) / self.read_voltage

    def measure(self, cells: Any, voltage: float | None = None) -> np.ndarray:
        """Currents the board senses for the selected devices.

        On a passive array each reading carries the sneak currents of the biasing scheme.

        Parameters
        ----------
        cells : Cells
            Which devices (:class:`~labrram.cells.Cells`, a boolean mask of the array's shape, or
            a tuple of two integer index arrays); plain lists are refused as ambiguous.
        voltage : float, optional
            Voltage on the selected lines, V (default the read voltage, which is put back
            afterwards).

        Returns
        -------
        ndarray
            One current per device, A.
        """
        self._setup()
        rows, cols = as_cells(cells, self.shape)
        if rows.size == 0:
            return np.empty(0)
        if voltage is None or float(voltage) == self.read_voltage:
            return self.board.measure_cells(rows, cols)
        self.board.read_voltage = float(voltage)
        try:
            return self.board.measure_cells(rows, cols)
        finally:
            self.board.read_voltage = self.read_voltage

    def bias(self, scheme: str) -> None:
        """Set the biasing of the unselected lines of a passive array for later pulses and reads.

        Parameters
        ----------
        scheme : str
            ``"HALF"`` (V/2), ``"THIRD"`` (V/3) or ``"FLOAT"``.
        """
        if scheme not in BIAS_SCHEMES:
            raise ValueError(f"bias scheme must be HALF, THIRD or FLOAT, got {scheme!r}")
        self._setup()
        self.board.set_bias(scheme)

    def read_row(self, row: int) -> np.ndarray:
        """Read one row.

        Parameters
        ----------
        row : int
            The row (word line).

        Returns
        -------
        ndarray
            (cols,) conductances, S.
        """
        self._setup()
        return self.board.measure_row(row) / self.read_voltage

    def read_precise(self, row: int, col: int, voltage: float | None = None) -> float:
        """Conductance of one device measured by the SMU (DC, full integration).

        Parameters
        ----------
        row, col : int
            The device.
        voltage : float, optional
            Read voltage, V (default the crossbar's).

        Returns
        -------
        float
            Conductance, S.
        """
        v = self.read_voltage if voltage is None else float(voltage)
        if v == 0:
            raise ValueError("read voltage must not be 0 V")
        return float(self.iv_sweep(row, col, [v])[0] / v)

    def iv_sweep(self, row: int, col: int, voltages: Sequence[float], gate: float | None = None) -> np.ndarray:
        """I–V sweep of one device by the SMU (routed to the device, then the route opened).

        Parameters
        ----------
        row, col : int
            The device.
        voltages : sequence of float
            The voltages, V, in order (each checked against the limits before any byte).
        gate : float, optional
            The device's word-line voltage during the sweep, V (default: the read gate); a low
            gate lets the access transistor limit the current (its saturation current).

        Returns
        -------
        ndarray
            Current at each voltage, A.
        """
        if self.smu is None:
            raise RuntimeError("this crossbar has no SMU: precise reads and I-V sweeps need one")
        v = self.smu.check_sweep(voltages)  # every level, and the route's gate, before any byte
        g = self.read_gate if gate is None else float(gate)
        self.limits.check_gate(g, "I-V sweep gate")
        if (row, col) != tuple(int(x) for x in (row, col)) or not (0 <= row < self.shape[0] and 0 <= col < self.shape[1]):
            raise ValueError(f"cell ({row}, {col}) outside the {self.shape[0]}x{self.shape[1]} array")
        smu = self._setup_smu()
        self._setup()
        self.board.route_smu(row, col, gate=g)
        try:
            smu.set_voltage(0.0)
            smu.enable_output()
            return smu.measure_sweep(v)
        finally:
            smu.shutdown()
            self.board.open_route()

    def route_smu(self, row: int, col: int, gate: float) -> None:
        """Connect the SMU connector to one device of this array (for an SMU script; the next
        route replaces it, :meth:`shutdown` opens it).

        Parameters
        ----------
        row, col : int
            The device.
        gate : float
            Its word-line voltage while routed, V (checked against the limits before any byte).
        """
        self.limits.check_gate(gate, "SMU route gate")
        self._select()
        self.board.route_smu(int(row), int(col), gate=float(gate))

    # --- pulses ------------------------------------------------------------------------
    def _pulse(self, kind: str, cells: Any, settings: PulseSettings, amplitude, gate, width, read: bool):
        """Raises :class:`~labrram.drivers.board_base.PulseDeliveryError` when the exchange failed:
        read the cells back before anything else (pulses are never repeated blindly)."""
        self._setup()
        rows, cols = as_cells(cells, self.shape)
        if rows.size == 0:
            return np.empty(0) if read else None
        amplitude = settings.amplitude if amplitude is None else amplitude
        gate = settings.gate if gate is None else gate
        width = settings.width if width is None else width
        currents = self.board.pulse(kind, rows, cols, amplitude, gate, width, read=read)
        return None if currents is None else currents / self.read_voltage

    def set(self, cells: Any, gate=None, amplitude=None, width=None, read: bool = False) -> np.ndarray | None:
        """SET pulses, one per selected device, in one transaction.

        Parameters
        ----------
        cells : Cells
            Which devices (:class:`~labrram.cells.Cells`, a boolean mask of the array's shape, or
            a tuple of two integer index arrays); plain lists are refused as ambiguous.
        gate : float or array, optional
            Word-line voltage, V: one value or one per device (default the board's SET gate).
        amplitude : float or array, optional
            Bit-line amplitude, V (default the board's SET amplitude).
        width : float or array, optional
            Pulse width, s (default the board's SET width).
        read : bool
            Read each device right after its pulse (same transaction).

        Returns
        -------
        ndarray or None
            With ``read``, the conductances after the pulses, S.

        Raises
        ------
        LimitError
            A setting beyond the station's limits: nothing was sent.
        PulseDeliveryError
            The exchange failed: read the devices back before anything else (pulses are
            never repeated blindly).
        """
        return self._pulse("SET", cells, DEFAULT_SET, amplitude, gate, width, read)

    def reset(self, cells: Any, gate=None, amplitude=None, width=None, read: bool = False) -> np.ndarray | None:
        """RESET pulses (source line at ``amplitude``), one per selected device; as :meth:`set`.

        Parameters
        ----------
        cells : Cells
            Which devices (:class:`~labrram.cells.Cells`, a boolean mask of the array's shape, or
            a tuple of two integer index arrays); plain lists are refused as ambiguous.
        gate : float or array, optional
            Word-line voltage, V (default the board's RESET gate).
        amplitude : float or array, optional
            Source-line amplitude, V (default the board's RESET amplitude).
        width : float or array, optional
            Pulse width, s (default the board's RESET width).
        read : bool
            Read each device right after its pulse (same transaction).

        Returns
        -------
        ndarray or None
            With ``read``, the conductances after the pulses, S.
        """
        return self._pulse("RESET", cells, DEFAULT_RESET, amplitude, gate, width, read)

    def check_pulse(self, amplitude, gate, width) -> None:
        """Refuse pulse settings beyond the bench limits or the board's ranges.

        Parameters
        ----------
        amplitude, gate : float or array
            Pulse and word-line voltages, V.
        width : float or array
            Pulse widths, s.

        Raises
        ------
        LimitError
            Naming the setting and the limit; nothing is sent.
        """
        self.board.check_pulse(amplitude, gate, width)

    def pulse_counter(self) -> int:
        """The board's count of delivered pulses (read once, then kept by the driver; see
        :meth:`~labrram.drivers.board.CrossbarBoard.pulse_counter`; a board without one raises
        :class:`~labrram.drivers.board_base.BoardCapabilityError`)."""
        self._setup()
        return self.board.pulse_counter()

    def delivery(self, before: int | None, n: int) -> int:
        """Whether a pulse batch whose reply was lost reached the chip.

        Parameters
        ----------
        before : int or None
            :meth:`pulse_counter` before the batch was sent (None: not known).
        n : int
            Pulses in the batch.

        Returns
        -------
        int
            1 delivered, 0 not delivered, -1 unknown.
        """
        self._setup()
        return self.board.delivery(before, n)

    # --- analog MVM --------------------------------------------------------------------
    def mvm(self, row_voltages: Sequence[float]) -> np.ndarray:
        """Analog matrix-vector product in the array: ``I_c = sum_r G[r, c] V_r``.

        Parameters
        ----------
        row_voltages : sequence of float
            One voltage per row (source line), V.

        Returns
        -------
        ndarray
            (cols,) column currents, A.
        """
        self._setup()
        return self.board.mvm(row_voltages)

    # --- lifecycle -------------------------------------------------------------------------
    def shutdown(self) -> None:
        """SMU output off and route open."""
        try:
            if self.smu is not None:
                self.smu.shutdown()
        finally:
            self.board.shutdown()
