"""A corpus of malformed inputs (tests/reliability/malformed/, made by make_corpus.py): each gets a
clear error naming the problem — exit code 2 and one line from the CLI, no traceback — and
nothing reaches the hardware (the emulators' received messages and the chip's pulse log)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labrram import sim
from labrram.calibration.files import CalibrationError, load_calibration
from labrram.cli import main
from labrram.station import StationError, load_station
from labrram.store import RunStore, StoreError

CORPUS = Path(__file__).parent / "malformed"
CASES = json.loads((CORPUS / "cases.json").read_text())
#: what an instrument may receive while a bad input is refused: queries (the array size) and
#: the safe state the station leaves every instrument in when it closes
SAFE = (b":ROUT:OPEN", b":OUTP OFF")


@pytest.fixture(scope="module")
def default_bench():
    b = sim.configure_bench("default")
    yield b
    b.shutdown()


class Watch:
    """The default bench, with what it had received when the test began."""

    def __init__(self, bench) -> None:
        self.bench = bench
        self.pulses = len(bench.chip.pulse_log)
        self.received = {name: inst.received for name, inst in bench.instruments.items()}


@pytest.fixture
def bench(default_bench):
    if sim.get_bench("default") is not default_bench:  # another test rebuilt it
        default_bench = sim.configure_bench("default")
    return Watch(default_bench)


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def assert_one_line_error(code: int, err: str, expected: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error:")
    assert expected in lines[0], (expected, lines[0])


def assert_nothing_sent(watch: Watch, at_all: bool = False) -> None:
    """No pulse reached the chip and no instrument received a command that changes anything
    (``at_all``: nothing at all) since the test began."""
    bench = watch.bench
    assert len(bench.chip.pulse_log) == watch.pulses
    for name, inst in bench.instruments.items():
        new = inst.received - watch.received[name]
        if at_all:
            assert new == 0, (name, list(inst.last_received)[-new:])
        assert new <= inst.last_received.maxlen
        for message in list(inst.last_received)[len(inst.last_received) - new :]:
            assert message.rstrip().endswith(b"?") or message.startswith(SAFE), (name, message)


@pytest.mark.parametrize("name, expected", CASES["stations"], ids=[c[0] for c in CASES["stations"]])
def test_station_files(bench, capsys, name, expected):
    path = CORPUS / "stations" / name
    with pytest.raises(StationError) as info:
        load_station(path)
    assert expected in str(info.value) and str(path) in str(info.value)
    code, err = cli(capsys, "info", "--station", path)
    assert_one_line_error(code, err, expected)
    assert_nothing_sent(bench, at_all=True)


@pytest.mark.parametrize("name, expected", CASES["calibrations"], ids=[c[0] for c in CASES["calibrations"]])
def test_calibration_files(bench, capsys, tmp_path, name, expected):
    path = CORPUS / "calibrations" / name
    with pytest.raises(CalibrationError) as info:
        load_calibration(path)
    assert expected in str(info.value)
    code, err = cli(capsys, "program", "--calibration", path, "--targets", "constant:1e-4", "--out", tmp_path / "run.zarr")
    assert_one_line_error(code, err, expected)
    assert not (tmp_path / "run.zarr").exists()
    assert_nothing_sent(bench, at_all=True)


@pytest.mark.parametrize("name, expected", CASES["targets"], ids=[c[0] for c in CASES["targets"]])
def test_target_files(bench, capsys, tmp_path, monkeypatch, name, expected):
    monkeypatch.chdir(tmp_path)  # a pickle that got unpickled would leave a directory here
    code, err = cli(capsys, "program", "--protocol", "single-shot", "--targets", CORPUS / "targets" / name, "--out", tmp_path / "run.zarr")
    assert_one_line_error(code, err, expected)
    assert not (tmp_path / "run.zarr").exists()
    assert not (tmp_path / "labrram-was-unpickled").exists()
    assert_nothing_sent(bench)
    # the same file as sigma of a stochastic-SET run is refused the same way
    if name not in ("nan_only.npy", "negative.npy", "infinite.npy", "out_of_range.npy", "wrong_shape.npy"):
        code, err = cli(capsys, "program", "--protocol", "stochastic-set", "--targets", "constant:1e-4", "--sigma", CORPUS / "targets" / name, "--out", tmp_path / "s.zarr")
        assert code == 2 and "sigma" in err and not (tmp_path / "labrram-was-unpickled").exists()


#: stores that the report cannot read either (the others are readable, only not resumable)
REPORT_REFUSES = ("plain_file.zarr", "empty_dir.zarr", "no_format.zarr", "future_format.zarr", "old_format.zarr", "string_format.zarr",
                  "corrupt_metadata.zarr", "read_run.zarr", "missing_log.zarr")  # fmt: skip


@pytest.mark.parametrize("name, expected", CASES["stores"], ids=[c[0] for c in CASES["stores"]])
def test_run_stores(bench, capsys, tmp_path, name, expected):
    src = CORPUS / "stores" / name
    path = tmp_path / name
    (shutil.copytree if src.is_dir() else shutil.copy)(src, path)
    code, err = cli(capsys, "program", "--resume", "--out", path)
    assert_one_line_error(code, err, expected)
    if name in REPORT_REFUSES:
        code, err = cli(capsys, "report", path, "--out", tmp_path / "rep")
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    if "format" in name or name in ("plain_file.zarr", "empty_dir.zarr", "corrupt_metadata.zarr", "no_format.zarr"):
        with pytest.raises(StoreError, match=expected.split(" is ")[0] if "format" in name else expected):
            RunStore.open(path)
    assert_nothing_sent(bench)


# --- bad argument lists -----------------------------------------------------------------------------
ARGS = [
    ([], "the following arguments are required: command"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["program", "--out"], "expected one argument"),
    (["program", "--protocol", "fast", "--out", "{tmp}/r.zarr"], "invalid choice: 'fast'"),
    (["program", "--out", "{tmp}/r.zarr"], "--targets is required"),
    (["program", "--targets", "spiral:1:2", "--out", "{tmp}/r.zarr"], "unknown targets 'spiral:1:2'"),
    (["program", "--targets", "uniform:abc:1", "--out", "{tmp}/r.zarr"], "bad numbers in targets pattern"),
    (["program", "--targets", "uniform:2e-4:1e-4", "--out", "{tmp}/r.zarr"], "LO must not exceed HI"),
    (["program", "--targets", "constant:nan", "--out", "{tmp}/r.zarr"], "must be finite"),
    (["program", "--targets", "constant:-1e-4", "--out", "{tmp}/r.zarr"], "negative"),
    (["program", "--targets", "constant:1", "--out", "{tmp}/r.zarr"], "outside the reachable range"),
    (["program", "--targets", "{tmp}/missing.npy", "--out", "{tmp}/r.zarr"], "No such file"),
    (["program", "--resume", "--targets", "constant:1e-4", "--out", "{tmp}/r.zarr"], "cannot be combined with --resume"),
    (["program", "--resume", "--out", "{tmp}/missing.zarr"], "no such run store"),
    (["program", "--seed", "-3", "--targets", "constant:1e-4", "--out", "{tmp}/r.zarr"], "--seed: must be >= 0"),
    (["program", "--seed", "x", "--targets", "constant:1e-4", "--out", "{tmp}/r.zarr"], "expected an integer"),
    (["program", "--protocol", "stochastic-set", "--sigma=-1e-6", "--targets", "constant:1e-4", "--out", "{tmp}/r.zarr"], "every sigma of a programmed device must be a positive"),
    (["program", "--protocol", "stochastic-set", "--sigma", "wide", "--targets", "constant:1e-4", "--out", "{tmp}/r.zarr"], "sigma must be 'calibrated', a number (S) or FILE.npy"),
    (["program", "--calibration", "{tmp}/missing.json", "--targets", "constant:1e-4", "--out", "{tmp}/r.zarr"], "cannot read calibration file"),
    (["program", "--station", "{tmp}/missing.toml", "--targets", "constant:1e-4", "--out", "{tmp}/r.zarr"], "cannot read station file"),
    (["characterize", "--devices", "0", "--out", "{tmp}/c.zarr"], "--devices: must be >= 1"),
    (["characterize", "--cycles", "-2", "--out", "{tmp}/c.zarr"], "--cycles: must be >= 1"),
    (["characterize", "--array", "0x0", "--out", "{tmp}/c.zarr"], "rows must be in 1..4096"),
    (["characterize", "--array", "99999x2", "--out", "{tmp}/c.zarr"], "rows must be in 1..4096"),
    (["characterize", "--array", "big", "--out", "{tmp}/c.zarr"], "--array must look like 32x32"),
    (["characterize", "--kind", "dram", "--out", "{tmp}/c.zarr"], "invalid choice: 'dram'"),
    (["characterize", "--kind", "pcm", "--cycles", "3", "--out", "{tmp}/c.zarr"], "PCMCharacterization has no setting(s) ['cycles']"),
    (["calibrate", "{tmp}/nothing.zarr", "--out", "{tmp}/x.json"], "no such run store"),
    (["calibrate", "{tmp}/nothing.zarr", "--out", "{tmp}/x.json", "--bootstrap", "1"], "--bootstrap: must be >= 2"),
    (["read", "--out", "{tmp}"], "already exists"),
    (["info", "--station", "{tmp}"], "cannot read station file"),
    (["info", "--jsn"], "unrecognized arguments: --jsn"),
    (["report", "{tmp}/missing.zarr"], "no such run store"),
    (["program", "--kind", "dram", "--targets", "constant:1e-4", "--out", "{tmp}/r.zarr"], "invalid choice: 'dram'"),
    (["program", "--array", "8x", "--targets", "constant:1e-4", "--out", "{tmp}/r.zarr"], "--array must look like 32x32"),
    (["program", "--array", "0x4", "--targets", "constant:1e-4", "--out", "{tmp}/r.zarr"], "rows must be in 1..4096"),
    (["program", "--resume", "--kind", "pcm", "--out", "{tmp}/r.zarr"], "--kind and --array cannot be combined with --resume"),
    (["program", "--kind", "pcm", "--array", "8x8", "--protocol", "single-shot", "--targets", "constant:5e-6", "--out", "{tmp}/r.zarr"], "programs reram chips"),
    (["program", "--targets", "gradient:1e-4", "--out", "{tmp}/r.zarr"], "unknown targets 'gradient:1e-4'"),
    (["characterize", "--resume", "--devices", "3", "--out", "{tmp}/c.zarr"], "cannot be combined with --resume"),
    (["characterize", "--resume", "--out", "{tmp}/missing.zarr"], "no such run store"),
    (["montecarlo", "{tmp}/none.toml"], "the following arguments are required: --out"),
    (["calibrate", "{tmp}/nothing.zarr"], "the following arguments are required: --out"),
    (["report"], "the following arguments are required: RUN.zarr"),
    (["read", "--out"], "expected one argument"),
]


@pytest.mark.parametrize("argv, expected", ARGS, ids=[" ".join(a[0][:3]) or "nothing" for a in ARGS])
def test_bad_arguments(bench, capsys, tmp_path, argv, expected):
    code, err = cli(capsys, *(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert_one_line_error(code, err, expected)
    assert not (tmp_path / "r.zarr").exists() and not (tmp_path / "c.zarr").exists()
    assert_nothing_sent(bench)


@pytest.mark.parametrize("name", ["complete.zarr", "interrupted.zarr"])
def test_runs_written_by_labrram_0_1_are_upgraded_read_and_never_resumed(bench, capsys, tmp_path, name):
    """Run format 2 (labrram 0.1: per-batch state, progress.json beside the group): read as it is,
    upgraded in place when opened for writing (the progress record moves into the group, the
    log is trimmed and labelled), reported; an interrupted one is refused by resume with the
    reason, since it kept no per-step results to replay."""
    path = tmp_path / name
    shutil.copytree(CORPUS / "format2" / name, path)
    assert RunStore.open(path).attrs["labrram_format"] == 2  # read-only: as it is
    code, err = cli(capsys, "program", "--resume", "--out", path)
    if name == "complete.zarr":
        assert_one_line_error(code, err, "already complete")
    else:
        assert_one_line_error(code, err, "written by labrram 0.1 (run format 2), whose runs cannot be resumed")
        store = RunStore.open(path)
        assert store.attrs["labrram_format"] == 3 and not (path / "progress.json").exists()
        assert store.attrs["progress_v2"]["n_log"] == store.read("log").shape[0]
    assert_nothing_sent(bench)
    pytest.importorskip("matplotlib")
    code, err = cli(capsys, "report", path, "--out", tmp_path / "rep", "--json")
    assert code == 0, err


@pytest.fixture
def specials(tmp_path):
    """A FIFO, a device and a directory where a file belongs."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return {"fifo": fifo, "device": Path("/dev/zero"), "directory": tmp_path}


