"""Safe points for Ctrl-C (SIGINT) and SIGTERM.

:func:`deferred_signals` holds both signals while a block that must not be cut in half runs — an
instrument exchange (a command and its reply), a run-store commit — and delivers them when it
ends: an interrupt lands between exchanges and between commits, never inside one.

SIGTERM (what a job scheduler, ``kill`` or a container stop sends) has no Python exception of its
own; :func:`install_sigterm` (the ``labrram`` command calls it) makes it raise :class:`Terminated`,
a :class:`KeyboardInterrupt`, so every clean-up path written for Ctrl-C (outputs off, the run
store marked interrupted) runs for it too. Without that handler a deferred SIGTERM gets its
default action (the process ends) once the block is over.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Callable, Iterator

__all__ = ["Terminated", "deferred_signals", "install_sigterm"]

_state = threading.local()
DEFERRED = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """The process was asked to terminate (SIGTERM), raised at a safe point."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = int(signum)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def install_sigterm() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # pragma: no cover - not the main interpreter
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first one received to the
    handler that was in place (SIGINT: KeyboardInterrupt by default; SIGTERM: its handler, or
    its default action). Only the main thread can install signal handlers; elsewhere, and
    inside an outer deferral, this is a no-op."""
    if threading.current_thread() is not threading.main_thread() or getattr(_state, "active", False):
        yield
        return
    received: list[tuple[int, Any]] = []

    def handler(signum: int, frame: Any) -> None:  # pragma: no cover - exercised via os.kill in tests
        received.append((signum, frame))

    previous: dict[int, Callable | int | None] = {}
    try:
        for sig in DEFERRED:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # pragma: no cover - not in the main interpreter
        for sig, prev in previous.items():
            signal.signal(sig, prev)
        yield
        return
    _state.active = True
    try:
        yield
    finally:
        _state.active = False
        for sig, prev in previous.items():
            signal.signal(sig, prev)
        if received:
            signum, frame = received[0]
            prev = previous[signum]
            if callable(prev):
                prev(signum, frame)
            elif prev == signal.SIG_DFL:
                if signum == signal.SIGINT:
                    raise KeyboardInterrupt
                os.kill(os.getpid(), signum)  # the default action, now that the block is over
            # SIG_IGN: ignored, as it would have been
