"""Station files: the default, validation with clear messages, connect and shut down."""

import json
from dataclasses import replace

import pytest

from labrram.cells import Cells

from labrram.safety import SafeLimits
from labrram.station import StationError, load_station, parse_station, recorded_station

GOOD = """
[station]
name = "t"
[limits]
max_voltage = 2.5
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
"""


def test_default_station_is_the_simulated_bench():
    st = load_station()
    assert st.simulated and st.simulation.rows == 128
    assert st.instruments["smu"].driver == "keithley2400"
    assert st.limits == SafeLimits(max_voltage=3.0, max_gate_voltage=5.0, max_current=1e-3, max_pulse_width=1e-3, min_pulse_width=10e-9, max_energy=1e-6)


def test_parse_good_station():
    st = parse_station(GOOD, "good.toml")
    assert st.name == "t" and not st.simulated and st.limits.max_voltage == 2.5


@pytest.mark.parametrize(
    "text, message",
    [
        ("[station\n", "not valid TOML"),
        ("[bogus]\n", "unknown table"),
        ("[limits]\nmax_voltage = -1\n", "max_voltage must be a positive"),
        ("[limits]\nmax_voltage = '3 V'\n", "must be a number in SI units"),
        ("[limits]\nmax_volts = 3\n", "unknown limit"),
        ("[instruments.smu]\naddress = 'GPIB0::24::INSTR'\n", "'driver' is required"),
        ("[instruments.smu]\ndriver = 'keithley9999'\naddress = 'x'\n", "unknown driver"),
        ("[instruments.smu]\ndriver = 'keithley2400'\naddress = 'GPIB0::24::INSTR'\ntimeout = 0\n", "timeout"),
        ("[instruments.smu]\ndriver = 'keithley2400'\naddress = 'GPIB0::24::INSTR'\ncolour = 1\n", "unknown key"),
        ("[crossbar]\nboard = 'nothing'\n", "names no instrument"),
        ("[crossbar]\nread_voltage = 0.2\n", "needs 'board'"),
        ("[simulation]\nseed = 'x'\n", "seed must be an integer"),
        ("[simulation]\nplanet = 'mars'\n", "unknown key"),
    ],
)
def test_bad_stations_name_the_problem(text, message):
    with pytest.raises(StationError, match=message) as exc:
        parse_station(text, "bad.toml")
    assert "bad.toml" in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(StationError, match="cannot read station file"):
        load_station(tmp_path / "nope.toml")


def test_connect_identifies_and_closes(bench):
    with load_station().connect() as connected:
        assert "MODEL 2400" in connected.instruments["smu"].idn
        assert connected.crossbar.shape == (128, 128)
        assert connected.bench_time()["now"] > 0
    assert all(inst._closed for inst in connected.instruments.values())


def test_station_seed_configures_the_bench(tmp_path):
    from importlib import resources

    default = (resources.files("labrram") / "stations" / "default.toml").read_text()
    path = tmp_path / "seed7.toml"
    path.write_text(
        default.replace("seed = 0", "seed = 7")
        .replace('bench = "default"', 'bench = "s7"')
        .replace("labrram://default/board", "labrram://s7/board")
        .replace('visa_library = "@labrram"', 'visa_library = "s7@labrram"')
    )
    with load_station(path).connect() as connected:
        assert connected.bench.name == "s7" and connected.bench.config.seed == 7
        assert "RR000007" in connected.instruments["board"].idn


def test_with_simulation_retargets_every_instrument():
    st = load_station().with_simulation(bench="lab9", seed=4)
    assert st.instruments["board"].address == "labrram://lab9/board"
    assert st.instruments["smu"].visa_library == "lab9@labrram"
    with st.connect() as connected:
        assert connected.bench.name == "lab9"
        connected.crossbar.set(Cells.pairs([(0, 0)]), gate=2.0)
        assert len(connected.bench.chip.pulse_log) == 1


