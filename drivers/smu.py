"""The source-measure unit interface every SMU driver implements.

Crossbar, calibration and protocols use an SMU only through these methods, so any of the
Keithley 2400, Keithley 2600B or Keysight B2900 drivers can be a station's SMU.
"""

from __future__ import annotations

import abc
import re
from typing import Sequence

import numpy as np

from .base import Instrument, InstrumentError, LimitError, ReplyError, log, parse_bool


class SourceMeter(Instrument, abc.ABC):
    """A voltage-sourcing, current-measuring SMU channel.

    Every method that sets a level checks the bench's :class:`~labrram.safety.SafeLimits`
    before any byte is sent. :meth:`shutdown` ramps the output to 0 V and turns it off.
    """

    #: steps of the ramp-down in :meth:`shutdown`
    ramp_steps = 5
    #: raw commands that turn an output on / set its current compliance / restore power-on
    #: limits; the ``ch`` group names the channel (see :meth:`_guard`)
    output_on_pattern: "re.Pattern[str] | None" = None
    compliance_pattern: "re.Pattern[str] | None" = None
    reset_pattern: "re.Pattern[str] | None" = None

    #: this driver's channel as the ``ch`` group of the patterns names it
    compliance_key = ""

    def require_compliance(self) -> None:
        """Refuse (:class:`~labrram.safety.LimitError`, before any byte) to drive a channel whose
        current compliance this session has not set: see :meth:`_guard`."""
        if self.compliance_key not in self.__dict__.get("_compliance_set", ()):
            raise LimitError(
                f"{self.name}: refused: no current compliance was set in this session, and the instrument's own may "
                f"exceed the station's max_current of {self.limits.max_current:g} A; call configure_voltage_source(compliance) first"
            )

    def _guard(self, data: bytes) -> None:
        """The raw-command guard, plus the session's record of compliances: an output is turned
        on — by :meth:`enable_output` or by a raw command — only on a channel whose current
        compliance this session has set (within the limits, which the guard checks). The
        instrument's own setting, left by whoever used it last or restored by a reset, may
        exceed the station's ``max_current``."""
        super()._guard(data)
        known = set(self.__dict__.get("_compliance_set", ()))  # committed only if the message may go
        for kind, ch in self._output_events(data.decode("latin-1", "replace")):
            if kind == "reset":
                known.clear()
            elif kind == "compliance":
                known.add(ch)
            elif ch not in known and not self._unguarded:
                raise LimitError(
                    f"{self.name}: output {ch or 'on'} refused: no current compliance was set on it in this session, and the "
                    f"instrument's own may exceed the station's max_current of {self.limits.max_current:g} A; "
                    "call configure_voltage_source(compliance) first"
                )
        self.__dict__["_compliance_set"] = known

    def _output_events(self, text: str) -> list[tuple[str, str]]:
        """What a raw write does to the outputs, in order: ``(kind, channel key)`` with kind
        ``"reset"``, ``"compliance"`` or ``"on"``, found by :attr:`reset_pattern`,
        :attr:`compliance_pattern` and :attr:`output_on_pattern` (SCPI drivers resolve headers
        instead: :func:`~labrram.drivers.guard.scpi_events`)."""
        events = []
        for kind, rx in (("reset", self.reset_pattern), ("compliance", self.compliance_pattern), ("on", self.output_on_pattern)):
            if rx is not None:
                events += [(m.start(), kind, (m.groupdict().get("ch") or "").lower()) for m in rx.finditer(text)]
        return [(kind, ch) for _, kind, ch in sorted(events)]

    @abc.abstractmethod
    def configure_voltage_source(self, compliance: float, nplc: float = 1.0, auto_zero: bool = False) -> None:
        """Source voltage, measure current with ``compliance`` (A) and ``nplc`` integration."""

    @abc.abstractmethod
    def set_voltage(self, volts: float) -> None:
        """Set the DC source level (V), after checking the bench limit."""

    @abc.abstractmethod
    def get_voltage(self) -> float:
        """The programmed DC source level, V."""

    @abc.abstractmethod
    def enable_output(self) -> None:
        """Turn the output on."""

    @abc.abstractmethod
    def disable_output(self) -> None:
        """Turn the output off."""

    @property
    @abc.abstractmethod
    def output_enabled(self) -> bool:
        """Whether the output is on."""

    @abc.abstractmethod
    def measure_current(self) -> float:
        """One current reading at the present level, A (output must be on)."""

    @abc.abstractmethod
    def measure_sweep(self, voltages: Sequence[float]) -> np.ndarray:
        """Source each voltage in turn and measure the current at each, in as few transactions
        as the instrument allows; returns currents, A."""

    def pulse_voltage(self, amplitude: float, width: float, base: float = 0.0) -> float:
        """One voltage pulse from ``base`` to ``amplitude`` for ``width`` seconds; returns the
        current measured at its end, A. Instruments without a pulse mode raise
        :class:`NotImplementedError`."""
        raise NotImplementedError(f"{type(self).__name__} has no hardware pulse mode; pulse with the board")

    def check_level(self, volts: float) -> float:
        """Bench-limit check shared by every SMU driver; returns the level as float."""
        self.limits.check_voltage(volts, f"{self.name} source voltage")
        return float(volts)

    def check_sweep(self, voltages: Sequence[float]) -> np.ndarray:
        v = np.asarray(voltages, dtype=float)
        if v.ndim != 1 or v.size == 0:
            raise ValueError("a sweep needs a non-empty 1-D sequence of voltages")
        self.limits.check_voltage(v, f"{self.name} sweep voltage")
        return v

    def check_compliance(self, amps: float) -> float:
        if not (amps > 0):
            raise ValueError(f"compliance must be a positive current, got {amps!r}")
        self.limits.check_current(amps, f"{self.name} compliance")
        return float(amps)

    def _bool(self, command: str) -> bool:
        """A boolean query (``1``/``0``, ``ON``/``OFF``); a garbled reply is a :class:`ReplyError`."""
        reply = self.query(command)
        try:
            return parse_bool(reply)
        except ValueError:
            raise ReplyError(f"{self.name}: {command!r} returned {reply!r}, not a boolean") from None

    def shutdown(self) -> None:
        """Ramp the output to 0 V in :attr:`ramp_steps` steps, turn it off, and read the output
        state back: while it is still on (a lost command), ``off`` is sent again (at most
        :attr:`retries` more times, then an error) — an output is never left on unnoticed.
        """
        if self._closed:
            return
        try:
            if self.output_enabled:
                try:
                    steps = np.linspace(self.get_voltage(), 0.0, self.ramp_steps + 1)[1:]
                except InstrumentError as exc:  # cannot ramp from an unknown level: straight off
                    log.warning("%s: source level unreadable (%s); turning the output off without a ramp", self.name, exc)
                    steps = np.empty(0)
                for v in steps:
                    self.set_voltage(float(v))
        finally:
            self.disable_output()
            self._confirm_off()

    def _confirm_off(self) -> None:
        def check() -> None:
            if self.output_enabled:
                self.disable_output()
                raise ReplyError(f"{self.name}: output still on after the off command")

        self.retrying(check, "turning the output off")
