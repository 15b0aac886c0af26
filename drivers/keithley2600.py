"""Keithley Series 2600B System SourceMeter driver (TSP: every command is a Lua statement).

One driver object drives one SMU channel (``channel="a"`` → ``smua``, ``"b"`` → ``smub``); open
the same address twice to use both channels of a 2602B/2612B/2636B. Queries are ``print(...)``
statements. Whole loops run on the instrument: :meth:`Keithley2600.measure_sweep` sends one
script that sources every level, measures into a reading buffer and returns the buffer as one
binary block (``format.REAL32``, little-endian); :meth:`Keithley2600.pulse_voltage` programs
the SMU trigger model and two trigger timers; :meth:`Keithley2600.run_script` runs any Lua.

The scripts use only what the instrument's Lua 5.0 offers (no ``#`` operator, ``table.getn``
style), so they run unchanged on hardware and on the simulated bench.
"""

from __future__ import annotations

import re

import contextlib
import math
from typing import Any, Iterator, Sequence

import numpy as np

from .guard import TSP_RESET, tsp_guard
from .base import (
    InstrumentError,
    InstrumentTimeout,
    ReplyError,
    SafeLimits,
    Setting,
    Transport,
    VisaTransport,
    deferred_interrupt,
    in_range,
    parse_bool,
)
from .smu import SourceMeter

#: 2600B instrument ranges (2611B/2612B/2614B/2634B/2635B/2636B; 101 % of the top range)
MAX_VOLTAGE = 202.0
MAX_CURRENT = 1.515
MIN_COMPLIANCE = 100e-12
NPLC_MIN = 0.001
NPLC_MAX = 25.0
#: shortest pulse this driver programs (the trigger timers resolve 1 µs; the SMU needs settling)
PULSE_WIDTH_MIN = 100e-6
PULSE_WIDTH_MAX = 100.0
#: readings at or beyond this magnitude are the instrument's overflow marker (9.91e37)
OVERFLOW = 9.9e37
#: per-point time beyond the integration (conversion, bookkeeping), for timeouts only, s
POINT_OVERHEAD = 1e-3
#: the worst-case line frequency for timeout estimates, Hz
SLOWEST_LINE = 50.0
#: values per line of a level table in a generated script
VALUES_PER_LINE = 50
#: printed by a generated script when its body failed (followed by a tab and the Lua message)
SCRIPT_ERROR = "labrram-script-error"
#: printed after :meth:`Keithley2600.run_script` output so the driver knows where it ends
END_OF_OUTPUT = "labrram-end-of-output"


def _lua_number(x: float) -> str:
    """A float as Lua source (``%.9g`` keeps float64 levels to a nanovolt-ish precision)."""
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {x!r}")
    return f"{x:.9g}"


def parse_tsp_bool(text: str) -> bool:
    """``true``/``false`` or a printed number (``1.00000e+00``)."""
    t = text.strip().lower()
    if t in ("true", "false"):
        return t == "true"
    try:
        return float(t) != 0.0
    except ValueError:
        return parse_bool(t)


