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
            "*CLS;:SOUR:VOLT 0.5;:SENS:CURR:PROT 1", ":SOUR:LIST:VOLT 0.1,0.2,9", ":SOUR:CURR 0.5", ":SENS:CURR:PROT MAX"],
    "b2902": [":SOUR1:VOLT 12", ":SOUR2:VOLT:TRIG 4", ":SOUR:PULS:VOLT 9", ":SOUR:VOLT:STOP 5"],
    "k2636b": ["smua.reset()", "reset()", "smub.reset ()", "smua.source.func = smua.OUTPUT_DCAMPS", "smua.source.func=0",
               "smua.source.levelv = 20", "smub.source.limiti=1", "smua.source.levelv = 1e3 print('x')"],
    "board": [":READ:VOLT 0.2\n:READ:VOLT 7", ":PULS:SET 0,0,4.0,1.8,1e-6", ":PULS:RES 1,1,2.0,9.0,1e-6", ":ROUT:GATE 9", ":READ:VOLT -7"],
}  # fmt: skip
ALLOWED = {"smu": [":SOUR:VOLT 0.1", ":SOUR:VOLT DEF", "*IDN?", ":SENS:CURR:PROT 1e-4"], "board": [":READ:VOLT 0.2", ":ARR:SIZE?"]}


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
