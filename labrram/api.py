"""The Python API: the jobs a lab runs on a chip, one call each.

Every function takes a ``station``: ``None`` (the default simulated bench), the path of a station
file, a :class:`~labrram.station.Station`, or an already connected
:class:`~labrram.station.ConnectedStation` (kept open: several calls then share one chip and one
connection). Each job is a plan run by the one engine (:mod:`labrram.protocols.engine`), so
every job alike checks limits before any byte, records its steps in a run store when given
``out``, stops cleanly with every output off, and continues with :func:`resume`.

>>> import labrram
>>> run = labrram.characterize(kind="reram", out="char.zarr")        # doctest: +SKIP
>>> cal = labrram.calibrate("char.zarr", out="reram.json")           # doctest: +SKIP
>>> result = labrram.program("uniform:50e-6:150e-6", out="prog.zarr") # doctest: +SKIP
>>> labrram.resume("prog.zarr")                                      # doctest: +SKIP

docs/python-api.md walks through all of it with the outputs.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .crossbar import Crossbar
from .job_settings import JobError, protocol_settings
from .calibration.files import Calibration, CalibrationError, default_calibration, load_calibration
from .protocols.engine import Engine, start_plan
from .protocols.journal import Journal
from .protocols.plan import plan_from_store
from .protocols.results import ProgramResult, Progress
from .station import ConnectedStation, ShutdownError, Station, StationError, load_station, recorded_station
from .store import RunStore, StoreError

__all__ = [
    "CHIP_KINDS",
    "Characterization",
    "JobError",
    "PROTOCOLS",
    "ReadResult",
    "calibrate",
    "characterize",
    "chip_kind",
    "import_measurements",
    "info",
    "program",
    "protocol_settings",
    "read",
    "resume",
    "serve",
]

log = logging.getLogger("labrram.api")
StationLike = Any  # None | str | Path | Station | ConnectedStation

CHIP_KINDS = ("reram", "pcm", "passive")
#: programming protocols -> the chip kinds they program. ``"write-verify"`` is the closed loop of
#: whatever chip the station carries: SETs aimed at the calibrated gate on ReRAM, the SET/RESET ladders on PCM,
#: amplitude staircases under V/2 or V/3 on passive arrays.
PROTOCOLS = {
    "write-verify": ("reram", "pcm", "passive"),
    "single-shot": ("reram",),
    "stochastic-set": ("reram",),
}
_WRITE_VERIFY = {"reram": "write-verify", "pcm": "write-verify-pcm", "passive": "tune-passive"}
#: the chip kind each stored programming plan runs on
_PLAN_KINDS = {"write-verify": "reram", "single-shot": "reram", "stochastic-set": "reram", "smu-write-verify": "reram",
               "write-verify-pcm": "pcm", "tune-passive": "passive"}  # fmt: skip


# --- stations ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _unsafe_noted(out: Any) -> Iterator[None]:
    """A station that could not be made safe when the job ended: the run store says so too."""
    try:
        yield
    except ShutdownError as exc:
        if out is not None and Path(out).exists():
            with contextlib.suppress(Exception):
                RunStore.open(out, mode="r+").update_attrs(safe_state=f"failed: {exc}")
            raise ShutdownError(f"the job ended and is stored in {out}, but {exc}") from exc.__cause__  # what stopped it, if anything
        raise


@contextlib.contextmanager
def _connected(station: StationLike, kind: str | None = None, array: tuple[int, int] | None = None) -> Iterator[ConnectedStation]:
    if isinstance(station, ConnectedStation):
        if array is not None:
            raise JobError("array sets the size of a simulated chip when connecting; this station is already connected")
        yield station
        return
    st = station if isinstance(station, Station) else load_station(station)
    if kind is not None and st.simulated and st.simulation.kind != kind:
        st = st.with_simulation(kind=kind)  # the simulated bench carries the chip asked for
    if array is not None:
        if not st.simulated:
            raise JobError("array sets the size of a simulated chip; a real station's array is what it is")
        st = st.with_simulation(rows=int(array[0]), cols=int(array[1]))
    with st.connect() as connected:
        yield connected


def _crossbar(connected: ConnectedStation, array_index: int | None) -> Crossbar:
    """The crossbar a job runs on: array ``array_index`` of the board, default the station's."""
    if array_index is None:
        return connected.crossbar
    if isinstance(array_index, bool) or not isinstance(array_index, (int, np.integer)) or array_index < 0:
        raise JobError(f"array_index must be a whole number >= 0 (which of the board's arrays), got {array_index!r}")
    return connected.crossbar_for(int(array_index))


