"""Keysight B2901A/B2902A constants: ranges, limits, status bits, trigger sources and the
instrument's own error numbers (B2900 SCPI Command Reference and User's Guide)."""

from __future__ import annotations

from .scpi import ScpiError

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

