"""The crossbar-board role: what every board driver offers, and the checks they share.

A :class:`~labrram.crossbar.Crossbar` (and so the engine and every plan) talks to a board
through this role only: array size, reads, pulse batches, sneak-path biasing, and — where the
board has them — an SMU relay matrix, analog MVM and a pulse counter. Concrete boards:

* :class:`~labrram.drivers.board.CrossbarBoard` — labrram's documented board protocol
  (docs/board-protocol.md);
* :class:`~labrram.drivers.arc1.ArcOneBoard` — ArC Instruments' ArC ONE over its serial
  protocol;
* :class:`~labrram.drivers.arc2.ArcTwoBoard` — ArC Instruments' ArC TWO through ``pyarc2``.

What a board cannot do is refused with a clear :class:`BoardCapabilityError` before any byte;
its flags (:attr:`Board.has_gate`, :attr:`Board.can_mvm`, ...) let a plan check up front.
"""

from __future__ import annotations

import numpy as np

from labrram.safety import value_span

from .base import Instrument, InstrumentError, LimitError

#: delivery status of a pulse whose reply was lost (see :class:`PulseDeliveryError`)
DELIVERED, NOT_DELIVERED, UNKNOWN = 1, 0, -1

#: sneak-path biasing schemes of passive arrays (``Crossbar.bias``)
BIAS_SCHEMES = ("HALF", "THIRD", "FLOAT")


