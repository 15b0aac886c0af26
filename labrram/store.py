"""The zarr run store: named dimensions, units and provenance on every array.

A run is a zarr (v3) group. Arrays carry ``dimension_names`` (so ``xarray.open_zarr`` reads
them with named dimensions) and a ``units`` attribute in SI; the group carries what produced
it (command, station, software version, times).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import __version__, zarrfile

#: the run-store format this labrram writes (attribute ``labrram_format`` of every run).
#: History:
#:
#: 1. the first format;
#: 2. a programming run's ``state`` array carries, after its five per-device layers, the commit
#:    record of the batch that wrote it (``commit_batches``, ``commit_log``, ``commit_iteration``,
#:    ``commit_phase``: constant layers, written atomically with the state), so that a run killed
#:    between writing its state and its ``progress.json`` resumes exactly
#:    (labrram 0.1's recorder);
#: 3. one schema for every run of a plan (docs/run-store.md): the plan and its parameters in the
#:    group attributes, the steps, their results and the pulse log appended as the run goes
#:    (``steps``, ``values``, ``log``, with string coordinates for their columns), the commit
#:    record in the group (``journal``; no side file), the per-device result written at the end,
#:    every dimension labelled and the metadata consolidated (:mod:`labrram.protocols.journal`).
#:    A format-2 programming run is upgraded to be read the same way; it cannot be resumed.
#:
#: A store of an older format opens read-only as it is (its arrays are a prefix of the new
#: ones); opened for writing (``--resume``) it is upgraded in place by :data:`MIGRATIONS`
#: (old version -> function(group, path)), which apply the steps the modules owning a run kind
#: registered in :data:`UPGRADES` ((old version, kind) -> function). A newer format, or an
#: older one without a migration, is refused with a clear error.
FORMAT_VERSION = 3
UPGRADES: dict[tuple[int, str], Callable[[Any, Path], None]] = {}


def _upgrade(version: int) -> Callable[[Any, Path], None]:
    def step(group: Any, path: Path) -> None:
        fn = UPGRADES.get((version, str(group.attrs.get("kind"))))
        if fn is not None:
            fn(group, path)

    return step


MIGRATIONS: dict[int, Callable[[Any, Path], None]] = {1: _upgrade(1), 2: _upgrade(2)}


class StoreError(ValueError):
    """A path that is not a usable labrram run store."""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


class RunStore:
    """One run on disk: a zarr (v3) group with labelled dimensions and SI units (docs/run-store.md).

    Create with :meth:`create`, reopen with :meth:`open`; ``xarray.open_zarr(path)`` reads it
    too.

    Attributes
    ----------
    group : zarr.Group
        The zarr group.
    path : Path
        Where it is.
    """

    def __init__(self, group: Any, path: Path) -> None:
        self.group = group
        self.path = path

    @classmethod
    def create(cls, path: str | Path, kind: str, attrs: dict[str, Any] | None = None, overwrite: bool = False) -> "RunStore":
        """Create a new run store.

        Parameters
        ----------
        path : str or Path
            The zarr directory to create.
        kind : str
            The run's kind (``"read"``, ``"program"``, ``"characterize"``...).
        attrs : dict, optional
            Group attributes to record (JSON-ready).
        overwrite : bool
            Replace an existing store; otherwise one is refused.

        Returns
        -------
        RunStore

        Raises
        ------
        StoreError
            The path exists and ``overwrite`` is false.
        """
        import zarr

        path = Path(path)
        if path.exists() and not overwrite:
            raise StoreError(f"{path} already exists; choose another --out or remove it")
        group = zarr.open_group(
            store=str(path),
            mode="w",
            zarr_format=3,
            attributes=_jsonable(
                {
                    "labrram_format": FORMAT_VERSION,
                    "kind": kind,
                    "software": {"labrram": __version__},
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    **(attrs or {}),
                }
            ),
        )
        return cls(group, path)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r") -> "RunStore":
        """Open an existing run store (upgrading an older run format when opened for writing).

        Parameters
        ----------
        path : str or Path
            The zarr directory.
        mode : str
            ``"r"`` (read only) or ``"r+"``.

        Returns
        -------
        RunStore

        Raises
        ------
        StoreError
            Naming the problem: no such path, not a labrram run, a format this version cannot
            read.
        """
        import zarr

        path = Path(path)
        if not path.exists():
            raise StoreError(f"{path}: no such run store")
        if not path.is_dir():
            raise StoreError(f"{path}: a file, not a run store (a run is a zarr directory)")
        try:
            # written to: the consolidated metadata of a finished run would go stale
            group = zarr.open_group(store=str(path), mode=mode, use_consolidated=None if mode == "r" else False)
            fmt = group.attrs.get("labrram_format")
        except Exception as exc:
            raise StoreError(f"{path}: not a readable zarr group ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
        if fmt is None:
            raise StoreError(f"{path}: a zarr group but not a labrram run (no labrram_format attribute)")
        if isinstance(fmt, bool) or not isinstance(fmt, int):
            raise StoreError(f"{path}: run format {fmt!r} is not a format version")
        if fmt > FORMAT_VERSION:
            raise StoreError(f"{path}: run format {fmt} is newer than this labrram reads (1..{FORMAT_VERSION}); upgrade labrram")
        if fmt < FORMAT_VERSION:
            if fmt < 1 or any(v not in MIGRATIONS for v in range(fmt, FORMAT_VERSION)):
                raise StoreError(f"{path}: run format {fmt} is older than this labrram reads (1..{FORMAT_VERSION}) and has no migration")
            if mode != "r":
                try:
                    for v in range(fmt, FORMAT_VERSION):
                        MIGRATIONS[v](group, path)
                except StoreError:
                    raise
                except Exception as exc:
                    raise StoreError(f"{path}: upgrading run format {fmt} to {FORMAT_VERSION} failed ({type(exc).__name__}: {exc})") from None
                group.update_attributes({"labrram_format": FORMAT_VERSION})
        return cls(group, path)

    @property
    def attrs(self) -> dict[str, Any]:
        """The group's attributes (a copy, as on disk now): ``kind``, ``status``, ``chip``,
        ``station``, ``labrram_format``..."""
        return dict(self._metadata().get("attributes") or {})

    def update_attrs(self, **attrs: Any) -> None:
        """Set group attributes (one atomic write of the group's ``zarr.json``).

        Parameters
        ----------
        **attrs
            Names and JSON-ready values (numpy scalars and arrays are converted).
        """
        if self.group.read_only:
            raise StoreError(f"{self.path}: opened read-only; its attributes cannot change")
        meta = self._metadata()
        meta["attributes"] = {**(meta.get("attributes") or {}), **_jsonable(attrs)}
        meta.pop("consolidated_metadata", None)  # written to: a finished run's consolidation would go stale
        zarrfile.write_metadata(self.path, meta)

    def consolidate(self, **attrs: Any) -> None:
        """Set group attributes and consolidate the metadata of every member into the group's
        ``zarr.json``, in one atomic write (a finished run: readers open it with one file read).

        Parameters
        ----------
        **attrs
            Names and JSON-ready values, as :meth:`update_attrs`.
        """
        if self.group.read_only:
            raise StoreError(f"{self.path}: opened read-only; it cannot be consolidated")
        zarrfile.consolidate(self.path, _jsonable(attrs))

    def _metadata(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.path / "zarr.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path}: the group's metadata is unreadable ({type(exc).__name__})") from None
        if not isinstance(meta, dict):
            raise StoreError(f"{self.path}: the group's metadata is not a JSON object")
        return meta

    # --- side files: labrram 0.1 kept a run's progress record beside the group -----------
    def read_sidecar(self, name: str, default: Any = None) -> Any:
        """A progress record kept beside the group by labrram 0.1 runs (``NAME.json``).

        Parameters
        ----------
        name : str
            The record's name.
        default : Any
            Returned when there is none.
        """
        target = self.path / f"{name}.json"
        if not target.exists():
            return default
        try:
            return json.loads(target.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreError(f"{target}: corrupt progress record ({exc})") from None

    def write(self, name: str, data: np.ndarray, dims: Sequence[str], units: str, chunks: tuple[int, ...] | None = None,
              overwrite: bool = False, **attrs: Any) -> None:  # fmt: skip
        """Store an array with dimension names and SI units.

        Parameters
        ----------
        name : str
            The array's name.
        data : ndarray
            The values.
        dims : sequence of str
            One dimension name per axis (``("row", "col")``).
        units : str
            SI unit (``"S"``, ``"V"``, ``"s"``, ``"A"``; ``"1"`` for counts and ratios).
        chunks : tuple of int, optional
            Chunk shape (default one chunk); 1-D arrays that will be appended to (logs) should
            be given large chunks.
        overwrite : bool
            Replace an array of that name; otherwise one is refused.
        **attrs
            More array attributes (``long_name=...``).
        """
        data = np.asarray(data)
        if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("__"):
            raise ValueError(f"{name!r} is not an array name (no '/', '\\' or leading '__'; not '.' or '..')")
        if data.ndim != len(dims):
            raise ValueError(f"{name}: {data.ndim}-D data needs {data.ndim} dimension names, got {list(dims)}")
        if chunks is None:
            chunks = tuple(max(n, 1) for n in data.shape)  # one chunk: these are small arrays
        if data.ndim and zarrfile.direct(data.dtype):  # the files written straight (labrram.zarrfile)
            try:
                zarrfile.write_array(self.path / name, data, chunks, list(dims), _jsonable({"units": units, **attrs}), overwrite=overwrite)
            except zarrfile.ZarrFileError as exc:
                raise StoreError(f"{self.path}: cannot write array {name!r}: {exc}") from None
            return
        self.group.create_array(
            name,
            data=data,
            chunks=chunks,
            dimension_names=list(dims),
            attributes=_jsonable({"units": units, **attrs}),
            overwrite=overwrite,
        )

    def read(self, name: str) -> np.ndarray:
        """An array's values.

        Parameters
        ----------
        name : str
            The array's name.

        Raises
        ------
        StoreError
            No such array (the error lists those there are), or a damaged one.
        """
        try:
            array = self.group[name]
        except KeyError:
            try:
                have = sorted(self.group.array_keys())
            except Exception:  # pragma: no cover - an unlistable store
                have = []
            raise StoreError(f"{self.path}: no array {name!r}; it has {have}") from None
        except Exception as exc:
            raise StoreError(f"{self.path}: array {name!r} is damaged ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
        try:
            return np.asarray(array[...])
        except Exception as exc:  # a truncated or corrupted chunk
            raise StoreError(f"{self.path}: array {name!r} is damaged ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None

    def array_attrs(self, name: str) -> dict[str, Any]:
        """An array's attributes (``units``, ``long_name``...).

        Parameters
        ----------
        name : str
            The array's name.
        """
        return dict(self.group[name].attrs)

    def dims(self, name: str) -> tuple[str, ...]:
        """An array's dimension names.

        Parameters
        ----------
        name : str
            The array's name.
        """
        return tuple(self.group[name].metadata.dimension_names or ())
