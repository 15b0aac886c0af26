"""Bench time: the wall clock on hardware, the virtual clock on the simulated bench (where
waiting costs nothing and nothing sleeps) — and the one declaration of what the hardware's
operations and links cost, which the emulators charge to the virtual clock, the engine counts as
the physical limit, and docs/board-protocol.md ("Timing model") describes.

The crossbar board (docs/board-protocol.md):

* a pulse costs its width plus :data:`T_PULSE_SETUP` of driver set-up; the pulses of a batch
  run one after the other in the order given;
* a read costs one conversion, :data:`T_ROW_READ`, per distinct row (every bit line has its own
  sense amplifier; a cell listed ``k`` times makes its row convert ``k`` times); ``:PULS:READ:LIST?`` applies the whole batch, then reads the pulsed cells
  row by row — a board that read each cell right after its own pulse would pay one conversion
  per pulse instead;
* a routing change settles its relays for :data:`T_RELAY`; an analog MVM costs :data:`T_MVM`.

Links (:class:`LinkTiming`): every write and every read transaction costs the link's latency
plus its bytes at the link's rate, so one query — a command and its reply — is a round trip of
two latencies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: driver set-up of one pulse, s
T_PULSE_SETUP = 1e-6
#: settle and conversion of one row, all bit lines in parallel, s
T_ROW_READ = 10e-6
#: relay settle on a routing change, s
T_RELAY = 2e-3
#: settle and conversion of one analog MVM, s
T_MVM = 20e-6
#: one single-device read of an ArC ONE (its read cycles averaged), s — a model figure, not a
#: manufacturer's: the ArC ONE reads one device at a time
T_ARC1_READ = 1e-3


def pulses_time(widths: np.ndarray) -> float:
    """Seconds a board takes to apply one pulse of each of ``widths`` (s)."""
    widths = np.asarray(widths, dtype=float)
    return float(np.sum(widths)) + T_PULSE_SETUP * widths.size


def reads_time(rows: np.ndarray, cols: np.ndarray) -> float:
    """Seconds a board takes to read the listed cells: one conversion per distinct row, and a
    row holding a cell listed ``k`` times converts ``k`` times (each reading is a conversion of
    its own)."""
    rows, cols = np.asarray(rows, dtype=np.int64).ravel(), np.asarray(cols, dtype=np.int64).ravel()
    if rows.size == 0:
        return 0.0
    n_cols = int(cols.max()) + 1
    flat = rows * n_cols + cols
    n_cells = (int(rows.max()) + 1) * n_cols
    if 8 * rows.size >= n_cells:  # a large read: count every cell of the rows spanned (no sort)
        return T_ROW_READ * float(np.bincount(flat, minlength=n_cells).reshape(-1, n_cols).max(axis=1).sum())
    flat = np.sort(flat)
    first = np.empty(flat.size, dtype=bool)  # the first listing of each cell, in sorted order
    first[0] = True
    np.not_equal(flat[1:], flat[:-1], out=first[1:])
    if first.all():  # every cell listed once (a verify read): one conversion per distinct row
        row = flat // n_cols
        return T_ROW_READ * float(1 + np.count_nonzero(row[1:] != row[:-1]))
    starts = np.flatnonzero(first)
    counts = np.diff(starts, append=flat.size)  # listings of each cell
    row = flat[starts] // n_cols
    row_starts = np.flatnonzero(np.concatenate(([True], row[1:] != row[:-1])))
    return T_ROW_READ * float(np.maximum.reduceat(counts, row_starts).sum())


@dataclass(frozen=True)
class LinkTiming:
    """Cost model of one transport link.

    Parameters
    ----------
    name : str
        Link kind, e.g. ``"GPIB"``.
    latency : float
        Fixed cost of one write or one read transaction, s.
    bytes_per_second : float
        Payload throughput, B/s.
    """

    name: str
    latency: float
    bytes_per_second: float

    def cost(self, n_bytes: int) -> float:
        """Seconds one transaction of ``n_bytes`` takes."""
        return self.latency + n_bytes / self.bytes_per_second


GPIB = LinkTiming("GPIB", 0.5e-3, 800e3)
USB_TMC = LinkTiming("USB-TMC", 0.25e-3, 8e6)
LAN = LinkTiming("LAN-VXI11", 0.6e-3, 10e6)
USB_CDC = LinkTiming("USB-CDC", 0.125e-3, 1e6)
#: USB 2.0 high-speed bulk (the crossbar board): 125 us microframe, ~25 MB/s sustained
USB_HS = LinkTiming("USB2-HS", 0.125e-3, 25e6)


def uart(baud: float) -> LinkTiming:
    """A UART at ``baud`` with 10 bits per byte and a 1 ms turnaround."""
    return LinkTiming(f"UART-{int(baud)}", 1e-3, baud / 10.0)


class BenchTimer(Protocol):
    """What a routine needs to wait and time-stamp, in seconds (the virtual clock of a simulated
    bench; on hardware, seconds since the epoch)."""

    def now(self) -> float: ...

    def wait(self, seconds: float) -> None: ...


class WallTimer:
    """Real time: seconds since the epoch (``time.time``: comparable across processes and
    reboots, so that a resumed run waits out the schedule it started, counting the time it was
    stopped) and ``time.sleep``."""

    def now(self) -> float:
        return time.time()

    def wait(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("cannot wait a negative time")
        time.sleep(seconds)


class VirtualTimer:
    """A simulated bench's virtual clock: ``wait`` advances it."""

    def __init__(self, clock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now

    def wait(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("cannot wait a negative time")
        self.clock.advance(seconds, "wait")