@pytest.mark.parametrize("special", ["fifo", "device", "directory"])
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["info", "--station", "{f}"], "cannot read station file"),
        (["program", "--calibration", "{f}", "--targets", "constant:1e-4", "--out", "{tmp}/r.zarr"], "cannot read calibration file"),
        (["program", "--targets", "{f}.npy", "--out", "{tmp}/r.zarr"], "cannot read targets file"),
        (["montecarlo", "{f}", "--out", "{tmp}/s.zarr"], "cannot read study file"),
    ],
    ids=["station", "calibration", "targets", "study"],
)
def test_special_files_are_refused_at_once(bench, capsys, tmp_path, specials, special, argv, expected):
    """A FIFO (which would block for ever), a device (/dev/zero: endless) or a directory given as
    any file is refused at once, before anything is read or sent."""
    import os

    target = specials[special]
    if "{f}.npy" in argv:  # a targets file is recognised by its suffix: give the special file one
        link = tmp_path / "special.npy"
        if not link.exists():
            os.symlink(target, link)
        target = link
    code, err = cli(capsys, *(a.replace("{f}.npy", str(target)).replace("{f}", str(target)).replace("{tmp}", str(tmp_path)) for a in argv))
    assert_one_line_error(code, err, expected)
    assert_nothing_sent(bench)


