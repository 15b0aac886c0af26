"""The Keysight B2902A emulator through plain pyvisa sessions on the simulated bench."""

import numpy as np
import pytest
import pyvisa

from labrram.ieee488 import split_block
from labrram.sim.chip import PulseKind

RESOURCE = "USB0::0x0957::0x8C18::MY51140001::INSTR"


@pytest.fixture
def rm(bench):
    return pyvisa.ResourceManager("@labrram")


@pytest.fixture
def b2902(rm):
    inst = rm.open_resource(RESOURCE, read_termination="\n", write_termination="\n")
    yield inst
    inst.close()


@pytest.fixture
def board(rm):
    inst = rm.open_resource("ASRL1::INSTR", read_termination="\n", write_termination="\n")
    yield inst
    inst.close()


def floats(reply: str) -> np.ndarray:
    return np.array([float(x) for x in reply.split(",")])


def errors(inst) -> list[str]:
    out = []
    while True:
        e = inst.query(":SYST:ERR?")
        if e == '+0,"No error"':
            return out
        out.append(e)


def operation_time(bench, fn) -> float:
    before = bench.clock.snapshot()
    fn()
    return bench.clock.elapsed(before, bench.clock.snapshot()).get("operation", 0.0)


def set_and_route(board, r: int, c: int) -> float:
    """SET a cell, read its conductance with the board, route it to the SMU connector."""
    board.write(f":PULS:SET {r},{c},1.8,1.8,1e-6")
    g = float(board.query(f":FORM ASC;:MEAS:CELL? {r},{c}")) / 0.2
    board.write(f":ROUT:SMU {r},{c}")
    return g


def test_idn_and_empty_error_queue(b2902):
    assert b2902.query("*IDN?") == "Keysight Technologies,B2902A,MY51140001,3.4.2011.5100"
    assert b2902.query(":SYST:ERR?") == '+0,"No error"'


def test_reset_defaults_follow_the_manual(b2902):
    b2902.write(":SOUR:FUNC:MODE CURR;:SOUR:FUNC:SHAP PULS;:SENS:CURR:PROT 1e-3;:SENS:CURR:NPLC 1;:OUTP ON")
    b2902.write(":FORM REAL,32;:FORM:ELEM:SENS CURR;:TRIG:COUN 7;:SOUR:PULS:WIDT 1e-3;:SOUR2:VOLT 1")
    b2902.write("*RST")
    for ch in (1, 2):
        assert b2902.query(f":OUTP{ch}?") == "0"
        assert b2902.query(f":SOUR{ch}:FUNC:MODE?") == "VOLT"
        assert b2902.query(f":SOUR{ch}:FUNC:SHAP?") == "DC"
        assert float(b2902.query(f":SOUR{ch}:VOLT?")) == 0.0
        assert b2902.query(f":SOUR{ch}:VOLT:MODE?") == "FIX"
        assert float(b2902.query(f":SENS{ch}:CURR:PROT?")) == pytest.approx(100e-6)
        assert float(b2902.query(f":SENS{ch}:VOLT:PROT?")) == pytest.approx(2.0)
        assert float(b2902.query(f":SENS{ch}:CURR:NPLC?")) == pytest.approx(0.1)
        assert b2902.query(f":SENS{ch}:CURR:RANG:AUTO?") == "1"
        assert float(b2902.query(f":SOUR{ch}:PULS:WIDT?")) == pytest.approx(50e-6)
        assert float(b2902.query(f":SOUR{ch}:PULS:DEL?")) == 0.0
        assert b2902.query(f":TRIG{ch}:COUN?") == "1"
        assert b2902.query(f":TRIG{ch}:SOUR?") == "AINT"
        assert b2902.query(f":ARM{ch}:COUN?") == "1"
        assert b2902.query(f":OUTP{ch}:OFF:MODE?") == "ZERO"
        assert b2902.query(f":OUTP{ch}:ON:AUTO?") == "1"
    assert b2902.query(":SENS:FUNC?") == '"VOLT","CURR"'
    assert b2902.query(":FORM?") == "ASC"
    assert b2902.query(":FORM:ELEM:SENS?") == "VOLT,CURR,RES,TIME,STAT,SOUR"
    # the integration time follows the line frequency: 0.1 PLC at 50 Hz
    assert float(b2902.query(":SENS:CURR:APER?")) == pytest.approx(2e-3)


