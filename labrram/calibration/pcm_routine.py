"""Characterization of a 1T1R PCM array, run on any :class:`~labrram.crossbar.Crossbar`.

1. **Ladder programming** (Bonnet et al. 2023, Alg. 2; the same ladder as the PCM write-verify,
   :func:`labrram.protocols.write_verify_pcm.pcm_ladder`): after a full RESET, every device
   outside its band ``target ± half_width`` gets ``SET(V_S), V_S += dV`` when too low and
   ``RESET(V_R), V_R -= dV`` when too high, all devices in one batch per step; every pulse
   amplitude and every verify read is kept (the SET/RESET ladders).
2. **Programming noise**: the devices are read ``t_first`` after they converged.
3. **Drift**: ``reads_per_time`` averaged reads at each of ``drift_times`` after programming
   (log-spaced out to one day; on the simulated bench the virtual clock advances, nothing
   sleeps).
4. **Read noise**: ``read_repeats`` back-to-back reads at ``t_first``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..crossbar import Crossbar
from ..protocols.engine import Progress, run_plan
from ..protocols.messages import Now, Read, Report, Wait
from ..protocols.plan import PlanRun, register
from ..protocols.write_verify_pcm import PCMWriteVerify, pcm_ladder
from ..timing import BenchTimer
from .routine import CharacterizationPlan, select_devices


@dataclass(frozen=True)
class PCMCharacterization:
    """Settings of the PCM characterization (:func:`labrram.characterize` with ``kind="pcm"``).

    Attributes
    ----------
    n_devices : int
        Devices measured: distinct cells drawn at random over the whole array (seeded by
        ``seed``), shared out over the ``targets`` levels.
    targets : tuple of float
        Conductance levels the ladder programs, S.
    half_width : float
        Half-width of each level's band, S.
    gate : float
        Gate voltage of every pulse, V.
    v_set0, v_set_max, dv_set : float
        SET ladder: first amplitude, largest amplitude and step, V.
    set_width : float
        SET pulse width, s.
    v_reset0, v_reset_min, dv_reset : float
        RESET ladder: first amplitude, smallest amplitude and step, V.
    reset_width : float
        RESET pulse width, s.
    max_pulses : int
        Pulses per device before the ladder gives up on it.
    t_first : float
        Time from convergence to the first read (programming noise), s.
    drift_times : tuple of float
        Times after programming of the drift reads, s (the first >= ``t_first``).
    reads_per_time : int
        Reads averaged at each drift time.
    read_repeats : int
        Back-to-back reads for the read noise.
    seed : int
        Seed of the device selection.
    """

    n_devices: int = 768
    targets: tuple[float, ...] = (2e-6, 4e-6, 7e-6, 11e-6, 16e-6, 22e-6)
    half_width: float = 0.5e-6
    gate: float = 3.3
    v_set0: float = 1.1
    v_set_max: float = 1.8
    dv_set: float = 0.1
    set_width: float = 1e-6
    v_reset0: float = 2.9
    v_reset_min: float = 2.7
    dv_reset: float = 0.05
    reset_width: float = 50e-9
    max_pulses: int = 150
    t_first: float = 20.0
    drift_times: tuple[float, ...] = tuple(float(round(t, 1)) for t in np.geomspace(20.0, 86400.0, 16))
    reads_per_time: int = 1
    read_repeats: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_devices < 8:
            raise ValueError("n_devices must be at least 8")
        if len(self.targets) < 3 or any(t <= 0 for t in self.targets):
            raise ValueError("targets must be at least 3 positive conductances")
        if len(self.drift_times) < 3 or sorted(self.drift_times) != list(self.drift_times) or self.drift_times[0] < self.t_first:
            raise ValueError("drift_times must be 3 or more increasing times, the first >= t_first")
        if self.read_repeats < 2 or not 1 <= self.reads_per_time <= self.read_repeats:
            raise ValueError("read_repeats must be at least 2 and reads_per_time between 1 and read_repeats")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data (tuples as lists), as a run store records them."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass
class PCMData:
    """Raw PCM characterization data, all SI."""

    rows: np.ndarray  # (device,)
    cols: np.ndarray
    level: np.ndarray  # (device,) index into targets
    targets: np.ndarray  # (level,), S
    converged: np.ndarray  # (device,) bool
    pulses: np.ndarray  # (device,)
    ladder_amplitude: np.ndarray  # (step, device), V; +SET, -RESET, 0 none
    ladder_g: np.ndarray  # (step, device), S, verify read before the step (NaN when done)
    drift_times: np.ndarray  # (time,), s after programming
    drift_g: np.ndarray  # (time, device), S
    read_repeats: np.ndarray  # (repeat, device), S
    settings: dict[str, Any] = field(default_factory=dict)

    DIMS = {
        "rows": ("device",),
        "cols": ("device",),
        "level": ("device",),
        "targets": ("level",),
        "converged": ("device",),
        "pulses": ("device",),
        "ladder_amplitude": ("step", "device"),
        "ladder_g": ("step", "device"),
        "drift_times": ("time",),
        "drift_g": ("time", "device"),
        "read_repeats": ("repeat", "device"),
    }
    UNITS = {
        "rows": "1",
        "cols": "1",
        "level": "1",
        "targets": "S",
        "converged": "1",
        "pulses": "1",
        "ladder_amplitude": "V",
        "ladder_g": "S",
        "drift_times": "s",
        "drift_g": "S",
        "read_repeats": "S",
    }

    def save(self, store) -> None:
        for name, dims in self.DIMS.items():
            store.write(name, getattr(self, name), dims, self.UNITS[name])

    @classmethod
    def load(cls, store) -> "PCMData":
        return cls(**{name: store.read(name) for name in cls.DIMS}, settings=store.attrs.get("settings", {}))


def assign_levels(targets: np.ndarray, n_devices: int, seed: int) -> np.ndarray:
    """Level index of every device, with more devices at low conductance (weights ∝ 1/target):
    the 1/f read noise is relatively largest there, and so is the drift exponent's slope."""
    w = 1.0 / np.asarray(targets, dtype=float)
    counts = np.floor(w / w.sum() * n_devices).astype(int)
    counts = np.maximum(counts, 1)
    counts[0] += n_devices - counts.sum()
    if counts[0] < 1:
        raise ValueError(f"{n_devices} devices are too few for {targets.size} levels")
    return np.random.default_rng(seed + 1).permutation(np.repeat(np.arange(targets.size), counts))


