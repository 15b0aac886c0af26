"""Keithley 2636B emulator: ``trigger.timer``/``trigger.blender`` and the SMU trigger model, run as
a discrete-event simulation on the virtual clock when ``smuX.trigger.initiate()`` is called.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING, Any

import numpy as np

try:  # Lua 5.4 when lupa ships it, else lupa's default runtime
    from lupa.lua54 import lua_type
except ImportError:  # pragma: no cover - depends on the lupa build
    from lupa import lua_type  # type: ignore[assignment]

from .keithley2600_objects import (
    _blender_event_id,
    _bounded,
    DISABLE,
    ENABLE,
    _IndexNode,
    _integer,
    LIMIT_AUTO,
    N_BLENDERS,
    N_TIMERS,
    _Node,
    _number,
    OUTPUT_DCVOLTS,
    PARAMETER_TOO_SMALL,
    RUNTIME_ERROR,
    SETTINGS_CONFLICT,
    _smu_event_id,
    SOURCE_IDLE,
    _StimulusNode,
    T_MEASURE_OVERHEAD,
    _timer_event_id,
    TRIGGER_COMMAND_EVENT_ID,
    TspError,
)
from .keithley2600_state import (
    _Blender,
    _Timer,
)


if TYPE_CHECKING:  # pragma: no cover
    from .keithley2600 import Keithley2636B


class TriggerModel2600:
    """Mixin of :class:`~labrram.sim.keithley2600.Keithley2636B`: sweeps and the trigger model."""

    def _timer_node(self) -> _Node:
        node = _Node("timer")
        node.method("reset", lambda *a: setattr(self, "timer_origin", self.clock.now))
        meas = node.child("measure", _Node("timer.measure"))
        meas.method("t", lambda *a: self.clock.now - self.timer_origin)
        return node

    def _trigger_node(self) -> _Node:
        node = _Node("trigger")
        node.const("EVENT_ID", TRIGGER_COMMAND_EVENT_ID)
        node.method("clear", lambda *a: None)
        node.method("wait", lambda *a: False)
        timers = []
        for n in range(1, N_TIMERS + 1):
            t = _Node(f"trigger.timer[{n}]")
            tm = lambda n=n: self.timers[n - 1]  # noqa: E731
            t.const("EVENT_ID", _timer_event_id(n))
            t.integer("count", lambda tm=tm: tm().count, lambda v, tm=tm: setattr(tm(), "count", v), 0, 1_048_575)
            t.attr("delay", lambda tm=tm: tm().delaylist[0], lambda v, tm=tm, n=n: setattr(tm(), "delaylist", [_bounded(v, f"trigger.timer[{n}].delay", 1e-6, 100_000.0)]))
            t.attr("delaylist", lambda: None, lambda v, tm=tm, n=n: setattr(tm(), "delaylist", self._delaylist(v, n)))
            t.boolean("passthrough", lambda tm=tm: tm().passthrough, lambda v, tm=tm: setattr(tm(), "passthrough", v))
            t.integer("stimulus", lambda tm=tm: tm().stimulus, lambda v, tm=tm: setattr(tm(), "stimulus", v), 0, 1000)
            t.readonly("overrun", lambda: False)
            t.method("clear", lambda *a: None)
            t.method("reset", lambda *a, n=n: self.timers.__setitem__(n - 1, _Timer()))
            t.method("wait", lambda *a: False)
            timers.append(t)
        node.child("timer", _IndexNode("trigger.timer", timers))
        blenders = []
        for n in range(1, N_BLENDERS + 1):
            b = _Node(f"trigger.blender[{n}]")
            bl = lambda n=n: self.blenders[n - 1]  # noqa: E731
            b.const("EVENT_ID", _blender_event_id(n))
            b.boolean("orenable", lambda bl=bl: bl().orenable, lambda v, bl=bl: setattr(bl(), "orenable", v))
            b.readonly("overrun", lambda: False)
            b.method("clear", lambda *a: None)
            b.method("reset", lambda *a, n=n: self.blenders.__setitem__(n - 1, _Blender()))
            b.method("wait", lambda *a: False)
            b.child("stimulus", _BlenderStimulusNode(f"trigger.blender[{n}].stimulus", self, n - 1))
            blenders.append(b)
        node.child("blender", _IndexNode("trigger.blender", blenders))
        return node

    def _delaylist(self, value: Any, n: int) -> list[float]:
        if lua_type(value) != "table":
            raise TspError(RUNTIME_ERROR, f"trigger.timer[{n}].delaylist: table of delays expected")
        delays = [_bounded(v, f"trigger.timer[{n}].delaylist", 1e-6, 100_000.0) for v in value.values()]
        if not delays:
            raise TspError(PARAMETER_TOO_SMALL, f"Parameter too small: trigger.timer[{n}].delaylist is empty")
        return delays

    # ===== the trigger model ===================================================================
    def _sweep_list(self, k: int, func: int, unit: str, hi: float, args: tuple) -> None:
        what = f"smu{'ab'[k]}.trigger.source.list{unit}()"
        if len(args) != 1 or lua_type(args[0]) != "table":
            raise TspError(RUNTIME_ERROR, f"{what}: table of source values expected")
        values = [_bounded(v, what, -hi, hi) for v in args[0].values()]
        if not values:
            raise TspError(PARAMETER_TOO_SMALL, f"Parameter too small: {what} needs at least one value")
        s = self.smu[k]
        s.sweep_func, s.sweep_values = func, values

    def _sweep_linear(self, k: int, func: int, unit: str, hi: float, args: tuple, log: bool) -> None:
        what = f"smu{'ab'[k]}.trigger.source.{'log' if log else 'linear'}{unit}()"
        if len(args) < 3:
            raise TspError(RUNTIME_ERROR, f"{what}: (start, stop, points) expected")
        start = _bounded(args[0], what, -hi, hi)
        stop = _bounded(args[1], what, -hi, hi)
        points = _integer(args[2], f"{what} points", 2, 268_435_455)
        if log:
            asymptote = _number(args[3], what) if len(args) > 3 else 0.0
            a, b = start - asymptote, stop - asymptote
            if a == 0 or b == 0 or (a > 0) != (b > 0):
                raise TspError(SETTINGS_CONFLICT, f"Settings conflict: {what} start and stop must lie on the same side of the asymptote")
            values = list(asymptote + np.sign(a) * np.geomspace(abs(a), abs(b), points))
        else:
            values = list(np.linspace(start, stop, points))
        s = self.smu[k]
        s.sweep_func, s.sweep_values = func, [float(v) for v in values]

    def _trigger_measure(self, k: int, func: str, args: tuple) -> None:
        bufs = self._buffers(func, args, f"smu{'ab'[k]}.trigger.measure.{func}()")
        s = self.smu[k]
        s.meas_func, s.meas_buffers = func, bufs

    def _initiate(self, k: int) -> None:
        """Run the SMU's trigger model to completion on the virtual clock."""
        s, ch = self.smu[k], self.channels[k]
        smu = f"smu{'ab'[k]}"
        if s.trig_count == 0 or s.arm_count == 0:
            raise TspError(SETTINGS_CONFLICT, f"Settings conflict: {smu}.trigger.count = 0 / arm.count = 0 (run until aborted) is not emulated")
        if s.src_action == ENABLE:
            if s.sweep_func is None:
                raise TspError(SETTINGS_CONFLICT, f"Settings conflict: {smu}.trigger.source.action is ENABLE but no sweep is configured (listv/linearv/...)")
            if s.sweep_func != s.func:
                raise TspError(SETTINGS_CONFLICT, f"Settings conflict: the configured sweep does not match {smu}.source.func")
        if s.meas_action != DISABLE and s.meas_func is None:
            raise TspError(SETTINGS_CONFLICT, f"Settings conflict: {smu}.trigger.measure.action is enabled but no measurement is configured ({smu}.trigger.measure.i(buffer), ...)")
        volts = s.func == OUTPUT_DCVOLTS
        limit_i = s.trig_limiti if s.trig_limiti != LIMIT_AUTO else s.limiti
        limit_v = s.trig_limitv if s.trig_limitv != LIMIT_AUTO else s.limitv
        if s.src_action == ENABLE:
            for v in s.sweep_values:
                self._check_soa(k, s.func, v, limit_i, limit_v)
        self._sequence += 1
        sequence = self._sequence
        idle = s.levelv if volts else s.leveli
        ch.flush()
        saved_limits = (ch.limit_i, ch.limit_v)
        ch.limit_i, ch.limit_v = limit_i, limit_v
        sim = _EventSim(self, k)
        try:
            sim.run(sequence)
        except BaseException:
            if s.src_action == ENABLE:  # an aborted sweep returns to the idle level
                ch.set_level(idle)
            raise
        finally:
            ch.flush()
            ch.limit_i, ch.limit_v = saved_limits


