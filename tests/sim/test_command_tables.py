"""Walk each SCPI emulator's command table (the manual's command tree, kept as data): every
command parses in its long and its shortest form, every query answers in the manual's format,
every ``*RST`` default holds, ``MIN``/``MAX``/``DEF`` queries answer the limits, and every row
marked ``emulated`` is served by a handler of the emulator (not the generic store)."""

from __future__ import annotations

import pytest
import pyvisa

from labrram.sim.keithley2400 import Keithley2400
from labrram.sim.scpi_table import limit_answer, response_pattern

INSTRUMENTS = {
    "2400": (Keithley2400, "GPIB0::24::INSTR", ":OUTP ON;:TRAC:FEED:CONT NEXT;:INIT"),
}
try:
    from labrram.sim.keysight_b2900 import KeysightB2902

    if KeysightB2902.command_file:
        INSTRUMENTS["b2902"] = (KeysightB2902, "USB0::0x0957::0x8C18::MY51140001::INSTR", ":OUTP ON;:TRAC:FEED:CONT NEXT;:INIT")
except ImportError:  # pragma: no cover
    pass


def _rows(name):
    cls = INSTRUMENTS[name][0]
    return [pytest.param(name, spec, id=f"{name}:{spec.header}") for spec in cls.command_specs()]


ALL_ROWS = [p for name in INSTRUMENTS for p in _rows(name)]


@pytest.fixture(scope="module")
def sessions():
    """One bench for the module (rows are independent: each starts from *RST;*CLS)."""
    from labrram import sim

    bench = sim.configure_bench("default")
    rm = pyvisa.ResourceManager("@labrram")
    out = {}
    for name, (_, address, _) in INSTRUMENTS.items():
        out[name] = rm.open_resource(address, read_termination="\n", write_termination="\n", timeout=2000)
    yield out
    for inst in out.values():
        inst.close()
    bench.shutdown()


def _errors(inst) -> list[str]:
    out = []
    while True:
        e = inst.query(":SYST:ERR?")
        if e.startswith(("+0,", "0,")):
            return out
        out.append(e)


def _ask(inst, text: str) -> str:
    inst.write(text)
    return inst.read()


@pytest.mark.parametrize("name,spec", ALL_ROWS)
def test_row_is_served_by_the_right_handler(name, spec):
    cls = INSTRUMENTS[name][0]
    probe = cls.__new__(cls)  # header matching needs only the class's tables
    for form in spec.forms():
        _, entry, _ = probe._match([form])
        if spec.support == "emulated":
            assert entry.spec is None, f"{form}: marked emulated but served by the generic store"


def _forms(name, spec):
    """The long form and the shortest form that names only this row (``:FUNC`` alone is both
    ``[:SENSe]:FUNCtion`` and ``[:SOURce]:FUNCtion`` on a 2400: then the root node stays)."""
    cls = INSTRUMENTS[name][0]
    long_form, short_form = spec.forms()
    others = [rx for rx, other in cls._spec_regex if other is not spec]
    if spec.header.startswith("[") and any(rx.match(short_form) for rx in others):
        root = long_form.split(":")[1]
        short_form = ":" + root.rstrip("0123456789")[:4] + short_form
    return long_form, short_form


@pytest.mark.parametrize("name,spec", ALL_ROWS)
def test_row_walk(name, spec, sessions):
    inst = sessions[name]
    setup = INSTRUMENTS[name][2]
    long_form, short_form = _forms(name, spec)
    # *RST defaults, in both forms
    if spec.queryable and spec.rst is not None:
        for form in (long_form, short_form):
            inst.write("*RST;*CLS")
            assert _ask(inst, form + "?") == spec.rst, f"{form}? after *RST"
            assert _errors(inst) == []
    # queries answer in the manual's format (with readings in the instrument and the buffer)
    if spec.queryable:
        inst.write("*RST;*CLS")
        inst.write(setup)
        query = short_form + "?" + (f" {spec.test}" if spec.form == "query" and spec.test else "")
        answer = _ask(inst, query)
        assert _errors(inst) == [], query
        if not answer.startswith("#0"):
            assert response_pattern(spec).match(answer), f"{query} -> {answer!r}"
        # MIN / MAX / DEF answer the limits, not the present value
        if spec.form == "both":
            for word in ("MIN", "MAX", "DEF"):
                expected = limit_answer(spec, word)
                if expected is not None:
                    assert _ask(inst, f"{long_form}? {word}") == expected, f"{long_form}? {word}"
    # commands parse with their test value; stored settings read back
    if spec.settable:
        inst.write("*RST;*CLS")
        inst.write(":OUTP ON")
        value = spec.test or (
            f"{spec.minimum:g}" if spec.minimum is not None else (spec.values[0] if spec.values and spec.type != "none" else "")
        )
        for form in (long_form, short_form):
            inst.write(f"{form} {value}".rstrip())
            errors = _errors(inst)
            if "ignored when idle" in spec.note:  # a trigger with no run waiting for it
                errors = [e for e in errors if not e.startswith("-211")]
            assert errors == [], f"{form} {value}"
        if spec.form == "both" and spec.support == "stored" and value:
            assert _ask(inst, short_form + "?") == spec.canonical(value)
        inst.write("*RST;*CLS")


