"""The bench's safe limits, checked before any byte is sent.

Drivers and protocols hold a :class:`SafeLimits` and call its ``check_*`` methods before they
encode a command; a request beyond a limit raises :class:`LimitError` and nothing reaches the
instrument.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np


class LimitError(ValueError):
    """A request beyond the bench's safe limits; nothing was sent."""


def value_span(values: Any, what: str) -> tuple[float, float] | None:
    """The smallest and the largest of ``values`` (``None`` when there are none).

    Raises
    ------
    LimitError
        A value is not finite (a NaN reaches both ends, an infinity one of them).
    """
    arr = np.asarray(values, dtype=float)
    if not arr.size:
        return None
    lo, hi = float(arr.min()), float(arr.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise LimitError(f"{what} must be finite, got {values!r}")
    return lo, hi


@dataclass(frozen=True)
class SafeLimits:
    """Safe operating limits of a bench (SI units).

    Parameters
    ----------
    max_voltage : float
        Largest magnitude on any bit, source or SMU line, V.
    max_gate_voltage : float
        Largest word-line (gate) voltage, V.
    max_current : float
        Largest SMU compliance current, A.
    max_pulse_width : float
        Longest programming pulse, s.
    min_pulse_width : float
        Shortest programming pulse the bench can produce, s.
    max_energy : float
        Largest energy one pulse may deliver to one device, J, estimated as
        ``V * I_limit * width`` with the current limit of the pulse (for board pulses, whose
        current the cell's transistor limits, the bench's ``max_current``).
    max_pulses_per_device : float
        Most programming pulses one device may receive in one run (a guard against runaway
        loops); protocols give up on a device at its budget, the board driver refuses a batch
        that would exceed it (counted per connection).
    max_energy_per_device : float
        Most cumulative worst-case pulse energy one device may receive in one run, J.
    """

    max_voltage: float = 3.0
    max_gate_voltage: float = 5.0
    max_current: float = 1e-3
    max_pulse_width: float = 1e-3
    min_pulse_width: float = 10e-9
    max_energy: float = 1e-6
    max_pulses_per_device: float = 10000
    max_energy_per_device: float = 1e-3

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
                raise ValueError(f"limit {f.name} must be a positive finite number, got {value!r}")
        if self.min_pulse_width > self.max_pulse_width:
            raise ValueError("limit min_pulse_width exceeds max_pulse_width")
        if self.max_pulses_per_device < 1 or self.max_pulses_per_device != int(self.max_pulses_per_device):
            raise ValueError(f"limit max_pulses_per_device must be a whole number >= 1, got {self.max_pulses_per_device!r}")
        if self.max_energy_per_device < self.max_energy:
            raise ValueError("limit max_energy_per_device is below max_energy (not even one pulse would fit)")

    # --- checks -------------------------------------------------------------------------
    # each reduces its values to their span (two passes), whatever their number: a batch of
    # 16,384 pulses is checked in a few microseconds
    def check_voltage(self, volts: Any, what: str = "voltage") -> None:
        """Refuse any ``|V| > max_voltage``."""
        span = value_span(volts, what)
        if span and max(-span[0], span[1]) > self.max_voltage:
            raise LimitError(f"{what} {max(-span[0], span[1]):.4g} V exceeds the bench limit of {self.max_voltage:.4g} V")

    def check_gate(self, volts: Any, what: str = "gate voltage") -> None:
        """Refuse any word-line voltage outside ``[0, max_gate_voltage]``."""
        span = value_span(volts, what)
        if span and (span[1] > self.max_gate_voltage or span[0] < 0):
            raise LimitError(f"{what} outside [0, {self.max_gate_voltage:.4g}] V")

    def check_current(self, amps: Any, what: str = "current limit") -> None:
        """Refuse any ``|I| > max_current``."""
        span = value_span(amps, what)
        if span and max(-span[0], span[1]) > self.max_current:
            raise LimitError(f"{what} {max(-span[0], span[1]):.4g} A exceeds the bench limit of {self.max_current:.4g} A")

    def check_width(self, seconds: Any, what: str = "pulse width") -> None:
        """Refuse pulse widths outside ``[min_pulse_width, max_pulse_width]``."""
        span = value_span(seconds, what)
        if span and (span[1] > self.max_pulse_width or span[0] < self.min_pulse_width):
            raise LimitError(
                f"{what} outside [{self.min_pulse_width:.3g}, {self.max_pulse_width:.3g}] s"
            )

    def check_energy(self, volts: Any, amps: Any, seconds: Any, what: str = "pulse") -> None:
        """Refuse pulses whose worst-case energy ``|V| * |I| * width`` exceeds ``max_energy``."""
        try:
            np.broadcast_shapes(np.shape(volts), np.shape(amps), np.shape(seconds))
        except ValueError:
            raise ValueError(f"{what}: levels of shapes {np.shape(volts)}, {np.shape(amps)} and {np.shape(seconds)} do not go together") from None
        spans = [value_span(x, what) for x in (volts, amps, seconds)]
        if any(span is None for span in spans):
            return  # no pulses
        bound = math.prod(max(-lo, hi) for lo, hi in spans)  # of every pulse's energy
        if bound <= self.max_energy:
            return
        energy = np.abs(np.asarray(volts, dtype=float)) * np.abs(np.asarray(amps, dtype=float)) * np.asarray(seconds, dtype=float)
        if energy.size and np.max(energy) > self.max_energy:
            raise LimitError(f"{what} energy {np.max(energy):.3g} J exceeds the bench limit of {self.max_energy:.3g} J")

    def check_pulse(self, amplitude: Any, gate: Any, width: Any, current_limit: float | None = None) -> None:
        """All checks of one or many programming pulses."""
        self.check_voltage(amplitude, "pulse amplitude")
        self.check_gate(gate)
        self.check_width(width)
        if current_limit is not None:
            self.check_energy(amplitude, current_limit, width)

    def pulse_energy(self, volts: Any, seconds: Any) -> np.ndarray:
        """Worst-case energy of pulses, J: ``|V| * max_current * width``."""
        return np.abs(np.asarray(volts, dtype=float)) * self.max_current * np.asarray(seconds, dtype=float)

    def within(self, other: "SafeLimits") -> "SafeLimits":
        """The limits that keep within both ``self`` and ``other``: the smaller of every
        ``max_*`` and the larger ``min_pulse_width``."""
        values = {f.name: min(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)}
        values["min_pulse_width"] = max(self.min_pulse_width, other.min_pulse_width)
        return SafeLimits(**values)

    def to_dict(self) -> dict[str, float]:
        """The limits as a dict of field name to value (SI), as station files write them."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SafeLimits":
        """Build from a mapping; unknown keys and non-numbers are errors that name the key."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown limit(s) {sorted(unknown)}; known: {sorted(known)}")
        values = {}
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"limit {key} must be a number in SI units, got {value!r}")
            values[key] = float(value)
        return cls(**values)