class _BlenderStimulusNode(_StimulusNode):
    def __init__(self, name: str, inst: Keithley2636B, index: int) -> None:
        _Node.__init__(self, name)
        self.inst = inst
        self.index = index

    @property
    def slots(self) -> list[int]:  # type: ignore[override]
        return self.inst.blenders[self.index].stimulus


class _EventSim:
    """Discrete-event run of one SMU's trigger model with the trigger timers and blenders.

    Event detectors latch: an event that arrives before its stage waits for it is remembered
    (one deep). Timers triggered while still running ignore the new stimulus.
    """

    STAGES = ("arm", "source", "measure", "endpulse")

    def __init__(self, inst: Keithley2636B, k: int) -> None:
        self.inst = inst
        self.k = k
        self.s = inst.smu[k]
        self.ch = inst.channels[k]
        self.clock = inst.clock
        self.heap: list[tuple[float, int, int]] = []
        self.seq = 0
        self.latched = {stage: False for stage in self.STAGES}
        self.timer_busy_until = [-math.inf] * N_TIMERS
        self.blender_seen: list[set[int]] = [set() for _ in range(N_BLENDERS)]

    def stimulus(self, stage: str) -> int:
        s = self.s
        return {"arm": s.arm_stimulus, "source": s.src_stimulus, "measure": s.meas_stimulus, "endpulse": s.endpulse_stimulus}[stage]

    # events ------------------------------------------------------------------------------
    def push(self, t: float, event_id: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, event_id))

    def emit(self, event_id: int, t: float) -> None:
        """Fan an event out to the detectors, timers and blenders that listen to it."""
        self.inst._charge()
        for stage in self.STAGES:
            if self.stimulus(stage) == event_id:
                self.latched[stage] = True
        for n, tm in enumerate(self.inst.timers):
            if tm.stimulus == event_id and t >= self.timer_busy_until[n]:
                self.start_timer(n, t)
        for n, bl in enumerate(self.inst.blenders):
            inputs = [x for x in bl.stimulus if x]
            if event_id not in inputs:
                continue
            if bl.orenable:
                self.push(t, _blender_event_id(n + 1))
            else:
                self.blender_seen[n].add(event_id)
                if self.blender_seen[n] >= set(inputs):
                    self.blender_seen[n] = set()
                    self.push(t, _blender_event_id(n + 1))

    def start_timer(self, n: int, t: float) -> None:
        tm = self.inst.timers[n]
        event = _timer_event_id(n + 1)
        if tm.passthrough:
            self.push(t, event)
        when = t
        for j in range(tm.count):
            when += tm.delaylist[j % len(tm.delaylist)]
            self.push(when, event)
        self.timer_busy_until[n] = when

    def drain(self, until: float) -> None:
        """Deliver every event that happened up to ``until`` (at its own time)."""
        while self.heap and self.heap[0][0] <= until:
            t, _, event = heapq.heappop(self.heap)
            self.emit(event, t)

    def wait(self, stage: str) -> None:
        """Block the SMU until ``stage``'s detector fires (immediately for stimulus 0)."""
        if self.stimulus(stage) == 0:
            self.drain(self.clock.now)
            return
        while True:
            self.drain(self.clock.now)
            if self.latched[stage]:
                self.latched[stage] = False
                return
            if not self.heap:
                raise TspError(
                    SETTINGS_CONFLICT,
                    f"Settings conflict: smu{'ab'[self.k]}.trigger.{stage}.stimulus waits for event {self.stimulus(stage)}, "
                    "which nothing will generate; trigger model aborted",
                )
            t = self.heap[0][0]
            if t > self.clock.now:
                self.clock.advance(t - self.clock.now, "operation")

    def smu_event(self, name: str) -> None:
        self.emit(_smu_event_id(self.k, name), self.clock.now)

    # the SMU's sequence ------------------------------------------------------------------
    def run(self, sequence: int) -> None:
        s, ch, inst = self.s, self.ch, self.inst
        volts = s.func == OUTPUT_DCVOLTS
        idle = s.levelv if volts else s.leveli
        values = s.sweep_values
        point = 0
        for _ in range(s.arm_count):
            self.wait("arm")
            self.smu_event("ARMED")
            self.smu_event("SWEEPING")
            for _ in range(s.trig_count):
                self.wait("source")
                if s.src_action == ENABLE:
                    ch.set_level(values[point % len(values)])
                    point += 1
                    if s.src_delay > 0:
                        self.clock.advance(s.src_delay, "operation")
                self.smu_event("SOURCE_COMPLETE")
                self.wait("measure")
                busy_until = self.clock.now
                if s.meas_action != DISABLE:
                    inst._measure_once(self.k, s.meas_func, s.meas_buffers, sequence, overhead=False)
                    busy_until = self.clock.now + T_MEASURE_OVERHEAD
                self.smu_event("MEASURE_COMPLETE")
                self.wait("endpulse")
                if s.endpulse_action == SOURCE_IDLE and s.src_action == ENABLE:
                    ch.set_level(idle)
                self.smu_event("PULSE_COMPLETE")
                if busy_until > self.clock.now:  # the conversion finishes before the next point
                    self.clock.advance(busy_until - self.clock.now, "operation")
            self.smu_event("SWEEP_COMPLETE")
            if s.endsweep_action == SOURCE_IDLE and s.src_action == ENABLE:
                ch.set_level(idle)
        self.smu_event("IDLE")
