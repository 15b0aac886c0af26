"""The simulated ArC ONE: its station, plans through the engine on it, faults, and its serial
protocol served on a pseudo-terminal to the ArC ONE's own host library."""

import json

import numpy as np
import pytest

import labrram
from labrram.cli import main
from labrram.station import StationError, load_station, parse_station


@pytest.fixture
def station():
    return load_station("arc1-simulated")


def test_the_shipped_station_reads_the_chip_it_carries(station):
    with station.connect() as st:
        xb = st.crossbar
        assert xb.shape == (32, 32) and st.instruments["arc1"].array_kind() == "passive"
        g = xb.read()
        truth = st.bench.chip.reveal_truth()  # the test may look; the driver cannot
        assert g.shape == (32, 32) and np.all(g > 0)
        assert st.bench.instruments["arc1"].pulse_count == 0 and truth is not None


def test_pulses_move_the_device_and_bias_changes_the_sneak_currents(station):
    with station.connect() as st:
        xb = st.crossbar
        cells = (np.array([3]), np.array([5]))
        before = xb.read(cells)[0]
        after = xb.set(cells, amplitude=2.0, gate=0.0, width=10e-6, read=True)[0]
        assert after > 1.2 * before
        assert st.bench.instruments["arc1"].pulse_count == 1
        third = xb.read(cells)[0]
        xb.bias("HALF")
        assert xb.read(cells)[0] > third  # V/2 on the unselected lines: more sneak current
        assert st.bench.chip.bias_scheme == "V/2"


def test_tuning_a_block_through_the_engine(station, tmp_path):
    """Passive write-verify on the ArC ONE, recorded in a run store."""
    targets = np.full((32, 32), np.nan)
    targets[:3, :3] = np.linspace(50e-6, 90e-6, 9).reshape(3, 3)
    result = labrram.program(targets, station=station, protocol="tune-passive", out=tmp_path / "run.zarr")
    s = result.summary()
    assert s["devices"] == 9 and s["converged_fraction"] >= 0.75
    truth = station.simulated_bench().chip._conductance(np.arange(9) // 3, np.arange(9) % 3)
    assert np.median(np.abs(truth / targets[:3, :3].ravel() - 1)) < 0.1
    assert labrram.RunStore.open(tmp_path / "run.zarr").attrs["status"] == "complete"


def test_characterize_and_calibrate_through_the_cli(tmp_path, capsys):
    out = tmp_path / "char.zarr"
    assert main(["characterize", "--station", "arc1-simulated", "--devices", "16", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["devices"] == 16 and "ArC ONE" in summary["chip"]
    assert main(["calibrate", str(out), "--out", str(tmp_path / "cal.json"), "--bootstrap", "20", "--json"]) == 0


def test_a_lost_reply_mid_tuning_is_settled_never_repeated(tmp_path):
    """A pulse-read (its 2 µs width matches) whose reply is lost: the driver stops, the engine reads the devices back,
    the pulse is logged as uncertain, and the run goes on."""
    text = load_station_text().replace("[instruments.arc1]", '[simulation.faults]\ntimeout = { instrument = "arc1", match = "0.000002", at = 10 }\n\n[instruments.arc1]')
    st = parse_station(text, "<arc1 with a fault>")
    targets = np.full((32, 32), np.nan)
    targets[0, :4] = 70e-6
    result = labrram.program(targets, station=st, protocol="tune-passive", out=tmp_path / "run.zarr")
    assert result.link_faults >= 1
    store = labrram.RunStore.open(tmp_path / "run.zarr")
    assert store.attrs["status"] == "complete"
    from protocols.journal import read_log

    kinds = read_log(store)["kind"]
    bench = st.simulated_bench()
    assert bench.faults.fired("timeout") == 1
    # every pulse the chip received is in the store's log, the lost one as uncertain ("SET?"/"RESET?")
    assert len(bench.chip.pulse_log) == result.pulses.sum() + 1  # the uncertain one is not counted as done
    assert len(kinds) == len(bench.chip.pulse_log) and np.count_nonzero(kinds >= 2) == 1


def load_station_text():
    from importlib import resources

    return resources.files("labrram").joinpath("stations", "arc1-simulated.toml").read_text()


@pytest.mark.parametrize(
    "change, match",
    [
        (('kind = "passive"', 'kind = "reram"'), "carries passive arrays"),
        (("rows = 32\n", "rows = 64\n"), "at most 32x32"),
        (('kind = "passive"\nboard = "arc1"', 'kind = "passive"\nboard = "arc9"'), "board must be one of"),
        (('read_voltage = 0.2        # V', 'read_voltage = 0.2\nread_gate = 3.3'), "no word-line gate"),
    ],
)
def test_station_mistakes_are_refused(change, match):
    with pytest.raises(StationError, match=match):
        parse_station(load_station_text().replace(*change), "<edited>")


def test_libarc1_drives_the_served_arc_one_unchanged():
    """ArC ONE's own host library (``libarc1``) on the emulator through a pseudo-terminal."""
    libarc1 = pytest.importorskip("libarc1", reason="libarc1 not installed (make install-test installs it)")
    import serial

    # libarc1's defaults: read at 0.5 V with the unselected lines at V/3 — the station reads alike
    station = parse_station(load_station_text().replace("read_voltage = 0.2", "read_voltage = 0.5"), "<arc1 at 0.5 V>")
    server = labrram.serve("arc1", station)
    try:
        # a pseudo-terminal has no parity bit: the only argument that differs from a real port
        arc = libarc1.ArC1(server.path, parity=serial.PARITY_NONE)
        try:
            assert arc.firmware_version == (2, 5)
            r = float(arc.read_one(1, 1))
            values = [x for x in arc.read_all(32, 32) if isinstance(x, tuple)]
            assert len(values) == 1024 and values[0][:2] == (1, 1) and values[-1][:2] == (32, 32)
            before = float(arc.read_one(2, 2))
            after = float(arc.pulseread_one(2, 2, 2.0, 10e-6))
            assert after < 0.85 * before  # a SET lowers the resistance
        finally:
            arc.close()
    finally:
        server.close()
    with station.connect() as st:  # labrram's own driver reads the same device alike
        g = st.crossbar.read((np.array([0]), np.array([0])))[0]
    assert abs(r * g - 1) < 0.02
    assert abs(values[0][2] * g - 1) < 0.02


def test_the_boards_page_commands_run(tmp_path, monkeypatch):
    """docs/boards.md's ArC ONE console block, as written."""
    import re
    import shlex
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "boards.md").read_text().split("## ArC TWO")[0]
    block = re.search(r"```console\n(.*?)```", page, re.S).group(1)
    commands = [shlex.split(line[2:]) for line in block.splitlines() if line.startswith("$ ")]
    assert [c[:2] for c in commands] == [["labrram", "characterize"], ["labrram", "calibrate"], ["labrram", "program"]]
    monkeypatch.chdir(tmp_path)
    targets = np.full((32, 32), np.nan)
    targets[4:7, 4:7] = 60e-6
    np.save("targets.npy", targets)
    for argv in commands:
        assert main(argv[1:]) == 0, argv
    assert labrram.RunStore.open("run.zarr").attrs["status"] == "complete"
