"""The PyVISA backend and the pyserial URL handler: what any client sees."""

import os
import subprocess
import sys

import pytest
import pyvisa
import serial

import labrram  # noqa: F401


def test_plain_pyvisa_lists_and_identifies_the_bench(bench):
    rm = pyvisa.ResourceManager("@labrram")
    resources = rm.list_resources()
    assert set(resources) == {"ASRL1::INSTR", "GPIB0::24::INSTR", "GPIB0::26::INSTR", "USB0::0x0957::0x8C18::MY51140001::INSTR"}
    assert rm.list_resources("GPIB?*::INSTR") == ("GPIB0::24::INSTR", "GPIB0::26::INSTR")
    for name in resources:
        inst = rm.open_resource(name, read_termination="\n", write_termination="\n")
        assert inst.query("*IDN?")
        inst.close()


def test_pyvisa_library_environment_variable(tmp_path):
    code = (
        "import pyvisa; rm = pyvisa.ResourceManager();"
        "i = rm.open_resource('GPIB0::24::INSTR', read_termination='\\n');"
        "print(i.query('*IDN?'))"
    )
    env = dict(os.environ, PYVISA_LIBRARY="@labrram")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "MODEL 2400" in out.stdout


def test_unknown_resource(bench):
    rm = pyvisa.ResourceManager("@labrram")
    with pytest.raises(pyvisa.errors.VisaIOError):
        rm.open_resource("GPIB0::9::INSTR")


def test_reading_with_nothing_to_read_times_out_in_virtual_time(bench):
    rm = pyvisa.ResourceManager("@labrram")
    inst = rm.open_resource("GPIB0::24::INSTR", read_termination="\n")
    inst.timeout = 250
    t0 = bench.clock.now
    with pytest.raises(pyvisa.errors.VisaIOError) as exc:
        inst.read()
    assert exc.value.error_code == pyvisa.constants.StatusCode.error_timeout
    assert bench.clock.now - t0 == pytest.approx(0.25)


def test_sessions_have_their_own_buffers(bench):
    rm = pyvisa.ResourceManager("@labrram")
    a = rm.open_resource("GPIB0::24::INSTR", read_termination="\n", write_termination="\n")
    b = rm.open_resource("GPIB0::24::INSTR", read_termination="\n", write_termination="\n")
    a.write("*IDN?")
    b.write(":SOUR:VOLT 0.3")
    assert b.query(":SOUR:VOLT?") == "+3.000000E-01"  # shared instrument state
    assert "MODEL 2400" in a.read()  # a's reply waited in a's buffer


def test_termination_character_reads(bench):
    rm = pyvisa.ResourceManager("@labrram")
    inst = rm.open_resource("GPIB0::24::INSTR")
    inst.read_termination = "\n"
    inst.write_termination = "\n"
    assert inst.query("*IDN?").endswith("/S/K")
    inst.write("*IDN?")
    raw = inst.read_bytes(10)  # a partial read leaves the rest of the message
    assert raw == b"KEITHLEY I"
    assert inst.read().startswith("NSTRUMENTS")


def test_one_librarys_close_leaves_another_librarys_instruments(bench):
    from labrram import sim

    sim.configure_bench("lab2")
    rm_default = pyvisa.ResourceManager("@labrram")
    inst1 = rm_default.open_resource("GPIB0::24::INSTR", read_termination="\n")
    rm_lab2 = pyvisa.ResourceManager("lab2@labrram")  # a second library: bench "lab2"
    inst2 = rm_lab2.open_resource("GPIB0::24::INSTR", read_termination="\n")
    assert rm_lab2 is not rm_default
    rm_lab2.close()
    assert "MODEL 2400" in inst1.query("*IDN?")
    with pytest.raises(pyvisa.errors.InvalidSession):
        inst2.query("*IDN?")


def test_benches_are_independent(bench):
    from labrram import sim

    sim.configure_bench("lab3", seed=9)
    a = pyvisa.ResourceManager("@labrram").open_resource("GPIB0::24::INSTR", read_termination="\n", write_termination="\n")
    b = pyvisa.ResourceManager("lab3@labrram").open_resource("GPIB0::24::INSTR", read_termination="\n", write_termination="\n")
    a.write(":SOUR:VOLT 0.7")
    assert float(b.query(":SOUR:VOLT?")) == 0.0
    assert sim.get_bench("lab3").chip.info.serial != bench.chip.info.serial


def test_bench_reset_restores_power_on_state(bench):
    rm = pyvisa.ResourceManager("@labrram")
    inst = rm.open_resource("GPIB0::24::INSTR", read_termination="\n", write_termination="\n")
    inst.write(":SOUR:VOLT 1.5;:OUTP ON")
    bench.chip.pulse_set([0], [0], 1.8, 2.0, 1e-6)
    bench.reset()
    # the open session re-attaches (a power cycle does not unplug the cable)
    assert inst.query(":OUTP?") == "0"
    assert float(inst.query(":SOUR:VOLT?")) == 0.0
    assert len(bench.chip.pulse_log) == 0
    assert bench.clock.now < 0.1


def test_serial_url_handler(bench):
    port = serial.serial_for_url("labrram://default/board", timeout=0.5)
    port.write(b"*IDN?\n")
    assert port.readline().startswith(b"labrram,XB-1T1R-128x128")
    port.write(b":ARR:SIZE?\n")
    assert port.in_waiting == len(b"128,128\n")
    assert port.read(100) == b"128,128\n"  # short read after the timeout, like a real port
    port.close()


def test_serial_short_form_and_bad_urls(bench):
    with serial.serial_for_url("labrram://board", timeout=0.1) as port:
        port.write(b"*IDN?\n")
        assert port.readline()
    with pytest.raises(serial.SerialException):
        serial.serial_for_url("labrram://default/nothing")
    with pytest.raises(serial.SerialException):
        serial.serial_for_url("labrram://default/board?speed=fast")


def test_serial_uart_link_charges_the_baud_rate(bench):
    fast = serial.serial_for_url("labrram://default/board", timeout=0.1)
    slow = serial.serial_for_url("labrram://default/board?link=uart", baudrate=9600, timeout=0.1)
    costs = []
    for port in (fast, slow):
        t0 = bench.clock.now
        port.write(b":FORM REAL;:MEAS:ROW? 0\n")
        port.read(5 + 512 + 1)
        costs.append(bench.clock.now - t0)
    assert costs[1] > 0.5 > costs[0]  # ~530 bytes at 960 B/s vs USB
