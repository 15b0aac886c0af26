"""Transports: how a driver's bytes reach its instrument, opened from an address.

* VISA resource names (``GPIB0::24::INSTR``, ``USB0::...::INSTR``, ``TCPIP0::...::INSTR``,
  ``TCPIP::host::port::SOCKET``, ``ASRL/dev/ttyUSB0::INSTR``) go through pyvisa with the given
  library: ``"@labrram"`` for the simulated bench, ``""`` (the system VISA) or ``"@py"``
  (pyvisa-py) for real instruments;
* serial URLs and ports (``labrram://default/board``, ``/dev/ttyUSB0``, ``COM3``,
  ``socket://host:port``) go through ``serial.serial_for_url``.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Protocol

from labrram.ieee488 import BlockError, split_block

from .errors import ConnectionLost, InstrumentError, InstrumentTimeout, ReplyError

class Transport(Protocol):
    """What a driver needs from a connection.

    ``in_process`` (optional, false when absent) says that the instrument at the other end is
    emulated in this process and keeps its state in this process's memory only (labrram's
    simulated bench without a ``[simulation] state`` folder): whatever it keeps, a crash of the
    machine takes away with the process, so a run store has no reason to flush its records to
    the disk before the instrument acts on them (see :mod:`labrram.protocols.journal`). A chip
    whose state is written to files — an instrument, or a simulated chip with a state folder,
    whose files the system may write back before the run's records — is not.
    """

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

    @property
    def in_process(self) -> bool:
        """See :class:`Transport`: the resource's VISA library says (false unless it does)."""
        return bool(getattr(getattr(self.resource, "visalib", None), "in_process", False))

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

    @property
    def in_process(self) -> bool:
        """See :class:`Transport`: the port says (false unless it does)."""
        return bool(getattr(self.port, "in_process", False))

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
