"""Measurements taken elsewhere → a characterization run store that ``labrram calibrate`` fits.

Each device kind has a minimal schema (:data:`SCHEMAS`): the quantities its fit reads, each with
its dimensions and SI unit, and the settings it needs — nothing else. A file holds them as

* **CSV** (tidy): a header with ``quantity``, ``value`` and one column per dimension used
  (``device``, ``level``, ``cycle``, ...); one row per value, indexes from 0; a quantity's
  rows fill its whole array, each cell exactly once;
* **NPZ**: one array per quantity, dimensions in the schema's order (loaded without pickle);
* **netCDF or zarr** (an xarray dataset, ``.nc`` / ``.zarr``): one variable per quantity, with
  the schema's dimension names (any order).

:func:`import_measurements` checks every quantity (present, shapes that agree across shared
dimensions, finite values in range) before it writes a run store whose fields the fit does not
read are marked as not measured (device positions -1, other arrays empty or NaN).
:func:`write_tidy_csv` writes a characterization's data in the CSV form (what a lab's file
should look like).
"""

from __future__ import annotations

import zipfile

import csv
import io
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..store import RunStore, StoreError
from ..textfile import open_regular


class MeasurementError(ValueError):
    """Measurements that cannot be imported (the message names the file and the quantity)."""


@dataclass(frozen=True)
class Quantity:
    """One measured quantity of a schema."""

    dims: tuple[str, ...]
    unit: str
    meaning: str
    low: float = -np.inf  # the smallest value that makes sense
    high: float = np.inf


#: kind -> quantity name -> :class:`Quantity` (what the fit reads; SI units)
SCHEMAS: dict[str, dict[str, Quantity]] = {
    "reram": {
        "gates": Quantity(("level",), "V", "word-line voltage of each SET level"),
        "transistor_current": Quantity(("level", "transistor_cell"), "A", "access transistor's saturation current at each gate, per measured cell", 0.0),
        "g_set": Quantity(("cycle", "level", "device"), "S", "conductance after a SET at each level (read at a fixed delay), per RESET/SET cycle", 0.0),
        "g_reset": Quantity(("cycle", "level", "device"), "S", "conductance after the RESET that precedes each SET", 0.0),
        "read_repeats": Quantity(("repeat", "device"), "S", "repeated reads of an untouched device (read noise)", 0.0),
        "relax_times": Quantity(("delay",), "s", "delays after a fresh SET", 0.0),
        "relax_g": Quantity(("delay", "device"), "S", "conductance at each delay after that SET (relaxation)", 0.0),
        "survey_g_reset": Quantity(("survey_cell",), "S", "optional: conductance of each other cell of the array after a RESET (stuck-device survey)", 0.0),
        "survey_g_set": Quantity(("survey_cell",), "S", "optional: conductance of each of those cells after a SET at the top gate", 0.0),
    },
    "pcm": {
        "targets": Quantity(("level",), "S", "the programmed levels", 0.0),
        "level": Quantity(("device",), "1", "each device's level (index into targets)", 0.0),
        "converged": Quantity(("device",), "1", "1 when the device reached its level's window, else 0", 0.0, 1.0),
        "drift_times": Quantity(("time",), "s", "times after programming of the drift reads", 0.0),
        "drift_g": Quantity(("time", "device"), "S", "conductance at each time (NaN where a device was not read)", 0.0),
    },
    "passive": {
        "iv_voltages": Quantity(("voltage",), "V", "voltages of the I-V sweep"),
        "iv_current": Quantity(("voltage", "device"), "A", "current through each device at each voltage"),
        "ramp_amplitudes": Quantity(("step",), "V", "amplitudes of the SET/RESET threshold ramps"),
        "set_threshold": Quantity(("device",), "V", "amplitude at which each device first SETs (NaN: never)"),
        "reset_threshold": Quantity(("device",), "V", "amplitude at which each device first RESETs (NaN: never)"),
        "read_repeats": Quantity(("repeat", "device"), "S", "repeated reads of an untouched device (read noise)", 0.0),
        "fab_cols": Quantity(("map_col",), "1", "optional: columns read cell by cell before any pulse (as-fabricated map)", 0.0),
        "fab_current": Quantity(("map_repeat", "row", "map_col"), "A", "optional: sensed current of every cell of those columns, each selected in turn, per repeat"),
        "tune_rows": Quantity(("tuned",), "1", "optional: row of each device tuned to a target (one per column)", 0.0),
        "tune_cols": Quantity(("tuned",), "1", "optional: column of each tuned device", 0.0),
        "tune_targets": Quantity(("tuned",), "S", "optional: the target of each tuned device", 0.0),
        "tune_current": Quantity(("map_repeat", "row", "tuned"), "A", "optional: sensed current of every cell of each tuned device's column after tuning, per repeat"),
    },
}
#: no memory device conducts more than 1 S (1 Ω): a larger conductance is a unit slip (µS written as S)
MAX_CONDUCTANCE = 1.0
SCHEMAS = {kind: {name: (replace(q, high=MAX_CONDUCTANCE) if q.unit == "S" and q.high == np.inf else q) for name, q in schema.items()}
           for kind, schema in SCHEMAS.items()}  # fmt: skip
