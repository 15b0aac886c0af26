"""Ctrl-C and SIGTERM stop a run at a safe point: the exchange in flight completes, the run store
says what was pending, every output is off, and ``--resume`` finishes with nothing lost or doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from labrram import sim
from labrram.cli import main
from labrram.protocols.journal import read_log
from labrram.protocols.messages import OPS
from labrram.reliability import audit
from labrram.signals import Terminated, deferred_signals, install_sigterm
from labrram.store import RunStore

STATION = """\
[station]
name = "signals"

[simulation]
bench = "{bench}"
rows = 16
cols = 16

[simulation.faults]
interrupt = {{ at = {at}, match = ":PULS:READ", signal = "{signal}" }}

[instruments.board]
driver = "labrram_board"
address = "labrram://{bench}/board"

[instruments.smu]
driver = "keithley2400"
address = "GPIB0::24::INSTR"
visa_library = "{bench}@labrram"

[crossbar]
board = "board"
smu = "smu"
"""


def test_sigterm_is_held_until_the_block_ends():
    done = []
    with install_sigterm():
        with pytest.raises(Terminated):
            with deferred_signals():
                os.kill(os.getpid(), signal.SIGTERM)
                done.append("exchange completed")
    assert done == ["exchange completed"]


def test_without_a_handler_sigterm_still_ends_the_process_after_the_block():
    code = textwrap.dedent(
        """
        import os, signal
        from labrram.signals import deferred_signals
        with deferred_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            print("exchange completed", flush=True)
        print("never here", flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == -signal.SIGTERM
    assert out.stdout == "exchange completed\n"


@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_a_pulse_batch_stops_cleanly_and_resumes(store_dir, capsys, signame, code):
    bench_name = f"sig{signame.lower()}"
    station = store_dir / "station.toml"
    station.write_text(STATION.format(bench=bench_name, at=2, signal=signame))
    out = store_dir / "run.zarr"
    argv = ["program", "--station", str(station), "--protocol", "single-shot", "--out", str(out)]
    sim.configure_bench(bench_name)  # a fresh bench; the station configures it with its faults
    assert main(argv + ["--targets", "uniform:50e-6:150e-6"]) == code
    err = capsys.readouterr().err
    assert ("terminated" if signame == "SIGTERM" else "interrupted") in err and "outputs are off" in err
    bench = sim.get_bench(bench_name)
    assert bench.outputs_on() == [] and bench.board.route is None
    assert bench.faults.fired("interrupt") == 1
    store = RunStore.open(out)
    record = store.attrs["journal"]
    assert store.attrs["status"] == "interrupted" and store.attrs["reason"].startswith(("Terminated", "KeyboardInterrupt"))
    # the signal arrived while the SET batch ran: it completed on the chip, its result was
    # never stored, and the store says so (the batch is pending, the stop record names it)
    assert record["pending"] is not None and record["stopped"]["pending"]["op"] == OPS[record["pending"]["op"]]
    assert main(["program", "--station", str(station), "--protocol", "single-shot", "--out", str(out), "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["devices"] == 256
    run_log = read_log(RunStore.open(out))
    assert audit(bench.chip.pulse_log.records, run_log, (16, 16)).ok
    die = bench.chip.pulse_log.records
    sets = np.zeros((16, 16), int)
    np.add.at(sets, (die["row"][die["kind"] == 0], die["col"][die["kind"] == 0]), 1)
    assert np.all(sets[bench.chip._stuck == 0] == 1)  # every healthy device SET exactly once
    assert bench.outputs_on() == []
