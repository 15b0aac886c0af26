"""labrram: program resistive-memory chips from a lab bench, or offline on a simulated bench.

Importing labrram is light: it registers the ``labrram://`` pyserial URL handler (so
``serial.serial_for_url("labrram://default/board")`` reaches the simulated board) and
imports nothing heavy (no torch, no simulator) until it is used.
"""

from __future__ import annotations

__version__ = "0.1.0"

try:  # pragma: no cover - pyserial is a hard dependency, the guard keeps import light
    import serial as _serial

    if "labrram.sim.serial_urls" not in _serial.protocol_handler_packages:
        _serial.protocol_handler_packages.append("labrram.sim.serial_urls")
except ImportError:  # pragma: no cover
    pass

__all__ = ["__version__"]
