"""Keysight B2900 driver: byte-exact exchanges on a recorded transport, then against the bench."""

import numpy as np
import pytest

from labrram.drivers.base import InstrumentError, ReplyError
from labrram.drivers.keysight_b2900 import KeysightB2900
from labrram.safety import LimitError, SafeLimits

NO_ERROR = b'+0,"No error"\n'
RESOURCE = "USB0::0x0957::0x8C18::MY51140001::INSTR"


def block(*values: float) -> bytes:
    """The payload of a REAL,32 big-endian block (the fake transport returns payloads)."""
    return np.asarray(values, dtype=">f4").tobytes()


@pytest.fixture
def smu(fake_transport):
    return KeysightB2900(fake_transport, limits=SafeLimits(max_voltage=2.0, max_current=1e-3, max_pulse_width=1e-3))


@pytest.fixture
def configured(smu, fake_transport):
    fake_transport.replies.append(NO_ERROR)
    smu.configure_voltage_source(1e-4, nplc=0.1)
    fake_transport.written.clear()
    return smu


def test_configure_is_one_compound_command_then_an_error_check(smu, fake_transport):
    fake_transport.replies.append(NO_ERROR)
    smu.configure_voltage_source(1e-4, nplc=0.1)
    assert fake_transport.written == [
        b":SOUR1:FUNC:MODE VOLT;:SOUR1:FUNC:SHAP DC;:SOUR1:VOLT:MODE FIX;:SOUR1:VOLT:RANG:AUTO ON;"
        b':SENS1:FUNC "CURR";:SENS1:CURR:PROT 0.0001;:SENS1:CURR:RANG:AUTO ON;'
        b":SENS1:CURR:NPLC 0.1;:FORM REAL,32;:FORM:BORD NORM;:FORM:ELEM:SENS VOLT,CURR;"
        b":TRIG1:ALL:SOUR AINT;:TRIG1:ALL:COUN 1;:TRIG1:ALL:DEL 0;:ARM1:ALL:COUN 1\n",
        b":SYST:ERR?\n",
    ]


def test_channel_two_commands_carry_the_suffix(fake_transport):
    smu = KeysightB2900(fake_transport, channel=2)
    assert smu.name == "B2900 ch2"
    smu.compliance_current = 1e-4
    with pytest.raises(LimitError, match="output on refused: no current compliance"):
        smu.write(":OUTP1 ON;:OUTP2 ON")  # channel 1's compliance was never set
    fake_transport.written.clear()
    smu.set_voltage(0.1)
    smu.enable_output()
    smu.nplc = 1
    fake_transport.replies.extend([b"+1.000000E-01\n", b"1\n", b"0\n"])
    assert smu.source_voltage == pytest.approx(0.1)
    assert smu.output_enabled is True
    assert smu.compliance_tripped is False
    assert fake_transport.written == [
        b":SOUR2:VOLT 0.1\n",
        b":OUTP2 ON\n",
        b":SENS2:CURR:NPLC 1\n",
        b":SOUR2:VOLT?\n",
        b":OUTP2?\n",
        b":SENS2:CURR:PROT:TRIP?\n",
    ]
    with pytest.raises(ValueError, match="channels 1 and 2"):
        KeysightB2900(fake_transport, channel=3)


def test_errors_reported_by_configure_raise(smu, fake_transport):
    fake_transport.replies.extend([b'-222,"Data out of range"\n', NO_ERROR])
    with pytest.raises(InstrumentError, match="-222: Data out of range"):
        smu.configure_voltage_source(1e-4)


