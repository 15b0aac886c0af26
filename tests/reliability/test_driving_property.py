"""Property: whatever a user calls — every public driving API of the SMU drivers, the board
driver and the crossbar, and raw commands through the guarded ``write`` — no level beyond the
station's limits reaches an instrument.

The witnesses are on the instruments' side of the wire, so nothing the drivers believe counts:

* every source level and current limit the emulated SMU channels take (whatever command set
  them), every voltage their terminals actually hold while the output is on (in current
  sourcing, the voltage the load develops), and every pulse peak;
* the die's own pulse log (board and SMU pulses): amplitude and gate of every pulse.

The default run makes 1,200 random calls; ``-m slow`` makes 10,000.
"""

from __future__ import annotations

import importlib.resources
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labrram.cells import Cells
from labrram.drivers.board_base import BoardCapabilityError
from labrram.drivers.errors import InstrumentError
from labrram.safety import LimitError
from labrram.sim import instrument as sim_instrument
from labrram.station import parse_station

MAX_V, MAX_GATE, MAX_I = 2.0, 4.0, 5e-4
CALLS = 12  # per example
FAST = settings(max_examples=100, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=834, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
SMUS = ("smu", "b2902", "k2636b")
#: what a refused or impossible call may raise; anything else fails the property
EXPECTED = (LimitError, InstrumentError, BoardCapabilityError, NotImplementedError, ValueError, RuntimeError)


def _station_text() -> str:
    text = importlib.resources.files("labrram").joinpath("stations", "default.toml").read_text()
    text = re.sub(r"max_voltage = [^#\n]+", f"max_voltage = {MAX_V} ", text)
    text = re.sub(r"max_gate_voltage = [^#\n]+", f"max_gate_voltage = {MAX_GATE} ", text)
    text = re.sub(r"max_current = [^#\n]+", f"max_current = {MAX_I} ", text)
    text = text.replace('bench = "default"', 'bench = "driving-property"').replace("labrram://default/", "labrram://driving-property/")
    text = text.replace("rows = 128", "rows = 8").replace("cols = 128", "cols = 8").replace("read_gate = 3.3", "read_gate = 3.0")
    text = text.replace("smu_compliance = 1e-3", "smu_compliance = 1e-4")
    text += '\n[instruments.b2902]\ndriver = "keysight_b2900"\naddress = "USB0::0x0957::0x8C18::MY51140001::INSTR"\nvisa_library = "@labrram"\n'
    text += '\n[instruments.k2636b]\ndriver = "keithley2600"\naddress = "GPIB0::26::INSTR"\nvisa_library = "@labrram"\n'
    return text


@dataclass
class Witness:
    """What the emulated instruments took and held, recorded on their side of the wire."""

    armed: bool = False
    breaches: list[str] = field(default_factory=list)

    def level(self, name: str, value: float) -> None:
        if not self.armed:
            return
        value = abs(float(value))
        bound = {"level_v": MAX_V, "level_i": MAX_I, "limit_i": MAX_I}.get(name)
        if bound is not None and value > bound * (1 + 1e-9):
            self.breaches.append(f"channel {name} = {value:g}")

    def held(self, v: float, what: str) -> None:
        if self.armed and abs(v) > MAX_V * (1 + 1e-9):
            self.breaches.append(f"{what}: {v:g} V at the terminals")


WITNESS = Witness()
#: outcome of every call made: "ok" or the exception's class name
OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def station():
    """The guarded station (three SMUs and the board) with the SMU channels instrumented."""
    channel = sim_instrument.SourceChannel
    saved = (channel.__setattr__, channel._drive, channel.pulse, channel.set_output)

    def setattr_(self, name, value):
        if name in ("level_v", "level_i", "limit_i"):
            WITNESS.level(name, value)
        object.__setattr__(self, name, value)

    def drive(self, duration):
        v, i = saved[1](self, duration)
        WITNESS.held(v, "output")
        return v, i

    def pulse(self, base, peak, width):
        WITNESS.held(peak, "pulse peak")
        WITNESS.held(base, "pulse base")
        return saved[2](self, base, peak, width)

    def set_output(self, on):
        saved[3](self, on)
        if on:  # what is in force the moment the output turns on
            WITNESS.level("limit_i", self.limit_i)
            if self.mode == "CURR":
                WITNESS.held(self.limit_v, "voltage compliance of a current source")

    channel.__setattr__, channel._drive, channel.pulse, channel.set_output = setattr_, drive, pulse, set_output
    try:
        with parse_station(_station_text(), "<driving property>").connect() as st_:
            yield st_
    finally:
        channel.__setattr__, channel._drive, channel.pulse, channel.set_output = saved


def volts(lo: float = 1e-3, hi: float = 30.0):
    """Signed voltages, log-spread over both sides of the limit."""
    mag = st.floats(np.log10(lo), np.log10(hi)).map(lambda e: 10.0**e)
    return st.one_of(st.just(0.0), st.tuples(st.sampled_from((-1.0, 1.0)), mag).map(lambda t: t[0] * t[1]))


def amps():
    return st.floats(-8.0, 0.5).map(lambda e: 10.0**e)


def widths():
    return st.floats(-9.0, -1.0).map(lambda e: 10.0**e)


def number_text(value: float, draw) -> str:
    """A number as a user might type it (plain, scientific, signed), or a keyword."""
    style = draw(st.integers(0, 9))
    if style == 0:
        return draw(st.sampled_from(("MAX", "MIN", "DEF", "max", "Maximum", "INF", "nan")))
    if style in (1, 2):
        return f"{value:e}"
    if style == 3:
        return f"+{value:.6f}" if value >= 0 else f"{value:.6f}"
    return f"{value:g}"


SCPI_TEMPLATES = (
    ":SOUR:VOLT {v}", ":SOURce:VOLTage:LEVel:IMMediate:AMPLitude {v}", "SOUR:VOLT:LEV {v}", ":sour1:volt {v}",
    ":SOUR:VOLT:TRIG {v}", ":SOUR:CURR {i}", ":SENS:CURR:PROT {i}", ":SENS:CURR:PROT:LEV {i}", ":SOUR:LIST:VOLT {v},{v2}",
    ":SOUR:VOLT:STAR {v}", ":SOUR:VOLT:STOP {v}", ":SOUR:PULS:VOLT {v}", ":SOUR:VOLT:LIST {v},{v2}", ":SENS:VOLT:PROT {v}",
    ":SOUR:FUNC CURR", ":SOUR:FUNC VOLT", ":SOUR:FUNC:MODE CURR", ":SOUR:FUNC:MODE VOLT", ":OUTP ON", ":OUTP OFF", "*RST",
    ":SOUR:VOLT:MODE LIST", ":SOUR:VOLT:MODE FIX", ":SOUR:VOLT:MODE SWE", ":INIT", ":READ?", ":MEAS:CURR?", "*IDN?",
    # the optional roots left out, and headers that continue the path of the one before them
    ":VOLT {v}", ":CURR:PROT {i}", ":SOUR:FUNC VOLT;VOLT {v}", ":SENS:CURR:PROT {i};PROT {i}", ":SOUR:LIST:VOLT:APP {v},{v2}",
    ":OUTP1 ON", ":OUTP:SMOD NORM;STAT ON", ":FUNC:MODE CURR", "*RCL 1", ":SOUR:VOLT:CENT {v}", ":LIST:VOLT {v}",
)  # fmt: skip
TSP_TEMPLATES = (
    "smua.source.levelv = {v}", "smua.source.leveli = {i}", "smua.source.limiti = {i}", "smua.source.limitv = {v}",
    "smua.source.func = smua.OUTPUT_DCAMPS", "smua.source.func = smua.OUTPUT_DCVOLTS", "smua.source.output = 1",
    "smua.source.output = smua.OUTPUT_OFF", "smua.reset()", "print(smua.measure.i())", "smub.source.levelv={v}",
    "smua.source.output = smua.OUTPUT_ON", "*RST", "localnode.reset()", "smua.trigger.source.listv({{{v}, {v2}}})",
    "smua.trigger.source.limiti = {i}", "smua.trigger.source.limiti = smua.LIMIT_OFF",
)  # fmt: skip
BOARD_TEMPLATES = (":PULS:SET {r},{c},{v},{g},{w}", ":PULS:RES {r},{c},{v},{g},{w}", ":READ:VOLT {v}", ":ROUT:GATE {g}", ":READ:GATE {g}")


@st.composite
def raw_command(draw, templates):
    """One raw command, or several joined by ``;`` or a newline, with user-typed numbers."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        t = draw(st.sampled_from(templates))
        values = {k: number_text(draw(s), draw) for k, s in (("v", volts()), ("v2", volts()), ("i", amps()), ("g", volts(0.1, 10.0)), ("w", widths()))}
        values.update(r=str(draw(st.integers(0, 7))), c=str(draw(st.integers(0, 7))))
        parts.append(t.format(**values))
    return draw(st.sampled_from((";", "\n", " ; "))).join(parts)


@st.composite
def call(draw):
    """One public call (name, function of the station) with random arguments."""
    kind = draw(st.integers(0, 14))
    smu_name = draw(st.sampled_from(SMUS))
    r, c = draw(st.integers(0, 7)), draw(st.integers(0, 7))
    if kind == 0:
        comp = draw(amps())
        return f"{smu_name}.configure_voltage_source({comp:g})", lambda s: s.instruments[smu_name].configure_voltage_source(comp)
    if kind == 1:
        v = draw(volts())
        return f"{smu_name}.set_voltage({v:g})", lambda s: s.instruments[smu_name].set_voltage(v)
    if kind == 2:
        return f"{smu_name}.enable_output()", lambda s: s.instruments[smu_name].enable_output()
    if kind == 3:
        return f"{smu_name}.measure_current()", lambda s: s.instruments[smu_name].measure_current()
    if kind == 4:
        vs = draw(st.lists(volts(), min_size=1, max_size=4))
        return f"{smu_name}.measure_sweep({vs})", lambda s: s.instruments[smu_name].measure_sweep(vs)
    if kind == 5:
        a, w, b = draw(volts()), draw(widths()), draw(volts(1e-3, 5.0))
        return f"{smu_name}.pulse_voltage({a:g}, {w:g}, {b:g})", lambda s: s.instruments[smu_name].pulse_voltage(a, w, b)
    if kind == 6:
        v = draw(volts())
        return f"crossbar.read_precise({r}, {c}, {v:g})", lambda s: s.crossbar.read_precise(r, c, v)
    if kind == 7:
        vs, g = draw(st.lists(volts(), min_size=1, max_size=4)), draw(volts(0.1, 10.0))
        return f"crossbar.iv_sweep({r}, {c}, {vs}, {g:g})", lambda s: s.crossbar.iv_sweep(r, c, vs, gate=g)
    if kind == 8:
        a, g, w, verb = draw(volts()), draw(volts(0.1, 10.0)), draw(widths()), draw(st.sampled_from(("set", "reset")))
        return f"crossbar.{verb}(({r}, {c}), {g:g}, {a:g}, {w:g})", lambda s: getattr(s.crossbar, verb)(Cells.pairs([(r, c)]), gate=g, amplitude=a, width=w)
    if kind == 9:
        v = draw(volts())
        return f"crossbar.measure(({r}, {c}), {v:g})", lambda s: s.crossbar.measure(Cells.pairs([(r, c)]), voltage=v)
    if kind == 10:
        vs = draw(st.lists(volts(), min_size=8, max_size=8))
        return f"crossbar.mvm({vs})", lambda s: s.crossbar.mvm(vs)
    if kind == 11:
        rv, rg = draw(volts()), draw(volts(0.1, 10.0))
        return f"board.configure({rv:g}, {rg:g})", lambda s: s.instruments["board"].configure(read_voltage=rv, read_gate=rg)
    if kind == 12:
        g = draw(volts(0.1, 10.0))
        return f"board.route_smu({r}, {c}, {g:g})", lambda s: s.instruments["board"].route_smu(r, c, gate=g)
    if kind == 13:
        name = draw(st.sampled_from(("smu", "b2902", "k2636b", "board")))
        cmd = draw(raw_command({"smu": SCPI_TEMPLATES, "b2902": SCPI_TEMPLATES, "k2636b": TSP_TEMPLATES, "board": BOARD_TEMPLATES}[name]))
        return f"{name}.write({cmd!r})", lambda s: s.instruments[name].write(cmd)
    return f"{smu_name}.disable_output()", lambda s: s.instruments[smu_name].disable_output()


def _die_breaches(station, start: int) -> list[str]:
    records = station.bench.chip.pulse_log.records[start:]
    out = []
    for rec in records[np.abs(records["amplitude"]) > MAX_V * (1 + 1e-9)]:
        out.append(f"die pulse of {rec['amplitude']:g} V (source {rec['source']})")
    for rec in records[np.abs(records["gate"]) > MAX_GATE * (1 + 1e-9)]:
        out.append(f"die pulse with gate {rec['gate']:g} V (source {rec['source']})")
    return out


def _run(station, calls) -> None:
    start = len(station.bench.chip.pulse_log.records)
    WITNESS.breaches.clear()
    WITNESS.armed = True
    done = []
    try:
        for name, fn in calls:
            done.append(name)
            try:
                fn(station)
                OUTCOMES["ok"] += 1
            except EXPECTED as exc:
                OUTCOMES[type(exc).__name__] += 1
            breaches = WITNESS.breaches + _die_breaches(station, start)
            assert not breaches, f"after {done}: {breaches}"
    finally:
        WITNESS.armed = False
        for name in ("smu", "b2902", "k2636b", "board"):  # back to a known state for the next example
            inst = station.instruments[name]
            try:
                inst.shutdown()
            except Exception:  # noqa: BLE001 - a wedged instrument is reset below
                pass
            try:
                inst.clear_errors() if hasattr(inst, "clear_errors") else None
            except Exception:  # noqa: BLE001
                pass
        station.bench.outputs_on() == [] or pytest.fail(f"outputs left on: {station.bench.outputs_on()}")


@FAST
@given(calls=st.lists(call(), min_size=CALLS, max_size=CALLS))
def test_no_level_beyond_the_limits_reaches_an_instrument(station, calls):
    _run(station, calls)


@pytest.mark.slow
@SLOW
@given(calls=st.lists(call(), min_size=CALLS, max_size=CALLS))
def test_no_level_beyond_the_limits_reaches_an_instrument_10000_calls(station, calls):
    _run(station, calls)


def test_the_random_calls_drove_the_instruments():
    """The property means something only if many calls went through and many were refused."""
    total = sum(OUTCOMES.values())
    if total == 0:
        pytest.skip("the property test did not run in this session")
    assert OUTCOMES["ok"] > 0.3 * total and OUTCOMES["LimitError"] > 0.1 * total, dict(OUTCOMES)
