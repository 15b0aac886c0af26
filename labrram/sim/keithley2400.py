"""Keithley 2400 SourceMeter emulator (SCPI, as the 2400 Series User's Manual defines it).

Implemented subsystems: source (function, fixed / list / sweep modes, levels, ranges, delay),
sense (functions, compliance/protection, ranges, NPLC), ``:FORM:ELEM``, ``:OUTP``, trigger and
arm counts, ``:INIT`` / ``:READ?`` / ``:FETC?`` / ``:MEAS?``, the trace buffer, auto zero,
``:SYST:ERR?`` and the ``*RST`` defaults of the manual's tables 18-4..18-9.

Timing on the virtual clock per reading: source delay + NPLC / line frequency, tripled with auto
zero on (the 2400 then also measures its reference and zero), plus the link's transaction cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .instrument import SourceChannel
from .scpi import (
    DATA_OUT_OF_RANGE,
    EXECUTION_ERROR,
    SETTINGS_CONFLICT,
    Call,
    ScpiInstrument,
    command,
    error,
    format_nr3,
)

NOT_MEASURED = 9.91e37
ELEMENTS = ("VOLTage", "CURRent", "RESistance", "TIME", "STATus")
OUTPUT_OFF_ERROR = (803, "Output disabled")

# Measurement event register bits (2400 Series manual, status structure).
MEAS_READING_AVAILABLE = 1 << 6
MEAS_READING_OVERFLOW = 1 << 7
MEAS_BUFFER_AVAILABLE = 1 << 8
MEAS_BUFFER_FULL = 1 << 9
MEAS_COMPLIANCE = 1 << 14


@dataclass
class _State:
    source_func: str = "VOLT"
    source_mode: dict[str, str] = field(default_factory=lambda: {"VOLT": "FIX", "CURR": "FIX"})
    volt_range: float = 21.0
    volt_auto_range: bool = True
    curr_range: float = 105e-6
    curr_auto_range: bool = True
    volt_list: list[float] = field(default_factory=lambda: [0.0])
    curr_list: list[float] = field(default_factory=lambda: [0.0])
    sweep_start: dict[str, float] = field(default_factory=lambda: {"VOLT": 0.0, "CURR": 0.0})
    sweep_stop: dict[str, float] = field(default_factory=lambda: {"VOLT": 0.0, "CURR": 0.0})
    sweep_points: int = 2500
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
    data_format: str = "ASC"
    trig_count: int = 1
    arm_count: int = 1
    trig_delay: float = 0.0
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
    trace_points: int = 100
    trace_feed: str = "SENS"
    trace_control: str = "NEV"
    trace: list[list[float]] = field(default_factory=list)
    last: list[list[float]] = field(default_factory=list)
    tripped: bool = False


class Keithley2400(ScpiInstrument):
    """Byte-level Keithley 2400 emulator. The SMU terminals are a :class:`SourceChannel`."""

    vendor = "KEITHLEY INSTRUMENTS INC."
    model = "MODEL 2400"
    status_summary_bits = {"MEAS": 0, "QUES": 3, "OPER": 7}  # manual, status byte: MSB, QSB, OSB
    status_transition_filters = False  # the 2400's registers have no PTR/NTR

    def __init__(self, bench, name, link, serial="4123456") -> None:
        super().__init__(bench, name, link, serial)
        self.channel = SourceChannel(bench.clock)
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
            return list(np.linspace(s.sweep_start[f], s.sweep_stop[f], s.sweep_points))
        level = self.channel.level_v if f == "VOLT" else self.channel.level_i
        return [level]

    def _acquire(self) -> list[list[float]]:
        """Run the trigger model: arm count x trigger count readings."""
        s = self.s
        if not self.channel.output:
            raise error(OUTPUT_OFF_ERROR[0], OUTPUT_OFF_ERROR[1])
        n = s.arm_count * s.trig_count
        if n > 2500:
            raise error(SETTINGS_CONFLICT, "arm count x trigger count > 2500")
        points = self._source_points()
        fixed = s.source_mode[s.source_func] == "FIX"
        readings = []
        saved = self.channel.level_v if s.source_func == "VOLT" else self.channel.level_i
        tripped = False
        meas = self.registers["MEAS"]
        for k in range(n):
            if not fixed:
                self.channel.set_level(points[k % len(points)])
            v, i = self.channel.measure(self._reading_time())
            tripped |= self.channel.in_compliance
            readings.append(self._reading(v, i))
            meas.set_bits(MEAS_COMPLIANCE, self.channel.in_compliance)
            meas.pulse(MEAS_READING_AVAILABLE)
        if not fixed:
            self.channel.set_level(saved)
        s.tripped = tripped
        s.last = readings
        if s.trace_control == "NEXT":
            room = s.trace_points - len(s.trace)
            s.trace.extend(readings[: max(room, 0)])
            if s.trace:
                meas.set_bits(MEAS_BUFFER_AVAILABLE)
            if len(s.trace) >= s.trace_points:
                s.trace_control = "NEV"
                meas.set_bits(MEAS_BUFFER_FULL)
        if s.auto_output_off:
            self.channel.set_output(False)
        return readings

    def _reading(self, v: float, i: float) -> list[float]:
        s = self.s
        src = s.source_func
        volt = v if (src == "VOLT" or "VOLT" in s.sense_funcs) else NOT_MEASURED
        curr = i if (src == "CURR" or "CURR" in s.sense_funcs) else NOT_MEASURED
        if "RES" in s.sense_funcs:
            res = abs(v / i) if i != 0 else 9.9e37
        else:
            res = NOT_MEASURED
        status = 0
        if self.channel.in_compliance:
            status |= 1 << 3  # compliance
        return [volt, curr, res, self.clock.now - self._t0, float(status)]

    def _format(self, readings: list[list[float]]) -> str:
        idx = [ELEMENTS.index(e) for e in self.s.elements]
        out = []
        for r in readings:
            for k in idx:
                out.append(format_nr3(r[k]))
        return ",".join(out)

    # --- output ------------------------------------------------------------------------
    @command(":OUTPut[1][:STATe]")
    def _outp(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.channel.output else "0"
        call.expect_args(1)
        on = call.boolean(0)
        self.channel.set_output(on)
        self.bench.after_output_change()
        return None

    @command(":OUTPut[1]:SMODe")
    def _outp_smode(self, call: Call) -> str | None:
        if call.query:
            return "NORM"
        call.choice(0, ["NORMal", "HIMPedance", "ZERO", "GUARd"])
        return None

    # --- source ------------------------------------------------------------------------
    @command("[:SOURce[1]]:FUNCtion[:MODE]")
    def _sour_func(self, call: Call) -> str | None:
        if call.query:
            return self.s.source_func
        f = call.choice(0, ["VOLTage", "CURRent", "MEMory"])[:4]
        if f == "MEMO":
            raise error(SETTINGS_CONFLICT, "memory sweeps are not emulated")
        self.s.source_func = f
        self.channel.set_mode(f)
        return None

    def _level(self, call: Call, func: str) -> str | None:
        ch = self.channel
        if call.query:
            return format_nr3(ch.level_v if func == "VOLT" else ch.level_i)
        call.expect_args(1)
        if func == "VOLT":
            value = call.number(0, -210.0, 210.0, default=0.0)
            if not self.s.volt_auto_range and abs(value) > self.s.volt_range * 1.05:
                raise error(DATA_OUT_OF_RANGE, "level beyond the fixed source range")
            if ch.mode == "VOLT":
                ch.set_level(value)
            else:
                ch.level_v = value
        else:
            value = call.number(0, -1.05, 1.05, default=0.0)
            if ch.mode == "CURR":
                ch.set_level(value)
            else:
                ch.level_i = value
        return None

    @command("[:SOURce[1]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    def _sour_volt(self, call: Call) -> str | None:
        return self._level(call, "VOLT")

    @command("[:SOURce[1]]:CURRent[:LEVel][:IMMediate][:AMPLitude]")
    def _sour_curr(self, call: Call) -> str | None:
        return self._level(call, "CURR")

    @command("[:SOURce[1]]:VOLTage:MODE")
    def _sour_volt_mode(self, call: Call) -> str | None:
        return self._mode(call, "VOLT")

    @command("[:SOURce[1]]:CURRent:MODE")
    def _sour_curr_mode(self, call: Call) -> str | None:
        return self._mode(call, "CURR")

    def _mode(self, call: Call, func: str) -> str | None:
        if call.query:
            return self.s.source_mode[func]
        self.s.source_mode[func] = call.choice(0, ["FIXed", "LIST", "SWEep"])[:4].replace("FIXE", "FIX").replace("SWEE", "SWE")
        return None

    @command("[:SOURce[1]]:VOLTage:RANGe[:UPPer]")
    def _sour_volt_range(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.s.volt_range)
        value = abs(call.number(0, -210.0, 210.0, default=21.0))
        self.s.volt_range = min(r for r in (0.21, 2.1, 21.0, 210.0) if r >= value * 0.999)
        self.s.volt_auto_range = False
        return None

    @command("[:SOURce[1]]:VOLTage:RANGe:AUTO")
    def _sour_volt_range_auto(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.s.volt_auto_range else "0"
        self.s.volt_auto_range = call.boolean(0)
        return None

    @command("[:SOURce[1]]:CURRent:RANGe[:UPPer]")
    def _sour_curr_range(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.s.curr_range)
        self.s.curr_range = abs(call.number(0, -1.05, 1.05, default=105e-6))
        self.s.curr_auto_range = False
        return None

    @command("[:SOURce[1]]:CURRent:RANGe:AUTO")
    def _sour_curr_range_auto(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.s.curr_auto_range else "0"
        self.s.curr_auto_range = call.boolean(0)
        return None

    @command("[:SOURce[1]]:LIST:VOLTage")
    def _list_volt(self, call: Call) -> str | None:
        if call.query:
            return ",".join(format_nr3(v) for v in self.s.volt_list)
        values = call.numbers(-210.0, 210.0)
        if len(values) > 100:
            raise error(DATA_OUT_OF_RANGE, "a source list holds at most 100 points")
        self.s.volt_list = values
        return None

    @command("[:SOURce[1]]:LIST:VOLTage:APPend", query=False)
    def _list_volt_app(self, call: Call) -> None:
        values = call.numbers(-210.0, 210.0)
        if len(self.s.volt_list) + len(values) > 100:
            raise error(DATA_OUT_OF_RANGE, "a source list holds at most 100 points")
        self.s.volt_list += values

    @command("[:SOURce[1]]:LIST:VOLTage:POINts", write=False)
    def _list_volt_points(self, call: Call) -> str:
        return str(len(self.s.volt_list))

    @command("[:SOURce[1]]:LIST:CURRent")
    def _list_curr(self, call: Call) -> str | None:
        if call.query:
            return ",".join(format_nr3(v) for v in self.s.curr_list)
        values = call.numbers(-1.05, 1.05)
        if len(values) > 100:
            raise error(DATA_OUT_OF_RANGE, "a source list holds at most 100 points")
        self.s.curr_list = values
        return None

    @command("[:SOURce[1]]:VOLTage:STARt")
    def _volt_start(self, call: Call) -> str | None:
        return self._sweep_value(call, self.s.sweep_start, "VOLT")

    @command("[:SOURce[1]]:VOLTage:STOP")
    def _volt_stop(self, call: Call) -> str | None:
        return self._sweep_value(call, self.s.sweep_stop, "VOLT")

    @command("[:SOURce[1]]:CURRent:STARt")
    def _curr_start(self, call: Call) -> str | None:
        return self._sweep_value(call, self.s.sweep_start, "CURR")

    @command("[:SOURce[1]]:CURRent:STOP")
    def _curr_stop(self, call: Call) -> str | None:
        return self._sweep_value(call, self.s.sweep_stop, "CURR")

    def _sweep_value(self, call: Call, table: dict[str, float], func: str) -> str | None:
        if call.query:
            return format_nr3(table[func])
        hi = 210.0 if func == "VOLT" else 1.05
        table[func] = call.number(0, -hi, hi, default=0.0)
        return None

    @command("[:SOURce[1]]:SWEep:POINts")
    def _swe_points(self, call: Call) -> str | None:
        if call.query:
            return str(self.s.sweep_points)
        self.s.sweep_points = call.integer(0, 1, 2500, default=2500)
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

    @command("[:SOURce[1]]:CLEar:AUTO")
    def _sour_clear_auto(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.s.auto_output_off else "0"
        self.s.auto_output_off = call.boolean(0)
        return None

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

    @command("[:SENSe[1]]:FUNCtion[:ON]")
    def _sens_func(self, call: Call) -> str | None:
        if call.query:
            return ",".join(f'"{self._FUNC_NAMES[f]}"' for f in sorted(self.s.sense_funcs))
        funcs = self._parse_funcs(call)
        if self.s.concurrent:
            self.s.sense_funcs |= set(funcs)
        else:
            self.s.sense_funcs = {funcs[-1]}
        return None

    @command("[:SENSe[1]]:FUNCtion:OFF")
    def _sens_func_off(self, call: Call) -> str | None:
        if call.query:
            off = {"VOLT", "CURR", "RES"} - self.s.sense_funcs
            return ",".join(f'"{self._FUNC_NAMES[f]}"' for f in sorted(off))
        self.s.sense_funcs -= set(self._parse_funcs(call))
        return None

    @command("[:SENSe[1]]:FUNCtion:OFF:ALL", query=False)
    def _sens_func_off_all(self, call: Call) -> None:
        self.s.sense_funcs = set()

    @command("[:SENSe[1]]:FUNCtion:ON:ALL", query=False)
    def _sens_func_on_all(self, call: Call) -> None:
        self.s.sense_funcs = {"VOLT", "CURR", "RES"}

    @command("[:SENSe[1]]:FUNCtion:CONCurrent")
    def _sens_func_conc(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.s.concurrent else "0"
        self.s.concurrent = call.boolean(0)
        return None

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

    def _nplc(self, call: Call, func: str) -> str | None:
        if call.query:
            return format_nr3(self.s.nplc[func])
        value = call.number(0, 0.01, 10.0, default=1.0)
        # The 2400 shares one integration time across functions.
        for key in self.s.nplc:
            self.s.nplc[key] = value
        return None

    @command("[:SENSe[1]]:CURRent[:DC]:NPLCycles")
    def _nplc_curr(self, call: Call) -> str | None:
        return self._nplc(call, "CURR")

    @command("[:SENSe[1]]:VOLTage[:DC]:NPLCycles")
    def _nplc_volt(self, call: Call) -> str | None:
        return self._nplc(call, "VOLT")

    @command("[:SENSe[1]]:RESistance:NPLCycles")
    def _nplc_res(self, call: Call) -> str | None:
        return self._nplc(call, "RES")

    def _sense_range(self, call: Call, func: str) -> str | None:
        if call.query:
            return format_nr3(self.s.sense_range[func])
        hi = {"VOLT": 210.0, "CURR": 1.05, "RES": 2.1e8}[func]
        self.s.sense_range[func] = abs(call.number(0, -hi, hi, default=hi))
        self.s.sense_auto[func] = False
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
        self.s.res_mode = call.choice(0, ["MANual", "AUTO"])[:4].replace("MANU", "MAN")
        return None

    @command("[:SENSe[1]]:AVERage[:STATe]")
    def _avg(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.s.filter_on else "0"
        self.s.filter_on = call.boolean(0)
        return None

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
        self.s.filter_type = call.choice(0, ["REPeat", "MOVing"])[:3]
        return None

    # --- format ------------------------------------------------------------------------
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
        # The 2400 always returns elements in its fixed order.
        self.s.elements = [e for e in ELEMENTS if e in chosen]
        return None

    @command(":FORMat[:DATA]")
    def _form_data(self, call: Call) -> str | None:
        if call.query:
            return "ASC"
        fmt = call.choice(0, ["ASCii", "REAL", "SREal"])
        if fmt != "ASCII":
            raise error(SETTINGS_CONFLICT, "only ASCII data format is emulated")
        return None

    # --- trigger / acquisition ---------------------------------------------------
    @command(":TRIGger[:SEQuence[1]]:COUNt")
    def _trig_count(self, call: Call) -> str | None:
        if call.query:
            return str(self.s.trig_count)
        self.s.trig_count = call.integer(0, 1, 2500, default=1)
        return None

    @command(":TRIGger[:SEQuence[1]]:DELay")
    def _trig_delay(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.s.trig_delay)
        self.s.trig_delay = call.number(0, 0.0, 999.9999, default=0.0)
        return None

    @command(":TRIGger[:SEQuence[1]]:SOURce")
    def _trig_source(self, call: Call) -> str | None:
        if call.query:
            return "IMM"
        src = call.choice(0, ["IMMediate", "TLINk"])
        if src != "IMMEDIATE":
            raise error(SETTINGS_CONFLICT, "only immediate triggering is emulated")
        return None

    @command(":ARM[:SEQuence[1]][:LAYer[1]]:COUNt")
    def _arm_count(self, call: Call) -> str | None:
        if call.query:
            return str(self.s.arm_count)
        self.s.arm_count = call.integer(0, 1, 2500, default=1)
        return None

    @command(":ARM[:SEQuence[1]][:LAYer[1]]:SOURce")
    def _arm_source(self, call: Call) -> str | None:
        if call.query:
            return "IMM"
        src = call.choice(0, ["IMMediate", "TIMer", "MANual", "BUS", "TLINk", "NSTest", "PSTest", "BSTest"])
        if src != "IMMEDIATE":
            raise error(SETTINGS_CONFLICT, "only immediate arming is emulated")
        return None

    @command(":TRIGger:CLEar", query=False)
    def _trig_clear(self, call: Call) -> None:
        return None

    @command(":INITiate[:IMMediate]", query=False)
    def _init(self, call: Call) -> None:
        self._acquire()

    @command(":ABORt", query=False)
    def _abort(self, call: Call) -> None:
        return None

    @command(":READ", write=False)
    def _read(self, call: Call) -> str:
        return self._format(self._acquire())

    @command(":FETCh", write=False)
    def _fetch(self, call: Call) -> str:
        if not self.s.last:
            raise error(EXECUTION_ERROR, "no readings to fetch")
        return self._format(self.s.last)

    def _measure(self, funcs: list[str]) -> str:
        self.s.sense_funcs = set(funcs) if not self.s.concurrent else self.s.sense_funcs | set(funcs)
        if not self.channel.output:
            self.channel.set_output(True)
            self.bench.after_output_change()
        return self._format(self._acquire())

    @command(":MEASure", write=False)
    def _meas(self, call: Call) -> str:
        return self._measure(list(self.s.sense_funcs or {"CURR"}))

    @command(":MEASure:CURRent[:DC]", write=False)
    def _meas_curr(self, call: Call) -> str:
        return self._measure(["CURR"])

    @command(":MEASure:VOLTage[:DC]", write=False)
    def _meas_volt(self, call: Call) -> str:
        return self._measure(["VOLT"])

    @command(":MEASure:RESistance", write=False)
    def _meas_res(self, call: Call) -> str:
        return self._measure(["RES"])

    # --- trace buffer --------------------------------------------------------------
    @command(":TRACe:POINts")
    def _trace_points(self, call: Call) -> str | None:
        if call.query:
            return str(self.s.trace_points)
        self.s.trace_points = call.integer(0, 1, 2500, default=100)
        return None

    @command(":TRACe:POINts:ACTual", write=False)
    def _trace_actual(self, call: Call) -> str:
        return str(len(self.s.trace))

    @command(":TRACe:FEED")
    def _trace_feed(self, call: Call) -> str | None:
        if call.query:
            return self.s.trace_feed
        self.s.trace_feed = call.choice(0, ["SENSe[1]", "CALCulate[1]", "CALCulate2", "SENSe"])[:4]
        return None

    @command(":TRACe:FEED:CONTrol")
    def _trace_control(self, call: Call) -> str | None:
        if call.query:
            return self.s.trace_control
        self.s.trace_control = call.choice(0, ["NEVer", "NEXT"])[:4].replace("NEVE", "NEV")
        return None

    @command(":TRACe:CLEar", query=False)
    def _trace_clear(self, call: Call) -> None:
        self.s.trace = []
        self.registers["MEAS"].set_bits(MEAS_BUFFER_AVAILABLE | MEAS_BUFFER_FULL, on=False)

    @command(":TRACe:DATA", write=False)
    def _trace_data(self, call: Call) -> str:
        return self._format(self.s.trace) if self.s.trace else ""

    # --- system ----------------------------------------------------------------------
    @command(":SYSTem:AZERo[:STATe]")
    def _azero(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.s.auto_zero else "0"
        arg = call.string(0).upper()
        self.s.auto_zero = arg in ("ON", "1", "ONCE") and arg != "ONCE"
        return None

    @command(":SYSTem:RSENse")
    def _rsense(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.s.remote_sense else "0"
        self.s.remote_sense = call.boolean(0)
        return None

    @command(":SYSTem:BEEPer:STATe")
    def _beeper(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.s.beeper else "0"
        self.s.beeper = call.boolean(0)
        return None

    @command(":SYSTem:LFRequency")
    def _lfreq(self, call: Call) -> str | None:
        if call.query:
            return str(int(self.s.line_freq))
        self.s.line_freq = 50.0 if call.number(0) < 55 else 60.0
        return None

    @command(":SYSTem:PRESet", query=False)
    def _preset(self, call: Call) -> None:
        self.reset()

    @command(":SYSTem:LOCal", query=False)
    def _local(self, call: Call) -> None:
        return None

    @command(":SYSTem:REMote", query=False)
    def _remote(self, call: Call) -> None:
        return None

    @command(":SYSTem:TIME:RESet", query=False)
    def _time_reset(self, call: Call) -> None:
        self._t0 = self.clock.now

    @command(":ROUTe:TERMinals")
    def _route_term(self, call: Call) -> str | None:
        if call.query:
            return self.s.terminals
        self.s.terminals = call.choice(0, ["FRONt", "REAR"])[:4]
        return None

    @command(":DISPlay:ENABle")
    def _disp(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.s.display else "0"
        self.s.display = call.boolean(0)
        return None
