"""Keithley 2636B emulator: reading buffers (dedicated ``nvbufferY`` and ``makebuffer``) and the
state that ``smuX.reset()``, ``trigger.timer``/``blender`` and ``format`` hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .keithley2600_objects import (
    AUTORANGE_ON,
    AUTOZERO_AUTO,
    BYTEORDER_LITTLE,
    _choice,
    DELAY_AUTO,
    DELAY_OFF,
    DISABLE,
    FILTER_REPEAT_AVG,
    FORMAT_ASCII,
    LIMIT_AUTO,
    _Node,
    OUTPUT_DCVOLTS,
    OUTPUT_NORMAL,
    RUNTIME_ERROR,
    SENSE_LOCAL,
    SETTINGS_CONFLICT,
    SOURCE_HOLD,
    SOURCE_IDLE,
    TIMER_DEFAULT_DELAY,
    TspError,
)


# --- reading buffers -------------------------------------------------------------------------


class _ReadingBuffer:
    """A TSP reading buffer (dedicated ``nvbufferY`` or made with ``makebuffer``)."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.appendmode = 0
        self.collecttimestamps = 0
        self.collectsourcevalues = 0
        self.fillmode = 0  # FILL_ONCE; FILL_WINDOW (1) keeps the newest readings
        self.fillcount = 0  # readings that make the buffer full (0: its capacity)
        self.clear()

    def clear(self) -> None:
        self.readings: list[float] = []
        self.times: list[float] = []
        self.sources: list[float] = []
        self.basetimestamp = 0.0
        self.sequence = -1

    @property
    def n(self) -> int:
        return len(self.readings)

    def begin(self, sequence: int) -> None:
        """A measurement command or sweep starts: without append mode, it replaces the contents."""
        if sequence != self.sequence:
            self.sequence = sequence
            if not self.appendmode:
                self.readings, self.times, self.sources = [], [], []

    def store(self, value: float, t: float, source: float) -> None:
        full = self.fillcount or self.capacity
        if len(self.readings) >= full:
            if not self.fillmode:
                return  # fill once: a full buffer keeps its first readings
            del self.readings[0], self.times[0], self.sources[0]  # fill window: drop the oldest
        if not self.readings:
            self.basetimestamp = t
        self.readings.append(float(value))
        self.times.append(t)
        self.sources.append(float(source))

    def field(self, name: str) -> list[float]:
        if name == "readings":
            return self.readings
        if name == "timestamps":
            if not self.collecttimestamps:
                raise TspError(RUNTIME_ERROR, f"{self.name}.timestamps were not collected (set {self.name}.collecttimestamps = 1 before measuring)")
            t0 = self.basetimestamp
            return [t - t0 for t in self.times]
        if name == "sourcevalues":
            if not self.collectsourcevalues:
                raise TspError(RUNTIME_ERROR, f"{self.name}.sourcevalues were not collected (set {self.name}.collectsourcevalues = 1 before measuring)")
            return self.sources
        raise KeyError(name)  # pragma: no cover


class _BufferNode(_Node):
    def __init__(self, name: str, buffer: _ReadingBuffer) -> None:
        super().__init__(name)
        self.buffer = buffer
        b = buffer
        self.readonly("n", lambda: b.n)
        self.readonly("capacity", lambda: b.capacity)
        self.readonly("basetimestamp", lambda: b.basetimestamp)
        self.readonly("timestampresolution", lambda: 1e-6)
        self.attr("appendmode", lambda: b.appendmode, lambda v: self._empty_only("appendmode", v))
        self.attr("collecttimestamps", lambda: b.collecttimestamps, lambda v: self._empty_only("collecttimestamps", v))
        self.attr("collectsourcevalues", lambda: b.collectsourcevalues, lambda v: self._empty_only("collectsourcevalues", v))
        self.choice("fillmode", lambda: b.fillmode, lambda v: setattr(b, "fillmode", v), (0, 1))
        self.integer("fillcount", lambda: b.fillcount, lambda v: setattr(b, "fillcount", v), 0, b.capacity)
        self.method("clear", lambda *a: b.clear())
        self.method("clearcache", lambda *a: None)
        for f in ("readings", "timestamps", "sourcevalues"):
            self.child(f, _BufferFieldNode(f"{name}.{f}", buffer, f))

    def _empty_only(self, key: str, value: Any) -> None:
        v = _choice(value, f"{self.name}.{key}", (0, 1))
        if self.buffer.n and getattr(self.buffer, key) != v:
            raise TspError(SETTINGS_CONFLICT, f"Settings conflict: {self.name}.{key} can only change with an empty buffer (call {self.name}.clear())")
        setattr(self.buffer, key, v)

    def item(self, index: Any) -> Any:
        return _field_item(self.buffer, "readings", index)

    def length(self) -> int:
        return self.buffer.n


