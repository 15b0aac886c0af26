"""Emulator of the labrram crossbar test board (protocol: docs/board-protocol.md).

The board carries one chip or several arrays of the same kind and size (tiles, ``:ARR:COUN?``);
``:ARR:SEL`` chooses the array that every array command addresses (array 0 at power-on and
after ``*RST``). The board carries the chip, one pulse driver per line, one sense amplifier per bit line (so a
whole row is read in one conversion), and a relay matrix that connects the external SMU
connector to one cell: the SMU drives that cell's bit line, its source line is grounded and its
word line sits at the routing gate voltage. Commands follow SCPI syntax (short/long forms,
``;`` compounds, an error queue); bulk data travel as IEEE 488.2 definite-length blocks of
little-endian records.

Timing on the virtual clock: every pulse costs its width plus the driver set-up time; every
distinct row read costs one settle + conversion; routing costs the relay settle time.
"""

from __future__ import annotations

import numpy as np

from ..board_records import CELL_RECORD, PULSE_RECORD, VALUE
from ..ieee488 import BlockError, encode_block, split_block
from ..timing import T_MVM, T_RELAY, pulses_time, reads_time  # the timing model
from .instrument import OpenCircuit, SourceChannel
from .scpi import (
    DATA_OUT_OF_RANGE,
    ILLEGAL_PARAMETER,
    DATA_TYPE_ERROR,
    SETTINGS_CONFLICT,
    Call,
    ScpiInstrument,
    command,
    error,
    format_nr3,
)

CELL_DTYPE = CELL_RECORD
PULSE_DTYPE = PULSE_RECORD

# Hardware ranges of the board (what its drivers can physically produce).
MAX_AMPLITUDE = 5.0
MAX_GATE = 5.5
MIN_WIDTH = 10e-9
MAX_WIDTH = 1.0
MAX_READ_VOLTAGE = 1.0



def decode_block(text: str) -> bytes:
    """Payload of a definite-length block argument (latin-1 text); a SCPI error if malformed."""
    try:
        payload, rest = split_block(text.lstrip(" \t").encode("latin-1"))
    except BlockError as exc:
        raise error(DATA_TYPE_ERROR, str(exc)) from None
    if rest.strip(b" \t\r\n"):
        raise error(DATA_TYPE_ERROR, f"{len(rest)} bytes after the block")
    return payload


class SmuPort:
    """The SMU connector of the board: a :class:`Load` routed to at most one cell."""

    def __init__(self, board: "CrossbarBoard") -> None:
        self.board = board
        self.channels: list[SourceChannel] = []
        self._open = OpenCircuit(seed=7)

    def apply(self, v: float, duration: float) -> float:
        route = self.board.route
        if route is None:
            return self._open.apply(v, duration)
        r, c = route
        return self.board.chip.bias(r, c, v, self.board.route_gate, duration)

    def conductance(self) -> float:
        route = self.board.route
        if route is None:
            return self._open.conductance()
        r, c = route
        return float(self.board.chip._conductance(np.array([r]), np.array([c]))[0])

    def flush(self) -> None:
        for ch in self.channels:
            ch.flush()