class Keithley2600(SourceMeter):
    """One channel of a Keithley 2600B SourceMeter as a voltage source measuring current.

    Settings are properties validated before any byte is sent::

        smu.nplc = 0.1                 # -> "smua.measure.nplc = 0.1"
        smu.compliance_current = 1e-4  # checked against the bench limit first

    Parameters
    ----------
    transport : Transport
        The open connection (see :func:`labrram.drivers.base.open_transport`).
    limits : SafeLimits, optional
        The bench's safe limits, checked before any byte is sent.
    name : str, optional
        Name used in messages (default ``"2600B smua"``).
    channel : str
        SMU channel, ``"a"`` or ``"b"``.
    """

    guard = tsp_guard  # raw source-level commands are refused beyond the limits too
    output_on_pattern = re.compile(r"(?P<ch>smu[ab])\s*\.\s*source\s*\.\s*output\s*=(?!=)\s*(?:smu[ab]\s*\.\s*OUTPUT_ON|1)(?![\w.])", re.I)
    compliance_pattern = re.compile(r"(?P<ch>smu[ab])\s*\.\s*source\s*\.\s*limiti\s*=(?!=)\s*[-+.\d]", re.I)
    @property
    def compliance_key(self) -> str:  # type: ignore[override]
        return self.smu

    reset_pattern = TSP_RESET

    error_query = 'print(string.format("%d\\t%s", errorqueue.next()))'

    source_voltage = Setting(
        "print({smu}.source.levelv)",
        "{smu}.source.levelv = {:.9g}",
        validate=lambda inst, v: inst.check_level(v),
        doc="DC source level, V.",
    )
    auto_zero = Setting(
        "print({smu}.measure.autozero)",
        "{smu}.measure.autozero = {}",
        parse=lambda text: float(text) != 0.0,
        validate=lambda inst, v: f"{inst.smu}.AUTOZERO_AUTO" if v else f"{inst.smu}.AUTOZERO_OFF",
        doc="Automatic reference and zero measurements (slower, drift-free).",
    )
    compliance_tripped = Setting(
        "print({smu}.source.compliance)", None, parse=parse_tsp_bool, doc="Whether the source is in compliance now."
    )
    line_frequency = Setting("print(localnode.linefreq)", None, parse=float, doc="Power-line frequency, Hz.")

    def __init__(
        self,
        transport: Transport,
        limits: SafeLimits | None = None,
        name: str | None = None,
        channel: str = "a",
        write_termination: bytes = b"\n",
        **kwargs: Any,
    ) -> None:
        if not isinstance(channel, str) or channel.lower() not in ("a", "b"):
            raise ValueError(f"a 2600B has SMU channels 'a' and 'b', not {channel!r}")
        self.channel = channel.lower()
        self.smu = f"smu{self.channel}"
        super().__init__(transport, limits=limits, name=name or f"2600B {self.smu}", write_termination=write_termination, **kwargs)
        self._compliance: float | None = None  # last compliance this driver set, A
        self._nplc: float | None = None  # last NPLC this driver set
        self._auto_zero: bool | None = None

    def format_command(self, command: str) -> str:
        return command.replace("{smu}", self.smu)

    # --- errors: errorqueue.next() prints "code<TAB>message" ------------------------------
    def parse_error(self, reply: str) -> tuple[int, str]:
        code, _, message = reply.partition("\t")
        try:
            return int(float(code)), message.strip()
        except ValueError:
            raise ReplyError(f"{self.name}: error query returned {reply!r}") from None

    # --- checks (no byte is sent before these pass) ---------------------------------------
    def check_level(self, volts: float) -> float:
        v = super().check_level(volts)
        if abs(v) > MAX_VOLTAGE:
            raise ValueError(f"{self.name}: {v:g} V beyond the 2600B's +-{MAX_VOLTAGE:g} V")
        return v

    def check_compliance(self, amps: float) -> float:
        a = super().check_compliance(amps)
        if not (MIN_COMPLIANCE <= a <= MAX_CURRENT):
            raise ValueError(f"{self.name}: compliance {a:g} A outside the 2600B's [{MIN_COMPLIANCE:g}, {MAX_CURRENT:g}] A")
        return a

    def _check_nplc(self, nplc: float) -> float:
        return in_range(NPLC_MIN, NPLC_MAX, "NPLC")(self, nplc)

    # --- settings the driver remembers -------------------------------------------------------
    compliance_current = Setting(
        "print({smu}.source.limiti)",
        "{smu}.source.limiti = {:.6g}",
        validate=lambda inst, a: inst.check_compliance(a),
        on_set=lambda inst, a: setattr(inst, "_compliance", a),
        doc="Current compliance (``smuX.source.limiti``), A.",
    )
    nplc = Setting(
        "print({smu}.measure.nplc)",
        "{smu}.measure.nplc = {:g}",
        validate=lambda inst, v: inst._check_nplc(v),
        on_set=lambda inst, v: setattr(inst, "_nplc", v),
        doc="Integration time in power-line cycles (``smuX.measure.nplc``).",
    )

    # --- SourceMeter interface ----------------------------------------------------------------
    def configure_voltage_source(self, compliance: float, nplc: float = 1.0, auto_zero: bool = False) -> None:
        compliance = self.check_compliance(compliance)
        nplc = self._check_nplc(nplc)
        s = self.smu
        self.write(
            f"{s}.source.func = {s}.OUTPUT_DCVOLTS {s}.source.autorangev = {s}.AUTORANGE_ON "
            f"{s}.source.limiti = {compliance:.6g} {s}.measure.autorangei = {s}.AUTORANGE_ON "
            f"{s}.measure.nplc = {nplc:g} {s}.measure.autozero = {s}.AUTOZERO_{'AUTO' if auto_zero else 'OFF'} "
            f"{s}.measure.count = 1"
        )
        self.check_errors()
        self._compliance = compliance
        self._nplc = nplc
        self._auto_zero = bool(auto_zero)

    def set_voltage(self, volts: float) -> None:
        self.write(f"{self.smu}.source.levelv = {self.check_level(volts):.9g}")

    def get_voltage(self) -> float:
        return self.query_float(f"print({self.smu}.source.levelv)")

    def enable_output(self) -> None:
        self.write(f"{self.smu}.source.output = {self.smu}.OUTPUT_ON")

    def disable_output(self) -> None:
        self.write(f"{self.smu}.source.output = {self.smu}.OUTPUT_OFF")

    @property
    def output_enabled(self) -> bool:
        def get() -> bool:
            reply = self.query(f"print({self.smu}.source.output)")
            try:
                return float(reply) != 0.0
            except ValueError:
                raise ReplyError(f"{self.name}: output state {reply!r} is not a number") from None

        return self.retrying(get, "reading the output state")

    @staticmethod
    def _overflow_to_inf(values: np.ndarray) -> np.ndarray:
        return np.where(np.abs(values) >= OVERFLOW, np.copysign(np.inf, values), values)

    def measure_current(self) -> float:
        """One current reading at the present level, A (overflow → ±inf)."""
        value = self.query_float(f"print({self.smu}.measure.i())")
        return float(self._overflow_to_inf(np.array([value]))[0])

    # --- scripts ----------------------------------------------------------------------------
    @staticmethod
    def _script_lines(lua_source: str) -> list[str]:
        lines = lua_source.replace("\r\n", "\n").split("\n")
        for line in lines:
            if line.strip() == "endscript":
                raise ValueError("a script line may not be 'endscript' (it would end the script early)")
            if line.strip().split()[:1] in (["loadscript"], ["loadandrunscript"]):
                raise ValueError("scripts cannot be nested (a line starts with loadscript/loadandrunscript)")
        return lines

    def _script_bytes(self, lua_source: str) -> bytes:
        body = "\n".join(self._script_lines(lua_source))
        try:
            return f"loadandrunscript\n{body}\nendscript\n".encode("latin-1")
        except UnicodeEncodeError as exc:
            raise ValueError(f"script text must be ASCII / latin-1: {exc}") from None

    @contextlib.contextmanager
    def _timeout_at_least(self, seconds: float) -> Iterator[None]:
        """Raise the transport timeout to at least ``seconds`` for the block."""
        saved = self.transport.timeout
        self.transport.timeout = max(saved, seconds)
        try:
            yield
        finally:
            self.transport.timeout = saved

    def run_script(self, lua_source: str, timeout: float | None = None) -> str:
        """Run ``lua_source`` as an anonymous script (``loadandrunscript`` … ``endscript``).

        Returns everything the script printed, one line per ``print``, joined with ``\\n``
        (binary output such as ``printbuffer`` in REAL32 comes back as latin-1 text). Errors the
        script raised are read from the error queue and raised as :class:`InstrumentError`.
        The driver cannot check code it did not write against the bench's safe limits: levels
        set inside ``lua_source`` are the caller's responsibility.

        Parameters
        ----------
        lua_source : str
            Lua (TSP) code, one or more lines (ASCII / latin-1).
        timeout : float, optional
            Seconds to wait at least for the script to finish (default: the transport timeout).
        """
        data = self._script_bytes(lua_source) + f'print("{END_OF_OUTPUT}")\n'.encode()
        lines: list[str] = []
        with self._timeout_at_least(timeout or 0.0), deferred_interrupt():
            self.write_bytes(data)
            while True:
                try:
                    reply = self.transport.read_message()
                except InstrumentTimeout as exc:
                    raise InstrumentTimeout(f"{exc} (the script did not finish; output so far: {lines[-3:]!r})") from None
                self._remember("<", reply)
                text = reply.decode("latin-1")
                if text.endswith("\n"):
                    text = text[:-1]
                if text == END_OF_OUTPUT:
                    break
                lines.append(text)
        self.check_errors()
        return "\n".join(lines)

    def _run_checked(self, script: str, seconds: float) -> bytes:
        """Send a generated script whose body is protected by pcall; return its first reply.

        A failing body prints ``SCRIPT_ERROR<TAB>message``, which becomes an InstrumentError.
        """
        with self._timeout_at_least(seconds):
            reply = self.query_bytes(self._script_bytes(script))
        if reply.startswith(SCRIPT_ERROR.encode()):
            message = reply.decode("latin-1").partition("\t")[2].strip()
            raise InstrumentError(f"{self.name}: the instrument refused the script: {message}")
        return reply

    def _level_table(self, values: np.ndarray) -> str:
        rows = [
            ", ".join(_lua_number(float(x)) for x in values[i : i + VALUES_PER_LINE]) + ","
            for i in range(0, values.size, VALUES_PER_LINE)
        ]
        return "local levels = {\n" + "\n".join(rows) + "\n}"

    def _read_real32(self, first: bytes, n: int) -> np.ndarray:
        """``#0`` + ``4n`` little-endian float32 bytes + ``\\n``; a ``\\n`` inside the data may
        have ended a message early on line-based transports, so keep reading until complete."""
        expected = 2 + 4 * n + 1
        data = first
        # GPIB and USBTMC reads end at the message END, so a short message is complete; byte
        # streams (serial ports, raw LAN sockets, VISA ASRL and SOCKET resources) end a read at
        # every 0x0A byte, so a short read may be a split message
        by_end = isinstance(self.transport, VisaTransport) and not self.transport.stream
        while len(data) < expected and data.startswith(b"#0") and not by_end:
            try:
                data += self.transport.read_message()
            except InstrumentTimeout:
                break
        if not data.startswith(b"#0") or len(data) != expected or not data.endswith(b"\n"):
            raise ReplyError(f"{self.name}: expected '#0' + {4 * n} bytes + newline, got {len(data)} bytes starting {data[:12]!r}")
        return np.frombuffer(data[2:-1], dtype="<f4").astype(float)

    def _point_time(self) -> float:
        """Worst-case time of one reading, s (timeouts only)."""
        nplc = self._nplc if self._nplc is not None else NPLC_MAX
        zero = 1.0 if self._auto_zero is False else 2.0
        return nplc / SLOWEST_LINE * zero + POINT_OVERHEAD

    def measure_sweep(self, voltages: Sequence[float]) -> np.ndarray:
        """Source each voltage and measure the current, as one on-instrument TSP loop.

        The loop fills a dedicated buffer (``smuX.makebuffer``) and prints it with
        ``printbuffer`` in ``format.REAL32``: one write, one binary read. Afterwards the level,
        ``measure.count`` and the data format are as before. Returns currents, A (overflow →
        ±inf).
        """
        v = self.check_sweep(voltages)
        self.require_compliance()
        if np.max(np.abs(v)) > MAX_VOLTAGE:
            raise ValueError(f"{self.name}: sweep voltage beyond the 2600B's +-{MAX_VOLTAGE:g} V")
        s, n = self.smu, v.size
        script = "\n".join(
            [
                self._level_table(v),
                f"local smu = {s}",
                "local v0, count0 = smu.source.levelv, smu.measure.count",
                "local data0, order0 = format.data, format.byteorder",
                "local ok, err = pcall(function()",
                f"  local buf = smu.makebuffer({n})",
                "  buf.appendmode = 1",
                "  smu.measure.count = 1",
                f"  for i = 1, {n} do",
                "    smu.source.levelv = levels[i]",
                "    smu.measure.i(buf)",
                "  end",
                "  smu.source.levelv = v0",
                "  format.data = format.REAL32",
                "  format.byteorder = format.LITTLEENDIAN",
                f"  printbuffer(1, {n}, buf.readings)",
                "end)",
                "smu.source.levelv = v0",
                "smu.measure.count = count0",
                "format.data = data0",
                "format.byteorder = order0",
                f'if not ok then print("{SCRIPT_ERROR}\\t" .. tostring(err)) end',
            ]
        )
        first = self._run_checked(script, 2.0 * n * self._point_time() + 1.0)
        return self._overflow_to_inf(self._read_real32(first, n))

    def pulse_voltage(self, amplitude: float, width: float, base: float = 0.0) -> float:
        """One voltage pulse from ``base`` to ``amplitude`` for ``width`` s on the trigger model.

        The output is set to ``base`` and turned on; trigger timer 1 starts the measurement so
        that it integrates over the last part of the pulse (the configured NPLC, or half the
        pulse when that is longer), trigger timer 2 ends the pulse after ``width``. Measure
        settings are restored afterwards; the trigger-model settings the pulse used and the
        stimuli of timers 1–2 return to their reset defaults; the output stays on at ``base``. Returns the current at the end of the pulse, A. The bench's energy limit is
        checked with the compliance this driver set, or with the bench's current limit when the
        compliance is unknown.
        """
        amplitude = self.check_level(amplitude)
        base = self.check_level(base)
        try:
            width = float(width)
        except (TypeError, ValueError):
            raise ValueError(f"pulse width must be a number of seconds, got {width!r}") from None
        self.limits.check_width(width, f"{self.name} pulse width")
        if not (PULSE_WIDTH_MIN <= width <= PULSE_WIDTH_MAX):
            raise ValueError(f"{self.name}: pulse width {width:g} s outside the 2600B's [{PULSE_WIDTH_MIN:g}, {PULSE_WIDTH_MAX:g}] s")
        current_limit = self._compliance if self._compliance is not None else self.limits.max_current
        self.limits.check_energy(amplitude, current_limit, width, f"{self.name} pulse")
        self.require_compliance()
        s, w = self.smu, _lua_number(width)
        script = "\n".join(
            [
                f"local smu = {s}",
                "local nplc0, az0, delay0, count0 = smu.measure.nplc, smu.measure.autozero, smu.measure.delay, smu.measure.count",
                "local ok, err = pcall(function()",
                f"  smu.source.levelv = {_lua_number(base)}",
                "  smu.source.output = smu.OUTPUT_ON",
                f"  local window = math.min(nplc0 / localnode.linefreq, {w} / 2)",
                "  smu.measure.nplc = math.max(0.001, window * localnode.linefreq)",
                "  window = smu.measure.nplc / localnode.linefreq",
                "  smu.measure.autozero = smu.AUTOZERO_OFF",
                "  smu.measure.delay = 0",
                "  smu.measure.count = 1",
                "  local buf = smu.makebuffer(1)",
                f"  smu.trigger.source.listv({{{_lua_number(amplitude)}}})",
                "  smu.trigger.source.limiti = smu.LIMIT_AUTO",
                "  smu.trigger.source.action = smu.ENABLE",
                "  smu.trigger.measure.i(buf)",
                "  smu.trigger.measure.action = smu.ENABLE",
                "  smu.trigger.endpulse.action = smu.SOURCE_IDLE",
                "  smu.trigger.endsweep.action = smu.SOURCE_IDLE",
                "  smu.trigger.arm.count = 1",
                "  smu.trigger.arm.stimulus = 0",
                "  smu.trigger.count = 1",
                "  smu.trigger.source.stimulus = 0",
                "  trigger.timer[1].count = 1",
                f"  trigger.timer[1].delay = math.max(1e-6, {w} - window)",
                "  trigger.timer[1].passthrough = false",
                "  trigger.timer[1].stimulus = smu.trigger.SOURCE_COMPLETE_EVENT_ID",
                "  trigger.timer[2].count = 1",
                f"  trigger.timer[2].delay = {w}",
                "  trigger.timer[2].passthrough = false",
                "  trigger.timer[2].stimulus = smu.trigger.SOURCE_COMPLETE_EVENT_ID",
                "  smu.trigger.measure.stimulus = trigger.timer[1].EVENT_ID",
                "  smu.trigger.endpulse.stimulus = trigger.timer[2].EVENT_ID",
                "  smu.trigger.initiate()",
                "  waitcomplete()",
                "  print(buf.readings[1])",
                "end)",
                "smu.trigger.source.action = smu.DISABLE",
                "smu.trigger.measure.action = smu.DISABLE",
                "smu.trigger.measure.stimulus = 0",
                "smu.trigger.endpulse.stimulus = 0",
                "smu.trigger.endpulse.action = smu.SOURCE_HOLD",
                "trigger.timer[1].stimulus = 0",
                "trigger.timer[2].stimulus = 0",
                "smu.measure.nplc, smu.measure.autozero, smu.measure.delay, smu.measure.count = nplc0, az0, delay0, count0",
                f'if not ok then print("{SCRIPT_ERROR}\\t" .. tostring(err)) end',
            ]
        )
        reply = self._run_checked(script, 2.0 * (width + self._point_time()) + 1.0)
        text = reply.decode("latin-1").strip()
        try:
            value = float(text)
        except ValueError:
            raise ReplyError(f"{self.name}: pulse reading {text[:60]!r} is not a number") from None
        return float(self._overflow_to_inf(np.array([value]))[0])


__all__ = ["Keithley2600", "parse_tsp_bool"]
