"""The Keithley 2400 trigger model, trace buffer, CALC3 statistics and data formats.

The trigger model follows the manual's remote trigger flowchart (2400 Series User's Manual,
section 11, figure 11-3)::

    idle --:INIT--> arm layer:  arm event detector (:ARM:SOUR IMM|TIM|MAN|BUS|TLIN|NST|PST|BST,
                                bypassed once with :ARM:DIR SOUR)
                                output trigger on entering the trigger layer (:ARM:OUTP TENT)
                    trigger layer, :TRIG:COUN times:
                        source event detector  -> source action    -> output trigger (SOUR)
                        delay event detector   -> trigger delay    -> output trigger (DEL)
                        measure event detector -> source delay + measurement -> output (SENS)
                      (an event detector waits for a trigger-link input only if :TRIG:INP names it
                      and :TRIG:SOUR is TLIN; the source detector is bypassed once with
                      :TRIG:DIR SOUR)
                    output trigger on leaving the trigger layer (:ARM:OUTP TEX)
                    :ARM:COUN passes, then idle

The model runs as a generator: it runs on the virtual clock until it must wait for an event that
has not happened (a bus trigger ``*TRG``/GET, the TRIG key ``:SYST:KEY 20``, a trigger-link
input line, a start-of-test pulse on the digital I/O), then parks. The event resumes it. As the
manual says, while the instrument is out of idle "most commands (except DCL, SDC, IFC, and
ABORt) are queued up and will not be executed until the unit returns to idle": messages other
than ``:ABORt``, ``*TRG`` and ``:SYST:KEY`` (a front-panel key press) wait in a queue and run,
in order, when the model ends; a device clear (DCL/SDC) aborts the model and drops the queue.
A serial poll still answers: the operation event register latches where the model waits (bit 5
trigger layer, bit 6 arm layer, bit 10 idle) and sums into the status byte. ``:READ?`` or
``:MEASure?`` that would wait for a bus trigger is a trigger deadlock (-214): the instrument
cannot receive ``*TRG`` while it answers a query.

Output triggers go out on the trigger-link line named by ``:ARM:OLIN`` / ``:TRIG:OLIN`` and are
recorded in :attr:`TriggerModel2400.link_out` with their time; :meth:`TriggerModel2400.link_in`
delivers an input trigger on a line (a cable from another instrument).
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field
from typing import Generator

import numpy as np

from .scpi import (
    EXECUTION_ERROR,
    ILLEGAL_PARAMETER,
    SETTINGS_CONFLICT,
    Call,
    ScpiError,
    command,
    error,
    format_nr3,
)

ELEMENTS = ("VOLTage", "CURRent", "RESistance", "TIME", "STATus")
ARM_SOURCES = ("IMMediate", "TLINk", "TIMer", "MANual", "BUS", "NSTest", "PSTest", "BSTest")
WAITING_SOURCES = {"TLIN", "MAN", "BUS", "NST", "PST", "BST"}
LINK_EVENTS = ("SOURce", "DELay", "SENSe", "NONE")
MAX_READINGS = 2500
TRIG_KEY = 20  # the TRIG key's code for :SYST:KEY (manual, key-press codes)

TRIGGER_DEADLOCK = -214
INIT_IGNORED = -213
DATA_STALE = -230
_MESSAGES = {TRIGGER_DEADLOCK: "Trigger deadlock", INIT_IGNORED: "Init ignored", DATA_STALE: "Data corrupt or stale"}

# Operation event register bits (2400 manual, status structure).
OPER_TRIGGER_WAIT = 1 << 5
OPER_ARM_WAIT = 1 << 6
OPER_IDLE = 1 << 10
# Measurement event register bits.
MEAS_READING_AVAILABLE = 1 << 6
MEAS_BUFFER_AVAILABLE = 1 << 8
MEAS_BUFFER_FULL = 1 << 9
MEAS_COMPLIANCE = 1 << 14


# What a message may hold to run while the model is out of idle (everything else is queued).
_IMMEDIATE_UNIT = re.compile(r"^\s*(?::?ABOR(?:T)?(?:\s.*)?|\*TRG|:?SYST(?:EM)?:KEY\s.*)\s*$", re.IGNORECASE | re.DOTALL)


def _err(code: int, detail: str) -> ScpiError:
    return ScpiError(code, f"{_MESSAGES[code]}; {detail}")


def short(keyword: str) -> str:
    return "".join(ch for ch in keyword if ch.isupper() or ch.isdigit()) or keyword.upper()


@dataclass
class TriggerSettings:
    """Trigger-model, buffer and format settings at their ``*RST`` values (manual, table 18-x)."""

    arm_count: int = 1  # 0 means INFinite
    arm_source: str = "IMM"
    arm_timer: float = 0.1
    arm_direction: str = "ACC"
    arm_ilin: int = 1
    arm_olin: int = 2
    arm_output: str = "NONE"
    trig_count: int = 1
    trig_delay: float = 0.0
    trig_source: str = "IMM"
    trig_direction: str = "ACC"
    trig_ilin: int = 1
    trig_olin: int = 2
    trig_input: list[str] = field(default_factory=lambda: ["SOUR"])  # the source event detector
    trig_output: list[str] = field(default_factory=list)
    trace_points: int = 100
    trace_feed: str = "SENS"
    trace_control: str = "NEV"
    trace_tstamp: str = "ABS"
    trace: list[list[float]] = field(default_factory=list)
    calc3_format: str = "MEAN"
    data_format: str = "ASC"
    byte_order: str = "SWAP"


class TriggerModel2400:
    """Mixin of :class:`~labrram.sim.keithley2400.Keithley2400`: trigger model, buffer, formats.

    The host class provides ``self.s`` (source/sense state), ``self.channel``, ``self.clock``,
    ``self.registers``, ``_source_points()``, ``_measure_once()`` and ``_elements_of()``.
    """

    def reset_trigger_model(self) -> None:
        self.t = TriggerSettings()
        self._run: Generator[str, None, None] | None = None
        self._waiting_for: str | None = None
        self._pending_events: set[str] = set()
        self._fetch_waiters: list = []
        self._deferred: list = []  # (session, message) queued while out of idle
        self._timer_last: float | None = None
        self.last: list[list[float]] = []
        self.link_out: list[tuple[float, int]] = []
        self._set_oper_state()

    # --- the model ------------------------------------------------------------------------
    def _set_oper_state(self) -> None:
        oper = self.registers["OPER"]
        waiting = self._waiting_for
        state = 0
        if self._run is None:
            state = OPER_IDLE
        elif waiting == "ARM":
            state = OPER_ARM_WAIT
        elif waiting is not None:
            state = OPER_TRIGGER_WAIT
        oper.set_condition((oper.condition & ~(OPER_IDLE | OPER_ARM_WAIT | OPER_TRIGGER_WAIT)) | state)

    def _output_trigger(self, line: int) -> None:
        self.link_out.append((self.clock.now, line))

    def _detector(self, source: str, layer: str) -> Generator[str, None, None]:
        """Wait in an event detector until an event of ``source`` arrives."""
        while source not in self._pending_events:
            self._waiting_for = layer
            yield source
        self._pending_events.discard(source)
        self._waiting_for = None

    def _model(self, readings: list[list[float]]) -> Generator[str, None, None]:
        t, s = self.t, self.s
        points = self._source_points()
        fixed = s.source_mode[s.source_func] == "FIX"
        arm_passes = range(t.arm_count) if t.arm_count else iter(int, 1)  # INFinite
        k = 0
        for a in arm_passes:
            if not (t.arm_direction == "SOUR" and a == 0):
                if t.arm_source == "TIM":
                    if self._timer_last is not None:
                        wait = self._timer_last + t.arm_timer - self.clock.now
                        if wait > 0:
                            self.clock.advance(wait, "operation")
                elif t.arm_source in WAITING_SOURCES:
                    yield from self._detector(t.arm_source, "ARM")
            self._timer_last = self.clock.now
            if t.arm_output == "TENT":
                self._output_trigger(t.arm_olin)
            waits = t.trig_source == "TLIN"
            for n in range(t.trig_count):
                if waits and "SOUR" in t.trig_input and not (t.trig_direction == "SOUR" and n == 0 and a == 0):
                    yield from self._detector("TLIN", "TRIG")
                self._source_action(None if fixed else points[k % len(points)])
                if "SOUR" in t.trig_output:
                    self._output_trigger(t.trig_olin)
                if waits and "DEL" in t.trig_input:
                    yield from self._detector("TLIN", "TRIG")
                if t.trig_delay > 0:
                    self.clock.advance(t.trig_delay, "operation")
                if "DEL" in t.trig_output:
                    self._output_trigger(t.trig_olin)
                if waits and "SENS" in t.trig_input:
                    yield from self._detector("TLIN", "TRIG")
                readings.append(self._measure_once())
                self._store(readings[-1])
                k += 1
                if "SENS" in t.trig_output:
                    self._output_trigger(t.trig_olin)
            if t.arm_output == "TEX":
                self._output_trigger(t.arm_olin)

    def _store(self, reading: list[float]) -> None:
        t, meas = self.t, self.registers["MEAS"]
        meas.pulse(MEAS_READING_AVAILABLE)
        if t.trace_control == "NEXT" and len(t.trace) < t.trace_points:
            t.trace.append(reading)
            meas.set_bits(MEAS_BUFFER_AVAILABLE)
            if len(t.trace) >= t.trace_points:
                t.trace_control = "NEV"
                meas.set_bits(MEAS_BUFFER_FULL)

    def _start(self) -> None:
        """``:INIT``: leave idle and run the model as far as it goes."""
        t = self.t
        if self._run is not None:
            raise _err(INIT_IGNORED, "the trigger model is already running")
        if not self.channel.output and not self.s.auto_output_off:
            raise error(803, "Output disabled")
        n = t.arm_count * t.trig_count
        if n > MAX_READINGS:
            raise error(SETTINGS_CONFLICT, "arm count x trigger count > 2500")
        if t.arm_count == 0 and t.arm_source not in WAITING_SOURCES:
            raise error(SETTINGS_CONFLICT, "an infinite arm count needs an arm event to wait for")
        self._readings: list[list[float]] = []
        self._saved_level = self.channel.level_v if self.s.source_func == "VOLT" else self.channel.level_i
        self._pending_events.clear()
        self._timer_last = None
        self._run = self._model(self._readings)
        self._advance()

    def _advance(self) -> None:
        """Run the model until it waits or ends."""
        assert self._run is not None
        try:
            next(self._run)
        except StopIteration:
            self._finish()
            return
        self._set_oper_state()

    def _finish(self) -> None:
        s = self.s
        self._run, self._waiting_for = None, None
        if s.source_mode[s.source_func] != "FIX":
            self.channel.set_level(self._saved_level)
        self.last = self._readings
        s.tripped = any(int(r[4]) & (1 << 3) for r in self._readings)
        if s.auto_output_off:
            self.channel.set_output(False)
            self.bench.after_output_change()
        self._set_oper_state()
        waiters, self._fetch_waiters = self._fetch_waiters, []
        for session in waiters:
            if not session.closed:
                session.reply((self._format(self.last) + "\n").encode("latin-1"))
        self.operation_complete()

    def _event(self, source: str) -> bool:
        """An event arrives; returns True if the model used it."""
        if self._run is None or self._waiting_for is None:
            return False
        self._pending_events.add(source)
        self._advance()
        return True

    def bus_trigger(self) -> None:
        """A bus trigger (``*TRG`` or a GPIB GET)."""
        self._event("BUS")
        self._run_deferred()

    def link_in(self, line: int) -> None:
        """An input trigger on a trigger-link line (a cable from another instrument).

        Parameters
        ----------
        line : int
            Trigger-link line 1-4; it is used by an event detector waiting on that line
            (``:ARM:ILIN`` / ``:TRIG:ILIN``) and ignored otherwise.
        """
        if self._waiting_for == "ARM" and self.t.arm_source == "TLIN" and line == self.t.arm_ilin:
            self._event("TLIN")
        elif self._waiting_for == "TRIG" and line == self.t.trig_ilin:
            self._event("TLIN")
        self._run_deferred()

    def operation_pending(self) -> bool:
        return self._run is not None

    def process(self, session, message: bytes) -> None:
        """Run a program message now, or queue it while the trigger model is out of idle."""
        if self._run is not None and not self._runs_while_busy(message):
            self._deferred.append((session, message))
            return
        super().process(session, message)  # type: ignore[misc]
        self._run_deferred()

    @staticmethod
    def _runs_while_busy(message: bytes) -> bool:
        units = [u for u in message.decode("latin-1").split(";") if u.strip()]
        return bool(units) and all(_IMMEDIATE_UNIT.match(u) for u in units)

    def _run_deferred(self) -> None:
        """After the model returns to idle: the queued messages, in order, until one starts it again."""
        while self._run is None and self._deferred:
            session, message = self._deferred.pop(0)
            if not session.closed:
                super().process(session, message)  # type: ignore[misc]

    def device_clear(self, session) -> None:
        """DCL / SDC: abort the trigger model and drop queued messages."""
        self._deferred = []
        self._abort()

    def _acquire_now(self) -> list[list[float]]:
        """``:READ?``: INIT, then the readings once the model is idle again."""
        self._start()
        if self._run is not None:
            waiting = self.t.arm_source if self._waiting_for == "ARM" else "TLIN"
            if waiting == "BUS":
                self._abort()
                raise _err(TRIGGER_DEADLOCK, "READ? with a bus-triggered arm layer")
            return []
        return self.last

    def _abort(self) -> None:
        if self._run is not None:
            self._run.close()
            self._finish()

    # --- trigger commands -------------------------------------------------------------------
    @command(":INITiate[:IMMediate]", query=False)
    def _init(self, call: Call) -> None:
        self._start()

    @command(":ABORt", query=False)
    def _abort_cmd(self, call: Call) -> None:
        self._abort()

    @command(":TRIGger:CLEar", query=False)
    def _trig_clear(self, call: Call) -> None:
        self._pending_events.discard("TLIN")

    @command(":READ", write=False)
    def _read(self, call: Call) -> str | None:
        readings = self._acquire_now()
        if self._run is not None:  # waits for a trigger-link input or the TRIG key
            self._fetch_waiters.append(call.session)
            return None
        return self._format(readings)

    @command(":FETCh", write=False)
    @command("[:SENSe[1]]:DATA[:LATest]", write=False)
    @command(":CALCulate[1]:DATA", write=False)
    @command(":CALCulate[1]:DATA:LATest", write=False)
    @command(":CALCulate2:DATA", write=False)
    @command(":CALCulate2:DATA:LATest", write=False)
    def _fetch(self, call: Call) -> str | None:
        if self._run is not None:
            self._fetch_waiters.append(call.session)
            return None
        if not self.last:
            raise _err(DATA_STALE, "no readings to fetch")
        head = call.header.upper()
        latest = "LAT" in head or not ("CALC" in head or "FETC" in head)  # [:SENS]:DATA? is the latest
        return self._format(self.last[-1:] if latest else self.last)

    def _count(self, call: Call, attr: str, allow_inf: bool) -> str | None:
        if call.query:
            value = getattr(self.t, attr)
            return "+9.9E37" if value == 0 else str(value)
        call.expect_args(1)
        raw = call.args[0].strip().upper()
        if allow_inf and raw in ("INF", "INFINITE"):
            setattr(self.t, attr, 0)
            return None
        setattr(self.t, attr, call.integer(0, 1, MAX_READINGS, default=1))
        return None

    @command(":ARM[:SEQuence[1]][:LAYer[1]]:COUNt")
    def _arm_count(self, call: Call) -> str | None:
        return self._count(call, "arm_count", allow_inf=True)

    @command(":TRIGger[:SEQuence[1]]:COUNt")
    def _trig_count(self, call: Call) -> str | None:
        return self._count(call, "trig_count", allow_inf=False)

    @command(":ARM[:SEQuence[1]][:LAYer[1]]:SOURce")
    def _arm_source(self, call: Call) -> str | None:
        if call.query:
            return self.t.arm_source
        self.t.arm_source = short(next(o for o in ARM_SOURCES if o.upper() == call.choice(0, ARM_SOURCES)))
        return None

    @command(":TRIGger[:SEQuence[1]]:SOURce")
    def _trig_source(self, call: Call) -> str | None:
        if call.query:
            return self.t.trig_source
        self.t.trig_source = "IMM" if call.choice(0, ["IMMediate", "TLINk"]) == "IMMEDIATE" else "TLIN"
        return None

    @command(":ARM[:SEQuence[1]][:LAYer[1]]:TIMer")
    def _arm_timer(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.t.arm_timer)
        self.t.arm_timer = call.number(0, 0.001, 99999.99, default=0.1)
        return None

    @command(":TRIGger[:SEQuence[1]]:DELay")
    def _trig_delay(self, call: Call) -> str | None:
        if call.query:
            return format_nr3(self.t.trig_delay)
        self.t.trig_delay = call.number(0, 0.0, 999.9999, default=0.0)
        return None

    def _direction(self, call: Call, attr: str) -> str | None:
        if call.query:
            return getattr(self.t, attr)
        setattr(self.t, attr, "SOUR" if call.choice(0, ["SOURce", "ACCeptor"]) == "SOURCE" else "ACC")
        return None

    @command(":ARM[:SEQuence[1]][:LAYer[1]][:TCONfigure]:DIRection")
    def _arm_dir(self, call: Call) -> str | None:
        return self._direction(call, "arm_direction")

    @command(":TRIGger[:SEQuence[1]][:TCONfigure]:DIRection")
    def _trig_dir(self, call: Call) -> str | None:
        return self._direction(call, "trig_direction")

    def _line(self, call: Call, attr: str) -> str | None:
        if call.query:
            return str(getattr(self.t, attr))
        setattr(self.t, attr, call.integer(0, 1, 4, default=1))
        return None

    @command(":ARM[:SEQuence[1]][:LAYer[1]][:TCONfigure]:ILINe")
    def _arm_ilin(self, call: Call) -> str | None:
        return self._line(call, "arm_ilin")

    @command(":ARM[:SEQuence[1]][:LAYer[1]][:TCONfigure]:OLINe")
    def _arm_olin(self, call: Call) -> str | None:
        return self._line(call, "arm_olin")

    @command(":TRIGger[:SEQuence[1]][:TCONfigure]:ILINe")
    def _trig_ilin(self, call: Call) -> str | None:
        return self._line(call, "trig_ilin")

    @command(":TRIGger[:SEQuence[1]][:TCONfigure]:OLINe")
    def _trig_olin(self, call: Call) -> str | None:
        return self._line(call, "trig_olin")

    @command(":ARM[:SEQuence[1]][:LAYer[1]][:TCONfigure]:OUTPut")
    def _arm_outp(self, call: Call) -> str | None:
        if call.query:
            return self.t.arm_output
        self.t.arm_output = short(next(o for o in ("TENTer", "TEXit", "NONE") if o.upper() == call.choice(0, ["TENTer", "TEXit", "NONE"])))
        return None

    def _events(self, call: Call, attr: str) -> str | None:
        if call.query:
            return ",".join(getattr(self.t, attr)) or "NONE"
        if not call.args:
            raise error(-109, "Missing parameter")
        chosen = {short(next(o for o in LINK_EVENTS if o.upper() == call.choice(k, LINK_EVENTS))) for k in range(len(call.args))}
        if "NONE" in chosen and len(chosen) > 1:
            raise error(ILLEGAL_PARAMETER, "NONE cannot be combined with other events")
        setattr(self.t, attr, [e for e in ("SOUR", "DEL", "SENS") if e in chosen])
        return None

    @command(":TRIGger[:SEQuence[1]][:TCONfigure]:INPut")
    def _trig_inp(self, call: Call) -> str | None:
        return self._events(call, "trig_input")

    @command(":TRIGger[:SEQuence[1]][:TCONfigure]:OUTPut")
    def _trig_outp(self, call: Call) -> str | None:
        return self._events(call, "trig_output")

    # --- trace buffer ---------------------------------------------------------------------------
    @command(":TRACe:POINts")
    def _trace_points(self, call: Call) -> str | None:
        if call.query:
            return str(self.t.trace_points)
        self.t.trace_points = call.integer(0, 1, MAX_READINGS, default=100)
        return None

    @command(":TRACe:POINts:ACTual", write=False)
    def _trace_actual(self, call: Call) -> str:
        return str(len(self.t.trace))

    @command(":TRACe:FREE", write=False)
    def _trace_free(self, call: Call) -> str:
        used = len(self.t.trace) * 4 * len(ELEMENTS)
        return f"{MAX_READINGS * 4 * len(ELEMENTS) - used},{used}"

    @command(":TRACe:FEED")
    def _trace_feed(self, call: Call) -> str | None:
        if call.query:
            return self.t.trace_feed
        choice = call.choice(0, ["SENSe", "SENSe1", "CALCulate", "CALCulate1", "CALCulate2"])
        self.t.trace_feed = {"SENSE": "SENS", "SENSE1": "SENS", "CALCULATE": "CALC", "CALCULATE1": "CALC"}.get(choice, "CALC2")
        return None

    @command(":TRACe:FEED:CONTrol")
    def _trace_control(self, call: Call) -> str | None:
        if call.query:
            return self.t.trace_control
        self.t.trace_control = "NEXT" if call.choice(0, ["NEVer", "NEXT"]) == "NEXT" else "NEV"
        return None

    @command(":TRACe:TSTamp:FORMat")
    def _trace_tstamp(self, call: Call) -> str | None:
        if call.query:
            return self.t.trace_tstamp
        self.t.trace_tstamp = "DELT" if call.choice(0, ["ABSolute", "DELTa"]) == "DELTA" else "ABS"
        return None

    @command(":TRACe:CLEar", query=False)
    def _trace_clear(self, call: Call) -> None:
        if self.t.trace_control == "NEXT" and self._run is not None:
            raise error(800, "Illegal with storage active")
        self.t.trace = []
        self.registers["MEAS"].set_bits(MEAS_BUFFER_AVAILABLE | MEAS_BUFFER_FULL, on=False)

    @command(":TRACe:DATA", write=False)
    def _trace_data(self, call: Call) -> str:
        rows = [list(r) for r in self.t.trace]
        if self.t.trace_tstamp == "DELT" and rows:
            t0 = rows[0][3]
            for r in rows:
                r[3] -= t0
        return self._format(rows) if rows else ""

    # --- CALC3 statistics ---------------------------------------------------------------------
    @command(":CALCulate3:FORMat")
    def _calc3_format(self, call: Call) -> str | None:
        if call.query:
            return self.t.calc3_format
        self.t.calc3_format = short(next(o for o in ("MEAN", "SDEViation", "MAXimum", "MINimum", "PKPK") if o.upper() == call.choice(0, ["MEAN", "SDEViation", "MAXimum", "MINimum", "PKPK"])))
        return None

    @command(":CALCulate3:DATA", write=False)
    def _calc3_data(self, call: Call) -> str:
        """The statistic over the buffer of each enabled element (time and status excluded)."""
        if not self.t.trace:
            raise error(EXECUTION_ERROR, "the buffer is empty")
        data = np.array(self.t.trace, dtype=float)
        fn = {
            "MEAN": lambda x: float(np.mean(x)),
            "SDEV": lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else 0.0,
            "MAX": lambda x: float(np.max(x)),
            "MIN": lambda x: float(np.min(x)),
            "PKPK": lambda x: float(np.ptp(x)),
        }[self.t.calc3_format]
        cols = [ELEMENTS.index(e) for e in self.s.elements if e in ELEMENTS[:3]]
        return ",".join(format_nr3(fn(data[:, c])) for c in cols)

    # --- data format ------------------------------------------------------------------------------
    @command(":FORMat[:DATA]")
    def _form_data(self, call: Call) -> str | None:
        if call.query:
            return {"ASC": "ASC", "REAL": "REAL,32", "SRE": "SRE"}[self.t.data_format]
        call.expect_args(1, 2)
        fmt = call.choice(0, ["ASCii", "REAL", "SREal"])
        if fmt == "REAL" and len(call.args) == 2 and call.integer(1) != 32:
            raise error(ILLEGAL_PARAMETER, "the 2400 sends REAL,32 only")
        if fmt != "REAL" and len(call.args) == 2:
            raise error(-108, "Parameter not allowed")
        self.t.data_format = {"ASCII": "ASC", "REAL": "REAL", "SREAL": "SRE"}[fmt]
        return None

    @command(":FORMat:BORDer")
    def _form_border(self, call: Call) -> str | None:
        if call.query:
            return self.t.byte_order
        self.t.byte_order = "NORM" if call.choice(0, ["NORMal", "SWAPped"]) == "NORMAL" else "SWAP"
        return None

    def _format(self, readings: list[list[float]]) -> str:
        """Readings as the data format says: ASCII NR3 fields, or a ``#0`` block of float32."""
        idx = [ELEMENTS.index(e) for e in self.s.elements]
        values = [r[k] for r in readings for k in idx]
        if self.t.data_format == "ASC":
            return ",".join(format_nr3(v) for v in values)
        order = ">" if self.t.byte_order == "NORM" else "<"
        payload = struct.pack(f"{order}{len(values)}f", *[v if math.isfinite(v) else 9.91e37 for v in values])
        return "#0" + payload.decode("latin-1")
