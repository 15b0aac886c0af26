"""What a plan asks the engine to do: messages, and the results the engine sends back.

A plan is a generator. It yields a message, the engine (:mod:`.engine`) carries it out on the
station — or, when a run resumes, answers it from the run store without touching the chip —
and sends the result back into the generator::

    def plan():
        g = yield Read(rows, cols)                                  # conductances, S
        r = yield Pulse("SET", rows, cols, amplitude=1.8, gate=gates, width=1e-6)
        ...                                                         # r.g, r.status
        yield Report("write-verify", done, total)                   # progress; no result
        return ProgramResult(...)

Messages hold no I/O, so a plan can be stepped by hand, or by a fake engine that answers from a
device model. Every message that touches the chip (all but :class:`Report`) is one numbered step
of the run; the engine records it and its result.

Cells are always two equal-length integer arrays, ``rows`` and ``cols``: the i-th device is
``(rows[i], cols[i])``. Per-device values (amplitudes, gates) are scalars or arrays of the same
length. Units are SI (V, s, S, A).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Any, Generator

import numpy as np

from labrram.drivers.board_base import DELIVERED, NOT_DELIVERED, UNKNOWN

#: a pulse the engine refused to send: the device reached its per-run pulse or energy budget
REFUSED = -2

__all__ = [
    "DELIVERED",
    "NOT_DELIVERED",
    "UNKNOWN",
    "REFUSED",
    "Bias",
    "Measure",
    "Message",
    "Now",
    "OPS",
    "STEP_DEVICES",
    "Pulse",
    "PulseResult",
    "Read",
    "in_steps",
    "Report",
    "SmuDefine",
    "SmuScript",
    "Sweep",
    "Wait",
    "cells_crc",
]


def _cells(rows: Any, cols: Any) -> tuple[np.ndarray, np.ndarray]:
    rows = np.atleast_1d(np.asarray(rows))
    cols = np.atleast_1d(np.asarray(cols))
    if rows.ndim != 1 or rows.shape != cols.shape:
        raise ValueError(f"a message's rows and cols must be 1-D arrays of one length, got shapes {rows.shape} and {cols.shape}")
    if rows.size and not (np.issubdtype(rows.dtype, np.integer) and np.issubdtype(cols.dtype, np.integer)):
        raise ValueError("a message's rows and cols must be integer indices")
    return rows.astype(np.intp), cols.astype(np.intp)


def _per_device(value: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{what}: {arr.shape} values for {n} devices")
    return arr


def cells_crc(rows: np.ndarray, cols: np.ndarray) -> int:
    """A checksum of a cell list (order included): with a step's levels, how a resumed run
    recognises its steps."""
    return zlib.crc32(np.ascontiguousarray(np.stack([rows, cols]).astype(np.int64)).tobytes())


class Message:
    """Base of the messages that are steps of a run (see the module docstring)."""

    op: int = 0
    #: whether carrying the message out twice is harmless (reads, waits): the engine retries
    #: these after a link fault; a pulse is never repeated
    idempotent: bool = True
    #: whether the message sets instrument state that later steps rely on: when a run resumes,
    #: such a step is carried out again (not only answered from the store), since a reconnected
    #: or power-cycled instrument has forgotten it
    sets_state: bool = False

    @property
    def n(self) -> int:
        return 0

    def crc(self) -> int:
        return 0

    def decode(self, values: np.ndarray) -> Any:
        """The result, from the values the engine stored for this step."""
        return None

    def encode(self, result: Any) -> np.ndarray:
        """The values to store for this step's result."""
        return np.empty(0)


@dataclass(frozen=True, eq=False)
class PulseResult:
    """What a :class:`Pulse` did, per device.

    Attributes
    ----------
    g : numpy.ndarray
        Conductance after the pulse, S: the read of the same transaction (``read=True``), or the
        read-back after a failed exchange; NaN where nothing was read.
    status : numpy.ndarray
        Per device (int8): 1 delivered, 0 provably not delivered, -1 unknown (the exchange
        failed and the board's pulse counter could not tell), -2 refused (the device reached
        its per-run pulse or energy budget; nothing was sent to it).
    """

    g: np.ndarray
    status: np.ndarray

    @property
    def delivered(self) -> np.ndarray:
        return self.status == DELIVERED

    @property
    def unknown(self) -> np.ndarray:
        return self.status == UNKNOWN

    @property
    def refused(self) -> np.ndarray:
        return self.status == REFUSED

    @property
    def reached(self) -> np.ndarray:
        """Devices the pulse may have reached (delivered or unknown)."""
        return (self.status == DELIVERED) | (self.status == UNKNOWN)


