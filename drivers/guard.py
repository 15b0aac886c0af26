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
from dataclasses import dataclass
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
    try:
        value = float(t)
    except ValueError:
        raise LimitError(f"{what} {token.strip()!r} is not a number the guard can read (lift the guard with unguarded(reason))") from None
    if not math.isfinite(value):
        raise LimitError(f"{what} {token.strip()} is not a finite level")
    return value


#: the SCPI mnemonics the guard reads, in long form (the capitals are the short form)
_MNEMONICS = ("SOURce", "SENSe", "VOLTage", "CURRent", "LEVel", "IMMediate", "AMPLitude", "TRIGgered", "PULSe", "PROTection",
              "POSitive", "NEGative", "DC", "LIST", "APPend", "STARt", "STOP", "CENTer", "SPAN", "FUNCtion", "MODE", "OUTPut",
              "STATe", "SYSTem", "PRESet", "INITiate", "READ", "MEASure")  # fmt: skip
_CANONICAL = {form: "".join(ch for ch in name if ch.isupper()) for name in _MNEMONICS for form in (name.upper(), "".join(ch for ch in name if ch.isupper()))}
#: nodes a header may leave out ([LEVel], [IMMediate], ...); SOURce and SENSe are optional roots
_OPTIONAL = frozenset({"LEV", "IMM", "AMPL", "DC"})


@dataclass(frozen=True)
class ScpiUnit:
    """One program message unit of a SCPI write, its header resolved as the instrument resolves
    it: a header without a leading colon after a ``;`` continues the path of the one before it
    (IEEE 488.2), a new message (a newline) starts at the root.

    Attributes
    ----------
    nodes : tuple of str
        The absolute header, each node in its short form (``SOURce1`` -> ``SOUR``; a mnemonic
        the guard does not read stays as written, upper case); empty for a common command.
    suffixes : tuple of str
        Each node's numeric suffix (a channel: ``SOUR2`` -> ``"2"``), ``""`` without one.
    common : str
        The common command (``"*RST"``), or ``""``.
    query : bool
        A query (the header ends with ``?``).
    args : str
        The parameters as written.
    text : str
        The unit as written.
    """

    nodes: tuple[str, ...]
    suffixes: tuple[str, ...]
    common: str
    query: bool
    args: str
    text: str

    @property
    def root(self) -> str:
        """``"SOUR"`` or ``"SENS"`` when the header names that optional root, else ``""``."""
        return self.nodes[0] if self.nodes and self.nodes[0] in ("SOUR", "SENS") else ""

    @property
    def key(self) -> tuple[str, ...]:
        """The header without its optional nodes: ``:SOUR1:VOLT:LEV:IMM`` and ``:VOLT`` are both
        ``("VOLT",)``."""
        nodes = self.nodes[1:] if self.root else self.nodes
        return tuple(n for n in nodes if n not in _OPTIONAL)

    def suffix(self, node: str) -> str:
        """The numeric suffix of the header's first ``node`` (``""`` when absent)."""
        return self.suffixes[self.nodes.index(node)] if node in self.nodes else ""


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    out, cur, quote = [], [], ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == sep:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


def scpi_units(command: str) -> list[ScpiUnit]:
    """The program message units of a SCPI write (``;``-compounds and newline-separated
    messages; ``;`` inside quotes is text), each with its header resolved against the path."""
    units = []
    for line in command.splitlines():
        path: tuple[tuple[str, str], ...] = ()
        for raw in _split_outside_quotes(line, ";"):
            raw = raw.strip()
            if not raw:
                continue
            header, _, args = raw.replace("\t", " ").partition(" ")
            query = header.endswith("?")
            header = header.rstrip("?")
            if header.startswith("*"):  # a common command leaves the path as it is
                units.append(ScpiUnit((), (), header.upper(), query, args.strip(), raw))
                continue
            nodes = []
            for word in (w for w in header.split(":") if w):
                name = word.rstrip("0123456789")
                nodes.append((_CANONICAL.get(name.upper(), name.upper()), word[len(name) :]))
            full = (() if header.startswith(":") else path) + tuple(nodes)
            units.append(ScpiUnit(tuple(n for n, _ in full), tuple(x for _, x in full), "", query, args.strip(), raw))
            path = full[:-1]
    return units


