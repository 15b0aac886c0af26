"""Following a store as it grows, from another process: what ``labrram watch`` shows.

A :class:`RunFollower` reads a run store (docs/run-store.md) while the run that writes it goes
on, and turns it into a *snapshot*: a JSON-able dict with the array map (the last read-back of
every device against its target), the convergence curve, the pulse and error histograms, the
rates, the accounting, an estimate of what is left, the faults recovered and the stop reason.
A :class:`StudyFollower` does the same for a Monte Carlo study store (trials done and the
per-result statistics).

Reading never writes to the store and takes no lock:

* the group attributes are read from ``zarr.json`` as it stands (every metadata and chunk file
  is replaced atomically, written to a temporary name and renamed, so a reader sees the old
  file or the new one, never half of one);
* the steps and the pulse log are read *incrementally*: rows already seen are never read
  again; the rows committed to the zarr arrays (the ``journal`` attribute's counts) come from
  their chunks, the rows not checkpointed yet from the write-ahead log's whole records
  (:func:`labrram.protocols.wal.read`, which leaves a torn tail out);
* a device's read-back is the last conductance read of it: a pulse's own read (the log's
  ``g_after``) or a read step (a PCM or passive verify, a reread). A read step stores its
  values, not its devices, so the follower steps the run's plan through the stored results,
  as a resume replays them, and the plan says which devices each read step read;
* a checkpoint between two of those reads only delays rows to the next poll: a write-ahead log
  that no longer starts where the rows already seen end is ignored until the zarr arrays have
  caught up; a read that fails mid-change (a file replaced under it) keeps the last snapshot
  and is tried again at the next poll (``read_errors`` counts them).

When the run is complete, the stored result (``achieved``, ``converged``, ``pulses``) replaces
what the log suggested.
"""

from __future__ import annotations

import base64
import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from .protocols import wal
from .protocols.journal import LOG_FIELDS, STEP_FIELDS, read_log
from .protocols.messages import Read
from .store import FORMAT_VERSION, RunStore, StoreError

__all__ = ["RunFollower", "StudyFollower", "follower", "DEFAULT_TOLERANCE"]

#: the acceptance band of a plan whose parameters name none: ``max(tolerance * target, abs)``
DEFAULT_TOLERANCE = (0.05, 1e-6)
#: seconds of history the recent rates and the estimate of what is left are computed over
RATE_WINDOW = 20.0
_COL = {name: k for k, name in enumerate(LOG_FIELDS)}
_ERROR_BINS = np.linspace(-0.5, 0.5, 41)  # relative error, clipped into the end bins


def _b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _attrs(path: Path) -> dict[str, Any]:
    """The group attributes as ``zarr.json`` holds them now (read afresh at every poll)."""
    try:
        meta = json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{path}: no zarr.json; not a zarr group (a run store is a zarr directory)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise StoreError(f"{path}/zarr.json is unreadable ({type(exc).__name__}: {exc})") from None
    attrs = meta.get("attributes") if isinstance(meta, dict) else None
    return attrs if isinstance(attrs, dict) else {}


def _open_array(path: Path, name: str) -> Any:
    import zarr

    return zarr.open_array(store=str(path / name), mode="r")


def follower(path: str | Path) -> "RunFollower | StudyFollower":
    """The follower that fits the store at ``path``: a programming or characterization run, or
    a Monte Carlo study.

    Raises
    ------
    StoreError
        When ``path`` is no labrram store, or one of a kind nothing follows (a ``read`` store).
    """
    store = RunStore.open(path)  # read-only; a clear error when the path is not a store
    kind = store.attrs.get("kind")
    if kind == "montecarlo":
        return StudyFollower(store.path)
    if kind in ("program", "characterize"):
        return RunFollower(store.path)
    raise StoreError(f"{path} is a {kind!r} store; watch follows programming and characterization runs and Monte Carlo studies")