def test_settings_are_validated_before_any_byte(smu, fake_transport, mocker):
    spy = mocker.spy(fake_transport, "write")
    with pytest.raises(LimitError, match="exceeds the bench limit"):
        smu.set_voltage(2.5)
    with pytest.raises(LimitError):
        smu.source_voltage = -3.0
    with pytest.raises(LimitError):
        smu.compliance_current = 0.1
    with pytest.raises(LimitError):
        smu.configure_voltage_source(0.1)
    with pytest.raises(ValueError, match="NPLC"):
        smu.nplc = 500
    with pytest.raises(LimitError):
        smu.measure_sweep([0.1, 0.2, 5.0])
    with pytest.raises(LimitError):
        smu.set_voltage(float("nan"))
    with pytest.raises(LimitError, match="pulse amplitude|exceeds"):
        smu.pulse_voltage(2.5, 1e-4)
    with pytest.raises(LimitError, match="pulse width"):
        smu.pulse_voltage(1.0, 2e-3)  # beyond the bench's 1 ms
    with pytest.raises(ValueError, match="50 us|5e-05"):
        smu.pulse_voltage(1.0, 10e-6)  # the B2900 cannot pulse shorter than 50 us
    with pytest.raises(LimitError, match="energy"):
        smu.pulse_voltage(2.0, 1e-3)  # 2 V x 1 mA (bench current, compliance unknown) x 1 ms > 1 uJ
    spy.assert_not_called()


def test_instrument_range_checks(fake_transport, mocker):
    smu = KeysightB2900(fake_transport, limits=SafeLimits(max_voltage=500.0, max_current=10.0))
    spy = mocker.spy(fake_transport, "write")
    with pytest.raises(ValueError, match="210 V"):
        smu.set_voltage(300)
    with pytest.raises(ValueError, match="3.03 A"):
        smu.configure_voltage_source(5.0)
    spy.assert_not_called()


def test_measure_current_is_one_binary_spot_measurement(configured, fake_transport):
    fake_transport.replies.append(block(1.25e-5))
    assert configured.measure_current() == pytest.approx(1.25e-5)
    assert fake_transport.written == [b":MEAS:CURR? (@1)\n"]


def test_unconfigured_driver_sets_the_binary_format_first(smu, fake_transport):
    with pytest.raises(LimitError, match="no current compliance was set"):  # :MEAS? turns the output on by itself
        smu.measure_current()
    assert fake_transport.written == []
    smu.write(":SENS:CURR:PROT 1e-4")
    fake_transport.written.clear()
    fake_transport.replies.extend([block(2e-6), block(3e-6)])
    assert smu.measure_current() == pytest.approx(2e-6)
    assert smu.measure_current() == pytest.approx(3e-6)
    assert fake_transport.written == [b":FORM REAL,32;:FORM:BORD NORM;:MEAS:CURR? (@1)\n", b":MEAS:CURR? (@1)\n"]


def test_bad_blocks_raise_clear_errors(configured, fake_transport):
    fake_transport.replies.append(b"\x00\x00")
    with pytest.raises(ReplyError, match="expected 1 float32"):
        configured.measure_current()
    fake_transport.replies.append(block(-9.9e37))
    assert configured.measure_current() == -np.inf  # the instrument's overflow marker


def test_sweep_is_one_list_acquisition_with_a_binary_fetch(configured, fake_transport):
    fake_transport.replies.extend([NO_ERROR, b"+2.000000E-03\n", block(1e-6, 2e-6, 3e-6)])
    currents = configured.measure_sweep([0.1, 0.2, 0.3])
    np.testing.assert_allclose(currents, [1e-6, 2e-6, 3e-6], rtol=1e-6)
    assert fake_transport.written == [
        b":SOUR1:FUNC:MODE VOLT;:SOUR1:FUNC:SHAP DC;:SOUR1:VOLT:MODE LIST;"
        b":SOUR1:LIST:VOLT 0.1,0.2,0.3;:TRIG1:ALL:SOUR AINT;:TRIG1:ALL:COUN 3\n",
        b":SYST:ERR?\n",
        b":SENS1:CURR:APER?\n",
        b":INIT (@1);:FETC:ARR:CURR? (@1)\n",
        b":SOUR1:VOLT:MODE FIX;:TRIG1:ALL:COUN 1\n",
    ]
    assert fake_transport.timeout == 1.0  # restored after the long acquisition


