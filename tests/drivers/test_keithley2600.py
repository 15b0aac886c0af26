"""Keithley 2600B driver: byte-exact exchanges on a recorded transport, then against the bench."""

import numpy as np
import pytest

from labrram.drivers.base import InstrumentError, ReplyError
from labrram.drivers.keithley2600 import END_OF_OUTPUT, SCRIPT_ERROR, Keithley2600
from labrram.safety import LimitError, SafeLimits

NO_ERROR = b"0\tQueue Is Empty\n"
ERROR_QUERY = b'print(string.format("%d\\t%s", errorqueue.next()))\n'
RESOURCE = "GPIB0::26::INSTR"


def real32(*values: float) -> bytes:
    """A REAL32 little-endian printbuffer reply: #0 + bytes + newline."""
    return b"#0" + np.asarray(values, dtype="<f4").tobytes() + b"\n"


@pytest.fixture
def smu(fake_transport):
    return Keithley2600(fake_transport, limits=SafeLimits(max_voltage=2.0, max_current=1e-3, max_pulse_width=1e-3, max_energy=1e-6))


@pytest.fixture
def configured(smu, fake_transport):
    fake_transport.replies.append(NO_ERROR)
    smu.configure_voltage_source(1e-4, nplc=0.1)
    fake_transport.written.clear()
    return smu


def test_configure_is_one_line_then_an_error_check(smu, fake_transport):
    fake_transport.replies.append(NO_ERROR)
    smu.configure_voltage_source(1e-4, nplc=0.1)
    assert fake_transport.written == [
        b"smua.source.func = smua.OUTPUT_DCVOLTS smua.source.autorangev = smua.AUTORANGE_ON "
        b"smua.source.limiti = 0.0001 smua.measure.autorangei = smua.AUTORANGE_ON "
        b"smua.measure.nplc = 0.1 smua.measure.autozero = smua.AUTOZERO_OFF smua.measure.count = 1\n",
        ERROR_QUERY,
    ]


def test_channel_b_commands_name_smub(fake_transport):
    smu = Keithley2600(fake_transport, channel="b")
    assert smu.name == "2600B smub"
    with pytest.raises(LimitError, match="no current compliance was set"):
        smu.enable_output()  # the instrument's own limit (100 mA after a reset) is unknown here
    smu.compliance_current = 1e-4
    fake_transport.written.clear()
    smu.set_voltage(0.1)
    smu.enable_output()
    smu.nplc = 1
    fake_transport.replies.extend([b"1.00000e-01\n", b"1.00000e+00\n", b"false\n", b"2.00000e+00\n"])
    assert smu.source_voltage == pytest.approx(0.1)
    assert smu.output_enabled is True
    assert smu.compliance_tripped is False
    assert smu.auto_zero is True
    assert fake_transport.written == [
        b"smub.source.levelv = 0.1\n",
        b"smub.source.output = smub.OUTPUT_ON\n",
        b"smub.measure.nplc = 1\n",
        b"print(smub.source.levelv)\n",
        b"print(smub.source.output)\n",
        b"print(smub.source.compliance)\n",
        b"print(smub.measure.autozero)\n",
    ]
    with pytest.raises(ValueError, match="channels 'a' and 'b'"):
        Keithley2600(fake_transport, channel="c")


def test_errors_reported_by_configure_raise(smu, fake_transport):
    fake_transport.replies.extend([b"1102\tParameter too big: smua.source.limiti = 2, maximum 1.515\n", NO_ERROR])
    with pytest.raises(InstrumentError, match="1102: Parameter too big"):
        smu.configure_voltage_source(1e-4)
    assert fake_transport.written[-2:] == [ERROR_QUERY, ERROR_QUERY]


