"""Keithley 2636B System SourceMeter emulator: TSP, i.e. real Lua, as the Series 2600B Reference
Manual (2600BS-901-01) defines it.

Every program message (one line) is compiled and run as a Lua chunk by a sandboxed Lua 5.4
interpreter (:mod:`lupa`). The instrument's objects are Python-backed Lua proxies: reading or
assigning ``smua.source.levelv`` calls into Python, which validates the value against the
hardware ranges and drives the channel's :class:`~labrram.sim.instrument.SourceChannel` on the
bench's virtual clock. Scripts sent between ``loadscript``/``loadandrunscript`` and ``endscript``
are compiled as one chunk, so loops written for the instrument really run.

Emulated
--------
* ``smua``/``smub``: ``source`` (func, levelv/leveli, limitv/limiti/limitp, rangev/rangei,
  autorangev/autorangei, lowrangev/lowrangei, output, offmode, delay, compliance, ...),
  ``measure`` (i, v, r, p, iv; nplc, autozero, count, interval, delay, rangev/rangei,
  autorangev/autorangei, filter), ``nvbuffer1``/``nvbuffer2`` and ``makebuffer(n)`` (readings,
  timestamps, sourcevalues, n, capacity, appendmode, collecttimestamps, collectsourcevalues,
  basetimestamp, clear()), ``reset()``, ``abort()``, ``sense``, and the SMU trigger model
  (arm/source/measure/endpulse stages with stimuli, listv/listi/linearv/lineari/logv/logi,
  trigger limits, endpulse/endsweep actions, counts, ``initiate()``).
* ``trigger.timer[1..4]`` (count, delay, delaylist, passthrough, stimulus, clear, reset),
  ``trigger.blender[1..6]`` (orenable, stimulus[1..4]); the trigger model runs as a discrete
  event simulation on the virtual clock when ``smuX.trigger.initiate()`` is called.
* ``print`` (tab separated, numbers with ``format.asciiprecision`` significant digits),
  ``printnumber``, ``printbuffer`` (ASCII ``", "`` separated, or ``#0`` + IEEE-754 REAL32 /
  REAL64 bytes + ``\\n`` in ``format.byteorder``), ``format.*``, ``delay``, ``timer``,
  ``reset``, ``waitcomplete``, ``opc``, ``exit``, ``errorqueue``, ``localnode`` (model,
  serialno, revision, linefreq, prompts, showerrors), ``status.measurement.instrument.smuX``
  (condition bit 0 = voltage limit, bit 1 = current limit), ``beeper``, ``display`` (accepted,
  no effect), ``bit``, ``script`` (new, anonymous, user.scripts, delete), named scripts
  (``name()`` / ``name.run()``), and the common commands ``*IDN? *RST *CLS *OPC? *OPC *WAI
  *TST? *TRG *STB? *ESR? *ESE *SRE``.
* Every ``print`` is one response message; unread output stays queued when new commands arrive
  (TSP has no IEEE 488.2 "query interrupted"). ``localnode.prompts = 1`` adds ``TSP>`` /
  ``TSP?`` / ``>>>>`` prompts, ``localnode.showerrors = 1`` prints errors as they occur.
* Lua 5.0 names the instrument's Lua offers: ``table.getn``, ``math.mod``, ``string.gfind``,
  ``unpack``, ``loadstring``.

Errors
------
Errors go to the error queue (32 entries, overflow -350), read with ``errorqueue.next()``:
syntax errors are -285 (``TSP Syntax error at line n: ...``), Lua runtime errors -286
(``TSP Runtime error at line n: ...``), out-of-range parameters 1102 ``Parameter too big`` /
1103 ``Parameter too small`` (the value is not applied and the chunk stops), operations beyond
the 2636B's safe operating area (more than 100 mA above 20 V) 5007, configuration conflicts
-221. Nothing a client sends can crash the emulator: a runaway chunk stops after
:attr:`Keithley2636B.instruction_budget` Lua instructions (calls into the instrument count
:attr:`Keithley2636B.call_cost` instructions each) with a -286 entry that pcall cannot catch.

Sandbox: no ``os``, ``io``, ``debug``, ``package``, ``require``, ``dofile``, ``loadfile``,
``string.dump``; ``load`` accepts text chunks only; Lua memory is capped
(:attr:`Keithley2636B.max_lua_memory`).

Timing on the virtual clock
---------------------------
A measurement costs ``measure.delay`` (when > 0; DELAY_AUTO adds nothing) + ``nplc / linefreq``
(doubled with ``AUTOZERO_AUTO``, which measures reference and zero with every reading; with the
repeat filter on, multiplied by ``filter.count``) + 0.2 ms of overhead. ``AUTOZERO_ONCE`` costs
one reference-and-zero (2 × nplc / linefreq) when set, then reads back as ``AUTOZERO_OFF``.
In the trigger model the 0.2 ms conversion overhead of a measure action runs in parallel with
the end-pulse action (a pulse measured at its end is not stretched) and delays the next point.
``delay(s)`` advances the clock by ``s``; the trigger model's source action costs
``source.delay`` when > 0; timers fire at their programmed delays. Lua execution itself costs
no bench time.

Not emulated
------------
TSP-Link and ``node[]``, ``digio``, ``lan``, ``gpib``/``serial`` settings, ``fs``/``io``, saved
setups, ``savebuffer``, contact check, ``measure.overlappedY`` and ASYNC measurements (treated as
synchronous), the reading buffers' ``statuses`` and range/function fields, ``trigger.generator``,
infinite trigger counts (0), and the instrument running its trigger model in the background:
``initiate()`` completes the whole sweep before returning, so ``waitcomplete()`` never waits.
A trigger model that waits for an event nothing generates is aborted with a -221 entry (the
instrument would wait for ``abort``).
"""

from __future__ import annotations

import heapq
import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

try:  # Lua 5.4 when lupa ships it, else lupa's default runtime
    from lupa.lua54 import LuaError, LuaRuntime, lua_type
except ImportError:  # pragma: no cover - depends on the lupa build
    from lupa import LuaError, LuaRuntime, lua_type  # type: ignore[assignment]

from .instrument import EmulatedInstrument, Session, SourceChannel

# --- error codes (2600B error summary) ----------------------------------------------------
SYNTAX_ERROR = -285
RUNTIME_ERROR = -286
SETTINGS_CONFLICT = -221
QUEUE_OVERFLOW = -350
PARAMETER_TOO_BIG = 1102
PARAMETER_TOO_SMALL = 1103
SAFE_OPERATING_AREA = 5007

