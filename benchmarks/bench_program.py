"""Write-verify of all 16,384 devices of a 128x128 ReRAM array on the simulated bench.

Rows of the table:

* **batched (full stack)** — the write-verify plan through the engine → Crossbar → board driver
  → pyserial URL handler → board emulator → chip, as a user runs it (without and with the run
  store);
* **bare device model** — the same plan answered by the chip object directly (no engine, no
  drivers, no bytes): what the algorithm and the physics cost on this machine;
* **naive** — one device at a time, one SCPI exchange per pulse and per read (the way a quick
  script would do it), measured on 256 devices and scaled to 16,384.

Wall times are medians of repeats on this (shared, noisy) machine; bench time is the projected
hardware time from the virtual clock; the physical limit is what the hardware cannot avoid
(pulse widths + set-up + row conversions).
"""

from __future__ import annotations

import shutil
import tempfile
import time

import numpy as np

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.protocols.write_verify import ReRAMWriteVerify, WriteVerifyReRAM, start_gates, write_verify_reram
from labrram.station import load_station

from .common import table, write_markdown

SHAPE = (128, 128)
V_READ = 0.2


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
    """One device at a time: a SCPI exchange per pulse and per read. Returns pulses per device."""
    pulses = np.zeros(rows.size, int)
    gates = start_gates(model, targets, s.start_margin, s.gate_min, s.gate_max)
    for k, (r, c, t, gate) in enumerate(zip(rows, cols, targets, gates)):
        band = max(s.tolerance * t, s.abs_tolerance)
        board.write(f":PULS:RES {r},{c},{s.reset_amplitude},{s.reset_gate},{s.reset_width}")
        pulses[k] += 1
        for _ in range(s.max_iterations):
            board.write(f":PULS:SET {r},{c},{s.set_amplitude},{gate:.4f},{s.set_width}")
            pulses[k] += 1
            g = board.measure_cell(int(r), int(c)) / V_READ
            if abs(g - t) <= band:
                break
            if g < t:
                gate = min(gate + s.gate_step, s.gate_max)
            else:
                board.write(f":PULS:RES {r},{c},{s.reset_amplitude},{s.reset_gate},{s.reset_width}")
                board.measure_cell(int(r), int(c))
                pulses[k] += 1
                gate = max(gate - s.backoff, s.gate_min)
    return pulses


def main(repeat: int = 3) -> None:
    model = default_calibration("reram").model
    targets = np.random.default_rng(0).uniform(40e-6, 200e-6, SHAPE)
    rows_out = []
    results = {}
    for label, record in (("batched, full stack", False), ("batched, full stack + zarr record", True)):
        walls, benches = [], []
        for rep in range(repeat):
            tmp = tempfile.mkdtemp()
            try:
                with load_station().with_simulation(seed=rep).connect() as st:  # chip `rep`, a fresh bench
                    t0, b0 = time.perf_counter(), st.bench.clock.now
                    res = write_verify_reram(st.crossbar, targets, model, out=f"{tmp}/run.zarr" if record else None)
                    walls.append(time.perf_counter() - t0)
                    benches.append(st.bench.clock.now - b0)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        results[label] = res
        s = res.summary()
        rows_out.append(
            [label, f"{np.median(walls):.2f} s", f"{np.median(benches):.3f} s", f"{s['physical_limit']:.3f} s",
             f"{np.median(benches) / s['physical_limit']:.2f}", f"{s['pulses_per_device']:.2f}",
             f"{s['converged_fraction'] * 100:.2f} %", f"{s['rms_error_converged'] * 1e6:.2f} µS"]
        )  # fmt: skip

    walls = []
    for rep in range(repeat):
        chip = sim.ReRAMChip(*SHAPE, seed=rep)
        t0 = time.perf_counter()
        res = run_bare(WriteVerifyReRAM(targets, model), chip)
        walls.append(time.perf_counter() - t0)
    s = res.summary()
    rows_out.append(["bare device model", f"{np.median(walls):.2f} s", "-", "-", "-", f"{s['pulses_per_device']:.2f}", f"{s['converged_fraction'] * 100:.2f} %", f"{s['rms_error_converged'] * 1e6:.2f} µS"])

    n_naive = 256
    with load_station().with_simulation(seed=0).connect() as st:
        board = st.crossbar.board
        st.crossbar.read()  # configure the board
        idx = np.random.default_rng(1).choice(SHAPE[0] * SHAPE[1], n_naive, replace=False)
        r, c = idx // SHAPE[1], idx % SHAPE[1]
        t0, b0 = time.perf_counter(), st.bench.clock.now
        pulses = naive_write_verify(board, r, c, targets[r, c], model, ReRAMWriteVerify())
        wall_n, bench_n = time.perf_counter() - t0, st.bench.clock.now - b0
    scale = SHAPE[0] * SHAPE[1] / n_naive
    rows_out.append([f"naive, per device ({n_naive} x{scale:.0f})", f"{wall_n * scale:.1f} s", f"{bench_n * scale:.1f} s", "-", "-", f"{pulses.mean():.2f}", "-", "-"])
    title = "Write-verify of 16,384 ReRAM devices (targets uniform 40-200 µS, tolerance 5 %), default simulated station, medians of 3 chips"
    header = ["method", "wall (median)", "bench time", "physical limit", "bench/limit", "pulses/device", "converged", "RMS err (conv.)"]
    table(title, header, rows_out)
    batched_bench = float(rows_out[0][2].split()[0])
    ratio = f"naive / batched bench time: {bench_n * scale / batched_bench:.0f}x"
    print(ratio)
    write_markdown("docs/bench/program.md", title, header, rows_out, ratio)
