"""A simulated board that carries several arrays: selection, reset, the shared pulse counter,
refusals, the SMU route and persistence of every array."""

from __future__ import annotations

import numpy as np
import pytest
import serial

from labrram import sim
from labrram.sim.bench import BenchConfig, array_seed


def _port(bench_name: str):
    return serial.serial_for_url(f"labrram://{bench_name}/board", timeout=0.2)


def _ask(port, command: bytes) -> bytes:
    port.write(command + b"\n")
    return port.read_until(b"\n").rstrip(b"\n")


def test_a_one_array_bench_is_unchanged():
    bench = sim.configure_bench("arr-one", rows=8, cols=8)
    same = sim.configure_bench("arr-one-again", rows=8, cols=8, seed=0)
    assert len(bench.chips) == 1 and bench.chip is bench.chips[0]
    np.testing.assert_array_equal(bench.chip._g, same.chip._g)
    port = _port("arr-one")
    assert _ask(port, b":ARR:COUN?") == b"1" and _ask(port, b":ARR:SEL?") == b"0"
    port.write(b":ARR:SEL 1\n")
    assert _ask(port, b":SYST:ERR?").startswith(b"-222,")
    port.close()


def test_arrays_are_distinct_chips_and_array_0_is_the_one_array_chip():
    one = sim.configure_bench("arr-ref", rows=8, cols=8, seed=5)
    four = sim.configure_bench("arr-four", rows=8, cols=8, seed=5, arrays=4)
    np.testing.assert_array_equal(four.chips[0]._g, one.chip._g)
    assert [c.seed for c in four.chips] == [array_seed(5, i) for i in range(4)]
    assert len({c.info.serial for c in four.chips}) == 4
    assert all(not np.array_equal(four.chips[0]._g, c._g) for c in four.chips[1:])
    assert all(c.kind == "reram" and (c.rows, c.cols) == (8, 8) for c in four.chips)
    with pytest.raises(ValueError, match="arrays must be a whole number in 1..64"):
        BenchConfig(arrays=0)
    with pytest.raises(ValueError, match="one array"):
        sim.configure_bench("arr-arc1", kind="passive", rows=8, cols=8, arrays=2, instruments=sim.bench.ARC1_INSTRUMENTS)


def test_selection_addresses_every_array_command_and_the_counter_counts_all_arrays():
    bench = sim.configure_bench("arr-sel", rows=8, cols=8, arrays=3)
    port = _port("arr-sel")
    assert _ask(port, b":ARR:COUN?") == b"3"
    port.write(b":ARR:SEL 2;:PULS:SET 1,1,1.8,1.8,1e-6;:PULS:SET 2,2,1.8,1.8,1e-6\n")
    assert _ask(port, b":ARR:SEL?") == b"2"
    assert f"/{bench.chips[2].info.serial},".encode() in _ask(port, b"*IDN?")
    port.write(b":ARR:SEL 1;:PULS:SET 0,0,1.8,1.8,1e-6\n")
    assert [len(c.pulse_log) for c in bench.chips] == [0, 1, 2]
    assert _ask(port, b":SYST:PULS?") == b"3"  # every array's pulses
    assert bench.chip is bench.chips[1]
    # a read addresses the selected array: array 1's cell (0, 0) was SET, array 2's was not
    port.write(b":FORM ASC\n")
    on_1 = float(_ask(port, b":MEAS:CELL? 0,0"))
    port.write(b":ARR:SEL 2\n")
    on_2 = float(_ask(port, b":MEAS:CELL? 0,0"))
    truth = [bench.chips[i]._conductance(np.array([0]), np.array([0]))[0] * 0.2 for i in (1, 2)]
    np.testing.assert_allclose([on_1, on_2], truth, rtol=0.1)
    assert _ask(port, b":SYST:ERR?") == b'+0,"No error"'
    port.close()


@pytest.mark.parametrize("bad, code", [(b"3", b"-222"), (b"-1", b"-222"), (b"1.5", b"-224"), (b"ONE", b"-104")])
def test_a_selection_out_of_range_is_refused_and_changes_nothing(bad, code):
    bench = sim.configure_bench("arr-bad", rows=4, cols=4, arrays=3)
    port = _port("arr-bad")
    port.write(b":ARR:SEL 1\n")
    port.write(b":ARR:SEL " + bad + b";:PULS:SET 0,0,1.8,1.8,1e-6\n")
    assert _ask(port, b":SYST:ERR?").startswith(code + b",")
    assert _ask(port, b":ARR:SEL?") == b"1"
    assert all(len(c.pulse_log) == 0 for c in (bench.chips[0], bench.chips[2]))
    port.close()