ERROR_QUEUE_SIZE = 32
SEVERITY_RECOVERABLE = 20  # severity reported by errorqueue.next() for command errors

# --- constants of the instrument ---------------------------------------------------------
OUTPUT_DCAMPS, OUTPUT_DCVOLTS = 0, 1
OUTPUT_OFF, OUTPUT_ON, OUTPUT_HIGH_Z = 0, 1, 2
OUTPUT_NORMAL, OUTPUT_ZERO = 0, 1
AUTORANGE_OFF, AUTORANGE_ON, AUTORANGE_FOLLOW_LIMIT = 0, 1, 2
AUTOZERO_OFF, AUTOZERO_ONCE, AUTOZERO_AUTO = 0, 1, 2
DELAY_OFF, DELAY_AUTO = 0, -1
DISABLE, ENABLE, ASYNC = 0, 1, 2
SOURCE_IDLE, SOURCE_HOLD = 0, 1
LIMIT_AUTO = 0
FILTER_MOVING_AVG, FILTER_REPEAT_AVG, FILTER_MEDIAN = 0, 1, 2
SENSE_LOCAL, SENSE_REMOTE, SENSE_CALA = 0, 1, 3

FORMAT_ASCII, FORMAT_REAL32, FORMAT_REAL64 = 1, 2, 3
BYTEORDER_BIG, BYTEORDER_LITTLE = 0, 1

VOLTAGE_LIMIT_BIT = 1  # status.measurement.instrument.smuX: bit 0
CURRENT_LIMIT_BIT = 2  # bit 1

#: 2636B ranges (the instrument accepts levels up to 101 % of the highest range)
V_RANGES = (200e-3, 2.0, 20.0, 200.0)
I_RANGES = (100e-12, 1e-9, 10e-9, 100e-9, 1e-6, 10e-6, 100e-6, 1e-3, 10e-3, 100e-3, 1.0, 1.5)
OVERRANGE = 1.01
MAX_V = V_RANGES[-1] * OVERRANGE
MAX_I = I_RANGES[-1] * OVERRANGE
#: safe operating area of one 2636B channel: above 20 V at most 100 mA, above 100 mA at most 20 V
SOA_V, SOA_I = 20.0 * OVERRANGE, 100e-3 * OVERRANGE

OVERFLOW_READING = 9.91e37
NVBUFFER_CAPACITY = 140_000
MAKEBUFFER_MAX = 1_000_000
T_MEASURE_OVERHEAD = 0.2e-3
TIMER_DEFAULT_DELAY = 10e-6
FIRMWARE = "4.0.4"

# trigger event IDs (distinct numbers; the instrument's own values are not documented as fixed)
TRIGGER_COMMAND_EVENT_ID = 1
_SMU_EVENTS = ("ARMED", "SWEEPING", "SOURCE_COMPLETE", "MEASURE_COMPLETE", "PULSE_COMPLETE", "SWEEP_COMPLETE", "IDLE")


def _smu_event_id(k: int, name: str) -> int:
    return 10 + 10 * k + _SMU_EVENTS.index(name)


def _timer_event_id(n: int) -> int:
    return 40 + n


def _blender_event_id(n: int) -> int:
    return 50 + n


N_TIMERS = 4
N_BLENDERS = 6

MARK = "\x00tsp-node:"  # how Lua hands an instrument object to Python in a call argument


