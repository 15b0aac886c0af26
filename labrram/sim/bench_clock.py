"""The bench clock as an instrument: a served simulated bench's virtual time, over the wire.

When the simulated bench runs in its own process (``labrram serve``), a station that drives it
like real hardware still needs the bench's time — to stamp steps, wait out schedules (a PCM
drift series waits hours of bench time in no wall time) and report projected bench time. This
SCPI instrument gives it:

``*IDN?``
    ``labrram,bench-clock,<bench>,1.0``
``:BENCh:TIME?``
    the virtual clock, s (NR3)
``:BENCh:WAIT <s>``
    advance the clock by a deliberate wait of ``s`` seconds (nothing sleeps)
``:BENCh:LEDGer?``
    ``now,<s>,<category>,<s>,...``: where the time went (transport, operation, wait, ...)
"""

from __future__ import annotations

from .scpi import DATA_OUT_OF_RANGE, Call, ScpiInstrument, command, error, format_nr3


class BenchClock(ScpiInstrument):
    """The virtual clock of a bench, as a SCPI instrument."""

    vendor = "labrram"
    model = "bench-clock"

    def reset(self) -> None:
        """The clock is the bench's: a reset leaves it running."""

    def idn(self) -> str:
        return f"{self.vendor},{self.model},{self.bench.name},1.0"

    @command(":BENCh:TIME", write=False)
    def _time(self, call: Call) -> str:
        return format_nr3(self.clock.now, 15)

    @command(":BENCh:WAIT", query=False)
    def _wait(self, call: Call) -> None:
        seconds = call.number(0, 0.0, 1e9)
        if not seconds >= 0:
            raise error(DATA_OUT_OF_RANGE, "a wait must be >= 0 s")
        self.clock.advance(seconds, "wait")

    @command(":BENCh:LEDGer", write=False)
    def _ledger(self, call: Call) -> str:
        snap = self.clock.snapshot()
        return ",".join(f"{k},{format_nr3(v, 15)}" for k, v in snap.items())
