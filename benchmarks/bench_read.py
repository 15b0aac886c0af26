"""Whole-array read of a 128x128 chip through the full driver stack on the simulated bench.

Compares the batched read (one ``:MEAS:ALL?`` transaction) with the naive way (one
``:MEAS:CELL?`` exchange per device) and with the SMU routed to each cell: wall time on this
machine (median of repeats) and projected bench time (virtual clock).
"""

from __future__ import annotations

import numpy as np

from labrram import sim
from labrram.station import load_station

from .common import table, timed


def main() -> None:
    sim.configure_bench("default", seed=0)
    rows_out = []
    with load_station().connect() as station:
        xb = station.crossbar
        clock = station.bench.clock
        xb.read()

        def bench_time(fn):
            t0 = clock.now
            fn()
            return clock.now - t0

        wall, _ = timed(xb.read, repeat=7)
        bt = bench_time(xb.read)
        rows_out.append(["batched (:MEAS:ALL?)", "16384", f"{wall * 1e3:.1f} ms", f"{bt * 1e3:.1f} ms"])

        board = xb.board
        n_naive = 1024
        cells = np.argwhere(np.ones((128, 128), bool))[:n_naive]

        def naive():
            for r, c in cells:
                board.measure_cell(int(r), int(c))

        wall_n, _ = timed(naive, repeat=3)
        bt_n = bench_time(naive)
        scale = 16384 / n_naive
        rows_out.append(
            ["naive (:MEAS:CELL? each)", f"{n_naive} (x{scale:.0f})", f"{wall_n * scale:.2f} s", f"{bt_n * scale:.2f} s"]
        )

        n_smu = 32

        def smu_route():
            for r, c in cells[:n_smu]:
                xb.read_precise(int(r), int(c))

        wall_s, _ = timed(smu_route, repeat=3)
        bt_s = bench_time(smu_route)
        scale_s = 16384 / n_smu
        rows_out.append(["SMU per cell (route + 1 PLC)", f"{n_smu} (x{scale_s:.0f})", f"{wall_s * scale_s:.1f} s", f"{bt_s * scale_s:.0f} s"])
    table(
        "Whole-array read, 128x128, default simulated station (wall: this machine; bench: projected hardware time)",
        ["method", "cells measured", "wall (16384 cells)", "bench time (16384 cells)"],
        rows_out,
    )
    print(f"batched vs naive: {wall_n * scale / wall:.0f}x less wall time, {bt_n * scale / bt:.0f}x less bench time")