def test_unknown_header_still_refused(sessions):
    for inst in sessions.values():
        inst.write(":SOUR:VOLT:BOGUS 1")
        assert _errors(inst)[0].startswith("-113")


def test_stored_setting_is_validated(sessions):
    inst = sessions["2400"]
    inst.write(":DISP:DIG 9")
    assert _errors(inst)[0].startswith("-222")
    inst.write(":CALC2:FEED BOGUS")
    assert _errors(inst)[0].startswith("-224")
    inst.write(":DISP:DIG 5")
    assert inst.query(":DISP:DIG?") == "5"
    inst.write("*RST")
    assert inst.query(":DISP:DIG?") == "7"


# --- the Keithley 2636B (TSP): its documented attributes and functions -------------------------
from labrram.sim.scpi_table import load_table  # noqa: E402

TSP_ROWS = [pytest.param(spec, id=spec.header) for spec in load_table("keithley2600_attributes.csv")]
TSP_NUMBER = r"-?\d\.\d{5}e[+-]\d\d"
TSP_FORMAT = {"nrf": TSP_NUMBER, "nr1": TSP_NUMBER, "bool": "true|false|" + TSP_NUMBER, "string": ".*", "none": ".*"}


@pytest.fixture(scope="module")
def tsp():
    from labrram import sim

    bench = sim.configure_bench("default")
    rm = pyvisa.ResourceManager("@labrram")
    inst = rm.open_resource("GPIB0::26::INSTR", read_termination="\n", write_termination="\n", timeout=2000)
    yield inst
    inst.close()
    bench.shutdown()


def _tsp_errors(inst) -> list[str]:
    out = []
    while int(float(inst.query("print(errorqueue.count)"))):
        out.append(inst.query("print(errorqueue.next())"))
    return out


@pytest.mark.parametrize("spec", TSP_ROWS)
def test_tsp_row_walk(spec, tsp):
    import re

    tsp.write("reset() errorqueue.clear() smua.nvbuffer1.clear() smua.nvbuffer2.clear()")
    if spec.queryable:
        answer = tsp.query(f"print({spec.header})")
        assert _tsp_errors(tsp) == [], spec.header
        assert re.fullmatch(TSP_FORMAT[spec.type], answer), f"{spec.header} -> {answer!r}"
        if spec.rst is not None:
            assert answer == spec.rst, f"{spec.header} after reset()"
    if spec.form == "both" and spec.test is not None:
        tsp.write(f"{spec.header} = {spec.test}")
        assert _tsp_errors(tsp) == [], f"{spec.header} = {spec.test}"
        assert tsp.query(f"print({spec.header})") == tsp.query(f"print({spec.test})")
        if spec.minimum is not None and spec.type in ("nrf", "nr1"):
            tsp.write(f"{spec.header} = {spec.minimum - max(abs(spec.minimum), 1.0)}")
            assert _tsp_errors(tsp), f"{spec.header} below its minimum was accepted"
    if spec.form == "event":
        tsp.write("smua.source.output = smua.OUTPUT_ON")
        tsp.write(f"x = {spec.header}({spec.test or ''})")
        tsp.clear()  # drop what the function printed
        assert _tsp_errors(tsp) == [], f"{spec.header}({spec.test or ''})"
    tsp.write("reset() errorqueue.clear()")
    tsp.clear()


def test_the_instruments_page_holds_the_current_counts():
    from pathlib import Path

    from labrram.sim.command_summary import markdown

    page = (Path(__file__).resolve().parents[2] / "docs" / "instruments.md").read_text()
    assert markdown() in page, "docs/instruments.md is stale: paste `python -m labrram.sim.command_summary`"
