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
