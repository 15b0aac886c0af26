"""The shared instrument base: error queue, timeouts, garbage, shutdown, Ctrl-C."""

import os
import signal
import threading

import pytest

from labrram.drivers.base import (
    Instrument,
    InstrumentError,
    InstrumentTimeout,
    ReplyError,
    deferred_interrupt,
    open_transport,
    parse_block,
)


def test_check_errors_drains_and_reports_every_error(fake_transport):
    inst = Instrument(fake_transport, name="dut")
    fake_transport.replies.extend([b'-113,"Undefined header"\n', b'-222,"Data out of range"\n', b'0,"No error"\n'])
    with pytest.raises(InstrumentError, match=r"dut reported: -113: Undefined header; -222: Data out of range"):
        inst.check_errors()


def test_missing_reply_names_the_command(fake_transport):
    inst = Instrument(fake_transport, name="dut")
    with pytest.raises(InstrumentTimeout, match=r"after b'\*IDN\?\\n'"):
        inst.query("*IDN?")


def test_non_numeric_reply(fake_transport):
    inst = Instrument(fake_transport, name="dut")
    fake_transport.replies.append(b"hello\n")
    with pytest.raises(ReplyError, match="not a number"):
        inst.query_float(":X?")


def test_block_parsing():
    assert parse_block(b"#15hello\n") == (b"hello", b"\n")
    for bad in (b"hello", b"#", b"#2a", b"#15hel"):
        with pytest.raises(ReplyError):
            parse_block(bad)


def test_closed_instrument_refuses(fake_transport):
    inst = Instrument(fake_transport)
    inst.close()
    assert fake_transport.closed
    with pytest.raises(InstrumentError, match="closed"):
        inst.write("*RST")


def test_bad_addresses_are_explained():
    with pytest.raises(ValueError, match="unrecognised instrument address"):
        open_transport("my keithley")
    with pytest.raises(InstrumentError, match="cannot open"):
        open_transport("labrram://default/nothing")


def test_ctrl_c_waits_for_the_exchange_to_finish():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("exchange completed")
    assert done == ["exchange completed"]


def test_deferral_is_a_noop_off_the_main_thread():
    result = []

    def work():
        with deferred_interrupt():
            result.append(threading.current_thread().name)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert result
