"""Calibration: characterization routines run on a Crossbar, and fits that turn their raw data
into device-model parameters with confidence intervals and goodness of fit."""

from .estimates import Estimate
from .reram_fit import ReRAMFit
from .reram_routine import ReRAMCharacterization, ReRAMData, characterize_reram

__all__ = ["Estimate", "ReRAMFit", "ReRAMCharacterization", "ReRAMData", "characterize_reram"]
