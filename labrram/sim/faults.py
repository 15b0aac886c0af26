"""Fault injection for the simulated bench: the faults of real benches, at the transport boundary.

A :class:`FaultPlan` is a list of :class:`Fault` rules attached to a bench
(``configure_bench(..., faults=plan)``, ``bench.inject(plan)``, or the station's
``[simulation.faults]`` table). Every program message an emulated instrument receives is first
shown to the plan, which decides — reproducibly, from its seed — whether a rule fires on it. The
faults act on the bytes and on the emulators, never on the drivers: a driver sees exactly what
a flaky link, a rebooting board or a failing chip would give it.

Kinds (see :data:`KINDS`):

``timeout``
    No reply. With ``executed=True`` (default) the command ran and only its reply is lost (for a
    pulse-and-read command the pulses reached the chip); with ``executed=False`` the command was
    lost on the way in.
``drop``
    ``nbytes`` bytes of the reply go missing.
``garble``
    ``nbytes`` bytes of the reply are replaced by random bytes.
``partial``
    The reply is cut at a random point; the rest never arrives.
``error``
    The instrument refuses the command (nothing is executed, no reply) and queues error ``code``.
``reset``
    The instrument power-cycles (brown-out, watchdog, USB re-enumeration): the command is lost,
    its state returns to power-on, and open connections are dead until the client reopens them.
``disappear``
    The instrument vanishes (cable pulled): the command is lost and every access fails until
    ``duration`` attempts (writes or reopenings) have failed; ``duration=None`` means it never
    comes back by itself (:meth:`FaultPlan.restore` or ``bench.inject(None)`` plugs it back in,
    powered on).
``stuck``
    A ``fraction`` of the chip's devices (or the given ``cells``) becomes stuck at ``state``
    (``"lrs"`` or ``"hrs"``) from this command on. On a board with several arrays: those of
    ``array``, default the array selected when the rule fires (also for ``dead``).
``dead``
    A ``fraction`` of the chip's devices (1.0: all) stops switching: pulses no longer change
    them (a chip worn out or broken down mid-run).
``interrupt``
    The operator presses Ctrl-C (``signal="SIGINT"``) or the job scheduler sends ``SIGTERM``
    while this command runs (the signal goes to this process).

A rule fires at the ``at``-th message that matches it (1-based; ``count`` consecutive messages,
default 1) or, with ``rate``, on each matching message with that probability (at most
``count`` times; default unlimited). ``instrument`` names the emulator (``"board"``,
``"k2400"``, ``"k2636b"``, ``"b2902"`` on the default bench; ``"*"`` any) and ``match`` keeps
only messages whose text contains it (case-insensitive, e.g. ``":PULS"``). Everything that fired
is listed in :attr:`FaultPlan.events`.
"""

from __future__ import annotations

import os
import signal as _signal
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from .bench import Bench
    from .instrument import EmulatedInstrument, Session

#: every fault kind, with what it does (docs/station.md, docs/reliability.md)
KINDS = {
    "timeout": "no reply (executed=True: the command ran, its reply is lost; False: the command is lost)",
    "drop": "nbytes bytes of the reply go missing",
    "garble": "nbytes bytes of the reply are replaced by random bytes",
    "partial": "the reply is cut at a random point",
    "error": "the command is refused with error `code` queued (nothing runs, no reply)",
    "reset": "the instrument power-cycles: command lost, state at power-on, connections must be reopened",
    "disappear": "the instrument vanishes for `duration` attempts (None: until restored)",
    "stuck": "a `fraction` of the devices (or `cells`) becomes stuck at `state` (lrs|hrs)",
    "dead": "a `fraction` of the devices (1.0: the whole chip) stops switching",
    "interrupt": "a signal (`signal`: SIGINT or SIGTERM) reaches this process while the command runs",
}
REPLY_KINDS = ("timeout", "drop", "garble", "partial")
CHIP_KINDS = ("stuck", "dead")
SIGNALS = ("SIGINT", "SIGTERM")


