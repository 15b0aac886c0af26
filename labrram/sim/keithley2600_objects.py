"""Keithley 2636B emulator: error codes, instrument constants, value checks and the Python-backed
Lua objects (nodes) that the TSP proxies call into.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

try:  # Lua 5.4 when lupa ships it, else lupa's default runtime
    from lupa.lua54 import lua_type
except ImportError:  # pragma: no cover - depends on the lupa build
    from lupa import lua_type  # type: ignore[assignment]


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
