"""Programming one array of a board that carries several: every pulse lands on the chosen
array, through board reboots too; a run's array is recorded and resuming elsewhere is refused."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import labrram
from labrram import sim
from labrram.cells import Cells
from labrram.drivers.board_base import PulseDeliveryError
from labrram.protocols.journal import read_log
from labrram.reliability import audit
from labrram.sim.faults import Fault, FaultPlan
from labrram.store import RunStore, StoreError


@pytest.fixture(autouse=True)
def _quiet_retries():
    """Retries and resumes warn; quiet here, and as they were for every other test module."""
    loggers = [logging.getLogger(n) for n in ("labrram.drivers", "labrram.engine", "labrram.crossbar", "labrram.api")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    yield
    for lg, level in zip(loggers, levels):
        lg.setLevel(level)

N = 12


def _station(name: str, arrays: int = 4):
    return labrram.load_station().with_simulation(bench=name, rows=N, cols=N, arrays=arrays, seed=2)


def test_a_program_run_on_array_2_leaves_the_other_arrays_untouched(tmp_path):
    out = tmp_path / "run.zarr"
    result = labrram.program("uniform:50e-6:150e-6", _station("tiles-program"), array_index=2, out=out)
    bench = sim.get_bench("tiles-program")
    assert [len(c.pulse_log) for c in bench.chips][:2] == [0, 0] and len(bench.chips[3].pulse_log) == 0
    found = audit(bench.chips[2].pulse_log.records, read_log(RunStore.open(out)), (N, N))
    assert found.ok and found.die_pulses == found.records > 0  # every pulse of the run, on array 2
    store = RunStore.open(out)
    assert store.attrs["array_index"] == 2 and bench.chips[2].info.serial in store.attrs["chip"]
    assert result.summary()["converged_fraction"] > 0.9


def test_the_array_is_selected_again_after_every_board_reboot():
    """A board that reboots (the injected ``reset``: the command is lost, the board powers on
    with array 0 selected) at random commands: the driver selects array 2 again before anything
    else reaches the array — the die's pulse logs show every pulse on array 2."""
    station = _station("tiles-reboot").with_simulation(faults=FaultPlan([Fault("reset", rate=0.04)], seed=7))
    rebooted = lost = 0
    with station.connect() as connected:
        bench = connected.bench
        tile = connected.crossbar_for(2)
        cells = Cells.pairs(np.argwhere(bench.chips[2]._stuck == 0)[:6])
        for k in range(60):
            try:
                if k % 3 == 2:
                    tile.read(cells)
                else:
                    (tile.set if k % 2 else tile.reset)(cells, gate=1.6, read=bool(k % 4 == 1))
            except PulseDeliveryError:
                lost += 1  # settled by the counter; never repeated
            except labrram.drivers.base.InstrumentError:
                pass  # a read whose retries met reboots too
        rebooted = bench.faults.fired("reset")
        logs = [len(c.pulse_log) for c in bench.chips]
    assert rebooted >= 5, rebooted  # the plan did reboot the board, repeatedly
    assert logs[0] == logs[1] == logs[3] == 0 and logs[2] > 0
    assert bench.board.array == 2 or bench.faults.events[-1].kind == "reset"


def test_two_crossbars_on_one_board_take_turns():
    with _station("tiles-turns").connect() as connected:
        bench = connected.bench
        a, b = connected.crossbar_for(1), connected.crossbar_for(3)
        assert connected.crossbar_for(1) is a and connected.crossbar.array == 0
        a.set(Cells.pairs([[0, 0]]), gate=1.8)
        b.set(Cells.pairs([[1, 1], [2, 2]]), gate=1.8)
        a.reset(Cells.pairs([[0, 0]]))
        assert [len(c.pulse_log) for c in bench.chips] == [0, 2, 0, 2]
        with pytest.raises(labrram.StationError, match="array 4 is not on the board 'board', which carries 4 arrays"):
            connected.crossbar_for(4)


