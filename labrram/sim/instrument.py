"""Building blocks of the byte-level emulators: sessions, message framing, source channels.

An :class:`EmulatedInstrument` owns the state of one instrument; every client connection gets
its own :class:`Session` (own input and output buffers, as each VISA session has). Bytes a
client writes are framed into program messages (``\\n`` terminated, or ended by the
transport's END/EOI) and handed to :meth:`EmulatedInstrument.process`; replies queue in the
session's output buffer as whole response messages. Every write and read costs its link's
time on the bench's virtual clock.

A :class:`SourceChannel` is the analog side of one SMU channel: it tracks output state and
level and applies them, with their durations, to whatever load is wired to the terminals.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..timing import LinkTiming
from .clock import VirtualClock

if TYPE_CHECKING:  # pragma: no cover
    from .bench import Bench


class Load(Protocol):
    """What an SMU's terminals are wired to."""

    def apply(self, v: float, duration: float) -> float:
        """Hold ``v`` across the load for ``duration`` seconds; return the current at the end, A."""

    def conductance(self) -> float:
        """Small-signal conductance of the load now, S (used for current sourcing)."""


class OpenCircuit:
    """Nothing connected: a few picoamperes of noise."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def apply(self, v: float, duration: float) -> float:
        return float(1e-12 * self._rng.standard_normal())

    def conductance(self) -> float:
        return 1e-12


class SourceChannel:
    """The analog state of one SMU channel and its effect on the load.

    The channel remembers since when it has held its present output; whenever that changes
    (new level, output off, a measurement, a route change on the board) the elapsed segment
    is applied to the load, so the die sees exactly what the terminals held and for how long.
    """

    def __init__(self, clock: VirtualClock, load: Load | None = None) -> None:
        self.clock = clock
        self.load: Load = load if load is not None else OpenCircuit()
        self.reset()

    def reset(self) -> None:
        self.output = False
        self.mode = "VOLT"  # or "CURR"
        self.level_v = 0.0
        self.level_i = 0.0
        self.limit_i = 105e-6
        self.limit_v = 21.0
        self.in_compliance = False
        self._since = self.clock.now

    # --- segment bookkeeping ------------------------------------------------------------
    def flush(self) -> None:
        """Apply the output held since the last change to the load."""
        now = self.clock.now
        if self.output and now > self._since:
            self._drive(now - self._since)
        self._since = now

    def _drive(self, duration: float) -> tuple[float, float]:
        if self.mode == "VOLT":
            v = self.level_v
            i = self.load.apply(v, duration)
            self.in_compliance = abs(i) > self.limit_i
            if self.in_compliance:
                i = float(np.sign(i) * self.limit_i)
            return v, i
        g = max(self.load.conductance(), 1e-12)
        v = self.level_i / g
        self.in_compliance = abs(v) > self.limit_v
        v = float(np.clip(v, -self.limit_v, self.limit_v))
        return v, self.load.apply(v, duration)

    # --- controls ----------------------------------------------------------------------
    def set_output(self, on: bool) -> None:
        self.flush()
        self.output = bool(on)

    def set_level(self, value: float) -> None:
        self.flush()
        if self.mode == "VOLT":
            self.level_v = float(value)
        else:
            self.level_i = float(value)

    def set_mode(self, mode: str) -> None:
        self.flush()
        self.mode = mode

    def measure(self, duration: float) -> tuple[float, float]:
        """Integrate for ``duration`` (advancing the clock); return (voltage, current).

        With the output off the terminals float: 0 V and no current.
        """
        self.flush()
        self.clock.advance(duration, "operation")
        if not self.output:
            self._since = self.clock.now
            self.in_compliance = False
            return 0.0, float(OpenCircuit().apply(0.0, 0.0))
        v, i = self._drive(duration)
        self._since = self.clock.now
        return v, i

    def pulse(self, base: float, peak: float, width: float) -> float:
        """A voltage pulse from ``base`` to ``peak`` for ``width`` seconds; returns the current at its end."""
        self.flush()
        self.level_v = float(peak)
        self.clock.advance(width, "operation")
        i = self._drive(width)[1] if self.output else 0.0
        self.level_v = float(base)
        self._since = self.clock.now
        return i


class Session:
    """One client connection to an emulated instrument: its own buffers and framing state."""

    def __init__(self, instrument: "EmulatedInstrument", link: LinkTiming | None = None) -> None:
        self.instrument = instrument
        self.link = link or instrument.link
        self.inbuf = bytearray()
        self.outq: deque[bytearray] = deque()
        self.closed = False
        self.lost = False  # the instrument reset or vanished: this connection is dead

    @property
    def clock(self) -> VirtualClock:
        return self.instrument.clock

    # --- client side -----------------------------------------------------------------
    def write(self, data: bytes, end: bool = True) -> int:
        """Bytes from the client. ``end`` marks a transport END (GPIB EOI / USBTMC EOM)."""
        inst = self.instrument
        faults = inst.bench.faults
        if self.lost:
            raise ConnectionError(f"{inst.name}: device disconnected; reopen the connection")
        if faults is not None:
            faults.before_access(inst)
        if self.closed:
            raise ConnectionError("session closed")
        self.clock.advance(self.link.cost(len(data)), "transport")
        self.inbuf.extend(data)
        for message in inst.frame(self.inbuf, end, self):
            if self.outq:
                inst.query_interrupted(self)
                self.outq.clear()
            inst.received += 1
            inst.last_received.append(message[:60])
            if faults is None:
                inst.process(self, message)
            else:
                faults.process(self, message)
                if self.lost:  # the message made the instrument reset or vanish
                    self.inbuf.clear()
                    break
            inst.bench.after_message()
        return len(data)

    def read(self, count: int, termchar: int | None = None, latency: bool = True) -> tuple[bytes, bool]:
        """Up to ``count`` bytes of the oldest pending response; ``(data, end_of_message)``.

        With ``termchar`` the read also stops after that byte. Returns ``(b"", False)`` when
        nothing is pending (the transport decides on a timeout). ``latency=False`` charges
        only the bytes (stream links pay their turnaround once, on the write).
        """
        if not self.outq:
            return b"", False
        head = self.outq[0]
        n = min(count, len(head))
        if termchar is not None:
            k = head.find(bytes([termchar]), 0, n)
            if k >= 0:
                n = k + 1
        chunk = bytes(head[:n])
        del head[:n]
        cost = self.link.cost(len(chunk)) if latency else len(chunk) / self.link.bytes_per_second
        self.clock.advance(cost, "transport")
        if not head:
            self.outq.popleft()
            return chunk, True
        return chunk, False

    def in_waiting(self) -> int:
        return sum(len(m) for m in self.outq)

    def clear(self) -> None:
        """Device clear: drop partial input and pending output."""
        self.inbuf.clear()
        self.outq.clear()
        self.instrument.device_clear(self)

    def close(self) -> None:
        self.closed = True
        self.instrument.sessions.discard(self)

    # --- instrument side ----------------------------------------------------------
    def reply(self, data: bytes) -> None:
        """Queue one whole response message (terminator included by the caller)."""
        self.outq.append(bytearray(data))


def split_lines(buf: bytearray, end: bool, blocks: bool = True) -> list[bytes]:
    """Take the complete program messages out of ``buf``.

    A message ends at ``\\n`` outside quotes and outside IEEE 488.2 definite-length blocks
    (``#<n><len><bytes>``), or at a transport END. An incomplete tail stays in ``buf``.
    """
    messages: list[bytes] = []
    start, i, n = 0, 0, len(buf)
    quote = 0
    incomplete = False
    block_end = 0  # bytes before this index belong to a binary block: never strip them
    while i < n:
        ch = buf[i]
        if quote:
            if ch == quote:
                quote = 0
        elif ch in (0x22, 0x27):  # " '
            quote = ch
        elif blocks and ch == 0x23 and i + 1 < n and 0x31 <= buf[i + 1] <= 0x39:  # '#1'..'#9'
            ndig = buf[i + 1] - 0x30
            if i + 2 + ndig > n:
                incomplete = True  # block header not complete yet
                break
            digits = bytes(buf[i + 2 : i + 2 + ndig])
            if not digits.isdigit():
                i += 1
                continue
            length = int(digits)
            if i + 2 + ndig + length > n:
                incomplete = True  # block not complete yet: wait for more bytes
                break
            i += 2 + ndig + length
            block_end = i
            continue
        elif ch == 0x0A:
            cut = i - 1 if i - 1 >= max(block_end, start) and buf[i - 1] == 0x0D else i
            messages.append(bytes(buf[start:cut]))
            start = i + 1
        i += 1
    if end and start < n and not incomplete and not quote:
        tail = bytes(buf[start:])
        keep = max(block_end - start, 0)
        messages.append(tail[:keep] + tail[keep:].rstrip(b"\r\n"))
        start = n
    del buf[:start]
    return [m for m in messages if m.strip(b" \t\r\n")]


class EmulatedInstrument:
    """Base of every emulator. Subclasses implement :meth:`process` and :meth:`reset`."""

    model = "generic"
    vendor = "labrram"

    def __init__(self, bench: "Bench", name: str, link: LinkTiming, serial: str = "0000001") -> None:
        self.bench = bench
        self.name = name
        self.link = link
        self.serial = serial
        self.sessions: set[Session] = set()
        self.received = 0  # program messages received since the bench was built
        self.last_received: deque[bytes] = deque(maxlen=64)  # their first bytes, for tests

    @property
    def clock(self) -> VirtualClock:
        return self.bench.clock

    def open_session(self, link: LinkTiming | None = None) -> Session:
        faults = self.bench.faults
        if faults is not None and faults.is_gone(self):
            faults.before_access(self)
        s = Session(self, link)
        self.sessions.add(s)
        return s

    def frame(self, buf: bytearray, end: bool, session: Session | None = None) -> list[bytes]:
        """The complete program messages at the head of ``buf`` (taken out of it); ``session``
        is the connection they came on (for protocols whose framing has state)."""
        return split_lines(buf, end)

    def process(self, session: Session, message: bytes) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:  # pragma: no cover - abstract
        """Power-on / ``*RST`` state."""
        raise NotImplementedError

    def device_clear(self, session: Session) -> None:
        """Called on a VISA device clear (``viClear``)."""

    def query_interrupted(self, session: Session) -> None:
        """A new message arrived while a response was still unread."""

    def shutdown(self) -> None:
        """Bench teardown: outputs off."""

    def lose_sessions(self) -> None:
        """Every open connection dies (the device reset or vanished); clients must reopen."""
        for s in list(self.sessions):
            s.lost = True
            s.closed = True
            s.inbuf.clear()
            s.outq.clear()
            self.sessions.discard(s)

    def power_cycle(self, lose_sessions: bool = True) -> None:
        """Power-on state: settings at their reset values, error queue empty, outputs off."""
        if lose_sessions:
            self.lose_sessions()
        self.reset()
        errors = getattr(self, "errors", None)
        if errors is not None:
            errors.clear()
