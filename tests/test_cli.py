"""The labrram command on the default simulated station."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labrram.cli import main
from labrram.store import RunStore


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_info_json(bench, capsys):
    code, out, _ = run(capsys, "info", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["simulated"] is True
    assert summary["array"] == [128, 128]
    assert "MODEL 2400" in summary["instruments"]["smu"]["idn"]
    assert summary["instruments"]["board"]["idn"].startswith("labrram,XB-1T1R")


def test_info_table(bench, capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0 and "simulated-bench" in out and "keithley2400" in out


def test_read_json_matches_the_chip_within_read_noise(bench, capsys, tmp_path):
    out_path = tmp_path / "run.zarr"
    code, out, _ = run(capsys, "read", "--json", "--out", str(out_path))
    assert code == 0
    summary = json.loads(out)
    assert summary["shape"] == [128, 128]
    assert 0 < summary["projected_bench_time"] < 0.5
    store = RunStore.open(out_path)
    g = store.read("conductance")
    assert store.dims("conductance") == ("row", "col")
    assert store.array_attrs("conductance")["units"] == "S"
    truth = bench.chip._conductance(*np.indices((128, 128)))
    rel = (g - truth) / truth
    noise = bench.chip.reveal_truth().read_noise_rel
    assert abs(np.std(rel) / noise - 1) < 0.1  # the residual is the read noise, nothing more
    assert np.max(np.abs(rel)) < 6 * noise
    assert store.attrs["kind"] == "read" and store.attrs["station"]["name"] == "simulated-bench"


def test_read_refuses_to_overwrite(bench, capsys, tmp_path):
    out_path = tmp_path / "run.zarr"
    out_path.mkdir()
    code, _, err = run(capsys, "read", "--out", str(out_path))
    assert code == 2 and "already exists" in err


def test_bad_station_is_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits]\nmax_voltage = -3\n")
    code, _, err = run(capsys, "info", "--station", str(bad))
    assert code == 2 and "max_voltage" in err


def test_console_script_and_import_is_light(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", "import sys, labrram, labrram.crossbar, labrram.station, labrram.cli; print('torch' in sys.modules)"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0 and out.stdout.strip() == "False"


def test_characterize_then_calibrate_with_plots(capsys, tmp_path):
    run_path, cal_path, plots = tmp_path / "c.zarr", tmp_path / "c.json", tmp_path / "plots"
    code, out, _ = run(capsys, "characterize", "--kind", "reram", "--devices", "32", "--cycles", "3", "--out", str(run_path), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["devices"] == 32 and summary["projected_bench_time"] > 60
    code, out, _ = run(capsys, "calibrate", str(run_path), "--out", str(cal_path), "--plots", str(plots), "--bootstrap", "20", "--json")
    assert code == 0
    summary = json.loads(out)
    assert set(summary["estimates"]) >= {"a", "b", "c", "d", "k", "v_th"}
    assert len(summary["plots"]) == 3 and all((plots / p.split("/")[-1]).exists() for p in summary["plots"])
    from labrram.calibration.files import load_calibration

    cal = load_calibration(cal_path)
    assert cal.kind == "reram" and cal.provenance["data"] == str(run_path)
    assert cal.provenance["routine"]["n_devices"] == 32
    assert "RR" in cal.provenance["chip"]


def test_calibrate_refuses_other_runs(bench, capsys, tmp_path):
    run_path = tmp_path / "read.zarr"
    assert run(capsys, "read", "--out", str(run_path))[0] == 0
    code, _, err = run(capsys, "calibrate", str(run_path), "--out", str(tmp_path / "x.json"))
    assert code == 2 and "not a characterization" in err
    code, _, err = run(capsys, "calibrate", str(tmp_path / "nothing.zarr"), "--out", str(tmp_path / "x.json"))
    assert code == 2 and "no such run store" in err


def test_cycles_only_for_reram(capsys, tmp_path):
    code, _, err = run(capsys, "characterize", "--kind", "pcm", "--cycles", "3", "--out", str(tmp_path / "p.zarr"))
    assert code == 2 and "cycles" in err


def test_program_then_report(capsys, tmp_path):
    from labrram import sim

    sim.configure_bench("default", seed=0)
    run_path = tmp_path / "p.zarr"
    code, out, _ = run(capsys, "program", "--protocol", "write-verify", "--targets", "checkerboard:60e-6:150e-6", "--out", str(run_path), "--json")
    assert code == 0
    s = json.loads(out)
    assert s["converged_fraction"] > 0.995 and s["bench_time"] < 1.5 * s["physical_limit"] + 0.05
    code, out, _ = run(capsys, "report", str(run_path), "--out", str(tmp_path / "rep"), "--json")
    assert code == 0
    rep = json.loads(out)
    assert rep["status"] == "complete" and (tmp_path / "rep" / "program.png").exists()
    assert rep["pulses_logged"] == round(rep["pulses_per_device"] * rep["devices"])
    # a finished run cannot be resumed, an existing one not overwritten
    assert run(capsys, "program", "--resume", "--out", str(run_path))[0] == 2
    code, _, err = run(capsys, "program", "--targets", "constant:1e-4", "--out", str(run_path))
    assert code == 2 and "already exists" in err and "--resume" in err


def test_report_without_matplotlib_says_what_to_install(capsys, tmp_path, monkeypatch):
    import sys

    run_path = tmp_path / "p.zarr"
    assert run(capsys, "program", "--targets", "constant:1e-4", "--array", "8x8", "--out", str(run_path))[0] == 0
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    code, _, err = run(capsys, "report", str(run_path), "--out", str(tmp_path / "rep"))
    assert code == 1 and "plots need matplotlib" in err and "labrram[plot]" in err and "Traceback" not in err


def test_program_refuses_bad_targets_before_anything(capsys, tmp_path):
    from labrram import sim

    bench = sim.configure_bench("default", seed=0)
    bad = tmp_path / "t.npy"
    t = np.full((128, 128), 1e-4)
    t[3, 3] = np.inf
    np.save(bad, t)
    code, _, err = run(capsys, "program", "--targets", str(bad), "--out", str(tmp_path / "p.zarr"))
    assert code == 2 and "infinite" in err
    assert not (tmp_path / "p.zarr").exists()
    np.save(bad, np.full((4, 4), 1e-4))
    code, _, err = run(capsys, "program", "--targets", str(bad), "--out", str(tmp_path / "q.zarr"))
    assert code == 2 and "shape" in err
    code, _, err = run(capsys, "program", "--targets", "spiral:1:2", "--out", str(tmp_path / "r.zarr"))
    assert code == 2 and "pattern" in err
    obj = tmp_path / "o.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    code, _, err = run(capsys, "program", "--targets", str(obj), "--out", str(tmp_path / "s.zarr"))
    assert code == 2 and "cannot load" in err
    assert len(bench.chip.pulse_log) == 0


INTERRUPTED = """\
[station]
name = "interrupted"

