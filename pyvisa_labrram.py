"""PyVISA backend module for the labrram simulated bench: ``pyvisa.ResourceManager("@labrram")``.

PyVISA finds backends as top-level modules named ``pyvisa_<name>``; this one hands it
:class:`labrram.sim.visa_backend.LabrramVisaLibrary`.
"""

from labrram.sim.visa_backend import LabrramVisaLibrary

WRAPPER_CLASS = LabrramVisaLibrary

__all__ = ["WRAPPER_CLASS"]