class PulseDeliveryError(InstrumentError):
    """A pulse batch whose exchange failed (no reply, a garbled reply, a lost connection).

    Pulses are never sent again by the driver. ``status`` says, per pulse of the call, what the
    board can prove: 1 delivered, 0 not delivered, -1 unknown. Read the cells back before doing
    anything else with them.
    """

    def __init__(self, message: str, status: np.ndarray, kind: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class BoardCapabilityError(InstrumentError):
    """An operation the station's board cannot do (e.g. analog MVM on an ArC ONE)."""


def cell_indices(rows, cols, n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Checked integer cell addresses (0-based) of an ``n_rows`` x ``n_cols`` array."""
    rows = np.asarray(rows)
    cols = np.asarray(cols)
    if rows.shape != cols.shape or rows.ndim != 1:
        raise ValueError("rows and cols must be 1-D sequences of the same length")
    if rows.size and (not np.issubdtype(rows.dtype, np.integer) or not np.issubdtype(cols.dtype, np.integer)):
        raise ValueError("cell addresses must be integers")
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows or cols.min() < 0 or cols.max() >= n_cols):
        raise ValueError(f"cell address outside the {n_rows}x{n_cols} array")
    return rows.astype(np.intp), cols.astype(np.intp)


class Board(Instrument):
    """Base of every crossbar-board driver (the role a :class:`~labrram.crossbar.Crossbar` uses).

    Subclasses implement the array size, reads and pulses; the limit checks of pulses and the
    per-device pulse and energy budgets of a connection are shared here, so they hold for every
    board alike.
    """

    #: |read voltage| the board can apply, V
    read_voltage_range: float = 1.0
    #: word-line (gate) voltage the board can apply during reads, V; 0 for boards without gates
    read_gate_range: float = 0.0
    #: hardware ranges of one pulse: amplitude (V), gate (V), width (s)
    pulse_amplitude_range: float = 5.0
    pulse_gate_range: float = 0.0
    pulse_width_range: tuple[float, float] = (10e-9, 1.0)
    #: what the board can do besides reads and pulses
    has_gate = False  # drives the word lines of 1T1R arrays
    can_mvm = False  # analog matrix-vector products
    can_route_smu = False  # a relay matrix to an external SMU
    bias_schemes: tuple[str, ...] = ()  # sneak-path biasing of passive arrays
    #: the array kinds the board can carry
    array_kinds: tuple[str, ...] = ("passive",)
    #: the board's name in messages ("the ArC ONE")
    board_name = "the board"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shape: tuple[int, int] | None = None  # of the selected array
        #: pulses and energy per device of each array, this connection
        self._spent_by_array: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._array: int | None = None  # the array selected by :meth:`select_array` (None: never asked)

    # --- what every board implements -----------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:  # pragma: no cover - abstract
        """Array size (rows, cols)."""
        raise NotImplementedError

    def configure(self, read_voltage: float | None = None, read_gate: float | None = None) -> None:  # pragma: no cover - abstract
        """Prepare the board for reads at ``read_voltage`` (V) and ``read_gate`` (V, boards with
        gates); remembered and applied again after any link recovery."""
        raise NotImplementedError

    def array_kind(self) -> str:  # pragma: no cover - abstract
        """What the board carries: ``"reram"``, ``"pcm"`` or ``"passive"``."""
        raise NotImplementedError

    def measure_cells(self, rows, cols) -> np.ndarray:  # pragma: no cover - abstract
        """Currents of a list of cells at the read voltage, A."""
        raise NotImplementedError

    def measure_all(self) -> np.ndarray:  # pragma: no cover - abstract
        """Currents of the whole array, shape (rows, cols), A."""
        raise NotImplementedError

    def pulse(self, kind: str, rows, cols, amplitude, gate, width, read: bool = False) -> np.ndarray | None:  # pragma: no cover
        """SET or RESET pulses on a list of cells; with ``read`` the currents right after each
        pulse (A). Raises :class:`PulseDeliveryError` when an exchange failed."""
        raise NotImplementedError

    # --- shared, overridable -----------------------------------------------------------------
    def array_count(self) -> int:
        """Number of arrays (tiles) the board carries; 1 on a board that cannot select among several."""
        return 1

    @property
    def selected_array(self) -> int:
        """The array (0-based) that reads, pulses, MVM and SMU routing address."""
        return 0 if self._array is None else self._array

    def _check_array(self, index: int) -> int:
        """``index`` as a checked array index of this board (before any byte of a selection)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"array index must be a whole number, got {index!r}")
        count = self.array_count()
        if not 0 <= int(index) < count:
            raise ValueError(f"{self.name}: array {int(index)} outside 0..{count - 1} ({self.board_name} carries {count} array{'s' if count != 1 else ''})")
        return int(index)

    def select_array(self, index: int) -> None:
        """Address array ``index`` (0-based) with every later read, pulse, MVM and SMU route.

        Parameters
        ----------
        index : int
            The array, checked against :meth:`array_count` before any byte of the selection.

        Raises
        ------
        ValueError
            An index that is not a whole number in ``0 .. array_count() - 1``; nothing changes.
        """
        self._array = self._check_array(index)

    def measure_cell(self, row: int, col: int) -> float:
        """Current of one cell at the read voltage, A."""
        return float(self.measure_cells(np.array([row]), np.array([col]))[0])

    def measure_row(self, row: int) -> np.ndarray:
        """Currents of one row, A."""
        n_rows, n_cols = self.shape
        if not (0 <= int(row) < n_rows):
            raise ValueError(f"row {row} outside 0..{n_rows - 1}")
        return self.measure_cells(np.full(n_cols, int(row)), np.arange(n_cols))

    def set_bias(self, scheme: str) -> None:
        """Biasing of the unselected lines of a passive array: ``"HALF"``, ``"THIRD"`` or ``"FLOAT"``."""
        raise BoardCapabilityError(f"{self.name}: {self.board_name} has no sneak-path biasing schemes")

    def mvm(self, row_voltages) -> np.ndarray:
        """Column currents for voltages on the rows (analog matrix-vector product), A."""
        raise BoardCapabilityError(f"{self.name}: {self.board_name} cannot do analog matrix-vector products")

    def route_smu(self, row: int, col: int, gate: float | None = None) -> None:
        """Connect the external SMU to one cell."""
        raise BoardCapabilityError(f"{self.name}: {self.board_name} has no relay matrix for an external SMU")

    def open_route(self) -> None:
        """Disconnect the external SMU (nothing to do on a board without a relay matrix)."""

    def pulse_counter(self) -> int:
        """The board's count of delivered pulses (for exactly-once settlement after a crash)."""
        raise BoardCapabilityError(f"{self.name}: {self.board_name} has no pulse counter")

    def delivery(self, before: int | None, n: int) -> int:
        """Whether ``n`` pulses sent when :meth:`pulse_counter` read ``before`` reached the chip:
        1 yes, 0 no, -1 unknown (always unknown on a board without a counter)."""
        return UNKNOWN

    # --- checks shared by every board ------------------------------------------------------
    def _check_read_voltage(self, v: float) -> float:
        self.limits.check_voltage(v, "read voltage")
        if not abs(float(v)) <= self.read_voltage_range:
            raise LimitError(f"read voltage {float(v):g} V beyond {self.board_name}'s range of ±{self.read_voltage_range:g} V")
        return float(v)

    def _check_gate(self, v: float) -> float:
        self.limits.check_gate(v, "gate voltage")
        if not 0 <= float(v) <= self.read_gate_range:
            if not self.has_gate:
                raise LimitError(f"gate voltage {float(v):g} V: {self.board_name} drives passive arrays and has no word-line gate")
            raise LimitError(f"gate voltage {float(v):g} V beyond {self.board_name}'s range [0, {self.read_gate_range:g}] V")
        return float(v)

    def _cells(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        return cell_indices(rows, cols, *self.shape)

    def check_pulse(self, amplitude, gate, width) -> None:
        """Refuse pulses beyond the bench limits (voltage, gate, width, energy
        ``amplitude * max_current * width``) or beyond the board's own ranges: raises
        :class:`~labrram.safety.LimitError`, nothing is sent."""
        self.limits.check_pulse(amplitude, gate, width, current_limit=self.limits.max_current)
        spans = {what: value_span(x, f"pulse {what}") for what, x in (("amplitude", amplitude), ("gate", gate), ("width", width))}
        if spans["amplitude"] and spans["amplitude"][0] < 0:
            raise ValueError("pulse amplitudes are magnitudes (>= 0 V); the kind sets the polarity")
        if spans["gate"] and spans["gate"][1] > 0 and not self.has_gate:
            raise LimitError(f"pulse gate {spans['gate'][1]:g} V: {self.board_name} drives passive arrays and has no word-line gate (use 0 V)")
        lo_w, hi_w = self.pulse_width_range
        for what, lo, hi, unit in (
            ("amplitude", 0.0, self.pulse_amplitude_range, "V"),
            ("gate", 0.0, self.pulse_gate_range, "V"),
            ("width", lo_w, hi_w, "s"),
        ):
            span = spans[what]
            if span and (span[0] < lo or span[1] > hi):
                raise LimitError(f"pulse {what} outside {self.board_name}'s range [{lo:g}, {hi:g}] {unit}")

    def _pulse_arrays(self, kind: str, rows, cols, amplitude, gate, width):
        """The checked arrays of one pulse call (kind, cells, per-cell levels), charged against
        the connection's per-device budgets; nothing is sent when any check fails."""
        kind = kind.upper()
        if kind not in ("SET", "RESET"):
            raise ValueError(f"pulse kind must be SET or RESET, got {kind!r}")
        rows, cols = self._cells(rows, cols)
        amplitude = np.broadcast_to(np.asarray(amplitude, dtype=float), rows.shape)
        gate = np.broadcast_to(np.asarray(gate, dtype=float), rows.shape)
        width = np.broadcast_to(np.asarray(width, dtype=float), rows.shape)
        self.check_pulse(amplitude, gate, width)
        self._charge(rows, cols, amplitude, width)
        return kind, rows, cols, amplitude, gate, width

    def spent(self, rows: np.ndarray, cols: np.ndarray, array: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pulses, and their worst-case energy (J), this connection has sent to each of the cells
        ``(rows, cols)`` of ``array`` (default: the selected one) — what counts against
        ``max_pulses_per_device`` and ``max_energy_per_device`` before the next pulse."""
        spent = self._spent_by_array.get(self.selected_array if array is None else int(array))
        if spent is None:
            return np.zeros(np.size(rows), dtype=np.int32), np.zeros(np.size(rows))
        return spent[0][rows, cols], spent[1][rows, cols]

    def _charge(self, rows: np.ndarray, cols: np.ndarray, amplitude: np.ndarray, width: np.ndarray) -> None:
        """Per-device budgets of this connection (``max_pulses_per_device``,
        ``max_energy_per_device``): refuse the whole batch before any byte when one device would
        go beyond them, else count it."""
        shape = self.shape
        spent = self._spent_by_array.get(self.selected_array)
        if spent is None or spent[0].shape != shape:
            spent = self._spent_by_array[self.selected_array] = (np.zeros(shape, dtype=np.int32), np.zeros(shape))  # pulses, energy (J)
        # the batch's own devices only: memory and time grow with the batch, not the array
        flat = np.ravel_multi_index((rows, cols), shape).ravel()
        each = np.broadcast_to(self.limits.pulse_energy(amplitude, width), flat.shape)
        cells = np.sort(flat)
        if np.any(cells[1:] == cells[:-1]):  # a device listed more than once: its pulses summed
            flat, where = np.unique(flat, return_inverse=True)
            pulses = spent[0].ravel()[flat] + np.bincount(where, minlength=flat.size)
            energy = spent[1].ravel()[flat] + np.bincount(where, weights=each, minlength=flat.size)
        else:
            pulses = spent[0].ravel()[flat].astype(np.int64) + 1
            energy = spent[1].ravel()[flat] + each
        if flat.size and np.max(pulses) > self.limits.max_pulses_per_device:
            i = self._first_of(flat, pulses)
            r, c = np.unravel_index(flat[i], shape)
            raise LimitError(
                f"device ({r}, {c}){self._on_array()} would receive {int(pulses[i])} pulses on this connection, "
                f"beyond the per-device budget of {int(self.limits.max_pulses_per_device)}"
            )
        if flat.size and np.max(energy) > self.limits.max_energy_per_device:
            i = self._first_of(flat, energy)
            r, c = np.unravel_index(flat[i], shape)
            raise LimitError(
                f"device ({r}, {c}){self._on_array()} would receive {energy[i]:.3g} J of pulses on this connection, "
                f"beyond the per-device budget of {self.limits.max_energy_per_device:.3g} J"
            )
        spent[0].ravel()[flat] = pulses
        spent[1].ravel()[flat] = energy

    @staticmethod
    def _first_of(flat: np.ndarray, amount: np.ndarray) -> int:
        """Index of the device with the most ``amount``; of several, the lowest cell (row, then
        column): the one the refusal names, whatever the batch's order."""
        top = np.flatnonzero(amount == np.max(amount))
        return int(top[np.argmin(flat[top])])

    def _on_array(self) -> str:
        return "" if self._array is None else f" of array {self._array}"

    def shutdown(self) -> None:
        """Open any SMU route (boards' own drivers idle at 0 V)."""
        if not self._closed and self.can_route_smu:
            self.open_route()
