"""Driver of ArC Instruments' ArC TWO through its host library ``pyarc2`` (an optional dependency:
``pip install 'labrram[arc2]'``).

The ArC TWO has no notion of word and bit lines: it exposes 64 channels. A *channel map* (the
TOML format of the board's control software: ``[mapping]`` ``words`` and ``bits`` channel lists)
says which channel carries each word line (a crossbar row) and each bit line (a column).
labrram ships the maps of the board's 32x32 daughterboard layouts (``resarray32``, the default,
and ``standard32``); a path to your own file works too.

Conventions
-----------
* Every operation names the word line's channel as pyarc2's *low* channel and the bit line's as
  its *high* channel. pyarc2 reads by biasing the low channel at ``-vread`` and sensing the
  current on the high channel, and pulses differentially (high channel at ``+V/2``, low channel
  at ``-V/2``). A positive voltage therefore puts the **bit line above the word line**:
  SET pulses are ``+amplitude`` and RESET pulses ``-amplitude`` on the bit line with respect to
  the word line, and reads are at ``+read_voltage`` on the bit line.
* Currents come back in amperes at the read voltage, with the sign of the read voltage (pyarc2's
  sign of a sensed current depends on the channel's amplifier; the driver reports the magnitude,
  as the board's control software does when it takes ``|V / I|``).
* Widths are sent to pyarc2 as whole nanoseconds.

Every value is checked against the station's limits and the board's own ranges (below) before
any pyarc2 call. Every pulse call is executed and waited for before the next one; a failed call
raises :class:`~labrram.drivers.board_base.PulseDeliveryError` (delivered for the calls that
returned, unknown for the failing one, not delivered for the rest): the ArC TWO has no pulse
counter to settle it. On close, on an error leaving a ``with`` block and at interpreter exit
every channel is grounded (0 V).
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

from labrram.safety import LimitError, SafeLimits
from labrram.textfile import check_depth, read_user_text

from .base import ConnectionLost, InstrumentError, ReplyError, deferred_interrupt
from .board_base import DELIVERED, UNKNOWN, Board, BoardCapabilityError, PulseDeliveryError

# --- the ArC TWO's own ranges ------------------------------------------------------------------
#: channels of the board (pyarc2 ``Instrument`` docstrings and libarc2: 64 channels, 0..63)
N_CHANNELS = 64
#: the channels pyarc2's slice and whole-array operations (``read_slice``, ``read_all``,
#: ``pulse_slice_masked``, ``pulseread_slice_masked``) treat as word lines and as bit lines of a
#: 32x32 array: "if chan is between 0 and 15 or 32 and 47 this will correspond to a row read
#: ... otherwise it's a column read" (pyarc2 ``read_slice`` docstring; libarc2's channel sets)
WORD_CHANNELS: tuple[int, ...] = tuple(range(16, 32)) + tuple(range(48, 64))
BIT_CHANNELS: tuple[int, ...] = tuple(range(0, 16)) + tuple(range(32, 48))
#: each channel's DAC spans ±10 V in the standard output range (pyarc2 ``set_channel_range``
#: docstring: "Standard range is ±10 V"; libarc2 maps -10..+10 V onto the 16-bit DAC code and
#: clamps beyond it, silently). A read puts ``-vread`` on one channel: |vread| <= 10 V. A pulse
#: splits its voltage over two channels (±V/2), but the driver holds pulses to ±10 V too, so the
#: range holds whatever split the library uses.
HW_VOLTAGE = 10.0
#: shortest pulse: libarc2's high-speed drivers clamp any width between 1 and 40 ns to 40 ns
#: (pyarc2 ``pulse_slice_fast_open`` / libarc2 documentation); widths from 500 ms up are timed
#: with DAC settings and delays. The 1 s upper bound is this driver's own cap.
HW_MIN_WIDTH, HW_MAX_WIDTH = 40e-9, 1.0
#: no reading can exceed the largest current range: 20.48 V full scale over the 830 Ω
#: transimpedance of the highest range (libarc2's ADC conversion), ~25 mA
MAX_READING = 25e-3

#: ``arc2://<device id>`` (the id is one of ``pyarc2.find_ids()``)
_ADDRESS = re.compile(r"^arc2://(\d{1,3})$", re.IGNORECASE)
#: the channel maps shipped with labrram: ``labrram/stations/arc2-<name>.toml``
DEFAULT_MAP = "resarray32"
CONTROL_MODES = ("internal", "header")


def _pyarc2() -> Any:
    """The ``pyarc2`` module, imported on first use (an optional dependency)."""
    try:
        import pyarc2
    except ImportError as exc:
        raise InstrumentError(
            f"the ArC TWO driver needs pyarc2, which cannot be imported ({exc}): pip install 'labrram[arc2]'"
        ) from None
    return pyarc2


def parse_address(address: Any) -> int:
    """The device id of an ``arc2://<id>`` address (raises ValueError naming the problem)."""
    if not isinstance(address, str) or not _ADDRESS.match(address.strip()):
        raise ValueError(f"address {address!r} is not an ArC TWO address: use arc2://<device id>, e.g. arc2://0 (ids from pyarc2.find_ids())")
    return int(_ADDRESS.match(address.strip()).group(1))  # type: ignore[union-attr]


