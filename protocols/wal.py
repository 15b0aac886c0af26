"""The write-ahead log of a run store: recording a step costs one ``write`` (and, for a pulse
batch's intent to a chip outside the process, one ``fdatasync``), not a dozen zarr round trips.

A run's steps, their results and its pulse log are first appended to ``wal/records`` inside the
store folder (``wal`` is an empty zarr group, so that zarr readers of a running store see a
member they know), one *record* per flush. Every few seconds, and when the run stops or ends, the
records are moved into the store's zarr arrays (a *checkpoint*) and the file is emptied. A record
is the commit point of the rows it carries: it is written whole by one ``write`` and checked by
a CRC-32 on reading, so a run killed mid-write leaves a torn tail that readers ignore (and a
resumed run cuts off).

Record layout (little-endian)::

    magic  b"LRJ\\x01"                 4 bytes
    length of the body                 uint64
    CRC-32 of the body                 uint32
    body:
      starts and counts                7 x int64: steps start, steps rows, values start,
                                       values count, log start, log rows, JSON length
      steps rows                       float64, rows x len(STEP_FIELDS)
      values                           float64
      log rows                         float64, rows x len(LOG_FIELDS)
      commit record                    UTF-8 JSON (totals, accounting, intent in flight, ...)

Starts are absolute row indices, so a record that a checkpoint already moved into zarr (a run
killed between the checkpoint and the emptying of the file) is recognised and skipped.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

#: an array, or a list of arrays that follow each other (written without joining them)
ArrayParts = Union[np.ndarray, list[np.ndarray]]

MAGIC = b"LRJ\x01"
_HEADER = struct.Struct("<4sQI")
_COUNTS = struct.Struct("<7q")
#: the log file, relative to the store folder; its folder is a zarr group
FILE_NAME = "wal/records"
#: upper bound of one record's body, bytes (a record holds one flush: far below this)
MAX_RECORD = 1 << 34


@dataclass
class Record:
    """One flush: rows appended at absolute ``starts`` (steps, values, log) and the commit record."""

    starts: tuple[int, int, int]
    steps: np.ndarray
    values: np.ndarray
    log: np.ndarray
    commit: dict[str, Any]


def encode(starts: tuple[int, int, int], steps: ArrayParts, values: ArrayParts, log: ArrayParts, commit: dict[str, Any]) -> list[Any]:
    """One record (module docstring), as buffers to write in order (no copy of the arrays).
    ``steps``, ``values`` and ``log`` are arrays, or lists of arrays that follow each other."""
    text = json.dumps(commit, separators=(",", ":")).encode()
    steps, values, log = ([np.ascontiguousarray(a, dtype="<f8") for a in (x if isinstance(x, list) else [x])] for x in (steps, values, log))
    counts = (sum(a.shape[0] for a in steps), sum(a.size for a in values), sum(a.shape[0] for a in log))
    parts = [_COUNTS.pack(starts[0], counts[0], starts[1], counts[1], starts[2], counts[2], len(text)),
             *(a.reshape(-1).view(np.uint8) for group in (steps, values, log) for a in group), text]  # fmt: skip
    crc, length = 0, 0
    for part in parts:
        crc = zlib.crc32(part, crc)
        length += len(part)
    return [_HEADER.pack(MAGIC, length, crc), *parts]


def read(path: str | Path, widths: tuple[int, int]) -> tuple[list[Record], int]:
    """The whole records of the log at ``path`` (none if there is no file) and the byte offset
    where they end: a torn or corrupted tail is left out. ``widths``: the columns of a steps row
    and of a log row."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return [], 0
    records, pos = [], 0
    while pos + _HEADER.size <= len(data):
        magic, length, crc = _HEADER.unpack_from(data, pos)
        body_at = pos + _HEADER.size
        if magic != MAGIC or length > MAX_RECORD or body_at + length > len(data):
            break
        body = memoryview(data)[body_at : body_at + length]
        if zlib.crc32(body) != crc:
            break
        try:
            records.append(_decode(body, widths))
        except (ValueError, struct.error):
            break
        pos = body_at + length
    return records, pos


def _decode(body: memoryview, widths: tuple[int, int]) -> Record:
    s0, ns, v0, nv, l0, nl, nj = _COUNTS.unpack_from(body, 0)
    if min(s0, ns, v0, nv, l0, nl, nj) < 0:
        raise ValueError("negative count")
    at = _COUNTS.size
    out = []
    for count, width in ((ns, widths[0]), (nv, 1), (nl, widths[1])):
        n = count * width
        out.append(np.frombuffer(body, dtype="<f8", count=n, offset=at).astype(float))
        at += 8 * n
    commit = json.loads(bytes(body[at : at + nj]).decode())
    if at + nj != len(body) or not isinstance(commit, dict):
        raise ValueError("malformed record")
    return Record((s0, v0, l0), out[0].reshape(ns, widths[0]), out[1], out[2].reshape(nl, widths[1]), commit)


#: most buffers one ``writev`` takes (POSIX ``IOV_MAX``; 1024 on Linux)
def _iov_max() -> int:
    try:
        n = os.sysconf("SC_IOV_MAX")
    except (AttributeError, ValueError, OSError):
        return 16  # POSIX's smallest
    return min(n, 1024) if n > 0 else 16


_IOV_MAX = _iov_max()


class WriteAheadLog:
    """The log file of one run store, open for appending (module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        """Open (or create) the log of the store at ``folder``, whose ``wal`` group exists."""
        self.path = Path(folder) / FILE_NAME
        existed = self.path.exists()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if not existed:  # the file's name must outlive a power cut too
            fsync_path(self.path.parent)

    def append(self, record: list[Any], durable: bool) -> None:
        """Write one record (:func:`encode`'s buffers); ``durable``: flush it to the disk before
        returning (an intent)."""
        parts = [memoryview(p).cast("B") for p in record if len(p)]  # bytes views: partial writes slice them
        while parts:
            written = os.writev(self._fd, parts[:_IOV_MAX])  # the system takes at most IOV_MAX buffers a call
            while parts and written >= len(parts[0]):
                written -= len(parts[0])
                parts.pop(0)
            if parts and written:
                parts[0] = parts[0][written:]
        if durable:
            _datasync(self._fd)

    def cut(self, size: int = 0) -> None:
        """Drop everything past ``size`` bytes (0: the whole log, after a checkpoint)."""
        os.ftruncate(self._fd, size)

    def close(self, remove: bool = False) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if remove:
            self.path.unlink(missing_ok=True)

    def __del__(self) -> None:  # pragma: no cover - the engine closes it
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)


def _datasync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def fsync_path(path: str | Path) -> None:
    """Flush a file (or a folder's entries) to the disk; a path that does not exist is skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
