"""Emulator of ArC Instruments' ArC ONE, byte-compatible with its serial protocol.

The ArC ONE drives a passive (0T1R) crossbar of up to 32 x 32 devices directly: a word line
(``w``, 1-based) and a bit line (``b``, 1-based) select a device, the board applies the read
voltage or a pulse to it and senses its resistance. Its host library (``libarc1``) talks to the
firmware over a USB serial port (921600 baud, even parity) in packets of newline-terminated
ASCII tokens; values come back as little-endian float32 resistances (ohms), or one ASCII line.

Packets (the first token is the operation; docs/boards.md lists them with their replies):

========  ==========================================================  ====================
token     arguments                                                   reply
========  ==========================================================  ====================
``00``    — (microcontroller reset: uninitialised until ``0``)          —
``0``     read cycles, words, bits, read mode, session, sneak path,    ``1\\n``
          read voltage (initialise)
``01``    read mode, read voltage (acknowledge / set the read voltage)  —
``02``    w, b (select, for ``04``)                                     —
``1``     w, b (read one)                                              float32 R
``2``     ``1``, words, bits (read all, word-major)                    words*bits float32
``2``     ``2``, 32, 32, n, then n packets ``w, b`` (masked read)       float32 R per device
``3``     w, b, amplitude, width (pulse then read one)                 float32 R
``04``    amplitude, width (pulse the selected device)                 —
``999``   — (firmware version)                                         two uint16
========  ==========================================================  ====================

A positive amplitude raises the word line above the bit line (SET on labrram's passive chips),
a negative one the reverse (RESET). What the firmware cannot parse (a malformed token, an
address outside the initialised array, an operation before ``0``) is ignored: no reply, as a
microcontroller that drops a packet — the client sees a timeout. The sneak-path mode of the
initialisation biases the unselected lines at V/3 or V/2 or leaves them floating, on the chip's
circuit model.

Timing on the virtual clock: every single-device read costs :data:`~labrram.timing.T_ARC1_READ`
(the ArC ONE reads one device at a time), a pulse its width plus the driver set-up time; the
link is a UART at 921600 baud.
"""

from __future__ import annotations

import logging

import numpy as np

from ..arc1_protocol import MAX_LINES, READ_MODES, RESISTANCE, SNEAK_PATHS, VERSION, Framer
from ..timing import T_ARC1_READ, pulses_time
from .instrument import EmulatedInstrument, Session

log = logging.getLogger("labrram.sim.arc1")

#: |read voltage| the firmware accepts, V (libarc1 refuses beyond it); pulses likewise
MAX_VOLTAGE = 12.0
#: sneak-path mode codes -> the chip's biasing schemes
SNEAK_BIAS = {SNEAK_PATHS["THIRD"]: "V/3", SNEAK_PATHS["HALF"]: "V/2", SNEAK_PATHS["FLOAT"]: "float"}
#: firmware version answered to ``999``
FIRMWARE = (2, 5)
#: the largest resistance the read-out reports, ohm (an open device)
MAX_RESISTANCE = 1e12


