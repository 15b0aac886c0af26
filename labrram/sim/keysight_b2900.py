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

Not emulated (clear errors instead): external / LAN trigger sources (``-221``), math, limit
tests, the trace buffer, program memory, 4-wire sense and the output filter; currents beyond the
3.03 A DC range (the 10.5 A pulse range).
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
    SETTINGS_CONFLICT,
    SYNTAX_ERROR,
    Call,
    ScpiError,
    ScpiInstrument,
    command,
    error,
    format_nr3,
)

# --- instrument constants (B2901A/B2902A) ---------------------------------------------------
CHANNELS = (1, 2)
NOT_A_NUMBER = 9.91e37  # an element that was not measured
OVERFLOW = 9.9e37  # a reading beyond its fixed range
ELEMENTS = ("VOLT", "CURR", "RES", "TIME", "STAT", "SOUR")  # fixed output order
_ELEMENT_NAMES = {
    "VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR", "RES": "RES", "RESISTANCE": "RES",
    "TIME": "TIME", "STAT": "STAT", "STATUS": "STAT", "SOUR": "SOUR", "SOURCE": "SOUR",
}  # fmt: skip

V_MAX = 210.0  # V, largest source / limit voltage
I_MAX = 3.03  # A, largest DC source / limit current
VOLTAGE_RANGES = (0.2, 2.0, 20.0, 200.0)
CURRENT_RANGES = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 1.5, 3.0)
OVERRANGE = 1.05  # a range covers 105 % of its nominal value

PULSE_WIDTH_MIN = 50e-6  # User's Guide: "The available values are 50 us to 100000 s"
PULSE_WIDTH_MAX = 1e5
PULSE_DELAY_MAX = 99999.9
APERTURE_MIN = 8e-6  # s
APERTURE_MAX = 2.0  # s
TIMER_MIN = 2e-5  # s, B2901A/B2902A arm/trigger interval 20 us .. 100000 s
TIMER_MAX = 1e5
DELAY_MAX = 1e5
COUNT_MAX = 100000  # arm count x trigger count
LIST_MAX = 2500  # source list and sweep points

# Status element bits (SCPI Command Reference, table 1-2).
STAT_CURRENT_SOURCE = 1 << 0
STAT_COMPLIANCE = 1 << 1  # bits 1-2: compliance condition
STAT_OVER_VOLTAGE = 1 << 3
STAT_OVER_CURRENT = 1 << 4
STAT_RANGE_OVERFLOW = 1 << 13

# Errors beyond the common SCPI set.
HEADER_SUFFIX_OUT_OF_RANGE = -114
TRIGGER_IGNORED = -211
INIT_IGNORED = -213
DATA_STALE = -230

_MESSAGES = {
    HEADER_SUFFIX_OUT_OF_RANGE: "Header suffix out of range",
    TRIGGER_IGNORED: "Trigger ignored",
    INIT_IGNORED: "Init ignored",
    DATA_STALE: "Data corrupt or stale",
}


def _error(code: int, detail: str) -> ScpiError:
    """A B2900 error whose standard message the shared SCPI table does not carry."""
    return ScpiError(code, f"{_MESSAGES[code]}; {detail}")


TRIGGER_SOURCES = ("AINT", "BUS", "TIMer", "INT1", "INT2", "LAN", "TIN") + tuple(f"EXT{n}" for n in range(1, 15))
EMULATED_SOURCES = ("AINT", "BUS", "TIMER")
_QUANTUM = 1e-10  # s: event times closer than this are simultaneous


@dataclass
class _Layer:
    """One trigger-model layer (arm or trigger) of one action (acquire or transient)."""

    count: int = 1
    source: str = "AINT"
    timer: float = TIMER_MIN
    delay: float = 0.0


@dataclass
class _Reading:
    """One measurement: the elements in :data:`ELEMENTS` order."""

    volt: float
    curr: float
    res: float
    time: float
    stat: float
    sour: float

    def values(self) -> tuple[float, ...]:
        return (self.volt, self.curr, self.res, self.time, self.stat, self.sour)


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


