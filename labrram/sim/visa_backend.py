"""PyVISA backend over the simulated bench (``pyvisa.ResourceManager("@labrram")``).

PyVISA imports the top-level module ``pyvisa_labrram`` for ``"@labrram"`` and uses its
``WRAPPER_CLASS``, this :class:`LabrramVisaLibrary`. The text before ``@`` names the bench
(``"@labrram"`` is the ``default`` bench, ``"lab2@labrram"`` a bench named ``lab2``).

Behaviour follows VISA: every ``viWrite`` ends a program message (END asserted) unless
``VI_ATTR_SEND_END_EN`` is off; ``viRead`` returns at the END of a response message, at the
termination character when ``VI_ATTR_TERMCHAR_EN`` is on, or when ``count`` bytes are read
(``success_max_count_read``); with nothing to read it waits ``VI_ATTR_TMO_VALUE`` (virtual
time) and fails with ``VI_ERROR_TMO``, as a real instrument that was never asked anything does.
"""

from __future__ import annotations

import itertools
from typing import Any

from pyvisa import constants, highlevel, rname
from pyvisa.constants import StatusCode
from pyvisa.util import LibraryPath

from .bench import get_bench
from .handle import InstrumentHandle

_DEFAULT_ATTRS: dict[int, Any] = {
    constants.VI_ATTR_TMO_VALUE: 2000,
    constants.VI_ATTR_TERMCHAR: 0x0A,
    constants.VI_ATTR_TERMCHAR_EN: constants.VI_FALSE,
    constants.VI_ATTR_SEND_END_EN: constants.VI_TRUE,
    constants.VI_ATTR_SUPPRESS_END_EN: constants.VI_FALSE,
    constants.VI_ATTR_RSRC_CLASS: "INSTR",
    constants.VI_ATTR_IO_PROT: constants.IOProtocol.normal,
    constants.VI_ATTR_ASRL_BAUD: 115200,
    constants.VI_ATTR_ASRL_DATA_BITS: 8,
    constants.VI_ATTR_ASRL_END_IN: constants.SerialTermination.termination_char,
    constants.VI_ATTR_ASRL_END_OUT: constants.SerialTermination.none,
}


