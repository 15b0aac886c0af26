"""Keysight B2902A trigger model and the data queries that run it (``:INIT``, ``:ABOR``,
``*TRG``, ``:TRIG``, ``:FETC?``, ``:READ?``, ``:MEAS?``, the arm and trigger layer settings).

A mixin of :class:`~labrram.sim.keysight_b2900.KeysightB2902`, which provides the channel
state, the channels and the value helpers. How the model runs on the virtual clock is described
in that module's docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np

from .instrument import SourceChannel
from .keysight_b2900_constants import (
    CHANNELS,
    COUNT_MAX,
    DELAY_MAX,
    EMULATED_SOURCES,
    INIT_IGNORED,
    NOT_A_NUMBER,
    OVERFLOW,
    OVERRANGE,
    STAT_COMPLIANCE,
    STAT_CURRENT_SOURCE,
    STAT_OVER_CURRENT,
    STAT_OVER_VOLTAGE,
    STAT_RANGE_OVERFLOW,
    TIMER_MAX,
    TIMER_MIN,
    TRIGGER_IGNORED,
    TRIGGER_SOURCES,
    _QUANTUM,
    _error,
)
from .scpi import SETTINGS_CONFLICT, Call, command, error

if TYPE_CHECKING:  # pragma: no cover
    from .keysight_b2900 import _ChannelState


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



class TriggerModelB2900:
    """Mixin of :class:`~labrram.sim.keysight_b2900.KeysightB2902`: the trigger model and the
    data queries that run it."""

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
        self._trace_store(plan.number, st.readings[-1])

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
        self._check_idle()

    def operation_pending(self) -> bool:
        return bool(self._pending)

    def _check_idle(self) -> None:
        """Answer ``:IDLE?``, ``*OPC?`` and ``*OPC`` that waited for channels now idle."""
        busy = {p.number for p in self._pending}
        waiting, self._idle_waiters = self._idle_waiters, []
        for session, channels in waiting:
            if channels & busy:
                self._idle_waiters.append((session, channels))
            elif not session.closed:
                session.reply(b"1\n")
        if not busy:
            self.operation_complete()

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
        self._check_idle()

    @command(":IDLE[:ALL]", write=False)
    @command(":IDLE:ACQuire", write=False)
    @command(":IDLE:TRANsient", write=False)
    def _idle(self, call: Call) -> str | None:
        """1 once the channels are idle; while a run waits for bus triggers the answer waits too."""
        channels = set(self._channel_list(call))
        if any(p.number in channels for p in self._pending) and call.session is not None:
            self._idle_waiters.append((call.session, channels))
            return None
        return "1"

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

