"""Scale-out of the Monte Carlo runner: serial, process pool and Dask (1 and 2 local workers).

(a) a trivial trial (:func:`labrram.montecarlo.example_trial`, one normal draw) submitted as
    one trial per task: the wall time minus the serial compute time, per task, is the runner's
    scheduling overhead;
(b) a realistic trial (:func:`labrram.montecarlo.bench_read_trial`: a fresh simulated 64x64
    ReRAM chip per trial, read 16 times through the instruments) in tasks of 8 trials: the
    speed-up from 1 to 2 workers.

First it measures how much parallel CPU the machine really delivers (the same pure-Python loop
on one worker alone, then on two workers at once): on a machine whose CPUs are shared, two
workers cannot be faster than that capacity allows.

The Dask rows use an already running ``LocalCluster`` (loopback, one single-threaded process per
worker), so they exclude its start-up, reported on its own; the process-pool rows include the
pool's start-up (a new pool per study). Medians over ``LABRRAM_BENCH_REPEAT`` runs (default 3).
Also measured: the client's cost of writing one chunk into the zarr store.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from labrram.montecarlo import run_study

from .common import table, timed

TRIVIAL = "labrram.montecarlo:example_trial"
REALISTIC = "labrram.montecarlo:bench_read_trial"
REAL_PARAMS = {"rows": 64, "cols": 64, "reads": 16}


def _cluster(n_workers: int):
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
        silence_logs=logging.ERROR,
    )  # fmt: skip


def _spin(n: int = 3_000_000) -> float:
    """Fixed CPU-bound work (a pure Python loop); its wall time (s)."""
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - t0


def _capacity(clusters: dict) -> float:
    """How many workers' worth of CPU this machine delivers at once: the same work run alone on
    one worker, then on two workers at the same moment."""
    from distributed import Client

    with Client(clusters[1], set_as_default=False) as c1, Client(clusters[2], set_as_default=False) as c2:
        alone = statistics.median(min(c1.run(_spin).values()) for _ in range(3))
        together = statistics.median(max(c2.run(_spin).values()) for _ in range(3))
    return 2 * alone / together


def main() -> None:
    if importlib.util.find_spec("distributed") is None:
        print("scaleout: dask.distributed is not installed (pip install 'labrram[dask]'); skipped")
        return
    repeat = int(os.environ.get("LABRRAM_BENCH_REPEAT", "3"))
    n_trivial, n_real, real_chunk = 120, 64, 8

    startups = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        c = _cluster(2)
        from distributed import Client

        with Client(c, set_as_default=False) as cl:
            cl.wait_for_workers(2)
        startups.append(time.perf_counter() - t0)
        c.close()
    clusters = {1: _cluster(1), 2: _cluster(2)}
    try:
        capacity = _capacity(clusters)
        print(f"parallel capacity of this machine: {capacity:.2f} workers' worth of CPU with 2 busy workers "
              f"({os.cpu_count()} CPUs reported)\n")  # fmt: skip
        variants = [
            ("serial", 1, dict(backend="serial")),
            ("process pool", 2, dict(backend="process", workers=2)),
            ("dask", 1, dict(scheduler=clusters[1].scheduler_address)),
            ("dask", 2, dict(scheduler=clusters[2].scheduler_address)),
        ]
        # (a) overhead: one trivial trial per task
        rows_a, serial_a = [], None
        for name, w, kw in variants:
            run_study(TRIVIAL, n_trivial, {"size": 1}, chunk=1, **kw)  # warm the workers
            wall, _ = timed(lambda: run_study(TRIVIAL, n_trivial, {"size": 1}, chunk=1, **kw), repeat=repeat)
            serial_a = wall if serial_a is None else serial_a
            rows_a.append([name, str(w), f"{wall * 1e3:.0f} ms", f"{n_trivial / wall:.0f}", f"{(wall - serial_a) / n_trivial * 1e3:.2f} ms" if name != "serial" else "—"])
        # the client's store writes: one trivial trial per chunk, with and without a store
        with tempfile.TemporaryDirectory() as tmp:
            k = iter(range(10**6))
            store_wall, _ = timed(lambda: run_study(TRIVIAL, n_trivial, {"size": 1}, chunk=1, backend="serial", out=Path(tmp) / f"{next(k)}.zarr"), repeat=repeat)
        write_ms = (store_wall - serial_a) / n_trivial * 1e3
        table(
            f"(a) scheduling overhead: {n_trivial} trivial trials, 1 trial per task (median of {repeat})",
            ["backend", "workers", "wall", "trials/s", "overhead per task"],
            rows_a,
        )

        # (b) realistic trial
        rows_b, walls = [], {}
        for name, w, kw in variants:
            run_study(REALISTIC, 2 * w, REAL_PARAMS, chunk=1, **kw)  # warm the workers (imports)
            wall, _ = timed(lambda: run_study(REALISTIC, n_real, REAL_PARAMS, chunk=real_chunk, **kw), repeat=repeat)
            walls[(name, w)] = wall
            rows_b.append([name, str(w), f"{wall:.2f} s", f"{n_real / wall:.1f}", f"{n_real / wall / (n_real / walls[('serial', 1)]):.2f}x"])
        table(
            f"(b) realistic trial: {n_real} fresh 64x64 simulated chips, 16 reads each, {real_chunk} trials per task (median of {repeat})",
            ["backend", "workers", "wall", "trials/s", "vs serial"],
            rows_b,
        )
        t_trial = walls[("serial", 1)] / n_real
        t0 = time.perf_counter()
        run_study(REALISTIC, n_real, REAL_PARAMS, chunk=real_chunk, backend="dask", workers=2)
        embedded = time.perf_counter() - t0
        table(
            "(c) this machine, measured in the same run",
            ["quantity", "value"],
            [
                ["parallel capacity with 2 busy workers", f"{capacity:.2f} workers' worth of CPU ({os.cpu_count()} CPUs reported)"],
                ["Dask LocalCluster start-up (2 workers)", f"{statistics.median(startups):.2f} s (median of {repeat})"],
                ["client zarr write per chunk (one trivial trial per chunk)", f"{write_ms:.2f} ms"],
                ["one realistic trial (64x64 chip, 16 reads), serial", f"{t_trial * 1e3:.1f} ms"],
                ["Dask 1 -> 2 workers, realistic trial", f"{walls[('dask', 1)] / walls[('dask', 2)]:.2f}x"],
                [f"the realistic study on an embedded LocalCluster (2 workers, start-up and cold imports included)", f"{embedded:.2f} s"],
            ],
        )  # fmt: skip
    finally:
        for c in reversed(list(clusters.values())):  # the reverse order restores the log level set before them
            c.close()