class _Rates:
    """Recent rates from (time, counters) samples over :data:`RATE_WINDOW` seconds."""

    def __init__(self) -> None:
        self.samples: deque[tuple[float, dict[str, float]]] = deque()

    def add(self, now: float, **counters: float) -> None:
        self.samples.append((now, counters))
        while len(self.samples) > 2 and now - self.samples[1][0] > RATE_WINDOW:
            self.samples.popleft()

    def per_second(self, name: str, over: str | None = None) -> float | None:
        """d(name)/dt over the window (``over``: another counter instead of the watcher's clock)."""
        if len(self.samples) < 2:
            return None
        (t0, a), (t1, b) = self.samples[0], self.samples[-1]
        dx = (b[over] - a[over]) if over else (t1 - t0)
        if name not in a or dx <= 0:
            return None
        return (b[name] - a[name]) / dx


class _Replay:
    """The run's plan stepped through its stored results, one step at a time as they are read
    (as a resume replays them): which devices each step addressed. It stops for good at a step
    the plan does not ask for (a store it cannot follow), and the follower goes on with the log."""

    def __init__(self, path: Path, shape: tuple[int, int]) -> None:
        from .protocols.engine import PlanStepper
        from .protocols.plan import plan_from_store

        try:
            self.stepper: Any = PlanStepper(plan_from_store(RunStore.open(path)), shape)
        except Exception:
            self.stepper = None

    def step(self, row: np.ndarray, values: np.ndarray) -> Any:
        """The message of the stored step ``row`` (a ``steps`` row; ``values`` its stored
        values), the plan then stepped with its result; None once the replay has stopped."""
        stepper = self.stepper
        if stepper is None or stepper.done:
            return None
        msg = stepper.message
        try:
            if (int(row[0]), int(row[1]), int(row[2])) != (msg.op, msg.n, msg.crc()):
                raise ValueError("another step")
            stepper.answer(msg.decode(values))
        except Exception:
            self.stepper = None
            return None
        return msg


