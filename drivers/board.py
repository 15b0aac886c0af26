"""Driver of the labrram crossbar test board (protocol: docs/board-protocol.md).

The board is reached over a serial URL (``labrram://default/board`` on the simulated bench,
``/dev/ttyACM0`` or ``COM5`` for hardware) or as a VISA ``ASRL`` resource. Bulk operations
travel as binary blocks: a whole-array read is one transaction, a batch of pulses is one
transaction, and pulse-then-read batches return the currents of every pulsed cell.
"""

from __future__ import annotations

import numpy as np

from labrram.board_records import CELL_RECORD, PULSE_RECORD, VALUE
from labrram.ieee488 import encode_block

from .base import Instrument, ReplyError, Setting

#: largest number of records sent in one block (keeps one transaction under ~1 MB)
MAX_BATCH = 65536


def _cells(rows, cols, n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.asarray(rows)
    cols = np.asarray(cols)
    if rows.shape != cols.shape or rows.ndim != 1:
        raise ValueError("rows and cols must be 1-D sequences of the same length")
    if rows.size and (not np.issubdtype(rows.dtype, np.integer) or not np.issubdtype(cols.dtype, np.integer)):
        raise ValueError("cell addresses must be integers")
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows or cols.min() < 0 or cols.max() >= n_cols):
        raise ValueError(f"cell address outside the {n_rows}x{n_cols} array")
    return rows.astype(np.intp), cols.astype(np.intp)