class TspError(Exception):
    """An instrument error: ``code`` and ``message`` go to the error queue."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}, {message}")
        self.code = code
        self.message = message


class _Budget(Exception):
    """The chunk ran out of its instruction budget."""


# --- value helpers ---------------------------------------------------------------------------
def _lua_type_name(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Node):
        return "table"
    return lua_type(value) or "userdata"


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TspError(RUNTIME_ERROR, f"{what}: number expected, got {_lua_type_name(value)}")
    v = float(value)
    if math.isnan(v):
        raise TspError(RUNTIME_ERROR, f"{what}: number expected, got nan")
    return v


def _bounded(value: Any, what: str, lo: float, hi: float) -> float:
    v = _number(value, what)
    if v > hi:
        raise TspError(PARAMETER_TOO_BIG, f"Parameter too big: {what} = {v:g}, maximum {hi:g}")
    if v < lo:
        raise TspError(PARAMETER_TOO_SMALL, f"Parameter too small: {what} = {v:g}, minimum {lo:g}")
    return v


def _integer(value: Any, what: str, lo: int, hi: int) -> int:
    v = _bounded(value, what, lo, hi)
    return int(math.floor(v))


def _choice(value: Any, what: str, allowed: Iterable[int]) -> int:
    allowed = sorted(set(allowed))
    v = _number(value, what)
    if v != int(v) or int(v) not in allowed:
        if v > allowed[-1]:
            raise TspError(PARAMETER_TOO_BIG, f"Parameter too big: {what} = {v:g}, allowed {allowed}")
        if v < allowed[0]:
            raise TspError(PARAMETER_TOO_SMALL, f"Parameter too small: {what} = {v:g}, allowed {allowed}")
        raise TspError(SETTINGS_CONFLICT, f"Illegal parameter value: {what} = {v:g}, allowed {allowed}")
    return int(v)


def _boolean(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    raise TspError(RUNTIME_ERROR, f"{what}: boolean expected, got {_lua_type_name(value)}")


def _select_range(value: float, ranges: tuple[float, ...], what: str) -> float:
    """The smallest range that holds ``|value|``."""
    a = abs(value)
    for r in ranges:
        if a <= r * (1 + 1e-9):
            return r
    raise TspError(PARAMETER_TOO_BIG, f"Parameter too big: {what} = {value:g}, maximum {ranges[-1]:g}")


def _auto_range(value: float, ranges: tuple[float, ...]) -> float:
    a = abs(value)
    for r in ranges:
        if a <= r * OVERRANGE:
            return r
    return ranges[-1]


# --- Python-backed Lua objects ---------------------------------------------------------------
_MISSING = object()


class _Node:
    """One instrument object as Lua sees it (``smua``, ``smua.source``, a buffer, ...).

    Members are properties (getter/setter), constants, methods and child objects. Integer
    keys go to :meth:`item`; ``#node`` to :meth:`length`. A permissive node accepts any key
    (for ``display``, whose effects are not emulated).
    """

    def __init__(self, name: str, permissive: bool = False) -> None:
        self.id = -1
        self.name = name
        self.permissive = permissive
        self.members: dict[str, tuple] = {}
        self.values: dict[str, Any] = {}  # permissive storage

    # declaration helpers ------------------------------------------------------------
    def attr(self, key: str, get: Callable[[], Any], set: Callable[[Any], None] | None = None) -> None:
        self.members[key] = ("prop", get, set)

    def number(self, key: str, get: Callable[[], Any], set: Callable[[float], None], lo: float, hi: float) -> None:
        what = f"{self.name}.{key}"
        self.members[key] = ("prop", get, lambda v: set(_bounded(v, what, lo, hi)))

    def integer(self, key: str, get: Callable[[], Any], set: Callable[[int], None], lo: int, hi: int) -> None:
        what = f"{self.name}.{key}"
        self.members[key] = ("prop", get, lambda v: set(_integer(v, what, lo, hi)))

    def choice(self, key: str, get: Callable[[], Any], set: Callable[[int], None], allowed: Iterable[int]) -> None:
        what, allowed = f"{self.name}.{key}", tuple(allowed)
        self.members[key] = ("prop", get, lambda v: set(_choice(v, what, allowed)))

    def boolean(self, key: str, get: Callable[[], bool], set: Callable[[bool], None]) -> None:
        what = f"{self.name}.{key}"
        self.members[key] = ("prop", get, lambda v: set(_boolean(v, what)))

    def readonly(self, key: str, get: Callable[[], Any]) -> None:
        self.members[key] = ("prop", get, None)

    def const(self, key: str, value: Any) -> None:
        self.members[key] = ("const", value)

    def method(self, key: str, fn: Callable[..., Any]) -> None:
        self.members[key] = ("method", fn)

    def child(self, key: str, node: "_Node") -> "_Node":
        self.members[key] = ("child", node)
        return node

    # behaviour -----------------------------------------------------------------------
    def item(self, index: Any) -> Any:
        return _MISSING

    def set_item(self, index: Any, value: Any) -> None:
        raise TspError(RUNTIME_ERROR, f"cannot assign to {self.name}[{index}]")

    def length(self) -> int:
        raise TspError(RUNTIME_ERROR, f"attempt to get length of {self.name}")


class _IndexNode(_Node):
    """A fixed array of objects (``trigger.timer[1..4]``)."""

    def __init__(self, name: str, items: list[_Node]) -> None:
        super().__init__(name)
        self.items = items

    def item(self, index: Any) -> Any:
        if isinstance(index, (int, float)) and not isinstance(index, bool) and index == int(index) and 1 <= index <= len(self.items):
            return self.items[int(index) - 1]
        return None

    def length(self) -> int:
        return len(self.items)


class _StimulusNode(_Node):
    """``trigger.blender[N].stimulus[1..4]``: an array of event IDs."""

    def __init__(self, name: str, slots: list[int]) -> None:
        super().__init__(name)
        self.slots = slots

    def _index(self, index: Any) -> int:
        if isinstance(index, (int, float)) and not isinstance(index, bool) and index == int(index) and 1 <= index <= len(self.slots):
            return int(index) - 1
        raise TspError(PARAMETER_TOO_BIG, f"Parameter too big: {self.name}[{index}], index 1..{len(self.slots)}")

    def item(self, index: Any) -> Any:
        return self.slots[self._index(index)]

    def set_item(self, index: Any, value: Any) -> None:
        self.slots[self._index(index)] = _integer(value, f"{self.name}[{index}]", 0, 1000)

    def length(self) -> int:
        return len(self.slots)


# --- reading buffers -------------------------------------------------------------------------
class _ReadingBuffer:
    """A TSP reading buffer (dedicated ``nvbufferY`` or made with ``makebuffer``)."""

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self.appendmode = 0
        self.collecttimestamps = 0
        self.collectsourcevalues = 0
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
        if len(self.readings) >= self.capacity:
            return  # fill once: a full buffer keeps its first readings
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


# --- the Lua side ------------------------------------------------------------------------------
_PRELUDE = r"""
local bridge = ...
local index_cb, newindex_cb, call_cb, len_cb, name_cb = bridge.index, bridge.newindex, bridge.call, bridge.len, bridge.name
local MARK, HOOK_STEP, EXIT = bridge.mark, bridge.hook_step, bridge.exit_marker
local G = _G
local sethook = debug.sethook
local rawerror, rawpcall, rawxpcall, rawload = error, pcall, xpcall, load
local type, select, tostring, setmetatable, rawget = type, select, tostring, setmetatable, rawget
local pack, unpack = table.pack, table.unpack
local cocreate, coresume = coroutine.create, coroutine.resume

-- instruction budget: a count hook on every thread; once exceeded, nothing can catch it
local used, limit, aborted = 0, math.huge, nil
local function hook()
  if aborted then rawerror(aborted, 0) end
  used = used + 1
  if used > limit then
    aborted = bridge.budget_message
    rawerror(aborted, 0)
  end
end
sethook(hook, "", HOOK_STEP)

local function pass(...)
  if aborted then rawerror(aborted, 0) end
  return ...
end

-- proxies for the instrument's Python objects
local proxies = setmetatable({}, {__mode = "v"})
local ids = setmetatable({}, {__mode = "k"})
local proxy_for

local function check(st, a, ...)
  if st == 0 then return a, ... end
  if st == 1 then return proxy_for(a) end
  rawerror(a, 2)
end

local function conv1(v)
  local id = ids[v]
  if id then return MARK .. id end
  return v
end

local function conv(...)
  local n = select("#", ...)
  if n == 0 then return end
  if n == 1 then return conv1((...)) end
  local t = pack(...)
  for i = 1, n do t[i] = conv1(t[i]) end
  return unpack(t, 1, n)
end

proxy_for = function(id)
  local p = proxies[id]
  if p then return p end
  local cache = {}
  p = {}
  local mt = {}
  mt.__index = function(_, k)
    local v = cache[k]
    if v ~= nil then return v end
    local st, a, b = index_cb(id, k)
    if st == 0 then return a end
    if st == 1 then
      v = proxy_for(a)
      if b then cache[k] = v end
      return v
    end
    if st == 2 then
      v = function(...) return check(call_cb(id, k, conv(...))) end
      cache[k] = v
      return v
    end
    if st == 3 then cache[k] = a; return a end
    rawerror(a, 2)
  end
  mt.__newindex = function(_, k, v)
    local err = newindex_cb(id, k, conv1(v))
    if err then rawerror(err, 2) end
  end
  mt.__len = function()
    local st, a = len_cb(id)
    if st == 0 then return a end
    rawerror(a, 2)
  end
  mt.__call = function(_, ...) return check(call_cb(id, nil, conv(...))) end
  mt.__tostring = function() return name_cb(id) end
  mt.__metatable = false
  setmetatable(p, mt)
  proxies[id] = p
  ids[p] = id
  return p