# --- [simulation] set_distribution ----------------------------------------------------------------
@pytest.mark.parametrize(
    "value, message",
    [
        ("'cauchy'", r"set_distribution must be one of \['gaussian', 'lognormal', 'skewed', 'heavy', 'empirical:FILE'\]"),
        ("3", "set_distribution must be a string"),
        ("'empirical'", 'needs its quantile table: "empirical:FILE"'),
        ("'empirical:'", "needs its quantile table"),
        ("'lognormal:2'", "set_distribution must be one of"),
        ("'empirical:missing.json'", "set_distribution: cannot read quantile table file .*missing.json: No such file"),
    ],
)
def test_bad_set_distributions_name_the_problem(value, message):
    with pytest.raises(StationError, match=message) as exc:
        parse_station(f"[simulation]\nset_distribution = {value}\n", "bad.toml")
    assert "bad.toml: [simulation]" in str(exc.value)


def test_set_distribution_is_for_reram_chips():
    with pytest.raises(StationError, match="shapes the SET of ReRAM chips; kind is 'pcm'"):
        parse_station("[simulation]\nkind = 'pcm'\nset_distribution = 'heavy'\n", "bad.toml")


def test_empirical_table_is_read_against_the_station_folder(tmp_path):
    import json

    import numpy as np

    (tmp_path / "shape.json").write_text(json.dumps({"gates": [1.4, 2.2], "probabilities": [0.1, 0.5, 0.9], "quantiles": [[1, 2, 5], [3, 4, 9]]}))
    path = tmp_path / "st.toml"
    path.write_text("[simulation]\nbench = 'shape'\nset_distribution = 'empirical:shape.json'\n")
    st = load_station(path)
    assert st.simulation.set_distribution == f"empirical:{tmp_path / 'shape.json'}"
    chip = st.simulated_bench().chip
    truth = chip.reveal_truth()
    assert truth.set_family == "empirical" and np.array_equal(truth.set_table.gates, [1.4, 2.2])
    (tmp_path / "bad.json").write_text(json.dumps({"gates": [1.4, 2.2], "probabilities": [0.1, 0.5], "quantiles": [[2, 1], [3, 4]]}))
    path.write_text("[simulation]\nset_distribution = 'empirical:bad.json'\n")
    with pytest.raises(StationError, match="bad.json: each gate's quantiles must not decrease"):
        load_station(path)
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    for name, why in (("/dev/zero", "not a regular file"), ("deep.json", "nested too deeply"), (str(tmp_path), "not a regular file|directory")):
        path.write_text(f"[simulation]\nset_distribution = 'empirical:{name}'\n")
        with pytest.raises(StationError, match=why):  # read as any user file: regular, bounded, UTF-8, shallow
            load_station(path)


def test_with_simulation_changes_the_chips_family():
    st = load_station().with_simulation(bench="fam", set_distribution="skewed")
    assert st.simulated_bench().chip.reveal_truth().set_family == "skewed"
    assert st.with_simulation(set_distribution="gaussian").simulated_bench().chip.reveal_truth().set_family == "gaussian"
    with pytest.raises(StationError, match="set_distribution must be one of"):
        st.with_simulation(set_distribution="uniform")


