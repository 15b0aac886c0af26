"""Keysight B2901A / B2902A Precision Source/Measure Unit driver (SCPI over USB / GPIB / LAN).

One driver object drives one channel of the instrument (``channel=1`` or ``2``); open the same
address twice to use both channels of a B2902A. Bulk data come back as IEEE 488.2 binary blocks
(``:FORM REAL,32``, big-endian), so a 2500-point sweep is one acquisition and one 10 kB read.
"""

from __future__ import annotations

import re

import logging
from typing import Any, Sequence

import numpy as np

from .guard import scpi_events, scpi_guard
from .base import ReplyError, SafeLimits, Setting, Transport, in_range, parse_bool
from .smu import SourceMeter

log = logging.getLogger("labrram.drivers")

#: a B2900 source list holds at most 2500 points
LIST_POINTS = 2500
#: instrument ranges (B2901A/B2902A)
MAX_VOLTAGE = 210.0
MAX_CURRENT = 3.03
PULSE_WIDTH_MIN = 50e-6
PULSE_WIDTH_MAX = 1e5
NPLC_MIN = 4.8e-4  # valid at 50 Hz and 60 Hz
NPLC_MAX = 100.0
#: readings at or beyond this magnitude are the instrument's overflow / not-a-number markers
OVERFLOW = 9.9e37
#: time the instrument spends per sweep point beyond the aperture (settling, bookkeeping), s
POINT_OVERHEAD = 1e-3


