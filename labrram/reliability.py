"""Proving the reliability guarantees on the simulated bench: the fault matrix and the record audit.

:func:`audit` compares what reached the die (the simulated chip's pulse log) with what a run store
says was sent, device by device: every pulse on the die must be one record of the store, every
certain record one pulse on the die, and an uncertain record (``SET?``/``RESET?``) at most one
— nothing lost, nothing duplicated.

:func:`run_case` programs a small simulated array through a station whose bench injects one kind of
fault (:data:`CASES`), and checks the outcome: the run either completes, or stops cleanly (an
:class:`~labrram.drivers.base.InstrumentError`, every output off, the store marked interrupted
with the reason and the pending batch) and then completes with ``resume`` once the fault is
gone; in both cases the store and the die agree (:func:`audit`). ``benchmarks/bench_faults.py``
prints the matrix; ``tests/reliability`` runs it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .drivers.base import InstrumentError
from .protocols.journal import KIND_CODES, read_log
from .sim import configure_bench
from .sim.chip import PulseKind
from .sim.faults import Fault, FaultPlan
from .station import load_station
from .store import RunStore

#: fault kinds of the matrix -> rule (every rule targets the board unless it says otherwise)
CASES: dict[str, Callable[[int], list[Fault]]] = {
    "timeout": lambda seed: [Fault("timeout", rate=0.08)],
    "lost command": lambda seed: [Fault("timeout", rate=0.08, executed=False)],
    "dropped bytes": lambda seed: [Fault("drop", rate=0.08, nbytes=3)],
    "garbled bytes": lambda seed: [Fault("garble", rate=0.08, nbytes=3)],
    "partial line": lambda seed: [Fault("partial", rate=0.08)],
    "error queue": lambda seed: [Fault("error", rate=0.08)],
    "board reset": lambda seed: [Fault("reset", rate=0.04)],
    "board gone for good": lambda seed: [Fault("disappear", at=3 + seed % 9)],
    "board gone briefly": lambda seed: [Fault("disappear", at=3 + seed % 9, duration=1)],
    "smu lost commands": lambda seed: [Fault("timeout", instrument="k2400", rate=0.15, executed=False)],
    "stuck devices": lambda seed: [Fault("stuck", at=6 + seed % 5, fraction=0.1, state="lrs" if seed % 2 else "hrs")],
    "chip stops switching": lambda seed: [Fault("dead", at=6 + seed % 9, fraction=1.0)],
}

PROTOCOLS = ("single-shot", "write-verify", "stochastic-set")


@dataclass
class AuditResult:
    """What :func:`audit` found."""

    devices: int = 0
    die_pulses: int = 0
    records: int = 0
    uncertain: int = 0
    mismatched: list[tuple[int, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatched


def die_pulses(records: np.ndarray) -> np.ndarray:
    """The board's SET and RESET pulses out of a chip pulse log (structured records)."""
    keep = (records["source"] == 0) & ((records["kind"] == PulseKind.SET) | (records["kind"] == PulseKind.RESET))
    return records[keep]