end

-- the sandbox
G.pcall = function(f, ...) return pass(rawpcall(f, ...)) end
G.xpcall = function(f, h, ...) return pass(rawxpcall(f, h, ...)) end
local function cocreate_hooked(f)
  local co = cocreate(f)
  sethook(co, hook, "", HOOK_STEP)
  return co
end
G.coroutine = {
  create = cocreate_hooked,
  resume = function(co, ...) return pass(coresume(co, ...)) end,
  wrap = function(f)
    local co = cocreate_hooked(f)
    return function(...)
      local r = pack(coresume(co, ...))
      if aborted then rawerror(aborted, 0) end
      if not r[1] then rawerror(r[2], 0) end
      return unpack(r, 2, r.n)
    end
  end,
  yield = coroutine.yield, status = coroutine.status, running = coroutine.running,
  isyieldable = coroutine.isyieldable, close = coroutine.close,
}
G.load = function(chunk, name, mode, env)
  if type(chunk) ~= "string" then return nil, "load: only source strings can be loaded on this instrument" end
  return rawload(chunk, name or "=(load)", "t", env or G)
end
G.loadstring = function(s, name) return G.load(s, name) end
G.exit = function()
  aborted = EXIT
  rawerror(EXIT, 0)
end
G.os, G.io, G.debug, G.package, G.require, G.dofile, G.loadfile, G.python = nil, nil, nil, nil, nil, nil, nil, nil
G.string.dump = nil
-- Lua 5.0 names of the instrument's Lua
G.unpack = unpack
G.table.getn = function(t) return #t end
G.math.mod = math.fmod
G.string.gfind = string.gmatch

-- bit library of TSP (bit indexes count from 1)
local function int(v, what)
  local i = math.tointeger(math.floor(v))
  if not i then rawerror("bit." .. what .. ": integer expected", 3) end
  return i
end
G.bit = {
  bitand = function(a, b) return int(a, "bitand") & int(b, "bitand") end,
  bitor = function(a, b) return int(a, "bitor") | int(b, "bitor") end,
  bitxor = function(a, b) return int(a, "bitxor") ~ int(b, "bitxor") end,
  test = function(v, i) return (int(v, "test") >> (int(i, "test") - 1)) & 1 == 1 end,
  get = function(v, i) return int(v, "get") & (1 << (int(i, "get") - 1)) end,
  set = function(v, i) return int(v, "set") | (1 << (int(i, "set") - 1)) end,
  clear = function(v, i) return int(v, "clear") & ~(1 << (int(i, "clear") - 1)) end,
  toggle = function(v, i) return int(v, "toggle") ~ (1 << (int(i, "toggle") - 1)) end,
  getfield = function(v, i, w) return (int(v, "getfield") >> (int(i, "getfield") - 1)) & ((1 << int(w, "getfield")) - 1) end,
  setfield = function(v, i, w, f)
    local m = ((1 << int(w, "setfield")) - 1) << (int(i, "setfield") - 1)
    return (int(v, "setfield") & ~m) | ((int(f, "setfield") << (int(i, "setfield") - 1)) & m)
  end,
}

-- scripts
local user_scripts = {}
local script = {user = {scripts = user_scripts}}
local function make_script(f, source, name)
  local s = {source = source, name = name}
  s.run = function(...) return f(...) end
  s.save = function() end
  s.list = function() G.print(source) end
  return setmetatable(s, {__call = function(_, ...) return f(...) end})
end
local function new_script(source, name, level)
  local chunkname = "=" .. ((name and name ~= "") and name or "script")
  local f, err = rawload(source, chunkname, "t", G)
  if not f then return nil, err end
  local s = make_script(f, source, name or "")
  if name and name ~= "" then
    G[name] = s
    user_scripts[name] = s
  else
    script.anonymous = s
  end
  return s
end
script.new = function(source, name)
  if type(source) ~= "string" then rawerror("script.new: source string expected", 2) end
  local s, err = new_script(source, name)
  if not s then rawerror(err, 2) end
  return s
end
script.newautorun = script.new
script.delete = function(name)
  if user_scripts[name] then
    user_scripts[name] = nil
    if rawget(G, name) then G[name] = nil end
  end
end
script.run = function()
  if script.anonymous then return script.anonymous.run() end
end
G.script = script
G.run = script.run

-- what Python calls
local api = {}
api.install_node = function(name, id) G[name] = proxy_for(id) end
api.install_function = function(name, id)
  G[name] = function(...) return check(call_cb(id, name, conv(...))) end
end
api.proxy = function(id) return proxy_for(id) end
api.tostring = function(v) return tostring(v) end
api.abort = function(msg) aborted = msg end
api.load_script = function(name, source)
  local s, err = new_script(source, name)
  if not s then return "syntax", err end
  return "ok", s.run
end
api.run = function(code, chunkname, budget_steps, budget_message)
  used, limit, aborted = 0, budget_steps, nil
  bridge.budget_message = budget_message
  local f, err
  if type(code) == "function" then
    f = code
  else
    f, err = rawload(code, chunkname, "t", G)
    if not f then return "syntax", err end
  end
  local ok, e = rawpcall(f)
  local ab = aborted
  aborted = nil
  used, limit = 0, math.huge
  if ok or ab == EXIT then return "ok" end
  if ab then return "budget", ab end
  return "runtime", e