def chip_kind(connected: ConnectedStation, array_index: int | None = None) -> str:
    """What the station's board says it carries.

    Parameters
    ----------
    connected : ConnectedStation
        An open station (``station.connect()``).
    array_index : int, optional
        Which of the board's arrays (default the station's ``[crossbar] array``).

    Returns
    -------
    str
        ``"reram"``, ``"pcm"`` or ``"passive"``: labrram's board answers ``:ARR:TYPE?``; for a
        board that cannot tell, the kind its station file declares.
    """
    kind = _crossbar(connected, array_index).array_kind()
    if kind not in CHIP_KINDS:
        raise JobError(f"the board reports an array of type {kind!r}; labrram programs {CHIP_KINDS}")
    return kind


def _chip_id(connected: ConnectedStation, array_index: int | None = None) -> str:
    return _crossbar(connected, array_index).identify()


def _bench_faults(connected: ConnectedStation) -> int:
    return int(sum(getattr(inst, "link_faults", 0) for inst in connected.instruments.values()))


def _calibration(calibration: Any) -> Calibration | None:
    if calibration is None:
        return None
    if isinstance(calibration, Calibration):
        return calibration
    return load_calibration(calibration)


def info(station: StationLike = None) -> dict[str, Any]:
    """Describe a station: what ``labrram info --json`` prints.

    Parameters
    ----------
    station : None, str, Path, Station or ConnectedStation
        Where the chip is (None: the default simulated bench; see the module docstring).

    Returns
    -------
    dict
        ``station`` and ``source`` (names), ``simulated`` (bool), ``instruments`` (name ->
        driver, address and ``*IDN?`` reply), ``limits`` (the station's safe limits, SI),
        ``array`` ([rows, cols]), ``arrays`` (how many the board carries) and ``array_index``
        (the one the station's crossbar addresses).
    """
    from . import __version__

    with _connected(station) as connected:
        st = connected.station
        if st.crossbar:
            connected.crossbar.identify()  # the station's array selected first: the board's *IDN? names its chip
        instruments = {name: {"driver": st.instruments[name].driver, "address": st.instruments[name].address, "idn": inst.idn}
                       for name, inst in connected.instruments.items()}  # fmt: skip
        summary: dict[str, Any] = {"labrram": __version__, "station": st.name, "source": st.source, "simulated": st.simulated,
                                   "limits": st.limits.to_dict(), "instruments": instruments}  # fmt: skip
        if st.crossbar:
            summary["array"] = list(connected.crossbar.shape)
            summary["arrays"] = connected.array_count()
            summary["array_index"] = st.array_index
        return summary


# --- program ----------------------------------------------------------------------------------
def _program_plan(kind: str, protocol: str, targets: np.ndarray, cal: Calibration, sigma: Any, settings: Any) -> Any:
    from .targets import resolve_sigma

    if protocol == "write-verify":
        if kind == "reram":
            from .protocols.write_verify import ReRAMWriteVerify, WriteVerifyReRAM

            return WriteVerifyReRAM(targets, cal.model, protocol_settings(ReRAMWriteVerify, settings))
        if kind == "pcm":
            from .protocols.write_verify_pcm import PCMWriteVerify, WriteVerifyPCM

            return WriteVerifyPCM(targets, protocol_settings(PCMWriteVerify, settings))
        from .protocols.tune_passive import PassiveTuning, TunePassive

        return TunePassive(targets, cal.model, protocol_settings(PassiveTuning, settings))
    from .protocols.single_shot import OneShotSettings, SingleShot, StochasticSet

    if protocol == "single-shot":
        return SingleShot(targets, cal.model, protocol_settings(OneShotSettings, settings))
    return StochasticSet(targets, resolve_sigma(sigma, np.asarray(targets, dtype=float)), cal.model, protocol_settings(OneShotSettings, settings))


