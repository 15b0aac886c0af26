"""The zarr run store: named dimensions, units and provenance on every array.

A run is a zarr (v3) group. Arrays carry ``dimension_names`` (so ``xarray.open_zarr`` reads
them with named dimensions) and a ``units`` attribute in SI; the group carries what produced
it (command, station, software version, times).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__

FORMAT_VERSION = 1


class StoreError(ValueError):
    """A path that is not a usable labrram run store."""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


class RunStore:
    """One run on disk. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, group: Any, path: Path) -> None:
        self.group = group
        self.path = path

    @classmethod
    def create(cls, path: str | Path, kind: str, attrs: dict[str, Any] | None = None, overwrite: bool = False) -> "RunStore":
        """A new run of ``kind`` (e.g. ``"read"``); refuses to overwrite unless told to."""
        import zarr

        path = Path(path)
        if path.exists() and not overwrite:
            raise StoreError(f"{path} already exists; choose another --out or remove it")
        group = zarr.open_group(store=str(path), mode="w", zarr_format=3)
        group.attrs.update(
            _jsonable(
                {
                    "labrram_format": FORMAT_VERSION,
                    "kind": kind,
                    "software": {"labrram": __version__},
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    **(attrs or {}),
                }
            )
        )
        return cls(group, path)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> "RunStore":
        """Open an existing run; a clear error when the path is not one."""
        import zarr

        path = Path(path)
        if not path.exists():
            raise StoreError(f"{path}: no such run store")
        try:
            group = zarr.open_group(store=str(path), mode=mode)
        except Exception as exc:
            raise StoreError(f"{path}: not a zarr group ({exc})") from None
        fmt = group.attrs.get("labrram_format")
        if fmt is None:
            raise StoreError(f"{path}: a zarr group but not a labrram run (no labrram_format attribute)")
        if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
            raise StoreError(f"{path}: run format {fmt!r} is newer than this labrram understands ({FORMAT_VERSION})")
        return cls(group, path)

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    def update_attrs(self, **attrs: Any) -> None:
        self.group.attrs.update(_jsonable(attrs))

    # --- sidecar: small, frequently rewritten progress records ---------------------------
    def write_sidecar(self, name: str, obj: Any) -> None:
        """Atomically replace ``<run>/<name>.json`` (write to a temporary file, fsync, rename):
        a crash leaves either the old or the new record, never a torn one."""
        import os

        target = self.path / f"{name}.json"
        tmp = self.path / f".{name}.json.tmp"
        with open(tmp, "w") as fh:
            json.dump(_jsonable(obj), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def read_sidecar(self, name: str, default: Any = None) -> Any:
        target = self.path / f"{name}.json"
        if not target.exists():
            return default
        try:
            return json.loads(target.read_text())
        except json.JSONDecodeError as exc:
            raise StoreError(f"{target}: corrupt progress record ({exc})") from None

    def write(self, name: str, data: np.ndarray, dims: Sequence[str], units: str, chunks: tuple[int, ...] | None = None, **attrs: Any) -> None:
        """Store ``data`` as array ``name`` with dimension names and SI units.

        1-D arrays that will be appended to (logs) should be given large ``chunks``.
        """
        data = np.asarray(data)
        if data.ndim != len(dims):
            raise ValueError(f"{name}: {data.ndim}-D data needs {data.ndim} dimension names, got {list(dims)}")
        if chunks is None:
            chunks = tuple(max(n, 1) for n in data.shape)  # one chunk: these are small arrays
        self.group.create_array(
            name,
            data=data,
            chunks=chunks,
            dimension_names=list(dims),
            attributes=_jsonable({"units": units, **attrs}),
            overwrite=False,
        )

    def read(self, name: str) -> np.ndarray:
        try:
            return np.asarray(self.group[name][...])
        except KeyError:
            raise StoreError(f"{self.path}: no array {name!r}; it has {sorted(self.group.array_keys())}") from None

    def array_attrs(self, name: str) -> dict[str, Any]:
        return dict(self.group[name].attrs)

    def dims(self, name: str) -> tuple[str, ...]:
        return tuple(self.group[name].metadata.dimension_names or ())
