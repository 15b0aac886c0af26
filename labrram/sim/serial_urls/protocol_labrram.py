"""pyserial URL handler: ``serial.serial_for_url("labrram://<bench>/<instrument>")``.

``labrram://default/board`` opens the board of the default simulated bench;
``labrram://board`` is short for it. Options: ``?link=uart`` makes the virtual clock charge the
port's baud rate (10 bits per byte) instead of the USB-CDC link the board has by default.
``import labrram`` registers the handler (it appends ``labrram.sim.serial_urls`` to
``serial.protocol_handler_packages``). pyvisa-py reaches the same handler as
``ASRLlabrram://default/board::INSTR``.

The port is a byte stream, as a real serial port: replies from the board arrive as bytes;
``read(n)`` returns what is there, and when less than ``n`` bytes are available it waits the
port's timeout on the virtual clock and returns short, exactly as pyserial does.
"""

from __future__ import annotations

import urllib.parse

import serial
from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from ...timing import uart
from ..handle import InstrumentHandle


class Serial(SerialBase):
    """A pyserial port onto an emulated instrument of a simulated bench."""

    @property
    def in_process(self) -> bool:
        """The instrument is emulated in this process and its chip kept in this process's memory
        only (a bench without a ``[simulation] state`` folder; see
        :class:`labrram.drivers.transports.Transport`)."""
        handle = getattr(self, "_handle", None)
        return handle is not None and handle.bench.config.state is None

    def open(self) -> None:
        if self._port is None:
            raise SerialException("port must be configured before it can be used")
        if self.is_open:
            raise SerialException("port already open")
        bench, instrument, link = self.from_url(self.portstr)
        try:
            self._handle = InstrumentHandle(bench, instrument, link)
        except (KeyError, ConnectionError) as exc:
            raise SerialException(f"could not open port {self.portstr}: {exc}") from None
        self._rx = bytearray()
        self.is_open = True
        self._reconfigure_port()

    def from_url(self, url: str):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "labrram":
            raise SerialException(f"expected a URL of the form labrram://<bench>/<instrument>, got {url!r}")
        path = parts.path.strip("/")
        bench, instrument = (parts.netloc, path) if path else ("default", parts.netloc)
        if not instrument:
            raise SerialException(f"no instrument in {url!r} (labrram://<bench>/<instrument>)")
        link = None
        for option, values in urllib.parse.parse_qs(parts.query).items():
            if option == "link" and values == ["uart"]:
                link = uart(self._baudrate)
            elif option == "link" and values == ["usb"]:
                link = None
            else:
                raise SerialException(f"unknown option {option}={values} in {url!r}")
        return bench or "default", instrument, link

    def _reconfigure_port(self) -> None:
        """Baud rate, parity and friends are accepted; with ``link=uart`` the baud rate sets timing."""

    def close(self) -> None:
        if self.is_open:
            self._handle.close()
            self.is_open = False

    # --- I/O --------------------------------------------------------------------------
    def _session(self):
        if not self.is_open:
            raise PortNotOpenError()
        try:
            return self._handle.session
        except ConnectionError as exc:  # as pyserial on a USB device that went away
            raise SerialException(f"device reports readiness to read but returned no data (device disconnected?): {exc}") from None

    def _pull(self) -> None:
        """Move every byte the instrument has replied into the receive buffer."""
        session = self._session()
        while session.outq:
            chunk, _ = session.read(1 << 30, latency=False)
            self._rx.extend(chunk)

    @property
    def in_waiting(self) -> int:
        with self._handle.bench.lock:
            self._pull()
        return len(self._rx)

    def _wait_timeout(self) -> None:
        if self._timeout is None:
            raise SerialException(
                "read with timeout=None would block forever: the instrument has nothing more to send"
            )
        self._handle.bench.clock.advance(float(self._timeout), "timeout")

    def read(self, size: int = 1) -> bytes:
        with self._handle.bench.lock:
            self._pull()
            if len(self._rx) < size:
                self._wait_timeout()
            data = bytes(self._rx[:size])
            del self._rx[:size]
            return data

    def read_until(self, expected: bytes = serial.LF, size: int | None = None) -> bytes:
        with self._handle.bench.lock:
            self._pull()
            k = self._rx.find(expected)
            if k >= 0:
                end = k + len(expected)
                if size is not None:
                    end = min(end, size)
            elif size is not None and len(self._rx) >= size:
                end = size
            else:
                self._wait_timeout()
                end = len(self._rx) if size is None else min(size, len(self._rx))
            data = bytes(self._rx[:end])
            del self._rx[:end]
            return data

    def write(self, data) -> int:
        data = bytes(data)
        with self._handle.bench.lock:
            try:
                return self._session().write(data, end=False)
            except ConnectionError as exc:
                raise SerialException(f"write failed: [Errno 5] Input/output error ({exc})") from None

    def flush(self) -> None:
        self._session()

    def reset_input_buffer(self) -> None:
        with self._handle.bench.lock:
            self._session().outq.clear()
            self._rx.clear()

    def reset_output_buffer(self) -> None:
        self._session()

    def send_break(self, duration: float = 0.25) -> None:
        self._session()

    def _update_break_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True
