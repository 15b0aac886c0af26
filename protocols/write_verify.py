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

from . import set_policy
from .engine import Progress, run_plan
from .messages import DELIVERED, NOT_DELIVERED, Pulse, Read, Report, in_steps
from .plan import Plan, PlanRun, check_finite_settings, check_pulse_settings, model_from_json, model_to_json, register
from .results import DeviceState, ProgramResult, program_result, validate_targets

#: devices an iteration of ReRAM write-verify, and its final check, take at a time (SET,
#: re-reads, RESET of one block, then the next): the plan's memory stays flat however large the
#: array (a 512x512 run peaks near 140 MB)
BLOCK_DEVICES = 1 << 15


#: how write-verify chooses each SET's gate (:class:`ReRAMWriteVerify`)
POLICIES = ("aim", "ispp")


@dataclass(frozen=True)
class ReRAMWriteVerify:
    """Settings of :func:`write_verify_reram` (SI units).

    A device has converged when a verify read is within the band ``max(tolerance * target,
    abs_tolerance)`` narrowed by ``guard`` standard deviations of the calibrated read noise (so
    that a device accepted on one noisy read is inside the band in truth, not just in the read).
    A device that stays below its band with the gate at ``gate_max`` (or below a quarter of its
    target: not switching at all), or above it with the gate at ``gate_min``, for ``give_up``
    iterations in a row is declared failed (a stuck device) and is not pulsed again.

    ``policy`` chooses each SET's gate:

    * ``"aim"`` (default): the gate whose calibrated median — times the device's own factor,
      learnt from its earlier SETs — costs the fewest pulses on average
      (:mod:`.set_policy`); the devices are read first and only those above their band are
      RESET; a device whose read falls between the acceptance band and the tolerance is read
      ``rereads`` more times and judged on the mean (the guard shrinks with the averaged noise);
      a ``pilot`` fraction of the devices is SET first, alone, to measure how far the chip sits
      from its calibration, and every other device starts from that;
    * ``"ispp"``: incremental step pulse programming on the gate — a RESET of every device, a
      first gate ``start_margin`` below the target's calibrated median, ``gate_step`` up after an
      undershoot, ``backoff`` down and a RESET after an overshoot (``start_margin=0.99`` and a
      large ``backoff`` give plain ISPP from ``gate_min``).

    Attributes
    ----------
    policy : str
        ``"aim"`` or ``"ispp"`` (above).
    tolerance : float
        Relative half-width of the band around each target.
    abs_tolerance : float
        Smallest half-width of the band, S.
    rereads : int
        Extra reads of a device whose read falls near the band's edge (``"aim"``).
    pilot : float
        Fraction of the devices SET first, alone (``"aim"``).
    start_margin : float
        How far below the target's calibrated median the first gate aims, as a fraction
        (``"ispp"``).
    gate_step, backoff : float
        Gate step up after an undershoot and down after an overshoot, V (``"ispp"``).
    max_iterations : int
        Iteration cap.
    give_up : int
        Iterations at a gate limit without reaching the band before a device is given up.
    guard : float
        Standard deviations of the calibrated read noise by which the band is narrowed.
    touch_ups : int
        Rounds of the final verify (:func:`final_check`): after the loop, every accepted device
        is read again and judged as at acceptance; one that has left its band since (relaxation
        moves a device up to 1.5 bands, a fault more) is programmed again, for at most
        ``touch_up_iterations`` more iterations per round. After the last round a device outside
        its band is not converged.
    touch_up_iterations : int
        Iterations of one touch-up round.
    gate_min, gate_max : float
        The gate (word-line) voltage range of the SETs, V.
    set_amplitude, set_width : float
        SET pulse: V, s.
    reset_amplitude, reset_gate, reset_width : float
        RESET pulse: V; its gate, V; its width, s.
    """

    policy: str = "aim"
    tolerance: float = 0.05
    abs_tolerance: float = 1e-6
    rereads: int = 8
    pilot: float = 0.01
    start_margin: float = 0.15
    gate_step: float = 0.01
    backoff: float = 0.03
    max_iterations: int = 200
    give_up: int = 6
    guard: float = 3.0
    touch_ups: int = 2
    touch_up_iterations: int = 60
    gate_min: float = 1.2
    gate_max: float = 2.4
    set_amplitude: float = 1.8
    set_width: float = 1e-6
    reset_amplitude: float = 2.6
    reset_gate: float = 4.8
    reset_width: float = 100e-9

    def __post_init__(self) -> None:
        check_finite_settings(self)
        if not (0 < self.tolerance < 1):
            raise ValueError("tolerance must be a fraction between 0 and 1")
        if self.abs_tolerance < 0 or self.guard < 0 or self.backoff < 0:
            raise ValueError("abs_tolerance, guard and backoff must be >= 0")
        if not (0 <= self.pilot < 1 and 0 <= self.start_margin < 1):
            raise ValueError("pilot and start_margin must be fractions in [0, 1)")
        if self.give_up < 1:
            raise ValueError("give_up must be >= 1 (iterations at a gate limit)")
        if self.rereads > 64:
            raise ValueError(f"rereads must be at most 64, got {self.rereads}")
        if self.gate_step <= 0 or self.max_iterations < 1:
            raise ValueError("gate_step must be > 0 and max_iterations >= 1")
        if not self.gate_min < self.gate_max:
            raise ValueError("gate_min must be below gate_max")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {self.policy!r}")
        if self.rereads < 0:
            raise ValueError("rereads must be >= 0")
        if self.touch_ups < 0 or self.touch_up_iterations < 1:
            raise ValueError("touch_ups must be >= 0 and touch_up_iterations >= 1")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready data, as a run store records them."""
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


def tolerance_band(s: ReRAMWriteVerify, targets: np.ndarray) -> np.ndarray:
    """Half-width of the tolerance, ``max(tolerance * target, abs_tolerance)``, S."""
    return np.maximum(s.tolerance * targets, s.abs_tolerance)


def acceptance_band(s: ReRAMWriteVerify, model: ReRAMModel, targets: np.ndarray, reads: int = 1) -> np.ndarray:
    """Half-width of the band the mean of ``reads`` verify reads must fall in, S: the tolerance
    narrowed by ``guard`` standard deviations of that mean's read noise (docstring of the
    settings)."""
    full = tolerance_band(s, targets)
    return np.maximum(full - s.guard * model.read_noise_rel * targets / np.sqrt(reads), 0.4 * full)


def averaged_band(s: ReRAMWriteVerify, model: ReRAMModel, targets: np.ndarray) -> np.ndarray:
    """The acceptance band of a device judged on ``1 + rereads`` reads, S."""
    return acceptance_band(s, model, targets, 1 + s.rereads)


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
        # runs stored before there was a choice stepped the gate, and before the final verify touched up
        settings = {"policy": "ispp", "touch_ups": 0, **params["settings"]}
        return cls(store.read("targets"), model_from_json(params["calibration"]), ReRAMWriteVerify(**settings))

    def run(self, shape: tuple[int, int]) -> PlanRun:
        s, model, targets = self.settings, self.model, self.targets
        st = DeviceState.start(targets, 0.0)
        reset_failed = np.zeros(st.targets.size, dtype=bool)  # the last RESET left the device where it was
        aim = s.policy == "aim"
        # the device factor's posterior (aim): precision and precision-weighted mean, prior N(1, d2d^2)
        prior = 1.0 / max(model.d2d_rel, 1e-3) ** 2
        f_prec, f_sum = np.full(st.targets.size, prior), np.full(st.targets.size, prior)

        def pulse(kind: str, idx: np.ndarray, gate, amplitude: float, width: float):
            r = yield from in_steps(Pulse(kind, st.rows[idx], st.cols[idx], amplitude, gate, width))
            st.param[idx[r.refused]] = np.nan  # its budget is spent: given up, never pulsed again
            st.pulses[idx[r.delivered]] += 1
            st.achieved[idx] = np.where(r.refused, st.achieved[idx], r.g)
            return r

        if aim:  # read first: only a device above its band needs a RESET before it can be SET
            st.achieved[:] = yield from in_steps(Read(st.rows, st.cols))
            above = np.flatnonzero(st.achieved > st.targets + acceptance_band(s, model, st.targets))
            if above.size:
                yield from pulse("RESET", above, s.reset_gate, s.reset_amplitude, s.reset_width)
        else:
            st.param = start_gates(model, st.targets, s.start_margin, s.gate_min, s.gate_max)
            yield from pulse("RESET", np.arange(st.targets.size), s.reset_gate, s.reset_amplitude, s.reset_width)
        st.converged[:] = np.abs(st.achieved - st.targets) <= acceptance_band(s, model, st.targets)
        pilot = pilot_devices(st, s) if aim else None
        cap, rounds = s.max_iterations, 0
        while True:
            yield from self._loop(st, cap, reset_failed, f_prec, f_sum, pilot, pulse)
            left = yield from final_check(st, s, model)
            if not left.size or rounds >= s.touch_ups:
                break
            rounds, cap, pilot = rounds + 1, st.iteration + s.touch_up_iterations, None
            above = left[st.achieved[left] > st.targets[left] + acceptance_band(s, model, st.targets[left])]
            if above.size:  # risen since acceptance: down first, then SET again
                yield from pulse("RESET", above, s.reset_gate, s.reset_amplitude, s.reset_width)
        return program_result(shape, "write-verify", targets, st, s.to_dict())

    def _loop(self, st: DeviceState, cap: int, reset_failed: np.ndarray,
              f_prec: np.ndarray, f_sum: np.ndarray, pilot: np.ndarray | None, pulse: Any) -> PlanRun:  # fmt: skip
        """Iterations until every live device is accepted or ``cap`` iterations are done. An
        iteration takes its devices in blocks of at most :data:`BLOCK_DEVICES` (SET, re-reads,
        RESET of one block, then the next), so that its memory stays flat however large the
        array."""
        while st.iteration < cap:
            active = np.nonzero(~st.converged & ~np.isnan(st.param))[0]
            if active.size == 0:
                break
            if pilot is not None and st.iteration == 0:  # the pilot devices alone, in one block
                blocks = [np.intersect1d(active, pilot)]
            else:
                blocks = [active[i : i + BLOCK_DEVICES] for i in range(0, active.size, BLOCK_DEVICES)]
            for block in blocks:
                yield from self._block(st, block, reset_failed, f_prec, f_sum, pilot is not None and st.iteration == 0, pulse)
            st.iteration += 1
            yield Report("write-verify", int(st.converged.sum()), st.targets.size)

    def _block(self, st: DeviceState, active: np.ndarray, reset_failed: np.ndarray,
               f_prec: np.ndarray, f_sum: np.ndarray, pilot: bool, pulse: Any) -> PlanRun:  # fmt: skip
        """One iteration on the devices ``active``: a SET each, the re-reads of those near their
        band's edge, the bookkeeping, a RESET of those above their band (``pilot``: these are
        the pilot devices, whose SETs measure the chip's offset for every other device)."""
        s, model = self.settings, self.model
        aim = s.policy == "aim"
        if aim:
            wide = averaged_band(s, model, st.targets[active])  # what a landing in the tolerance is judged on
            st.param[active] = aim_gates(model, s, st.targets[active] - wide, st.targets[active] + wide, f_sum[active] / f_prec[active])
        gate = st.param[active].copy()
        g_before = st.achieved[active].copy()
        b = yield from pulse("SET", active, gate, s.set_amplitude, s.set_width)
        live = ~b.refused
        active, gate, status, g_new, g_before = active[live], gate[live], b.status[live], b.g[live], g_before[live]
        if aim:
            factor = f_sum[active] / f_prec[active]
            learn_factor(model, gate, g_before, g_new, status == DELIVERED, factor, f_prec, f_sum, active)
            if pilot:  # the chip's offset from its calibration
                others = np.setdiff1d(np.arange(st.targets.size), active)
                f_sum[others] = f_prec[others] * chip_factor(model, gate, g_before, g_new, status == DELIVERED, factor)
        err = g_new - st.targets[active]
        band = acceptance_band(s, model, st.targets[active])
        ok = np.abs(err) <= band
        edge = np.flatnonzero(~ok & (np.abs(err) <= tolerance_band(s, st.targets[active]))) if aim and s.rereads else np.empty(0, int)
        if edge.size:  # inside the tolerance but not surely: judge the mean of more reads
            g_new[edge] = (yield from _mean_of_reads(st, active[edge], g_new[edge], s.rereads)) / (s.rereads + 1)
            st.achieved[active[edge]] = g_new[edge]
            err = g_new - st.targets[active]
            averaged = averaged_band(s, model, st.targets[active[edge]])
            ok[edge] = np.abs(err[edge]) <= averaged
            band_now = band.copy()
            band_now[edge] = averaged
        else:
            band_now = band
        st.converged[active[ok]] = True
        tried = status != NOT_DELIVERED  # a pulse that provably never left does not step the gate
        under_m = (err < -band_now) & tried
        over_m = err > band_now
        under = active[under_m]
        if not aim:
            st.param[under] = np.minimum(st.param[under] + s.gate_step, s.gate_max)
        over = active[over_m]
        # no way left to move: below the band at the highest gate, or above it at the lowest
        # or not responding at all (a device stuck at HRS stays far below any target)
        silent = g_new < 0.25 * st.targets[active]
        if aim:  # at the aimed gate a draw that low is unlikely only where the spread is small
            mu = f_sum[active] / f_prec[active] * model.median(model.transistor.compliance(gate))
            silent &= mu - 2 * model.sigma_c2c(mu) > 0.25 * st.targets[active]
        stuck = under_m & ((gate >= s.gate_max) | silent)
        # above the band with no way down: at the lowest gate (ISPP: where it aims, an overshoot
        # there is the spread, not a fault), or a RESET that does nothing
        stuck |= over_m & tried & (((gate <= s.gate_min) & (not aim)) | reset_failed[active])
        st.stall[active] = np.where(stuck, st.stall[active] + 1, np.where(tried, 0, st.stall[active]))
        if not aim:
            st.param[over] = np.maximum(st.param[over] - s.backoff, s.gate_min)
        failed = active[st.stall[active] >= s.give_up]
        st.param[failed] = np.nan
        over = over[~np.isin(over, failed)]
        if over.size:
            before = st.achieved[over].copy()
            b = yield from pulse("RESET", over, s.reset_gate, s.reset_amplitude, s.reset_width)
            reset_failed[over] = (b.status == DELIVERED) & (b.g > 0.9 * before)  # the RESET changed nothing: stuck or dead


