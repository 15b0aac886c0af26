"""ReRAM write-verify on the simulated bench: speed, pulses and accuracy, scale.

Writes docs/bench/program.md (three tables, each with the commit and machine that produced it):

1. **16,384 devices, targets uniform 40–200 µS**, three chips (station seeds 0, 1, 2: different
   chips reach the bench), medians:

   * ``labrram program`` — the CLI in a fresh process, run store included (start-up, imports,
     connecting, programming, recording, closing);
   * full stack with and without the run store — the write-verify plan through the engine →
     Crossbar → board driver → pyserial URL handler → board emulator → chip; with the run
     store twice: as it runs on this in-process simulated bench (intents written, not flushed
     to the disk) and with every intent flushed (``fdatasync``), as for a chip outside the
     process;
   * bare device model — the same plan answered by the chip object directly (no engine, no
     drivers, no bytes, no store): what the algorithm and the physics cost on this machine;
     these four are run in turn on each chip, ``REPEATS`` times (walls: medians over chips
     and repeats, so that a busy moment of the machine falls on all four alike);
   * naive — one device at a time, one exchange per pulse and per read (a quick script's way),
     on 256 devices, scaled to 16,384; its bench time includes the link's round trips.

   Time to first byte: from starting ``labrram program`` to the first byte it sends to an
   instrument.
2. **The whole reachable range** (log-uniform targets between the medians of the lowest and the
   highest gate), full stack, three chips: the ``aim`` policy, gate-stepping ISPP as it was
   (guard 2, 60 iterations), ISPP with the same guard and iteration cap as ``aim``, and plain
   ISPP from the lowest gate; judged on the chip's true conductance at the end of the run (the
   chip has relaxed meanwhile), per conductance range, with the floor that no SET-and-RESET
   policy beats (:func:`labrram.protocols.set_policy.expected_pulses` on the same bands).
3. **Array size**: ``labrram program`` (CLI, run store) from 32×32 to 512×512: wall time and the
   process's peak memory (its own ``ru_maxrss``).
4. **Several 128×128 arrays on one board**: a simulated board carrying four arrays; one process
   programs 1, 2 and 4 of them one after the other (``labrram.program(..., array_index=i)``, a
   run store each): wall time and the process's peak memory, which stays flat as arrays are
   added (the board's four chips are in memory in every row).

Bench times are the virtual clock of the timing model (labrram/timing.py,
docs/board-protocol.md "Timing model").
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.protocols import set_policy
from labrram.protocols.journal import Journal
from labrram.protocols.write_verify import ReRAMWriteVerify, WriteVerifyReRAM, acceptance_band, averaged_band, reachable_range, start_gates, write_verify_reram
from labrram.station import load_station

from .common import against, markdown_table, table, write_page

SHAPE = (128, 128)
CHIPS = (0, 1, 2)
#: runs of each configuration per chip in the speed table (their walls' median is reported)
REPEATS = 3
V_READ = 0.2
ROOT = Path(__file__).resolve().parent.parent


#: the parts of the run store's time the speed table reports: timed method -> what it is
STORE_PARTS = {
    "create": "creating the store",
    "intend": "writing the intents of the pulse batches",
    "_datasync": "of which flushing them to the disk",
    "commit": "buffering the steps",
    "finish": "finishing (the last checkpoint, results, coordinates, consolidation)",
}


@contextlib.contextmanager
def store_timer():
    """Time the run store's parts (:data:`STORE_PARTS`) while the block runs: yields a dict of
    seconds per part (wall time spent in each, filled as the run goes)."""
    from labrram.protocols import journal, wal

    spent = {k: 0.0 for k in STORE_PARTS}
    owners = {k: wal if k == "_datasync" else journal.Journal for k in STORE_PARTS}
    raw = {k: vars(owners[k])[k] for k in STORE_PARTS}  # as defined (a classmethod stays one)
    bound = {k: getattr(owners[k], k) for k in STORE_PARTS}  # what a call through the class reaches

    def timed(k):
        def call(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return bound[k](*args, **kwargs)
            finally:
                spent[k] += time.perf_counter() - t0

        return call

    for k in STORE_PARTS:
        setattr(owners[k], k, timed(k))
    try:
        yield spent
    finally:
        for k in STORE_PARTS:
            setattr(owners[k], k, raw[k])


def run_bare(plan, chip):
    """The plan's algorithm answered straight from a chip object: no engine, no drivers, no
    bytes, no clock — what the plan and the physics alone cost on this machine."""
    from labrram.protocols.engine import simulate
    from labrram.protocols.messages import Pulse, PulseResult, Read

    def answer(msg):
        if isinstance(msg, Pulse):
            fn = chip.pulse_set if msg.kind == "SET" else chip.pulse_reset
            fn(msg.rows, msg.cols, msg.amplitude, msg.gate, msg.width)
            g = chip.read(msg.rows, msg.cols, V_READ, 3.3) / V_READ if msg.read else np.full(msg.n, np.nan)
            return PulseResult(g, np.ones(msg.n, np.int8))
        if isinstance(msg, Read):
            return chip.read(msg.rows, msg.cols, V_READ, 3.3) / V_READ
        raise TypeError(f"the bare path does not answer {type(msg).__name__}")

    return simulate(plan, (chip.rows, chip.cols), answer)


def naive_write_verify(board, rows, cols, targets, model, s: ReRAMWriteVerify) -> np.ndarray:
    """One device at a time, gate stepping, an exchange per pulse and per read. Returns the
    pulses per device."""
    pulses = np.zeros(rows.size, int)
    gates = start_gates(model, targets, s.start_margin, s.gate_min, s.gate_max)
    for k, (r, c, t, gate) in enumerate(zip(rows, cols, targets, gates)):
        band = float(acceptance_band(s, model, np.asarray(t)))
        board.write(f":PULS:RES {r},{c},{s.reset_amplitude},{s.reset_gate},{s.reset_width}")
        pulses[k] += 1
        for _ in range(60):
            board.write(f":PULS:SET {r},{c},{s.set_amplitude},{gate:.4f},{s.set_width}")
            pulses[k] += 1
            g = board.measure_cell(int(r), int(c)) / V_READ
            if abs(g - t) <= band:
                break
            if g < t:
                gate = min(gate + s.gate_step, s.gate_max)
            else:
                board.write(f":PULS:RES {r},{c},{s.reset_amplitude},{s.reset_gate},{s.reset_width}")
                pulses[k] += 1
                gate = max(gate - s.backoff, s.gate_min)
    return pulses


def truth_of(chip) -> np.ndarray:
    """The chip's true conductance now (the simulator's hidden state: for judging only)."""
    return chip._conductance(*np.indices((chip.rows, chip.cols)))


def judged(res, chip, targets, tolerance=0.05, floor=1e-6) -> dict[str, float]:
    """Converged fraction and the fraction within the tolerance in truth, over the chip's
    healthy devices (stuck ones are the chip's, not the protocol's)."""
    healthy = (chip._stuck == 0) & ~np.isnan(targets)
    truth = truth_of(chip)
    band = np.maximum(tolerance * targets, floor)
    return {
        "converged": float(res.converged[healthy].mean()),
        "truth": float(np.mean(np.abs(truth - targets)[healthy] <= band[healthy])),
        "pulses": float(res.pulses[healthy].mean()),
        "healthy": healthy,
    }


def station_file(folder: Path, seed: int, n: int = 128) -> Path:
    """The default station with another chip (``seed``) and size."""
    from importlib import resources

    default = resources.files("labrram").joinpath("stations", "default.toml").read_text()
    text = default.replace("seed = 0", f"seed = {seed}").replace("rows = 128", f"rows = {n}").replace("cols = 128", f"cols = {n}")
    path = folder / f"station-{seed}-{n}.toml"
    path.write_text(text)
    return path


PEAK = """
import atexit, runpy, sys
def peak():  # the process's own high-water mark (ru_maxrss would count the forking parent too)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print(f"PEAK-KB {line.split()[1]}", file=sys.stderr, flush=True)
atexit.register(peak)
sys.argv = ["labrram", *sys.argv[1:]]
runpy.run_module("labrram.cli", run_name="__main__")
"""


def child_env(cwd: Path) -> dict[str, str]:
    """The environment of a measured ``labrram`` process: Python's bytecode cached (in a folder
    of the benchmark's own), as it is after ``pip install``, whatever this shell says."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(cwd / "pycache")
    return env


