"""The Monte Carlo runner: determinism across worker counts, resume, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from labrram.montecarlo import StudyError, load_study, run_study, trial_seeds

REF = "labrram.montecarlo:example_trial"


def test_seeds_are_spawned_and_stable():
    s = trial_seeds(7, 5)
    assert s.dtype == np.uint32 and len(set(s.tolist())) == 5
    assert np.array_equal(s, trial_seeds(7, 5))
    assert np.array_equal(trial_seeds(7, 3), s[:3])  # a prefix: independent of the study size


def test_serial_equals_two_workers():
    a = run_study(REF, 9, {"size": 2}, seed=3, workers=1)
    b = run_study(REF, 9, {"size": 2}, seed=3, workers=2, chunk=2)
    assert a["x"].shape == (9, 2) and a["mean"].shape == (9,)
    assert np.array_equal(a["index"], np.arange(9))
    for key in a:
        assert np.array_equal(a[key], b[key])


def test_store_and_resume_compute_only_missing(tmp_path):
    out = tmp_path / "study.zarr"
    full = run_study(REF, 10, {"size": 3}, seed=1, workers=1)
    calls = []
    run_study(REF, 10, {"size": 3}, seed=1, out=out, workers=1, chunk=4, progress=lambda d, n: calls.append(d))
    assert calls == [4, 8, 10]
    # simulate an interruption: forget the second chunk
    from labrram.store import RunStore

    store = RunStore.open(out, mode="r+")
    store.group["done"][4:8] = False
    store.group["x"][4:8] = np.nan
    calls.clear()
    res = run_study(REF, 10, {"size": 3}, seed=1, out=out, workers=1, resume=True, progress=lambda d, n: calls.append(d))
    assert calls == [10]  # one chunk of 4 missing trials recomputed, starting from 6 done
    for key in full:
        assert np.array_equal(res[key], full[key])
    results, done, study = load_study(out)
    assert done.all() and study["fn"] == REF and store.dims("x") == ("trial", "x_0")


def test_existing_store_needs_resume_and_same_study(tmp_path):
    out = tmp_path / "s.zarr"
    run_study(REF, 3, {}, seed=0, out=out, workers=1)
    with pytest.raises(StudyError, match="already exists"):
        run_study(REF, 3, {}, seed=0, out=out, workers=1)
    with pytest.raises(StudyError, match="another study"):
        run_study(REF, 3, {}, seed=1, out=out, workers=1, resume=True)
    from labrram.store import RunStore

    RunStore.create(tmp_path / "read.zarr", "read", {})
    with pytest.raises(StudyError, match="is a 'read' store, not a Monte Carlo study"):
        run_study(REF, 3, {}, seed=0, out=tmp_path / "read.zarr", workers=1, resume=True)


@pytest.mark.parametrize(
    "ref, match",
    [
        ("labrram.montecarlo.example_trial", "module:function"),
        ("no_such_module_xyz:fn", "cannot import"),
        ("labrram.montecarlo:nope", "no callable"),
        (42, "module:function"),
    ],
)
def test_bad_references(ref, match):
    with pytest.raises(StudyError, match=match):
        run_study(ref, 2, {}, workers=1)


def test_bad_params_and_arguments():
    with pytest.raises(StudyError, match="JSON"):
        run_study(REF, 2, {"size": object()}, workers=1)
    with pytest.raises(StudyError, match="JSON"):
        run_study(REF, 2, {"scale": float("nan")}, workers=1)
    with pytest.raises(TypeError):
        run_study(REF, 2, {"unknown": 1}, workers=1)
    with pytest.raises(StudyError, match="n_trials"):
        run_study(REF, 0, {}, workers=1)
    with pytest.raises(StudyError, match="workers"):
        run_study(REF, 2, {}, workers=0)


def test_bad_results():
    with pytest.raises(StudyError, match="non-empty dict"):
        run_study("numpy:full", 1, {}, workers=1)  # np.full(0, seed): an array, not a dict


def test_serial_backend_and_bench_trial_match_the_process_pool():
    params = {"rows": 4, "cols": 6, "reads": 2}
    a = run_study("labrram.montecarlo:bench_read_trial", 3, params, seed=2, backend="serial")
    b = run_study("labrram.montecarlo:bench_read_trial", 3, params, seed=2, workers=2, chunk=1)
    for key in a:
        assert np.array_equal(a[key], b[key])
    assert np.all(a["bench_time"] > 0) and np.all((a["read_noise_rel"] > 0) & (a["read_noise_rel"] < 0.1))


def test_import_needs_neither_dask_nor_the_simulator():
    import subprocess
    import sys

    code = ("import sys, labrram.montecarlo, labrram.montecarlo_config; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed', 'torch'}), 'labrram.sim' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.split() == ["[]", "False"], out.stdout + out.stderr


def test_backend_and_scheduler_arguments():
    with pytest.raises(StudyError, match="backend must be one of"):
        run_study(REF, 2, {}, backend="threads")
    with pytest.raises(StudyError, match="needs the dask backend"):
        run_study(REF, 2, {}, backend="serial", scheduler="tcp://127.0.0.1:8786")
    with pytest.raises(StudyError, match="tcp://HOST:PORT"):
        run_study(REF, 2, {}, scheduler="127.0.0.1:8786")
    with pytest.raises(StudyError, match="chunk"):
        run_study(REF, 2, {}, backend="serial", chunk=0)


def test_tasks_of_whole_chunks_are_written_as_chunk_files_and_others_do_not_clobber(tmp_path, monkeypatch):
    """A task covering whole chunks of the study's arrays (or the last, shorter one) is written a
    chunk file at a time; a task covering part of a chunk goes through zarr-python and leaves
    the rest of that chunk as it was."""
    from labrram import montecarlo, zarrfile
    from labrram.store import RunStore

    written = []
    real = zarrfile.write_chunks
    monkeypatch.setattr(zarrfile, "write_chunks", lambda folder, meta, start, data: written.append((folder.name, start)) or real(folder, meta, start, data))
    n, chunk = 21, 8  # chunks [0, 8), [8, 16), [16, 21)
    store = RunStore.create(tmp_path / "s.zarr", "montecarlo", {"study": {"n_trials": n}})
    arrays: dict = {}

    def batch(ks):
        return [(k, {"x": np.array(float(k)), "v": np.array([k, -k], dtype=np.int64)}) for k in ks]

    montecarlo._write(store, batch(range(8, 16)), n, chunk, arrays)  # a whole chunk
    montecarlo._write(store, batch(range(16, 21)), n, chunk, arrays)  # the last, shorter chunk
    assert sorted(set(written)) == [("done", 8), ("done", 16), ("v", 8), ("v", 16), ("x", 8), ("x", 16)]
    written.clear()
    montecarlo._write(store, batch(range(0, 4)), n, chunk, arrays)  # half a chunk, then the other half
    montecarlo._write(store, batch(range(4, 8)), n, chunk, arrays)
    assert written == []
    montecarlo._write(store, batch([2, 5]), n, chunk, arrays)  # not contiguous: rewritten in place
    results, done, _ = load_study(tmp_path / "s.zarr")
    assert done.all()
    np.testing.assert_array_equal(results["x"], np.arange(n, dtype=float))
    np.testing.assert_array_equal(results["v"], np.stack([np.arange(n), -np.arange(n)], axis=1))
