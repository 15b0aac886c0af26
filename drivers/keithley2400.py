"""Keithley 2400 SourceMeter driver (SCPI over GPIB / RS-232 / any VISA interface)."""

from __future__ import annotations

import re

from typing import Sequence

import numpy as np

from .guard import scpi_events, scpi_guard
from .base import ReplyError, Setting, in_range, parse_bool
from .smu import SourceMeter

#: the 2400's source list holds at most 100 points
LIST_POINTS = 100


class Keithley2400(SourceMeter):
    """Keithley 2400 as a voltage source measuring current.

    Settings are declarative properties validated before any byte is sent::

        smu.nplc = 0.1                 # -> ":SENS:CURR:NPLC 0.1"
        smu.compliance_current = 1e-4  # checked against the bench limit first
    """

    guard = scpi_guard  # raw source-level commands are refused beyond the limits too

    def _output_events(self, text: str) -> list[tuple[str, str]]:
        return [(kind, "") for kind, _ in scpi_events(text)]  # one channel, whatever the suffix

    source_voltage = Setting(
        ":SOUR:VOLT?", ":SOUR:VOLT {:.6g}", validate=lambda inst, v: inst.check_level(v), doc="DC source level, V."
    )
    compliance_current = Setting(
        ":SENS:CURR:PROT?",
        ":SENS:CURR:PROT {:.6g}",
        validate=lambda inst, v: inst.check_compliance(v),
        doc="Current compliance, A.",
    )
    nplc = Setting(":SENS:CURR:NPLC?", ":SENS:CURR:NPLC {:g}", validate=in_range(0.01, 10.0, "NPLC"), doc="Integration time in power-line cycles.")
    auto_zero = Setting(
        ":SYST:AZER?", ":SYST:AZER {}", parse=parse_bool, validate=lambda inst, v: "ON" if v else "OFF", doc="Auto zero (slower, drift-free)."
    )
    compliance_tripped = Setting(":SENS:CURR:PROT:TRIP?", None, parse=parse_bool, doc="Whether the last reading hit the compliance.")

    def configure_voltage_source(self, compliance: float, nplc: float = 1.0, auto_zero: bool = False) -> None:
        compliance = self.check_compliance(compliance)
        nplc = in_range(0.01, 10.0, "NPLC")(self, nplc)
        self.write(
            ":SOUR:FUNC VOLT;:SOUR:VOLT:MODE FIX;:SOUR:VOLT:RANG:AUTO ON;"
            f":SENS:FUNC 'CURR';:SENS:CURR:PROT {compliance:.6g};:SENS:CURR:RANG:AUTO ON;"
            f":SENS:CURR:NPLC {nplc:g};:SYST:AZER {'ON' if auto_zero else 'OFF'};"
            ":FORM:ELEM VOLT,CURR;:TRIG:COUN 1"
        )
        self.check_errors()

    def set_voltage(self, volts: float) -> None:
        self.write(f":SOUR:VOLT {self.check_level(volts):.6g}")

    def get_voltage(self) -> float:
        return self.query_float(":SOUR:VOLT?", idempotent=True)

    def enable_output(self) -> None:
        self.write(":OUTP ON")

    def disable_output(self) -> None:
        self.write(":OUTP OFF")

    @property
    def output_enabled(self) -> bool:
        return self.retrying(lambda: self._bool(":OUTP?"), "':OUTP?'")

    def _currents(self, reply: str, n: int) -> np.ndarray:
        """Currents out of a ``VOLT,CURR`` reading list."""
        try:
            values = np.array([float(x) for x in reply.split(",")])
        except ValueError:
            raise ReplyError(f"{self.name}: reading {reply[:80]!r} is not numeric") from None
        if values.size != 2 * n:
            raise ReplyError(f"{self.name}: expected {n} VOLT,CURR readings, got {values.size} values")
        return values[1::2]

    def measure_current(self) -> float:
        return self.retrying(lambda: float(self._currents(self.query(":READ?"), 1)[0]), "':READ?'")

    def measure_sweep(self, voltages: Sequence[float]) -> np.ndarray:
        """List sweep in chunks of 100 points: one ``:READ?`` per chunk."""
        v = self.check_sweep(voltages)
        self.require_compliance()
        out = []
        try:
            for start in range(0, v.size, LIST_POINTS):
                chunk = v[start : start + LIST_POINTS]
                values = ",".join(f"{x:.6g}" for x in chunk)
                reply = self.query(f":SOUR:VOLT:MODE LIST;:SOUR:LIST:VOLT {values};:TRIG:COUN {chunk.size};:READ?")
                out.append(self._currents(reply, chunk.size))
        finally:
            self.write(":SOUR:VOLT:MODE FIX;:TRIG:COUN 1")
        return np.concatenate(out)