#: header keys that set a level, a compliance or a sweep end: key -> (what, voltage or current)
_SCPI_LEVELS = {
    ("VOLT",): ("source voltage", "voltage"),
    ("VOLT", "TRIG"): ("triggered source voltage", "voltage"),
    ("PULS", "VOLT"): ("pulse voltage", "voltage"),
    ("VOLT", "STAR"): ("sweep start voltage", "voltage"),
    ("VOLT", "STOP"): ("sweep stop voltage", "voltage"),
    ("CURR",): ("source current", "current"),
    ("CURR", "TRIG"): ("triggered source current", "current"),
    ("CURR", "STAR"): ("sweep start current", "current"),
    ("CURR", "STOP"): ("sweep stop current", "current"),
    ("CURR", "PROT"): ("current compliance", "current"),
    ("CURR", "PROT", "POS"): ("positive current compliance", "current"),
    ("CURR", "PROT", "NEG"): ("negative current compliance", "current"),
}
#: a voltage compliance (``SENSe`` named: without it, the 2400 reads ``VOLT:PROT`` as its
#: overvoltage protection, an upper bound that the source levels' own checks stay under)
_SCPI_SENSE_LEVELS = {
    ("VOLT", "PROT"): ("voltage compliance", "voltage"),
    ("VOLT", "PROT", "POS"): ("positive voltage compliance", "voltage"),
    ("VOLT", "PROT", "NEG"): ("negative voltage compliance", "voltage"),
}
#: header keys that take a list of levels
_SCPI_LISTS = {("LIST", "VOLT"): "voltage", ("LIST", "VOLT", "APP"): "voltage", ("VOLT", "LIST"): "voltage",
               ("LIST", "CURR"): "current", ("LIST", "CURR", "APP"): "current", ("CURR", "LIST"): "current"}  # fmt: skip
#: a sweep set by its centre or span: its ends depend on the other, which the guard does not see
_SCPI_UNBOUNDED = {("VOLT", "CENT"), ("VOLT", "SPAN"), ("CURR", "CENT"), ("CURR", "SPAN")}


def _is_reset(unit: ScpiUnit) -> bool:
    """``*RST``, ``:SYST:PRES`` (power-on limits) or ``*RCL`` (a saved setup's limits)."""
    return unit.common in ("*RST", "*RCL") or unit.key == ("SYST", "PRES")


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
    """Refuse a SCPI command (one of a ``;``-compound, or of several newline-separated messages,
    headers resolved as the instrument resolves them: :func:`scpi_units`) that sets a source
    level, a list of levels or a compliance beyond ``limits``, sets a sweep by its centre or
    span, restores the instrument's power-on or saved limits (``*RST``, ``:SYST:PRES``,
    ``*RCL``) or selects current sourcing (raises :class:`~labrram.safety.LimitError`)."""
    for unit in scpi_units(command):
        part = unit.text
        if _is_reset(unit):
            raise LimitError(f"raw command {part!r} restores the instrument's power-on (or a saved setup's) source limits, "
                             f"which the station's limits do not cover; {_RESET_ADVICE}")  # fmt: skip
        if unit.query or unit.common:
            continue
        key, args = unit.key, unit.args
        if key in (("FUNC",), ("FUNC", "MODE")) and unit.root != "SENS" and args.strip("'\"").upper().startswith("CURR"):
            raise LimitError(f"raw command {part!r} selects current sourcing, whose terminal voltage only the "
                             "voltage compliance bounds; labrram sources voltage (lift the guard with unguarded(reason))")  # fmt: skip
        if key in _SCPI_UNBOUNDED:
            raise LimitError(f"raw command {part!r} sets a sweep by its centre or span, whose ends the guard cannot bound; "
                             "set its STARt and STOP levels (lift the guard with unguarded(reason))")  # fmt: skip
        rule = _SCPI_LEVELS.get(key) or (_SCPI_SENSE_LEVELS.get(key) if unit.root == "SENS" else None)
        if rule is not None and args:
            what, kind = rule
            _check(limits, kind, _level(args, what), f"raw command {part!r}: {what}")
        if key in _SCPI_LISTS and args:
            for token in args.split(","):
                _check(limits, _SCPI_LISTS[key], _level(token, "list level"), f"raw command {part!r}: list level")


#: headers that can turn an SMU output on without naming it: a 2400's ``:MEASure?`` (and its
#: ``:INITiate``/``:READ?`` with auto output-off disabled), a B2900's ``:INITiate``, ``:READ?`` and
#: ``:MEASure?`` with its auto output-on (the default)
_SCPI_AUTO_ON = ("INIT", "READ", "MEAS")


def scpi_events(command: str) -> list[tuple[str, str]]:
    """What a SCPI write does to an SMU's outputs, in order: ``("reset", "")`` (power-on or
    saved limits), ``("compliance", channel)`` (a current compliance set; the positive or
    negative one alone does not count), ``("on", channel)`` (an output turned on, by
    ``:OUTPut ON`` or by a measurement that turns it on by itself); ``channel`` is the numeric
    suffix or channel list entry (``""``: the instrument's first)."""
    events = []
    for unit in scpi_units(command):
        key = unit.key
        if _is_reset(unit):
            events.append(("reset", ""))
        elif unit.common:
            continue
        elif key == ("CURR", "PROT") and unit.root in ("SENS", "") and not unit.query and unit.args:
            events.append(("compliance", unit.suffix("SENS")))
        elif key in (("OUTP",), ("OUTP", "STAT")) and not unit.query and unit.args.upper() in ("ON", "1"):
            events.append(("on", unit.suffix("OUTP")))
        elif key and key[0] in _SCPI_AUTO_ON:
            channels = re.search(r"\(@([^)]*)\)", unit.args)
            listed = re.findall(r"\d+", channels.group(1)) if channels else [""]
            events += [("on", ch) for ch in listed]
    return events


