"""The Python API tour: characterize, calibrate, program a 4x4 block, read it back, resume.

    python examples/python_api_tour.py                        # run it (in a temporary folder)
    python examples/python_api_tour.py --page docs/python-api.md   # run it and write the page

The page shows each block below with what it printed in that run, and the commit and machine
that produced it; tests/test_docs.py runs the same blocks and checks that the page holds them.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

#: (explanation, code) — run in order, in one namespace
BLOCKS: list[tuple[str, str]] = [
    (
        "A station names the bench's instruments and limits. `load_station()` is the simulated bench; "
        "`with_simulation` gives it a 32×32 ReRAM chip. On hardware, `load_station(\"lab.toml\")` is the only "
        "change. One connection serves every call below (and so one chip); each call also accepts a station "
        "or a station file and connects by itself.",
        '''import numpy as np
import labrram
from labrram import Cells

station = labrram.load_station().with_simulation(kind="reram", rows=32, cols=32, seed=1)
bench = station.connect()
print(labrram.chip_kind(bench), bench.crossbar.shape)''',
    ),
    (
        "**Characterize** 64 devices: SET statistics at 8 gate voltages, read noise, relaxation. The run "
        "store (`out=`) records every step; `labrram.resume` would continue it after an interruption.",
        '''run = labrram.characterize(bench, kind="reram", n_devices=64, cycles=4, out="tour/char.zarr")
s = run.summary()
print(f"{s['devices']} devices of {s['chip']}")
print(f"wall {s['wall_time']:.1f} s, bench time {s['projected_bench_time'] / 60:.1f} min")''',
    ),
    (
        "**Calibrate**: fit the ReRAM model to the characterization (scikit-learn style: fitted "
        "parameters with 95 % intervals as `Estimate(value, low, high, unit)`), and save it as a "
        "calibration file.",
        '''cal = labrram.calibrate("tour/char.zarr", out="tour/reram.json", bootstrap=50)
for name in ("a", "b", "read_noise_rel"):
    e = cal.estimates[name]
    print(f"{name:15s} {e.value:.4g} [{e.low:.4g}, {e.high:.4g}] {e.unit}")''',
    ),
    (
        "**Program a 4×4 block** by write-verify (the closed loop that fits the chip): NaN leaves a "
        "device alone. Limits and targets are checked before any byte is sent.",
        '''targets = np.full(bench.crossbar.shape, np.nan)
targets[:4, :4] = np.linspace(60e-6, 150e-6, 16).reshape(4, 4)
result = labrram.program(targets, bench, calibration=cal, out="tour/block.zarr")
s = result.summary()
print(f"{s['devices']} devices, {s['converged_fraction']:.0%} converged, {s['pulses_per_device']:.1f} pulses each")
print(f"bench time {s['bench_time'] * 1e3:.2f} ms, physical limit {s['physical_limit'] * 1e3:.2f} ms")''',
    ),
    (
        "**Read it back.** A cell selection is a `Cells` made by a constructor that says which devices "
        "are meant (`Cells.block`, `Cells.pairs`, `Cells.rows_cols`, `Cells.mask`); plain lists are "
        "refused, since `([3, 4], [5, 6])` and `[[3, 4], [5, 6]]` would name different devices.",
        '''g = bench.crossbar.read(Cells.block(range(4), range(4))).reshape(4, 4)
print(np.round(g * 1e6, 1))
ok = result.converged[:4, :4]
print(f"largest error of the {ok.sum()} converged devices: {np.max(np.abs(g[ok] / targets[:4, :4][ok] - 1)):.1%}")
print("not converged (given up: stuck or out of budget):", [tuple(map(int, rc)) for rc in np.argwhere(~ok)])''',
    ),
    (
        "**Resume.** A run stopped by Ctrl-C (here: the progress callback raises it), an error or a killed "
        "process continues from its store alone: the stored steps are replayed without touching the chip, "
        "a pulse batch in flight is settled by the board's pulse counter, and nothing is pulsed twice.",
        '''def stop_early(label, done, total):
    if done > 0.5 * total:
        raise KeyboardInterrupt

try:
    labrram.program("uniform:50e-6:150e-6", bench, calibration=cal, out="tour/full.zarr", progress=stop_early)
except KeyboardInterrupt:
    print("stopped:", labrram.RunStore.open("tour/full.zarr").attrs["status"])
result = labrram.resume("tour/full.zarr", bench)
print(f"{result.summary()['converged_fraction']:.1%} of {result.summary()['devices']} devices converged")''',
    ),
    (
        "**The run store in xarray**: every dimension labelled, the log's columns are coordinate values, "
        "no stray rows (docs/run-store.md).",
        '''import xarray as xr

ds = xr.open_zarr("tour/full.zarr")
print(dict(ds.sizes))
print("pulses logged:", ds.log.sel(field="g_after").size, "=", int(ds.pulses.sum()))
bench.close()''',
    ),
]


def run_blocks() -> list[str]:
    """Run every block in one namespace (in the current folder); returns what each printed."""
    namespace: dict = {"__name__": "__tour__"}
    outputs = []
    for _, code in BLOCKS:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, "<tour>", "exec"), namespace)  # our own blocks, never user input
        outputs.append(buf.getvalue())
    return outputs


#: the docs' block collector (tools/docblocks.py) leaves these blocks to tests/test_docs.py
TESTED = "<!-- tested: tests/test_docs.py::test_the_python_api_page_holds_the_tour_and_the_tour_runs -->"


def page(outputs: list[str], provenance: str) -> str:
    parts = [
        "<!-- written by `python examples/python_api_tour.py --page docs/python-api.md`; do not edit -->",
        "# The Python API",
        "",
        "Everything the `labrram` command does is one call in Python, exported from `labrram` itself: "
        "`characterize`, `calibrate`, `program`, `read`, `resume`, with `Cells`, `load_station`, "
        "`load_calibration` and the result types. Each job is a plan run by the one engine, so "
        "every call alike checks limits before any byte, records its steps in a run store when given "
        "`out=`, stops cleanly with every output off, and continues with `resume`.",
        "",
        f"The outputs below were printed by this page's code ({provenance}).",
        "",
    ]
    for (text, code), out in zip(BLOCKS, outputs):
        parts += [text, "", TESTED, "```python", code, "```", "", "```text", out.rstrip("\n"), "```", ""]
    parts += [
        "Units are SI everywhere (S, V, s, A). Errors that mean bad input — a station, calibration, "
        "store or targets that cannot be used, a protocol that does not fit the chip — are in "
        "`labrram.api.INPUT_ERRORS`; nothing was sent to the chip when one is raised.",
        "",
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--page", metavar="FILE.md", help="write the page here")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    from benchmarks.common import provenance

    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="labrram-tour-") as tmp:
        os.chdir(tmp)
        try:
            t0 = time.perf_counter()
            outputs = run_blocks()
        finally:
            os.chdir(here)
    for (_, code), out in zip(BLOCKS, outputs):
        print(code, "\n---\n" + out)
    print(f"[tour: {time.perf_counter() - t0:.1f} s]")
    if args.page:
        Path(args.page).write_text(page(outputs, provenance()))
        print(f"written to {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
