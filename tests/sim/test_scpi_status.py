"""The IEEE 488.2 status model and the SCPI STATus subsystem of the shared SCPI engine, checked
against the standard's rules on every SCPI emulator of the bench."""

import pytest
import pyvisa

from labrram.sim.scpi_status import REGISTER_MASK, StatusRegister, esr_bit_for

RESOURCES = {"2400": "GPIB0::24::INSTR", "b2902": "USB0::0x0957::0x8C18::MY51140001::INSTR", "board": None}


@pytest.fixture(params=["2400", "b2902"])
def smu(request, bench):
    rm = pyvisa.ResourceManager("@labrram")
    names = {r for r in rm.list_resources()}
    address = RESOURCES[request.param]
    if address not in names:
        address = next(n for n in names if ("0x0957" in n if request.param == "b2902" else n.startswith("GPIB")))
    inst = rm.open_resource(address, read_termination="\n", write_termination="\n")
    inst.write("*CLS")
    yield inst
    inst.close()


def test_register_transition_filters():
    reg = StatusRegister()
    reg.set_bits(0b100)
    assert reg.event == 0b100 and reg.condition == 0b100  # PTR all ones: rising edges latch
    assert reg.read_event() == 0b100 and reg.event == 0  # reading clears the event register
    reg.set_bits(0b100, on=False)
    assert reg.event == 0  # NTR 0: falling edges do not latch
    reg.ntr, reg.ptr = 0b100, 0
    reg.set_bits(0b100)
    assert reg.event == 0
    reg.set_bits(0b100, on=False)
    assert reg.event == 0b100
    reg.enable = 0b100
    assert reg.summary
    reg.preset()
    assert (reg.enable, reg.ptr, reg.ntr) == (0, REGISTER_MASK, 0) and not reg.summary


@pytest.mark.parametrize("code,bit", [(-113, 5), (-222, 4), (-350, 3), (-410, 2), (803, 3)])
def test_error_classes_set_their_esr_bit(code, bit):
    assert esr_bit_for(code) == 1 << bit


def test_esr_collects_error_classes_and_clears_on_read(smu):
    smu.write(":NO:SUCH:HEADER")  # command error -> CME (bit 5)
    smu.write(":SOUR:VOLT 1e6")  # -222 -> EXE (bit 4)
    assert int(smu.query("*ESR?")) == 0b110000
    assert int(smu.query("*ESR?")) == 0


def test_ese_sre_roundtrip_and_range(smu):
    smu.write("*ESE 60")
    assert smu.query("*ESE?") == "60"
    smu.write("*SRE 255")
    assert smu.query("*SRE?") == str(255 & ~64)  # bit 6 is never enabled
    smu.write("*ESE 256")
    assert smu.query(":SYST:ERR?").startswith("-222")
    assert smu.query("*ESE?") == "60"
    smu.write("*RST")  # *RST leaves the status enables alone
    assert smu.query("*ESE?") == "60"


def test_stb_eav_esb_mss(smu):
    assert int(smu.query("*STB?")) & 0b0110_0100 == 0
    smu.write(":NO:SUCH:HEADER")
    stb = int(smu.query("*STB?"))
    assert stb & 4  # EAV: the error queue holds an error
    assert not stb & 32  # ESB needs *ESE
    smu.write("*ESE 32")
    assert int(smu.query("*STB?")) & 32
    assert not int(smu.query("*STB?")) & 64  # MSS needs *SRE
    smu.write("*SRE 32")
    assert int(smu.query("*STB?")) & 64
    assert smu.read_stb() & 64  # the serial poll sees it too
    smu.write("*CLS")  # clears SESR and the queue, keeps the enables
    assert int(smu.query("*STB?")) & 0b0110_0100 == 0
    assert smu.query("*ESE?;*SRE?") == "32;32"


def test_mav_in_compound_message_and_serial_poll(smu):
    assert smu.query("*IDN?;*STB?").split(";")[-1] and int(smu.query("*IDN?;*STB?").rsplit(";", 1)[1]) & 16
    assert not int(smu.query("*STB?")) & 16
    smu.write("*IDN?")
    assert smu.read_stb() & 16  # response waiting: MAV
    smu.read()
    assert not smu.read_stb() & 16


def test_opc_sets_esr_bit_and_opc_query(smu):
    smu.write("*OPC")
    assert int(smu.query("*ESR?")) & 1
    assert smu.query("*OPC?") == "1"
    smu.write("*WAI")
    assert smu.query(":SYST:ERR?") == '+0,"No error"'


def test_status_subsystem(smu):
    smu.write(":STAT:PRES")
    assert smu.query(":STAT:OPER:ENAB?") == "0"
    assert smu.query(":STAT:QUES:ENAB?") == "0"
    smu.write(":STAT:OPER:ENAB #H400")
    assert smu.query(":STAT:OPER:ENAB?") == "1024"
    smu.write(":STATUS:QUESTIONABLE:ENABLE 3")
    assert smu.query(":STAT:QUES:ENAB?") == "3"
    int(smu.query(":STAT:OPER?"))
    assert smu.query(":STAT:OPER?") == "0"  # the read cleared it
    int(smu.query(":STAT:OPER:COND?"))
    int(smu.query(":STAT:QUES:EVEN?"))
    smu.write(":STAT:PRES")
    assert smu.query(":STAT:OPER:ENAB?") == "0"
    assert smu.query(":SYST:ERR?") == '+0,"No error"'


def test_register_queries_follow_form_sreg(smu):
    smu.write(":STAT:OPER:ENAB 1024;:FORM:SREG HEX")
    assert smu.query(":STAT:OPER:ENAB?") == "#H400"
    smu.write(":FORM:SREG BIN")
    assert smu.query(":STAT:OPER:ENAB?") == "#B10000000000"
    smu.write(":FORM:SREG ASC")
    assert smu.query(":STAT:OPER:ENAB?") == "1024"


def test_colon_before_common_command(smu):
    smu.write(":SOUR:VOLT 1")
    smu.write(":*RST")
    assert float(smu.query(":SOUR:VOLT?")) == 0.0
    assert smu.query(":*IDN?") == smu.query("*IDN?")
    assert smu.query(":SYST:ERR?") == '+0,"No error"'


def test_2400_measurement_register_summary_bit(bench):
    rm = pyvisa.ResourceManager("@labrram")
    k = rm.open_resource("GPIB0::24::INSTR", read_termination="\n", write_termination="\n")
    k.write("*RST;*CLS;:STAT:PRES")
    k.write(":STAT:MEAS:ENAB 64")  # RAV: reading available
    k.write("*SRE 1")
    k.write(":OUTP ON;:INIT")
    stb = k.read_stb()
    assert stb & 1 and stb & 64  # MSB and MSS
    assert int(k.query(":STAT:MEAS?")) & 64
    k.close()


def test_the_crossbar_board_shares_the_status_model(bench):
    rm = pyvisa.ResourceManager("@labrram")
    board = rm.open_resource("ASRL1::INSTR", read_termination="\n", write_termination="\n")
    board.write("*CLS;*ESE 32;*SRE 32")
    board.write(":NO:SUCH")
    assert int(board.query("*STB?")) & (4 | 32 | 64) == 4 | 32 | 64
    assert int(board.query("*ESR?")) == 32
    assert board.query(":SYST:ERR?").startswith("-113")
    assert board.query(":STAT:OPER?") == "0"
    board.close()
