"""The Keithley 2400 trigger model (arm and trigger layers, event sources, counts, delays, timer,
trigger link), the trace buffer with CALC3 statistics, binary data formats and the signal-
oriented commands, through a plain pyvisa session."""

import struct

import numpy as np
import pytest
import pyvisa


@pytest.fixture
def k(bench):
    rm = pyvisa.ResourceManager("@labrram")
    inst = rm.open_resource("GPIB0::24::INSTR", read_termination="\n", write_termination="\n", timeout=500)
    inst.write("*RST;*CLS")
    yield inst
    inst.close()


@pytest.fixture
def emu(bench):
    return bench.instruments["k2400"]


def _values(text):
    return [float(x) for x in text.split(",")]


def test_bus_arm_waits_for_trg_and_commands_queue_until_idle(k):
    k.write(":SOUR:VOLT 0.1;:OUTP ON;:ARM:SOUR BUS;:TRIG:COUN 3;:TRAC:POIN 3;:TRAC:FEED:CONT NEXT")
    k.write(":STAT:OPER:ENAB 64;*SRE 128")  # waiting in the arm layer -> OSB -> MSS
    k.write(":INIT")
    assert k.read_stb() & (128 | 64) == 128 | 64  # the serial poll answers while the model waits
    k.write("*OPC;:TRAC:POIN:ACT?")  # queued: out of idle the 2400 runs only ABORt and *TRG
    with pytest.raises(pyvisa.VisaIOError):
        k.read()
    k.write("*TRG")
    assert k.read() == "3"  # the queued query ran once the model returned to idle
    assert int(k.query("*ESR?")) & 1
    assert int(k.query(":STAT:OPER:COND?")) & (1 << 10)  # idle


def test_read_with_bus_arm_is_a_trigger_deadlock(k):
    k.write(":OUTP ON;:ARM:SOUR BUS")
    k.write(":READ?")
    with pytest.raises(pyvisa.VisaIOError):
        k.read()
    assert k.query(":SYST:ERR?").startswith("-214")


def test_visa_assert_trigger_is_a_bus_trigger(k):
    k.write(":OUTP ON;:ARM:SOUR BUS;:TRIG:COUN 2")
    k.write(":INIT")
    k.assert_trigger()
    assert len(_values(k.query(":FETC?"))) == 2 * 5


def test_fetch_waits_for_the_trigger_then_answers(k):
    k.write(":OUTP ON;:ARM:SOUR BUS;:FORM:ELEM CURR")
    k.write(":INIT")
    k.write(":FETC?")
    with pytest.raises(pyvisa.VisaIOError):
        k.read()  # nothing yet: the model waits for the bus trigger
    k.assert_trigger()
    assert len(_values(k.read())) == 1


def test_arm_timer_spaces_the_arm_passes(k, bench):
    k.write(":SOUR:VOLT 0.1;:OUTP ON;:SENS:CURR:NPLC 0.01;:SYST:AZER OFF;:SOUR:DEL 0")
    k.write(":ARM:SOUR TIM;:ARM:TIM 0.5;:ARM:COUN 4;:TRIG:COUN 1;:FORM:ELEM TIME")
    times = _values(k.query(":READ?"))
    assert np.diff(times) == pytest.approx([0.5, 0.5, 0.5], abs=1e-6)


def test_trigger_delay_and_counts(k):
    k.write(":OUTP ON;:SENS:CURR:NPLC 0.01;:SYST:AZER OFF;:SOUR:DEL 0")
    k.write(":ARM:COUN 2;:TRIG:COUN 3;:TRIG:DEL 0.25;:FORM:ELEM TIME")
    times = _values(k.query(":READ?"))
    assert len(times) == 6
    assert np.all(np.diff(times) >= 0.25)
    k.write(":ARM:COUN 100;:TRIG:COUN 100")
    k.write(":INIT")
    assert k.query(":SYST:ERR?").startswith("-221")