def test_long_sweeps_are_chunked_by_the_list_size(configured, fake_transport):
    v = np.linspace(0, 1.0, 3000)
    fake_transport.replies.extend([NO_ERROR, b"+2.000000E-03\n", block(*np.full(2500, 1e-6)), NO_ERROR, block(*np.full(500, 2e-6))])
    currents = configured.measure_sweep(v)
    assert currents.shape == (3000,) and currents[0] == pytest.approx(1e-6) and currents[-1] == pytest.approx(2e-6)
    assert b":TRIG1:ALL:COUN 2500\n" in fake_transport.written[0]
    assert fake_transport.written[4].endswith(b":TRIG1:ALL:COUN 500\n")
    assert fake_transport.written.count(b":SENS1:CURR:APER?\n") == 1  # cached


def test_sweep_restores_fixed_mode_after_an_error(configured, fake_transport):
    fake_transport.replies.extend([b'-222,"Data out of range"\n', NO_ERROR])
    with pytest.raises(InstrumentError):
        configured.measure_sweep([0.1])
    assert fake_transport.written[-1] == b":SOUR1:VOLT:MODE FIX;:TRIG1:ALL:COUN 1\n"
    assert b":INIT" not in b"".join(fake_transport.written)


def test_pulse_uses_the_pulse_shape_and_measures_at_its_end(configured, fake_transport):
    fake_transport.replies.extend([b"+2.000000E-05\n", NO_ERROR, block(4.5e-5)])
    assert configured.pulse_voltage(1.5, 100e-6, base=0.0) == pytest.approx(4.5e-5)
    assert fake_transport.written == [
        b":SENS1:CURR:APER?\n",
        b":SOUR1:FUNC:MODE VOLT;:SOUR1:FUNC:SHAP PULS;:SOUR1:VOLT:MODE FIX;:SOUR1:VOLT 0;:SOUR1:VOLT:TRIG 1.5;"
        b":SOUR1:PULS:DEL 0;:SOUR1:PULS:WIDT 0.0001;:TRIG1:ALL:SOUR AINT;:TRIG1:ALL:COUN 1;"
        b":TRIG1:TRAN:DEL 0;:TRIG1:ACQ:DEL 8e-05\n",
        b":SYST:ERR?\n",
        b":INIT (@1);:FETC:ARR:CURR? (@1)\n",
        b":SOUR1:FUNC:SHAP DC;:SOUR1:VOLT:TRIG 0;:TRIG1:ACQ:DEL 0\n",
    ]


def test_pulse_shorter_than_the_aperture_integrates_half_the_pulse(configured, fake_transport):
    fake_transport.replies.extend([b"+2.000000E-03\n", NO_ERROR, block(1e-5)])
    configured.pulse_voltage(1.0, 200e-6, base=0.1)
    setup, restore = fake_transport.written[1], fake_transport.written[-1]
    assert setup.endswith(b":TRIG1:ACQ:DEL 0.0001;:SENS1:CURR:APER 0.0001\n")
    assert b":SOUR1:VOLT 0.1;:SOUR1:VOLT:TRIG 1;" in setup
    assert restore == b":SOUR1:FUNC:SHAP DC;:SOUR1:VOLT:TRIG 0.1;:TRIG1:ACQ:DEL 0;:SENS1:CURR:APER 0.002\n"


def test_pulse_refused_by_the_instrument_never_fires(configured, fake_transport):
    fake_transport.replies.extend([b"+2.000000E-05\n", b'-221,"Settings conflict"\n', NO_ERROR])
    with pytest.raises(InstrumentError, match="-221"):
        configured.pulse_voltage(1.0, 100e-6)
    assert not any(w.startswith(b":INIT") for w in fake_transport.written)
    assert fake_transport.written[-1].startswith(b":SOUR1:FUNC:SHAP DC")


def test_shutdown_ramps_down_then_turns_off(smu, fake_transport):
    fake_transport.replies.extend([b"1\n", b"+1.000000E+00\n", b"0\n"])
    smu.shutdown()
    assert fake_transport.written == [
        b":OUTP1?\n",
        b":SOUR1:VOLT?\n",
        b":SOUR1:VOLT 0.8\n",
        b":SOUR1:VOLT 0.6\n",
        b":SOUR1:VOLT 0.4\n",
        b":SOUR1:VOLT 0.2\n",
        b":SOUR1:VOLT 0\n",
        b":OUTP1 OFF\n",
        b":OUTP1?\n",  # the output state read back
    ]


