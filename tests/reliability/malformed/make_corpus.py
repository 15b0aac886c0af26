"""Regenerate the malformed-input corpus of tests/reliability/test_malformed.py.

    python tests/reliability/malformed/make_corpus.py

Writes stations/*.toml, calibrations/*.json, targets/*.npy, studies/*.toml, stores/*.zarr and cases.json (each
input with the entry point that takes it and a fragment of the error it must get). The corpus
is committed; this script documents how the binary files were made.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

GOOD_STATION = """\
[station]
name = "corpus"

[limits]
max_voltage = 3.0

[instruments.board]
driver = "labrram_board"
address = "labrram://default/board"

[instruments.smu]
driver = "keithley2400"
address = "GPIB0::24::INSTR"
visa_library = "@labrram"

[crossbar]
board = "board"
smu = "smu"

[simulation]
bench = "default"
"""

STATIONS = {  # name -> (text, expected fragment)
    "syntax.toml": ("[limits\nmax_voltage = 3\n", "not valid TOML"),
    "unknown_table.toml": ("[limitz]\nmax_voltage = 3\n", "unknown table"),
    "negative_limit.toml": ("[limits]\nmax_voltage = -3\n", "max_voltage must be a positive finite number"),
    "string_limit.toml": ('[limits]\nmax_voltage = "3 V"\n', "max_voltage must be a number"),
    "unknown_limit.toml": ("[limits]\nmax_volts = 3\n", "unknown limit"),
    "width_order.toml": ("[limits]\nmin_pulse_width = 1e-3\nmax_pulse_width = 1e-6\n", "min_pulse_width exceeds max_pulse_width"),
    "budget.toml": ("[limits]\nmax_pulses_per_device = 2.5\n", "max_pulses_per_device must be a whole number"),
    "station_name.toml": ("[station]\nname = 3\n", "station.name must be a string"),
    "no_driver.toml": ('[instruments.board]\naddress = "labrram://default/board"\n', "'driver' is required"),
    "unknown_driver.toml": ('[instruments.smu]\ndriver = "keithley9999"\naddress = "GPIB0::24::INSTR"\n', "unknown driver"),
    "bad_address.toml": ('[instruments.smu]\ndriver = "keithley2400"\naddress = "my keithley"\n', "neither a VISA resource name"),
    "bad_timeout.toml": ('[instruments.smu]\ndriver = "keithley2400"\naddress = "GPIB0::24::INSTR"\ntimeout = -1\n', "timeout must be a positive number"),
    "bad_retries.toml": ('[instruments.smu]\ndriver = "keithley2400"\naddress = "GPIB0::24::INSTR"\nretries = 100\n', "retries must be an integer in 0..20"),
    "bad_option.toml": ('[instruments.smu]\ndriver = "keithley2600"\naddress = "GPIB0::26::INSTR"\noptions = { chanel = "a" }\n', "['chanel'] not accepted by driver"),
    "option_clash.toml": ('[instruments.smu]\ndriver = "keithley2400"\naddress = "GPIB0::24::INSTR"\noptions = { timeout = 3 }\n', "belong in [instruments.smu] itself"),
    "instrument_key.toml": ('[instruments.smu]\ndriver = "keithley2400"\naddress = "GPIB0::24::INSTR"\nbaud = 9600\n', "unknown key(s) 'baud'"),
    "crossbar_board.toml": ('[instruments.smu]\ndriver = "keithley2400"\naddress = "GPIB0::24::INSTR"\n[crossbar]\nboard = "nope"\n', "names no instrument"),
    "crossbar_key.toml": (GOOD_STATION.replace('smu = "smu"\n', 'smu = "smu"\nread_volts = 0.1\n'), "unknown key(s) 'read_volts' (did you mean 'read_voltage'?)"),
    "crossbar_read_voltage.toml": (GOOD_STATION.replace('smu = "smu"\n', 'smu = "smu"\nread_voltage = 5.0\n'), "read_voltage 5 V must be non-zero and within max_voltage"),
    "crossbar_zero_read.toml": (GOOD_STATION.replace('smu = "smu"\n', 'smu = "smu"\nread_voltage = 0\n'), "read_voltage 0 V must be non-zero"),
    "crossbar_compliance.toml": (GOOD_STATION.replace('smu = "smu"\n', 'smu = "smu"\nsmu_compliance = 1.0\n'), "smu_compliance 1 A must be positive and within max_current"),
    "crossbar_string.toml": (GOOD_STATION.replace('smu = "smu"\n', 'smu = "smu"\nread_gate = "high"\n'), "read_gate must be a finite number"),
    "sim_rows.toml": (GOOD_STATION + "rows = 0\n", "rows must be in 1..4096"),
    "sim_huge.toml": (GOOD_STATION + "rows = 100000\n", "rows must be in 1..4096"),
    "sim_kind.toml": (GOOD_STATION + 'kind = "dram"\n', "kind must be one of"),
    "sim_seed.toml": (GOOD_STATION + "seed = -1\n", "seed must be >= 0"),
    "sim_float_seed.toml": (GOOD_STATION + "seed = 1.5\n", "seed must be an integer"),
    "sim_bench_name.toml": (GOOD_STATION.replace('bench = "default"', 'bench = "../etc"'), "bench must be a name"),
    "sim_unknown_key.toml": (GOOD_STATION + "size = 3\n", "unknown key(s) 'size'"),
    "sim_state_pcm.toml": (GOOD_STATION + 'kind = "pcm"\nstate = "chip-state"\n', "reram chips only"),
    "sim_fault_kind.toml": (GOOD_STATION + "[simulation.faults]\nmeltdown = { at = 1 }\n", "unknown fault kind 'meltdown'"),
    "sim_fault_trigger.toml": (GOOD_STATION + "[simulation.faults]\ntimeout = { }\n", "exactly one trigger"),
    "sim_fault_rate.toml": (GOOD_STATION + "[simulation.faults]\ngarble = { rate = 2 }\n", "rate must be a probability"),
    "binary.toml": (b"\x80\x81\xfe\xff[limits]\x00\x9c", "not a text (UTF-8) TOML file"),
    # typos and mix-ups that used to pass silently (each would have meant a default, or another instrument)
    "station_key.toml": ('[station]\nnmae = "lab 3"\n', "unknown key(s) 'nmae' (did you mean 'name'?)"),
    "sim_key_typo.toml": (GOOD_STATION + "sede = 3\n", "unknown key(s) 'sede' (did you mean 'seed'?)"),
    "instrument_key_typo.toml": ('[instruments.smu]\ndriver = "keithley2400"\naddress = "GPIB0::24::INSTR"\ntimout = 3\n', "'timout' (did you mean 'timeout'?)"),
    "smu_as_board.toml": (GOOD_STATION.replace('board = "board"\nsmu = "smu"', 'board = "smu"\nsmu = "smu"'), "board = 'smu' is a 'keithley2400' instrument, not a crossbar board"),
    "board_as_smu.toml": (GOOD_STATION.replace('board = "board"\nsmu = "smu"', 'board = "board"\nsmu = "board"'), "smu = 'board' is a 'labrram_board' instrument, not a source-measure unit"),
    "read_beyond_board.toml": (GOOD_STATION.replace("max_voltage = 3.0", "max_voltage = 3.0").replace('smu = "smu"\n', 'smu = "smu"\nread_voltage = 2.0\n'), "read_voltage 2 V is beyond the 'labrram_board' board's range"),
    "bench_name_typo.toml": (GOOD_STATION.replace('address = "labrram://default/board"', 'address = "labrram://defualt/board"'), "names the simulated bench 'defualt', but [simulation] bench is 'default'"),
    "visa_bench_typo.toml": (GOOD_STATION.replace('visa_library = "@labrram"', 'visa_library = "lab2@labrram"'), "visa_library names the simulated bench 'lab2'"),
    "fault_instrument.toml": (GOOD_STATION + '[simulation.faults]\ntimeout = { rate = 0.1, instrument = "k2401" }\n', "instrument 'k2401' is not on the simulated bench"),
    "fault_rule_key.toml": (GOOD_STATION + "[simulation.faults]\ntimeout = { rate = 0.1, mach = \":PULS\" }\n", "unknown key(s) ['mach']"),
    "newline_address.toml": ('[station]\nname = "x"\n[instruments.smu]\ndriver = "keithley2400"\naddress = "GPIB0::24::INSTR\\n*RST"\n', "holds a control character"),
}



REF = "labrram.montecarlo:example_trial"
STUDIES = {  # name -> (text, expected fragment)
    "syntax.toml": ("[study\ntrial = 1\n", "not valid TOML"),
    "no_study.toml": ("[params]\nsize = 2\n", "missing [study] table"),
    "no_trial.toml": ("[study]\ntrials = 3\n", "missing key 'trial'"),
    "no_trials.toml": (f'[study]\ntrial = "{REF}"\n', "missing key 'trials'"),
    "trials_string.toml": (f'[study]\ntrial = "{REF}"\ntrials = "ten"\n', "trials must be an integer, got a string"),
    "trials_zero.toml": (f'[study]\ntrial = "{REF}"\ntrials = 0\n', "trials must be in 1..100000000"),
    "trials_huge.toml": (f'[study]\ntrial = "{REF}"\ntrials = 1000000000000\n', "trials must be in 1..100000000"),
    "trials_overflow.toml": (f'[study]\ntrial = "{REF}"\ntrials = 9223372036854775807\n', "trials must be in 1..100000000"),
    "chunk_huge.toml": (f'[study]\ntrial = "{REF}"\ntrials = 3\nchunk = 4611686018427387904\n', "chunk must be in 1..1000000"),
    "workers_bool.toml": (f'[study]\ntrial = "{REF}"\ntrials = 3\nworkers = true\n', "workers must be an integer"),
    "workers_many.toml": (f'[study]\ntrial = "{REF}"\ntrials = 3\nworkers = 100000\n', "workers must be in 1..1024"),
    "seed_negative.toml": (f'[study]\ntrial = "{REF}"\ntrials = 3\nseed = -1\n', "seed must be in 0..4294967295"),
    "unknown_key.toml": (f'[study]\ntrial = "{REF}"\ntrials = 3\nsed = 1\n', "unknown key 'sed'"),
    "unknown_table.toml": (f'[study]\ntrial = "{REF}"\ntrials = 3\n[parms]\nsize = 2\n', "unknown table or key 'parms'"),
    "builtins_exec.toml": ('[study]\ntrial = "builtins:exec"\ntrials = 3\n[params]\nsource = "import os"\n', "'builtins' is not named (nothing was imported)"),
    "os_system.toml": ('[study]\ntrial = "os:system"\ntrials = 3\n[params]\ncommand = "true"\n', "'os' is not named"),
    "subprocess.toml": ('[study]\ntrial = "subprocess:run"\ntrials = 3\n', "'subprocess' is not named"),
    "side_effect_import.toml": ('[study]\ntrial = "antigravity:fly"\ntrials = 3\n', "'antigravity' is not named"),
    "bad_reference.toml": ('[study]\ntrial = "labrram.montecarlo"\ntrials = 3\n', "trial reference must be 'module:function'"),
    "missing_function.toml": ('[study]\ntrial = "labrram.montecarlo:no_such_trial"\ntrials = 3\n', "has no callable 'no_such_trial'"),
    "bad_module_list.toml": (f'[study]\ntrial = "{REF}"\ntrials = 3\nmodules = ["not a module"]\n', "modules must be a list of module names"),
    "bad_param.toml": (f'[study]\ntrial = "{REF}"\ntrials = 3\n[params]\nsise = 2\n', "unexpected keyword argument 'sise'"),
    "date_param.toml": (f'[study]\ntrial = "{REF}"\ntrials = 3\n[params]\nsize = 1979-05-27\n', "dates and times"),
    "backend.toml": (f'[study]\ntrial = "{REF}"\ntrials = 3\nbackend = "spark"\n', "backend must be one of"),
    "scheduler.toml": (f'[study]\ntrial = "{REF}"\ntrials = 3\nscheduler = "10.0.0.5:8786"\n', "tcp://HOST:PORT"),
    "deep.toml": ("[study]\ntrial = " + "[" * 300 + "]" * 300 + "\ntrials = 3\n", "nested"),
    "binary.toml": (b"\xff\xfe[study]\x00", "not a text (UTF-8) TOML file"),
}


def cal(_kind: str = "reram", **changes):
    doc = json.loads((HERE.parents[2] / "calibration_data" / f"{_kind}.json").read_text())
    for path, value in changes.items():
        keys = path.split("__")
        node = doc
        for k in keys[:-1]:
            node = node[k]
        if value is ...:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return json.dumps(doc)


CALIBRATIONS = {
    "not_json.json": ('{"kind": "reram", model: 1', "not valid JSON"),
    "array.json": ("[1, 2, 3]", "a calibration file is a JSON object"),
    "no_format.json": ('{"kind": "reram"}', "not a labrram calibration file"),
    "future_format.json": (cal(labrram_calibration=99), "calibration format 99"),
    "missing_model.json": (cal(model=...), "missing 'model'"),
    "unknown_kind.json": (cal(kind="dram"), "unknown device kind 'dram'"),
    "nan_param.json": (cal(model__a=float("nan")), "model.a is not finite"),
    "huge_param.json": (cal(model__a=1e400), "model.a is not finite"),
    "string_param.json": (cal(model__a="big"), "model:"),
    "unknown_param.json": (cal(model__zeta=1.0), "unknown ReRAM model parameters"),
    "negative_noise.json": (cal(model__read_noise_rel=-0.1), "model.read_noise_rel = -0.1 is outside its physical range"),
    "unit_slip.json": (cal(model__a=160.0), "model.a = 160 is outside its physical range"),
    "bad_transistor.json": (cal(model__transistor={"v_th": 1.0, "k": 1e-4, "beta": 2}), "model:"),
    "bad_estimate.json": (cal(estimates__a=3), "estimates.a must be"),
    "bad_n_devices.json": (cal(n_devices=-5), "n_devices must be a non-negative integer"),
    "binary.json": (b"\xff\xfe{\x00\x80", "not a text (UTF-8) JSON file"),
    # files that used to be accepted and used to program
    "missing_param.json": (cal(model__read_noise_rel=...), "model lacks parameter(s) ['read_noise_rel']"),
    "bool_format.json": (cal(labrram_calibration=True), "calibration format True"),
    "relax_one_siemens.json": (cal(model__relax_mean=1.0), "model.relax_mean = 1 is outside its physical range"),
    "negative_threshold.json": (cal(model__transistor={"v_th": -0.5, "k": 1e-4}), "model.transistor.v_th = -0.5 is outside its physical range"),
    "missing_transistor_k.json": (cal(model__transistor={"v_th": 1.0}), "model.transistor must give 'v_th' and 'k'"),
    "pcm_gmax_unit_slip.json": (cal("pcm", model__g_max=25.0), "model.g_max = 25 is outside its physical range"),
    "pcm_negative_drift.json": (cal("pcm", model__nu_mu_min=-0.1), "nu_mu_min must be finite and >= 0"),
    "pcm_missing.json": (cal("pcm", model__q_s_exp=...), "model lacks parameter(s) ['q_s_exp']"),
    "passive_window.json": (cal("passive", model__g_min=2e-4), "g_min (0.0002) must be below g_max"),
    "passive_threshold.json": (cal("passive", model__v_set=-1.0), "v_set must be > 0"),
    "passive_nonlinearity.json": (cal("passive", model__a=3000.0), "model.a = 3000 is outside its physical range"),
    "passive_disturb.json": (cal("passive", model__disturb_v0=50.0), "model.disturb_v0 = 50 is outside its physical range"),
    "pcm_noise.json": (cal("pcm", model__q_s_exp=40.0), "model.q_s_exp = 40 is outside its physical range"),
    # numbers given as text, null or a bool (they were converted, or failed later with a traceback)
    "text_threshold.json": (cal(model__transistor={"v_th": "1.0", "k": 1e-4}), "model.transistor.v_th must be a number, got '1.0'"),
    "null_threshold.json": (cal(model__transistor={"v_th": None, "k": 1e-4}), "model.transistor.v_th must be a number, got None"),
    "bool_param.json": (cal(model__a=True), "model.a must be a number, got True"),
    "pcm_text_gmax.json": (cal("pcm", model__g_max="1e-6"), "model.g_max must be a number, got '1e-6'"),
}


class _Unpickled:
    """If this is ever unpickled, a directory appears in the working directory."""

    def __reduce__(self):
        import os

        return (os.makedirs, ("labrram-was-unpickled",))


def npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def header_only(shape, dtype="<f8") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return b"\x93NUMPY\x01\x00" + buf.getvalue()[8:] if buf.getvalue()[:6] != b"\x93NUMPY" else buf.getvalue()


def targets() -> dict[str, tuple[bytes, str]]:
    ok = np.full((4, 4), 100e-6)
    t_nan = np.full((4, 4), np.nan)
    t_neg, t_inf, t_far = ok.copy(), ok.copy(), ok.copy()
    t_neg[1, 1], t_inf[2, 2], t_far[3, 3] = -1e-6, np.inf, 5e-3
    full = npy_bytes(np.full((16, 16), 100e-6))
    import zipfile
    import io

    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as z:
        z.writestr("targets.npy", npy_bytes(ok))
    return {
        "object.npy": (npy_bytes(np.array([[{"a": 1}, None]], dtype=object)), "object or structured array"),
        "pickle.npy": (pickle.dumps(_Unpickled()), "is a pickle"),
        "pickled_array.npy": (pickle.dumps(np.full((4, 4), 1e-4)), "is a pickle"),
        "npz_as_npy.npy": (zbuf.getvalue(), "zip archive"),
        "text.npy": (b"1e-4,2e-4\n3e-4,4e-4\n", "not a .npy file"),
        "empty.npy": (b"", "is empty"),
        "truncated.npy": (full[: len(full) // 2], "is truncated"),
        "trailing.npy": (npy_bytes(ok) + b"\x00" * 16, "bytes after its data"),
        "bomb.npy": (header_only((10**6, 10**6)), "more than the"),
        "overflow_shape.npy": (header_only((2**32, 2**32)), "declares 147573952589676412928 bytes"),
        "negative_shape.npy": (header_only((-4, 4)), "corrupt .npy header"),
        "bad_header.npy": (b"\x93NUMPY\x01\x00\x20\x00{'descr': 'bogus', oops}" + b" " * 8 + b"\n", "corrupt .npy header"),
        "version9.npy": (b"\x93NUMPY\x09\x00" + b"\x00" * 32, "unsupported .npy format version"),
        "complex.npy": (npy_bytes(ok.astype(complex)), "complex128 values"),
        "strings.npy": (npy_bytes(np.full((4, 4), "1e-4")), "<U4 values"),
        "bool.npy": (npy_bytes(np.ones((4, 4), bool)), "bool values"),
        "datetime.npy": (npy_bytes(np.zeros((4, 4), "datetime64[s]")), "datetime64[s] values"),
        "structured.npy": (npy_bytes(np.zeros((4, 4), [("g", "f8"), ("s", "f8")])), "object or structured array"),
        "three_d.npy": (npy_bytes(np.full((2, 4, 4), 1e-4)), "3-D array"),
        "wrong_shape.npy": (npy_bytes(ok), "have shape (4, 4), the array is (128, 128)"),
        "nan_only.npy": (npy_bytes(t_nan), "every target is NaN"),
        "negative.npy": (npy_bytes(t_neg), "negative"),
        "infinite.npy": (npy_bytes(t_inf), "infinite"),
        "out_of_range.npy": (npy_bytes(t_far), "outside the reachable range"),
    }


def stores(root: Path) -> dict[str, str]:
    """Damaged and foreign run stores; returns name -> expected fragment (entry: report and resume).
    (``../format2/`` keeps two runs written by labrram 0.1, run format 2, for the upgrade path;
    they are not regenerated.)"""
    from labrram import sim
    from labrram.calibration.files import default_calibration
    from labrram.protocols.single_shot import OneShotSettings, single_shot
    from labrram.station import load_station
    from labrram.store import RunStore

    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    out: dict[str, str] = {}
    (root / "plain_file.zarr").write_text("not a store\n")
    out["plain_file.zarr"] = "a file, not a run store"
    (root / "empty_dir.zarr").mkdir()
    (root / "empty_dir.zarr" / ".keep").write_text("")
    out["empty_dir.zarr"] = "not a readable zarr group"

    def group(name: str, **attrs):
        import zarr

        g = zarr.open_group(store=str(root / name), mode="w", zarr_format=3)
        g.attrs.update(attrs)
        return g

    group("no_format.zarr", kind="program")
    out["no_format.zarr"] = "not a labrram run"
    group("future_format.zarr", labrram_format=99, kind="program")
    out["future_format.zarr"] = "run format 99 is newer than this labrram reads"
    group("old_format.zarr", labrram_format=0, kind="program")
    out["old_format.zarr"] = "run format 0 is older than this labrram reads"
    group("string_format.zarr", labrram_format="1", kind="program")
    out["string_format.zarr"] = "is not a format version"
    group("corrupt_metadata.zarr", labrram_format=1, kind="program")
    (root / "corrupt_metadata.zarr" / "zarr.json").write_text('{"zarr_format": 3, "node_type": "gr')
    out["corrupt_metadata.zarr"] = "not a readable zarr group"

    read = RunStore.create(root / "read_run.zarr", "read")
    read.write("conductance", np.full((4, 4), 1e-5), ("row", "col"), "S")
    out["read_run.zarr"] = "read"

    targets = np.full((4, 4), 100e-6)
    model = default_calibration("reram").model
    sim.configure_bench("corpus", rows=4, cols=4)
    names = ("complete.zarr", "truncated_chunk.zarr", "missing_log.zarr", "no_record.zarr", "record_list.zarr", "record_counts.zarr",
             "pending_garbage.zarr", "unknown_plan.zarr", "bad_params.zarr", "other_chip.zarr")  # fmt: skip
    with load_station().with_simulation(bench="corpus", rows=4, cols=4).connect() as st:
        for name in names:
            single_shot(st.crossbar, targets, model, OneShotSettings(chunk=8), out=root / name)
    out["complete.zarr"] = "already complete"

    def damage(name: str, **attrs) -> RunStore:
        store = RunStore.open(root / name, mode="r+")
        store.update_attrs(status="interrupted", **attrs)  # resumable, were it not damaged
        return store

    for name in names[1:]:
        damage(name)
    chunk = next((root / "truncated_chunk.zarr" / "steps" / "c").rglob("*"))
    while chunk.is_dir():
        chunk = next(chunk.iterdir())
    chunk.write_bytes(chunk.read_bytes()[:7])
    out["truncated_chunk.zarr"] = "the run's record is damaged"
    shutil.rmtree(root / "missing_log.zarr" / "log")
    out["missing_log.zarr"] = "no 'log' array"
    record = RunStore.open(root / "no_record.zarr").attrs["journal"]
    damage("no_record.zarr", journal=None)
    out["no_record.zarr"] = "no commit record"
    damage("record_list.zarr", journal=[1, 2, 3])
    out["record_list.zarr"] = "no commit record"
    damage("record_counts.zarr", journal={**record, "log": 10**9})
    out["record_counts.zarr"] = "the commit record says 1000000000 log"
    damage("pending_garbage.zarr", journal={**record, "pending": {"op": "ZAP", "devices": "zz"}})
    out["pending_garbage.zarr"] = "malformed pending batch"
    damage("unknown_plan.zarr", plan="zap")
    out["unknown_plan.zarr"] = "unknown plan 'zap'"
    damage("bad_params.zarr", plan_params={"settings": {"chunk": "many"}})
    out["bad_params.zarr"] = "stored parameters of plan 'single-shot' are not usable"
    damage("other_chip.zarr", chip="labrram,XB-1T1R-4x4,SN0/ANOTHER,1.0")
    out["other_chip.zarr"] = "the run was on chip"
    return out


def main() -> None:
    cases: dict[str, list] = {"stations": [], "calibrations": [], "targets": [], "stores": [], "studies": []}
    for folder, table in (("stations", STATIONS), ("calibrations", CALIBRATIONS), ("targets", targets()), ("studies", STUDIES)):
        d = HERE / folder
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
        for name, (content, expected) in table.items():
            (d / name).write_bytes(content if isinstance(content, bytes) else content.encode())
            cases[folder].append([name, expected])
    for name, expected in stores(HERE / "stores").items():
        cases["stores"].append([name, expected])
    (HERE / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
