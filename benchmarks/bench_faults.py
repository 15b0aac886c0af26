"""The fault campaign: every fault kind x seeds x job on a 16x16 simulated array.

Jobs: the five programming protocols (ReRAM single-shot, write-verify, stochastic SET; PCM
write-verify; passive tuning) and the three characterization plans. Each run drives the array
through a bench that injects one kind of fault (labrram.reliability CASES, at the
transport/emulator boundary; stuck and dead devices into the ReRAM and PCM jobs) and is counted as
*completed* (the faults were recovered from in the run) or *stopped cleanly* (an unrecoverable
fault: every output off, the store saying where it stopped; it then completed with ``resume``
once the fault was gone). In both cases the run store and the chip's pulse log must agree pulse
for pulse — exactly once after every resume — (and for the open-loop protocols every healthy
device is SET exactly once); anything else is *failed*. For the write-verify jobs, the devices
the store reports converged are judged on the chip's hidden state when the job returned
(labrram.reliability.truth_of_claims).

``LABRRAM_FAULT_SEEDS`` (default 20) sets the seeds per cell; ``LABRRAM_FAULT_JOBS`` (comma
separated) restricts the jobs.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time

from labrram.reliability import CASES, JOBS, matrix, table

from .common import table as print_table
from .common import write_markdown


def main() -> None:
    for name in ("labrram.drivers", "labrram.engine", "labrram.crossbar"):  # every retry warns otherwise
        logging.getLogger(name).setLevel(logging.ERROR)
    seeds = range(int(os.environ.get("LABRRAM_FAULT_SEEDS", "20")))
    jobs = tuple(j for j in os.environ.get("LABRRAM_FAULT_JOBS", ",".join(JOBS)).split(",") if j)
    scratch = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="labrram-faults-", dir=scratch) as work:
        results = matrix(seeds=seeds, protocols=jobs, workdir=work)
    wall = time.perf_counter() - t0
    rows = table(results)
    order = list(CASES)
    rows.sort(key=lambda r: (jobs.index(r["protocol"]), order.index(r["fault"])))
    title = f"Fault campaign: {len(CASES)} fault kinds x {len(seeds)} seeds x {len(jobs)} jobs, 16x16 arrays ({wall:.0f} s)"
    header = ["job", "fault", "runs", "completed", "stopped cleanly, resumed", "failed", "faults injected", "reported converged", "of which out of band in truth"]
    closed = ("write-verify", "write-verify-pcm")  # closed-loop jobs: their "converged" is judged on the chip's truth
    body = [[r["protocol"], r["fault"], r["runs"], r["completed"], r["stopped cleanly"], r["failed"], r["faults injected"],
             r["converged"] if r["protocol"] in closed else "-", r["out of band"] if r["protocol"] in closed else "-"] for r in rows]  # fmt: skip
    print_table(title, header, body)
    total = {k: sum(r[k] for r in rows) for k in ("runs", "completed", "stopped cleanly", "failed", "faults injected", "converged", "out of band")}
    summary = (
        f"total: {total['runs']} runs, {total['completed']} completed, {total['stopped cleanly']} stopped cleanly "
        f"and completed on resume, {total['failed']} failed; {total['faults injected']} faults injected; "
        f"{total['converged']} devices reported converged by the write-verify jobs, {total['out of band']} of them outside "
        "their band in truth (the chip's hidden state when the job returned, read only to judge; ReRAM: the true "
        "conductance against the ±5 % tolerance; PCM, which drifts by design after its verify read: the state its last "
        "programming left, before drift, beyond 3 bands and 30 % of the target, i.e. broken)"
    )
    print(summary)
    write_markdown("docs/bench/faults.md", title, header, body, summary)
    for r in results:
        if not r.ok:
            print(f"  FAILED {r.protocol} / {r.kind} / seed {r.seed}: {r.outcome}")


if __name__ == "__main__":
    main()
