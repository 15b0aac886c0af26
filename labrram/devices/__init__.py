"""Statistical device models (numpy only), shared by the simulator, calibration, protocols and training."""

from .passive import CrossbarCircuit, PassiveDeviceModel
from .pcm import PCMModel, preset_nandakumar2019
from .reram import AccessTransistor, ReRAMModel

__all__ = ["AccessTransistor", "CrossbarCircuit", "PassiveDeviceModel", "PCMModel", "ReRAMModel", "preset_nandakumar2019"]