def test_a_recorded_station_rebuilds_its_simulated_chip_without_its_faults():
    st = load_station().with_simulation(bench="recorded", seed=3, rows=16, cols=24, set_distribution="heavy", level_spread="hfox-mlc",
                                        faults={"seed": 1, "interrupt": {"at": 50, "signal": "SIGINT"}})  # fmt: skip
    st = replace(st, limits=replace(st.limits, max_voltage=2.5)).with_crossbar(read_voltage=0.15)
    again = recorded_station(json.loads(json.dumps(st.to_dict())))  # as a run store keeps it
    assert again.simulation == replace(st.simulation, faults=None)  # scripted failures happened once
    assert again.limits == st.limits and again.crossbar == st.crossbar and again.instruments == st.instruments
    arc1 = load_station("arc1-simulated")
    assert recorded_station(arc1.to_dict()) == arc1  # a shipped station: its own instruments and options
    elsewhere = {**arc1.to_dict(), "source": "/lab/stations/my-arc1.toml"}
    with pytest.raises(StationError, match="whose simulated board is 'arc1'.*pass the station file"):
        recorded_station(elsewhere)
    assert recorded_station({**st.to_dict(), "simulation": None}) is None  # a real station is named, never guessed
    edited = st.to_dict()
    edited["limits"] = {**edited["limits"], "max_voltage": 1000.0, "max_pulses_per_device": 50}
    again = recorded_station(edited)  # a store edited by hand never loosens the base station's limits
    assert again.limits.max_voltage == load_station().limits.max_voltage and again.limits.max_pulses_per_device == 50


# --- several arrays on one board -----------------------------------------------------------------
MULTI = """
[simulation]
bench = "station-tiles"
rows = 8
cols = 8
arrays = {arrays}
[instruments.board]
driver = "labrram_board"
address = "labrram://station-tiles/board"
[crossbar]
board = "board"
{crossbar}
"""


@pytest.mark.parametrize(
    "arrays, crossbar, message",
    [
        (4, "array = 4", r"\[crossbar\]: array 4 is not on the simulated board, which carries 4 arrays"),
        (1, "array = 1", r"carries 1 array \(\[simulation\] arrays = 1\)"),
        (4, "array = -1", r"\[crossbar\]: array must be a whole number in 0..63"),
        (4, "array = 1.0", r"array must be a whole number"),
        (4, "array = true", r"array must be a whole number"),
        (4, 'array = "2"', r"array must be a whole number"),
        (4, "arrray = 2", r"unknown key\(s\) 'arrray' \(did you mean 'array'\?\)"),
        (0, "", r"\[simulation\]: arrays must be in 1..64"),
        (65, "", r"arrays must be in 1..64"),
        ('"4"', "", r"arrays must be an integer"),
    ],
)
def test_the_array_keys_are_checked_with_clear_messages(arrays, crossbar, message):
    with pytest.raises(StationError, match=message) as exc:
        parse_station(MULTI.format(arrays=arrays, crossbar=crossbar), "tiles.toml")
    assert "tiles.toml" in str(exc.value)


def test_an_arc_one_carries_one_array():
    with pytest.raises(StationError, match="an ArC ONE carries one array"):
        load_station("arc1-simulated").with_simulation(arrays=2)


def test_the_station_crossbar_addresses_its_array():
    st = parse_station(MULTI.format(arrays=3, crossbar="array = 2"), "tiles.toml")
    assert st.array_index == 2 and st.simulation.arrays == 3 and st.to_dict()["crossbar"]["array"] == 2
    assert st.with_crossbar(array=0).array_index == 0 and st.array_index == 2
    with pytest.raises(StationError, match="array 3 is not on the simulated board"):
        st.with_crossbar(array=3)
    with st.connect() as connected:
        assert connected.array_count() == 3 and connected.crossbar.array == 2
        connected.crossbar.set(Cells.pairs([[1, 1]]), gate=1.8)
        assert [len(c.pulse_log) for c in connected.bench.chips] == [0, 0, 1]
        with pytest.raises(StationError, match="array must be a whole number >= 0"):
            connected.crossbar_for(-1)


def test_a_hardware_station_array_is_checked_against_the_board_when_used(bench):
    """Without [simulation] the station cannot know the board's count: the crossbar checks it
    against ``:ARR:COUN?`` before any selection byte."""
    st = parse_station(GOOD + "array = 3\n", "real.toml")
    assert st.array_index == 3
    with st.connect() as connected:
        with pytest.raises(StationError, match="array 3 is not on the board 'board', which carries 1 array"):
            connected.crossbar.read()
        assert not any(w.startswith(b":ARR:SEL") for _, w in connected.instruments["board"].log)
