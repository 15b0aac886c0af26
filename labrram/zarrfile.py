"""Writing zarr (v3) arrays straight to their folder: one file per chunk and one for the metadata.

zarr-python runs every call through its event loop in another thread, a round trip however small
the work; a run store makes a few dozen such calls (creating arrays, appending chunks, resizing).
This module writes the same files directly, in what zarr-python itself writes for these arrays:

* data types ``bool``, ``int8`` … ``int64``, ``uint8`` … ``uint64``, ``float32``, ``float64``,
  and ``string`` (from numpy ``str`` arrays);
* a regular chunk grid, the default chunk keys (``c/0/1``);
* the codecs ``bytes`` (little-endian; ``vlen-utf8`` for strings) then a compressor: ``blosc``
  (lz4, byte shuffle) for arrays of one quantity (maps, value series, indexes), ``zstd`` (level 1,
  no checksum) for tables of records and strings (:data:`COMPRESSORS`); an existing array keeps
  its own compressor when appended to (zstd at any level, or blosc);
* every file written to a temporary name and renamed over the old one, metadata last, so a reader
  (or a process killed mid-write) sees the old file or the new one, never half of one.

Reading stays with zarr-python (and xarray), which opens these arrays like its own. Anything
else (object arrays, other codecs) is written by zarr-python.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["COMPRESSORS", "ZarrFileError", "direct", "metadata", "read_metadata", "set_shape", "write_array", "write_chunks", "consolidate", "write_group", "write_metadata"]

#: data types written here (numpy names, which are zarr v3's names for them)
DTYPES = frozenset(("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float32", "float64"))
#: the serializer of an array written here (zarr-python's for these data types; without the
#: byte order for one-byte types), followed by the compressor of :data:`COMPRESSORS`
BYTES = {"name": "bytes", "configuration": {"endian": "little"}}
#: The compressors, by name. ``"blosc"`` (lz4 at level 5 after a byte shuffle, zarr's own blosc
#: codec) for an array of one quantity: its values' bytes of equal weight sit together, so a
#: conductance series or an index compresses ten times faster than with zstd and as small or
#: smaller (an index 0 … n-1 to almost nothing). ``"zstd"`` (level 1: on a run's data as small as
#: zarr-python's default level 0 = 3, and faster) for a table of records, whose rows mix fields
#: that a shuffle would interleave (there half the size of blosc's), and for strings.
COMPRESSORS = {
    "zstd": {"name": "zstd", "configuration": {"level": 1, "checksum": False}},
    "blosc": {"name": "blosc", "configuration": {"typesize": 8, "cname": "lz4", "clevel": 5, "shuffle": "shuffle", "blocksize": 0}},
}
_SHUFFLES = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
_BLOSC_NAMES = frozenset(("lz4", "lz4hc", "blosclz", "zstd", "zlib"))
_CODEC_OBJECTS: dict[str, Any] = {}


class ZarrFileError(ValueError):
    """An array this module cannot write (its data type or codecs); the message names it."""


def _compressor_config(name: str, itemsize: int) -> dict[str, Any]:
    """The compressor codec ``name`` (:data:`COMPRESSORS`) of an array of ``itemsize``-byte values."""
    if name not in COMPRESSORS:
        raise ZarrFileError(f"compressor must be one of {sorted(COMPRESSORS)}, got {name!r}")
    codec = json.loads(json.dumps(COMPRESSORS[name]))
    if name == "blosc":
        codec["configuration"]["typesize"] = int(itemsize)
    return codec


def _compressor_ok(codec: Any, itemsize: int) -> bool:
    """Whether ``codec`` (an array's last codec) is a compressor written here: zstd at any level
    without checksum, or blosc with its own type size."""
    if not isinstance(codec, dict) or not isinstance(codec.get("configuration"), dict):
        return False
    conf = codec["configuration"]
    if codec.get("name") == "zstd":
        return type(conf.get("level")) is int and conf.get("checksum") is False
    return (
        codec.get("name") == "blosc" and isinstance(conf.get("cname"), str) and conf["cname"] in _BLOSC_NAMES
        and type(conf.get("clevel")) is int and 0 <= conf["clevel"] <= 9 and isinstance(conf.get("shuffle"), str) and conf["shuffle"] in _SHUFFLES
        and type(conf.get("typesize")) is int and conf["typesize"] == itemsize and type(conf.get("blocksize")) is int and conf["blocksize"] >= 0
    )  # fmt: skip


def _compressor(codec: dict[str, Any]) -> Any:
    """The numcodecs object (zarr's own) that encodes chunks as ``codec`` (a checked compressor)."""
    key = json.dumps(codec, sort_keys=True)
    if key not in _CODEC_OBJECTS:
        conf = codec["configuration"]
        if codec["name"] == "zstd":
            from numcodecs.zstd import Zstd

            _CODEC_OBJECTS[key] = Zstd(level=conf["level"])
        else:
            from numcodecs.blosc import Blosc

            _CODEC_OBJECTS[key] = Blosc(cname=conf["cname"], clevel=conf["clevel"], shuffle=_SHUFFLES[conf["shuffle"]], blocksize=conf["blocksize"])
    return _CODEC_OBJECTS[key]


def direct(dtype: Any) -> bool:
    """Whether arrays of ``dtype`` are written here (else by zarr-python)."""
    dtype = np.dtype(dtype)
    return dtype.name in DTYPES or dtype.kind == "U"


def _fill_json(value: Any, dtype: np.dtype) -> Any:
    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu":
        return int(value)
    v = float(value)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def _fill_value(meta: dict[str, Any]) -> Any:
    v = meta["fill_value"]
    return {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}.get(v, v) if isinstance(v, str) else v


def metadata(shape: Sequence[int], dtype: Any, chunks: Sequence[int], fill_value: Any, dimension_names: Sequence[str | None] | None,
             attributes: dict[str, Any], compressor: str = "blosc") -> dict[str, Any]:  # fmt: skip
    """The ``zarr.json`` document of an array (zarr v3 array metadata); ``compressor`` is one of
    :data:`COMPRESSORS` (strings are always zstd)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "U":
        codecs = [{"name": "vlen-utf8", "configuration": {}}, _compressor_config("zstd", 0)]
        return _document(shape, "string", chunks, str(fill_value or ""), codecs, dimension_names, attributes)
    if dtype.name not in DTYPES:
        raise ZarrFileError(f"data type {dtype.name!r} is not written directly (one of {sorted(DTYPES)})")
    # one-byte types have no byte order: zarr-python writes their bytes codec without one
    codecs = [{"name": "bytes"} if dtype.itemsize == 1 else dict(BYTES), _compressor_config(compressor, dtype.itemsize)]
    return _document(shape, dtype.name, chunks, _fill_json(fill_value, dtype), codecs, dimension_names, attributes)


def _document(shape: Sequence[int], data_type: str, chunks: Sequence[int], fill: Any, codecs: list[dict[str, Any]],
              dimension_names: Sequence[str | None] | None, attributes: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    if len(chunks) != len(shape) or any(int(c) < 1 for c in chunks):
        raise ZarrFileError(f"chunks {tuple(chunks)} do not fit shape {tuple(shape)}")
    meta = {
        "shape": [int(n) for n in shape],
        "data_type": data_type,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [int(c) for c in chunks]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill,
        "codecs": codecs,
        "attributes": attributes,
        "dimension_names": list(dimension_names) if dimension_names is not None else None,
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }
    if dimension_names is None:
        del meta["dimension_names"]
    return meta


def _put(path: Path, data: Any) -> None:
    """Write ``data`` (bytes-like) to ``path`` atomically: a temporary file renamed over it."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_metadata(folder: str | Path, meta: dict[str, Any]) -> None:
    """Write ``zarr.json`` of the array or group at ``folder`` (atomically)."""
    _put(Path(folder) / "zarr.json", json.dumps(meta, separators=(",", ":"), allow_nan=True).encode())  # compact: the C encoder


def read_metadata(folder: str | Path) -> dict[str, Any]:
    """The metadata of the array in ``folder``, checked to be one this module appends to.

    Raises
    ------
    ZarrFileError
        Not an array, or a data type or codecs not written here.
    """
    path = Path(folder) / "zarr.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ZarrFileError(f"{path}: unreadable array metadata ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("node_type") != "array" or meta.get("data_type") not in DTYPES:
        raise ZarrFileError(f"{path}: not an array of one of {sorted(DTYPES)}")
    codecs = meta.get("codecs")
    first = codecs[0] if isinstance(codecs, list) and codecs and isinstance(codecs[0], dict) else {}
    endian_ok = first.get("name") == "bytes" and (first.get("configuration") or {}).get("endian", "little") == "little"
    compressor_ok = isinstance(codecs, list) and len(codecs) == 2 and _compressor_ok(codecs[1], np.dtype(meta["data_type"]).itemsize)
    if not endian_ok or not compressor_ok or meta.get("chunk_key_encoding") != {"name": "default", "configuration": {"separator": "/"}}:
        raise ZarrFileError(f"{path}: codecs {codecs} or chunk keys {meta.get('chunk_key_encoding')} are not the ones written here")
    return meta


def _encode(block: np.ndarray, chunk_shape: Sequence[int], fill: Any, dtype: np.dtype, compressor: dict[str, Any]) -> Any:
    """One chunk's bytes: ``block`` padded with the fill value to the chunk's shape (edge chunks
    are stored whole), little-endian, C order, compressed by the codec ``compressor``."""
    if block.shape != tuple(chunk_shape):
        full = np.full(tuple(chunk_shape), fill, dtype=dtype)
        full[tuple(slice(0, n) for n in block.shape)] = block
        block = full
    if dtype.kind == "U":
        from numcodecs.vlen import VLenUTF8  # zarr's own vlen-utf8 codec

        return _compressor(compressor).encode(VLenUTF8().encode(np.asarray(block, dtype=object).ravel()))
    return _compressor(compressor).encode(np.ascontiguousarray(block, dtype=dtype.newbyteorder("<")))


def chunk_path(folder: str | Path, index: Sequence[int]) -> Path:
    """The file of the chunk at grid ``index`` of the array at ``folder`` (default chunk keys,
    ``c/i/j``)."""
    return Path(folder).joinpath("c", *(str(int(i)) for i in index))


def _write_chunk(folder: Path, meta: dict[str, Any], index: Sequence[int], block: np.ndarray) -> Path:
    """Write the chunk at grid ``index`` (default chunk key ``c/i/j``) of the array at ``folder``
    (metadata ``meta``) holding ``block``, padded to the chunk's shape; returns its file."""
    chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
    dtype, fill = (block.dtype, "") if meta["data_type"] == "string" else (np.dtype(meta["data_type"]), _fill_value(meta))
    path = chunk_path(folder, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    _put(path, _encode(block, chunks, fill, dtype, meta["codecs"][-1]))
    return path


def write_chunks(folder: str | Path, meta: dict[str, Any], start: int, data: np.ndarray) -> list[Path]:
    """Write ``data`` into the array at ``folder`` (metadata ``meta``) from row ``start`` on:
    ``start`` a multiple of the chunk length along the first axis, every other axis whole (one
    chunk); rows past the end of ``data`` in its last chunk take the fill value. The shape is not
    changed (:func:`set_shape`). Returns the chunk files written."""
    folder = Path(folder)
    chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
    shape = meta["shape"]
    c = int(chunks[0])
    if start % c or any(int(ch) != int(n) for ch, n in zip(chunks[1:], shape[1:])) or tuple(data.shape[1:]) != tuple(shape[1:]):
        raise ZarrFileError(f"{folder}: writes start on a chunk boundary (every {c} rows), whole along the other axes")
    return [_write_chunk(folder, meta, (start // c + at // c,) + (0,) * (len(shape) - 1), data[at : at + c]) for at in range(0, data.shape[0], c)]


def set_shape(folder: str | Path, meta: dict[str, Any], shape: Sequence[int]) -> None:
    """Give the array at ``folder`` a new ``shape`` (its metadata rewritten; ``meta`` updated).
    Chunks past the new shape stay on disk unread, as zarr-python leaves them."""
    meta["shape"] = [int(n) for n in shape]
    write_metadata(Path(folder), meta)


def write_array(folder: str | Path, data: np.ndarray, chunks: Sequence[int] | None = None, dimension_names: Sequence[str] | None = None,
                attributes: dict[str, Any] | None = None, fill_value: Any = None, shape: Sequence[int] | None = None,
                overwrite: bool = False, compressor: str = "blosc") -> dict[str, Any]:  # fmt: skip
    """Create the array ``folder`` (a member of an existing group folder) holding ``data``.

    Parameters
    ----------
    folder : str or Path
        The array's folder.
    data : ndarray
        Its values (boolean, integer, float — :data:`DTYPES` — or numpy strings).
    chunks : sequence of int, optional
        Chunk shape; default one chunk.
    dimension_names : sequence of str, optional
    attributes : dict, optional
        JSON-ready attributes.
    fill_value : optional
        Default 0 (``False``, ``0``, ``0.0``: zarr-python's default).
    shape : sequence of int, optional
        A larger shape than ``data``'s (unused capacity, read as the fill value); only along the
        first axis.
    overwrite : bool
        Replace what is at ``folder``; otherwise an existing array or group is refused.
    compressor : {"blosc", "zstd"}
        ``"blosc"`` for an array of one quantity, ``"zstd"`` for a table of records
        (:data:`COMPRESSORS`); strings are always zstd.

    Returns
    -------
    dict
        The array's metadata.

    Raises
    ------
    ZarrFileError
        A data type not written here, or ``folder`` exists and ``overwrite`` is false.
    """
    folder = Path(folder)
    data = np.asarray(data)
    shape = tuple(data.shape) if shape is None else tuple(int(n) for n in shape)
    if data.ndim == 0 or len(shape) != data.ndim or shape[1:] != data.shape[1:] or shape[0] < data.shape[0]:
        raise ZarrFileError(f"{folder.name}: shape {shape} does not hold data of shape {data.shape}")
    if chunks is None:
        chunks = tuple(max(n, 1) for n in shape)
    meta = metadata(shape, data.dtype, chunks, 0 if fill_value is None else fill_value, dimension_names, attributes or {}, compressor)
    if folder.exists():
        if not overwrite:
            raise ZarrFileError(f"{folder}: an array or group already exists there")
        shutil.rmtree(folder) if folder.is_dir() else folder.unlink()
    folder.mkdir()
    grid = [range(0, max(n, 1), int(c)) for n, c in zip(data.shape, chunks)] if data.size else []
    for corner in np.ndindex(*(len(g) for g in grid)) if grid else ():
        lo = [g[i] for g, i in zip(grid, corner)]
        block = data[tuple(slice(a, a + int(c)) for a, c in zip(lo, chunks))]
        _write_chunk(folder, meta, [a // int(c) for a, c in zip(lo, chunks)], block)
    write_metadata(folder, meta)  # last: until it is there, the array does not exist
    return meta


def write_group(folder: str | Path, attributes: dict[str, Any] | None = None) -> None:
    """Create the (empty) group ``folder``, a member of an existing group folder."""
    folder = Path(folder)
    folder.mkdir(exist_ok=True)
    write_metadata(folder, {"attributes": attributes or {}, "zarr_format": 3, "node_type": "group"})


def consolidate(folder: str | Path, attributes: dict[str, Any] | None = None) -> None:
    """Gather the metadata of every member of the group at ``folder`` (at any depth) into its own
    ``zarr.json`` (``consolidated_metadata``, in zarr-python's layout), so that a reader opens the
    group with one file read; ``attributes`` (JSON-ready) are set in the same write."""
    folder = Path(folder)
    members: dict[str, Any] = {}
    for path in sorted(folder.rglob("zarr.json")):
        if path.parent == folder:
            continue
        meta = json.loads(path.read_text())
        if meta.get("node_type") == "group":
            meta["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": {}}
        members[path.parent.relative_to(folder).as_posix()] = meta
    root = json.loads((folder / "zarr.json").read_text())
    if attributes:
        root["attributes"] = {**(root.get("attributes") or {}), **attributes}
    root["consolidated_metadata"] = {"kind": "inline", "must_understand": False, "metadata": members}
    write_metadata(folder, root)
