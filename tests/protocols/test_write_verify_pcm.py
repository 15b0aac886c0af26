"""PCM write-verify with the SET/RESET voltage ladders (Bonnet Alg. 2) on the simulated PCM chip."""

import numpy as np
import pytest

from labrram import sim
from labrram.protocols.journal import read_log
from labrram.store import RunStore
from labrram.protocols.write_verify_pcm import PCMWriteVerify, write_verify_pcm
from labrram.sim import PulseKind
from labrram.station import load_station


@pytest.fixture
def station():
    sim.configure_bench("pcmwv", seed=1, kind="pcm", rows=32, cols=32)
    with load_station().with_simulation(bench="pcmwv", seed=1, kind="pcm", rows=32, cols=32).connect() as st:
        yield st


def test_ladder_converges_within_joshis_band(station, tmp_path):
    targets = np.random.default_rng(0).uniform(2e-6, 22e-6, (32, 32))
    res = write_verify_pcm(station.crossbar, targets, PCMWriteVerify(half_width=1.0e-6), out=tmp_path / "p.zarr")
    chip = station.bench.chip
    healthy = chip._stuck == 0
    assert res.converged[healthy].mean() >= 0.99
    err = chip._conductance(*np.nonzero(healthy & res.converged)) - targets[healthy & res.converged]
    assert np.std(err) < 1.2e-6  # Joshi 2020: sigma < 1.2 uS on all levels
    log = chip.pulse_log.records
    sets = log[log["kind"] == PulseKind.SET]
    assert sets["amplitude"].max() <= 1.8 + 1e-6 and log["amplitude"].max() <= 2.9 + 1e-6
    assert read_log(RunStore.open(tmp_path / "p.zarr"))["row"].size == len(log) == res.pulses.sum()


def test_ladder_bounds_are_validated():
    with pytest.raises(ValueError):
        PCMWriteVerify(v_set_max=2.8, v_reset_min=2.7)
