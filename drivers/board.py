"""Driver of the labrram crossbar test board (protocol: docs/board-protocol.md).

The board is reached over a serial URL (``labrram://default/board`` on the simulated bench,
``/dev/ttyACM0`` or ``COM5`` for hardware) or as a VISA ``ASRL`` resource. Bulk operations
travel as binary blocks: a whole-array read is one transaction, a batch of pulses is one
transaction, and pulse-then-read batches return the currents of every pulsed cell. On a board
that carries several arrays, :meth:`CrossbarBoard.select_array` chooses the one every array
command addresses; the driver selects it again after any link recovery before anything else
reaches the board's arrays.
"""

from __future__ import annotations

import numpy as np

from labrram.board_records import CELL_RECORD, PULSE_RECORD, VALUE
from labrram.ieee488 import encode_block

from .guard import board_guard
from .base import LINK_ERRORS, InstrumentError, ReplyError, Setting
from .board_base import DELIVERED, NOT_DELIVERED, UNKNOWN, BIAS_SCHEMES, Board, PulseDeliveryError

#: largest number of records sent in one block (keeps one transaction under ~1 MB)
MAX_BATCH = 65536
#: no line of the board carries this much current: a larger (or non-finite) reading is a corrupted reply, A
MAX_READING = 1.0

#: the board's hardware ranges (docs/board-protocol.md)
HW_AMPLITUDE, HW_GATE, HW_MIN_WIDTH, HW_MAX_WIDTH = 5.0, 5.5, 10e-9, 1.0
HW_READ_VOLTAGE = 1.0
#: error codes of a command the board refused as such (syntax, data out of range, illegal value):
#: sending it again cannot help
REFUSED = range(-229, -99)

