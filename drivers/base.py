"""The shared instrument base: transports, exchanges, error checks, safe shutdown.

A driver talks to its instrument through a :class:`Transport`, opened from an address by
:func:`open_transport`:

* VISA resource names (``GPIB0::24::INSTR``, ``USB0::...::INSTR``, ``TCPIP0::...::INSTR``) go
  through pyvisa with the given library: ``"@labrram"`` for the simulated bench, ``""`` (the
  system VISA) or ``"@py"`` (pyvisa-py) for real instruments;
* serial URLs and ports (``labrram://default/board``, ``/dev/ttyUSB0``, ``COM3``,
  ``socket://host:port``) go through ``serial.serial_for_url``.

The same driver code therefore runs unchanged against real addresses and the simulated bench.

Every exchange (write, or write + read) runs with Ctrl-C deferred until it completes, so an
interrupt never leaves an instrument with half a command or an unread reply. Instruments are
context managers; leaving the block, an exception, Ctrl-C or interpreter exit calls
:meth:`Instrument.shutdown` (outputs ramped down and off).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import re
import signal
import threading
import weakref
from typing import Any, Callable, Iterator, Protocol

from labrram.ieee488 import BlockError, split_block
from labrram.safety import LimitError, SafeLimits

log = logging.getLogger("labrram.drivers")


class InstrumentError(RuntimeError):
    """The instrument reported errors, or answered something a driver cannot use."""


class InstrumentTimeout(InstrumentError):
    """No (complete) reply within the timeout."""


class ReplyError(InstrumentError):
    """A reply that does not parse as what the command returns."""


# --- Ctrl-C deferral ------------------------------------------------------------------------
_defer_state = threading.local()


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold SIGINT until the block ends, then raise the KeyboardInterrupt it carried.

    Only the main thread can install signal handlers; elsewhere this is a no-op.
    """
    if threading.current_thread() is not threading.main_thread() or getattr(_defer_state, "active", False):
        yield
        return
    received: list[Any] = []

    def handler(signum, frame):  # pragma: no cover - exercised via os.kill in tests
        received.append((signum, frame))

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # pragma: no cover - not in main interpreter
        yield
        return
    _defer_state.active = True
    try:
        yield
    finally:
        _defer_state.active = False
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(*received[0])
            else:
                raise KeyboardInterrupt


