"""The run store survives a crash at any point of a commit, and older formats are upgraded."""

from __future__ import annotations

import numpy as np
import pytest

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.protocols.recorder import DEVICE_LAYERS, STATE_LAYERS, ProgramRecorder
from labrram.protocols.write_verify import write_verify_reram
from labrram.reliability import audit
from labrram.station import load_station
from labrram.store import FORMAT_VERSION, RunStore

MODEL = default_calibration("reram").model


class Died(BaseException):
    """The process dies here (nothing after this point happens)."""


@pytest.fixture
def station():
    sim.configure_bench("crash", seed=4, rows=12, cols=12)
    with load_station().with_simulation(bench="crash", seed=4, rows=12, cols=12).connect() as st:
        yield st


def targets():
    t = np.random.default_rng(1).uniform(50e-6, 180e-6, (12, 12))
    t[0, :3] = np.nan
    return t


def check(station, path):
    store = RunStore.open(path)
    assert store.attrs["status"] == "complete"
    progress = store.read_sidecar("progress")
    log = store.read("log")[: progress["n_log"]]
    run_log = {k: log[:, i] for i, k in enumerate(("batch", "row", "col", "kind", "amplitude", "gate", "width", "g_after"))}
    assert audit(station.bench.chip.pulse_log.records, run_log, (12, 12)).ok
    certain = np.zeros((12, 12), int)
    keep = run_log["kind"] < 2
    np.add.at(certain, (run_log["row"][keep].astype(int), run_log["col"][keep].astype(int)), 1)
    state = store.read("state")
    np.testing.assert_array_equal(certain, state[2])  # pulses counted once, not twice
    return progress


def test_a_commit_cut_between_the_state_and_the_progress_record_is_completed(station, store_dir):
    path = store_dir / "run.zarr"
    rec = ProgramRecorder.create(path, "write-verify", targets(), {})
    real = rec.store.write_sidecar

    def dies_on_the_fourth_commit(name, obj):
        if obj.get("pending") is None and obj.get("batches") == 4:
            raise Died  # the state array of batch 4 is on disk, its progress record is not
        real(name, obj)

    rec.store.write_sidecar = dies_on_the_fourth_commit
    with pytest.raises(Died):
        write_verify_reram(station.crossbar, targets(), MODEL, recorder=rec)
    on_disk = RunStore.open(path).read_sidecar("progress")
    assert on_disk["batches"] == 3 and on_disk["pending"] is not None
    assert RunStore.open(path).read("state")[len(DEVICE_LAYERS)].flat[0] == 4  # the state is one commit ahead
    rec2 = ProgramRecorder.resume(path, "write-verify")
    assert rec2.progress["rolled_forward"] == 1 and rec2.pending is None and rec2.progress["batches"] == 4
    write_verify_reram(station.crossbar, None, MODEL, recorder=rec2, resume=True)
    progress = check(station, path)
    assert progress.get("recovered_batches", 0) == 0  # nothing was in doubt: the batch had been committed


def test_a_format_1_run_is_read_as_is_and_upgraded_on_resume(station, store_dir):
    path = store_dir / "old.zarr"
    rec = ProgramRecorder.create(path, "write-verify", targets(), {})
    calls = []

    def stop(label, done, total):
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_verify_reram(station.crossbar, targets(), MODEL, recorder=rec, progress=stop)
    # rewrite it as labrram 0.1.0 (format 1) wrote it: five state layers
    store = RunStore.open(path, mode="r+")
    old = store.read("state")[: len(DEVICE_LAYERS)]
    attrs = dict(store.group["state"].attrs)
    attrs.update(layers=list(DEVICE_LAYERS), layer_units=attrs["layer_units"][: len(DEVICE_LAYERS)])
    store.group.create_array("state", data=old, chunks=old.shape, dimension_names=["layer", "row", "col"], attributes=attrs, overwrite=True)
    store.update_attrs(labrram_format=1)
    readonly = RunStore.open(path)  # read as it is, not modified
    assert readonly.attrs["labrram_format"] == 1 and readonly.read("state").shape[0] == len(DEVICE_LAYERS)
    rec2 = ProgramRecorder.resume(path, "write-verify")  # upgraded in place
    assert rec2.store.attrs["labrram_format"] == FORMAT_VERSION == 2
    assert rec2.store.read("state").shape[0] == len(STATE_LAYERS) and "state_v1" not in rec2.store.group
    np.testing.assert_array_equal(rec2.store.read("state")[: len(DEVICE_LAYERS)], old)
    write_verify_reram(station.crossbar, None, MODEL, recorder=rec2, resume=True)
    check(station, path)
