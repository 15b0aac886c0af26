"""The Keithley 2636B (TSP / Lua) emulator through a plain pyvisa session."""

import numpy as np
import pytest
import pyvisa

RESOURCE = "GPIB0::26::INSTR"


@pytest.fixture
def rm(bench):
    return pyvisa.ResourceManager("@labrram")


@pytest.fixture
def k(rm):
    inst = rm.open_resource(RESOURCE, read_termination="\n", write_termination="\n")
    yield inst
    inst.close()


@pytest.fixture
def board(rm):
    inst = rm.open_resource("ASRL1::INSTR", read_termination="\n", write_termination="\n")
    yield inst
    inst.close()


@pytest.fixture
def emulator(bench):
    return bench.instrument_for(RESOURCE)


def errors(k) -> list[tuple[int, str]]:
    """Drain the error queue with errorqueue.next()."""
    out = []
    for _ in range(40):
        code, message, severity, node = k.query("print(errorqueue.next())").split("\t")
        if float(code) == 0:
            assert message == "Queue Is Empty"
            return out
        out.append((int(float(code)), message))
    raise AssertionError("error queue does not drain")


def run_script(k, lines: str, name: str = "") -> None:
    k.write(f"loadandrunscript {name}".strip())
    for line in lines.strip("\n").splitlines():
        k.write(line)
    k.write("endscript")


def test_identity(k, emulator):
    assert k.query("*IDN?") == f"Keithley Instruments Inc., Model 2636B, {emulator.serial}, 4.0.4"
    assert k.query("print(localnode.model)") == "2636B"
    assert k.query("print(localnode.serialno)") == emulator.serial
    assert k.query("print(localnode.linefreq)") == "6.00000e+01"
    assert k.query("*OPC?") == "1"
    assert k.query("*TST?") == "0"


def test_print_formats_like_the_instrument(k):
    assert k.query("print(1e-4)") == "1.00000e-04"
    assert k.query("print(3, -2.5, 'text', true, nil)") == "3.00000e+00\t-2.50000e+00\ttext\ttrue\tnil"
    k.write("format.asciiprecision = 3")
    assert k.query("print(math.pi)") == "3.14e+00"
    k.write("format.asciiprecision = 17")
    assert k.query("print(format.asciiprecision)") == "3.00e+00"
    k.write("format.asciiprecision = 6")
    assert errors(k)[0][0] == 1102
    assert k.query("printnumber(1, 2.5)") == "1.00000e+00, 2.50000e+00"
    assert k.query("print(string.format('%d-%s', 7, 'x'))") == "7-x"


def test_output_stays_queued_until_read(k):
    k.write("print(1)")
    k.write("print(2)")
    k.write("for i = 3, 4 do print(i) end")
    assert [k.read() for _ in range(4)] == ["1.00000e+00", "2.00000e+00", "3.00000e+00", "4.00000e+00"]


def test_smua_settings_round_trip(k):
    k.write(
        "smua.source.func = smua.OUTPUT_DCVOLTS smua.source.levelv = 0.25 smua.source.limiti = 1e-4 "
        "smua.measure.nplc = 0.1 smua.measure.autozero = smua.AUTOZERO_OFF smua.measure.rangei = 5e-6 "
        "smua.source.rangev = 2 smua.measure.count = 3 smua.measure.interval = 0.01 smub.source.levelv = -1"
    )
    reply = k.query(
        "print(smua.source.func, smua.source.levelv, smua.source.limiti, smua.measure.nplc, "
        "smua.measure.autozero, smua.measure.rangei, smua.measure.autorangei, smua.source.rangev, "
        "smua.source.autorangev, smua.measure.count, smua.measure.interval, smub.source.levelv)"
    )
    values = [float(x) for x in reply.split("\t")]
    assert values == pytest.approx([1, 0.25, 1e-4, 0.1, 0, 10e-6, 0, 2, 0, 3, 0.01, -1])
    k.write("smua.source.func = smua.OUTPUT_DCAMPS smua.source.leveli = -2e-6 smua.source.limitv = 5")
    assert k.query("print(smua.source.func, smua.source.leveli, smua.source.limitv)") == "0.00000e+00\t-2.00000e-06\t5.00000e+00"
    assert errors(k) == []


