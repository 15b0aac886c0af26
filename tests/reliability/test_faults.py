"""Fault injection at the transport boundary, bounded retries of idempotent reads, pulses never
repeated, and the fault matrix: every run completes or stops cleanly, nothing lost or duplicated."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import serial

from labrram import sim
from labrram.cells import Cells
from labrram.drivers.base import ConnectionLost, InstrumentTimeout
from labrram.drivers.board import DELIVERED, NOT_DELIVERED, UNKNOWN, PulseDeliveryError
from labrram.reliability import CASES, CHIP_FAULTS, applies, audit, matrix, run_case, table
from labrram.sim.faults import Fault, FaultError, FaultPlan
from labrram.station import StationError, load_station, parse_station

for _name in ("labrram.drivers", "labrram.engine", "labrram.crossbar"):  # the retries warn; keep the output readable
    logging.getLogger(_name).setLevel(logging.ERROR)


@pytest.fixture
def station():
    """A 16x16 simulated station; tests attach faults with ``bench.inject``."""
    sim.configure_bench("rel", seed=3, rows=16, cols=16)
    with load_station().with_simulation(bench="rel", seed=3, rows=16, cols=16).connect() as st:
        yield st


# --- the faults themselves: bytes at the transport --------------------------------------------------
def test_reply_faults_are_what_a_flaky_link_delivers():
    bench = sim.configure_bench("raw", rows=4, cols=4)
    port = serial.serial_for_url("labrram://raw/board", timeout=0.1)
    clean = (port.write(b"*IDN?\n"), port.read_until(b"\n"))[1]
    bench.inject([Fault("timeout", at=1)])
    port.write(b"*IDN?\n")
    assert port.read_until(b"\n") == b""  # nothing, after the port's timeout
    bench.inject([Fault("partial", at=1)])
    port.write(b"*IDN?\n")
    cut = port.read_until(b"\n")
    assert clean.startswith(cut) and len(cut) < len(clean) and not cut.endswith(b"\n")
    bench.inject(FaultPlan([Fault("drop", at=1, nbytes=3)], seed=1))
    port.write(b"*IDN?\n")
    assert len(port.read_until(b"\n") + port.read(100)) == len(clean) - 3
    bench.inject(FaultPlan([Fault("garble", at=1, nbytes=2)], seed=1))
    port.write(b"*IDN?\n")
    garbled = port.read_until(b"\n") + port.read(100)
    assert len(garbled) == len(clean) and garbled != clean
    bench.inject([Fault("error", at=1, code=-240)])
    port.write(b"*IDN?\n")
    assert port.read_until(b"\n") == b""
    port.write(b":SYST:ERR?\n")
    assert port.read_until(b"\n").startswith(b"-240,")
    port.close()


def test_a_board_that_resets_or_vanishes_kills_the_connection_until_reopened():
    bench = sim.configure_bench("raw", rows=4, cols=4)
    port = serial.serial_for_url("labrram://raw/board", timeout=0.1)
    port.write(b":READ:VOLT 0.1\n")
    bench.inject([Fault("reset", at=1)])
    port.write(b":READ:VOLT?\n")  # lost: the board reboots
    with pytest.raises(serial.SerialException, match="disconnected"):
        port.write(b":READ:VOLT?\n")
    port.close()
    port.open()
    port.write(b":READ:VOLT?\n")
    assert float(port.read_until(b"\n")) == pytest.approx(0.2)  # power-on default again
    bench.inject([Fault("disappear", at=1, duration=2)])
    port.write(b"*IDN?\n")
    for _ in range(2):  # two failed attempts, then it is back
        port.close()
        with pytest.raises(serial.SerialException, match="could not open"):
            port.open()
    port.open()
    port.write(b"*IDN?\n")
    assert port.read_until(b"\n").startswith(b"labrram,")


def test_the_visa_transport_sees_the_same_faults():
    import pyvisa

    bench = sim.configure_bench("raw", rows=4, cols=4)
    rm = pyvisa.ResourceManager("raw@labrram")
    k = rm.open_resource("GPIB0::24::INSTR", read_termination="\n", write_termination="\n", timeout=100)
    bench.inject([Fault("timeout", instrument="k2400", at=1)])
    with pytest.raises(pyvisa.errors.VisaIOError):
        k.query("*IDN?")
    bench.inject([Fault("reset", instrument="k2400", at=1)])
    k.write("*RST")
    with pytest.raises(pyvisa.errors.VisaIOError, match="CONN_LOST|connection"):
        k.query("*IDN?")
    k.close()
    rm.close()


def test_fault_plans_are_reproducible_and_validated():
    def events(seed):
        bench = sim.configure_bench("raw", rows=4, cols=4, faults=FaultPlan([Fault("timeout", rate=0.3)], seed=seed))
        port = serial.serial_for_url("labrram://raw/board", timeout=0.01)
        for _ in range(40):
            port.write(b"*IDN?\n")
            port.read_until(b"\n")
        port.close()
        return [e.message for e in bench.faults.events]

    assert events(5) == events(5) and events(5) != events(6) and len(events(5)) > 5
    for bad, message in [
        (dict(kind="meltdown", at=1), "unknown fault kind"),
        (dict(kind="timeout"), "exactly one trigger"),
        (dict(kind="timeout", at=1, rate=0.1), "exactly one trigger"),
        (dict(kind="timeout", rate=1.5), "probability"),
        (dict(kind="stuck", at=1, state="melted"), "lrs"),
        (dict(kind="interrupt", at=1, signal="SIGKILL"), "SIGINT"),
        (dict(kind="drop", at=1, nbytes=0), "nbytes"),
    ]:
        with pytest.raises(FaultError, match=message):
            Fault(**bad)


def test_station_faults_table_is_validated_and_attached(tmp_path):
    base = load_station()
    text = (
        '[simulation]\nbench = "tomlfaults"\nrows = 8\ncols = 8\n'
        '[simulation.faults]\nseed = 4\ntimeout = { at = 1, count = 2, match = ":MEAS" }\n'
        '[instruments.board]\ndriver = "labrram_board"\naddress = "labrram://tomlfaults/board"\nretries = 5\n'
        '[crossbar]\nboard = "board"\n'
    )
    st = parse_station(text, "faulty.toml")
    assert st.simulation.faults == {"seed": 4, "timeout": {"at": 1, "count": 2, "match": ":MEAS"}}
    with st.connect() as connected:
        g = connected.crossbar.read()  # retried through the timeouts
        assert g.shape == (8, 8) and connected.bench.faults.fired("timeout") == 2
    for bad, message in [
        ('[simulation.faults]\nmeltdown = { at = 1 }\n', "unknown fault kind"),
        ('[simulation.faults]\ntimeout = { at = 0 }\n', "at must be"),
        ('[simulation.faults]\ntimeout = { rate = 0.1, bogus = 1 }\n', "bogus"),
        ('[simulation.faults]\ntimeout = 3\n', "must be a table"),
    ]:
        with pytest.raises(StationError, match=message):
            parse_station('[simulation]\n' + bad, "bad.toml")
    assert base.simulation.faults is None


# --- recovery policy ------------------------------------------------------------------------------
def test_idempotent_reads_are_retried_within_bounds(station):
    xb, bench = station.crossbar, station.bench
    xb.read()
    bench.inject([Fault("timeout", at=1, match=":MEAS:ALL")])
    assert xb.read().shape == (16, 16)  # one retry
    assert [e.kind for e in bench.faults.events] == ["timeout"]
    bench.inject([Fault("garble", at=1, count=2, match=":MEAS:ALL", nbytes=40)])
    assert xb.read().shape == (16, 16)  # two garbled replies, then a good one
    bench.inject([Fault("timeout", rate=1.0, match=":MEAS:ALL")])
    with pytest.raises(InstrumentTimeout, match=r"':MEAS:ALL\?' failed 3 times \(retries exhausted\)"):
        xb.read()
    assert bench.faults.fired() == 3  # the bound: 1 + retries attempts, no more


def test_a_pulse_whose_reply_is_lost_is_never_repeated(station):
    xb, bench = station.crossbar, station.bench
    cells = Cells.pairs(np.argwhere(bench.chip._stuck == 0)[:8])
    before = xb.pulse_counter()
    n0 = len(bench.chip.pulse_log)
    bench.inject([Fault("timeout", at=1, match=":PULS:READ")])
    with pytest.raises(PulseDeliveryError) as info:
        xb.set(cells, gate=1.8, read=True)
    assert np.all(info.value.status == DELIVERED)  # the board's counter proves it
    assert len(bench.chip.pulse_log) - n0 == 8  # exactly once on the die
    assert xb.pulse_counter() == before + 8
    bench.inject([Fault("timeout", at=1, match=":PULS:READ", executed=False)])
    with pytest.raises(PulseDeliveryError) as info:
        xb.reset(cells, read=True)
    assert np.all(info.value.status == NOT_DELIVERED) and len(bench.chip.pulse_log) - n0 == 8
    bench.inject([Fault("reset", at=1, match=":PULS:READ")])
    xb.pulse_counter()
    with pytest.raises(PulseDeliveryError) as info:
        xb.reset(cells, read=True)
    assert np.all(info.value.status != DELIVERED)  # after a reboot nobody can claim delivery
    assert set(np.unique(info.value.status)) <= {NOT_DELIVERED, UNKNOWN}


def test_an_unrecoverable_fault_leaves_outputs_off(station):
    bench, smu = station.bench, station.instruments["smu"]
    smu.configure_voltage_source(1e-3)
    smu.set_voltage(0.1)
    smu.enable_output()
    assert bench.outputs_on() == ["k2400"]
    bench.inject([Fault("disappear", at=1)])  # the board is unplugged for good
    with pytest.raises(ConnectionLost):
        station.crossbar.read()
    with pytest.raises(RuntimeError, match="could not make every instrument safe — board"):  # it says what it could not do ...
        station.close()
    assert bench.outputs_on() == []  # ... after turning off everything it could


def test_a_lost_output_off_is_noticed_and_repeated(station):
    bench, smu = station.bench, station.instruments["smu"]
    smu.configure_voltage_source(1e-3)
    smu.enable_output()
    bench.inject([Fault("timeout", instrument="k2400", at=1, match=":OUTP OFF", executed=False)])
    smu.shutdown()
    assert bench.outputs_on() == []
    assert bench.faults.fired() == 1


# --- the matrix ------------------------------------------------------------------------------------
def _check(results):
    rows = table(results)
    print()
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    failed = [f"{r.protocol}/{r.kind}/seed {r.seed}: {r.outcome}" for r in results if not r.ok]
    assert not failed, failed
    return rows


def test_fault_matrix_single_shot(store_dir):
    """Every fault kind x 2 seeds on a 16x16 array (single-shot): completes, or stops cleanly
    and completes on resume; the die and the store agree pulse for pulse."""
    rows = _check(matrix(seeds=range(2), protocols=("single-shot",), workdir=store_dir))
    assert sum(r["stopped cleanly"] for r in rows) >= 2  # the board that vanishes for good always stops the run
    assert sum(r["faults injected"] for r in rows) > 20


def test_fault_matrix_write_verify(store_dir):
    _check(matrix(kinds=["timeout", "garbled bytes", "board reset", "board gone for good"], seeds=[0], protocols=("write-verify",), workdir=store_dir))


@pytest.mark.parametrize("job", ["write-verify-pcm", "tune-passive", "characterize-reram", "characterize-pcm", "characterize-passive"])
def test_fault_matrix_every_other_job(store_dir, job):
    """PCM and passive programming and the three characterizations under a lost reply, a garbled
    one, a board reset and a board that is gone for good: completed, or stopped cleanly and
    completed on resume, exactly once against the die."""
    rows = _check(matrix(kinds=["timeout", "garbled bytes", "board reset", "board gone for good"], seeds=[1], protocols=(job,), workdir=store_dir))
    assert any(r["stopped cleanly"] for r in rows)


@pytest.mark.parametrize("job", ["write-verify-pcm", "characterize-pcm"])
def test_stuck_and_dead_devices_in_the_pcm_jobs(store_dir, job):
    """10 % of a PCM array stuck (SET or RESET) or the whole chip no longer switching, while a
    PCM job runs: it completes, exactly once against the die; the write-verify converges at most
    the 90 % that still switch, and none of the devices it reports converged is broken in truth
    (stuck PCM devices sit at 0.01 or 100 µS, far from every target)."""
    rows = _check(matrix(kinds=list(CHIP_FAULTS), seeds=[0, 1], protocols=(job,), workdir=store_dir))
    assert len(rows) == 2 and all(r["completed"] == r["runs"] == 2 for r in rows)
    assert sum(r["faults injected"] for r in rows) == 4
    if job == "write-verify-pcm":
        stuck, dead = (next(r for r in rows if r["fault"] == k) for k in CHIP_FAULTS)
        assert 0 < stuck["converged"] <= 2 * 256 * 0.9 and stuck["out of band"] == 0
        assert dead["converged"] == 0


def test_chip_faults_apply_to_reram_and_pcm_jobs_not_to_passive_ones():
    for kind in CHIP_FAULTS:
        assert applies(kind, "write-verify") and applies(kind, "write-verify-pcm") and applies(kind, "characterize-pcm")
        assert not applies(kind, "tune-passive") and not applies(kind, "characterize-passive")
    assert applies("timeout", "tune-passive")


@pytest.mark.slow
def test_fault_matrix_many_seeds(store_dir):
    """Every fault kind x 20 seeds x every job (what benchmarks/bench_faults.py prints)."""
    from labrram.reliability import JOBS

    _check(matrix(seeds=range(20), protocols=JOBS, workdir=store_dir))


def test_audit_catches_a_lost_or_duplicated_record():
    die = np.zeros(3, dtype=sim.PULSE_DTYPE)
    die["row"], die["col"], die["kind"], die["gate"], die["amplitude"] = 0, [0, 0, 1], [1, 0, 0], [4.8, 1.5, 1.6], [2.6, 1.8, 1.8]
    log = {"row": np.array([0.0, 0, 0]), "col": np.array([0.0, 0, 1]), "kind": np.array([1.0, 0, 0]),
           "gate": np.array([4.8, 1.5, 1.6]), "amplitude": np.array([2.6, 1.8, 1.8])}  # fmt: skip
    assert audit(die, log, (2, 2)).ok
    assert not audit(die[:2], log, (2, 2)).ok  # a record without its pulse
    assert not audit(np.concatenate([die, die[2:]]), log, (2, 2)).ok  # a pulse twice
    log["kind"][2] = 2  # uncertain SET: fine delivered or not
    assert audit(die, log, (2, 2)).ok and audit(die[:2], log, (2, 2)).ok


def test_every_case_runs():
    assert set(CASES) >= {"timeout", "dropped bytes", "garbled bytes", "partial line", "error queue", "board reset",
                          "board gone for good", "stuck devices", "chip stops switching"}  # fmt: skip
    assert run_case("timeout", 0, rows=4, cols=4).ok
