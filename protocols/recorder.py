"""Recording a programming run as it goes, and resuming it after an interruption.

A :class:`ProgramRecorder` keeps, in a zarr run store:

* ``targets`` (row, col) and ``state`` (layer, row, col), the per-device state of the protocol
  — ``achieved``, ``converged``, ``pulses``, the protocol's own next parameter (``param``,
  e.g. the next gate voltage; NaN once the protocol gave up on a device) and ``stall``
  (iterations without progress) — rewritten after every batch;
* ``log`` (pulse, field), an append-only record of every pulse: batch, row, col, kind (0 SET,
  1 RESET; 2 and 3 for a SET or RESET whose delivery is uncertain, see below), amplitude, gate,
  width and the conductance read back;
* an intent record (``pending`` in ``progress.json``) written *before* a batch is sent and
  cleared when its results are stored; it holds the batch's kind, its devices and the board's
  pulse counter before the batch (``counter``), so that a later look at the counter tells
  whether the batch reached the chip;
* when a run stops on an error or a signal, ``stopped`` in ``progress.json`` (and ``status`` /
  ``reason`` in the group attributes) says why, at which batch, and with which batch pending.

Every write of the intent, of a batch's results and of the stop record runs with SIGINT and
SIGTERM deferred (:func:`labrram.signals.deferred_signals`): a signal never tears a commit.

An interrupted run (exception, Ctrl-C, lost connection, killed process) resumes from the last
stored state: the cells of a batch that was pending are re-read before anything else (their
state is uncertain: the pulse may or may not have reached them), the batch is logged with the
"uncertain" kinds and the re-read conductances (not counted in ``pulses``), and the protocol
continues — devices already finished are never pulsed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labrram.signals import deferred_signals
from labrram.store import UPGRADES, RunStore, StoreError

KIND_CODES = {"SET": 0, "RESET": 1, "SET?": 2, "RESET?": 3}  # "?": delivery uncertain (recovered)
#: columns of the ``log`` array (one row per pulse) and their units
LOG_FIELDS = ("batch", "row", "col", "kind", "amplitude", "gate", "width", "g_after")
LOG_UNITS = ("1", "1", "1", "1", "V", "V", "s", "S")
#: per-device layers of the ``state`` array (layer, row, col)
DEVICE_LAYERS = ("achieved", "converged", "pulses", "param", "stall")
#: then the commit record of the batch that wrote it (constant layers; see :meth:`ProgramRecorder.save_state`)
COMMIT_LAYERS = ("commit_batches", "commit_log", "commit_iteration", "commit_phase")
STATE_LAYERS = DEVICE_LAYERS + COMMIT_LAYERS
STATE_UNITS = ["S", "1", "1", "protocol", "1", "1", "1", "1", "1"]
#: codes of ``commit_phase``
PHASES = ("start", "verify", "program", "ladder")
LOG_CHUNK = 8192


def _pack(idx: np.ndarray, n: int) -> str:
    """Device indices as a hex bitmask (compact enough for the group attributes)."""
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    return np.packbits(mask).tobytes().hex()


def _unpack(text: str, n: int) -> np.ndarray:
    return np.nonzero(np.unpackbits(np.frombuffer(bytes.fromhex(text), dtype=np.uint8))[:n])[0]


@dataclass
class DeviceState:
    """Per-device protocol state, flat over the programmed devices (row-major order)."""

    rows: np.ndarray
    cols: np.ndarray
    targets: np.ndarray
    achieved: np.ndarray
    converged: np.ndarray
    pulses: np.ndarray
    param: np.ndarray
    iteration: int = 0
    phase: str = "start"
    stall: np.ndarray | None = None  # iterations without progress (protocols that give up use it)
    #: pulses that (may have) reached each device in this run, uncertain ones included (the
    #: per-device pulse budget counts these); rebuilt from the log on resume
    spent: np.ndarray | None = None
    #: their worst-case energy, J (the per-device energy budget)
    energy: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.stall is None:
            self.stall = np.zeros(self.targets.size)
        if self.spent is None:
            self.spent = np.zeros(self.targets.size, dtype=np.int64)
        if self.energy is None:
            self.energy = np.zeros(self.targets.size)


class ProgramRecorder:
    """Stores a run's progress (see module docstring). Use :meth:`create` or :meth:`resume`."""

    def __init__(self, store: RunStore, shape: tuple[int, int]) -> None:
        self.store = store
        self.shape = shape
        self.progress = store.read_sidecar("progress")
        if self.progress is None:
            raise StoreError(f"{store.path}: no progress record; not a resumable programming run")
        if not isinstance(self.progress, dict):
            raise StoreError(f"{store.path}: progress.json is not a progress record (a JSON object)")
        self._state = np.asarray(store.read("state"), dtype=float)
        try:
            self._log = store.group["log"]
        except Exception:
            raise StoreError(f"{store.path}: no pulse log; not a resumable programming run") from None

    # --- lifecycle -----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, protocol: str, targets: np.ndarray, attrs: dict[str, Any]) -> "ProgramRecorder":
        store = RunStore.create(path, "program", {"protocol": protocol, "status": "running", **attrs})
        store.write("targets", targets, ("row", "col"), "S")
        state = np.zeros((len(STATE_LAYERS),) + targets.shape)
        state[0] = np.nan
        state[3] = np.nan
        store.write("state", state, ("layer", "row", "col"), "mixed", layers=list(STATE_LAYERS), layer_units=STATE_UNITS)
        store.write(
            "log", np.full((LOG_CHUNK, len(LOG_FIELDS)), np.nan), ("pulse", "field"), "mixed", chunks=(LOG_CHUNK, len(LOG_FIELDS)),
            fields=list(LOG_FIELDS), field_units=list(LOG_UNITS), note="rows from progress.json n_log on are unused capacity",
        )  # fmt: skip
        store.write_sidecar("progress", {"batches": 0, "iteration": 0, "phase": "start", "pending": None, "n_log": 0})
        return cls(store, targets.shape)

    @classmethod
    def resume(cls, path: str | Path, protocol: str) -> "ProgramRecorder":
        store = RunStore.open(path, mode="r+")
        attrs = store.attrs
        if attrs.get("kind") != "program":
            raise StoreError(f"{path} is not a programming run")
        if attrs.get("protocol") != protocol:
            raise StoreError(f"{path} was written by protocol {attrs.get('protocol')!r}, not {protocol!r}")
        if attrs.get("status") == "complete":
            raise StoreError(f"{path} is already complete; nothing to resume")
        rec = cls(store, store.read("targets").shape)
        rec._check_consistent()
        rec._roll_forward()
        return rec

    def _roll_forward(self) -> None:
        """A run killed after its state was written but before its progress record: the state's
        own commit record (written atomically with it) completes the commit."""
        k = len(DEVICE_LAYERS)
        batches, n_log, iteration, phase = (self._state[k + i].flat[0] for i in range(len(COMMIT_LAYERS)))
        p = self.progress
        if int(batches) == int(p["batches"]):
            return
        if int(batches) != int(p["batches"]) + 1 or not 0 <= int(n_log) <= self._log.shape[0]:
            raise StoreError(f"{self.store.path}: the state (commit {int(batches)}) and progress.json (commit {p['batches']}) disagree")
        p.update(batches=int(batches), n_log=int(n_log), iteration=int(iteration), pending=None)
        if 0 <= int(phase) < len(PHASES):
            p["phase"] = PHASES[int(phase)]
        p["rolled_forward"] = int(p.get("rolled_forward", 0)) + 1
        self.store.write_sidecar("progress", p)

    def _check_consistent(self) -> None:
        """A resumable run has its arrays, a progress record that fits them, and a sane intent."""
        p, path = self.progress, self.store.path
        shape = self._state.shape
        if len(shape) != 3 or shape[0] != len(STATE_LAYERS) or shape[1:] != tuple(self.shape):
            raise StoreError(f"{path}: state array has shape {shape}, expected {(len(STATE_LAYERS),) + tuple(self.shape)}")
        try:
            n_log, batches = int(p["n_log"]), int(p["batches"])
        except (KeyError, TypeError, ValueError):
            raise StoreError(f"{path}: progress.json lacks n_log/batches; not a resumable run") from None
        if not 0 <= n_log <= self._log.shape[0] or batches < 0:
            raise StoreError(f"{path}: progress.json says {n_log} log rows, the log holds {self._log.shape[0]}")
        pending = p.get("pending")
        targets = self.store.read("targets")
        programmed = ~np.isnan(targets)
        if batches == 0 and pending is None and np.all(np.isnan(self._state[3][programmed])):
            raise StoreError(f"{path}: the run stopped before it started programming (nothing was sent); start it again without --resume")
        if pending is not None:
            n = int(np.count_nonzero(programmed))
            try:
                ok = pending["kind"] in ("SET", "RESET") and len(bytes.fromhex(pending["devices"])) == -(-n // 8)
            except (KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                raise StoreError(f"{path}: progress.json has a malformed pending batch {str(pending)[:80]!r}")

    @property
    def targets(self) -> np.ndarray:
        return self.store.read("targets")

    @property
    def pending(self) -> dict[str, Any] | None:
        return self.progress.get("pending")

    def load_state(self) -> DeviceState:
        targets = self.store.read("targets")
        rows, cols = np.nonzero(~np.isnan(targets))
        p = self.progress
        achieved, converged, pulses, param, stall = (layer[rows, cols] for layer in self._state[: len(DEVICE_LAYERS)])
        return DeviceState(
            rows, cols, targets[rows, cols], achieved, converged.astype(bool), pulses.astype(np.int32), param,
            int(p.get("iteration", 0)), str(p.get("phase", "start")), stall,
        )  # fmt: skip

    def pending_devices(self, n: int) -> np.ndarray | None:
        """Flat indices of the devices of a batch that was sent but never stored, if any."""
        pending = self.pending
        return None if not pending else _unpack(pending["devices"], n)

    # --- recording -------------------------------------------------------------------------
    def intend(self, kind: str, idx: np.ndarray, n: int, counter: int | None = None) -> None:
        """Write the intent of a batch on devices ``idx`` (of ``n``) before it is sent, with the
        board's pulse counter before it (``counter``, when known)."""
        with deferred_signals():
            self.progress["pending"] = {"batch": self.progress["batches"], "kind": kind, "devices": _pack(idx, n), "counter": counter}
            self.progress.pop("stopped", None)
            self.store.write_sidecar("progress", self.progress)

    def commit(
        self, state: DeviceState, kind: str, idx: np.ndarray, amplitude, gate, width, g_after: np.ndarray, status: np.ndarray | None = None
    ) -> None:
        """Append the batch's pulses to the log, store the state, clear the intent.

        ``status`` (per device of ``idx``): 1 delivered (logged as ``kind``), -1 unknown (logged
        as ``kind + "?"``), 0 provably not delivered (not logged). Default: all delivered.
        """
        n = idx.size
        amplitude, gate, width = (np.broadcast_to(np.asarray(x, dtype=float), (n,)) for x in (amplitude, gate, width))
        g_after = np.broadcast_to(np.asarray(g_after, dtype=float), (n,))
        codes = np.full(n, KIND_CODES[kind], dtype=float)
        if status is not None:
            status = np.asarray(status)
            codes[status < 0] = KIND_CODES[kind.rstrip("?") + "?"]
            keep = status != 0
            idx, amplitude, gate, width, g_after, codes = idx[keep], amplitude[keep], gate[keep], width[keep], g_after[keep], codes[keep]
            n = idx.size
        with deferred_signals():
            if n:
                rec = np.empty((n, len(LOG_FIELDS)))
                rec[:, 0] = self.progress["batches"]
                rec[:, 1] = state.rows[idx]
                rec[:, 2] = state.cols[idx]
                rec[:, 3] = codes
                rec[:, 4] = amplitude
                rec[:, 5] = gate
                rec[:, 6] = width
                rec[:, 7] = g_after
                start = int(self.progress["n_log"])
                if start + n > self._log.shape[0]:
                    extra = -(-(start + n - self._log.shape[0]) // LOG_CHUNK) * LOG_CHUNK
                    self._log.resize((self._log.shape[0] + max(extra, self._log.shape[0]), len(LOG_FIELDS)))
                self._log[start : start + n] = rec
                self.progress["n_log"] = start + n
            self.progress["batches"] += 1
            self.save_state(state)

    def save_state(self, state: DeviceState, **extra: Any) -> None:
        """Store the per-device state and the progress record (clears the intent).

        The state array is one chunk, written atomically, and carries the commit record (batches,
        log length, iteration, phase) it belongs to; ``progress.json`` is replaced afterwards —
        the commit point. A run killed in between is completed on resume from the state's own
        record (:meth:`resume`)."""
        with deferred_signals():
            for k, name in enumerate(DEVICE_LAYERS):
                self._state[k, state.rows, state.cols] = getattr(state, name)
            self.progress.update(pending=None, iteration=state.iteration, phase=state.phase, **extra)
            self.progress.pop("stopped", None)
            p = self.progress
            stamp = (p["batches"], p["n_log"], p["iteration"], PHASES.index(p["phase"]) if p["phase"] in PHASES else -1)
            for k, value in enumerate(stamp):
                self._state[len(DEVICE_LAYERS) + k] = value
            self.store.group["state"][...] = self._state
            self.store.write_sidecar("progress", self.progress)

    def finish(self, **attrs: Any) -> None:
        self.store.update_attrs(status="complete", **attrs)

    def interrupted(self, reason: str) -> None:
        self.store.update_attrs(status="interrupted", reason=reason)

    def stopped(self, exc: BaseException) -> None:
        """Record why and where the run stopped (an error, Ctrl-C, SIGTERM): the group's
        ``status``/``reason`` and a ``stopped`` entry in ``progress.json`` next to the pending
        batch, if any. ``--resume`` continues from here."""
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        with deferred_signals():
            pending = self.progress.get("pending")
            self.progress["stopped"] = {
                "reason": reason,
                "batch": int(self.progress.get("batches", 0)),
                "pending": None if not pending else {"batch": pending.get("batch"), "kind": pending.get("kind")},
            }
            self.store.write_sidecar("progress", self.progress)
            self.store.update_attrs(status="interrupted", reason=reason)

    def spent(self, limits) -> tuple[np.ndarray, np.ndarray]:
        """Pulses and worst-case pulse energy (J) each device has received in this run so far,
        from the log (uncertain pulses counted), flat over the programmed devices."""
        targets = self.store.read("targets")
        rows, cols = np.nonzero(~np.isnan(targets))
        pulses, energy = np.zeros(targets.shape), np.zeros(targets.shape)
        log = self.log()
        if log["row"].size:
            cells = (log["row"].astype(np.intp), log["col"].astype(np.intp))
            np.add.at(pulses, cells, 1.0)
            np.add.at(energy, cells, limits.pulse_energy(log["amplitude"], log["width"]))
        return pulses[rows, cols].astype(np.int64), energy[rows, cols]

    def log(self) -> dict[str, np.ndarray]:
        """Every recorded pulse, one array per field."""
        log = self.store.read("log")[: int(self.progress["n_log"])]
        return {name: log[:, k] for k, name in enumerate(LOG_FIELDS)}


def _upgrade_program_v1(group: Any, path: Path) -> None:
    """Format 1 -> 2 (labrram.store): append the commit layers to a programming run's ``state``,
    from its progress record. Crash-safe: the old state is kept as ``state_v1`` until the new one
    is written (a migration cut short starts again from it)."""
    import json

    old = np.asarray(group["state_v1"][...] if "state_v1" in group else group["state"][...], dtype=float)
    if old.shape[0] != len(DEVICE_LAYERS):
        raise StoreError(f"{path}: a format-1 state has {len(DEVICE_LAYERS)} layers, this one {old.shape[0]}")
    try:
        p = json.loads((Path(path) / "progress.json").read_text())
        stamp = (int(p["batches"]), int(p["n_log"]), int(p.get("iteration", 0)), PHASES.index(p["phase"]) if p.get("phase") in PHASES else -1)
    except (OSError, ValueError, KeyError, TypeError):
        raise StoreError(f"{path}: cannot upgrade a format-1 run without a valid progress.json") from None
    new = np.concatenate([old, np.broadcast_to(np.array(stamp, dtype=float)[:, None, None], (len(COMMIT_LAYERS),) + old.shape[1:])])
    attrs = dict(group["state"].attrs) if "state" in group else {"units": "mixed"}
    attrs.update(layers=list(STATE_LAYERS), layer_units=STATE_UNITS)
    if "state_v1" not in group:
        group.create_array("state_v1", data=old, chunks=old.shape, dimension_names=["layer", "row", "col"], overwrite=True)
    group.create_array("state", data=new, chunks=new.shape, dimension_names=["layer", "row", "col"], attributes=attrs, overwrite=True)
    del group["state_v1"]


UPGRADES[(1, "program")] = _upgrade_program_v1