def run_cli(argv: list[str], cwd: Path) -> tuple[float, float, dict]:
    """Run ``labrram`` in a fresh process: wall time, its peak resident memory (MB, VmHWM) and
    its JSON output."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK, *argv, "--json"], cwd=cwd, capture_output=True, text=True, timeout=600, env=child_env(cwd))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"labrram {' '.join(argv)} failed: {proc.stderr[-500:]}")
    peak = [float(line.split()[1]) / 1024 for line in proc.stderr.splitlines() if line.startswith("PEAK-KB ")]
    return wall, peak[-1] if peak else float("nan"), json.loads(proc.stdout)


FIRST_BYTE = """
import sys, time
from labrram.drivers import base
def first(real):
    def write(self, data):
        print(f"FIRST-BYTE {time.time()!r}", file=sys.stderr, flush=True)
        base.VisaTransport.write, base.SerialTransport.write = visa, serial
        return real(self, data)
    return write
visa, serial = base.VisaTransport.write, base.SerialTransport.write
base.VisaTransport.write, base.SerialTransport.write = first(visa), first(serial)
import runpy
sys.argv = ["labrram", *sys.argv[1:]]
runpy.run_module("labrram.cli", run_name="__main__")
"""


def time_to_first_byte(argv: list[str], cwd: Path) -> float:
    """Seconds from starting ``labrram`` to the first byte it writes to an instrument."""
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", FIRST_BYTE, *argv], cwd=cwd, capture_output=True, text=True, timeout=300, env=child_env(cwd))
    for line in proc.stderr.splitlines():
        if line.startswith("FIRST-BYTE "):
            return float(line.split()[1]) - t0
    raise RuntimeError(f"no byte was sent: {proc.stderr[-500:]}")


def speed(model, folder: Path, measured: dict[str, float]) -> tuple[list[list[str]], str]:
    targets = np.random.default_rng(0).uniform(40e-6, 200e-6, SHAPE)
    rows, notes = [], []
    cli_walls, first_bytes, clis = [], [], []
    run_cli(["program", "--station", str(station_file(folder, 0, 32)), "--targets", "uniform:40e-6:200e-6", "--out", str(folder / "warm.zarr")], folder)  # bytecode
    for seed in CHIPS:
        station = station_file(folder, seed)
        out = folder / f"cli-{seed}.zarr"
        wall, _, cli = run_cli(["program", "--station", str(station), "--targets", "uniform:40e-6:200e-6", "--seed", "0", "--out", str(out)], folder)
        cli_walls.append(wall)
        clis.append(cli)
        first_bytes.append(time_to_first_byte(["program", "--station", str(station), "--targets", "uniform:40e-6:200e-6", "--out", str(folder / f"fb-{seed}.zarr")], folder))
    med = {k: float(np.median([c[k] for c in clis])) for k in ("bench_time", "physical_limit", "pulses_per_device", "converged_fraction")}
    rows.append(["`labrram program` (CLI, run store)", f"{np.median(cli_walls):.2f} s", f"{med['bench_time']:.3f} s", f"{med['physical_limit']:.3f} s",
                 f"{med['bench_time'] / med['physical_limit']:.2f}", f"{med['pulses_per_device']:.2f}", f"{med['converged_fraction'] * 100:.2f} % (all devices)", "-", "-"])  # fmt: skip
    # the four are run in turn on each chip, REPEATS times, so that the machine's moods fall on
    # all of them alike; walls are medians over chips and repeats, outcomes those of each chip
    flushed = "full stack + run store, intents flushed"
    labels = ("full stack + run store", flushed, "full stack", "bare device model")
    store_parts: dict[str, list[dict[str, float]]] = {labels[0]: [], flushed: []}  # where each run's store time went
    w: dict[str, list[float]] = {k: [] for k in labels}
    res_j: dict[str, list] = {k: [] for k in labels}
    for seed in CHIPS:
        for rep in range(REPEATS):
            for label in labels:
                if label == "bare device model":
                    chip = sim.ReRAMChip(*SHAPE, seed=seed)
                    t0 = time.perf_counter()
                    res = run_bare(WriteVerifyReRAM(targets, model), chip)
                    w[label].append(time.perf_counter() - t0)
                    if rep == 0:
                        res_j[label].append((res, judged(res, chip, targets), None))
                    continue
                sim.drop_benches()  # a fresh chip: a station that asks for the same bench again gets the programmed one
                # intents flushed to the disk as for a chip outside the process (the simulated
                # bench is in it: by default its intents are written, not flushed)
                Journal.flush_intents = True if label == flushed else None
                with load_station().with_simulation(seed=seed).connect() as st, store_timer() as spent:
                    out = folder / f"{label[:4]}-{seed}-{rep}-{labels.index(label)}.zarr" if label in store_parts else None
                    t0, b0 = time.perf_counter(), st.bench.clock.now
                    try:
                        res = write_verify_reram(st.crossbar, targets, model, out=out)
                    finally:
                        Journal.flush_intents = None
                    w[label].append(time.perf_counter() - t0)
                    if out is not None:
                        store_parts[label].append(dict(spent))
                    if rep == 0:
                        res_j[label].append((res, judged(res, st.bench.chip, targets), st.bench.clock.now - b0))
    walls = {label: float(np.median(w[label])) for label in labels}
    for label in labels[:3]:
        res, j, bench = res_j[label][0]
        s = res.summary()
        rows.append([label, f"{walls[label]:.2f} s", f"{bench:.3f} s", f"{s['physical_limit']:.3f} s", f"{bench / s['physical_limit']:.2f}",
                     f"{np.median([x[1]['pulses'] for x in res_j[label]]):.2f}", f"{np.median([x[1]['converged'] for x in res_j[label]]) * 100:.2f} %",
                     f"{np.median([x[1]['truth'] for x in res_j[label]]) * 100:.2f} %", f"{s['rms_error_converged'] * 1e6:.2f} µS"])  # fmt: skip
    js = [x[1] for x in res_j["bare device model"]]
    rows.append(["bare device model", f"{walls['bare device model']:.2f} s", "-", "-", "-", f"{np.median([j['pulses'] for j in js]):.2f}",
                 f"{np.median([j['converged'] for j in js]) * 100:.2f} %", f"{np.median([j['truth'] for j in js]) * 100:.2f} %", "-"])  # fmt: skip

    n_naive = 256
    with load_station().with_simulation(seed=0).connect() as st:
        board = st.crossbar.board
        st.crossbar.read()  # configure the board
        idx = np.random.default_rng(1).choice(SHAPE[0] * SHAPE[1], n_naive, replace=False)
        r, c = idx // SHAPE[1], idx % SHAPE[1]
        t0, b0 = time.perf_counter(), st.bench.clock.now
        pulses = naive_write_verify(board, r, c, targets[r, c], model, ReRAMWriteVerify(policy="ispp", guard=2.0))
        wall_n, bench_n = time.perf_counter() - t0, st.bench.clock.now - b0
    scale = SHAPE[0] * SHAPE[1] / n_naive
    rows.append([f"naive, per device ({n_naive} ×{scale:.0f})", f"{wall_n * scale:.1f} s", f"{bench_n * scale:.1f} s", "-", "-", f"{pulses.mean():.2f}", "-", "-", "-"])
    batched_bench = float(rows[1][2].split()[0])
    notes.append(f"- walls of the full stack and the bare model: medians of {len(CHIPS)} chips × {REPEATS} runs each, the four run in turn")
    notes.append(f"- full stack with the run store / bare device model: {walls['full stack + run store'] / walls['bare device model']:.1f}× "
                 f"(intents flushed: {walls[flushed] / walls['bare device model']:.1f}×; without the store: {walls['full stack'] / walls['bare device model']:.1f}×)")  # fmt: skip
    notes.append("- intents flushed: each pulse batch's intent flushed to the disk (`fdatasync`) before the batch is sent, as the run store does "
                 "when the chip is outside the process (an instrument, `labrram serve`); the simulated bench of the other rows is in the process, "
                 "where the run store writes its intents without flushing them (docs/run-store.md)")  # fmt: skip
    for label, what in ((labels[0], "the run store's time per run (medians)"), (flushed, "with the intents flushed")):
        parts = {k: float(np.median([p[k] for p in store_parts[label]])) for k in STORE_PARTS}
        notes.append(f"- {what}: " + ", ".join(f"{what} {parts[k]:.3f} s" for k, what in STORE_PARTS.items()))
    notes.append(f"- naive / batched bench time: {bench_n * scale / batched_bench:.0f}×")
    notes.append(f"- time to first byte of `labrram program` (median of {len(first_bytes)}; bytecode cached, as after `pip install`): {np.median(first_bytes):.2f} s")
    notes.append("- converged and within ±5 % in truth: of the chip's healthy devices (stuck ones excluded), judged on the chip's "
                 "true conductance at the end of the run (the simulator's hidden state, read only to judge)")  # fmt: skip
    measured.update(cli_wall=float(np.median(cli_walls)), stack_ratio=walls["full stack + run store"] / walls["bare device model"], ttfb=float(np.median(first_bytes)),
                    bench_over_limit=float(rows[1][4]), naive_ratio=bench_n * scale / batched_bench)  # fmt: skip
    return rows, "\n".join(notes)


RANGES = ((0, 20e-6), (20e-6, 40e-6), (40e-6, 80e-6), (80e-6, 160e-6), (160e-6, 1.0))


def accuracy(model, measured: dict[str, float]) -> tuple[list[list[str]], str, list[str]]:
    lo, hi = reachable_range(model, 1.2, 2.4)
    targets = np.exp(np.random.default_rng(5).uniform(np.log(1.05 * lo), np.log(0.95 * hi), SHAPE))
    policies = (
        ("aim (default)", ReRAMWriteVerify()),
        ("ISPP as it was (guard 2, 60 iterations)", ReRAMWriteVerify(policy="ispp", guard=2.0, max_iterations=60)),
        ("ISPP (guard 3, 200 iterations)", ReRAMWriteVerify(policy="ispp")),
        ("plain ISPP from the lowest gate", ReRAMWriteVerify(policy="ispp", start_margin=0.99, backoff=2.0)),
    )
    rows = []
    healthy = None
    for label, settings in policies:
        conv, truth, pulses, per_range = [], [], [], []
        for seed in CHIPS:
            with load_station().with_simulation(seed=seed).connect() as st:
                res = write_verify_reram(st.crossbar, targets, model, settings)
                j = judged(res, st.bench.chip, targets)
            conv.append(j["converged"])
            truth.append(j["truth"])
            pulses.append(j["pulses"])
            per_range.append([res.pulses[j["healthy"] & (targets >= a) & (targets < b)].mean() for a, b in RANGES])
            healthy = j["healthy"]
        pr = np.median(np.array(per_range), axis=0)
        if settings == ReRAMWriteVerify():  # the default policy: the one the targets speak of
            measured.update(range_truth=float(np.median(truth)) * 100, range_pulses=float(np.median(pulses)))
        rows.append([label, f"{np.median(conv) * 100:.2f} %", f"{np.median(truth) * 100:.2f} %", f"{np.median(pulses):.2f}", *[f"{p:.1f}" for p in pr]])
    s = ReRAMWriteVerify()
    wide = averaged_band(s, model, targets)
    floor = set_policy.expected_pulses(2 * wide / model.sigma_c2c(targets))
    rows.append(["floor: best SET-and-RESET policy, calibrated model", "-", "-", f"{np.mean(floor[healthy]):.2f}",
                 *[f"{floor[healthy & (targets >= a) & (targets < b)].mean():.1f}" for a, b in RANGES]])  # fmt: skip
    header = ["policy", "converged", "within ±5 % (truth)", "pulses/device", *[f"pulses {a * 1e6:.0f}–{b * 1e6:.0f} µS" if b < 1 else f"pulses ≥ {a * 1e6:.0f} µS" for a, b in RANGES]]
    note = (f"Targets log-uniform over {1.05 * lo * 1e6:.1f}–{0.95 * hi * 1e6:.0f} µS (the calibrated medians of the gate range), "
            "tolerance max(5 %, 1 µS), medians of 3 chips. The floor is the expected pulses of the best constant-median policy "
            "for each target's band on the calibrated model, plus nothing for the reads; real devices add the spread of the "
            "chip around its calibration.")  # fmt: skip
    measured["range_floor"] = float(np.mean(floor[healthy]))
    return rows, note, header


def scale(folder: Path, measured: dict[str, float]) -> list[list[str]]:
    rows = []
    peaks = []
    for n in (32, 128, 256, 512):
        station = station_file(folder, 0, n)
        wall, peak, out = run_cli(["program", "--station", str(station), "--targets", "uniform:40e-6:200e-6", "--out", str(folder / f"size-{n}.zarr")], folder)
        peaks.append(peak)
        if n == 512:
            measured["wall_512"] = wall
        rows.append([f"{n}×{n}", f"{n * n:,}", f"{wall:.2f} s", f"{peak:.0f} MB", f"{out['pulses_per_device']:.2f}", f"{out['converged_fraction'] * 100:.2f} %", f"{out['bench_time']:.2f} s"])
    measured["peak_max"] = max(peaks)
    return rows


#: the page's targets: (what, key of the measured values, limit, at most?, unit)
TARGETS = (
    ("`labrram program`, 16,384 devices, run store: wall", "cli_wall", 2.0, True, " s"),
    ("full stack with the run store / bare device model", "stack_ratio", 3.0, True, "×"),
    ("projected bench time / its physical limit", "bench_over_limit", 1.5, True, ""),
    ("naive per-device loop / batched, bench time", "naive_ratio", 50.0, False, "×"),
    ("whole range, `aim`: healthy devices within ±5 % in truth", "range_truth", 99.9, False, " %"),
    ("whole range, `aim`: pulses per device", "range_pulses", 4.0, True, ""),
    ("512×512 write-verify (CLI): wall", "wall_512", 10.0, True, " s"),
    ("peak memory, every size 32×32 … 512×512", "peak_max", 150.0, True, " MB"),
    ("`labrram program`: time to first byte", "ttfb", 0.5, True, " s"),
)


def target_rows(measured: dict[str, float]) -> list[list[str]]:
    """One row per target: what, the limit, the measured value, met or not."""
    rows = []
    for what, key, limit, at_most, unit in TARGETS:
        text, status = against(measured[key], limit, at_most)
        rows.append([what, f"{'≤' if at_most else '≥'} {limit:g}{unit}", f"{text}{unit}", status])
    return rows


TILES = """
import json, sys
import labrram
station, count, folder = labrram.load_station(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
results = []
with station.connect() as connected:
    for i in range(count):  # one array after the other, a run store each
        results.append(labrram.program("uniform:40e-6:200e-6", connected, array_index=i, out=f"{folder}/tile-{count}-{i}.zarr").summary())
print(json.dumps({k: sum(r[k] for r in results) / len(results) for k in ("pulses_per_device", "converged_fraction")}
                 | {"bench_time": sum(r["bench_time"] for r in results), "devices": sum(r["devices"] for r in results)}))
"""


def tiles(folder: Path, n: int = 128, counts: tuple[int, ...] = (1, 2, 4), arrays: int = 4) -> list[list[str]]:
    """Program 1, 2, ... of the ``arrays`` arrays of one simulated board, one after the other in
    one process (API, a run store each): wall time and peak memory (VmHWM) per row."""
    station = station_file(folder, 0, n)
    text = station.read_text().replace(f"cols = {n}", f"cols = {n}\narrays = {arrays}", 1)
    if f"arrays = {arrays}" not in text:
        raise RuntimeError("the default station has no 'cols' line to put 'arrays' after")
    station = folder / f"tiles-{n}.toml"
    station.write_text(text)
    rows = []
    for count in counts:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", PEAK.replace('sys.argv = ["labrram", *sys.argv[1:]]\nrunpy.run_module("labrram.cli", run_name="__main__")', TILES),
                               str(station), str(count), str(folder)], cwd=folder, capture_output=True, text=True, timeout=1800, env=child_env(folder))  # fmt: skip
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"programming {count} arrays failed: {proc.stderr[-500:]}")
        peak = [float(line.split()[1]) / 1024 for line in proc.stderr.splitlines() if line.startswith("PEAK-KB ")][-1]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append([f"{count} of {arrays}", f"{out['devices']:,}", f"{wall:.2f} s", f"{peak:.0f} MB", f"{out['pulses_per_device']:.2f}",
                     f"{out['converged_fraction'] * 100:.2f} %", f"{out['bench_time']:.2f} s"])  # fmt: skip
    return rows


def main() -> None:
    model = default_calibration("reram").model
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        measured: dict[str, float] = {}
        speed_rows, speed_notes = speed(model, folder, measured)
        acc_rows, acc_note, acc_header = accuracy(model, measured)
        size_rows = scale(folder, measured)
        tile_rows = tiles(folder)
    speed_title = "Write-verify of 16,384 ReRAM devices (targets uniform 40–200 µS, tolerance 5 %), default simulated station, medians of 3 chips"
    speed_header = ["method", "wall (median)", "bench time", "physical limit", "bench/limit", "pulses/device", "converged", "within ±5 % (truth)", "RMS err (conv.)"]
    acc_title = "Write-verify over the whole reachable range: pulses and accuracy judged on the chip, full stack, medians of 3 chips"
    size_title = "`labrram program` (CLI, run store) by array size, one chip each"
    size_header = ["array", "devices", "wall", "peak memory", "pulses/device", "converged", "bench time"]
    tile_title = "Several 128×128 arrays on one board: one process programs them one after the other (API, a run store each)"
    tile_header = ["arrays programmed", "devices", "wall", "peak memory", "pulses/device", "converged", "bench time"]
    target_title = "Targets"
    target_header = ["target", "limit", "measured", "status"]
    targ_rows = target_rows(measured)
    for t, h, r in ((target_title, target_header, targ_rows), (speed_title, speed_header, speed_rows), (acc_title, acc_header, acc_rows), (size_title, size_header, size_rows),
                    (tile_title, tile_header, tile_rows)):  # fmt: skip
        table(t, h, r)
    print(speed_notes)
    write_page(
        "docs/bench/program.md",
        [
            markdown_table(target_title, target_header, targ_rows, "From the tables below, this run. The pulses' limit lies below the floor that the "
                           f"calibrated device model sets for SET-and-RESET programming over the whole range ({measured['range_floor']:.2f} pulses per device, "
                           "second table): the SET of these devices lands at random around a median that the gate chooses, with a spread "
                           "far wider than ±5 % at low conductance, and a RESET returns to the high-resistance state."),  # fmt: skip
            markdown_table(speed_title, speed_header, speed_rows, speed_notes),
            markdown_table(acc_title, acc_header, acc_rows, acc_note),
            markdown_table(size_title, size_header, size_rows, "Peak memory: the process's own high-water resident set (`VmHWM`), simulated bench included."),
            markdown_table(tile_title, tile_header, tile_rows, "A simulated board with four arrays (`[simulation] arrays = 4`, chip 0 from seed 0, the others "
                           "from derived seeds); peak memory: the process's own `VmHWM`, the board's four chips included in every row; "
                           "bench time: summed over the arrays."),  # fmt: skip
        ],
    )
