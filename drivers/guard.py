"""The source-level commands every driver refuses beyond the station's limits, even raw.

A driver's own methods check their levels before any byte is encoded. A user (or another
library) sending a raw command with ``write``/``query`` bypasses those methods; the guard parses
the few commands that set a source level, a compliance, a pulse or a read level, and refuses —
before the bytes leave — any value beyond the :class:`~labrram.safety.SafeLimits`, including
``MIN``/``MAX`` (the instrument's full range). What it cannot read (an expression in a TSP
script, a binary block) passes: the drivers' own checks and, for TSP, the clamps in labrram's
scripts cover those. ``Instrument.unguarded()`` lifts the guard for one block, with a logged
warning — for experts who know what they send.
"""

from __future__ import annotations

import math
import re
from typing import Callable

from labrram.safety import LimitError, SafeLimits

Check = Callable[[SafeLimits, str], None]

_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|MIN(?:imum)?|MAX(?:imum)?|DEF(?:ault)?|INF|NAN)"


def _level(token: str, what: str) -> float:
    t = token.strip().upper()
    if t.startswith("DEF"):
        return 0.0
    if t.startswith(("MIN", "MAX")) or t in ("INF", "NAN"):
        raise LimitError(f"{what} {token.strip()} is the instrument's full range, not a level within the bench limits")
    value = float(t)
    if not math.isfinite(value):
        raise LimitError(f"{what} {token.strip()} is not a finite level")
    return value


def _words(*names: str) -> str:
    """SCPI long/short forms: ``SOURce`` matches SOUR and SOURCE (case-insensitive)."""
    out = []
    for name in names:
        short = "".join(ch for ch in name if ch.isupper() or ch.isdigit())
        rest = name[len(short) :].upper()
        out.append(f"{short}(?:{rest})?" if rest else short)
    return out


def _scpi(*path: str) -> str:
    """A SCPI header regex: ``[:]SOURce[1|2]:VOLTage[:LEVel][:IMMediate][:AMPLitude]``; parts in
    brackets in the name are optional nodes."""
    parts = []
    for node in path:
        optional = node.startswith("[")
        name = node.strip("[]")
        suffix = r"[12]?" if name in ("SOURce", "SENSe") else ""
        (word,) = _words(name)
        parts.append(f"(?::{word}{suffix})?" if optional else f":?{word}{suffix}" if not parts else f":{word}{suffix}")
    return "".join(parts)


#: (header regex, what, check) — the SCPI source-level commands of the 2400 and the B2900
_SCPI_RULES: list[tuple[re.Pattern[str], str, str]] = [
    (re.compile(_scpi("SOURce", "VOLTage", "[LEVel]", "[IMMediate]", "[AMPLitude]") + r"\s+" + _NUM + r"\s*$", re.I), "source voltage", "voltage"),
    (re.compile(_scpi("SOURce", "VOLTage", "[LEVel]", "TRIGgered", "[AMPLitude]") + r"\s+" + _NUM + r"\s*$", re.I), "triggered source voltage", "voltage"),
    (re.compile(_scpi("SOURce", "PULSe", "VOLTage") + r"\s+" + _NUM + r"\s*$", re.I), "pulse voltage", "voltage"),
    (re.compile(_scpi("SOURce", "CURRent", "[LEVel]", "[IMMediate]", "[AMPLitude]") + r"\s+" + _NUM + r"\s*$", re.I), "source current", "current"),
    (re.compile(_scpi("SENSe", "CURRent", "[DC]", "PROTection", "[LEVel]") + r"\s+" + _NUM + r"\s*$", re.I), "current compliance", "current"),
    (re.compile(_scpi("SENSe", "VOLTage", "[DC]", "PROTection", "[LEVel]") + r"\s+" + _NUM + r"\s*$", re.I), "voltage compliance", "voltage"),
    (re.compile(_scpi("SOURce", "VOLTage", "STARt") + r"\s+" + _NUM + r"\s*$", re.I), "sweep start voltage", "voltage"),
    (re.compile(_scpi("SOURce", "VOLTage", "STOP") + r"\s+" + _NUM + r"\s*$", re.I), "sweep stop voltage", "voltage"),
]
#: commands that restore the instrument's power-on source limits (e.g. a 2600B's 100 mA current
#: limit, a 2400's 21 V voltage compliance), which no station limit covers
_SCPI_RESET = re.compile(r"^(?:\*RST|:?SYST(?:em)?:PRES(?:et)?)$", re.I)
#: current sourcing: the terminal voltage is then bounded only by the voltage compliance
_SCPI_CURRENT_SOURCE = re.compile(_scpi("SOURce", "FUNCtion", "[MODE]") + r"\s+CURR(?:ent)?\s*$", re.I)
_SCPI_LIST = re.compile(_scpi("SOURce", "LIST", "VOLTage") + r"\s+(.+)$", re.I)
_SCPI_LIST_B2900 = re.compile(_scpi("SOURce", "VOLTage", "LIST", "[STARt]") + r"\s+(.+)$", re.I)


def _check(limits: SafeLimits, kind: str, value: float, what: str) -> None:
    if kind == "voltage":
        limits.check_voltage(value, what)
    elif kind == "current":
        limits.check_current(abs(value), what)
    else:
        limits.check_gate(value, what)


_RESET_ADVICE = "lift the guard with unguarded(reason) to do it, then set the compliance within the limits"


