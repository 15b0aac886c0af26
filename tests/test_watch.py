"""labrram watch without a browser: the follower of a growing store, the server, the CLI, the
faults a run records for it, and labrram report --html."""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import labrram
from labrram.cli import main
from labrram.follow import RunFollower, StudyFollower, follower
from labrram.live import WatchError, watch
from labrram.protocols import wal
from labrram.protocols.engine import simulate
from labrram.protocols.journal import program_outcome, read_log
from labrram.protocols.messages import Read
from labrram.protocols.plan import plan_from_store
from labrram.store import RunStore, StoreError

SHAPE = (24, 24)


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file of a store with its size and modification time (ns)."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


@pytest.fixture(scope="module")
def growing(tmp_path_factory):
    """A write-verify run followed from its own progress callback (the store read from disk as
    the run writes it), and copies of the store taken mid-run."""
    out = tmp_path_factory.mktemp("watch") / "run.zarr"
    copies = tmp_path_factory.mktemp("copies")
    seen: list[dict] = []
    state: dict = {}

    def tick(label: str, done: int, total: int) -> None:
        if not out.exists():
            return
        if "follower" not in state:
            state["follower"] = RunFollower(out)
        f = state["follower"]
        snap = f.poll()
        committed = read_log(RunStore.open(out))["step"].size  # what the store holds now, read whole
        seen.append({"snap": snap, "committed": committed, "n_log": f.n_log, "n_steps": f.n_steps, "achieved": f.achieved.copy()})
        if (out / wal.FILE_NAME).exists() and (out / wal.FILE_NAME).stat().st_size and "mid" not in state:
            state["mid"] = copies / f"mid{len(seen)}.zarr"
            shutil.copytree(out, state["mid"])

    result = labrram.program("uniform:40e-6:200e-6", array=SHAPE, out=out, progress=tick)
    return {"out": out, "seen": seen, "result": result, "follower": state["follower"], "mid": state.get("mid")}


def test_the_follower_reads_every_committed_row_as_the_run_goes(growing):
    seen = growing["seen"]
    assert len(seen) >= 5
    for s in seen:  # incremental reading ends where a whole read of the store ends
        assert s["n_log"] == s["committed"] == s["snap"]["pulses"]
    pulses = [s["snap"]["pulses"] for s in seen]
    assert pulses == sorted(pulses) and pulses[-1] > pulses[0]
    assert all(s["snap"]["status"] == "running" for s in seen)


def _read_backs(out: Path, upto: int | None = None) -> np.ndarray:
    """The last conductance read of each device after the first ``upto`` steps (all: None), from
    the whole finished store: pulses' own reads from the log, read steps' devices from the plan
    stepped through the stored results by ``simulate``."""
    store = RunStore.open(out)
    steps, values, log = store.read("steps"), store.read("values"), read_log(store)
    reads, k = {}, [0]

    def answer(msg):
        i = k[0]
        k[0] += 1
        v = values[int(steps[i, 3]) : int(steps[i, 3] + steps[i, 4])]
        if type(msg) is Read:
            reads[i] = (msg.rows, msg.cols, v)
        return msg.decode(v)

    shape = tuple(store.attrs["array_shape"])
    simulate(plan_from_store(store), shape, answer)
    expected = np.full(shape, np.nan)
    for i in range(steps.shape[0] if upto is None else upto):
        sel = (log["step"] == i) & np.isfinite(log["g_after"])
        expected[log["row"][sel].astype(int), log["col"][sel].astype(int)] = log["g_after"][sel]
        if i in reads:
            r, c, v = reads[i]
            ok = np.isfinite(v)
            expected[r[ok], c[ok]] = v[ok]
    return expected


