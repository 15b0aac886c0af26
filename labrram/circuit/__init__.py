"""The circuit room: exact nodal analysis of passive (0T1R) crossbars with wire resistance
(scipy sparse LU, Woodbury updates, BLAS threading), apart from the device model
(:mod:`labrram.devices.passive`) that it solves for."""

from .crossbar import CrossbarCircuit
from .network import CircuitSolution, ConvergenceError

__all__ = ["CircuitSolution", "ConvergenceError", "CrossbarCircuit"]
