"""The run store survives a death at any point of a commit, and a resume replays exactly."""

from __future__ import annotations

import numpy as np
import pytest

import labrram
from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.protocols.journal import Journal, latest_record, read_log
from labrram.protocols.wal import WriteAheadLog
from labrram.protocols.write_verify import write_verify_reram
from labrram.reliability import audit
from labrram.station import load_station
from labrram.store import RunStore, StoreError

MODEL = default_calibration("reram").model


class Died(BaseException):
    """The process dies here (nothing after this point happens, not even the stop record)."""


@pytest.fixture
def station():
    sim.configure_bench("crash", seed=4, rows=12, cols=12)
    with load_station().with_simulation(bench="crash", seed=4, rows=12, cols=12).connect() as st:
        yield st


def targets():
    t = np.random.default_rng(1).uniform(50e-6, 180e-6, (12, 12))
    t[0, :3] = np.nan
    return t


def interrupted_run(station, path):
    """A write-verify run stopped by Ctrl-C at its second progress report."""
    calls = []

    def stop(label, done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_verify_reram(station.crossbar, targets(), MODEL, out=path, progress=stop)


def check(station, path):
    store = RunStore.open(path)
    assert store.attrs["status"] == "complete"
    run_log = read_log(store)
    assert audit(station.bench.chip.pulse_log.records, run_log, (12, 12)).ok
    certain = np.zeros((12, 12), int)
    keep = run_log["kind"] < 2
    np.add.at(certain, (run_log["row"][keep].astype(int), run_log["col"][keep].astype(int)), 1)
    np.testing.assert_array_equal(certain, store.read("pulses"))  # pulses counted once, not twice
    return store


@pytest.mark.parametrize("when", ["torn record", "after the record", "checkpoint, before the cut"])
def test_a_death_at_any_write_of_a_step_resumes_exactly(station, store_dir, monkeypatch, when):
    """Death in the middle of writing the record that commits a pulse batch's buffered steps and
    states its intent (a torn record: not committed, the previous batch is settled from its
    intent), right after that record (the batch never left), or in a checkpoint after the
    records were moved into zarr but before the write-ahead log was emptied (they are found
    twice): either way the resumed run settles the batch in doubt by the board's pulse counter
    and agrees with the die, pulse for pulse."""
    path = store_dir / "run.zarr"
    real_append, real_cut = WriteAheadLog.append, WriteAheadLog.cut
    state = {"writes": 0, "dead": False}

    def append(self, record, durable):
        if state["dead"]:
            raise Died  # not even the stop record
        state["writes"] += 1
        if state["writes"] == 6 and when != "checkpoint, before the cut":
            state["dead"] = True
            whole = b"".join(bytes(part) for part in record)
            real_append(self, record if when == "after the record" else [whole[: len(whole) // 2]], durable)
            raise Died
        real_append(self, record, durable)

    def cut(self, size=0):
        if state["dead"] or (when == "checkpoint, before the cut" and state["writes"] >= 6):
            state["dead"] = True
            raise Died
        real_cut(self, size)

    monkeypatch.setattr(WriteAheadLog, "append", append)
    monkeypatch.setattr(WriteAheadLog, "cut", cut)
    if when.startswith("checkpoint"):
        monkeypatch.setattr(Journal, "checkpoint_interval", 0.0)  # a checkpoint after every record
    with pytest.raises(Died):
        write_verify_reram(station.crossbar, targets(), MODEL, out=path)
    monkeypatch.undo()
    rec = latest_record(path)
    # records are written with the intents of pulse batches (reads wait in the buffer): an intent
    # is on disk either way, no stop record
    assert rec["pending"] is not None and "stopped" not in rec and rec["steps"] == rec["pending"]["step"]
    res = labrram.resume(path, station)
    assert res.settled == 1  # by the board's counter: delivered (torn) or never sent (after)
    store = check(station, path)
    assert res.converged[~np.isnan(targets())].mean() > 0.99
    assert store.read("log").shape[0] == read_log(store)["step"].size  # trimmed
    assert not (path / "wal").exists()  # the write-ahead log is gone with the run complete


@pytest.mark.parametrize("at", ["pulse", "achieved", "zarr.json of the group"])
def test_a_death_while_finishing_finishes_again_on_resume(station, store_dir, monkeypatch, at):
    """Death while the finished run writes its results, its index coordinates (chunks written,
    the metadata not yet: an array that does not exist) or its consolidated metadata with the
    status "complete" (one write): the run is not complete, resume replays it without touching
    the chip and finishes it."""
    from labrram import zarrfile

    path = store_dir / "run.zarr"
    real = zarrfile.write_metadata

    def write_metadata(folder, meta):
        name = "zarr.json of the group" if meta.get("consolidated_metadata") else folder.name
        if name == at:
            raise Died
        real(folder, meta)

    monkeypatch.setattr(zarrfile, "write_metadata", write_metadata)
    with pytest.raises(Died):
        write_verify_reram(station.crossbar, targets(), MODEL, out=path)
    monkeypatch.undo()
    assert RunStore.open(path).attrs["status"] == "running"
    n = len(station.bench.chip.pulse_log)
    res = labrram.resume(path, station)
    assert len(station.bench.chip.pulse_log) == n  # every step was committed: nothing is sent again
    store = check(station, path)
    np.testing.assert_array_equal(store.read("pulses"), res.pulses)
    assert store.read("pulse").shape == (read_log(store)["step"].size,)


def test_a_run_whose_arrays_zarr_python_wrote_resumes(station, store_dir):
    """Runs interrupted under labrram versions whose run stores zarr-python wrote (its default
    codecs, zstd level 0): resume appends to those arrays in their own codecs."""
    import shutil

    import zarr

    path = store_dir / "run.zarr"
    interrupted_run(station, path)
    for name in ("steps", "values", "log"):  # the same arrays, written by zarr-python
        old = zarr.open_array(str(path / name), mode="r")
        data, meta = np.asarray(old[...]), old.metadata
        shutil.rmtree(path / name)
        group = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        new = group.create_array(name, shape=data.shape, chunks=old.chunks, dtype="f8", fill_value=np.nan,
                                 dimension_names=list(meta.dimension_names), attributes=dict(old.attrs))  # fmt: skip
        new[...] = data
        assert new.metadata.to_dict()["codecs"][-1]["configuration"]["level"] == 0
    res = labrram.resume(path, station)
    check(station, path)
    assert res.converged[~np.isnan(targets())].mean() > 0.99
    assert zarr.open_array(str(path / "log"), mode="r").metadata.to_dict()["codecs"][-1]["configuration"]["level"] == 0


def test_a_changed_plan_is_refused_on_resume(station, store_dir):
    path = store_dir / "run.zarr"
    interrupted_run(station, path)
    store = RunStore.open(path, mode="r+")
    params = store.attrs["plan_params"]
    params["settings"]["guard"] = 1.0  # other bands, other gates: the stored steps no longer fit
    store.update_attrs(plan_params=params)
    n = len(station.bench.chip.pulse_log)
    with pytest.raises(StoreError, match="changed since the run started"):
        labrram.resume(path, station)
    assert len(station.bench.chip.pulse_log) == n  # replay touches nothing


@pytest.mark.parametrize("name", ["log", "steps"])
def test_a_missing_chunk_of_the_record_is_refused_on_resume(station, store_dir, name):
    """zarr reads a missing chunk as fill values: a resume would replay NaN steps or lose pulses."""
    path = store_dir / "run.zarr"
    interrupted_run(station, path)
    chunk = next(p for p in sorted((path / name / "c").rglob("*")) if p.is_file())
    chunk.unlink()
    n = len(station.bench.chip.pulse_log)
    with pytest.raises(StoreError, match=f"damaged: {name} chunk c/0.* is missing"):
        labrram.resume(path, station)
    assert len(station.bench.chip.pulse_log) == n  # nothing sent


def test_a_write_ahead_log_of_garbage_is_kept_aside_not_deleted(station, store_dir):
    path = store_dir / "run.zarr"
    interrupted_run(station, path)
    (path / "wal" / "records").write_bytes(b"not a record at all" * 10)
    res = labrram.resume(path, station)
    assert res.converged[~np.isnan(targets())].mean() > 0.99
    assert (path / "wal" / "records.damaged").read_bytes() == b"not a record at all" * 10


def test_a_record_of_more_arrays_than_one_system_call_takes_is_written_whole(tmp_path):
    """A flush can hold thousands of small steps (a long characterization between two pulse
    batches): more buffers than ``writev`` takes at once (IOV_MAX, 1024 on Linux)."""
    from labrram.protocols import wal

    (tmp_path / "wal").mkdir()
    log = WriteAheadLog(tmp_path)
    steps = [np.full((1, 7), float(k)) for k in range(3000)]
    values = [np.array([float(k)]) for k in range(3000)]
    log.append(wal.encode((0, 0, 0), steps, values, np.empty((0, 8)), {"steps": 3000}), durable=True)
    log.close()
    records, end = wal.read(tmp_path / wal.FILE_NAME, (7, 8))
    assert len(records) == 1 and end == (tmp_path / wal.FILE_NAME).stat().st_size
    np.testing.assert_array_equal(records[0].steps[:, 0], np.arange(3000.0))
    np.testing.assert_array_equal(records[0].values, np.arange(3000.0))


@pytest.mark.parametrize("where, forced, flushed", [
    ("in process", None, False), ("outside", None, True), ("in process", True, True), ("outside", False, False),
])  # fmt: skip
def test_intents_are_flushed_to_the_disk_when_the_chip_is_outside_the_process(station, store_dir, monkeypatch, where, forced, flushed):
    """A chip outside the process keeps its pulses through a crash of the computer: each intent
    is on the disk before its batch is sent. A chip emulated in the process goes with the
    machine, as the page cache does: its intents are written (a killed process keeps them) but
    not flushed. ``Journal.flush_intents`` forces either."""
    from labrram.protocols import wal

    assert station.crossbar.in_process  # the simulated bench, reached through its labrram:// URL
    if where == "outside":  # as an instrument, or an emulator in another process, is reached
        monkeypatch.setattr(type(station.crossbar.board.transport), "in_process", False)
    monkeypatch.setattr(Journal, "flush_intents", forced)
    syncs = []
    real = wal._datasync
    monkeypatch.setattr(wal, "_datasync", lambda fd: (syncs.append(fd), real(fd)))
    intents = []
    real_intend = Journal.intend
    monkeypatch.setattr(Journal, "intend", lambda self, *a: (intents.append(a[0]), real_intend(self, *a)))
    write_verify_reram(station.crossbar, targets(), MODEL, out=store_dir / "run.zarr")
    assert len(intents) > 5
    assert len(syncs) == (len(intents) if flushed else 0)
    check(station, store_dir / "run.zarr")


def test_the_simulated_bench_is_in_the_process_through_its_serial_url_and_its_visa_library():
    sim.configure_bench("in-process", seed=1, rows=4, cols=4)
    with load_station().with_simulation(bench="in-process", seed=1, rows=4, cols=4).connect() as st:
        assert st.crossbar.in_process and st.instruments["board"].transport.address.startswith("labrram://")
        smu = st.instruments["smu"].transport
        assert smu.in_process and type(smu).__name__ == "VisaTransport"  # through "@labrram"
    from labrram.drivers.transports import SerialTransport

    assert not SerialTransport(object(), "/dev/ttyUSB0").in_process  # a port of the machine: an instrument


def test_a_simulated_chip_kept_in_a_state_folder_gets_its_intents_flushed(tmp_path, store_dir, monkeypatch):
    """A ``[simulation] state`` chip is written to files, which the system may write back before
    the run's unflushed records: after a power cut it could hold pulses no intent names. Its
    intents are flushed, as an instrument's are."""
    from labrram.protocols import wal

    station = load_station().with_simulation(bench="in-state", seed=2, rows=8, cols=8, state=str(tmp_path / "chip"))
    syncs = []
    real = wal._datasync
    monkeypatch.setattr(wal, "_datasync", lambda fd: (syncs.append(fd), real(fd)))
    with station.connect() as st:
        assert not st.crossbar.in_process
        assert not st.instruments["smu"].transport.in_process  # its VISA library says so too
        write_verify_reram(st.crossbar, np.full((8, 8), 100e-6), MODEL, out=store_dir / "run.zarr")
    assert syncs  # every intent
