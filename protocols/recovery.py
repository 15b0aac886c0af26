"""What every protocol does when a pulse batch goes wrong, and the safety checks before it starts.

Pulses are not idempotent: a batch is never sent again blindly. :func:`send_batch` writes the
batch's intent (with the board's pulse counter) into the run store, sends it as one pulse-and-read
exchange and, when that exchange fails (no reply, a garbled reply, a lost connection), reads the
batch's devices back before anything else — the re-read values stand in for the lost reply, and
the board's pulse counter says whether the pulses were delivered (1), not delivered (0) or nobody
can know (-1, e.g. the board reset). Protocols then log delivered pulses as usual, unknown ones
with the "uncertain" kinds (``SET?``/``RESET?``), and never count or log pulses that provably did
not happen. When even the re-read fails the fault is unrecoverable: the exception propagates,
the intent stays in ``progress.json`` and ``--resume`` settles it (:func:`settle_pending`).

:func:`check_pulse_settings` refuses protocol settings beyond the station's limits before any byte
is sent, and :func:`over_budget` finds the devices that reached their per-run pulse or energy
budget (``SafeLimits.max_pulses_per_device``, ``max_energy_per_device``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from labrram.crossbar import Crossbar
from labrram.drivers.base import InstrumentError
from labrram.drivers.board import DELIVERED, NOT_DELIVERED, UNKNOWN, PulseDeliveryError
from labrram.safety import LimitError, SafeLimits
from labrram.store import StoreError

from .recorder import DeviceState, ProgramRecorder

__all__ = [
    "Batch",
    "DELIVERED",
    "NOT_DELIVERED",
    "UNKNOWN",
    "charge",
    "check_pulse_settings",
    "check_store_shape",
    "load_budget",
    "over_budget",
    "pulse_energy",
    "run_guard",
    "send_batch",
    "settle_pending",
]


@dataclass
class Batch:
    """Outcome of one pulse batch.

    Attributes
    ----------
    g : numpy.ndarray
        Conductance of each device after its pulse: the pulse-and-read reply, or the re-read
        after a failed exchange, S.
    status : numpy.ndarray
        Per device (int8): 1 delivered, 0 not delivered, -1 unknown.
    recovered : bool
        The exchange failed and the devices were read back.
    """

    g: np.ndarray
    status: np.ndarray
    recovered: bool = False

    @property
    def delivered(self) -> np.ndarray:
        return self.status == DELIVERED

    @property
    def unknown(self) -> np.ndarray:
        return self.status == UNKNOWN


def _counter(xb: Crossbar) -> int | None:
    """The board's pulse counter, or None when the board cannot tell."""
    if getattr(xb, "_no_counter", False):
        return None
    try:
        return xb.pulse_counter()
    except InstrumentError:
        xb._no_counter = True  # type: ignore[attr-defined]  # a board without the counter: do not ask again
        return None


def send_batch(
    xb: Crossbar,
    recorder: ProgramRecorder | None,
    st: DeviceState,
    kind: str,
    idx: np.ndarray,
    amplitude,
    gate,
    width,
) -> Batch:
    """Record the intent, send one pulse-and-read batch to devices ``idx`` of ``st``, and on a
    failed exchange read them back (see the module docstring). Raises when the devices cannot be
    read back: the run must stop, the intent stays pending."""
    cells = (st.rows[idx], st.cols[idx])
    if recorder is not None:
        recorder.intend(kind, idx, st.targets.size, counter=_counter(xb))
    fn = xb.set if kind == "SET" else xb.reset
    try:
        g = fn(cells, gate=gate, amplitude=amplitude, width=width, read=True)
        return Batch(np.asarray(g, dtype=float), np.full(idx.size, DELIVERED, dtype=np.int8))
    except PulseDeliveryError as exc:
        status = np.asarray(exc.status, dtype=np.int8)
        g = xb.read(cells)  # before anything else (retried: reads are idempotent)
        return Batch(np.asarray(g, dtype=float), status, recovered=True)


