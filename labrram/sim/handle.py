"""A transport's handle on one emulated instrument that survives bench resets.

A bench reset is a power cycle: the cable stays plugged in. The handle re-attaches to the new
emulator behind the same resource name; a handle closed by its client stays closed. An injected
fault that resets or unplugs the instrument kills the connection instead (``Session.lost``): every
access raises :class:`ConnectionError` until the client reopens, as with a USB device that
re-enumerated.
"""

from __future__ import annotations

from .bench import get_bench
from ..timing import LinkTiming
from .instrument import Session


class InstrumentHandle:
    def __init__(self, bench_name: str, resource: str, link: LinkTiming | None = None) -> None:
        self.bench_name = bench_name
        self.resource = resource
        self.link = link
        self.closed = False
        self._session: Session | None = None
        self.session  # resolve now: unknown resources fail at open time

    @property
    def session(self) -> Session:
        if self.closed:
            raise ConnectionError(f"{self.resource} is closed")
        if self._session is not None and self._session.lost:
            raise ConnectionError(f"{self.resource}: device disconnected; reopen the connection")
        if self._session is None or self._session.closed:
            bench = get_bench(self.bench_name)
            self._session = bench.instrument_for(self.resource).open_session(self.link)
        return self._session

    @property
    def bench(self):
        return get_bench(self.bench_name)

    def close(self) -> None:
        if self._session is not None and not self._session.closed:
            self._session.close()
        self.closed = True
