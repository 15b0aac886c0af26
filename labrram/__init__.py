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

#: what a notebook user needs, loaded on first use (PEP 562): name -> module
_EXPORTS = {
    "program": "labrram.api",
    "characterize": "labrram.api",
    "calibrate": "labrram.api",
    "import_measurements": "labrram.api",
    "resume": "labrram.api",
    "read": "labrram.api",
    "chip_kind": "labrram.api",
    "info": "labrram.api",
    "serve": "labrram.api",
    "watch": "labrram.live",
    "Characterization": "labrram.api",
    "ReadResult": "labrram.api",
    "JobError": "labrram.job_settings",
    "ProgramResult": "labrram.protocols.results",
    "Cells": "labrram.cells",
    "Station": "labrram.station",
    "load_station": "labrram.station",
    "Calibration": "labrram.calibration.files",
    "load_calibration": "labrram.calibration.files",
    "default_calibration": "labrram.calibration.files",
    "RunStore": "labrram.store",
    "SafeLimits": "labrram.safety",
    "ConnectedStation": "labrram.station",
    "Crossbar": "labrram.crossbar",
    "Estimate": "labrram.calibration.estimates",
    "ReRAMCharacterization": "labrram.calibration.reram_routine",
    "PCMCharacterization": "labrram.calibration.pcm_routine",
    "PassiveCharacterization": "labrram.calibration.passive_routine",
    "ReRAMWriteVerify": "labrram.protocols.write_verify",
    "PCMWriteVerify": "labrram.protocols.write_verify_pcm",
    "PassiveTuning": "labrram.protocols.tune_passive",
    "OneShotSettings": "labrram.protocols.single_shot",
    "StationError": "labrram.station",
    "CalibrationError": "labrram.calibration.files",
    "StoreError": "labrram.store",
    "TargetError": "labrram.protocols.results",
    "LimitError": "labrram.safety",
}


from .lazy import lazy_exports  # noqa: E402 - after the URL handler registration

__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)

__all__ = ["__version__", *_EXPORTS]