def test_out_of_range_values_are_refused_and_not_applied(k):
    k.write("smua.source.levelv = 1")
    k.write("smua.source.levelv = 300")
    k.write("smua.source.leveli = -2")
    k.write("smua.source.limiti = 2")
    k.write("smua.measure.nplc = 0")
    k.write("smua.source.rangev = 2 smua.source.levelv = 5")
    codes = [c for c, _ in errors(k)]
    assert codes == [1102, 1103, 1102, 1103, 1102]
    assert k.query("print(smua.source.levelv, smua.source.limiti, smua.measure.nplc)") == "1.00000e+00\t1.00000e-01\t1.00000e+00"
    # above 20 V a 2636B channel delivers at most 100 mA
    k.write("smua.source.autorangev = smua.AUTORANGE_ON smua.source.limiti = 1 smua.source.levelv = 100")
    (code, message), = errors(k)
    assert code == 5007 and "safe operating area" in message
    k.write("smua.source.bogus = 1")
    (code, message), = errors(k)
    assert code == -286 and "smua.source has no attribute 'bogus'" in message


def test_measures_the_current_of_a_cell_routed_by_the_board(bench, k, board):
    board.write(":PULS:SET 3,4,1.8,1.8,1e-6")
    board.write(":ROUT:SMU 3,4")
    assert board.query(":SYST:ERR?") == '+0,"No error"'
    g = float(bench.chip._conductance(np.array([3]), np.array([4]))[0])
    k.write("smua.source.levelv = 0.2 smua.source.limiti = 1e-3 smua.source.output = smua.OUTPUT_ON")
    i = float(k.query("print(smua.measure.i())"))
    assert i == pytest.approx(0.2 * g, rel=0.05)
    i2, v = (float(x) for x in k.query("print(smua.measure.iv())").split("\t"))
    assert v == 0.2 and i2 == pytest.approx(0.2 * g, rel=0.05)
    assert float(k.query("print(smua.measure.r())")) == pytest.approx(1 / g, rel=0.05)
    # smub is not wired to the board: open terminals
    k.write("smub.source.levelv = 0.2 smub.source.output = smub.OUTPUT_ON")
    assert abs(float(k.query("print(smub.measure.i())"))) < 1e-9
    assert set(bench.outputs_on()) == {"k2636b"}


def test_compliance_status(bench, k, board):
    board.write(":PULS:SET 5,6,1.8,1.8,1e-6")
    board.write(":ROUT:SMU 5,6")
    k.write("smua.source.limiti = 1e-6 smua.source.levelv = 0.5 smua.source.output = smua.OUTPUT_ON")
    assert float(k.query("print(smua.measure.i())")) == pytest.approx(1e-6)
    assert k.query("print(smua.source.compliance)") == "true"
    condition = int(float(k.query("print(status.measurement.instrument.smua.condition)")))
    assert condition & 2 and not condition & 1  # bit 1: current limit
    assert k.query("print(bit.test(status.measurement.instrument.smua.condition, 2))") == "true"
    k.write("smua.source.limiti = 1e-2")
    k.query("print(smua.measure.i())")
    assert k.query("print(smua.source.compliance)") == "false"