class CrossbarBoard(Board):
    """The labrram crossbar test board: reads, pulses, analog MVM and SMU routing."""

    guard = board_guard  # raw source-level commands are refused beyond the limits too

    read_voltage = Setting(
        ":READ:VOLT?", ":READ:VOLT {:.6g}", validate=lambda inst, v: inst._check_read_voltage(v), doc="Read voltage, V."
    )
    read_gate = Setting(
        ":READ:GATE?", ":READ:GATE {:.6g}", validate=lambda inst, v: inst._check_gate(v), doc="Word-line voltage during reads, V."
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._configured = False
        self._read_settings: tuple[float, float] | None = None
        self._counter: int | None = None  # the board's pulse counter, when known
        self._trusted_counter: int | None = None  # the last count read (it never falls within a boot)
        self._array_count: int | None = None  # ``:ARR:COUN?``, read once per connection
        self._shapes: dict[int, tuple[int, int]] = {}  # ``:ARR:SIZE?`` of each array read so far
        self._selection_ok = False  # the board has ``_array`` selected since the last recovery
        self._recoveries = 0  # link recoveries so far (a configuration they interrupted is redone)

    #: what the board can apply (docs/board-protocol.md)
    read_voltage_range = HW_READ_VOLTAGE
    read_gate_range = HW_GATE
    pulse_amplitude_range = HW_AMPLITUDE
    pulse_gate_range = HW_GATE
    pulse_width_range = (HW_MIN_WIDTH, HW_MAX_WIDTH)
    has_gate = can_mvm = can_route_smu = True
    bias_schemes = BIAS_SCHEMES
    array_kinds = ("reram", "pcm", "passive")
    board_name = "the board"

    # --- identity ----------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Size (rows, cols) of the selected array (``:ARR:SIZE?``, read once per array)."""
        if self._shape is None:
            array = self.selected_array

            def size() -> tuple[int, int]:
                self._ready_array()
                reply = self.query(":ARR:SIZE?")
                try:
                    r, c = (int(x) for x in reply.split(","))
                except ValueError:
                    raise ReplyError(f"{self.name}: array size reply {reply!r}") from None
                if r < 1 or c < 1:
                    raise ReplyError(f"{self.name}: array size reply {reply!r}")
                return r, c

            self._shape = self._shapes[array] = self.retrying(size, "':ARR:SIZE?'")
        return self._shape

    # --- arrays (tiles) ------------------------------------------------------------------
    @property
    def _selecting(self) -> bool:
        """Whether an array was selected on a board that carries several (and so must be
        selected again after any recovery before an array command)."""
        return self._array is not None and (self._array_count or 1) > 1

    def array_count(self) -> int:
        """Number of arrays the board carries (``:ARR:COUN?``, read once per connection); 1 on
        an older board that does not know the query (it answers nothing and queues an error)."""
        if self._array_count is None:

            def read() -> int:
                reply = self.query(":ARR:COUN?")
                try:
                    n = int(reply.strip())
                except ValueError:
                    raise ReplyError(f"{self.name}: array count reply {reply!r}") from None
                if n < 1:
                    raise ReplyError(f"{self.name}: array count reply {reply!r}")
                return n

            try:
                self._array_count = self.retrying(read, "':ARR:COUN?'")
            except ReplyError:
                raise
            except InstrumentError:
                if not self.read_errors():  # silence and no error: a link fault, not an older board
                    raise
                self._array_count = 1  # an older board: the query is unknown to it
        return self._array_count

    def select_array(self, index: int) -> None:
        """Address array ``index`` with every later read, pulse, MVM, size and SMU route
        (``:ARR:SEL``, checked through the error queue).

        The index is checked against :meth:`array_count` before any byte of the selection. The
        selection is remembered and sent again after any link recovery (a board that rebooted
        selects array 0) before the next array command, so pulses never land on another array.
        On a board with one array nothing is sent.

        Parameters
        ----------
        index : int
            The array, 0-based.

        Raises
        ------
        ValueError
            An index outside ``0 .. array_count() - 1``; nothing is sent.
        """
        n = self._check_array(index)
        if self._array_count == 1:
            self._array = n
            return
        if self._array is None:  # sizes read before any selection are of whichever array the board had
            self._shapes.clear()
        self._array, self._selection_ok = n, False  # until the board confirms: re-sent if this fails
        self._shape = self._shapes.get(n)
        gen = self._recoveries
        self.write_checked(f":ARR:SEL {n}")
        self._selection_ok = gen == self._recoveries  # a recovery in between: send it again before use

    def _ready_array(self) -> None:
        """Before an array command: with an array selected on a multi-array board, the link
        recovered and the selection (with the read settings) applied since the last recovery."""
        if self._selecting:
            self._ready_link()

    def configure(self, read_voltage: float | None = None, read_gate: float | None = None) -> None:
        """Binary data format, a clean error queue and (when given, remembered for later
        reconfigurations) the read voltage and gate; called before the first bulk exchange and
        again after any link recovery (the board may have reset)."""
        if read_voltage is not None or read_gate is not None:
            v = self._check_read_voltage(0.2 if read_voltage is None else read_voltage)
            g = self._check_gate(3.3 if read_gate is None else read_gate)
            self._read_settings = (v, g)
        self._configured = False
        gen = self._recoveries
        self.write("*CLS;:FORM REAL")
        if self._selecting and not self._selection_ok:  # the array first: nothing reaches another one
            self.write_checked(f":ARR:SEL {self._array}")
            self._selection_ok = gen == self._recoveries
        if self._read_settings is not None:
            v, g = self._read_settings
            self.write_checked(f":READ:VOLT {v:.6g};:READ:GATE {g:.6g}")
        self._configured = gen == self._recoveries  # a recovery on the way (a reboot?): again

    def after_recovery(self) -> None:
        self._configured = False  # the board may have reset: format, array and read settings again
        self._selection_ok = False  # (a rebooted board selects array 0)
        self._counter = None  # and its pulse counter may have restarted
        self._recoveries += 1

    def _ready_link(self) -> None:
        """Recover a failed link, then configure the board until a configuration completes
        with no recovery in between (a reboot during it would undo part of it)."""
        for _ in range(2 + self.retries):
            if self._link_dirty:
                self.recover_link()
            if self._configured and (self._selection_ok or not self._selecting):
                return
            self.configure()
        if not self._link_dirty and self._configured and (self._selection_ok or not self._selecting):
            return
        raise ReplyError(f"{self.name}: the link failed during every attempt to configure the board")

    def _bulk_once(self, command: str) -> np.ndarray:
        self._ready_link()
        payload = self.query_block(command)
        if len(payload) % VALUE.itemsize:
            raise ReplyError(f"{self.name}: block of {len(payload)} bytes is not float32 values")
        values = np.frombuffer(payload, dtype=VALUE).astype(float)
        if values.size and not (np.all(np.isfinite(values)) and np.max(np.abs(values)) <= MAX_READING):
            raise ReplyError(f"{self.name}: implausible reading in the reply to {command.split(' ', 1)[0]!r} (corrupted block?)")
        return values

    def _bulk(self, command: str, idempotent: bool = False, expect: int | None = None) -> np.ndarray:
        """A bulk query; with ``expect`` the number of values is checked (inside the retries)."""

        def once() -> np.ndarray:
            values = self._bulk_once(command)
            if expect is not None and values.size != expect:
                raise ReplyError(f"{self.name}: {command.split(' ', 1)[0]!r} returned {values.size} values, expected {expect}")
            return values

        return self.retrying(once, repr(command.split(" ", 1)[0])) if idempotent else once()

    def _refusals(self) -> str:
        """After a failed pulse exchange: errors of the queue that mean the board refused the
        command as such (best effort; other errors are logged and dropped)."""
        try:
            errors = self.read_errors()
        except InstrumentError:
            return ""
        refused = [f"{c}: {m}" for c, m in errors if c in REFUSED and "injected" not in m]
        return "; ".join(refused)

    #: the pulse counter as the driver reports it: ``boot * BOOT_STRIDE + pulses since power-on``
    BOOT_STRIDE = 1 << 40

    def pulse_counter(self, expect: int | None = None) -> int:
        """The board's pulse count, read once then counted by the driver (read again after any
        link recovery), tagged with the board's boot count: ``boot * BOOT_STRIDE + pulses
        delivered since power-on`` (boot 0 on a board without ``:SYST:BOOT?``). A board that
        restarted is therefore never mistaken for one whose counter did not move.

        A reply is a bare number, so a corrupted one can look valid (a dropped digit makes 2434
        read 234). A read that is not ``expect`` (what the driver's own count predicts, when it
        has one) is confirmed: it may not fall below a count read earlier on the same boot, and a
        second read must agree; otherwise the read is retried."""
        if self._counter is None:
            boot = self._boot_count()

            def parse(reply: str) -> int:
                try:
                    n = int(reply.strip())
                except ValueError:
                    raise ReplyError(f"{self.name}: pulse counter reply {reply!r}") from None
                if not 0 <= n < self.BOOT_STRIDE:
                    raise ReplyError(f"{self.name}: pulse counter reply {reply!r}")
                return n

            def read() -> int:
                n = parse(self.query(":SYST:PULS?"))
                if boot * self.BOOT_STRIDE + n == expect:
                    return n
                floor = self._trusted_counter
                if floor is not None and floor // self.BOOT_STRIDE == boot and n < floor % self.BOOT_STRIDE:
                    raise ReplyError(f"{self.name}: pulse counter reply {n} is below the {floor % self.BOOT_STRIDE} read before on this boot (a corrupted reply)")
                again = parse(self.query(":SYST:PULS?"))
                if again != n:
                    raise ReplyError(f"{self.name}: pulse counter replies {n} and {again} disagree (a corrupted reply)")
                return n

            count = self.retrying(read, "':SYST:PULS?'")
            if self._boot_count() != boot:  # it restarted while we asked: the count may be from before
                raise ReplyError(f"{self.name}: the board restarted while its pulse counter was read")
            self._counter = boot * self.BOOT_STRIDE + count  # (after the reads: a recovery forgets the counter)
            self._trusted_counter = self._counter
        return self._counter

    def _boot_count(self) -> int:
        """The board's power-on count (``:SYST:BOOT?``), 0 when the board cannot tell."""
        if getattr(self, "_no_boot", False):
            return 0

        def read() -> int:
            reply = self.query(":SYST:BOOT?")
            try:
                return int(reply.strip())
            except ValueError:
                raise ReplyError(f"{self.name}: boot count reply {reply!r}") from None

        try:
            return self.retrying(read, "':SYST:BOOT?'")
        except ReplyError:
            raise
        except InstrumentError:
            if self.read_errors():  # an older board: the query is unknown to it
                self._no_boot = True
                return 0
            raise

    def delivery(self, before: int | None, n: int) -> int:
        """Whether ``n`` pulses sent when :meth:`pulse_counter` read ``before`` reached the chip:
        1 yes, 0 no, -1 unknown (counter unknown or unreadable, or the board restarted)."""
        self._counter = None
        try:
            now = self.pulse_counter(expect=None if before is None else before + n)
        except InstrumentError:
            return UNKNOWN
        if before is None or before // self.BOOT_STRIDE != now // self.BOOT_STRIDE:  # unknown, or the board restarted
            return UNKNOWN
        if now == before + n:
            return DELIVERED
        if now == before:
            return NOT_DELIVERED
        return UNKNOWN

    def _block_command(self, header: str, records: np.ndarray) -> str:
        return header + encode_block(records.tobytes()).decode("latin-1")

    def array_kind(self) -> str:
        """What the selected array is (``:ARR:TYPE?``): ``"reram"``, ``"pcm"`` or ``"passive"``."""

        def once() -> str:
            self._ready_array()
            return self.query(":ARR:TYPE?").strip().lower()

        return self.retrying(once, "':ARR:TYPE?'")

    def set_bias(self, scheme: str) -> None:
        """Biasing of the unselected lines of the selected passive array (``:ARR:BIAS``)."""
        if scheme not in self.bias_schemes:
            raise ValueError(f"bias scheme must be one of {list(self.bias_schemes)}, got {scheme!r}")
        self._ready_array()
        self.write(f":ARR:BIAS {scheme}")
        self.check_errors()

    # --- reads -------------------------------------------------------------------------
    def measure_cell(self, row: int, col: int) -> float:
        """Current of one cell at the read voltage, A."""
        r, c = self._cells([row], [col])

        def once() -> float:
            self._ready_link()
            return self._float(f":MEAS:CELL? {r[0]},{c[0]}")

        return self.retrying(once, "':MEAS:CELL?'")

    def measure_row(self, row: int) -> np.ndarray:
        """Currents of one row, A (one conversion on the board)."""
        n_rows, n_cols = self.shape
        if not (0 <= int(row) < n_rows):
            raise ValueError(f"row {row} outside 0..{n_rows - 1}")
        return self._bulk(f":MEAS:ROW? {int(row)}", idempotent=True, expect=n_cols)

    def measure_all(self) -> np.ndarray:
        """Currents of the whole array, shape (rows, cols), A: one transaction."""
        n_rows, n_cols = self.shape
        return self._bulk(":MEAS:ALL?", idempotent=True, expect=n_rows * n_cols).reshape(n_rows, n_cols)

    def measure_cells(self, rows, cols) -> np.ndarray:
        """Currents of a list of cells, A, in blocks of up to :data:`MAX_BATCH` cells."""
        rows, cols = self._cells(rows, cols)
        out = np.empty(rows.size)
        for start in range(0, rows.size, MAX_BATCH):
            sl = slice(start, start + MAX_BATCH)
            rec = np.empty(rows[sl].size, dtype=CELL_RECORD)
            rec["row"], rec["col"] = rows[sl], cols[sl]
            out[sl] = self._bulk(self._block_command(":MEAS:LIST? ", rec), idempotent=True, expect=rec.size)
        return out

    def mvm(self, row_voltages) -> np.ndarray:
        """Column currents for voltages applied to the rows (analog matrix-vector product), A."""
        n_rows, _ = self.shape
        v = np.asarray(row_voltages, dtype=float)
        if v.shape != (n_rows,):
            raise ValueError(f"mvm needs {n_rows} row voltages, got shape {v.shape}")
        self.limits.check_voltage(v, "MVM row voltage")
        return self._bulk(":MEAS:MVM? " + encode_block(v.astype(VALUE).tobytes()).decode("latin-1"), idempotent=True)

    # --- pulses --------------------------------------------------------------------------
    def pulse(self, kind: str, rows, cols, amplitude, gate, width, read: bool = False) -> np.ndarray | None:
        """SET or RESET pulses on a list of cells; with ``read`` the board reads each pulsed
        cell right after its pulse and the currents are returned (A).

        ``amplitude`` (V), ``gate`` (V) and ``width`` (s) are scalars or one value per cell.
        Every value is checked against the bench limits (voltage, gate, width, and the energy
        ``amplitude * max_current * width`` per pulse) before anything is sent.

        Pulses are never repeated. When an exchange fails (no reply, a garbled reply, a lost
        connection) the link is recovered and :class:`PulseDeliveryError` is raised with what
        the board's pulse counter proves about each pulse's delivery.
        """
        kind, rows, cols, amplitude, gate, width = self._pulse_arrays(kind, rows, cols, amplitude, gate, width)
        out = np.empty(rows.size) if read else None
        for start in range(0, rows.size, MAX_BATCH):
            sl = slice(start, start + MAX_BATCH)
            rec = np.empty(rows[sl].size, dtype=PULSE_RECORD)
            rec["row"], rec["col"] = rows[sl], cols[sl]
            rec["amplitude"], rec["gate"], rec["width"] = amplitude[sl], gate[sl], width[sl]
            # a batch without a reply is confirmed by the counter: know it before sending
            before = self._counter if read else self.pulse_counter()
            try:
                if read:
                    self._ready_link()
                    out[sl] = self._bulk(self._block_command(f":PULS:READ:LIST? {kind},", rec), expect=rec.size)
                else:
                    if self._selecting:  # the array selected again first, if the link recovered
                        self._ready_link()
                    elif self._link_dirty:
                        self.recover_link()
                    self.write(self._block_command(f":PULS:LIST {kind},", rec))
                    # not retried: a link fault here (a board that rebooted on the pulse command
                    # or after it) must be settled by the pulse counter, never hidden by a retry
                    errors = self.read_errors(retry=False)
                    if errors:  # the board refuses a whole command: nothing of it was pulsed
                        text = "; ".join(f"{c}: {m}" for c, m in errors)
                        raise InstrumentError(f"{self.name} reported: {text}")
                    # a command without a reply can be lost on the way with no error at all: the
                    # counter proves it arrived (one query per batch)
                    self._counter = None
                    if self.pulse_counter(expect=before + rec.size) != before + rec.size:
                        raise ReplyError(f"{self.name}: the {kind} batch is not in the board's pulse counter")
                    continue
            except LINK_ERRORS as exc:
                status = np.zeros(rows.size, dtype=np.int8)
                status[:start] = DELIVERED
                status[sl] = self.delivery(before, rec.size)
                refused = self._refusals()
                if refused and status[start] != DELIVERED:  # the board said why: not a link fault
                    raise InstrumentError(f"{self.name} refused the {kind} batch: {refused}") from exc
                what = {DELIVERED: "delivered", NOT_DELIVERED: "not delivered", UNKNOWN: "delivery unknown"}[int(status[start])]
                raise PulseDeliveryError(
                    f"{self.name}: {kind} batch of {rec.size} pulses: {exc} ({what}; read the cells back)", status, kind
                ) from exc
            if self._counter is not None:
                self._counter += rec.size
        return out

    # --- SMU routing ---------------------------------------------------------------------
    def route_smu(self, row: int, col: int, gate: float | None = None) -> None:
        """Connect the SMU connector to one cell (its bit line; source line grounded)."""
        r, c = self._cells([row], [col])
        cmd = f":ROUT:SMU {r[0]},{c[0]}"
        if gate is not None:
            cmd = f":ROUT:GATE {self._check_gate(gate):.6g};" + cmd
        self._ready_array()
        self.write(cmd)

    def open_route(self) -> None:
        """Disconnect the SMU connector from the array."""
        self.write(":ROUT:OPEN")

    @property
    def error_count(self) -> int:
        return int(self.query_float(":SYST:ERR:COUN?", idempotent=True))
