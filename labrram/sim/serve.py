"""Serve a simulated bench to other processes: instruments on TCP sockets and pseudo-terminals.

* :class:`PtyServer` — a serial instrument (the crossbar board, an ArC ONE) on a
  pseudo-terminal: software that opens a serial port by its device path (an instrument's own
  host library, ``pyvisa-py``'s ``ASRL/dev/pts/N::INSTR``) reaches the emulator as it would
  reach the instrument at ``/dev/ttyACM0``. POSIX only.
* :class:`TcpServer` — a SCPI/TSP instrument on a raw TCP socket, the way LAN instruments
  expose it (port 5025 style): ``TCPIP::127.0.0.1::5025::SOCKET``. Program messages end with a
  newline; each connection is a session of its own.
* :class:`BenchServer` — every instrument of a simulated station, plus the bench clock
  (:mod:`.bench_clock`), and the station file that points labrram at them like at hardware.

Bytes in, bytes out, at the emulator's pace; the bench's fault injection and virtual clock apply
as for every other transport. Closing a server is, for its clients, the instrument vanishing.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from dataclasses import dataclass
from typing import Any

from .handle import InstrumentHandle
from .instrument import Session


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


def url_instrument(address: str) -> str | None:
    """The instrument a ``labrram://[<bench>/]<instrument>[?options]`` URL names (None for
    another address)."""
    if not address.startswith("labrram://"):
        return None
    return address[len("labrram://") :].split("?", 1)[0].rstrip("/").split("/")[-1]


def _drain(session: Session) -> bytes:
    out = bytearray()
    while session.outq:
        chunk, _ = session.read(1 << 30, latency=False)
        out += chunk
    return bytes(out)


class TcpServer:
    """An emulated instrument on a raw TCP socket (``TCPIP::host::port::SOCKET``).

    Parameters
    ----------
    bench : str
        Name of the simulated bench.
    instrument : str
        The instrument's name on that bench (``"k2400"``), or an emulator object not registered
        on the bench (the bench clock).
    host : str
        Interface to listen on: ``127.0.0.1`` (the default) keeps the bench on this machine.
    port : int
        TCP port; 0 picks a free one (:attr:`port` says which).
    """

    def __init__(self, bench: str = "default", instrument: Any = "k2400", host: str = "127.0.0.1", port: int = 0) -> None:
        self.bench_name = bench
        self.instrument = instrument
        self._handles: list[Any] = []
        self._emulator = None if isinstance(instrument, str) else instrument
        if self._emulator is None:
            InstrumentHandle(bench, instrument).close()  # unknown instruments fail here
        self._sock = socket.create_server((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self.address = f"TCPIP::{self.host}::{self.port}::SOCKET"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accept = threading.Thread(target=self._serve, name=f"tcp-{self.port}", daemon=True)
        self.connections = 0

    def start(self) -> "TcpServer":
        self._accept.start()
        return self

    def _open(self):
        if self._emulator is not None:
            return None, self._emulator.open_session()
        handle = InstrumentHandle(self.bench_name, self.instrument)
        return handle, handle.session

    def _serve(self) -> None:
        self._sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._client, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _client(self, conn: socket.socket) -> None:
        self._conns.append(conn)
        conn.settimeout(0.1)
        handle, session = self._open()
        bench = session.instrument.bench
        with conn:
            while not self._stop.is_set():
                try:
                    data = conn.recv(1 << 16)
                except (TimeoutError, socket.timeout):
                    continue
                except OSError:
                    break
                if not data:
                    break
                with bench.lock:
                    try:
                        if handle is not None:
                            session = handle.session
                        session.write(data, end=False)
                        out = _drain(session)
                    except ConnectionError:  # reset or vanished: the connection dies, as on a LAN instrument
                        break
                if out:
                    try:
                        conn.sendall(out)
                    except OSError:
                        break
        if handle is not None:
            handle.close()
        else:
            session.close()

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        for conn in self._conns:  # the clients see the connection end at once
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for t in [self._accept, *self._threads]:
            if t.is_alive():
                t.join(timeout=2.0)

    def __enter__(self) -> "TcpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Served:
    """Where one instrument of a served bench is reached."""

    name: str
    driver: str
    address: str
    visa_library: str


class BenchServer:
    """Every instrument of a simulated station served to other processes, and the bench clock.

    VISA instruments (GPIB, USB) are served on TCP sockets from ``port`` up; serial ones
    (``labrram://`` addresses) on pseudo-terminals; the bench clock on the next TCP port.
    :meth:`station_text` is a station file that drives them all with the stock ``pyvisa-py``
    backend (``@py``: ``TCPIP::...::SOCKET`` and ``ASRL/dev/pts/N::INSTR``), like real
    instruments.
    """

    def __init__(self, station: Any, host: str = "127.0.0.1", port: int = 5025) -> None:
        from .bench_clock import BenchClock
        from ..timing import LAN

        self.station = station
        bench = station.simulated_bench()
        self.bench = bench
        self.servers: list[Any] = []
        self.served: dict[str, Served] = {}
        next_port = port
        try:
            for name, entry in station.instruments.items():
                target = url_instrument(entry.address)
                if target is not None:
                    server: Any = PtyServer(bench.name, target)
                    address, library = f"ASRL{server.path}::INSTR", "@py"  # pyserial opens server.path alike
                else:
                    target = bench.instrument_for(entry.address).name
                    server = TcpServer(bench.name, target, host, next_port if next_port else 0)
                    next_port = server.port + 1 if next_port else 0
                    address, library = server.address, "@py"
                self.servers.append(server)
                self.served[name] = Served(name, entry.driver, address, library)
            clock = BenchClock(bench, "clock", LAN, bench.name)
            server = TcpServer(bench.name, clock, host, next_port if next_port else 0)
            self.servers.append(server)
            self.served["clock"] = Served("clock", "bench_clock", server.address, "@py")
        except BaseException:
            self.close()
            raise

    def start(self) -> "BenchServer":
        for s in self.servers:
            s.start()
        return self

    def station_text(self) -> str:
        """A station file (TOML) that drives the served bench like hardware: the same limits and
        crossbar, the served addresses, the bench clock; no ``[simulation]`` table."""
        st = self.station
        lines = [f"# {st.name} served by labrram serve: instruments on sockets and pseudo-terminals", "",
                 "[station]", f"name = {_toml(st.name + '-served')}", "", "[limits]"]  # fmt: skip
        lines += [f"{k} = {_toml(v)}" for k, v in st.limits.to_dict().items()]
        for name, s in self.served.items():
            entry = st.instruments.get(name)
            lines += ["", f"[instruments.{name}]", f"driver = {_toml(s.driver)}", f"address = {_toml(s.address)}"]
            if s.visa_library:
                lines.append(f"visa_library = {_toml(s.visa_library)}")
            if entry is not None:
                lines.append(f"timeout = {_toml(entry.timeout)}")
                if entry.options:
                    lines.append("options = { " + ", ".join(f"{k} = {_toml(v)}" for k, v in entry.options.items()) + " }")
        if st.crossbar:
            lines += ["", "[crossbar]"] + [f"{k} = {_toml(v)}" for k, v in st.crossbar.items()]
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """Stop every server: for the clients, every instrument vanished."""
        for s in self.servers:
            with contextlib.suppress(Exception):
                s.close()

    def __enter__(self) -> "BenchServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
