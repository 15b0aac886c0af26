import pytest

from labrram.sim.scpi import Call, compile_header, split_outside


@pytest.mark.parametrize(
    "header",
    [":SOUR:VOLT:LEV:IMM:AMPL", ":SOURCE:VOLTAGE", ":sour1:volt", ":VOLT", ":volt:lev", ":Source:Voltage:Level:Immediate:Amplitude"],
)
def test_header_short_long_optional(header):
    rx = compile_header("[:SOURce[1]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    assert rx.match(header)


@pytest.mark.parametrize("header", [":SOURC:VOLT", ":SOUR:VOL", ":SOUR:VOLT:LEVE", ":VOLT:BOGUS"])
def test_header_rejects_partial_mnemonics(header):
    rx = compile_header("[:SOURce[1]]:VOLTage[:LEVel][:IMMediate][:AMPLitude]")
    assert not rx.match(header)


def test_suffix_is_captured():
    rx = compile_header(":SOURce[1]:FUNCtion:MODE")
    call = Call(":SOUR2:FUNC:MODE", False, [], list(rx.match(":SOUR2:FUNC:MODE").groups()))
    assert call.suffix() == 2
    call = Call(":SOUR:FUNC:MODE", False, [], list(rx.match(":SOUR:FUNC:MODE").groups()))
    assert call.suffix() == 1


def test_split_respects_quotes_parens_and_blocks():
    assert split_outside(":A 1;:B 'x;y';:C (@1,2)", ";") == [":A 1", ":B 'x;y'", ":C (@1,2)"]
    block = "#14;,;,"
    assert split_outside(f":D {block};:E", ";") == [f":D {block}", ":E"]


def test_call_parsers():
    c = Call(":X", False, ["ON", "0", "MAX", "1e-3", "'curr'"], [])
    assert c.boolean(0) is True and c.boolean(1) is False
    assert c.number(2, 0, 10) == 10
    assert c.number(3) == 1e-3
    assert c.string(4) == "curr"
    with pytest.raises(Exception):
        c.number(3, 0, 1e-4)