@dataclass(frozen=True, eq=False)
class Pulse(Message):
    """A batch of SET or RESET pulses, one per device, in one transaction.

    With ``read`` every device is read right after its pulse, in the same transaction.
    Result: :class:`PulseResult`. ``gate`` is the word-line voltage (0 on passive arrays).
    """

    kind: str
    rows: Any
    cols: Any
    amplitude: Any
    gate: Any
    width: Any
    read: bool = True
    idempotent = False

    def __post_init__(self) -> None:
        if self.kind not in ("SET", "RESET"):
            raise ValueError(f"pulse kind must be 'SET' or 'RESET', got {self.kind!r}")
        rows, cols = _cells(self.rows, self.cols)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "cols", cols)
        for name in ("amplitude", "gate", "width"):
            object.__setattr__(self, name, _per_device(getattr(self, name), rows.size, f"pulse {name}"))

    @property
    def op(self) -> int:  # type: ignore[override]
        return 1 if self.kind == "SET" else 2

    @property
    def n(self) -> int:
        return int(self.rows.size)

    def crc(self) -> int:
        levels = np.concatenate([self.amplitude, self.gate, self.width, [float(self.read)]])
        return zlib.crc32(levels.tobytes(), cells_crc(self.rows, self.cols))

    def decode(self, values: np.ndarray) -> PulseResult:
        n = self.n
        return PulseResult(values[:n].copy(), values[n : 2 * n].astype(np.int8))

    def encode(self, result: PulseResult) -> np.ndarray:
        return np.concatenate([np.asarray(result.g, float), np.asarray(result.status, float)])


@dataclass(frozen=True, eq=False)
class Read(Message):
    """Conductances of the devices at the crossbar's read voltage, S (one per device)."""

    rows: Any
    cols: Any
    op = 3

    def __post_init__(self) -> None:
        rows, cols = _cells(self.rows, self.cols)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "cols", cols)

    @property
    def n(self) -> int:
        return int(self.rows.size)

    def crc(self) -> int:
        return cells_crc(self.rows, self.cols)

    def decode(self, values: np.ndarray) -> np.ndarray:
        return values.copy()

    def encode(self, result: np.ndarray) -> np.ndarray:
        return np.asarray(result, float)


@dataclass(frozen=True, eq=False)
class Measure(Read):
    """Currents the board senses for the devices with ``voltage`` on the selected lines, A
    (the read voltage is put back afterwards). On a passive array a reading carries the sneak
    currents of the biasing scheme."""

    voltage: float = 0.2
    op = 4

    def crc(self) -> int:
        return zlib.crc32(np.float64(self.voltage).tobytes(), cells_crc(self.rows, self.cols))


@dataclass(frozen=True, eq=False)
class Sweep(Message):
    """An I-V sweep of one cell by the SMU (routed to it by the board): the current at each
    voltage, A. ``gate`` is the word-line voltage (None: the read gate)."""

    row: int
    col: int
    voltages: Any
    gate: float | None = None
    op = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "voltages", np.atleast_1d(np.asarray(self.voltages, dtype=float)))

    @property
    def n(self) -> int:
        return int(self.voltages.size)

    def crc(self) -> int:
        extra = np.array([self.row, self.col, np.nan if self.gate is None else self.gate], dtype=float)
        return zlib.crc32(np.concatenate([extra, self.voltages]).tobytes())

    def decode(self, values: np.ndarray) -> np.ndarray:
        return values.copy()

    def encode(self, result: np.ndarray) -> np.ndarray:
        return np.asarray(result, float)


#: biasing schemes of the unselected lines of a passive array: the names plans use -> the
#: board's words (``:ARR:BIAS``)
BIAS_SCHEMES = {"V/2": "HALF", "V/3": "THIRD", "float": "FLOAT"}
SCHEMES = tuple(BIAS_SCHEMES.values())


@dataclass(frozen=True, eq=False)
class Bias(Message):
    """The biasing of the unselected lines for later pulses and reads: ``"HALF"`` (V/2),
    ``"THIRD"`` (V/3) or ``"FLOAT"``. No result."""

    scheme: str
    op = 6
    sets_state = True

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"bias scheme must be one of {SCHEMES}, got {self.scheme!r}")

    def crc(self) -> int:
        return SCHEMES.index(self.scheme)

    @classmethod
    def of(cls, scheme: str) -> "Bias":
        """The message for a scheme as plans name it: ``"V/2"``, ``"V/3"`` or ``"float"``."""
        if scheme not in BIAS_SCHEMES:
            raise ValueError(f"bias scheme must be one of {sorted(BIAS_SCHEMES)}, got {scheme!r}")
        return cls(BIAS_SCHEMES[scheme])


