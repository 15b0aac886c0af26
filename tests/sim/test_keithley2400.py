"""The Keithley 2400 emulator through a plain pyvisa session."""

import numpy as np
import pytest
import pyvisa


@pytest.fixture
def k2400(bench):
    rm = pyvisa.ResourceManager("@labrram")
    inst = rm.open_resource("GPIB0::24::INSTR", read_termination="\n", write_termination="\n")
    yield inst
    inst.close()


def test_idn(k2400):
    assert k2400.query("*IDN?").startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400,")


def test_reset_defaults_follow_the_manual(k2400):
    k2400.write("*RST")
    assert k2400.query(":OUTP?") == "0"
    assert k2400.query(":SOUR:FUNC?") == "VOLT"
    assert float(k2400.query(":SOUR:VOLT?")) == 0.0
    assert float(k2400.query(":SENS:CURR:PROT?")) == pytest.approx(105e-6)
    assert float(k2400.query(":SENS:VOLT:PROT?")) == pytest.approx(21.0)
    assert float(k2400.query(":SENS:CURR:NPLC?")) == 1.0
    assert k2400.query(":SYST:AZER?") == "1"
    assert k2400.query(":SOUR:CLE:AUTO?") == "0"
    assert k2400.query(":FORM:ELEM?") == "VOLT,CURR,RES,TIME,STAT"
    assert k2400.query(":SOUR:DEL:AUTO?") == "1"
    assert k2400.query(":SYST:ERR?") == '+0,"No error"'


def test_long_short_forms_any_case_and_compound_paths(k2400):
    k2400.write(":source:voltage:level 0.125;:SENSe:CURRent:DC:PROTection:LEVel 2e-4")
    assert float(k2400.query(":SOUR:VOLT?")) == 0.125
    # relative header continues from the previous command's path (:SENS:CURR:)
    k2400.write(":SENS:CURR:PROT 3e-4;NPLC 0.5")
    assert float(k2400.query(":SENS:CURR:NPLC?")) == 0.5
    assert float(k2400.query(":SENS:CURR:PROT?")) == pytest.approx(3e-4)
    # two queries in one message answer in one line joined by ';'
    assert k2400.query(":SOUR:VOLT?;:OUTP?") == "+1.250000E-01;0"


def test_error_queue(k2400):
    k2400.write(":SOUR:BOGUS 1")
    k2400.write(":SOUR:VOLT 500")
    code1 = k2400.query(":SYST:ERR?")
    code2 = k2400.query(":SYST:ERR?")
    assert code1.startswith("-113") and "Undefined header" in code1
    assert code2.startswith("-222")
    assert k2400.query(":SYST:ERR?") == '+0,"No error"'


def test_error_queue_overflow(k2400):
    for _ in range(15):
        k2400.write(":NOPE")
    errors = [k2400.query(":SYST:ERR?") for _ in range(11)]
    assert errors[9].startswith("-350")
    assert errors[10].startswith("+0")


def test_query_interrupted(k2400):
    k2400.write("*IDN?")
    k2400.write(":SOUR:VOLT 0.1")  # the unread reply is discarded
    assert k2400.query(":SYST:ERR?").startswith("-410")


def test_read_with_output_off_is_an_error(k2400):
    k2400.write(":READ?")
    with pytest.raises(pyvisa.errors.VisaIOError):
        k2400.read()
    assert k2400.query(":SYST:ERR?").startswith("+803")


def test_form_elem_selects_fields(k2400):
    k2400.write(":FORM:ELEM CURR;:SOUR:VOLT 0.1;:OUTP ON")
    values = k2400.query(":READ?").split(",")
    assert len(values) == 1
    k2400.write(":FORM:ELEM VOLT,CURR,RES")
    v, i, r = (float(x) for x in k2400.query(":READ?").split(","))
    assert v == pytest.approx(0.1) and r == pytest.approx(9.91e37)  # resistance not measured


def test_measure_turns_output_on_and_obeys_the_routed_cell(k2400, bench):
    board = pyvisa.ResourceManager("@labrram").open_resource("ASRL1::INSTR", read_termination="\n", write_termination="\n")
    board.write(":PULS:SET 5,6,1.8,2.0,1e-6;:ROUT:SMU 5,6")
    g = float(bench.chip._conductance(np.array([5]), np.array([6]))[0])
    k2400.write(":SOUR:VOLT 0.2;:SENS:CURR:PROT 1e-3;:FORM:ELEM CURR")
    i = float(k2400.query(":MEAS:CURR?"))
    assert k2400.query(":OUTP?") == "1"
    assert i == pytest.approx(g * 0.2, rel=0.05)
    board.close()


def test_compliance_trips(k2400, bench):
    board = pyvisa.ResourceManager("@labrram").open_resource("ASRL1::INSTR", read_termination="\n", write_termination="\n")
    board.write(":PULS:SET 1,1,1.8,2.2,1e-6;:ROUT:SMU 1,1")
    k2400.write(":SENS:CURR:PROT 1e-6;:SOUR:VOLT 0.2;:OUTP ON;:FORM:ELEM CURR")
    i = float(k2400.query(":READ?"))
    assert i == pytest.approx(1e-6)
    assert k2400.query(":SENS:CURR:PROT:TRIP?") == "1"


def test_list_sweep_and_trace(k2400, bench):
    board = pyvisa.ResourceManager("@labrram").open_resource("ASRL1::INSTR", read_termination="\n", write_termination="\n")
    board.write(":PULS:SET 2,3,1.8,2.0,1e-6;:ROUT:SMU 2,3")
    k2400.write(":SENS:CURR:PROT 1e-3;:FORM:ELEM VOLT,CURR;:OUTP ON")
    k2400.write(":SOUR:VOLT:MODE LIST;:SOUR:LIST:VOLT 0.05,0.1,0.15,0.2;:TRIG:COUN 4")
    k2400.write(":TRAC:POIN 4;:TRAC:FEED SENS;:TRAC:FEED:CONT NEXT")
    values = np.array([float(x) for x in k2400.query(":READ?").split(",")])
    v, i = values[0::2], values[1::2]
    np.testing.assert_allclose(v, [0.05, 0.1, 0.15, 0.2])
    slope = np.polyfit(v, i, 1)[0]
    g = float(bench.chip._conductance(np.array([2]), np.array([3]))[0])
    assert slope == pytest.approx(g, rel=0.05)
    assert k2400.query(":TRAC:POIN:ACT?") == "4"
    assert len(k2400.query(":TRAC:DATA?").split(",")) == 8


def test_integration_time_costs_virtual_time(k2400, bench):
    k2400.write(":OUTP ON;:SYST:AZER OFF;:SOUR:DEL 0;:SENS:CURR:NPLC 1")
    t0 = bench.clock.now
    k2400.query(":READ?")
    dt_1plc = bench.clock.now - t0
    k2400.write(":SENS:CURR:NPLC 10")
    t0 = bench.clock.now
    k2400.query(":READ?")
    dt_10plc = bench.clock.now - t0
    assert dt_1plc > 1 / 60
    assert dt_10plc - dt_1plc == pytest.approx(9 / 60, rel=0.01)
