"""The simulated bench: one chip (or several arrays on one board), its board, the SMUs wired to
the board, one virtual clock.

Benches live in a registry by name (``"default"`` unless told otherwise). Transports (the PyVISA
backend, the pyserial URL handler) look instruments up there by resource name, so any client
reaches the same bench state; :func:`reset_bench` returns a bench to its power-on state (new
chip from the same seed, instruments at their reset defaults, buffers and logs cleared) for
tests.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Any

from ..timing import GPIB, USB_HS, USB_TMC, LinkTiming, uart
from .clock import VirtualClock
from .faults import Fault, FaultPlan, as_plan
from .instrument import EmulatedInstrument

# emulator kind -> "module:Class"
EMULATORS = {
    "keithley2400": "labrram.sim.keithley2400:Keithley2400",
    "keithley2636b": "labrram.sim.keithley2600:Keithley2636B",
    "keysight_b2902": "labrram.sim.keysight_b2900:KeysightB2902",
    "board": "labrram.sim.board:CrossbarBoard",
    "arc1": "labrram.sim.arc1:ArcOne",
}


@dataclass(frozen=True)
class InstrumentSpec:
    """One instrument of a simulated bench: its emulator kind, resource name and link."""

    name: str
    kind: str
    resource: str
    link: LinkTiming
    serial: str


DEFAULT_INSTRUMENTS = (
    InstrumentSpec("board", "board", "ASRL1::INSTR", USB_HS, "XB0001"),
    InstrumentSpec("k2400", "keithley2400", "GPIB0::24::INSTR", GPIB, "4123456"),
    InstrumentSpec("k2636b", "keithley2636b", "GPIB0::26::INSTR", GPIB, "4407123"),
    InstrumentSpec("b2902", "keysight_b2902", "USB0::0x0957::0x8C18::MY51140001::INSTR", USB_TMC, "MY51140001"),
)

#: the same bench with an ArC ONE carrying the chip in place of labrram's board (the SMUs are
#: on the bench but not wired to the chip: the ArC ONE has no SMU connector)
ARC1_INSTRUMENTS = (
    InstrumentSpec("arc1", "arc1", "ASRL3::INSTR", uart(921600), "ARC1-0001"),
    *DEFAULT_INSTRUMENTS[1:],
)

#: which board carries the chip -> the bench's instruments (``[simulation] board``)
BOARDS = {"labrram": DEFAULT_INSTRUMENTS, "arc1": ARC1_INSTRUMENTS}

#: most arrays one simulated board carries
MAX_ARRAYS = 64


def array_seed(seed: int, index: int) -> int:
    """The seed of array ``index`` of a bench drawn from ``seed``.

    Array 0 is the bench's chip as on a one-array bench (``seed`` itself); array ``i > 0`` is
    drawn from ``numpy.random.SeedSequence(seed, spawn_key=(i,)).generate_state(1)[0]``, a
    32-bit number distinct for every ``i``, so every array has its own devices, noise and serial.

    Parameters
    ----------
    seed : int
        The bench's seed (``[simulation] seed``).
    index : int
        The array, 0-based.

    Returns
    -------
    int
        The seed its chip is drawn from.
    """
    import numpy as np

    if index == 0:
        return int(seed)
    return int(np.random.SeedSequence(int(seed), spawn_key=(int(index),)).generate_state(1)[0])


@dataclass
class BenchConfig:
    """What a simulated bench is made of."""

    seed: int = 0
    kind: str = "reram"
    rows: int = 128
    cols: int = 128
    instruments: tuple[InstrumentSpec, ...] = DEFAULT_INSTRUMENTS
    chip_options: dict[str, Any] = field(default_factory=dict)
    #: faults to inject (a :class:`~labrram.sim.faults.FaultPlan`, a list of rules or the station table)
    faults: Any = None
    #: a directory where the chip's state and pulse log persist across processes (None: in memory)
    state: str | None = None
    #: arrays (tiles) of the same kind and size on the board; array 0 is drawn from ``seed``,
    #: array ``i`` from :func:`array_seed` (``seed``, ``i``)
    arrays: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.arrays, bool) or not isinstance(self.arrays, int) or not 1 <= self.arrays <= MAX_ARRAYS:
            raise ValueError(f"arrays must be a whole number in 1..{MAX_ARRAYS}, got {self.arrays!r}")


def _emulator_class(kind: str) -> type[EmulatedInstrument]:
    try:
        target = EMULATORS[kind]
    except KeyError:
        raise ValueError(f"unknown emulator kind {kind!r}; known: {sorted(EMULATORS)}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


# chip kind -> "module:Class"; every class takes (rows, cols, seed, clock, **options)
CHIPS = {
    "reram": "labrram.sim.chip:ReRAMChip",
    "pcm": "labrram.sim.pcm_chip:PCMChip",
    "passive": "labrram.sim.passive_chip:PassiveChip",
}


def make_chip(config: BenchConfig, clock: VirtualClock, index: int = 0):
    """Array ``index`` of a bench: a ReRAM, PCM or passive array drawn from
    :func:`array_seed` (``config.seed``, ``index``) — array 0 from ``config.seed`` itself."""
    try:
        module, _, name = CHIPS[config.kind].partition(":")
    except KeyError:
        raise ValueError(f"unknown chip kind {config.kind!r}; known: {sorted(CHIPS)}") from None
    cls = getattr(importlib.import_module(module), name)
    return cls(config.rows, config.cols, array_seed(config.seed, index), clock, **config.chip_options)


class Bench:
    """A simulated bench built from a :class:`BenchConfig`.

    Attributes
    ----------
    chips : list
        Every array the board carries (one unless ``config.arrays`` says more).
    chip
        The array the board has selected (``:ARR:SEL``; array 0 on a one-array bench).
    """

    def __init__(self, name: str = "default", config: BenchConfig | None = None) -> None:
        self.name = name
        self.config = config or BenchConfig()
        self.lock = threading.RLock()
        self.faults: FaultPlan | None = None
        self._persist = None
        self._build()
        self.inject(self.config.faults)

    def _build(self) -> None:
        self.clock = VirtualClock()
        self.chips = [make_chip(self.config, self.clock, i) for i in range(self.config.arrays)]
        self.instruments: dict[str, EmulatedInstrument] = {}
        self.resources: dict[str, str] = {}
        for spec in self.config.instruments:
            inst = _emulator_class(spec.kind)(self, spec.name, spec.link, spec.serial)
            self.instruments[spec.name] = inst
            self.resources[spec.resource] = spec.name
        self._wire()
        if self.config.arrays > 1 and not hasattr(self.board, "array"):
            raise ValueError(f"arrays = {self.config.arrays}: this bench's board carries one array (only labrram's board selects among several)")
        if self.config.state:
            from .persist import ChipState

            self._persist = ChipState(self.config.state, self)

    def _wire(self) -> None:
        """Connect every SMU channel to the board's SMU connector (channel A / 1 of each SMU)."""
        board = self.board
        if board is None:
            return
        for inst in self.instruments.values():
            ch = getattr(inst, "channel", None)
            if ch is None:
                channels = getattr(inst, "channels", None)
                ch = channels[0] if channels else None
            if ch is not None:
                ch.load = board.smu_port
                board.smu_port.channels.append(ch)

    @property
    def chip(self):
        """The array the board has selected (the only one on a one-array bench)."""
        board = self.board
        return self.chips[getattr(board, "array", 0) if board is not None else 0]

    @property
    def board(self):
        for inst in self.instruments.values():
            if hasattr(inst, "smu_port"):
                return inst
        return None

    def instrument_for(self, resource: str) -> EmulatedInstrument:
        """The emulator behind a resource or instrument name (exact, then case-insensitive)."""
        if resource in self.instruments:
            return self.instruments[resource]
        name = self.resources.get(resource)
        if name is None:
            lowered = {k.lower(): v for k, v in self.resources.items()}
            name = lowered.get(resource.lower())
        if name is None:
            raise KeyError(f"no instrument at {resource!r} on bench {self.name!r}; it has {sorted(self.resources)}")
        return self.instruments[name]

    def after_output_change(self) -> None:
        """Hook called by SMU emulators when an output switches (for fault injection and logs)."""

    def after_message(self) -> None:
        """Hook called after every program message an instrument has processed (before its
        reply can be read): a persistent bench commits the chip's state here."""
        persist = self._persist
        if persist is not None and any(chip.dirty for chip in self.chips):
            persist.save()

    def inject(self, faults: "FaultPlan | list[Fault] | dict | None") -> FaultPlan | None:
        """Attach a fault plan (see :mod:`labrram.sim.faults`); ``None`` removes it and plugs
        back in, powered on, any instrument that had vanished. Returns the plan."""
        with self.lock:
            if self.faults is not None:
                self.faults.restore()
            plan = as_plan(faults)
            if plan is not None:
                plan.bench = self
            self.faults = plan
            return plan

    def outputs_on(self) -> list[str]:
        """Names of instruments with any output on (tests use it to prove safe shutdown)."""
        on = []
        for name, inst in self.instruments.items():
            chans = getattr(inst, "channels", None) or ([inst.channel] if hasattr(inst, "channel") else [])
            if any(ch.output for ch in chans):
                on.append(name)
        return on

    def reset(self, seed: int | None = None) -> None:
        """Back to power-on: new chip (same or given seed), instruments reset, sessions dropped.

        A persistent bench (``state``) keeps its chip's state: a power cycle does not change
        conductances (delete the state directory for a fresh chip)."""
        with self.lock:
            self.retire()
            if seed is not None:
                self.config.seed = int(seed)
            self._build()

    def retire(self) -> None:
        """Drop every session and release the chip's state directory (the bench is replaced)."""
        with self.lock:
            for inst in self.instruments.values():
                for s in list(inst.sessions):
                    s.closed = True
            if self._persist is not None:
                self._persist.close()
                self._persist = None

    def shutdown(self) -> None:
        for inst in self.instruments.values():
            inst.shutdown()


_BENCHES: dict[str, Bench] = {}
_LOCK = threading.Lock()


def get_bench(name: str = "default") -> Bench:
    """The bench registered under ``name``, created with defaults on first use."""
    with _LOCK:
        bench = _BENCHES.get(name)
        if bench is None:
            bench = _BENCHES[name] = Bench(name)
        return bench


def configure_bench(name: str = "default", **options: Any) -> Bench:
    """(Re)create bench ``name`` from :class:`BenchConfig` options (seed, kind, rows, cols, ...)."""
    config = BenchConfig(**options)
    with _LOCK:
        old = _BENCHES.get(name)
        if old is not None:
            old.retire()  # invalidate old sessions, release its state directory
        bench = _BENCHES[name] = Bench(name, config)
        return bench


def reset_bench(name: str = "default", seed: int | None = None) -> Bench:
    """Reset bench ``name`` to power-on state (see :meth:`Bench.reset`)."""
    bench = get_bench(name)
    bench.reset(seed)
    return bench


def drop_benches() -> None:
    """Forget every bench (the next use builds fresh defaults)."""
    with _LOCK:
        for bench in _BENCHES.values():
            bench.retire()
        _BENCHES.clear()