def settle_pending(xb: Crossbar, recorder: ProgramRecorder, st: DeviceState) -> tuple[str, np.ndarray, Batch] | None:
    """The batch that was in flight when a run stopped: read its devices back and ask the board's
    pulse counter (recorded with the intent) whether it was delivered. Returns ``(kind, idx,
    batch)`` or None when nothing was pending."""
    pending = recorder.pending
    idx = recorder.pending_devices(st.targets.size)
    if pending is None or idx is None:
        return None
    if idx.size == 0:
        return pending["kind"], idx, Batch(np.empty(0), np.empty(0, np.int8), True)
    g = xb.read((st.rows[idx], st.cols[idx]))
    before = pending.get("counter")
    status = UNKNOWN if before is None else xb.delivery(int(before), int(idx.size))
    return pending["kind"], idx, Batch(np.asarray(g, dtype=float), np.full(idx.size, status, dtype=np.int8), True)


def check_store_shape(xb: Crossbar, recorder: ProgramRecorder) -> None:
    """A run resumes only on an array of its own shape (raises :class:`StoreError`)."""
    if tuple(recorder.shape) != tuple(xb.shape):
        raise StoreError(
            f"{recorder.store.path}: the run is for a {recorder.shape[0]}x{recorder.shape[1]} array; "
            f"this station's array is {xb.shape[0]}x{xb.shape[1]}"
        )


@contextlib.contextmanager
def run_guard(xb: Crossbar, recorder: ProgramRecorder | None) -> Iterator[None]:
    """Around a protocol run: on any exception (an unrecoverable fault, Ctrl-C, SIGTERM) the run
    store says where and why it stopped and the crossbar is put in a safe state (SMU output off,
    route open; best effort — the station closes every instrument too)."""
    try:
        yield
    except BaseException as exc:
        if recorder is not None:
            with contextlib.suppress(Exception):
                recorder.stopped(exc)
        with contextlib.suppress(Exception):
            xb.shutdown()
        raise


# --- safety envelope ------------------------------------------------------------------------------
def pulse_energy(amplitude, width, limits: SafeLimits) -> np.ndarray:
    """Worst-case energy of pulses, J: ``|amplitude| * max_current * width`` (the bench's current
    limit bounds what any pulse can drive)."""
    return limits.pulse_energy(amplitude, width)


def check_pulse_settings(xb: Crossbar, what: str, amplitude, gate, width) -> None:
    """Refuse a protocol's pulse settings beyond the bench limits or the board's ranges before
    anything is sent (raises :class:`~labrram.safety.LimitError` naming the setting)."""
    try:
        xb.check_pulse(amplitude, gate, width)
    except LimitError as exc:
        raise LimitError(f"{what}: {exc}") from None


def over_budget(limits: SafeLimits, st: DeviceState, idx: np.ndarray, amplitude, width) -> np.ndarray:
    """Mask over ``idx``: the devices that one more pulse of ``amplitude`` (V) and ``width`` (s)
    would take beyond their per-run budget (``max_pulses_per_device`` pulses,
    ``max_energy_per_device`` joules; see :attr:`DeviceState.spent`)."""
    e = pulse_energy(np.broadcast_to(amplitude, idx.shape), np.broadcast_to(width, idx.shape), limits)
    return (st.spent[idx] + 1 > limits.max_pulses_per_device) | (st.energy[idx] + e > limits.max_energy_per_device)


def charge(limits: SafeLimits, st: DeviceState, idx: np.ndarray, batch: "Batch", amplitude, width) -> None:
    """Count a batch's pulses that (may have) reached the devices against their budgets."""
    hit = batch.status != NOT_DELIVERED
    e = pulse_energy(np.broadcast_to(amplitude, idx.shape), np.broadcast_to(width, idx.shape), limits)
    st.spent[idx[hit]] += 1
    st.energy[idx[hit]] += e[hit]


def load_budget(limits: SafeLimits, recorder: ProgramRecorder, st: DeviceState) -> None:
    """On resume: what each device has already received in this run, from the run's log."""
    st.spent, st.energy = recorder.spent(limits)
