"""The Dask backend of the Monte Carlo runner: same results as serial, resume after a kill,
clean interrupts, the ``labrram montecarlo`` command and its study files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from labrram.cli import main  # noqa: E402
from labrram.montecarlo import StudyError, load_study, run_study  # noqa: E402
from labrram.montecarlo_config import parse_study_config  # noqa: E402

REF = "labrram.montecarlo:example_trial"


@pytest.fixture(scope="module")
def cluster():
    """An existing 2-worker cluster (processes, loopback only) the tests connect to by address."""
    from distributed import LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0")
    yield c
    c.close()


def test_dask_cluster_gives_the_serial_results(cluster, tmp_path):
    serial = run_study(REF, 13, {"size": 2}, seed=5, backend="serial")
    info = {}
    dask = run_study(REF, 13, {"size": 2}, seed=5, scheduler=cluster.scheduler_address, chunk=2, started=info.update)
    assert info["backend"] == "dask" and info["workers"] == 2 and info["tasks"] == 7
    assert serial.keys() == dask.keys()
    for key in serial:
        assert np.array_equal(serial[key], dask[key])
    # a real simulated-bench trial, built inside each worker, written into a store by the client
    params = {"rows": 8, "cols": 8, "reads": 3}
    bench_serial = run_study("labrram.montecarlo:bench_read_trial", 4, params, seed=2, backend="serial")
    run_study("labrram.montecarlo:bench_read_trial", 4, params, seed=2, out=tmp_path / "b.zarr", scheduler=cluster.scheduler_address, chunk=1)
    stored, done, _ = load_study(tmp_path / "b.zarr")
    assert done.all() and set(stored) == set(bench_serial)
    for key in bench_serial:
        assert np.array_equal(stored[key], bench_serial[key])
    assert np.all((bench_serial["g_median"] > 1e-7) & (bench_serial["g_median"] < 1e-4))  # S


def test_embedded_local_cluster():
    info = {}
    res = run_study(REF, 6, {"size": 1}, seed=9, backend="dask", workers=2, chunk=2, started=info.update)
    assert info["backend"] == "dask" and info["scheduler"].startswith("tcp://127.0.0.1:")
    serial = run_study(REF, 6, {"size": 1}, seed=9, backend="serial")
    for key in serial:
        assert np.array_equal(res[key], serial[key])


def test_interrupt_cancels_keeps_written_trials_and_resumes(cluster, tmp_path):
    out = tmp_path / "s.zarr"

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(REF, 12, {}, seed=4, out=out, scheduler=cluster.scheduler_address, chunk=3, progress=stop)
    _, done, _ = load_study(out)
    assert done.sum() == 3  # the first chunk, written before the interrupt; nothing after it
    seen = []
    res = run_study(REF, 12, {}, seed=4, out=out, scheduler=cluster.scheduler_address, resume=True, progress=lambda d, n: seen.append(d))
    assert seen[-1] == 12 and len(seen) == 3  # only the 3 missing chunks ran
    serial = run_study(REF, 12, {}, seed=4, backend="serial")
    for key in serial:
        assert np.array_equal(res[key], serial[key])


def test_failing_trial_is_reported(cluster):
    with pytest.raises(StudyError, match="non-empty dict"):
        run_study("numpy:full", 2, {}, scheduler=cluster.scheduler_address)


def test_unreachable_or_malformed_scheduler(tmp_path):
    out = tmp_path / "never.zarr"
    t0 = time.perf_counter()
    with pytest.raises(StudyError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        run_study(REF, 2, {}, out=out, scheduler="tcp://127.0.0.1:1", timeout=1.0)
    assert time.perf_counter() - t0 < 10
    assert not out.exists()  # no empty store left behind
    with pytest.raises(StudyError, match="tcp://HOST:PORT"):
        run_study(REF, 2, {}, scheduler="10.0.0.5:8786")
    with pytest.raises(StudyError, match="needs the dask backend"):
        run_study(REF, 2, {}, scheduler="tcp://127.0.0.1:1", backend="process")
    with pytest.raises(StudyError, match="backend must be one of"):
        run_study(REF, 2, {}, backend="spark")


def test_missing_dask_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(StudyError, match=r"install labrram\[dask\]"):
        run_study(REF, 2, {}, backend="dask")


# --- the command ------------------------------------------------------------------------------------
def write_study(path: Path, body: str) -> Path:
    path.write_text(body)
    return path


def test_cli_on_an_existing_cluster(cluster, tmp_path, capsys):
    cfg = write_study(tmp_path / "s.toml", f'[study]\ntrial = "{REF}"\ntrials = 9\nseed = 3\nchunk = 2\n[params]\nsize = 2\n')
    code = main(["montecarlo", str(cfg), "--out", str(tmp_path / "s.zarr"), "--scheduler", cluster.scheduler_address, "--json"])
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(out)
    assert summary["done"] == summary["trials"] == summary["computed"] == 9
    assert summary["backend"] == "dask" and summary["scheduler"] == cluster.scheduler_address and summary["chunk"] == 2
    serial = run_study(REF, 9, {"size": 2}, seed=3, backend="serial")
    assert summary["results"]["x"]["shape"] == [2]
    assert summary["results"]["mean"]["mean"] == pytest.approx(float(np.mean(serial["mean"])))
    assert summary["results"]["x"]["max"] == pytest.approx(float(np.max(serial["x"])))
    assert summary["trials_per_second"] > 0
    # the table form, on a serial run of the same file
    code = main(["montecarlo", str(cfg), "--out", str(tmp_path / "t.zarr"), "--backend", "serial"])
    out = capsys.readouterr().out
    assert code == 0 and "9/9 trials done" in out and "trials/s" in out


@pytest.mark.parametrize(
    "body, match",
    [
        ("[study]\ntrials = 3\n", "missing key 'trial'"),
        (f'[study]\ntrial = "{REF}"\n', "missing key 'trials'"),
        (f'[study]\ntrial = "{REF}"\ntrials = "ten"\n', r"\[study\].trials must be an integer, got a string"),
        (f'[study]\ntrial = "{REF}"\ntrials = 3\nworkers = true\n', r"\[study\].workers must be an integer"),
        (f'[study]\ntrial = "{REF}"\ntrials = 3\nsed = 1\n', "unknown key 'sed'"),
        (f'[study]\ntrial = "{REF}"\ntrials = 0\n', r"trials must be in 1\.\.100000000"),
        (f'[study]\ntrial = "{REF}"\ntrials = 1000000000000\n', r"trials must be in 1\.\.100000000, got 1000000000000"),
        (f'[study]\ntrial = "{REF}"\ntrials = 3\nchunk = 9223372036854775807\n', r"chunk must be in 1\.\.1000000"),
        ('[study]\ntrial = "builtins:exec"\ntrials = 3\n', "'builtins' is not named \\(nothing was imported\\)"),
        ('[study]\ntrial = "antigravity:fly"\ntrials = 3\n', "'antigravity' is not named"),
        ('[study]\ntrial = "os:system"\ntrials = 3\nmodules = ["os"]\n[params]\ncommand = "true"\n', "do not fit trial os:system"),
        (f'[study]\ntrial = "{REF}"\ntrials = 3\nmodules = ["not a module"]\n', "modules must be a list of module names"),
        ("[study]\ntrial = " + "[" * 200 + "]" * 200 + "\ntrials = 3\n", "nested (too deeply|more than 32 levels)"),
        (f'[study]\ntrial = "{REF}"\ntrials = 3\n[parms]\nsize = 2\n', "unknown table or key 'parms'"),
        (f'[study]\ntrial = "{REF}"\ntrials = 3\n[params]\nsise = 2\n', "unexpected keyword argument 'sise'"),
        (f'[study]\ntrial = "{REF}"\ntrials = 3\n[params]\nsize = 1979-05-27\n', "dates and times"),
        ('[study]\ntrial = "no_such_module_xyz:f"\ntrials = 3\nmodules = ["no_such_module_xyz"]\n', "cannot import"),
        (f'[study]\ntrial = "{REF}"\ntrials = 3\nbackend = "spark"\n', "backend must be one of"),
        (f'[study]\ntrial = "{REF}"\ntrials = 3\nscheduler = "10.0.0.5:8786"\n', "tcp://HOST:PORT"),
        (f'[study]\ntrial = "{REF}"\ntrials = 3\nbackend = "process"\nscheduler = "tcp://a:1"\n', "needs backend = 'dask'"),
        ("[study\ntrial = 1\n", "not valid TOML"),
    ],
)
def test_malformed_study_files_are_exit_2(tmp_path, capsys, body, match):
    import re

    cfg = write_study(tmp_path / "bad.toml", body)
    with pytest.raises(StudyError, match=match):
        parse_study_config(body, str(cfg))
    code = main(["montecarlo", str(cfg), "--out", str(tmp_path / "s.zarr")])
    err = capsys.readouterr().err
    assert code == 2 and str(cfg) in err and re.search(match, err.replace("\n", " "))
    assert len(err.strip().splitlines()) <= 3 and not (tmp_path / "s.zarr").exists()  # one (wrapped) line, nothing written


def test_cli_bad_arguments(tmp_path, capsys):
    cfg = write_study(tmp_path / "s.toml", f'[study]\ntrial = "{REF}"\ntrials = 3\n')
    (tmp_path / "exists.zarr").mkdir()
    assert main(["montecarlo", str(cfg), "--out", str(tmp_path / "exists.zarr")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["montecarlo", str(cfg), "--out", str(tmp_path / "s.zarr"), "--workers", "0"]) == 2
    assert main(["montecarlo", str(tmp_path / "none.toml"), "--out", str(tmp_path / "s.zarr")]) == 2
    assert "cannot read study file" in capsys.readouterr().err
    code = main(["montecarlo", str(cfg), "--out", str(tmp_path / "s.zarr"), "--scheduler", "tcp://127.0.0.1:1", "--backend", "serial"])
    assert code == 2 and "needs the dask backend" in capsys.readouterr().err


# --- resume after the client dies --------------------------------------------------------------------
def _live_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies."""
    live = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(entry.name))
    return live


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for leftover processes")
@pytest.mark.parametrize("how", ["sigkill-group", "sigint-client"])
def test_resume_after_the_client_dies_computes_no_stored_trial_again(cluster, tmp_path, how):
    log_dir, out = tmp_path / "log", tmp_path / "s.zarr"
    log_dir.mkdir()
    n = 16
    cfg = write_study(
        tmp_path / "s.toml",
        f'[study]\ntrial = "labrram.montecarlo:logged_trial"\ntrials = {n}\nseed = 7\nchunk = 2\nworkers = 2\n'
        f'[params]\nlog_dir = "{log_dir.as_posix()}"\ndelay = 0.15\n',
    )
    cmd = [sys.executable, "-m", "labrram.cli", "montecarlo", str(cfg), "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        stored = 0
        while stored < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            try:
                stored = int(load_study(out)[1].sum())
            except Exception:  # not created yet, or caught mid-write
                pass
        assert 4 <= stored < n, f"the study should be midway, {stored} of {n} stored"
        if how == "sigkill-group":
            os.killpg(proc.pid, signal.SIGKILL)  # the client and its local cluster, without warning
            proc.communicate(timeout=30)
        else:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: pending tasks cancelled, cluster closed
            err = proc.communicate(timeout=30)[1]
            assert proc.returncode == 130 and "--resume" in err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 15
    while _live_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _live_members(proc.pid), "worker processes of the killed client linger"

    done_first = set(np.flatnonzero(load_study(out)[1]).tolist())
    assert 0 < len(done_first) < n
    before = set(os.listdir(log_dir))
    # resumed on the existing cluster: which workers compute a trial does not change its result
    second = subprocess.run(cmd + ["--resume", "--json", "--scheduler", cluster.scheduler_address], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    recomputed = [int(name.split("-")[1]) for name in set(os.listdir(log_dir)) - before]
    assert len(recomputed) == len(set(recomputed))  # each trial once in the resumed run
    assert set(recomputed).isdisjoint(done_first)  # no stored trial computed again
    assert set(recomputed) | done_first == set(range(n))
    assert summary["done"] == n and summary["computed"] == len(recomputed)
    results, done, _ = load_study(out)
    assert done.all()
    expected = run_study("labrram.montecarlo:logged_trial", n, {"log_dir": str(tmp_path), "delay": 0.0}, seed=7, backend="serial")
    assert np.array_equal(results["value"], expected["value"]) and np.array_equal(results["index"], np.arange(n))
