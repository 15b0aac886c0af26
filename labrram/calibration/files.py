"""Calibration files: a fitted device model with intervals, goodness of fit and provenance (JSON).

Layout (``labrram_calibration`` = 1)::

    {
      "labrram_calibration": 1,
      "kind": "reram" | "pcm" | "passive",
      "model": {...},                      # the device model's parameters (SI)
      "estimates": {"a": {"value": ..., "ci95": [lo, hi], "unit": "S"}, ...},
      "goodness_of_fit": {...},
      "n_devices": 254,
      "provenance": {"chip": ..., "station": ..., "date": ..., "routine": {...},
                     "software": {...}, "data": "RUN.zarr"}
    }

Loading validates everything and names the offending key; nothing is evaluated.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .estimates import Estimate
from ..textfile import read_user_text

FORMAT = 1
MODELS = {
    "reram": "labrram.devices.reram:ReRAMModel",
    "pcm": "labrram.devices.pcm:PCMModel",
    "passive": "labrram.devices.passive:PassiveDeviceModel",
}


class CalibrationError(ValueError):
    """A calibration file that cannot be used; the message names the file and the problem."""


def model_class(kind: str):
    try:
        module, _, name = MODELS[kind].partition(":")
    except KeyError:
        raise CalibrationError(f"unknown device kind {kind!r}; known: {sorted(MODELS)}") from None
    return getattr(importlib.import_module(module), name)


def software_versions() -> dict[str, str]:
    from .. import __version__

    versions = {"labrram": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "zarr", "pyvisa"):
        try:
            versions[pkg] = importlib.import_module(pkg).__version__
        except Exception:  # pragma: no cover - all are dependencies
            pass
    return versions


@dataclass
class Calibration:
    """A fitted device model and everything needed to trust it."""

    kind: str
    model: Any
    estimates: dict[str, Estimate]
    goodness_of_fit: dict[str, Any]
    n_devices: int
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "labrram_calibration": FORMAT,
            "kind": self.kind,
            "model": self.model.to_dict(),
            "estimates": {k: e.to_dict() for k, e in self.estimates.items()},
            "goodness_of_fit": self.goodness_of_fit,
            "n_devices": self.n_devices,
            "note": "model parameters named in 'estimates' were fitted to the data; the others are the nominal defaults of the model",
            "provenance": self.provenance,
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        path.write_text(text + "\n")
        return path


def provenance(chip: str, station: dict[str, Any] | None, routine: dict[str, Any], data: str | None) -> dict[str, Any]:
    return {
        "chip": chip,
        "station": station,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "routine": routine,
        "software": software_versions(),
        "data": data,
    }


def _finite_tree(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise CalibrationError(f"{where} is not finite")
    if isinstance(value, dict):
        for k, v in value.items():
            _finite_tree(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite_tree(v, f"{where}[{i}]")


#: physical ranges of the ReRAM model's parameters: (low, high), None for no bound; a file
#: outside them cannot describe a device (a typo, a unit slip, a corrupted file)
RERAM_RANGES: dict[str, tuple[float | None, float | None]] = {
    "a": (1e-9, 1.0), "b": (1e-3, 10.0), "c": (0.0, 1e-2), "d2d_rel": (0.0, 1.0), "hrs_median": (1e-12, 1e-2),
    "hrs_sigma_log": (0.0, 10.0), "read_noise_rel": (0.0, 0.5), "relax_sigma": (0.0, None), "relax_tau": (1e-12, None),
    "v_set": (0.0, 10.0), "v_reset": (0.0, 10.0), "v_gate_reset": (0.0, 10.0), "t_switch": (0.0, 1.0),
    "v_breakdown": (0.0, 100.0), "p_stuck_lrs": (0.0, 1.0), "p_stuck_hrs": (0.0, 1.0), "g_stuck_lrs": (0.0, 1.0),
    "g_min": (0.0, 1.0),
}  # fmt: skip


def _check_ranges(kind: str, model: Any, source: str) -> None:
    if kind != "reram":
        return
    for name, (lo, hi) in RERAM_RANGES.items():
        v = getattr(model, name)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise CalibrationError(f"{source}: model.{name} = {v:g} is outside its physical range [{lo}, {hi}]")
    k = model.transistor.k
    if not k > 0:
        raise CalibrationError(f"{source}: model.transistor.k = {k:g} must be positive")
    if model.p_stuck_lrs + model.p_stuck_hrs > 1:
        raise CalibrationError(f"{source}: model.p_stuck_lrs + p_stuck_hrs exceed 1")


def parse_calibration(data: Any, source: str = "<calibration>") -> Calibration:
    """Validate a decoded calibration document."""
    if not isinstance(data, dict):
        raise CalibrationError(f"{source}: a calibration file is a JSON object")
    fmt = data.get("labrram_calibration")
    if fmt is None:
        raise CalibrationError(f"{source}: not a labrram calibration file (no 'labrram_calibration' key)")
    if not isinstance(fmt, int) or fmt > FORMAT or fmt < 1:
        raise CalibrationError(f"{source}: calibration format {fmt!r} is not one this labrram reads (1..{FORMAT})")
    for key in ("kind", "model", "estimates"):
        if key not in data:
            raise CalibrationError(f"{source}: missing '{key}'")
    kind = data["kind"]
    if not isinstance(kind, str):
        raise CalibrationError(f"{source}: 'kind' must be a string")
    cls = model_class(kind)
    if not isinstance(data["model"], dict):
        raise CalibrationError(f"{source}: 'model' must be an object of parameters")
    _finite_tree(data["model"], f"{source}: model")
    try:
        model = cls.from_dict(data["model"])
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"{source}: model: {exc}") from None
    _check_ranges(kind, model, source)
    estimates = {}
    if not isinstance(data["estimates"], dict):
        raise CalibrationError(f"{source}: 'estimates' must be an object")
    for name, est in data["estimates"].items():
        try:
            estimates[name] = Estimate.from_dict(est)
        except (KeyError, TypeError, ValueError):
            raise CalibrationError(f"{source}: estimates.{name} must be {{'value': x, 'ci95': [lo, hi], 'unit': u}}") from None
        _finite_tree([estimates[name].value, estimates[name].low, estimates[name].high], f"{source}: estimates.{name}")
    n = data.get("n_devices", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CalibrationError(f"{source}: n_devices must be a non-negative integer")
    gof = data.get("goodness_of_fit", {})
    prov = data.get("provenance", {})
    if not isinstance(gof, dict) or not isinstance(prov, dict):
        raise CalibrationError(f"{source}: goodness_of_fit and provenance must be objects")
    return Calibration(kind, model, estimates, gof, n, prov)


def load_calibration(path: str | Path) -> Calibration:
    """Load and validate a calibration file (JSON only; nothing in it is executed)."""
    path = Path(path)
    text = read_user_text(path, "calibration", "JSON", CalibrationError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{path}: not valid JSON: {exc}") from None
    return parse_calibration(data, str(path))


def default_calibration(kind: str) -> Calibration:
    """The calibration shipped in ``calibration_data/<kind>.json``."""
    from importlib import resources

    model_class(kind)  # a clear error for an unknown kind
    resource = resources.files("labrram.calibration_data").joinpath(f"{kind}.json")
    if not resource.is_file():
        raise CalibrationError(f"no shipped calibration for {kind!r} (calibration_data/{kind}.json)")
    return parse_calibration(json.loads(resource.read_text()), f"calibration_data/{kind}.json")