class CrossbarBoard(ScpiInstrument):
    """The crossbar test board holding the bench's chip (or its arrays, ``bench.chips``)."""

    vendor = "labrram"
    model = "XB-1T1R"

    def __init__(self, bench, name, link, serial="XB0001") -> None:
        super().__init__(bench, name, link, serial)
        self.smu_port = SmuPort(self)
        self.pulse_count = 0  # pulses delivered by the board's drivers since power-on
        self.boot_count = 1  # power-ons of the board (its first included)
        self.reset()

    @property
    def chip(self):
        """The selected array's chip."""
        return self.bench.chips[self.array]

    def idn(self) -> str:
        c = self.chip
        model = "XB-0T1R" if c.kind == "passive" else self.model
        return f"{self.vendor},{model}-{c.rows}x{c.cols},{self.serial}/{c.info.serial},1.0"

    def reset(self) -> None:
        if getattr(self, "route", None) is not None:
            self.smu_port.flush()
        self.route: tuple[int, int] | None = None
        self.array = 0  # the selected array (``:ARR:SEL``)
        self.route_gate = 3.3
        self.read_voltage = 0.2
        self.read_gate = 3.3
        self.data_format = "REAL"

    # --- helpers ------------------------------------------------------------------------
    def _cell(self, call: Call, start: int = 0) -> tuple[int, int]:
        r = call.integer(start, 0, self.chip.rows - 1)
        c = call.integer(start + 1, 0, self.chip.cols - 1)
        return r, c

    def _records(self, call: Call, index: int, dtype: np.dtype) -> np.ndarray:
        payload = decode_block(call._arg(index))
        if len(payload) % dtype.itemsize:
            raise error(DATA_TYPE_ERROR, f"block length {len(payload)} is not a multiple of {dtype.itemsize}")
        rec = np.frombuffer(payload, dtype=dtype)
        if rec.size and (rec["row"].max() >= self.chip.rows or rec["col"].max() >= self.chip.cols):
            raise error(DATA_OUT_OF_RANGE, "cell address outside the array")
        return rec

    def _check_pulses(self, amplitude, gate, width) -> None:
        # the firmware compares float32 values with float32 bounds (10 ns as float32 is 10 ns)
        amplitude, gate, width = (np.atleast_1d(np.asarray(x, dtype=np.float32)) for x in (amplitude, gate, width))
        f32 = np.float32
        if not (np.all(np.isfinite(amplitude)) and np.all(np.isfinite(gate)) and np.all(np.isfinite(width))):
            raise error(DATA_OUT_OF_RANGE, "non-finite pulse parameter")
        if amplitude.size and (np.max(amplitude) > f32(MAX_AMPLITUDE) or np.min(amplitude) < 0):
            raise error(DATA_OUT_OF_RANGE, f"pulse amplitude outside [0, {MAX_AMPLITUDE}] V")
        if gate.size and (np.max(gate) > f32(MAX_GATE) or np.min(gate) < 0):
            raise error(DATA_OUT_OF_RANGE, f"gate voltage outside [0, {MAX_GATE}] V")
        if width.size and (np.max(width) > f32(MAX_WIDTH) or np.min(width) < f32(MIN_WIDTH)):
            raise error(DATA_OUT_OF_RANGE, f"pulse width outside [{MIN_WIDTH}, {MAX_WIDTH}] s")

    def _pulse(self, kind: str, rows, cols, amplitude, gate, width) -> None:
        if self.route is not None:
            self.smu_port.flush()  # the SMU relay must be open while the drivers pulse
        fn = self.chip.pulse_set if kind == "SET" else self.chip.pulse_reset
        fn(rows, cols, amplitude, gate, width, source=0)
        self.pulse_count += int(np.size(rows))
        self.clock.advance(pulses_time(np.broadcast_to(np.asarray(width, dtype=float), np.shape(rows))), "operation")

    def _read(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        currents = self.chip.read(rows, cols, self.read_voltage, self.read_gate)
        self.clock.advance(reads_time(rows, cols), "operation")
        return np.asarray(currents, dtype=float)

    def _emit(self, values: np.ndarray) -> str:
        values = np.asarray(values, dtype=float).ravel()
        if self.data_format == "ASC":
            return ",".join(format_nr3(v) for v in values)
        return encode_block(values.astype(VALUE).tobytes()).decode("latin-1")

    # --- configuration -----------------------------------------------------------------
    @command(":ARRay:COUNt", write=False)
    def _count(self, call: Call) -> str:
        return str(len(self.bench.chips))

    @command(":ARRay:SELect")
    def _select(self, call: Call) -> str | None:
        """The array every array command addresses; a change opens the SMU route first."""
        if call.query:
            return str(self.array)
        call.expect_args(1)
        value = call.number(0)
        if value != int(value):
            raise error(ILLEGAL_PARAMETER, f"array index must be a whole number, got {value:g}")
        n = len(self.bench.chips)
        if not 0 <= value < n:
            raise error(DATA_OUT_OF_RANGE, f"array {value:g} outside 0..{n - 1}")
        if int(value) != self.array:
            if self.route is not None:  # the relays of one array must not stay closed while another is addressed
                self.smu_port.flush()
                self.route = None
                self.clock.advance(T_RELAY, "operation")
            self.array = int(value)
        return None

    @command(":ARRay:SIZE", write=False)
    def _size(self, call: Call) -> str:
        return f"{self.chip.rows},{self.chip.cols}"

    @command(":ARRay:TYPE", write=False)
    def _type(self, call: Call) -> str:
        return self.chip.kind.upper()

    @command(":ARRay:BIAS")
    def _bias(self, call: Call) -> str | None:
        """Biasing of unselected lines (passive arrays: V/2, V/3 or floating; 1T1R: always
        grounded, the transistors isolate the cells)."""
        scheme = getattr(self.chip, "bias_scheme", None)
        if call.query:
            return {"V/2": "HALF", "V/3": "THIRD", "float": "FLOAT"}.get(scheme, "GROUND")
        choice = call.choice(0, ["HALF", "THIRD", "FLOAT", "GROUND"])
        if scheme is None:
            if choice != "GROUND":
                raise error(SETTINGS_CONFLICT, "a 1T1R array has no sneak-path biasing; only GROUND")
            return None
        if choice == "GROUND":
            raise error(SETTINGS_CONFLICT, "a passive array needs HALF, THIRD or FLOAT")
        self.chip.bias_scheme = {"HALF": "V/2", "THIRD": "V/3", "FLOAT": "float"}[choice]
        return None

    @command(":READ:VOLTage")
    def _read_volt(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.read_voltage)
        self.read_voltage = call.number(0, -MAX_READ_VOLTAGE, MAX_READ_VOLTAGE, default=0.2)
        return None

    @command(":READ:GATE")
    def _read_gate(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.read_gate)
        self.read_gate = call.number(0, 0.0, MAX_GATE, default=3.3)
        return None

    @command(":FORMat[:DATA]")
    def _format(self, call: Call) -> str | None:
        if call.query:
            return self.data_format
        self.data_format = call.choice(0, ["REAL", "ASCii"])[:4].replace("ASCI", "ASC")
        return None

    # --- reads -----------------------------------------------------------------------
    @command(":MEASure:CELL", write=False)
    def _meas_cell(self, call: Call) -> str:
        call.expect_args(2)
        r, c = self._cell(call)
        i = self._read(np.array([r]), np.array([c]))[0]
        return format_nr3(i)

    @command(":MEASure:ROW", write=False)
    def _meas_row(self, call: Call) -> str:
        call.expect_args(1)
        r = call.integer(0, 0, self.chip.rows - 1)
        cols = np.arange(self.chip.cols)
        return self._emit(self._read(np.full(cols.size, r), cols))

    @command(":MEASure:ALL", write=False)
    def _meas_all(self, call: Call) -> str:
        rr, cc = np.indices((self.chip.rows, self.chip.cols))
        return self._emit(self._read(rr.ravel(), cc.ravel()))

    @command(":MEASure:LIST", write=False)
    def _meas_list(self, call: Call) -> str:
        call.expect_args(1)
        rec = self._records(call, 0, CELL_DTYPE)
        return self._emit(self._read(rec["row"].astype(np.intp), rec["col"].astype(np.intp)))

    @command(":MEASure:MVM", write=False)
    def _mvm(self, call: Call) -> str:
        call.expect_args(1)
        payload = decode_block(call._arg(0))
        v = np.frombuffer(payload, dtype=VALUE).astype(float)
        if v.size != self.chip.rows:
            raise error(DATA_OUT_OF_RANGE, f"MVM needs {self.chip.rows} row voltages, got {v.size}")
        if not np.all(np.isfinite(v)) or np.max(np.abs(v), initial=0.0) > MAX_READ_VOLTAGE:
            raise error(DATA_OUT_OF_RANGE, f"MVM row voltages must be finite and within +-{MAX_READ_VOLTAGE} V")
        currents = self.chip.mvm(v, self.read_gate)
        self.clock.advance(T_MVM, "operation")
        return self._emit(currents)

    # --- pulses ----------------------------------------------------------------------
    def _single_pulse(self, call: Call, kind: str) -> None:
        call.expect_args(5)
        r, c = self._cell(call)
        amplitude = call.number(2)
        gate = call.number(3)
        width = call.number(4)
        self._check_pulses(amplitude, gate, width)
        self._pulse(kind, np.array([r]), np.array([c]), amplitude, gate, width)

    @command(":PULSe:SET", query=False)
    def _puls_set(self, call: Call) -> None:
        self._single_pulse(call, "SET")

    @command(":PULSe:RESet", query=False)
    def _puls_reset(self, call: Call) -> None:
        self._single_pulse(call, "RESET")

    def _list_pulses(self, call: Call) -> tuple[np.ndarray, np.ndarray]:
        call.expect_args(2)
        kind = call.choice(0, ["SET", "RESet"])
        kind = "SET" if kind == "SET" else "RESET"
        rec = self._records(call, 1, PULSE_DTYPE)
        self._check_pulses(rec["amplitude"], rec["gate"], rec["width"])
        rows, cols = rec["row"].astype(np.intp), rec["col"].astype(np.intp)
        self._pulse(kind, rows, cols, rec["amplitude"].astype(float), rec["gate"].astype(float), rec["width"].astype(float))
        return rows, cols

    @command(":PULSe:LIST", query=False)
    def _puls_list(self, call: Call) -> None:
        self._list_pulses(call)

    @command(":PULSe:READ:LIST", write=False)
    def _puls_read_list(self, call: Call) -> str:
        rows, cols = self._list_pulses(call)
        return self._emit(self._read(rows, cols))

    # --- SMU routing ----------------------------------------------------------------
    @command(":ROUTe:SMU")
    def _route(self, call: Call) -> str | None:
        if call.query:
            return "NONE" if self.route is None else f"{self.route[0]},{self.route[1]}"
        call.expect_args(2)
        cell = self._cell(call)
        if cell != self.route:
            self.smu_port.flush()
            self.route = cell
            self.clock.advance(T_RELAY, "operation")
        return None

    @command(":ROUTe:OPEN", query=False)
    def _route_open(self, call: Call) -> None:
        if self.route is not None:
            self.smu_port.flush()
            self.route = None
            self.clock.advance(T_RELAY, "operation")

    @command(":ROUTe:GATE")
    def _route_gate(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.route_gate)
        gate = call.number(0, 0.0, MAX_GATE, default=3.3)
        self.smu_port.flush()
        self.route_gate = gate
        return None

    # --- status ----------------------------------------------------------------------
    @command(":SYSTem:TIME", write=False)
    def _time(self, call: Call) -> str:
        return format_nr3(self.clock.now)

    @command(":SYSTem:PULSes", write=False)
    def _pulses(self, call: Call) -> str:
        return str(self.pulse_count)

    @command(":SYSTem:BOOT", write=False)
    def _boots(self, call: Call) -> str:
        return str(self.boot_count)

    def power_cycle(self, lose_sessions: bool = True) -> None:
        super().power_cycle(lose_sessions)
        self.pulse_count = 0
        self.boot_count += 1

    def shutdown(self) -> None:
        if self.route is not None:
            self.smu_port.flush()
        self.route = None


__all__ = ["CrossbarBoard", "CELL_DTYPE", "PULSE_DTYPE", "decode_block"]