class CrossbarBoard(Instrument):
    """The crossbar test board: reads, pulses, analog MVM and SMU routing."""

    read_voltage = Setting(
        ":READ:VOLT?", ":READ:VOLT {:.6g}", validate=lambda inst, v: inst._check_read_voltage(v), doc="Read voltage, V."
    )
    read_gate = Setting(
        ":READ:GATE?", ":READ:GATE {:.6g}", validate=lambda inst, v: inst._check_gate(v), doc="Word-line voltage during reads, V."
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shape: tuple[int, int] | None = None
        self._configured = False

    # --- validation --------------------------------------------------------------------
    def _check_read_voltage(self, v: float) -> float:
        self.limits.check_voltage(v, "read voltage")
        return float(v)

    def _check_gate(self, v: float) -> float:
        self.limits.check_gate(v, "gate voltage")
        return float(v)

    # --- identity ----------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Array size (rows, cols)."""
        if self._shape is None:
            reply = self.query(":ARR:SIZE?")
            try:
                r, c = (int(x) for x in reply.split(","))
            except ValueError:
                raise ReplyError(f"{self.name}: array size reply {reply!r}") from None
            self._shape = (r, c)
        return self._shape

    def configure(self) -> None:
        """Binary data format, a clean error queue; called before the first bulk exchange."""
        self.write("*CLS;:FORM REAL")
        self._configured = True

    def _bulk(self, command: str) -> np.ndarray:
        if not self._configured:
            self.configure()
        payload = self.query_block(command)
        if len(payload) % VALUE.itemsize:
            raise ReplyError(f"{self.name}: block of {len(payload)} bytes is not float32 values")
        return np.frombuffer(payload, dtype=VALUE).astype(float)

    def _block_command(self, header: str, records: np.ndarray) -> str:
        return header + encode_block(records.tobytes()).decode("latin-1")

    # --- reads -------------------------------------------------------------------------
    def measure_cell(self, row: int, col: int) -> float:
        """Current of one cell at the read voltage, A."""
        r, c = _cells([row], [col], *self.shape)
        return self.query_float(f":MEAS:CELL? {r[0]},{c[0]}")

    def measure_row(self, row: int) -> np.ndarray:
        """Currents of one row, A (one conversion on the board)."""
        n_rows, n_cols = self.shape
        if not (0 <= int(row) < n_rows):
            raise ValueError(f"row {row} outside 0..{n_rows - 1}")
        values = self._bulk(f":MEAS:ROW? {int(row)}")
        if values.size != n_cols:
            raise ReplyError(f"{self.name}: row read returned {values.size} values, expected {n_cols}")
        return values

    def measure_all(self) -> np.ndarray:
        """Currents of the whole array, shape (rows, cols), A: one transaction."""
        n_rows, n_cols = self.shape
        values = self._bulk(":MEAS:ALL?")
        if values.size != n_rows * n_cols:
            raise ReplyError(f"{self.name}: array read returned {values.size} values, expected {n_rows * n_cols}")
        return values.reshape(n_rows, n_cols)

    def measure_cells(self, rows, cols) -> np.ndarray:
        """Currents of a list of cells, A, in blocks of up to :data:`MAX_BATCH` cells."""
        rows, cols = _cells(rows, cols, *self.shape)
        out = np.empty(rows.size)
        for start in range(0, rows.size, MAX_BATCH):
            sl = slice(start, start + MAX_BATCH)
            rec = np.empty(rows[sl].size, dtype=CELL_RECORD)
            rec["row"], rec["col"] = rows[sl], cols[sl]
            values = self._bulk(self._block_command(":MEAS:LIST? ", rec))
            if values.size != rec.size:
                raise ReplyError(f"{self.name}: list read returned {values.size} values for {rec.size} cells")
            out[sl] = values
        return out

    def mvm(self, row_voltages) -> np.ndarray:
        """Column currents for voltages applied to the rows (analog matrix-vector product), A."""
        n_rows, _ = self.shape
        v = np.asarray(row_voltages, dtype=float)
        if v.shape != (n_rows,):
            raise ValueError(f"mvm needs {n_rows} row voltages, got shape {v.shape}")
        self.limits.check_voltage(v, "MVM row voltage")
        return self._bulk(":MEAS:MVM? " + encode_block(v.astype(VALUE).tobytes()).decode("latin-1"))

    # --- pulses --------------------------------------------------------------------------
    def pulse(self, kind: str, rows, cols, amplitude, gate, width, read: bool = False) -> np.ndarray | None:
        """SET or RESET pulses on a list of cells; with ``read`` the board reads each pulsed
        cell right after its pulse and the currents are returned (A).

        ``amplitude`` (V), ``gate`` (V) and ``width`` (s) are scalars or one value per cell.
        Every value is checked against the bench limits before anything is sent.
        """
        kind = kind.upper()
        if kind not in ("SET", "RESET"):
            raise ValueError(f"pulse kind must be SET or RESET, got {kind!r}")
        rows, cols = _cells(rows, cols, *self.shape)
        amplitude = np.broadcast_to(np.asarray(amplitude, dtype=float), rows.shape)
        gate = np.broadcast_to(np.asarray(gate, dtype=float), rows.shape)
        width = np.broadcast_to(np.asarray(width, dtype=float), rows.shape)
        self.limits.check_pulse(amplitude, gate, width)
        if np.any(amplitude < 0):
            raise ValueError("pulse amplitudes are magnitudes (>= 0 V); the kind sets the polarity")
        out = np.empty(rows.size) if read else None
        for start in range(0, rows.size, MAX_BATCH):
            sl = slice(start, start + MAX_BATCH)
            rec = np.empty(rows[sl].size, dtype=PULSE_RECORD)
            rec["row"], rec["col"] = rows[sl], cols[sl]
            rec["amplitude"], rec["gate"], rec["width"] = amplitude[sl], gate[sl], width[sl]
            if read:
                values = self._bulk(self._block_command(f":PULS:READ:LIST? {kind},", rec))
                if values.size != rec.size:
                    raise ReplyError(f"{self.name}: pulse-read returned {values.size} values for {rec.size} cells")
                out[sl] = values
            else:
                self.write(self._block_command(f":PULS:LIST {kind},", rec))
        if not read:
            self.check_errors()
        return out

    # --- SMU routing ---------------------------------------------------------------------
    def route_smu(self, row: int, col: int, gate: float | None = None) -> None:
        """Connect the SMU connector to one cell (its bit line; source line grounded)."""
        r, c = _cells([row], [col], *self.shape)
        cmd = f":ROUT:SMU {r[0]},{c[0]}"
        if gate is not None:
            cmd = f":ROUT:GATE {self._check_gate(gate):.6g};" + cmd
        self.write(cmd)

    def open_route(self) -> None:
        """Disconnect the SMU connector from the array."""
        self.write(":ROUT:OPEN")

    @property
    def error_count(self) -> int:
        return int(self.query(":SYST:ERR:COUN?"))

    def shutdown(self) -> None:
        """Open the SMU route (the board's own drivers idle at 0 V)."""
        if not self._closed:
            self.open_route()