def test_settings_are_declarative_and_validated(smu, fake_transport):
    smu.nplc = 0.5
    smu.source_voltage = 0.25
    smu.auto_zero = True
    smu.auto_zero = False
    smu.compliance_current = 2e-5
    assert fake_transport.written == [
        b"smua.measure.nplc = 0.5\n",
        b"smua.source.levelv = 0.25\n",
        b"smua.measure.autozero = smua.AUTOZERO_AUTO\n",
        b"smua.measure.autozero = smua.AUTOZERO_OFF\n",
        b"smua.source.limiti = 2e-05\n",
    ]
    fake_transport.replies.extend([b"1.00000e-01\n", b"true\n", b"6.00000e+01\n"])
    assert smu.nplc == pytest.approx(0.1)
    assert smu.compliance_tripped is True
    assert smu.line_frequency == 60.0
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
        smu.compliance_current = 0.01
    with pytest.raises(LimitError):
        smu.measure_sweep([0.1, 0.2, 5.0])
    with pytest.raises(LimitError):
        smu.set_voltage(float("nan"))
    with pytest.raises(LimitError, match="pulse amplitude|voltage"):
        smu.pulse_voltage(3.0, 1e-4)
    with pytest.raises(LimitError, match="pulse width"):
        smu.pulse_voltage(1.0, 5e-3)
    with pytest.raises(LimitError, match="energy"):
        smu.pulse_voltage(2.0, 1e-3)  # 2 V x 1 mA (bench current limit) x 1 ms = 2 uJ
    with pytest.raises(ValueError, match="2600B"):
        smu.pulse_voltage(0.5, 10e-6)
    with pytest.raises(ValueError):
        smu.measure_sweep([])
    spy.assert_not_called()


def test_instrument_ranges_are_checked_too(fake_transport, mocker):
    smu = Keithley2600(fake_transport, limits=SafeLimits(max_voltage=500.0, max_current=5.0))
    spy = mocker.spy(fake_transport, "write")
    with pytest.raises(ValueError, match="202"):
        smu.set_voltage(300)
    with pytest.raises(ValueError, match="1.515"):
        smu.compliance_current = 3.0
    spy.assert_not_called()


def test_measure_current_parses_print_and_overflow(configured, fake_transport):
    fake_transport.replies.extend([b"1.23400e-05\n", b"9.91000e+37\n"])
    assert configured.measure_current() == pytest.approx(1.234e-5)
    assert configured.measure_current() == np.inf
    assert fake_transport.written == [b"print(smua.measure.i())\n"] * 2
    fake_transport.replies.append(b"garbage\n")
    with pytest.raises(ReplyError, match="not a number"):
        configured.measure_current()


def test_sweep_is_one_on_instrument_loop_read_back_in_real32(configured, fake_transport):
    v = np.linspace(0, 0.2, 120)
    currents = np.arange(120) * 1e-6
    fake_transport.replies.append(real32(*currents))
    i = configured.measure_sweep(v)
    np.testing.assert_allclose(i, currents, rtol=1e-6)
    (script,) = fake_transport.written
    text = script.decode()
    lines = text.split("\n")
    assert lines[0] == "loadandrunscript" and lines[-2] == "endscript" and lines[-1] == ""
    assert lines[1] == "local levels = {"
    assert lines[2].startswith("0, 0.00168067227, 0.00336134454,") and lines[2].count(",") == 50
    assert lines[5] == "}"
    body = "\n".join(lines[6:-2])
    for statement in (
        "local smu = smua",
        "  local buf = smu.makebuffer(120)",
        "  buf.appendmode = 1",
        "  for i = 1, 120 do",
        "    smu.source.levelv = levels[i]",
        "    smu.measure.i(buf)",
        "  format.data = format.REAL32",
        "  format.byteorder = format.LITTLEENDIAN",
        "  printbuffer(1, 120, buf.readings)",
        "smu.source.levelv = v0",
        f'if not ok then print("{SCRIPT_ERROR}\\t" .. tostring(err)) end',
    ):
        assert statement in body.split("\n"), statement
    assert "#" not in body  # Lua 5.0 on the instrument has no length operator


