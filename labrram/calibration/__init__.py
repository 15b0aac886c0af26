"""Calibration: characterization routines run on a Crossbar, and fits that turn their raw data
into device-model parameters with confidence intervals and goodness of fit.

:data:`KINDS` maps each device technology to its (settings, routine, data, fit) quartet, which
is how the ``labrram characterize`` / ``labrram calibrate`` commands stay generic.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from .estimates import Estimate

# The routines and fits (scipy) load on first use: ``labrram.calibration.files`` — which every
# command that reads a calibration needs — stays light (PEP 562 module __getattr__).
_LAZY = {
    "PassiveFit": "passive_fit",
    "PassiveCharacterization": "passive_routine",
    "PassiveData": "passive_routine",
    "characterize_passive": "passive_routine",
    "CharacterizePassive": "passive_routine",
    "CharacterizePCM": "pcm_routine",
    "CharacterizeReRAM": "reram_routine",
    "PCMFit": "pcm_fit",
    "PCMCharacterization": "pcm_routine",
    "PCMData": "pcm_routine",
    "characterize_pcm": "pcm_routine",
    "ReRAMFit": "reram_fit",
    "ReRAMCharacterization": "reram_routine",
    "ReRAMData": "reram_routine",
    "characterize_reram": "reram_routine",
}


@dataclass(frozen=True)
class Technology:
    """How one device technology is characterized (settings, the plan and its function, the
    raw data) and fitted."""

    settings: type
    characterize: Callable[..., Any]
    data: type
    fit: type
    plan: type


def _kinds() -> dict[str, Technology]:
    g = __getattr__
    return {
        "reram": Technology(g("ReRAMCharacterization"), g("characterize_reram"), g("ReRAMData"), g("ReRAMFit"), g("CharacterizeReRAM")),
        "pcm": Technology(g("PCMCharacterization"), g("characterize_pcm"), g("PCMData"), g("PCMFit"), g("CharacterizePCM")),
        "passive": Technology(g("PassiveCharacterization"), g("characterize_passive"), g("PassiveData"), g("PassiveFit"), g("CharacterizePassive")),
    }


def __getattr__(name: str) -> Any:
    if name == "KINDS":
        value: Any = _kinds()
    elif name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = [
    "KINDS",
    "CharacterizePassive",
    "CharacterizePCM",
    "CharacterizeReRAM",
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
