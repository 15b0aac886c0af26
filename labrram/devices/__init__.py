"""Statistical device models (numpy only), shared by the simulator, calibration, protocols and training.

The names are imported on first use, so that a ReRAM job does not load the passive crossbar's
circuit solver (scipy) it never needs.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "AccessTransistor": "reram",
    "ReRAMModel": "reram",
    "PCMModel": "pcm",
    "preset_nandakumar2019": "pcm",
    "PassiveDeviceModel": "passive",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