def program(
    targets: Any,
    station: StationLike = None,
    *,
    protocol: str = "write-verify",
    calibration: Any = None,
    sigma: Any = None,
    settings: Any = None,
    out: str | Path | None = None,
    seed: int = 0,
    kind: str | None = None,
    array: tuple[int, int] | None = None,
    array_index: int | None = None,
    progress: Progress | None = None,
) -> ProgramResult:
    """Program conductance targets into the station's array.

    Parameters
    ----------
    targets : array, str or Path
        Conductances, S, of the array's shape (NaN, or a masked entry of a masked array, leaves a device alone); or a ``.npy`` file;
        or a pattern (:data:`labrram.targets.PATTERNS`, e.g. ``"uniform:50e-6:150e-6"``).
    station : None, str, Path, Station or ConnectedStation
        Where the chip is (module docstring).
    protocol : str
        ``"write-verify"`` (the closed loop that fits the chip), ``"single-shot"`` or
        ``"stochastic-set"`` (ReRAM), or a plan name (``"write-verify-pcm"``, ``"tune-passive"``).
    calibration : Calibration, str or Path, optional
        The device calibration; default the shipped one for the chip's kind. Its kind must be
        the chip's.
    sigma : None, "calibrated", float, array or str, optional
        ``stochastic-set`` only: the wanted spread per device, S.
    settings : dataclass or dict, optional
        The protocol's settings (e.g. :class:`~labrram.protocols.write_verify.ReRAMWriteVerify`),
        or a dict of some of them by name (``{"reads": 4}`` for PCM write-verify), the rest
        at their defaults (:func:`protocol_settings`).
    out : str or Path, optional
        A new run store: every step recorded, resumable with :func:`resume`.
    seed : int
        Seed of a ``uniform`` pattern.
    kind : str, optional
        On a simulated station, the kind of the simulated chip; on a real one, what the board
        must report.
    array : (rows, cols), optional
        Simulated stations only: the size of the simulated chip.
    array_index : int, optional
        Which of the board's arrays to program, 0-based (boards that carry several); default
        the station's ``[crossbar] array``. Recorded in the run store.
    progress : callable, optional
        ``progress(label, done, total)`` as the run goes (raise ``KeyboardInterrupt`` in it to
        stop the run cleanly).

    Returns
    -------
    ProgramResult
        Per-device targets, achieved conductances, convergence and pulses; wall time, bench
        time (the bench clock: virtual on the simulated bench) and the physical limit, s.
    """
    from .targets import load_npy, parse_pattern

    if kind is not None and kind not in CHIP_KINDS:
        raise JobError(f"kind must be one of {CHIP_KINDS}, got {kind!r}")
    plan_names = {"write-verify-pcm": ("pcm",), "tune-passive": ("passive",)}
    if protocol not in PROTOCOLS and protocol not in plan_names:
        raise JobError(f"unknown protocol {protocol!r}; choose from {sorted(PROTOCOLS) + sorted(plan_names)}")
    fits = PROTOCOLS.get(protocol) or plan_names[protocol]
    if protocol in plan_names:
        protocol = "write-verify"
    cal = _calibration(calibration)
    spec = targets if isinstance(targets, str) else None
    if isinstance(targets, (str, Path)):  # files and patterns are checked before connecting
        if str(targets).lower().endswith(".npy"):
            targets = load_npy(targets, "targets")
        else:
            parse_pattern(str(targets))
    if isinstance(sigma, (str, Path)) and str(sigma).lower().endswith(".npy"):
        sigma = load_npy(sigma, "sigma")
    _refuse_existing(out)
    with _unsafe_noted(out), _connected(station, kind, array) as connected:  # the chip is the station's (or kind's), never the calibration's
        xb = _crossbar(connected, array_index)
        chip = chip_kind(connected, xb.array)
        if kind is not None and chip != kind:
            raise JobError(f"the board reports a {chip!r} array, not {kind!r}")
        if chip not in fits:
            raise JobError(f"protocol {protocol!r} programs {'/'.join(fits)} chips; this station carries a {chip!r} array")
        cal = cal or default_calibration(chip)
        if cal.kind != chip:
            raise JobError(f"the calibration is for {cal.kind!r} devices; this station carries a {chip!r} array")
        from .targets import resolve_targets

        plan = _program_plan(chip, protocol, resolve_targets(targets, xb.shape, seed), cal, sigma, settings)
        attrs = {"station": connected.station.to_dict(), "calibration": cal.provenance, "chip": _chip_id(connected, xb.array), "device_kind": chip,
                 "targets_spec": spec, "array_index": xb.array}  # fmt: skip
        engine = start_plan(xb, plan, out, timer=connected.timer, progress=progress, attrs=attrs)  # checks before any byte and file
        faults0 = _bench_faults(connected)
        result = engine.run(plan, checked=True)
        _finish_program(result, engine, connected, faults0, out)
        return result