def test_trigger_link_input_and_output(k, emu):
    k.write(":OUTP ON;:TRIG:SOUR TLIN;:TRIG:INP SENS;:TRIG:ILIN 3;:TRIG:OUTP SENS;:TRIG:OLIN 4;:TRIG:COUN 2")
    assert k.query(":TRIG:INP?;:TRIG:OUTP?") == "SENS;SENS"
    k.write(":ARM:OUTP TEX;:ARM:OLIN 1;:STAT:OPER:ENAB 32")
    k.write(":INIT")
    assert k.read_stb() & 128  # waiting in the trigger layer (operation bit 5)
    assert emu.operation_pending()
    emu.link_in(2)  # wrong line: ignored
    assert emu.operation_pending()
    emu.link_in(3)
    emu.link_in(3)
    assert not emu.operation_pending()
    assert int(k.query(":STAT:OPER:COND?")) & (1 << 10)
    assert [line for _, line in emu.link_out] == [4, 4, 1]
    k.write(":TRIG:DIR SOUR;:TRIG:INP SOUR;:TRIG:COUN 1")
    k.write(":INIT")  # the source detector is bypassed once: no wait
    assert not emu.operation_pending()


def test_manual_arm_waits_for_the_trig_key(k, emu):
    k.write(":OUTP ON;:ARM:SOUR MAN")
    k.write(":INIT")
    k.write(":SYST:KEY 9")
    assert emu.operation_pending()
    k.write(":SYST:KEY 20")  # TRIG
    assert not emu.operation_pending()
    assert k.query(":SYST:KEY?") == "20"


def test_abort_and_device_clear_return_to_idle(k, emu):
    k.write(":OUTP ON;:ARM:SOUR BUS")
    k.write(":INIT")
    k.write(":ABOR")
    assert not emu.operation_pending()
    assert int(k.query(":STAT:OPER:COND?")) & (1 << 10)
    k.write(":INIT")
    k.write(":SOUR:VOLT 1")  # queued
    k.clear()  # SDC: abort, drop the queue
    assert not emu.operation_pending()
    assert float(k.query(":SOUR:VOLT?")) == 0.0
    k.write(":INIT;:INIT")  # the second INIT of one message finds the model running
    assert emu.operation_pending()
    k.write(":ABOR")
    assert k.query(":SYST:ERR?").startswith("-213")


def test_buffer_full_status_and_calc3_statistics(k):
    k.write(":SOUR:FUNC VOLT;:SOUR:VOLT:MODE LIST;:SOUR:LIST:VOLT 0.1,0.2,0.3,0.4;:OUTP ON")
    k.write(":STAT:PRES;*CLS;*SRE 1;:STAT:MEAS:ENAB 512")
    k.write(":TRAC:CLE;:TRAC:POIN 4;:TRIG:COUN 4;:TRAC:FEED SENS;:TRAC:FEED:CONT NEXT")
    k.write(":INIT")
    assert int(k.query("*STB?")) & 65 == 65  # buffer full -> MSB -> MSS
    k.write(":FORM:ELEM VOLT")
    for fmt, expected in (("MEAN", 0.25), ("MAX", 0.4), ("MIN", 0.1), ("PKPK", 0.3), ("SDEV", np.std([0.1, 0.2, 0.3, 0.4], ddof=1))):
        assert float(k.query(f":CALC3:FORM {fmt};:CALC3:DATA?")) == pytest.approx(expected)
    assert k.query(":TRAC:FEED:CONT?") == "NEV"


def test_real32_binary_block(k):
    k.write(":SOUR:VOLT 0.5;:OUTP ON;:FORM:ELEM VOLT,CURR;:FORM:DATA REAL,32;:FORM:BORD SWAP")
    assert k.query(":FORM?") == "REAL,32"
    k.write(":READ?")
    raw = k.read_raw()
    assert raw[:2] == b"#0" and raw.endswith(b"\n") and len(raw) == 2 + 8 + 1
    v, i = struct.unpack("<2f", raw[2:10])
    assert v == pytest.approx(0.5)
    k.write(":FORM:DATA SRE;:FORM:BORD NORM")
    k.write(":READ?")
    raw = k.read_raw()
    assert struct.unpack(">2f", raw[2:10])[0] == pytest.approx(0.5)