def test_the_map_during_the_run_is_the_last_read_back_of_each_device(growing):
    seen = growing["seen"][len(growing["seen"]) // 2]
    assert seen["n_steps"] > 0
    np.testing.assert_array_equal(seen["achieved"], _read_backs(growing["out"], seen["n_steps"]))


def test_a_pcm_run_shows_its_verify_reads_as_it_goes(tmp_path):
    """PCM write-verify reads in steps of their own (its pulses carry no read): the map follows them."""
    out = tmp_path / "pcm.zarr"
    seen: list = []
    state: dict = {}

    def tick(label: str, done: int, total: int) -> None:
        if out.exists():
            f = state.setdefault("f", RunFollower(out))
            snap = f.poll()
            seen.append((snap["within_band"], f.n_steps, f.achieved.copy(), snap["tolerance"]))

    labrram.program("uniform:5e-6:20e-6", array=(16, 16), kind="pcm", out=out, progress=tick, settings={"half_width": 0.5e-6})
    assert seen and all(tol == [0.0, 0.5e-6] for *_, tol in seen)  # the PCM window, not the ReRAM default
    within, n_steps, achieved, _ = seen[len(seen) // 2]
    assert 0 < within < 256  # read-backs arrive while the run goes on
    np.testing.assert_array_equal(achieved, _read_backs(out, n_steps))
    assert np.all(np.isnan(read_log(RunStore.open(out))["g_after"]))  # none of it came from the pulse log


def test_a_finished_run_shows_the_stored_result(growing):
    f = growing["follower"]
    snap = f.poll()
    result = growing["result"]
    assert snap["status"] == "complete" and snap["final"] is True
    assert snap["within_band"] == int(result.converged.sum())
    assert snap["pulses"] == read_log(RunStore.open(growing["out"]))["step"].size
    assert sum(snap["pulse_histogram"]) == snap["devices"] == SHAPE[0] * SHAPE[1]
    assert np.dot(np.arange(len(snap["pulse_histogram"])), snap["pulse_histogram"]) == int(result.pulses.sum())
    assert snap["bench_time"] == pytest.approx(result.bench_time)
    log = read_log(RunStore.open(growing["out"]))
    set_steps = np.unique(log["step"][(log["kind"] == 0) | (log["kind"] == 2)])
    assert [b for b, _ in snap["convergence"]] == list(range(1, set_steps.size + 1))  # one point per SET batch
    last = _read_backs(growing["out"])  # the last read of each device: what the curve's last point counts
    t = result.targets
    inside = np.sum(np.abs(last - t) <= np.maximum(0.05 * t, 1e-6))
    assert snap["convergence"][-1][1] == pytest.approx(100 * inside / t.size, abs=1e-3)
    maps = f.maps()
    achieved = np.frombuffer(base64.b64decode(maps["achieved"]), "<f4").reshape(SHAPE)
    np.testing.assert_allclose(achieved, result.achieved, rtol=1e-6)
    assert np.frombuffer(base64.b64decode(maps["converged"]), "u1").sum() == result.converged.sum()
    # a follower opened on the finished store sees the same thing
    again = RunFollower(growing["out"]).poll()
    for key in ("pulses", "within_band", "pulse_histogram", "convergence", "sets", "resets"):
        assert again[key] == snap[key], key


def test_a_store_copied_mid_run_with_a_torn_log_record_reads_up_to_its_last_whole_record(growing, tmp_path):
    mid = growing["mid"]
    assert mid is not None, "no copy of the store was taken while its write-ahead log held records"
    whole = RunFollower(mid).poll()
    assert whole["status"] == "running" and whole["pulses"] > 0
    torn = tmp_path / "torn.zarr"
    shutil.copytree(mid, torn)
    log_file = torn / wal.FILE_NAME
    records, end = wal.read(log_file, (7, 8))
    assert records
    data = log_file.read_bytes()
    log_file.write_bytes(data[: end - 5])  # the last record cut short, as by a kill mid-write
    snap = RunFollower(torn).poll()
    assert snap["pulses"] == whole["pulses"] - records[-1].log.shape[0]


def test_watching_never_writes_to_the_store(growing):
    out = growing["out"]
    before = _tree(out)
    with watch(out, interval=0.01) as server:
        for rev in (-1, 0, 5):
            urllib.request.urlopen(f"{server.url}api/state?rev={rev}").read()
        urllib.request.urlopen(server.url).read()
    assert _tree(out) == before


def test_the_server_answers_json_and_the_page_needs_nothing_from_elsewhere(growing):
    with watch(growing["out"]) as server:
        assert server.url.startswith("http://127.0.0.1:")
        page = urllib.request.urlopen(server.url).read().decode()
        script = urllib.request.urlopen(server.url + "watch.js").read().decode()
        for text in (page, script):
            assert not re.search(r"https?://|//cdn|@import", text), "the page must load nothing from elsewhere"
        assert re.findall(r'src="([^"]+)"', page) == ["/watch.js"]
        state = json.loads(urllib.request.urlopen(server.url + "api/state").read())
        assert state["kind"] == "program" and state["maps"]["rows"] == SHAPE[0]
        again = json.loads(urllib.request.urlopen(f"{server.url}api/state?rev={state['rev']}").read())
        assert "maps" not in again  # unchanged maps are not sent again
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url + "nothing")
        assert missing.value.code == 404
        other_host = urllib.request.Request(server.url + "api/state", headers={"Host": f"evil.example:{server.port}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(other_host)
        assert refused.value.code == 403


def test_bad_input_gets_one_clear_line(growing, tmp_path, capsys):
    with pytest.raises(WatchError, match="no such run store"):
        watch(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(WatchError, match="not a readable zarr group|not a labrram run"):
        watch(tmp_path / "plain")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(WatchError, match=f"port {port} on 127.0.0.1 is in use"):
            watch(growing["out"], port=port)
        assert main(["watch", str(growing["out"]), "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert "in use" in err and len(err.strip().splitlines()) == 1
    assert main(["watch", str(tmp_path / "missing.zarr")]) == 2
    err = capsys.readouterr().err
    assert "no such run store" in err and len(err.strip().splitlines()) == 1


def test_the_cli_serves_for_the_seconds_asked(growing, capsys):
    assert main(["watch", str(growing["out"]), "--seconds", "0.3", "--json"]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["status"] == "complete" and summary["url"].startswith("http://127.0.0.1:")
    assert "watching" in out.err and summary["url"] in out.err


def test_a_read_store_is_refused(tmp_path, bench):
    labrram.read(out=tmp_path / "r.zarr")
    with pytest.raises(StoreError, match="'read' store"):
        follower(tmp_path / "r.zarr")


def test_a_monte_carlo_study_shows_trials_done_and_result_statistics(tmp_path):
    from labrram.montecarlo import load_study, run_study

    out = tmp_path / "study.zarr"
    run_study("labrram.montecarlo:example_trial", 12, {"size": 3}, seed=4, out=out, backend="serial", chunk=4)
    snap = StudyFollower(out).poll()
    results, done, _ = load_study(out)
    assert snap["done"] == snap["trials"] == 12 and snap["status"] == "complete"
    x = results["x"] if "x" in results else next(iter(results.values()))
    key = "x" if "x" in results else next(iter(results))
    assert snap["results"][key]["mean"] == pytest.approx(float(np.mean(x)))
    assert snap["results"][key]["max"] == pytest.approx(float(np.max(x)))
    # half done: the done flags say which trials count
    group = RunStore.open(out, mode="r+").group
    group["done"][6:] = False
    snap = follower(out).poll()
    assert snap["done"] == 6 and snap["results"][key]["mean"] == pytest.approx(float(np.mean(x[:6])))


def test_the_faults_a_run_recovered_from_are_in_its_store(tmp_path):
    from labrram.sim.faults import Fault, FaultPlan

    station = labrram.load_station().with_simulation(rows=16, cols=16, faults=FaultPlan([Fault("timeout", rate=0.2, count=20)], seed=3))
    out = tmp_path / "faulty.zarr"
    result = labrram.program("uniform:40e-6:200e-6", station, out=out)
    assert result.link_faults > 0
    stored = RunStore.open(out).attrs
    assert stored["faults_recovered"] == stored["journal"]["faults_recovered"] == result.link_faults
    assert RunFollower(out).poll()["faults_recovered"] == result.link_faults


def test_report_html_is_one_self_contained_file(growing, tmp_path, capsys):
    out_dir = tmp_path / "report"
    assert main(["report", str(growing["out"]), "--out", str(out_dir), "--html", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    page = Path(summary["html"]).read_text(encoding="utf-8")
    assert Path(summary["html"]).parent == out_dir and (out_dir / "program.png").exists()
    # no external reference of any kind: every src is a data URI, no link, script or URL
    assert not re.search(r"https?://|<link|<script|@import|url\(", page)
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    png = base64.b64decode(sources[0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == (out_dir / "program.png").read_bytes()
    outcome = program_outcome(RunStore.open(growing["out"]))
    devices = int(np.isfinite(outcome["targets"]).sum())
    assert f"{devices:,}" in page
    assert f"{summary['converged_fraction'] * 100:.2f} %" in page
    assert f"{summary['pulses_per_device']:.2f}" in page
    assert "write-verify" in page


def test_an_interrupted_run_shows_why_it_stopped(tmp_path):
    from labrram.sim.faults import Fault, FaultPlan

    station = labrram.load_station().with_simulation(rows=16, cols=16, faults=FaultPlan([Fault("disappear", at=40)], seed=1))
    out = tmp_path / "stopped.zarr"
    with pytest.raises(Exception):
        labrram.program("uniform:40e-6:200e-6", station, out=out)
    attrs = RunStore.open(out).attrs
    assert attrs["status"] == "interrupted"
    snap = RunFollower(out).poll()
    assert snap["status"] == "interrupted" and snap["reason"] == attrs["reason"] and snap["reason"]
    assert snap["final"] is False and snap["eta_wall"] is None and snap["pulses_per_second"] is None
    assert snap["pulses"] == read_log(RunStore.open(out))["step"].size
