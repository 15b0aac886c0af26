"""Per-device write-verify with the verify loop running on a Keithley 2636B (TSP).

Compared with the board's batched write-verify on the same 64 devices of the same chip.
"""

import contextlib
import re
from importlib import resources

import numpy as np

from labrram.cells import Cells
import pytest

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.drivers.base import InstrumentError, ReplyError
from labrram.drivers.keithley2600 import Keithley2600
from labrram.protocols.results import TargetError
from labrram.protocols.smu_loop import SmuLoopSettings, parse_reply, saturation_amplitude, smu_write_verify
from labrram.protocols.write_verify import start_gates, write_verify_reram
from labrram.safety import LimitError
from labrram.sim import PulseKind
from labrram.station import parse_station

MODEL = default_calibration("reram").model
SEED, ROWS, COLS, N = 3, 32, 32, 64


def station_text(**limits) -> str:
    """The default station with the 2636B (GPIB0::26) as the station's SMU."""
    text = resources.files("labrram").joinpath("stations", "default.toml").read_text()
    old = 'driver = "keithley2400"\naddress = "GPIB0::24::INSTR"'
    assert old in text
    text = text.replace(old, 'driver = "keithley2600"\naddress = "GPIB0::26::INSTR"')
    for key, value in limits.items():
        text, n = re.subn(rf"^{key} = \S+", f"{key} = {value!r}", text, flags=re.M)
        assert n == 1, key
    return text


@contextlib.contextmanager
def connected(bench: str, **limits):
    sim.configure_bench(bench, seed=SEED, rows=ROWS, cols=COLS)  # a fresh chip every time
    station = parse_station(station_text(**limits), "<smu-loop test station>")
    with station.with_simulation(bench=bench, seed=SEED, rows=ROWS, cols=COLS).connect() as cs:
        assert isinstance(cs.instruments["smu"], Keithley2600)
        yield cs


def healthy_devices(chip, n=N, seed=0):
    rng = np.random.default_rng(seed)
    healthy = np.argwhere(chip._stuck == 0)
    cells = healthy[rng.choice(len(healthy), n, replace=False)]
    return cells, rng.uniform(40e-6, 200e-6, n)


def spies(mocker, cs):
    smu, board = cs.instruments["smu"], cs.instruments["board"]
    return {
        "smu_write": mocker.spy(smu.transport, "write"),
        "smu_read": mocker.spy(smu.transport, "read_message"),
        "board_write": mocker.spy(board.transport, "write"),
        "run_script": mocker.spy(smu, "run_script"),
    }


def band(targets):
    return np.maximum(0.05 * targets, 1e-6)