end
return api
"""

_CHUNK_PREFIX = re.compile(r"^[^\n:]{1,64}:(\d+): ", re.DOTALL)
_EXIT_MARKER = "\x00tsp-exit"


def _split_lua_message(message: str) -> tuple[int | None, str]:
    """``"tsp:3: msg"`` → ``(3, "msg")``; nested prefixes (re-raised errors) are stripped."""
    line = None
    while True:
        m = _CHUNK_PREFIX.match(message)
        if not m:
            return line, message
        if line is None:
            line = int(m.group(1))
        message = message[m.end() :]


# --- the instrument ---------------------------------------------------------------------------
class Keithley2636B(EmulatedInstrument):
    """Byte-level Keithley 2636B emulator running TSP (Lua) scripts.

    ``channels[0]`` is SMU A (wired to the board's SMU connector by the bench), ``channels[1]``
    SMU B (terminals open).

    Parameters
    ----------
    bench : Bench
        The simulated bench (clock, chip, board).
    name : str
        Instrument name on the bench.
    link : LinkTiming
        Cost model of the transport link.
    serial : str
        Serial number reported by ``*IDN?`` and ``localnode.serialno``.
    """

    vendor = "Keithley Instruments Inc."
    model = "2636B"

    #: Lua instructions one chunk (a line or a script run) may execute
    instruction_budget: int = 50_000_000
    #: instructions charged for each call into the instrument (attribute access, function)
    call_cost: int = 100
    #: Lua heap limit, bytes
    max_lua_memory: int = 256 * 2**20
    hook_step = 1000

    def __init__(self, bench, name, link, serial="4407123") -> None:
        super().__init__(bench, name, link, serial)
        self.channels = [SourceChannel(bench.clock), SourceChannel(bench.clock)]
        self.smu = [_SmuState(), _SmuState()]
        self.nvbuffers = [
            [_ReadingBuffer(f"smu{x}.nvbuffer{j}", NVBUFFER_CAPACITY) for j in (1, 2)] for x in "ab"
        ]
        self.timers = [_Timer() for _ in range(N_TIMERS)]
        self.blenders = [_Blender() for _ in range(N_BLENDERS)]
        self.fmt = _Format()
        self.errors: deque[tuple[int, str, int, int]] = deque()
        self.linefreq = 60.0
        self.prompts = 0
        self.showerrors = 0
        self.beeper_enable = 1
        self.timer_origin = bench.clock.now
        self.status_ese = 0
        self.status_sre = 0
        self._sequence = 0  # numbers measurement commands / sweeps (buffer append mode)
        self._session: Session | None = None
        self._script: tuple[str, str, list[str]] | None = None  # (command, name, lines) while loading
        self._stash: dict[Session, list[bytearray]] = {}
        self._raised: dict[str, int] = {}
        self._calls = 0
        self._call_limit = 0
        self._aborting = False
        self.last_internal_error: BaseException | None = None
        self._nodes: dict[int, _Node] = {}
        self._build_lua()
        self._build_objects()
        self.reset()

    # ===== power-on / reset ==============================================================
    def reset(self) -> None:
        """``reset()`` / ``*RST``: both SMUs, format, timers and blenders to their defaults.

        User scripts, global variables, the error queue, ``localnode`` settings are kept.
        """
        for k in range(2):
            self._reset_smu(k)
        self.fmt = _Format()
        self.timers = [_Timer() for _ in range(N_TIMERS)]
        self.blenders = [_Blender() for _ in range(N_BLENDERS)]
        self.beeper_enable = 1

    def _reset_smu(self, k: int) -> None:
        ch = self.channels[k]
        was_on = ch.output
        ch.set_output(False)
        ch.reset()
        self.smu[k] = s = _SmuState()
        ch.limit_i = s.limiti
        ch.limit_v = s.limitv
        for b in self.nvbuffers[k]:
            b.appendmode = b.collecttimestamps = b.collectsourcevalues = 0
            b.clear()
        if was_on:
            self.bench.after_output_change()

    def shutdown(self) -> None:
        for ch in self.channels:
            ch.set_output(False)

    def idn(self) -> str:
        return f"{self.vendor}, Model {self.model}, {self.serial}, {FIRMWARE}"

    # ===== framing and dispatch =======================================================
    def frame(self, buf: bytearray, end: bool, session: Session | None = None) -> list[bytes]:
        """TSP messages are lines: split at ``\\n`` (Lua code may hold quotes and ``#``)."""
        messages = []
        while True:
            k = buf.find(b"\n")
            if k < 0:
                break
            messages.append(bytes(buf[:k]).rstrip(b"\r"))
            del buf[: k + 1]
        if end and buf:
            messages.append(bytes(buf).rstrip(b"\r"))
            buf.clear()
        return messages

    def query_interrupted(self, session: Session) -> None:
        # TSP keeps unread output across commands (no IEEE 488.2 "query interrupted"): the
        # session is about to drop its output queue, so keep it and restore it in process().
        self._stash[session] = [bytearray(m) for m in session.outq]

    def device_clear(self, session: Session) -> None:
        self._stash.pop(session, None)
        self._script = None

    def process(self, session: Session, message: bytes) -> None:
        stash = self._stash.pop(session, None)
        if stash:
            session.outq.extendleft(reversed(stash))
        text = message.decode("latin-1")
        self._session = session
        try:
            self._dispatch(text)
        except Exception as exc:  # pragma: no cover - an emulator bug must not kill the bench
            self.last_internal_error = exc
            self._push_error(RUNTIME_ERROR, f"internal emulator error: {type(exc).__name__}: {exc}")
        finally:
            self._session = None
        if self.showerrors:
            while self.errors:
                code, msg, _, _ = self.errors.popleft()
                session.reply(f"{code} {msg}\n".encode("latin-1", "replace"))
        if self.prompts:
            if self._script is not None:
                session.reply(b">>>>\n")
            else:
                session.reply(b"TSP?\n" if self.errors else b"TSP>\n")

    def _dispatch(self, text: str) -> None:
        stripped = text.strip()
        if self._script is not None:
            if stripped == "endscript":
                self._end_script()
            else:
                self._script[2].append(text)
            return
        if not stripped:
            return
        if stripped.startswith("*"):
            self._common(stripped)
            return
        words = stripped.split()
        head = words[0]
        if head in ("loadscript", "loadandrunscript"):
            if len(words) > 2:
                self._push_error(SYNTAX_ERROR, f"TSP Syntax error: {head} takes at most a script name")
                return
            name = words[1] if len(words) == 2 else ""
            if name and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self._push_error(SYNTAX_ERROR, f"TSP Syntax error: invalid script name {name!r}")
                return
            self._script = (head, name, [])
            return
        if stripped == "endscript":
            self._push_error(SYNTAX_ERROR, "TSP Syntax error: endscript without loadscript")
            return
        if stripped == "abort":
            return  # nothing runs in the background
        self._execute(text, "=tsp")

    def _end_script(self) -> None:
        command, name, lines = self._script  # type: ignore[misc]
        self._script = None
        source = "\n".join(lines)
        status, result = self._api.load_script(name, source)
        if status != "ok":
            line, msg = _split_lua_message(str(result))
            self._push_error(SYNTAX_ERROR, f"TSP Syntax error at line {line}: {msg}" if line else f"TSP Syntax error: {msg}")
            return
        if command == "loadandrunscript":
            self._execute(result, name or "script")

    def _common(self, text: str) -> None:
        cmd = text.upper()
        reply = None
        if cmd == "*IDN?":
            reply = self.idn()
        elif cmd == "*RST":
            self.reset()
        elif cmd == "*CLS":
            self.errors.clear()
            for s in self.smu:
                s.event_bits = 0
        elif cmd == "*OPC?":
            reply = "1"
        elif cmd in ("*OPC", "*WAI", "*TRG"):
            pass
        elif cmd == "*TST?":
            reply = "0"
        elif cmd == "*ESR?":
            reply = "0"
        elif cmd == "*STB?":
            stb = (4 if self.errors else 0) | (16 if self._session and self._session.outq else 0)
            reply = str(stb)
        elif cmd == "*ESE?":
            reply = str(self.status_ese)
        elif cmd == "*SRE?":
            reply = str(self.status_sre)
        elif cmd.startswith(("*ESE ", "*SRE ")):
            try:
                value = int(float(cmd[5:]))
            except ValueError:
                self._push_error(SYNTAX_ERROR, f"TSP Syntax error: {text}")
                return
            if cmd.startswith("*ESE"):
                self.status_ese = value & 0xFF
            else:
                self.status_sre = value & 0xFF
        else:
            self._push_error(SYNTAX_ERROR, f"TSP Syntax error at line 1: unknown common command {text}")
            return
        if reply is not None:
            self._reply(reply)

    def _reply(self, text: str) -> None:
        if self._session is not None:
            self._session.reply(text.encode("latin-1", "replace") + b"\n")

    def _reply_bytes(self, data: bytes) -> None:
        if self._session is not None:
            self._session.reply(data)

    # ===== the error queue =================================================================
    def _push_error(self, code: int, message: str, severity: int = SEVERITY_RECOVERABLE) -> None:
        if len(self.errors) >= ERROR_QUEUE_SIZE:
            self.errors[-1] = (QUEUE_OVERFLOW, "Queue overflow", SEVERITY_RECOVERABLE, 1)
            return
        self.errors.append((code, message, severity, 1))

    def _errorqueue_next(self) -> tuple:
        if not self.errors:
            return (0, "Queue Is Empty", 0, 0)
        return self.errors.popleft()

    # ===== Lua ===================================================================================
    def _build_lua(self) -> None:
        try:
            lua = LuaRuntime(
                unpack_returned_tuples=True,
                register_eval=False,
                register_builtins=False,
                encoding="latin-1",
                attribute_filter=self._deny_attribute,
                max_memory=self.max_lua_memory,
            )
        except TypeError:  # pragma: no cover - lupa without max_memory
            lua = LuaRuntime(
                unpack_returned_tuples=True,
                register_eval=False,
                register_builtins=False,
                encoding="latin-1",
                attribute_filter=self._deny_attribute,
            )
        self._lua = lua
        bridge = lua.table_from(
            {
                "index": self._cb_index,
                "newindex": self._cb_newindex,
                "call": self._cb_call,
                "len": self._cb_len,
                "name": self._cb_name,
                "mark": MARK,
                "hook_step": self.hook_step,
                "exit_marker": _EXIT_MARKER,
                "budget_message": "",
            }
        )
        self._api = lua.execute(_PRELUDE, bridge)

    def _budget_message(self) -> str:
        return (
            f"instruction budget of {self.instruction_budget:,} exceeded: the emulator stopped a "
            "runaway chunk (endless loop?)"
        )

    @staticmethod
    def _deny_attribute(obj: Any, attr: Any, is_setting: bool) -> Any:
        raise AttributeError("Python attributes are not accessible from TSP")

    def _execute(self, code: Any, chunkname: str) -> None:
        """Run a line (string) or a compiled script (Lua function); errors go to the queue."""
        steps = max(1, self.instruction_budget // self.hook_step)
        self._call_limit = max(1, self.instruction_budget // max(1, self.call_cost))
        self._calls = 0
        self._raised.clear()
        self._aborting = False
        if not isinstance(code, str):
            chunkname = "=" + chunkname
        try:
            status, message = self._run(code, chunkname, steps)
        except LuaError as exc:  # memory errors outside pcall, errors in error handling
            status, message = "runtime", str(exc)
        if status == "ok":
            return
        if isinstance(message, BaseException) and not isinstance(message, Exception):
            raise message  # Ctrl-C / SystemExit raised inside a callback: not the instrument's business
        if not isinstance(message, str):
            message = str(self._api.tostring(message)) if lua_type(message) else str(message)
        if status == "syntax":
            line, msg = _split_lua_message(message)
            self._push_error(SYNTAX_ERROR, f"TSP Syntax error at line {line}: {msg}" if line else f"TSP Syntax error: {msg}")
        elif status == "budget":
            self._push_error(RUNTIME_ERROR, f"TSP Runtime error: {message}")
        else:
            line, msg = _split_lua_message(message)
            code_ = self._raised.get(msg)
            if code_ is not None:
                self._push_error(code_, msg)
            else:
                where = f" at line {line}" if line else ""
                self._push_error(RUNTIME_ERROR, f"TSP Runtime error{where}: {msg}")

    def _run(self, code: Any, chunkname: str, steps: int) -> tuple[str, Any]:
        result = self._api.run(code, chunkname, steps, self._budget_message())
        if isinstance(result, tuple):
            return result[0], (result[1] if len(result) > 1 else None)
        return result, None

    # --- callbacks from Lua -------------------------------------------------------------
    def _charge(self) -> None:
        self._calls += 1
        if self._calls > self._call_limit:
            raise _Budget()

    def _error_result(self, exc: Exception) -> str:
        if isinstance(exc, _Budget):
            msg = self._budget_message()
            self._api.abort(msg)
            return msg
        if isinstance(exc, TspError):
            self._raised[exc.message] = exc.code
            return exc.message
        self.last_internal_error = exc
        return f"internal emulator error: {type(exc).__name__}: {exc}"

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith(MARK):
            return self._nodes[int(value[len(MARK) :])]
        return value

    def _ret(self, value: Any, cacheable: bool = False) -> tuple:
        if isinstance(value, _Node):
            return (1, value.id, cacheable)
        return (0, value)

    def _cb_index(self, node_id: int, key: Any) -> tuple:
        try:
            self._charge()
            node = self._nodes[node_id]
            if not isinstance(key, str):
                value = node.item(key)
                return self._ret(None if value is _MISSING else value)
            if node.permissive and key in node.values:
                return self._ret(node.values[key])
            member = node.members.get(key)
            if member is None:
                if node.permissive:
                    child = self._register(_Node(f"{node.name}.{key}", permissive=True))
                    node.members[key] = ("child", child)
                    return (1, child.id, False)
                return (0, None)
            kind = member[0]
            if kind == "const":
                return (3, member[1])
            if kind == "child":  # fixed objects are cached by Lua; a permissive key may be assigned later
                return (1, member[1].id, not node.permissive)
            if kind == "method":
                return (2,)
            return self._ret(member[1]())
        except Exception as exc:  # everything the instrument does wrong becomes a Lua error
            return (9, self._error_result(exc))

    def _cb_newindex(self, node_id: int, key: Any, value: Any) -> str | None:
        try:
            self._charge()
            node = self._nodes[node_id]
            value = self._resolve(value)
            if not isinstance(key, str):
                node.set_item(key, value)
                return None
            member = node.members.get(key)
            if node.permissive and (member is None or member[0] == "child"):
                node.values[key] = value
                return None
            if member is None:
                raise TspError(RUNTIME_ERROR, f"{node.name} has no attribute '{key}'")
            if member[0] != "prop" or member[2] is None:
                raise TspError(RUNTIME_ERROR, f"{node.name}.{key} is read-only")
            member[2](value)
            return None
        except Exception as exc:
            return self._error_result(exc)

    def _cb_call(self, node_id: int, key: Any, *args: Any) -> tuple:
        try:
            self._charge()
            node = self._nodes[node_id]
            if key is None:
                if node.permissive:
                    return (0, None)
                raise TspError(RUNTIME_ERROR, f"attempt to call {node.name}")
            member = node.members.get(key)
            if member is None or member[0] != "method":
                raise TspError(RUNTIME_ERROR, f"attempt to call {node.name}.{key}")
            result = member[1](*(self._resolve(a) for a in args))
            if isinstance(result, _Node):
                return (1, result.id)
            if isinstance(result, tuple):
                return (0, *result)
            return (0, result)
        except Exception as exc:
            return (9, self._error_result(exc))

    def _cb_len(self, node_id: int) -> tuple:
        try:
            self._charge()
            return (0, self._nodes[node_id].length())
        except Exception as exc:
            return (9, self._error_result(exc))

    def _cb_name(self, node_id: int) -> str:
        node = self._nodes.get(node_id)
        return f"table: {node.name}" if node else "table"

    # ===== the object tree ===================================================================
    def _register(self, node: _Node) -> _Node:
        node.id = len(self._nodes) + 1
        self._nodes[node.id] = node
        for member in list(node.members.values()):
            if member[0] == "child" and member[1].id < 0:
                self._register(member[1])
        if isinstance(node, _IndexNode):
            for item in node.items:
                if item.id < 0:
                    self._register(item)
        return node

    def _build_objects(self) -> None:
        root = _Node("_G")
        for fname, fn in (
            ("print", self._print),
            ("printnumber", self._printnumber),
            ("printbuffer", self._printbuffer),
            ("delay", self._delay),
            ("reset", lambda *a: self.reset()),
            ("waitcomplete", lambda *a: None),
            ("opc", lambda *a: None),
        ):
            root.method(fname, fn)
        objects = {
            "smua": self._smu_node(0),
            "smub": self._smu_node(1),
            "format": self._format_node(),
            "localnode": self._localnode_node(),
            "errorqueue": self._errorqueue_node(),
            "timer": self._timer_node(),
            "trigger": self._trigger_node(),
            "status": self._status_node(),
            "beeper": self._beeper_node(),
            "display": self._display_node(),
        }
        for key, node in objects.items():
            root.child(key, node)
        self._register(root)
        for fname, member in root.members.items():
            if member[0] == "method":
                self._api.install_function(fname, root.id)
            else:
                self._api.install_node(fname, member[1].id)

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

    # --- other objects -----------------------------------------------------------------
    def _format_node(self) -> _Node:
        node = _Node("format")
        for key, value in (
            ("ASCII", FORMAT_ASCII),
            ("SREAL", FORMAT_REAL32),
            ("REAL32", FORMAT_REAL32),
            ("REAL", FORMAT_REAL64),
            ("REAL64", FORMAT_REAL64),
            ("DREAL", FORMAT_REAL64),
            ("NORMAL", BYTEORDER_BIG),
            ("BIGENDIAN", BYTEORDER_BIG),
            ("NETWORK", BYTEORDER_BIG),
            ("SWAPPED", BYTEORDER_LITTLE),
            ("LITTLEENDIAN", BYTEORDER_LITTLE),
        ):
            node.const(key, value)
        node.integer("asciiprecision", lambda: self.fmt.asciiprecision, lambda v: setattr(self.fmt, "asciiprecision", v), 1, 16)
        node.choice("data", lambda: self.fmt.data, lambda v: setattr(self.fmt, "data", v), (FORMAT_ASCII, FORMAT_REAL32, FORMAT_REAL64))
        node.choice("byteorder", lambda: self.fmt.byteorder, lambda v: setattr(self.fmt, "byteorder", v), (BYTEORDER_BIG, BYTEORDER_LITTLE))
        return node

    def _localnode_node(self) -> _Node:
        node = _Node("localnode")
        node.readonly("model", lambda: self.model)
        node.readonly("serialno", lambda: self.serial)
        node.readonly("revision", lambda: FIRMWARE)
        node.readonly("description", lambda: f"Keithley Instruments SMU {self.model} - {self.serial}")
        node.attr("linefreq", lambda: self.linefreq, self._set_linefreq)
        node.choice("autolinefreq", lambda: 0, lambda v: None, (0, 1))
        node.choice("prompts", lambda: self.prompts, lambda v: setattr(self, "prompts", v), (0, 1))
        node.choice("prompts4882", lambda: 1, lambda v: None, (0, 1))
        node.choice("showerrors", lambda: self.showerrors, lambda v: setattr(self, "showerrors", v), (0, 1))
        node.method("reset", lambda *a: self.reset())
        return node

    def _errorqueue_node(self) -> _Node:
        node = _Node("errorqueue")
        node.readonly("count", lambda: len(self.errors))
        node.method("next", lambda *a: self._errorqueue_next())
        node.method("clear", lambda *a: self.errors.clear())
        return node

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

    def _status_node(self) -> _Node:
        node = _Node("status")
        node.method("reset", self._status_reset)
        node.readonly("condition", lambda: (4 if self.errors else 0))
        meas = node.child("measurement", _Node("status.measurement"))
        meas.const("VOLTAGE_LIMIT", VOLTAGE_LIMIT_BIT)
        meas.const("VLMT", VOLTAGE_LIMIT_BIT)
        meas.const("CURRENT_LIMIT", CURRENT_LIMIT_BIT)
        meas.const("ILMT", CURRENT_LIMIT_BIT)
        meas.readonly("condition", lambda: self._condition(0) | self._condition(1))
        inst = meas.child("instrument", _Node("status.measurement.instrument"))
        for k, x in enumerate("ab"):
            sm = inst.child(f"smu{x}", _Node(f"status.measurement.instrument.smu{x}"))
            sm.const("VOLTAGE_LIMIT", VOLTAGE_LIMIT_BIT)
            sm.const("VLMT", VOLTAGE_LIMIT_BIT)
            sm.const("CURRENT_LIMIT", CURRENT_LIMIT_BIT)
            sm.const("ILMT", CURRENT_LIMIT_BIT)
            sm.readonly("condition", lambda k=k: self._condition(k))
            sm.readonly("event", lambda k=k: self._read_event(k))
            sm.integer("enable", lambda k=k: self.smu[k].status_enable, lambda v, k=k: setattr(self.smu[k], "status_enable", v), 0, 65535)
        return node

    def _status_reset(self, *args: Any) -> None:
        for s in self.smu:
            s.event_bits = 0
            s.status_enable = 0

    def _beeper_node(self) -> _Node:
        node = _Node("beeper")
        node.const("ON", 1)
        node.const("OFF", 0)
        node.choice("enable", lambda: self.beeper_enable, lambda v: setattr(self, "beeper_enable", v), (0, 1))
        node.method("beep", self._beep)
        return node

    def _display_node(self) -> _Node:
        node = _Node("display", permissive=True)
        for key, value in (
            ("SMUA", 0),
            ("SMUB", 1),
            ("SMUA_SMUB", 2),
            ("USER", 3),
            ("MEASURE_DCAMPS", 0),
            ("MEASURE_DCVOLTS", 1),
            ("MEASURE_OHMS", 2),
            ("MEASURE_WATTS", 3),
            ("ENABLE", 1),
            ("DISABLE", 0),
        ):
            node.const(key, value)
        node.values["screen"] = 0  # display.screen, assignable like every display attribute
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
        if func == "i":
            return (i,)
        if func == "v":
            return (v,)
        if func == "iv":
            return (i, v)
        if func == "r":
            return (v / i if i != 0 and abs(i) < OVERFLOW_READING else OVERFLOW_READING,)
        return (v * i if abs(i) < OVERFLOW_READING and abs(v) < OVERFLOW_READING else OVERFLOW_READING,)

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

    # ===== behaviour: printing ================================================================
    def _fmt_number(self, x: float) -> str:
        x = float(x)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.{self.fmt.asciiprecision - 1}e}"

    def _print(self, *args: Any) -> None:
        parts = []
        for a in args:
            if a is None:
                parts.append("nil")
            elif isinstance(a, bool):
                parts.append("true" if a else "false")
            elif isinstance(a, (int, float)):
                parts.append(self._fmt_number(a))
            elif isinstance(a, str):
                parts.append(a)
            elif isinstance(a, _Node):
                parts.append(f"table: {a.name}")
            else:
                parts.append(str(self._api.tostring(a)))
        self._reply("\t".join(parts))

    def _emit_numbers(self, values: list[float]) -> None:
        if self.fmt.data == FORMAT_ASCII:
            self._reply(", ".join(self._fmt_number(v) for v in values))
            return
        order = "<" if self.fmt.byteorder == BYTEORDER_LITTLE else ">"
        dtype = order + ("f4" if self.fmt.data == FORMAT_REAL32 else "f8")
        with np.errstate(over="ignore"):
            payload = np.asarray(values, dtype=float).astype(dtype).tobytes()
        self._reply_bytes(b"#0" + payload + b"\n")

    def _printnumber(self, *args: Any) -> None:
        values = [_number(a, f"printnumber() argument {n + 1}") for n, a in enumerate(args)]
        self._emit_numbers(values)

    def _printbuffer(self, *args: Any) -> None:
        if len(args) < 3:
            raise TspError(RUNTIME_ERROR, "printbuffer(start, end, buffer, ...): at least one buffer expected")
        start = _number(args[0], "printbuffer() start index")
        end = _number(args[1], "printbuffer() end index")
        columns = []
        for n, a in enumerate(args[2:]):
            if isinstance(a, _BufferFieldNode):
                columns.append((a.buffer, a.field))
            elif isinstance(a, _BufferNode):
                columns.append((a.buffer, "readings"))
            else:
                raise TspError(RUNTIME_ERROR, f"printbuffer() argument {n + 3}: reading buffer expected, got {_lua_type_name(a)}")
        lo, hi = int(start), int(end)
        if lo != start or hi != end:
            raise TspError(RUNTIME_ERROR, "printbuffer(): indexes must be whole numbers")
        if hi < lo:
            self._emit_numbers([])
            return
        if lo < 1:
            raise TspError(PARAMETER_TOO_SMALL, f"Parameter too small: printbuffer() start index {lo}, minimum 1")
        data = []
        for buf, name in columns:
            if hi > buf.n:
                raise TspError(PARAMETER_TOO_BIG, f"Parameter too big: printbuffer() end index {hi}, {buf.name} holds {buf.n} readings")
            data.append(buf.field(name)[lo - 1 : hi])
        values = [col[j] for j in range(hi - lo + 1) for col in data]
        self._emit_numbers(values)

    # ===== behaviour: misc ====================================================================
    def _delay(self, *args: Any) -> None:
        if not args:
            raise TspError(RUNTIME_ERROR, "delay(seconds): number expected")
        seconds = _bounded(args[0], "delay()", 0.0, 1e6)
        if seconds > 0:
            self.clock.advance(seconds, "wait")

    def _beep(self, *args: Any) -> None:
        duration = _bounded(args[0], "beeper.beep() duration", 0.0, 100.0) if args else 0.0
        if len(args) > 1:
            _bounded(args[1], "beeper.beep() frequency", 0.0, 20_000.0)
        if duration > 0:
            self.clock.advance(duration, "wait")

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


__all__ = ["Keithley2636B", "TspError"]
