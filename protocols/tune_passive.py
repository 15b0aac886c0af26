"""Write-verify (tuning) for passive (0T1R) crossbars: SET / RESET amplitude staircases, one
selected cell per pulse, the unselected lines biased by the V/2 or V/3 scheme.

There is no access transistor: every pulse selects one cell (its row at ``+V``, its column at 0
for SET; reversed for RESET) and the biasing scheme holds every other line at ``V/2`` (or
``V/3`` / ``2V/3``), so the half-selected cells of the row and column see ``V/2`` or ``V/3``.
Amplitudes are therefore bounded twice: above the calibrated switching thresholds so that the
selected cell moves, and below ``threshold * (1 - half_select_margin) / half-select fraction``
so that the half-selected cells only suffer their (slow) sub-threshold disturb.

Loop (all devices still programming in one batch per step; each pulse is one selection):

1. verify read of the devices through the crossbar under the scheme. The board senses the
   selected column: the device's current plus the currents of the half-selected cells of the
   column (sneak background). The read is converted to the device's conductance with the
   calibrated I-V nonlinearity ``I = (G/a) sinh(aV)`` and one of two background estimates:

   * ``"believed"``: the column holds what the tuner believes — the targets of the programmed
     cells, ``believed`` (default: the calibrated as-fabricated median) for the others:
     ``G = (I - (B - b_self) s(u)) / s(V)`` with ``s(v) = sinh(a v)/a``, ``u = V/2`` or ``V/3``.
     Cheap (only the active devices are read); an unprogrammed cell off its belief leaves a
     per-column offset in the array.
   * ``"measured"``: every cell of the column is read; ``I_k = G_k (s(V) - s(u)) + S s(u)``
     for each, which gives the column sum ``S`` and then every ``G_k`` — no belief, but
     ``m`` reads per column and a noisier result (the division by ``s(V) - s(u)``).

2. inside ``max(tolerance * target, abs_tolerance)``: converged. Below: a SET pulse at the
   device's SET amplitude; above: a RESET pulse at its RESET amplitude. Each ladder starts at
   ``v_set0`` / ``v_reset0`` and rises by ``dv`` (up to ``v_set_max`` / ``v_reset_max``) after
   every pulse that moved the device by less than ``slow_fraction`` of its remaining distance
   (a staircase that stops climbing once the device moves fast enough). A device that changes
   direction (overshoot) backs the ladder that overshot off by ``backoff``. A device at the top
   of a ladder that no longer moves for ``give_up`` iterations sits at its window edge and is
   given up.
3. every device is read again at every iteration, converged ones included: programming
   its column-mates moves its read-out, and the half-select disturb moves the device. A
   converged device goes back into the loop when it leaves ``reenter`` times its band. The run
   ends when every device is converged (or given up), or at ``max_iterations``.

Settings beyond the station's limits, or amplitudes whose half-selected voltage reaches the
calibrated thresholds, are refused before any byte is sent. ``achieved`` in the result is the
last read-out (the tuner's view; the sneak-path error of a ``"believed"`` read stays in it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labrram.crossbar import Crossbar
from labrram.devices.passive import PassiveDeviceModel, device_current

from .engine import Progress, run_plan
from .messages import Bias, Pulse, Read, Report
from .plan import Plan, PlanRun, check_finite_settings, check_pulse_settings, model_from_json, model_to_json, register
from .results import DeviceState, ProgramResult, program_result, validate_targets

__all__ = ["HALF_SELECT", "PassiveTuning", "TunePassive", "read_out", "tune_passive"]

#: fraction of the selected cell's voltage a half-selected cell sees, per scheme
HALF_SELECT = {"V/2": 0.5, "V/3": 1.0 / 3.0}


@dataclass(frozen=True)
class PassiveTuning:
    """Settings of :func:`tune_passive` (SI units).

    Attributes
    ----------
    scheme : str
        Biasing of the unselected lines for every pulse and read, ``"V/2"`` or ``"V/3"``.
    tolerance : float
        Relative half-width of the target band.
    abs_tolerance : float
        Smallest half-width of the band, S (the read noise floor of a sneak-path read).
    v_set0, v_set_max : float
        First and largest SET amplitude (row above column), V.
    v_reset0, v_reset_max : float
        First and largest RESET amplitude (column above row), V.
    dv : float
        Staircase step after each pulse that left the device on the same side, V.
    backoff : float
        How far the ladder that overshot steps back, V.
    width : float
        Pulse width, s.
    slow_fraction : float
        A ladder rises by ``dv`` only when the last pulse moved the read-out by less than this
        fraction of the remaining distance to the target.
    max_iterations : int
        Iteration cap (one verify read and at most one pulse per device per iteration).
    give_up : int
        Iterations at the top of a ladder without moving (the device sits at its window edge,
        or the read-out's sneak-path offset puts the target beyond it) before it is given up.
    reenter : float
        A converged device goes back into the loop when a later read leaves ``reenter`` times
        its band (hysteresis against read noise).
    background : str
        ``"believed"`` or ``"measured"`` sneak-background estimate (module docstring).
    half_select_margin : float
        Half-selected cells must stay this fraction below the calibrated thresholds.
    """

    scheme: str = "V/2"
    tolerance: float = 0.02
    abs_tolerance: float = 1e-6
    v_set0: float = 1.05
    v_set_max: float = 1.6
    v_reset0: float = 1.15
    v_reset_max: float = 1.7
    dv: float = 0.03
    backoff: float = 0.06
    width: float = 2e-6
    slow_fraction: float = 0.3
    max_iterations: int = 150
    give_up: int = 6
    reenter: float = 2.0
    background: str = "believed"
    half_select_margin: float = 0.15

    def __post_init__(self) -> None:
        check_finite_settings(self)
        if self.scheme not in HALF_SELECT:
            raise ValueError(f"scheme must be one of {sorted(HALF_SELECT)}, got {self.scheme!r}")
        if self.background not in ("believed", "measured"):
            raise ValueError(f"background must be 'believed' or 'measured', got {self.background!r}")
        if not (0 < self.tolerance < 1):
            raise ValueError(f"tolerance must be a fraction between 0 and 1, got {self.tolerance!r}")
        if not self.abs_tolerance >= 0:
            raise ValueError(f"abs_tolerance must be >= 0 S, got {self.abs_tolerance!r}")
        if not (0 < self.v_set0 <= self.v_set_max):
            raise ValueError(f"need 0 < v_set0 <= v_set_max, got {self.v_set0!r} and {self.v_set_max!r}")
        if not (0 < self.v_reset0 <= self.v_reset_max):
            raise ValueError(f"need 0 < v_reset0 <= v_reset_max, got {self.v_reset0!r} and {self.v_reset_max!r}")
        if not (self.dv > 0 and self.backoff >= 0 and self.width > 0):
            raise ValueError("dv and width must be > 0, backoff >= 0")
        if int(self.max_iterations) != self.max_iterations or self.max_iterations < 1:
            raise ValueError(f"max_iterations must be a positive integer, got {self.max_iterations!r}")
        if not (0 < self.slow_fraction <= 1):
            raise ValueError(f"slow_fraction must lie in (0, 1], got {self.slow_fraction!r}")
        if int(self.give_up) != self.give_up or self.give_up < 1:
            raise ValueError(f"give_up must be a positive integer, got {self.give_up!r}")
        if not self.reenter >= 1:
            raise ValueError(f"reenter must be >= 1, got {self.reenter!r}")
        if not (0 <= self.half_select_margin < 1):
            raise ValueError(f"half_select_margin must lie in [0, 1), got {self.half_select_margin!r}")

    def check_half_select(self, model: PassiveDeviceModel) -> None:
        """Refuse amplitudes whose half-selected voltage reaches the calibrated thresholds
        (less ``half_select_margin``), and a ladder that never reaches them.

        Parameters
        ----------
        model : PassiveDeviceModel
            The calibrated device model (its SET and RESET thresholds, V).

        Raises
        ------
        ValueError
            Naming the ladder and the voltages.
        """
        f = HALF_SELECT[self.scheme]
        for what, v_max, v0, v_th in (("SET", self.v_set_max, self.v_set0, model.v_set), ("RESET", self.v_reset_max, self.v_reset0, model.v_reset)):
            limit = v_th * (1 - self.half_select_margin) / f
            if v_max > limit:
                raise ValueError(
                    f"{what} amplitude up to {v_max:.3g} V puts {f * v_max:.3g} V on the half-selected cells under "
                    f"{self.scheme}: above {1 - self.half_select_margin:.0%} of the calibrated {what} threshold "
                    f"{v_th:.3g} V (largest allowed amplitude {limit:.3g} V)"
                )
            if v_max <= v_th:
                raise ValueError(f"{what} amplitudes up to {v_max:.3g} V never reach the calibrated {what} threshold {v_th:.3g} V")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data, as a run store records them."""
        return asdict(self)


def read_out(
    sensed: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    model: PassiveDeviceModel,
    v_read: float,
    scheme: str,
    believed: np.ndarray,
) -> np.ndarray:
    """Conductances of the cells ``(rows, cols)`` from their sensed column currents (A) under the
    ``"believed"`` background (``believed``: array-shaped column contents, S)."""
    s_sel = float(device_current(1.0, model.a, v_read))
    s_half = float(device_current(1.0, model.a, v_read * HALF_SELECT[scheme]))
    col_sum = believed.sum(axis=0)
    return (sensed - (col_sum[cols] - believed[rows, cols]) * s_half) / s_sel


def _read_measured(sensed_cols: np.ndarray, model: PassiveDeviceModel, v_read: float, scheme: str) -> np.ndarray:
    """Conductances of every cell of columns from their sensed currents (``(m, k)``, A): the
    column sum from all ``m`` reads, then each cell (module docstring)."""
    m = sensed_cols.shape[0]
    s_sel = float(device_current(1.0, model.a, v_read))
    s_half = float(device_current(1.0, model.a, v_read * HALF_SELECT[scheme]))
    total = sensed_cols.sum(axis=0) / (s_sel + (m - 1) * s_half)
    return (sensed_cols - total[None, :] * s_half) / (s_sel - s_half)


@register
class TunePassive(Plan):
    """Tune every non-NaN target (S, array-shaped) of a passive array (module docstring).

    Parameters
    ----------
    targets : ndarray
        Conductance targets, S; NaN leaves a device alone.
    model : PassiveDeviceModel
        The calibrated model: nonlinearity of the read-out, thresholds, window.
    settings : PassiveTuning
        Protocol settings.
    believed : ndarray, optional
        What the unprogrammed cells hold, S (``"believed"`` background); default the
        calibrated as-fabricated median ``model.g_init_median``.
    """

    name = "tune-passive"

    def __init__(self, targets: np.ndarray, model: PassiveDeviceModel, settings: PassiveTuning = PassiveTuning(), believed: np.ndarray | None = None,
                 read_voltage: float | None = None) -> None:  # fmt: skip
        self.targets = targets
        self.model = model
        self.settings = settings
        self.believed = believed
        self.read_voltage = read_voltage  # the run's, when it resumes (the read-out depends on it)

    def check(self, xb: Crossbar) -> None:
        s, model = self.settings, self.model
        s.check_half_select(model)
        check_pulse_settings(xb, "passive tuning SET", [s.v_set0, s.v_set_max], 0.0, s.width)
        check_pulse_settings(xb, "passive tuning RESET", [s.v_reset0, s.v_reset_max], 0.0, s.width)
        self.targets = validate_targets(self.targets, xb.shape, (model.g_min, model.g_max))
        if self.believed is None:
            believed = np.full(xb.shape, float(model.g_init_median))
        else:
            believed = np.asarray(self.believed, dtype=float)
            if believed.shape != tuple(xb.shape) or not np.all(np.isfinite(believed)):
                raise ValueError(f"believed must be a finite {tuple(xb.shape)} array of conductances (S)")
        self.believed = believed.copy()
        if self.read_voltage is not None and float(self.read_voltage) != float(xb.read_voltage):
            raise ValueError(f"the run reads at {self.read_voltage:g} V; this station's crossbar reads at {xb.read_voltage:g} V")
        self.read_voltage = float(xb.read_voltage)

    def params(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "calibration": model_to_json(self.model), "read_voltage": self.read_voltage}

    def inputs(self) -> dict[str, Any]:
        return {"targets": (np.asarray(self.targets, dtype=float), ("row", "col"), "S"), "believed": (self.believed, ("row", "col"), "S")}

    @classmethod
    def from_store(cls, params: dict[str, Any], store: Any) -> "TunePassive":
        return cls(store.read("targets"), model_from_json(params["calibration"]), PassiveTuning(**params["settings"]), store.read("believed"), float(params["read_voltage"]))

    def run(self, shape: tuple[int, int]) -> PlanRun:
        s, model, targets = self.settings, self.model, self.targets
        v = self.read_voltage
        used = ~np.isnan(targets)
        believed_arr = self.believed.copy()
        believed_arr[used] = targets[used]
        st = DeviceState.start(targets, s.v_set0)
        rows, cols, tgt = st.rows, st.cols, st.targets
        n = tgt.size
        st.stall = np.full(n, s.v_reset0)  # the next RESET amplitude of each device
        band = np.maximum(s.tolerance * tgt, s.abs_tolerance)
        last = np.zeros(n, np.int8)  # +1 last pulse SET, -1 RESET
        given_up = np.zeros(n, bool)
        at_edge = np.zeros(n, np.int32)  # iterations at the top of a ladder without moving
        prev = np.full(n, np.nan)  # the previous read-out
        m_rows = shape[0]

        def read(idx: np.ndarray):
            if s.background == "believed":
                sensed = (yield Read(rows[idx], cols[idx])) * v
                return read_out(sensed, rows[idx], cols[idx], model, v, s.scheme, believed_arr)
            ucols = np.unique(cols[idx])
            rr = np.repeat(np.arange(m_rows), ucols.size)
            cc = np.tile(ucols, m_rows)
            sensed = ((yield Read(rr, cc)) * v).reshape(m_rows, ucols.size)
            g = _read_measured(sensed, model, v, s.scheme)
            return g[rows[idx], np.searchsorted(ucols, cols[idx])]

        def pulse(kind: str, idx: np.ndarray, amplitude: np.ndarray):
            r = yield Pulse(kind, rows[idx], cols[idx], amplitude, 0.0, s.width, read=False)
            given_up[idx[r.refused]] = True  # its budget is spent
            st.pulses[idx[r.delivered]] += 1

        yield Bias.of(s.scheme)
        while st.iteration < s.max_iterations:
            # every device is verified each iteration: programming its column-mates moves its read
            idx = np.nonzero(~given_up)[0]
            if idx.size == 0:
                break
            g = yield from read(idx)
            st.achieved[idx] = g
            err = g - tgt[idx]
            inside = np.abs(err) <= band[idx]
            stays = st.converged[idx] & (np.abs(err) <= s.reenter * band[idx])
            st.converged[idx] = inside | stays
            active = ~st.converged[idx]
            if not active.any():
                break
            idx, g, err = idx[active], g[active], err[active]
            up, down = idx[err < -band[idx]], idx[err > band[idx]]
            st.iteration += 1
            # the staircase: a ladder rises only while its pulses close less than
            # ``slow_fraction`` of the remaining distance (the device is not moving yet)
            moved = np.abs(g - prev[idx])
            slow = ~(moved >= s.slow_fraction * np.abs(err))  # no previous read: rise
            same_up = (last[idx] == 1) & (err < 0)
            same_down = (last[idx] == -1) & (err > 0)
            rise_up = idx[same_up & slow]
            st.param[rise_up] = np.minimum(st.param[rise_up] + s.dv, s.v_set_max)
            rise_down = idx[same_down & slow]
            st.stall[rise_down] = np.minimum(st.stall[rise_down] + s.dv, s.v_reset_max)
            # at the top of a ladder without moving: the device sits at its window edge
            edge = (same_up & (st.param[idx] >= s.v_set_max)) | (same_down & (st.stall[idx] >= s.v_reset_max))
            edge &= moved < 0.5 * band[idx]
            at_edge[idx] = np.where(edge, at_edge[idx] + 1, 0)
            given_up[idx[at_edge[idx] >= s.give_up]] = True
            up, down = up[~given_up[up]], down[~given_up[down]]
            prev[idx] = g
            # an overshoot: the ladder that caused it backs off
            flip_up = up[last[up] == -1]
            st.stall[flip_up] = np.maximum(st.stall[flip_up] - s.backoff, s.v_reset0)
            flip_down = down[last[down] == 1]
            st.param[flip_down] = np.maximum(st.param[flip_down] - s.backoff, s.v_set0)
            if up.size:
                yield from pulse("SET", up, st.param[up].copy())
                last[up] = 1
            if down.size:
                yield from pulse("RESET", down, st.stall[down].copy())
                last[down] = -1
            yield Report("passive tuning", int(st.converged.sum()), n)
        return program_result(shape, self.name, targets, st, s.to_dict())


def tune_passive(
    xb: Crossbar,
    targets: np.ndarray,
    model: PassiveDeviceModel,
    settings: PassiveTuning = PassiveTuning(),
    believed: np.ndarray | None = None,
    out: str | Path | None = None,
    progress: Progress | None = None,
    timer: Any = None,
) -> ProgramResult:
    """Run :class:`TunePassive` on ``xb`` through the engine (with ``out``, a run store: recorded and resumable)."""
    return run_plan(xb, TunePassive(targets, model, settings, believed), out, timer=timer, progress=progress)