# --- correctness, limits on the die, and the comparison with the batched path -------------------
def test_converges_within_limits_and_compares_with_batched_write_verify():
    with connected("smu-loop") as cs:
        chip, limits = cs.bench.chip, cs.station.limits
        cells, targets = healthy_devices(chip)
        res = smu_write_verify(cs.crossbar, cs.instruments["smu"], Cells.pairs(cells), targets, MODEL, clock=cs.timer)
        rows, cols = cells[:, 0], cells[:, 1]
        truth = chip._conductance(rows, cols)
        log = chip.pulse_log.records
        assert cs.bench.outputs_on() == [] and cs.bench.instruments["board"].route is None

    s = res.summary()
    assert s["devices"] == N and s["converged_fraction"] >= 0.95
    assert np.mean(np.abs(truth - targets) <= band(targets)) >= 0.95  # the die agrees, not just the reads
    np.testing.assert_allclose(res.targets[rows, cols], targets)

    # the die saw only SMU biases (kind 2, source 1) and only limits-respecting ones
    assert np.all(log["kind"] == PulseKind.BIAS) and np.all(log["source"] == 1)
    v, gate, width = log["amplitude"].astype(float), log["gate"].astype(float), log["width"]
    assert np.abs(v).max() <= limits.max_voltage + 1e-6
    assert gate.max() <= limits.max_gate_voltage + 1e-6 and gate.min() >= 0
    programming = np.abs(v) > 0.2 + 1e-6  # above the read level: a SET or RESET pulse
    assert np.all(width[programming] <= limits.max_pulse_width * (1 + 1e-9))
    assert np.all(width[programming] >= limits.min_pulse_width)
    assert np.all(np.abs(v[programming]) * 1e-3 * width[programming] <= limits.max_energy)
    # positive (SET) levels only at SET gates, negative (RESET) levels only at the RESET gate
    settings = SmuLoopSettings()
    assert gate[v >= MODEL.v_set].max() <= settings.gate_max + 1e-6
    assert np.all(np.isclose(gate[v <= -MODEL.v_reset], settings.reset_gate))
    assert np.all(np.abs(v[~programming]) <= 0.2 + 1e-6)  # everything else: reads and idle 0 V

    # the record and the die agree pulse for pulse
    sets = np.zeros((ROWS, COLS), int)
    resets = np.zeros((ROWS, COLS), int)
    np.add.at(sets, (log["row"][v >= MODEL.v_set], log["col"][v >= MODEL.v_set]), 1)
    np.add.at(resets, (log["row"][v <= -MODEL.v_reset], log["col"][v <= -MODEL.v_reset]), 1)
    np.testing.assert_array_equal(sets + resets, res.pulses)
    run = res.settings["run"]
    assert sets.sum() == run["set_pulses"] and resets.sum() == run["reset_pulses"]

    # bench time from the caller's clock; the physical limit is pulse widths + integrations
    widths = width[programming].sum()
    assert res.physical_limit >= widths
    assert res.bench_time > res.physical_limit > 0

    # the board's batched write-verify, same devices of the same chip
    with connected("smu-loop-batched") as cs:
        full = np.full((ROWS, COLS), np.nan)
        full[rows, cols] = targets
        t0 = cs.timer.now()
        batched = write_verify_reram(cs.crossbar, full, MODEL)
        batched_time = cs.timer.now() - t0
        truth_b = cs.bench.chip._conductance(rows, cols)
    b = batched.summary()
    # the board verifies with one noisy read per pulse: its devices are in the band by their last
    # read, on the die within 1.5 bands (tests/protocols/test_write_verify.py)
    in_band_b = np.mean(np.abs(truth_b - targets) <= band(targets))
    assert b["converged_fraction"] >= 0.95 and np.mean(np.abs(truth_b - targets) <= 1.5 * band(targets)) >= 0.95

    print(
        f"\nper device, {N} devices: SMU TSP loop {res.bench_time / N * 1e3:.2f} ms bench time "
        f"(physical limit {res.physical_limit / N * 1e3:.3f} ms), {s['pulses_per_device']:.2f} pulses, "
        f"{res.iterations / N:.2f} scripts, {run['reset_scripts']} host RESET steps, converged {s['converged_fraction']:.3f}, "
        f"on the die in the band {np.mean(np.abs(truth - targets) <= band(targets)):.3f}"
        f"\nper device, {N} devices: batched board write-verify {batched_time / N * 1e3:.3f} ms bench time "
        f"(physical limit {batched.physical_limit / N * 1e3:.4f} ms), {b['pulses_per_device']:.2f} pulses, "
        f"{batched.iterations} iterations, converged {b['converged_fraction']:.3f}, on the die in the band {in_band_b:.3f}"
    )
    assert res.bench_time > batched_time  # one device at a time cannot beat the array-parallel board


# --- the loop really runs on the instrument ---------------------------------------------------
def test_the_verify_loop_runs_on_the_instrument(mocker):
    with connected("smu-loop-tx") as cs:
        cells, targets = healthy_devices(cs.bench.chip, seed=1)
        smu = cs.instruments["smu"]
        spy = spies(mocker, cs)
        res = smu_write_verify(cs.crossbar, smu, Cells.pairs(cells), targets, MODEL)
        n_bias = len(cs.bench.chip.pulse_log)
        counts = {k: v.call_count for k, v in spy.items()}
        board_writes = [c.args[0] for c in spy["board_write"].call_args_list]
    run = res.settings["run"]
    scripts = run["scripts"]
    assert res.converged[cells[:, 0], cells[:, 1]].mean() >= 0.95
    assert counts["run_script"] == scripts + 1  # + the one definition of the loop
    assert sum(run["per_device_scripts"]) == scripts and scripts <= 3 * N
    assert np.mean(np.array(run["per_device_scripts"]) == 1) >= 0.4  # common case: one script per device
    # every script is one write and three reads (result, end marker, error check = write + read),
    # plus a handful for set-up (line frequency) and shutdown
    writes, reads = counts["smu_write"], counts["smu_read"]
    assert 2 * (scripts + 1) <= writes <= 2 * (scripts + 1) + 6
    assert 3 * (scripts + 1) <= reads <= 3 * (scripts + 1) + 6
    on_instrument = run["set_pulses"] + run["reset_pulses"] + run["reads"]
    assert on_instrument >= 2.5 * writes  # not one exchange per pulse or read
    assert writes / N < 6 and (writes + reads) / N < 14
    # the per-device scripts are calls, not the loop text again
    sizes = [len(c.args[0]) for c in spy["run_script"].call_args_list]
    assert sizes[0] > 1000 and max(sizes[1:]) < 150
    # the board: its size and array count (once), one route (a new cell or a gate change) per
    # script, the final open and an error check
    assert run["routes"] == scripts
    assert sum(b.startswith(b":ROUT:GATE") for b in board_writes) == scripts
    assert board_writes[:2] == [b":ARR:SIZE?\n", b":ARR:COUN?\n"] and board_writes[-2:] == [b":ROUT:OPEN\n", b":SYST:ERR?\n"]
    assert counts["board_write"] == scripts + 4
    assert n_bias > 2 * writes


