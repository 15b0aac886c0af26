"""Station files (TOML): the instruments of a bench, their drivers and addresses, its safe limits.

The default station (``labrram/stations/default.toml``) is the simulated bench, so every
command works on a fresh machine; pointing a station's addresses at real instruments (and
dropping its ``[simulation]`` table) is the only change needed to go to hardware. The format
is documented in docs/station.md.
"""

from __future__ import annotations

import contextlib
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .crossbar import Crossbar
from .schema import unknown_keys
from .drivers.base import InstrumentError
from .textfile import check_depth
from .drivers import driver_class
from .drivers.base import Instrument
from .safety import SafeLimits
from .textfile import read_user_text

DEFAULT_STATION = "default.toml"


class ShutdownError(InstrumentError):
    """An instrument that could not be made safe (output off, route open) when its station closed."""


class StationError(ValueError):
    """A station file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class InstrumentEntry:
    """One ``[instruments.<name>]`` table."""

    name: str
    driver: str
    address: str
    visa_library: str = ""
    timeout: float = 5.0
    options: dict[str, Any] = field(default_factory=dict)
    retries: int = 2
    retry_delay: float = 0.2


@dataclass(frozen=True)
class SimulationEntry:
    """The ``[simulation]`` table: which simulated bench backs the station."""

    bench: str = "default"
    seed: int = 0
    kind: str = "reram"
    rows: int = 128
    cols: int = 128
    #: directory where the chip's state and pulse log persist across processes (None: in memory)
    state: str | None = None
    #: the ``[simulation.faults]`` table (validated; see :mod:`labrram.sim.faults`)
    faults: dict[str, Any] | None = None
    #: which board carries the chip: ``"labrram"`` (labrram's board) or ``"arc1"`` (an ArC ONE)
    board: str = "labrram"
    #: shape of a ReRAM chip's SET conductance distribution: ``"gaussian"``, ``"lognormal"``,
    #: ``"skewed"``, ``"heavy"`` or ``"empirical:FILE"`` (a quantile table; the path is resolved
    #: against the station file's folder)
    set_distribution: str = "gaussian"
    #: level-dependent post-programming instability of a ReRAM chip: ``"none"`` or a preset of
    #: :data:`labrram.devices.reram.LEVEL_INSTABILITY_PRESETS` (``"hfox-mlc"``: one broad
    #: intermediate level, docs/methods/diware.md)
    level_spread: str = "none"
    #: arrays (tiles) of the same kind and size on the simulated board (labrram's board only)
    arrays: int = 1


@dataclass(frozen=True)
class Station:
    """A parsed, validated station file (:func:`load_station`).

    Attributes
    ----------
    name : str
        The station's name.
    source : str
        Where it was read from.
    limits : SafeLimits
        The bench's safe limits (V, A, s, J): nothing beyond them is sent.
    instruments : dict
        Instrument name -> driver, address and options.
    crossbar : dict
        Which instruments are the board and the SMU, which of the board's arrays (``array``,
        0-based), read voltage (V) and gate (V).
    simulation : SimulationEntry or None
        The simulated bench (chip kind, size, seed, faults); None on a real bench.
    """

    name: str
    source: str
    limits: SafeLimits
    instruments: dict[str, InstrumentEntry]
    crossbar: dict[str, Any]
    simulation: SimulationEntry | None = None

    @property
    def simulated(self) -> bool:
        """True on a simulated bench (the file has a ``[simulation]`` table)."""
        return self.simulation is not None

    def with_simulation(self, **changes: Any) -> "Station":
        """The same station on a differently configured simulated bench.

        Parameters
        ----------
        **changes
            Fields of the ``[simulation]`` table (docs/station.md): ``kind`` (``"reram"``,
            ``"pcm"``, ``"passive"``), ``rows``, ``cols``, ``seed``, ``faults``, ``state``,
            ``bench``... With ``bench=NAME`` the instruments are retargeted to that bench:
            ``labrram://`` URLs get the new bench name and ``@labrram`` VISA libraries become
            ``NAME@labrram``.

        Returns
        -------
        Station
            A new station; this one is unchanged.

        Raises
        ------
        StationError
            On a real station, or for a value the station file would refuse.
        """
        if self.simulation is None:
            raise StationError(f"{self.source}: not a simulated station (no [simulation] table)")
        from dataclasses import replace

        simulation = replace(self.simulation, **changes)
        if not isinstance(simulation.faults, (dict, type(None))):  # a FaultPlan object (Python API): taken as is
            checked = _parse_simulation({**vars(simulation), "faults": None}, self.source)
            simulation = replace(checked, faults=simulation.faults)
        else:
            simulation = _parse_simulation({k: v for k, v in vars(simulation).items() if v is not None}, self.source)
        instruments = self.instruments
        if simulation.bench != self.simulation.bench:
            instruments = {n: _retarget(e, self.simulation.bench, simulation.bench) for n, e in instruments.items()}
        return replace(self, simulation=simulation, instruments=instruments)

    @property
    def array_index(self) -> int:
        """The board's array this station's crossbar addresses (``[crossbar] array``, default 0)."""
        return int(self.crossbar.get("array", 0))

    def with_crossbar(self, **changes: Any) -> "Station":
        """The same station with other ``[crossbar]`` settings.

        Parameters
        ----------
        **changes
            Keys of the ``[crossbar]`` table (docs/station.md), e.g. ``array=2`` for the third
            array of a board that carries several.

        Returns
        -------
        Station
            A new station; this one is unchanged.

        Raises
        ------
        StationError
            For a value the station file would refuse.
        """
        from dataclasses import replace

        crossbar = {**self.crossbar, **changes}
        where = f"{self.source}: [crossbar]"
        _check_crossbar_keys(crossbar, self.instruments, where)
        if "board" not in crossbar:
            raise StationError(f"{where} needs 'board' naming the board instrument")
        _check_crossbar(crossbar, self.limits, where)
        _check_roles(crossbar, self.instruments, where)
        _check_array_index(crossbar, self.simulation, where)
        return replace(self, crossbar=crossbar)

    def simulated_bench(self):
        """The simulated bench as this station describes it (configured now; kept when it
        already matches), without opening any instrument."""
        if self.simulation is None:
            raise StationError(f"{self.source}: not a simulated station (no [simulation] table)")
        return _simulated_bench(self.simulation)

    def connect(self) -> "ConnectedStation":
        """Open every instrument (configuring the simulated bench first, if any)."""
        return ConnectedStation(self)

    def to_dict(self) -> dict[str, Any]:
        """The station as JSON-ready data (what a run store records)."""
        return {
            "name": self.name,
            "source": self.source,
            "simulated": self.simulated,
            "limits": self.limits.to_dict(),
            "instruments": {
                n: {"driver": e.driver, "address": e.address, "visa_library": e.visa_library} for n, e in self.instruments.items()
            },
            "crossbar": dict(self.crossbar),
            "simulation": None if self.simulation is None else vars(self.simulation).copy(),
        }


_CROSSBAR_KEYS = {"board": str, "smu": str, "read_voltage": float, "read_gate": float, "smu_compliance": float, "smu_nplc": float, "array": int}
_INSTRUMENT_KEYS = {"driver", "address", "visa_library", "timeout", "options", "retries", "retry_delay"}
_CHIP_KINDS = ("reram", "pcm", "passive")
MAX_ARRAY = 4096
#: most arrays (tiles) a station's board may carry
MAX_ARRAYS = 64


def _expect(table: Any, where: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise StationError(f"{where} must be a table")
    return table


def _refuse_unknown(given: Any, known: Any, where: str) -> None:
    message = unknown_keys(given, known, where)
    if message:
        raise StationError(message)


def parse_station(text: str, source: str = "<string>") -> Station:
    """Parse and validate station TOML text; errors name ``source`` and the offending key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StationError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise StationError(f"{source}: nested too deeply") from None
    check_depth(data, source, StationError)
    message = unknown_keys(data, ("station", "limits", "instruments", "crossbar", "simulation"), f"{source}")
    if message:
        raise StationError(message.replace("unknown key(s)", "unknown table(s)", 1))
    meta = _expect(data.get("station", {}), f"{source}: [station]")
    _refuse_unknown(meta, ("name",), f"{source}: [station]")
    name = meta.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise StationError(f"{source}: station.name must be a string")
    try:
        limits = SafeLimits.from_dict(_expect(data.get("limits", {}), f"{source}: [limits]"))
    except ValueError as exc:
        raise StationError(f"{source}: [limits]: {exc}") from None

    instruments: dict[str, InstrumentEntry] = {}
    for iname, entry in _expect(data.get("instruments", {}), f"{source}: [instruments]").items():
        where = f"{source}: [instruments.{iname}]"
        entry = _expect(entry, where)
        _refuse_unknown(entry, _INSTRUMENT_KEYS, where)
        for key in ("driver", "address"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise StationError(f"{where}: '{key}' is required and must be a non-empty string")
        try:
            cls = driver_class(entry["driver"])
        except (ValueError, ImportError) as exc:
            raise StationError(f"{where}: {exc}") from None
        address = entry["address"]
        if isinstance(address, str) and any(ord(ch) < 32 or ord(ch) == 127 for ch in address):
            raise StationError(f"{where}: address {address!r} holds a control character (a newline?); an address is one line of text")
        problem = cls.address_problem(address)
        if problem:
            raise StationError(f"{where}: {problem}")
        timeout = entry.get("timeout", 5.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise StationError(f"{where}: timeout must be a positive number of seconds")
        if not isinstance(entry.get("visa_library", ""), str):
            raise StationError(f"{where}: visa_library must be a string such as '@py' or '@labrram'")
        retries = entry.get("retries", 2)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 20:
            raise StationError(f"{where}: retries must be an integer in 0..20 (repeats of an idempotent query after a link fault)")
        delay = entry.get("retry_delay", 0.2)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 60:
            raise StationError(f"{where}: retry_delay must be a number of seconds in [0, 60]")
        options = _expect(entry.get("options", {}), f"{where}.options")
        clash = {"limits", "name", "timeout", "visa_library", "retries", "retry_delay"} & set(options)
        if clash:
            raise StationError(f"{where}.options: {sorted(clash)} belong in [instruments.{iname}] itself, not in options")
        unknown_options = set(options) - _driver_options(cls)
        if unknown_options:
            raise StationError(f"{where}.options: {sorted(unknown_options)} not accepted by driver {entry['driver']!r}; it accepts {sorted(_driver_options(cls))}")
        instruments[iname] = InstrumentEntry(
            iname, entry["driver"], entry["address"], entry.get("visa_library", ""), float(timeout), options, retries, float(delay)
        )

    crossbar = _expect(data.get("crossbar", {}), f"{source}: [crossbar]")
    _check_crossbar_keys(crossbar, instruments, f"{source}: [crossbar]")
    if crossbar and "board" not in crossbar:
        raise StationError(f"{source}: [crossbar] needs 'board' naming the board instrument")
    _check_crossbar(crossbar, limits, f"{source}: [crossbar]")
    _check_roles(crossbar, instruments, f"{source}: [crossbar]")

    simulation = None
    if "simulation" in data:
        simulation = _parse_simulation(_expect(data["simulation"], f"{source}: [simulation]"), source)
        _check_bench_addresses(instruments, simulation.bench, source)
    _check_array_index(crossbar, simulation, f"{source}: [crossbar]")
    return Station(name, source, limits, instruments, dict(crossbar), simulation)


def _check_crossbar_keys(crossbar: dict[str, Any], instruments: dict[str, InstrumentEntry], where: str) -> None:
    """Every ``[crossbar]`` key known and of its type (instrument names among the station's)."""
    for key, value in crossbar.items():
        kind = _CROSSBAR_KEYS.get(key)
        if kind is None:
            _refuse_unknown([key], _CROSSBAR_KEYS, where)
        if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
            raise StationError(f"{where}: {key} must be a finite number in SI units")
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_ARRAYS):
            raise StationError(f"{where}: {key} must be a whole number in 0..{MAX_ARRAYS - 1} (which of the board's arrays, 0-based), got {value!r}")
        if kind is str and value not in instruments:
            raise StationError(f"{where}: {key} = {value!r} names no instrument of this station")


def _check_array_index(crossbar: dict[str, Any], simulation: "SimulationEntry | None", where: str) -> None:
    """On a simulated station the array must be one the simulated board carries (on hardware
    the board's own count is checked when the crossbar is first used)."""
    index = crossbar.get("array", 0)
    if simulation is not None and index >= simulation.arrays:
        raise StationError(f"{where}: array {index} is not on the simulated board, which carries "
                           f"{simulation.arrays} array{'s' if simulation.arrays != 1 else ''} ([simulation] arrays = {simulation.arrays}); "
                           f"arrays are numbered from 0")  # fmt: skip


def _check_roles(crossbar: dict[str, Any], instruments: dict[str, InstrumentEntry], where: str) -> None:
    """``board`` must name a crossbar-board driver and ``smu`` a source-measure unit."""
    from .drivers.board_base import Board
    from .drivers.smu import SourceMeter

    for key, role, base in (("board", "a crossbar board", Board), ("smu", "a source-measure unit", SourceMeter)):
        if key in crossbar:
            entry = instruments[crossbar[key]]
            cls = driver_class(entry.driver)
            if not issubclass(cls, base):
                raise StationError(f"{where}: {key} = {crossbar[key]!r} is a {entry.driver!r} instrument, not {role}")
            if key == "board":  # the read levels within what this board can apply (not only the limits)
                v, g = crossbar.get("read_voltage", 0.2), crossbar.get("read_gate", 3.3 if cls.has_gate else 0.0)
                if not cls.has_gate and g != 0:
                    raise StationError(f"{where}: read_gate {g:g} V: the {entry.driver!r} board drives passive arrays and has no word-line gate (leave read_gate out)")
                if not abs(v) <= cls.read_voltage_range:
                    raise StationError(f"{where}: read_voltage {v:g} V is beyond the {entry.driver!r} board's range of ±{cls.read_voltage_range:g} V")
                if not 0 <= g <= cls.read_gate_range:
                    raise StationError(f"{where}: read_gate {g:g} V is beyond the {entry.driver!r} board's range [0, {cls.read_gate_range:g}] V")


def _check_bench_addresses(instruments: dict[str, InstrumentEntry], bench: str, source: str) -> None:
    """On a simulated station every simulated address names the station's own bench (a typo
    would silently drive another, unconfigured bench)."""
    for name, e in instruments.items():
        url = e.address[len("labrram://") :] if e.address.startswith("labrram://") else None
        named = url.split("/", 1)[0] if url and "/" in url else None
        lib = e.visa_library.split("@")[0] if e.visa_library.endswith("@labrram") else None
        for what, value in (("address", named), ("visa_library", lib)):
            if value and value != bench:
                raise StationError(f"{source}: [instruments.{name}]: {what} names the simulated bench {value!r}, but [simulation] bench is {bench!r}")


def _driver_options(cls: type) -> set[str]:
    """Keyword arguments a driver class accepts beyond the ones the station sets itself."""
    import inspect

    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names - {"self", "transport", "limits", "name", "retries", "retry_delay"}


def _check_crossbar(crossbar: dict[str, Any], limits: SafeLimits, where: str) -> None:
    """The ``[crossbar]`` levels against the station's own limits (refused here, not at connect)."""
    v = crossbar.get("read_voltage", 0.2)
    if v == 0 or abs(v) > limits.max_voltage:
        raise StationError(f"{where}: read_voltage {v:g} V must be non-zero and within max_voltage ({limits.max_voltage:g} V)")
    g = crossbar.get("read_gate", 3.3)
    if not 0 <= g <= limits.max_gate_voltage:
        raise StationError(f"{where}: read_gate {g:g} V must be within [0, max_gate_voltage] ([0, {limits.max_gate_voltage:g}] V)")
    i = crossbar.get("smu_compliance", min(1e-3, limits.max_current))
    if not 0 < i <= limits.max_current:
        raise StationError(f"{where}: smu_compliance {i:g} A must be positive and within max_current ({limits.max_current:g} A)")
    n = crossbar.get("smu_nplc", 1.0)
    if not 0.01 <= n <= 10:
        raise StationError(f"{where}: smu_nplc {n:g} must be in [0.01, 10] power-line cycles")


def _parse_simulation(sim: dict[str, Any], source: str) -> SimulationEntry:
    """Validate the ``[simulation]`` table (and its ``[simulation.faults]``)."""
    where = f"{source}: [simulation]"
    _refuse_unknown(sim, SimulationEntry.__dataclass_fields__, where)
    for key in ("seed", "rows", "cols", "arrays"):
        if key in sim and (isinstance(sim[key], bool) or not isinstance(sim[key], int)):
            raise StationError(f"{where}: {key} must be an integer")
    if not 1 <= sim.get("arrays", 1) <= MAX_ARRAYS:
        raise StationError(f"{where}: arrays must be in 1..{MAX_ARRAYS} (arrays on the simulated board), got {sim['arrays']}")
    if sim.get("seed", 0) < 0:
        raise StationError(f"{where}: seed must be >= 0")
    for key in ("rows", "cols"):
        if not 1 <= sim.get(key, 128) <= MAX_ARRAY:
            raise StationError(f"{where}: {key} must be in 1..{MAX_ARRAY}, got {sim[key]}")
    bench = sim.get("bench", "default")
    if not isinstance(bench, str) or not bench or not bench.replace("-", "").replace("_", "").isalnum():
        raise StationError(f"{where}: bench must be a name of letters, digits, '-' and '_', got {bench!r}")
    if sim.get("kind", "reram") not in _CHIP_KINDS:
        raise StationError(f"{where}: kind must be one of {list(_CHIP_KINDS)}, got {sim.get('kind')!r}")
    from .sim.bench import BOARDS

    board = sim.get("board", "labrram")
    if board not in BOARDS:
        raise StationError(f"{where}: board must be one of {list(BOARDS)}, got {board!r}")
    if board == "arc1":
        from .sim.arc1 import MAX_LINES

        if sim.get("kind", "reram") != "passive":
            raise StationError(f"{where}: an ArC ONE (board = \"arc1\") carries passive arrays: set kind = \"passive\"")
        if sim.get("rows", 128) > MAX_LINES or sim.get("cols", 128) > MAX_LINES:
            raise StationError(f"{where}: an ArC ONE addresses at most {MAX_LINES}x{MAX_LINES} devices; set rows and cols to <= {MAX_LINES}")
        if sim.get("arrays", 1) != 1:
            raise StationError(f"{where}: an ArC ONE carries one array; arrays = {sim['arrays']} needs labrram's board (board = \"labrram\")")
    state = sim.get("state")
    if state is not None:
        if not isinstance(state, str) or not state.strip():
            raise StationError(f"{where}: state must be a directory path (the chip's state persists there)")
        if sim.get("kind", "reram") != "reram":
            raise StationError(f"{where}: state (a chip that persists across processes) is available for reram chips only")
        if not Path(state).is_absolute() and source and not source.startswith("<"):
            state = str(Path(source).resolve().parent / state)  # relative to the station file
    set_distribution = _set_distribution(sim, where, source)
    from .devices.reram import LEVEL_INSTABILITY_PRESETS

    spread = sim.get("level_spread", "none")
    if not isinstance(spread, str) or spread not in LEVEL_INSTABILITY_PRESETS:
        raise StationError(f"{where}: level_spread must be one of {sorted(LEVEL_INSTABILITY_PRESETS)}, got {spread!r}")
    if spread != "none" and sim.get("kind", "reram") != "reram":
        raise StationError(f"{where}: level_spread is a property of ReRAM chips; kind is {sim.get('kind')!r}")
    faults = sim.get("faults")
    if faults is not None:
        from .sim.faults import FaultError, FaultPlan

        try:
            plan = FaultPlan.from_dict(_expect(faults, f"{where}.faults"), "[simulation.faults]")
        except FaultError as exc:
            raise StationError(f"{source}: {exc}") from None
        emulated = [spec.name for spec in BOARDS[board]]
        for rule in plan.faults:
            if rule.instrument not in ("*", *emulated):
                raise StationError(f"{source}: [simulation.faults].{rule.kind}: instrument {rule.instrument!r} is not on the simulated bench "
                                   f"(it would never fire); the bench has {emulated} ('*': all)")  # fmt: skip
        for rule in plan.faults:
            if rule.array is not None and rule.array >= sim.get("arrays", 1):
                raise StationError(f"{source}: [simulation.faults].{rule.kind}: array {rule.array} is not on the simulated board "
                                   f"(arrays = {sim.get('arrays', 1)}; numbered from 0)")  # fmt: skip
        if any(k in faults for k in ("stuck", "dead")) and sim.get("kind", "reram") not in ("reram", "pcm"):
            raise StationError(f"{source}: [simulation.faults]: stuck and dead devices are available for reram and pcm chips only")
    return SimulationEntry(**{**sim, "state": state, "set_distribution": set_distribution})


def _set_distribution(sim: dict[str, Any], where: str, source: str) -> str:
    """Validate ``set_distribution``; an ``empirical:FILE`` table is read now (relative paths
    against the station file's folder) so a bad file is named before any bench is built."""
    value = sim.get("set_distribution", "gaussian")
    from .devices.set_families import FAMILIES

    choices = [f for f in FAMILIES if f != "empirical"] + ["empirical:FILE"]
    if not isinstance(value, str):
        raise StationError(f"{where}: set_distribution must be a string, one of {choices}, got {value!r}")
    name, sep, path = value.partition(":")
    if name == "empirical":
        path = path.strip()
        if not sep or not path:
            raise StationError(f'{where}: set_distribution "empirical" needs its quantile table: "empirical:FILE" (a JSON file, docs/station.md)')
        if not Path(path).is_absolute() and source and not source.startswith("<"):
            path = str(Path(source).resolve().parent / path)
        from .devices.set_families import QuantileTable

        try:
            QuantileTable.load(path)
        except ValueError as exc:
            raise StationError(f"{where}: set_distribution: {exc}") from None
        value = f"empirical:{path}"
    elif sep or name not in FAMILIES:
        raise StationError(f"{where}: set_distribution must be one of {choices}, got {value!r}")
    if value != "gaussian" and sim.get("kind", "reram") != "reram":
        raise StationError(f"{where}: set_distribution shapes the SET of ReRAM chips; kind is {sim.get('kind')!r}")
    return value


def load_station(path: str | Path | None = None) -> Station:
    """Load and validate a station file.

    Parameters
    ----------
    path : str or Path, optional
        A station file (TOML, docs/station.md); ``None`` loads the default station (the
        simulated bench); the name of a station that ships with labrram (``"arc1-simulated"``:
        ``labrram/stations/*.toml``) loads that one when no such file exists here.

    Returns
    -------
    Station
        Not connected yet: ``station.connect()`` opens the instruments.

    Raises
    ------
    StationError
        Naming the file, the key and the problem.
    """
    if path is None:
        path = DEFAULT_STATION.removesuffix(".toml")
    if isinstance(path, str) and not Path(path).exists():
        shipped = _shipped_station(path)
        if shipped is not None:
            return shipped
    return parse_station(read_user_text(path, "station", "TOML", StationError), str(Path(path)))


def _shipped_station(name: str) -> Station | None:
    """The station ``labrram/stations/NAME.toml`` that ships with labrram (None: there is none)."""
    if not name.replace("-", "").replace("_", "").isalnum():
        return None
    shipped = resources.files("labrram").joinpath("stations", f"{name}.toml")
    if not shipped.is_file():
        return None
    label = "default station" if name == DEFAULT_STATION.removesuffix(".toml") else "shipped station"
    return parse_station(shipped.read_text(), f"<{label}: labrram/stations/{name}.toml>")


def recorded_station(record: Any) -> Station | None:
    """The simulated station a run store recorded (:meth:`Station.to_dict`), rebuilt to resume
    the run on the same simulated chip.

    The base is the shipped station the record was loaded from (its instruments and their
    options), else the default station. On top of it come the run's own limits (never looser
    than the base's: a store is a file anyone can edit), every ``[simulation]`` field it
    recorded (the chip's kind, size, seed, state folder, SET distribution, level spread,
    arrays, bench) except ``faults`` (scripted failures happened once; the resume runs without
    them), and the ``[crossbar]`` read and SMU settings.

    Parameters
    ----------
    record : dict
        A store's ``station`` attribute.

    Returns
    -------
    Station or None
        None when the record holds no ``[simulation]`` table: a real station must be named.

    Raises
    ------
    StationError
        The record does not rebuild into a valid station on the base (another board, a value
        the station file would refuse): the station must be named.
    """
    from dataclasses import replace

    if not isinstance(record, dict) or not isinstance(record.get("simulation"), dict):
        return None
    source, name = record.get("source"), record.get("name")
    shipped = None
    if isinstance(source, str) and source.startswith("<") and source.endswith(".toml>") and "labrram/stations/" in source:
        shipped = _shipped_station(source.rsplit("/", 1)[-1].removesuffix(".toml>"))
    base = shipped or load_station()
    sim = {k: v for k, v in record["simulation"].items() if k in SimulationEntry.__dataclass_fields__ and k != "faults" and v is not None}
    if sim.get("board", "labrram") != base.simulation.board:
        raise StationError(f"the run was made through station {name!r} ({source}), whose simulated board is {sim.get('board')!r}; "
                           f"{base.name!r} has {base.simulation.board!r}: pass the station file")  # fmt: skip
    station = base.with_simulation(**sim)
    limits = record.get("limits")
    if isinstance(limits, dict):
        try:
            station = replace(station, limits=SafeLimits.from_dict(limits).within(base.limits))
        except ValueError as exc:
            raise StationError(f"the run's recorded limits: {exc}") from None
    crossbar = record.get("crossbar")
    if isinstance(crossbar, dict):
        station = station.with_crossbar(**{k: v for k, v in crossbar.items() if _CROSSBAR_KEYS.get(k) is float})
    return station


class ConnectedStation:
    """A station with its instruments open. Closing it (or leaving its ``with`` block, on any
    exception or Ctrl-C) shuts every instrument down: outputs ramped to 0 and off."""

    def __init__(self, station: Station) -> None:
        self.station = station
        self.instruments: dict[str, Instrument] = {}
        self.bench = None
        if station.simulation is not None:
            self.bench = _simulated_bench(station.simulation)
        try:
            for name, entry in station.instruments.items():
                cls = driver_class(entry.driver)
                try:
                    inst = self.instruments[name] = cls.open(
                        entry.address, visa_library=entry.visa_library, limits=station.limits, timeout=entry.timeout, name=name,
                        retries=entry.retries, retry_delay=entry.retry_delay, **entry.options,
                    )  # fmt: skip
                except (TypeError, ValueError) as exc:  # a setting the driver refuses (instrument errors pass)
                    raise StationError(f"{station.source}: [instruments.{name}]: {exc}") from None
        except BaseException:
            self.close()
            raise
        from .drivers.bench_clock import BenchClock

        #: a served bench's clock among the instruments: bench time comes over the wire
        self.remote_clock = next((i for i in self.instruments.values() if isinstance(i, BenchClock)), None)
        if self.bench is not None or self.remote_clock is not None:  # retry delays cost bench time, not wall time
            timer = self.timer
            for inst in self.instruments.values():
                if inst is not self.remote_clock:  # the clock's own retries wait in wall time
                    inst.wait = timer.wait
        self._crossbars: dict[int, Crossbar] = {}

    @property
    def crossbar(self) -> Crossbar:
        """The station's array under test (needs a ``[crossbar]`` table): array
        ``[crossbar] array`` (default 0) of the board."""
        return self.crossbar_for(self.station.array_index)

    def array_count(self) -> int:
        """Number of arrays the station's board carries (``:ARR:COUN?``; 1 on boards that carry one).

        Returns
        -------
        int
            The board's count.
        """
        return self._board().array_count()  # type: ignore[attr-defined]

    def crossbar_for(self, array: int) -> Crossbar:
        """The crossbar of one array of the station's board (same SMU, read settings and limits).

        Crossbars of different arrays share the board: each selects its own array before it
        reads or pulses, so they may be used in turn.

        Parameters
        ----------
        array : int
            The array, 0-based; checked against the board's count (:meth:`array_count`).

        Returns
        -------
        Crossbar
            The same object for the same array.

        Raises
        ------
        StationError
            No ``[crossbar]`` table, or an array the board does not carry.
        """
        if isinstance(array, bool) or not isinstance(array, int) or array < 0:
            raise StationError(f"{self.station.source}: array must be a whole number >= 0, got {array!r}")
        xb = self._crossbars.get(array)
        if xb is None:
            board = self._board()
            count = 1 if array == 0 else board.array_count()  # type: ignore[attr-defined]  # (every board has an array 0)
            if array >= count:
                raise StationError(f"{self.station.source}: array {array} is not on the board {self.station.crossbar['board']!r}, "
                                   f"which carries {count} array{'s' if count != 1 else ''} (numbered from 0)")  # fmt: skip
            cfg = self.station.crossbar
            smu = self.instruments[cfg["smu"]] if "smu" in cfg else None
            if not getattr(board, "has_gate", True):
                cfg = {"read_gate": 0.0, **cfg}  # a board without word-line gates reads at none
            xb = self._crossbars[array] = Crossbar(
                board,  # type: ignore[arg-type]
                smu,  # type: ignore[arg-type]
                self.station.limits,
                array=array,
                **{k: float(v) for k, v in cfg.items() if k not in ("board", "smu", "array")},
            )
        return xb

    def _board(self) -> Instrument:
        cfg = self.station.crossbar
        if not cfg:
            raise StationError(f"{self.station.source}: no [crossbar] table")
        return self.instruments[cfg["board"]]

    @property
    def timer(self):
        """Waits and time stamps: the bench's virtual clock when simulated (in this process, or a
        served bench's over the wire), else the wall clock."""
        from .timing import VirtualTimer, WallTimer

        if self.bench is not None:
            return VirtualTimer(self.bench.clock)
        if self.remote_clock is not None:
            from .drivers.bench_clock import RemoteTimer

            return RemoteTimer(self.remote_clock)
        return WallTimer()

    @property
    def simulated(self) -> bool:
        """Whether the station drives a simulated bench (in this process or served)."""
        return self.bench is not None or self.remote_clock is not None

    def bench_time(self) -> dict[str, float] | None:
        """Virtual-clock snapshot of the simulated bench (None on hardware)."""
        if self.bench is not None:
            return self.bench.clock.snapshot()
        return None if self.remote_clock is None else self.remote_clock.snapshot()

    def close(self) -> None:
        """Shut every instrument down (outputs ramped to 0 and off, routes open) and close it;
        every instrument is attempted. Raises :class:`ShutdownError` naming the instruments that
        could not be made safe (they may still be sourcing)."""
        errors = []
        for name, inst in reversed(list(self.instruments.items())):
            try:
                inst.close()
            except Exception as exc:  # keep closing the others
                entry = self.station.instruments.get(name)
                where = f" ({entry.driver} at {entry.address})" if entry is not None else ""
                errors.append(f"{name}{where}: {' '.join(str(exc).split()).rstrip('.')}")
        if errors:
            raise ShutdownError(
                "could not make every instrument safe — " + "; ".join(errors) + ". It may still be sourcing: check it by hand"
            )

    def __enter__(self) -> "ConnectedStation":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:
            self.close()
        except ShutdownError as failed:  # never hidden by the error that stopped the job
            why = " ".join(str(exc).split())[:200]
            raise ShutdownError(f"{failed} (the job had stopped on {exc_type.__name__}{': ' + why if why else ''})") from exc


def _retarget(entry: InstrumentEntry, old: str, new: str) -> InstrumentEntry:
    """Point an instrument of simulated bench ``old`` at bench ``new``."""
    from dataclasses import replace

    address, library = entry.address, entry.visa_library
    full, short = f"labrram://{old}/", "labrram://"
    if address.startswith(full):
        address = f"labrram://{new}/" + address[len(full) :]
    elif address.startswith(short) and "/" not in address[len(short) :]:  # labrram://board
        address = f"labrram://{new}/" + address[len(short) :]
    if library.endswith("@labrram") and library.split("@")[0] in ("", old):
        library = f"{new}@labrram"
    return replace(entry, address=address, visa_library=library)


def _simulated_bench(sim: SimulationEntry):
    """Configure the named simulated bench as the station asks (kept if it already matches)."""
    from . import sim as simulator

    bench = simulator.get_bench(sim.bench)
    cfg = bench.config
    from .sim.bench import BOARDS

    instruments = BOARDS[sim.board]
    options = {} if sim.set_distribution == "gaussian" else {"set_distribution": sim.set_distribution}
    if sim.level_spread != "none":
        options["level_spread"] = sim.level_spread
    wanted = (sim.seed, sim.kind, sim.rows, sim.cols, sim.state, sim.faults, instruments, sim.arrays, sim.set_distribution, sim.level_spread)
    have = (cfg.chip_options.get("set_distribution", "gaussian"), cfg.chip_options.get("level_spread", "none"))
    if (cfg.seed, cfg.kind, cfg.rows, cfg.cols, cfg.state, cfg.faults, cfg.instruments, cfg.arrays, *have) != wanted:
        bench = simulator.configure_bench(
            sim.bench, seed=sim.seed, kind=sim.kind, rows=sim.rows, cols=sim.cols, state=sim.state, faults=sim.faults,
            instruments=instruments, chip_options=options, arrays=sim.arrays,
        )  # fmt: skip
    return bench
