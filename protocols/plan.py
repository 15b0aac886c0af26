"""Plans: what a job that touches a chip does, apart from doing it.

A plan is an object with

* ``name`` (class attribute): the name it is registered and stored under;
* ``kind``: the run kind of its store, ``"program"`` or ``"characterize"``;
* ``check(xb)``: every check that can be made before any byte is sent (settings against the
  station's limits, targets against what the calibrated devices can reach); raises;
* ``run(shape)``: a generator that yields :mod:`.messages` and receives their results, and
  returns the plan's result (a :class:`~.results.ProgramResult`, a characterization's data);
* ``params()`` and ``inputs()``: what the run store keeps to build the same plan again
  (JSON parameters; arrays with dimension names and units), and ``from_store(params, store)``,
  the classmethod that builds it again — so :func:`labrram.resume` needs the store alone.

Plans hold no I/O, no recorder, no signal handling and no retry logic: the engine
(:mod:`.engine`) does all of that, the same way for every plan.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from typing import Any, ClassVar, Generator

import numpy as np

from labrram.safety import LimitError
from labrram.store import StoreError

PlanRun = Generator[Any, Any, Any]

#: registered plans: name -> class
PLANS: dict[str, type] = {}
#: where each plan is defined (imported on first use, so that a store names its plan alone)
PLAN_MODULES = {
    "write-verify": "labrram.protocols.write_verify",
    "single-shot": "labrram.protocols.single_shot",
    "stochastic-set": "labrram.protocols.single_shot",
    "write-verify-pcm": "labrram.protocols.write_verify_pcm",
    "tune-passive": "labrram.protocols.tune_passive",
    "smu-write-verify": "labrram.protocols.smu_loop",
    "characterize-reram": "labrram.calibration.reram_routine",
    "characterize-pcm": "labrram.calibration.pcm_routine",
    "characterize-passive": "labrram.calibration.passive_routine",
}


class Plan:
    """Base of the plans (module docstring)."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "program"

    def check(self, xb: Any) -> None:
        """Refuse what can be refused before any byte is sent (default: nothing)."""

    def run(self, shape: tuple[int, int]) -> PlanRun:  # pragma: no cover - abstract
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        return {}

    def inputs(self) -> dict[str, tuple[np.ndarray, tuple[str, ...], str]]:
        return {}

    @classmethod
    def from_store(cls, params: dict[str, Any], store: Any) -> "Plan":  # pragma: no cover - abstract
        raise NotImplementedError


def register(cls: type) -> type:
    """Class decorator: make a plan known by its ``name``."""
    if not cls.name:
        raise ValueError(f"plan {cls.__name__} has no name")
    PLANS[cls.name] = cls
    return cls


def plan_class(name: str) -> type:
    """The plan class registered under ``name`` (importing its module on first use)."""
    if name not in PLANS and name in PLAN_MODULES:
        importlib.import_module(PLAN_MODULES[name])
    try:
        return PLANS[name]
    except KeyError:
        raise StoreError(f"unknown plan {name!r}; known: {sorted(PLAN_MODULES)}") from None


def plan_from_store(store: Any) -> Any:
    """Build the plan of a run store again, from the store alone."""
    attrs = store.attrs
    cls = plan_class(str(attrs.get("plan")))
    params = attrs.get("plan_params")
    if not isinstance(params, dict):
        raise StoreError(f"{store.path}: plan_params is not an object; the run cannot be rebuilt")
    try:
        return cls.from_store(params, store)
    except StoreError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{store.path}: the stored parameters of plan {cls.name!r} are not usable ({type(exc).__name__}: {exc})") from None


def check_finite_settings(settings: Any) -> None:
    """Refuse (ValueError naming the field) a settings dataclass with a number that is not
    finite (NaN compares false with every bound, so it would pass the class's range checks) or
    a bool where a number belongs."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        default = f.default
        items = value if isinstance(value, (tuple, list)) else (value,)
        for x in items:
            if isinstance(x, bool) and not isinstance(default, bool):
                raise ValueError(f"{f.name} must be a number, not {x!r}")
            if isinstance(x, (float, np.floating)) and not math.isfinite(x):
                raise ValueError(f"{f.name} must be a finite number, got {x!r}")


def check_pulse_settings(xb: Any, what: str, amplitude: Any, gate: Any, width: Any) -> None:
    """Refuse a plan's pulse settings beyond the bench limits or the board's ranges before
    anything is sent (raises :class:`~labrram.safety.LimitError` naming the setting)."""
    try:
        xb.check_pulse(amplitude, gate, width)
    except LimitError as exc:
        raise LimitError(f"{what}: {exc}") from None


# --- device models in a store -------------------------------------------------------------
def model_to_json(model: Any) -> dict[str, Any]:
    """A calibrated device model as JSON (its kind and parameters)."""
    from labrram.calibration.files import MODELS, model_class

    for kind in MODELS:
        if isinstance(model, model_class(kind)):
            return {"kind": kind, "model": model.to_dict()}
    raise TypeError(f"not a device model: {type(model).__name__}")


def model_from_json(data: dict[str, Any]) -> Any:
    """The device model that :func:`model_to_json` stored (validated like a calibration file)."""
    from labrram.calibration.files import parse_calibration

    doc = {"labrram_calibration": 1, "kind": data["kind"], "model": data["model"], "estimates": {}}
    return parse_calibration(doc, "the run's stored calibration").model
