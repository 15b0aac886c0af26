"""What every protocol shares: target validation, per-device results and bench-time accounting."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

#: the board's datasheet timing (docs/board-protocol.md): one row conversion, one pulse set-up
ROW_READ_TIME = 10e-6
PULSE_SETUP_TIME = 1e-6

Progress = Callable[[str, int, int], None]


class TargetError(ValueError):
    """Targets that cannot be programmed; nothing was sent."""


def validate_targets(targets: Any, shape: tuple[int, int], g_range: tuple[float, float]) -> np.ndarray:
    """Check conductance targets (S) before anything is programmed.

    ``targets`` has the array's shape; NaN marks a device to leave alone. Every other value
    must be finite and inside ``g_range`` (what the calibrated devices can reach).
    """
    raw = np.asarray(targets) if not isinstance(targets, np.ndarray) else targets
    if raw.dtype.kind not in "fiu":
        raise TargetError(f"targets must be real numbers (conductances in S), not {raw.dtype} values")
    try:
        t = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise TargetError("targets must be numbers (conductances in S)") from None
    if t.shape != tuple(shape):
        raise TargetError(f"targets have shape {t.shape}, the array is {tuple(shape)}")
    if np.any(np.isinf(t)):
        raise TargetError(f"{int(np.isinf(t).sum())} target(s) are infinite")
    finite = t[~np.isnan(t)]
    if finite.size == 0:
        raise TargetError("no device to program: every target is NaN")
    if np.any(finite < 0):
        raise TargetError(f"{int((finite < 0).sum())} target(s) are negative; conductances are >= 0 S")
    lo, hi = g_range
    bad = (finite < lo) | (finite > hi)
    if np.any(bad):
        raise TargetError(
            f"{int(bad.sum())} target(s) outside the reachable range [{lo * 1e6:.3g}, {hi * 1e6:.3g}] µS "
            f"(min {finite.min() * 1e6:.3g} µS, max {finite.max() * 1e6:.3g} µS)"
        )
    return t


@dataclass
class ProgramResult:
    """Outcome of programming an array (arrays have the array's shape; NaN/False/0 where no
    device was programmed)."""

    protocol: str
    targets: np.ndarray
    achieved: np.ndarray
    converged: np.ndarray
    pulses: np.ndarray
    iterations: int
    wall_time: float
    bench_time: float | None = None
    physical_limit: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        return ~np.isnan(self.targets)

    def summary(self) -> dict[str, Any]:
        m = self.mask
        err = (self.achieved - self.targets)[m]
        return {
            "protocol": self.protocol,
            "devices": int(m.sum()),
            "converged_fraction": float(self.converged[m].mean()),
            "rms_error": float(np.sqrt(np.mean(err**2))),
            "rms_relative_error": float(np.sqrt(np.mean((err / self.targets[m]) ** 2))),
            "rms_error_converged": float(np.sqrt(np.mean((self.achieved - self.targets)[m & self.converged] ** 2))) if np.any(m & self.converged) else float("nan"),
            "pulses_per_device": float(self.pulses[m].mean()),
            "max_pulses": int(self.pulses[m].max()),
            "iterations": self.iterations,
            "wall_time": self.wall_time,
            "bench_time": self.bench_time,
            "physical_limit": self.physical_limit,
        }


class Accounting:
    """Counts what the hardware cannot avoid: pulse widths, set-up, and row conversions."""

    def __init__(self) -> None:
        self.physical = 0.0
        self.t0 = time.perf_counter()

    def pulses(self, widths: np.ndarray) -> None:
        self.physical += float(np.sum(widths) + PULSE_SETUP_TIME * np.size(widths))

    def reads(self, rows: np.ndarray) -> None:
        self.physical += ROW_READ_TIME * len(np.unique(rows))

    @property
    def wall(self) -> float:
        return time.perf_counter() - self.t0


def finish_result(shape, name: str, targets: np.ndarray, st, acc: Accounting, recorder, settings: dict) -> ProgramResult:
    """The result of a run from its per-device state (a :class:`~.recorder.DeviceState`); with a
    recorder, totals include the earlier parts of a resumed run and the store is marked complete."""
    result = ProgramResult(
        name,
        targets,
        _scatter(shape, st.rows, st.cols, st.achieved, np.nan),
        _scatter(shape, st.rows, st.cols, st.converged, False),
        _scatter(shape, st.rows, st.cols, st.pulses, 0),
        st.iteration,
        acc.wall,
        physical_limit=acc.physical,
        settings=settings,
    )
    if recorder is not None:
        prior = recorder.store.attrs
        result.physical_limit += float(prior.get("physical_limit", 0.0))
        result.wall_time += float(prior.get("wall_time", 0.0))
        recorder.finish(physical_limit=result.physical_limit, wall_time=result.wall_time, summary=result.summary())
    return result


def _scatter(shape, rows, cols, values, fill):
    values = np.asarray(values)
    out = np.full(shape, fill, dtype=values.dtype if values.dtype != bool else bool)
    out[rows, cols] = values
    return out
