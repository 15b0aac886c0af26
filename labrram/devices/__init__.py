"""Statistical device models (numpy only), shared by the simulator, calibration, protocols and training.

The names are imported on first use, so that a ReRAM job does not load the passive crossbar's
circuit solver (scipy) it never needs.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_WHERE = {
    "AccessTransistor": ".reram",
    "ReRAMModel": ".reram",
    "LevelInstability": ".reram",
    "PCMModel": ".pcm",
    "preset_nandakumar2019": ".pcm",
    "PassiveDeviceModel": ".passive",
    "QuantileTable": ".set_families",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _WHERE)
