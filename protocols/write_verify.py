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

from .results import Accounting, ProgramResult, Progress, validate_targets


@dataclass(frozen=True)
class ReRAMWriteVerify:
    """Settings of :func:`write_verify_reram` (SI units).

    A device has converged when ``|G - target| <= max(tolerance * target, abs_tolerance)``.
    """

    tolerance: float = 0.05
    abs_tolerance: float = 1e-6
    start_margin: float = 0.15
    gate_step: float = 0.01
    backoff: float = 0.03
    max_iterations: int = 60
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
    targets: np.ndarray,
    model: ReRAMModel,
    settings: ReRAMWriteVerify = ReRAMWriteVerify(),
    progress: Progress | None = None,
) -> ProgramResult:
    """Program every non-NaN target (S, array-shaped) by closed-loop gate stepping."""
    s = settings
    targets = validate_targets(targets, xb.shape, reachable_range(model, s.gate_min, s.gate_max))
    acc = Accounting()
    rows, cols = np.nonzero(~np.isnan(targets))
    tgt = targets[rows, cols]
    n = tgt.size
    band = np.maximum(s.tolerance * tgt, s.abs_tolerance)
    gate = start_gates(model, tgt, s.start_margin, s.gate_min, s.gate_max)
    g = xb.reset((rows, cols), gate=s.reset_gate, amplitude=s.reset_amplitude, width=s.reset_width, read=True)
    acc.pulses(np.full(n, s.reset_width))
    acc.reads(rows)
    pulses = np.ones(n, dtype=np.int32)
    converged = np.abs(g - tgt) <= band
    iterations = 0
    for it in range(s.max_iterations):
        active = np.nonzero(~converged)[0]
        if active.size == 0:
            break
        iterations = it + 1
        r, c = rows[active], cols[active]
        g_new = xb.set((r, c), gate=gate[active], amplitude=s.set_amplitude, width=s.set_width, read=True)
        acc.pulses(np.full(active.size, s.set_width))
        acc.reads(r)
        pulses[active] += 1
        g[active] = g_new
        err = g_new - tgt[active]
        ok = np.abs(err) <= band[active]
        converged[active[ok]] = True
        under = active[err < -band[active]]
        gate[under] = np.minimum(gate[under] + s.gate_step, s.gate_max)
        over = active[err > band[active]]
        if over.size:
            g[over] = xb.reset((rows[over], cols[over]), gate=s.reset_gate, amplitude=s.reset_amplitude, width=s.reset_width, read=True)
            acc.pulses(np.full(over.size, s.reset_width))
            acc.reads(rows[over])
            pulses[over] += 1
            gate[over] = np.maximum(gate[over] - s.backoff, s.gate_min)
        if progress is not None:
            progress("write-verify", int(converged.sum()), n)

    shape = xb.shape
    out = ProgramResult(
        "write-verify",
        targets,
        _scatter(shape, rows, cols, g, np.nan),
        _scatter(shape, rows, cols, converged, False),
        _scatter(shape, rows, cols, pulses, 0),
        iterations,
        acc.wall,
        physical_limit=acc.physical,
        settings=s.to_dict(),
    )
    return out


def _scatter(shape, rows, cols, values, fill):
    values = np.asarray(values)
    out = np.full(shape, fill, dtype=values.dtype if values.dtype != bool else bool)
    out[rows, cols] = values
    return out