class FaultError(ValueError):
    """A fault rule or plan that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Fault:
    """One fault rule (see the module docstring for the kinds and triggers).

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    instrument : str
        Emulator name on the bench, or ``"*"`` for any.
    at : int, optional
        Fire at the ``at``-th matching message (1-based).
    rate : float
        Otherwise fire on each matching message with this probability.
    count : int, optional
        How many times the rule fires at most (default 1 with ``at``, unlimited with ``rate``).
    match : str, optional
        Only messages whose text contains this (case-insensitive).
    nbytes : int
        ``drop``/``garble``: bytes affected.
    executed : bool
        ``timeout``: whether the command ran before its reply was lost.
    duration : int, optional
        ``disappear``: failed attempts before the instrument is back (None: never by itself).
    fraction : float
        ``stuck``/``dead``: fraction of the devices affected.
    cells : tuple of (row, col), optional
        ``stuck``/``dead``: these devices instead of a random ``fraction``.
    state : str
        ``stuck``: ``"lrs"`` or ``"hrs"``.
    array : int, optional
        ``stuck``/``dead``: which array of a board with several (0-based; default the one
        selected when the rule fires).
    code : int
        ``error``: the error code queued (negative SCPI code).
    signal : str
        ``interrupt``: ``"SIGINT"`` or ``"SIGTERM"``.
    """

    kind: str
    instrument: str = "board"
    at: int | None = None
    rate: float = 0.0
    count: int | None = None
    match: str | None = None
    nbytes: int = 1
    executed: bool = True
    duration: int | None = None
    fraction: float = 0.01
    cells: tuple[tuple[int, int], ...] | None = None
    state: str = "hrs"
    array: int | None = None
    code: int = -240
    signal: str = "SIGINT"

    def __post_init__(self) -> None:
        where = f"fault {self.kind!r}"
        if self.kind not in KINDS:
            raise FaultError(f"unknown fault kind {self.kind!r}; known: {sorted(KINDS)}")
        if not isinstance(self.instrument, str) or not self.instrument:
            raise FaultError(f"{where}: instrument must be an instrument name or '*'")
        if self.at is not None and (isinstance(self.at, bool) or not isinstance(self.at, int) or self.at < 1):
            raise FaultError(f"{where}: at must be a message number >= 1, got {self.at!r}")
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) or not 0.0 <= self.rate <= 1.0:
            raise FaultError(f"{where}: rate must be a probability in [0, 1], got {self.rate!r}")
        if (self.at is None) == (self.rate == 0.0):
            raise FaultError(f"{where}: give exactly one trigger: at = N (the N-th message) or rate = p (per message)")
        for name in ("count", "duration"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise FaultError(f"{where}: {name} must be an integer >= 1, got {v!r}")
        if isinstance(self.nbytes, bool) or not isinstance(self.nbytes, int) or self.nbytes < 1:
            raise FaultError(f"{where}: nbytes must be an integer >= 1, got {self.nbytes!r}")
        if not isinstance(self.executed, bool):
            raise FaultError(f"{where}: executed must be true or false")
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) or not 0.0 < self.fraction <= 1.0:
            raise FaultError(f"{where}: fraction must be in (0, 1], got {self.fraction!r}")
        if self.array is not None and (isinstance(self.array, bool) or not isinstance(self.array, int) or self.array < 0):
            raise FaultError(f"{where}: array must be a whole number >= 0 (which of the board's arrays), got {self.array!r}")
        if self.state not in ("lrs", "hrs"):
            raise FaultError(f"{where}: state must be 'lrs' or 'hrs', got {self.state!r}")
        if isinstance(self.code, bool) or not isinstance(self.code, int) or self.code >= 0:
            raise FaultError(f"{where}: code must be a negative error code, got {self.code!r}")
        if self.signal not in SIGNALS:
            raise FaultError(f"{where}: signal must be one of {SIGNALS}, got {self.signal!r}")
        if self.match is not None and not isinstance(self.match, str):
            raise FaultError(f"{where}: match must be a string")
        if self.cells is not None:
            try:
                cells = tuple((int(r), int(c)) for r, c in self.cells)
            except (TypeError, ValueError):
                raise FaultError(f"{where}: cells must be a list of [row, col] pairs") from None
            object.__setattr__(self, "cells", cells)

    @property
    def max_fires(self) -> int | None:
        if self.count is not None:
            return self.count
        return 1 if self.at is not None else None

    def applies_to(self, instrument: str) -> bool:
        return self.instrument in ("*", instrument)


@dataclass
class FaultEvent:
    """One fault that fired: its rule, the instrument, the message number and its text."""

    kind: str
    instrument: str
    message: int
    text: str
    rule: int


@dataclass
class _RuleState:
    rng: np.random.Generator
    seen: int = 0
    fired: int = 0


@dataclass
class FaultPlan:
    """Fault rules for one bench, with their reproducible random state.

    Parameters
    ----------
    faults : iterable of Fault
        The rules.
    seed : int
        Seeds every random choice (which message fires at ``rate``, which bytes, which devices).
    """

    faults: tuple[Fault, ...] = ()
    seed: int = 0
    events: list[FaultEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.faults = tuple(self.faults)
        for f in self.faults:
            if not isinstance(f, Fault):
                raise FaultError(f"a fault plan holds Fault rules, got {f!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise FaultError(f"fault seed must be a non-negative integer, got {self.seed!r}")
        self._state = [_RuleState(np.random.default_rng([self.seed, k])) for k in range(len(self.faults))]
        self._bytes_rng = np.random.default_rng([self.seed, 0xB7E5])
        self._gone: dict[str, int | None] = {}  # instrument -> attempts left (None: until restored)
        self.bench: Bench | None = None

    # --- construction -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, table: Mapping[str, Any], where: str = "[simulation.faults]") -> "FaultPlan":
        """Build from the station form: ``seed = N`` and one sub-table per fault kind, e.g.
        ``timeout = { rate = 0.02, match = ":PULS" }``; every error names ``where`` and the key."""
        if not isinstance(table, Mapping):
            raise FaultError(f"{where} must be a table")
        seed = table.get("seed", 0)
        known = {f.name for f in fields(Fault)} - {"kind"}
        faults = []
        for kind, spec in table.items():
            if kind == "seed":
                continue
            if kind not in KINDS:
                raise FaultError(f"{where}: unknown fault kind {kind!r}; known: {sorted(KINDS)} (and seed)")
            if not isinstance(spec, Mapping):
                raise FaultError(f"{where}.{kind} must be a table such as {{ rate = 0.01 }} or {{ at = 100 }}")
            bad = set(spec) - known
            if bad:
                raise FaultError(f"{where}.{kind}: unknown key(s) {sorted(bad)}; known: {sorted(known)}")
            try:
                faults.append(Fault(kind, **dict(spec)))
            except FaultError as exc:
                raise FaultError(f"{where}.{kind}: {exc}") from None
            except TypeError as exc:
                raise FaultError(f"{where}.{kind}: {exc}") from None
        try:
            return cls(tuple(faults), seed=seed)
        except FaultError as exc:
            raise FaultError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (the station form when every kind appears once)."""
        return {"seed": self.seed, "faults": [{k: v for k, v in asdict(f).items() if v is not None} for f in self.faults]}

    def fired(self, kind: str | None = None) -> int:
        """How many faults (of ``kind``) fired so far."""
        return sum(1 for e in self.events if kind is None or e.kind == kind)

    # --- the hooks the transports call ----------------------------------------------------------
    def before_access(self, instrument: "EmulatedInstrument") -> None:
        """Raise :class:`ConnectionError` while ``instrument`` is gone (one failed attempt)."""
        name = instrument.name
        if name not in self._gone:
            return
        left = self._gone[name]
        if left is not None:
            left -= 1
            if left <= 0:
                del self._gone[name]
                instrument.power_cycle(lose_sessions=False)
            else:
                self._gone[name] = left
        raise ConnectionError(f"{name}: device disconnected (no such device)")

    def is_gone(self, instrument: "EmulatedInstrument") -> bool:
        return instrument.name in self._gone

    def restore(self) -> None:
        """Plug every vanished instrument back in (powered on)."""
        bench = self.bench
        for name in list(self._gone):
            del self._gone[name]
            if bench is not None and name in bench.instruments:
                bench.instruments[name].power_cycle(lose_sessions=False)

    def process(self, session: "Session", message: bytes) -> None:
        """Run ``message`` on the session's instrument through the plan's faults."""
        inst = session.instrument
        text = message[:80].decode("latin-1", "replace")
        fire: list[tuple[int, Fault]] = []
        upper = None
        for k, (rule, st) in enumerate(zip(self.faults, self._state)):
            if not rule.applies_to(inst.name):
                continue
            if rule.match is not None:
                if upper is None:
                    upper = message[:200].decode("latin-1", "replace").upper()
                if rule.match.upper() not in upper:
                    continue
            st.seen += 1
            limit = rule.max_fires
            if limit is not None and st.fired >= limit:
                continue
            if rule.at is not None:
                hit = st.seen >= rule.at
            else:
                hit = bool(st.rng.random() < rule.rate)
            if hit:
                st.fired += 1
                fire.append((k, rule))
                self.events.append(FaultEvent(rule.kind, inst.name, st.seen, text, k))
        if not fire:
            inst.process(session, message)
            return
        kinds = {rule.kind for _, rule in fire}
        for _, rule in fire:
            if rule.kind in CHIP_KINDS:
                self._chip_fault(rule)
        if "disappear" in kinds:
            rule = next(r for _, r in fire if r.kind == "disappear")
            self._gone[inst.name] = rule.duration
            inst.lose_sessions()
            return
        if "reset" in kinds:
            inst.power_cycle(lose_sessions=True)
            return
        if "error" in kinds:
            rule = next(r for _, r in fire if r.kind == "error")
            push = getattr(inst, "push_error", None)
            if push is not None:
                push(rule.code, "Hardware error; injected fault")
            return
        if any(r.kind == "timeout" and not r.executed for _, r in fire):
            return
        n_before = len(session.outq)
        inst.process(session, message)
        new = list(session.outq)[n_before:] if len(session.outq) > n_before else []
        for _, rule in fire:
            if rule.kind in REPLY_KINDS and new:
                self._mangle(session, n_before, rule)
        for _, rule in fire:
            if rule.kind == "interrupt":
                os.kill(os.getpid(), getattr(_signal, rule.signal))

    # --- the faults themselves ---------------------------------------------------------------
    def _mangle(self, session: "Session", first: int, rule: Fault) -> None:
        """Apply a reply fault to the replies queued from index ``first`` on."""
        rng = self._bytes_rng
        replies = list(session.outq)
        for i in range(first, len(replies)):
            reply = replies[i]
            if rule.kind == "timeout":
                reply.clear()
            elif rule.kind == "partial":
                del reply[int(rng.integers(0, max(len(reply) - 1, 1))) :]
            elif rule.kind == "drop":
                for _ in range(min(rule.nbytes, len(reply))):
                    del reply[int(rng.integers(0, len(reply)))]
            elif rule.kind == "garble":
                for _ in range(rule.nbytes):
                    if reply:
                        pos = int(rng.integers(0, len(reply)))
                        reply[pos] = (reply[pos] + int(rng.integers(1, 256))) % 256
        kept = [r for r in replies if r]
        session.outq.clear()
        session.outq.extend(kept)

    def _chip_fault(self, rule: Fault) -> None:
        bench = self.bench
        chip = None if bench is None else bench.chip
        if bench is not None and rule.array is not None:
            if rule.array >= len(bench.chips):
                raise FaultError(f"fault {rule.kind!r}: array {rule.array} is not on the board, which carries {len(bench.chips)}")
            chip = bench.chips[rule.array]
        if chip is None or not hasattr(chip, "inject_fault"):
            raise FaultError(f"fault {rule.kind!r} needs a chip that supports device faults (reram or pcm)")
        shape = (chip.rows, chip.cols)
        if rule.cells is not None:
            mask = np.zeros(shape, dtype=bool)
            for r, c in rule.cells:
                if not (0 <= r < chip.rows and 0 <= c < chip.cols):
                    raise FaultError(f"fault {rule.kind!r}: cell ({r}, {c}) outside the {chip.rows}x{chip.cols} array")
                mask[r, c] = True
        elif rule.fraction >= 1.0:
            mask = np.ones(shape, dtype=bool)
        else:
            mask = self._bytes_rng.random(shape) < rule.fraction
        chip.inject_fault(rule.kind if rule.kind == "dead" else f"stuck_{rule.state}", mask)


def as_plan(faults: "FaultPlan | Iterable[Fault] | Mapping[str, Any] | None") -> FaultPlan | None:
    """Normalise what a caller hands in: a plan, a list of rules, the station table, or None."""
    if faults is None or isinstance(faults, FaultPlan):
        return faults
    if isinstance(faults, Mapping):
        return FaultPlan.from_dict(faults)
    return FaultPlan(tuple(faults))


__all__ = ["Fault", "FaultError", "FaultEvent", "FaultPlan", "KINDS", "as_plan"]
