"""The Keysight B2902A trace buffers, remote sense, :IDLE? and the status model's operation
complete with bus-triggered runs, through a plain pyvisa session."""

import numpy as np
import pytest
import pyvisa

RESOURCE = "USB0::0x0957::0x8C18::MY51140001::INSTR"


@pytest.fixture
def b29(bench):
    rm = pyvisa.ResourceManager("@labrram")
    inst = rm.open_resource(RESOURCE, read_termination="\n", write_termination="\n", timeout=500)
    inst.write("*RST;*CLS")
    yield inst
    inst.close()


def test_trace_collects_readings_and_statistics(b29):
    b29.write(":SOUR:VOLT:MODE LIST;:SOUR:LIST:VOLT 0.1,0.2,0.3;:TRIG:COUN 3;:FORM:ELEM:SENS VOLT")
    b29.write(":TRAC:POIN 5;:TRAC:FEED:CONT NEXT;:INIT")
    assert b29.query(":TRAC:POIN:ACT?") == "3"
    assert [float(x) for x in b29.query(":TRAC:DATA?").split(",")] == pytest.approx([0.1, 0.2, 0.3])
    assert [float(x) for x in b29.query(":TRAC:DATA? 1,2").split(",")] == pytest.approx([0.2, 0.3])
    b29.write(":TRAC:STAT:FORM PKPK")
    assert float(b29.query(":TRAC:STAT:DATA?")) == pytest.approx(0.2)
    b29.write(":INIT")  # two more fill the buffer, which then stops collecting
    assert b29.query(":TRAC:POIN:ACT?") == "5"
    assert b29.query(":TRAC:FEED:CONT?") == "NEV"
    b29.write(":TRAC:CLE")
    assert b29.query(":TRAC:POIN:ACT?") == "0"
    assert b29.query(":TRAC2:POIN:ACT?") == "0"  # channel 2 has its own buffer


def test_trace_time_stamps_delta(b29):
    b29.write(":TRIG:COUN 4;:TRIG:SOUR TIM;:TRIG:TIM 0.01;:FORM:ELEM:SENS TIME;:TRAC:FEED:CONT NEXT;:TRAC:TST:FORM DELT;:INIT")
    times = np.array([float(x) for x in b29.query(":TRAC:DATA?").split(",")])
    assert times[0] == 0.0 and np.diff(times) == pytest.approx([0.01] * 3)


def test_remote_sense_per_channel(b29):
    assert b29.query(":SENS:REM?") == "0"
    b29.write(":SENS2:REM ON")
    assert b29.query(":SENS2:REM?;:SENS1:REM?") == "1;0"
    b29.write("*RST")
    assert b29.query(":SENS2:REM?") == "0"


def test_idle_and_opc_wait_for_bus_triggers(b29):
    b29.write(":TRIG:SOUR BUS;:TRIG:COUN 2;:INIT")
    b29.write("*OPC")
    b29.write(":IDLE?")
    with pytest.raises(pyvisa.VisaIOError):
        b29.read()
    b29.assert_trigger()
    assert not int(b29.query("*ESR?")) & 1
    b29.write("*OPC?")  # answered once the run ends
    b29.assert_trigger()
    assert b29.read() == "1"  # the :IDLE? answer
    assert b29.read() == "1"  # the *OPC? answer
    assert int(b29.query("*ESR?")) & 1
    assert b29.query(":IDLE?") == "1"


def test_beeper_commands(b29):
    b29.write(":SYST:BEEP 1000,0.1;:SYST:BEEP:STAT OFF")
    assert b29.query(":SYST:BEEP:STAT?") == "0"
    assert b29.query(":SYST:ERR?") == '+0,"No error"'