# --- limits and targets are refused before any byte -----------------------------------------------
def test_a_target_needing_a_beyond_limit_amplitude_is_refused_before_any_byte(mocker):
    s = SmuLoopSettings(saturation_headroom=0.5, amplitude_span=0.8)
    targets = np.full(4, 100e-6)
    targets[2] = 350e-6
    g = start_gates(MODEL, targets, s.start_margin, s.gate_min, s.gate_max)
    worst = np.maximum(s.set_amplitude, saturation_amplitude(MODEL, targets, g, s.saturation_headroom)) + s.amplitude_span
    assert worst[2] > 3.0 and np.all(np.delete(worst, 2) < 3.0)  # the premise: one device needs > 3 V
    with connected("smu-loop-limits") as cs:
        spy = spies(mocker, cs)
        cells = np.array([[1, 1], [2, 2], [3, 3], [4, 4]])  # (row, col) pairs, given as Cells.pairs below
        with pytest.raises(LimitError, match=r"cell \(3, 3\) with target 350"):
            smu_write_verify(cs.crossbar, cs.instruments["smu"], Cells.pairs(cells), targets, MODEL, s)
        assert spy["smu_write"].call_count == 0 and spy["board_write"].call_count == 0
        assert len(cs.bench.chip.pulse_log) == 0


@pytest.mark.parametrize(
    "limits, settings, error, message",
    [
        ({"max_voltage": 2.0}, SmuLoopSettings(), LimitError, "RESET level"),  # -2.6 V RESET impossible
        ({"max_voltage": 2.7}, SmuLoopSettings(amplitude_span=0.95), LimitError, "SET amplitudes beyond"),
        ({"max_gate_voltage": 4.0}, SmuLoopSettings(), LimitError, "RESET route gate"),  # 4.8 V RESET gate
        ({"max_gate_voltage": 4.0}, SmuLoopSettings(gate_max=4.2), LimitError, "route gate range"),
        ({"max_energy": 1e-8}, SmuLoopSettings(), LimitError, "energy"),
        ({"max_pulse_width": 50e-6}, SmuLoopSettings(), LimitError, "pulse width"),
        ({}, SmuLoopSettings(reset_gate=2.0), ValueError, "reset_gate"),
    ],
)
def test_unsafe_runs_are_refused_before_any_byte(mocker, limits, settings, error, message):
    with connected("smu-loop-limits", **limits) as cs:
        cells, targets = healthy_devices(cs.bench.chip, n=8)
        spy = spies(mocker, cs)
        with pytest.raises(error, match=message):
            smu_write_verify(cs.crossbar, cs.instruments["smu"], Cells.pairs(cells), targets, MODEL, settings)
        assert spy["smu_write"].call_count == 0 and spy["board_write"].call_count == 0
        assert len(cs.bench.chip.pulse_log) == 0


@pytest.mark.parametrize(
    "targets, message",
    [
        (np.array([100e-6, 5e-3]), "outside the reachable range"),
        (np.array([100e-6, np.nan]), "NaN"),
        (np.array([100e-6]), "1 target"),
        (np.full((8, 8), 100e-6), "the array is"),
    ],
)
def test_bad_targets_are_refused_before_any_byte(mocker, targets, message):
    with connected("smu-loop-limits") as cs:
        spy = spies(mocker, cs)
        with pytest.raises(TargetError, match=message):
            smu_write_verify(cs.crossbar, cs.instruments["smu"], Cells.pairs([(0, 0), (0, 1)]), targets, MODEL)
        assert spy["smu_write"].call_count == 0
        # only a shape mismatch needs the array size (one identification query, nothing sourced)
        assert [c.args[0] for c in spy["board_write"].call_args_list] == ([b":ARR:SIZE?\n"] if targets.ndim == 2 else [])


