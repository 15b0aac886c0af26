"""What the characterization plans share: the device selection and the plan's storable part."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from ..protocols.plan import Plan


def select_devices(shape: tuple[int, int], n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct cells spread at random over the array (seeded), row-major sorted."""
    total = shape[0] * shape[1]
    if n > total:
        raise ValueError(f"cannot select {n} devices from a {shape[0]}x{shape[1]} array")
    flat = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    return flat // shape[1], flat % shape[1]


def settings_from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Settings stored in a run (JSON: tuples became lists) as the frozen dataclass again."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} setting(s) {unknown}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class CharacterizationPlan(Plan):
    """A characterization routine as a plan: its settings are all it needs (stored as
    ``plan_params["settings"]``); subclasses set ``settings_class`` and ``device_kind`` and
    write ``check`` and ``run``."""

    kind = "characterize"
    settings_class: ClassVar[type]
    device_kind: ClassVar[str] = ""

    def __init__(self, settings: Any = None) -> None:
        self.settings = self.settings_class() if settings is None else settings

    def params(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict()}

    @classmethod
    def from_store(cls, params: dict[str, Any], store: Any) -> "CharacterizationPlan":
        return cls(settings_from_dict(cls.settings_class, params["settings"]))