def _by_device(rows: np.ndarray, cols: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    key = rows.astype(np.int64) * n_cols + cols.astype(np.int64)
    order = np.argsort(key, kind="stable")
    keys, starts = np.unique(key[order], return_index=True)
    return order, keys, np.append(starts, key.size)


def audit(chip_log: np.ndarray, run_log: dict[str, np.ndarray], shape: tuple[int, int]) -> AuditResult:
    """Match the die's pulses with a run store's log, device by device (see the module docstring).

    Parameters
    ----------
    chip_log : numpy.ndarray
        The chip's pulse log (``PULSE_DTYPE`` records), board pulses of this run only.
    run_log : dict
        The run's pulse log (:func:`labrram.protocols.journal.read_log`).
    shape : tuple
        Array shape.
    """
    die = die_pulses(chip_log)
    kind = run_log["kind"].astype(int)
    res = AuditResult(die_pulses=int(die.size), records=int(kind.size), uncertain=int(np.sum(kind >= 2)))
    die_kind = np.where(die["kind"] == PulseKind.SET, 0, 1)
    rec_kind = np.where((kind == KIND_CODES["SET"]) | (kind == KIND_CODES["SET?"]), 0, 1)
    rec_certain = kind < 2
    n_cols = shape[1]
    d_order, d_keys, d_starts = _by_device(die["row"], die["col"], n_cols)
    r_order, r_keys, r_starts = _by_device(run_log["row"].astype(int), run_log["col"].astype(int), n_cols)
    d_map = {int(k): (d_starts[i], d_starts[i + 1]) for i, k in enumerate(d_keys)}
    r_map = {int(k): (r_starts[i], r_starts[i + 1]) for i, k in enumerate(r_keys)}
    res.devices = len(set(d_map) | set(r_map))
    for key in set(d_map) | set(r_map):
        a, b = d_map.get(key, (0, 0))
        di = d_order[a:b]
        c, d = r_map.get(key, (0, 0))
        ri = r_order[c:d]
        dseq = list(zip(die_kind[di], die["gate"][di], die["amplitude"][di]))
        rseq = list(zip(rec_kind[ri], run_log["gate"][ri], run_log["amplitude"][ri], rec_certain[ri]))
        if not _match(dseq, rseq):
            res.mismatched.append(divmod(key, n_cols))
    return res


def _match(die: list, rec: list) -> bool:
    """Whether ``rec`` (with optional uncertain entries) explains ``die`` exactly, in order."""
    memo: dict[tuple[int, int], bool] = {}

    def same(p, q) -> bool:
        return p[0] == q[0] and abs(float(p[1]) - float(q[1])) <= 1e-4 + 1e-5 * abs(float(q[1])) and abs(float(p[2]) - float(q[2])) <= 1e-4 + 1e-5 * abs(float(q[2]))

    def f(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[(i, j)]
        if j == len(rec):
            out = i == len(die)
        else:
            out = False
            if i < len(die) and same(die[i], rec[j]):
                out = f(i + 1, j + 1)
            if not out and not rec[j][3]:
                out = f(i, j + 1)
        memo[(i, j)] = out
        return out

    return f(0, 0)


@dataclass
class CaseResult:
    """One run of the fault matrix."""

    kind: str
    protocol: str
    seed: int
    outcome: str  # "completed", "stopped cleanly", or "FAILED: ..."
    faults_fired: int
    audit: AuditResult | None = None
    reason: str = ""
    wall: float = 0.0
    #: closed-loop jobs: devices the store reports converged, and how many of them are outside
    #: the job's band in truth (:func:`truth_of_claims`, taken when the job returned)
    converged: int = 0
    out_of_band: int = 0

    @property
    def ok(self) -> bool:
        return not self.outcome.startswith("FAILED")


#: every job the campaign can run: the programming protocols and the characterization plans
JOBS = ("single-shot", "write-verify", "stochastic-set", "write-verify-pcm", "tune-passive",
        "characterize-reram", "characterize-pcm", "characterize-passive")  # fmt: skip
_JOB_CHIP = {"write-verify-pcm": "pcm", "tune-passive": "passive", "characterize-pcm": "pcm", "characterize-passive": "passive"}
#: fault kinds of the chip itself (the campaign injects stuck and dead devices into the ReRAM and
#: PCM jobs; a passive array's devices have no such fault in the simulation)
CHIP_FAULTS = ("stuck devices", "chip stops switching")


def applies(kind: str, job: str) -> bool:
    """Whether fault ``kind`` can be injected while ``job`` runs."""
    return kind not in CHIP_FAULTS or _JOB_CHIP.get(job, "reram") in ("reram", "pcm")


def _job(job: str, seed: int, rows: int, cols: int) -> tuple[Any, np.ndarray | None]:
    """``start(connected, path)`` for ``job`` and its targets (None for a characterization)."""
    from . import api
    from .calibration import PassiveCharacterization, PCMCharacterization, ReRAMCharacterization
    from .calibration.files import default_calibration
    from .protocols.single_shot import OneShotSettings, population_sigma

    rng = np.random.default_rng(seed)
    if job.startswith("characterize"):
        if job == "characterize-reram":
            settings: Any = ReRAMCharacterization(n_devices=16, gates=(1.5, 1.8, 2.1), cycles=2, transistor_cells=2, read_repeats=4,
                                                  relaxation_delays=(1.0, 10.0), relaxation_reads=2, seed=seed)  # fmt: skip
        elif job == "characterize-pcm":
            settings = PCMCharacterization(n_devices=12, targets=(4e-6, 10e-6, 18e-6), drift_times=(20.0, 200.0, 2000.0), read_repeats=4, seed=seed)
        else:
            settings = PassiveCharacterization(n_devices=8, read_repeats=4, seed=seed)
        return (lambda c, path: api.characterize(c, settings=settings, out=path)), None
    if job == "write-verify-pcm":
        targets = rng.uniform(2e-6, 20e-6, (rows, cols))
    elif job == "tune-passive":
        targets = np.where(rng.random((rows, cols)) < 0.3, rng.uniform(10e-6, 80e-6, (rows, cols)), np.nan)
    else:
        targets = rng.uniform(50e-6, 180e-6, (rows, cols))
    targets[rng.random((rows, cols)) < 0.05] = np.nan
    if job in ("single-shot", "stochastic-set"):
        model = default_calibration("reram").model
        sigma = population_sigma(model, np.where(np.isnan(targets), 1e-4, targets)) if job == "stochastic-set" else None
        settings = OneShotSettings(chunk=max(rows * cols // 4, 1))
        return (lambda c, path: api.program(targets, c, protocol=job, sigma=sigma, settings=settings, out=path)), targets
    return (lambda c, path: api.program(targets, c, out=path)), targets


def run_case(
    kind: str,
    seed: int,
    protocol: str = "single-shot",
    rows: int = 16,
    cols: int = 16,
    workdir: str | Path | None = None,
    bench: str = "faults",
) -> CaseResult:
    """Run job ``protocol`` (one of :data:`JOBS`) on a ``rows`` x ``cols`` simulated array under
    fault ``kind`` (see :data:`CASES`)."""
    from . import api

    t0 = time.perf_counter()
    plan = FaultPlan(CASES[kind](seed), seed=seed)
    chip_seed = 100 + seed
    chip = _JOB_CHIP.get(protocol, "reram")
    b = configure_bench(bench, seed=chip_seed, kind=chip, rows=rows, cols=cols, faults=plan)
    station = load_station().with_simulation(bench=bench, seed=chip_seed, kind=chip, rows=rows, cols=cols, faults=plan)
    start, targets = _job(protocol, seed, rows, cols)
    tmp = contextlib.ExitStack()
    if workdir is None:
        workdir = tmp.enter_context(tempfile.TemporaryDirectory(prefix="labrram-faults-"))
    path = Path(workdir) / f"{protocol}-{kind.replace(' ', '_')}-{seed}.zarr"

    def session(resume: bool) -> tuple[np.ndarray | None, BaseException | None]:
        """One connection, as the ``labrram program`` command makes it: the SMU output on (as
        when a measurement was under way), then the job; any error leaves the ``with`` block,
        which turns every output off. Returns the chip's :func:`truth_of_claims` when the job
        returned, or the error."""
        try:
            with station.connect() as connected:
                smu = connected.instruments["smu"]
                smu.read_errors()  # what an earlier session's lost commands left queued (as a careful script drains it)
                smu.configure_voltage_source(1e-3)
                smu.set_voltage(0.0)
                smu.enable_output()
                if resume:
                    api.resume(path, connected)
                else:
                    if path.exists():  # a previous attempt failed before its run started
                        shutil.rmtree(path)
                    start(connected, path)
                return truth_of_claims(b.chip), None
        except InstrumentError as exc:
            return None, exc

    with tmp:
        try:
            truth, error = session(False)
            if b.outputs_on():
                return CaseResult(kind, protocol, seed, f"FAILED: outputs left on {b.outputs_on()}", plan.fired(), wall=time.perf_counter() - t0)
            outcome, reason = "completed", ""
            if error is not None:
                outcome, reason = "stopped cleanly", f"{type(error).__name__}: {error}"
                started = path.exists()
                if started:
                    attrs = RunStore.open(path).attrs
                    if attrs.get("status") != "interrupted" or "stopped" not in (attrs.get("journal") or {}):
                        return CaseResult(kind, protocol, seed, "FAILED: the store does not say where the run stopped", plan.fired(), reason=reason)
                b.inject(None)  # the fault is gone (the board is plugged back in), then --resume
                truth, error2 = session(started)
                if error2 is not None:
                    return CaseResult(kind, protocol, seed, f"FAILED: resume failed: {error2}", plan.fired(), reason=reason)
                if b.outputs_on():
                    return CaseResult(kind, protocol, seed, "FAILED: outputs left on after resume", plan.fired(), reason=reason)
            store = RunStore.open(path)
            if store.attrs.get("status") != "complete":
                return CaseResult(kind, protocol, seed, "FAILED: run not complete", plan.fired(), reason=reason)
            run_log = read_log(store)
            result = audit(b.chip.pulse_log.records, run_log, (rows, cols))
            if not result.ok:
                return CaseResult(kind, protocol, seed, f"FAILED: {len(result.mismatched)} device(s) disagree with the die", plan.fired(), result, reason)
            if protocol in ("single-shot", "stochastic-set"):  # one SET per healthy device, exactly
                die = die_pulses(b.chip.pulse_log.records)
                sets = np.zeros((rows, cols), int)
                s = die["kind"] == PulseKind.SET
                np.add.at(sets, (die["row"][s], die["col"][s]), 1)
                healthy = (b.chip._stuck == 0) & ~np.isnan(targets)
                if np.any(sets[healthy] != 1):
                    return CaseResult(kind, protocol, seed, f"FAILED: {int(np.sum(sets[healthy] != 1))} healthy device(s) not SET exactly once", plan.fired(), result, reason)
            converged, out = judged_in_truth(store, truth)
            return CaseResult(kind, protocol, seed, outcome, plan.fired(), result, reason, time.perf_counter() - t0, converged, out)
        except Exception as exc:  # a bug: report it in the matrix instead of hiding it
            return CaseResult(kind, protocol, seed, f"FAILED: {type(exc).__name__}: {exc}", plan.fired(), wall=time.perf_counter() - t0)


def truth_of_claims(chip: Any) -> np.ndarray:
    """What a programming job's "converged" is judged on, for every device of a simulated chip
    (read from its hidden state, only to judge), S: the true conductance now; on a PCM chip,
    whose devices drift by design, the state its last programming left, before any drift.
    Taken when the job returns: the moment its final read made the claim."""
    rows, cols = np.indices((chip.rows, chip.cols)).reshape(2, -1)
    judge = getattr(chip, "_programmed_conductance", chip._conductance)
    return np.asarray(judge(rows, cols), dtype=float).reshape(chip.rows, chip.cols)


def judged_in_truth(store: RunStore, truth: np.ndarray) -> tuple[int, int]:
    """Devices a closed-loop programming run (ReRAM or PCM write-verify) reports converged, and
    how many of them lie outside the run's band in truth (``truth``: :func:`truth_of_claims`
    taken when the job returned). ReRAM: the tolerance band. PCM: its band holds at the verify
    read, which the 1/f read noise moves by up to about 3 bands, and the drift since is the
    deployment's to compensate; a programmed state beyond
    :data:`~labrram.protocols.write_verify.BROKEN` bands and ``BROKEN_REL`` of the target is a
    broken device. ``(0, 0)`` for other jobs."""
    from .protocols.write_verify import BROKEN, BROKEN_REL

    plan = store.attrs.get("plan")
    settings = (store.attrs.get("plan_params") or {}).get("settings") or {}
    if plan not in ("write-verify", "write-verify-pcm"):
        return 0, 0
    converged = np.asarray(store.read("converged"), dtype=bool)
    targets = np.asarray(store.read("targets"), dtype=float)
    rows, cols = np.nonzero(converged)
    g = truth[rows, cols]
    t = targets[rows, cols]
    if plan == "write-verify":
        band = np.maximum(settings.get("tolerance", 0.05) * t, settings.get("abs_tolerance", 1e-6))
    else:
        band = np.maximum(BROKEN * settings.get("half_width", 1e-6), BROKEN_REL * t)
    return int(rows.size), int(np.sum(np.abs(g - t) > band * (1 + 1e-9)))


def matrix(kinds=None, seeds=range(10), protocols=("single-shot",), **options: Any) -> list[CaseResult]:
    """Every fault kind x seed x job (see :func:`run_case`) where the fault applies."""
    out = []
    for protocol in protocols:
        for kind in kinds or CASES:
            if not applies(kind, protocol):
                continue
            for seed in seeds:
                out.append(run_case(kind, seed, protocol, **options))
    return out


def table(results: list[CaseResult]) -> list[dict[str, Any]]:
    """Counts per (protocol, fault kind): runs, completed, stopped cleanly (then resumed),
    failed, faults injected; devices reported converged and, of those, out of band in truth."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault((r.protocol, r.kind), {"protocol": r.protocol, "fault": r.kind, "runs": 0, "completed": 0, "stopped cleanly": 0, "failed": 0,
                                                     "faults injected": 0, "converged": 0, "out of band": 0})  # fmt: skip
        row["runs"] += 1
        row["faults injected"] += r.faults_fired
        row["converged"] += r.converged
        row["out of band"] += r.out_of_band
        if r.outcome == "completed":
            row["completed"] += 1
        elif r.outcome == "stopped cleanly":
            row["stopped cleanly"] += 1
        else:
            row["failed"] += 1
    return list(rows.values())
