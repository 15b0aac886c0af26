"""ReRAM write-verify: convergence, limits, targets validation, interruption and resume."""

import numpy as np
import pytest

from labrram.calibration.files import default_calibration
from labrram.protocols.recorder import ProgramRecorder
from labrram.protocols.results import TargetError
from labrram.protocols.write_verify import ReRAMWriteVerify, write_verify_reram
from labrram import sim
from labrram.sim import PulseKind
from labrram.station import load_station

MODEL = default_calibration("reram").model


@pytest.fixture
def station():
    sim.configure_bench("wv", seed=2, rows=32, cols=32)  # a fresh chip for every test
    with load_station().with_simulation(bench="wv", seed=2, rows=32, cols=32).connect() as st:
        yield st


def pattern(shape, seed=0):
    t = np.random.default_rng(seed).uniform(40e-6, 200e-6, shape)
    t[0, :4] = np.nan  # left alone
    return t


def per_device_pulses(chip, shape):
    log = chip.pulse_log.records
    log = log[(log["kind"] == PulseKind.SET) | (log["kind"] == PulseKind.RESET)]
    counts = np.zeros(shape, int)
    np.add.at(counts, (log["row"], log["col"]), 1)
    return counts


def test_converges_and_every_pulse_is_accounted_for(station, tmp_path):
    targets = pattern((32, 32))
    rec = ProgramRecorder.create(tmp_path / "run.zarr", "write-verify", targets, {})
    res = write_verify_reram(station.crossbar, targets, MODEL, recorder=rec)
    s = res.summary()
    chip = station.bench.chip
    healthy = chip._stuck == 0
    m = ~np.isnan(targets)
    # (a device may hit the 60-iteration cap on an unlucky trajectory: 4 in 10,000 over ten chips)
    assert res.converged[m & healthy].mean() >= 0.995
    assert s["pulses_per_device"] < 12
    # the record and the die agree pulse for pulse; untouched devices were never pulsed
    counts = per_device_pulses(chip, (32, 32))
    np.testing.assert_array_equal(counts, res.pulses)
    assert counts[0, :4].sum() == 0
    log = rec.log()
    assert log["row"].size == res.pulses.sum()
    truth = chip._conductance(*np.nonzero(m & res.converged))
    band = np.maximum(0.05 * targets[m & res.converged], 1e-6)
    # inside the band in truth, not only in the accepting read (the guard band absorbs read noise)
    assert np.mean(np.abs(truth - targets[m & res.converged]) <= band) > 0.98


def test_interrupted_run_resumes_without_programming_twice(station, tmp_path):
    targets = pattern((32, 32), seed=1)
    path = tmp_path / "run.zarr"
    rec = ProgramRecorder.create(path, "write-verify", targets, {})
    calls = []

    def ctrl_c(label, done, total):
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_verify_reram(station.crossbar, targets, MODEL, recorder=rec, progress=ctrl_c)
    assert ProgramRecorder.resume(path, "write-verify").progress["iteration"] == 3
    converged_before = ProgramRecorder.resume(path, "write-verify").load_state().converged.copy()
    counts_before = per_device_pulses(station.bench.chip, (32, 32))

    rec2 = ProgramRecorder.resume(path, "write-verify")
    res = write_verify_reram(station.crossbar, None, MODEL, recorder=rec2, resume=True)
    counts = per_device_pulses(station.bench.chip, (32, 32))
    np.testing.assert_array_equal(counts, res.pulses)  # die and record agree across the resume
    rows, cols = np.nonzero(~np.isnan(targets))
    done_early = converged_before
    # devices that had converged before the interruption got no pulse after it
    np.testing.assert_array_equal(counts[rows[done_early], cols[done_early]], counts_before[rows[done_early], cols[done_early]])
    assert res.converged[~np.isnan(targets)].mean() > 0.99
    assert rec2.store.attrs["status"] == "complete"


@pytest.mark.parametrize("counter_known", [True, False])
def test_a_batch_lost_in_flight_is_re_read_and_logged_as_uncertain(station, tmp_path, mocker, counter_known):
    targets = pattern((32, 32), seed=2)
    path = tmp_path / "run.zarr"
    rec = ProgramRecorder.create(path, "write-verify", targets, {})
    xb = station.crossbar
    real_set = xb.set
    n = {"calls": 0}

    def flaky_set(*args, **kwargs):
        n["calls"] += 1
        out = real_set(*args, **kwargs)  # the pulses reach the die ...
        if n["calls"] == 2:
            raise ConnectionError("link lost")  # ... but the reply never arrives
        return out

    mocker.patch.object(xb, "set", side_effect=flaky_set)
    with pytest.raises(ConnectionError):
        write_verify_reram(xb, targets, MODEL, recorder=rec)
    mocker.stopall()
    rec2 = ProgramRecorder.resume(path, "write-verify")
    assert rec2.pending is not None and rec2.pending["counter"] is not None
    if not counter_known:  # a board without a pulse counter (or one that reset): nobody can tell
        rec2.progress["pending"]["counter"] = None
    res = write_verify_reram(station.crossbar, None, MODEL, recorder=rec2, resume=True)
    log = rec2.log()
    uncertain = log["kind"] == 2
    assert rec2.progress["recovered_batches"] == 1
    if counter_known:  # the board's pulse counter proves the batch was delivered: logged as such
        assert uncertain.sum() == 0
    else:
        assert uncertain.sum() > 0 and np.all(np.isfinite(log["g_after"][uncertain]))
    counts = per_device_pulses(station.bench.chip, (32, 32))
    # the die saw the uncertain batch: certain pulses + uncertain ones = what reached the die
    recorded = np.zeros((32, 32), int)
    np.add.at(recorded, (log["row"].astype(int), log["col"].astype(int)), 1)
    np.testing.assert_array_equal(counts, recorded)
    assert res.converged[~np.isnan(targets)].mean() > 0.99


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.__setitem__((1, 1), np.inf), "infinite"),
        (lambda t: t.__setitem__((1, 1), -1e-6), "negative"),
        (lambda t: t.__setitem__((1, 1), 5e-3), "outside the reachable range"),
        (lambda t: t.fill(np.nan), "every target is NaN"),
    ],
)
def test_bad_targets_refused_before_anything_is_sent(station, mutate, message):
    t = pattern((32, 32))
    mutate(t)
    with pytest.raises(TargetError, match=message):
        write_verify_reram(station.crossbar, t, MODEL)
    assert len(station.bench.chip.pulse_log) == 0


def test_wrong_shape_refused(station):
    with pytest.raises(TargetError, match="shape"):
        write_verify_reram(station.crossbar, np.full((8, 8), 1e-4), MODEL)


def test_settings_validated():
    with pytest.raises(ValueError):
        ReRAMWriteVerify(tolerance=2.0)


def test_run_store_reads_in_xarray_with_named_dimensions(station, tmp_path):
    xr = pytest.importorskip("xarray")
    targets = pattern((32, 32))
    path = tmp_path / "run.zarr"
    rec = ProgramRecorder.create(path, "write-verify", targets, {})
    write_verify_reram(station.crossbar, targets, MODEL, recorder=rec)
    ds = xr.open_zarr(path, consolidated=False)
    assert ds["targets"].dims == ("row", "col")
    assert ds["state"].dims == ("layer", "row", "col")
    assert ds["log"].dims == ("pulse", "field")
    assert ds.attrs["status"] == "complete"
