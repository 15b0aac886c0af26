"""Serve an instrument of a simulated bench on a pseudo-terminal.

Software that opens a serial port by its device path — an instrument's own host library, a
terminal program — reaches the emulator through the pty's path (``/dev/pts/N``) exactly as it
would reach the instrument through ``/dev/ttyACM0``: bytes in, bytes out, at the emulator's
pace. The bench's fault injection and virtual clock apply as for every other transport.
POSIX only (pseudo-terminals).
"""

from __future__ import annotations

import contextlib
import os
import select
import threading

from .handle import InstrumentHandle


class PtyServer:
    """A pseudo-terminal whose other end is an emulated instrument.

    Parameters
    ----------
    bench : str
        Name of the simulated bench (``"default"``).
    instrument : str
        The instrument's name on that bench (e.g. ``"arc1"``, ``"board"``).

    Use as a context manager, or :meth:`start` then :meth:`close`. :attr:`path` is the device
    path a client opens.
    """

    def __init__(self, bench: str = "default", instrument: str = "arc1") -> None:
        if not hasattr(os, "openpty"):  # pragma: no cover - Windows
            raise OSError("serving on a pseudo-terminal needs a POSIX system")
        self.bench_name, self.instrument = bench, instrument
        self._handle = InstrumentHandle(bench, instrument)  # unknown instruments fail here
        self._master, self._slave = os.openpty()
        import tty

        tty.setraw(self._slave)  # no echo, no line editing, no newline translation
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name=f"pty-{instrument}", daemon=True)
        self.bytes_in = self.bytes_out = 0

    def start(self) -> "PtyServer":
        self._thread.start()
        return self

    def _session(self):
        try:
            return self._handle.session
        except ConnectionError:  # the instrument reset or vanished: attach again when it is back
            self._handle = InstrumentHandle(self.bench_name, self.instrument)
            return self._handle.session

    def _pump(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 1 << 16)
            except OSError:
                continue
            if not data:
                continue
            self.bytes_in += len(data)
            out = bytearray()
            bench = self._handle.bench
            with bench.lock:
                try:
                    session = self._session()
                    session.write(data, end=False)
                    while session.outq:
                        chunk, _ = session.read(1 << 30, latency=False)
                        out += chunk
                except ConnectionError:
                    continue  # lost with the instrument, as on a cable that was pulled
            view = memoryview(bytes(out))
            while view:
                n = os.write(self._master, view)
                view = view[n:]
            self.bytes_out += len(out)

    def close(self) -> None:
        """Stop serving and close the pseudo-terminal."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._handle.close()

    def __enter__(self) -> "PtyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
