"""The simulated bench: a chip with hidden state, byte-level instrument emulators, transports.

Transports: the PyVISA backend ``pyvisa_labrram`` (``pyvisa.ResourceManager("@labrram")``) and
the pyserial URL handler ``labrram://<bench>/<instrument>``.
"""

from .bench import Bench, BenchConfig, configure_bench, drop_benches, get_bench, reset_bench
from .chip import PULSE_DTYPE, PulseKind, ReRAMChip
from .clock import VirtualClock
from .faults import Fault, FaultError, FaultPlan

__all__ = [
    "Bench",
    "BenchConfig",
    "configure_bench",
    "drop_benches",
    "Fault",
    "FaultError",
    "FaultPlan",
    "get_bench",
    "reset_bench",
    "PULSE_DTYPE",
    "PulseKind",
    "ReRAMChip",
    "VirtualClock",
]
