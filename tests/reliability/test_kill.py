"""kill -9 in the middle of a transfer, then ``--resume`` in a new process: every device programmed
exactly once according to the simulated chip's pulse log (which, with ``[simulation] state``,
lives on disk and survives the killed process as a real chip would)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from labrram.protocols.journal import latest_record, read_log
from labrram.protocols.write_verify import BROKEN, BROKEN_REL
from labrram.reliability import audit, die_pulses
from labrram.sim.chip import PulseKind
from labrram.sim.persist import load_pulse_log
from labrram.store import RunStore

STATION = """\
[station]
name = "persistent"

[simulation]
bench = "kill"
rows = {n}
cols = {n}
seed = 5
state = "chip-state"

[instruments.board]
driver = "labrram_board"
address = "labrram://kill/board"

[instruments.smu]
driver = "keithley2400"
address = "GPIB0::24::INSTR"
visa_library = "kill@labrram"

[crossbar]
board = "board"
smu = "smu"
"""


def _record(out: Path) -> dict:
    """The commit record as another process sees it (write-ahead log, else the group's metadata)."""
    try:
        return latest_record(out)
    except OSError:  # the run is moving its log into the store
        return {}


def _freeze(proc: subprocess.Popen) -> None:
    """Stop the child (SIGSTOP) and wait until it has stopped (or exited)."""
    proc.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state in ("T", "t", "Z"):
            return
        time.sleep(0.0002)


def _status(out: Path) -> str | None:
    try:
        return json.loads((out / "zarr.json").read_text())["attributes"].get("status")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def batches_done(out: Path) -> int:
    return int(_record(out).get("steps", -1))


def pending(out: Path) -> bool:
    return _record(out).get("pending") is not None


def transfer(workdir: Path, n: int, protocol: str, signals: list[int], seed: int = 0) -> dict:
    """Run ``labrram program`` in child processes on a persistent n x n chip, stopping the child
    with each of ``signals`` in turn at a random point after it made progress, resuming each
    time, until a child completes. Returns what happened."""
    rnd = random.Random(seed)
    kills = len(signals)
    station = workdir / "station.toml"
    station.write_text(STATION.format(n=n))
    out = workdir / "run.zarr"
    base = [sys.executable, "-m", "labrram.cli", "program", "--station", str(station), "--protocol", protocol, "--out", str(out), "--json"]
    events, resume = [], False
    for attempt in range(kills + 6):
        argv = base + (["--resume"] if resume else ["--targets", "uniform:50e-6:180e-6", "--seed", "3"])
        start = batches_done(out)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir)
        killed = False
        if len(events) < kills:
            goal = start + rnd.randint(1, 3)
            deadline = time.monotonic() + 120
            while proc.poll() is None and batches_done(out) < goal and time.monotonic() < deadline:
                time.sleep(0.0005)
            time.sleep(rnd.uniform(0.0, 0.002))  # sometimes between batches, sometimes inside one
            if proc.poll() is None:
                _freeze(proc)  # frozen where it is: a run faster than this loop still stops mid-way
                if _status(out) != "complete":  # else it finished before it froze: let it exit
                    proc.send_signal(signals[len(events)])
                    killed = True
                proc.send_signal(signal.SIGCONT)
        stdout, stderr = proc.communicate(timeout=300)
        if killed:
            events.append({"signal": signals[len(events)], "returncode": proc.returncode, "batches": batches_done(out),
                           "in_flight": pending(out), "stderr": stderr.decode()[-300:]})  # fmt: skip
            resume = out.exists()
            continue
        assert proc.returncode == 0, stderr.decode()[-2000:]
        return {"events": events, "summary": json.loads(stdout), "out": out, "state": workdir / "chip-state", "processes": attempt + 1}
    raise AssertionError(f"the transfer did not complete: {events}")


def check_exactly_once(result: dict, protocol: str, n: int) -> None:
    store = RunStore.open(result["out"])
    assert store.attrs["status"] == "complete"
    run_log = read_log(store)
    chip_log = load_pulse_log(result["state"])
    # every pulse on the die is one record of the store, every record one pulse on the die
    found = audit(chip_log, run_log, (n, n))
    assert found.ok, f"{len(found.mismatched)} devices disagree: {found.mismatched[:5]}"
    die = die_pulses(chip_log)
    targets = store.read("targets")
    programmed = ~np.isnan(targets)
    if protocol != "write-verify":
        sets = np.zeros((n, n), int)
        s = die["kind"] == PulseKind.SET
        np.add.at(sets, (die["row"][s], die["col"][s]), 1)
        assert np.all(sets[programmed] == 1), f"{int(np.sum(sets[programmed] != 1))} devices not SET exactly once"
        assert np.all(sets[~programmed] == 0)
        assert run_log["kind"].max() < 2  # the pulse counter settled every batch in flight
    else:
        # no device pulsed after it converged: a converged device was accepted on a read inside
        # its band (the read-back of its last SET, or a verify re-read after a recovery), its last
        # pulse is that SET, and — the audit matched every record with the die — nothing reached
        # it afterwards; the store's pulse counts are its certain records. ``achieved`` is the
        # final verify read, which relaxation may have moved a little since
        achieved, pulses = store.read("achieved"), store.read("pulses")
        converged = store.read("converged").astype(bool) & programmed
        t = targets[converged]
        limit = np.maximum(BROKEN * np.maximum(0.05 * t, 1e-6), BROKEN_REL * t)
        assert np.all(np.abs(achieved[converged] - t) <= limit)
        assert converged.sum() > 0.98 * programmed.sum()
        certain = np.zeros((n, n), int)
        keep = run_log["kind"] < 2
        np.add.at(certain, (run_log["row"][keep].astype(int), run_log["col"][keep].astype(int)), 1)
        np.testing.assert_array_equal(certain[programmed], pulses[programmed])
        for r, c in np.argwhere(converged):
            last = np.nonzero((run_log["row"] == r) & (run_log["col"] == c))[0][-1]
            assert run_log["kind"][last] in (0, 2), (r, c)  # a SET, never a RESET after acceptance
    assert result["summary"]["devices"] == int(programmed.sum())


def test_kill_9_and_sigterm_in_a_small_transfer_then_resume(store_dir):
    """Fast variant: a 24x24 write-verify (tens of steps: the kills land inside it) killed (-9),
    resumed, terminated (SIGTERM, from outside: it stops at a safe point and turns outputs off),
    resumed to completion."""
    result = transfer(store_dir, 24, "write-verify", [signal.SIGKILL, signal.SIGTERM], seed=1)
    kill, term = result["events"]
    assert kill["returncode"] == -signal.SIGKILL
    assert term["returncode"] == 143 and "terminated: outputs are off" in term["stderr"]
    check_exactly_once(result, "write-verify", 24)


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["single-shot", "stochastic-set", "write-verify"])
def test_kill_9_in_a_16384_device_transfer_then_resume(store_dir, protocol):
    """The 128x128 transfer killed (-9) four times at random points, resumed each time."""
    seed = {"single-shot": 11, "stochastic-set": 12, "write-verify": 13}[protocol]
    result = transfer(store_dir, 128, protocol, [signal.SIGKILL] * 4, seed=seed)
    events = result["events"]
    assert len(events) >= 1 and all(e["returncode"] == -signal.SIGKILL for e in events)
    print(f"\n{protocol}: {len(events)} kills at batches {[e['batches'] for e in events]}, "
          f"{sum(e['in_flight'] for e in events)} with a batch in flight, {result['processes']} processes")  # fmt: skip
    check_exactly_once(result, protocol, 128)
