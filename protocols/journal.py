"""The run store of a plan: every step and its result, appended as the run goes.

One schema for every plan (docs/run-store.md). A run is a zarr group holding

* the plan's inputs (``targets``, ``sigma``, ...) and, in the group attributes, the plan's name
  and parameters (``plan``, ``plan_params``) — enough to build the same plan again, so that a
  run resumes from its store alone;
* ``steps`` (run_step, step_field): one row per message the plan yielded — op code, number of
  devices, a checksum of its cells, where its result starts in ``values`` and how long it is,
  the board's pulse counter before a pulse batch, the bench clock after the step;
* ``values`` (value): every step's result, concatenated (a read's conductances; a pulse's
  read-back and per-device status; a sweep's currents; the clock);
* ``log`` (pulse, field): one row per pulse that (may have) reached a device — step, row, col,
  kind (0 SET, 1 RESET, 2 ``SET?``, 3 ``RESET?`` for a pulse of uncertain fate), amplitude,
  gate, width, the conductance read back;
* ``step_field`` and ``field``: the column names (string coordinates, so
  ``xarray.open_zarr(run).log.sel(field="g_after")`` works);
* the commit record (``journal`` attribute, as of the last checkpoint): how many steps, values and log rows are
  committed, the intent of a pulse batch in flight (``pending``), and the accounting.

Steps are buffered and written in groups — with the intent of the next pulse batch (so
everything a batch's choice rests on is recorded before the batch is sent), when the run stops
or ends, and at least every ``Journal.flush_interval`` seconds — as one record of the store's
write-ahead log (:mod:`.wal`: one ``writev``, CRC-checked; ``fdatasync``'d when it states an
intent and the chip is outside this process, :attr:`Journal.flush_intents`). Every ``Journal.checkpoint_interval`` seconds, and when the run stops or ends, the
records are moved into the zarr arrays (whole chunks, written directly by
:mod:`labrram.zarrfile`; the tail chunk is kept in memory), the commit record is written in the
group, all of it is flushed to the disk, and the log is emptied. Every chunk and metadata file
is replaced atomically (a temporary file renamed over it), so a run killed at any point
leaves a store whose committed part is intact (zarr, plus the whole records of the log); rows
past the committed counts are unused capacity (NaN), trimmed when the run ends or stops
cleanly. A run killed with steps still buffered redoes its idempotent steps (reads, waits) and
settles its last pulse batch from the intent on disk. A finished run has no log and has
consolidated metadata.

Resume is replay: the plan is built again from the store and run from its start; the engine
answers every committed step from ``values`` (checking that the plan asked for the same thing:
op, devices, checksum), settles a pulse batch that was in flight, and goes live from there.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from labrram import zarrfile
from labrram.schema import check_run_attrs
from labrram.signals import deferred_signals
from labrram.store import UPGRADES, RunStore, StoreError

from . import wal
from .messages import OPS, Message

#: columns of ``steps``
STEP_FIELDS = ("op", "n", "crc", "value_start", "n_values", "counter", "clock")
#: columns of ``log`` (one row per pulse) and their units
LOG_FIELDS = ("step", "row", "col", "kind", "amplitude", "gate", "width", "g_after")
LOG_UNITS = ("1", "1", "1", "1", "V", "V", "s", "S")
KIND_CODES = {"SET": 0, "RESET": 1, "SET?": 2, "RESET?": 3}  # "?": delivery uncertain
#: the group holding the write-ahead log (:mod:`.wal`) while a run is not complete
WAL_GROUP = "wal"
#: where a write-ahead log that holds unreadable bytes is kept (in the wal group, never deleted)
DAMAGED = "records.damaged"
#: run kinds whose stores the engine writes
RUN_KINDS = ("program", "characterize")

_CHUNK = {"steps": 4096, "values": 1 << 17, "log": 1 << 14}  # about 1 MB: rewritten only at checkpoints


def _join(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


class _Appender:
    """An append-only array of the run store (1-D, or 2-D with fixed columns) with a committed
    length, written a chunk file at a time (:mod:`labrram.zarrfile`).

    The tail chunk is kept in memory, so every append writes whole chunks and never reads one
    back; capacity grows by doubling (a multiple of the chunk length), the metadata written
    after the chunks it covers."""

    def __init__(self, folder: Path, length: int) -> None:
        self.folder = Path(folder)
        self.meta = zarrfile.read_metadata(self.folder)
        self.shape = tuple(int(n) for n in self.meta["shape"])
        self.chunk = int(self.meta["chunk_grid"]["configuration"]["chunk_shape"][0])
        self.length = int(length)
        start = self.length - self.length % self.chunk
        self.tail = self._read(start, self.length) if self.length > start else self._empty()

    def _empty(self) -> np.ndarray:
        return np.empty((0,) + self.shape[1:])

    def _read(self, start: int, stop: int) -> np.ndarray:
        import zarr

        return np.asarray(zarr.open_array(str(self.folder), mode="r")[start:stop])

    def append(self, parts: list[np.ndarray]) -> list[Path]:
        """Append the rows of ``parts`` (arrays that follow each other), one chunk at a time so
        that no more than a chunk is ever joined or encoded at once; returns the files written."""
        parts = [np.asarray(p, dtype=float) for p in parts if p.shape[0]]
        if not parts:
            return []
        c = self.chunk
        at = self.length - self.length % c
        end = self.length + sum(p.shape[0] for p in parts)
        written: list[Path] = []
        pending, have = [self.tail] if self.tail.shape[0] else [], self.tail.shape[0]
        for part in parts:
            i = 0
            while i < part.shape[0]:
                take = min(c - have, part.shape[0] - i)
                pending.append(part[i : i + take])
                have, i = have + take, i + take
                if have == c:  # a whole chunk: written, then forgotten
                    written += zarrfile.write_chunks(self.folder, self.meta, at, _join(pending))
                    at, pending, have = at + c, [], 0
        self.tail = _join(pending) if pending else self._empty()
        if have:  # the tail chunk, padded with NaN (completed by the next append)
            written += zarrfile.write_chunks(self.folder, self.meta, at, self.tail)
        padded_end = -(-end // c) * c
        if padded_end > self.shape[0]:  # after the chunks: a reader never sees rows not yet there
            self._set_shape(max(padded_end, 2 * self.shape[0]))
            written.append(self.folder / "zarr.json")
        self.length = end
        return written

    def _set_shape(self, rows: int) -> None:
        self.shape = (rows,) + self.shape[1:]
        zarrfile.set_shape(self.folder, self.meta, self.shape)

    def read(self) -> np.ndarray:
        return self._read(0, self.length) if self.length else self._empty()

    def missing_chunks(self, rows: int) -> list[str]:
        """The chunk files (keys, ``c/i`` or ``c/i/0``) of the first ``rows`` rows that are not
        on disk. A chunk of fill values alone may be left unwritten by zarr-python, so this
        proves damage only for arrays whose rows are never all fill (steps, log)."""
        tail = (0,) * (len(self.shape) - 1)
        paths = [zarrfile.chunk_path(self.folder, (i, *tail)) for i in range(-(-int(rows) // self.chunk))]
        return [p.relative_to(self.folder).as_posix() for p in paths if not p.exists()]

    def trim(self) -> None:
        """Drop the unused capacity (after a commit: the length is the committed one)."""
        if self.shape[0] != self.length:
            self._set_shape(self.length)


class _Rewriting:
    """A run store whose ``write`` replaces an array of the same name."""

    def __init__(self, store: RunStore) -> None:
        self._store = store

    def write(self, *args: Any, **kwargs: Any) -> None:
        self._store.write(*args, overwrite=True, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _plain(rec: dict[str, Any]) -> dict[str, Any]:
    """A commit record with the empty fields left out (``pending`` is always there)."""
    return {k: v for k, v in rec.items() if v is not None or k == "pending"}


class Journal:
    """The run store of one plan run (module docstring). Use :meth:`create` or :meth:`open`."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        attrs = store.attrs
        rec = attrs.get("journal")
        if not isinstance(rec, dict):
            raise StoreError(f"{store.path}: no commit record ('journal' attribute); not a run that can be resumed")
        try:
            n_steps, n_values, n_log = (int(rec[k]) for k in ("steps", "values", "log"))
        except (KeyError, TypeError, ValueError):
            raise StoreError(f"{store.path}: the commit record {str(rec)[:80]!r} is malformed") from None
        try:
            appenders = {name: _Appender(store.path / name, n) for name, n in (("steps", n_steps), ("values", n_values), ("log", n_log))}
        except zarrfile.ZarrFileError:
            missing = [name for name in ("steps", "values", "log") if not (store.path / name / "zarr.json").exists()]
            if missing:
                raise StoreError(f"{store.path}: no {missing[0]!r} array; not a run the engine can resume") from None
            raise StoreError(f"{store.path}: the run's record is not one labrram appends to (its steps, values or log array)") from None
        except StoreError:
            raise
        except Exception as exc:  # a truncated or corrupted chunk
            raise StoreError(f"{store.path}: the run's record is damaged ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
        for name, n in (("steps", n_steps), ("values", n_values), ("log", n_log)):
            if not 0 <= n <= appenders[name].shape[0]:
                raise StoreError(f"{store.path}: the commit record says {n} {name}, the store holds {appenders[name].shape[0]}")
        for name, n in (("steps", n_steps), ("log", n_log)):  # rows of real numbers: every chunk of them was written
            missing = appenders[name].missing_chunks(n)
            if missing:
                raise StoreError(f"{store.path}: the run's record is damaged: {name} chunk {missing[0]} is missing "
                                 f"({len(missing)} of {-(-n // appenders[name].chunk)} that hold its {n} committed rows)")  # fmt: skip
        self._steps, self._values, self._log = appenders["steps"], appenders["values"], appenders["log"]
        self._appenders = {"steps": self._steps, "values": self._values, "log": self._log}
        self._unsaved: dict[str, list[np.ndarray]] = {name: [] for name in self._appenders}  # in the log, not yet in zarr
        self._unsaved_rows = {name: 0 for name in self._appenders}  # their rows, and their values in all
        self._unsaved_values = 0
        self._wal: wal.WriteAheadLog | None = None
        self._checkpointed_at = time.monotonic()
        rec = self._recover(rec)
        try:
            # committed results, for replay
            self._step_table = self._steps.read() if self._steps.length else np.empty((0, len(STEP_FIELDS)))
            self._value_table = self._values.read() if self._values.length else np.empty(0)
        except Exception as exc:  # a truncated or corrupted chunk
            raise StoreError(f"{store.path}: the run's record is damaged ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
        self.pending = rec.get("pending")
        if self.pending is not None:
            try:
                ok = int(self.pending["step"]) == self._steps.length and int(self.pending["op"]) in (1, 2, 9)  # pulse batches, SMU scripts
            except (KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                raise StoreError(f"{store.path}: the commit record has a malformed pending batch {str(self.pending)[:80]!r}")
        self.accounting = {k: float(rec.get(k, 0.0)) for k in ("physical_limit", "bench_time", "wall_time", "faults_recovered")}
        self._buf: dict[str, list[np.ndarray]] = {"values": [], "log": [], "steps": []}
        self._flushed_at = time.monotonic()
        self._commit_record = rec

    def _recover(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Move what the write-ahead log holds beyond the zarr arrays into them (a run killed
        between checkpoints) and cut a torn tail off; returns the latest commit record."""
        log_file = self.path / wal.FILE_NAME
        records, end = wal.read(log_file, (len(STEP_FIELDS), len(LOG_FIELDS)))
        if log_file.exists() and log_file.stat().st_size > end + 16:
            with open(log_file, "rb") as fh:
                fh.seek(end)
                torn = fh.read(len(wal.MAGIC)) == wal.MAGIC  # a record cut short by a kill
            if not torn:  # bytes that are no record: kept aside (the wal group stays), never deleted
                log_file.replace(log_file.with_name(DAMAGED))
        if not records:
            log_file.unlink(missing_ok=True)  # empty, or only a torn record
            self._commit_record = rec
            return rec
        for r in records:
            for name, start, rows in zip(self._appenders, r.starts, (r.steps, r.values, r.log)):
                have = self._total(name)
                skip = have - start
                if skip < 0:
                    raise StoreError(f"{self.path}: the write-ahead log skips {name} rows {have}..{start}; the run's record is damaged")
                if skip < rows.shape[0]:
                    self._keep_unsaved(name, [rows[skip:]])
            rec = r.commit
        self._commit_record = rec
        self._checkpoint()
        return rec

    # --- lifecycle ---------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        kind: str,
        plan: str,
        params: dict[str, Any],
        shape: tuple[int, int],
        inputs: dict[str, tuple[np.ndarray, tuple[str, ...], str]] | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> "Journal":
        """A new run store for plan ``plan`` (registered name) with its JSON ``params`` and its
        array ``inputs`` (name -> (array, dimension names, units)); refuses an existing path."""
        if kind not in RUN_KINDS:
            raise ValueError(f"run kind must be one of {RUN_KINDS}, got {kind!r}")
        problems = check_run_attrs(path, {"kind": kind, **(attrs or {})})
        if problems:  # what the store would be refused for on resume: a bug of the caller
            raise ValueError("; ".join(problems))
        store = RunStore.create(path, kind, {"plan": plan, "plan_params": params, "array_shape": list(shape), "status": "running", **(attrs or {})})
        for name, fields, units in (("steps", STEP_FIELDS, None), ("log", LOG_FIELDS, LOG_UNITS)):
            chunk = _CHUNK[name]
            zarrfile.write_array(store.path / name, np.empty((0, len(fields))), chunks=(chunk, len(fields)), shape=(chunk, len(fields)), fill_value=np.nan,
                                 dimension_names=[{"steps": "run_step", "log": "pulse"}[name], "step_field" if name == "steps" else "field"],
                                 attributes={"units": "mixed", **({"field_units": list(units)} if units else {})}, compressor="zstd")  # fmt: skip
        zarrfile.write_array(store.path / "values", np.empty(0), chunks=(_CHUNK["values"],), shape=(_CHUNK["values"],), fill_value=np.nan,
                             dimension_names=["value"], attributes={"units": "mixed", "long_name": "results of every step, concatenated"})  # fmt: skip
        for coord, names in (("step_field", STEP_FIELDS), ("field", LOG_FIELDS)):
            zarrfile.write_array(store.path / coord, np.array(names), dimension_names=[coord])
        for name, (data, dims, units) in (inputs or {}).items():
            store.write(name, data, dims, units)
        # last: a store killed before this is not a run to resume
        store.update_attrs(journal={"steps": 0, "values": 0, "log": 0, "pending": None, "physical_limit": 0.0, "bench_time": 0.0, "wall_time": 0.0})
        return cls(store)

    @classmethod
    def open(cls, path: str | Path) -> "Journal":
        """An interrupted run, to resume (refuses a complete one, or a store that is not a run)."""
        store = RunStore.open(path, mode="r+")
        attrs = store.attrs
        if "progress_v2" in attrs and attrs.get("status") != "complete":
            raise StoreError(f"{path}: written by labrram 0.1 (run format 2), whose runs cannot be resumed; its data stays readable (labrram report, xarray)")
        if attrs.get("status") == "complete":
            raise StoreError(f"{path} is already complete; nothing to resume")
        if attrs.get("kind") not in RUN_KINDS or "plan" not in attrs:
            raise StoreError(f"{path} is a {attrs.get('kind')!r} store, not a run of a plan; nothing to resume")
        problems = check_run_attrs(path, attrs)
        if problems:  # the first one, on one line; a store edited by hand drives nothing
            raise StoreError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        return cls(store)

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def attrs(self) -> dict[str, Any]:
        return self.store.attrs

    @property
    def replayable(self) -> int:
        """Steps stored before this session: answered from the store, not the chip."""
        return self._step_table.shape[0]

    # --- replay -----------------------------------------------------------------------------
    def replay(self, k: int, msg: Message) -> Any:
        """The stored result of step ``k``, after checking the plan asked for the same step."""
        row = self._step_table[k]
        self.check_same(k, msg, int(row[0]), int(row[1]), int(row[2]))
        start, n = int(row[3]), int(row[4])
        return msg.decode(self._value_table[start : start + n])

    def check_same(self, k: int, msg: Message, op: int, n: int, crc: int) -> None:
        if (op, n, crc) != (msg.op, msg.n, msg.crc()):
            raise StoreError(
                f"{self.path}: step {k} of the stored run was {OPS.get(op, op)} on {n} device(s); the plan now asks for "
                f"{OPS.get(msg.op, msg.op)} on {msg.n}: the plan, its settings or its calibration changed since the run "
                "started, so it cannot resume"
            )

    def go_live(self) -> None:
        """Replay is over: what comes next is appended."""
        self._step_table = np.empty((0, len(STEP_FIELDS)))
        self._value_table = np.empty(0)

    # --- recording ------------------------------------------------------------------------
    def intend(self, k: int, msg: Message, counter: int | None) -> None:
        """The intent of pulse batch ``k``, written before it is sent (with the board's pulse
        counter before it, when known), together with every step buffered before it."""
        with deferred_signals():
            self.pending = {"step": k, "op": msg.op, "n": msg.n, "crc": msg.crc(), "counter": counter}
            self._flush(pending=self.pending)

    def commit(self, k: int, msg: Message, result: Any, log_rows: np.ndarray | None, clock: float, accounting: dict[str, float]) -> None:
        """Step ``k`` and its result (and its pulses, to the log).

        Buffered, and written with the next pulse batch's intent (before that batch is sent),
        when the run stops or ends, or after ``flush_interval`` seconds: a run killed before then
        redoes its idempotent steps on resume and settles its last pulse batch by the board's
        pulse counter and a read-back (its intent is on disk), so nothing is lost."""
        values = msg.encode(result)
        counter, crc = np.nan, None
        if self.pending is not None and int(self.pending["step"]) == k:  # its intent: checked to be this step
            crc = int(self.pending["crc"])
            if self.pending.get("counter") is not None:
                counter = float(self.pending["counter"])
        start = self._total("values") + self._buffered
        self._buf["steps"].append(np.array([[msg.op, msg.n, msg.crc() if crc is None else crc, start, values.size, counter, clock]], dtype=float))
        self._buf["values"].append(values)
        if log_rows is not None and log_rows.shape[0]:
            self._buf["log"].append(log_rows)
        self._buffered += values.size
        self.pending = None
        self.accounting = dict(accounting)
        if time.monotonic() - self._flushed_at > self.flush_interval:
            with deferred_signals():
                self._flush(pending=None)

    #: seconds between writes of buffered steps (see :meth:`commit`)
    flush_interval = 2.0
    #: Whether an intent is flushed to the disk (``fdatasync``) before its batch is sent. ``None``
    #: (the default): unless the chip is emulated in this process and kept in its memory only —
    #: an instrument, an emulator in another process, or a simulated chip whose state is written
    #: to files keeps its pulses through a crash of this machine, and its run must then know
    #: them. A chip in this process's memory (:attr:`chip_in_process`, set by the engine) dies
    #: with the machine as the page cache does, so its intents are written but not flushed:
    #: they survive the process being killed, the guarantee that matters for it. ``True`` or
    #: ``False`` forces either.
    flush_intents: bool | None = None
    #: the chip of this run is emulated in this process (see :attr:`flush_intents`)
    chip_in_process = False
    _buffered = 0
    _flushed_at = 0.0

    #: seconds between checkpoints (the log's records moved into the zarr arrays, where other
    #: processes see them), and the most values held for one before it comes sooner
    checkpoint_interval = 5.0
    checkpoint_values = 1 << 20

    def _total(self, name: str) -> int:
        """Rows of ``name`` committed: in zarr, or in the write-ahead log."""
        return self._appenders[name].length + self._unsaved_rows[name]

    def _flush(self, pending: dict[str, Any] | None, **extra: Any) -> None:
        """Write the buffered steps and the commit record as one record of the write-ahead log
        (the commit point; flushed to the disk when it states an intent)."""
        starts = tuple(self._total(name) for name in self._appenders)
        rows = {}
        for name in self._appenders:
            rows[name] = [a for a in self._buf[name] if a.shape[0]]  # written as they are, never joined
            self._buf[name] = []
            self._keep_unsaved(name, rows[name])
        self._buffered = 0
        self._flushed_at = time.monotonic()
        rec = {"steps": self._total("steps"), "values": self._total("values"), "log": self._total("log"), **self.accounting, "pending": pending, **extra}
        self._commit_record = rec
        flush = self.flush_intents if self.flush_intents is not None else not self.chip_in_process
        self._open_wal().append(wal.encode(starts, rows["steps"], rows["values"], rows["log"], _plain(rec)), durable=pending is not None and flush)
        unsaved = self._unsaved_values
        if time.monotonic() - self._checkpointed_at > self.checkpoint_interval or unsaved > self.checkpoint_values:
            self._checkpoint()

    def _keep_unsaved(self, name: str, parts: list[np.ndarray]) -> None:
        """Hold ``parts`` (rows of ``name`` in the log) until the next checkpoint, counted."""
        self._unsaved[name] += parts
        self._unsaved_rows[name] += sum(a.shape[0] for a in parts)
        self._unsaved_values += sum(a.size for a in parts)

    def _open_wal(self) -> wal.WriteAheadLog:
        if self._wal is None:
            if not (self.path / WAL_GROUP / "zarr.json").exists():
                zarrfile.write_group(self.path / WAL_GROUP, {"description": "write-ahead log of the running run (records); removed when it ends"})
            self._wal = wal.WriteAheadLog(self.path)
        return self._wal

    def _checkpoint(self) -> None:
        """Move the log's records into the zarr arrays, write the commit record there, flush
        what was written to the disk, then empty the log (a run killed in between finds its
        records already moved and skips them)."""
        touched: list[Path] = [self.path / "zarr.json"]
        for name, app in self._appenders.items():
            if self._unsaved[name]:
                touched += app.append(self._unsaved[name])
                self._unsaved[name] = []
                self._unsaved_rows[name] = 0
        self._unsaved_values = 0
        self.store.update_attrs(journal=_plain(self._commit_record))
        for p in touched:
            wal.fsync_path(p)
        for folder in {p.parent for p in touched}:
            wal.fsync_path(folder)
        self._open_wal().cut(0)
        self._checkpointed_at = time.monotonic()

    def stopped(self, exc: BaseException, where: int) -> None:
        """Why and where the run stopped (an error, Ctrl-C, SIGTERM); the unused capacity is
        trimmed. ``resume`` continues from here."""
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        with deferred_signals():
            stop = {"reason": reason, "step": int(where), "pending": None if not self.pending else {"step": self.pending["step"], "op": OPS[int(self.pending["op"])]}}
            self._flush(pending=self.pending, stopped=stop)
            self._checkpoint()
            for a in (self._steps, self._values, self._log):
                with contextlib.suppress(Exception):
                    a.trim()
            self.store.update_attrs(status="interrupted", reason=reason)

    def finish(self, result: Any, summary: dict[str, Any] | None = None) -> None:
        """Trim, store the plan's result arrays (``result.save(store)``), mark complete and
        consolidate the metadata."""
        with deferred_signals():
            self._flush(pending=None)
            self._checkpoint()
            for a in (self._steps, self._values, self._log):
                a.trim()
            if self._wal is not None:
                self._wal.close(remove=True)
            if (self.path / WAL_GROUP).exists() and not (self.path / WAL_GROUP / DAMAGED).exists():
                shutil.rmtree(self.path / WAL_GROUP)
            if hasattr(result, "save"):
                result.save(_Rewriting(self.store))  # a run killed while finishing finishes again
            label_dimensions(self.path)
            # complete and consolidated in one write: a run cut short before it finishes again on resume
            self.store.consolidate(status="complete", reason=None, summary=summary, **self.accounting)


def latest_record(path: str | Path) -> dict[str, Any]:
    """The commit record of the run at ``path`` as it stands now, for a process watching it:
    the last whole record of its write-ahead log, else the group's ``journal`` attribute
    (``{}`` when there is none yet)."""
    import json

    records, _ = wal.read(Path(path) / wal.FILE_NAME, (len(STEP_FIELDS), len(LOG_FIELDS)))
    if records:
        return records[-1].commit
    try:
        rec = json.loads((Path(path) / "zarr.json").read_text())["attributes"].get("journal")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return rec if isinstance(rec, dict) else {}


def label_dimensions(folder: str | Path) -> None:
    """Give every dimension of the arrays of the group at ``folder`` an index coordinate (0, 1,
    ...) unless it has one, so that xarray shows every dimension labelled."""
    import json

    folder = Path(folder)
    sizes: dict[str, int] = {}
    names = set()
    for member in sorted(folder.iterdir()):
        try:
            meta = json.loads((member / "zarr.json").read_text())
        except (OSError, ValueError):
            continue  # not a member (a file of the group's own)
        names.add(member.name)
        if isinstance(meta, dict) and meta.get("node_type") == "array":
            for dim, n in zip(meta.get("dimension_names") or (), meta.get("shape", ())):
                if dim is not None:
                    sizes.setdefault(dim, int(n))
    chunk = 1 << 20  # written a chunk at a time: a long log's index never sits whole in memory
    for dim, n in sizes.items():
        if dim in names:
            continue
        meta = zarrfile.metadata((n,), np.int64, (max(min(n, chunk), 1),), 0, [dim], {"units": "1"})
        (folder / dim).mkdir(exist_ok=True)  # a folder without zarr.json: a finish cut short
        for start in range(0, n, chunk):
            zarrfile.write_chunks(folder / dim, meta, start, np.arange(start, min(n, start + chunk), dtype=np.int64))
        zarrfile.write_metadata(folder / dim, meta)  # last: until it is there, the index does not exist


def read_log(store: RunStore) -> dict[str, np.ndarray]:
    """The pulse log of a programming run store (committed rows only), one array per field
    (``step``; a format-2 store's ``batch`` column comes under the same name)."""
    attrs = store.attrs
    log = store.read("log")
    rec = attrs.get("journal")
    if isinstance(rec, dict):
        n = int(rec.get("log", log.shape[0]))
    else:  # format 2: the count was in progress.json, moved into the group by the upgrade
        prog = attrs.get("progress_v2") or store.read_sidecar("progress", {}) or {}
        n = int(prog.get("n_log", log.shape[0])) if isinstance(prog, dict) else log.shape[0]
    log = log[: max(0, min(n, log.shape[0]))]
    if isinstance(rec, dict):  # a run killed between checkpoints: the rest is in the write-ahead log
        records, _ = wal.read(store.path / wal.FILE_NAME, (len(STEP_FIELDS), len(LOG_FIELDS)))
        for r in records:
            skip = log.shape[0] - r.starts[2]
            if skip < 0:
                break  # a gap: a damaged log; what is in zarr stands
            if skip < r.log.shape[0]:
                log = np.concatenate([log, r.log[skip:]])
    return {name: log[:, k] for k, name in enumerate(LOG_FIELDS)}


def program_outcome(store: RunStore) -> dict[str, np.ndarray]:
    """Per-device ``targets``, ``achieved``, ``converged`` and ``pulses`` of a programming run,
    (rows, cols): the stored result of a finished run; for an interrupted one, the last read-back
    and the certain pulses of its log (``converged`` all False: the plan had not decided)."""
    targets = store.read("targets")
    names = set(store.group.array_keys())
    if {"achieved", "converged", "pulses"} <= names:
        return {"targets": targets, "achieved": store.read("achieved"), "converged": store.read("converged").astype(bool), "pulses": store.read("pulses")}
    if "state" in names:  # format 2
        state = store.read("state")
        return {"targets": targets, "achieved": state[0], "converged": state[1].astype(bool), "pulses": state[2]}
    log = read_log(store)
    achieved, pulses = np.full(targets.shape, np.nan), np.zeros(targets.shape, int)
    rows, cols = log["row"].astype(int), log["col"].astype(int)
    certain = log["kind"] < 2
    np.add.at(pulses, (rows[certain], cols[certain]), 1)
    ok = np.isfinite(log["g_after"])
    achieved[rows[ok], cols[ok]] = log["g_after"][ok]  # later rows overwrite earlier ones
    return {"targets": targets, "achieved": achieved, "converged": np.zeros(targets.shape, bool), "pulses": pulses}


def _upgrade_program_v2(group: Any, path: Path) -> None:
    """Format 2 -> 3 for a programming run written by labrram 0.1 (per-batch ``state`` and a
    ``progress.json`` side file): the progress record moves into the group (``progress_v2``),
    the log is trimmed to what was written and gets its ``field`` coordinate, ``state`` its
    ``layer`` coordinate. Such a run cannot be resumed (it kept no per-step results to replay);
    its data stays readable."""
    import json

    prog_path = Path(path) / "progress.json"
    try:
        prog = json.loads(prog_path.read_text())
    except (OSError, ValueError):
        prog = None
    if not isinstance(prog, dict):
        raise StoreError(f"{path}: a format-2 run without a readable progress.json cannot be upgraded")
    if "log" in group:
        log = group["log"]
        n = prog.get("n_log")
        if isinstance(n, int) and 0 <= n <= log.shape[0]:
            log.resize((n,) + log.shape[1:])
        names = log.attrs.get("fields")
        if isinstance(names, list) and "field" not in group and len(names) == log.shape[1]:
            group.create_array("field", shape=(len(names),), dtype=str, dimension_names=["field"])[:] = np.array(names, dtype=object)
    if "state" in group and "layer" not in group:
        names = group["state"].attrs.get("layers")
        if isinstance(names, list) and len(names) == group["state"].shape[0]:
            group.create_array("layer", shape=(len(names),), dtype=str, dimension_names=["layer"])[:] = np.array(names, dtype=object)
    attrs = {"progress_v2": prog}
    if group.attrs.get("status") != "complete":
        attrs.update(status="interrupted", reason="written by labrram 0.1 (run format 2); such runs cannot be resumed")
    group.update_attributes(attrs)
    prog_path.unlink()


UPGRADES[(2, "program")] = _upgrade_program_v2