@register
class CharacterizePCM(CharacterizationPlan):
    """The PCM characterization as a plan (module docstring); returns :class:`PCMData`."""

    name = "characterize-pcm"
    device_kind = "pcm"
    settings_class = PCMCharacterization

    def ladder_settings(self) -> PCMWriteVerify:
        """The characterization's ladder as the PCM write-verify's settings (one ladder for both)."""
        s = self.settings
        return PCMWriteVerify(
            half_width=s.half_width, gate=s.gate, v_set0=s.v_set0, v_set_max=s.v_set_max, dv_set=s.dv_set, set_width=s.set_width,
            v_reset0=s.v_reset0, v_reset_min=s.v_reset_min, dv_reset=s.dv_reset, reset_width=s.reset_width,
            max_iterations=s.max_pulses, g_range=(min(s.targets), max(s.targets)),
        )  # fmt: skip

    def check(self, xb: Crossbar) -> None:
        self.ladder_settings().check(xb, "PCM characterization")
        select_devices(xb.shape, self.settings.n_devices, self.settings.seed)  # enough devices

    def run(self, shape: tuple[int, int]) -> PlanRun:
        s = self.settings
        rows, cols = select_devices(shape, s.n_devices, s.seed)
        targets = np.asarray(s.targets, dtype=float)
        level = assign_levels(targets, s.n_devices, s.seed)
        yield Report("ladder programming", 0, 3)
        out = yield from pcm_ladder(rows, cols, targets[level], self.ladder_settings(), label="ladder programming")
        t_prog = yield Now()
        yield Report("drift", 1, 3)
        times = np.asarray(s.drift_times, dtype=float)
        drift = np.empty((times.size, s.n_devices))
        repeats = np.empty((s.read_repeats, s.n_devices))
        for j, t in enumerate(times):
            now = yield Now()
            yield Wait(max(t_prog + t - now, 0.0))
            if j == 0:
                for k in range(s.read_repeats):
                    repeats[k] = yield Read(rows, cols)
                drift[j] = repeats[: s.reads_per_time].mean(axis=0)
            else:
                reads = []
                for _ in range(s.reads_per_time):
                    reads.append((yield Read(rows, cols)))
                drift[j] = np.mean(reads, axis=0)
        yield Report("done", 3, 3)
        amps = np.array(out.amplitudes) if out.amplitudes else np.zeros((0, s.n_devices))
        reads_arr = np.array(out.reads) if out.reads else np.zeros((0, s.n_devices))
        return PCMData(rows, cols, level, targets, out.converged, out.pulses, amps, reads_arr, times, drift, repeats, settings=s.to_dict())


def characterize_pcm(
    xb: Crossbar,
    timer: BenchTimer | None = None,
    settings: PCMCharacterization = PCMCharacterization(),
    progress: Progress | None = None,
    out: str | Path | None = None,
) -> PCMData:
    """Run :class:`CharacterizePCM` on ``xb`` through the engine and return the raw data."""
    return run_plan(xb, CharacterizePCM(settings), out, timer=timer, progress=progress)
