"""Calibration files: a fitted device model with intervals, goodness of fit and provenance (JSON).

Layout (``labrram_calibration`` = 2)::

    {
      "labrram_calibration": 2,
      "kind": "reram" | "pcm" | "passive",
      "model": {...},                      # the device model's parameters (SI)
      "estimates": {"a": {"value": ..., "ci95": [lo, hi], "unit": "S"}, ...},
      "protocol_estimates": {...},         # what the characterization's own protocol achieved
                                           # (e.g. the PCM ladder's spread): not device parameters
      "goodness_of_fit": {...},
      "n_devices": 254,
      "provenance": {"chip": ..., "station": ..., "date": ..., "routine": {...},
                     "software": {...}, "data": "RUN.zarr"}
    }

Loading validates everything and names the offending key; nothing is evaluated. Format 1 files
load (no ``protocol_estimates``), except PCM files whose ``estimates`` hold ``prog_c0..c2``:
format 1 stored the spread the characterization ladder achieved in the fields of the device's
programming noise ``sigma_prog``; they are refused with a message naming the file and the field.
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
from ..textfile import check_depth, read_user_text

FORMAT = 2
#: PCM estimates that format 1 filled with the characterization ladder's spread
LEGACY_PCM_LADDER_FIELDS = ("prog_c0", "prog_c1", "prog_c2")
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
    """A fitted device model and everything needed to trust it.

    Attributes
    ----------
    kind : str
        ``"reram"``, ``"pcm"`` or ``"passive"``.
    model : ReRAMModel, PCMModel or PassiveModel
        Every parameter of the device model (:mod:`labrram.devices`), SI.
    estimates : dict of str to Estimate
        The fitted parameters: ``value``, 95 % interval ``low`` and ``high``, ``unit`` (in the
        JSON file: ``{"value": ..., "ci95": [low, high], "unit": ...}``).
    goodness_of_fit : dict
        Fit quality figures (R², Kolmogorov-Smirnov distances, ...).
    n_devices : int
        Devices the fit used.
    provenance : dict
        Chip identification, station, date, routine settings, software versions, data location.
    """

    kind: str
    model: Any
    estimates: dict[str, Estimate]
    goodness_of_fit: dict[str, Any]
    n_devices: int
    provenance: dict[str, Any] = field(default_factory=dict)
    protocol_estimates: dict[str, Estimate] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The calibration file's content (JSON-ready; docs/calibration.md)."""
        return {
            "labrram_calibration": FORMAT,
            "kind": self.kind,
            "model": self.model.to_dict(),
            "estimates": {k: e.to_dict() for k, e in self.estimates.items()},
            "protocol_estimates": {k: e.to_dict() for k, e in self.protocol_estimates.items()},
            "goodness_of_fit": self.goodness_of_fit,
            "n_devices": self.n_devices,
            "note": (
                "model parameters named in 'estimates' were fitted to the data; the others are the nominal defaults of the model. "
                "'protocol_estimates' describe what the characterization's own protocol achieved (its settings are in provenance.routine), "
                "not the device"
            ),
            "provenance": self.provenance,
        }

    def save(self, path: str | Path) -> Path:
        """Write the calibration file.

        Parameters
        ----------
        path : str or Path
            The JSON file to write (replaced if it exists); :func:`load_calibration` reads it.

        Returns
        -------
        Path
            ``path``.
        """
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