def test_reset_and_power_on_select_array_0():
    bench = sim.configure_bench("arr-rst", rows=4, cols=4, arrays=2)
    port = _port("arr-rst")
    port.write(b":ARR:SEL 1;*RST\n")
    assert _ask(port, b":ARR:SEL?") == b"0"
    port.write(b":ARR:SEL 1\n")
    assert _ask(port, b":ARR:SEL?") == b"1"
    bench.board.power_cycle()
    port.close()
    port.open()
    assert _ask(port, b":ARR:SEL?") == b"0" and _ask(port, b":SYST:PULS?") == b"0"
    port.close()


def test_selecting_another_array_opens_the_smu_route():
    bench = sim.configure_bench("arr-route", rows=4, cols=4, arrays=2)
    port = _port("arr-route")
    port.write(b":ROUT:SMU 1,2\n")
    assert _ask(port, b":ROUT:SMU?") == b"1,2"
    t0 = bench.clock.now
    port.write(b":ARR:SEL 0\n")  # the same array: the route stays
    assert _ask(port, b":ROUT:SMU?") == b"1,2"
    port.write(b":ARR:SEL 1\n")
    assert _ask(port, b":ROUT:SMU?") == b"NONE" and bench.clock.now - t0 > 2e-3  # the relays settled
    # the SMU connector reaches the selected array's cell
    port.write(b":ROUT:SMU 3,3\n")
    g = bench.board.smu_port.conductance()
    assert g == pytest.approx(bench.chips[1]._conductance(np.array([3]), np.array([3]))[0])
    port.close()


def test_every_array_persists_and_a_one_array_state_directory_still_loads(tmp_path):
    from labrram.sim.persist import array_dir, load_pulse_log

    state = tmp_path / "chip"
    bench = sim.configure_bench("arr-state", rows=4, cols=4, arrays=3, state=str(state))
    port = _port("arr-state")
    port.write(b":ARR:SEL 2;:PULS:SET 1,1,1.8,1.8,1e-6;:ARR:SEL 0;:PULS:SET 0,0,1.8,1.8,1e-6;:PULS:SET 0,1,1.8,1.8,1e-6\n")
    assert _ask(port, b":SYST:PULS?") == b"3"
    g = [c._g.copy() for c in bench.chips]
    port.close()
    again = sim.configure_bench("arr-state", rows=4, cols=4, arrays=3, state=str(state))  # another process, as it were
    assert [len(c.pulse_log) for c in again.chips] == [2, 0, 1] and again.board.pulse_count == 3
    for before, after in zip(g, (c._g for c in again.chips)):
        np.testing.assert_array_equal(before, after)
    assert len(load_pulse_log(array_dir(state, 2))) == 1 and len(load_pulse_log(state)) == 2
    # the top level is a one-array state directory: a one-array bench loads it
    one = sim.configure_bench("arr-state", rows=4, cols=4, state=str(state))
    np.testing.assert_array_equal(one.chip._g, g[0])
    assert len(one.chip.pulse_log) == 2
    sim.configure_bench("arr-state", rows=4, cols=4)  # release the directory


def test_device_faults_land_on_their_array():
    from labrram.sim.faults import Fault, FaultError
    from labrram.station import StationError, load_station

    bench = sim.configure_bench("arr-faults", rows=4, cols=4, arrays=3)
    codes = bench.chips[0].FAULT_CODES
    bench.inject([Fault("dead", at=1, fraction=1.0, array=2), Fault("stuck", at=2, cells=((1, 1),), state="lrs")])
    before = [c._stuck.copy() for c in bench.chips]
    port = _port("arr-faults")
    port.write(b":ARR:SEL 1\n")  # fires "dead" on array 2 (not the selected one)
    port.write(b":ARR:SEL?\n")  # fires "stuck" on the selected array, 1
    assert port.read_until(b"\n") == b"1\n"
    port.close()
    assert (bench.chips[2]._stuck == codes["dead"]).all()
    assert bench.chips[1]._stuck[1, 1] == codes["stuck_lrs"]
    changed = [np.argwhere(c._stuck != b).tolist() for c, b in zip(bench.chips, before)]
    assert changed[0] == [] and set(map(tuple, changed[1])) <= {(1, 1)}
    with pytest.raises(FaultError, match="array must be a whole number"):
        Fault("dead", at=1, array=-1)
    with pytest.raises(StationError, match=r"\[simulation.faults\].dead: array 3 is not on the simulated board \(arrays = 3"):
        load_station().with_simulation(arrays=3, faults={"dead": {"at": 1, "array": 3}})