#: quantities a file may leave out (the fit then skips what they measure)
OPTIONAL = {("passive", n) for n in ("fab_cols", "fab_current", "tune_rows", "tune_cols", "tune_targets", "tune_current")} | {
    ("reram", n) for n in ("survey_g_reset", "survey_g_set")
}

#: kind -> settings the fit reads (name -> (default, meaning))
SETTINGS: dict[str, dict[str, tuple[Any, str]]] = {
    "reram": {"read_delay": (6.0, "time between each SET and the read of g_set, s")},
    "pcm": {"reads_per_time": (1, "reads averaged into each drift_g value")},
    "passive": {
        "scheme": ("V/2", "biasing of the half-selected lines during the ramps and the column reads: V/2 or V/3"),
        "map_voltage": (0.2, "read voltage of the column reads (fab_current, tune_current), V"),
    },
}

#: quantities that may hold NaN (a value not measured)
MAY_BE_NAN = {("pcm", "drift_g"), ("passive", "set_threshold"), ("passive", "reset_threshold")}
#: the largest file read, bytes
MAX_FILE = 1 << 30


def _data_class(kind: str) -> Any:
    from . import KINDS

    return KINDS[kind].data


def _read_csv(path: Path, schema: dict[str, Quantity]) -> dict[str, np.ndarray]:
    fd = open_regular(path, "measurements", MeasurementError)
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(MAX_FILE + 1)
    if len(raw) > MAX_FILE:
        raise MeasurementError(f"{path}: larger than {MAX_FILE} bytes")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MeasurementError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise MeasurementError(f"{path}: empty file") from None
    if "quantity" not in header or "value" not in header:
        raise MeasurementError(f"{path}: the header must name the columns 'quantity' and 'value' (and the dimensions); it has {header}")
    col = {name: i for i, name in enumerate(header)}
    known_dims = {d for q in schema.values() for d in q.dims}
    unknown = [h for h in header if h not in ("quantity", "value") and h not in known_dims]
    if unknown:
        raise MeasurementError(f"{path}: unknown column(s) {unknown}; the dimensions of these quantities are {sorted(known_dims)}")
    cells: dict[str, tuple[list[tuple[int, ...]], list[float]]] = {}
    for line, row in enumerate(reader, start=2):
        if not row or all(not x.strip() for x in row):
            continue
        if len(row) != len(header):
            raise MeasurementError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
        name = row[col["quantity"]].strip()
        q = schema.get(name)
        if q is None:
            raise MeasurementError(f"{path}, line {line}: unknown quantity {name!r}; known: {sorted(schema)}")
        try:
            index = tuple(int(row[col[d]]) for d in q.dims)
        except KeyError as exc:
            raise MeasurementError(f"{path}: {name} needs a column {exc.args[0]!r}") from None
        except ValueError:
            raise MeasurementError(f"{path}, line {line}: the indexes of {name} ({', '.join(q.dims)}) must be integers") from None
        if any(i < 0 for i in index):
            raise MeasurementError(f"{path}, line {line}: negative index")
        text_value = row[col["value"]].strip().lower()
        try:
            value = {"true": 1.0, "false": 0.0}.get(text_value)
            value = float(text_value) if value is None else value
        except ValueError:
            raise MeasurementError(f"{path}, line {line}: value {row[col['value']]!r} of {name} is not a number") from None
        idx, vals = cells.setdefault(name, ([], []))
        idx.append(index)
        vals.append(value)
    out = {}
    for name, (idx, vals) in cells.items():
        q = schema[name]
        index = np.array(idx, dtype=np.int64).reshape(len(idx), len(q.dims))
        shape = tuple(int(m) + 1 for m in index.max(axis=0)) if index.size else (0,) * len(q.dims)
        if np.prod(shape) > 10 * len(idx) + 1000:
            raise MeasurementError(f"{path}: {name} has indexes up to {shape} but only {len(idx)} values")
        arr = np.full(shape, np.nan)
        seen = np.zeros(shape, dtype=np.int64)
        np.add.at(seen, tuple(index.T), 1)
        if np.any(seen > 1):
            first = np.argwhere(seen > 1)[0]
            raise MeasurementError(f"{path}: {name} at {dict(zip(q.dims, first.tolist()))} is given {int(seen[tuple(first)])} times")
        if np.any(seen == 0):
            first = np.argwhere(seen == 0)[0]
            raise MeasurementError(f"{path}: {name} misses {int(np.sum(seen == 0))} value(s), e.g. at {dict(zip(q.dims, first.tolist()))}")
        arr[tuple(index.T)] = vals
        out[name] = arr
    return out