def test_binary_reply_split_at_a_newline_byte_is_reassembled(configured, fake_transport):
    # 0x0A inside the data ends a "line" early on line-based transports
    values = np.frombuffer(b"\x0a\x00\x80\x3f" + b"\x00\x00\x00\x40", dtype="<f4")
    reply = real32(*values)
    k = reply.index(b"\n") + 1
    fake_transport.replies.extend([reply[:k], reply[k:]])
    np.testing.assert_array_equal(configured.measure_sweep([0.1, 0.2]), values.astype(float))
    fake_transport.replies.append(b"#0\x00\x00\n")
    with pytest.raises(ReplyError, match="expected '#0' \\+ 8 bytes"):
        configured.measure_sweep([0.1, 0.2])


class _SocketResource:
    """A pyvisa resource on a raw LAN socket: a read ends at each newline byte."""

    resource_name = "TCPIP::192.0.2.7::5025::SOCKET"
    timeout = 2000

    def __init__(self, data: bytes) -> None:
        self.data, self.written = data, []

    def write_raw(self, data: bytes) -> None:
        self.written.append(data)

    def read_raw(self) -> bytes:
        k = self.data.index(b"\n") + 1
        out, self.data = self.data[:k], self.data[k:]
        return out


def test_a_binary_reply_over_a_visa_socket_is_reassembled_too():
    from labrram.drivers.transports import VisaTransport

    values = np.frombuffer(b"\x0a\x00\x80\x3f" + b"\x00\x00\x00\x40", dtype="<f4")
    resource = _SocketResource(NO_ERROR + real32(*values))
    smu = Keithley2600(VisaTransport(resource), limits=SafeLimits(max_voltage=2.0, max_current=1e-3, max_pulse_width=1e-3, max_energy=1e-6))
    smu.configure_voltage_source(1e-4, nplc=0.1)
    np.testing.assert_array_equal(smu.measure_sweep([0.1, 0.2]), values.astype(float))


def test_a_failing_script_body_raises(configured, fake_transport):
    fake_transport.replies.append(f"{SCRIPT_ERROR}\tParameter too big: smua.source.levelv = 300\n".encode())
    with pytest.raises(InstrumentError, match="refused the script: Parameter too big"):
        configured.measure_sweep([0.1])


def test_run_script_collects_printed_output(smu, fake_transport):
    fake_transport.replies.extend([b"1.00000e+00\n", b"x\n", f"{END_OF_OUTPUT}\n".encode(), NO_ERROR])
    assert smu.run_script("for i = 1, 1 do print(i) end\nprint('x')") == "1.00000e+00\nx"
    assert fake_transport.written == [
        b"loadandrunscript\nfor i = 1, 1 do print(i) end\nprint('x')\nendscript\n"
        + f'print("{END_OF_OUTPUT}")\n'.encode(),
        ERROR_QUERY,
    ]
    fake_transport.written.clear()
    fake_transport.replies.extend([f"{END_OF_OUTPUT}\n".encode(), b"-286\tTSP Runtime error at line 1: boom\n", NO_ERROR])
    with pytest.raises(InstrumentError, match="-286: TSP Runtime error at line 1: boom"):
        smu.run_script("error('boom')")
    with pytest.raises(ValueError, match="endscript"):
        smu.run_script("print(1)\nendscript\nprint(2)")


def test_pulse_programs_the_trigger_model(configured, fake_transport):
    fake_transport.replies.append(b"4.56000e-05\n")
    assert configured.pulse_voltage(0.5, 500e-6, base=0.1) == pytest.approx(4.56e-5)
    (script,) = fake_transport.written
    lines = script.decode().split("\n")
    assert lines[0] == "loadandrunscript" and lines[-2] == "endscript"
    for statement in (
        "  smu.source.levelv = 0.1",
        "  smu.trigger.source.listv({0.5})",
        "  smu.trigger.endpulse.action = smu.SOURCE_IDLE",
        "  trigger.timer[1].delay = math.max(1e-6, 0.0005 - window)",
        "  trigger.timer[2].delay = 0.0005",
        "  trigger.timer[2].stimulus = smu.trigger.SOURCE_COMPLETE_EVENT_ID",
        "  smu.trigger.measure.stimulus = trigger.timer[1].EVENT_ID",
        "  smu.trigger.endpulse.stimulus = trigger.timer[2].EVENT_ID",
        "  smu.trigger.initiate()",
        "trigger.timer[2].stimulus = 0",
    ):
        assert statement in lines, statement


