"""Per-device write-verify through a Keithley 2600B (2636B): the verify loop runs on the instrument.

The board routes the SMU connector to one cell (the SMU drives the cell's bit line, the source
line is grounded, the word line sits at the route gate). The gate sets the SET compliance
(``I_cc = k (V_WL - V_th)^2``), and the SMU cannot change it: only the host can, by re-routing.
So the work is split between the instrument and the host like this:

On the instrument — one TSP script (:meth:`Keithley2600.run_script`) per route, which

1. (first script of a device) reads the cell at the read voltage (0.2 V) — a device already in
   its band costs no pulse, one already above it goes straight to RESET;
2. repeats ``SET pulse → read → compare with the band`` up to ``pulses_per_script`` times: the
   pulse is a bit-line level held for ``set_width`` with ``delay()``; its amplitude starts at
   the device's start amplitude and steps by ``amplitude_step`` per pulse (at most
   ``amplitude_span`` above the start). Repeated SETs at one compliance draw new filaments; a
   draw below the present state leaves it, so the conductance climbs towards the band;
3. stops at the first read inside the band (``OK``), above it (``OVER``), or when its pulse
   budget is spent (``UNDER``); turns the output off and prints one compact line
   ``labrram-wv <status> <current> <pulses> <resets> <last amplitude>``. When the route gate is
   high enough for RESET (``>= model.v_gate_reset``, which SET gates of ordinary targets never
   are) an overshoot is RESET inside the script (``-reset_amplitude`` on the bit line) and the
   loop goes on.

On the host, between scripts:

* ``UNDER``: this compliance is too low for the device — re-route with ``gate + gate_step``
  and run the loop again;
* ``OVER`` at a gate too low for RESET: re-route at ``reset_gate``, run a RESET script
  (``-reset_amplitude`` for ``reset_width``, then a read), re-route at ``gate - backoff`` and
  run the loop again (no pre-read: the RESET script's read is the state).

The common case (the start gate is right, no overshoot) is therefore **one route and one script
per device** — one write and three reads on the SMU's link (the result line, the end marker, the
error-queue check), whatever the number of pulses. An overshoot costs two extra scripts and two
gate changes (same cell, so no relay settle).

The start gate is the calibrated model's gate for ``(1 - start_margin) * target`` (as in
:mod:`.write_verify`); the start amplitude is at least ``set_amplitude`` and enough to keep the
access transistor saturated at the target: ``I_cc / G_target + (V_WL - V_th) +
saturation_headroom``.

Safety: before anything is sent (no route, no script), the worst case every script can apply is
computed and checked against the station's :class:`~labrram.safety.SafeLimits` (SET amplitudes
up to each device's ``start + amplitude_span``, the RESET level, the read level, every gate the
run can route, pulse widths, ``V * compliance * width`` energies) and against the 2600B's own
ranges; the script clamps every level it sources to the same bounds again. Any exception (also
Ctrl-C) leaves the SMU output off and the route open.

Bench time: pass the bench's timer or clock (``ConnectedStation.timer``, ``bench.clock``) as
``clock`` and ``ProgramResult.bench_time`` is the projected bench time of the run;
``physical_limit`` is what the pulses and integrations alone take (pulse widths + one
integration of ``read_nplc`` line cycles per read).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from labrram.crossbar import Crossbar, as_cells
from labrram.devices.reram import ReRAMModel
from labrram.drivers.base import InstrumentError, ReplyError
from labrram.drivers.keithley2600 import MAX_VOLTAGE, PULSE_WIDTH_MIN, SCRIPT_ERROR, Keithley2600
from labrram.safety import LimitError, SafeLimits

from .results import ProgramResult, Progress, TargetError, validate_targets
from .write_verify import reachable_range, start_gates

#: first field of the line every loop script prints
RESULT_TAG = "labrram-wv"
STATUSES = ("OK", "OVER", "UNDER")


@dataclass(frozen=True)
class SmuLoopSettings:
    """Settings of :func:`smu_write_verify` (SI units).

    A device has converged when ``|G - target| <= max(tolerance * target, abs_tolerance)``.
    """

    tolerance: float = 0.05
    abs_tolerance: float = 1e-6
    start_margin: float = 0.08
    gate_step: float = 0.01
    backoff: float = 0.03
    gate_min: float = 1.2
    gate_max: float = 2.4
    set_amplitude: float = 1.8
    amplitude_step: float = 0.02
    amplitude_span: float = 0.2
    saturation_headroom: float = 0.1
    set_width: float = 100e-6
    reset_amplitude: float = 2.6
    reset_gate: float = 4.8
    reset_width: float = 100e-6
    read_nplc: float = 0.01
    compliance: float = 1e-3
    pulses_per_script: int = 12
    max_pulses: int = 60
    max_resets: int = 4
    preread: bool = True

    def __post_init__(self) -> None:
        if not (0 < self.tolerance < 1):
            raise ValueError("tolerance must be a fraction between 0 and 1")
        if not (0 <= self.start_margin < 1):
            raise ValueError("start_margin must be a fraction in [0, 1)")
        if self.gate_step <= 0 or self.backoff < 0:
            raise ValueError("gate_step must be > 0 and backoff >= 0")
        if not self.gate_min < self.gate_max:
            raise ValueError("gate_min must be below gate_max")
        if self.amplitude_step < 0 or self.amplitude_span < 0:
            raise ValueError("amplitude_step and amplitude_span must be >= 0 V")
        if self.set_amplitude <= 0 or self.reset_amplitude <= 0:
            raise ValueError("set_amplitude and reset_amplitude are magnitudes (> 0 V)")
        if self.pulses_per_script < 1 or self.max_pulses < 1 or self.max_resets < 0:
            raise ValueError("pulses_per_script and max_pulses must be >= 1, max_resets >= 0")
        if min(self.set_width, self.reset_width) < PULSE_WIDTH_MIN:
            raise ValueError(f"SMU pulses are at least {PULSE_WIDTH_MIN:g} s wide (source settling)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoopReply:
    """What one script printed: status, last current (A), pulses and RESETs it applied."""

    status: str
    current: float
    pulses: int
    resets: int
    amplitude: float


@dataclass
class SmuLoopStats:
    """Host-side counts of one run (also in ``ProgramResult.settings['run']``)."""

    scripts: int = 0
    reset_scripts: int = 0
    routes: int = 0
    set_pulses: int = 0
    reset_pulses: int = 0
    reads: int = 0
    per_device_scripts: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_device_scripts"] = list(self.per_device_scripts)
        return d


@dataclass(frozen=True)
class Plan:
    """Everything decided before any byte is sent."""

    rows: np.ndarray
    cols: np.ndarray
    targets: np.ndarray  # per device, S
    full_targets: np.ndarray  # array-shaped, NaN elsewhere
    start_gate: np.ndarray  # V
    start_amplitude: np.ndarray  # V
    max_amplitude: np.ndarray  # V, the highest SET level a script may apply to the device
    band: np.ndarray  # S


# --- planning and limits ----------------------------------------------------------------------
def saturation_amplitude(model: ReRAMModel, targets: np.ndarray, gates: np.ndarray, headroom: float) -> np.ndarray:
    """Bit-line voltage that keeps the access transistor saturated once the device reaches its
    target: the cell's drop at the compliance plus the transistor's overdrive, plus headroom, V."""
    icc = model.transistor.compliance(gates)
    overdrive = np.maximum(np.asarray(gates, float) - model.transistor.v_th, 0.0)
    return icc / np.asarray(targets, float) + overdrive + headroom


def _per_device_targets(targets: Any, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    try:
        t = np.asarray(targets, dtype=float)
    except (TypeError, ValueError):
        raise TargetError("targets must be numbers (conductances in S)") from None
    if t.shape == tuple(shape):
        t = t[rows, cols]
    t = t.ravel()
    if t.size != rows.size:
        raise TargetError(f"{t.size} target(s) for {rows.size} cell(s); give one per cell or an array of shape {tuple(shape)}")
    if np.any(np.isnan(t)):
        raise TargetError(f"{int(np.isnan(t).sum())} selected cell(s) have a NaN target")
    return t


def plan_run(xb: Crossbar, smu: Keithley2600, cells: Any, targets: Any, model: ReRAMModel, s: SmuLoopSettings) -> Plan:
    """Validate the targets and check the worst case of every script against the limits.

    Raises :class:`TargetError`, :class:`LimitError` or :class:`ValueError`; sends nothing.
    """
    rows, cols = as_cells(cells, xb.shape)
    if rows.size == 0:
        raise TargetError("no device to program: the cell selection is empty")
    if np.unique(rows * xb.shape[1] + cols).size != rows.size:
        raise TargetError("a cell is selected more than once")
    tgt = _per_device_targets(targets, rows, cols, xb.shape)
    full = np.full(xb.shape, np.nan)
    full[rows, cols] = tgt
    validate_targets(full, xb.shape, reachable_range(model, s.gate_min, s.gate_max))

    # physics the settings must respect (else the loop could never work)
    v_read = xb.read_voltage
    if not (0 < v_read < model.v_set):
        raise ValueError(f"read voltage {v_read:g} V must be positive and below the SET threshold {model.v_set:g} V")
    if s.set_amplitude < model.v_set:
        raise ValueError(f"set_amplitude {s.set_amplitude:g} V is below the SET threshold {model.v_set:g} V")
    if s.reset_amplitude < model.v_reset:
        raise ValueError(f"reset_amplitude {s.reset_amplitude:g} V is below the RESET threshold {model.v_reset:g} V")
    if s.reset_gate < model.v_gate_reset:
        raise ValueError(f"reset_gate {s.reset_gate:g} V is below the gate a RESET needs ({model.v_gate_reset:g} V)")
    if max(s.set_amplitude + s.amplitude_span, s.reset_amplitude) >= model.v_breakdown:
        raise ValueError(f"pulse levels must stay below the breakdown voltage {model.v_breakdown:g} V")

    gates = start_gates(model, tgt, s.start_margin, s.gate_min, s.gate_max)
    a0 = np.maximum(s.set_amplitude, saturation_amplitude(model, tgt, gates, s.saturation_headroom))
    a_max = a0 + s.amplitude_span

    # the worst case any script can apply, against both limit sets and the instrument's ranges
    for limits in {id(xb.limits): xb.limits, id(smu.limits): smu.limits}.values():
        _check_limits(limits, s, rows, cols, tgt, a_max, v_read)
    worst = max(float(a_max.max()), s.reset_amplitude, v_read)
    if worst > MAX_VOLTAGE:
        raise LimitError(f"{worst:g} V beyond the 2600B's +-{MAX_VOLTAGE:g} V")
    smu.check_compliance(s.compliance)
    band = np.maximum(s.tolerance * tgt, s.abs_tolerance)
    return Plan(rows, cols, tgt, full, gates, a0, a_max, band)


def _check_limits(limits: SafeLimits, s: SmuLoopSettings, rows, cols, tgt, a_max: np.ndarray, v_read: float) -> None:
    bad = np.nonzero(a_max > limits.max_voltage)[0]
    if bad.size:
        k = bad[np.argmax(a_max[bad])]
        raise LimitError(
            f"{bad.size} device(s) need SET amplitudes beyond the bench limit of {limits.max_voltage:.4g} V: e.g. cell "
            f"({rows[k]}, {cols[k]}) with target {tgt[k] * 1e6:.4g} µS may get up to {a_max[k]:.4g} V"
        )
    limits.check_voltage(s.reset_amplitude, "RESET level (negative on the bit line)")
    limits.check_voltage(v_read, "read voltage")
    limits.check_gate([s.gate_min, s.gate_max], "route gate range")
    limits.check_gate(s.reset_gate, "RESET route gate")
    limits.check_width([s.set_width, s.reset_width], "SMU pulse width")
    limits.check_current(s.compliance, "SMU compliance")
    limits.check_energy(float(a_max.max()), s.compliance, s.set_width, "SET pulse")
    limits.check_energy(s.reset_amplitude, s.compliance, s.reset_width, "RESET pulse")


# --- the scripts --------------------------------------------------------------------------------
def _n(x: float) -> str:
    if not math.isfinite(x):
        raise ValueError(f"not a finite number: {x!r}")
    return f"{x:.9g}"


def _prologue(smu: str, vmax: float, compliance: float, nplc: float) -> list[str]:
    """Save the settings the script changes, configure a voltage source; ``C(v)`` clamps."""
    return [
        f"local s={smu}",
        "local nplc0,az0,cnt0,lim0=s.measure.nplc,s.measure.autozero,s.measure.count,s.source.limiti",
        f"local VMAX={_n(vmax)}",
        "local function C(v) if v>VMAX then return VMAX elseif v<-VMAX then return -VMAX end return v end",
        "local ok,err=pcall(function()",
        "s.source.output=s.OUTPUT_OFF",
        "s.source.func=s.OUTPUT_DCVOLTS s.source.autorangev=s.AUTORANGE_ON s.source.levelv=0",
        f"s.source.limiti={compliance:.6g} s.measure.autorangei=s.AUTORANGE_ON",
        f"s.measure.nplc={nplc:g} s.measure.autozero=s.AUTOZERO_OFF s.measure.count=1",
        "s.source.output=s.OUTPUT_ON",
    ]


_EPILOGUE = [
    "end)",
    "s.source.levelv=0 s.source.output=s.OUTPUT_OFF",
    "s.measure.nplc,s.measure.autozero,s.measure.count,s.source.limiti=nplc0,az0,cnt0,lim0",
    f'if not ok then print("{SCRIPT_ERROR}\\t"..tostring(err)) end',
]


def loop_script(
    smu: str,
    *,
    i_lo: float,
    i_hi: float,
    v_read: float,
    a0: float,
    a_step: float,
    a_max: float,
    width: float,
    pulses: int,
    preread: bool,
    vmax: float,
    compliance: float,
    nplc: float,
    reset: tuple[float, float, int] | None = None,
) -> str:
    """The on-instrument verify loop (see the module docstring).

    ``i_lo``/``i_hi`` is the band as currents at ``v_read``; ``reset`` = (level, width, max
    RESETs) enables RESET inside the loop (only when the route gate allows a RESET current).
    """
    a_max = min(a_max, vmax)
    lines = _prologue(smu, vmax, compliance, nplc) + [
        f"local LO,HI,VR,AM={_n(i_lo)},{_n(i_hi)},{_n(v_read)},{_n(a_max)}",
        "local function R() s.source.levelv=C(VR) local i=s.measure.i() s.source.levelv=0 return i end",
        "local function S(i) if i>HI then return 'OVER' elseif i>=LO then return 'OK' end return 'UNDER' end",
        f"local a,n,r,i,st={_n(a0)},0,0,0,'UNDER'",
        "if a>AM then a=AM end",
        "local la=0",
    ]
    if preread:
        lines.append("i=R() st=S(i)")
    if reset is None:
        loop_cond = "st=='UNDER'"
    else:
        loop_cond = "st~='OK'"
    lines += [
        f"while {loop_cond} and n<{int(pulses)} do",
    ]
    if reset is not None:
        level, rwidth, max_resets = reset
        lines += [
            " if st=='OVER' then",
            f"  if r>={int(max_resets)} then break end",
            f"  s.source.levelv=C(-{_n(level)}) delay({_n(rwidth)}) s.source.levelv=0",
            f"  r=r+1 a={_n(a0)} if a>AM then a=AM end i=R() st=S(i)",
            " else",
        ]
    lines += [
        f" s.source.levelv=C(a) delay({_n(width)}) s.source.levelv=0",
        " la=a n=n+1 i=R() st=S(i)",
        f" a=a+{_n(a_step)} if a>AM then a=AM end",
    ]
    if reset is not None:
        lines.append(" end")
    lines += [
        "end",
        f"print('{RESULT_TAG}',st,i,n,r,la)",
    ] + _EPILOGUE
    return "\n".join(lines)


def reset_script(smu: str, *, level: float, width: float, v_read: float, i_lo: float, i_hi: float, vmax: float, compliance: float, nplc: float) -> str:
    """One RESET (``-level`` on the bit line for ``width``), then a read; prints like the loop."""
    lines = _prologue(smu, vmax, compliance, nplc) + [
        f"local LO,HI,VR={_n(i_lo)},{_n(i_hi)},{_n(v_read)}",
        f"s.source.levelv=C(-{_n(level)}) delay({_n(width)}) s.source.levelv=C(VR)",
        "local i=s.measure.i() s.source.levelv=0",
        "local st='UNDER' if i>HI then st='OVER' elseif i>=LO then st='OK' end",
        f"print('{RESULT_TAG}',st,i,0,1,0)",
    ] + _EPILOGUE
    return "\n".join(lines)


def parse_reply(text: str) -> LoopReply:
    """The compact line a loop or RESET script printed."""
    for line in text.splitlines():
        fields = line.strip().split("\t")
        if fields[0] != RESULT_TAG:
            continue
        if len(fields) != 6 or fields[1] not in STATUSES:
            break
        try:
            return LoopReply(fields[1], float(fields[2]), int(float(fields[3])), int(float(fields[4])), float(fields[5]))
        except ValueError:
            break
    if text.startswith(SCRIPT_ERROR):
        raise InstrumentError(f"the verify script failed on the instrument: {text.partition(chr(9))[2].strip()}")
    raise ReplyError(f"the verify script printed {text[:120]!r}, not '{RESULT_TAG} <status> <current> <pulses> <resets> <amplitude>'")


# --- the protocol -------------------------------------------------------------------------------
def _now(clock: Any) -> float | None:
    if clock is None:
        return None
    now = clock.now
    return float(now() if callable(now) else now)


def smu_write_verify(
    xb: Crossbar,
    smu: Keithley2600,
    cells: Any,
    targets: Any,
    model: ReRAMModel,
    settings: SmuLoopSettings = SmuLoopSettings(),
    clock: Any = None,
    progress: Progress | None = None,
) -> ProgramResult:
    """Program ``cells`` to ``targets`` (S) one device at a time, the verify loop on the 2636B.

    Parameters
    ----------
    xb : Crossbar
        The array (its board routes the SMU; its limits and read voltage are used).
    smu : Keithley2600
        The 2600B channel wired to the board's SMU connector.
    cells
        A cell selection (see :func:`labrram.crossbar.as_cells`).
    targets
        One conductance per selected cell, or an array of the array's shape, S.
    model : ReRAMModel
        The calibrated device model (start gates and amplitudes).
    settings : SmuLoopSettings
        Protocol settings.
    clock : optional
        The bench's timer or clock (``.now`` or ``.now()``, seconds): sets ``bench_time``.
    progress : optional
        ``progress("smu-write-verify", done, total)`` after every device.

    Returns a :class:`ProgramResult` (array-shaped; ``iterations`` = scripts run, ``pulses``
    counts SET and RESET pulses, ``settings['run']`` the host-side counts).
    """
    s = settings
    if not isinstance(smu, Keithley2600):
        raise TypeError(f"the on-instrument loop needs a Keithley 2600B driver, got {type(smu).__name__}")
    plan = plan_run(xb, smu, cells, targets, model, s)  # nothing is sent before this passes
    t_start = time.perf_counter()
    bench0 = _now(clock)
    n = plan.targets.size
    achieved = np.full(n, np.nan)
    converged = np.zeros(n, bool)
    pulses = np.zeros(n, np.int32)
    stats = SmuLoopStats()
    v_read = xb.read_voltage
    vmax = min(xb.limits.max_voltage, smu.limits.max_voltage, MAX_VOLTAGE)
    common = dict(vmax=vmax, compliance=s.compliance, nplc=s.read_nplc)
    board = xb.board
    failed: BaseException | None = None
    try:
        t_int = s.read_nplc / smu.line_frequency  # one integration, s
        for k in range(n):
            r, c = int(plan.rows[k]), int(plan.cols[k])
            lo = max(plan.targets[k] - plan.band[k], 0.0) * v_read
            hi = (plan.targets[k] + plan.band[k]) * v_read
            gate = float(plan.start_gate[k])
            scripts = resets = 0
            first = True
            while True:
                budget = min(s.pulses_per_script, s.max_pulses - int(pulses[k]))
                if budget <= 0:
                    break
                board.route_smu(r, c, gate=gate)
                stats.routes += 1
                can_reset = gate >= model.v_gate_reset
                script = loop_script(
                    smu.smu, i_lo=lo, i_hi=hi, v_read=v_read, a0=float(plan.start_amplitude[k]), a_step=s.amplitude_step,
                    a_max=float(plan.max_amplitude[k]), width=s.set_width, pulses=budget, preread=first and s.preread,
                    reset=(s.reset_amplitude, s.reset_width, s.max_resets - resets) if can_reset else None, **common,
                )  # fmt: skip
                reply = parse_reply(smu.run_script(script, timeout=_script_time(s, budget, t_int)))
                scripts += 1
                stats.reads += reply.pulses + reply.resets + (1 if first and s.preread else 0)
                stats.set_pulses += reply.pulses
                stats.reset_pulses += reply.resets
                pulses[k] += reply.pulses + reply.resets
                resets += reply.resets
                first = False
                achieved[k] = reply.current / v_read
                if reply.status == "OK":
                    converged[k] = True
                    break
                if reply.status == "UNDER":
                    gate = min(gate + s.gate_step, s.gate_max)
                    continue
                # OVER: RESET needs a high gate the SMU cannot set; the host re-routes
                if resets >= s.max_resets:
                    break
                board.route_smu(r, c, gate=s.reset_gate)
                stats.routes += 1
                text = smu.run_script(
                    reset_script(smu.smu, level=s.reset_amplitude, width=s.reset_width, v_read=v_read, i_lo=lo, i_hi=hi, **common),
                    timeout=_script_time(s, 1, t_int),
                )
                reply = parse_reply(text)
                scripts += 1
                stats.reset_scripts += 1
                stats.reads += 1
                stats.reset_pulses += 1
                pulses[k] += 1
                resets += 1
                achieved[k] = reply.current / v_read
                if reply.status == "OK":  # a RESET landing in the band (very low targets)
                    converged[k] = True
                    break
                if reply.status == "UNDER":
                    gate = max(gate - s.backoff, s.gate_min)
                # still OVER (a device that does not RESET): try again, counted by max_resets
            stats.scripts += scripts
            stats.per_device_scripts.append(scripts)
            if progress is not None:
                progress("smu-write-verify", int(converged.sum()), n)
    except BaseException as exc:
        failed = exc
        raise
    finally:
        _make_safe(xb, smu, quiet=failed is not None)
    board.check_errors()  # a route the board refused would show here

    physical = (stats.set_pulses * s.set_width + stats.reset_pulses * s.reset_width) + stats.reads * t_int
    shape = xb.shape
    result = ProgramResult(
        "smu-write-verify",
        plan.full_targets,
        _scatter(shape, plan.rows, plan.cols, achieved, np.nan),
        _scatter(shape, plan.rows, plan.cols, converged, False),
        _scatter(shape, plan.rows, plan.cols, pulses, 0),
        stats.scripts,
        time.perf_counter() - t_start,
        bench_time=None if bench0 is None else _now(clock) - bench0,
        physical_limit=physical,
        settings={**s.to_dict(), "run": stats.to_dict()},
    )
    return result


def _script_time(s: SmuLoopSettings, pulses: int, t_int: float) -> float:
    """Generous timeout of one script, s."""
    per = max(s.set_width, s.reset_width) + 2.0 * t_int + 1e-3
    return 2.0 * (pulses + s.max_resets + 2) * per + 2.0


def _make_safe(xb: Crossbar, smu: Keithley2600, quiet: bool) -> None:
    """SMU output off (ramped) and route open, each attempted even if the other fails.

    ``quiet``: an exception is already on its way; secondary errors must not mask it.
    """
    errors: list[BaseException] = []
    for step in (smu.shutdown, xb.board.open_route):
        try:
            step()
        except Exception as exc:  # keep going: the other step must still happen
            errors.append(exc)
    if errors and not quiet:
        raise errors[0]


def _scatter(shape, rows, cols, values, fill):
    values = np.asarray(values)
    out = np.full(shape, fill, dtype=values.dtype if values.dtype != bool else bool)
    out[rows, cols] = values
    return out


__all__ = [
    "LoopReply",
    "SmuLoopSettings",
    "SmuLoopStats",
    "loop_script",
    "parse_reply",
    "plan_run",
    "reset_script",
    "saturation_amplitude",
    "smu_write_verify",
]
