"""The shared instrument base: transports, exchanges, error checks, safe shutdown.

A driver talks to its instrument through a :class:`Transport`, opened from an address by
:func:`open_transport`:

* VISA resource names (``GPIB0::24::INSTR``, ``USB0::...::INSTR``, ``TCPIP0::...::INSTR``) go
  through pyvisa with the given library: ``"@labrram"`` for the simulated bench, ``""`` (the
  system VISA) or ``"@py"`` (pyvisa-py) for real instruments;
* serial URLs and ports (``labrram://default/board``, ``/dev/ttyUSB0``, ``COM3``,
  ``socket://host:port``) go through ``serial.serial_for_url``.

The same driver code therefore runs unchanged against real addresses and the simulated bench.

Every exchange (write, or write + read) runs with Ctrl-C and SIGTERM deferred until it
completes, so an interrupt never leaves an instrument with half a command or an unread reply. Instruments are
context managers; leaving the block, an exception, Ctrl-C or interpreter exit calls
:meth:`Instrument.shutdown` (outputs ramped down and off).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import re
import time
import weakref
from typing import Any, Callable, Protocol

from labrram.ieee488 import BlockError, split_block
from labrram.safety import LimitError, SafeLimits
from labrram.signals import deferred_signals

log = logging.getLogger("labrram.drivers")


class InstrumentError(RuntimeError):
    """The instrument reported errors, or answered something a driver cannot use."""


class InstrumentTimeout(InstrumentError):
    """No (complete) reply within the timeout."""


class ReplyError(InstrumentError):
    """A reply that does not parse as what the command returns."""


class ConnectionLost(InstrumentError):
    """The connection failed (device unplugged, reset, re-enumerated); it must be reopened."""


#: what a retry of an idempotent exchange can cure: no reply, a garbled reply, a lost connection
LINK_ERRORS = (InstrumentTimeout, ReplyError, ConnectionLost)


# --- Ctrl-C / SIGTERM deferral ------------------------------------------------------------
def deferred_interrupt():
    """Hold SIGINT and SIGTERM until the block ends (an exchange is never cut in half); see
    :func:`labrram.signals.deferred_signals`."""
    return deferred_signals()


# --- transports ----------------------------------------------------------------------------
class Transport(Protocol):
    """What a driver needs from a connection."""

    address: str

    def write(self, data: bytes) -> None: ...

    def read_message(self) -> bytes: ...

    def read_block(self) -> bytes: ...

    def read_bytes(self, n: int) -> bytes: ...

    def clear(self) -> None: ...

    def reopen(self) -> None: ...

    def close(self) -> None: ...

    @property
    def timeout(self) -> float: ...

    @timeout.setter
    def timeout(self, seconds: float) -> None: ...


def parse_block(data: bytes) -> tuple[bytes, bytes]:
    """Split an IEEE 488.2 definite-length block from the bytes after it (raises ReplyError)."""
    try:
        return split_block(data)
    except BlockError as exc:
        raise ReplyError(str(exc)) from None


class VisaTransport:
    """A pyvisa message-based resource.

    On GPIB and USBTMC a message ends with the bus's END; on byte streams — raw sockets
    (``TCPIP::host::port::SOCKET``) and serial ports (``ASRL``) — it ends with a newline, and a
    binary block is read by its length (it may hold newline bytes).
    """

    def __init__(self, resource: Any, resource_manager: Any = None) -> None:
        self.resource = resource
        self.resource_manager = resource_manager
        self.address = resource.resource_name
        name = self.address.upper()
        self.stream = name.endswith("::SOCKET") or name.startswith("ASRL")
        self._terminate(resource)

    def _terminate(self, resource: Any) -> None:
        resource.read_termination = "\n" if self.stream else None
        resource.write_termination = None

    def _error(self, exc: Exception) -> InstrumentError:
        import pyvisa

        code = getattr(exc, "error_code", None)
        if code == pyvisa.constants.StatusCode.error_timeout:
            return InstrumentTimeout(f"{self.address}: no reply within {self.timeout:g} s")
        if code in (pyvisa.constants.StatusCode.error_connection_lost, pyvisa.constants.StatusCode.error_resource_not_found):
            return ConnectionLost(f"{self.address}: connection lost ({exc})")
        return InstrumentError(f"{self.address}: {exc}")

    def write(self, data: bytes) -> None:
        import pyvisa

        try:
            self.resource.write_raw(data)
        except pyvisa.errors.VisaIOError as exc:
            raise self._error(exc) from None
        except OSError as exc:  # a backend that lets the socket's error through (peer gone)
            raise ConnectionLost(f"{self.address}: connection lost ({exc})") from None

    def read_message(self) -> bytes:
        import pyvisa

        try:
            return self.resource.read_raw()
        except pyvisa.errors.VisaIOError as exc:
            raise self._error(exc) from None
        except OSError as exc:
            raise ConnectionLost(f"{self.address}: connection lost ({exc})") from None

    def read_bytes(self, n: int) -> bytes:
        """Exactly ``n`` bytes (binary replies without framing, e.g. on an ASRL resource)."""
        import pyvisa

        try:
            data = self.resource.read_bytes(n)
        except pyvisa.errors.VisaIOError as exc:
            raise self._error(exc) from None
        except OSError as exc:
            raise ConnectionLost(f"{self.address}: connection lost ({exc})") from None
        if len(data) != n:
            raise InstrumentTimeout(f"{self.address}: expected {n} bytes, got {len(data)}")
        return data

    def read_block(self) -> bytes:
        if self.stream:
            return self._read_stream_block()
        data = self.read_message()
        if data.startswith(b"#0"):  # indefinite length: the message ends with exactly one newline
            return data[2:-1] if data.endswith(b"\n") else data[2:]
        payload, _ = parse_block(data)
        return payload

    def _read_stream_block(self) -> bytes:
        head = self.read_bytes(2)
        if head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
            rest = self.read_message()
            raise ReplyError(f"{self.address}: expected a binary block, got {(head + rest)[:60]!r}")
        digits = self.read_bytes(int(head[1:2]))
        if not digits.isdigit():
            raise ReplyError(f"{self.address}: malformed block header {head + digits!r}")
        payload = self.read_bytes(int(digits)) if int(digits) else b""
        tail = self.read_bytes(1)
        if tail != b"\n":
            raise ReplyError(f"{self.address}: block not followed by a newline, got {tail!r}")
        return payload

    def clear(self) -> None:
        import pyvisa

        if self.address.upper().endswith("::SOCKET"):  # a raw socket has no device clear: a new connection
            self.reopen()  # drops stale bytes both ways, and finds a server that went away
            return
        try:
            self.resource.clear()
        except pyvisa.errors.VisaIOError as exc:
            raise self._error(exc) from None

    def reopen(self) -> None:
        """Close and open the resource again (after the device reset or came back)."""
        import pyvisa

        timeout = self.timeout
        with contextlib.suppress(Exception):
            self.resource.close()
        if self.resource_manager is None:
            raise ConnectionLost(f"{self.address}: cannot reopen (no resource manager)")
        try:
            self.resource = self.resource_manager.open_resource(self.address)
        except (pyvisa.errors.VisaIOError, OSError) as exc:
            raise ConnectionLost(f"{self.address}: cannot reopen: {exc}") from None
        self._terminate(self.resource)
        self.timeout = timeout

    def close(self) -> None:
        self.resource.close()

    @property
    def timeout(self) -> float:
        t = self.resource.timeout
        return float("inf") if t is None else t / 1000.0

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.resource.timeout = None if seconds == float("inf") else seconds * 1000.0


class SerialTransport:
    """A pyserial port opened with ``serial_for_url`` (real ports and ``labrram://`` alike)."""

    def __init__(self, port: Any, address: str, terminator: bytes = b"\n") -> None:
        self.port = port
        self.address = address
        self.terminator = terminator

    def _lost(self, exc: Exception) -> ConnectionLost:
        return ConnectionLost(f"{self.address}: {exc}")

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
        except serial.SerialException as exc:
            raise self._lost(exc) from None

    def _read(self, n: int) -> bytes:
        import serial

        try:
            return self.port.read(n)
        except serial.SerialException as exc:
            raise self._lost(exc) from None

    def _read_until(self) -> bytes:
        import serial

        try:
            return self.port.read_until(self.terminator)
        except serial.SerialException as exc:
            raise self._lost(exc) from None

    def _read_exact(self, n: int) -> bytes:
        data = self._read(n)
        if len(data) != n:
            raise InstrumentTimeout(f"{self.address}: expected {n} bytes, got {len(data)} within {self.timeout:g} s")
        return data

    def read_bytes(self, n: int) -> bytes:
        """Exactly ``n`` bytes (binary replies without framing); a timeout when fewer come."""
        return self._read_exact(n)

    def read_message(self) -> bytes:
        data = self._read_until()
        if not data.endswith(self.terminator):
            what = f"partial reply {data[:40]!r}" if data else "nothing"
            raise InstrumentTimeout(f"{self.address}: {what} within {self.timeout:g} s (expected a line ending in {self.terminator!r})")
        return data

    def read_block(self) -> bytes:
        head = self._read_exact(2)
        if head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
            rest = self._read_until()
            raise ReplyError(f"{self.address}: expected a binary block, got {(head + rest)[:60]!r}")
        ndig = int(head[1:2])
        digits = self._read_exact(ndig)
        if not digits.isdigit():
            raise ReplyError(f"{self.address}: malformed block header {head + digits!r}")
        payload = self._read_exact(int(digits))
        tail = self._read_exact(len(self.terminator))
        if tail != self.terminator:
            raise ReplyError(f"{self.address}: block not followed by the terminator, got {tail!r}")
        return payload

    def clear(self) -> None:
        import serial

        try:
            self.port.reset_input_buffer()
            self.port.reset_output_buffer()
        except serial.SerialException as exc:
            raise self._lost(exc) from None

    def reopen(self) -> None:
        """Close and open the port again (after the device reset or came back)."""
        import serial

        with contextlib.suppress(Exception):
            self.port.close()
        try:
            self.port.open()
        except serial.SerialException as exc:
            raise self._lost(exc) from None

    def close(self) -> None:
        self.port.close()

    @property
    def timeout(self) -> float:
        t = self.port.timeout
        return float("inf") if t is None else float(t)

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.port.timeout = None if seconds == float("inf") else seconds


_SERIAL_URL = re.compile(r"^([a-z][a-z0-9+.-]*://|/dev/|COM\d+$)", re.IGNORECASE)
_VISA_NAME = re.compile(r"^((GPIB|USB|TCPIP|VXI|PXI|GPIB-VXI)\d*|ASRL(\d*|/[^:]+|COM\d+))::", re.IGNORECASE)  # ASRL/dev/ttyUSB0::INSTR: pyvisa-py


def address_kind(address: Any) -> str | None:
    """``"visa"`` for a VISA resource name, ``"serial"`` for a serial port or URL, else None."""
    if not isinstance(address, str) or not address.strip():
        return None
    if _VISA_NAME.match(address):
        return "visa"
    if _SERIAL_URL.match(address):
        return "serial"
    return None


def open_transport(address: str, visa_library: str = "", timeout: float = 5.0, **serial_options: Any) -> Transport:
    """Open ``address`` as a VISA resource or a serial URL (see module docstring)."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError("instrument address must be a non-empty string")
    if _VISA_NAME.match(address):
        import pyvisa

        try:
            rm = pyvisa.ResourceManager(visa_library)
        except (OSError, ValueError) as exc:
            raise InstrumentError(f"cannot load VISA library {visa_library!r}: {exc}") from None
        try:
            resource = rm.open_resource(address)
        except pyvisa.errors.VisaIOError as exc:
            raise InstrumentError(f"cannot open {address} with VISA library {visa_library!r}: {exc}") from None
        transport: Transport = VisaTransport(resource, rm)
    elif _SERIAL_URL.match(address):
        import serial

        import labrram  # noqa: F401  (registers the labrram:// URL handler)

        try:
            port = serial.serial_for_url(address, timeout=timeout, **serial_options)
        except (serial.SerialException, ValueError) as exc:
            raise InstrumentError(f"cannot open serial port {address}: {exc}") from None
        transport = SerialTransport(port, address)
    else:
        raise ValueError(
            f"unrecognised instrument address {address!r}: use a VISA resource name "
            "(GPIB0::24::INSTR) or a serial URL (labrram://default/board, /dev/ttyUSB0, COM3)"
        )
    transport.timeout = timeout
    return transport


# --- instruments -------------------------------------------------------------------------------
_OPEN: "weakref.WeakSet[Instrument]" = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:  # pragma: no cover - runs at interpreter exit
    for inst in list(_OPEN):
        with contextlib.suppress(Exception):
            inst.shutdown()


class Setting:
    """A declarative instrument setting (PyMeasure-style property).

    Parameters
    ----------
    get_command : str or None
        Query sent to read the setting (``None``: write-only).
    set_command : str or None
        Command template formatted with the value (``None``: read-only).
    parse : callable
        Turns the reply text into a Python value.
    validate : callable, optional
        ``validate(instrument, value)`` raises (``ValueError``/``LimitError``) before any byte
        is sent; may return a normalised value.
    doc : str
        Docstring of the property.
    """

    def __init__(
        self,
        get_command: str | None,
        set_command: str | None,
        parse: Callable[[str], Any] = float,
        validate: Callable[[Any, Any], Any] | None = None,
        doc: str = "",
    ) -> None:
        self.get_command = get_command
        self.set_command = set_command
        self.parse = parse
        self.validate = validate
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, inst: "Instrument | None", owner: type) -> Any:
        if inst is None:
            return self
        if self.get_command is None:
            raise AttributeError(f"{self.name} is write-only")
        command = inst.format_command(self.get_command)

        def get() -> Any:
            reply = inst.query(command)
            try:
                return self.parse(reply.strip())
            except (ValueError, TypeError) as exc:
                raise ReplyError(f"{inst.name}: {self.name} reply {reply!r} does not parse: {exc}") from None

        return inst.retrying(get, f"reading {self.name}")  # reading a setting is idempotent

    def __set__(self, inst: "Instrument", value: Any) -> None:
        if self.set_command is None:
            raise AttributeError(f"{self.name} is read-only")
        if self.validate is not None:
            result = self.validate(inst, value)
            value = value if result is None else result
        inst.write(inst.format_command(self.set_command).format(value))


def parse_bool(text: str) -> bool:
    t = text.strip().upper()
    if t in ("1", "ON", "TRUE"):
        return True
    if t in ("0", "OFF", "FALSE"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def in_range(lo: float, hi: float, what: str) -> Callable[[Any, Any], float]:
    """Validator: a finite number in ``[lo, hi]`` (instrument range, not the bench limit)."""

    def check(inst: Any, value: Any) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what} must be a number, got {value!r}") from None
        if not (lo <= v <= hi):
            raise ValueError(f"{what} {v:g} outside the instrument range [{lo:g}, {hi:g}]")
        return v

    return check


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