@dataclass(frozen=True, eq=False)
class Wait(Message):
    """Wait ``seconds`` on the bench's clock (virtual on the simulated bench). No result."""

    seconds: float
    op = 7

    def __post_init__(self) -> None:
        if not np.isfinite(self.seconds) or self.seconds < 0:
            raise ValueError(f"cannot wait {self.seconds!r} s")

    def crc(self) -> int:
        return zlib.crc32(np.float64(self.seconds).tobytes())


@dataclass(frozen=True, eq=False)
class Now(Message):
    """The bench clock, s (virtual on the simulated bench; seconds since the epoch on hardware).
    Result: a float."""

    op = 8

    @property
    def n(self) -> int:
        return 1

    def decode(self, values: np.ndarray) -> float:
        return float(values[0])

    def encode(self, result: float) -> np.ndarray:
        return np.array([float(result)])


def _text_values(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(float)


def _values_text(values: np.ndarray) -> str:
    return values.astype(np.uint8).tobytes().decode("utf-8", errors="replace")


@dataclass(frozen=True, eq=False)
class SmuDefine(Message):
    """Run a script on the station's TSP SMU that defines functions for later
    :class:`SmuScript` calls and prints ``ready``. No result. Carried out again when a run
    resumes (an instrument that restarted has forgotten the functions)."""

    script: str
    ready: str
    op = 10
    sets_state = True

    def crc(self) -> int:
        return zlib.crc32(self.script.encode())


@dataclass(frozen=True, eq=False)
class SmuScript(Message):
    """Route the station's SMU to cell ``(row, col)`` with the word line at ``gate`` (V), run a
    TSP ``script`` on it (one that may pulse and read the cell), then open the route. Result:
    the text the script printed (``""`` when the reply was lost: what the script did is unknown,
    and the plan must find out, e.g. by reading before pulsing again).

    The worst case of every script is the plan's to check before any byte (its levels are also
    clamped on the instrument); the engine checks the gate. The SMU's pulses happen inside the
    script: they are counted by the plan's result, not written to the board's pulse log."""

    row: int
    col: int
    gate: float
    script: str
    timeout: float = 10.0
    op = 9
    idempotent = False

    @property
    def n(self) -> int:
        return 1

    def crc(self) -> int:
        return zlib.crc32(f"{int(self.row)},{int(self.col)},{float(self.gate)!r}|{self.script}".encode())

    def decode(self, values: np.ndarray) -> str:
        return _values_text(values)

    def encode(self, result: str) -> np.ndarray:
        return _text_values(result)


@dataclass(frozen=True, eq=False)
class Report:
    """Progress for the user (``done`` of ``total`` in stage ``label``); not a step of the run."""

    label: str
    done: int
    total: int


#: step op codes as stored in the run store's ``steps`` table
OPS = {1: "SET", 2: "RESET", 3: "read", 4: "measure", 5: "sweep", 6: "bias", 7: "wait", 8: "now", 9: "smu script", 10: "smu define"}


#: devices in one step at most: :func:`in_steps` splits a bigger batch, so that the memory one
#: step needs (its message, its result, its log rows) stays flat however large the array
STEP_DEVICES = 1 << 16


def in_steps(msg: "Pulse | Read", size: int = STEP_DEVICES) -> Generator[Any, Any, Any]:
    """Yield ``msg`` as consecutive messages of at most ``size`` devices (``yield from`` in a
    plan) and return the joined result: a :class:`PulseResult` or the conductances of a
    :class:`Read`, in ``msg``'s order. A message that fits is yielded as it is."""
    if msg.n <= size:
        return (yield msg)
    parts = []
    for start in range(0, msg.n, size):
        sl = slice(start, start + size)
        cut = {"rows": msg.rows[sl], "cols": msg.cols[sl]}
        if isinstance(msg, Pulse):
            cut.update(amplitude=msg.amplitude[sl], gate=msg.gate[sl], width=msg.width[sl])
        parts.append((yield replace(msg, **cut)))
    if isinstance(msg, Pulse):
        return PulseResult(np.concatenate([p.g for p in parts]), np.concatenate([p.status for p in parts]))
    return np.concatenate(parts)
