"""Instrument drivers: one module per instrument family on a shared base (:mod:`.base`).

Station files name drivers by the keys of :data:`DRIVERS`.
"""

from __future__ import annotations

import importlib

from .base import Instrument, InstrumentError, InstrumentTimeout, LimitError, ReplyError

DRIVERS = {
    "arc2": "labrram.drivers.arc2:ArcTwoBoard",
    "keithley2400": "labrram.drivers.keithley2400:Keithley2400",
    "keithley2600": "labrram.drivers.keithley2600:Keithley2600",
    "keysight_b2900": "labrram.drivers.keysight_b2900:KeysightB2900",
    "labrram_board": "labrram.drivers.board:CrossbarBoard",
    "arc1": "labrram.drivers.arc1:ArcOneBoard",
    "bench_clock": "labrram.drivers.bench_clock:BenchClock",
}


def driver_class(name: str) -> type[Instrument]:
    """The driver class registered as ``name`` (see :data:`DRIVERS`)."""
    try:
        target = DRIVERS[name]
    except KeyError:
        raise ValueError(f"unknown driver {name!r}; known drivers: {sorted(DRIVERS)}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["DRIVERS", "driver_class", "Instrument", "InstrumentError", "InstrumentTimeout", "LimitError", "ReplyError"]
