"""Write-verify for 1T1R ReRAM: gate-voltage stepping (ISPP on the word line), RESET and retry
on overshoot, array-parallel verify reads of the unconverged devices only.

Each iteration is one pulse-read transaction for every device still programming (SET at its
own gate voltage, read back in the same batch) plus, for the devices that overshot, one RESET
batch. A device's first gate comes from the calibrated model (the gate whose median is a little
below the target), so most devices converge in a few pulses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labrram.crossbar import Crossbar
from labrram.devices.reram import ReRAMModel

from .recorder import DeviceState, ProgramRecorder
from .recovery import DELIVERED, NOT_DELIVERED, Batch, charge, check_pulse_settings, check_store_shape, load_budget, over_budget, run_guard, send_batch, settle_pending
from .results import Accounting, ProgramResult, Progress, finish_result, validate_targets


@dataclass(frozen=True)
class ReRAMWriteVerify:
    """Settings of :func:`write_verify_reram` (SI units).

    A device has converged when a verify read is within the band ``max(tolerance * target,
    abs_tolerance)`` narrowed by ``guard`` standard deviations of the calibrated read noise (so
    that a device accepted on one noisy read is inside the band in truth, not just in the read).
    A device that stays below its band with the gate at ``gate_max`` (or below a quarter of its
    target: not switching at all), or above it with the gate at ``gate_min``, for ``give_up``
    iterations in a row is declared failed (a stuck device) and is not pulsed again.
    """

    tolerance: float = 0.05
    abs_tolerance: float = 1e-6
    start_margin: float = 0.15
    gate_step: float = 0.01
    backoff: float = 0.03
    max_iterations: int = 60
    give_up: int = 6
    guard: float = 2.0
    gate_min: float = 1.2
    gate_max: float = 2.4
    set_amplitude: float = 1.8
    set_width: float = 1e-6
    reset_amplitude: float = 2.6
    reset_gate: float = 4.8
    reset_width: float = 100e-9

    def __post_init__(self) -> None:
        if not (0 < self.tolerance < 1):
            raise ValueError("tolerance must be a fraction between 0 and 1")
        if self.gate_step <= 0 or self.max_iterations < 1:
            raise ValueError("gate_step must be > 0 and max_iterations >= 1")
        if not self.gate_min < self.gate_max:
            raise ValueError("gate_min must be below gate_max")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reachable_range(model: ReRAMModel, gate_min: float, gate_max: float) -> tuple[float, float]:
    """Median conductances reachable between two gate voltages, S."""
    icc = model.transistor.compliance(np.array([gate_min, gate_max]))
    g = model.median(np.maximum(icc, 1e-12))
    return float(g[0]), float(g[1])


def start_gates(model: ReRAMModel, targets: np.ndarray, margin: float, gate_min: float, gate_max: float) -> np.ndarray:
    """Gate voltages whose median conductance is ``(1 - margin) * target``."""
    icc = model.compliance_for(np.maximum(targets * (1 - margin), 1e-9))
    return np.clip(model.transistor.gate_for(icc), gate_min, gate_max)


def write_verify_reram(
    xb: Crossbar,
    targets: np.ndarray | None,
    model: ReRAMModel,
    settings: ReRAMWriteVerify = ReRAMWriteVerify(),
    recorder: ProgramRecorder | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> ProgramResult:
    """Program every non-NaN target (S, array-shaped) by closed-loop gate stepping.

    With a ``recorder`` every batch is stored as it completes; with ``resume=True`` the run
    continues from the recorder's store (``targets`` is then taken from the store).

    Settings beyond the station's limits are refused before anything is sent; a device that
    reached its per-run pulse or energy budget is given up on. A batch whose exchange fails is
    read back at once (:func:`~.recovery.send_batch`); an unrecoverable fault stops the run with
    the store saying where (``--resume`` continues).
    """
    s = settings
    acc = Accounting()
    limits = xb.limits
    check_pulse_settings(xb, "write-verify SET", s.set_amplitude, [s.gate_min, s.gate_max], s.set_width)
    check_pulse_settings(xb, "write-verify RESET", s.reset_amplitude, s.reset_gate, s.reset_width)
    if resume:
        if recorder is None:
            raise ValueError("resume needs the recorder of the interrupted run")
        check_store_shape(xb, recorder)
        st = recorder.load_state()
        targets = recorder.targets
    else:
        targets = validate_targets(targets, xb.shape, reachable_range(model, s.gate_min, s.gate_max))
        rows, cols = np.nonzero(~np.isnan(targets))
        tgt = targets[rows, cols]
        n = tgt.size
        st = DeviceState(rows, cols, tgt, np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, np.int32),
                         start_gates(model, tgt, s.start_margin, s.gate_min, s.gate_max))  # fmt: skip
        if recorder is not None:
            recorder.save_state(st)  # the start gates are in the store before the first batch
    full_band = np.maximum(s.tolerance * st.targets, s.abs_tolerance)
    band = np.maximum(full_band - s.guard * model.read_noise_rel * st.targets, 0.4 * full_band)
    all_idx = np.arange(st.targets.size)
    reset_failed = np.zeros(st.targets.size, dtype=bool)  # the last RESET left the device where it was

    def budgeted(idx: np.ndarray, amplitude: float, width: float) -> np.ndarray:
        """Devices of ``idx`` still within their budget; the others are given up (never pulsed)."""
        out = over_budget(limits, st, idx, amplitude, width)
        st.param[idx[out]] = np.nan
        return idx[~out]

    def pulse(kind: str, idx: np.ndarray, gate, amplitude: float, width: float) -> Batch:
        b = send_batch(xb, recorder, st, kind, idx, amplitude, gate, width)
        acc.pulses(np.full(idx.size, width))
        acc.reads(st.rows[idx])
        charge(limits, st, idx, b, amplitude, width)
        st.pulses[idx[b.delivered]] += 1
        st.achieved[idx] = b.g
        return b

    def commit(kind: str, idx: np.ndarray, b: Batch, amplitude, gate, width) -> None:
        if recorder is not None:
            recorder.commit(st, kind, idx, amplitude, gate, width, st.achieved[idx], status=b.status)

    with run_guard(xb, recorder):
        if resume:
            _recover_pending(xb, recorder, st, s, model)
            load_budget(limits, recorder, st)
        if st.phase == "start":
            first = budgeted(all_idx, s.reset_amplitude, s.reset_width)
            b = pulse("RESET", first, s.reset_gate, s.reset_amplitude, s.reset_width)
            st.converged[first] = np.abs(st.achieved[first] - st.targets[first]) <= band[first]
            st.phase = "verify"
            commit("RESET", first, b, s.reset_amplitude, s.reset_gate, s.reset_width)
        while st.iteration < s.max_iterations:
            active = np.nonzero(~st.converged & ~np.isnan(st.param))[0]
            active = budgeted(active, s.set_amplitude, s.set_width)
            if active.size == 0:
                break
            gate = st.param[active].copy()
            b = pulse("SET", active, gate, s.set_amplitude, s.set_width)
            g_new = b.g
            err = g_new - st.targets[active]
            ok = np.abs(err) <= band[active]
            st.converged[active[ok]] = True
            tried = b.status != NOT_DELIVERED  # a pulse that provably never left does not step the gate
            under_m = (err < -band[active]) & tried
            over_m = err > band[active]
            under = active[under_m]
            st.param[under] = np.minimum(st.param[under] + s.gate_step, s.gate_max)
            over = active[over_m]
            # no way left to move: below the band at the highest gate, or above it at the lowest
            # or not responding at all (a device stuck at HRS stays far below any target)
            stuck = under_m & ((gate >= s.gate_max) | (g_new < 0.25 * st.targets[active]))
            stuck |= over_m & tried & ((gate <= s.gate_min) | reset_failed[active])  # a RESET that does nothing
            st.stall[active] = np.where(stuck, st.stall[active] + 1, np.where(tried, 0, st.stall[active]))
            st.param[over] = np.maximum(st.param[over] - s.backoff, s.gate_min)
            failed = active[st.stall[active] >= s.give_up]
            st.param[failed] = np.nan
            over = over[~np.isin(over, failed)]
            st.iteration += 1
            commit("SET", active, b, s.set_amplitude, gate, s.set_width)
            over = budgeted(over, s.reset_amplitude, s.reset_width)
            if over.size:
                before = st.achieved[over].copy()
                b = pulse("RESET", over, s.reset_gate, s.reset_amplitude, s.reset_width)
                reset_failed[over] = (b.status == DELIVERED) & (b.g > 0.9 * before)  # the RESET changed nothing: stuck or dead
                commit("RESET", over, b, s.reset_amplitude, s.reset_gate, s.reset_width)
            if progress is not None:
                progress("write-verify", int(st.converged.sum()), st.targets.size)

        return finish_result(xb.shape, "write-verify", targets, st, acc, recorder, s.to_dict())


def _recover_pending(xb: Crossbar, recorder: ProgramRecorder, st: DeviceState, s: ReRAMWriteVerify, model: ReRAMModel) -> None:
    """Re-read the devices of a batch that was sent but not stored, and settle it.

    The board's pulse counter (recorded with the intent) tells whether the batch was
    delivered: delivered pulses are logged and counted as usual, provably undelivered ones not
    at all, and when nobody can tell (the board reset, no counter) the batch goes into the log
    with the "uncertain" kinds and the re-read values, not counted in ``pulses``. Either way the
    re-read value becomes the device's state.
    """
    settled = settle_pending(xb, recorder, st)
    if settled is None:
        return
    kind, idx, b = settled
    if idx.size:
        st.achieved[idx] = b.g
        full = np.maximum(s.tolerance * st.targets[idx], s.abs_tolerance)
        band = np.maximum(full - s.guard * model.read_noise_rel * st.targets[idx], 0.4 * full)
        st.converged[idx] = np.abs(st.achieved[idx] - st.targets[idx]) <= band
        st.pulses[idx[b.delivered]] += 1
        if kind == "SET":
            amplitude, gate, width = s.set_amplitude, st.param[idx], s.set_width
        else:
            amplitude, gate, width = s.reset_amplitude, s.reset_gate, s.reset_width
        if st.phase == "start":
            st.phase = "verify"
        recorder.progress["recovered_batches"] = int(recorder.progress.get("recovered_batches", 0)) + 1
        recorder.commit(st, kind, idx, amplitude, gate, width, st.achieved[idx], status=b.status)
    else:
        recorder.save_state(st)
