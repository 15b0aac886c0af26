"""Write-verify for PCM: the SET / RESET voltage ladders of Bonnet et al. 2023 (Alg. 2).

After a full RESET every device is read; while below its band it gets ``SET(V_S)`` and
``V_S += dV_S``; while above, ``RESET(V_R)`` and ``V_R -= dV_R`` — each staircase bounded
(``v_set_max`` below the melt threshold, ``v_reset_min`` still a deep RESET). All devices of a
step go in one SET batch and one RESET batch; the next verify read is one batch of the devices
still programming. Recorded and resumable like the ReRAM write-verify (``param`` holds the next
SET voltage; the next RESET voltage is kept in ``stall``'s place as a negative number).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from labrram.crossbar import Crossbar

from .recorder import DeviceState, ProgramRecorder
from .recovery import check_pulse_settings, check_store_shape, run_guard
from .results import Accounting, ProgramResult, Progress, finish_result, validate_targets


@dataclass(frozen=True)
class PCMWriteVerify:
    """Settings of :func:`write_verify_pcm` (SI units)."""

    half_width: float = 1.0e-6
    gate: float = 3.3
    v_set0: float = 1.1
    v_set_max: float = 1.8
    dv_set: float = 0.1
    set_width: float = 1e-6
    v_reset0: float = 2.9
    v_reset_min: float = 2.7
    dv_reset: float = 0.05
    reset_width: float = 50e-9
    max_iterations: int = 100
    g_range: tuple[float, float] = (0.5e-6, 30e-6)

    def __post_init__(self) -> None:
        if self.half_width <= 0 or self.max_iterations < 1:
            raise ValueError("half_width must be > 0 and max_iterations >= 1")
        if not (self.v_set0 <= self.v_set_max < self.v_reset_min <= self.v_reset0):
            raise ValueError("need v_set0 <= v_set_max < v_reset_min <= v_reset0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_verify_pcm(
    xb: Crossbar,
    targets: np.ndarray | None,
    settings: PCMWriteVerify = PCMWriteVerify(),
    recorder: ProgramRecorder | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> ProgramResult:
    """Program every non-NaN target (S) with the SET/RESET voltage ladders."""
    s = settings
    acc = Accounting()
    check_pulse_settings(xb, "PCM write-verify SET", [s.v_set0, s.v_set_max], s.gate, s.set_width)
    check_pulse_settings(xb, "PCM write-verify RESET", [s.v_reset_min, s.v_reset0], s.gate, s.reset_width)
    if resume:
        if recorder is None:
            raise ValueError("resume needs the recorder of the interrupted run")
        check_store_shape(xb, recorder)
        st = recorder.load_state()
        targets = recorder.targets
        idx = recorder.pending_devices(st.targets.size)
        if idx is not None:  # a ladder step in flight: the next verify read settles it
            recorder.save_state(st)
    else:
        targets = validate_targets(targets, xb.shape, s.g_range)
        rows, cols = np.nonzero(~np.isnan(targets))
        n = rows.size
        st = DeviceState(rows, cols, targets[rows, cols], np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, np.int32), np.full(n, s.v_set0))
        st.stall = np.full(n, -s.v_reset0)
    n = st.targets.size
    lo, hi = st.targets - s.half_width, st.targets + s.half_width

    def pulse(kind: str, idx: np.ndarray, amplitude: np.ndarray, width: float) -> None:
        if recorder is not None:
            recorder.intend(kind, idx, n)
        fn = xb.set if kind == "SET" else xb.reset
        fn((st.rows[idx], st.cols[idx]), gate=s.gate, amplitude=amplitude, width=width)
        acc.pulses(np.full(idx.size, width))
        st.pulses[idx] += 1
        if recorder is not None:
            recorder.commit(st, kind, idx, amplitude, s.gate, width, np.full(idx.size, np.nan))

    with run_guard(xb, recorder):  # an error or a signal: the store says where the run stopped
        _ladder(xb, st, s, pulse, acc, recorder, progress, lo, hi)
    return finish_result(xb.shape, "write-verify-pcm", targets, st, acc, recorder, s.to_dict())


def _ladder(xb: Crossbar, st: DeviceState, s: PCMWriteVerify, pulse, acc: Accounting, recorder, progress, lo, hi) -> None:
    """The verify-and-step loop (see the module docstring)."""
    n = st.targets.size
    if st.phase == "start":
        everyone = np.arange(n)
        pulse("RESET", everyone, np.full(n, s.v_reset0), s.reset_width)
        st.phase = "ladder"
    while st.iteration < s.max_iterations:
        idx = np.nonzero(~st.converged)[0]
        if idx.size == 0:
            break
        g = xb.read((st.rows[idx], st.cols[idx]))
        acc.reads(st.rows[idx])
        st.achieved[idx] = g
        low, high = g < lo[idx], g > hi[idx]
        st.converged[idx[~low & ~high]] = True
        up, down = idx[low], idx[high]
        st.iteration += 1
        if up.size:
            amp = st.param[up].copy()
            st.param[up] = np.minimum(st.param[up] + s.dv_set, s.v_set_max)
            pulse("SET", up, amp, s.set_width)
        if down.size:
            amp = -st.stall[down]
            st.stall[down] = -np.maximum(amp - s.dv_reset, s.v_reset_min)
            pulse("RESET", down, amp, s.reset_width)
        if recorder is not None and not (up.size or down.size):
            recorder.save_state(st)
        if progress is not None:
            progress("write-verify (PCM)", int(st.converged.sum()), n)
