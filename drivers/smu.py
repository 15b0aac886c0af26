"""The source-measure unit interface every SMU driver implements.

Crossbar, calibration and protocols use an SMU only through these methods, so any of the
Keithley 2400, Keithley 2600B or Keysight B2900 drivers can be a station's SMU.
"""

from __future__ import annotations

import abc
from typing import Sequence

import numpy as np

from .base import Instrument


class SourceMeter(Instrument, abc.ABC):
    """A voltage-sourcing, current-measuring SMU channel.

    Every method that sets a level checks the bench's :class:`~labrram.safety.SafeLimits`
    before any byte is sent. :meth:`shutdown` ramps the output to 0 V and turns it off.
    """

    #: steps of the ramp-down in :meth:`shutdown`
    ramp_steps = 5

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

    def shutdown(self) -> None:
        """Ramp the output to 0 V in :attr:`ramp_steps` steps, then turn it off."""
        if self._closed:
            return
        try:
            if self.output_enabled:
                level = self.get_voltage()
                for v in np.linspace(level, 0.0, self.ramp_steps + 1)[1:]:
                    self.set_voltage(float(v))
        finally:
            self.disable_output()
