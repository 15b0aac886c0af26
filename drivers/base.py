"""The shared instrument base: exchanges, bounded retries, error checks, safe shutdown.

A driver talks to its instrument through a :class:`~.transports.Transport` opened from an
address (:mod:`.transports`: VISA resource names through pyvisa, serial ports and URLs through
pyserial), so the same driver code runs unchanged against real addresses and the simulated
bench. Its errors are in :mod:`.errors`, its declarative settings in :mod:`.settings`; this
module re-exports them.

Every exchange (write, or write + read) runs with Ctrl-C and SIGTERM deferred until it
completes, so an interrupt never leaves an instrument with half a command or an unread reply. Instruments are
context managers; leaving the block, an exception, Ctrl-C or interpreter exit calls
:meth:`Instrument.shutdown` (outputs ramped down and off).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import time
import weakref
from typing import Any, Callable

from labrram.safety import LimitError, SafeLimits
from labrram.signals import deferred_signals

from .errors import LINK_ERRORS, ConnectionLost, InstrumentError, InstrumentTimeout, ReplyError
from .settings import Setting, in_range, parse_bool
from .transports import SerialTransport, Transport, VisaTransport, address_kind, open_transport, parse_block

log = logging.getLogger("labrram.drivers")


def deferred_interrupt():
    """Hold SIGINT and SIGTERM until the block ends (an exchange is never cut in half); see
    :func:`labrram.signals.deferred_signals`."""
    return deferred_signals()


# --- instruments -------------------------------------------------------------------------------
_OPEN: "weakref.WeakSet[Instrument]" = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:  # pragma: no cover - runs at interpreter exit
    for inst in list(_OPEN):
        with contextlib.suppress(Exception):
            inst.shutdown()


class Instrument:
    """Base of every driver: exchanges, error-queue checks, bounded retries, shutdown.

    Parameters
    ----------
    transport : Transport
        The open connection.
    limits : SafeLimits, optional
        The bench's safe limits (default limits when omitted).
    name : str, optional
        Name used in messages and logs.
    write_termination : bytes
        Appended to every command.
    retries : int
        How many times an idempotent query (identification, error queue, settings, reads) is
        repeated after a timeout, a garbled reply or a lost connection, before the error is
        raised. Non-idempotent exchanges (pulses, sweeps) are never repeated.
    retry_delay : float
        Wait before each retry, s (through :attr:`wait`: the virtual clock on a simulated bench).

    Recovery
    --------
    After any failed exchange the link is brought back to a known state before the next one
    (:meth:`recover_link`: a device clear that drops partial commands and stale replies, and a
    reopened connection if the device went away), so a failure never leaks into the next reply.
    """

    #: command that pops one entry of the error queue and the reply that means "empty"
    error_query = ":SYST:ERR?"
    no_error_codes = ("0", "+0")

    def __init__(
        self,
        transport: Transport,
        limits: SafeLimits | None = None,
        name: str | None = None,
        write_termination: bytes = b"\n",
        retries: int = 2,
        retry_delay: float = 0.2,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
            raise ValueError(f"retries must be an integer in 0..20, got {retries!r}")
        if isinstance(retry_delay, bool) or not isinstance(retry_delay, (int, float)) or not 0 <= retry_delay <= 60:
            raise ValueError(f"retry_delay must be a number of seconds in [0, 60], got {retry_delay!r}")
        self.transport = transport
        self.limits = limits or SafeLimits()
        self.name = name or type(self).__name__
        self.write_termination = write_termination
        self.retries = int(retries)
        self.retry_delay = float(retry_delay)
        #: how to wait between retries (a station on a simulated bench puts its virtual clock here)
        self.wait: Callable[[float], None] = time.sleep
        self.log: list[tuple[str, bytes]] = []  # recent exchanges, for debugging
        self.link_faults = 0  # failed exchanges since the instrument was opened
        self._link_dirty = False  # the last exchange failed: recover before the next one
        self._closed = False
        _OPEN.add(self)

    @classmethod
    def open(cls, address: str, visa_library: str = "", limits: SafeLimits | None = None, timeout: float = 5.0, **kwargs: Any) -> "Instrument":
        """Open ``address`` (VISA name or serial URL) and build the driver on it."""
        transport = open_transport(address, visa_library, timeout)
        return cls(transport, limits=limits, **kwargs)

    @classmethod
    def address_problem(cls, address: Any) -> str | None:
        """Why ``address`` cannot be opened by this driver (None when it looks right); station
        files are checked with it before anything is opened."""
        if address_kind(address) is None:
            return (
                f"address {address!r} is neither a VISA resource name (GPIB0::24::INSTR) "
                "nor a serial port or URL (/dev/ttyACM0, COM3, labrram://default/board)"
            )
        return None

    # --- exchanges -------------------------------------------------------------------
    def format_command(self, command: str) -> str:
        """Hook for drivers that substitute a channel into command templates."""
        return command

    def _remember(self, direction: str, data: bytes) -> None:
        self.log.append((direction, data[:200]))
        if len(self.log) > 200:
            del self.log[:100]

    def _check_open(self) -> None:
        if self._closed:
            raise InstrumentError(f"{self.name} is closed")
        if self._link_dirty:
            self.recover_link()

    def _failed(self) -> None:
        self._link_dirty = True
        self.link_faults += 1

    #: the source-level commands this instrument refuses beyond the limits, even raw
    #: (:mod:`labrram.drivers.guard`); None: nothing to parse
    guard: "Callable[[SafeLimits, str], None] | None" = None
    _unguarded = False

    @contextlib.contextmanager
    def unguarded(self, reason: str):
        """Lift the raw-command guard for one block (logged with ``reason``): for experts who
        send source-level commands beyond the station's limits on purpose."""
        log.warning("%s: raw-command guard lifted: %s", self.name, reason)
        self._unguarded = True
        try:
            yield self
        finally:
            self._unguarded = False

    def _guard(self, data: bytes) -> None:
        guard = type(self).guard
        if guard is None or self._unguarded:
            return
        guard(self.limits, data.decode("latin-1", "replace").strip())

    def write_bytes(self, data: bytes) -> None:
        """Send raw bytes (the write termination is not added); a source-level command beyond
        the limits is refused first (:attr:`guard`)."""
        self._guard(data)
        self._check_open()
        with deferred_interrupt():
            self._remember(">", data)
            try:
                self.transport.write(data)
            except LINK_ERRORS:
                self._failed()
                raise

    def write(self, command: str) -> None:
        """Send one command."""
        self.write_bytes(command.encode("latin-1") + self.write_termination)

    def query_bytes(self, data: bytes, block: bool = False) -> bytes:
        """Send raw bytes and read one reply (a whole message, or a binary block's payload).

        One attempt: use :meth:`retrying` (or ``idempotent=True`` of the text helpers) for
        exchanges that may be repeated.
        """
        self._guard(data)
        self._check_open()
        with deferred_interrupt():
            self._remember(">", data)
            try:
                self.transport.write(data)
                reply = self.transport.read_block() if block else self.transport.read_message()
            except InstrumentTimeout as exc:
                self._failed()
                raise InstrumentTimeout(f"{exc} (after {data[:60]!r}; check the command and the read termination)") from None
            except LINK_ERRORS:
                self._failed()
                raise
            self._remember("<", reply)
            return reply

    def retrying(self, fn: Callable[[], Any], what: str) -> Any:
        """Call ``fn`` (an idempotent exchange and the parsing of its reply); after a timeout, a
        garbled reply or a lost connection, recover the link and call it again, at most
        :attr:`retries` more times. The last error is raised with the number of attempts."""
        attempts = 1 + self.retries
        first: InstrumentError | None = None
        last: InstrumentError | None = None
        for k in range(attempts):
            try:
                return fn()
            except LINK_ERRORS as exc:
                first = first or exc
                last = exc
                self._link_dirty = True
                if k + 1 < attempts:
                    log.warning("%s: %s failed (%s); retrying (%d/%d)", self.name, what, exc, k + 1, self.retries)
                    if self.retry_delay > 0:
                        self.wait(self.retry_delay)
        assert last is not None
        if attempts == 1:
            raise last
        errors = f"first error: {first}; last error: {last}" if str(first) != str(last) else f"error: {last}"
        raise type(first)(f"{self.name}: {what} failed {attempts} times (retries exhausted); {errors}") from None

    def recover_link(self) -> None:
        """Bring the link back to a known state after a failed exchange.

        A device clear drops partial commands and stale replies; when the connection itself
        is gone (the device reset or was unplugged) the connection is reopened — which raises
        :class:`ConnectionLost` while the device is not back. Then :meth:`after_recovery`.
        """
        self._link_dirty = True
        try:
            self.transport.clear()
        except ConnectionLost:
            self.transport.reopen()
        except InstrumentError:  # pragma: no cover - a clear the transport cannot do
            pass
        self._link_dirty = False
        self.after_recovery()

    def after_recovery(self) -> None:
        """Hook: drivers forget what they assumed about the instrument's state (it may have reset)."""

    def _text(self, data: bytes) -> str:
        return self.query_bytes(data).decode("latin-1").rstrip("\r\n")

    def query(self, command: str, idempotent: bool = False) -> str:
        """Send a query and return its reply text without the terminator (``idempotent``:
        retried on link faults, see :meth:`retrying`)."""
        data = command.encode("latin-1") + self.write_termination
        if not idempotent:
            return self._text(data)
        return self.retrying(lambda: self._text(data), repr(command))

    def query_block(self, command: str, idempotent: bool = False) -> bytes:
        """Send a query whose reply is a binary block; return the payload."""
        data = command.encode("latin-1") + self.write_termination
        if not idempotent:
            return self.query_bytes(data, block=True)
        return self.retrying(lambda: self.query_bytes(data, block=True), repr(command))

    def _float(self, command: str) -> float:
        reply = self.query(command)
        try:
            return float(reply)
        except ValueError:
            raise ReplyError(f"{self.name}: {command!r} returned {reply!r}, not a number") from None

    def query_float(self, command: str, idempotent: bool = False) -> float:
        if not idempotent:
            return self._float(command)
        return self.retrying(lambda: self._float(command), repr(command))

    def _floats(self, command: str, sep: str) -> list[float]:
        reply = self.query(command)
        try:
            return [float(x) for x in reply.replace(";", sep).split(sep) if x.strip()]
        except ValueError:
            raise ReplyError(f"{self.name}: {command!r} returned {reply[:80]!r}, not numbers") from None

    def query_floats(self, command: str, sep: str = ",", idempotent: bool = False) -> list[float]:
        if not idempotent:
            return self._floats(command, sep)
        return self.retrying(lambda: self._floats(command, sep), repr(command))

    # --- errors ------------------------------------------------------------------------
    def parse_error(self, reply: str) -> tuple[int, str]:
        """Split an error-queue reply ``<code>,"<message>"``."""
        code, _, message = reply.partition(",")
        try:
            return int(float(code)), message.strip().strip('"')
        except ValueError:
            raise ReplyError(f"{self.name}: error query returned {reply!r}") from None

    def read_errors(self, max_errors: int = 32, retry: bool = True) -> list[tuple[int, str]]:
        """Drain the instrument's error queue (each query retried on link faults, unless
        ``retry`` is False: then a link fault propagates — after a non-idempotent command it
        must be settled, not hidden; an entry whose reply was lost is lost with it)."""
        errors = []
        for _ in range(max_errors):
            if retry:
                code, message = self.retrying(lambda: self.parse_error(self.query(self.error_query)), repr(self.error_query))
            else:
                code, message = self.parse_error(self.query(self.error_query))
            if code == 0:
                break
            errors.append((code, message))
        return errors

    def check_errors(self) -> None:
        """Raise :class:`InstrumentError` listing every queued error (the queue is drained)."""
        errors = self.read_errors()
        if errors:
            text = "; ".join(f"{c}: {m}" for c, m in errors)
            raise InstrumentError(f"{self.name} reported: {text}")

    def write_checked(self, command: str) -> None:
        """Send an idempotent command (settings) and check the error queue; when the command
        was refused or the link failed, send it again (at most :attr:`retries` more times)."""
        attempts = 1 + self.retries
        for k in range(attempts):
            try:
                self.write(command)
                self.check_errors()
                return
            except InstrumentError as exc:
                if k + 1 == attempts:
                    raise
                log.warning("%s: %r failed (%s); sending it again", self.name, command[:60], exc)
                self._link_dirty = True
                if self.retry_delay > 0:
                    self.wait(self.retry_delay)

    @property
    def idn(self) -> str:
        """The ``*IDN?`` identification."""
        return self.query("*IDN?", idempotent=True).strip()

    def clear(self) -> None:
        """Device clear: drop partial commands and pending replies."""
        self.transport.clear()

    # --- lifecycle ---------------------------------------------------------------------
    def shutdown(self) -> None:
        """Put the instrument in a safe state (outputs off). Drivers extend this."""

    def close(self) -> None:
        """Shut down safely, then close the connection."""
        if self._closed:
            return
        try:
            self.shutdown()
        finally:
            self._closed = True
            _OPEN.discard(self)
            with contextlib.suppress(Exception):
                self.transport.close()

    def __enter__(self) -> "Instrument":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # leaving on an error or Ctrl-C: make safe, but never mask the original exception
            self.close()
        except Exception as shutdown_exc:  # pragma: no cover - depends on the failure
            log.error("%s: shutdown after %s failed: %s", self.name, exc_type.__name__, shutdown_exc)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} at {self.transport.address}>"


__all__ = [
    "ConnectionLost",
    "Instrument",
    "InstrumentError",
    "InstrumentTimeout",
    "LINK_ERRORS",
    "LimitError",
    "ReplyError",
    "SafeLimits",
    "Setting",
    "SerialTransport",
    "Transport",
    "VisaTransport",
    "address_kind",
    "deferred_interrupt",
    "in_range",
    "open_transport",
    "parse_block",
    "parse_bool",
]