# --- transports ----------------------------------------------------------------------------
class Transport(Protocol):
    """What a driver needs from a connection."""

    address: str

    def write(self, data: bytes) -> None: ...

    def read_message(self) -> bytes: ...

    def read_block(self) -> bytes: ...

    def clear(self) -> None: ...

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
    """A pyvisa message-based resource."""

    def __init__(self, resource: Any) -> None:
        self.resource = resource
        self.address = resource.resource_name
        resource.read_termination = None
        resource.write_termination = None

    def write(self, data: bytes) -> None:
        self.resource.write_raw(data)

    def read_message(self) -> bytes:
        import pyvisa

        try:
            return self.resource.read_raw()
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise InstrumentTimeout(f"{self.address}: no reply within {self.timeout:g} s") from None
            raise InstrumentError(f"{self.address}: {exc}") from None

    def read_block(self) -> bytes:
        data = self.read_message()
        if data.startswith(b"#0"):  # indefinite length: the message ends with exactly one newline
            return data[2:-1] if data.endswith(b"\n") else data[2:]
        payload, _ = parse_block(data)
        return payload

    def clear(self) -> None:
        self.resource.clear()

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

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def _read_exact(self, n: int) -> bytes:
        data = self.port.read(n)
        if len(data) != n:
            raise InstrumentTimeout(f"{self.address}: expected {n} bytes, got {len(data)} within {self.timeout:g} s")
        return data

    def read_message(self) -> bytes:
        data = self.port.read_until(self.terminator)
        if not data.endswith(self.terminator):
            what = f"partial reply {data[:40]!r}" if data else "nothing"
            raise InstrumentTimeout(f"{self.address}: {what} within {self.timeout:g} s (expected a line ending in {self.terminator!r})")
        return data

    def read_block(self) -> bytes:
        head = self._read_exact(2)
        if head[:1] != b"#" or not head[1:2].isdigit() or head[1:2] == b"0":
            rest = self.port.read_until(self.terminator)
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
        self.port.reset_input_buffer()
        self.port.reset_output_buffer()

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
_VISA_NAME = re.compile(r"^(GPIB|USB|TCPIP|ASRL|VXI|PXI|GPIB-VXI)\d*::", re.IGNORECASE)


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
        transport: Transport = VisaTransport(resource)
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
        reply = inst.query(inst.format_command(self.get_command))
        try:
            return self.parse(reply.strip())
        except (ValueError, TypeError) as exc:
            raise ReplyError(f"{inst.name}: {self.name} reply {reply!r} does not parse: {exc}") from None

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
    """Base of every driver: exchanges, error-queue checks, context management, shutdown.

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
    """

    #: command that pops one entry of the error queue and the reply that means "empty"
    error_query = ":SYST:ERR?"
    no_error_codes = ("0", "+0")

    def __init__(self, transport: Transport, limits: SafeLimits | None = None, name: str | None = None, write_termination: bytes = b"\n") -> None:
        self.transport = transport
        self.limits = limits or SafeLimits()
        self.name = name or type(self).__name__
        self.write_termination = write_termination
        self.log: list[tuple[str, bytes]] = []  # recent exchanges, for debugging
        self._closed = False
        _OPEN.add(self)

    @classmethod
    def open(cls, address: str, visa_library: str = "", limits: SafeLimits | None = None, timeout: float = 5.0, **kwargs: Any) -> "Instrument":
        """Open ``address`` (VISA name or serial URL) and build the driver on it."""
        transport = open_transport(address, visa_library, timeout)
        return cls(transport, limits=limits, **kwargs)

    # --- exchanges -------------------------------------------------------------------
    def format_command(self, command: str) -> str:
        """Hook for drivers that substitute a channel into command templates."""
        return command

    def _remember(self, direction: str, data: bytes) -> None:
        self.log.append((direction, data[:200]))
        if len(self.log) > 200:
            del self.log[:100]

    def write_bytes(self, data: bytes) -> None:
        """Send raw bytes (the write termination is not added)."""
        if self._closed:
            raise InstrumentError(f"{self.name} is closed")
        with deferred_interrupt():
            self._remember(">", data)
            self.transport.write(data)

    def write(self, command: str) -> None:
        """Send one command."""
        self.write_bytes(command.encode("latin-1") + self.write_termination)

    def query_bytes(self, data: bytes, block: bool = False) -> bytes:
        """Send raw bytes and read one reply (a whole message, or a binary block's payload)."""
        if self._closed:
            raise InstrumentError(f"{self.name} is closed")
        with deferred_interrupt():
            self._remember(">", data)
            self.transport.write(data)
            try:
                reply = self.transport.read_block() if block else self.transport.read_message()
            except InstrumentTimeout as exc:
                raise InstrumentTimeout(f"{exc} (after {data[:60]!r}; check the command and the read termination)") from None
            self._remember("<", reply)
            return reply

    def query(self, command: str) -> str:
        """Send a query and return its reply text without the terminator."""
        reply = self.query_bytes(command.encode("latin-1") + self.write_termination)
        return reply.decode("latin-1").rstrip("\r\n")

    def query_block(self, command: str) -> bytes:
        """Send a query whose reply is a binary block; return the payload."""
        return self.query_bytes(command.encode("latin-1") + self.write_termination, block=True)

    def query_float(self, command: str) -> float:
        reply = self.query(command)
        try:
            return float(reply)
        except ValueError:
            raise ReplyError(f"{self.name}: {command!r} returned {reply!r}, not a number") from None

    def query_floats(self, command: str, sep: str = ",") -> list[float]:
        reply = self.query(command)
        try:
            return [float(x) for x in reply.replace(";", sep).split(sep) if x.strip()]
        except ValueError:
            raise ReplyError(f"{self.name}: {command!r} returned {reply[:80]!r}, not numbers") from None

    # --- errors ------------------------------------------------------------------------
    def parse_error(self, reply: str) -> tuple[int, str]:
        """Split an error-queue reply ``<code>,"<message>"``."""
        code, _, message = reply.partition(",")
        try:
            return int(float(code)), message.strip().strip('"')
        except ValueError:
            raise ReplyError(f"{self.name}: error query returned {reply!r}") from None

    def read_errors(self, max_errors: int = 32) -> list[tuple[int, str]]:
        """Drain the instrument's error queue."""
        errors = []
        for _ in range(max_errors):
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

    @property
    def idn(self) -> str:
        """The ``*IDN?`` identification."""
        return self.query("*IDN?").strip()

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
    "Instrument",
    "InstrumentError",
    "InstrumentTimeout",
    "LimitError",
    "ReplyError",
    "SafeLimits",
    "Setting",
    "SerialTransport",
    "Transport",
    "VisaTransport",
    "deferred_interrupt",
    "in_range",
    "open_transport",
    "parse_block",
    "parse_bool",
]
