"""Recording a programming run as it goes, and resuming it after an interruption.

A :class:`ProgramRecorder` keeps, in a zarr run store:

* ``targets`` (row, col) and ``state`` (layer, row, col), the per-device state of the protocol
  — ``achieved``, ``converged``, ``pulses``, the protocol's own next parameter (``param``,
  e.g. the next gate voltage; NaN once the protocol gave up on a device) and ``stall``
  (iterations without progress) — rewritten after every batch;
* ``log`` (pulse, field), an append-only record of every pulse: batch, row, col, kind (0 SET,
  1 RESET; 2 and 3 for a SET or RESET whose delivery is uncertain, see below), amplitude, gate,
  width and the conductance read back;
* an intent record in the group attributes (``pending``) written *before* a batch is sent and
  cleared when its results are stored.

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

from labrram.store import RunStore, StoreError

KIND_CODES = {"SET": 0, "RESET": 1, "SET?": 2, "RESET?": 3}  # "?": delivery uncertain (recovered)
#: columns of the ``log`` array (one row per pulse) and their units
LOG_FIELDS = ("batch", "row", "col", "kind", "amplitude", "gate", "width", "g_after")
LOG_UNITS = ("1", "1", "1", "1", "V", "V", "s", "S")
#: layers of the ``state`` array (layer, row, col)
STATE_LAYERS = ("achieved", "converged", "pulses", "param", "stall")
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

    def __post_init__(self) -> None:
        if self.stall is None:
            self.stall = np.zeros(self.targets.size)


class ProgramRecorder:
    """Stores a run's progress (see module docstring). Use :meth:`create` or :meth:`resume`."""

    def __init__(self, store: RunStore, shape: tuple[int, int]) -> None:
        self.store = store
        self.shape = shape
        self.progress = store.read_sidecar("progress")
        if self.progress is None:
            raise StoreError(f"{store.path}: no progress record; not a resumable programming run")
        self._state = np.asarray(store.read("state"), dtype=float)
        self._log = store.group["log"]

    # --- lifecycle -----------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, protocol: str, targets: np.ndarray, attrs: dict[str, Any]) -> "ProgramRecorder":
        store = RunStore.create(path, "program", {"protocol": protocol, "status": "running", **attrs})
        store.write("targets", targets, ("row", "col"), "S")
        state = np.zeros((len(STATE_LAYERS),) + targets.shape)
        state[0] = np.nan
        state[3] = np.nan
        store.write("state", state, ("layer", "row", "col"), "mixed", layers=list(STATE_LAYERS), layer_units=["S", "1", "1", "protocol", "1"])
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
        return cls(store, store.read("targets").shape)

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
        achieved, converged, pulses, param, stall = (layer[rows, cols] for layer in self._state)
        return DeviceState(
            rows, cols, targets[rows, cols], achieved, converged.astype(bool), pulses.astype(np.int32), param,
            int(p.get("iteration", 0)), str(p.get("phase", "start")), stall,
        )  # fmt: skip

    def pending_devices(self, n: int) -> np.ndarray | None:
        """Flat indices of the devices of a batch that was sent but never stored, if any."""
        pending = self.pending
        return None if not pending else _unpack(pending["devices"], n)

    # --- recording -------------------------------------------------------------------------
    def intend(self, kind: str, idx: np.ndarray, n: int) -> None:
        """Write the intent of a batch on devices ``idx`` (of ``n``) before it is sent."""
        self.progress["pending"] = {"batch": self.progress["batches"], "kind": kind, "devices": _pack(idx, n)}
        self.store.write_sidecar("progress", self.progress)

    def commit(self, state: DeviceState, kind: str, idx: np.ndarray, amplitude, gate, width, g_after: np.ndarray) -> None:
        """Append the batch's pulses to the log, store the state, clear the intent."""
        n = idx.size
        if n:
            rec = np.empty((n, len(LOG_FIELDS)))
            rec[:, 0] = self.progress["batches"]
            rec[:, 1] = state.rows[idx]
            rec[:, 2] = state.cols[idx]
            rec[:, 3] = KIND_CODES[kind]
            rec[:, 4] = np.broadcast_to(amplitude, (n,))
            rec[:, 5] = np.broadcast_to(gate, (n,))
            rec[:, 6] = np.broadcast_to(width, (n,))
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
        """Store the per-device state and the progress record (clears the intent)."""
        for k, name in enumerate(STATE_LAYERS):
            self._state[k, state.rows, state.cols] = getattr(state, name)
        self.store.group["state"][...] = self._state
        self.progress.update(pending=None, iteration=state.iteration, phase=state.phase, **extra)
        self.store.write_sidecar("progress", self.progress)

    def finish(self, **attrs: Any) -> None:
        self.store.update_attrs(status="complete", **attrs)

    def interrupted(self, reason: str) -> None:
        self.store.update_attrs(status="interrupted", reason=reason)

    def log(self) -> dict[str, np.ndarray]:
        """Every recorded pulse, one array per field."""
        log = self.store.read("log")[: int(self.progress["n_log"])]
        return {name: log[:, k] for k, name in enumerate(LOG_FIELDS)}
