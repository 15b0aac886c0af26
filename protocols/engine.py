"""The one engine that runs every plan on a crossbar.

A plan (:mod:`.plan`) says what to do: it yields messages (:mod:`.messages`) and receives their
results. The engine does it, and is the only code that turns messages into driver calls and
run-store writes, so every guarantee below is written once and holds for every plan alike:

* **limits before any byte**: the plan's own checks (:meth:`Plan.check`: settings envelope,
  targets) run before the first message; every pulse batch is checked again against the
  station's limits and the board's ranges before it is sent;
* **per-device budgets**: a pulse that would take a device beyond its per-run pulse or energy
  budget (``SafeLimits.max_pulses_per_device``, ``max_energy_per_device``; counted across
  resumes) is refused — never sent — and reported to the plan as status ``REFUSED``;
* **intent, then commit**: a pulse batch's intent (its devices, the board's pulse counter before
  it) is in the run store before the batch is sent; its results are committed after
  (:class:`.journal.Journal`);
* **a pulse of uncertain fate is settled, never repeated**: when a pulse exchange fails, the
  devices are read back at once and the board's pulse counter says whether the batch was
  delivered; a batch in flight when the process died is settled the same way on resume;
* **bounded retries of idempotent steps** (reads, sweeps, waits): ``read_retries`` more tries
  after a link fault;
* **clean stops**: SIGINT/SIGTERM are deferred across commits; any exception stops the run with
  the store saying why and where, and every output off;
* **accounting**: the physical limit (pulse widths and set-up, row conversions, waits) and the
  bench time (the bench clock: virtual on the simulated bench) of every step, summed across
  resumes;
* **resume from the store alone**: the plan is rebuilt from the store and replayed; committed
  steps are answered from the store without touching the chip (:meth:`Journal.replay` checks
  that the plan asks for the same steps).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from labrram.crossbar import Crossbar
from labrram.drivers.base import InstrumentError
from labrram.drivers.board_base import PulseDeliveryError
from labrram.safety import LimitError
from labrram.store import StoreError
from labrram.timing import BenchTimer, WallTimer, pulses_time, reads_time

from .journal import KIND_CODES, LOG_FIELDS, Journal
from .results import Progress
from .messages import DELIVERED, REFUSED, UNKNOWN, Bias, Measure, Message, Now, Pulse, PulseResult, Read, Report, SmuDefine, SmuScript, Sweep, Wait

log = logging.getLogger("labrram.engine")


class Engine:
    """Runs plans on a crossbar (module docstring).

    Parameters
    ----------
    xb : Crossbar
        The array under test (its limits are the station's).
    journal : Journal, optional
        The run store; without one nothing is recorded and nothing can resume.
    timer : BenchTimer, optional
        The bench clock (``ConnectedStation.timer``: virtual on the simulated bench); default
        the wall clock.
    progress : callable, optional
        ``progress(label, done, total)`` for every :class:`~.messages.Report` of the plan.
    read_retries : int
        Extra tries of an idempotent step after a link fault.
    """

    def __init__(
        self,
        xb: Crossbar,
        journal: Journal | None = None,
        timer: BenchTimer | None = None,
        progress: Progress | None = None,
        read_retries: int = 2,
    ) -> None:
        self.xb = xb
        self.journal = journal
        if journal is not None:
            journal.chip_in_process = bool(getattr(xb, "in_process", False))
        self.timer = timer or WallTimer()
        self.progress = progress
        self.read_retries = int(read_retries)
        self.limits = xb.limits
        self.shape = tuple(xb.shape)
        self.spent = np.zeros(self.shape, dtype=np.int32)  # pulses that (may have) reached each device in this run
        self.energy = np.zeros(self.shape)  # their worst-case energy, J
        prior = journal.accounting if journal is not None else {}
        self.physical_limit = float(prior.get("physical_limit", 0.0))
        self.bench_time = float(prior.get("bench_time", 0.0))
        self._wall_before = float(prior.get("wall_time", 0.0))
        self.recovered = 0  # failed exchanges recovered from (read-backs, retries)
        self._faults_before = int(prior.get("faults_recovered", 0))  # earlier sessions of the run
        self._links_at_start = self._link_faults()
        self.settled = 0  # batches in flight at a stop, settled on resume
        self.step = 0
        self._t0 = time.perf_counter()
        self._counter_known = True
        self._live = False
        self._smu_used = False

    # --- running a plan ----------------------------------------------------------------------
    def run(self, plan: Any, checked: bool = False) -> Any:
        """Run ``plan`` (an object with ``check(xb)`` and ``run(shape)``, or a bare generator) to
        its end and return what it returns. With a journal that holds an interrupted run of the
        same plan, the stored steps are replayed and the run continues from there."""
        if self.journal is not None:
            stored = tuple(self.journal.attrs.get("array_shape", self.shape))
            if stored != self.shape:
                raise StoreError(f"{self.journal.path}: the run is for a {stored[0]}x{stored[1]} array; this station's array is {self.shape[0]}x{self.shape[1]}")
        if hasattr(plan, "check") and not checked:
            plan.check(self.xb)  # everything the plan can check, before any byte
        gen = plan.run(self.shape) if hasattr(plan, "run") else plan
        self._t0 = time.perf_counter()
        try:
            reply: Any = None
            while True:
                try:
                    msg = gen.send(reply)
                except StopIteration as stop:
                    result = stop.value
                    break
                if isinstance(msg, Report):
                    if self.progress is not None:
                        self.progress(msg.label, msg.done, msg.total)
                    reply = None
                    continue
                if not isinstance(msg, Message):
                    raise TypeError(f"a plan yielded {type(msg).__name__}, not a message")
                reply = self._step(msg)
            self._finish(result)
            return result
        except BaseException as exc:
            if self.journal is not None:
                with contextlib.suppress(Exception):
                    self.journal.stopped(exc, self.step)
            with contextlib.suppress(Exception):
                self.xb.shutdown()
            raise
        finally:
            gen.close()

    @property
    def wall_time(self) -> float:
        return self._wall_before + time.perf_counter() - self._t0

    def _link_faults(self) -> int:
        """Failed exchanges the board's and the SMU's drivers recovered from so far."""
        return int(sum(getattr(inst, "link_faults", 0) for inst in {id(i): i for i in (getattr(self.xb, "board", None), getattr(self.xb, "smu", None)) if i is not None}.values()))

    def accounting(self) -> dict[str, float]:
        """Seconds so far (physical limit, bench clock, wall clock) and the faults recovered
        (``faults_recovered``: the drivers' failed exchanges and the engine's read-backs and
        retries), summed across resumes; recorded with every commit, so a watcher sees them."""
        faults = self._faults_before + self.recovered + self._link_faults() - self._links_at_start
        return {"physical_limit": self.physical_limit, "bench_time": self.bench_time, "wall_time": self.wall_time, "faults_recovered": float(faults)}

    def _finish(self, result: Any) -> None:
        if self._smu_used:  # the scripts leave their output off; the route is opened at the end
            self.xb.smu.shutdown()
            self.xb.board.open_route()
            self.xb.board.check_errors()  # a route the board refused would show here
        own = float(getattr(result, "physical_limit", 0.0) or 0.0)  # what the plan counted itself (SMU scripts)
        self.physical_limit += own
        for name, value in self.accounting().items():
            if hasattr(result, name):
                setattr(result, name, value)
        if self.journal is not None:
            summary = result.summary() if hasattr(result, "summary") else None
            self.journal.accounting = self.accounting()
            self.journal.finish(result, summary)

    # --- one step ------------------------------------------------------------------------------
    def _step(self, msg: Message) -> Any:
        k = self.step
        j = self.journal
        if j is not None and not self._live:
            if k < j.replayable:  # answered from the store: the chip is not touched
                result = j.replay(k, msg)
                if isinstance(msg, Pulse):
                    self._charge(msg, result)
                elif msg.sets_state:  # the instrument may have forgotten it: set it again
                    self._idempotent(msg)
                self.step += 1
                return result
            j.go_live()
        self._live = True
        t_before = self.timer.now()
        if j is not None and j.pending is not None and int(j.pending["step"]) == k:
            j.check_same(k, msg, int(j.pending["op"]), int(j.pending["n"]), int(j.pending["crc"]))
            if isinstance(msg, SmuScript):  # what a script whose reply was lost did is unknown
                result, rows = "", None
                self.settled += 1
            else:
                result, rows = self._settle(msg, j.pending.get("counter"))
        elif isinstance(msg, Pulse):
            result, rows = self._pulse(k, msg)
        elif isinstance(msg, SmuScript):
            result, rows = self._smu_script(k, msg), None
        else:
            result, rows = self._idempotent(msg), None
        t_after = self.timer.now()
        self.bench_time += max(t_after - t_before, 0.0)
        if j is not None:
            j.commit(k, msg, result, rows, t_after, self.accounting())
        self.step += 1
        return result

    def _pulse(self, k: int, msg: Pulse) -> tuple[PulseResult, np.ndarray]:
        xb, n = self.xb, msg.n
        try:
            xb.check_pulse(msg.amplitude, msg.gate, msg.width)
        except LimitError as exc:
            raise LimitError(f"step {k} ({msg.kind} on {n} device(s)): {exc}") from None
        over = self._over_budget(msg)
        g = np.full(n, np.nan)
        status = np.full(n, REFUSED, dtype=np.int8)
        send = np.flatnonzero(~over)
        if send.size:
            sub = (msg.rows[send], msg.cols[send])
            if self.journal is not None:
                self.journal.intend(k, msg, self._counter())
            fn = xb.set if msg.kind == "SET" else xb.reset
            try:
                reply = fn(sub, gate=msg.gate[send], amplitude=msg.amplitude[send], width=msg.width[send], read=msg.read)
                status[send] = DELIVERED
                if reply is not None:
                    g[send] = reply
            except PulseDeliveryError as exc:
                # never repeated: read the devices back before anything else, the counter decides
                self.recovered += 1
                status[send] = np.asarray(exc.status, dtype=np.int8)
                g[send] = self._retry(lambda: xb.read(sub), "read-back after a failed pulse exchange")
            self.physical_limit += pulses_time(msg.width[send])
            if msg.read:
                self.physical_limit += reads_time(*sub)
        result = PulseResult(g, status)
        self._charge(msg, result)
        return result, self._log_rows(k, msg, result)

    def _tsp(self) -> Any:
        smu = self.xb.smu
        if smu is None or not hasattr(smu, "run_script"):
            raise TypeError(f"this plan runs scripts on a TSP SMU (Keithley 2600B); the station's SMU is {type(smu).__name__}")
        return smu

    def _smu_script(self, k: int, msg: SmuScript) -> str:
        smu = self._tsp()
        try:
            self.limits.check_gate(msg.gate, "SMU route gate")
        except LimitError as exc:
            raise LimitError(f"step {k} (SMU script on ({msg.row}, {msg.col})): {exc}") from None
        if self.journal is not None:
            self.journal.intend(k, msg, None)
        self._smu_used = True
        self.xb.route_smu(int(msg.row), int(msg.col), gate=float(msg.gate))  # (this array's cell) the next route replaces it
        return smu.run_script(msg.script, timeout=msg.timeout)

    def _settle(self, msg: Message, counter: int | None) -> tuple[Any, np.ndarray | None]:
        """The pulse batch in flight when the run stopped: read its devices back and ask the
        board's pulse counter (recorded with the intent) whether it was delivered."""
        assert isinstance(msg, Pulse)
        cells = (msg.rows, msg.cols)
        # the run's own budget only: the connection the batch went out on is gone (a device that
        # one refused makes the count, and so the verdict, unknown: never a wrong one)
        over = self._over_budget(msg, connection=False)
        g = self._retry(lambda: self.xb.read(cells), "read-back of the batch in flight") if msg.n else np.empty(0)
        sent = int(np.count_nonzero(~over))
        verdict = UNKNOWN if counter is None else self.xb.delivery(int(counter), sent)
        status = np.where(over, REFUSED, verdict).astype(np.int8)
        g = np.where(over, np.nan, g)
        self.settled += 1
        result = PulseResult(np.asarray(g, float), status)
        self._charge(msg, result)
        return result, self._log_rows(self.step, msg, result)

    def _over_budget(self, msg: Pulse, connection: bool = True) -> np.ndarray:
        """Devices of ``msg`` that one more of its pulses would take beyond their per-run pulse
        or energy budget — or, with ``connection``, beyond what the board's driver still allows
        them on this connection (which also counts the jobs run before this one on it): such a
        device is given up on, the batch goes on without it, where the driver would refuse the
        whole batch."""
        cells = (msg.rows, msg.cols)
        e = self.limits.pulse_energy(msg.amplitude, msg.width)
        pulses, energy = self.spent[cells], self.energy[cells]
        spent_on = getattr(getattr(self.xb, "board", None), "spent", None)
        if connection and spent_on is not None:
            on_link = spent_on(*cells, array=getattr(self.xb, "array", None))
            pulses, energy = np.maximum(pulses, on_link[0]), np.maximum(energy, on_link[1])
        return (pulses + 1 > self.limits.max_pulses_per_device) | (energy + e > self.limits.max_energy_per_device)

    def _charge(self, msg: Pulse, result: PulseResult) -> None:
        """Count the pulses that (may have) reached their devices against their budgets."""
        hit = result.reached
        if hit.any():
            cells = (msg.rows[hit], msg.cols[hit])
            np.add.at(self.spent, cells, 1)
            np.add.at(self.energy, cells, self.limits.pulse_energy(msg.amplitude[hit], msg.width[hit]))

    @staticmethod
    def _log_rows(k: int, msg: Pulse, result: PulseResult) -> np.ndarray:
        keep = result.reached
        n = int(keep.sum())
        rows = np.empty((n, len(LOG_FIELDS)))
        rows[:, 0] = k
        rows[:, 1] = msg.rows[keep]
        rows[:, 2] = msg.cols[keep]
        rows[:, 3] = np.where(result.status[keep] == UNKNOWN, KIND_CODES[msg.kind + "?"], KIND_CODES[msg.kind])
        rows[:, 4] = msg.amplitude[keep]
        rows[:, 5] = msg.gate[keep]
        rows[:, 6] = msg.width[keep]
        rows[:, 7] = result.g[keep]
        return rows

    def _counter(self) -> int | None:
        """The board's pulse counter, or None when the board cannot tell."""
        if not self._counter_known:
            return None
        try:
            return self.xb.pulse_counter()
        except InstrumentError:
            self._counter_known = False  # a board without the counter: do not ask again
            return None

    def _idempotent(self, msg: Message) -> Any:
        xb = self.xb
        if isinstance(msg, Measure):
            self.physical_limit += reads_time(msg.rows, msg.cols)
            return self._retry(lambda: xb.measure((msg.rows, msg.cols), msg.voltage), "measure")
        if isinstance(msg, Read):
            self.physical_limit += reads_time(msg.rows, msg.cols)
            if msg.n == 0:
                return np.empty(0)
            return self._retry(lambda: xb.read((msg.rows, msg.cols)), "read")
        if isinstance(msg, Sweep):
            self.physical_limit += msg.n * xb.smu_nplc / 50.0  # one integration per point (50 Hz mains)
            return self._retry(lambda: xb.iv_sweep(int(msg.row), int(msg.col), msg.voltages, gate=msg.gate), "I-V sweep")
        if isinstance(msg, Bias):
            self._retry(lambda: xb.bias(msg.scheme), "bias")
            return None
        if isinstance(msg, Wait):
            self.physical_limit += float(msg.seconds)
            self.timer.wait(float(msg.seconds))
            return None
        if isinstance(msg, Now):
            return float(self.timer.now())
        if isinstance(msg, SmuDefine):
            printed = self._tsp().run_script(msg.script)
            if printed.strip() != msg.ready:
                raise InstrumentError(f"defining functions on the SMU printed {printed[:120]!r}, not {msg.ready!r}")
            return None
        raise TypeError(f"the engine does not know the message {type(msg).__name__}")

    def _retry(self, fn: Callable[[], Any], what: str) -> Any:
        for attempt in range(self.read_retries + 1):
            try:
                return fn()
            except InstrumentError as exc:
                if attempt == self.read_retries:
                    raise
                self.recovered += 1
                log.warning("%s failed (%s); trying again (%d of %d)", what, exc, attempt + 1, self.read_retries)
        raise AssertionError("unreachable")  # pragma: no cover


def run_plan(
    xb: Crossbar,
    plan: Any,
    out: str | Path | None = None,
    *,
    timer: BenchTimer | None = None,
    progress: Progress | None = None,
    attrs: dict[str, Any] | None = None,
) -> Any:
    """Check ``plan`` (before any byte and before any file), create its run store at ``out``
    (when given: recorded and resumable) and run it to its end; returns what the plan returns."""
    return start_plan(xb, plan, out, timer=timer, progress=progress, attrs=attrs).run(plan, checked=True)


def start_plan(
    xb: Crossbar,
    plan: Any,
    out: str | Path | None = None,
    *,
    timer: BenchTimer | None = None,
    progress: Progress | None = None,
    attrs: dict[str, Any] | None = None,
) -> Engine:
    """Check ``plan`` (before any byte and before any file) and create its run store at ``out``
    (when given); returns the engine that runs it (``engine.run(plan, checked=True)``), whose
    counts — recovered exchanges, settled batches, accounting — the caller may want."""
    plan.check(xb)
    journal = None
    if out is not None:
        journal = Journal.create(out, plan.kind, plan.name, plan.params(), tuple(xb.shape), plan.inputs(), attrs)
    return Engine(xb, journal, timer=timer, progress=progress)


def resume_plan(xb: Crossbar, out: str | Path, *, timer: BenchTimer | None = None, progress: Progress | None = None) -> Any:
    """Continue the interrupted run stored at ``out`` on ``xb``: its plan is rebuilt from the
    store alone, the stored steps are replayed without touching the chip, a batch in flight is
    settled, and the run goes on from there."""
    from .plan import plan_from_store

    journal = Journal.open(out)
    return Engine(xb, journal, timer=timer, progress=progress).run(plan_from_store(journal.store))


class PlanStepper:
    """A plan stepped one message at a time, with no hardware and no store, by whoever holds
    the results: :attr:`message` is the message the plan asks for now (:class:`~.messages.Report`
    messages are skipped), :meth:`answer` gives its result and moves on; once the plan has
    returned, :attr:`done` is true and :attr:`result` holds what it returned."""

    def __init__(self, plan: Any, shape: tuple[int, int]) -> None:
        self._gen = plan.run(shape) if hasattr(plan, "run") else plan
        self.message: Any = None
        self.done = False
        self.result: Any = None
        self._send(None)

    def _send(self, reply: Any) -> None:
        try:
            msg = self._gen.send(reply)
            while isinstance(msg, Report):
                msg = self._gen.send(None)
        except StopIteration as stop:
            self.message, self.done, self.result = None, True, stop.value
            return
        self.message = msg

    def answer(self, result: Any) -> None:
        """The result of :attr:`message`; the plan then asks for its next message (or returns)."""
        if self.done:
            raise RuntimeError("the plan has returned; it asks for nothing more")
        self._send(result)


def simulate(plan: Any, shape: tuple[int, int], answer: Callable[[Message], Any]) -> Any:
    """Step ``plan`` with no hardware and no store: ``answer(message)`` gives each message's
    result (e.g. from a device model); :class:`~.messages.Report` messages are skipped. Returns
    what the plan returns — how plans are tested and how their bare algorithmic cost is measured."""
    stepper = PlanStepper(plan, shape)
    while not stepper.done:
        stepper.answer(answer(stepper.message))
    return stepper.result