_TSP_RULES = [
    (re.compile(r"smu[ab]\s*\.\s*source\s*\.\s*levelv\s*=\s*" + _NUM + r"(?![\w.])", re.I), "source voltage", "voltage"),
    (re.compile(r"smu[ab]\s*\.\s*source\s*\.\s*leveli\s*=\s*" + _NUM + r"(?![\w.])", re.I), "source current", "current"),
    (re.compile(r"smu[ab]\s*\.\s*source\s*\.\s*limiti\s*=\s*" + _NUM + r"(?![\w.])", re.I), "current limit", "current"),
    (re.compile(r"smu[ab]\s*\.\s*source\s*\.\s*limitv\s*=\s*" + _NUM + r"(?![\w.])", re.I), "voltage limit", "voltage"),
    (re.compile(r"smu[ab]\s*\.\s*trigger\s*\.\s*source\s*\.\s*limiti\s*=\s*" + _NUM + r"(?![\w.])", re.I), "triggered current limit", "current"),
    (re.compile(r"smu[ab]\s*\.\s*trigger\s*\.\s*source\s*\.\s*limitv\s*=\s*" + _NUM + r"(?![\w.])", re.I), "triggered voltage limit", "voltage"),
]


#: ``reset()``, ``smua.reset()``, ``localnode.reset()`` and ``*RST``: the power-on source limits again
TSP_RESET = re.compile(r"(?:(?<![\w.])(?:(?:smu[ab]|localnode)\s*\.\s*)?reset\s*\(|\*RST\b)", re.I)
_TSP_NUMBERS = r"[-+.\deE\s,]*"
#: the trigger model's source levels: a list (``listv({...})``) or a sweep's ends (``linearv(start, stop, n)``, ``logv(...)``)
_TSP_TRIGGER_LIST = re.compile(r"smu[ab]\s*\.\s*trigger\s*\.\s*source\s*\.\s*listv\s*\(\s*\{(" + _TSP_NUMBERS + r")\}", re.I)
_TSP_TRIGGER_SWEEP = re.compile(r"smu[ab]\s*\.\s*trigger\s*\.\s*source\s*\.\s*(?:linear|log)v\s*\(\s*" + _NUM + r"\s*,\s*" + _NUM + r"\s*,", re.I)
#: refused whatever their values: current sourcing (the source function, or the trigger model's
#: current levels) and a limit switched off
_TSP_REFUSED = [
    (re.compile(r"smu[ab]\s*\.\s*source\s*\.\s*func\s*=\s*(?:smu[ab]\s*\.\s*OUTPUT_DCAMPS|0)(?![\w.])", re.I),
     "selects current sourcing, whose terminal voltage only the voltage limit bounds; labrram sources voltage"),
    (re.compile(r"smu[ab]\s*\.\s*trigger\s*\.\s*source\s*\.\s*(?:listi|lineari|logi)\s*\(", re.I),
     "sources current, whose terminal voltage only the voltage limit bounds; labrram sources voltage"),
    (re.compile(r"=(?!=)\s*smu[ab]\s*\.\s*LIMIT_OFF(?![\w.])", re.I), "switches a source limit off"),
]  # fmt: skip


def tsp_guard(limits: SafeLimits, command: str) -> None:
    """Refuse TSP that assigns a literal source level or limit beyond ``limits`` (the trigger
    model's included: a literal source list, a sweep's literal ends, its limits), switches a
    limit off (``LIMIT_OFF``), resets an SMU or the instrument (``reset()``, ``smua.reset()``,
    ``localnode.reset()``, ``*RST``: its 100 mA power-on current limit) or sources current
    (expressions cannot be read here; labrram's own scripts clamp every level they source)."""
    m = TSP_RESET.search(command)
    if m:
        raise LimitError(f"raw TSP {m.group(0).rstrip('(').strip()} restores the instrument's power-on source limits, "
                         f"which the station's limits do not cover; {_RESET_ADVICE}")  # fmt: skip
    for rx, why in _TSP_REFUSED:
        m = rx.search(command)
        if m:
            raise LimitError(f"raw TSP {m.group(0)!r} {why} (lift the guard with unguarded(reason))")
    for m in _TSP_TRIGGER_LIST.finditer(command):
        for token in (t for t in m.group(1).split(",") if t.strip()):
            _check(limits, "voltage", _level(token, "trigger list voltage"), "raw TSP: trigger list voltage")
    for m in _TSP_TRIGGER_SWEEP.finditer(command):
        for token in m.group(1, 2):
            _check(limits, "voltage", _level(token, "trigger sweep voltage"), "raw TSP: trigger sweep voltage")
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