def test_script_loop_fills_a_buffer_printed_in_ascii_and_real32(k, emulator):
    run_script(
        k,
        """
smua.nvbuffer1.clear()
smua.nvbuffer1.appendmode = 1
smua.nvbuffer1.collecttimestamps = 1
smua.nvbuffer1.collectsourcevalues = 1
smua.measure.nplc = 0.01
smua.measure.autozero = smua.AUTOZERO_OFF
smua.source.output = smua.OUTPUT_ON
for i = 1, 20 do
  smua.source.levelv = i * 0.01
  smua.measure.i(smua.nvbuffer1)
end
smua.source.output = smua.OUTPUT_OFF
print(smua.nvbuffer1.n)
""",
    )
    assert k.read() == "2.00000e+01"
    assert errors(k) == []
    readings = [float(x) for x in k.query("printbuffer(1, smua.nvbuffer1.n, smua.nvbuffer1.readings)").split(", ")]
    assert len(readings) == 20
    sources = [float(x) for x in k.query("printbuffer(1, 20, smua.nvbuffer1.sourcevalues)").split(", ")]
    assert sources == pytest.approx(np.arange(1, 21) * 0.01)
    stamps = [float(x) for x in k.query("printbuffer(1, 20, smua.nvbuffer1.timestamps)").split(", ")]
    assert stamps[0] == 0.0
    assert np.diff(stamps) == pytest.approx(emulator.measurement_time(0), rel=1e-3)
    pairs = k.query("printbuffer(1, 2, smua.nvbuffer1.readings, smua.nvbuffer1.sourcevalues)").split(", ")
    assert [float(x) for x in pairs] == pytest.approx([readings[0], 0.01, readings[1], 0.02], rel=1e-5)

    k.write("format.data = format.REAL32 format.byteorder = format.LITTLEENDIAN")
    k.write("printbuffer(1, smua.nvbuffer1.n, smua.nvbuffer1)")
    raw = k.read_bytes(2 + 4 * 20 + 1)  # binary: do not stop at a 0x0A inside the data
    assert raw[:2] == b"#0" and raw[-1:] == b"\n" and len(raw) == 2 + 4 * 20 + 1
    np.testing.assert_allclose(np.frombuffer(raw[2:-1], "<f4"), readings, rtol=1e-5)
    k.write("format.data = format.REAL64 format.byteorder = format.BIGENDIAN printbuffer(1, 3, smua.nvbuffer1.sourcevalues)")
    raw = k.read_bytes(2 + 8 * 3 + 1)
    np.testing.assert_allclose(np.frombuffer(raw[2:-1], ">f8"), [0.01, 0.02, 0.03])
    k.write("format.data = format.ASCII")
    k.write("printbuffer(1, 21, smua.nvbuffer1.readings)")
    assert errors(k)[0][0] == 1102


def test_append_mode_off_replaces_the_buffer_per_measurement(k):
    k.write("smua.nvbuffer1.clear() smua.measure.nplc = 0.01 for i = 1, 5 do smua.measure.i(smua.nvbuffer1) end")
    assert k.query("print(smua.nvbuffer1.n)") == "1.00000e+00"
    k.write("smua.measure.count = 4 smua.measure.v(smua.nvbuffer2)")
    assert k.query("print(#smua.nvbuffer2, smua.nvbuffer2[4] ~= nil, smua.nvbuffer2[5])") == "4.00000e+00\ttrue\tnil"
    k.write("smua.nvbuffer2.appendmode = 1")
    assert errors(k)[0][0] == -221  # append mode changes only with an empty buffer
    k.write("b = smua.makebuffer(3) b.appendmode = 1 smua.measure.count = 2 smua.measure.i(b) smua.measure.i(b)")
    assert k.query("print(b.n, b.capacity)") == "3.00000e+00\t3.00000e+00"


def test_named_scripts_run_by_name_and_run(k):
    k.write("loadscript greet")
    k.write("count = (count or 0) + 1")
    k.write("print('hello', count)")
    k.write("endscript")
    assert k.query("greet()") == "hello\t1.00000e+00"
    assert k.query("greet.run()") == "hello\t2.00000e+00"
    assert k.query("print(script.user.scripts.greet == greet, greet.name)") == "true\tgreet"
    k.write("*RST")  # reset keeps scripts and globals
    assert k.query("greet()") == "hello\t3.00000e+00"
    assert errors(k) == []


def test_bad_lua_goes_to_the_error_queue(k):
    k.write("x = = 1")
    k.write("nosuchfunction()")
    k.write("loadandrunscript")
    k.write("for i = 1, 3 do")
    k.write("endscript")
    k.write("local t = nil; print(t.x)")
    k.write("error('custom failure')")
    assert k.query("print(errorqueue.count)") == "5.00000e+00"
    errs = errors(k)
    assert [c for c, _ in errs] == [-285, -286, -285, -286, -286]
    assert errs[0][1].startswith("TSP Syntax error at line 1:")
    assert "nosuchfunction" in errs[1][1]
    assert "custom failure" in errs[4][1]
    # the instrument is still alive and pcall catches instrument errors
    assert k.query("print(pcall(function() smua.source.levelv = 500 end))").startswith("false\t")
    assert k.query("print(1 + 1)") == "2.00000e+00"
    k.write("*CLS")
    assert k.query("print(errorqueue.count)") == "0.00000e+00"