class LabrramVisaLibrary(highlevel.VisaLibraryBase):
    """VISA library whose resources are the emulated instruments of a simulated bench."""

    @property
    def in_process(self) -> bool:
        """Its instruments are emulated in this process and their chip kept in this process's
        memory only (a bench without a ``[simulation] state`` folder; see
        :class:`labrram.drivers.transports.Transport`)."""
        return get_bench(self.bench_name).config.state is None

    @staticmethod
    def get_library_paths():
        return (LibraryPath("default", "labrram"),)

    @staticmethod
    def get_debug_info():
        from .. import __version__

        return {"Version": __version__, "Benches": "simulated (labrram.sim)"}

    def _init(self) -> None:
        self.bench_name = str(self.library_path) or "default"
        self._ids = itertools.count(1000)
        self._rm_sessions: set[int] = set()
        self._handles: dict[int, InstrumentHandle] = {}
        self._attrs: dict[int, dict[int, Any]] = {}

    # --- helpers ------------------------------------------------------------------------
    def _get(self, session: int) -> InstrumentHandle:
        try:
            return self._handles[session]
        except KeyError:
            raise highlevel.errors.InvalidSession() from None

    @property
    def bench(self):
        return get_bench(self.bench_name)

    # --- resource manager -------------------------------------------------------------
    def open_default_resource_manager(self):
        session = next(self._ids)
        self._rm_sessions.add(session)
        return session, self.handle_return_value(None, StatusCode.success)

    def list_resources(self, session, query: str = "?*::INSTR"):
        return rname.filter(tuple(self.bench.resources), query)

    def open(self, session, resource_name, access_mode=constants.AccessModes.no_lock, open_timeout=constants.VI_TMO_IMMEDIATE):
        if session not in self._rm_sessions:
            return 0, self.handle_return_value(None, StatusCode.error_invalid_object)
        try:
            parsed = rname.parse_resource_name(resource_name)
        except rname.InvalidResourceName:
            return 0, self.handle_return_value(None, StatusCode.error_invalid_resource_name)
        bench = self.bench
        resource = resource_name
        if resource_name not in bench.resources:
            # match on canonical forms: "USB0::0x0957::0x8C18::MY1::INSTR" == "...::MY1::0::INSTR"
            canonical = {str(rname.parse_resource_name(r)).lower(): r for r in bench.resources}
            resource = canonical.get(str(parsed).lower(), resource_name)
        try:
            handle = InstrumentHandle(self.bench_name, resource)
        except (KeyError, ConnectionError):
            return 0, self.handle_return_value(None, StatusCode.error_resource_not_found)
        sid = next(self._ids)
        self._handles[sid] = handle
        attrs = dict(_DEFAULT_ATTRS)
        attrs[constants.VI_ATTR_RSRC_NAME] = resource
        attrs[constants.VI_ATTR_INTF_TYPE] = parsed.interface_type_const
        attrs[constants.VI_ATTR_INTF_NUM] = int(getattr(parsed, "board", 0) or 0)
        if parsed.interface_type_const == constants.InterfaceType.asrl:
            attrs[constants.VI_ATTR_SEND_END_EN] = constants.VI_FALSE
        self._attrs[sid] = attrs
        return sid, self.handle_return_value(sid, StatusCode.success)

    def close(self, session):
        if session in self._rm_sessions:
            # Closing a resource manager closes nothing else: pyvisa already closed the
            # resources that this manager created; other managers keep theirs.
            self._rm_sessions.discard(session)
            return self.handle_return_value(None, StatusCode.success)
        handle = self._handles.pop(session, None)
        if handle is None:
            return self.handle_return_value(None, StatusCode.error_invalid_object)
        handle.close()
        self._attrs.pop(session, None)
        return self.handle_return_value(None, StatusCode.success)

    # --- I/O ---------------------------------------------------------------------------
    def write(self, session, data: bytes):
        handle = self._get(session)
        attrs = self._attrs[session]
        end = bool(attrs.get(constants.VI_ATTR_SEND_END_EN))
        with handle.bench.lock:
            try:
                n = handle.session.write(bytes(data), end=end)
            except ConnectionError:
                return 0, self.handle_return_value(session, StatusCode.error_connection_lost)
        return n, self.handle_return_value(session, StatusCode.success)

    def read(self, session, count: int):
        handle = self._get(session)
        attrs = self._attrs[session]
        termchar = attrs[constants.VI_ATTR_TERMCHAR] if attrs.get(constants.VI_ATTR_TERMCHAR_EN) else None
        with handle.bench.lock:
            try:
                sess = handle.session
            except ConnectionError:
                return b"", self.handle_return_value(session, StatusCode.error_connection_lost)
            data, end = sess.read(count, termchar)
            if not data:
                timeout_ms = attrs.get(constants.VI_ATTR_TMO_VALUE) or 0
                if timeout_ms not in (None, constants.VI_TMO_INFINITE):
                    sess.clock.advance(timeout_ms / 1000.0, "timeout")
                return b"", self.handle_return_value(session, StatusCode.error_timeout)
        if termchar is not None and data.endswith(bytes([termchar])):
            return data, self.handle_return_value(session, StatusCode.success_termination_character_read)
        if end:
            return data, self.handle_return_value(session, StatusCode.success)
        return data, self.handle_return_value(session, StatusCode.success_max_count_read)

    def clear(self, session):
        handle = self._get(session)
        with handle.bench.lock:
            try:
                handle.session.clear()
            except ConnectionError:
                return self.handle_return_value(session, StatusCode.error_connection_lost)
        return self.handle_return_value(session, StatusCode.success)

    def flush(self, session, mask):
        handle = self._get(session)
        if mask & (constants.BufferOperation.discard_read_buffer | constants.BufferOperation.discard_read_buffer_no_io):
            with handle.bench.lock:
                try:
                    handle.session.outq.clear()
                except ConnectionError:
                    return self.handle_return_value(session, StatusCode.error_connection_lost)
        return self.handle_return_value(session, StatusCode.success)

    def read_stb(self, session):
        handle = self._get(session)
        inst = handle.session.instrument
        status_byte = getattr(inst, "status_byte", None)
        if status_byte is not None:  # the instrument's IEEE 488.2 status model
            with handle.bench.lock:
                stb = status_byte(handle.session)
        else:
            stb = 0x10 if handle.session.outq else 0  # MAV: message available
            if getattr(inst, "errors", None):
                stb |= 0x04  # error/event queue not empty
        return stb, self.handle_return_value(session, StatusCode.success)

    def assert_trigger(self, session, protocol):
        handle = self._get(session)
        trigger = getattr(handle.session.instrument, "bus_trigger", None)
        if trigger is not None:
            with handle.bench.lock:
                trigger()
        return self.handle_return_value(session, StatusCode.success)

    # --- attributes --------------------------------------------------------------------
    def get_attribute(self, session, attribute):
        if session in self._rm_sessions:
            return 0, self.handle_return_value(None, StatusCode.error_nonsupported_attribute)
        self._get(session)
        attrs = self._attrs[session]
        if attribute not in attrs:
            return 0, self.handle_return_value(session, StatusCode.error_nonsupported_attribute)
        return attrs[attribute], self.handle_return_value(session, StatusCode.success)

    def set_attribute(self, session, attribute, attribute_state):
        if session in self._rm_sessions:
            return self.handle_return_value(None, StatusCode.success)
        self._get(session)
        if attribute in (constants.VI_ATTR_RSRC_NAME, constants.VI_ATTR_INTF_TYPE, constants.VI_ATTR_RSRC_CLASS):
            return self.handle_return_value(session, StatusCode.error_attribute_read_only)
        self._attrs[session][attribute] = attribute_state
        return self.handle_return_value(session, StatusCode.success)

    # --- no-ops that clients call ------------------------------------------------------
    def disable_event(self, session, event_type, mechanism):
        return self.handle_return_value(session, StatusCode.success)

    def discard_events(self, session, event_type, mechanism):
        return self.handle_return_value(session, StatusCode.success)

    def enable_event(self, session, event_type, mechanism, context=None):
        return self.handle_return_value(session, StatusCode.success)

    def lock(self, session, lock_type, timeout, requested_key=None):
        return "", self.handle_return_value(session, StatusCode.success)

    def unlock(self, session):
        return self.handle_return_value(session, StatusCode.success)

    def gpib_control_ren(self, session, mode):
        return self.handle_return_value(session, StatusCode.success)
