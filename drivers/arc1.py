"""Driver of ArC Instruments' ArC ONE: the crossbar-board role on its serial protocol.

The ArC ONE drives passive (0T1R) arrays of up to 32 x 32 devices, one device at a time, over a
USB serial port (921600 baud, even parity). Its firmware takes packets of newline-terminated
ASCII tokens (integers, and reals with six decimals as its host library ``libarc1`` writes
them) and answers with little-endian float32 resistances in ohms (the packets are listed in
docs/boards.md and :mod:`labrram.sim.arc1`). labrram's rows are the ArC ONE's word lines and its
columns the bit lines (0-based here, 1-based on the wire).

What the role maps to:

* reads: a whole-array read (``2, 1``), a masked read (``2, 2``: one device per exchange) —
  the current at the read voltage is ``V_read / R``;
* pulses: one pulse-then-read packet (``3``) per pulse: SET is a positive amplitude (word line
  above bit line), RESET a negative one. Every pulse is confirmed by the resistance it returns,
  so after a failed exchange the pulses before it are known delivered, the failing one unknown,
  the rest not sent (:class:`~.board_base.PulseDeliveryError`); the ArC ONE has no pulse
  counter to settle a batch in flight when the process died (its delivery stays unknown);
* sneak-path biasing (``Crossbar.bias``): the initialisation's sneak-path mode (V/3, V/2,
  floating), applied by re-initialising the board;
* no analog MVM, no SMU relay matrix, no word-line gates.

Every value is checked against the station's limits and the ArC ONE's own ranges before any
byte is sent, and raw packets written with :meth:`write` are parsed and refused beyond the limits
too: the driver follows the byte stream as the firmware frames it, so a packet is checked
whole even when it comes in pieces (:func:`check_packets`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from labrram.safety import LimitError, SafeLimits

from .base import LINK_ERRORS, ReplyError, open_transport
from labrram.arc1_protocol import MAX_LINES, READ_MODES, SNEAK_PATHS, Framer, packet

from .board_base import BIAS_SCHEMES, DELIVERED, NOT_DELIVERED, UNKNOWN, Board, PulseDeliveryError

#: the ArC ONE's serial settings (libarc1's defaults)
BAUD_RATE, PARITY, STOP_BITS = 921600, "E", 1
#: |voltage| it can apply (reads and pulses), V: libarc1 refuses read voltages beyond ±12 V
HW_VOLTAGE = 12.0
#: pulse widths its protocol carries: six decimals of a second (1 µs steps), up to 1 s
HW_MIN_WIDTH, HW_MAX_WIDTH, WIDTH_STEP = 1e-6, 1.0, 1e-6
#: a resistance reply beyond this (or not finite, or <= 0) is a corrupted reply, ohm
MAX_RESISTANCE = 1e13
#: wait after a microcontroller reset before the initialisation, s (libarc1 waits 2 s)
RESET_WAIT = 2.0
#: packets that apply a voltage: operation -> (index of the level, index of the width or None)
_LEVELS = {"3": (3, 4), "04": (1, 2), "01": (2, None), "0": (7, None)}


def check_packets(limits: SafeLimits, packets: list[list[str]]) -> None:
    """Refuse ArC ONE packets that would apply a voltage beyond ``limits``: a pulse (``3``:
    pulse-read, ``04``: pulse the selected device), a read voltage (``01``) or the
    initialisation's read voltage (``0``)."""
    for tokens in packets:
        where = _LEVELS.get(tokens[0])
        if where is None:
            continue
        v_at, w_at = where
        what = f"raw ArC ONE packet {tokens[0]!r}"
        try:
            v = float(tokens[v_at])
            w = float(tokens[w_at]) if w_at is not None else None
        except ValueError:
            raise LimitError(f"{what}: its level or width is not a number") from None
        if not math.isfinite(v) or (w is not None and not math.isfinite(w)):
            raise LimitError(f"{what}: levels must be finite")
        if w is None:
            limits.check_voltage(v, f"{what}: read voltage")
        else:
            limits.check_pulse(abs(v), 0.0, w, current_limit=limits.max_current)