def _read_npz(path: Path, schema: dict[str, Quantity]) -> dict[str, np.ndarray]:
    fd = open_regular(path, "measurements", MeasurementError)
    with os.fdopen(fd, "rb") as fh:
        try:
            with np.load(fh, allow_pickle=False) as npz:
                unknown = sorted(set(npz.files) - set(schema))
                if unknown:
                    raise MeasurementError(f"{path}: unknown array(s) {unknown}; known: {sorted(schema)}")
                return {name: np.asarray(npz[name]) for name in npz.files}
        except MeasurementError:
            raise
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise MeasurementError(f"{path}: not a readable .npz file of arrays ({' '.join(str(exc).split())[:120]})") from None


def _read_xarray(path: Path, schema: dict[str, Quantity]) -> dict[str, np.ndarray]:
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray comes with the [test] extra
        raise MeasurementError("reading netCDF or zarr datasets needs xarray (pip install xarray)") from None
    try:
        ds = xr.open_zarr(path) if path.is_dir() else xr.open_dataset(path)
    except Exception as exc:
        raise MeasurementError(f"{path}: not a readable dataset ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
    with ds:
        unknown = sorted(set(ds.data_vars) - set(schema))
        if unknown:
            raise MeasurementError(f"{path}: unknown variable(s) {unknown}; known: {sorted(schema)}")
        out = {}
        for name in ds.data_vars:
            var, dims = ds[name], schema[name].dims
            if set(var.dims) != set(dims):
                raise MeasurementError(f"{path}: {name} has dimensions {list(var.dims)}, the schema says {list(dims)}")
            out[name] = np.asarray(var.transpose(*dims).values)
    return out


READERS = {".csv": _read_csv, ".npz": _read_npz, ".nc": _read_xarray, ".zarr": _read_xarray}


def read_measurements(path: str | Path, kind: str) -> dict[str, np.ndarray]:
    """The quantities of ``kind``'s schema in the file at ``path`` (format from its suffix:
    ``.csv``, ``.npz``, ``.nc``, ``.zarr``), checked (module docstring)."""
    if kind not in SCHEMAS:
        raise MeasurementError(f"unknown device kind {kind!r}; choose from {sorted(SCHEMAS)}")
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise MeasurementError(f"{path}: unknown format {path.suffix!r}; use one of {sorted(READERS)}")
    if not path.exists():
        raise MeasurementError(f"{path}: no such file")
    schema = SCHEMAS[kind]
    arrays = reader(path, schema)
    missing = sorted(set(schema) - set(arrays) - {n for k, n in OPTIONAL if k == kind})
    if missing:
        raise MeasurementError(f"{path}: {kind} measurements need {', '.join(missing)} (docs/calibration.md lists each quantity)")
    sizes: dict[str, tuple[int, str]] = {}
    for name, q in schema.items():
        if name not in arrays:
            continue
        arr = arrays[name]
        if arr.dtype.kind not in "biuf":
            raise MeasurementError(f"{path}: {name} must be numbers, not {arr.dtype}")
        arr = arrays[name] = arr.astype(float)
        if arr.ndim != len(q.dims):
            raise MeasurementError(f"{path}: {name} must be {len(q.dims)}-D ({', '.join(q.dims)}), it is {arr.ndim}-D")
        for dim, n in zip(q.dims, arr.shape):
            if dim in sizes and sizes[dim][0] != n:
                raise MeasurementError(f"{path}: {name} has {n} along {dim!r}, {sizes[dim][1]} has {sizes[dim][0]}")
            sizes.setdefault(dim, (n, name))
        bad = np.isinf(arr) | (np.isnan(arr) if (kind, name) not in MAY_BE_NAN else False)
        if np.any(bad):
            raise MeasurementError(f"{path}: {name} holds {int(np.sum(bad))} value(s) that are not finite")
        inside = arr[np.isfinite(arr)]
        if inside.size and (inside.min() < q.low or inside.max() > q.high):
            raise MeasurementError(f"{path}: {name} ({q.unit}) must lie in [{q.low:g}, {q.high:g}]; it spans [{inside.min():.4g}, {inside.max():.4g}]")
    if "device" in sizes and sizes["device"][0] < 4:
        raise MeasurementError(f"{path}: {sizes['device'][0]} device(s); a fit needs at least 4")
    return arrays


def import_measurements(source: str | Path, kind: str, out: str | Path, settings: dict[str, Any] | None = None) -> Path:
    """Measurements of ``kind`` devices (a CSV, NPZ, netCDF or zarr file with the quantities of
    :data:`SCHEMAS`) → a characterization run store at ``out`` that ``labrram calibrate`` fits.
    ``settings``: the values of :data:`SETTINGS` for the kind (defaults otherwise). Returns
    ``out``."""
    if Path(out).exists():  # before reading what may be a large file
        raise StoreError(f"{out} already exists; choose another out")
    arrays = read_measurements(source, kind)
    allowed = SETTINGS[kind]
    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise MeasurementError(f"unknown setting(s) {unknown} for {kind}; known: {sorted(allowed) or 'none'}")
    full = {name: settings.get(name, default) for name, (default, _) in allowed.items()}
    if kind == "reram":
        try:
            full["read_delay"] = float(full["read_delay"])
        except (TypeError, ValueError):
            raise MeasurementError(f"read_delay must be a time in seconds, got {full['read_delay']!r}") from None
        if not (np.isfinite(full["read_delay"]) and 0 <= full["read_delay"] <= 1e6):
            raise MeasurementError(f"read_delay must be between 0 and 1e6 s, got {full['read_delay']!r}")
    if kind == "reram" and ("survey_g_reset" in arrays) != ("survey_g_set" in arrays):
        have, lack = ("survey_g_reset", "survey_g_set") if "survey_g_reset" in arrays else ("survey_g_set", "survey_g_reset")
        raise MeasurementError(f"{source}: {have} given without {lack} (they go together)")
    if kind == "passive" and full["scheme"] not in ("V/2", "V/3"):
        raise MeasurementError(f"scheme must be V/2 or V/3, got {full['scheme']!r}")
    if kind == "passive":
        try:
            full["map_voltage"] = float(full["map_voltage"])
        except (TypeError, ValueError):
            raise MeasurementError(f"map_voltage must be a voltage in volts, got {full['map_voltage']!r}") from None
        if not 0 < full["map_voltage"] <= 0.5:
            raise MeasurementError(f"map_voltage must lie in (0, 0.5] V, got {full['map_voltage']!r}")
        for group in (("fab_cols", "fab_current"), ("tune_rows", "tune_cols", "tune_targets", "tune_current")):
            have = [n for n in group if n in arrays]
            if have and len(have) < len(group):
                raise MeasurementError(f"{source}: {', '.join(have)} given without {', '.join(n for n in group if n not in arrays)} (they go together)")
    if kind == "pcm":
        try:
            full["reads_per_time"] = int(full["reads_per_time"])
        except (TypeError, ValueError):
            raise MeasurementError(f"reads_per_time must be an integer, got {full['reads_per_time']!r}") from None
        if not 1 <= full["reads_per_time"] <= 10_000:
            raise MeasurementError("reads_per_time must be between 1 and 10000")
        levels = arrays["targets"].size
        if np.any(arrays["level"] != np.round(arrays["level"])) or np.any(arrays["level"] >= levels):
            raise MeasurementError(f"{source}: level must hold integer indexes below {levels} (the number of targets)")
    data_cls = _data_class(kind)
    sizes = {d: n for name, q in SCHEMAS[kind].items() if name in arrays for d, n in zip(q.dims, arrays[name].shape)}
    store = RunStore.create(out, "characterize", {
        "device_kind": kind, "status": "complete", "settings": full, "chip": f"imported, {Path(source).name}",
        "imported_from": {"path": str(source), "format": Path(source).suffix.lower().lstrip(".")},
    })  # fmt: skip
    for name, dims in data_cls.DIMS.items():
        if name in arrays:
            data = arrays[name]
        else:  # not measured: device positions unknown (-1), anything else empty or NaN
            shape = tuple(sizes.get(d, 0) for d in dims)
            data = np.full(shape, -1 if name in ("rows", "cols") else np.nan)
        store.write(name, data, dims, data_cls.UNITS[name], measured=name in arrays)
    return Path(out)


def write_tidy_csv(data: Any, kind: str, path: str | Path) -> Path:
    """Write the quantities of ``kind``'s schema from a characterization's data (e.g.
    ``ReRAMData``) as a tidy CSV that :func:`import_measurements` reads."""
    schema = SCHEMAS[kind]
    dims = sorted({d for q in schema.values() for d in q.dims})
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["quantity", *dims, "value"])
        for name, q in schema.items():
            arr = np.asarray(getattr(data, name), dtype=float)
            for index in np.ndindex(arr.shape):
                where = dict(zip(q.dims, index))
                w.writerow([name, *[where.get(d, "") for d in dims], repr(float(arr[index]))])
    return Path(path)


__all__ = ["SCHEMAS", "SETTINGS", "MeasurementError", "Quantity", "import_measurements", "read_measurements", "write_tidy_csv"]
