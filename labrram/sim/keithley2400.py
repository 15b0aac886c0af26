"""Keithley 2400 SourceMeter emulator (SCPI, as the 2400 Series User's Manual defines it).

The command tree is the manual's (section 18), kept as data in ``keithley2400_commands.csv``:
every row parses; rows marked ``emulated`` have handlers here or in
:mod:`labrram.sim.keithley2400_trigger` (trigger model, trace buffer, CALC3 statistics, data
formats); rows marked ``stored`` are validated, stored and answered by the SCPI engine but have
no simulated physics (limit tests, math expressions, digital I/O, display text).

Emulated: source (function, fixed / list / sweep modes with start/stop/step/span/center, linear
or logarithmic, up or down, triggered levels, ranges, delay, auto output-off), sense (functions,
compliance, ranges, NPLC, filter, manual / auto ohms), ``:FORM:ELEM``, ``:OUTP``, ``:CONF``,
``:INIT`` / ``:READ?`` / ``:FETC?`` / ``:MEAS?``, the trigger model, the trace buffer, auto
zero, the IEEE 488.2 status model and STATus subsystem (shared SCPI engine), ``*SAV``/``*RCL``,
and the ``*RST`` defaults of the manual's tables 18-4..18-9.

Timing on the virtual clock per reading: source delay + NPLC / line frequency, tripled with auto
zero on (the 2400 then also measures its reference and zero), plus the trigger delay and the
link's transaction cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .instrument import SourceChannel
from .keithley2400_system import System2400
from .keithley2400_trigger import ELEMENTS, MEAS_COMPLIANCE, TriggerModel2400
from .scpi import (
    DATA_OUT_OF_RANGE,
    SETTINGS_CONFLICT,
    Call,
    ScpiInstrument,
    command,
    error,
    format_nr3,
)

NOT_MEASURED = 9.91e37
OVERFLOW = 9.9e37
OUTPUT_OFF_ERROR = (803, "Output disabled")
VOLTAGE_RANGES = (0.21, 2.1, 21.0, 210.0)
CURRENT_RANGES = (1.05e-6, 10.5e-6, 105e-6, 1.05e-3, 10.5e-3, 105e-3, 1.05)
RESISTANCE_RANGES = (21.0, 210.0, 2.1e3, 21e3, 210e3, 2.1e6, 21e6, 210e6)


@dataclass
class _State:
    """Source, sense and system settings at their ``*RST`` values."""

    source_func: str = "VOLT"
    source_mode: dict[str, str] = field(default_factory=lambda: {"VOLT": "FIX", "CURR": "FIX"})
    volt_range: float = 21.0
    volt_auto_range: bool = True
    curr_range: float = 105e-6
    curr_auto_range: bool = True
    trig_level: dict[str, float | None] = field(default_factory=lambda: {"VOLT": None, "CURR": None})
    volt_list: list[float] = field(default_factory=lambda: [0.0])
    curr_list: list[float] = field(default_factory=lambda: [0.0])
    sweep_start: dict[str, float] = field(default_factory=lambda: {"VOLT": 0.0, "CURR": 0.0})
    sweep_stop: dict[str, float] = field(default_factory=lambda: {"VOLT": 0.0, "CURR": 0.0})
    sweep_points: int = 2500
    sweep_spacing: str = "LIN"
    sweep_direction: str = "UP"
    source_delay: float = 0.001
    source_delay_auto: bool = True
    sense_funcs: set[str] = field(default_factory=lambda: {"CURR"})
    concurrent: bool = True
    prot_curr: float = 105e-6
    prot_volt: float = 21.0
    nplc: dict[str, float] = field(default_factory=lambda: {"VOLT": 1.0, "CURR": 1.0, "RES": 1.0})
    sense_range: dict[str, float] = field(default_factory=lambda: {"VOLT": 21.0, "CURR": 105e-6, "RES": 210e3})
    sense_auto: dict[str, bool] = field(default_factory=lambda: {"VOLT": True, "CURR": True, "RES": True})
    res_mode: str = "AUTO"
    elements: list[str] = field(default_factory=lambda: list(ELEMENTS))
    auto_zero: bool = True
    filter_on: bool = False
    filter_count: int = 10
    filter_type: str = "REP"
    auto_output_off: bool = False
    terminals: str = "FRON"
    remote_sense: bool = False
    beeper: bool = True
    display: bool = True
    line_freq: float = 60.0
    tripped: bool = False


class Keithley2400(System2400, TriggerModel2400, ScpiInstrument):
    """Byte-level Keithley 2400 emulator. The SMU terminals are a :class:`SourceChannel`."""

    vendor = "KEITHLEY INSTRUMENTS INC."
    model = "MODEL 2400"
    command_file = "keithley2400_commands.csv"
    status_summary_bits = {"MEAS": 0, "QUES": 3, "OPER": 7}  # manual, status byte: MSB, QSB, OSB
    status_transition_filters = False  # the 2400's registers have no PTR/NTR

    def __init__(self, bench, name, link, serial="4123456") -> None:
        super().__init__(bench, name, link, serial)
        self.channel = SourceChannel(bench.clock)
        self.saved_setups: dict[int, tuple] = {}
        self.last_key = 0
        self.reset()

    def idn(self) -> str:
        return f"{self.vendor},{self.model},{self.serial},C32   Oct  4 2010 14:20:11/A02  /S/K"

    def reset(self) -> None:
        self.channel.set_output(False)
        self.channel.reset()
        self.s = _State()
        self.channel.limit_i = self.s.prot_curr
        self.channel.limit_v = self.s.prot_volt
        self._t0 = self.clock.now
        self.clear_table_values()
        self.reset_trigger_model()

    def shutdown(self) -> None:
        self.channel.set_output(False)

    # --- helpers ------------------------------------------------------------------------
    def _reading_time(self) -> float:
        s = self.s
        funcs = s.sense_funcs or {"CURR"}
        nplc = max(s.nplc[f] for f in funcs)
        t_meas = nplc / s.line_freq * (3.0 if s.auto_zero else 1.0)
        return (s.source_delay if s.source_delay > 0 else 0.0) + t_meas + 50e-6

    def _source_points(self) -> list[float]:
        s = self.s
        f = s.source_func
        mode = s.source_mode[f]
        if mode == "LIST":
            return list(s.volt_list if f == "VOLT" else s.curr_list)
        if mode == "SWE":
            a, b, n = s.sweep_start[f], s.sweep_stop[f], s.sweep_points
            if s.sweep_spacing == "LOG":
                if a == 0 or b == 0 or (a > 0) != (b > 0):
                    raise error(SETTINGS_CONFLICT, "a log sweep needs start and stop of one sign, not 0")
                pts = list(np.geomspace(a, b, n))
            else:
                pts = list(np.linspace(a, b, n))
            return pts[::-1] if s.sweep_direction == "DOWN" else pts
        level = self.channel.level_v if f == "VOLT" else self.channel.level_i
        return [level]

    def _source_action(self, point: float | None) -> None:
        """The trigger model's source action: next sweep/list point, or a pending triggered level."""
        s, ch = self.s, self.channel
        f = s.source_func
        if point is not None:
            ch.set_level(point)
        elif s.trig_level[f] is not None:
            ch.set_level(s.trig_level[f])
            s.trig_level[f] = None
        if s.auto_output_off and not ch.output:
            ch.set_output(True)
            self.bench.after_output_change()

    def _measure_once(self) -> list[float]:
        """One measure action: source delay and integration on the clock, then the reading."""
        v, i = self.channel.measure(self._reading_time())
        reading = self._reading(v, i)
        self.registers["MEAS"].set_bits(MEAS_COMPLIANCE, self.channel.in_compliance)
        if self.s.auto_output_off and self.stored(":SOURce:CLEar:AUTO:MODE") == "ALW":
            self.channel.set_output(False)
            self.bench.after_output_change()
        return reading

    def _reading(self, v: float, i: float) -> list[float]:
        s = self.s
        src = s.source_func
        volt = v if (src == "VOLT" or "VOLT" in s.sense_funcs) else NOT_MEASURED
        curr = i if (src == "CURR" or "CURR" in s.sense_funcs) else NOT_MEASURED
        if "RES" in s.sense_funcs:
            if i == 0:
                res = OVERFLOW
            elif s.res_mode == "MAN":
                res = v / i  # manual ohms: the sourced and measured values, signed
            else:
                res = abs(v / i)
        else:
            res = NOT_MEASURED
        # the status word (manual, ":FORMat:ELEMents" STATus bits)
        status = 0
        if s.filter_on:
            status |= 1 << 1
        if s.terminals == "FRON":
            status |= 1 << 2
        if self.channel.in_compliance:
            status |= 1 << 3
        if "RES" in s.sense_funcs and s.res_mode == "AUTO":
            status |= 1 << 10  # auto ohms
        for bit, func in ((11, "VOLT"), (12, "CURR"), (13, "RES")):
            if func in s.sense_funcs:
                status |= 1 << bit
        status |= 1 << (14 if src == "VOLT" else 15)  # V-source / I-source
        if s.remote_sense:
            status |= 1 << 22
        return [volt, curr, res, self.clock.now - self._t0, float(status)]

    # --- output ------------------------------------------------------------------------
    @command(":OUTPut[1][:STATe]")
    def _outp(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.channel.output else "0"
        call.expect_args(1)
        on = call.boolean(0)
        if not on:
            self._abort()
        self.channel.set_output(on)
        self.bench.after_output_change()
        return None

    # --- source ------------------------------------------------------------------------
    @command("[:SOURce[1]]:FUNCtion[:MODE]")
    def _sour_func(self, call: Call) -> str | None:
        if call.query:
            return self.s.source_func
        f = call.choice(0, ["VOLTage", "CURRent", "MEMory"])[:4]
        if f == "MEMO":
            raise error(SETTINGS_CONFLICT, "source-memory sweeps are not emulated")
        self.s.source_func = f
        self.channel.set_mode(f)
        return None

    def _check_range(self, func: str, value: float) -> None:
        s = self.s
        if func == "VOLT" and not s.volt_auto_range and abs(value) > s.volt_range * 1.0001:
            raise error(DATA_OUT_OF_RANGE, "level beyond the fixed source range")
        if func == "CURR" and not s.curr_auto_range and abs(value) > s.curr_range * 1.0001:
            raise error(DATA_OUT_OF_RANGE, "level beyond the fixed source range")

    def _level(self, call: Call, func: str) -> str | None:
        ch = self.channel
        if call.query:
            return format_nr3(ch.level_v if func == "VOLT" else ch.level_i)
        call.expect_args(1)
        hi = 210.0 if func == "VOLT" else 1.05
        value = call.number(0, -hi, hi, default=0.0)
        self._check_range(func, value)
        if ch.mode == func:
            ch.set_level(value)
        elif func == "VOLT":
            ch.level_v = value
        else:
            ch.level_i = value
        return None

    @command("[:SOURce[1]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    def _sour_volt(self, call: Call) -> str | None:
        return self._level(call, "VOLT")

    @command("[:SOURce[1]]:CURRent[:LEVel][:IMMediate][:AMPLitude]")
    def _sour_curr(self, call: Call) -> str | None:
        return self._level(call, "CURR")

    def _trig_level(self, call: Call, func: str) -> str | None:
        s = self.s
        if call.query:
            pending = s.trig_level[func]
            now = self.channel.level_v if func == "VOLT" else self.channel.level_i
            return format_nr3(now if pending is None else pending)
        hi = 210.0 if func == "VOLT" else 1.05
        value = call.number(0, -hi, hi, default=0.0)
        self._check_range(func, value)
        s.trig_level[func] = value
        return None

    @command("[:SOURce[1]]:VOLTage[:LEVel]:TRIGgered[:AMPLitude]")
    def _sour_volt_trig(self, call: Call) -> str | None:
        return self._trig_level(call, "VOLT")

    @command("[:SOURce[1]]:CURRent[:LEVel]:TRIGgered[:AMPLitude]")
    def _sour_curr_trig(self, call: Call) -> str | None:
        return self._trig_level(call, "CURR")

    def _mode(self, call: Call, func: str) -> str | None:
        if call.query:
            return self.s.source_mode[func]
        self.s.source_mode[func] = {"FIXED": "FIX", "LIST": "LIST", "SWEEP": "SWE"}[call.choice(0, ["FIXed", "LIST", "SWEep"])]
        return None

    @command("[:SOURce[1]]:VOLTage:MODE")
    def _sour_volt_mode(self, call: Call) -> str | None:
        return self._mode(call, "VOLT")

    @command("[:SOURce[1]]:CURRent:MODE")
    def _sour_curr_mode(self, call: Call) -> str | None:
        return self._mode(call, "CURR")

    def _range(self, call: Call, func: str, ranges: tuple[float, ...]) -> str | None:
        s = self.s
        attr = "volt_range" if func == "VOLT" else "curr_range"
        if call.query:
            return format_nr3(getattr(s, attr))
        call.expect_args(1)
        raw = call.args[0].strip().upper()
        now = ranges.index(getattr(s, attr))
        if raw == "UP":
            value = ranges[min(now + 1, len(ranges) - 1)]
        elif raw == "DOWN":
            value = ranges[max(now - 1, 0)]
        elif raw in ("MIN", "MINIMUM"):
            value = ranges[0]
        else:
            hi = ranges[-1]
            value = abs(call.number(0, -hi, hi, default=ranges[2] if func == "CURR" else 21.0))
        setattr(s, attr, min(r for r in ranges if r >= value * 0.9999))
        setattr(s, "volt_auto_range" if func == "VOLT" else "curr_auto_range", False)
        return None

    @command("[:SOURce[1]]:VOLTage:RANGe[:UPPer]")
    def _sour_volt_range(self, call: Call) -> str | None:
        return self._range(call, "VOLT", VOLTAGE_RANGES)

    @command("[:SOURce[1]]:CURRent:RANGe[:UPPer]")
    def _sour_curr_range(self, call: Call) -> str | None:
        return self._range(call, "CURR", CURRENT_RANGES)

    def _flag(self, call: Call, attr: str) -> str | None:
        if call.query:
            return "1" if getattr(self.s, attr) else "0"
        call.expect_args(1)
        setattr(self.s, attr, call.boolean(0))
        return None

    @command("[:SOURce[1]]:VOLTage:RANGe:AUTO")
    def _sour_volt_range_auto(self, call: Call) -> str | None:
        return self._flag(call, "volt_auto_range")

    @command("[:SOURce[1]]:CURRent:RANGe:AUTO")
    def _sour_curr_range_auto(self, call: Call) -> str | None:
        return self._flag(call, "curr_auto_range")

    def _list(self, call: Call, func: str, append: bool = False) -> str | None:
        attr = "volt_list" if func == "VOLT" else "curr_list"
        if call.query:
            return ",".join(format_nr3(v) for v in getattr(self.s, attr))
        hi = 210.0 if func == "VOLT" else 1.05
        values = call.numbers(-hi, hi)
        values = (getattr(self.s, attr) + values) if append else values
        if len(values) > 100:
            raise error(DATA_OUT_OF_RANGE, "a source list holds at most 100 points")
        setattr(self.s, attr, values)
        return None

    @command("[:SOURce[1]]:LIST:VOLTage")
    def _list_volt(self, call: Call) -> str | None:
        return self._list(call, "VOLT")

    @command("[:SOURce[1]]:LIST:CURRent")
    def _list_curr(self, call: Call) -> str | None:
        return self._list(call, "CURR")

    @command("[:SOURce[1]]:LIST:VOLTage:APPend", query=False)
    def _list_volt_app(self, call: Call) -> None:
        self._list(call, "VOLT", append=True)

    @command("[:SOURce[1]]:LIST:CURRent:APPend", query=False)
    def _list_curr_app(self, call: Call) -> None:
        self._list(call, "CURR", append=True)

    @command("[:SOURce[1]]:LIST:VOLTage:POINts", write=False)
    def _list_volt_points(self, call: Call) -> str:
        return str(len(self.s.volt_list))

    @command("[:SOURce[1]]:LIST:CURRent:POINts", write=False)
    def _list_curr_points(self, call: Call) -> str:
        return str(len(self.s.curr_list))

    # sweeps: start/stop and center/span describe the same line; step and points are coupled
    def _sweep(self, call: Call, func: str, what: str) -> str | None:
        s = self.s
        a, b = s.sweep_start[func], s.sweep_stop[func]
        if call.query:
            value = {"STAR": a, "STOP": b, "CENT": (a + b) / 2, "SPAN": b - a,
                     "STEP": (b - a) / (s.sweep_points - 1)}[what]  # fmt: skip
            return format_nr3(value)
        hi = 210.0 if func == "VOLT" else 1.05
        span_hi = 2 * hi
        if what in ("STAR", "STOP", "CENT"):
            value = call.number(0, -hi, hi, default=0.0)
        else:
            value = call.number(0, -span_hi, span_hi, default=0.0)
        if what == "STAR":
            s.sweep_start[func] = value
        elif what == "STOP":
            s.sweep_stop[func] = value
        elif what == "CENT":
            half = (b - a) / 2
            s.sweep_start[func], s.sweep_stop[func] = value - half, value + half
        elif what == "SPAN":
            c = (a + b) / 2
            s.sweep_start[func], s.sweep_stop[func] = c - value / 2, c + value / 2
        else:  # STEP sets the point count
            if value == 0 or (b - a) / value < 0:
                raise error(DATA_OUT_OF_RANGE, "the step must have the sign of stop - start")
            s.sweep_points = int(min(max(round(abs((b - a) / value)) + 1, 2), 2500))
        return None

    @command("[:SOURce[1]]:VOLTage:STARt")
    def _volt_start(self, call: Call) -> str | None:
        return self._sweep(call, "VOLT", "STAR")

    @command("[:SOURce[1]]:VOLTage:STOP")
    def _volt_stop(self, call: Call) -> str | None:
        return self._sweep(call, "VOLT", "STOP")

    @command("[:SOURce[1]]:VOLTage:CENTer")
    def _volt_center(self, call: Call) -> str | None:
        return self._sweep(call, "VOLT", "CENT")

    @command("[:SOURce[1]]:VOLTage:SPAN")
    def _volt_span(self, call: Call) -> str | None:
        return self._sweep(call, "VOLT", "SPAN")

    @command("[:SOURce[1]]:VOLTage:STEP")
    def _volt_step(self, call: Call) -> str | None:
        return self._sweep(call, "VOLT", "STEP")

    @command("[:SOURce[1]]:CURRent:STARt")
    def _curr_start(self, call: Call) -> str | None:
        return self._sweep(call, "CURR", "STAR")

    @command("[:SOURce[1]]:CURRent:STOP")
    def _curr_stop(self, call: Call) -> str | None:
        return self._sweep(call, "CURR", "STOP")

    @command("[:SOURce[1]]:CURRent:CENTer")
    def _curr_center(self, call: Call) -> str | None:
        return self._sweep(call, "CURR", "CENT")

    @command("[:SOURce[1]]:CURRent:SPAN")
    def _curr_span(self, call: Call) -> str | None:
        return self._sweep(call, "CURR", "SPAN")

    @command("[:SOURce[1]]:CURRent:STEP")
    def _curr_step(self, call: Call) -> str | None:
        return self._sweep(call, "CURR", "STEP")

    @command("[:SOURce[1]]:SWEep:POINts")
    def _swe_points(self, call: Call) -> str | None:
        if call.query:
            return str(self.s.sweep_points)
        self.s.sweep_points = call.integer(0, 2, 2500, default=2500)
        return None

    @command("[:SOURce[1]]:SWEep:SPACing")
    def _swe_spacing(self, call: Call) -> str | None:
        if call.query:
            return self.s.sweep_spacing
        self.s.sweep_spacing = "LOG" if call.choice(0, ["LINear", "LOGarithmic"]) == "LOGARITHMIC" else "LIN"
        return None

    @command("[:SOURce[1]]:SWEep:DIRection")
    def _swe_direction(self, call: Call) -> str | None:
        if call.query:
            return self.s.sweep_direction
        self.s.sweep_direction = call.choice(0, ["UP", "DOWN"])
        return None

    @command("[:SOURce[1]]:DELay")
    def _sour_delay(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.s.source_delay)
        self.s.source_delay = call.number(0, 0.0, 9999.999, default=0.001)
        self.s.source_delay_auto = False
        return None

    @command("[:SOURce[1]]:DELay:AUTO")
    def _sour_delay_auto(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.s.source_delay_auto else "0"
        self.s.source_delay_auto = call.boolean(0)
        if self.s.source_delay_auto:
            self.s.source_delay = 0.001
        return None

    @command("[:SOURce[1]]:CLEar[:IMMediate]", query=False)
    def _sour_clear(self, call: Call) -> None:
        self.channel.set_output(False)
        self.bench.after_output_change()

    @command("[:SOURce[1]]:CLEar:AUTO")
    def _sour_clear_auto(self, call: Call) -> str | None:
        return self._flag(call, "auto_output_off")

    # --- sense -------------------------------------------------------------------------
    _FUNC_NAMES = {"VOLT": "VOLT:DC", "CURR": "CURR:DC", "RES": "RES"}

    def _parse_funcs(self, call: Call) -> list[str]:
        if not call.args:
            raise error(-109, "Missing parameter")
        out = []
        for k in range(len(call.args)):
            name = call.string(k).upper().replace(":DC", "")
            canon = {"VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR", "RES": "RES", "RESISTANCE": "RES"}.get(name)
            if canon is None:
                raise error(-224, f"unknown function {name!r}")
            out.append(canon)
        return out

    def _func_list(self, funcs: set[str]) -> str:
        return ",".join(f'"{self._FUNC_NAMES[f]}"' for f in ("VOLT", "CURR", "RES") if f in funcs)

    @command("[:SENSe[1]]:FUNCtion[:ON]")
    def _sens_func(self, call: Call) -> str | None:
        if call.query:
            return self._func_list(self.s.sense_funcs)
        funcs = self._parse_funcs(call)
        if self.s.concurrent:
            self.s.sense_funcs |= set(funcs)
        else:
            self.s.sense_funcs = {funcs[-1]}
        return None

    @command("[:SENSe[1]]:FUNCtion:OFF")
    def _sens_func_off(self, call: Call) -> str | None:
        if call.query:
            return self._func_list({"VOLT", "CURR", "RES"} - self.s.sense_funcs)
        self.s.sense_funcs -= set(self._parse_funcs(call))
        return None

    @command("[:SENSe[1]]:FUNCtion:OFF:ALL", query=False)
    def _sens_func_off_all(self, call: Call) -> None:
        self.s.sense_funcs = set()

    @command("[:SENSe[1]]:FUNCtion[:ON]:ALL", query=False)
    def _sens_func_on_all(self, call: Call) -> None:
        if not self.s.concurrent:
            raise error(SETTINGS_CONFLICT, "concurrent measurements are off")
        self.s.sense_funcs = {"VOLT", "CURR", "RES"}

    @command("[:SENSe[1]]:FUNCtion[:ON]:COUNt", write=False)
    def _sens_func_count(self, call: Call) -> str:
        return str(len(self.s.sense_funcs))

    @command("[:SENSe[1]]:FUNCtion:OFF:COUNt", write=False)
    def _sens_func_off_count(self, call: Call) -> str:
        return str(3 - len(self.s.sense_funcs))

    @command("[:SENSe[1]]:FUNCtion:STATe", write=False)
    def _sens_func_state(self, call: Call) -> str:
        return "1" if self._parse_funcs(call)[0] in self.s.sense_funcs else "0"

    @command("[:SENSe[1]]:FUNCtion:CONCurrent")
    def _sens_func_conc(self, call: Call) -> str | None:
        return self._flag(call, "concurrent")

    @command("[:SENSe[1]]:CURRent[:DC]:PROTection[:LEVel]")
    def _prot_curr(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.s.prot_curr)
        self.s.prot_curr = abs(call.number(0, -1.05, 1.05, default=105e-6))
        self.channel.limit_i = self.s.prot_curr
        return None

    @command("[:SENSe[1]]:CURRent[:DC]:PROTection:TRIPped", write=False)
    def _prot_curr_trip(self, call: Call) -> str:
        return "1" if (self.s.tripped and self.s.source_func == "VOLT") else "0"

    @command("[:SENSe[1]]:VOLTage[:DC]:PROTection[:LEVel]")
    def _prot_volt(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.s.prot_volt)
        self.s.prot_volt = abs(call.number(0, -210.0, 210.0, default=21.0))
        self.channel.limit_v = self.s.prot_volt
        return None

    @command("[:SENSe[1]]:VOLTage[:DC]:PROTection:TRIPped", write=False)
    def _prot_volt_trip(self, call: Call) -> str:
        return "1" if (self.s.tripped and self.s.source_func == "CURR") else "0"

    @command("[:SENSe[1]]:CURRent[:DC]:NPLCycles")
    @command("[:SENSe[1]]:VOLTage[:DC]:NPLCycles")
    @command("[:SENSe[1]]:RESistance:NPLCycles")
    def _nplc(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.s.nplc["CURR"])
        value = call.number(0, 0.01, 10.0, default=1.0)
        for key in self.s.nplc:  # the 2400 has one integration time for all functions
            self.s.nplc[key] = value
        return None

    def _sense_range(self, call: Call, func: str) -> str | None:
        s = self.s
        ranges = {"VOLT": VOLTAGE_RANGES, "CURR": CURRENT_RANGES, "RES": RESISTANCE_RANGES}[func]
        if call.query:
            return format_nr3(s.sense_range[func])
        call.expect_args(1)
        raw = call.args[0].strip().upper()
        now = min(range(len(ranges)), key=lambda k: abs(ranges[k] - s.sense_range[func]))
        if raw in ("UP", "DOWN"):
            value = ranges[min(now + 1, len(ranges) - 1)] if raw == "UP" else ranges[max(now - 1, 0)]
        elif raw in ("MIN", "MINIMUM"):
            value = ranges[0]
        else:
            hi = ranges[-1]
            value = abs(call.number(0, -hi if func != "RES" else 0.0, hi, default=hi))
        s.sense_range[func] = min(r for r in ranges if r >= value * 0.9999)
        s.sense_auto[func] = False
        return None

    def _sense_auto(self, call: Call, func: str) -> str | None:
        if call.query:
            return "1" if self.s.sense_auto[func] else "0"
        self.s.sense_auto[func] = call.boolean(0)
        return None

    @command("[:SENSe[1]]:CURRent[:DC]:RANGe[:UPPer]")
    def _rng_curr(self, call: Call) -> str | None:
        return self._sense_range(call, "CURR")

    @command("[:SENSe[1]]:CURRent[:DC]:RANGe:AUTO")
    def _rng_curr_auto(self, call: Call) -> str | None:
        return self._sense_auto(call, "CURR")

    @command("[:SENSe[1]]:VOLTage[:DC]:RANGe[:UPPer]")
    def _rng_volt(self, call: Call) -> str | None:
        return self._sense_range(call, "VOLT")

    @command("[:SENSe[1]]:VOLTage[:DC]:RANGe:AUTO")
    def _rng_volt_auto(self, call: Call) -> str | None:
        return self._sense_auto(call, "VOLT")

    @command("[:SENSe[1]]:RESistance:RANGe[:UPPer]")
    def _rng_res(self, call: Call) -> str | None:
        return self._sense_range(call, "RES")

    @command("[:SENSe[1]]:RESistance:RANGe:AUTO")
    def _rng_res_auto(self, call: Call) -> str | None:
        return self._sense_auto(call, "RES")

    @command("[:SENSe[1]]:RESistance:MODE")
    def _res_mode(self, call: Call) -> str | None:
        if call.query:
            return self.s.res_mode
        self.s.res_mode = "MAN" if call.choice(0, ["MANual", "AUTO"]) == "MANUAL" else "AUTO"
        return None

    @command("[:SENSe[1]]:AVERage[:STATe]")
    def _avg(self, call: Call) -> str | None:
        return self._flag(call, "filter_on")

    @command("[:SENSe[1]]:AVERage:COUNt")
    def _avg_count(self, call: Call) -> str | None:
        if call.query:
            return str(self.s.filter_count)
        self.s.filter_count = call.integer(0, 1, 100, default=10)
        return None

    @command("[:SENSe[1]]:AVERage:TCONtrol")
    def _avg_tcon(self, call: Call) -> str | None:
        if call.query:
            return self.s.filter_type
        self.s.filter_type = "MOV" if call.choice(0, ["REPeat", "MOVing"]) == "MOVING" else "REP"
        return None

    # --- format elements ------------------------------------------------------------------
    @command(":FORMat:ELEMents[:SENSe[1]]")
    def _form_elem(self, call: Call) -> str | None:
        if call.query:
            return ",".join("".join(ch for ch in e if ch.isupper()) for e in self.s.elements)
        if not call.args:
            raise error(-109, "Missing parameter")
        chosen = []
        for k in range(len(call.args)):
            name = call.choice(k, ELEMENTS)
            chosen.append(next(e for e in ELEMENTS if e.upper() == name))
        self.s.elements = [e for e in ELEMENTS if e in chosen]  # always in the fixed order
        return None

    @command(":FORMat:ELEMents:CALCulate")
    def _form_elem_calc(self, call: Call) -> str | None:
        if call.query:
            return "CALC"
        for k in range(len(call.args) or 1):
            call.choice(k, ["CALCulate", "TIME", "STATus"])
        return None