def _parts(command: str) -> list[str]:
    """The program message units of a write: ``;``-compounds and newline-separated messages."""
    return [p.strip() for line in command.splitlines() for p in line.split(";") if p.strip()]


def scpi_guard(limits: SafeLimits, command: str) -> None:
    """Refuse a SCPI command (one of a ``;``-compound, or of several newline-separated messages)
    that sets a source level or compliance beyond ``limits``, restores the instrument's
    power-on limits (``*RST``, ``:SYST:PRES``) or selects current sourcing (raises
    :class:`~labrram.safety.LimitError`)."""
    for part in _parts(command):
        if _SCPI_RESET.match(part):
            raise LimitError(f"raw command {part!r} restores the instrument's power-on source limits, "
                             f"which the station's limits do not cover; {_RESET_ADVICE}")  # fmt: skip
        if _SCPI_CURRENT_SOURCE.match(part):
            raise LimitError(f"raw command {part!r} selects current sourcing, whose terminal voltage only the "
                             "voltage compliance bounds; labrram sources voltage (lift the guard with unguarded(reason))")  # fmt: skip
        if part.startswith("*"):
            continue
        for rx, what, kind in _SCPI_RULES:
            m = rx.match(part)
            if m:
                _check(limits, kind, _level(m.group(1), what), f"raw command {part!r}: {what}")
        for rx in (_SCPI_LIST, _SCPI_LIST_B2900):
            m = rx.match(part)
            if m:
                for token in m.group(1).split(","):
                    _check(limits, "voltage", _level(token, "list voltage"), f"raw command {part!r}: list voltage")


_TSP_RULES = [
    (re.compile(r"smu[ab]\s*\.\s*source\s*\.\s*levelv\s*=\s*" + _NUM + r"(?![\w.])", re.I), "source voltage", "voltage"),
    (re.compile(r"smu[ab]\s*\.\s*source\s*\.\s*leveli\s*=\s*" + _NUM + r"(?![\w.])", re.I), "source current", "current"),
    (re.compile(r"smu[ab]\s*\.\s*source\s*\.\s*limiti\s*=\s*" + _NUM + r"(?![\w.])", re.I), "current limit", "current"),
    (re.compile(r"smu[ab]\s*\.\s*source\s*\.\s*limitv\s*=\s*" + _NUM + r"(?![\w.])", re.I), "voltage limit", "voltage"),
]


_TSP_RESET = re.compile(r"(?<![\w.])(?:smu[ab]\s*\.\s*)?reset\s*\(", re.I)
_TSP_CURRENT_SOURCE = re.compile(r"smu[ab]\s*\.\s*source\s*\.\s*func\s*=\s*(?:smu[ab]\s*\.\s*OUTPUT_DCAMPS|0)(?![\w.])", re.I)


def tsp_guard(limits: SafeLimits, command: str) -> None:
    """Refuse TSP that assigns a literal source level or limit beyond ``limits``, resets an SMU
    or the instrument (restoring its 100 mA power-on current limit) or selects current sourcing
    (expressions cannot be read here; labrram's own scripts clamp every level they source)."""
    m = _TSP_RESET.search(command)
    if m:
        raise LimitError(f"raw TSP {m.group(0)}) restores the instrument's power-on source limits, "
                         f"which the station's limits do not cover; {_RESET_ADVICE}")  # fmt: skip
    m = _TSP_CURRENT_SOURCE.search(command)
    if m:
        raise LimitError(f"raw TSP {m.group(0)!r} selects current sourcing, whose terminal voltage only the "
                         "voltage limit bounds; labrram sources voltage (lift the guard with unguarded(reason))")  # fmt: skip
    for rx, what, kind in _TSP_RULES:
        for m in rx.finditer(command):
            _check(limits, kind, _level(m.group(1), what), f"raw TSP: {what}")


_BOARD_PULSE = re.compile(r":?PULS(?:E)?:(SET|RES(?:ET)?)\s+([^;]+)$", re.I)
_BOARD_READ = re.compile(r":?READ:VOLT(?:AGE)?\s+" + _NUM + r"\s*$", re.I)
_BOARD_GATE = re.compile(r":?(?:READ|ROUT(?:E)?):GATE\s+" + _NUM + r"\s*$", re.I)


def board_guard(limits: SafeLimits, command: str) -> None:
    """Refuse a board text command — a single pulse ``:PULS:SET r,c,amplitude,gate,width``, a read
    voltage, a read or route gate — beyond ``limits`` (binary pulse batches are checked by the
    driver's :meth:`~labrram.drivers.board.CrossbarBoard.check_pulse`)."""
    head = command.split("#", 1)[0]  # binary blocks are not text
    for part in _parts(head):
        m = _BOARD_PULSE.match(part)
        if m:
            fields = [f.strip() for f in m.group(2).split(",")]
            if len(fields) >= 5:
                amplitude, gate, width = (_level(x, n) for x, n in zip(fields[2:5], ("pulse amplitude", "pulse gate", "pulse width")))
                limits.check_pulse(abs(amplitude), gate, width, current_limit=limits.max_current)
            continue
        m = _BOARD_READ.match(part)
        if m:
            limits.check_voltage(_level(m.group(1), "read voltage"), f"raw command {part!r}: read voltage")
            continue
        m = _BOARD_GATE.match(part)
        if m:
            limits.check_gate(_level(m.group(1), "gate"), f"raw command {part!r}: gate")