def aim_gates(model: ReRAMModel, s: ReRAMWriteVerify, lo: np.ndarray, hi: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Gates, V, whose median (the calibrated law times each device's ``factor``) costs the
    fewest pulses to land in ``[lo, hi]`` (S) — :func:`.set_policy.aim` — within the gate range."""
    m = set_policy.aim(lo, hi, model.sigma_c2c)
    icc = model.compliance_for(np.maximum(m / factor, 1e-9))
    return np.clip(model.transistor.gate_for(icc), s.gate_min, s.gate_max)


def pilot_devices(st: DeviceState, s: ReRAMWriteVerify) -> np.ndarray | None:
    """The devices SET first, alone (``pilot`` of them, at least 32): evenly spread over those
    with the upper half of the targets, where one SET measures the chip's offset from its
    calibration best (the spread is smallest). None when there are too few devices."""
    n = st.targets.size
    k = max(32, int(round(s.pilot * n)))
    if s.pilot <= 0 or n < 4 * k:
        return None
    upper = np.flatnonzero(st.targets >= np.median(st.targets))
    return np.sort(upper[np.linspace(0, upper.size - 1, k).astype(int)])


def _factor_draws(model: ReRAMModel, gate: np.ndarray, g_before: np.ndarray, g_new: np.ndarray, delivered: np.ndarray,
                  factor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Which SETs measure the device factor, their weights and their measures: a SET that moved a
    device from far below the draw's median (more than two spreads) is an uncensored draw of
    ``N(f mu, sigma)``, so ``g / mu`` measures ``f`` with spread ``sigma / mu`` (weight
    ``(mu / sigma)^2``). Returns (mask, weight, g / mu)."""
    mu = model.median(model.transistor.compliance(gate))
    sigma = model.sigma_c2c(factor * mu)
    draw = delivered & np.isfinite(g_new) & (g_before < factor * mu - 2 * sigma) & (g_new > g_before * (1 + 3 * model.read_noise_rel))
    return draw, (mu / sigma) ** 2, g_new / mu


def chip_factor(model: ReRAMModel, gate: np.ndarray, g_before: np.ndarray, g_new: np.ndarray, delivered: np.ndarray, factor: np.ndarray) -> float:
    """The chip's common factor on the calibrated median law, from a batch of SETs: the
    precision-weighted mean of ``g / mu`` over the draws :func:`_factor_draws` counts (1 when
    there are none), within [0.3, 3]."""
    draw, w, ratio = _factor_draws(model, gate, g_before, g_new, delivered, factor)
    if not np.any(draw):
        return 1.0
    return float(np.clip(np.sum(w[draw] * ratio[draw]) / np.sum(w[draw]), 0.3, 3.0))


def learn_factor(model: ReRAMModel, gate: np.ndarray, g_before: np.ndarray, g_new: np.ndarray, delivered: np.ndarray,
                 factor: np.ndarray, f_prec: np.ndarray, f_sum: np.ndarray, idx: np.ndarray) -> None:  # fmt: skip
    """Update the devices' factor posteriors (``f_prec``, ``f_sum`` at ``idx``, in place) with
    the SETs that measure it (:func:`_factor_draws`)."""
    draw, w, ratio = _factor_draws(model, gate, g_before, g_new, delivered, factor)
    f_prec[idx[draw]] += w[draw]
    f_sum[idx[draw]] += w[draw] * ratio[draw]


#: a device whose last read is this many bands, and this fraction of its target, from its
#: target broke after it was accepted (stuck, dead); relaxation, drift and read noise stay within
BROKEN, BROKEN_REL = 3.0, 0.3


def final_verify(st: DeviceState, band: np.ndarray, above: np.ndarray | None = None) -> PlanRun:
    """One last read of every accepted device: one that has since moved beyond :data:`BROKEN`
    times its band (``band``: the tolerance half-width per device, S) and :data:`BROKEN_REL` of
    its target — a device that broke or got stuck after it was accepted — is not reported
    converged. Ordinary relaxation (up to 1.5 bands on the simulated ReRAM chip), PCM drift and
    read noise stay within. ``achieved`` is this read.

    With ``above`` (a limit per device, S), returns the indices (into ``st``) of the accepted
    devices read more than ``above`` over their target, left for the caller to judge; otherwise
    an empty array."""
    done = np.flatnonzero(st.converged)
    high = np.zeros(0, dtype=np.int64)
    if done.size:
        g = yield from in_steps(Read(st.rows[done], st.cols[done]))
        st.achieved[done] = g
        limit = np.maximum(BROKEN * band[done], BROKEN_REL * st.targets[done])
        broken = np.abs(g - st.targets[done]) > limit
        st.converged[done[broken]] = False
        if above is not None:
            high = done[~broken & (g - st.targets[done] > above[done])]
    return high


#: the final check: standard deviations of one read's noise by which the tolerance is narrowed
#: for a device judged on one read (wider than the loop's ``guard``: every accepted device is
#: judged again, so a rarer false acceptance matters), and of the confirming mean's noise for a
#: device judged on :data:`FINAL_CONFIRM` times ``1 + rereads`` reads
FINAL_SINGLE, FINAL_GUARD = 4.0, 2.0
#: the confirming stage of the final check reads a device this many times ``1 + rereads`` in all
FINAL_CONFIRM = 4


def _mean_of_reads(st: DeviceState, idx: np.ndarray, first: np.ndarray, n: int) -> PlanRun:
    """``first`` (the sums of the reads so far, one per device ``idx``) plus ``n`` more reads of
    every device in ``idx``, in messages of at most :data:`BLOCK_DEVICES` reads, each summed as it
    comes (never all the reads at once). Returns the new sums."""
    total = np.array(first, dtype=float)
    if not idx.size or n < 1:
        return total
    per = max(1, BLOCK_DEVICES // idx.size)  # rounds of reads in one message
    rows, cols = st.rows[idx], st.cols[idx]
    done = 0
    while done < n:
        k = min(per, n - done)
        again = yield from in_steps(Read(np.tile(rows, k), np.tile(cols, k)))
        total += again.reshape(k, idx.size).sum(axis=0)
        done += k
    return total


def final_check(st: DeviceState, s: ReRAMWriteVerify, model: ReRAMModel) -> PlanRun:
    """The final verify of ReRAM write-verify, a sequential test on every accepted device.

    1. One read: inside the tolerance (:func:`tolerance_band`) narrowed by :data:`FINAL_SINGLE`
       standard deviations of the read noise, but never to less than 40 % of it — surely in.
    2. Otherwise, near the edge: the mean of ``1 + rereads`` reads inside the tolerance narrowed
       by ``guard`` standard deviations of that mean's noise (the loop's averaged band, without
       its 40 % floor) — surely in; beyond the tolerance by more than one of them — out.
    3. In between: the mean of :data:`FINAL_CONFIRM` ``* (1 + rereads)`` reads inside the
       tolerance narrowed by :data:`FINAL_GUARD` standard deviations of its noise.

    A device truly at the tolerance's edge passes step 3 with a probability of about 2 %
    (one-sided, :data:`FINAL_GUARD` sigma); step 1 lets it through with about 0.2 % (the
    narrowed band's floor, 40 % of the tolerance, is about 3 sigma of one read inside the edge
    at the calibrated 1 % read noise). ``achieved`` is the judgement's reading. The devices go
    in blocks of at most :data:`BLOCK_DEVICES`. Returns the devices that failed, now
    not converged."""
    done = np.flatnonzero(st.converged)
    left = [done[:0]]
    for i in range(0, done.size, BLOCK_DEVICES):
        left.append((yield from _final_block(st, s, model, done[i : i + BLOCK_DEVICES])))
    return np.concatenate(left)


def _final_block(st: DeviceState, s: ReRAMWriteVerify, model: ReRAMModel, done: np.ndarray) -> PlanRun:
    """:func:`final_check` on the accepted devices ``done``; returns those that failed."""
    full = tolerance_band(s, st.targets[done])
    g = yield from in_steps(Read(st.rows[done], st.cols[done]))
    st.achieved[done] = g
    err = np.abs(g - st.targets[done])
    noise = model.read_noise_rel * st.targets[done]
    ok = err <= np.maximum(full - FINAL_SINGLE * noise, 0.4 * full)  # surely inside on one read
    edge = np.flatnonzero(~ok & (err <= full + s.guard * noise)) if s.rereads else np.empty(0, int)
    if edge.size:
        k = 1 + s.rereads
        total = yield from _mean_of_reads(st, done[edge], g[edge], s.rereads)
        err_k = np.abs(total / k - st.targets[done[edge]])
        sigma_k = noise[edge] / np.sqrt(k)
        ok[edge] = err_k <= full[edge] - s.guard * sigma_k
        st.achieved[done[edge]] = total / k
        unsure = np.flatnonzero(~ok[edge] & (err_k <= full[edge] + sigma_k))
        if unsure.size:
            n = FINAL_CONFIRM * k
            total[unsure] = yield from _mean_of_reads(st, done[edge[unsure]], total[unsure], n - k)
            mean = total[unsure] / n
            st.achieved[done[edge[unsure]]] = mean
            ok[edge[unsure]] = np.abs(mean - st.targets[done[edge[unsure]]]) <= full[edge[unsure]] - FINAL_GUARD * noise[edge[unsure]] / np.sqrt(n)
    left = done[~ok]
    st.converged[left] = False
    return left


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