def test_shutdown_ramps_down_then_turns_off(smu, fake_transport):
    fake_transport.replies.extend([b"1.00000e+00\n", b"1.00000e+00\n", b"0.00000e+00\n"])
    smu.shutdown()
    assert fake_transport.written == [
        b"print(smua.source.output)\n",
        b"print(smua.source.levelv)\n",
        b"smua.source.levelv = 0.8\n",
        b"smua.source.levelv = 0.6\n",
        b"smua.source.levelv = 0.4\n",
        b"smua.source.levelv = 0.2\n",
        b"smua.source.levelv = 0\n",
        b"smua.source.output = smua.OUTPUT_OFF\n",
        b"print(smua.source.output)\n",  # the output state read back
    ]


# --- against the simulated bench -----------------------------------------------------------
@pytest.fixture
def bench_smu(bench):
    from labrram.drivers.board import CrossbarBoard

    limits = SafeLimits(max_voltage=2.0, max_current=1e-3, max_pulse_width=1e-2, max_energy=1e-5)
    with CrossbarBoard.open("labrram://default/board") as board, Keithley2600.open(RESOURCE, visa_library="@labrram", limits=limits) as smu:
        board.pulse("SET", [7], [9], 1.8, 2.0, 1e-6)
        board.route_smu(7, 9)
        g = float(bench.chip._conductance(np.array([7]), np.array([9]))[0])
        yield smu, g
    assert bench.outputs_on() == []


def test_against_the_simulated_bench(bench, bench_smu):
    smu, g = bench_smu
    assert "Model 2636B" in smu.idn
    smu.configure_voltage_source(1e-3, nplc=0.1)
    smu.set_voltage(0.2)
    smu.enable_output()
    assert smu.output_enabled
    assert smu.get_voltage() == 0.2
    assert smu.measure_current() == pytest.approx(0.2 * g, rel=0.05)
    assert smu.nplc == pytest.approx(0.1) and smu.auto_zero is False and smu.compliance_tripped is False
    v = np.linspace(0.01, 0.2, 137)
    t0 = bench.clock.now
    currents = smu.measure_sweep(v)
    np.testing.assert_allclose(currents, g * v, rtol=0.05)
    per_point = bench.instrument_for(RESOURCE).measurement_time(0)
    assert bench.clock.now - t0 == pytest.approx(137 * per_point, rel=0.05)  # one script, one read
    assert smu.get_voltage() == 0.2  # the level is restored after the sweep
    assert smu.run_script("print(format.data, smua.measure.count)") == "1.00000e+00\t1.00000e+00"


def test_pulse_on_the_simulated_bench(bench, bench_smu):
    smu, g = bench_smu
    smu.configure_voltage_source(1e-3, nplc=1)
    n_before = len(bench.chip.pulse_log)
    i = smu.pulse_voltage(0.4, 2e-3, base=0.05)
    assert i == pytest.approx(0.4 * g, rel=0.05)
    log = bench.chip.pulse_log.records[n_before:]
    at_peak = log[np.isclose(log["amplitude"], 0.4)]
    assert at_peak["width"].sum() == pytest.approx(2e-3, rel=1e-6)
    assert smu.get_voltage() == pytest.approx(0.05)
    assert smu.run_script("print(smua.measure.nplc, smua.trigger.source.action, trigger.timer[1].stimulus)") == (
        "1.00000e+00\t0.00000e+00\t0.00000e+00"
    )


def test_instrument_errors_surface_as_exceptions(bench, bench_smu):
    smu, _ = bench_smu
    with pytest.raises(LimitError, match="1000 V exceeds the bench limit"):  # the guard, before any byte
        smu.run_script("smua.source.levelv = 1000")
    with smu.unguarded("test: the instrument's own range error"), pytest.raises(InstrumentError, match="1102"):
        smu.run_script("smua.source.levelv = 1000")
    with pytest.raises(InstrumentError, match="-285"):
        smu.run_script("for i = 1, 3 do")
    assert smu.run_script("print('alive')") == "alive"
