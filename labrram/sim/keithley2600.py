"""Keithley 2636B System SourceMeter emulator: TSP, i.e. real Lua, as the Series 2600B Reference
Manual (2600BS-901-01) defines it.

Every program message (one line) is compiled and run as a Lua chunk by a sandboxed Lua 5.4
interpreter (:mod:`lupa`). The instrument's objects are Python-backed Lua proxies: reading or
assigning ``smua.source.levelv`` calls into Python, which validates the value against the
hardware ranges and drives the channel's :class:`~labrram.sim.instrument.SourceChannel` on the
bench's virtual clock. Scripts sent between ``loadscript``/``loadandrunscript`` and ``endscript``
are compiled as one chunk, so loops written for the instrument really run.

The emulator is split along its seams: the Lua side (sandbox, budget, proxies, scripts) is
``keithley2600_prelude.lua``; :mod:`~labrram.sim.keithley2600_lua` is the bridge that runs
chunks and answers the proxies; :mod:`~labrram.sim.keithley2600_objects` holds the constants,
error codes and Python-backed object nodes; :mod:`~labrram.sim.keithley2600_state` the reading
buffers and the SMU / timer / blender / format state; :mod:`~labrram.sim.keithley2600_smu` the
``smuX`` objects, ranges and measurements; :mod:`~labrram.sim.keithley2600_print` ``print`` /
``printbuffer`` formatting; :mod:`~labrram.sim.keithley2600_trigger` the trigger model. This
module keeps the instrument: framing, dispatch, common commands, the error queue.

Emulated
--------
* ``smua``/``smub``: ``source`` (func, levelv/leveli, limitv/limiti/limitp, rangev/rangei,
  autorangev/autorangei, lowrangev/lowrangei, output, offmode, delay, compliance, ...),
  ``measure`` (i, v, r, p, iv; nplc, autozero, count, interval, delay, rangev/rangei,
  autorangev/autorangei, filter), ``nvbuffer1``/``nvbuffer2`` and ``makebuffer(n)`` (readings,
  timestamps, sourcevalues, n, capacity, appendmode, collecttimestamps, collectsourcevalues,
  basetimestamp, clear()), ``reset()``, ``abort()``, ``sense``, and the SMU trigger model
  (arm/source/measure/endpulse stages with stimuli, listv/listi/linearv/lineari/logv/logi,
  trigger limits, endpulse/endsweep actions, counts, ``initiate()``).
* ``trigger.timer[1..4]`` (count, delay, delaylist, passthrough, stimulus, clear, reset),
  ``trigger.blender[1..6]`` (orenable, stimulus[1..4]); the trigger model runs as a discrete
  event simulation on the virtual clock when ``smuX.trigger.initiate()`` is called.
* ``print`` (tab separated, numbers with ``format.asciiprecision`` significant digits),
  ``printnumber``, ``printbuffer`` (ASCII ``", "`` separated, or ``#0`` + IEEE-754 REAL32 /
  REAL64 bytes + ``\\n`` in ``format.byteorder``), ``format.*``, ``delay``, ``timer``,
  ``reset``, ``waitcomplete``, ``opc``, ``exit``, ``errorqueue``, ``localnode`` (model,
  serialno, revision, linefreq, prompts, showerrors), ``status.measurement.instrument.smuX``
  (condition bit 0 = voltage limit, bit 1 = current limit), ``beeper``, ``display`` (accepted,
  no effect), ``bit``, ``script`` (new, anonymous, user.scripts, delete), named scripts
  (``name()`` / ``name.run()``), and the common commands ``*IDN? *RST *CLS *OPC? *OPC *WAI
  *TST? *TRG *STB? *ESR? *ESE *SRE``.
* Every ``print`` is one response message; unread output stays queued when new commands arrive
  (TSP has no IEEE 488.2 "query interrupted"). ``localnode.prompts = 1`` adds ``TSP>`` /
  ``TSP?`` / ``>>>>`` prompts, ``localnode.showerrors = 1`` prints errors as they occur.
* Lua 5.0 names the instrument's Lua offers: ``table.getn``, ``math.mod``, ``string.gfind``,
  ``unpack``, ``loadstring``.

Errors
------
Errors go to the error queue (32 entries, overflow -350), read with ``errorqueue.next()``:
syntax errors are -285 (``TSP Syntax error at line n: ...``), Lua runtime errors -286
(``TSP Runtime error at line n: ...``), out-of-range parameters 1102 ``Parameter too big`` /
1103 ``Parameter too small`` (the value is not applied and the chunk stops), operations beyond
the 2636B's safe operating area (more than 100 mA above 20 V) 5007, configuration conflicts
-221. Nothing a client sends can crash the emulator: a runaway chunk stops after
:attr:`Keithley2636B.instruction_budget` Lua instructions (calls into the instrument count
:attr:`Keithley2636B.call_cost` instructions each) with a -286 entry that pcall cannot catch.

Sandbox: no ``os``, ``io``, ``debug``, ``package``, ``require``, ``dofile``, ``loadfile``,
``string.dump``; ``load`` accepts text chunks only; Lua memory is capped
(:attr:`Keithley2636B.max_lua_memory`).

Timing on the virtual clock
---------------------------
A measurement costs ``measure.delay`` (when > 0; DELAY_AUTO adds nothing) + ``nplc / linefreq``
(doubled with ``AUTOZERO_AUTO``, which measures reference and zero with every reading; with the
repeat filter on, multiplied by ``filter.count``) + 0.2 ms of overhead. ``AUTOZERO_ONCE`` costs
one reference-and-zero (2 × nplc / linefreq) when set, then reads back as ``AUTOZERO_OFF``.
In the trigger model the 0.2 ms conversion overhead of a measure action runs in parallel with
the end-pulse action (a pulse measured at its end is not stretched) and delays the next point.
``delay(s)`` advances the clock by ``s``; the trigger model's source action costs
``source.delay`` when > 0; timers fire at their programmed delays. Lua execution itself costs
no bench time.

Not emulated
------------
TSP-Link and ``node[]``, ``digio``, ``lan``, ``gpib``/``serial`` settings, ``fs``/``io``, saved
setups, ``savebuffer``, contact check, ``measure.overlappedY`` and ASYNC measurements (treated as
synchronous), the reading buffers' ``statuses`` and range/function fields, ``trigger.generator``,
infinite trigger counts (0), and the instrument running its trigger model in the background:
``initiate()`` completes the whole sweep before returning, so ``waitcomplete()`` never waits.
A trigger model that waits for an event nothing generates is aborted with a -221 entry (the
instrument would wait for ``abort``).
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from .instrument import EmulatedInstrument, Session, SourceChannel
from .keithley2600_objects import (
    _bounded,
    CURRENT_LIMIT_BIT,
    ERROR_QUEUE_SIZE,
    FIRMWARE,
    N_BLENDERS,
    N_TIMERS,
    _Node,
    NVBUFFER_CAPACITY,
    QUEUE_OVERFLOW,
    RUNTIME_ERROR,
    SEVERITY_RECOVERABLE,
    SYNTAX_ERROR,
    TspError,
    VOLTAGE_LIMIT_BIT,
)
from .keithley2600_state import (
    _Blender,
    _Format,
    _ReadingBuffer,
    _SmuState,
    _Timer,
)
from .keithley2600_lua import LuaBridge, _split_lua_message
from .keithley2600_print import PrintFormat
from .keithley2600_smu import SmuObjects
from .keithley2600_trigger import TriggerModel2600


class Keithley2636B(LuaBridge, SmuObjects, PrintFormat, TriggerModel2600, EmulatedInstrument):
    """Byte-level Keithley 2636B emulator running TSP (Lua) scripts.

    ``channels[0]`` is SMU A (wired to the board's SMU connector by the bench), ``channels[1]``
    SMU B (terminals open).

    Parameters
    ----------
    bench : Bench
        The simulated bench (clock, chip, board).
    name : str
        Instrument name on the bench.
    link : LinkTiming
        Cost model of the transport link.
    serial : str
        Serial number reported by ``*IDN?`` and ``localnode.serialno``.
    """

    vendor = "Keithley Instruments Inc."
    model = "2636B"

    #: Lua instructions one chunk (a line or a script run) may execute
    instruction_budget: int = 50_000_000
    #: instructions charged for each call into the instrument (attribute access, function)
    call_cost: int = 100
    #: Lua heap limit, bytes
    max_lua_memory: int = 256 * 2**20
    hook_step = 1000

    def __init__(self, bench, name, link, serial="4407123") -> None:
        super().__init__(bench, name, link, serial)
        self.description = f"Keithley Instruments SMU {self.model} - {serial}"
        self.autolinefreq = 0
        self.prompts4882 = 1
        self.channels = [SourceChannel(bench.clock), SourceChannel(bench.clock)]
        self.smu = [_SmuState(), _SmuState()]
        self.nvbuffers = [
            [_ReadingBuffer(f"smu{x}.nvbuffer{j}", NVBUFFER_CAPACITY) for j in (1, 2)] for x in "ab"
        ]
        self.timers = [_Timer() for _ in range(N_TIMERS)]
        self.blenders = [_Blender() for _ in range(N_BLENDERS)]
        self.fmt = _Format()
        self.errors: deque[tuple[int, str, int, int]] = deque()
        self.linefreq = 60.0
        self.prompts = 0
        self.showerrors = 0
        self.beeper_enable = 1
        self.timer_origin = bench.clock.now
        self.status_ese = 0
        self.status_sre = 0
        self._sequence = 0  # numbers measurement commands / sweeps (buffer append mode)
        self._session: Session | None = None
        self._script: tuple[str, str, list[str]] | None = None  # (command, name, lines) while loading
        self._stash: dict[Session, list[bytearray]] = {}
        self._raised: dict[str, int] = {}
        self._calls = 0
        self._call_limit = 0
        self._aborting = False
        self.last_internal_error: BaseException | None = None
        self._nodes: dict[int, _Node] = {}
        self._build_lua()
        self._build_objects()
        self.reset()

    # ===== power-on / reset ==============================================================
    def reset(self) -> None:
        """``reset()`` / ``*RST``: both SMUs, format, timers and blenders to their defaults.

        User scripts, global variables, the error queue, ``localnode`` settings are kept.
        """
        for k in range(2):
            self._reset_smu(k)
        self.fmt = _Format()
        self.timers = [_Timer() for _ in range(N_TIMERS)]
        self.blenders = [_Blender() for _ in range(N_BLENDERS)]
        self.beeper_enable = 1

    def _reset_smu(self, k: int) -> None:
        ch = self.channels[k]
        was_on = ch.output
        ch.set_output(False)
        ch.reset()
        self.smu[k] = s = _SmuState()
        ch.limit_i = s.limiti
        ch.limit_v = s.limitv
        for b in self.nvbuffers[k]:
            b.appendmode = b.collecttimestamps = b.collectsourcevalues = 0
            b.clear()
        if was_on:
            self.bench.after_output_change()

    def shutdown(self) -> None:
        for ch in self.channels:
            ch.set_output(False)

    def idn(self) -> str:
        return f"{self.vendor}, Model {self.model}, {self.serial}, {FIRMWARE}"

    # ===== framing and dispatch =======================================================
    def frame(self, buf: bytearray, end: bool, session: Session | None = None) -> list[bytes]:
        """TSP messages are lines: split at ``\\n`` (Lua code may hold quotes and ``#``)."""
        messages = []
        while True:
            k = buf.find(b"\n")
            if k < 0:
                break
            messages.append(bytes(buf[:k]).rstrip(b"\r"))
            del buf[: k + 1]
        if end and buf:
            messages.append(bytes(buf).rstrip(b"\r"))
            buf.clear()
        return messages

    def query_interrupted(self, session: Session) -> None:
        # TSP keeps unread output across commands (no IEEE 488.2 "query interrupted"): the
        # session is about to drop its output queue, so keep it and restore it in process().
        self._stash[session] = [bytearray(m) for m in session.outq]

    def device_clear(self, session: Session) -> None:
        self._stash.pop(session, None)
        self._script = None

    def process(self, session: Session, message: bytes) -> None:
        stash = self._stash.pop(session, None)
        if stash:
            session.outq.extendleft(reversed(stash))
        text = message.decode("latin-1")
        self._session = session
        try:
            self._dispatch(text)
        except Exception as exc:  # pragma: no cover - an emulator bug must not kill the bench
            self.last_internal_error = exc
            self._push_error(RUNTIME_ERROR, f"internal emulator error: {type(exc).__name__}: {exc}")
        finally:
            self._session = None
        if self.showerrors:
            while self.errors:
                code, msg, _, _ = self.errors.popleft()
                session.reply(f"{code} {msg}\n".encode("latin-1", "replace"))
        if self.prompts:
            if self._script is not None:
                session.reply(b">>>>\n")
            else:
                session.reply(b"TSP?\n" if self.errors else b"TSP>\n")

    def _dispatch(self, text: str) -> None:
        stripped = text.strip()
        if self._script is not None:
            if stripped == "endscript":
                self._end_script()
            else:
                self._script[2].append(text)
            return
        if not stripped:
            return
        if stripped.startswith("*"):
            self._common(stripped)
            return
        words = stripped.split()
        head = words[0]
        if head in ("loadscript", "loadandrunscript"):
            if len(words) > 2:
                self._push_error(SYNTAX_ERROR, f"TSP Syntax error: {head} takes at most a script name")
                return
            name = words[1] if len(words) == 2 else ""
            if name and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                self._push_error(SYNTAX_ERROR, f"TSP Syntax error: invalid script name {name!r}")
                return
            self._script = (head, name, [])
            return
        if stripped == "endscript":
            self._push_error(SYNTAX_ERROR, "TSP Syntax error: endscript without loadscript")
            return
        if stripped == "abort":
            return  # nothing runs in the background
        self._execute(text, "=tsp")

    def _end_script(self) -> None:
        command, name, lines = self._script  # type: ignore[misc]
        self._script = None
        source = "\n".join(lines)
        status, result = self._api.load_script(name, source)
        if status != "ok":
            line, msg = _split_lua_message(str(result))
            self._push_error(SYNTAX_ERROR, f"TSP Syntax error at line {line}: {msg}" if line else f"TSP Syntax error: {msg}")
            return
        if command == "loadandrunscript":
            self._execute(result, name or "script")

    def _common(self, text: str) -> None:
        cmd = text.upper()
        reply = None
        if cmd == "*IDN?":
            reply = self.idn()
        elif cmd == "*RST":
            self.reset()
        elif cmd == "*CLS":
            self.errors.clear()
            for s in self.smu:
                s.event_bits = 0
        elif cmd == "*OPC?":
            reply = "1"
        elif cmd in ("*OPC", "*WAI", "*TRG"):
            pass
        elif cmd == "*TST?":
            reply = "0"
        elif cmd == "*ESR?":
            reply = "0"
        elif cmd == "*STB?":
            stb = (4 if self.errors else 0) | (16 if self._session and self._session.outq else 0)
            reply = str(stb)
        elif cmd == "*ESE?":
            reply = str(self.status_ese)
        elif cmd == "*SRE?":
            reply = str(self.status_sre)
        elif cmd.startswith(("*ESE ", "*SRE ")):
            try:
                value = int(float(cmd[5:]))
            except ValueError:
                self._push_error(SYNTAX_ERROR, f"TSP Syntax error: {text}")
                return
            if cmd.startswith("*ESE"):
                self.status_ese = value & 0xFF
            else:
                self.status_sre = value & 0xFF
        else:
            self._push_error(SYNTAX_ERROR, f"TSP Syntax error at line 1: unknown common command {text}")
            return
        if reply is not None:
            self._reply(reply)

    def _reply(self, text: str) -> None:
        if self._session is not None:
            self._session.reply(text.encode("latin-1", "replace") + b"\n")

    def _reply_bytes(self, data: bytes) -> None:
        if self._session is not None:
            self._session.reply(data)

    # ===== the error queue =================================================================
    def _push_error(self, code: int, message: str, severity: int = SEVERITY_RECOVERABLE) -> None:
        if len(self.errors) >= ERROR_QUEUE_SIZE:
            self.errors[-1] = (QUEUE_OVERFLOW, "Queue overflow", SEVERITY_RECOVERABLE, 1)
            return
        self.errors.append((code, message, severity, 1))

    def _errorqueue_next(self) -> tuple:
        if not self.errors:
            return (0, "Queue Is Empty", 0, 0)
        return self.errors.popleft()

    def _build_objects(self) -> None:
        root = _Node("_G")
        for fname, fn in (
            ("print", self._print),
            ("printnumber", self._printnumber),
            ("printbuffer", self._printbuffer),
            ("delay", self._delay),
            ("reset", lambda *a: self.reset()),
            ("waitcomplete", lambda *a: None),
            ("opc", lambda *a: None),
        ):
            root.method(fname, fn)
        objects = {
            "smua": self._smu_node(0),
            "smub": self._smu_node(1),
            "format": self._format_node(),
            "localnode": self._localnode_node(),
            "errorqueue": self._errorqueue_node(),
            "timer": self._timer_node(),
            "trigger": self._trigger_node(),
            "status": self._status_node(),
            "beeper": self._beeper_node(),
            "display": self._display_node(),
        }
        for key, node in objects.items():
            root.child(key, node)
        self._register(root)
        for fname, member in root.members.items():
            if member[0] == "method":
                self._api.install_function(fname, root.id)
            else:
                self._api.install_node(fname, member[1].id)

    def _localnode_node(self) -> _Node:
        node = _Node("localnode")
        node.readonly("model", lambda: self.model)
        node.readonly("serialno", lambda: self.serial)
        node.readonly("revision", lambda: FIRMWARE)
        node.attr("description", lambda: self.description, lambda v: setattr(self, "description", str(v)[:63]))
        node.attr("linefreq", lambda: self.linefreq, self._set_linefreq)
        # nonvolatile / power-on settings: reset() leaves them alone
        node.choice("autolinefreq", lambda: self.autolinefreq, lambda v: setattr(self, "autolinefreq", v), (0, 1))
        node.choice("prompts", lambda: self.prompts, lambda v: setattr(self, "prompts", v), (0, 1))
        node.choice("prompts4882", lambda: self.prompts4882, lambda v: setattr(self, "prompts4882", v), (0, 1))
        node.choice("showerrors", lambda: self.showerrors, lambda v: setattr(self, "showerrors", v), (0, 1))
        node.method("reset", lambda *a: self.reset())
        return node

    def _errorqueue_node(self) -> _Node:
        node = _Node("errorqueue")
        node.readonly("count", lambda: len(self.errors))
        node.method("next", lambda *a: self._errorqueue_next())
        node.method("clear", lambda *a: self.errors.clear())
        return node

    def _status_node(self) -> _Node:
        node = _Node("status")
        node.method("reset", self._status_reset)
        node.readonly("condition", lambda: (4 if self.errors else 0))
        meas = node.child("measurement", _Node("status.measurement"))
        meas.const("VOLTAGE_LIMIT", VOLTAGE_LIMIT_BIT)
        meas.const("VLMT", VOLTAGE_LIMIT_BIT)
        meas.const("CURRENT_LIMIT", CURRENT_LIMIT_BIT)
        meas.const("ILMT", CURRENT_LIMIT_BIT)
        meas.readonly("condition", lambda: self._condition(0) | self._condition(1))
        inst = meas.child("instrument", _Node("status.measurement.instrument"))
        for k, x in enumerate("ab"):
            sm = inst.child(f"smu{x}", _Node(f"status.measurement.instrument.smu{x}"))
            sm.const("VOLTAGE_LIMIT", VOLTAGE_LIMIT_BIT)
            sm.const("VLMT", VOLTAGE_LIMIT_BIT)
            sm.const("CURRENT_LIMIT", CURRENT_LIMIT_BIT)
            sm.const("ILMT", CURRENT_LIMIT_BIT)
            sm.readonly("condition", lambda k=k: self._condition(k))
            sm.readonly("event", lambda k=k: self._read_event(k))
            sm.integer("enable", lambda k=k: self.smu[k].status_enable, lambda v, k=k: setattr(self.smu[k], "status_enable", v), 0, 65535)
        return node

    def _status_reset(self, *args: Any) -> None:
        for s in self.smu:
            s.event_bits = 0
            s.status_enable = 0

    def _beeper_node(self) -> _Node:
        node = _Node("beeper")
        node.const("ON", 1)
        node.const("OFF", 0)
        node.choice("enable", lambda: self.beeper_enable, lambda v: setattr(self, "beeper_enable", v), (0, 1))
        node.method("beep", self._beep)
        return node

    def _display_node(self) -> _Node:
        node = _Node("display", permissive=True)
        for key, value in (
            ("SMUA", 0),
            ("SMUB", 1),
            ("SMUA_SMUB", 2),
            ("USER", 3),
            ("MEASURE_DCAMPS", 0),
            ("MEASURE_DCVOLTS", 1),
            ("MEASURE_OHMS", 2),
            ("MEASURE_WATTS", 3),
            ("ENABLE", 1),
            ("DISABLE", 0),
        ):
            node.const(key, value)
        node.values["screen"] = 0  # display.screen, assignable like every display attribute
        return node

    # ===== behaviour: misc ====================================================================
    def _delay(self, *args: Any) -> None:
        if not args:
            raise TspError(RUNTIME_ERROR, "delay(seconds): number expected")
        seconds = _bounded(args[0], "delay()", 0.0, 1e6)
        if seconds > 0:
            self.clock.advance(seconds, "wait")

    def _beep(self, *args: Any) -> None:
        duration = _bounded(args[0], "beeper.beep() duration", 0.0, 100.0) if args else 0.0
        if len(args) > 1:
            _bounded(args[1], "beeper.beep() frequency", 0.0, 20_000.0)
        if duration > 0:
            self.clock.advance(duration, "wait")


__all__ = ["Keithley2636B", "TspError"]
