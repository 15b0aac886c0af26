"""Keysight B2902A Precision Source/Measure Unit emulator (SCPI, as the B2900 SCPI Command
Reference, part number B2910-90030, and the B2900 User's Guide define it).

Two channels, each a :class:`~labrram.sim.instrument.SourceChannel`; channel 1 is the one the
bench wires to the crossbar board. Numeric suffixes select the channel (``:SOUR2:VOLT 1``,
``:SENS2:CURR:PROT 1E-3``, ``:OUTP2 ON``); data and trigger commands take channel lists
(``:INIT (@1,2)``, ``:FETC:ARR:CURR? (@1)``; without a list they act on channel 1).

Implemented subsystems
----------------------
* SOURce: function (``VOLT``/``CURR``), shape (``DC``/``PULS``), immediate level (DC level or
  pulse base) and triggered level (pulse peak, or the level a trigger applies), fixed / list /
  sweep modes, list append and points, sweep start / stop / center / span / step / points,
  spacing, direction, single or double staircase, source ranges, pulse delay and width.
* SENSe: functions (``:SENS:FUNC "CURR","VOLT"``, ``:OFF``, ``:ALL``, ``:OFF:ALL``), current and
  voltage compliance (``PROT``) and ``PROT:TRIP?``, NPLC and aperture (coupled through the line
  frequency and clamped to MIN/MAX as the manual says), measurement ranges and auto range.
* FORMat: ``ASCii``, ``REAL,32``, ``REAL,64`` (``REAL`` alone is 64-bit; IEEE 488.2
  definite-length blocks followed by the newline terminator; setting queries stay ASCII), byte order
  ``NORMal`` (big-endian) / ``SWAPped``, ``:FORM:ELEM:SENS`` over VOLT, CURR, RES, TIME, STAT,
  SOUR in the instrument's fixed order.
* Trigger model: arm and trigger layers (``ACQuire``, ``TRANsient`` or ``ALL``) with count,
  source (``AINT``, ``TIMer``, ``BUS``), timer and delay; ``:INIT``, ``:ABOR``, ``*TRG``,
  ``:TRIG[:ALL] (@1)`` immediate triggers; ``:FETC``, ``:READ``, ``:MEAS`` (scalar and array,
  per element); output on/off, off mode, auto output on/off, output protection.
* The error queue (``:SYST:ERR?`` answers ``+0,"No error"`` when empty) and the ``*RST``
  defaults: output off, off mode ZERO, auto output on ON, DC shape, voltage source at 0 V,
  fixed mode, sweep of 1 point, current limit 100 uA, voltage limit 2 V, NPLC 0.1, auto
  ranges, pulse delay 0 and width 50 us, sense functions VOLT and CURR, ASCII data, all six
  elements, trigger and arm counts 1 with source AINT, delays 0.

Timing on the virtual clock
---------------------------
Each trigger of an acquisition starts a source action (after ``:TRIG:TRAN:DEL``; with pulse
shape the output holds the base for ``:SOUR:PULS:DEL``, the peak for ``:SOUR:PULS:WIDT``, then
returns to the base) and a measurement (after ``:TRIG:ACQ:DEL``, lasting the aperture = NPLC /
line frequency, 50 Hz unless ``:SYST:LFR 60``); a reading is the channel's state at the end of
its measurement window. With ``AINT`` the next trigger follows when both actions are done; with
``TIMer`` triggers come every ``:TRIG:TIM`` seconds (a trigger that arrives while the channel
is busy waits for the next tick). Channels in one ``:INIT`` run concurrently on one clock.

The full command tree of the Command Reference that a client can send is kept as data in
``keysight_b2900_commands.csv``: rows marked ``emulated`` are served here and in the mixins
(:mod:`~labrram.sim.keysight_b2900_sense`, :mod:`~labrram.sim.keysight_b2900_trigger`,
:mod:`~labrram.sim.keysight_b2900_trace`), rows marked ``stored`` (output filter, low terminal,
wait times, 4-wire remote sense, math and limit settings, display) are validated, stored and
answered by the shared SCPI engine without simulated physics. The IEEE 488.2 status model and
the STATus subsystem come from the engine.

Not emulated (clear errors instead): external / LAN trigger sources (``-221``), math results,
limit tests, program memory; currents beyond the 3.03 A DC range (the 10.5 A pulse range).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..ieee488 import encode_block
from .instrument import SourceChannel
from .scpi import (
    DATA_OUT_OF_RANGE,
    ILLEGAL_PARAMETER,
    MISSING_PARAMETER,
    SYNTAX_ERROR,
    Call,
    ScpiInstrument,
    command,
    error,
    format_nr3,
)

from .keysight_b2900_sense import SenseB2900
from .keysight_b2900_trace import TraceB2900
from .keysight_b2900_trigger import TriggerModelB2900, _Layer, _Plan, _Reading
from .keysight_b2900_constants import (
    CHANNELS,
    NOT_A_NUMBER,
    OVERFLOW,
    ELEMENTS,
    _ELEMENT_NAMES,
    V_MAX,
    I_MAX,
    VOLTAGE_RANGES,
    CURRENT_RANGES,
    OVERRANGE,
    PULSE_WIDTH_MIN,
    PULSE_WIDTH_MAX,
    PULSE_DELAY_MAX,
    LIST_MAX,
    HEADER_SUFFIX_OUT_OF_RANGE,
    DATA_STALE,
    _error,
)

@dataclass
class _ChannelState:
    """The programmable state of one channel (its *RST values are the defaults)."""

    func: str = "VOLT"
    shape: str = "DC"
    imm: dict[str, float] = field(default_factory=lambda: {"VOLT": 0.0, "CURR": 0.0})
    trig: dict[str, float] = field(default_factory=lambda: {"VOLT": 0.0, "CURR": 0.0})
    mode: dict[str, str] = field(default_factory=lambda: {"VOLT": "FIX", "CURR": "FIX"})
    lists: dict[str, list[float]] = field(default_factory=lambda: {"VOLT": [0.0], "CURR": [0.0]})
    start: dict[str, float] = field(default_factory=lambda: {"VOLT": 0.0, "CURR": 0.0})
    stop: dict[str, float] = field(default_factory=lambda: {"VOLT": 0.0, "CURR": 0.0})
    points: int = 1
    spacing: str = "LIN"
    direction: str = "UP"
    staircase: str = "SING"
    sweep_ranging: str = "BEST"
    src_range: dict[str, float] = field(default_factory=lambda: {"VOLT": 2.0, "CURR": 1e-4})
    src_auto: dict[str, bool] = field(default_factory=lambda: {"VOLT": True, "CURR": True})
    pulse_delay: float = 0.0
    pulse_width: float = PULSE_WIDTH_MIN
    sense_funcs: set[str] = field(default_factory=lambda: {"VOLT", "CURR"})
    prot: dict[str, float] = field(default_factory=lambda: {"CURR": 1e-4, "VOLT": 2.0})
    nplc: float = 0.1
    meas_range: dict[str, float] = field(default_factory=lambda: {"VOLT": 2.0, "CURR": 1e-4})
    meas_auto: dict[str, bool] = field(default_factory=lambda: {"VOLT": True, "CURR": True})
    trigger: dict[str, _Layer] = field(default_factory=lambda: {"ACQ": _Layer(), "TRAN": _Layer()})
    arm: dict[str, _Layer] = field(default_factory=lambda: {"ACQ": _Layer(), "TRAN": _Layer()})
    off_mode: str = "ZERO"
    auto_on: bool = True
    auto_off: bool = False
    protection: bool = False
    readings: list[_Reading] = field(default_factory=list)
    tripped: bool = False


class KeysightB2902(SenseB2900, TraceB2900, TriggerModelB2900, ScpiInstrument):
    """Byte-level Keysight B2902A emulator; ``channels[0]`` is channel 1, ``channels[1]`` channel 2."""

    vendor = "Keysight Technologies"
    model = "B2902A"
    command_file = "keysight_b2900_commands.csv"
    firmware = "3.4.2011.5100"

    def __init__(self, bench, name, link, serial: str = "MY51140001") -> None:
        super().__init__(bench, name, link, serial)
        # Created once: the bench wires channel 1 to the board when it is built.
        self.channels = [SourceChannel(bench.clock), SourceChannel(bench.clock)]
        self.line_freq = 50.0  # a system setting: *RST leaves it alone
        self.reset()

    def idn(self) -> str:
        return f"{self.vendor},{self.model},{self.serial},{self.firmware}"

    def reset(self) -> None:
        for ch in self.channels:
            ch.set_output(False)
            ch.reset()
        self.state = {c: _ChannelState() for c in CHANNELS}
        for c in CHANNELS:
            self._apply_limits(c)
        self.data_format = "ASC"  # "ASC", "REAL32" or "REAL64"
        self.byte_order = "NORM"
        self.elements = list(ELEMENTS)
        self.beeper = True
        self._pending: list[_Plan] = []
        self._idle_waiters: list = []
        self._t0 = self.clock.now
        self.reset_traces()
        self.clear_table_values()

    def shutdown(self) -> None:
        self._pending = []
        for ch in self.channels:
            ch.set_output(False)

    # --- helpers: channels and values -------------------------------------------------------
    def _number(self, call: Call) -> int:
        """Channel number from the call's first numeric suffix (``SOUR2`` -> 2)."""
        c = call.suffix(0)
        if c not in CHANNELS:
            raise _error(HEADER_SUFFIX_OUT_OF_RANGE, f"channel {c} does not exist on a B2902A (1 or 2)")
        return c

    def _st(self, call: Call) -> _ChannelState:
        return self.state[self._number(call)]

    def _ch(self, call: Call) -> SourceChannel:
        return self.channels[self._number(call) - 1]

    def _apply_limits(self, c: int) -> None:
        st, ch = self.state[c], self.channels[c - 1]
        ch.flush()
        ch.limit_i = st.prot["CURR"]
        ch.limit_v = st.prot["VOLT"]

    @staticmethod
    def _channel_list(call: Call, index: int = 0) -> list[int]:
        """Parse a channel list ``(@1)``, ``(@1,2)``, ``(@1:2)``; channel 1 when absent."""
        if index >= len(call.args) or not call.args[index].strip():
            return [1]
        if len(call.args) > index + 1:
            raise error(SYNTAX_ERROR, "one channel list expected, such as (@1,2)")
        text = call.args[index].strip().replace(" ", "")
        if not (text.startswith("(@") and text.endswith(")")):
            raise error(SYNTAX_ERROR, f"expected a channel list such as (@1) or (@1,2), got {text!r}")
        out: list[int] = []
        for part in text[2:-1].split(","):
            lo, _, hi = part.partition(":")
            try:
                a, b = int(lo), int(hi or lo)
            except ValueError:
                raise error(SYNTAX_ERROR, f"bad channel list {text!r}") from None
            for c in range(min(a, b), max(a, b) + 1):
                if c not in CHANNELS:
                    raise error(ILLEGAL_PARAMETER, f"channel {c} does not exist on a B2902A (1 or 2)")
                if c not in out:
                    out.append(c)
        if not out:
            raise error(SYNTAX_ERROR, f"empty channel list {text!r}")
        return out

    @staticmethod
    def _bool(value: bool) -> str:
        return "1" if value else "0"

    def _num_query(self, call: Call, value: float, lo: float, hi: float, default: float) -> str:
        """Reply of a numeric setting query, honouring ``? MIN|MAX|DEF``."""
        if call.args:
            which = call.choice(0, ["MINimum", "MAXimum", "DEFault"])
            value = {"MINIMUM": lo, "MAXIMUM": hi, "DEFAULT": default}[which]
        return format_nr3(value)

    @staticmethod
    def _clamped(call: Call, lo: float, hi: float, default: float) -> float:
        """Numeric parameter that the instrument sets to MIN / MAX when out of range."""
        raw = call.args[0].strip().upper() if call.args else ""
        if raw in ("MIN", "MINIMUM"):
            return lo
        if raw in ("MAX", "MAXIMUM"):
            return hi
        if raw in ("DEF", "DEFAULT"):
            return default
        return min(max(call.number(0), lo), hi)

    @staticmethod
    def _range_for(value: float, ranges: Iterable[float]) -> float:
        """Smallest range covering ``value``."""
        ranges = tuple(ranges)
        for r in ranges:
            if abs(value) <= r * OVERRANGE:
                return r
        return ranges[-1]

    def _limit_of(self, func: str) -> float:
        return V_MAX if func == "VOLT" else I_MAX

    def _aperture(self, st: _ChannelState) -> float:
        return st.nplc / self.line_freq

    def _apply_level(self, c: int, func: str) -> None:
        """Push the immediate level of ``func`` to the channel (when that function is sourced)."""
        st, ch = self.state[c], self.channels[c - 1]
        value = st.imm[func]
        if ch.mode == func:
            ch.set_level(value)
        elif func == "VOLT":
            ch.level_v = value
        else:
            ch.level_i = value

    # --- helpers: data output --------------------------------------------------------------
    def _emit(self, values: list[float]) -> str:
        """Format data per ``:FORM`` / ``:FORM:BORD`` (binary as a definite-length block)."""
        if self.data_format == "ASC":
            return ",".join(format_nr3(v) for v in values)
        order = ">" if self.byte_order == "NORM" else "<"
        kind = "f4" if self.data_format == "REAL32" else "f8"
        payload = np.asarray(values, dtype=float).astype(order + kind).tobytes()
        return encode_block(payload).decode("latin-1")

    def _readings(self, channels: list[int]) -> list[tuple[int, _Reading]]:
        out = []
        for c in channels:
            st = self.state[c]
            if not st.readings:
                pending = [p for p in self._pending if p.number == c]
                if pending:
                    left = pending[0].total - pending[0].step
                    raise _error(DATA_STALE, f"channel {c} is waiting for {left} bus trigger(s) (*TRG)")
                raise _error(DATA_STALE, f"no measurement data on channel {c}: run :INIT, :READ? or :MEAS? first")
            out.extend((c, r) for r in st.readings)
        return out

    def _element_values(self, readings: list[tuple[int, _Reading]], element: str | None) -> list[float]:
        if element is not None:
            k = ELEMENTS.index(element)
            return [r.values()[k] for _, r in readings]
        idx = [ELEMENTS.index(e) for e in self.elements]
        out: list[float] = []
        for _, r in readings:
            vals = r.values()
            out.extend(vals[k] for k in idx)
        return out

    @staticmethod
    def _element_of(call: Call) -> str | None:
        """The element a data query names (``:FETC:ARR:CURR?`` -> ``CURR``), or ``None`` for all."""
        nodes = [n.upper() for n in call.header.split(":") if n and n.upper() != "DC"]
        return _ELEMENT_NAMES.get(nodes[-1]) if nodes else None

    # --- output ---------------------------------------------------------------------------
    @command(":OUTPut[1][:STATe]")
    def _outp(self, call: Call) -> str | None:
        ch = self._ch(call)
        if call.query:
            return self._bool(ch.output)
        call.expect_args(1)
        on = call.boolean(0)
        if on != ch.output:
            ch.set_output(on)
            self.bench.after_output_change()
        return None

    @command(":OUTPut[1]:OFF:MODE")
    def _outp_off_mode(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return st.off_mode
        st.off_mode = call.choice(0, ["ZERO", "HIZ", "NORMal"])[:4]
        return None

    @command(":OUTPut[1]:ON:AUTO")
    def _outp_on_auto(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return self._bool(st.auto_on)
        st.auto_on = call.boolean(0)
        return None

    @command(":OUTPut[1]:OFF:AUTO")
    def _outp_off_auto(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return self._bool(st.auto_off)
        st.auto_off = call.boolean(0)
        return None

    @command(":OUTPut[1]:PROTection[:STATe]")
    def _outp_prot(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return self._bool(st.protection)
        st.protection = call.boolean(0)
        return None

    # --- source: function and shape --------------------------------------------------------
    @command("[:SOURce[1]]:FUNCtion:MODE")
    def _func_mode(self, call: Call) -> str | None:
        st, ch, c = self._st(call), self._ch(call), self._number(call)
        if call.query:
            return st.func
        call.expect_args(1)
        func = call.choice(0, ["VOLTage", "CURRent"])[:4]
        if func != st.func:
            st.func = func
            ch.set_mode(func)
            self._apply_level(c, func)
        return None

    @command("[:SOURce[1]]:FUNCtion:SHAPe")
    def _func_shape(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return st.shape
        call.expect_args(1)
        st.shape = call.choice(0, ["PULSe", "DC"])[:4]
        return None

    # --- source: levels --------------------------------------------------------------------
    def _check_level(self, st: _ChannelState, func: str, value: float) -> None:
        if not st.src_auto[func] and abs(value) > st.src_range[func] * OVERRANGE:
            unit = "V" if func == "VOLT" else "A"
            raise error(DATA_OUT_OF_RANGE, f"{value:g} {unit} beyond the fixed {st.src_range[func]:g} {unit} source range")

    def _level(self, call: Call, func: str) -> str | None:
        st, c = self._st(call), self._number(call)
        hi = self._limit_of(func)
        if call.query:
            return self._num_query(call, st.imm[func], -hi, hi, 0.0)
        call.expect_args(1)
        value = call.number(0, -hi, hi, default=0.0)
        self._check_level(st, func, value)
        st.imm[func] = value
        if st.shape == "DC":
            st.trig[func] = value  # in DC shape a trigger applies the present level
        self._apply_level(c, func)
        return None

    def _trig_level(self, call: Call, func: str) -> str | None:
        st = self._st(call)
        hi = self._limit_of(func)
        if call.query:
            return self._num_query(call, st.trig[func], -hi, hi, 0.0)
        call.expect_args(1)
        value = call.number(0, -hi, hi, default=0.0)
        self._check_level(st, func, value)
        st.trig[func] = value
        return None

    @command("[:SOURce[1]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    def _volt(self, call: Call) -> str | None:
        return self._level(call, "VOLT")

    @command("[:SOURce[1]]:CURRent[:LEVel][:IMMediate][:AMPLitude]")
    def _curr(self, call: Call) -> str | None:
        return self._level(call, "CURR")

    @command("[:SOURce[1]]:VOLTage[:LEVel]:TRIGgered[:AMPLitude]")
    def _volt_trig(self, call: Call) -> str | None:
        return self._trig_level(call, "VOLT")

    @command("[:SOURce[1]]:CURRent[:LEVel]:TRIGgered[:AMPLitude]")
    def _curr_trig(self, call: Call) -> str | None:
        return self._trig_level(call, "CURR")

    def _mode(self, call: Call, func: str) -> str | None:
        st = self._st(call)
        if call.query:
            return st.mode[func]
        call.expect_args(1)
        st.mode[func] = {"FIXED": "FIX", "LIST": "LIST", "SWEEP": "SWE"}[call.choice(0, ["FIXed", "LIST", "SWEep"])]
        return None

    @command("[:SOURce[1]]:VOLTage:MODE")
    def _volt_mode(self, call: Call) -> str | None:
        return self._mode(call, "VOLT")

    @command("[:SOURce[1]]:CURRent:MODE")
    def _curr_mode(self, call: Call) -> str | None:
        return self._mode(call, "CURR")

    # --- source: ranges ----------------------------------------------------------------
    def _src_range(self, call: Call, func: str) -> str | None:
        st = self._st(call)
        ranges = VOLTAGE_RANGES if func == "VOLT" else CURRENT_RANGES
        if call.query:
            return self._num_query(call, st.src_range[func], ranges[0], ranges[-1], ranges[-1])
        call.expect_args(1)
        hi = self._limit_of(func)
        value = call.number(0, -hi, hi, default=ranges[-1])
        st.src_range[func] = self._range_for(value, ranges)
        st.src_auto[func] = False
        return None

    def _src_range_auto(self, call: Call, func: str) -> str | None:
        st = self._st(call)
        if call.query:
            return self._bool(st.src_auto[func])
        st.src_auto[func] = call.boolean(0)
        return None

    @command("[:SOURce[1]]:VOLTage:RANGe")
    def _volt_range(self, call: Call) -> str | None:
        return self._src_range(call, "VOLT")

    @command("[:SOURce[1]]:CURRent:RANGe")
    def _curr_range(self, call: Call) -> str | None:
        return self._src_range(call, "CURR")

    @command("[:SOURce[1]]:VOLTage:RANGe:AUTO")
    def _volt_range_auto(self, call: Call) -> str | None:
        return self._src_range_auto(call, "VOLT")

    @command("[:SOURce[1]]:CURRent:RANGe:AUTO")
    def _curr_range_auto(self, call: Call) -> str | None:
        return self._src_range_auto(call, "CURR")

    # --- source: lists ------------------------------------------------------------------
    def _list(self, call: Call, func: str) -> str | None:
        st = self._st(call)
        if call.query:
            return ",".join(format_nr3(v) for v in st.lists[func])
        hi = self._limit_of(func)
        values = call.numbers(-hi, hi)
        if len(values) > LIST_MAX:
            raise error(DATA_OUT_OF_RANGE, f"a source list holds at most {LIST_MAX} points, got {len(values)}")
        for v in values:
            self._check_level(st, func, v)
        st.lists[func] = values
        return None

    def _list_append(self, call: Call, func: str) -> None:
        st = self._st(call)
        hi = self._limit_of(func)
        values = call.numbers(-hi, hi)
        if len(st.lists[func]) + len(values) > LIST_MAX:
            raise error(DATA_OUT_OF_RANGE, f"a source list holds at most {LIST_MAX} points")
        for v in values:
            self._check_level(st, func, v)
        st.lists[func] = st.lists[func] + values

    @command("[:SOURce[1]]:LIST:VOLTage")
    def _list_volt(self, call: Call) -> str | None:
        return self._list(call, "VOLT")

    @command("[:SOURce[1]]:LIST:CURRent")
    def _list_curr(self, call: Call) -> str | None:
        return self._list(call, "CURR")

    @command("[:SOURce[1]]:LIST:VOLTage:APPend", query=False)
    def _list_volt_app(self, call: Call) -> None:
        self._list_append(call, "VOLT")

    @command("[:SOURce[1]]:LIST:CURRent:APPend", query=False)
    def _list_curr_app(self, call: Call) -> None:
        self._list_append(call, "CURR")

    @command("[:SOURce[1]]:LIST:VOLTage:POINts", write=False)
    def _list_volt_points(self, call: Call) -> str:
        return str(len(self._st(call).lists["VOLT"]))

    @command("[:SOURce[1]]:LIST:CURRent:POINts", write=False)
    def _list_curr_points(self, call: Call) -> str:
        return str(len(self._st(call).lists["CURR"]))

    # --- source: sweeps -----------------------------------------------------------------
    def _sweep_value(self, call: Call, func: str, what: str) -> str | None:
        """STARt / STOP / CENTer / SPAN / STEP of a linear sweep (coupled as the manual says)."""
        st = self._st(call)
        hi = self._limit_of(func)
        a, b = st.start[func], st.stop[func]
        current = {
            "STAR": a,
            "STOP": b,
            "CENT": (a + b) / 2,
            "SPAN": b - a,
            "STEP": 0.0 if st.points < 2 else (b - a) / (st.points - 1),
        }[what]
        lo_hi = (-2 * hi, 2 * hi) if what in ("SPAN", "STEP") else (-hi, hi)
        if call.query:
            return self._num_query(call, current, lo_hi[0], lo_hi[1], 0.0)
        call.expect_args(1)
        value = call.number(0, lo_hi[0], lo_hi[1], default=0.0)
        if what == "STAR":
            a = value
        elif what == "STOP":
            b = value
        elif what == "CENT":
            a, b = value - (b - a) / 2, value + (b - a) / 2
        elif what == "SPAN":
            center = (a + b) / 2
            a, b = center - value / 2, center + value / 2
        else:  # STEP: the span stays, points follow (rounded down), stop = start + step (points - 1)
            span = b - a
            if value == 0 or span == 0:
                st.points = 1
            else:
                n = int(math.floor(abs(span) / abs(value) + 1e-9)) + 1
                if n > LIST_MAX:
                    raise error(DATA_OUT_OF_RANGE, f"a step of {value:g} gives {n} sweep points, more than {LIST_MAX}")
                st.points = n
                b = a + math.copysign(abs(value), span) * (n - 1)
        for v in (a, b):
            if abs(v) > hi:
                raise error(DATA_OUT_OF_RANGE, f"sweep value {v:g} outside [{-hi:g}, {hi:g}]")
        st.start[func], st.stop[func] = a, b
        return None

    def _sweep_points(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            if call.args:
                which = call.choice(0, ["MINimum", "MAXimum", "DEFault"])
                return str({"MINIMUM": 1, "MAXIMUM": LIST_MAX, "DEFAULT": 1}[which])
            return str(st.points)
        call.expect_args(1)
        st.points = call.integer(0, 1, LIST_MAX, default=1)
        return None

    @command("[:SOURce[1]]:VOLTage:STARt")
    def _volt_start(self, call: Call) -> str | None:
        return self._sweep_value(call, "VOLT", "STAR")

    @command("[:SOURce[1]]:VOLTage:STOP")
    def _volt_stop(self, call: Call) -> str | None:
        return self._sweep_value(call, "VOLT", "STOP")

    @command("[:SOURce[1]]:VOLTage:CENTer")
    def _volt_center(self, call: Call) -> str | None:
        return self._sweep_value(call, "VOLT", "CENT")

    @command("[:SOURce[1]]:VOLTage:SPAN")
    def _volt_span(self, call: Call) -> str | None:
        return self._sweep_value(call, "VOLT", "SPAN")

    @command("[:SOURce[1]]:VOLTage:STEP")
    def _volt_step(self, call: Call) -> str | None:
        return self._sweep_value(call, "VOLT", "STEP")

    @command("[:SOURce[1]]:CURRent:STARt")
    def _curr_start(self, call: Call) -> str | None:
        return self._sweep_value(call, "CURR", "STAR")

    @command("[:SOURce[1]]:CURRent:STOP")
    def _curr_stop(self, call: Call) -> str | None:
        return self._sweep_value(call, "CURR", "STOP")

    @command("[:SOURce[1]]:CURRent:CENTer")
    def _curr_center(self, call: Call) -> str | None:
        return self._sweep_value(call, "CURR", "CENT")

    @command("[:SOURce[1]]:CURRent:SPAN")
    def _curr_span(self, call: Call) -> str | None:
        return self._sweep_value(call, "CURR", "SPAN")

    @command("[:SOURce[1]]:CURRent:STEP")
    def _curr_step(self, call: Call) -> str | None:
        return self._sweep_value(call, "CURR", "STEP")

    @command("[:SOURce[1]]:VOLTage:POINts")
    @command("[:SOURce[1]]:CURRent:POINts")
    @command("[:SOURce[1]]:SWEep:POINts")
    def _points(self, call: Call) -> str | None:
        return self._sweep_points(call)

    @command("[:SOURce[1]]:SWEep:SPACing")
    def _swe_spacing(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return st.spacing
        st.spacing = call.choice(0, ["LINear", "LOGarithmic"])[:3]
        return None

    @command("[:SOURce[1]]:SWEep:DIRection")
    def _swe_direction(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return st.direction
        st.direction = call.choice(0, ["UP", "DOWN"])
        return None

    @command("[:SOURce[1]]:SWEep:STAir")
    def _swe_stair(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return st.staircase
        st.staircase = call.choice(0, ["SINGle", "DOUBle"])[:4]
        return None

    @command("[:SOURce[1]]:SWEep:RANGing")
    def _swe_ranging(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return st.sweep_ranging
        st.sweep_ranging = call.choice(0, ["BEST", "AUTO", "FIXed"])[:4].replace("FIXE", "FIX")
        return None

    # --- source: pulse ------------------------------------------------------------------
    @command("[:SOURce[1]]:PULSe:DELay")
    def _puls_delay(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return self._num_query(call, st.pulse_delay, 0.0, PULSE_DELAY_MAX, 0.0)
        call.expect_args(1)
        st.pulse_delay = call.number(0, 0.0, PULSE_DELAY_MAX, default=0.0)
        return None

    @command("[:SOURce[1]]:PULSe:WIDTh")
    def _puls_width(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return self._num_query(call, st.pulse_width, PULSE_WIDTH_MIN, PULSE_WIDTH_MAX, PULSE_WIDTH_MIN)
        call.expect_args(1)
        st.pulse_width = call.number(0, PULSE_WIDTH_MIN, PULSE_WIDTH_MAX, default=PULSE_WIDTH_MIN)
        return None

    # --- format -------------------------------------------------------------------------
    @command(":FORMat[:DATA]")
    def _form_data(self, call: Call) -> str | None:
        if call.query:
            return {"ASC": "ASC", "REAL32": "REAL,32", "REAL64": "REAL,64"}[self.data_format]
        call.expect_args(1, 2)
        kind = call.choice(0, ["ASCii", "REAL"])
        if kind == "ASCII":
            if len(call.args) > 1:
                raise error(ILLEGAL_PARAMETER, "ASCii takes no length")
            self.data_format = "ASC"
            return None
        length = call.integer(1) if len(call.args) > 1 else 64
        if length not in (32, 64):
            raise error(ILLEGAL_PARAMETER, f"REAL length must be 32 or 64, got {length}")
        self.data_format = f"REAL{length}"
        return None

    @command(":FORMat:BORDer")
    def _form_border(self, call: Call) -> str | None:
        if call.query:
            return self.byte_order
        self.byte_order = call.choice(0, ["NORMal", "SWAPped"])[:4]
        return None

    @command(":FORMat:ELEMents:SENSe")
    def _form_elem(self, call: Call) -> str | None:
        if call.query:
            return ",".join(self.elements)
        if not call.args:
            raise error(MISSING_PARAMETER, "expected elements such as VOLT,CURR")
        chosen = set()
        for k in range(len(call.args)):
            chosen.add(_ELEMENT_NAMES[call.choice(k, ["VOLTage", "CURRent", "RESistance", "TIME", "STATus", "SOURce"])])
        self.elements = [e for e in ELEMENTS if e in chosen]  # the instrument's fixed order
        return None

    # --- system -------------------------------------------------------------------------
    @command(":SYSTem:LFRequency")
    def _lfreq(self, call: Call) -> str | None:
        if call.query:
            return str(int(self.line_freq))
        call.expect_args(1)
        value = call.number(0)
        if value not in (50.0, 60.0):
            raise error(ILLEGAL_PARAMETER, f"line frequency must be 50 or 60 Hz, got {value:g}")
        self.line_freq = value
        return None

    @command(":SYSTem:BEEPer:STATe")
    def _beeper(self, call: Call) -> str | None:
        if call.query:
            return self._bool(self.beeper)
        self.beeper = call.boolean(0)
        return None

    @command(":SYSTem:BEEPer[:IMMediate]", query=False)
    def _beep(self, call: Call) -> None:
        call.expect_args(2)
        call.number(0, 55.0, 6550.0)
        call.number(1, 0.05, 12.75)

    @command(":SYSTem:TIME:TIMer:COUNt", write=False)
    def _timer_count(self, call: Call) -> str:
        return format_nr3(self.clock.now - self._t0)

    @command(":SYSTem:TIME:TIMer:COUNt:RESet", query=False)
    def _timer_count_reset(self, call: Call) -> None:
        self._t0 = self.clock.now

    @command(":SYSTem:PRESet", query=False)
    def _preset(self, call: Call) -> None:
        self.reset()


__all__ = ["KeysightB2902", "ELEMENTS", "NOT_A_NUMBER", "OVERFLOW", "PULSE_WIDTH_MIN", "PULSE_WIDTH_MAX"]