class _BufferFieldNode(_Node):
    def __init__(self, name: str, buffer: _ReadingBuffer, field_name: str) -> None:
        super().__init__(name)
        self.buffer = buffer
        self.field = field_name

    def item(self, index: Any) -> Any:
        return _field_item(self.buffer, self.field, index)

    def length(self) -> int:
        return self.buffer.n


def _field_item(buffer: _ReadingBuffer, field_name: str, index: Any) -> Any:
    if isinstance(index, bool) or not isinstance(index, (int, float)) or index != int(index):
        return None
    i = int(index)
    if not 1 <= i <= buffer.n:
        return None
    return buffer.field(field_name)[i - 1]


# --- channel and trigger-model state ---------------------------------------------------------


@dataclass
class _SmuState:
    """Everything ``smuX.reset()`` sets back (2600B defaults for a 2636B)."""

    func: int = OUTPUT_DCVOLTS
    levelv: float = 0.0
    leveli: float = 0.0
    limitv: float = 20.0
    limiti: float = 100e-3
    limitp: float = 0.0
    rangev: float = 200e-3
    rangei: float = 100e-9
    autorangev: int = AUTORANGE_ON
    autorangei: int = AUTORANGE_ON
    lowrangev: float = 200e-3
    lowrangei: float = 100e-12
    offmode: int = OUTPUT_NORMAL
    offfunc: int = OUTPUT_DCVOLTS
    offlimiti: float = 1e-3
    offlimitv: float = 40.0
    src_delay: float = DELAY_OFF
    settling: int = 0
    sink: int = DISABLE
    highc: int = DISABLE
    # measure
    nplc: float = 1.0
    autozero: int = AUTOZERO_AUTO
    count: int = 1
    interval: float = 0.0
    m_delay: float = DELAY_AUTO
    delayfactor: float = 1.0
    m_rangev: float = 200e-3
    m_rangei: float = 100e-9
    m_autorangev: int = AUTORANGE_ON
    m_autorangei: int = AUTORANGE_ON
    m_lowrangev: float = 200e-3
    m_lowrangei: float = 100e-12
    m_autozero_pending: bool = False
    filter_enable: int = DISABLE
    filter_count: int = 1
    filter_type: int = FILTER_REPEAT_AVG
    sense: int = SENSE_LOCAL
    analogfilter: int = 1  # 2634B/2635B/2636B low-current analog filter, on after reset
    outputenableaction: int = 0  # OE_NONE
    rel_enable: dict[str, int] = field(default_factory=lambda: {"i": 0, "v": 0, "r": 0, "p": 0})
    rel_level: dict[str, float] = field(default_factory=lambda: {"i": 0.0, "v": 0.0, "r": 0.0, "p": 0.0})
    # trigger model
    arm_count: int = 1
    arm_stimulus: int = 0
    trig_count: int = 1
    src_action: int = DISABLE
    src_stimulus: int = 0
    trig_limiti: float = LIMIT_AUTO
    trig_limitv: float = LIMIT_AUTO
    sweep_func: int | None = None  # OUTPUT_DCVOLTS or OUTPUT_DCAMPS of the configured sweep
    sweep_values: list[float] = field(default_factory=list)
    meas_action: int = DISABLE
    meas_stimulus: int = 0
    meas_func: str | None = None  # "i", "v", "r", "p" or "iv"
    meas_buffers: tuple = ()
    endpulse_action: int = SOURCE_HOLD
    endpulse_stimulus: int = 0
    endsweep_action: int = SOURCE_IDLE
    autoclear: int = DISABLE
    # status
    event_bits: int = 0
    status_enable: int = 0


@dataclass


class _Timer:
    count: int = 1
    delaylist: list[float] = field(default_factory=lambda: [TIMER_DEFAULT_DELAY])
    passthrough: bool = False
    stimulus: int = 0


@dataclass


class _Blender:
    orenable: bool = False
    stimulus: list[int] = field(default_factory=lambda: [0, 0, 0, 0])


@dataclass


class _Format:
    asciiprecision: int = 6
    data: int = FORMAT_ASCII
    byteorder: int = BYTEORDER_LITTLE