def test_long_short_forms_any_case_and_channel_suffixes(b2902, bench):
    b2902.write(":source2:voltage:level:immediate:amplitude 0.5;:SENSe2:CURRent:DC:PROTection:LEVel 2e-4")
    assert float(b2902.query(":SOUR2:VOLT?")) == 0.5
    assert float(b2902.query(":SOUR1:VOLT?")) == 0.0
    assert float(b2902.query(":SOUR:VOLT?")) == 0.0  # no suffix is channel 1
    assert float(b2902.query(":sens2:curr:prot?")) == pytest.approx(2e-4)
    b2902.write("VOLT 0.25")  # [:SOURce] is optional
    assert float(b2902.query(":SOUR1:VOLT:LEV:IMM:AMPL?")) == 0.25
    b2902.write(":OUTP2 ON")
    inst = bench.instruments["b2902"]
    assert inst.channels[1].output and not inst.channels[0].output
    assert inst.channels[1].level_v == 0.5 and inst.channels[1].limit_i == pytest.approx(2e-4)
    b2902.write(":SOUR3:VOLT 1")
    assert errors(b2902)[0].startswith("-114")


def test_compound_commands_and_relative_paths(b2902):
    # a relative header continues from the previous path (:SOUR:), a leading ':' returns to the root
    b2902.write(":SOUR:VOLT 0.125;PULS:WIDT 1e-3;:SENS:CURR:PROT 3e-4;NPLC 0.5")
    assert float(b2902.query(":SOUR:PULS:WIDT?")) == pytest.approx(1e-3)
    assert float(b2902.query(":SENS:CURR:NPLC?")) == 0.5
    assert b2902.query(":SOUR:VOLT?;:OUTP?;:SENS:CURR:PROT?") == "+1.250000E-01;0;+3.000000E-04"
    assert float(b2902.query(":SOUR:VOLT? MAX")) == 210.0


def test_error_queue_entries(b2902):
    b2902.write(":SOUR:BOGUS 1")
    b2902.write(":SOUR:PULS:WIDT 10e-6")  # below 50 us
    b2902.write(":SOUR:PULS:WIDT 2e5")  # above 100000 s
    b2902.write(":SOUR:VOLT 500")
    b2902.write(":TRIG:SOUR EXT1;:INIT")
    errs = errors(b2902)
    assert errs[0].startswith("-113") and "Undefined header" in errs[0]
    assert [e[:4] for e in errs[1:4]] == ["-222"] * 3
    assert errs[4].startswith("-221") and "EXT1" in errs[4]
    assert float(b2902.query(":SOUR:PULS:WIDT?")) == pytest.approx(50e-6)  # refused values change nothing


def test_query_without_data_queues_an_error_and_sends_nothing(b2902):
    b2902.write(":FETC:ARR:CURR? (@2)")
    # had the instrument replied, this read would return that reply instead of the error
    e = b2902.query(":SYST:ERR?")
    assert e.startswith("-230") and "channel 2" in e


def test_nplc_and_aperture_are_coupled_and_clamped(b2902):
    b2902.write(":SENS:CURR:APER 1e-3")
    assert float(b2902.query(":SENS:CURR:NPLC?")) == pytest.approx(0.05)
    b2902.write(":SENS:CURR:NPLC 1000")  # beyond MAX: set to MAX, as the manual says
    assert float(b2902.query(":SENS:CURR:NPLC?")) == pytest.approx(100)
    b2902.write(":SYST:LFR 60;:SENS:VOLT:NPLC 1")
    assert float(b2902.query(":SENS:RES:APER?")) == pytest.approx(1 / 60)
    assert errors(b2902) == []


def test_list_sweep_on_both_channels_runs_concurrently(b2902, bench):
    v = [0.1, 0.2, 0.3, 0.4, 0.5]
    values = ",".join(str(x) for x in v)
    b2902.write(f":SOUR1:VOLT:MODE LIST;:SOUR1:LIST:VOLT {values};:TRIG1:COUN 5")
    b2902.write(f":SOUR2:VOLT:MODE LIST;:SOUR2:LIST:VOLT {values};:TRIG2:COUN 5")
    assert b2902.query(":SOUR:LIST:VOLT:POIN?") == "5"
    elapsed = operation_time(bench, lambda: b2902.write(":INIT (@1,2)"))
    assert elapsed == pytest.approx(5 * 2e-3)  # 5 apertures of 0.1 PLC at 50 Hz, both channels at once
    assert b2902.query(":OUTP1?;:OUTP2?") == "1;1"  # auto output on
    np.testing.assert_allclose(floats(b2902.query(":FETC:ARR:SOUR? (@1)")), v)
    np.testing.assert_allclose(floats(b2902.query(":FETC:ARR:VOLT? (@2)")), v)
    both = floats(b2902.query(":FETC:ARR:VOLT? (@1,2)"))
    np.testing.assert_allclose(both, v + v)
    t = floats(b2902.query(":FETC:ARR:TIME? (@1)"))
    np.testing.assert_allclose(np.diff(t), 2e-3)
    # all elements of every point, in the instrument's fixed order
    assert floats(b2902.query(":FETC:ARR? (@1)")).size == 5 * 6
    b2902.write(":FORM:ELEM:SENS SOUR,VOLT")
    np.testing.assert_allclose(floats(b2902.query(":FETC:ARR? (@1)"))[:4], [0.1, 0.1, 0.2, 0.2])
    # after the sweep the output is back at the DC level
    assert bench.instruments["b2902"].channels[0].level_v == 0.0
    assert float(b2902.query(":FETC:SCAL:SOUR? (@1)")) == 0.5  # the latest reading