def _finish_program(result: ProgramResult, engine: Engine, connected: ConnectedStation, faults0: int, out: Any) -> None:
    result.out = None if out is None else str(out)  # type: ignore[attr-defined]
    result.link_faults = _bench_faults(connected) - faults0 + engine.recovered  # type: ignore[attr-defined]
    result.settled = engine.settled  # type: ignore[attr-defined]


# --- characterize -----------------------------------------------------------------------------
@dataclass
class Characterization:
    """A characterization run: the raw data the fit reads, and what it cost.

    Attributes
    ----------
    kind : str
        Device technology.
    data : ReRAMData, PCMData or PassiveData
        The raw measurements (SI units).
    chip : str
        The board's identification of the chip.
    out : str or None
        The run store.
    wall_time, bench_time, physical_limit : float
        Seconds: this computer's, the bench clock's (virtual on the simulated bench), and what
        the pulses, conversions and waits alone take.
    """

    kind: str
    data: Any
    chip: str
    out: str | None = None
    wall_time: float = 0.0
    bench_time: float = 0.0
    physical_limit: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """What ``labrram characterize --json`` prints: ``out``, ``kind``, ``chip``,
        ``devices`` (number measured), ``settings``, ``wall_time``, ``projected_bench_time`` and
        ``physical_limit`` (s)."""
        return {
            "out": self.out, "kind": self.kind, "chip": self.chip, "devices": int(np.size(self.data.rows)), "settings": self.settings,
            "wall_time": self.wall_time, "projected_bench_time": self.bench_time, "physical_limit": self.physical_limit,
        }  # fmt: skip


