"""Keithley 2636B emulator: the ``smuX`` objects (source, measure, buffers, SMU trigger settings),
their range and safe-operating-area checks, and one measurement on the virtual clock.
"""

from __future__ import annotations

import math
from typing import Any

from .keithley2600_objects import (
    ASYNC,
    _auto_range,
    AUTORANGE_FOLLOW_LIMIT,
    AUTORANGE_OFF,
    AUTORANGE_ON,
    AUTOZERO_AUTO,
    AUTOZERO_OFF,
    AUTOZERO_ONCE,
    _bounded,
    _choice,
    CURRENT_LIMIT_BIT,
    DELAY_AUTO,
    DELAY_OFF,
    DISABLE,
    ENABLE,
    FILTER_MEDIAN,
    FILTER_MOVING_AVG,
    FILTER_REPEAT_AVG,
    I_RANGES,
    _integer,
    LIMIT_AUTO,
    _lua_type_name,
    MAKEBUFFER_MAX,
    MAX_I,
    MAX_V,
    _Node,
    _number,
    OUTPUT_DCAMPS,
    OUTPUT_DCVOLTS,
    OUTPUT_HIGH_Z,
    OUTPUT_NORMAL,
    OUTPUT_OFF,
    OUTPUT_ON,
    OUTPUT_ZERO,
    OVERFLOW_READING,
    OVERRANGE,
    PARAMETER_TOO_BIG,
    RUNTIME_ERROR,
    SAFE_OPERATING_AREA,
    _select_range,
    SENSE_CALA,
    SENSE_LOCAL,
    SENSE_REMOTE,
    SETTINGS_CONFLICT,
    _smu_event_id,
    _SMU_EVENTS,
    SOA_I,
    SOA_V,
    SOURCE_HOLD,
    SOURCE_IDLE,
    T_MEASURE_OVERHEAD,
    TspError,
    V_RANGES,
    VOLTAGE_LIMIT_BIT,
)
from .keithley2600_state import (
    _BufferNode,
    _ReadingBuffer,
)