def test_the_station_smu_must_be_a_2600():
    with connected("smu-loop-limits") as cs:
        with pytest.raises(TypeError, match="2600B"):
            smu_write_verify(cs.crossbar, cs.instruments["board"], Cells.pairs([(0, 0)]), [1e-4], MODEL)


# --- safe state after any failure ---------------------------------------------------------------
@pytest.mark.parametrize("failure", ["link", "ctrl-c", "script"])
def test_outputs_off_and_route_open_after_an_exception_mid_run(mocker, failure):
    with connected("smu-loop-fail") as cs:
        smu = cs.instruments["smu"]
        cells, targets = healthy_devices(cs.bench.chip, n=12, seed=2)
        real = smu.run_script
        calls = {"n": 0}

        def flaky(source, timeout=None):
            calls["n"] += 1
            if calls["n"] < 6:
                return real(source, timeout=timeout)
            if failure == "script":  # the instrument fails mid-script with the output on
                return real(source + "\nsmua.source.limiti = 1e-4 smua.source.levelv = 0.2 smua.source.output = smua.OUTPUT_ON error('boom')", timeout=timeout)
            # the instrument is sourcing when the link drops / the user hits Ctrl-C
            smu.write("smua.source.limiti = 1e-4 smua.source.levelv = 0.2 smua.source.output = smua.OUTPUT_ON")
            assert cs.bench.outputs_on() == ["k2636b"] and cs.bench.instruments["board"].route is not None
            raise ConnectionError("link lost") if failure == "link" else KeyboardInterrupt()

        mocker.patch.object(smu, "run_script", side_effect=flaky)
        expected = {"link": ConnectionError, "ctrl-c": KeyboardInterrupt, "script": InstrumentError}[failure]
        with pytest.raises(expected):
            smu_write_verify(cs.crossbar, smu, Cells.pairs(cells), targets, MODEL)
        assert calls["n"] == 6  # it failed mid-run, after some devices were programmed
        assert cs.bench.outputs_on() == []
        assert cs.bench.instruments["board"].route is None
        assert not cs.bench.instruments["k2636b"].channels[0].output


# --- the in-script RESET (route gate high enough for a RESET current) ----------------------------
def test_overshoots_are_reset_inside_the_script_when_the_gate_allows_it():
    s = SmuLoopSettings(gate_min=2.5, gate_max=3.0, start_margin=0.0)
    with connected("smu-loop-hi") as cs:
        cells, _ = healthy_devices(cs.bench.chip, n=16, seed=3)
        targets = np.random.default_rng(3).uniform(620e-6, 660e-6, 16)  # SET gates above 2.5 V
        res = smu_write_verify(cs.crossbar, cs.instruments["smu"], Cells.pairs(cells), targets, MODEL, s)
        log = cs.bench.chip.pulse_log.records
    run = res.settings["run"]
    assert run["reset_pulses"] > 0 and run["reset_scripts"] == 0  # every RESET happened on the instrument
    resets = log[log["amplitude"] <= -MODEL.v_reset]
    assert resets.size == run["reset_pulses"] and np.all(resets["gate"] >= MODEL.v_gate_reset)
    assert res.converged[cells[:, 0], cells[:, 1]].mean() >= 0.9


# --- units -----------------------------------------------------------------------------------------
def test_parse_reply():
    r = parse_reply("labrram-wv\tOK\t2.00000e-05\t3.00000e+00\t0.00000e+00\t1.84000e+00\t7.00000e+00\t1.80000e-05\t-1.00000e+00")
    assert (r.status, r.current, r.pulses, r.resets, r.amplitude, r.reads, r.first) == ("OK", 2e-5, 3, 0, 1.84, 7, 1.8e-5)
    with pytest.raises(InstrumentError, match="boom"):
        parse_reply("labrram-script-error\tboom")
    for bad in ("", "labrram-wv\tMAYBE\t1\t1\t0\t0\t1\t-1\t-1", "labrram-wv\tOK\tx\t1\t0\t0\t1\t-1\t-1", "labrram-wv\tOK\t1\t1\t0\t0\t1\t-1"):
        with pytest.raises(ReplyError):
            parse_reply(bad)


@pytest.mark.parametrize(
    "kwargs",
    [{"tolerance": 2.0}, {"gate_min": 2.5, "gate_max": 2.0}, {"set_width": 1e-6}, {"pulses_per_script": 0}, {"amplitude_step": -0.1}],
)
def test_settings_validated(kwargs):
    with pytest.raises(ValueError):
        SmuLoopSettings(**kwargs)
