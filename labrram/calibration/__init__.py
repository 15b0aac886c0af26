"""Calibration: characterization routines run on a Crossbar, and fits that turn their raw data
into device-model parameters with confidence intervals and goodness of fit.

:data:`KINDS` maps each device technology to its (settings, routine, data, fit) quartet, which
is how the ``labrram characterize`` / ``labrram calibrate`` commands stay generic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .estimates import Estimate
from .passive_fit import PassiveFit
from .passive_routine import PassiveCharacterization, PassiveData, characterize_passive
from .pcm_fit import PCMFit
from .pcm_routine import PCMCharacterization, PCMData, characterize_pcm
from .reram_fit import ReRAMFit
from .reram_routine import ReRAMCharacterization, ReRAMData, characterize_reram


@dataclass(frozen=True)
class Technology:
    """How one device technology is characterized and fitted."""

    settings: type
    characterize: Callable[..., Any]
    data: type
    fit: type


KINDS: dict[str, Technology] = {
    "reram": Technology(ReRAMCharacterization, characterize_reram, ReRAMData, ReRAMFit),
    "pcm": Technology(PCMCharacterization, characterize_pcm, PCMData, PCMFit),
    "passive": Technology(PassiveCharacterization, characterize_passive, PassiveData, PassiveFit),
}

__all__ = [
    "KINDS",
    "Estimate",
    "PassiveCharacterization",
    "PassiveData",
    "PassiveFit",
    "PCMCharacterization",
    "PCMData",
    "PCMFit",
    "ReRAMCharacterization",
    "ReRAMData",
    "ReRAMFit",
    "Technology",
    "characterize_passive",
    "characterize_pcm",
    "characterize_reram",
]