def test_runaway_loops_end_with_an_error(k, emulator):
    emulator.instruction_budget = 2_000_000
    k.write("while true do end")
    k.write("while true do pcall(function() while true do end end) end")
    k.write("local co = coroutine.wrap(function() while true do end end) co()")
    k.write("while true do local x = smua.source.levelv end")
    errs = errors(k)
    assert len(errs) == 4
    assert all(c == -286 and "instruction budget" in m for c, m in errs)
    assert k.query("print('still here')") == "still here"


def test_sandbox(k):
    assert k.query("print(os, io, debug, require, package, dofile, loadfile, python, string.dump)") == "\t".join(["nil"] * 9)
    assert k.query("print(load('return 6 * 7')())") == "4.20000e+01"
    assert k.query("print(table.getn({1, 2, 3}), math.mod(7, 3), unpack({5}))") == "3.00000e+00\t1.00000e+00\t5.00000e+00"
    k.write("print(string.rep('x', 1e10))")
    (code, message), = errors(k)
    assert code == -286


def test_pulse_train_on_the_trigger_model(bench, k, board, emulator):
    board.write(":PULS:SET 1,2,1.8,1.8,1e-6")
    board.write(":ROUT:SMU 1,2")
    g = float(bench.chip._conductance(np.array([1]), np.array([2]))[0])
    period, width, n, peak, bias = 1e-3, 400e-6, 5, 0.3, 0.05
    run_script(
        k,
        f"""
smua.measure.nplc = 0.001
smua.measure.autozero = smua.AUTOZERO_OFF
smua.source.levelv = {bias}
smua.source.limiti = 1e-3
smua.nvbuffer1.clear()
smua.trigger.source.listv({{{peak}}})
smua.trigger.source.limiti = 1e-3
smua.trigger.measure.action = smua.ENABLE
smua.trigger.measure.i(smua.nvbuffer1)
smua.trigger.endpulse.action = smua.SOURCE_IDLE
smua.trigger.endsweep.action = smua.SOURCE_IDLE
smua.trigger.count = {n}
smua.trigger.source.action = smua.ENABLE
trigger.timer[1].count = {n - 1}
trigger.timer[1].delay = {period}
trigger.timer[1].passthrough = true
trigger.timer[1].stimulus = smua.trigger.ARMED_EVENT_ID
trigger.timer[2].count = 1
trigger.timer[2].delay = {width}
trigger.timer[2].passthrough = false
trigger.timer[2].stimulus = smua.trigger.SOURCE_COMPLETE_EVENT_ID
smua.trigger.source.stimulus = trigger.timer[1].EVENT_ID
smua.trigger.endpulse.stimulus = trigger.timer[2].EVENT_ID
smua.source.output = smua.OUTPUT_ON
timer.reset()
smua.trigger.initiate()
waitcomplete()
print(timer.measure.t(), smua.nvbuffer1.n)
smua.source.output = smua.OUTPUT_OFF
""",
    )
    elapsed, count = (float(x) for x in k.read().split("\t"))
    assert elapsed == pytest.approx((n - 1) * period + width, rel=1e-9)
    assert count == n
    assert errors(k) == []
    readings = [float(x) for x in k.query("printbuffer(1, 5, smua.nvbuffer1.readings)").split(", ")]
    np.testing.assert_allclose(readings, peak * g, rtol=0.05)
    # the die saw exactly n pulses of the programmed width at the peak level
    log = bench.chip.pulse_log.records
    at_peak = log[(log["kind"] == 2) & np.isclose(log["amplitude"], peak)]
    assert at_peak["width"].sum() == pytest.approx(n * width, rel=1e-6)