[simulation]
bench = "{bench}"
kind = "{kind}"
rows = {n}
cols = {n}
seed = 3

[simulation.faults]
interrupt = {{ at = {at}, match = ":PULS", signal = "SIGINT" }}

[instruments.board]
driver = "labrram_board"
address = "labrram://{bench}/board"

[instruments.smu]
driver = "keithley2400"
address = "GPIB0::24::INSTR"
visa_library = "{bench}@labrram"

[crossbar]
board = "board"
smu = "smu"
"""


def _interrupted_station(tmp_path, kind: str, n: int, at: int):
    from labrram import sim

    bench = f"cli-{kind}-{n}-{at}"
    path = tmp_path / f"{bench}.toml"
    path.write_text(INTERRUPTED.format(bench=bench, kind=kind, n=n, at=at))
    from labrram.station import load_station

    faults = load_station(path).simulation.faults  # configured as the station asks, so it is kept
    options = {"chip_options": {"nominal": __import__("labrram").default_calibration("passive").model}} if kind == "passive" else {}
    return path, sim.configure_bench(bench, seed=3, kind=kind, rows=n, cols=n, faults=faults, **options)


def _audited(bench, out, n):
    from labrram.protocols.journal import read_log
    from labrram.reliability import audit

    found = audit(bench.chip.pulse_log.records, read_log(RunStore.open(out)), (n, n))
    assert found.ok and found.uncertain == 0


@pytest.mark.parametrize("kind, targets", [("pcm", "uniform:2e-6:20e-6"), ("passive", "sparse.npy")])
def test_program_a_pcm_or_passive_station_then_resume_after_ctrl_c(capsys, tmp_path, kind, targets):
    """``labrram program`` on PCM (the SET/RESET ladders) and passive (tuning under V/2) stations:
    Ctrl-C mid-run (exit 130, outputs off, the resume command printed), then ``--resume``."""
    station, bench = _interrupted_station(tmp_path, kind, 16, 6)
    if targets == "sparse.npy":  # passive tuning: a third of the devices (dense targets converge poorly)
        rng = np.random.default_rng(0)
        t = np.where(rng.random((16, 16)) < 0.3, rng.uniform(10e-6, 80e-6, (16, 16)), np.nan)
        targets = str(tmp_path / "sparse.npy")
        np.save(targets, t)
    out = tmp_path / "run.zarr"
    code, _, err = run(capsys, "program", "--station", str(station), "--targets", targets, "--out", str(out), "--json")
    assert code == 130 and "outputs are off" in err and f"labrram program --resume --out {out}" in err
    assert bench.outputs_on() == [] and RunStore.open(out).attrs["status"] == "interrupted"
    code, stdout, err = run(capsys, "program", "--station", str(station), "--resume", "--out", str(out), "--json")
    assert code == 0, err
    s = json.loads(stdout)
    assert s["protocol"] == {"pcm": "write-verify-pcm", "passive": "tune-passive"}[kind]
    assert s["devices"] == int(np.sum(~np.isnan(RunStore.open(out).read("targets"))))
    assert s["converged_fraction"] > 0.9 and s["settled_batches"] == 1
    _audited(bench, out, 16)
    assert RunStore.open(out).attrs["device_kind"] == kind


def test_a_resume_in_a_process_whose_simulated_chip_is_fresh_is_refused_unless_told(capsys, tmp_path):
    """An in-memory simulated chip ends with its process: a new process would resume on a fresh
    chip under the same *IDN?."""
    from labrram import sim

    station, bench = _interrupted_station(tmp_path, "reram", 16, 6)
    out = tmp_path / "run.zarr"
    assert run(capsys, "program", "--station", str(station), "--targets", "uniform:50e-6:150e-6", "--out", str(out))[0] == 130
    sim.drop_benches()  # as a new process finds it
    code, _, err = run(capsys, "program", "--station", str(station), "--resume", "--out", str(out))
    assert code == 2 and "in-memory simulated chip" in err and "--other-chip" in err and "state folder" in err
    assert len(sim.get_bench("cli-reram-16-6").chip.pulse_log) == 0  # nothing sent
    calm = tmp_path / "calm.toml"  # the same station without its scripted Ctrl-C
    calm.write_text("\n".join(line for line in station.read_text().splitlines() if not line.startswith("interrupt")))
    code, _, err = run(capsys, "program", "--station", str(calm), "--resume", "--other-chip", "--out", str(out))
    assert code == 0, err


def test_ctrl_c_with_an_smu_that_could_not_be_made_safe_never_says_outputs_are_off(capsys, tmp_path):
    """The SMU is unplugged, then Ctrl-C: the shutdown failure is what the user reads, and the store keeps it."""
    from labrram import sim
    from labrram.station import load_station

    path = tmp_path / "lost.toml"
    path.write_text(INTERRUPTED.format(bench="cli-lost", kind="reram", n=8, at=5).replace(
        "[simulation.faults]\n", '[simulation.faults]\ndisappear = { at = 2, instrument = "k2400" }\n'))  # fmt: skip
    sim.configure_bench("cli-lost", seed=3, rows=8, cols=8, faults=load_station(path).simulation.faults)
    out = tmp_path / "lost.zarr"
    code, _, err = run(capsys, "program", "--station", str(path), "--targets", "uniform:50e-6:150e-6", "--out", str(out))
    assert code == 130 and "outputs are off" not in err
    assert "could not make every instrument safe" in err and "may still be sourcing" in err and "KeyboardInterrupt" in err
    assert RunStore.open(out).attrs["safe_state"].startswith("failed: ")


@pytest.mark.parametrize("kind, options", [("reram", ["--devices", "16", "--cycles", "2"]), ("pcm", ["--devices", "24"]), ("passive", ["--devices", "8"])])
def test_characterize_resume_for_every_kind(capsys, tmp_path, kind, options):
    station, bench = _interrupted_station(tmp_path, kind, 16, 4)
    out = tmp_path / "c.zarr"
    code, _, err = run(capsys, "characterize", "--station", str(station), "--kind", kind, *options, "--out", str(out))
    assert code == 130 and f"labrram characterize --resume --out {out}" in err
    code, stdout, err = run(capsys, "characterize", "--station", str(station), "--resume", "--out", str(out), "--json")
    assert code == 0, err
    assert json.loads(stdout)["kind"] == kind
    _audited(bench, out, 16)
    if kind != "pcm":  # (a PCM fit needs hundreds of devices: see the test below)
        code, _, err = run(capsys, "calibrate", str(out), "--out", str(tmp_path / "cal.json"), "--bootstrap", "5", "--json")
        assert code == 0, err


def test_calibrate_refuses_data_that_leave_parameters_undetermined(capsys, tmp_path):
    station, _ = _interrupted_station(tmp_path, "pcm", 16, 10**6)
    out = tmp_path / "c.zarr"
    assert run(capsys, "characterize", "--station", str(station), "--devices", "24", "--out", str(out))[0] == 0
    code, _, err = run(capsys, "calibrate", str(out), "--out", str(tmp_path / "cal.json"), "--bootstrap", "5")
    assert code == 2 and "undetermined" in err and "characterize more devices" in err
    assert not (tmp_path / "cal.json").exists()


def test_program_refuses_a_protocol_or_calibration_that_does_not_fit_the_chip(capsys, tmp_path):
    from labrram import sim

    bench = sim.configure_bench("default", seed=0)
    code, _, err = run(capsys, "program", "--kind", "pcm", "--array", "8x8", "--protocol", "single-shot", "--targets", "constant:5e-6", "--out", str(tmp_path / "a.zarr"))
    assert code == 2 and "programs reram chips" in err
    cal = tmp_path / "reram.json"
    cal.write_text((__import__("importlib.resources").resources.files("labrram.calibration_data") / "reram.json").read_text())
    code, _, err = run(capsys, "program", "--station", str(_interrupted_station(tmp_path, "pcm", 8, 99)[0]), "--calibration", str(cal),
                       "--targets", "constant:5e-6", "--out", str(tmp_path / "b.zarr"))  # fmt: skip
    assert code == 2 and "calibration is for 'reram' devices" in err and "'pcm' array" in err
    assert not (tmp_path / "a.zarr").exists() and not (tmp_path / "b.zarr").exists()
    assert len(bench.chip.pulse_log) == 0


def test_cli_holds_no_workflow():
    """Each command is parse -> one public call -> print: cli.py imports no plan, engine,
    journal, station or crossbar (the library does that work where Python users reach it)."""
    import ast
    from pathlib import Path

    import labrram.cli

    tree = ast.parse(Path(labrram.cli.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not {m for m in imported if m.split(".")[0] in ("protocols", "crossbar", "engine", "journal")}
    for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("cmd_")):
        calls = {c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
        assert not calls & {"Engine", "Journal", "run_plan", "load_station"}, fn.name


def test_user_text_is_printed_literally_never_as_markup(capsys, tmp_path):
    """A path or station name with ``[/x]`` or ``[bold]`` in it neither crashes the console nor
    changes what is printed."""
    from labrram import sim

    sim.configure_bench("default", seed=0)
    weird = tmp_path / "a[/x] [bold]b"
    weird.mkdir(parents=True)  # ("/" makes it two folders; the path still reads "a[/x] [bold]b")
    station = weird / "s[y].toml"
    station.write_text((__import__("importlib.resources").resources.files("labrram").joinpath("stations", "default.toml").read_text())
                       .replace('name = "simulated-bench"', 'name = "bench [/z] [red]x"'))  # fmt: skip
    code, out, err = run(capsys, "info", "--station", str(station))
    assert code == 0, err
    assert "bench [/z] [red]x" in out and str(station) in out.replace("\n", "")
    code, out, err = run(capsys, "read", "--station", str(station), "--out", str(weird / "r[/q].zarr"))
    assert code == 0, err
    assert str(weird / "r[/q].zarr") in out.replace("\n", "").replace(" ", "") or "r[/q].zarr" in out
    code, _, err = run(capsys, "info", "--station", str(weird / "missing [/x].toml"))
    assert code == 2 and "missing [/x].toml" in err


def test_an_smu_lost_mid_run_is_reported_not_a_traceback(capsys, tmp_path):
    """The SMU vanishes while the board programs: the job itself completes, the SMU cannot be
    made safe — one clear line naming it, exit code 1, and the run store says so too."""
    station, bench = _interrupted_station(tmp_path, "reram", 8, 10**6)
    text = station.read_text().replace('interrupt = { at = 1000000, match = ":PULS", signal = "SIGINT" }', 'disappear = { at = 2, instrument = "k2400" }')
    station.write_text(text)
    from labrram import sim
    from labrram.station import load_station

    sim.configure_bench(bench.name, seed=3, rows=8, cols=8, faults=load_station(station).simulation.faults)
    out = tmp_path / "run.zarr"
    code, _, err = run(capsys, "program", "--station", str(station), "--targets", "uniform:50e-6:150e-6", "--out", str(out))
    assert code == 1 and "Traceback" not in err, err
    line = " ".join(err.split())
    assert "could not make every instrument safe" in line and "smu (keithley2400 at GPIB0::24::INSTR)" in line and str(out) in line
    attrs = RunStore.open(out).attrs
    assert attrs["status"] == "complete" and attrs["safe_state"].startswith("failed: could not make every instrument safe")


def test_calibrate_warns_when_the_set_distribution_is_not_gaussian(capsys, tmp_path):
    from importlib import resources

    from labrram.calibration.files import load_calibration

    default = (resources.files("labrram") / "stations" / "default.toml").read_text()
    station = tmp_path / "lognormal.toml"
    station.write_text(
        default.replace('bench = "default"', 'bench = "cli-lognormal"\nset_distribution = "lognormal"')
        .replace("labrram://default/board", "labrram://cli-lognormal/board")
        .replace('visa_library = "@labrram"', 'visa_library = "cli-lognormal@labrram"')
    )
    run_path = tmp_path / "c.zarr"
    code, _, err = run(capsys, "characterize", "--station", str(station), "--kind", "reram", "--devices", "128", "--out", str(run_path), "--json")
    assert code == 0, err
    code, out, err = run(capsys, "calibrate", str(run_path), "--out", str(tmp_path / "auto.json"), "--bootstrap", "5")
    assert code == 0 and "warning: the SET conductance is not Gaussian" in err and "1.4 V" in err
    assert "programming uses the empirical model" in out
    assert load_calibration(tmp_path / "auto.json").model.set_family == "empirical"
    code, out, err = run(capsys, "calibrate", str(run_path), "--out", str(tmp_path / "g.json"), "--bootstrap", "5", "--family", "gaussian")
    assert code == 0 and "--family gaussian asked for it" in err
    assert load_calibration(tmp_path / "g.json").model.set_family == "gaussian"


TILES = """
[simulation]
bench = "cli-tiles"
rows = 8
cols = 8
arrays = 4

