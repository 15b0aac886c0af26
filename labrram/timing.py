"""Bench time for routines that wait: the wall clock on hardware, the virtual clock on the
simulated bench (where waiting costs nothing and nothing sleeps)."""

from __future__ import annotations

import time
from typing import Protocol


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