class SmuObjects:
    """Mixin of :class:`~labrram.sim.keithley2600.Keithley2636B`: ``smua``/``smub`` and their state."""

    # --- smuX ---------------------------------------------------------------------------
    def _smu_node(self, k: int) -> _Node:
        x = "ab"[k]
        name = f"smu{x}"
        node = _Node(name)
        for key, value in (
            ("OUTPUT_DCAMPS", OUTPUT_DCAMPS),
            ("OUTPUT_DCVOLTS", OUTPUT_DCVOLTS),
            ("OUTPUT_OFF", OUTPUT_OFF),
            ("OUTPUT_ON", OUTPUT_ON),
            ("OUTPUT_HIGH_Z", OUTPUT_HIGH_Z),
            ("OUTPUT_NORMAL", OUTPUT_NORMAL),
            ("OUTPUT_ZERO", OUTPUT_ZERO),
            ("AUTORANGE_OFF", AUTORANGE_OFF),
            ("AUTORANGE_ON", AUTORANGE_ON),
            ("AUTORANGE_FOLLOW_LIMIT", AUTORANGE_FOLLOW_LIMIT),
            ("AUTOZERO_OFF", AUTOZERO_OFF),
            ("AUTOZERO_ONCE", AUTOZERO_ONCE),
            ("AUTOZERO_AUTO", AUTOZERO_AUTO),
            ("DELAY_OFF", DELAY_OFF),
            ("DELAY_AUTO", DELAY_AUTO),
            ("DISABLE", DISABLE),
            ("ENABLE", ENABLE),
            ("ASYNC", ASYNC),
            ("SOURCE_IDLE", SOURCE_IDLE),
            ("SOURCE_HOLD", SOURCE_HOLD),
            ("LIMIT_AUTO", LIMIT_AUTO),
            ("FILTER_MOVING_AVG", FILTER_MOVING_AVG),
            ("FILTER_REPEAT_AVG", FILTER_REPEAT_AVG),
            ("FILTER_MEDIAN", FILTER_MEDIAN),
            ("SENSE_LOCAL", SENSE_LOCAL),
            ("SENSE_REMOTE", SENSE_REMOTE),
            ("SENSE_CALA", SENSE_CALA),
            ("SETTLE_SMOOTH", 0),
            ("SETTLE_FAST_RANGE", 1),
            ("SETTLE_FAST_POLARITY", 2),
            ("SETTLE_DIRECT_IRANGE", 3),
            ("SETTLE_SMOOTH_100NA", 4),
            ("SETTLE_FAST_ALL", 128),
            ("OE_NONE", 0),
            ("FILTER_OFF", 0),
            ("FILTER_ON", 1),
            ("REL_OFF", 0),
            ("REL_ON", 1),
            ("OE_OUTPUT_OFF", 1),
            ("FILL_ONCE", 0),
            ("FILL_WINDOW", 1),
        ):
            node.const(key, value)
        s = lambda: self.smu[k]  # noqa: E731 - state is replaced on reset
        node.method("reset", lambda *a: self._reset_smu(k))
        node.method("abort", lambda *a: None)
        node.method("makebuffer", lambda *a: self._makebuffer(k, *a))
        node.choice("sense", lambda: s().sense, lambda v: setattr(s(), "sense", v), (SENSE_LOCAL, SENSE_REMOTE, SENSE_CALA))
        for j in (0, 1):
            node.child(f"nvbuffer{j + 1}", _BufferNode(f"{name}.nvbuffer{j + 1}", self.nvbuffers[k][j]))
        node.child("source", self._source_node(k, name))
        node.child("measure", self._measure_node(k, name))
        node.child("trigger", self._smu_trigger_node(k, name))
        return node

    def _source_node(self, k: int, smu: str) -> _Node:
        node = _Node(f"{smu}.source")
        s = lambda: self.smu[k]  # noqa: E731
        ch = self.channels[k]
        node.choice("func", lambda: s().func, lambda v: self._set_func(k, v), (OUTPUT_DCAMPS, OUTPUT_DCVOLTS))
        node.attr("levelv", lambda: s().levelv, lambda v: self._set_level(k, "v", v))
        node.attr("leveli", lambda: s().leveli, lambda v: self._set_level(k, "i", v))
        node.attr("limitv", lambda: s().limitv, lambda v: self._set_limit(k, "v", v))
        node.attr("limiti", lambda: s().limiti, lambda v: self._set_limit(k, "i", v))
        node.number("limitp", lambda: s().limitp, lambda v: setattr(s(), "limitp", v), 0.0, 40.0)
        node.attr("rangev", lambda: self._source_range(k, "v"), lambda v: self._set_source_range(k, "v", v))
        node.attr("rangei", lambda: self._source_range(k, "i"), lambda v: self._set_source_range(k, "i", v))
        node.choice("autorangev", lambda: s().autorangev, lambda v: self._set_source_autorange(k, "v", v), (0, 1))
        node.choice("autorangei", lambda: s().autorangei, lambda v: self._set_source_autorange(k, "i", v), (0, 1))
        node.attr("lowrangev", lambda: s().lowrangev, lambda v: setattr(s(), "lowrangev", _select_range(_bounded(v, f"{smu}.source.lowrangev", 0, MAX_V), V_RANGES, f"{smu}.source.lowrangev")))
        node.attr("lowrangei", lambda: s().lowrangei, lambda v: setattr(s(), "lowrangei", _select_range(_bounded(v, f"{smu}.source.lowrangei", 0, MAX_I), I_RANGES, f"{smu}.source.lowrangei")))
        node.attr("output", lambda: OUTPUT_ON if ch.output else OUTPUT_OFF, lambda v: self._set_output(k, v))
        node.choice("offmode", lambda: s().offmode, lambda v: setattr(s(), "offmode", v), (OUTPUT_NORMAL, OUTPUT_ZERO, OUTPUT_HIGH_Z))
        node.choice("offfunc", lambda: s().offfunc, lambda v: setattr(s(), "offfunc", v), (OUTPUT_DCAMPS, OUTPUT_DCVOLTS))
        node.number("offlimiti", lambda: s().offlimiti, lambda v: setattr(s(), "offlimiti", v), 100e-12, MAX_I)
        node.number("offlimitv", lambda: s().offlimitv, lambda v: setattr(s(), "offlimitv", v), 20e-3, MAX_V)
        node.choice("outputenableaction", lambda: s().outputenableaction, lambda v: setattr(s(), "outputenableaction", v), (0, 1))
        node.attr("delay", lambda: s().src_delay, lambda v: setattr(s(), "src_delay", self._delay_value(v, f"{smu}.source.delay")))
        node.integer("settling", lambda: s().settling, lambda v: setattr(s(), "settling", v), 0, 255)
        node.choice("sink", lambda: s().sink, lambda v: setattr(s(), "sink", v), (0, 1))
        node.choice("highc", lambda: s().highc, lambda v: setattr(s(), "highc", v), (0, 1))
        node.readonly("compliance", lambda: self._compliance(k))
        return node

    def _measure_node(self, k: int, smu: str) -> _Node:
        node = _Node(f"{smu}.measure")
        s = lambda: self.smu[k]  # noqa: E731
        for func in ("i", "v", "r", "p"):
            node.method(func, lambda *a, f=func: self._measure_command(k, f, a))
        node.method("iv", lambda *a: self._measure_command(k, "iv", a))
        node.number("nplc", lambda: s().nplc, lambda v: setattr(s(), "nplc", v), 0.001, 25.0)
        node.choice("autozero", lambda: s().autozero, lambda v: self._set_autozero(k, v), (AUTOZERO_OFF, AUTOZERO_ONCE, AUTOZERO_AUTO))
        node.integer("count", lambda: s().count, lambda v: setattr(s(), "count", v), 1, 60000)
        node.number("interval", lambda: s().interval, lambda v: setattr(s(), "interval", v), 0.0, 1.0)
        node.attr("delay", lambda: s().m_delay, lambda v: setattr(s(), "m_delay", self._delay_value(v, f"{smu}.measure.delay")))
        node.number("delayfactor", lambda: s().delayfactor, lambda v: setattr(s(), "delayfactor", v), 0.0, 1000.0)
        node.attr("rangev", lambda: s().m_rangev, lambda v: self._set_measure_range(k, "v", v))
        node.attr("rangei", lambda: s().m_rangei, lambda v: self._set_measure_range(k, "i", v))
        node.choice("autorangev", lambda: s().m_autorangev, lambda v: setattr(s(), "m_autorangev", v), (0, 1))
        node.choice("autorangei", lambda: s().m_autorangei, lambda v: setattr(s(), "m_autorangei", v), (0, 1, 2))
        node.attr("lowrangev", lambda: s().m_lowrangev, lambda v: setattr(s(), "m_lowrangev", _select_range(_bounded(v, f"{smu}.measure.lowrangev", 0, MAX_V), V_RANGES, f"{smu}.measure.lowrangev")))
        node.attr("lowrangei", lambda: s().m_lowrangei, lambda v: setattr(s(), "m_lowrangei", _select_range(_bounded(v, f"{smu}.measure.lowrangei", 0, MAX_I), I_RANGES, f"{smu}.measure.lowrangei")))
        node.choice("analogfilter", lambda: s().analogfilter, lambda v: setattr(s(), "analogfilter", v), (0, 1))
        rel = node.child("rel", _Node(f"{smu}.measure.rel"))
        for f, hi in (("i", MAX_I), ("v", MAX_V), ("r", 1e12), ("p", MAX_I * MAX_V)):
            rel.choice(f"enable{f}", lambda f=f: s().rel_enable[f], lambda v, f=f: s().rel_enable.__setitem__(f, v), (0, 1))
            rel.number(f"level{f}", lambda f=f: s().rel_level[f], lambda v, f=f: s().rel_level.__setitem__(f, v), -hi, hi)
        filt = node.child("filter", _Node(f"{smu}.measure.filter"))
        filt.choice("enable", lambda: s().filter_enable, lambda v: setattr(s(), "filter_enable", v), (0, 1))
        filt.integer("count", lambda: s().filter_count, lambda v: setattr(s(), "filter_count", v), 1, 100)
        filt.choice("type", lambda: s().filter_type, lambda v: setattr(s(), "filter_type", v), (FILTER_MOVING_AVG, FILTER_REPEAT_AVG, FILTER_MEDIAN))
        return node

    def _smu_trigger_node(self, k: int, smu: str) -> _Node:
        node = _Node(f"{smu}.trigger")
        s = lambda: self.smu[k]  # noqa: E731
        for ev in _SMU_EVENTS:
            node.const(f"{ev}_EVENT_ID", _smu_event_id(k, ev))
        node.integer("count", lambda: s().trig_count, lambda v: setattr(s(), "trig_count", v), 0, 268_435_455)
        node.choice("autoclear", lambda: s().autoclear, lambda v: setattr(s(), "autoclear", v), (0, 1))
        node.method("initiate", lambda *a: self._initiate(k))
        node.method("clear", lambda *a: None)
        arm = node.child("arm", _Node(f"{smu}.trigger.arm"))
        arm.integer("count", lambda: s().arm_count, lambda v: setattr(s(), "arm_count", v), 0, 268_435_455)
        arm.integer("stimulus", lambda: s().arm_stimulus, lambda v: setattr(s(), "arm_stimulus", v), 0, 1000)
        arm.method("set", lambda *a: None)
        src = node.child("source", _Node(f"{smu}.trigger.source"))
        src.choice("action", lambda: s().src_action, lambda v: setattr(s(), "src_action", v), (DISABLE, ENABLE))
        src.integer("stimulus", lambda: s().src_stimulus, lambda v: setattr(s(), "src_stimulus", v), 0, 1000)
        src.number("limiti", lambda: s().trig_limiti, lambda v: setattr(s(), "trig_limiti", v), 0.0, MAX_I)
        src.number("limitv", lambda: s().trig_limitv, lambda v: setattr(s(), "trig_limitv", v), 0.0, MAX_V)
        src.method("set", lambda *a: None)
        for unit, func, hi in (("v", OUTPUT_DCVOLTS, MAX_V), ("i", OUTPUT_DCAMPS, MAX_I)):
            src.method(f"list{unit}", lambda *a, f=func, u=unit, h=hi: self._sweep_list(k, f, u, h, a))
            src.method(f"linear{unit}", lambda *a, f=func, u=unit, h=hi: self._sweep_linear(k, f, u, h, a, log=False))
            src.method(f"log{unit}", lambda *a, f=func, u=unit, h=hi: self._sweep_linear(k, f, u, h, a, log=True))
        meas = node.child("measure", _Node(f"{smu}.trigger.measure"))
        meas.choice("action", lambda: s().meas_action, lambda v: setattr(s(), "meas_action", v), (DISABLE, ENABLE, ASYNC))
        meas.integer("stimulus", lambda: s().meas_stimulus, lambda v: setattr(s(), "meas_stimulus", v), 0, 1000)
        meas.method("set", lambda *a: None)
        for func in ("i", "v", "r", "p", "iv"):
            meas.method(func, lambda *a, f=func: self._trigger_measure(k, f, a))
        endp = node.child("endpulse", _Node(f"{smu}.trigger.endpulse"))
        endp.choice("action", lambda: s().endpulse_action, lambda v: setattr(s(), "endpulse_action", v), (SOURCE_IDLE, SOURCE_HOLD))
        endp.integer("stimulus", lambda: s().endpulse_stimulus, lambda v: setattr(s(), "endpulse_stimulus", v), 0, 1000)
        endp.method("set", lambda *a: None)
        ends = node.child("endsweep", _Node(f"{smu}.trigger.endsweep"))
        ends.choice("action", lambda: s().endsweep_action, lambda v: setattr(s(), "endsweep_action", v), (SOURCE_IDLE, SOURCE_HOLD))
        return node

    # ===== behaviour: source =================================================================
    def _after_output(self) -> None:
        self.bench.after_output_change()

    def _set_output(self, k: int, value: Any) -> None:
        v = _choice(value, f"smu{'ab'[k]}.source.output", (OUTPUT_OFF, OUTPUT_ON, OUTPUT_HIGH_Z))
        ch = self.channels[k]
        on = v != OUTPUT_OFF
        if on:
            s = self.smu[k]
            self._check_soa(k, s.func, s.levelv if s.func == OUTPUT_DCVOLTS else s.leveli, s.limiti, s.limitv)
        if on != ch.output:
            ch.set_output(on)
            self._after_output()

    def _set_func(self, k: int, value: int) -> None:
        s, ch = self.smu[k], self.channels[k]
        s.func = value
        ch.set_mode("VOLT" if value == OUTPUT_DCVOLTS else "CURR")

    def _check_soa(self, k: int, func: int, level: float, limiti: float, limitv: float) -> None:
        if func == OUTPUT_DCVOLTS and abs(level) > SOA_V and limiti > SOA_I:
            raise TspError(
                SAFE_OPERATING_AREA,
                f"Operation would exceed safe operating area of the instrument: {abs(level):g} V with a {limiti:g} A limit (above 20 V at most 100 mA)",
            )
        if func == OUTPUT_DCAMPS and abs(level) > SOA_I and limitv > SOA_V:
            raise TspError(
                SAFE_OPERATING_AREA,
                f"Operation would exceed safe operating area of the instrument: {abs(level):g} A with a {limitv:g} V limit (above 100 mA at most 20 V)",
            )

    def _set_level(self, k: int, unit: str, value: Any) -> None:
        s, ch = self.smu[k], self.channels[k]
        what = f"smu{'ab'[k]}.source.level{unit}"
        hi = MAX_V if unit == "v" else MAX_I
        v = _bounded(value, what, -hi, hi)
        auto = s.autorangev if unit == "v" else s.autorangei
        if not auto:
            rng = s.rangev if unit == "v" else s.rangei
            if abs(v) > rng * OVERRANGE:
                raise TspError(PARAMETER_TOO_BIG, f"Parameter too big: {what} = {v:g} exceeds the fixed source range {rng:g} (set {what[:-6]}autorange{unit} or a higher range{unit})")
        func = OUTPUT_DCVOLTS if unit == "v" else OUTPUT_DCAMPS
        self._check_soa(k, func, v, s.limiti, s.limitv)
        if unit == "v":
            s.levelv = v
            if ch.mode == "VOLT":
                ch.set_level(v)
            else:
                ch.level_v = v
        else:
            s.leveli = v
            if ch.mode == "CURR":
                ch.set_level(v)
            else:
                ch.level_i = v

    def _set_limit(self, k: int, unit: str, value: Any) -> None:
        s, ch = self.smu[k], self.channels[k]
        what = f"smu{'ab'[k]}.source.limit{unit}"
        if unit == "i":
            v = _bounded(value, what, 100e-12, MAX_I)
            self._check_soa(k, s.func, s.levelv if s.func == OUTPUT_DCVOLTS else s.leveli, v, s.limitv)
            ch.flush()
            s.limiti = ch.limit_i = v
        else:
            v = _bounded(value, what, 20e-3, MAX_V)
            self._check_soa(k, s.func, s.levelv if s.func == OUTPUT_DCVOLTS else s.leveli, s.limiti, v)
            ch.flush()
            s.limitv = ch.limit_v = v

    def _source_range(self, k: int, unit: str) -> float:
        s = self.smu[k]
        if unit == "v":
            if s.autorangev:
                return max(_auto_range(s.levelv, V_RANGES), s.lowrangev)
            return s.rangev
        if s.autorangei:
            return max(_auto_range(s.leveli, I_RANGES), s.lowrangei)
        return s.rangei

    def _set_source_range(self, k: int, unit: str, value: Any) -> None:
        s = self.smu[k]
        what = f"smu{'ab'[k]}.source.range{unit}"
        hi = MAX_V if unit == "v" else MAX_I
        v = _bounded(value, what, -hi, hi)
        rng = _select_range(v, V_RANGES if unit == "v" else I_RANGES, what)
        level = s.levelv if unit == "v" else s.leveli
        if abs(level) > rng * OVERRANGE:
            raise TspError(PARAMETER_TOO_BIG, f"Parameter too big: {what} = {v:g} is below the present level {level:g}")
        if unit == "v":
            s.rangev, s.autorangev = rng, AUTORANGE_OFF
        else:
            s.rangei, s.autorangei = rng, AUTORANGE_OFF

    def _set_source_autorange(self, k: int, unit: str, value: int) -> None:
        s = self.smu[k]
        if unit == "v":
            if not value:
                s.rangev = self._source_range(k, "v")
            s.autorangev = value
        else:
            if not value:
                s.rangei = self._source_range(k, "i")
            s.autorangei = value

    @staticmethod
    def _delay_value(value: Any, what: str) -> float:
        v = _number(value, what)
        if v == DELAY_AUTO:
            return DELAY_AUTO
        return _bounded(v, what, 0.0, 100_000.0)

    def _compliance(self, k: int) -> bool:
        ch = self.channels[k]
        if not ch.output:
            return False
        ch.flush()
        return bool(ch.in_compliance)

    def _condition(self, k: int) -> int:
        if not self._compliance(k):
            return 0
        return CURRENT_LIMIT_BIT if self.channels[k].mode == "VOLT" else VOLTAGE_LIMIT_BIT

    def _read_event(self, k: int) -> int:
        bits = self.smu[k].event_bits | self._condition(k)
        self.smu[k].event_bits = 0
        return bits

    # ===== behaviour: measure =================================================================
    def _set_autozero(self, k: int, value: int) -> None:
        s = self.smu[k]
        if value == AUTOZERO_ONCE:
            # one reference-and-zero measurement now, then autozero is off
            self.clock.advance(2.0 * s.nplc / self.linefreq, "operation")
            s.autozero = AUTOZERO_OFF
        else:
            s.autozero = value

    def _set_measure_range(self, k: int, unit: str, value: Any) -> None:
        s = self.smu[k]
        what = f"smu{'ab'[k]}.measure.range{unit}"
        hi = MAX_V if unit == "v" else MAX_I
        v = _bounded(value, what, -hi, hi)
        rng = _select_range(v, V_RANGES if unit == "v" else I_RANGES, what)
        if unit == "v":
            s.m_rangev, s.m_autorangev = rng, AUTORANGE_OFF
        else:
            s.m_rangei, s.m_autorangei = rng, AUTORANGE_OFF

    def _set_linefreq(self, value: Any) -> None:
        v = _number(value, "localnode.linefreq")
        if v not in (50, 60):
            raise TspError(SETTINGS_CONFLICT, f"Illegal parameter value: localnode.linefreq = {v:g}, allowed 50 or 60")
        self.linefreq = v

    def measurement_time(self, k: int = 0, overhead: bool = True) -> float:
        """Virtual time of one reading of SMU ``k`` with its present settings, s.

        ``overhead=False``: the delay and integration only (what holds the trigger model).
        """
        s = self.smu[k]
        t = s.nplc / self.linefreq
        if s.autozero == AUTOZERO_AUTO:
            t *= 2.0
        if s.filter_enable and s.filter_type != FILTER_MOVING_AVG:
            t *= s.filter_count
        if s.m_delay > 0:
            t += s.m_delay
        return t + (T_MEASURE_OVERHEAD if overhead else 0.0)

    def _reading(self, k: int, func: str, v: float, i: float) -> tuple[float, ...]:
        """Apply measure ranges (fixed range overflow → 9.91e37) and compute the function."""
        s = self.smu[k]
        if s.m_autorangei:
            s.m_rangei = max(_auto_range(i, I_RANGES), s.m_lowrangei)
        elif abs(i) > s.m_rangei * OVERRANGE:
            i = math.copysign(OVERFLOW_READING, i)
        if s.m_autorangev:
            s.m_rangev = max(_auto_range(v, V_RANGES), s.m_lowrangev)
        elif abs(v) > s.m_rangev * OVERRANGE:
            v = math.copysign(OVERFLOW_READING, v)
        def rel(f: str, x: float) -> float:  # measure.rel: the reading minus the null level
            return x - s.rel_level[f] if s.rel_enable[f] and abs(x) < OVERFLOW_READING else x

        if func == "i":
            return (rel("i", i),)
        if func == "v":
            return (rel("v", v),)
        if func == "iv":
            return (rel("i", i), rel("v", v))
        if func == "r":
            return (rel("r", v / i) if i != 0 and abs(i) < OVERFLOW_READING else OVERFLOW_READING,)
        return (rel("p", v * i) if abs(i) < OVERFLOW_READING and abs(v) < OVERFLOW_READING else OVERFLOW_READING,)

    def _buffers(self, func: str, args: tuple, what: str) -> tuple[_ReadingBuffer, ...]:
        wanted = 2 if func == "iv" else 1
        bufs = []
        for a in args[:wanted]:
            if a is None:
                bufs.append(None)
                continue
            if not isinstance(a, _BufferNode):
                raise TspError(RUNTIME_ERROR, f"{what}: reading buffer expected, got {_lua_type_name(a)}")
            bufs.append(a.buffer)
        if len(args) > wanted and any(a is not None for a in args[wanted:]):
            raise TspError(RUNTIME_ERROR, f"{what}: too many arguments")
        return tuple(bufs)

    def _measure_once(self, k: int, func: str, bufs: tuple, sequence: int, overhead: bool = True) -> tuple[float, ...]:
        """``measure.count`` readings of one measure command or trigger-model measure action.

        In the trigger model (``overhead=False``) the conversion overhead of the last reading
        does not hold the source: the caller lets it elapse after the end-pulse action.
        """
        s, ch = self.smu[k], self.channels[k]
        for b in bufs:
            if b is not None:
                b.begin(sequence)
        values: tuple[float, ...] = ()
        for n in range(s.count):
            t0 = self.clock.now
            source = ch.level_v if ch.mode == "VOLT" else ch.level_i
            last = n == s.count - 1
            v, i = ch.measure(self.measurement_time(k, overhead=overhead or not last))
            values = self._reading(k, func, v, i)
            if ch.in_compliance:
                s.event_bits |= CURRENT_LIMIT_BIT if ch.mode == "VOLT" else VOLTAGE_LIMIT_BIT
            for b, value in zip(bufs, values):
                if b is not None:
                    b.store(value, t0, source)
            if n < s.count - 1 and s.interval > 0:
                rest = s.interval - (self.clock.now - t0)
                if rest > 0:
                    self.clock.advance(rest, "operation")
        return values

    def _measure_command(self, k: int, func: str, args: tuple) -> tuple[float, ...]:
        bufs = self._buffers(func, args, f"smu{'ab'[k]}.measure.{func}()")
        self._sequence += 1
        return self._measure_once(k, func, bufs, self._sequence)

    def _makebuffer(self, k: int, *args: Any) -> _Node:
        if not args:
            raise TspError(RUNTIME_ERROR, f"smu{'ab'[k]}.makebuffer(n): buffer size expected")
        n = _integer(args[0], f"smu{'ab'[k]}.makebuffer()", 1, MAKEBUFFER_MAX)
        return self._register(_BufferNode("buffer", _ReadingBuffer("buffer", n)))
