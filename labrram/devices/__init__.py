"""Statistical device models (numpy only), shared by the simulator, calibration, protocols and training."""

from .reram import AccessTransistor, ReRAMModel

__all__ = ["AccessTransistor", "ReRAMModel"]