# --- channel maps ------------------------------------------------------------------------------
class ChannelMapError(ValueError):
    """A channel-map file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ChannelMap:
    """Which ArC TWO channel carries each word line (row) and bit line (column).

    Attributes
    ----------
    name : str
        The map's name (``[config] name``, else the file's stem).
    words : tuple of int
        Channel of word line ``r`` at index ``r``.
    bits : tuple of int
        Channel of bit line ``c`` at index ``c``.
    source : str
        Where the map came from (for messages).
    """

    name: str
    words: tuple[int, ...]
    bits: tuple[int, ...]
    source: str = "<string>"

    @property
    def shape(self) -> tuple[int, int]:
        """Array size (rows, cols) = (word lines, bit lines)."""
        return len(self.words), len(self.bits)

    @property
    def word_slots(self) -> np.ndarray:
        """Position of each word line's channel in pyarc2's ascending word-channel results."""
        return np.array([WORD_CHANNELS.index(c) for c in self.words], dtype=np.intp)

    @property
    def bit_slots(self) -> np.ndarray:
        """Position of each bit line's channel in pyarc2's ascending bit-channel results."""
        return np.array([BIT_CHANNELS.index(c) for c in self.bits], dtype=np.intp)


def parse_channel_map(text: str, source: str = "<string>") -> ChannelMap:
    """Parse channel-map TOML (the board control software's format)::

        [config]            # optional
        name = "..."
        words = 32          # optional: checked against the lists
        bits = 32
        [mapping]
        words = [17, 16, ...]   # channel of word line 0, 1, ...
        bits = [1, 0, ...]      # channel of bit line 0, 1, ...

    Word lines must sit on pyarc2's word channels (16-31, 48-63) and bit lines on its bit
    channels (0-15, 32-47): its slice and whole-array operations assume that split. Raises
    :class:`ChannelMapError` naming ``source`` and the key.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChannelMapError(f"{source}: not valid TOML: {exc}") from None
    check_depth(data, source, ChannelMapError)
    unknown = sorted(set(data) - {"config", "mapping"})
    if unknown:
        raise ChannelMapError(f"{source}: unknown table(s) {unknown}; a channel map has [config] and [mapping]")
    config = data.get("config", {})
    mapping = data.get("mapping")
    if not isinstance(config, dict):
        raise ChannelMapError(f"{source}: [config] must be a table")
    if not isinstance(mapping, dict):
        raise ChannelMapError(f"{source}: a [mapping] table with 'words' and 'bits' channel lists is required")
    for where, table, known in (("[config]", config, {"name", "words", "bits"}), ("[mapping]", mapping, {"words", "bits"})):
        bad = sorted(set(table) - known)
        if bad:
            raise ChannelMapError(f"{source}: {where}: unknown key(s) {bad}; known: {sorted(known)}")
    name = config.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise ChannelMapError(f"{source}: [config] name must be a string")
    lines: dict[str, tuple[int, ...]] = {}
    for key, allowed, what in (("words", WORD_CHANNELS, "word"), ("bits", BIT_CHANNELS, "bit")):
        chans = mapping.get(key)
        if not isinstance(chans, list) or not chans:
            raise ChannelMapError(f"{source}: [mapping] {key} must be a non-empty list of channel numbers")
        for i, ch in enumerate(chans):
            if isinstance(ch, bool) or not isinstance(ch, int):
                raise ChannelMapError(f"{source}: [mapping] {key}[{i}] = {ch!r} is not a channel number")
            if not 0 <= ch < N_CHANNELS:
                raise ChannelMapError(f"{source}: [mapping] {key}[{i}] = {ch}: the ArC TWO has channels 0..{N_CHANNELS - 1}")
            if ch not in allowed:
                raise ChannelMapError(
                    f"{source}: [mapping] {key}[{i}] = {ch} is not a {what}-line channel of the ArC TWO "
                    f"(word lines on 16-31 and 48-63, bit lines on 0-15 and 32-47)"
                )
        if len(set(chans)) != len(chans):
            dup = sorted({c for c in chans if chans.count(c) > 1})
            raise ChannelMapError(f"{source}: [mapping] {key}: channel(s) {dup} listed more than once")
        declared = config.get(key)
        if declared is not None and (isinstance(declared, bool) or declared != len(chans)):
            raise ChannelMapError(f"{source}: [config] {key} = {declared!r} but [mapping] {key} lists {len(chans)} channels")
        lines[key] = tuple(chans)
    return ChannelMap(name, lines["words"], lines["bits"], source)


def load_channel_map(spec: str | Path | None = None) -> ChannelMap:
    """A channel map by name (``"resarray32"``, ``"standard32"``: shipped with labrram) or by
    path to a TOML file; ``None`` loads :data:`DEFAULT_MAP`."""
    spec = DEFAULT_MAP if spec is None else spec
    if isinstance(spec, str) and re.fullmatch(r"[A-Za-z0-9_-]+", spec):
        ref = resources.files("labrram").joinpath("stations", f"arc2-{spec}.toml")
        if not ref.is_file():
            shipped = sorted(p.name[5:-5] for p in resources.files("labrram").joinpath("stations").iterdir() if p.name.startswith("arc2-"))
            raise ChannelMapError(f"no channel map named {spec!r}; shipped maps: {shipped} (or give a path to a .toml file)")
        return parse_channel_map(ref.read_text(), f"<channel map {spec}: labrram/stations/arc2-{spec}.toml>")
    if not isinstance(spec, (str, Path)):
        raise ChannelMapError(f"channel_map must be a map name or a path, got {spec!r}")
    return parse_channel_map(read_user_text(spec, "channel map", "TOML", ChannelMapError), str(spec))


# --- the link ----------------------------------------------------------------------------------
class ArcTwoFault(ConnectionLost):
    """A pyarc2 call that failed (USB/FPGA communication, the board's memory, a lost device)."""


class Arc2Link:
    """The transport of an ArC TWO: the ``pyarc2.Instrument``, driven by calls, not messages."""

    def __init__(self, instrument: Any, address: str, timeout: float = 5.0) -> None:
        self.instrument = instrument
        self.address = address
        self._timeout = float(timeout)

    def _no_messages(self, *args: Any) -> Any:
        raise InstrumentError(f"{self.address}: the ArC TWO is driven through pyarc2 calls; it takes no text commands")

    write = read_message = read_block = _no_messages

    def clear(self) -> None:
        """Nothing to clear: pyarc2 calls either return or raise."""

    def reopen(self) -> None:
        raise ConnectionLost(f"{self.address}: the ArC TWO cannot be reopened in place; close the station and connect again")

    def close(self) -> None:
        self.instrument = None  # pyarc2 releases the device when its Instrument is dropped

    @property
    def timeout(self) -> float:
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._timeout = float(seconds)


# --- the board ---------------------------------------------------------------------------------
class ArcTwoBoard(Board):
    """ArC TWO crossbar board (passive arrays) through ``pyarc2``.

    Parameters
    ----------
    transport : Arc2Link
        The open link (built by :meth:`open`).
    limits : SafeLimits, optional
        The bench's safe limits.
    name : str, optional
        Name used in messages.
    firmware : str, optional
        Path of the board's firmware (used by :meth:`open`; recorded here).
    channel_map : str or Path, optional
        The channel map: a shipped name (``"resarray32"``, the default; ``"standard32"``) or a
        path to a TOML file in the board control software's format.
    control_mode : {"internal", "header"}, optional
        Daughterboard routing set when the board is opened: ``"internal"`` (devices in the
        on-board socket) or ``"header"`` (devices broken out from the header, e.g. a probe
        card); None leaves it as it is.
    retries : int
        Repeats of an idempotent read after a failed pyarc2 call.
    retry_delay : float
        Wait before each repeat, s.

    Notes
    -----
    Polarity: SET = ``+amplitude`` on the bit line with respect to the word line, RESET =
    ``-amplitude`` (pyarc2 ``pulse_one(low=word, high=bit, voltage)`` puts the high channel at
    ``+V/2`` and the low at ``-V/2``). Reads are at ``+read_voltage`` on the bit line.
    """

    read_voltage_range = HW_VOLTAGE
    read_gate_range = 0.0
    pulse_amplitude_range = HW_VOLTAGE
    pulse_gate_range = 0.0
    pulse_width_range = (HW_MIN_WIDTH, HW_MAX_WIDTH)
    has_gate = False
    can_mvm = False
    can_route_smu = False
    bias_schemes: tuple[str, ...] = ()
    array_kinds = ("passive",)
    board_name = "the ArC TWO"

    def __init__(
        self,
        transport: Arc2Link,
        limits: SafeLimits | None = None,
        name: str | None = None,
        firmware: str | None = None,
        channel_map: str | Path | None = None,
        control_mode: str | None = None,
        retries: int = 2,
        retry_delay: float = 0.2,
    ) -> None:
        if control_mode is not None and control_mode not in CONTROL_MODES:
            raise ValueError(f"control_mode must be one of {list(CONTROL_MODES)} or left out, got {control_mode!r}")
        self.channel_map = channel_map if isinstance(channel_map, ChannelMap) else load_channel_map(channel_map)
        super().__init__(transport, limits=limits, name=name, retries=retries, retry_delay=retry_delay)
        self.firmware = None if firmware is None else str(firmware)
        self.control_mode = control_mode
        self._shape = self.channel_map.shape
        self._read_v = 0.2  # V, until configure() says otherwise
        if control_mode is not None:
            pyarc2 = _pyarc2()
            mode = pyarc2.ControlMode.Internal if control_mode == "internal" else pyarc2.ControlMode.Header
            self._calls("set_control_mode", [("set_control_mode", (mode,)), ("execute", ())])

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def address_problem(cls, address: Any) -> str | None:
        """Why ``address`` is not an ArC TWO address (None for ``arc2://<device id>``)."""
        try:
            parse_address(address)
        except ValueError as exc:
            return str(exc)
        return None

    @classmethod
    def open(  # type: ignore[override]
        cls,
        address: str,
        visa_library: str = "",
        limits: SafeLimits | None = None,
        timeout: float = 5.0,
        *,
        firmware: str | Path | None = None,
        channel_map: str | Path | None = None,
        **kwargs: Any,
    ) -> "ArcTwoBoard":
        """Connect to the ArC TWO at ``arc2://<device id>``, loading ``firmware`` (the path of
        the board's firmware file, required). The channel map is read and the device id checked
        against ``pyarc2.find_ids()`` before the board is touched; ``visa_library`` is unused."""
        device = parse_address(address)
        if kwargs.get("control_mode") not in (None, *CONTROL_MODES):
            raise ValueError(f"control_mode must be one of {list(CONTROL_MODES)} or left out, got {kwargs['control_mode']!r}")
        cmap = channel_map if isinstance(channel_map, ChannelMap) else load_channel_map(channel_map)
        if firmware is None:
            raise ValueError(f"{address}: the ArC TWO needs its firmware file: give options.firmware = '/path/to/fw.bin'")
        fw = Path(firmware).expanduser()
        if not fw.is_file():
            raise ValueError(f"{address}: firmware file {str(fw)!r} does not exist or is not a file")
        pyarc2 = _pyarc2()
        try:
            ids = list(pyarc2.find_ids())
        except Exception as exc:
            raise InstrumentError(f"{address}: pyarc2 cannot list ArC TWO boards: {exc}") from exc
        if device not in ids:
            found = f"ids {ids}" if ids else "no board (is it plugged in and powered?)"
            raise InstrumentError(f"{address}: no ArC TWO with id {device}; pyarc2.find_ids() found {found}")
        try:
            instrument = pyarc2.Instrument(device, str(fw))
        except Exception as exc:
            raise InstrumentError(f"{address}: cannot open the ArC TWO with firmware {str(fw)!r}: {exc}") from exc
        link = Arc2Link(instrument, address, timeout)
        try:
            return cls(link, limits=limits, firmware=str(fw), channel_map=cmap, **kwargs)
        except BaseException:
            link.close()
            raise

    # --- pyarc2 calls ------------------------------------------------------------------------
    def _calls(self, what: str, steps: list[tuple[str, tuple]]) -> list[Any]:
        """Run pyarc2 calls as one exchange (Ctrl-C and SIGTERM held until they are all done);
        a failing call raises :class:`ArcTwoFault` and the channels are grounded (best effort)."""
        self._check_open()
        inst = self.transport.instrument
        results = []
        with deferred_interrupt():
            for method, args in steps:
                try:
                    results.append(getattr(inst, method)(*args))
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as exc:  # ArC2Error, and pyo3's PanicException (a BaseException) of a failed call
                    self._failed()
                    self._ground_quietly()
                    raise ArcTwoFault(f"{self.name}: pyarc2 {method}{args!r} failed during {what}: {type(exc).__name__}: {exc}") from exc
        return results

    def _ground_quietly(self) -> None:
        inst = self.transport.instrument
        if inst is None:
            return
        with contextlib.suppress(Exception):
            inst.ground_all()
            inst.execute()
            inst.wait()

    def _currents(self, raw: Any, what: str) -> np.ndarray:
        """pyarc2's readings (A) with the sign of the read voltage; a missing or implausible
        reading is a :class:`ReplyError` (retried as a read)."""
        values = np.asarray(raw, dtype=float)
        if not np.all(np.isfinite(values)) or (values.size and np.max(np.abs(values)) > MAX_READING):
            self._failed()
            raise ReplyError(f"{self.name}: {what} returned no valid current for some cells (NaN, or beyond {MAX_READING:g} A)")
        return np.abs(values) * np.sign(self._read_v)

    # --- identity and settings ----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """Array size (word lines, bit lines) of the channel map."""
        return self.channel_map.shape

    @property
    def idn(self) -> str:
        """``ArC Instruments,ArC TWO,<address>,pyarc2 <version>``."""
        try:
            from importlib.metadata import version

            lib = version("pyarc2")
        except Exception:
            lib = "unknown"
        return f"ArC Instruments,ArC TWO,{self.transport.address},pyarc2 {lib}"

    def array_kind(self) -> str:
        """``"passive"``: the ArC TWO has no word-line gates (its channels drive both ends of
        two-terminal devices)."""
        return "passive"

    @property
    def read_voltage(self) -> float:
        """Read voltage on the bit lines (w.r.t. the word line), V."""
        return self._read_v

    @read_voltage.setter
    def read_voltage(self, value: float) -> None:
        v = self._check_read_voltage(value)
        if v == 0:
            raise ValueError("read voltage must not be 0 V")
        self._read_v = v

    def configure(self, read_voltage: float | None = None, read_gate: float | None = None) -> None:
        """Remember the read voltage (V, bit line w.r.t. word line); ``read_gate`` must be 0 or
        None (no gates). pyarc2 applies the voltage with every read: nothing is sent here."""
        if read_gate is not None:
            self._check_gate(read_gate)
        if read_voltage is not None:
            self.read_voltage = read_voltage

    def read_errors(self, max_errors: int = 32, retry: bool = True) -> list[tuple[int, str]]:
        """No error queue: pyarc2 raises at the failing call. Always empty."""
        return []

    def set_bias(self, scheme: str) -> None:
        """Not available: pyarc2's reads hold every unselected line at 0 V and its pulses float
        them; the V/2 and V/3 schemes are not offered."""
        raise BoardCapabilityError(
            f"{self.name}: {self.board_name} has no selectable sneak-path biasing (pyarc2 reads hold unselected lines "
            f"at 0 V and pulses float them); {scheme!r} cannot be set"
        )

    # --- reads ----------------------------------------------------------------------------------
    def _read(self, what: str, method: str, args: tuple, pick: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """One read call, repeated after a failed call or an invalid reading (reads are
        idempotent); ``pick`` takes the cells' raw values out of pyarc2's result."""

        def once() -> np.ndarray:
            raw = np.asarray(self._calls(what, [(method, args)])[0], dtype=float)
            return self._currents(pick(raw), method)

        return self.retrying(once, f"pyarc2 {method}")

    def _slots(self, method: str, raw: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """The values of bit-line ``slots`` in a 32-value slice result."""
        if raw.shape != (len(BIT_CHANNELS),):
            self._failed()
            raise ReplyError(f"{self.name}: {method} returned {raw.shape} values, expected {len(BIT_CHANNELS)}")
        return raw[slots]

    def measure_cells(self, rows, cols) -> np.ndarray:
        """Currents of a list of cells at the read voltage, A: one ``read_one`` for a lone cell of
        a word line, one ``read_slice_masked`` for several cells of the same word line."""
        rows, cols = self._cells(rows, cols)
        out = np.empty(rows.size)
        cmap, v = self.channel_map, self._read_v
        for r in dict.fromkeys(rows.tolist()):
            idx = np.nonzero(rows == r)[0]
            word = cmap.words[r]
            wanted = sorted(set(cols[idx].tolist()))
            if len(wanted) == 1:
                out[idx] = self._read(f"reading cell ({r}, {wanted[0]})", "read_one", (word, cmap.bits[wanted[0]], v), lambda raw: raw.reshape(1))[0]
            else:
                mask = sorted(cmap.bits[c] for c in wanted)
                slots = cmap.bit_slots[cols[idx]]
                out[idx] = self._read(f"reading word line {r}", "read_slice_masked", (word, mask, v), lambda raw: self._slots("read_slice_masked", raw, slots))
        return out

    def measure_row(self, row: int) -> np.ndarray:
        """Currents of one word line's cells, A (one ``read_slice``)."""
        n_rows, _ = self.shape
        if not (0 <= int(row) < n_rows):
            raise ValueError(f"row {row} outside 0..{n_rows - 1}")
        slots = self.channel_map.bit_slots
        args = (self.channel_map.words[int(row)], self._read_v)
        return self._read(f"reading word line {row}", "read_slice", args, lambda raw: self._slots("read_slice", raw, slots))

    def measure_all(self) -> np.ndarray:
        """Currents of the whole array, shape (rows, cols), A: one ``read_all`` biasing the word
        lines (``BiasOrder.Rows``: pyarc2 returns a 32x32 array, word channels ascending down,
        bit channels ascending across), cut to the channel map."""
        order = _pyarc2().BiasOrder.Rows
        n = len(WORD_CHANNELS)
        cut = np.ix_(self.channel_map.word_slots, self.channel_map.bit_slots)

        def pick(raw: np.ndarray) -> np.ndarray:
            if raw.size != n * n:
                self._failed()
                raise ReplyError(f"{self.name}: read_all returned {raw.size} values, expected {n * n}")
            return raw.reshape(n, n)[cut]

        return self._read("reading the array", "read_all", (self._read_v, order), pick)

    # --- pulses ---------------------------------------------------------------------------------
    @staticmethod
    def nanoseconds(width) -> np.ndarray:
        """Pulse widths (s) as the whole nanoseconds pyarc2 takes."""
        return np.rint(np.asarray(width, dtype=float) * 1e9).astype(np.int64)

    def _groups(self, rows: np.ndarray, cols: np.ndarray, volts: np.ndarray, nanos: np.ndarray) -> list[np.ndarray]:
        """Consecutive cells of one word line with the same voltage and width (each column once):
        one pyarc2 slice call each; other cells one call each."""
        groups: list[list[int]] = []
        for i in range(rows.size):
            g = groups[-1] if groups else None
            if (
                g is not None
                and rows[i] == rows[g[0]]
                and volts[i] == volts[g[0]]
                and nanos[i] == nanos[g[0]]
                and cols[i] not in cols[g]
            ):
                g.append(i)
            else:
                groups.append([i])
        return [np.array(g, dtype=np.intp) for g in groups]

    def _pulse_steps(self, rows, cols, volts, nanos, g: np.ndarray, read: bool) -> list[tuple[str, tuple]]:
        cmap = self.channel_map
        word, v, ns = cmap.words[int(rows[g[0]])], float(volts[g[0]]), int(nanos[g[0]])
        if g.size == 1:
            bit = cmap.bits[int(cols[g[0]])]
            if read:
                return [("pulseread_one", (word, bit, v, ns, self._read_v))]
            return [("pulse_one", (word, bit, v, ns)), ("ground_all_fast", ()), ("execute", ()), ("wait", ())]
        mask = sorted(cmap.bits[int(c)] for c in cols[g])
        if read:
            return [("pulseread_slice_masked", (word, mask, v, ns, self._read_v))]
        return [("pulse_slice_masked", (word, v, ns, mask)), ("ground_all_fast", ()), ("execute", ()), ("wait", ())]

    def pulse(self, kind: str, rows, cols, amplitude, gate, width, read: bool = False) -> np.ndarray | None:
        """SET or RESET pulses on a list of cells; with ``read`` each pulse is followed by a read
        and the currents are returned (A).

        ``amplitude`` (V, magnitudes), ``gate`` (must be 0: no gates) and ``width`` (s) are
        scalars or one value per cell; all are checked (station limits, the ArC TWO's ranges,
        the per-device budgets) before any pyarc2 call. SET is ``+amplitude`` on the bit line
        w.r.t. the word line, RESET ``-amplitude``. Consecutive cells of one word line with the
        same amplitude and width are pulsed together by one ``pulse_slice_masked`` (or
        ``pulseread_slice_masked``); other cells by ``pulse_one`` (``pulseread_one``). Each call
        is executed and waited for (the channels grounded after it) before the next.

        Raises
        ------
        PulseDeliveryError
            A pyarc2 call failed: ``status`` is delivered (1) for the calls that returned,
            unknown (-1) for the failing one and not delivered (0) for the rest. Nothing is sent
            again; read the cells back.
        """
        kind, rows, cols, amplitude, gate, width = self._pulse_arrays(kind, rows, cols, amplitude, gate, width)
        nanos = self.nanoseconds(width)
        lo_ns = int(round(HW_MIN_WIDTH * 1e9))
        if nanos.size and nanos.min() < lo_ns:  # a width that rounds below the board's shortest pulse
            raise LimitError(f"pulse width {nanos.min()} ns below {self.board_name}'s shortest pulse of {lo_ns} ns")
        volts = amplitude if kind == "SET" else -amplitude
        read_v = self._read_v
        if read:
            self._check_read_voltage(read_v)
        out = np.empty(rows.size) if read else None
        status = np.zeros(rows.size, dtype=np.int8)
        for g in self._groups(rows, cols, volts, nanos):
            steps = self._pulse_steps(rows, cols, volts, nanos, g, read)
            try:
                result = self._calls(f"a {kind} pulse", steps)[0]
            except ArcTwoFault as exc:
                status[g] = UNKNOWN
                raise PulseDeliveryError(
                    f"{self.name}: {kind} batch of {rows.size} pulses: {exc} (delivered: {int(np.sum(status == DELIVERED))}, "
                    f"unknown: {g.size}, not delivered: {int(np.sum(status == 0))}; read the cells back)",
                    status,
                    kind,
                ) from exc
            status[g] = DELIVERED
            if read:
                method = steps[0][0]
                try:
                    raw = np.asarray(result, dtype=float)
                    values = raw.reshape(1) if g.size == 1 else self._slots(method, raw, self.channel_map.bit_slots[cols[g]])
                    out[g] = self._currents(values, method)  # type: ignore[index]
                except ReplyError as exc:  # the pulses went out; the reading after them did not
                    raise PulseDeliveryError(
                        f"{self.name}: {kind} batch of {rows.size} pulses: {exc} (the {g.size} pulse(s) of this call were "
                        f"delivered, {int(np.sum(status == 0))} not sent; read the cells back)",
                        status,
                        kind,
                    ) from exc
        return out

    # --- lifecycle ------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Ground every channel (0 V, arbitrary-voltage mode): ``ground_all``, ``execute``,
        ``wait``. Raises :class:`InstrumentError` when the board could not be grounded."""
        if self._closed or self.transport.instrument is None:
            return
        inst = self.transport.instrument
        with deferred_interrupt():
            try:
                inst.ground_all()
                inst.execute()
                inst.wait()
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                raise InstrumentError(f"{self.name}: could not ground the ArC TWO's channels: {type(exc).__name__}: {exc}") from exc
        super().shutdown()


__all__ = [
    "Arc2Link",
    "ArcTwoBoard",
    "ArcTwoFault",
    "BIT_CHANNELS",
    "ChannelMap",
    "ChannelMapError",
    "WORD_CHANNELS",
    "load_channel_map",
    "parse_address",
    "parse_channel_map",
]
