"""Per-device write-verify through a Keithley 2600B (2636B): the verify loop runs on the instrument.

The board routes the SMU connector to one cell (the SMU drives the cell's bit line, the source
line is grounded, the word line sits at the route gate). The gate sets the SET compliance
(``I_cc = k (V_WL - V_th)^2``) and the SMU cannot change it — only the host can, by re-routing.
That fixes the split between the instrument and the host.

On the instrument
-----------------
The loop is defined once per run as a global Lua function (one ``run_script`` carrying the
whole loop, ~3 kB); then every route costs one small script that calls it (~80 bytes on the
bus instead of the loop's text). One call

1. (first call for a device) reads the cell at the read voltage (0.2 V): a device already in its
   band costs no pulse, one above it goes straight to the RESET step;
2. repeats ``SET pulse -> read -> compare`` up to ``pulses_per_script`` times: the pulse is a
   bit-line level held for ``set_width`` with ``delay()``; its amplitude starts at the device's
   start amplitude and steps by ``amplitude_step`` per pulse (at most ``amplitude_span`` above
   the start). Every SET at one compliance draws a new filament and a draw below the present
   state leaves it, so repeated pulses ratchet the conductance up towards the band;
3. stops when a read is in the band (``OK``; a read in the band is confirmed by the mean of
   ``verify_reads`` reads and the accepted band is narrowed by ``guard`` standard deviations of
   that mean, so read noise cannot end the loop just outside the band), above it (``OVER``) or
   when its pulse budget is spent (``UNDER``). If it is ``OVER`` and the route gate is high
   enough for a RESET current (``>= model.v_gate_reset``; SET gates of ordinary targets never
   are), it RESETs (``-reset_amplitude`` on the bit line) and reads once more;
4. sets 0 V, turns the output off, restores the measure settings it changed and prints one line
   ``labrram-wv <status> <current> <SET pulses> <RESETs> <last SET amplitude> <reads> <first>
   <over>`` (``first``: the read after the first SET of a device that started well below its
   band, a fresh draw the host uses to learn how this chip differs from the calibration;
   ``over``: the overshoot an in-script RESET undid; -1 when none).

On the host, between calls
--------------------------
* ``UNDER`` after its pulses: this compliance is too low — re-route at a higher gate;
* ``OVER`` (route gate too low for RESET): re-route the same cell at ``reset_gate``, call the
  RESET function (``-reset_amplitude`` for ``reset_width``, then a read), re-route at a lower
  gate and call the loop again (no pre-read: the RESET's read is the state);
* ``UNDER`` after an in-script RESET: re-route at a lower gate and call again.

The next gate is where the calibrated median law, scaled by what the device just did, puts the
median at ``(1 - start_margin) * target`` — at least ``gate_step`` up (``backoff`` down), at
most ``max_gate_move``. Start gates come from the calibrated model
(``gate_for(compliance_for((1 - start_margin) * target))``, as in :mod:`.write_verify`), scaled
by the running median of the chip-to-calibration ratio once ``adapt_min_samples`` devices have
reported a first draw (a chip is typically 5-40 % off a calibration made on another chip).

So the common case (right start gate, no overshoot) is **one route and one script per device**:
one write and three reads on the SMU's bus (the result line, the end-of-output marker, the
error-queue check), however many pulses and reads the loop does. An overshoot at an ordinary SET
gate costs two more scripts and two gate changes on the same cell (no relay settle); with the
c2c spread of low-conductance states (~15 % at 40 µS against a +-5 % band) a fraction of devices
overshoots whatever the start, since the loop stops at the first draw above the band's lower
edge.

Measured (simulated bench, GPIB, 64 healthy devices, targets 40-200 µS, 9 chips): 1.7-2.4
scripts, 5-7 SET+RESET pulses and 11.7-14.7 ms of bench time per device (physical limit
~2.5 ms: the rest is the bus, ~2.5 ms per script, and the relay, 2 ms per cell); 98-100 % of
the devices inside the band on the die. The board's batched write-verify (:mod:`.write_verify`)
needs 0.08-0.15 ms per device for the same devices (86-98 % inside the band on the die: it
verifies with single reads). The SMU path is for precise per-device work, not throughput.

Safety
------
Before anything is sent (no route, no script — the board is asked only for its size, and only
after every check passed), the worst case each script can apply is checked against the
station's :class:`~labrram.safety.SafeLimits` and the 2600B's ranges: SET levels up to each
device's ``start amplitude + amplitude_span`` (the start amplitude is ``max(set_amplitude,
I_cc / G_target + (V_WL - V_th) + saturation_headroom)``, enough to keep the access transistor
saturated at the target), the RESET level, the read level, every gate the run can route, pulse
widths and ``V * compliance * width`` energies. The loop function clamps every level it sources
to ``+-max_voltage`` and every pulse to ``max_pulse_width`` again, whatever its arguments. Any
exception (also Ctrl-C, deferred by the driver to the end of an exchange) leaves the SMU
output ramped to 0 V and off and the route open.

Bench time
----------
Pass the bench's timer or clock (``ConnectedStation.timer``, ``bench.clock``) as ``clock``:
``ProgramResult.bench_time`` is then the projected bench time of the run; ``physical_limit`` is
what the pulses and integrations alone take (pulse widths + ``read_nplc / line frequency`` per
read). ``ProgramResult.iterations`` counts the per-device scripts; ``settings['run']`` has the
host-side counts (scripts, host RESET steps, routes, pulses, reads, scripts per device, the
chip scale used last).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labrram.cells import Cells, as_cells
from labrram.crossbar import Crossbar
from labrram.devices.reram import ReRAMModel
from labrram.drivers.base import InstrumentError, ReplyError
from labrram.drivers.keithley2600 import MAX_VOLTAGE, PULSE_WIDTH_MIN, SCRIPT_ERROR, Keithley2600
from labrram.safety import LimitError, SafeLimits

from .engine import run_plan
from .messages import Report, SmuDefine, SmuScript
from .plan import Plan, PlanRun, check_finite_settings, model_from_json, model_to_json, register
from .results import ProgramResult, Progress, TargetError, scatter, validate_targets
from .write_verify import reachable_range, start_gates

#: first field of the line every loop script prints
RESULT_TAG = "labrram-wv"
STATUSES = ("OK", "OVER", "UNDER")


@dataclass(frozen=True)
class SmuLoopSettings:
    """Settings of :func:`smu_write_verify` (SI units).

    A device has converged when ``|G - target| <= max(tolerance * target, abs_tolerance)``; the
    loop accepts a device when the mean of ``verify_reads`` reads is inside that band narrowed
    by ``guard`` standard deviations of the mean (from the model's read noise).

    Gates (host): start at the calibrated gate for ``(1 - start_margin) * target``; after a miss
    move by at least ``gate_step`` up / ``backoff`` down and at most ``max_gate_move``, within
    ``[gate_min, gate_max]``; RESETs are routed at ``reset_gate``. ``adapt`` rescales start
    gates by the chip-to-calibration ratio learned from the first ``adapt_min_samples`` devices
    (running median over ``adapt_window``).

    Pulses (instrument): SET from ``max(set_amplitude, saturation level + saturation_headroom)``
    in steps of ``amplitude_step`` up to ``amplitude_span`` more, ``set_width`` wide; RESET
    ``-reset_amplitude`` for ``reset_width``; reads of ``read_nplc`` line cycles at the
    crossbar's read voltage; SMU current limit ``compliance``. At most ``pulses_per_script`` SET
    pulses per script, ``max_pulses`` SET + RESET pulses and ``max_resets`` RESETs per device.
    """

    tolerance: float = 0.05
    abs_tolerance: float = 1e-6
    start_margin: float = 0.04
    gate_step: float = 0.02
    backoff: float = 0.03
    max_gate_move: float = 0.15
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
    verify_reads: int = 4
    guard: float = 1.5
    compliance: float = 1e-3
    pulses_per_script: int = 8
    max_pulses: int = 60
    max_resets: int = 4
    preread: bool = True
    adapt: bool = True
    adapt_min_samples: int = 3
    adapt_window: int = 16

    def __post_init__(self) -> None:
        check_finite_settings(self)
        if not (0 < self.tolerance < 1):
            raise ValueError("tolerance must be a fraction between 0 and 1")
        if not (0 <= self.start_margin < 1):
            raise ValueError("start_margin must be a fraction in [0, 1)")
        if self.gate_step <= 0 or self.backoff < 0 or self.max_gate_move < max(self.gate_step, self.backoff):
            raise ValueError("gate_step must be > 0, backoff >= 0 and max_gate_move at least both")
        if not self.gate_min < self.gate_max:
            raise ValueError("gate_min must be below gate_max")
        if self.amplitude_step < 0 or self.amplitude_span < 0:
            raise ValueError("amplitude_step and amplitude_span must be >= 0 V")
        if self.set_amplitude <= 0 or self.reset_amplitude <= 0:
            raise ValueError("set_amplitude and reset_amplitude are magnitudes (> 0 V)")
        if self.adapt_min_samples < 1 or self.adapt_window < 1:
            raise ValueError("adapt_min_samples and adapt_window must be >= 1")
        if self.guard < 0:
            raise ValueError("guard must be >= 0 (read-noise standard deviations)")
        if self.verify_reads < 1:
            raise ValueError("verify_reads must be >= 1")
        if self.pulses_per_script < 1 or self.max_pulses < 1 or self.max_resets < 0:
            raise ValueError("pulses_per_script and max_pulses must be >= 1, max_resets >= 0")
        if min(self.set_width, self.reset_width) < PULSE_WIDTH_MIN:
            raise ValueError(f"SMU pulses are at least {PULSE_WIDTH_MIN:g} s wide (source settling)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoopReply:
    """What one script printed: status, last current (A; the mean of the confirming reads when
    in the band), SET pulses and RESETs it applied, its last SET amplitude (V), reads it took."""

    status: str
    current: float
    pulses: int
    resets: int
    amplitude: float
    reads: int
    first: float = -1.0  # current after the first SET of a device that started below its band, A (-1: none)
    over: float = -1.0  # the overshoot current an in-script RESET undid, A (-1: none)


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
    chip_scale: float = 1.0  # the last estimate of (chip median / calibrated median) used for start gates

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_device_scripts"] = list(self.per_device_scripts)
        return d


@dataclass(frozen=True)
class LoopSetup:
    """Everything decided before any byte is sent."""

    rows: np.ndarray
    cols: np.ndarray
    targets: np.ndarray  # per device, S
    full_targets: np.ndarray  # array-shaped, NaN elsewhere
    start_gate: np.ndarray  # V
    start_amplitude: np.ndarray  # V
    max_amplitude: np.ndarray  # V, the highest SET level a script may apply to the device
    band: np.ndarray  # S, the tolerance
    accept: np.ndarray  # S, the half-width the loop accepts (band minus the read-noise guard)


# --- planning and limits ----------------------------------------------------------------------
def saturation_amplitude(model: ReRAMModel, targets: np.ndarray, gates: np.ndarray, headroom: float) -> np.ndarray:
    """Bit-line voltage that keeps the access transistor saturated once the device reaches its
    target: the cell's drop at the compliance plus the transistor's overdrive, plus headroom, V."""
    icc = model.transistor.compliance(gates)
    overdrive = np.maximum(np.asarray(gates, float) - model.transistor.v_th, 0.0)
    return icc / np.asarray(targets, float) + overdrive + headroom


#: a stand-in array size for reading cell lists before the board is asked for the real one
_UNBOUNDED = (2**31 - 1, 2**31 - 1)


def _per_device_targets(targets: Any, cells: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int] | None]:
    """Cells and one target per cell, without asking the board anything.

    Returns (rows, cols, targets, shape the inputs imply or None). Addresses are checked
    against the real array size later.
    """
    try:
        t = np.asarray(targets, dtype=float)
    except (TypeError, ValueError):
        raise TargetError("targets must be numbers (conductances in S)") from None
    implied = None
    if isinstance(cells, np.ndarray) and cells.dtype == bool:
        implied = cells.shape
    elif t.ndim == 2:
        implied = t.shape
    try:
        rows, cols = as_cells(cells, implied or _UNBOUNDED)
    except ValueError as exc:
        raise TargetError(str(exc)) from None
    if rows.size == 0:
        raise TargetError("no device to program: the cell selection is empty")
    if np.unique(np.stack([rows, cols]), axis=1).shape[1] != rows.size:
        raise TargetError("a cell is selected more than once")
    if t.ndim == 2:
        if implied is not None and t.shape != implied:
            raise TargetError(f"targets have shape {t.shape}, the cell mask {implied}")
        t = t[rows, cols]
    t = t.ravel()
    if t.size != rows.size:
        raise TargetError(f"{t.size} target(s) for {rows.size} cell(s); give one per cell or an array of the array's shape")
    if np.any(np.isnan(t)):
        raise TargetError(f"{int(np.isnan(t).sum())} selected cell(s) have a NaN target")
    return rows, cols, t, implied


def prepare_run(xb: Crossbar, smu: Keithley2600, cells: Any, targets: Any, model: ReRAMModel, s: SmuLoopSettings) -> LoopSetup:
    """Validate the targets and check the worst case of every script against the limits.

    Raises :class:`TargetError`, :class:`LimitError` or :class:`ValueError`. Every check on the
    targets, the settings and the limits is done before the board is asked anything; only then
    is the array size read (one identification query, once per board driver) to check the cell
    addresses. Nothing is routed, sourced or pulsed here.
    """
    rows, cols, tgt, implied = _per_device_targets(targets, cells)
    validate_targets(tgt[None, :], (1, tgt.size), reachable_range(model, s.gate_min, s.gate_max))

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
    gates = start_gates(model, tgt, s.start_margin, s.gate_min, s.gate_max)
    a0 = np.maximum(s.set_amplitude, saturation_amplitude(model, tgt, gates, s.saturation_headroom))
    a_max = a0 + s.amplitude_span
    if max(float(a_max.max()), s.reset_amplitude) >= model.v_breakdown:
        raise ValueError(f"pulse levels must stay below the breakdown voltage {model.v_breakdown:g} V")

    # the worst case any script can apply, against both limit sets and the instrument's ranges
    for limits in {id(xb.limits): xb.limits, id(smu.limits): smu.limits}.values():
        _check_limits(limits, s, rows, cols, tgt, a_max, v_read)
    worst = max(float(a_max.max()), s.reset_amplitude, v_read)
    if worst > MAX_VOLTAGE:
        raise LimitError(f"{worst:g} V beyond the 2600B's +-{MAX_VOLTAGE:g} V")
    smu.check_compliance(s.compliance)
    band = np.maximum(s.tolerance * tgt, s.abs_tolerance)
    # the loop accepts a device only when its averaged read is this far inside the band
    guard = s.guard * model.read_noise_rel / math.sqrt(s.verify_reads) * tgt
    accept = np.maximum(band - guard, 0.5 * band)

    # every limit holds: now the addresses (this may ask the board for its size, once)
    shape = xb.shape
    if implied is not None and tuple(implied) != tuple(shape):
        raise TargetError(f"targets / cell mask have shape {tuple(implied)}, the array is {tuple(shape)}")
    if rows.max() >= shape[0] or cols.max() >= shape[1]:
        raise TargetError(f"cell index outside the {shape[0]}x{shape[1]} array")
    full = np.full(shape, np.nan)
    full[rows, cols] = tgt
    return LoopSetup(rows, cols, tgt, full, gates, a0, a_max, band, accept)


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


def _configure(compliance: float, nplc: float) -> list[str]:
    return [
        "  s.source.output=s.OUTPUT_OFF",
        "  s.source.func=s.OUTPUT_DCVOLTS s.source.autorangev=s.AUTORANGE_ON s.source.levelv=0",
        f"  s.source.limiti={compliance:.6g} s.measure.autorangei=s.AUTORANGE_ON",
        f"  s.measure.nplc={nplc:g} s.measure.autozero=s.AUTOZERO_OFF s.measure.count=1",
        "  s.source.output=s.OUTPUT_ON",
    ]


def _guarded(body: list[str]) -> list[str]:
    """Run ``body`` under pcall; whatever happens: level 0, output off, settings restored."""
    return [
        " local nplc0,az0,cnt0,lim0=s.measure.nplc,s.measure.autozero,s.measure.count,s.source.limiti",
        " local ok,err=pcall(function()",
        *body,
        " end)",
        " s.source.levelv=0 s.source.output=s.OUTPUT_OFF",
        " s.measure.nplc,s.measure.autozero,s.measure.count,s.source.limiti=nplc0,az0,cnt0,lim0",
        f' if not ok then print("{SCRIPT_ERROR}\\t"..tostring(err)) end',
    ]


def function_names(smu: str, vmax: float, wmax: float, compliance: float, nplc: float, verify_reads: int) -> tuple[str, str]:
    """Names of the loop and RESET functions for one set of baked-in bounds."""
    key = f"{smu}|{vmax!r}|{wmax!r}|{compliance!r}|{nplc!r}|{verify_reads!r}"
    tag = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"labrram_wv_{tag}", f"labrram_rs_{tag}"


def definition_script(smu: str, *, vmax: float, wmax: float, compliance: float, nplc: float, verify_reads: int) -> str:
    """The TSP that defines the on-instrument verify loop and the RESET step as global functions.

    Sent once per run; every device then costs one tiny script that calls the loop. The bounds
    are baked in: every level a call sources is clamped to ``+-vmax`` and every pulse to
    ``wmax`` seconds, whatever the call's arguments.

    ``loop(LO, HI, VR, A0, AS, AM, W, N, PRE, RL, RW, RM)``: band ``[LO, HI]`` as currents at
    the read level ``VR``; SET amplitudes from ``A0`` in steps of ``AS`` up to ``AM``, width
    ``W``, at most ``N`` SET pulses; ``PRE`` reads before the first pulse; ``RL > 0`` allows one
    RESET of ``-RL`` for ``RW`` after an overshoot (if ``RM > 0``; only when the route gate
    allows a RESET current). A read inside the band is confirmed by the mean of
    ``verify_reads`` reads. Prints ``labrram-wv <status> <current> <pulses> <resets> <last
    amplitude> <reads> <first>``.

    ``reset(LO, HI, VR, RL, RW)``: one RESET and a read; prints the same line.
    """
    loop, reset = function_names(smu, vmax, wmax, compliance, nplc, verify_reads)
    head = [
        f" local s={smu}",
        f" local VMAX,WMAX={_n(vmax)},{_n(wmax)}",
        " local function C(v) if v>VMAX then return VMAX elseif v<-VMAX then return -VMAX end return v end",
        " local function D(w) if w>WMAX then w=WMAX end if w>0 then delay(w) end end",
        " local m=0",
        " local function R() s.source.levelv=C(VR) local i=s.measure.i() s.source.levelv=0 m=m+1 return i end",
        " local function S(i) if i>HI then return 'OVER' elseif i>=LO then return 'OK' end return 'UNDER' end",
        # a read in the band is confirmed by the mean of VN reads (read noise must not end the loop)
        f" local VN={int(verify_reads)}",
        " local function V() local i=R() if VN>1 and S(i)=='OK' then local t=i for j=2,VN do t=t+R() end i=t/VN end return i end",
    ]
    loop_body = _configure(compliance, nplc) + [
        "  local a,n,r,i,st,la,p,f,o=A0,0,0,0,'UNDER',0,-1,-1,-1",
        "  if AM>VMAX then AM=VMAX end",
        "  if a>AM then a=AM end",
        "  if a<0 then a=0 end",
        "  if PRE then i=V() p=i st=S(i) end",
        "  while st=='UNDER' and n<N do",
        "   s.source.levelv=C(a) D(W) s.source.levelv=0",
        "   la=a n=n+1 i=V() st=S(i)",
        # the first SET of a device that started well below its band is one fresh draw
        "   if n==1 and p>=0 and p<0.5*LO then f=i end",
        "   a=a+AS if a>AM then a=AM end",
        "  end",
        "  if st=='OVER' and RL>0 and r<RM then",
        "   o=i s.source.levelv=C(-RL) D(RW) s.source.levelv=0",
        "   r=r+1 i=V() st=S(i)",
        "  end",
        f"  print('{RESULT_TAG}',st,i,n,r,la,m,f,o)",
    ]
    reset_body = _configure(compliance, nplc) + [
        "  s.source.levelv=C(-RL) D(RW) s.source.levelv=0",
        "  local i=V()",
        f"  print('{RESULT_TAG}',S(i),i,0,1,0,m,-1,-1)",
    ]
    lines = (
        [f"{loop}=function(LO,HI,VR,A0,AS,AM,W,N,PRE,RL,RW,RM)"] + head + _guarded(loop_body) + ["end"]
        + [f"{reset}=function(LO,HI,VR,RL,RW)"] + head + _guarded(reset_body) + ["end"]
        + [f"print('{RESULT_TAG}-ready')"]
    )  # fmt: skip
    return "\n".join(lines)


def loop_call(name: str, *, i_lo: float, i_hi: float, v_read: float, a0: float, a_step: float, a_max: float, width: float,
              pulses: int, preread: bool, reset: tuple[float, float, int] | None = None) -> str:  # fmt: skip
    """The per-device script: one call of the loop function."""
    rl, rw, rm = reset if reset is not None else (0.0, 0.0, 0)
    args = [i_lo, i_hi, v_read, a0, a_step, a_max, width]
    return f"{name}({','.join(_n(x) for x in args)},{int(pulses)},{'true' if preread else 'false'},{_n(rl)},{_n(rw)},{int(rm)})"


def reset_call(name: str, *, i_lo: float, i_hi: float, v_read: float, level: float, width: float) -> str:
    """The host-side RESET step: one call of the RESET function."""
    return f"{name}({','.join(_n(x) for x in (i_lo, i_hi, v_read, level, width))})"


def parse_reply(text: str) -> LoopReply:
    """The compact line a loop or RESET script printed."""
    for line in text.splitlines():
        fields = line.strip().split("\t")
        if fields[0] != RESULT_TAG:
            continue
        if len(fields) != 9 or fields[1] not in STATUSES:
            break
        try:
            return LoopReply(fields[1], float(fields[2]), int(float(fields[3])), int(float(fields[4])), float(fields[5]), int(float(fields[6])), float(fields[7]), float(fields[8]))
        except ValueError:
            break
    if text.startswith(SCRIPT_ERROR):
        raise InstrumentError(f"the verify script failed on the instrument: {text.partition(chr(9))[2].strip()}")
    raise ReplyError(f"the verify script printed {text[:120]!r}, not '{RESULT_TAG} <status> <current> <pulses> <resets> <amplitude> <reads> <first>'")


# --- the plan -----------------------------------------------------------------------------------
@register
class SmuWriteVerify(Plan):
    """Program ``cells`` to ``targets`` (S) one device at a time, the verify loop on the 2636B
    (module docstring), as a plan the engine runs: one :class:`~.messages.SmuDefine` with the
    loop, then one :class:`~.messages.SmuScript` per route. A script whose reply was lost is
    never sent again blindly: the device's next script reads it first (``preread``), so a device
    that reached its band costs no further pulse.

    Parameters
    ----------
    cells
        A cell selection (:class:`labrram.Cells`, a boolean mask, or ``(rows, cols)`` arrays).
    targets
        One conductance per selected cell, or an array of the array's shape, S.
    model : ReRAMModel
        The calibrated device model (start gates and amplitudes).
    settings : SmuLoopSettings
        Protocol settings.
    """

    name = "smu-write-verify"

    def __init__(self, cells: Any, targets: Any, model: ReRAMModel, settings: SmuLoopSettings = SmuLoopSettings()) -> None:
        self.cells = cells
        self.targets = targets
        self.model = model
        self.settings = settings

    def check(self, xb: Crossbar) -> None:
        smu = xb.smu
        if not isinstance(smu, Keithley2600):
            raise TypeError(f"the on-instrument loop needs a Keithley 2600B driver as the station's SMU, got {type(smu).__name__}")
        s = self.settings
        self.setup = prepare_run(xb, smu, self.cells, self.targets, self.model, s)  # nothing is sent before this passes
        self.v_read = float(xb.read_voltage)
        self.bounds = dict(vmax=min(xb.limits.max_voltage, smu.limits.max_voltage, MAX_VOLTAGE), wmax=min(xb.limits.max_pulse_width, smu.limits.max_pulse_width),
                           compliance=s.compliance, nplc=s.read_nplc, verify_reads=s.verify_reads)  # fmt: skip
        self.smu_name = smu.smu
        self.t_int = s.read_nplc / smu.line_frequency  # one integration, s (a query: nothing is sourced)

    def params(self) -> dict[str, Any]:
        return {"settings": self.settings.to_dict(), "calibration": model_to_json(self.model)}

    def inputs(self) -> dict[str, Any]:
        su = self.setup
        return {"cell_row": (su.rows, ("device",), "1"), "cell_col": (su.cols, ("device",), "1"), "device_target": (su.targets, ("device",), "S")}

    @classmethod
    def from_store(cls, params: dict[str, Any], store: Any) -> "SmuWriteVerify":
        cells = Cells(store.read("cell_row").astype(np.int64), store.read("cell_col").astype(np.int64))
        return cls(cells, store.read("device_target"), model_from_json(params["calibration"]), SmuLoopSettings(**params["settings"]))

    def run(self, shape: tuple[int, int]) -> PlanRun:
        s, model, su, v_read = self.settings, self.model, self.setup, self.v_read
        n = su.targets.size
        achieved = np.full(n, np.nan)
        converged = np.zeros(n, bool)
        pulses = np.zeros(n, np.int32)
        stats = SmuLoopStats()
        loop_fn, reset_fn = function_names(self.smu_name, **self.bounds)
        yield SmuDefine(definition_script(self.smu_name, **self.bounds), f"{RESULT_TAG}-ready")
        scale_samples: list[float] = []
        chip_scale = 1.0
        for k in range(n):
            r, c = int(su.rows[k]), int(su.cols[k])
            half = su.accept[k]
            band = dict(i_lo=max(su.targets[k] - half, 0.0) * v_read, i_hi=(su.targets[k] + half) * v_read, v_read=v_read)
            gate = float(su.start_gate[k])
            if s.adapt and len(scale_samples) >= s.adapt_min_samples:
                # this chip's medians differ from the calibration's: start where they really are
                chip_scale = float(np.clip(np.median(scale_samples[-s.adapt_window :]), 0.5, 2.0))
                gate = float(start_gates(model, su.targets[k : k + 1] / chip_scale, s.start_margin, s.gate_min, s.gate_max)[0])
            scripts = resets = 0
            first, step, after_reset = True, "set", gate
            while scripts < 4 * (s.max_pulses + s.max_resets) + 2:
                if step == "set":
                    budget = min(s.pulses_per_script, s.max_pulses - int(pulses[k]))
                    if budget <= 0:
                        break
                    in_script_reset = gate >= model.v_gate_reset  # else the host must RESET
                    call = loop_call(
                        loop_fn, **band, a0=float(su.start_amplitude[k]), a_step=s.amplitude_step, a_max=float(su.max_amplitude[k]),
                        width=s.set_width, pulses=budget, preread=first and s.preread,
                        reset=(s.reset_amplitude, s.reset_width, s.max_resets - resets) if in_script_reset else None,
                    )  # fmt: skip
                    text = yield SmuScript(r, c, gate, call, _script_time(s, budget, self.t_int))
                else:  # RESET at a gate the SET route does not have: the host re-routes
                    call = reset_call(reset_fn, **band, level=s.reset_amplitude, width=s.reset_width)
                    text = yield SmuScript(r, c, s.reset_gate, call, _script_time(s, 1, self.t_int))
                    stats.reset_scripts += 1
                stats.routes += 1
                scripts += 1
                if not text:  # the reply was lost: what the script did is unknown — read first, then go on
                    first, step = True, "set"
                    continue
                reply = parse_reply(text)
                if step == "set" and reply.first > 0:  # one fresh SET draw at this gate: chip vs calibrated median
                    scale_samples.append(reply.first / v_read / float(model.median(model.transistor.compliance(gate))))
                if step == "set":
                    first = False
                stats.reads += reply.reads
                stats.set_pulses += reply.pulses
                stats.reset_pulses += reply.resets
                pulses[k] += reply.pulses + reply.resets
                resets += reply.resets
                achieved[k] = reply.current / v_read
                if reply.status == "OK":
                    converged[k] = True
                    break
                if reply.status == "UNDER":
                    if step == "set" and reply.resets == 0:  # this compliance is too low
                        gate = _next_gate(model, s, su.targets[k], reply.current / v_read, gate, up=True)
                    elif step == "set":  # an overshoot was RESET in the script: SET again, lower
                        gate = _next_gate(model, s, su.targets[k], reply.over / v_read, gate, up=False)
                    else:  # the host's RESET: SET again at the gate chosen at the overshoot
                        gate = after_reset
                    step = "set"
                    continue
                # OVER: RESET (again, for a device that did not RESET) unless out of RESETs
                if resets >= s.max_resets:
                    break
                if step == "set":
                    after_reset = _next_gate(model, s, su.targets[k], reply.current / v_read, gate, up=False)
                step = "reset"
            stats.scripts += scripts
            stats.per_device_scripts.append(scripts)
            stats.chip_scale = chip_scale
            yield Report("smu-write-verify", int(converged.sum()), n)
        physical = (stats.set_pulses * s.set_width + stats.reset_pulses * s.reset_width) + stats.reads * self.t_int
        return ProgramResult(
            self.name,
            su.full_targets,
            scatter(shape, su.rows, su.cols, achieved, np.nan),
            scatter(shape, su.rows, su.cols, converged, False),
            scatter(shape, su.rows, su.cols, pulses, 0),
            stats.scripts,
            0.0,
            physical_limit=physical,
            settings={**s.to_dict(), "run": stats.to_dict()},
        )


class _ClockTimer:
    """A bench clock (``.now`` attribute or method, seconds) as the engine's timer."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def now(self) -> float:
        now = self.clock.now
        return float(now() if callable(now) else now)

    def wait(self, seconds: float) -> None:
        self.clock.wait(seconds) if hasattr(self.clock, "wait") else self.clock.advance(seconds, "wait")


def smu_write_verify(
    xb: Crossbar,
    smu: Keithley2600,
    cells: Any,
    targets: Any,
    model: ReRAMModel,
    settings: SmuLoopSettings = SmuLoopSettings(),
    clock: Any = None,
    progress: Progress | None = None,
    out: str | Path | None = None,
) -> ProgramResult:
    """Run :class:`SmuWriteVerify` through the engine (``out``: a run store, resumable).

    ``smu`` is the crossbar's SMU (the 2600B channel wired to the board's SMU connector);
    ``clock`` the bench's timer or clock (``.now`` or ``.now()``, seconds), which sets
    ``bench_time``. Returns a :class:`ProgramResult` (array-shaped; ``iterations`` = scripts
    run, ``pulses`` counts SET and RESET pulses, ``settings['run']`` the host-side counts).
    """
    if not isinstance(smu, Keithley2600):
        raise TypeError(f"the on-instrument loop needs a Keithley 2600B driver, got {type(smu).__name__}")
    if smu is not xb.smu:
        raise ValueError("the SMU must be the crossbar's own (the one its board routes to the cells)")
    timer = None if clock is None else _ClockTimer(clock)
    return run_plan(xb, SmuWriteVerify(cells, targets, model, settings), out, timer=timer, progress=progress)


def _next_gate(model: ReRAMModel, s: SmuLoopSettings, target: float, g_now: float, gate: float, up: bool) -> float:
    """The next route gate after a miss: where the calibrated law, scaled by what this device just
    did at ``gate``, puts the median at ``(1 - start_margin) * target``; at least ``gate_step``
    up (``backoff`` down) and at most ``max_gate_move`` away."""
    median = float(model.median(model.transistor.compliance(gate)))
    factor = min(max(g_now / median, 0.25), 4.0) if median > 0 and g_now > 0 else 1.0
    g = float(start_gates(model, np.array([target / factor]), s.start_margin, s.gate_min, s.gate_max)[0])
    if up:
        g = min(max(g, gate + s.gate_step), gate + s.max_gate_move)
    else:
        g = max(min(g, gate - s.backoff), gate - s.max_gate_move)
    return float(min(max(g, s.gate_min), s.gate_max))


def _script_time(s: SmuLoopSettings, pulses: int, t_int: float) -> float:
    """Generous timeout of one script, s."""
    per = max(s.set_width, s.reset_width) + 2.0 * t_int + 1e-3
    return 2.0 * (pulses + s.max_resets + 2) * per + 2.0


__all__ = [
    "LoopReply",
    "SmuLoopSettings",
    "SmuLoopStats",
    "definition_script",
    "function_names",
    "loop_call",
    "parse_reply",
    "prepare_run",
    "SmuWriteVerify",
    "reset_call",
    "saturation_amplitude",
    "smu_write_verify",
]
