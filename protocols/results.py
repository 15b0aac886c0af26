"""What every programming plan shares: target validation, per-device state and the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Progress = Callable[[str, int, int], None]


class TargetError(ValueError):
    """Targets that cannot be programmed; nothing was sent."""


def validate_targets(targets: Any, shape: tuple[int, int], g_range: tuple[float, float]) -> np.ndarray:
    """Check conductance targets (S) before anything is programmed.

    ``targets`` has the array's shape; NaN (or a masked entry of a masked array) marks a
    device to leave alone. Every other value must be finite and inside ``g_range`` (what the
    calibrated devices can reach).
    """
    if np.ma.isMaskedArray(targets) and targets.dtype.kind in "fiu":
        targets = np.ma.filled(targets.astype(float), np.nan)
    raw = np.asarray(targets) if not isinstance(targets, np.ndarray) else targets
    if raw.dtype.kind not in "fiu":
        raise TargetError(f"targets must be real numbers (conductances in S), not {raw.dtype} values")
    try:
        t = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise TargetError("targets must be numbers (conductances in S)") from None
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
    if t.shape != tuple(shape):  # after the values: what is wrong with the numbers is said first
        raise TargetError(f"targets have shape {t.shape}, the array is {tuple(shape)}")
    return t


@dataclass
class ProgramResult:
    """Outcome of programming an array.

    Arrays have the array's shape (rows, cols), with NaN, False or 0 where no device was
    programmed.

    Attributes
    ----------
    protocol : str
        The plan that ran (``"write-verify"``, ``"single-shot"``, ...).
    targets : ndarray
        Target conductances, S (NaN: left alone).
    achieved : ndarray
        Each device's last read, S.
    converged : ndarray of bool
        Devices that ended inside their acceptance band.
    pulses : ndarray of int
        Pulses delivered to each device.
    iterations : int
        Iterations of the protocol's loop.
    wall_time : float
        This computer's time, s.
    bench_time : float or None
        The bench clock's time (virtual on the simulated bench), s.
    physical_limit : float
        What the pulses, conversions and waits alone take, s.
    settings : dict
        The protocol's settings, as stored in the run.
    """

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
        """The devices that had a target, (rows, cols) bool."""
        return ~np.isnan(self.targets)

    def followed_by(self, later: "ProgramResult") -> "ProgramResult":
        """The outcome of this job and a ``later`` one on the same array, as one result.

        The devices ``later`` programmed take its target, last read and convergence; the
        others keep this job's. Pulses per device, iterations and times add up; the protocol
        and settings are the later job's.

        Raises
        ------
        ValueError
            If the two results are not of arrays of the same shape.
        """
        if later.targets.shape != self.targets.shape:
            raise ValueError(f"the later job programmed an array of shape {later.targets.shape}, this one {self.targets.shape}")
        m = later.mask

        def time(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        return ProgramResult(
            later.protocol,
            np.where(m, later.targets, self.targets),
            np.where(m, later.achieved, self.achieved),
            np.where(m, later.converged, self.converged),
            self.pulses + later.pulses,
            self.iterations + later.iterations,
            self.wall_time + later.wall_time,
            time(self.bench_time, later.bench_time),
            self.physical_limit + later.physical_limit,
            settings=dict(later.settings),
        )

    def save(self, store: Any) -> None:
        """Write the per-device outcome into a run store.

        Parameters
        ----------
        store : RunStore
            Receives arrays ``achieved`` (S), ``converged`` and ``pulses``, dims (row, col).
        """
        store.write("achieved", self.achieved, ("row", "col"), "S", long_name="last read of each device")
        store.write("converged", self.converged, ("row", "col"), "1")
        store.write("pulses", self.pulses, ("row", "col"), "1", long_name="pulses delivered to each device")

    def summary(self) -> dict[str, Any]:
        """What ``labrram program --json`` reports: ``devices``, ``converged_fraction``,
        ``rms_error`` (S), ``rms_relative_error``, ``rms_error_converged`` (S),
        ``pulses_per_device``, ``max_pulses``, ``iterations``, ``wall_time``, ``bench_time``
        and ``physical_limit`` (s)."""
        m = self.mask
        err = (self.achieved - self.targets)[m]
        return {
            "protocol": self.protocol,
            "devices": int(m.sum()),
            "converged_fraction": float(self.converged[m].mean()),
            "rms_error": float(np.sqrt(np.mean(err**2))),
            "rms_relative_error": float(np.sqrt(np.mean((err / self.targets[m]) ** 2))),
            "rms_error_converged": float(np.sqrt(np.mean((self.achieved - self.targets)[m & self.converged] ** 2))) if np.any(m & self.converged) else None,
            "pulses_per_device": float(self.pulses[m].mean()),
            "max_pulses": int(self.pulses[m].max()),
            "iterations": self.iterations,
            "wall_time": self.wall_time,
            "bench_time": self.bench_time,
            "physical_limit": self.physical_limit,
        }


@dataclass
class DeviceState:
    """Per-device state of a programming plan, flat over the programmed devices (row-major)."""

    rows: np.ndarray
    cols: np.ndarray
    targets: np.ndarray
    achieved: np.ndarray
    converged: np.ndarray
    pulses: np.ndarray
    param: np.ndarray
    iteration: int = 0
    stall: np.ndarray | None = None  # iterations without progress (protocols that give up use it)

    def __post_init__(self) -> None:
        if self.stall is None:
            self.stall = np.zeros(self.targets.size)

    @classmethod
    def start(cls, targets: np.ndarray, param: Any) -> "DeviceState":
        """Every non-NaN target, nothing achieved yet, ``param`` per device (or one for all)."""
        rows, cols = (a.astype(np.int32) for a in np.nonzero(~np.isnan(targets)))  # half the memory of int64
        n = rows.size
        return cls(rows, cols, targets[rows, cols], np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, np.int32),
                   np.broadcast_to(np.asarray(param, dtype=float), (n,)).copy())  # fmt: skip


def program_result(shape: tuple[int, int], name: str, targets: np.ndarray, st: DeviceState, settings: dict) -> ProgramResult:
    """The result of a programming plan from its per-device state (the engine fills in the
    times)."""
    return ProgramResult(
        name,
        targets,
        scatter(shape, st.rows, st.cols, st.achieved, np.nan),
        scatter(shape, st.rows, st.cols, st.converged, False),
        scatter(shape, st.rows, st.cols, st.pulses, 0),
        st.iteration,
        0.0,
        settings=settings,
    )


def scatter(shape, rows, cols, values, fill):
    """An array of ``shape`` holding ``values`` at ``(rows, cols)`` and ``fill`` elsewhere."""
    values = np.asarray(values)
    out = np.full(shape, fill, dtype=values.dtype if values.dtype != bool else bool)
    out[rows, cols] = values
    return out