@pytest.mark.parametrize("name, expected", CASES["studies"], ids=[c[0] for c in CASES["studies"]])
def test_study_files(bench, capsys, tmp_path, monkeypatch, name, expected):
    """Study files: refused with the file and the problem on one line, nothing imported that the
    file did not name, no store written, nothing sent."""
    import sys

    monkeypatch.chdir(tmp_path)
    before = set(sys.modules)
    code, err = cli(capsys, "montecarlo", CORPUS / "studies" / name, "--out", tmp_path / "s.zarr")
    assert_one_line_error(code, err, expected)
    assert str(CORPUS / "studies" / name) in err
    assert not (tmp_path / "s.zarr").exists()
    assert not {m for m in set(sys.modules) - before if m.split(".")[0] in ("antigravity", "subprocess")}
    assert_nothing_sent(bench, at_all=True)


def test_a_store_from_another_chip_resumes_only_when_told(bench, capsys, tmp_path):
    path = tmp_path / "other_chip.zarr"
    shutil.copytree(CORPUS / "stores" / "other_chip.zarr", path)
    code, err = cli(capsys, "program", "--resume", "--out", path)
    assert_one_line_error(code, err, "the run was on chip")
    assert_nothing_sent(bench)
    from labrram import sim
    from labrram.station import load_station

    sim.configure_bench("corpus", rows=4, cols=4)
    station = tmp_path / "s.toml"
    station.write_text((__import__("importlib.resources").resources.files("labrram").joinpath("stations", "default.toml").read_text())
                       .replace("labrram://default/", "labrram://corpus/").replace('"@labrram"', '"corpus@labrram"')
                       .replace('bench = "default"', 'bench = "corpus"').replace("rows = 128", "rows = 4").replace("cols = 128", "cols = 4"))  # fmt: skip
    assert load_station(station).simulation.rows == 4
    code, err = cli(capsys, "program", "--resume", "--station", station, "--out", path)
    assert_one_line_error(code, err, "the run was on chip")
    code = main(["program", "--resume", "--other-chip", "--station", str(station), "--out", str(path)])
    assert code == 0, capsys.readouterr().err
    assert RunStore.open(path).attrs["chips"][-1].startswith("labrram,XB-1T1R-4x4")