# --- against the simulated bench --------------------------------------------------------------
def _cell_conductance(bench, r: int, c: int) -> float:
    return float(bench.chip._conductance(np.array([r]), np.array([c]))[0])


def test_against_the_simulated_bench(bench):
    from labrram.drivers.board import CrossbarBoard

    with CrossbarBoard.open("labrram://default/board") as board, KeysightB2900.open(RESOURCE, visa_library="@labrram") as smu:
        assert "B2902A" in smu.idn
        board.pulse("SET", [7], [9], 1.8, 2.0, 1e-6)
        board.route_smu(7, 9)
        smu.configure_voltage_source(1e-3, nplc=0.1)
        smu.set_voltage(0.2)
        smu.enable_output()
        assert smu.output_enabled
        g = _cell_conductance(bench, 7, 9)
        assert smu.measure_current() == pytest.approx(0.2 * g, rel=0.05)
        before = bench.clock.snapshot()
        currents = smu.measure_sweep([0.05, 0.1, 0.15, 0.2])
        elapsed = bench.clock.elapsed(before, bench.clock.snapshot())
        np.testing.assert_allclose(currents, g * np.array([0.05, 0.1, 0.15, 0.2]), rtol=0.05)
        assert elapsed["operation"] == pytest.approx(4 * smu.aperture)  # one acquisition of 4 points
        assert smu.get_voltage() == pytest.approx(0.2)  # back at the DC level
        assert not smu.compliance_tripped
    assert bench.outputs_on() == []


def test_pulse_sets_a_cell_through_the_smu(bench):
    from labrram.drivers.board import CrossbarBoard

    with CrossbarBoard.open("labrram://default/board") as board, KeysightB2900.open(RESOURCE, visa_library="@labrram") as smu:
        board.route_smu(20, 21)
        smu.configure_voltage_source(1e-4, nplc=0.1)
        smu.set_voltage(0.2)
        smu.enable_output()
        g0 = _cell_conductance(bench, 20, 21)
        i_read = smu.pulse_voltage(0.2, 1e-3)  # below the SET threshold: a pulsed read
        assert i_read == pytest.approx(0.2 * g0, rel=0.05)
        i_set = smu.pulse_voltage(1.5, 500e-6)  # a SET pulse, clipped by the 100 uA compliance
        g1 = _cell_conductance(bench, 20, 21)
        assert g1 > 5 * g0
        assert i_set == pytest.approx(min(1.5 * g1, 1e-4), rel=0.05)
        assert smu.compliance_tripped == (1.5 * g1 > 1e-4)
        assert smu.get_voltage() == 0.0  # the pulse base is the new DC level
        inst = bench.instruments["b2902"]
        assert inst.state[1].shape == "DC" and inst.state[1].trig["VOLT"] == 0.0
        assert smu.aperture == pytest.approx(2e-3)  # the integration time was restored
        rec = bench.chip.pulse_log.records
        pulses = rec[(rec["amplitude"] > 1.0) & (rec["width"] > 0)]
        assert len(pulses) == 1 and pulses["width"][0] == pytest.approx(500e-6)


def test_both_channels_of_one_instrument(bench):
    ch1 = KeysightB2900.open(RESOURCE, visa_library="@labrram", channel=1)
    ch2 = KeysightB2900.open(RESOURCE, visa_library="@labrram", channel=2)
    with ch1, ch2:
        ch1.configure_voltage_source(1e-4, nplc=0.1)
        ch2.configure_voltage_source(2e-4, nplc=0.5)
        ch2.set_voltage(0.3)
        ch2.enable_output()
        assert ch2.output_enabled and not ch1.output_enabled
        assert ch1.compliance_current == pytest.approx(1e-4) and ch2.compliance_current == pytest.approx(2e-4)
        assert abs(ch2.measure_current()) < 1e-9  # channel 2 is not wired to the board
    assert bench.outputs_on() == []