#: physical ranges of each model's parameters: (low, high), None for no bound; a file outside
#: them cannot describe a device (a typo, a unit slip, a corrupted file). Nested parameters are
#: named ``transistor.k``.
_TRANSISTOR = {"transistor.v_th": (0.0, 5.0), "transistor.k": (1e-9, 1.0)}
RANGES: dict[str, dict[str, tuple[float | None, float | None]]] = {
    "reram": {
        "a": (1e-9, 1.0), "b": (1e-3, 10.0), "c": (0.0, 1e-2), "d": (-10.0, 10.0), "d2d_rel": (0.0, 1.0), "hrs_median": (1e-12, 1e-2),
        "hrs_sigma_log": (0.0, 10.0), "read_noise_rel": (0.0, 0.5), "relax_mean": (-1e-3, 1e-3), "relax_sigma": (0.0, 1e-3),
        "relax_tau": (1e-12, 1e6), "v_set": (0.0, 10.0), "v_reset": (0.0, 10.0), "v_gate_reset": (0.0, 10.0), "t_switch": (0.0, 1.0),
        "v_breakdown": (0.0, 100.0), "p_stuck_lrs": (0.0, 1.0), "p_stuck_hrs": (0.0, 1.0), "g_stuck_lrs": (0.0, 1.0), "g_min": (0.0, 1.0),
        **_TRANSISTOR,
    },
    "pcm": {
        "g_max": (1e-9, 1e-2), "prog_c0": (-1e-3, 1e-3), "prog_c1": (-1e-3, 1e-3), "prog_c2": (-1e-3, 1e-3), "prog_g_ref": (1e-9, 1e-2),
        "t0": (1e-9, 1e6), "nu_mu_slope": (-1.0, 1.0), "nu_mu_offset": (-1.0, 1.0), "nu_mu_min": (0.0, 1.0), "nu_mu_max": (0.0, 1.0),
        "nu_sigma_slope": (-1.0, 1.0), "nu_sigma_offset": (-1.0, 1.0), "nu_sigma_min": (0.0, 1.0), "nu_sigma_max": (0.0, 1.0),
        "nu_g_floor": (0.0, 1e-3), "t_read": (0.0, 1.0), "q_s_coeff": (0.0, 1.0), "q_s_exp": (0.0, 5.0), "q_s_max": (0.0, 1.0),
        "r_on": (0.0, 1e9), "v_hold": (0.0, 10.0), "v_th_set": (0.0, 10.0), "set_rate": (0.0, None), "set_c2c": (0.0, 10.0),
        "set_t_inc": (0.0, 1.0), "set_tau": (0.0, 1.0), "g_sat": (0.0, 1e-2), "v_melt": (0.0, 10.0), "v_reset_full": (0.0, 10.0),
        "reset_exp": (0.0, 10.0), "g_reset": (0.0, 1e-3), "reset_sigma_log": (0.0, 10.0), "t_melt": (0.0, 1.0), "set_rate_d2d": (0.0, 1.0),
        "g_sat_d2d": (0.0, 1.0), "v_melt_d2d": (0.0, 1.0), "v_breakdown": (0.0, 100.0), "p_stuck_set": (0.0, 1.0), "p_stuck_reset": (0.0, 1.0),
        "g_stuck_set": (0.0, 1.0), "g_stuck_reset": (0.0, 1.0), "g_min": (0.0, 1e-3), **_TRANSISTOR,
    },
    "passive": {
        "a": (0.0, 50.0), "g_min": (0.0, 1e-2), "g_max": (1e-12, 1e-2), "v_set": (0.0, 10.0), "v_reset": (0.0, 10.0), "v_th_d2d_rel": (0.0, 1.0),
        "rate_set": (0.0, None), "rate_reset": (0.0, None), "gamma_set": (0.0, 10.0), "gamma_reset": (0.0, 10.0), "window_p": (0.0, 100.0),
        "rate_d2d_rel": (0.0, 1.0), "rate_c2c_rel": (0.0, 1.0), "tuning_sigma_rel": (0.0, 1.0), "tuning_tolerance_rel": (0.0, 1.0),
        "read_noise_rel": (0.0, 0.5), "read_noise_floor": (0.0, 1e-3), "disturb_rate": (0.0, None), "disturb_v0": (0.0, 10.0),
        "disturb_step": (0.0, 10.0), "g_init_median": (0.0, 1e-2), "g_init_sigma_log": (0.0, 10.0), "r_wire_row": (0.0, 1e6),
        "r_wire_col": (0.0, 1e6), "t_read": (0.0, 1.0),
    },
}  # fmt: skip
RERAM_RANGES = RANGES["reram"]


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_ranges(kind: str, model: Any, source: str) -> None:
    values = _flat(model.to_dict())
    for name, (lo, hi) in RANGES.get(kind, {}).items():
        v = values.get(name)
        if v is None:
            continue
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise CalibrationError(f"{source}: model.{name} = {v:g} is outside its physical range [{lo}, {hi}]")
    if kind == "reram" and model.p_stuck_lrs + model.p_stuck_hrs > 1:
        raise CalibrationError(f"{source}: model.p_stuck_lrs + p_stuck_hrs exceed 1")
    if kind == "passive" and not model.g_min < model.g_max:
        raise CalibrationError(f"{source}: model.g_min ({model.g_min:g} S) must be below model.g_max ({model.g_max:g} S)")
    if kind == "pcm" and not model.nu_mu_min <= model.nu_mu_max:
        raise CalibrationError(f"{source}: model.nu_mu_min must not exceed model.nu_mu_max")