def characterize(
    station: StationLike = None,
    *,
    kind: str | None = None,
    out: str | Path | None = None,
    settings: Any = None,
    array: tuple[int, int] | None = None,
    array_index: int | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> Characterization:
    """Measure device statistics on the station's array (what :func:`calibrate` fits).

    Parameters
    ----------
    station : None, str, Path, Station or ConnectedStation
        Where the chip is.
    kind : str, optional
        ``"reram"``, ``"pcm"`` or ``"passive"``; default what the board reports. On a simulated
        station it chooses the simulated chip.
    out : str or Path, optional
        A new run store (resumable with :func:`resume`).
    settings : dataclass, optional
        The routine's settings (:class:`~labrram.calibration.reram_routine.ReRAMCharacterization`,
        :class:`~labrram.calibration.pcm_routine.PCMCharacterization` or
        :class:`~labrram.calibration.passive_routine.PassiveCharacterization`).
    array : (rows, cols), optional
        Simulated stations only: the size of the simulated chip.
    array_index : int, optional
        Which of the board's arrays, 0-based; default the station's ``[crossbar] array``.
    progress : callable, optional
        ``progress(label, done, total)`` as the run goes.
    **options
        Some fields of the kind's settings instead of ``settings`` (``n_devices=64, cycles=4,
        seed=1``). Each routine measures ``n_devices`` distinct devices drawn at random over
        the whole array, seeded by ``seed`` (the passive routine draws twice as many: half for
        the I–V and read noise, half for the threshold ramps); their positions are the
        returned data's ``rows`` and ``cols``.

    Returns
    -------
    Characterization
        The raw data (what :func:`calibrate` fits), the chip's identification and what the run
        cost (wall time, bench time, physical limit, s).
    """
    from .calibration import KINDS

    if kind is not None and kind not in KINDS:
        raise JobError(f"characterization of {kind!r} chips is not available; choose from {sorted(KINDS)}")
    if settings is not None and options:
        raise JobError(f"give settings or options {sorted(options)}, not both")
    _refuse_existing(out)
    if settings is None and kind is not None:
        settings = protocol_settings(KINDS[kind].settings, options)
    with _unsafe_noted(out), _connected(station, kind, array) as connected:
        xb = _crossbar(connected, array_index)
        chip = chip_kind(connected, xb.array)
        if kind is not None and chip != kind:
            raise JobError(f"the board reports a {chip!r} array, not {kind!r}")
        tech = KINDS[chip]
        if settings is None:
            settings = protocol_settings(tech.settings, options)
        plan = tech.plan(settings)
        chip_id = _chip_id(connected, xb.array)
        attrs = {"device_kind": chip, "settings": settings.to_dict(), "station": connected.station.to_dict(), "chip": chip_id,
                 "array_index": xb.array}  # fmt: skip
        engine = start_plan(xb, plan, out, timer=connected.timer, progress=progress, attrs=attrs)
        data = engine.run(plan, checked=True)
        return _characterization(chip, data, chip_id, out, engine, settings.to_dict())


def _characterization(kind: str, data: Any, chip: str, out: Any, engine: Engine, settings: dict[str, Any]) -> Characterization:
    acc = engine.accounting()
    return Characterization(kind, data, chip, None if out is None else str(out), acc["wall_time"], acc["bench_time"], acc["physical_limit"], settings)


# --- resume -------------------------------------------------------------------------------------
def resume(out: str | Path, station: StationLike = None, *, progress: Progress | None = None, other_chip: bool = False,
           array_index: int | None = None) -> Any:
    """Continue an interrupted run from its store alone.

    The plan is rebuilt from the store, its stored steps are answered from the store without
    touching the chip, a pulse batch in flight is settled by the board's pulse counter and a
    read-back, and the run goes on.

    Parameters
    ----------
    out : str or Path
        The run store of the interrupted run (programming or characterization).
    station : None, str, Path, Station or ConnectedStation
        Where the chip is; default the simulated station the run was made on, rebuilt from its
        store (:func:`labrram.station.recorded_station`: its chip's settings, limits and read
        settings, without its scripted faults), else the default station.
    progress : callable, optional
        ``progress(label, done, total)`` as the run goes.
    other_chip : bool
        Continue on a chip other than the run's (the board's ``*IDN?`` differs, or another
        array of the board): refused unless asked explicitly; logged and recorded in the store.
    array_index : int, optional
        Which of the board's arrays: default the run's own when the station is the stored one,
        else the station's ``[crossbar] array``. Another array than the run's is another chip.

    Returns
    -------
    ProgramResult or Characterization
        What the run returns.
    """
    journal = Journal.open(out)
    attrs = journal.attrs
    plan = plan_from_store(journal.store)
    ran_on = attrs.get("array_index", 0)  # stores written before arrays were recorded: the board's only array
    with _unsafe_noted(out), _connected(_station_of(attrs) if station is None else station) as connected:
        if array_index is None:
            array_index = ran_on if station is None else connected.station.array_index
        xb = _crossbar(connected, array_index)
        if xb.array != ran_on:
            if not other_chip:
                raise StoreError(f"{out}: the run was on array {ran_on} of the board; this job addresses array {xb.array} "
                                 f"(resume it on array {ran_on}, or say explicitly that another chip is meant)")  # fmt: skip
            _same_kind_and_shape(out, attrs, connected, xb)
            log.warning("%s: resumed on array %d; the run began on array %d", out, xb.array, ran_on)
            journal.store.update_attrs(array_indices=[*attrs.get("array_indices", [ran_on]), xb.array])
        chip_id = _chip_id(connected, xb.array)
        if attrs.get("chip") not in (None, chip_id):
            if not other_chip:
                raise StoreError(f"{out}: the run was on chip {attrs['chip']!r}; this station's board reports {chip_id!r} "
                                 "(resume it there, or say explicitly that another chip is meant)")  # fmt: skip
            _same_kind_and_shape(out, attrs, connected, xb)  # another chip when told; another kind or size never
            log.warning("%s: resumed on chip %r; the run began on %r", out, chip_id, attrs["chip"])
            journal.store.update_attrs(chips=[*attrs.get("chips", [attrs["chip"]]), chip_id])
        else:
            _refuse_fresh_simulated_chip(out, connected, xb, other_chip)
        name, stored = connected.station.name, _stored_station_name(attrs)
        if stored not in (None, name):
            log.warning("%s: resumed through station %r; the run began through %r", out, name, stored)
            journal.store.update_attrs(stations=[*attrs.get("stations", [stored]), name])
        faults0 = _bench_faults(connected)
        engine = Engine(xb, journal, timer=connected.timer, progress=progress)
        result = engine.run(plan)
        if plan.kind == "characterize":
            return _characterization(attrs.get("device_kind", ""), result, chip_id, out, engine, attrs.get("settings", {}))
        _finish_program(result, engine, connected, faults0, out)
        return result


def _refuse_existing(out: str | Path | None) -> None:
    """A new run never writes over a store: an existing one is resumed or left alone."""
    if out is not None and Path(out).exists():
        raise StoreError(f"{out} already exists: continue an interrupted run there with resume (labrram.resume; "
                         "--resume on the command line), or choose another out")  # fmt: skip


def _refuse_fresh_simulated_chip(out: str | Path, connected: ConnectedStation, xb: Crossbar, other_chip: bool) -> None:
    """An in-memory simulated chip lives as long as its process: a run that pulsed one, resumed
    in a process whose simulated chip was never pulsed, would go on with a fresh chip under the
    same ``*IDN?``. Refused unless another chip is meant (a ``[simulation] state`` folder keeps
    the chip between processes)."""
    from .protocols.journal import latest_record

    bench = connected.bench
    if bench is None or bench.config.state is not None or not int(latest_record(out).get("log", 0) or 0):
        return
    if len(bench.chips[xb.array].pulse_log):
        return  # the chip this process has been pulsing: the run's own
    if not other_chip:
        raise StoreError(f"{out}: the run pulsed an in-memory simulated chip, which ended with the process that ran it; this "
                         "process's simulated chip has never been pulsed (resume it on that fresh chip with --other-chip / "
                         "other_chip=True, or give the station a [simulation] state folder so that its chip persists)")  # fmt: skip
    log.warning("%s: resumed on a fresh simulated chip; the run began on another one", out)


def _stored_station_name(attrs: dict[str, Any]) -> str | None:
    """The station name a run store records (None when it records none)."""
    stored = attrs.get("station")
    name = stored.get("name") if isinstance(stored, dict) else None
    return name if isinstance(name, str) else None


def _same_kind_and_shape(out: str | Path, attrs: dict[str, Any], connected: ConnectedStation, xb: Crossbar) -> None:
    """Refuse to resume a run on a chip of another kind or another array size (its plan cannot
    run there, whatever the user says), before any byte is sent to the chip."""
    kind = attrs.get("device_kind") or _PLAN_KINDS.get(attrs.get("plan"))  # stores written before device_kind: by their plan
    if kind is not None:
        chip = chip_kind(connected, xb.array)
        if chip != kind:
            raise StoreError(f"{out}: the run was on a {kind!r} array; this station's board carries a {chip!r} array")
    shape = attrs.get("array_shape")
    if isinstance(shape, list) and tuple(shape) != tuple(xb.shape):
        raise StoreError(f"{out}: the run was on a {shape[0]}x{shape[1]} array; this station's board has {xb.shape[0]}x{xb.shape[1]}")


def _station_of(attrs: dict[str, Any]) -> StationLike:
    """The simulated station a run was made on, rebuilt from its store (``recorded_station``;
    None: the default station)."""
    try:
        return recorded_station(attrs.get("station"))
    except (StationError, TypeError, ValueError) as exc:
        raise StoreError(f"the run's stored simulated station is not usable ({exc}); pass the station") from None


# --- calibrate ----------------------------------------------------------------------------------
def calibrate(run: str | Path, *, out: str | Path | None = None, bootstrap: int = 200, plots: str | Path | None = None, family: str = "auto") -> Calibration:
    """Fit the device model to a characterization run store (and save it).

    Parameters
    ----------
    run : str or Path
        A complete characterization run store (:func:`characterize` or
        :func:`import_measurements`).
    out : str or Path, optional
        Also save the calibration there (JSON; ``Calibration.save`` does the same later); a
        new file, in a folder that exists.
    bootstrap : int
        Bootstrap resamples of the devices for the 95 % intervals.
    plots : str or Path, optional
        Also write PNG plots of data and fit into this folder (needs matplotlib); their paths
        are in the returned calibration's ``plots`` attribute.
    family : str
        ReRAM: the SET distribution programming uses (``model.set_family``): ``"gaussian"``
        (the fitted laws), ``"empirical"`` (the measured quantiles, ``model.set_table``) or
        ``"auto"``: the empirical one when the Gaussian test rejects (a warning is logged;
        ``goodness_of_fit["gaussian_rejected"]``). Other kinds: ``"auto"`` only.

    Returns
    -------
    Calibration
        The fitted model (``.model``), each fitted parameter as an
        :class:`~labrram.calibration.estimates.Estimate` (``.estimates[name].value``, ``.low``,
        ``.high``, ``.unit``; ``"ci95": [low, high]`` in the JSON file), goodness of fit and
        provenance.
    """
    from .calibration import KINDS
    from .calibration.files import provenance

    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)) or bootstrap < 2:
        raise JobError(f"bootstrap must be an integer >= 2 (resamples for the intervals), got {bootstrap!r}")
    if out is not None:  # checked before the fit: a file is never written over, a missing folder is named at once
        if Path(out).exists():
            raise JobError(f"{out} already exists; choose another out (a calibration is never written over a file)")
        if not Path(out).resolve().parent.is_dir():
            raise JobError(f"{out}: there is no folder {Path(out).resolve().parent} to write the calibration in")
    store = RunStore.open(run)
    attrs = store.attrs
    if attrs.get("kind") != "characterize":
        raise StoreError(f"{run} is a {attrs.get('kind')!r} run, not a characterization")
    if attrs.get("status") not in (None, "complete"):
        raise StoreError(f"{run}: the characterization did not complete ({attrs.get('reason')}); finish it with resume first")
    kind = attrs.get("device_kind")
    tech = KINDS.get(kind)
    if tech is None:
        raise StoreError(f"{run}: cannot calibrate device kind {kind!r}")
    try:
        data = tech.data.load(store)
    except (StoreError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise StoreError(f"{run}: incomplete characterization: {exc}") from None
    if kind != "reram" and family != "auto":
        raise JobError(f"family={family!r} chooses the SET distribution of ReRAM devices; {run} characterized {kind!r} devices")
    fit = (tech.fit(n_boot=bootstrap, family=family) if kind == "reram" else tech.fit(n_boot=bootstrap)).fit(data)
    protocol = getattr(fit, "protocol_estimates_", {})
    everything = {**fit.estimates_, **protocol}
    undetermined = sorted(k for k, e in everything.items() if not np.all(np.isfinite([e.value, e.low, e.high])))
    if undetermined:
        raise JobError(f"{run}: the data leave {', '.join(undetermined)} undetermined ({fit.n_devices_} devices); characterize more devices")
    cal = Calibration(kind, fit.model_, fit.estimates_, fit.gof_, fit.n_devices_,
                      provenance(attrs.get("chip", "unknown"), attrs.get("station"), attrs.get("settings", {}), str(Path(run))), protocol)  # fmt: skip
    if out is not None:
        cal.save(out)
    cal.plots = []  # type: ignore[attr-defined]
    if plots is not None:
        from .report import calibration_plots

        fields = str(attrs.get("chip", "")).split(",")
        cal.plots = [str(p) for p in calibration_plots(kind, data, fit.model_, plots, title=fields[2].strip() if len(fields) > 2 else "")]  # type: ignore[attr-defined]
    return cal


def import_measurements(source: str | Path, kind: str, *, out: str | Path, settings: dict[str, Any] | None = None) -> Path:
    """Measurements taken on another setup → a characterization run store that :func:`calibrate`
    fits.

    Parameters
    ----------
    source : str or Path
        A CSV (tidy: ``quantity``, the dimension columns, ``value``), NPZ, netCDF (``.nc``) or
        zarr (``.zarr``) file holding the quantities the kind's fit reads, in SI units
        (:data:`labrram.calibration.importer.SCHEMAS`; docs/calibration.md lists them).
    kind : str
        ``"reram"``, ``"pcm"`` or ``"passive"``.
    out : str or Path
        The run store to create.
    settings : dict, optional
        What the fit needs to know about how the data were taken
        (:data:`labrram.calibration.importer.SETTINGS`: PCM ``reads_per_time``, passive ``scheme``).

    Returns
    -------
    Path
        ``out``, ready for ``calibrate(out)``.
    """
    from .calibration.importer import import_measurements as run_import

    return run_import(source, kind, out, settings)


# --- read ---------------------------------------------------------------------------------------
@dataclass
class ReadResult:
    """A whole-array read.

    Attributes
    ----------
    conductance : ndarray
        (rows, cols) conductances, S.
    read_voltage : float
        The read voltage, V.
    wall_time : float
        This computer's time, s.
    bench_time : float or None
        The bench clock's time (virtual on the simulated bench), s; None on a real bench
        without a clock model.
    out : str or None
        The run store, if one was written.
    """

    conductance: np.ndarray
    read_voltage: float
    wall_time: float
    bench_time: float | None
    out: str | None = None

    def summary(self) -> dict[str, Any]:
        """What ``labrram read --json`` prints: ``out``, ``shape``, ``read_voltage`` (V),
        ``conductance`` statistics (S: median, mean, min, max of the finite values),
        ``wall_time`` and ``projected_bench_time`` (s)."""
        finite = self.conductance[np.isfinite(self.conductance)]
        return {
            "out": self.out, "shape": list(self.conductance.shape), "read_voltage": self.read_voltage,
            "conductance": {"unit": "S", **{k: float(f(finite)) for k, f in (("median", np.median), ("mean", np.mean), ("min", np.min), ("max", np.max))}},
            "wall_time": self.wall_time, "projected_bench_time": self.bench_time,
        }  # fmt: skip


def read(station: StationLike = None, *, out: str | Path | None = None) -> ReadResult:
    """Read the whole array's conductance map (one board transaction).

    Parameters
    ----------
    station : None, str, Path, Station or ConnectedStation
        Where the chip is.
    out : str or Path, optional
        A new run store for the map (array ``conductance`` (row, col), S).

    Returns
    -------
    ReadResult
        Conductances (rows, cols), S, at the read voltage, and the wall and bench times, s.
    """
    if out is not None and Path(out).exists():
        raise StoreError(f"{out} already exists; choose another out or remove it")
    with _connected(station) as connected:
        xb = connected.crossbar
        store = None
        if out is not None:  # before the read: a store that cannot be written fails with nothing measured yet
            store = RunStore.create(out, "read", {"station": connected.station.to_dict(), "read_voltage": xb.read_voltage, "read_gate": xb.read_gate,
                                                  "chip": _chip_id(connected)})  # fmt: skip
        t_bench = connected.timer.now()
        t0 = time.perf_counter()
        try:
            g = xb.read()
        except BaseException:
            if store is not None:  # nothing was measured: no empty store left behind
                shutil.rmtree(store.path, ignore_errors=True)
            raise
        wall = time.perf_counter() - t0
        bench = connected.timer.now() - t_bench if connected.simulated else None
        result = ReadResult(g, xb.read_voltage, wall, bench, None if out is None else str(out))
        if store is not None:
            store.write("conductance", g, ("row", "col"), "S", long_name="conductance at the read voltage")
            store.update_attrs(wall_time=wall, projected_bench_time=bench)
        return result


def _input_errors() -> tuple[type, ...]:
    from .calibration.importer import MeasurementError
    from .cells import CellsError
    from .npyfile import ArrayFileError
    from .protocols.results import TargetError
    from .targets import TargetSpecError

    return (JobError, StationError, CalibrationError, StoreError, TargetError, TargetSpecError, CellsError, ArrayFileError, MeasurementError)


#: the errors that mean bad input (a station, calibration, store, targets or cells that cannot be
#: used, a job that does not fit the chip): nothing was sent to the chip
INPUT_ERRORS: tuple[type, ...] = _input_errors()


def serve(instrument: str | None = None, station: StationLike = None, *, host: str = "127.0.0.1", port: int = 5025) -> Any:
    """Serve a simulated station's bench to other processes, like hardware on a network.

    Parameters
    ----------
    instrument : str, optional
        One instrument of the station (``[instruments.NAME]``): a serial one (``labrram://``
        address: the board, an ArC ONE) on a pseudo-terminal, a VISA one on a raw TCP socket.
        Default: every instrument, and the bench clock (:class:`~labrram.sim.serve.BenchServer`).
    station : str, Path or Station, optional
        A simulated station (default: the default station).
    host : str
        Interface the TCP sockets listen on (``127.0.0.1``: this machine only).
    port : int
        First TCP port (then one per instrument); 0 picks free ports.

    Returns
    -------
    PtyServer, TcpServer or BenchServer
        Started; ``.path`` / ``.address`` / ``.served`` say where; ``.close()`` stops it (for
        its clients, the instruments vanish). ``BenchServer.station_text()`` is a station file
        that drives the served bench with ``pyvisa-py`` and pyserial.
    """
    from .sim.serve import BenchServer, PtyServer, TcpServer, url_instrument

    st = station if isinstance(station, Station) else load_station(station)
    if not st.simulated:
        raise JobError(f"{st.source}: serve needs a simulated station (a [simulation] table); real instruments are reached at their own addresses")
    if isinstance(port, bool) or not isinstance(port, int) or port < 0:
        raise JobError(f"port must be an integer >= 0 (0: free ports), got {port!r}")
    last = port + (len(st.instruments) if instrument is None else 1) - 1  # one port per instrument served
    if port and last > 65535:
        raise JobError(f"port {port!r}: the ports served ({port}..{last}) must lie in 1..65535 (0: free ports)")
    if instrument is None:
        return BenchServer(st, host=host, port=port).start()
    entry = st.instruments.get(instrument)
    if entry is None:
        raise JobError(f"{st.source}: no instrument {instrument!r}; the station has {sorted(st.instruments)}")
    bench = st.simulated_bench()
    name = url_instrument(entry.address)
    if name is not None:
        return PtyServer(bench.name, name).start()
    return TcpServer(bench.name, bench.instrument_for(entry.address).name, host, port).start()
