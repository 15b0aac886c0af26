"""The simulated bench's virtual clock: every transaction and operation costs bench time."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class VirtualClock:
    """Monotonic virtual time in seconds, with a ledger of where the time went.

    ``advance(dt, category)`` moves time forward; categories are free-form labels such as
    ``"transport"`` (link latency and bytes on the wire), ``"operation"`` (integration, pulse
    widths, settling) or ``"wait"`` (a deliberate delay). Nothing ever sleeps.
    """

    now: float = 0.0
    ledger: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def advance(self, dt: float, category: str = "operation") -> float:
        """Move the clock ``dt`` seconds forward and return the new time."""
        if dt < 0:
            raise ValueError("virtual time cannot run backwards")
        self.now += dt
        self.ledger[category] += dt
        return self.now

    def snapshot(self) -> dict[str, float]:
        """Current time and ledger, for differences over a job."""
        return {"now": self.now, **self.ledger}

    @staticmethod
    def elapsed(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Per-category time between two snapshots (``"now"`` is the total)."""
        keys = set(before) | set(after)
        return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in sorted(keys)}


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