def test_linear_sweep_with_iv_buffers(k):
    run_script(
        k,
        """
smua.reset()
smua.measure.nplc = 0.01
smua.nvbuffer1.clear() smua.nvbuffer2.clear()
smua.trigger.source.linearv(0, 1, 11)
smua.trigger.source.action = smua.ENABLE
smua.trigger.measure.action = smua.ENABLE
smua.trigger.measure.iv(smua.nvbuffer1, smua.nvbuffer2)
smua.trigger.count = 11
smua.source.output = smua.OUTPUT_ON
smua.trigger.initiate()
smua.source.output = smua.OUTPUT_OFF
printbuffer(1, smua.nvbuffer2.n, smua.nvbuffer2)
print(smua.source.levelv)
""",
    )
    volts = [float(x) for x in k.read().split(", ")]
    assert volts == pytest.approx(np.linspace(0, 1, 11))
    assert k.read() == "0.00000e+00"
    k.write("smua.trigger.source.stimulus = 999 smua.trigger.initiate()")
    (code, message), = errors(k)
    assert code == -221 and "nothing will generate" in message


def test_reset_restores_the_defaults(bench, k):
    k.write(
        "smua.source.levelv = 1 smua.source.limiti = 1e-5 smua.source.output = smua.OUTPUT_ON smua.measure.nplc = 5 "
        "format.data = format.REAL64 format.asciiprecision = 9 smua.trigger.count = 7 smua.measure.i(smua.nvbuffer1) "
        "user_value = 42"
    )
    assert bench.outputs_on() == ["k2636b"]
    k.write("*RST")
    assert bench.outputs_on() == []
    reply = k.query(
        "print(smua.source.output, smua.source.func, smua.source.levelv, smua.source.limiti, smua.source.limitv, "
        "smua.measure.nplc, smua.measure.autozero, smua.source.autorangev, smua.measure.autorangei, "
        "format.data, format.asciiprecision, format.byteorder, smua.nvbuffer1.n, smua.trigger.count, "
        "smua.trigger.endpulse.action, trigger.timer[1].delay, user_value)"
    )
    values = [float(x) for x in reply.split("\t")]
    assert values == pytest.approx([0, 1, 0, 0.1, 20, 1, 2, 1, 1, 1, 6, 1, 0, 1, 1, 10e-6, 42])


def test_delay_and_measurements_cost_virtual_time(bench, k, emulator):
    t0 = bench.clock.now
    k.write("delay(2.5)")
    assert bench.clock.now - t0 == pytest.approx(2.5, abs=1e-3)
    k.write("smua.measure.nplc = 1 smua.measure.autozero = smua.AUTOZERO_AUTO timer.reset() smua.measure.i() t = timer.measure.t()")
    assert float(k.query("print(t)")) == pytest.approx(2 / 60 + 0.2e-3)
    assert emulator.measurement_time(0) == pytest.approx(2 / 60 + 0.2e-3)


def test_prompts_and_device_clear(k):
    k.write("localnode.prompts = 1")
    assert k.read() == "TSP>"
    assert k.query("print(5)") == "5.00000e+00"
    assert k.read() == "TSP>"
    k.write("x = = 1")
    assert k.read() == "TSP?"
    k.write("localnode.prompts = 0")  # no prompt once prompts are off
    assert errors(k)[0][0] == -285
    k.write("loadscript half")
    k.clear()  # device clear abandons the half-loaded script
    assert k.query("print('ok')") == "ok"


def test_measure_rel_subtracts_the_null_level(k):
    k.write("smua.source.levelv = 0.5 smua.source.output = smua.OUTPUT_ON")
    v = float(k.query("print(smua.measure.v())"))
    k.write("smua.measure.rel.levelv = 0.1 smua.measure.rel.enablev = smua.REL_ON")
    assert float(k.query("print(smua.measure.v())")) == pytest.approx(v - 0.1)
    k.write("smua.reset()")
    assert k.query("print(smua.measure.rel.enablev)") == "0.00000e+00"


def test_buffer_fill_window_keeps_the_newest_readings(k):
    k.write("smua.source.output = smua.OUTPUT_ON smua.nvbuffer1.clear() smua.nvbuffer1.appendmode = 1")
    k.write("smua.nvbuffer1.fillmode = smua.FILL_WINDOW smua.nvbuffer1.fillcount = 3")
    k.write("for v = 1, 5 do smua.source.levelv = v * 0.1 smua.measure.v(smua.nvbuffer1) end")
    assert k.query("print(smua.nvbuffer1.n)") == "3.00000e+00"
    assert k.query("printbuffer(1, 3, smua.nvbuffer1.readings)") == "3.00000e-01, 4.00000e-01, 5.00000e-01"