@pytest.mark.parametrize("change, expected", [
    ({'kind = "reram"': 'kind = "pcm"'}, "the run was on a 'reram' array; this station's board carries a 'pcm' array"),
    ({"rows = 4": "rows = 8"}, "the run was on a 4x4 array; this station's board has 8x4"),
])  # fmt: skip
def test_a_store_never_resumes_on_another_kind_or_size_of_array_even_when_told(bench, capsys, tmp_path, change, expected):
    path = tmp_path / "other_chip.zarr"
    shutil.copytree(CORPUS / "stores" / "other_chip.zarr", path)
    name = f"corpus-{len(expected)}"  # a bench of its own for each case
    text = (__import__("importlib.resources").resources.files("labrram").joinpath("stations", "default.toml").read_text()
            .replace("labrram://default/", f"labrram://{name}/").replace('"@labrram"', f'"{name}@labrram"')
            .replace('bench = "default"', f'bench = "{name}"').replace("rows = 128", "rows = 4").replace("cols = 128", "cols = 4"))  # fmt: skip
    for old, new in change.items():
        text = text.replace(old, new)
    station = tmp_path / "s.toml"
    station.write_text(text)
    before = RunStore.open(path).attrs
    code, err = cli(capsys, "program", "--resume", "--other-chip", "--station", station, "--out", path)
    assert_one_line_error(code, err, expected)
    assert RunStore.open(path).attrs == before  # nothing recorded, nothing sent to the other array