def test_linear_sweep_settings_are_coupled(b2902):
    b2902.write(":SOUR:VOLT:MODE SWE;:SOUR:VOLT:STAR 0;:SOUR:VOLT:STOP 1;:SOUR:VOLT:POIN 5;:TRIG:COUN 5")
    assert float(b2902.query(":SOUR:VOLT:STEP?")) == pytest.approx(0.25)
    assert float(b2902.query(":SOUR:VOLT:CENT?")) == pytest.approx(0.5)
    assert b2902.query(":SOUR:SWE:POIN?") == "5"
    np.testing.assert_allclose(floats(b2902.query(":READ:ARR:SOUR? (@1)")), [0, 0.25, 0.5, 0.75, 1.0])
    b2902.write(":SOUR:VOLT:STEP 0.1")  # the span stays, the points follow
    assert b2902.query(":SOUR:VOLT:POIN?") == "11"
    b2902.write(":SOUR:SWE:STA DOUB;:SOUR:VOLT:POIN 3;:TRIG:COUN 6")
    np.testing.assert_allclose(floats(b2902.query(":READ:ARR:SOUR?")), [0, 0.5, 1, 1, 0.5, 0])


def test_pulse_train_advances_the_clock_by_the_trigger_period(b2902, board, bench):
    g = set_and_route(board, 4, 5)
    n, period, width, aperture = 10, 5e-3, 1e-3, 1e-4
    b2902.write(
        ":SOUR:FUNC:SHAP PULS;:SOUR:VOLT 0;:SOUR:VOLT:TRIG 0.3;:SOUR:PULS:DEL 0;"
        f":SOUR:PULS:WIDT {width};:SENS:CURR:APER {aperture};:SENS:CURR:PROT 1e-3;"
        f":TRIG:ACQ:DEL {width - aperture};:TRIG:SOUR TIM;:TRIG:TIM {period};:TRIG:COUN {n}"
    )
    start = len(bench.chip.pulse_log)
    elapsed = operation_time(bench, lambda: b2902.write(":INIT (@1)"))
    assert elapsed == pytest.approx((n - 1) * period + width)  # the run ends with the last pulse
    currents = floats(b2902.query(":FETC:ARR:CURR? (@1)"))
    np.testing.assert_allclose(currents, 0.3 * g, rtol=0.05)
    np.testing.assert_allclose(floats(b2902.query(":FETC:ARR:VOLT? (@1)")), 0.3)
    np.testing.assert_allclose(np.diff(floats(b2902.query(":FETC:ARR:TIME? (@1)"))), period)
    # the die saw n whole pulses of the programmed width and amplitude
    rec = bench.chip.pulse_log.records[start:]
    peaks = rec[(rec["kind"] == PulseKind.BIAS) & (rec["amplitude"] > 0.2) & (rec["width"] > 0)]
    assert len(peaks) == n
    np.testing.assert_allclose(peaks["width"], width)
    np.testing.assert_allclose(peaks["amplitude"], 0.3, rtol=1e-6)
    # between pulses the output sits at the base
    assert bench.instruments["b2902"].channels[0].level_v == 0.0
    assert float(b2902.query(":SOUR:VOLT?")) == 0.0


def test_binary_block_replies(b2902):
    b2902.write(":SOUR:VOLT:MODE LIST;:SOUR:LIST:VOLT 0.1,0.2,0.3;:TRIG:COUN 3;:INIT")
    ascii_values = floats(b2902.query(":FETC:ARR:VOLT?"))
    for fmt, dtype in (("REAL,32;:FORM:BORD NORM", ">f4"), ("REAL,32;:FORM:BORD SWAP", "<f4"), ("REAL,64;:FORM:BORD NORM", ">f8")):
        b2902.write(f":FORM {fmt}")
        b2902.write(":FETC:ARR:VOLT? (@1)")
        raw = b2902.read_raw()
        assert raw.endswith(b"\n")
        payload, rest = split_block(raw)
        assert rest == b"\n"
        np.testing.assert_allclose(np.frombuffer(payload, dtype=dtype), ascii_values, rtol=1e-6)
    assert b2902.query(":FORM?") == "REAL,64"
    # setting queries stay ASCII whatever the data format
    assert b2902.query(":SENS:CURR:PROT?") == "+1.000000E-04"


