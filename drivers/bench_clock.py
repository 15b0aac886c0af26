"""Driver of a served simulated bench's clock (``labrram serve``): bench time over the wire.

A station that points at a served bench like at real hardware lists the clock as one of its
instruments (``driver = "bench_clock"``); its timer then reads and advances the bench's virtual
clock through it (:class:`RemoteTimer`) instead of the wall clock, so waits cost no wall time
and results report the bench time the served bench counted.
"""

from __future__ import annotations

from .base import Instrument, ReplyError


class BenchClock(Instrument):
    """The bench clock of a served simulated bench (``:BENCh:TIME?``, ``:BENCh:WAIT``)."""

    def now(self) -> float:
        """The bench's virtual time, s."""
        return self.query_float(":BENC:TIME?", idempotent=True)

    def advance(self, seconds: float) -> None:
        """A deliberate wait of ``seconds`` (s) of bench time: the clock moves, nothing sleeps."""
        seconds = float(seconds)
        if not seconds >= 0:
            raise ValueError("cannot wait a negative time")
        self.write_checked(f":BENC:WAIT {seconds:.15g}")

    def snapshot(self) -> dict[str, float]:
        """The bench time and where it went (``now``, ``transport``, ``operation``, ``wait``), s."""

        def parse() -> dict[str, float]:
            fields = self.query(":BENC:LEDG?").split(",")
            try:
                return {fields[k].strip(): float(fields[k + 1]) for k in range(0, len(fields) - 1, 2)}
            except ValueError:
                raise ReplyError(f"{self.name}: bench ledger reply {','.join(fields)[:80]!r}") from None

        return self.retrying(parse, "':BENC:LEDG?'")


class RemoteTimer:
    """A served bench's clock as the station's timer (``now``, ``wait``; see
    :class:`labrram.timing.BenchTimer`)."""

    def __init__(self, clock: BenchClock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now()

    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
