"""A simulated chip that outlives the process: ``[simulation] state = "DIR"``.

A real chip keeps its conductances when the computer driving it crashes; a simulated one lives in
the process that emulates the bench. With a state directory, the bench saves what the chip must
keep after every program message that changed it — before the reply can be read — so a process
killed at any instant leaves the state the chip had at that instant, and the next process
(``labrram program --resume``) finds it:

``chip.npz``
    The chip's mutable state (conductances and per-device hidden state, its random-number
    generator), the virtual clock, the board's pulse counter and the length of the pulse log;
    replaced atomically (written to a temporary file, then renamed), so it is always whole.
``pulses.bin``
    The pulse log, append-only (raw records of :data:`~labrram.sim.chip.PULSE_DTYPE`), written as
    each pulse reaches the die; bytes beyond the length recorded in ``chip.npz`` (a batch the
    process was killed in the middle of, whose snapshot was never committed) are cut on load.
``meta.json``
    What chip this is (kind, size, seed); a directory made for another chip is refused.
``lock``
    Held (``flock``) by the one process that drives the chip; released by the OS when it dies.
``array-<i>/``
    On a board with several arrays (``[simulation] arrays``): array ``i > 0``'s own
    ``chip.npz``, ``pulses.bin`` and ``meta.json`` (its meta names the array); array 0 is the
    top level, laid out as above, so a directory made for a one-array bench still loads. Every
    snapshot also carries the board's counters and the clock with a commit number; on load the
    newest snapshot's counters and clock are taken (a command changes one array, and its
    snapshot is one atomic file).

The chip's hidden parameters are drawn again from its seed, exactly as the first time. Writes go
to the page cache: they survive the process, not a power cut of the machine. Only ReRAM chips.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .chip import PULSE_DTYPE, PulseLog

if TYPE_CHECKING:  # pragma: no cover
    from .bench import Bench

__all__ = ["ChipState", "StateError", "array_dir", "load_pulse_log"]

#: the mutable per-device state of a ReRAM chip
MUTABLE = ("_g", "_t_prog", "_z", "_stuck")


class StateError(ValueError):
    """A state directory that cannot be used for this bench."""


class FilePulseLog(PulseLog):
    """A pulse log whose file is the state directory's ``pulses.bin``: every record is written
    to it as it is logged (one ``write(2)`` per batch), and memory holds only the newest."""

    memory_records = 0

    def __init__(self, path: Path, n: int = 0) -> None:
        super().__init__()
        self._file = open(path, "r+b" if path.exists() else "w+b", buffering=0)  # unbuffered: each batch is one write(2)
        self._file.truncate(n * PULSE_DTYPE.itemsize)  # records past the committed snapshot never happened
        self._n = self._on_file = n

    def clear(self) -> None:  # pragma: no cover - a persistent chip's log is never cleared
        raise StateError("the pulse log of a persistent chip is never cleared; delete the state directory")

    def close(self) -> None:
        self._file.close()


def array_dir(state_dir: str | Path, index: int) -> Path:
    """Where array ``index`` of a bench keeps its state in ``state_dir`` (array 0: the top level)."""
    state_dir = Path(state_dir)
    return state_dir if index == 0 else state_dir / f"array-{int(index)}"


def load_pulse_log(state_dir: str | Path) -> np.ndarray:
    """The committed pulse log of a state directory (for tests and audits), without a bench."""
    state_dir = Path(state_dir)
    with np.load(state_dir / "chip.npz", allow_pickle=False) as snap:
        n = int(json.loads(str(snap["meta"]))["n_log"])
    data = np.fromfile(state_dir / "pulses.bin", dtype=PULSE_DTYPE)
    return data[:n]


class ChipState:
    """The state directory of one bench's chip, or of each array of its board (see the module
    docstring)."""

    def __init__(self, path: str | Path, bench: "Bench") -> None:
        self.path = Path(path)
        self.bench = bench
        for chip in bench.chips:
            if chip.kind != "reram":
                raise StateError(f"state persistence is available for reram chips, not {chip.kind}")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        self._seq = 0  # commit number of the newest snapshot
        self.metas = [self._meta(i, chip) for i, chip in enumerate(bench.chips)]
        self.meta = self.metas[0]
        newest: dict | None = None
        fresh = []
        for i, chip in enumerate(bench.chips):
            where = array_dir(self.path, i)
            where.mkdir(exist_ok=True)
            meta_file = where / "meta.json"
            if meta_file.exists():
                try:
                    stored = json.loads(meta_file.read_text())
                except (OSError, json.JSONDecodeError) as exc:
                    raise StateError(f"{where}: unreadable meta.json ({exc})") from None
                if stored != self.metas[i]:
                    raise StateError(f"{where} holds the state of another chip ({stored}); this bench's array {i} is {self.metas[i]}")
                snapshot = self._load(i, chip)
                if newest is None or snapshot.get("seq", 0) > newest.get("seq", 0):
                    newest = snapshot
            else:
                fresh.append(i)
        if newest is not None:
            self._restore(newest)
        for i in fresh:
            chip = bench.chips[i]
            where = array_dir(self.path, i)
            chip.pulse_log = FilePulseLog(where / "pulses.bin")
            if (where / "pulses.bin").stat().st_size:
                (where / "pulses.bin").write_bytes(b"")
            self._save(i)
            (where / "meta.json").write_text(json.dumps(self.metas[i]))
        for chip in bench.chips:
            chip.dirty = False

    @staticmethod
    def _meta(index: int, chip) -> dict:
        meta = {"kind": chip.kind, "rows": chip.rows, "cols": chip.cols, "seed": chip.seed}
        return meta if index == 0 else {**meta, "array": index}

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return
        self._lock_file = open(self.path / "lock", "a")
        try:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise StateError(f"{self.path}: another process is driving this chip") from None

    def _load(self, index: int, chip) -> dict:
        """Array ``index``'s committed state into ``chip``; returns its snapshot's bench meta."""
        where = array_dir(self.path, index)
        try:
            with np.load(where / "chip.npz", allow_pickle=False) as snap:
                meta = json.loads(str(snap["meta"]))
                arrays = {name: np.array(snap[name]) for name in MUTABLE}
        except (OSError, ValueError, KeyError) as exc:
            raise StateError(f"{where}: unreadable chip.npz ({exc})") from None
        for name, value in arrays.items():
            if value.shape != (chip.rows, chip.cols):
                raise StateError(f"{where}: {name} has shape {value.shape}, the chip is {(chip.rows, chip.cols)}")
            setattr(chip, name, value)
        chip._rng.bit_generator.state = meta["rng"]
        chip.read_count = int(meta["read_count"])
        n = int(meta["n_log"])
        log_file = where / "pulses.bin"
        held = log_file.stat().st_size // PULSE_DTYPE.itemsize if log_file.exists() else 0
        if held < n:
            raise StateError(f"{where}: the pulse log holds {held} records, the snapshot says {n}")
        chip.pulse_log = FilePulseLog(log_file, n)  # it cuts off pulses whose snapshot was never committed
        return meta

    def _restore(self, meta: dict) -> None:
        """The bench's clock and the board's counters from the newest snapshot."""
        bench = self.bench
        bench.clock.now = float(meta["clock"])
        bench.clock.ledger.clear()
        bench.clock.ledger.update(meta["ledger"])
        self._seq = int(meta.get("seq", 0))
        board = bench.board
        if board is not None:
            board.pulse_count = int(meta["board_pulses"])
            board.boot_count = int(meta.get("board_boots", 1))

    def save(self) -> None:
        """Commit the state of every array that changed (each atomically: a temporary file
        renamed over the old one)."""
        for i, chip in enumerate(self.bench.chips):
            if chip.dirty or len(self.bench.chips) == 1:
                self._save(i)

    def _save(self, index: int) -> None:
        bench = self.bench
        chip = bench.chips[index]
        board = bench.board
        self._seq += 1
        meta = {
            "rng": chip._rng.bit_generator.state,
            "clock": bench.clock.now,
            "ledger": dict(bench.clock.ledger),
            "read_count": chip.read_count,
            "n_log": len(chip.pulse_log),
            "board_pulses": 0 if board is None else board.pulse_count,
            "board_boots": 1 if board is None else board.boot_count,
            "seq": self._seq,
        }
        where = array_dir(self.path, index)
        tmp = where / "chip.tmp.npz"
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **{name: getattr(chip, name) for name in MUTABLE})
        os.replace(tmp, where / "chip.npz")
        chip.dirty = False

    def close(self) -> None:
        for chip in self.bench.chips:
            log = chip.pulse_log
            if isinstance(log, FilePulseLog):
                log.close()
        lock = getattr(self, "_lock_file", None)
        if lock is not None:
            lock.close()