def test_a_run_resumed_through_another_station_file_says_so(capsys, tmp_path, caplog):
    from labrram import sim

    sim.configure_bench("renamed", rows=4, cols=4, seed=3)
    text = (__import__("importlib.resources").resources.files("labrram").joinpath("stations", "default.toml").read_text()
            .replace("labrram://default/", "labrram://renamed/").replace('"@labrram"', '"renamed@labrram"')
            .replace('bench = "default"', 'bench = "renamed"').replace("rows = 128", "rows = 4").replace("cols = 128", "cols = 4"))  # fmt: skip
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    first.write_text(text)
    second.write_text(text.replace('name = "simulated-bench"', 'name = "bench-B"'))
    path = tmp_path / "run.zarr"
    from labrram import api
    from labrram.protocols.engine import Engine

    calls = {"n": 0}
    real = Engine._step

    def stop_after_two(self, *a, **k):  # the run stops (as on Ctrl-C) after its second step
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Engine, "_step", stop_after_two)
        with pytest.raises(KeyboardInterrupt):
            api.program("uniform:50e-6:100e-6", first, out=path)
    with caplog.at_level("WARNING", logger="labrram"):
        api.resume(path, second)
    attrs = RunStore.open(path).attrs
    assert attrs["status"] == "complete" and attrs["stations"] == ["simulated-bench", "bench-B"]
    assert "resumed through station 'bench-B'; the run began through 'simulated-bench'" in caplog.text


@pytest.mark.parametrize("change, expected", [
    ({"stauts": "running"}, "unknown key(s) 'stauts' (did you mean 'status'?)"),
    ({"array_shape": [4, "4"]}, "attribute 'array_shape' must be [rows, cols], two integers"),
    ({"array_shape": [4, 0]}, "attribute 'array_shape' must have 1 to 65536 rows and columns"),
    ({"chip": 7}, "attribute 'chip' must be str, got int"),
    ({"device_kind": "mram"}, "attribute 'device_kind' must be one of ['reram', 'pcm', 'passive']"),
    ({"status": True}, "attribute 'status' must be one of"),
    ({"bench_time": -1.0}, "attribute 'bench_time' must be a finite number >= 0"),
    ({"chips": ["a", 3]}, "attribute 'chips' must be a list of strings"),
    ({"plan_params": [1, 2]}, "attribute 'plan_params' must be dict, got list"),
])  # fmt: skip
def test_run_store_attributes_are_checked_against_their_schema(bench, capsys, tmp_path, change, expected):
    """A store edited by hand (or by another tool) is refused on resume, naming the store and
    the attribute, before anything is rebuilt from it or sent."""
    import zarr

    path = tmp_path / "edited.zarr"
    shutil.copytree(CORPUS / "stores" / "other_chip.zarr", path)
    group = zarr.open_group(path, mode="r+")
    group.attrs.update(change)
    code, err = cli(capsys, "program", "--resume", "--other-chip", "--out", path)
    assert_one_line_error(code, err, expected)
    assert str(path) in err
    assert_nothing_sent(bench)


def test_a_lab_keeps_its_own_metadata_in_the_user_attribute(tmp_path):
    import zarr

    from labrram.protocols.journal import Journal

    path = tmp_path / "mine.zarr"
    shutil.copytree(CORPUS / "stores" / "other_chip.zarr", path)
    zarr.open_group(path, mode="r+").attrs.update({"user": {"operator": "A. N. Other", "wafer": "W12"}})
    assert Journal.open(path).attrs["user"]["wafer"] == "W12"


def test_every_attribute_labrram_writes_is_in_the_schema():
    """Every ``attrs={...}`` key the code base passes to a run store is one the schema knows."""
    import re

    from labrram.schema import RUN_ATTRS

    root = Path(__file__).resolve().parents[2]
    keys = set()
    for path in [*root.joinpath("labrram").rglob("*.py"), *root.joinpath("protocols").rglob("*.py")]:
        for block in re.findall(r"attrs\s*=\s*\{([^{}]*)", path.read_text()):
            keys |= set(re.findall(r'"([a-z_0-9]+)":', block))
    assert keys and keys <= set(RUN_ATTRS), sorted(keys - set(RUN_ATTRS))