class ArcOneBoard(Board):
    """An ArC ONE as the station's crossbar board (module docstring).

    Parameters
    ----------
    *args
        The open serial connection (``transport``: :meth:`open` sets the ArC ONE's baud rate
        and parity), as :class:`~labrram.drivers.board_base.Board` takes it.
    rows, cols : int
        Word lines and bit lines of the array in the socket (1..32): the ArC ONE cannot sense
        them, the station says them.
    read_cycles : int
        Conversions averaged per read (the initialisation's read cycles).
    read_mode : str
        Read-out: ``"TIA4P"`` (default; ``"TIA4P_NEG"`` is used for negative read voltages),
        ``"TIA"`` or ``"CLASSIC"``.
    array_kind : str
        What the socket holds; the ArC ONE drives two-terminal devices: ``"passive"``.
    **kwargs
        Passed to :class:`~labrram.drivers.board_base.Board` (``limits``, ``name``...).
    """

    read_voltage_range = HW_VOLTAGE
    read_gate_range = 0.0
    pulse_amplitude_range = HW_VOLTAGE
    pulse_gate_range = 0.0
    pulse_width_range = (HW_MIN_WIDTH, HW_MAX_WIDTH)
    has_gate = can_mvm = can_route_smu = False
    bias_schemes = BIAS_SCHEMES
    array_kinds = ("passive",)
    board_name = "the ArC ONE"

    def __init__(
        self,
        *args: Any,
        rows: int = MAX_LINES,
        cols: int = MAX_LINES,
        read_cycles: int = 50,
        read_mode: str = "TIA4P",
        array_kind: str = "passive",
        **kwargs: Any,
    ) -> None:
        for name, n in (("rows", rows), ("cols", cols)):
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LINES:
                raise ValueError(f"{name} must be an integer in 1..{MAX_LINES} (the ArC ONE's lines), got {n!r}")
        if isinstance(read_cycles, bool) or not isinstance(read_cycles, int) or not 1 <= read_cycles <= 1000:
            raise ValueError(f"read_cycles must be an integer in 1..1000, got {read_cycles!r}")
        if read_mode not in READ_MODES:
            raise ValueError(f"read_mode must be one of {list(READ_MODES)}, got {read_mode!r}")
        if array_kind not in self.array_kinds:
            raise ValueError(f"array_kind: the ArC ONE drives passive (two-terminal) arrays, not {array_kind!r}")
        super().__init__(*args, **kwargs)
        self._shape = (rows, cols)
        self.read_cycles = read_cycles
        self.read_mode = read_mode
        self._kind = array_kind
        self._configured = False
        self._vread = 0.2
        self._sneak = "THIRD"
        self.firmware: tuple[int, int] | None = None
        self._framer = Framer()  # the byte stream as the firmware frames it (for the guard)

    @classmethod
    def open(cls, address: str, visa_library: str = "", limits: SafeLimits | None = None, timeout: float = 5.0, **kwargs: Any) -> "ArcOneBoard":
        """Open the ArC ONE's serial port (921600 baud, even parity) and build the driver."""
        options = {} if address.upper().startswith("ASRL") else {"baudrate": BAUD_RATE, "parity": PARITY, "stopbits": STOP_BITS}
        transport = open_transport(address, visa_library, timeout, **options)
        return cls(transport, limits=limits, **kwargs)

    # --- identity and set-up ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Array size (rows = word lines, cols = bit lines), as the station declares it."""
        assert self._shape is not None
        return self._shape

    def array_kind(self) -> str:
        return self._kind

    @property
    def idn(self) -> str:
        """Identification: maker, model and the firmware version the board reports (``999``)."""
        self._ready()
        fw = "unknown" if self.firmware is None else f"{self.firmware[0]}.{self.firmware[1]}"
        return f"ArC Instruments,ArC ONE,{self.transport.address},firmware {fw}"

    def _guard(self, data: bytes) -> None:
        """Check the packets ``data`` completes before it is sent (even raw writes; lifted by
        :meth:`unguarded`); the framing state moves on only when the bytes may go."""
        framer = self._framer.copy()
        packets = framer.feed(data)
        if not self._unguarded:
            check_packets(self.limits, packets)
        self._framer = framer

    def read_errors(self, max_errors: int = 32, retry: bool = True) -> list[tuple[int, str]]:
        """The ArC ONE has no error queue: it drops what it cannot parse (the exchange times out)."""
        return []

    def _mode_code(self) -> int:
        mode = self.read_mode
        if mode == "TIA4P" and self._vread < 0:
            mode = "TIA4P_NEG"
        elif mode == "TIA4P_NEG" and self._vread > 0:
            mode = "TIA4P"
        return READ_MODES[mode]

    def configure(self, read_voltage: float | None = None, read_gate: float | None = None) -> None:
        """Reset the microcontroller and initialise the board (array size, read cycles, read
        mode, sneak-path mode, read voltage); called before the first exchange and after any
        link recovery (the firmware's state is then unknown)."""
        if read_voltage is not None:
            self._vread = self._check_read_voltage(read_voltage)
        if read_gate is not None and float(read_gate) != 0.0:
            self._check_gate(read_gate)  # refuses: no gates
        rows, cols = self.shape
        self.write_bytes(packet("00"))
        self.wait(RESET_WAIT)
        init = packet("0", self.read_cycles, rows, cols, self._mode_code(), 0, SNEAK_PATHS[self._sneak], float(self._vread))
        reply = self.query_bytes(init).strip()
        if reply != b"1":
            self._failed()
            raise ReplyError(f"{self.name}: the ArC ONE answered {reply[:20]!r} to its initialisation, not 1")
        self.write_bytes(packet("01", self._mode_code(), float(self._vread)))
        self.firmware = self._firmware()
        self._configured = True

    def _firmware(self) -> tuple[int, int] | None:
        """The firmware version (``999``; None when the firmware does not answer it)."""
        try:
            self.write_bytes(packet("999"))
            data = self.transport.read_bytes(4)
        except LINK_ERRORS:
            self._link_dirty = False  # an older firmware that does not answer: not a link fault
            return None
        major, minor = np.frombuffer(data, dtype="<u2")
        return int(major), int(minor)

    def after_recovery(self) -> None:
        self._framer.reset()
        self._configured = False  # mid-packet or reset: initialise again before the next exchange

    def _ready(self) -> None:
        if self._link_dirty:
            self.recover_link()
        if not self._configured:
            self.configure()

    @property
    def read_voltage(self) -> float:
        """Read voltage, V (set: checked, then sent with ``01``)."""
        return self._vread

    @read_voltage.setter
    def read_voltage(self, v: float) -> None:
        v = self._check_read_voltage(v)
        if v == 0:
            raise ValueError("read voltage must not be 0 V")
        self._vread = v
        if self._configured:
            self.write_bytes(packet("01", self._mode_code(), float(v)))

    def set_bias(self, scheme: str) -> None:
        """Sneak-path mode of the unselected lines: ``"THIRD"`` (V/3), ``"HALF"`` (V/2) or
        ``"FLOAT"``; the board is initialised again with it."""
        if scheme not in SNEAK_PATHS:
            raise ValueError(f"bias scheme must be one of {list(SNEAK_PATHS)}, got {scheme!r}")
        self._sneak = scheme
        self.retrying(self.configure, "initialisation with a new sneak-path mode")

    # --- reads -------------------------------------------------------------------------------
    def _resistances(self, data: bytes, n: int, what: str) -> np.ndarray:
        if len(data) != 4 * n:
            raise ReplyError(f"{self.name}: {what}: {len(data)} bytes, expected {4 * n}")
        r = np.frombuffer(data, dtype="<f4").astype(float)
        if not (np.all(np.isfinite(r)) and np.all(r > 0) and np.all(r <= MAX_RESISTANCE)):
            raise ReplyError(f"{self.name}: {what}: implausible resistance (corrupted reply?)")
        return r

    def _exchange(self, data: bytes, n: int, what: str) -> np.ndarray:
        """Send one packet and read ``n`` float32 resistances (one attempt)."""
        self.write_bytes(data)
        try:
            reply = self.transport.read_bytes(4 * n)
        except LINK_ERRORS:
            self._failed()
            raise
        self._remember("<", reply)
        return self._resistances(reply, n, what)

    def measure_all(self) -> np.ndarray:
        """Currents of the whole array, shape (rows, cols), A: one read-all exchange."""
        rows, cols = self.shape

        def once() -> np.ndarray:
            self._ready()
            return self._exchange(packet("2", 1, rows, cols), rows * cols, "read all").reshape(rows, cols)

        return self._vread / self.retrying(once, "read all")

    def measure_cells(self, rows, cols) -> np.ndarray:
        """Currents of a list of cells, A: one masked read, one exchange per device."""
        rows, cols = self._cells(rows, cols)
        if rows.size == 0:
            return np.empty(0)

        def once() -> np.ndarray:
            self._ready()
            self.write_bytes(packet("2", 2, MAX_LINES, MAX_LINES, rows.size))
            out = np.empty(rows.size)
            for k, (r, c) in enumerate(zip(rows, cols)):
                out[k] = self._exchange(packet(int(r) + 1, int(c) + 1), 1, "masked read")[0]
            return out

        return self._vread / self.retrying(once, "masked read")

    # --- pulses ----------------------------------------------------------------------------
    def check_pulse(self, amplitude, gate, width) -> None:
        """The shared checks, and widths the protocol can carry (1 µs steps)."""
        super().check_pulse(amplitude, gate, width)
        w = np.atleast_1d(np.asarray(width, dtype=float))
        steps = np.round(w / WIDTH_STEP)
        if w.size and np.max(np.abs(steps * WIDTH_STEP - w) / w) > 1e-3:
            bad = w[np.argmax(np.abs(steps * WIDTH_STEP - w) / w)]
            raise LimitError(f"pulse width {bad:g} s: the ArC ONE's protocol carries widths in steps of {WIDTH_STEP:g} s")

    def pulse(self, kind: str, rows, cols, amplitude, gate, width, read: bool = False) -> np.ndarray | None:
        """SET (positive) or RESET (negative) pulses, one pulse-then-read exchange each; with
        ``read`` the currents after each pulse, A. Never repeated: after a failed exchange
        :class:`~.board_base.PulseDeliveryError` says which pulses were delivered."""
        kind, rows, cols, amplitude, gate, width = self._pulse_arrays(kind, rows, cols, amplitude, gate, width)
        sign = 1.0 if kind == "SET" else -1.0
        out = np.empty(rows.size)
        if rows.size:
            self._ready()
        for k in range(rows.size):
            data = packet("3", int(rows[k]) + 1, int(cols[k]) + 1, float(sign * amplitude[k]), float(np.round(width[k] / WIDTH_STEP) * WIDTH_STEP))
            try:
                out[k] = self._exchange(data, 1, f"{kind} pulse")[0]
            except LINK_ERRORS as exc:
                status = np.full(rows.size, NOT_DELIVERED, dtype=np.int8)
                status[:k] = DELIVERED
                status[k] = UNKNOWN
                raise PulseDeliveryError(
                    f"{self.name}: {kind} pulse {k + 1} of {rows.size}: {exc} (delivery unknown; read the cells back)", status, kind
                ) from exc
        return self._vread / out if read else None

    def shutdown(self) -> None:
        """The ArC ONE idles every line at 0 V between operations: nothing to switch off."""


__all__ = ["ArcOneBoard", "check_packets"]