@dataclass
class _Plan:
    """One channel's part of an acquisition: what to source and measure at each trigger."""

    number: int
    state: _ChannelState
    channel: SourceChannel
    points: list[float]  # source value of each trigger within one arm cycle
    base: float  # the immediate level: DC level before the run, pulse base
    pulse: bool
    acquire: bool
    transient: bool
    arm_count: int
    arm_source: str
    arm_timer: float
    arm_delay: float
    trig_source: str
    trig_timer: float
    tran_delay: float
    acq_delay: float
    aperture: float
    restore: float | None  # level to return to after the run (list and sweep modes)
    step: int = 0  # next trigger to run (bus-triggered runs)

    @property
    def trig_count(self) -> int:
        return len(self.points)

    @property
    def total(self) -> int:
        return self.arm_count * self.trig_count


class KeysightB2902(ScpiInstrument):
    """Byte-level Keysight B2902A emulator; ``channels[0]`` is channel 1, ``channels[1]`` channel 2."""

    vendor = "Keysight Technologies"
    model = "B2902A"
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
        self._t0 = self.clock.now

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

    # --- the trigger model -----------------------------------------------------------------
    def _source_points(self, st: _ChannelState, func: str) -> list[float]:
        """Source values of one arm cycle before matching them to the trigger count."""
        mode = st.mode[func]
        if mode == "LIST":
            return list(st.lists[func])
        if mode == "SWE":
            a, b, n = st.start[func], st.stop[func], st.points
            if st.spacing == "LOG":
                if a == 0 or b == 0 or (a > 0) != (b > 0):
                    raise error(SETTINGS_CONFLICT, "a log sweep needs start and stop of the same sign, not 0")
                pts = list(np.sign(a) * np.geomspace(abs(a), abs(b), n))
            else:
                pts = list(np.linspace(a, b, n))
            if st.direction == "DOWN":
                pts = pts[::-1]
            if st.staircase == "DOUB":
                pts = pts + pts[::-1]
            return [float(p) for p in pts]
        return [st.trig[func]]

    def _plan(self, c: int, acquire: bool, transient: bool, spot: bool = False) -> _Plan:
        """Validate channel ``c``'s trigger model and build its run (raises before any action)."""
        st, ch = self.state[c], self.channels[c - 1]
        func = st.func
        used = [k for k, on in (("ACQ", acquire), ("TRAN", transient)) if on]
        trig = [st.trigger[k] for k in used]
        arm = [st.arm[k] for k in used]
        if spot:
            trig_count, arm_count = 1, 1
            trig_source, trig_timer, arm_source, arm_timer, arm_delay = "AINT", TIMER_MIN, "AINT", TIMER_MIN, 0.0
        else:
            for what, layers in (("trigger", trig), ("arm", arm)):
                a = layers[0]
                for b in layers[1:]:
                    if (a.count, a.source) != (b.count, b.source) or (a.source == "TIMER" and a.timer != b.timer):
                        raise error(
                            SETTINGS_CONFLICT,
                            f"channel {c}: acquire and transient {what} layers differ (count, source or timer); "
                            f"the emulator runs them in lockstep: set them with :{what.upper()[:4]}{c}:ALL",
                        )
            for what, layer in (("trigger", trig[0]), ("arm", arm[0])):
                if layer.source not in EMULATED_SOURCES:
                    raise error(SETTINGS_CONFLICT, f"channel {c}: {what} source {layer.source} is not emulated (AINT, TIM or BUS)")
            if arm[0].source == "BUS":
                raise error(SETTINGS_CONFLICT, f"channel {c}: arm source BUS is not emulated (use AINT or TIM; triggers may be BUS)")
            trig_count, arm_count = trig[0].count, arm[0].count
            trig_source, trig_timer = trig[0].source, trig[0].timer
            arm_source, arm_timer, arm_delay = arm[0].source, arm[0].timer, max(a.delay for a in arm)
            if trig_count * arm_count > COUNT_MAX:
                raise error(SETTINGS_CONFLICT, f"channel {c}: arm count x trigger count exceeds {COUNT_MAX}")
        base = st.imm[func]
        pulse = st.shape == "PULS"
        if spot:
            points = [st.trig[func] if pulse else base]
        else:
            cycle = self._source_points(st, func)
            points = [cycle[k % len(cycle)] for k in range(trig_count)]
        restore = base if (not spot and st.mode[func] in ("LIST", "SWE") and not pulse) else None
        return _Plan(
            number=c,
            state=st,
            channel=ch,
            points=points,
            base=base,
            pulse=pulse,
            acquire=acquire,
            transient=transient,
            arm_count=arm_count,
            arm_source=arm_source,
            arm_timer=arm_timer,
            arm_delay=arm_delay,
            trig_source=trig_source,
            trig_timer=trig_timer,
            tran_delay=st.trigger["TRAN"].delay,
            acq_delay=st.trigger["ACQ"].delay,
            aperture=self._aperture(st),
            restore=restore,
        )

    def _step_events(self, plan: _Plan, k: int, t: float, events: list) -> float:
        """Events of trigger ``k`` of ``plan`` fired at run time ``t``; returns the step duration."""
        point = plan.points[k % plan.trig_count]
        end = t
        if plan.transient:
            tr = t + plan.tran_delay
            if plan.pulse:
                t1 = tr + plan.state.pulse_delay
                t2 = t1 + plan.state.pulse_width
                events.append((t1, 1, plan, "level", point))
                events.append((t2, 1, plan, "level", plan.base))
                end = t2
            else:
                events.append((tr, 1, plan, "level", point))
                end = tr
        if plan.acquire:
            w0 = t + plan.acq_delay
            w1 = w0 + plan.aperture
            events.append((w1, 0, plan, "sample", (w0, point)))
            end = max(end, w1)
        return end - t

    def _schedule(self, plan: _Plan, t: float, events: list) -> float:
        """Events of every trigger of a self-triggered run starting at ``t``; returns its end."""
        run_end = t
        for a in range(plan.arm_count):
            if plan.arm_source == "TIMER" and a > 0:
                t = math.ceil(t / plan.arm_timer - 1e-9) * plan.arm_timer
            t += plan.arm_delay
            for k in range(plan.trig_count):
                dur = self._step_events(plan, k, t, events)
                run_end = max(run_end, t + dur)
                if k == plan.trig_count - 1:
                    t = t + dur
                elif plan.trig_source == "TIMER":
                    ticks = max(1, math.ceil(dur / plan.trig_timer - 1e-9))
                    t = t + ticks * plan.trig_timer
                else:
                    t = t + dur
        return run_end

    def _walk(self, events: list, run_end: float) -> None:
        """Play ``events`` on the virtual clock; times are relative to now."""
        start = self.clock.now
        events.sort(key=lambda e: (round(e[0] / _QUANTUM), e[1]))
        for t, _, plan, kind, payload in events:
            target = start + t
            if target > self.clock.now:
                self.clock.advance(target - self.clock.now, "operation")
            if kind == "level":
                plan.channel.set_level(payload)
            else:
                w0, point = payload
                self._sample(plan, start + w0, point)
        if start + run_end > self.clock.now:
            self.clock.advance(start + run_end - self.clock.now, "operation")

    def _sample(self, plan: _Plan, t_start: float, point: float) -> None:
        """Close the measurement window now: record the channel's voltage and current."""
        st, ch = plan.state, plan.channel
        v, i = ch.measure(0.0)  # applies the held output since the last change, samples its end
        status = STAT_CURRENT_SOURCE if st.func == "CURR" else 0
        if ch.output and ch.in_compliance:
            status |= STAT_COMPLIANCE
            st.tripped = True
            if st.protection:  # over voltage/current protection: 0 V and output off at once
                status |= STAT_OVER_CURRENT if st.func == "VOLT" else STAT_OVER_VOLTAGE
                st.imm[st.func] = 0.0
                ch.set_level(0.0)
                ch.set_output(False)
                self.bench.after_output_change()
        volt, curr = float(v), float(i)
        for func, value in (("VOLT", volt), ("CURR", curr)):
            if not st.meas_auto[func] and abs(value) > st.meas_range[func] * OVERRANGE:
                status |= STAT_RANGE_OVERFLOW
                if func == "VOLT":
                    volt = math.copysign(OVERFLOW, value)
                else:
                    curr = math.copysign(OVERFLOW, value)
        if "RES" in st.sense_funcs:
            res = OVERFLOW if curr == 0 or abs(curr) >= OVERFLOW else volt / curr
        else:
            res = NOT_A_NUMBER
        st.readings.append(
            _Reading(
                volt=volt if "VOLT" in st.sense_funcs else NOT_A_NUMBER,
                curr=curr if "CURR" in st.sense_funcs else NOT_A_NUMBER,
                res=res,
                time=t_start - self._t0,
                stat=float(status),
                sour=float(point),
            )
        )

    def _finish(self, plan: _Plan) -> None:
        """After the last trigger: restore the DC level of list / sweep runs, auto output off."""
        st, ch = plan.state, plan.channel
        if plan.restore is not None and plan.transient:
            ch.set_level(plan.restore)
        elif plan.transient and not plan.pulse and plan.points:
            st.imm[st.func] = plan.points[-1]  # a triggered DC level stays, as the new level
        if st.auto_off and ch.output:
            ch.set_output(False)
            self.bench.after_output_change()

    def _initiate(self, channels: list[int], acquire: bool = True, transient: bool = True, spot: bool = False) -> None:
        """Run (or arm, with bus triggers) an acquisition on ``channels``."""
        for c in channels:
            if any(p.number == c for p in self._pending):
                raise _error(INIT_IGNORED, f"channel {c} is already initiated and waiting for bus triggers")
        plans = [self._plan(c, acquire, transient, spot) for c in channels]
        bus = [p.trig_source == "BUS" for p in plans]
        if any(bus) and not all(bus):
            raise error(SETTINGS_CONFLICT, "channels of one :INIT must all use bus triggers, or none")
        for p in plans:
            if acquire:
                p.state.readings = []
                p.state.tripped = False
            if not p.channel.output and p.state.auto_on:
                p.channel.set_output(True)
                self.bench.after_output_change()
        if all(bus) and plans:
            self._pending.extend(plans)
            return
        events: list = []
        run_end = max(self._schedule(p, 0.0, events) for p in plans)
        self._walk(events, run_end)
        for p in plans:
            self._finish(p)

    def bus_trigger(self, channels: Iterable[int] | None = None) -> None:
        """A bus trigger (``*TRG``, VISA assert-trigger, ``:TRIG (@1)``): one trigger step of
        every channel waiting for it."""
        wanted = set(CHANNELS if channels is None else channels)
        plans = [p for p in self._pending if p.number in wanted]
        if not plans:
            exc = _error(TRIGGER_IGNORED, "no channel is waiting for a bus trigger")
            self.push_error(exc.code, exc.message)
            return
        events: list = []
        run_end = 0.0
        for p in plans:
            k = p.step % p.trig_count
            t = p.arm_delay if k == 0 else 0.0
            run_end = max(run_end, t + self._step_events(p, k, t, events))
            p.step += 1
        self._walk(events, run_end)
        for p in plans:
            if p.step >= p.total:
                self._pending.remove(p)
                self._finish(p)

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

    # --- sense: functions ---------------------------------------------------------------
    @staticmethod
    def _parse_funcs(call: Call) -> list[str]:
        if not call.args:
            raise error(MISSING_PARAMETER, 'expected functions such as "CURR","VOLT"')
        out: list[str] = []
        for k in range(len(call.args)):
            for name in call.string(k).upper().split(","):
                name = name.strip().strip("'\"").replace(":DC", "")
                canon = {"VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR", "RES": "RES", "RESISTANCE": "RES"}.get(name)
                if canon is None:
                    raise error(ILLEGAL_PARAMETER, f"unknown sense function {name!r} (CURR, VOLT or RES)")
                out.append(canon)
        return out

    @staticmethod
    def _funcs_reply(funcs: Iterable[str]) -> str:
        order = ("VOLT", "CURR", "RES")
        return ",".join(f'"{f}"' for f in order if f in set(funcs))

    @command(":SENSe[1]:FUNCtion[:ON]")
    def _sens_func(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return self._funcs_reply(st.sense_funcs)
        st.sense_funcs |= set(self._parse_funcs(call))
        return None

    @command(":SENSe[1]:FUNCtion:OFF")
    def _sens_func_off(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return self._funcs_reply({"VOLT", "CURR", "RES"} - st.sense_funcs)
        st.sense_funcs -= set(self._parse_funcs(call))
        return None

    @command(":SENSe[1]:FUNCtion:ALL", query=False)
    def _sens_func_all(self, call: Call) -> None:
        self._st(call).sense_funcs = {"VOLT", "CURR", "RES"}

    @command(":SENSe[1]:FUNCtion:OFF:ALL", query=False)
    def _sens_func_off_all(self, call: Call) -> None:
        self._st(call).sense_funcs = set()

    @command(":SENSe[1]:FUNCtion:STATe", write=False)
    def _sens_func_state(self, call: Call) -> str:
        funcs = self._parse_funcs(call)
        return self._bool(funcs[0] in self._st(call).sense_funcs)

    # --- sense: compliance ----------------------------------------------------------------
    def _prot(self, call: Call, func: str) -> str | None:
        st, c = self._st(call), self._number(call)
        hi = self._limit_of(func)
        default = 1e-4 if func == "CURR" else 2.0
        if call.query:
            return self._num_query(call, st.prot[func], 0.0, hi, default)
        call.expect_args(1)
        st.prot[func] = abs(call.number(0, -hi, hi, default=default))
        self._apply_limits(c)
        return None

    @command(":SENSe[1]:CURRent[:DC]:PROTection[:LEVel]")
    def _prot_curr(self, call: Call) -> str | None:
        return self._prot(call, "CURR")

    @command(":SENSe[1]:VOLTage[:DC]:PROTection[:LEVel]")
    def _prot_volt(self, call: Call) -> str | None:
        return self._prot(call, "VOLT")

    @command(":SENSe[1]:CURRent[:DC]:PROTection:TRIPped", write=False)
    def _prot_curr_trip(self, call: Call) -> str:
        st = self._st(call)
        return self._bool(st.tripped and st.func == "VOLT")

    @command(":SENSe[1]:VOLTage[:DC]:PROTection:TRIPped", write=False)
    def _prot_volt_trip(self, call: Call) -> str:
        st = self._st(call)
        return self._bool(st.tripped and st.func == "CURR")

    # --- sense: integration time --------------------------------------------------------------
    @command(":SENSe[1]:CURRent[:DC]:NPLCycles")
    @command(":SENSe[1]:VOLTage[:DC]:NPLCycles")
    @command(":SENSe[1]:RESistance:NPLCycles")
    def _nplc(self, call: Call) -> str | None:
        """NPLC, common to all functions; out-of-range values are set to MIN/MAX (manual)."""
        st = self._st(call)
        lo, hi = APERTURE_MIN * self.line_freq, APERTURE_MAX * self.line_freq
        if call.query:
            return self._num_query(call, st.nplc, lo, hi, 0.1)
        call.expect_args(1)
        st.nplc = self._clamped(call, lo, hi, 0.1)
        return None

    @command(":SENSe[1]:CURRent[:DC]:APERture")
    @command(":SENSe[1]:VOLTage[:DC]:APERture")
    @command(":SENSe[1]:RESistance:APERture")
    def _aper(self, call: Call) -> str | None:
        """Integration time in seconds, coupled to NPLC (time = nplc / line frequency)."""
        st = self._st(call)
        if call.query:
            return self._num_query(call, self._aperture(st), APERTURE_MIN, APERTURE_MAX, 0.1 / self.line_freq)
        call.expect_args(1)
        st.nplc = self._clamped(call, APERTURE_MIN, APERTURE_MAX, 0.1 / self.line_freq) * self.line_freq
        return None

    # --- sense: ranges ------------------------------------------------------------------
    def _meas_range(self, call: Call, func: str) -> str | None:
        st = self._st(call)
        ranges = VOLTAGE_RANGES if func == "VOLT" else CURRENT_RANGES
        if call.query:
            return self._num_query(call, st.meas_range[func], ranges[0], ranges[-1], ranges[-1])
        call.expect_args(1)
        hi = self._limit_of(func)
        value = call.number(0, -hi, hi, default=ranges[-1])
        st.meas_range[func] = self._range_for(value, ranges)
        st.meas_auto[func] = False
        return None

    def _meas_auto(self, call: Call, func: str) -> str | None:
        st = self._st(call)
        if call.query:
            return self._bool(st.meas_auto[func])
        st.meas_auto[func] = call.boolean(0)
        return None

    @command(":SENSe[1]:CURRent[:DC]:RANGe[:UPPer]")
    def _sens_curr_range(self, call: Call) -> str | None:
        return self._meas_range(call, "CURR")

    @command(":SENSe[1]:VOLTage[:DC]:RANGe[:UPPer]")
    def _sens_volt_range(self, call: Call) -> str | None:
        return self._meas_range(call, "VOLT")

    @command(":SENSe[1]:CURRent[:DC]:RANGe:AUTO")
    def _sens_curr_auto(self, call: Call) -> str | None:
        return self._meas_auto(call, "CURR")

    @command(":SENSe[1]:VOLTage[:DC]:RANGe:AUTO")
    def _sens_volt_auto(self, call: Call) -> str | None:
        return self._meas_auto(call, "VOLT")

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

    # --- trigger model settings -------------------------------------------------------------
    @staticmethod
    def _layers(table: dict[str, _Layer], call: Call) -> list[_Layer]:
        nodes = [n.upper() for n in call.header.split(":") if n]
        if any(n in ("ACQ", "ACQUIRE") for n in nodes):
            return [table["ACQ"]]
        if any(n in ("TRAN", "TRANSIENT") for n in nodes):
            return [table["TRAN"]]
        return [table["ACQ"], table["TRAN"]]

    def _layer_setting(self, call: Call, arm: bool, what: str) -> str | None:
        st = self._st(call)
        layers = self._layers(st.arm if arm else st.trigger, call)
        first = layers[0]
        if what == "COUNT":
            if call.query:
                if call.args:
                    which = call.choice(0, ["MINimum", "MAXimum", "DEFault"])
                    return str({"MINIMUM": 1, "MAXIMUM": COUNT_MAX, "DEFAULT": 1}[which])
                return str(first.count)
            call.expect_args(1)
            value = call.integer(0, 1, COUNT_MAX, default=1)
            for layer in layers:
                layer.count = value
        elif what == "SOURCE":
            if call.query:
                return {"TIMER": "TIM"}.get(first.source, first.source)
            call.expect_args(1)
            value = call.choice(0, TRIGGER_SOURCES)
            for layer in layers:
                layer.source = value
        elif what == "TIMER":
            if call.query:
                return self._num_query(call, first.timer, TIMER_MIN, TIMER_MAX, TIMER_MIN)
            call.expect_args(1)
            value = call.number(0, TIMER_MIN, TIMER_MAX, default=TIMER_MIN)
            for layer in layers:
                layer.timer = value
        else:  # DELAY
            if call.query:
                return self._num_query(call, first.delay, 0.0, DELAY_MAX, 0.0)
            call.expect_args(1)
            value = call.number(0, 0.0, DELAY_MAX, default=0.0)
            for layer in layers:
                layer.delay = value
        return None

    @command(":TRIGger[1][:ALL]:COUNt")
    @command(":TRIGger[1]:ACQuire:COUNt")
    @command(":TRIGger[1]:TRANsient:COUNt")
    def _trig_count(self, call: Call) -> str | None:
        return self._layer_setting(call, False, "COUNT")

    @command(":TRIGger[1][:ALL]:SOURce[:SIGNal]")
    @command(":TRIGger[1]:ACQuire:SOURce[:SIGNal]")
    @command(":TRIGger[1]:TRANsient:SOURce[:SIGNal]")
    def _trig_source(self, call: Call) -> str | None:
        return self._layer_setting(call, False, "SOURCE")

    @command(":TRIGger[1][:ALL]:TIMer")
    @command(":TRIGger[1]:ACQuire:TIMer")
    @command(":TRIGger[1]:TRANsient:TIMer")
    def _trig_timer(self, call: Call) -> str | None:
        return self._layer_setting(call, False, "TIMER")

    @command(":TRIGger[1][:ALL]:DELay")
    @command(":TRIGger[1]:ACQuire:DELay")
    @command(":TRIGger[1]:TRANsient:DELay")
    def _trig_delay(self, call: Call) -> str | None:
        return self._layer_setting(call, False, "DELAY")

    @command(":ARM[1][:ALL]:COUNt")
    @command(":ARM[1]:ACQuire:COUNt")
    @command(":ARM[1]:TRANsient:COUNt")
    def _arm_count(self, call: Call) -> str | None:
        return self._layer_setting(call, True, "COUNT")

    @command(":ARM[1][:ALL]:SOURce[:SIGNal]")
    @command(":ARM[1]:ACQuire:SOURce[:SIGNal]")
    @command(":ARM[1]:TRANsient:SOURce[:SIGNal]")
    def _arm_source(self, call: Call) -> str | None:
        return self._layer_setting(call, True, "SOURCE")

    @command(":ARM[1][:ALL]:TIMer")
    @command(":ARM[1]:ACQuire:TIMer")
    @command(":ARM[1]:TRANsient:TIMer")
    def _arm_timer(self, call: Call) -> str | None:
        return self._layer_setting(call, True, "TIMER")

    @command(":ARM[1][:ALL]:DELay")
    @command(":ARM[1]:ACQuire:DELay")
    @command(":ARM[1]:TRANsient:DELay")
    def _arm_delay(self, call: Call) -> str | None:
        return self._layer_setting(call, True, "DELAY")

    # --- trigger model actions ----------------------------------------------------------------
    @staticmethod
    def _actions(call: Call) -> tuple[bool, bool]:
        nodes = [n.upper() for n in call.header.split(":") if n]
        if any(n in ("ACQ", "ACQUIRE") for n in nodes):
            return True, False
        if any(n in ("TRAN", "TRANSIENT") for n in nodes):
            return False, True
        return True, True

    @command(":INITiate[:IMMediate][:ALL]", query=False)
    @command(":INITiate[:IMMediate]:ACQuire", query=False)
    @command(":INITiate[:IMMediate]:TRANsient", query=False)
    def _init(self, call: Call) -> None:
        acquire, transient = self._actions(call)
        self._initiate(self._channel_list(call), acquire, transient)

    @command(":ABORt[:ALL]", query=False)
    @command(":ABORt:ACQuire", query=False)
    @command(":ABORt:TRANsient", query=False)
    def _abort(self, call: Call) -> None:
        channels = set(self._channel_list(call))
        for p in [p for p in self._pending if p.number in channels]:
            self._pending.remove(p)
            if p.restore is not None:
                p.channel.set_level(p.restore)

    @command("*TRG", query=False)
    def _trg(self, call: Call) -> None:
        self.bus_trigger()

    @command(":TRIGger[1][:ALL]", query=False)
    @command(":TRIGger[1]:ACQuire", query=False)
    @command(":TRIGger[1]:TRANsient", query=False)
    def _trig_now(self, call: Call) -> None:
        self.bus_trigger(self._channel_list(call))

    # --- data queries -------------------------------------------------------------------
    def _fetch(self, call: Call, array: bool) -> str:
        readings = self._readings(self._channel_list(call))
        if not array:  # the latest reading of each channel
            latest: dict[int, _Reading] = {}
            for c, r in readings:
                latest[c] = r
            readings = list(latest.items())
        return self._emit(self._element_values(readings, self._element_of(call)))

    @command(":FETCh:ARRay", write=False)
    @command(":FETCh:ARRay:CURRent", write=False)
    @command(":FETCh:ARRay:VOLTage", write=False)
    @command(":FETCh:ARRay:RESistance", write=False)
    @command(":FETCh:ARRay:TIME", write=False)
    @command(":FETCh:ARRay:STATus", write=False)
    @command(":FETCh:ARRay:SOURce", write=False)
    def _fetch_array(self, call: Call) -> str:
        return self._fetch(call, True)

    @command(":FETCh[:SCALar]", write=False)
    @command(":FETCh[:SCALar]:CURRent", write=False)
    @command(":FETCh[:SCALar]:VOLTage", write=False)
    @command(":FETCh[:SCALar]:RESistance", write=False)
    @command(":FETCh[:SCALar]:TIME", write=False)
    @command(":FETCh[:SCALar]:STATus", write=False)
    @command(":FETCh[:SCALar]:SOURce", write=False)
    def _fetch_scalar(self, call: Call) -> str:
        return self._fetch(call, False)

    @command(":READ:ARRay", write=False)
    @command(":READ:ARRay:CURRent", write=False)
    @command(":READ:ARRay:VOLTage", write=False)
    @command(":READ:ARRay:RESistance", write=False)
    @command(":READ:ARRay:TIME", write=False)
    @command(":READ:ARRay:STATus", write=False)
    @command(":READ:ARRay:SOURce", write=False)
    def _read_array(self, call: Call) -> str:
        self._initiate(self._channel_list(call))
        return self._fetch(call, True)

    @command(":READ[:SCALar]", write=False)
    @command(":READ[:SCALar]:CURRent", write=False)
    @command(":READ[:SCALar]:VOLTage", write=False)
    @command(":READ[:SCALar]:RESistance", write=False)
    @command(":READ[:SCALar]:TIME", write=False)
    @command(":READ[:SCALar]:STATus", write=False)
    @command(":READ[:SCALar]:SOURce", write=False)
    def _read_scalar(self, call: Call) -> str:
        self._initiate(self._channel_list(call))
        return self._fetch(call, False)

    @command(":MEASure", write=False)
    @command(":MEASure:CURRent[:DC]", write=False)
    @command(":MEASure:VOLTage[:DC]", write=False)
    @command(":MEASure:RESistance", write=False)
    def _measure(self, call: Call) -> str:
        """Spot measurement: one source-measure action at the present output."""
        channels = self._channel_list(call)
        element = self._element_of(call)
        for c in channels:
            if element in ("VOLT", "CURR", "RES"):
                self.state[c].sense_funcs.add(element)
        self._initiate(channels, spot=True)
        return self._emit(self._element_values(self._readings(channels), element))

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

    @command(":SYSTem:BEEPer[:STATe]")
    def _beeper(self, call: Call) -> str | None:
        if call.query:
            return self._bool(self.beeper)
        self.beeper = call.boolean(0)
        return None

    @command(":SYSTem:PRESet", query=False)
    def _preset(self, call: Call) -> None:
        self.reset()


__all__ = ["KeysightB2902", "ELEMENTS", "NOT_A_NUMBER", "OVERFLOW", "PULSE_WIDTH_MIN", "PULSE_WIDTH_MAX"]
