"""Keithley 2400 driver: byte-exact exchanges on a recorded transport, then against the bench."""

import numpy as np
import pytest

from labrram.drivers.base import ReplyError
from labrram.drivers.keithley2400 import Keithley2400
from labrram.safety import LimitError, SafeLimits


@pytest.fixture
def smu(fake_transport):
    return Keithley2400(fake_transport, limits=SafeLimits(max_voltage=2.0, max_current=1e-3))


def test_configure_is_one_compound_command_then_an_error_check(smu, fake_transport):
    fake_transport.replies.append(b'0,"No error"\n')
    smu.configure_voltage_source(1e-4, nplc=0.1)
    assert fake_transport.written == [
        b":SOUR:FUNC VOLT;:SOUR:VOLT:MODE FIX;:SOUR:VOLT:RANG:AUTO ON;"
        b":SENS:FUNC 'CURR';:SENS:CURR:PROT 0.0001;:SENS:CURR:RANG:AUTO ON;"
        b":SENS:CURR:NPLC 0.1;:SYST:AZER OFF;:FORM:ELEM VOLT,CURR;:TRIG:COUN 1\n",
        b":SYST:ERR?\n",
    ]


def test_settings_are_declarative_and_validated(smu, fake_transport):
    smu.nplc = 0.5
    smu.source_voltage = 0.25
    smu.auto_zero = True
    assert fake_transport.written == [b":SENS:CURR:NPLC 0.5\n", b":SOUR:VOLT 0.25\n", b":SYST:AZER ON\n"]
    fake_transport.replies.append(b"+1.000000E-01\n")
    assert smu.nplc == pytest.approx(0.1)
    with pytest.raises(ValueError, match="NPLC"):
        smu.nplc = 50


def test_limits_refuse_before_any_byte(smu, fake_transport, mocker):
    spy = mocker.spy(fake_transport, "write")
    with pytest.raises(LimitError, match="exceeds the bench limit"):
        smu.set_voltage(2.5)
    with pytest.raises(LimitError):
        smu.source_voltage = -3.0
    with pytest.raises(LimitError):
        smu.configure_voltage_source(0.1)
    with pytest.raises(LimitError):
        smu.measure_sweep([0.1, 0.2, 5.0])
    with pytest.raises(LimitError):
        smu.set_voltage(float("nan"))
    spy.assert_not_called()


def test_measure_current_parses_volt_curr(smu, fake_transport):
    with pytest.raises(LimitError, match="no current compliance was set"):  # :READ? may turn the output on
        smu.measure_current()
    assert fake_transport.written == []
    smu.write(":SENS:CURR:PROT 1e-4")
    fake_transport.written.clear()
    fake_transport.replies.append(b"+2.000000E-01,+1.234000E-05\n")
    assert smu.measure_current() == pytest.approx(1.234e-5)
    assert fake_transport.written == [b":READ?\n"]


def test_garbage_reply_raises_a_clear_error(smu, fake_transport):
    smu.write(":SENS:CURR:PROT 1e-4")
    fake_transport.replies.append(b"+2.0E-01,garbage\n")
    with pytest.raises(ReplyError, match="not numeric"):
        smu.measure_current()
    fake_transport.replies.append(b"+2.0E-01\n")
    with pytest.raises(ReplyError, match="expected 1 VOLT,CURR"):
        smu.measure_current()


def test_sweep_is_chunked_by_the_list_size(smu, fake_transport):
    v = np.linspace(0, 0.2, 150)
    with pytest.raises(LimitError, match="no current compliance was set"):
        smu.measure_sweep(v)
    assert fake_transport.written == []
    smu.write(":SENS:CURR:PROT 1e-4")
    fake_transport.written.clear()
    fake_transport.replies.append((",".join("1,2" for _ in range(100)) + "\n").encode())
    fake_transport.replies.append((",".join("1,3" for _ in range(50)) + "\n").encode())
    i = smu.measure_sweep(v)
    assert i.shape == (150,) and i[0] == 2 and i[-1] == 3
    assert fake_transport.written[0].startswith(b":SOUR:VOLT:MODE LIST;:SOUR:LIST:VOLT 0,0.00134228,")
    assert fake_transport.written[0].endswith(b";:TRIG:COUN 100;:READ?\n")
    assert b":TRIG:COUN 50;:READ?" in fake_transport.written[1]
    assert fake_transport.written[-1] == b":SOUR:VOLT:MODE FIX;:TRIG:COUN 1\n"


def test_shutdown_ramps_down_then_turns_off(smu, fake_transport):
    fake_transport.replies.extend([b"1\n", b"+1.000000E+00\n", b"0\n"])
    smu.shutdown()
    assert fake_transport.written == [
        b":OUTP?\n",
        b":SOUR:VOLT?\n",
        b":SOUR:VOLT 0.8\n",
        b":SOUR:VOLT 0.6\n",
        b":SOUR:VOLT 0.4\n",
        b":SOUR:VOLT 0.2\n",
        b":SOUR:VOLT 0\n",
        b":OUTP OFF\n",
        b":OUTP?\n",  # the output state read back
    ]


def test_against_the_simulated_bench(bench):
    from labrram.drivers.board import CrossbarBoard

    with CrossbarBoard.open("labrram://default/board") as board, Keithley2400.open("GPIB0::24::INSTR", visa_library="@labrram") as smu:
        assert "MODEL 2400" in smu.idn
        board.pulse("SET", [7], [9], 1.8, 2.0, 1e-6)
        board.route_smu(7, 9)
        smu.configure_voltage_source(1e-3, nplc=0.1)
        smu.set_voltage(0.2)
        smu.enable_output()
        assert smu.output_enabled
        g = float(bench.chip._conductance(np.array([7]), np.array([9]))[0])
        assert smu.measure_current() == pytest.approx(0.2 * g, rel=0.05)
        currents = smu.measure_sweep([0.05, 0.1, 0.15])
        np.testing.assert_allclose(currents, g * np.array([0.05, 0.1, 0.15]), rtol=0.05)
    assert bench.outputs_on() == []