class KeysightB2900(SourceMeter):
    """One channel of a Keysight B2901A/B2902A as a voltage source measuring current.

    Settings are properties validated before any byte is sent::

        smu.nplc = 0.1                 # -> ":SENS1:CURR:NPLC 0.1"
        smu.compliance_current = 1e-4  # checked against the bench limit first

    Parameters
    ----------
    transport : Transport
        The open connection (see :func:`labrram.drivers.base.open_transport`).
    limits : SafeLimits, optional
        The bench's safe limits, checked before any byte is sent.
    name : str, optional
        Name used in messages (default ``"B2900 ch<channel>"``).
    channel : int
        SMU channel, 1 or 2.
    """

    guard = scpi_guard  # raw source-level commands are refused beyond the limits too

    @property
    def compliance_key(self) -> str:  # type: ignore[override]
        return "" if self.channel == 1 else str(self.channel)

    def _output_events(self, text: str) -> list[tuple[str, str]]:
        return [(kind, "" if ch in ("", "1") else ch) for kind, ch in scpi_events(text)]  # channel 1 is the default

    source_voltage = Setting(
        ":SOUR{ch}:VOLT?",
        ":SOUR{ch}:VOLT {:.6g}",
        validate=lambda inst, v: inst.check_level(v),
        doc="DC source level (pulse base in pulse shape), V.",
    )
    compliance_tripped = Setting(
        ":SENS{ch}:CURR:PROT:TRIP?", None, parse=parse_bool, doc="Whether the last measurement hit the current compliance."
    )
    line_frequency = Setting(":SYST:LFR?", None, parse=float, doc="Power-line frequency the integration time refers to, Hz.")

    def __init__(
        self,
        transport: Transport,
        limits: SafeLimits | None = None,
        name: str | None = None,
        channel: int = 1,
        write_termination: bytes = b"\n",
        **kwargs: Any,
    ) -> None:
        if channel not in (1, 2):
            raise ValueError(f"a B2900 has channels 1 and 2, not {channel!r}")
        self.channel = channel
        super().__init__(transport, limits=limits, name=name or f"B2900 ch{channel}", write_termination=write_termination, **kwargs)
        self._compliance: float | None = None  # last compliance this driver set, A
        self._aperture: float | None = None  # integration time, s (queried when unknown)
        self._binary = False  # whether this driver has set :FORM REAL,32 / NORM

    def format_command(self, command: str) -> str:
        return command.replace("{ch}", str(self.channel))

    # --- checks (no byte is sent before these pass) ---------------------------------------
    def check_level(self, volts: float) -> float:
        v = super().check_level(volts)
        if abs(v) > MAX_VOLTAGE:
            raise ValueError(f"{self.name}: {v:g} V beyond the B2900's +-{MAX_VOLTAGE:g} V")
        return v

    def check_compliance(self, amps: float) -> float:
        a = super().check_compliance(amps)
        if a > MAX_CURRENT:
            raise ValueError(f"{self.name}: compliance {a:g} A beyond the B2900's {MAX_CURRENT:g} A")
        return a

    # --- settings the driver remembers -------------------------------------------------------
    compliance_current = Setting(
        ":SENS{ch}:CURR:PROT?",
        ":SENS{ch}:CURR:PROT {:.6g}",
        validate=lambda inst, a: inst.check_compliance(a),
        on_set=lambda inst, a: setattr(inst, "_compliance", a),
        doc="Current compliance, A.",
    )
    nplc = Setting(
        ":SENS{ch}:CURR:NPLC?",
        ":SENS{ch}:CURR:NPLC {:g}",
        validate=in_range(NPLC_MIN, NPLC_MAX, "NPLC"),
        on_set=lambda inst, v: setattr(inst, "_aperture", None),  # the aperture follows
        doc="Integration time in power-line cycles.",
    )
    aperture = Setting(
        ":SENS{ch}:CURR:APER?",
        ":SENS{ch}:CURR:APER {:.6g}",
        validate=in_range(8e-6, 2.0, "aperture"),
        on_set=lambda inst, v: setattr(inst, "_aperture", None),
        cache="_aperture",
        doc="Integration time, s (``nplc`` / line frequency); read once, then remembered.",
    )

    # --- SourceMeter interface ----------------------------------------------------------------
    def configure_voltage_source(self, compliance: float, nplc: float = 1.0, auto_zero: bool = False) -> None:
        """Voltage source in DC shape, current measured with ``compliance`` and ``nplc``.

        The B2900 has no auto-zero setting (it zeroes internally); ``auto_zero=True`` is logged
        and otherwise has no effect.
        """
        compliance = self.check_compliance(compliance)
        nplc = in_range(NPLC_MIN, NPLC_MAX, "NPLC")(self, nplc)
        if auto_zero:
            log.warning("%s: the B2900 has no auto-zero setting; auto_zero=True has no effect", self.name)
        c = self.channel
        self.write(
            f":SOUR{c}:FUNC:MODE VOLT;:SOUR{c}:FUNC:SHAP DC;:SOUR{c}:VOLT:MODE FIX;:SOUR{c}:VOLT:RANG:AUTO ON;"
            f':SENS{c}:FUNC "CURR";:SENS{c}:CURR:PROT {compliance:.6g};:SENS{c}:CURR:RANG:AUTO ON;'
            f":SENS{c}:CURR:NPLC {nplc:g};:FORM REAL,32;:FORM:BORD NORM;:FORM:ELEM:SENS VOLT,CURR;"
            f":TRIG{c}:ALL:SOUR AINT;:TRIG{c}:ALL:COUN 1;:TRIG{c}:ALL:DEL 0;:ARM{c}:ALL:COUN 1"
        )
        self.check_errors()
        self._compliance = compliance
        self._aperture = None
        self._binary = True

    def set_voltage(self, volts: float) -> None:
        self.write(f":SOUR{self.channel}:VOLT {self.check_level(volts):.6g}")

    def get_voltage(self) -> float:
        return self.query_float(f":SOUR{self.channel}:VOLT?")

    def enable_output(self) -> None:
        self.write(f":OUTP{self.channel} ON")

    def disable_output(self) -> None:
        self.write(f":OUTP{self.channel} OFF")

    @property
    def output_enabled(self) -> bool:
        return self.retrying(lambda: self._bool(f":OUTP{self.channel}?"), "reading the output state")

    def _format_prefix(self) -> str:
        """``:FORM`` commands to prepend until this driver has set the binary format."""
        return "" if self._binary else ":FORM REAL,32;:FORM:BORD NORM;"

    def _currents(self, payload: bytes, n: int) -> np.ndarray:
        """Currents out of a big-endian float32 block; overflow markers become +-inf."""
        if len(payload) != 4 * n:
            raise ReplyError(f"{self.name}: expected {n} float32 currents ({4 * n} bytes), got {len(payload)} bytes")
        values = np.frombuffer(payload, dtype=">f4").astype(float)
        return np.where(np.abs(values) >= OVERFLOW, np.sign(values) * np.inf, values)

    def measure_current(self) -> float:
        """One spot measurement at the present level, A (the B2900 turns the output on by itself
        unless its auto-output-on was disabled)."""
        payload = self.query_block(f"{self._format_prefix()}:MEAS:CURR? (@{self.channel})")
        self._binary = True
        return float(self._currents(payload, 1)[0])

    def measure_sweep(self, voltages: Sequence[float]) -> np.ndarray:
        """One list-sweep acquisition per 2500 points, read back as one binary block each."""
        v = self.check_sweep(voltages)
        self.require_compliance()
        if np.max(np.abs(v)) > MAX_VOLTAGE:
            raise ValueError(f"{self.name}: sweep voltage beyond the B2900's +-{MAX_VOLTAGE:g} V")
        c = self.channel
        out = []
        timeout = self.transport.timeout
        try:
            for start in range(0, v.size, LIST_POINTS):
                chunk = v[start : start + LIST_POINTS]
                values = ",".join(f"{x:.6g}" for x in chunk)
                self.write(
                    f"{self._format_prefix()}:SOUR{c}:FUNC:MODE VOLT;:SOUR{c}:FUNC:SHAP DC;:SOUR{c}:VOLT:MODE LIST;"
                    f":SOUR{c}:LIST:VOLT {values};:TRIG{c}:ALL:SOUR AINT;:TRIG{c}:ALL:COUN {chunk.size}"
                )
                self._binary = True
                self.check_errors()  # never start an acquisition the instrument did not accept
                expected = chunk.size * (self.aperture + POINT_OVERHEAD)
                self.transport.timeout = max(timeout, 2.0 * expected + 1.0)
                payload = self.query_block(f":INIT (@{c});:FETC:ARR:CURR? (@{c})")
                self.transport.timeout = timeout
                out.append(self._currents(payload, chunk.size))
        finally:
            self.transport.timeout = timeout
            self.write(f":SOUR{c}:VOLT:MODE FIX;:TRIG{c}:ALL:COUN 1")
        return np.concatenate(out)

    def pulse_voltage(self, amplitude: float, width: float, base: float = 0.0) -> float:
        """One hardware pulse (pulse shape) from ``base`` to ``amplitude`` for ``width`` s.

        The current is integrated over the last part of the pulse: the configured aperture, or
        half the pulse when the aperture is longer (restored afterwards). Returns that current, A.
        Afterwards the channel is back in DC shape at ``base``. The bench's energy limit is
        checked with the compliance this driver set, or with the bench's current limit when the
        compliance is unknown.
        """
        amplitude = self.check_level(amplitude)
        base = self.check_level(base)
        try:
            width = float(width)
        except (TypeError, ValueError):
            raise ValueError(f"pulse width must be a number of seconds, got {width!r}") from None
        self.limits.check_width(width, f"{self.name} pulse width")
        if not (PULSE_WIDTH_MIN <= width <= PULSE_WIDTH_MAX):
            raise ValueError(f"{self.name}: pulse width {width:g} s outside the B2900's [{PULSE_WIDTH_MIN:g}, {PULSE_WIDTH_MAX:g}] s")
        current_limit = self._compliance if self._compliance is not None else self.limits.max_current
        self.limits.check_energy(amplitude, current_limit, width, f"{self.name} pulse")
        self.require_compliance()
        c = self.channel
        aperture = self.aperture
        window = min(aperture, width / 2)
        setup = (
            f"{self._format_prefix()}:SOUR{c}:FUNC:MODE VOLT;:SOUR{c}:FUNC:SHAP PULS;:SOUR{c}:VOLT:MODE FIX;"
            f":SOUR{c}:VOLT {base:.6g};:SOUR{c}:VOLT:TRIG {amplitude:.6g};:SOUR{c}:PULS:DEL 0;:SOUR{c}:PULS:WIDT {width:.6g};"
            f":TRIG{c}:ALL:SOUR AINT;:TRIG{c}:ALL:COUN 1;:TRIG{c}:TRAN:DEL 0;:TRIG{c}:ACQ:DEL {width - window:.6g}"
        )
        restore = f":SOUR{c}:FUNC:SHAP DC;:SOUR{c}:VOLT:TRIG {base:.6g};:TRIG{c}:ACQ:DEL 0"
        if window != aperture:
            setup += f";:SENS{c}:CURR:APER {window:.6g}"
            restore += f";:SENS{c}:CURR:APER {aperture:.6g}"
        try:
            self.write(setup)
            self._binary = True
            self.check_errors()  # never pulse with settings the instrument refused
            payload = self.query_block(f":INIT (@{c});:FETC:ARR:CURR? (@{c})")
        finally:
            self.write(restore)
        return float(self._currents(payload, 1)[0])


__all__ = ["KeysightB2900", "LIST_POINTS"]
