"""Limits before the first byte, everywhere: raw commands that set a source level, a compliance,
a pulse or a read level are refused beyond the station's limits unless the guard is lifted."""

from __future__ import annotations

import logging

import pytest

from labrram.cells import Cells
from labrram.safety import LimitError
from labrram.station import load_station

REFUSED = {
    "smu": [":SOUR:VOLT 0.1\n:SOUR:VOLT 9", "*RST", ":SYST:PRES", "*CLS;*RST", ":SOUR:FUNC CURR", ":SOUR:FUNC:MODE CURRent",
            ":SOUR:VOLT 20", ":source:voltage:level:immediate:amplitude 7", ":SOUR:VOLT MAX", ":SOUR1:VOLT -3.5",
            "*CLS;:SOUR:VOLT 0.5;:SENS:CURR:PROT 1", ":SOUR:LIST:VOLT 0.1,0.2,9", ":SOUR:CURR 0.5", ":SENS:CURR:PROT MAX",
            # the roots SOURce and SENSe are optional, and after ';' a header continues the path before it
            ":VOLT 100", ":CURR:PROT 0.5", ":SOUR:FUNC VOLT;VOLT 100", ":SENS:CURR:PROT 1e-4;PROT 0.5", ":SOUR:VOLT:RANG 20;LEV 9",
            ":SOUR:LIST:VOLT:APP 1,100", ":SOUR:VOLT:CENT 0", ":SOUR:VOLT:SPAN 200", "*RCL 1", ":SOUR:VOLT 1 V"],
    "b2902": [":SOUR1:VOLT 12", ":SOUR2:VOLT:TRIG 4", ":SOUR:PULS:VOLT 9", ":SOUR:VOLT:STOP 5", ":FUNC:MODE CURR", ":SOUR2:LIST:VOLT:APP 1,100",
              ":SENS:CURR:PROT:POS 1", ":SOUR2:LIST:CURR 0.5", ":SOUR2:VOLT:MODE LIST;:SOUR2:LIST:VOLT 0.1\n:LIST:VOLT 7"],
    "k2636b": ["smua.reset()", "reset()", "smub.reset ()", "smua.source.func = smua.OUTPUT_DCAMPS", "smua.source.func=0",
               "smua.source.levelv = 20", "smub.source.limiti=1", "smua.source.levelv = 1e3 print('x')",
               "*RST", "localnode.reset()", "smua.trigger.source.listv({0.1, 100})", "smua.trigger.source.limiti = 1",
               "smua.trigger.source.limiti = smua.LIMIT_OFF", "smua.trigger.source.linearv(0, 100, 10)", "smub.trigger.source.listi({1e-3})"],
    "board": [":READ:VOLT 0.2\n:READ:VOLT 7", ":PULS:SET 0,0,4.0,1.8,1e-6", ":PULS:RES 1,1,2.0,9.0,1e-6", ":ROUT:GATE 9", ":READ:VOLT -7"],
}  # fmt: skip
ALLOWED = {"smu": [":SOUR:VOLT 0.1", ":SOUR:VOLT DEF", "*IDN?", ":SENS:CURR:PROT 1e-4", ":SENS:FUNC 'CURR'", ":SOUR:FUNC VOLT;VOLT 0.5",
                   ":SENS:CURR:PROT 1e-4;PROT 2e-4", ":SOUR:VOLT:RANG 20", ":SOUR:VOLT 0.1;:SENS:CURR:NPLC 1"],
           "k2636b": ["smua.trigger.source.listv({0.1, 0.2})", "smua.trigger.source.limiti = 1e-4"], "board": [":READ:VOLT 0.2", ":ARR:SIZE?"]}  # fmt: skip


@pytest.fixture(scope="module")
def station():
    text = (__import__("importlib.resources").resources.files("labrram").joinpath("stations", "default.toml").read_text())
    text += '\n[instruments.b2902]\ndriver = "keysight_b2900"\naddress = "USB0::0x0957::0x8C18::MY51140001::INSTR"\nvisa_library = "@labrram"\n'
    text += '\n[instruments.k2636b]\ndriver = "keithley2600"\naddress = "GPIB0::26::INSTR"\nvisa_library = "@labrram"\n'
    from labrram.station import parse_station

    with parse_station(text, "<guard station>").connect() as st:
        yield st


@pytest.mark.parametrize("name, command", [(n, c) for n, cs in REFUSED.items() for c in cs])
def test_raw_source_commands_beyond_the_limits_are_refused_before_any_byte(station, name, command):
    inst = station.instruments[name]
    emulator = station.bench.instruments[{"smu": "k2400", "b2902": "b2902", "k2636b": "k2636b", "board": "board"}[name]]
    before = emulator.received
    with pytest.raises(LimitError):
        inst.write(command)
    assert emulator.received == before  # nothing left the driver


@pytest.mark.parametrize("name, command", [(n, c) for n, cs in ALLOWED.items() for c in cs])
def test_commands_within_the_limits_pass(station, name, command):
    inst = station.instruments[name]
    (inst.query if command.endswith("?") else inst.write)(command)