class ArcOne(EmulatedInstrument):
    """The ArC ONE of a simulated bench, carrying the bench's (passive) chip."""

    vendor = "ArC Instruments"
    model = "ArC ONE"

    def __init__(self, bench, name, link, serial="ARC1-0001") -> None:
        super().__init__(bench, name, link, serial)
        self.pulse_count = 0  # pulses applied since power-on (the firmware does not report it)
        self.ignored = 0  # packets the firmware dropped (malformed, out of range, uninitialised)
        self.reset()

    @property
    def chip(self):
        return self.bench.chip

    def reset(self) -> None:
        self.initialised = False
        self.words = self.bits = MAX_LINES
        self.read_cycles = 50
        self.read_mode = 2
        self.session_type = 0
        self.sneak_path = 0
        self.read_voltage = 0.5
        self.selected: tuple[int, int] | None = None
        self._masked: dict[int, int] = {}  # session id -> devices left in a masked read

    # --- framing ------------------------------------------------------------------------
    def frame(self, buf: bytearray, end: bool, session: Session | None = None) -> list[bytes]:
        """Whole packets (:class:`~labrram.arc1_protocol.Framer`), tokens joined by newlines;
        a masked read's device packets come as ``dev, w, b``."""
        framer = getattr(session, "arc1_framer", None)
        if framer is None:
            framer = Framer()
            if session is not None:
                session.arc1_framer = framer  # type: ignore[attr-defined]
        packets = framer.feed(bytes(buf))
        buf.clear()
        return [b"\n".join(t.encode("latin-1") for t in tokens) for tokens in packets]

    # --- processing -----------------------------------------------------------------------
    def _drop(self, why: str, packet: bytes) -> None:
        self.ignored += 1
        log.debug("%s: packet %r ignored: %s", self.name, packet[:40], why)

    def _device(self, w: str, b: str) -> tuple[int, int] | None:
        try:
            word, bit = int(w), int(b)
        except ValueError:
            return None
        if not (1 <= word <= min(self.words, self.chip.rows) and 1 <= bit <= min(self.bits, self.chip.cols)):
            return None
        return word - 1, bit - 1

    def _resistance(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """What the read-out reports for each device: read voltage over sensed current, ohm."""
        v = self.read_voltage
        self.clock.advance(T_ARC1_READ * rows.size, "operation")
        current = np.asarray(self.chip.read(rows, cols, v, 0.0), dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.abs(v / current)
        return np.where(np.isfinite(r), np.minimum(r, MAX_RESISTANCE), MAX_RESISTANCE)

    def _reply_floats(self, session: Session, values: np.ndarray) -> None:
        session.reply(np.asarray(values, dtype=RESISTANCE).tobytes())

    def _pulse(self, row: int, col: int, amplitude: float, width: float) -> None:
        self.clock.advance(pulses_time(np.array([width])), "operation")
        r, c = np.array([row]), np.array([col])
        if amplitude >= 0:
            self.chip.pulse_set(r, c, amplitude, 0.0, width)
        else:
            self.chip.pulse_reset(r, c, -amplitude, 0.0, width)
        self.pulse_count += 1

    def process(self, session: Session, message: bytes) -> None:
        tokens = [t.decode("latin-1") for t in message.split(b"\n")]
        op, args = tokens[0], tokens[1:]
        sid = id(session)
        if op == "dev":  # a device of a masked read
            if not self._masked.get(sid):
                self._drop("no masked read under way", message)
                return
            self._masked[sid] -= 1
            cell = self._device(*args)
            if cell is None:
                self._drop("device outside the array", message)
                return
            self._reply_floats(session, self._resistance(np.array([cell[0]]), np.array([cell[1]])))
            return
        self._masked[sid] = 0  # anything else ends a masked read
        if op == "00":
            self.reset()
            return
        if op == "999":
            session.reply(np.array(FIRMWARE, dtype=VERSION).tobytes())
            return
        if op == "0":
            self._initialise(session, args, message)
            return
        if not self.initialised:
            self._drop("not initialised (send 0 first)", message)
            return
        try:
            if op == "01":
                mode, v = int(args[0]), float(args[1])
                if mode not in READ_MODES.values() or not abs(v) <= MAX_VOLTAGE:
                    raise ValueError
                self.read_mode, self.read_voltage = mode, v
            elif op == "02":
                cell = self._device(*args)
                if cell is None:
                    raise ValueError
                self.selected = cell
            elif op == "1":
                cell = self._device(*args)
                if cell is None:
                    raise ValueError
                self._reply_floats(session, self._resistance(np.array([cell[0]]), np.array([cell[1]])))
            elif op == "2":
                self._read_many(session, args, message)
            elif op == "3":
                cell = self._device(args[0], args[1])
                amplitude, width = float(args[2]), float(args[3])
                if cell is None or not abs(amplitude) <= MAX_VOLTAGE or not width > 0:
                    raise ValueError
                self._pulse(cell[0], cell[1], amplitude, width)
                self._reply_floats(session, self._resistance(np.array([cell[0]]), np.array([cell[1]])))
            elif op == "04":
                amplitude, width = float(args[0]), float(args[1])
                if self.selected is None or not abs(amplitude) <= MAX_VOLTAGE or not width > 0:
                    raise ValueError
                self._pulse(*self.selected, amplitude, width)
            else:
                self._drop("unknown operation", message)
        except (ValueError, IndexError, TypeError):
            self._drop("malformed or out of range", message)

    def _initialise(self, session: Session, args: list[str], message: bytes) -> None:
        try:
            cycles, words, bits, mode, kind, sneak = (int(x) for x in args[:6])
            v = float(args[6])
        except (ValueError, IndexError):
            self._drop("malformed initialisation", message)
            return
        if not (1 <= words <= MAX_LINES and 1 <= bits <= MAX_LINES) or mode not in READ_MODES.values() or sneak not in SNEAK_BIAS or not abs(v) <= MAX_VOLTAGE:
            self._drop("initialisation out of range", message)
            return
        self.read_cycles, self.words, self.bits = cycles, words, bits
        self.read_mode, self.session_type, self.sneak_path, self.read_voltage = mode, kind, sneak, v
        chip = self.chip
        if hasattr(chip, "bias_scheme"):
            chip.bias_scheme = SNEAK_BIAS[sneak]
        self.initialised = True
        session.reply(b"1\n")

    def _read_many(self, session: Session, args: list[str], message: bytes) -> None:
        mode = int(args[0])
        if mode == 1:
            words, bits = int(args[1]), int(args[2])
            if not (1 <= words <= min(self.words, self.chip.rows) and 1 <= bits <= min(self.bits, self.chip.cols)):
                raise ValueError
            rows, cols = np.divmod(np.arange(words * bits), bits)
            self._reply_floats(session, self._resistance(rows, cols))
        elif mode == 2:
            n = int(args[3])
            if n < 0:
                raise ValueError
            self._masked[id(session)] = n
        else:
            raise ValueError

    def device_clear(self, session: Session) -> None:
        self._masked.pop(id(session), None)
        framer = getattr(session, "arc1_framer", None)
        if framer is not None:
            framer.reset()

    def shutdown(self) -> None:
        """The ArC ONE idles every line at 0 V between operations: nothing to switch off."""