[instruments.board]
driver = "labrram_board"
address = "labrram://cli-tiles/board"

[crossbar]
board = "board"
array = 1
"""


def test_info_and_program_on_a_board_with_several_arrays(capsys, tmp_path):
    from labrram import sim

    station = tmp_path / "tiles.toml"
    station.write_text(TILES)
    code, out, _ = run(capsys, "info", "--station", str(station), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["arrays"] == 4 and summary["array_index"] == 1 and summary["array"] == [8, 8]
    chip_1 = sim.get_bench("cli-tiles").chips[1].info.serial
    assert summary["instruments"]["board"]["idn"].endswith(f"/{chip_1},1.0")  # the station's array named
    code, out, _ = run(capsys, "info", "--station", str(station))
    assert "array 1 of the 4 on the board" in out
    out_path = tmp_path / "run.zarr"
    code, out, err = run(capsys, "program", "--station", str(station), "--targets", "uniform:50e-6:150e-6",
                         "--out", str(out_path), "--array-index", "3", "--json")  # fmt: skip
    assert code == 0, err
    assert RunStore.open(out_path).attrs["array_index"] == 3
    assert [len(c.pulse_log) > 0 for c in sim.get_bench("cli-tiles").chips] == [False, False, False, True]
    code, _, err = run(capsys, "program", "--station", str(station), "--targets", "uniform:50e-6:150e-6",
                       "--out", str(tmp_path / "other.zarr"), "--array-index", "4")  # fmt: skip
    assert code == 2 and "array 4 is not on the board 'board', which carries 4 arrays" in err
    code, _, err = run(capsys, "program", "--station", str(station), "--targets", "uniform:50e-6:150e-6",
                       "--out", str(tmp_path / "neg.zarr"), "--array-index", "-1")  # fmt: skip
    assert code == 2 and "--array-index" in err


def test_program_takes_protocol_settings_by_name(capsys, tmp_path):
    from labrram import sim

    bench = sim.configure_bench("default", seed=0)
    out = tmp_path / "p.zarr"
    code, text, _ = run(capsys, "program", "--kind", "pcm", "--array", "8x8", "--targets", "constant:8e-6", "--setting", "reads=2",
                        "--setting", "half_width=0.5e-6", "--out", str(out), "--json")  # fmt: skip
    assert code == 0 and json.loads(text)["converged_fraction"] > 0.9
    stored = RunStore.open(out).attrs["plan_params"]["settings"]
    assert stored["reads"] == 2 and stored["half_width"] == 0.5e-6
    pulses = len(bench.chip.pulse_log)
    for bad, why in (("nope=1", "has no setting(s) ['nope']"), ("reads=two", "expected int"), ("reads=0", "reads must be"), ("reads", "KEY=VALUE"),
                     ("half_width=nan", "half_width must be a finite number"), ("half_width=1e9", "a window that judges nothing"),
                     ("dv_set=-0.1", "must be > 0"), ("g_range=1", "g_range must be two conductances")):  # fmt: skip
        code, _, err = run(capsys, "program", "--kind", "pcm", "--array", "8x8", "--targets", "constant:8e-6", "--setting", bad, "--out", str(tmp_path / "q.zarr"))
        assert code == 2 and why in err, (bad, err)
    for bad, why in (("gate_step=nan", "gate_step must be a finite number"), ("give_up=-1", "give_up must be >= 1"), ("guard=-100", "must be >= 0"),
                     ("pilot=5", "fractions in [0, 1)"), ("rereads=100000000", "rereads must be at most 64")):  # fmt: skip
        code, _, err = run(capsys, "program", "--array", "8x8", "--targets", "constant:8e-5", "--setting", bad, "--out", str(tmp_path / "q.zarr"))
        assert code == 2 and why in err, (bad, err)
    assert "half_width" in run(capsys, "program", "--kind", "pcm", "--array", "8x8", "--targets", "constant:8e-6", "--setting", "nope=1",
                               "--out", str(tmp_path / "q.zarr"))[2]  # the known names are listed  # fmt: skip
    assert not (tmp_path / "q.zarr").exists() and len(bench.chip.pulse_log) == pulses  # refused before any pulse
    code, _, err = run(capsys, "program", "--resume", "--setting", "reads=2", "--out", str(out))
    assert code == 2 and "--setting" in err


def test_protocol_settings_convert_text_by_the_field_type():
    from labrram.api import JobError, protocol_settings
    from labrram.protocols.write_verify import ReRAMWriteVerify
    from labrram.protocols.write_verify_pcm import PCMWriteVerify

    s = protocol_settings(PCMWriteVerify, {"reads": "4", "half_width": "1.5e-6", "g_range": "0.5e-6,25e-6", "max_iterations": 50})
    assert (s.reads, s.half_width, s.g_range, s.max_iterations) == (4, 1.5e-6, (0.5e-6, 25e-6), 50)
    assert protocol_settings(PCMWriteVerify) == PCMWriteVerify() and protocol_settings(PCMWriteVerify, s) is s
    assert protocol_settings(ReRAMWriteVerify, {"tolerance": "0.02", "policy": "ispp"}).tolerance == 0.02
    with pytest.raises(JobError, match="mapping"):
        protocol_settings(PCMWriteVerify, [("reads", 2)])
    with pytest.raises(JobError, match="expected float"):
        protocol_settings(PCMWriteVerify, {"half_width": "wide"})


def test_user_text_is_printed_as_typed(capsys, tmp_path):
    """Rich turns ':a:' into an emoji and '[red]' into markup unless told not to: a user's text
    (a pattern, a path) is echoed exactly."""
    code, _, err = run(capsys, "program", "--targets", "uniform:a:b", "--out", str(tmp_path / "x.zarr"))
    assert code == 2 and "'uniform:a:b'" in err
    code, _, err = run(capsys, "program", "--targets", "[red]x:smile:.npy", "--out", str(tmp_path / "x.zarr"))
    assert code == 2 and "[red]x:smile:.npy" in err


def test_bad_outputs_and_files_are_refused_before_the_work(capsys, tmp_path):
    import labrram
    from labrram.api import JobError

    mine = tmp_path / "mine.csv"
    mine.write_text("measured by hand\n")
    imported = tmp_path / "theirs.zarr"
    assert run(capsys, "import", "reram", str(Path(__file__).parent / "data" / "reram_measurements.csv"), "--out", str(imported))[0] == 0
    code, _, err = run(capsys, "calibrate", str(imported), "--out", str(mine))
    assert code == 2 and "already exists" in err and mine.read_text() == "measured by hand\n"  # never written over
    code, _, err = run(capsys, "calibrate", str(imported), "--out", str(tmp_path / "nowhere" / "cal.json"))
    assert code == 2 and "no folder" in err
    with pytest.raises(JobError, match="bootstrap must be an integer >= 2"):
        labrram.calibrate(imported, bootstrap=0)
    zipped = tmp_path / "g.npz"
    zipped.write_bytes(b"PK\x03\x04" + bytes(64))
    code, _, err = run(capsys, "import", "reram", str(zipped), "--out", str(tmp_path / "g.zarr"))
    assert code == 2 and "not a readable .npz" in err
    code, _, err = run(capsys, "serve", "--port", "65535", "--seconds", "1")
    assert code == 2 and "must lie in 1..65535" in err


def test_read_creates_its_store_before_it_measures(capsys, tmp_path, monkeypatch):
    from labrram.crossbar import Crossbar

    def never(self, *args, **kwargs):
        raise AssertionError("measured before the store could be written")

    monkeypatch.setattr(Crossbar, "read", never)
    (tmp_path / "a-file").write_text("")
    code, _, err = run(capsys, "read", "--out", str(tmp_path / "a-file" / "r.zarr"))  # a store that cannot be made
    assert code != 0 and "measured before" not in err


def test_a_characterization_too_large_to_hold_is_refused_before_anything(capsys, tmp_path):
    out = tmp_path / "c.zarr"
    code, _, err = run(capsys, "characterize", "--array", "16x16", "--cycles", "100000000", "--devices", "8", "--out", str(out))
    assert code == 2 and "SET readings" in err and not out.exists()


def test_seconds_must_be_finite_and_targets_files_are_known_in_any_case(capsys, tmp_path):
    code, _, err = run(capsys, "serve", "--seconds", "nan")
    assert code == 2 and "finite number of seconds" in err
    path = tmp_path / "FINE.NPY"
    with open(path, "wb") as fh:
        np.save(fh, np.full((4, 4), 1e-4))
    code, out, err = run(capsys, "program", "--targets", str(path), "--array", "4x4", "--out", str(tmp_path / "f.zarr"), "--json")
    assert code == 0, err


def test_an_error_is_one_line_when_stderr_is_not_a_terminal(tmp_path):
    """No progress bar (nor the blank line a transient one leaves) in a pipe or a log file."""
    proc = subprocess.run([sys.executable, "-m", "labrram.cli", "program", "--targets", "uniform:1:2", "--out", str(tmp_path / "q.zarr")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and proc.stderr.count("\n") == 1, proc.stderr