def _interrupted(tmp_path, name: str, station=None, array_index: int | None = 2):
    """A program run on ``station`` (default: the 4-array one of bench ``name``) interrupted by
    Ctrl-C at its third progress report."""
    out = tmp_path / f"{name}.zarr"
    calls = {"n": 0}

    def stop(label, done, total):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        labrram.program("uniform:50e-6:150e-6", station or _station(name), array_index=array_index, out=out, progress=stop)
    assert RunStore.open(out).attrs["status"] == "interrupted"
    return out


def test_resuming_on_another_array_is_refused_unless_asked(tmp_path):
    out = _interrupted(tmp_path, "tiles-resume")
    bench = sim.get_bench("tiles-resume")
    pulses = [len(c.pulse_log) for c in bench.chips]
    assert pulses[0] == pulses[1] == pulses[3] == 0 and pulses[2] > 0
    station = _station("tiles-resume")  # its crossbar addresses array 0
    with pytest.raises(StoreError, match="the run was on array 2 of the board; this job addresses array 0"):
        labrram.resume(out, station)
    with pytest.raises(StoreError, match="the run was on array 2"):
        labrram.resume(out, station, array_index=3)
    assert [len(c.pulse_log) for c in bench.chips] == pulses  # nothing sent to any array
    result = labrram.resume(out, station, array_index=2)
    assert result.summary()["converged_fraction"] > 0.9
    logs = [len(c.pulse_log) for c in bench.chips]
    assert logs[0] == logs[1] == logs[3] == 0
    found = audit(bench.chips[2].pulse_log.records, read_log(RunStore.open(out)), (N, N))
    assert found.ok and found.uncertain == 0


def test_resuming_on_another_array_when_asked_is_recorded(tmp_path):
    out = _interrupted(tmp_path, "tiles-other")
    station = _station("tiles-other").with_crossbar(array=3)
    labrram.resume(out, station, other_chip=True)
    attrs = RunStore.open(out).attrs
    assert attrs["array_indices"] == [2, 3] and len(attrs["chips"]) == 2
    assert len(sim.get_bench("tiles-other").chips[3].pulse_log) > 0


def test_the_stored_station_resumes_on_the_runs_array(tmp_path):
    out = _interrupted(tmp_path, "default")  # the stored simulated station is rebuilt on the default bench
    labrram.resume(out)
    bench = sim.get_bench("default")
    logs = [len(c.pulse_log) for c in bench.chips]
    assert len(logs) == 4 and logs[0] == logs[1] == logs[3] == 0
    sim.configure_bench("default")


def test_the_stored_station_keeps_its_chip_physics_and_drops_its_faults(tmp_path):
    station = _station("resume-physics", arrays=1).with_simulation(set_distribution="heavy", level_spread="hfox-mlc",
                                                                    faults=FaultPlan([Fault("timeout", rate=0.02)], seed=3))  # fmt: skip
    out = _interrupted(tmp_path, "resume-physics", station, array_index=None)
    with pytest.raises(StoreError, match="in-memory simulated chip"):  # without its faults the bench is built again: a fresh chip
        labrram.resume(out)
    result = labrram.resume(out, other_chip=True)  # no station: the one the store recorded
    assert result.summary()["converged_fraction"] > 0.9
    cfg = sim.get_bench("resume-physics").config
    assert cfg.chip_options == {"set_distribution": "heavy", "level_spread": "hfox-mlc"} and cfg.faults is None
    assert (cfg.seed, cfg.rows, cfg.cols) == (2, N, N)
    assert "stations" not in RunStore.open(out).attrs  # the same station, by name


def test_characterize_measures_the_chosen_array(tmp_path):
    out = tmp_path / "char.zarr"
    run = labrram.characterize(_station("tiles-char"), kind="reram", n_devices=8, cycles=2, array_index=1, out=out)
    bench = sim.get_bench("tiles-char")
    logs = [len(c.pulse_log) for c in bench.chips]
    assert logs[1] > 0 and logs[0] == logs[2] == logs[3] == 0
    assert RunStore.open(out).attrs["array_index"] == 1 and bench.chips[1].info.serial in run.chip