def _check_complete(kind: str, params: dict[str, Any], source: str) -> None:
    """Every parameter of the model is in the file (a missing one would silently mean a default)."""
    from dataclasses import fields

    cls = model_class(kind)
    want = {f.name for f in fields(cls)} - set(getattr(cls, "optional_parameters", ()))
    missing = sorted(want - set(params))
    if missing:
        raise CalibrationError(f"{source}: model lacks parameter(s) {missing}")
    tr = params.get("transistor")
    if "transistor" in want and (not isinstance(tr, dict) or sorted({"v_th", "k"} - set(tr))):
        raise CalibrationError(f"{source}: model.transistor must give 'v_th' and 'k'")
    flat = _flat(params)
    for name in RANGES.get(kind, {}):  # numbers as written: no text, bool or null converted on the way
        v = flat.get(name)
        if name in flat and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise CalibrationError(f"{source}: model.{name} must be a number, got {v!r}")


def parse_calibration(data: Any, source: str = "<calibration>") -> Calibration:
    """Validate a decoded calibration document."""
    if not isinstance(data, dict):
        raise CalibrationError(f"{source}: a calibration file is a JSON object")
    fmt = data.get("labrram_calibration")
    if fmt is None:
        raise CalibrationError(f"{source}: not a labrram calibration file (no 'labrram_calibration' key)")
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt > FORMAT or fmt < 1:
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
    _check_complete(kind, data["model"], source)
    _check_ranges(kind, model, source)
    estimates = _estimates(data["estimates"], "estimates", source)
    protocol = _estimates(data.get("protocol_estimates", {}), "protocol_estimates", source)
    if kind == "pcm" and fmt == 1:
        legacy = [name for name in LEGACY_PCM_LADDER_FIELDS if name in estimates]
        if legacy:
            raise CalibrationError(
                f"{source}: estimates.{legacy[0]} (calibration format 1) holds the spread the characterization ladder's fixed "
                "verify window achieved, not the device's programming noise sigma_prog, and its 1/f noise fit was biased; "
                "recalibrate the characterization run (labrram calibrate RUN.zarr --out FILE) to write format 2"
            )
    n = data.get("n_devices", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CalibrationError(f"{source}: n_devices must be a non-negative integer")
    gof = data.get("goodness_of_fit", {})
    prov = data.get("provenance", {})
    if not isinstance(gof, dict) or not isinstance(prov, dict):
        raise CalibrationError(f"{source}: goodness_of_fit and provenance must be objects")
    return Calibration(kind, model, estimates, gof, n, prov, protocol)


def _estimates(block: Any, key: str, source: str) -> dict[str, Estimate]:
    """The named estimates of one block of the file (``estimates`` or ``protocol_estimates``)."""
    if not isinstance(block, dict):
        raise CalibrationError(f"{source}: '{key}' must be an object")
    out = {}
    for name, est in block.items():
        try:
            out[name] = Estimate.from_dict(est)
        except (KeyError, TypeError, ValueError):
            raise CalibrationError(f"{source}: {key}.{name} must be {{'value': x, 'ci95': [lo, hi], 'unit': u}}") from None
        _finite_tree([out[name].value, out[name].low, out[name].high], f"{source}: {key}.{name}")
    return out


def load_calibration(path: str | Path) -> Calibration:
    """Load and validate a calibration file (JSON only; nothing in it is executed).

    Parameters
    ----------
    path : str or Path
        A file written by ``labrram calibrate`` or :meth:`Calibration.save`.

    Returns
    -------
    Calibration

    Raises
    ------
    CalibrationError
        Naming the file, the key and the problem.
    """
    path = Path(path)
    text = read_user_text(path, "calibration", "JSON", CalibrationError)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{path}: not valid JSON: {exc}") from None
    except RecursionError:
        raise CalibrationError(f"{path}: nested too deeply") from None
    check_depth(data, str(path), CalibrationError)
    return parse_calibration(data, str(path))


def default_calibration(kind: str) -> Calibration:
    """The calibration shipped with labrram for a device kind.

    Parameters
    ----------
    kind : str
        ``"reram"``, ``"pcm"`` or ``"passive"``.

    Returns
    -------
    Calibration
        ``calibration_data/<kind>.json`` (fitted on the default simulated bench).
    """
    from importlib import resources

    model_class(kind)  # a clear error for an unknown kind
    resource = resources.files("labrram.calibration_data").joinpath(f"{kind}.json")
    if not resource.is_file():
        raise CalibrationError(f"no shipped calibration for {kind!r} (calibration_data/{kind}.json)")
    return parse_calibration(json.loads(resource.read_text()), f"calibration_data/{kind}.json")