def test_routed_cell_reads_g_times_v(b2902, board):
    g = set_and_route(board, 12, 34)
    b2902.write(":SOUR:VOLT 0.2;:SENS:CURR:PROT 1e-3;:OUTP ON")
    currents = [float(b2902.query(":MEAS:CURR? (@1)")) for _ in range(5)]
    assert np.mean(currents) == pytest.approx(g * 0.2, rel=0.03)
    # channel 2 is not wired to the board: a few picoamperes
    b2902.write(":SOUR2:VOLT 0.2;:OUTP2 ON")
    assert abs(float(b2902.query(":MEAS:CURR? (@2)"))) < 1e-9


def test_compliance_clips_current_and_is_reported(b2902, board, bench):
    g = set_and_route(board, 3, 3)
    limit = 0.5 * g * 0.5  # half of what the cell would draw at 0.5 V
    b2902.write(f":SENS:CURR:PROT {limit};:SOUR:VOLT 0.5;:FORM:ELEM:SENS CURR,STAT")
    curr, stat = floats(b2902.query(":MEAS? (@1)"))
    assert curr == pytest.approx(limit)
    assert int(stat) & 0b110  # compliance bits 1-2
    assert b2902.query(":SENS:CURR:PROT:TRIP?") == "1"
    assert bench.instruments["b2902"].channels[0].in_compliance
    b2902.write(f":SENS:CURR:PROT {10 * limit}")
    curr, stat = floats(b2902.query(":MEAS? (@1)"))
    assert curr == pytest.approx(g * 0.5, rel=0.05) and int(stat) & 0b110 == 0
    assert b2902.query(":SENS:CURR:PROT:TRIP?") == "0"


def test_output_protection_turns_the_output_off_at_compliance(b2902, board, bench):
    g = set_and_route(board, 2, 9)
    b2902.write(f":OUTP:PROT ON;:SENS:CURR:PROT {0.1 * g * 0.4};:SOUR:VOLT 0.4;:OUTP ON;:FORM:ELEM:SENS STAT")
    stat = int(float(b2902.query(":MEAS? (@1)")))
    assert stat & (1 << 4) and stat & 0b110
    assert b2902.query(":OUTP?") == "0"
    assert bench.outputs_on() == []


def test_bus_triggers_step_the_acquisition(b2902, bench):
    b2902.write(":SOUR:VOLT:MODE LIST;:SOUR:LIST:VOLT 0.1,0.2,0.3;:TRIG:SOUR BUS;:TRIG:COUN 3;:INIT (@1)")
    b2902.write(":FETC:ARR:SOUR?")
    assert "waiting for 3 bus trigger" in errors(b2902)[0]
    b2902.write("*TRG")
    b2902.assert_trigger()  # the VISA way
    b2902.write(":TRIG:ALL (@1)")
    np.testing.assert_allclose(floats(b2902.query(":FETC:ARR:SOUR?")), [0.1, 0.2, 0.3])
    b2902.write("*TRG")
    assert errors(b2902)[0].startswith("-211")


def test_sense_functions_select_what_is_measured(b2902):
    b2902.write(':SENS:FUNC:OFF "VOLT";:SENS:FUNC "RES"')
    assert b2902.query(":SENS:FUNC?") == '"CURR","RES"'
    b2902.write(":SOUR:VOLT 0.2;:INIT")
    assert float(b2902.query(":FETC:VOLT?")) == pytest.approx(9.91e37)
    b2902.write(":SENS:FUNC:ALL")
    assert b2902.query(":SENS:FUNC?") == '"VOLT","CURR","RES"'


def test_fixed_measurement_range_overflows(b2902, board):
    set_and_route(board, 6, 6)
    b2902.write(":SENS:CURR:RANG 1e-6;:SENS:CURR:PROT 1e-3;:SOUR:VOLT 0.3;:FORM:ELEM:SENS CURR,STAT")
    assert float(b2902.query(":SENS:CURR:RANG?")) == pytest.approx(1e-6)
    assert b2902.query(":SENS:CURR:RANG:AUTO?") == "0"
    curr, stat = floats(b2902.query(":MEAS? (@1)"))
    assert curr == pytest.approx(9.9e37) and int(stat) & (1 << 13)


def test_bench_reset_keeps_channel_one_wired_to_the_board(bench):
    inst = bench.instruments["b2902"]
    assert inst.channels[0].load is bench.board.smu_port
    assert inst.channels[0] in bench.board.smu_port.channels
    assert inst.channels[1] not in bench.board.smu_port.channels
