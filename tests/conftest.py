"""Shared fixtures: a freshly reset simulated bench, and a scripted fake transport for
byte-exact driver tests."""

from __future__ import annotations

import signal
from collections import deque

import pytest

import labrram  # noqa: F401  (registers the labrram:// serial handler)
from labrram import sim

# A runner that starts the tests with SIGINT ignored (an asynchronous command of a shell without
# job control) would hide every Ctrl-C path, in this process and in the ones it starts: give the
# tests Python's own handler, as a terminal would.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def bench():
    """The default simulated bench at power-on state (seed 0), shared by every transport."""
    b = sim.configure_bench("default")
    yield b
    b.shutdown()


class FakeTransport:
    """A transport that records every byte written and answers from a script.

    ``replies`` is a queue of byte strings returned, in order, by ``read_message`` and
    ``read_block`` (for blocks give the payload). Reading with nothing queued raises the
    driver's timeout error, as a silent instrument would.
    """

    address = "FAKE::INSTR"

    def __init__(self, replies=()):
        self.written: list[bytes] = []
        self.replies = deque(replies)
        self._timeout = 1.0
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def _next(self) -> bytes:
        from labrram.drivers.base import InstrumentTimeout

        if not self.replies:
            raise InstrumentTimeout(f"{self.address}: no reply within {self._timeout} s")
        return self.replies.popleft()

    def read_message(self) -> bytes:
        return self._next()

    def read_block(self) -> bytes:
        return self._next()

    def read_bytes(self, n: int) -> bytes:
        return self._next()

    def clear(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    @property
    def timeout(self) -> float:
        return self._timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._timeout = value

    @property
    def text(self) -> list[str]:
        """Everything written, decoded, one entry per write."""
        return [w.decode("latin-1") for w in self.written]


@pytest.fixture
def fake_transport():
    return FakeTransport()
