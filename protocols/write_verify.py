"""Write-verify for 1T1R ReRAM: gate-voltage stepping (ISPP on the word line), RESET and retry
on overshoot, array-parallel verify reads of the unconverged devices only.

A plan (:class:`WriteVerifyReRAM`) run by the engine. Each iteration is one pulse-read transaction for every device still programming (SET at its
own gate voltage, read back in the same batch) plus, for the devices that overshot, one RESET
batch. A device's first gate comes from the calibrated model (the gate whose median is a little
below the target), so most devices converge in a few pulses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labrram.crossbar import Crossbar
from labrram.devices.reram import ReRAMModel

from .engine import Progress, run_plan
from .messages import DELIVERED, NOT_DELIVERED, Pulse, Read, Report
from .plan import Plan, PlanRun, check_pulse_settings, model_from_json, model_to_json, register
from .results import DeviceState, ProgramResult, program_result, validate_targets


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


def acceptance_band(s: ReRAMWriteVerify, model: ReRAMModel, targets: np.ndarray) -> np.ndarray:
    """Half-width of the band a verify read must fall in, S (module docstring of the settings)."""
    full = np.maximum(s.tolerance * targets, s.abs_tolerance)
    return np.maximum(full - s.guard * model.read_noise_rel * targets, 0.4 * full)


@register
class WriteVerifyReRAM(Plan):
    """Program every non-NaN target (S, array-shaped) by closed-loop gate stepping.

    A device whose pulse the engine refused (its per-run budget is spent) is given up on; a
    pulse that provably never left does not step the gate.
    """

    name = "write-verify"

    def __init__(self, targets: np.ndarray, model: ReRAMModel, settings: ReRAMWriteVerify = ReRAMWriteVerify()) -> None:
        self.targets = targets
        self.model = model
        self.settings = settings

    def check(self, xb: Crossbar) -> None:
        s = self.settings
        check_pulse_settings(xb, "write-verify SET", s.set_amplitude, [s.gate_min, s.gate_max], s.set_width)
        check_pulse_settings(xb, "write-verify RESET", s.reset_amplitude, s.reset_gate, s.reset_width)
        self.targets = validate_targets(self.targets, xb.shape, reachable_range(self.model, s.gate_min, s.gate_max))

    def params(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "calibration": model_to_json(self.model)}

    def inputs(self) -> dict[str, Any]:
        return {"targets": (np.asarray(self.targets, dtype=float), ("row", "col"), "S")}

    @classmethod
    def from_store(cls, params: dict[str, Any], store: Any) -> "WriteVerifyReRAM":
        return cls(store.read("targets"), model_from_json(params["calibration"]), ReRAMWriteVerify(**params["settings"]))

    def run(self, shape: tuple[int, int]) -> PlanRun:
        s, model, targets = self.settings, self.model, self.targets
        st = DeviceState.start(targets, 0.0)
        st.param = start_gates(model, st.targets, s.start_margin, s.gate_min, s.gate_max)
        band = acceptance_band(s, model, st.targets)
        reset_failed = np.zeros(st.targets.size, dtype=bool)  # the last RESET left the device where it was

        def pulse(kind: str, idx: np.ndarray, gate, amplitude: float, width: float):
            r = yield Pulse(kind, st.rows[idx], st.cols[idx], amplitude, gate, width)
            st.param[idx[r.refused]] = np.nan  # its budget is spent: given up, never pulsed again
            st.pulses[idx[r.delivered]] += 1
            st.achieved[idx] = np.where(r.refused, st.achieved[idx], r.g)
            return r

        everyone = np.arange(st.targets.size)
        yield from pulse("RESET", everyone, s.reset_gate, s.reset_amplitude, s.reset_width)
        st.converged[:] = np.abs(st.achieved - st.targets) <= band
        while st.iteration < s.max_iterations:
            active = np.nonzero(~st.converged & ~np.isnan(st.param))[0]
            if active.size == 0:
                break
            gate = st.param[active].copy()
            b = yield from pulse("SET", active, gate, s.set_amplitude, s.set_width)
            live = ~b.refused
            active, gate, status, g_new = active[live], gate[live], b.status[live], b.g[live]
            err = g_new - st.targets[active]
            ok = np.abs(err) <= band[active]
            st.converged[active[ok]] = True
            tried = status != NOT_DELIVERED  # a pulse that provably never left does not step the gate
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
            if over.size:
                before = st.achieved[over].copy()
                b = yield from pulse("RESET", over, s.reset_gate, s.reset_amplitude, s.reset_width)
                reset_failed[over] = (b.status == DELIVERED) & (b.g > 0.9 * before)  # the RESET changed nothing: stuck or dead
            yield Report("write-verify", int(st.converged.sum()), st.targets.size)
        yield from final_verify(st, np.maximum(s.tolerance * st.targets, s.abs_tolerance))
        return program_result(shape, "write-verify", targets, st, s.to_dict())


#: a device whose last read is this many bands, and this fraction of its target, from its
#: target broke after it was accepted (stuck, dead); relaxation, drift and read noise stay within
BROKEN, BROKEN_REL = 3.0, 0.3


def final_verify(st: DeviceState, band: np.ndarray) -> PlanRun:
    """One last read of every accepted device: one that has since moved beyond :data:`BROKEN`
    times its band (``band``: the tolerance half-width per device, S) and :data:`BROKEN_REL` of
    its target — a device that broke or got stuck after it was accepted — is not reported
    converged. Ordinary relaxation (up to 1.5 bands on the simulated ReRAM chip), PCM drift and
    read noise stay within. ``achieved`` is this read."""
    done = np.flatnonzero(st.converged)
    if done.size:
        g = yield Read(st.rows[done], st.cols[done])
        st.achieved[done] = g
        limit = np.maximum(BROKEN * band[done], BROKEN_REL * st.targets[done])
        st.converged[done[np.abs(g - st.targets[done]) > limit]] = False


def write_verify_reram(
    xb: Crossbar,
    targets: np.ndarray,
    model: ReRAMModel,
    settings: ReRAMWriteVerify = ReRAMWriteVerify(),
    out: str | Path | None = None,
    progress: Progress | None = None,
    timer: Any = None,
) -> ProgramResult:
    """Run :class:`WriteVerifyReRAM` on ``xb`` through the engine (with ``out``, a run
    store: recorded and resumable; see :func:`labrram.program` for the whole job)."""
    return run_plan(xb, WriteVerifyReRAM(targets, model, settings), out, timer=timer, progress=progress)
