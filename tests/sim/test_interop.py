"""Third-party instrument libraries, unchanged, against the simulated bench through the
``@labrram`` pyvisa backend: PyMeasure's and QCoDeS's public Keithley 2400 and Keithley 2600
drivers (identify, source, measure, buffered / triggered measurement, status polling).

Skipped when the library is not installed (``pip install labrram[interop]``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

K2400 = "GPIB0::24::INSTR"
K2636B = "GPIB0::26::INSTR"

# PyMeasure Keithley2400 controls with values from the driver's documented choices.
PYMEASURE_2400_SETTINGS = [
    ("source_enabled", [True, False]),
    ("source_mode", ["current", "voltage"]),
    ("source_delay", [0.1]),
    ("source_delay_auto_enabled", [True, False]),
    ("auto_zero_enabled", [True, False]),
    ("output_off_state", ["disconnected", "normal", "zero", "guard"]),
    ("auto_output_off_enabled", [True, False]),
    ("filter_enabled", [True, False]),
    ("repeat_filter_enabled", [True, False]),
    ("filter_count", [10, 3]),
    ("current_range", [1.05e-4]),
    ("current_range_auto_enabled", [True, False]),
    ("current_nplc", [1.0, 0.1]),
    ("compliance_current", [0.01]),
    ("source_current", [0.002]),
    ("source_current_range", [0.0105]),
    ("source_current_range_auto_enabled", [True, False]),
    ("voltage_range", [21.0]),
    ("voltage_range_auto_enabled", [True, False]),
    ("voltage_nplc", [1.0]),
    ("compliance_voltage", [1.0]),
    ("source_voltage", [1.5]),
    ("source_voltage_range", [2.1]),
    ("source_voltage_range_auto_enabled", [True, False]),
    ("resistance_mode_auto_enabled", [True, False]),
    ("resistance_range", [2100.0]),
    ("resistance_range_auto_enabled", [True, False]),
    ("resistance_nplc", [1.0]),
    ("trigger_delay", [0.5]),
    ("arm_timer", [1.0]),
    ("trigger_source", ["immediate", "trigger_link"]),
    ("arm_source", ["immediate", "trigger_link", "timer", "manual", "bus"]),
    ("trigger_output_event", ["source", "delay", "sense", "none"]),
    ("arm_output_event", ["trigger_enter", "trigger_exit", "none"]),
    ("trigger_input_line", [2]),
    ("arm_input_line", [3]),
    ("trigger_output_line", [4]),
    ("arm_output_line", [1]),
    ("display_enabled", [True, False]),
    ("wires", [4, 2]),
    ("line_frequency", [50, 60]),
    ("line_frequency_auto_enabled", [True, False]),
    ("front_terminals_enabled", [False, True]),
]


@pytest.fixture
def pm2400(bench):
    pytest.importorskip("pymeasure")
    from pymeasure.instruments.keithley import Keithley2400

    smu = Keithley2400(K2400, visa_library="@labrram")
    smu.clear()
    smu.reset()
    yield smu
    smu.adapter.close()


@pytest.mark.parametrize("attr,values", PYMEASURE_2400_SETTINGS, ids=[a for a, _ in PYMEASURE_2400_SETTINGS])
def test_pymeasure_2400_setters_and_getters(pm2400, attr, values):
    for value in values:
        setattr(pm2400, attr, value)
        assert getattr(pm2400, attr) == value
        assert pm2400.check_errors() == []
        pm2400.reset()


def test_pymeasure_2400_reset_defaults(pm2400):
    assert pm2400.id.startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400")
    assert pm2400.source_enabled is False
    assert pm2400.output_off_state == "normal"
    assert pm2400.front_terminals_enabled is True
    assert pm2400.current_range == 1.05e-4 and pm2400.compliance_current == 1.05e-4
    assert pm2400.voltage_range == 21 and pm2400.compliance_voltage == 21
    assert pm2400.resistance_mode_auto_enabled is True and pm2400.resistance_range == 2.1e5
    assert pm2400.repeat_filter_enabled is True and pm2400.filter_count == 10
    assert pm2400.filter_enabled is False and pm2400.auto_output_off_enabled is False
    assert pm2400.source_mode == "voltage" and pm2400.source_delay == 0.001
    assert pm2400.auto_zero_enabled is True


def test_pymeasure_2400_source_measure_buffer_and_trigger(pm2400):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # its own deprecations
        pm2400.source_mode = "current"
        pm2400.source_current = 1e-6
        pm2400.compliance_voltage = 5
        pm2400.enable_source()
        pm2400.measure_voltage()
        assert pm2400.voltage == pytest.approx(5.0)  # open terminals: in compliance
        pm2400.source_mode = "voltage"
        pm2400.source_voltage = 0.2
        pm2400.measure_current()
        assert abs(pm2400.current) < 1e-9
        # buffered measurement, polled through the status byte (MSB + MSS on buffer full)
        pm2400.config_buffer(points=8)
        pm2400.start_buffer()
        pm2400.wait_for_buffer(timeout=2, interval=0.01)
        data = pm2400.buffer_data
        assert data.size == 8 * 5
        assert np.allclose(data[0::5], 0.2)
        assert pm2400.means[0] == pytest.approx(0.2)
        # bus-triggered acquisition
        pm2400.reset()
        pm2400.enable_source()
        pm2400.trigger_on_bus()
        pm2400.trigger_count = 3
        pm2400.write(":INIT")
        pm2400.trigger()
        assert len(pm2400.values(":FETC?")) == 15
        pm2400.beep(1000, 0.1)
        assert pm2400.check_errors() == []
        pm2400.shutdown()
        assert pm2400.source_enabled is False


def test_pymeasure_2600_source_measure(bench):
    pytest.importorskip("pymeasure")
    from pymeasure.instruments.keithley import Keithley2600

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # its own notice that it does not know SCPI support
        smu = Keithley2600(K2636B, visa_library="@labrram")
    assert "2636B" in smu.id
    ch = smu.ChA
    ch.apply_voltage(compliance_current=0.1)
    ch.source_voltage = 0.1
    ch.source_output = "ON"
    assert ch.voltage == pytest.approx(0.1)
    assert abs(ch.current) < 1e-9
    ch.measure_current(nplc=1, current=0.1, auto_range=True)
    ch.shutdown()
    assert ch.source_output == "OFF"
    smu.adapter.close()


def test_qcodes_2400(bench):
    pytest.importorskip("qcodes")
    from qcodes.instrument_drivers.Keithley import Keithley2400

    smu = Keithley2400("labrram_k2400", K2400, visalib="@labrram")
    try:
        assert smu.IDN()["model"] == "2400"
        smu.mode("VOLT")
        smu.sense("CURR")
        smu.compliancei(1e-3)
        smu.nplci(0.1)
        smu.output(True)
        smu.volt(0.1)
        assert abs(smu.curr()) < 1e-9
        assert smu.rangev() == 21.0 and smu.nplci() == 0.1 and smu.compliancei() == 1e-3
        assert smu.ask(":SYST:ERR?") == '+0,"No error"'
        smu.output(False)
    finally:
        smu.close()


def test_qcodes_2636b(bench):
    pytest.importorskip("qcodes")
    from qcodes.instrument_drivers.Keithley import Keithley2636B

    smu = Keithley2636B("labrram_k2636b", K2636B, visalib="@labrram")
    try:
        assert smu.IDN()["model"] == "2636B"
        a = smu.smua
        a.mode("voltage")
        a.volt(0.1)
        a.nplc(0.1)
        a.output("on")
        assert abs(a.curr()) < 1e-9
        assert a.nplc() == 0.1
        a.timetrace_npts(5)
        a.timetrace_dt(0.01)
        assert len(a.timetrace()) == 5
        a.output("off")
    finally:
        smu.close()