def test_min_max_def_queries_answer_the_limits(k):
    k.write(":SOUR:VOLT 1")
    assert float(k.query(":SOUR:VOLT? MAX")) == 210.0
    assert float(k.query(":SOUR:VOLT? MIN")) == -210.0
    assert float(k.query(":SOUR:VOLT? DEF")) == 0.0
    assert float(k.query(":SOUR:VOLT?")) == 1.0
    assert float(k.query(":SENS:CURR:NPLC? MAX")) == 10.0
    assert float(k.query(":SENS:CURR:RANG? MIN")) == pytest.approx(1.05e-6)
    k.write(":SENS:CURR:RANG MIN")
    assert float(k.query(":SENS:CURR:RANG?")) == pytest.approx(1.05e-6)


def test_sense_function_all_and_configure(k):
    k.write(":SENS:FUNC:ALL")
    assert k.query(":SENS:FUNC?") == '"VOLT:DC","CURR:DC","RES"'
    assert k.query(":SENS:FUNC:COUN?") == "3"
    k.write(":CONF:VOLT")
    assert k.query(":CONF?") == '"VOLT:DC"'
    assert k.query(":OUTP?") == "1"
    assert k.query(":SYST:ERR?") == '+0,"No error"'


def test_manual_ohms_is_signed_v_over_i(k):
    k.write(":SOUR:FUNC VOLT;:SOUR:VOLT -0.5;:SENS:FUNC 'RES','CURR';:SENS:RES:MODE MAN;:FORM:ELEM VOLT,CURR,RES")
    k.write(":OUTP ON")
    v, i, r = _values(k.query(":READ?"))
    assert v == -0.5 and r < 0
    assert r == pytest.approx(v / i)
    k.write(":SENS:RES:MODE AUTO")
    v, i, r = _values(k.query(":READ?"))
    assert r == pytest.approx(abs(v / i))


def test_auto_output_off_turns_the_output_on_for_a_reading(k, emu):
    k.write(":SOUR:VOLT 0.2;:SOUR:CLE:AUTO ON;:FORM:ELEM VOLT")
    assert k.query(":OUTP?") == "0"
    assert float(k.query(":READ?")) == pytest.approx(0.2)
    assert k.query(":OUTP?") == "0"


def test_sweep_step_span_center_and_log(k):
    k.write(":SOUR:VOLT:STAR 1;:SOUR:VOLT:STOP 3;:SOUR:VOLT:STEP 0.5")
    assert k.query(":SOUR:SWE:POIN?") == "5"
    assert float(k.query(":SOUR:VOLT:CENT?")) == 2.0
    assert float(k.query(":SOUR:VOLT:SPAN?")) == 2.0
    k.write(":SOUR:VOLT:MODE SWE;:SOUR:SWE:SPAC LOG;:SOUR:VOLT:STAR 0.01;:SOUR:VOLT:STOP 1;:SOUR:SWE:POIN 3;:TRIG:COUN 3")
    k.write(":OUTP ON;:FORM:ELEM VOLT")
    assert _values(k.query(":READ?")) == pytest.approx([0.01, 0.1, 1.0])
    k.write(":SOUR:SWE:DIR DOWN")
    assert _values(k.query(":READ?")) == pytest.approx([1.0, 0.1, 0.01])


def test_sav_rcl(k):
    k.write(":SOUR:VOLT:RANG 2;:SENS:CURR:NPLC 0.1;:DISP:DIG 5;*SAV 2;*RST")
    assert float(k.query(":SENS:CURR:NPLC?")) == 1.0
    k.write("*RCL 2")
    assert float(k.query(":SENS:CURR:NPLC?")) == 0.1
    assert k.query(":DISP:DIG?") == "5"


def test_opc_query_queued_behind_a_run(k, emu):
    k.write(":OUTP ON;:ARM:SOUR BUS;:INIT")
    k.write("*OPC?")
    k.assert_trigger()  # GET
    assert k.read() == "1"
    k.write(":INIT")
    k.write("*OPC?")
    k.clear()  # the device clear drops the queued query and leaves the model idle
    assert not emu.operation_pending()
    k.write("*RST;:OUTP ON;:INIT")
    assert k.query("*IDN?").startswith("KEITHLEY")