def test_the_guard_can_be_lifted_for_one_block_and_says_so(station, caplog):
    smu = station.instruments["smu"]
    with caplog.at_level(logging.WARNING, logger="labrram.drivers"), smu.unguarded("calibrating the 2400's range"):
        smu.write(":SOUR:VOLT 2.5")  # beyond nothing here; the point is the log and the scope
    assert "raw-command guard lifted: calibrating the 2400's range" in caplog.text
    with pytest.raises(LimitError):
        smu.write(":SOUR:VOLT 20")  # guarded again
    smu.write(":SOUR:VOLT 0")


def test_an_iv_sweep_beyond_the_limits_sends_nothing(station):
    k2400 = station.bench.instruments["k2400"]
    before, board_before = k2400.received, station.bench.instruments["board"].received
    with pytest.raises(LimitError):
        station.crossbar.iv_sweep(0, 0, [0.1, 7.0])
    with pytest.raises(LimitError):
        station.crossbar.read_precise(0, 0, voltage=9.0)
    with pytest.raises(LimitError):
        station.crossbar.iv_sweep(0, 0, [0.1], gate=9.0)
    assert k2400.received == before and station.bench.instruments["board"].received == board_before
    station.crossbar.set(Cells.pairs([(0, 0)]), gate=1.8)  # and the station still works


def test_an_output_turns_on_only_where_this_session_set_the_compliance(station):
    """The instrument's own current limit is unknown to a new session (a 2600B resets to 100 mA)."""
    k = station.instruments["k2636b"]
    emulator = station.bench.instruments["k2636b"]
    before = emulator.received
    for raw in ("smub.source.output = smub.OUTPUT_ON", "smub.source.output=1"):
        with pytest.raises(LimitError, match="output smub refused: no current compliance"):
            k.write(raw)
    assert emulator.received == before
    k.write("smub.source.limiti = 1e-4 smub.source.output = 1")  # the compliance first, in the same chunk
    k.write("smub.source.output = 0")
    with pytest.raises(LimitError, match="refused: no current compliance"):
        k.pulse_voltage(0.5, 1e-4)  # smua: never configured in this session


def test_a_query_or_a_refused_message_does_not_count_as_setting_the_compliance(station):
    b = station.instruments["b2902"]
    b.query(":SENS2:CURR:PROT?")  # reading the instrument's limit does not set it
    with pytest.raises(LimitError, match="output 2 refused"):
        b.write(":OUTP2 ON")
    with pytest.raises(LimitError):  # refused as a whole: its compliance never reached the instrument
        b.write(":SENS2:CURR:PROT 1e-4;:SOUR2:VOLT 9")
    with pytest.raises(LimitError, match="output 2 refused"):
        b.write(":OUTP2 ON")
    k = station.instruments["k2636b"]
    with pytest.raises(LimitError, match="output smua refused"):  # a comparison is not an assignment
        k.write("if smua.source.limiti == 1 then smua.source.output = 1 end")


def test_every_way_of_turning_an_output_on_needs_this_sessions_compliance():
    """``:OUTP1 ON``, a relative ``STAT ON``, and the measurements that turn an output on by
    themselves (a 2400's ``:MEAS?``, a B2900's ``:INIT``, ``:READ?``, ``:MEAS?``) — on a new session."""
    text = (__import__("importlib.resources").resources.files("labrram").joinpath("stations", "default.toml").read_text())
    text += '\n[instruments.b2902]\ndriver = "keysight_b2900"\naddress = "USB0::0x0957::0x8C18::MY51140001::INSTR"\nvisa_library = "@labrram"\n'
    from labrram.station import parse_station

    with parse_station(text, "<output station>").connect() as st:
        k2400, b2902 = st.instruments["smu"], st.instruments["b2902"]
        before = (st.bench.instruments["k2400"].received, st.bench.instruments["b2902"].received)
        for inst, raw in ((k2400, ":OUTP1 ON"), (k2400, ":OUTP:SMOD NORM;STAT ON"), (k2400, ":MEAS:CURR?"), (b2902, ":INIT (@1)"),
                          (b2902, ":OUTP2:PROT ON;STAT ON"), (b2902, ":READ? (@2)"), (b2902, ":MEAS:CURR? (@1,2)")):  # fmt: skip
            with pytest.raises(LimitError, match="no current compliance"):
                inst.write(raw)
        assert (st.bench.instruments["k2400"].received, st.bench.instruments["b2902"].received) == before  # nothing sent
        b2902.write(":SENS2:CURR:PROT 1e-4")  # channel 2 only
        b2902.write(":OUTP2 ON;:OUTP2 OFF")
        with pytest.raises(LimitError, match="output on refused"):
            b2902.write(":MEAS:CURR? (@1,2)")  # channel 1 still unknown
        b2902.write(":SENS:CURR:PROT 1e-4;:SENS:CURR:PROT:POS 1e-4")
        with pytest.raises(LimitError):
            b2902.write("*RCL 1")  # a saved setup's limits