class RunFollower:
    """A programming or characterization run store, read as it grows (module docstring).

    Parameters
    ----------
    path : str or Path
        The run store (``RUN.zarr``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        attrs = _attrs(self.path)
        shape = attrs.get("array_shape")
        if not (isinstance(shape, list) and len(shape) == 2):
            raise StoreError(f"{self.path}: no array_shape attribute; not a run of a plan")
        self.shape = (int(shape[0]), int(shape[1]))
        self.kind = str(attrs.get("kind"))
        self.targets: np.ndarray | None = None
        self.achieved = np.full(self.shape, np.nan)
        self.pulses = np.zeros(self.shape, dtype=np.int64)
        self.converged: np.ndarray | None = None  # the plan's verdict, once the run is complete
        self.n_log = 0  # log rows consumed
        self.n_steps = 0  # steps consumed
        self._replay: _Replay | None = None  # made when the first step is read
        self.counts = {"SET": 0, "RESET": 0, "uncertain": 0}
        self.curve: list[tuple[int, float]] = []  # (SET batch, % of devices within their band after it)
        self._step: int | None = None  # the step whose rows are being consumed
        self._step_sets = 0  # ... and the SETs it holds
        self.batch_sizes: list[int] = []  # devices SET in each SET batch: those still programming
        self._batches = 0
        self.rev = 0  # bumped whenever the map changes
        self.read_errors = 0
        self.final = False
        self._rates = _Rates()
        self._snapshot: dict[str, Any] | None = None
        settings = (attrs.get("plan_params") or {}).get("settings") if isinstance(attrs.get("plan_params"), dict) else None
        settings = settings if isinstance(settings, dict) else {}
        if "half_width" in settings:  # PCM write-verify: a window of fixed width around each target
            self.tolerance = (0.0, float(settings["half_width"]))
        else:
            self.tolerance = (float(settings.get("tolerance", DEFAULT_TOLERANCE[0])), float(settings.get("abs_tolerance", DEFAULT_TOLERANCE[1])))
        self.max_iterations = settings.get("max_iterations") if isinstance(settings.get("max_iterations"), int) else None

    # --- reading -------------------------------------------------------------------------------
    def _load_targets(self) -> None:
        if self.targets is None and self.kind == "program":
            try:
                t = np.asarray(_open_array(self.path, "targets")[...], dtype=float)
            except Exception:  # not written yet (the run is being created) or being replaced
                return
            if t.shape == self.shape:
                self.targets = t

    def _in_band(self) -> np.ndarray:
        t = self.targets
        if t is None:
            return np.zeros(self.shape, bool)
        band = np.maximum(self.tolerance[0] * np.abs(t), self.tolerance[1])
        with np.errstate(invalid="ignore"):
            return np.isfinite(t) & (np.abs(self.achieved - t) <= band)

    def _consume(self, rows: np.ndarray) -> None:
        """Fold log rows (in order) into the per-device state; one curve point per pulse batch."""
        if rows.shape[0] == 0:
            return
        rows = rows[np.all(np.isfinite(rows[:, :4]), axis=1)]
        steps = rows[:, _COL["step"]].astype(np.int64)
        cuts = np.flatnonzero(np.diff(steps)) + 1
        for part in np.split(rows, cuts):
            step = int(part[0, _COL["step"]])
            if self._step is not None and step != self._step:
                self._close_batch()
            self._step = step
            r, c = part[:, _COL["row"]].astype(np.int64), part[:, _COL["col"]].astype(np.int64)
            ok = (r >= 0) & (r < self.shape[0]) & (c >= 0) & (c < self.shape[1])
            part, r, c = part[ok], r[ok], c[ok]
            kind = part[:, _COL["kind"]]
            self._step_sets += int(np.sum((kind == 0) | (kind == 2)))
            certain = kind < 2
            np.add.at(self.pulses, (r[certain], c[certain]), 1)
            self.counts["SET"] += int(np.sum(kind == 0))
            self.counts["RESET"] += int(np.sum(kind == 1))
            self.counts["uncertain"] += int(np.sum(kind >= 2))
            g = part[:, _COL["g_after"]]
            read = np.isfinite(g)
            self.achieved[r[read], c[read]] = g[read]  # later rows overwrite earlier ones
        self.rev += 1

    def _fold(self, steps: np.ndarray, values: np.ndarray, v0: int, log: np.ndarray) -> None:
        """Fold the next steps (``steps`` rows; ``values`` the stored values from the run's value
        ``v0`` on, covering theirs) and the log rows of those steps, in step order: a batch's
        pulses, then what a read step read."""
        at = 0
        log_steps = log[:, _COL["step"]] if log.shape[0] else np.empty(0)
        for i, row in enumerate(steps):
            k = self.n_steps + i
            upto = at + int(np.searchsorted(log_steps[at:], k, side="right"))
            if upto > at:
                self._consume(log[at:upto])
                at = upto
            if self._replay is None:
                self._replay = _Replay(self.path, self.shape)
            start, n = int(row[3]) - v0, int(row[4])
            msg = self._replay.step(row, values[start : start + n])
            if type(msg) is Read:  # conductances (a Measure's currents are not)
                g = values[start : start + n]
                ok = np.isfinite(g) & (msg.rows < self.shape[0]) & (msg.cols < self.shape[1])
                self.achieved[msg.rows[ok], msg.cols[ok]] = g[ok]  # later reads overwrite earlier ones
                self.rev += 1
        if at < log.shape[0]:
            self._consume(log[at:])
        self.n_steps += steps.shape[0]
        self.n_log += log.shape[0]

    def _close_batch(self) -> None:
        sets, self._step_sets = self._step_sets, 0
        if not sets:
            return  # a RESET batch: the SET batch after it is what converges
        self._batches += 1
        self.batch_sizes.append(sets)
        if self.targets is not None:
            n = int(np.isfinite(self.targets).sum())
            if n:
                self.curve.append((self._batches, 100.0 * float(self._in_band().sum()) / n))

    def _read_zarr(self, n_steps: int, n_log: int) -> None:
        """Fold the steps and log rows committed to the zarr arrays past those seen."""
        if n_steps <= self.n_steps and n_log <= self.n_log:
            return
        steps = np.asarray(_open_array(self.path, "steps")[self.n_steps : n_steps], dtype=float).reshape(-1, len(STEP_FIELDS))
        v0 = int(steps[0, 3]) if steps.shape[0] else 0
        v1 = int(steps[-1, 3] + steps[-1, 4]) if steps.shape[0] else 0
        values = np.asarray(_open_array(self.path, "values")[v0:v1], dtype=float) if v1 > v0 else np.empty(0)
        log = np.asarray(_open_array(self.path, "log")[self.n_log : n_log], dtype=float).reshape(-1, len(LOG_FIELDS)) if n_log > self.n_log else np.empty((0, len(LOG_FIELDS)))
        self._fold(steps, values, v0, log)

    def _read_new_rows(self, rec_zarr: dict[str, Any]) -> dict[str, Any]:
        """Consume the steps and log rows past those seen; returns the latest commit record."""
        self._read_zarr(int(rec_zarr.get("steps", 0)), int(rec_zarr.get("log", 0)))
        records, _ = wal.read(self.path / wal.FILE_NAME, (len(STEP_FIELDS), len(LOG_FIELDS)))
        commit = rec_zarr
        for r in records:
            skip_steps, skip_log = self.n_steps - r.starts[0], self.n_log - r.starts[2]
            if skip_steps < 0 or skip_log < 0:
                break  # moved into zarr since the attributes were read: the next poll finds it there
            if skip_steps < r.steps.shape[0] or skip_log < r.log.shape[0]:
                self._fold(r.steps[skip_steps:], r.values, r.starts[1], r.log[skip_log:])
            commit = r.commit
        return commit

    def _read_final(self) -> None:
        """A complete (or pre-journal format) run: the stored result, read once."""
        from .protocols.journal import program_outcome

        store = RunStore.open(self.path)
        rec = store.attrs.get("journal")
        if isinstance(rec, dict):  # the steps too: read steps give read-backs
            self._read_zarr(int(rec.get("steps", 0)), int(rec.get("log", 0)))
        else:  # a store of an older format: its pulse log
            log = read_log(store)
            rows = np.stack([log[name] for name in LOG_FIELDS], axis=1) if log["step"].size else np.empty((0, len(LOG_FIELDS)))
            if rows.shape[0] > self.n_log:
                self._consume(rows[self.n_log :])
                self.n_log = rows.shape[0]
        if self._step is not None:
            self._close_batch()
            self._step = None
        if self.kind == "program":
            outcome = program_outcome(store)
            self.targets = np.asarray(outcome["targets"], dtype=float)
            self.achieved = np.asarray(outcome["achieved"], dtype=float)
            self.pulses = np.asarray(outcome["pulses"]).astype(np.int64)
            self.converged = np.asarray(outcome["converged"], dtype=bool)
        self.final = True
        self.rev += 1

    def poll(self) -> dict[str, Any]:
        """Read what is new and return the snapshot (the last good one when this read failed)."""
        try:
            attrs = _attrs(self.path)
            if not self.final:
                self._load_targets()
                rec = attrs.get("journal")
                if attrs.get("status") == "complete" or not isinstance(rec, dict):
                    self._read_final()
                    commit = rec if isinstance(rec, dict) else {}
                else:
                    commit = self._read_new_rows(rec)
            else:
                commit = attrs.get("journal") if isinstance(attrs.get("journal"), dict) else {}
            self._snapshot = self._build(attrs, commit)
        except Exception as exc:  # a file replaced under the read: the next poll tries again
            self.read_errors += 1
            if self._snapshot is None:
                if isinstance(exc, StoreError):
                    raise
                raise StoreError(f"{self.path}: cannot read the run ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
            self._snapshot = {**self._snapshot, "read_errors": self.read_errors, "last_error": f"{type(exc).__name__}: {exc}"[:200]}
        return self._snapshot

    # --- the snapshot --------------------------------------------------------------------------
    def _build(self, attrs: dict[str, Any], commit: dict[str, Any]) -> dict[str, Any]:
        t = self.targets
        mask = np.isfinite(t) if t is not None else self.pulses > 0  # a characterization: the devices it pulsed
        devices = int(mask.sum())
        within = self.converged if self.converged is not None else self._in_band()
        n_within = int((within & mask).sum())
        pulses_total = self.counts["SET"] + self.counts["RESET"] + self.counts["uncertain"]
        wall, bench = _number(commit.get("wall_time")), _number(commit.get("bench_time"))
        now = time.monotonic()
        status = str(attrs.get("status", "running"))
        self._rates.add(now, pulses=float(pulses_total), batches=float(self._batches), wall=wall or 0.0, bench=bench or 0.0)
        left = devices - n_within if self.kind == "program" else None
        running = status == "running"
        batches_left = self._batches_left() if running else None
        per_second, per_bench = self._rates.per_second("batches"), self._rates.per_second("batches", over="bench")
        stopped = commit.get("stopped") if isinstance(commit.get("stopped"), dict) else None
        snap: dict[str, Any] = {
            "kind": self.kind,
            "path": str(self.path),
            "plan": attrs.get("plan", attrs.get("protocol")),
            "device_kind": attrs.get("device_kind"),
            "chip": attrs.get("chip"),
            "created": attrs.get("created"),
            "status": status,
            "reason": attrs.get("reason") or (stopped or {}).get("reason"),
            "final": self.final,
            "shape": list(self.shape),
            "devices": devices,
            "steps": int(commit.get("steps", 0) or 0),
            "pulses": pulses_total,
            "sets": self.counts["SET"],
            "resets": self.counts["RESET"],
            "uncertain_pulses": self.counts["uncertain"],
            "devices_pulsed": int((self.pulses > 0).sum()),
            "within_band": n_within,
            "converged_label": "converged (the plan's verdict)" if self.converged is not None else "within tolerance (last read-back)",
            "tolerance": list(self.tolerance),
            "left": left,
            "wall_time": wall,
            "bench_time": bench,
            "physical_limit": _number(commit.get("physical_limit")),
            "faults_recovered": None if commit.get("faults_recovered") is None else int(float(commit["faults_recovered"])),
            "pending": commit.get("pending"),
            "pulses_per_second": _number(self._rates.per_second("pulses")) if running else None,
            "pulses_per_second_run": pulses_total / wall if wall else None,
            "pulses_per_bench_second": pulses_total / bench if bench else None,
            "programming": self.batch_sizes[-1] if running and self.batch_sizes else None,
            "set_batches": self._batches,
            "batches_left": batches_left,
            "eta_wall": _number(batches_left / per_second) if batches_left is not None and per_second else None,
            "eta_bench": _number(batches_left / per_bench) if batches_left is not None and per_bench else None,
            "convergence": [[b, round(p, 3)] for b, p in self.curve],
            "pulse_histogram": np.bincount(self.pulses[mask]).tolist() if devices else [],
            "error_histogram": None,
            "summary": attrs.get("summary"),
            "rev": self.rev,
            "read_errors": self.read_errors,
            "polled_at": time.time(),
        }
        if t is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = ((self.achieved - t) / t)[mask & np.isfinite(self.achieved)]
            counts, _ = np.histogram(np.clip(rel, _ERROR_BINS[0], _ERROR_BINS[-1]), bins=_ERROR_BINS)
            snap["error_histogram"] = {"edges": _ERROR_BINS.round(4).tolist(), "counts": counts.tolist(),
                                       "rms_relative": _number(np.sqrt(np.mean(rel**2))) if rel.size else None}  # fmt: skip
        return snap

    def _batches_left(self) -> int | None:
        """SET batches until the plan is done, estimated: the devices SET in each batch (those
        still programming) have shrunk geometrically over the last three batches; how many more
        until fewer than one is left (at most the plan's ``max_iterations``). None while the
        batches do not shrink yet (the start of a run)."""
        b = self.batch_sizes
        if len(b) < 4 or b[-4] <= 0 or not 0 < b[-1] < b[-4]:
            return None
        q = (b[-1] / b[-4]) ** (1 / 3)
        n = int(np.ceil(np.log(0.5 / b[-1]) / np.log(q)))
        if self.max_iterations is not None:
            n = min(n, max(self.max_iterations - self._batches, 0))
        return max(n, 0)

    def maps(self) -> dict[str, Any]:
        """The per-device arrays, row-major, base64 little-endian: ``achieved`` and ``targets``
        (float32, S; NaN: not read yet / left alone), ``pulses`` (uint16), ``converged`` (uint8,
        once the run is complete)."""
        out = {"rev": self.rev, "rows": self.shape[0], "cols": self.shape[1], "achieved": _b64(self.achieved, "<f4"),
               "pulses": _b64(np.minimum(self.pulses, 65535), "<u2")}  # fmt: skip
        if self.targets is not None:
            out["targets"] = _b64(self.targets, "<f4")
        if self.converged is not None:
            out["converged"] = _b64(self.converged, "u1")
        return out


class StudyFollower:
    """A Monte Carlo study store (:mod:`labrram.montecarlo`), read as it grows: trials done out
    of the total, the rate, and per result its shape and statistics over the trials done."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        attrs = _attrs(self.path)
        study = attrs.get("study")
        if not isinstance(study, dict) or "n_trials" not in study:
            raise StoreError(f"{self.path}: a Monte Carlo store without its study attribute")
        self.study = study
        self.kind = "montecarlo"
        self.rev = 0
        self.read_errors = 0
        self._rates = _Rates()
        self._snapshot: dict[str, Any] | None = None

    def poll(self) -> dict[str, Any]:
        """Read the study as it stands and return the snapshot (the last good one on a failed read)."""
        try:
            self._snapshot = self._build()
        except Exception as exc:
            self.read_errors += 1
            if self._snapshot is None:
                raise StoreError(f"{self.path}: cannot read the study ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
            self._snapshot = {**self._snapshot, "read_errors": self.read_errors, "last_error": f"{type(exc).__name__}: {exc}"[:200]}
        return self._snapshot

    def _build(self) -> dict[str, Any]:
        import zarr

        total = int(self.study["n_trials"])
        group = zarr.open_group(store=str(self.path), mode="r", use_consolidated=False)
        keys = sorted(group.array_keys())
        done = np.asarray(group["done"][...], dtype=bool) if "done" in keys else np.zeros(total, bool)
        n_done = int(done.sum())
        results = {}
        for key in keys:
            if key == "done":
                continue
            arr = group[key]
            values = np.asarray(arr[...])[done] if n_done else np.empty((0,) + tuple(arr.shape[1:]))
            flat = values.astype(float).ravel()
            flat = flat[np.isfinite(flat)]
            results[key] = {"shape": list(arr.shape[1:]), **{name: (_number(fn(flat)) if flat.size else None)
                                                            for name, fn in (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))}}  # fmt: skip
        self._rates.add(time.monotonic(), done=float(n_done))
        rate = self._rates.per_second("done")
        if n_done != getattr(self, "_last_done", None):
            self.rev += 1
            self._last_done = n_done
        return {
            "kind": "montecarlo",
            "path": str(self.path),
            "trial": self.study.get("fn"),
            "params": self.study.get("params"),
            "seed": self.study.get("seed"),
            "trials": total,
            "done": n_done,
            "status": "complete" if n_done == total else "running or stopped",
            "trials_per_second": _number(rate) if n_done < total else None,
            "eta_wall": _number((total - n_done) / rate) if rate and rate > 0 and n_done < total else None,
            "results": results,
            "done_map": _b64(np.packbits(done), "u1"),
            "rev": self.rev,
            "read_errors": self.read_errors,
            "polled_at": time.time(),
            "format": FORMAT_VERSION,
        }

    def maps(self) -> dict[str, Any]:
        return {"rev": self.rev}
