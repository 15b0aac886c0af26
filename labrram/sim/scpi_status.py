"""The IEEE 488.2 status model and the SCPI STATus subsystem, shared by every SCPI emulator.

IEEE 488.2 (section 11) defines two 8-bit structures that every instrument has:

* the **Standard Event Status Register** (SESR, read and cleared by ``*ESR?``) with its enable
  register (``*ESE``): bit 0 OPC (operation complete, set by ``*OPC`` once pending operations
  end), 1 RQC, 2 QYE (query error, -400s), 3 DDE (device-dependent error, -300s and the
  instrument's own positive codes), 4 EXE (execution error, -200s), 5 CME (command error,
  -100s), 6 URQ, 7 PON (power on);
* the **Status Byte** (``*STB?``, serial poll) with its enable register (``*SRE``): bit 2 EAV
  (the error/event queue is not empty), 4 MAV (a response is waiting in the output queue), 5 ESB
  (SESR AND ESE is not zero), 6 MSS (STB AND SRE, bit 6 excluded, is not zero; the serial poll
  reads it as RQS), and the summaries of the SCPI registers on the bits each manual gives them
  (bit 3 QUEStionable, bit 7 OPERation, bit 0 MEASurement on Keithley instruments).

SCPI-1999 (volume 1, chapter 9 / volume 2, STATus) adds 16-bit register sets, each a
condition register (the present state), positive and negative transition filters (``PTR``,
``NTR``) that decide which edges of the condition latch into the event register, the event
register (read and cleared by ``:STAT:<reg>[:EVEN]?``) and an enable register whose AND with the
event register is the summary bit. ``:STAT:PRES`` sets every enable register to 0, every PTR to
all ones and every NTR to 0; ``*CLS`` clears the event registers, the SESR and the error queue
but leaves enable registers alone; ``*RST`` touches none of them.
"""

from __future__ import annotations

from dataclasses import dataclass

# Standard Event Status Register bits (IEEE 488.2, 11.5.1.1).
ESR_OPC = 1 << 0
ESR_RQC = 1 << 1
ESR_QYE = 1 << 2
ESR_DDE = 1 << 3
ESR_EXE = 1 << 4
ESR_CME = 1 << 5
ESR_URQ = 1 << 6
ESR_PON = 1 << 7

# Status Byte bits (IEEE 488.2, 11.2.2).
STB_EAV = 1 << 2
STB_MAV = 1 << 4
STB_ESB = 1 << 5
STB_MSS = 1 << 6

REGISTER_MASK = 0x7FFF  # SCPI registers are 16 bits; bit 15 is always 0


def esr_bit_for(code: int) -> int:
    """The SESR bit an error number sets (IEEE 488.2 / SCPI error classes)."""
    if -199 <= code <= -100:
        return ESR_CME
    if -299 <= code <= -200:
        return ESR_EXE
    if -399 <= code <= -300:
        return ESR_DDE
    if -499 <= code <= -400:
        return ESR_QYE
    if -599 <= code <= -500:
        return ESR_PON if code == -500 else ESR_URQ
    if code > 0:
        return ESR_DDE
    return 0


@dataclass
class StatusRegister:
    """One SCPI register set: condition, transition filters, event and enable registers."""

    condition: int = 0
    event: int = 0
    enable: int = 0
    ptr: int = REGISTER_MASK
    ntr: int = 0

    def set_condition(self, value: int) -> None:
        """New condition; edges that pass the transition filters latch into the event register."""
        value &= REGISTER_MASK
        rising = ~self.condition & value & self.ptr
        falling = self.condition & ~value & self.ntr
        self.event |= rising | falling
        self.condition = value

    def set_bits(self, bits: int, on: bool = True) -> None:
        """Set (or clear) condition bits, latching their transitions."""
        self.set_condition(self.condition | bits if on else self.condition & ~bits)

    def pulse(self, bits: int) -> None:
        """An event that has no lasting condition (the condition rises and falls at once)."""
        self.set_condition(self.condition | bits)
        self.set_condition(self.condition & ~bits)

    def read_event(self) -> int:
        """``:STAT:<reg>[:EVEN]?``: the event register, which the read clears."""
        value, self.event = self.event, 0
        return value

    def preset(self) -> None:
        """``:STAT:PRES``: enable 0, PTR all ones, NTR 0 (events and conditions stay)."""
        self.enable = 0
        self.ptr = REGISTER_MASK
        self.ntr = 0

    @property
    def summary(self) -> bool:
        return bool(self.event & self.enable)
