"""A SCPI parser for the emulators, following IEEE 488.2 / SCPI-1999 rules.

* Headers match in their short or long form, any case (``:SOUR:VOLT``, ``:source:voltage``);
  nodes in brackets are optional; numeric suffixes select channels (``SOUR2``).
* ``;`` separates commands of one program message; a header that does not start with ``:``
  continues from the path of the previous command, a leading ``:`` returns to the root,
  common commands (``*IDN?``) leave the path alone.
* Responses of all queries in one message are joined with ``;`` and end with one ``\\n``.
* Errors go to an error queue (10 entries, overflow replaces the last with -350) read by
  ``:SYST:ERR?`` in the ``<code>,"<message>"`` form.

An instrument declares its commands with the :func:`command` decorator on methods of a
:class:`ScpiInstrument` subclass.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .instrument import EmulatedInstrument, Session
from .scpi_status import ESR_OPC, ESR_PON, REGISTER_MASK, STB_EAV, STB_ESB, STB_MAV, STB_MSS, StatusRegister, esr_bit_for
from .scpi_table import CommandSpec, TableValueError, format_value, limit_answer, load_table, parse_value


class ScpiError(Exception):
    """An error the instrument puts in its error queue."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code = code
        self.message = message


# Standard SCPI error numbers used by the emulators.
COMMAND_ERROR = -100
INVALID_CHARACTER = -101
SYNTAX_ERROR = -102
INVALID_SEPARATOR = -103
DATA_TYPE_ERROR = -104
PARAMETER_NOT_ALLOWED = -108
MISSING_PARAMETER = -109
UNDEFINED_HEADER = -113
NUMERIC_DATA_ERROR = -120
EXECUTION_ERROR = -200
SETTINGS_CONFLICT = -221
DATA_OUT_OF_RANGE = -222
ILLEGAL_PARAMETER = -224
QUEUE_OVERFLOW = -350
QUERY_INTERRUPTED = -410

MESSAGES = {
    COMMAND_ERROR: "Command error",
    INVALID_CHARACTER: "Invalid character",
    SYNTAX_ERROR: "Syntax error",
    INVALID_SEPARATOR: "Invalid separator",
    DATA_TYPE_ERROR: "Data type error",
    PARAMETER_NOT_ALLOWED: "Parameter not allowed",
    MISSING_PARAMETER: "Missing parameter",
    UNDEFINED_HEADER: "Undefined header",
    NUMERIC_DATA_ERROR: "Numeric data error",
    EXECUTION_ERROR: "Execution error",
    SETTINGS_CONFLICT: "Settings conflict",
    DATA_OUT_OF_RANGE: "Data out of range",
    ILLEGAL_PARAMETER: "Illegal parameter value",
    QUEUE_OVERFLOW: "Queue overflow",
    QUERY_INTERRUPTED: "Query INTERRUPTED",
}


def error(code: int, detail: str = "") -> ScpiError:
    msg = MESSAGES.get(code, "Error")
    return ScpiError(code, f"{msg}; {detail}" if detail else msg)


_NODE = re.compile(r"(\[)?:([A-Za-z][A-Za-z0-9]*?)(\[\d\]|#)?(\])?(?=:|\[|$)")


def compile_header(pattern: str) -> re.Pattern[str]:
    """Regex for a SCPI header pattern such as ``[:SOURce[1]]:VOLTage[:LEVel][:IMMediate]``.

    Upper-case letters of each mnemonic are its short form; ``[1]`` after a mnemonic makes a
    numeric suffix optional, ``#`` allows any suffix. The regex captures every suffix.
    """
    if pattern.startswith("*"):
        return re.compile("^" + re.escape(pattern.upper()) + "$", re.IGNORECASE)
    out, pos = [], 0
    while pos < len(pattern):
        m = _NODE.match(pattern, pos)
        if not m:
            raise ValueError(f"bad SCPI pattern {pattern!r} at {pos}")
        opt_open, mnemonic, suffix, opt_close = m.groups()
        if bool(opt_open) != bool(opt_close):
            raise ValueError(f"unbalanced brackets in {pattern!r}")
        short = "".join(ch for ch in mnemonic if ch.isupper() or ch.isdigit())
        long_ = mnemonic.upper()
        alt = short if short == long_ else f"{long_}|{short}"
        node = f":(?:{alt})" + (r"(\d*)" if suffix else "()")
        out.append(f"(?:{node})?" if opt_open else node)
        pos = m.end()
    return re.compile("^" + "".join(out) + "$", re.IGNORECASE)


@dataclass
class Call:
    """One parsed command handed to a handler."""

    header: str
    query: bool
    args: list[str]
    suffixes: list[str]
    session: Session | None = None

    def suffix(self, index: int = 0, default: int = 1) -> int:
        """Numeric suffix of the n-th suffix-capable node (``SOUR2`` -> 2)."""
        try:
            s = self.suffixes[index]
        except IndexError:
            return default
        return int(s) if s else default

    def _arg(self, i: int) -> str:
        if i >= len(self.args) or self.args[i] == "":
            raise error(MISSING_PARAMETER)
        return self.args[i]

    def expect_args(self, n_min: int, n_max: int | None = None) -> None:
        n_max = n_min if n_max is None else n_max
        if len(self.args) < n_min:
            raise error(MISSING_PARAMETER)
        if len(self.args) > n_max:
            raise error(PARAMETER_NOT_ALLOWED)

    def number(
        self,
        i: int = 0,
        lo: float | None = None,
        hi: float | None = None,
        default: float | None = None,
    ) -> float:
        """Numeric parameter, accepting ``MIN``, ``MAX``, ``DEF`` and range checks."""
        raw = self._arg(i).strip(" \t\r\n")
        up = raw.upper()
        if up in ("MIN", "MINIMUM") and lo is not None:
            return lo
        if up in ("MAX", "MAXIMUM") and hi is not None:
            return hi
        if up in ("DEF", "DEFAULT") and default is not None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise error(DATA_TYPE_ERROR, f"expected a number, got {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise error(NUMERIC_DATA_ERROR)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise error(DATA_OUT_OF_RANGE, f"{value:g} outside [{lo:g}, {hi:g}]" if lo is not None and hi is not None else "")
        return value

    def integer(self, i: int = 0, lo: int | None = None, hi: int | None = None, default: int | None = None) -> int:
        return int(round(self.number(i, lo, hi, default)))

    def boolean(self, i: int = 0) -> bool:
        raw = self._arg(i).strip().upper()
        if raw in ("ON", "1"):
            return True
        if raw in ("OFF", "0"):
            return False
        raise error(ILLEGAL_PARAMETER, f"expected ON|OFF|1|0, got {raw!r}")

    def choice(self, i: int, options: Iterable[str]) -> str:
        """Keyword parameter matched in short or long form; returns the option's canonical long form."""
        raw = self._arg(i).strip().strip("'\"").upper()
        for opt in options:
            short = "".join(ch for ch in opt if ch.isupper() or ch.isdigit())
            if raw in (opt.upper(), short):
                return opt.upper()
        raise error(ILLEGAL_PARAMETER, raw)

    def string(self, i: int = 0) -> str:
        raw = self._arg(i).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            return raw[1:-1]
        return raw

    def numbers(self, lo: float | None = None, hi: float | None = None) -> list[float]:
        """All arguments as numbers (list commands)."""
        if not self.args:
            raise error(MISSING_PARAMETER)
        return [self.number(i, lo, hi) for i in range(len(self.args))]


def command(pattern: str, query: bool = True, write: bool = True) -> Callable:
    """Declare a handler for a SCPI header; ``query``/``write`` say which forms exist."""

    def deco(fn: Callable) -> Callable:
        fn._scpi = getattr(fn, "_scpi", []) + [(pattern, query, write)]  # type: ignore[attr-defined]
        return fn

    return deco


def split_outside(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes, parentheses and definite-length blocks."""
    parts, cur, quote, depth, i = [], [], "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch == "(":
            depth += 1
            cur.append(ch)
        elif ch == ")":
            depth -= 1
            cur.append(ch)
        elif ch == "#" and i + 1 < len(text) and text[i + 1] in "123456789":
            ndig = int(text[i + 1])
            try:
                length = int(text[i + 2 : i + 2 + ndig])
            except ValueError:
                length = 0
            end = i + 2 + ndig + length
            cur.append(text[i:end])
            i = end
            continue
        elif ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur))
    return parts


def _strip(text: str) -> str:
    """Strip ASCII white space, but never from the end of a binary block (its bytes are data)."""
    left = text.lstrip(" \t\r\n")
    if "#" in left:
        return left
    return left.rstrip(" \t\r\n")


def format_nr3(value: float, digits: int = 6) -> str:
    """NR3 float as SCPI instruments print it: ``+1.234560E-04``."""
    return f"{value:+.{digits}E}"


@dataclass
class _Entry:
    regex: re.Pattern[str]
    handler: Callable[..., Any]
    query: bool
    write: bool
    pattern: str = field(default="")
    spec: CommandSpec | None = None  # the command-table row a generic handler serves


def _register_name(header: str) -> str:
    """``:STAT:OPER:ENAB`` -> ``OPER`` (the register node of a STATus header, short form)."""
    return re.sub(r"\d+$", "", header.split(":")[2].upper())[:4]


class ScpiInstrument(EmulatedInstrument):
    """Emulator base that dispatches SCPI program messages to decorated handlers.

    It owns the IEEE 488.2 status model (:mod:`labrram.sim.scpi_status`) and the SCPI STATus
    subsystem; ``status_summary_bits`` names the instrument's SCPI registers and the Status Byte
    bit each sums into. ``command_file`` names the instrument's command table
    (:mod:`labrram.sim.scpi_table`); its ``stored`` rows are served by a generic handler.
    """

    error_queue_size = 10
    status_summary_bits: dict[str, int] = {"QUES": 3, "OPER": 7}
    status_transition_filters = True  # PTR / NTR registers (the SCPI-1999 model)
    command_file: str | None = None

    @classmethod
    def command_specs(cls) -> list[CommandSpec]:
        """The rows of the class's command table (empty without one)."""
        specs = cls.__dict__.get("_specs")
        if specs is None:
            specs = load_table(cls.command_file) if cls.command_file else []
            cls._specs = specs
        return specs

    @classmethod
    def command_table(cls) -> list[_Entry]:
        """The class's handlers with their compiled header patterns, built on first use (an
        emulator that is never spoken to never compiles its command tree). The handlers the
        class defines come first; the command table's ``stored`` rows follow."""
        table = cls.__dict__.get("_compiled")
        if table is None:
            table = []
            for klass in reversed(cls.__mro__):
                for fn in vars(klass).values():
                    for pattern, q, w in getattr(fn, "_scpi", []):
                        table.append(_Entry(compile_header(pattern), fn, q, w, pattern))
            for spec in cls.command_specs():
                if spec.support == "stored":
                    table.append(
                        _Entry(compile_header(spec.header), ScpiInstrument._stored, spec.queryable, spec.settable, spec.header, spec)
                    )
            cls._compiled = table
            cls._lookup = {}
            cls._spec_regex = [(compile_header(sp.header), sp) for sp in cls.command_specs()]
        return table

    @classmethod
    def spec_for(cls, header: str) -> CommandSpec | None:
        """The command-table row whose header matches ``header`` (a full header from the root)."""
        cls.command_table()
        for rx, spec in cls._spec_regex:
            if rx.match(header):
                return spec
        return None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.errors: deque[tuple[int, str]] = deque()
        self.table_values: dict[tuple[str, tuple[str, ...]], Any] = {}
        self.esr = ESR_PON  # the Standard Event Status Register; PON after power-on
        self.ese = 0
        self.sre = 0
        self.registers = {name: StatusRegister() for name in self.status_summary_bits}
        self._opc_armed = False  # *OPC received while an operation was pending
        self._opc_waiters: list[Session] = []  # *OPC? queries waiting for the operation to end
        self._replies_in_message = 0

    # --- error queue --------------------------------------------------------------------
    def push_error(self, code: int, message: str) -> None:
        self.esr |= esr_bit_for(code)
        if len(self.errors) >= self.error_queue_size:
            self.errors[-1] = (QUEUE_OVERFLOW, MESSAGES[QUEUE_OVERFLOW])
            return
        self.errors.append((code, message))

    def pop_error(self) -> str:
        code, message = self.errors.popleft() if self.errors else (0, "No error")
        return f'{code:+d},"{message}"'

    def query_interrupted(self, session: Session) -> None:
        self.push_error(QUERY_INTERRUPTED, MESSAGES[QUERY_INTERRUPTED])

    # --- status model -------------------------------------------------------------------
    def status_byte(self, session: Session | None = None) -> int:
        """The Status Byte with MSS (``*STB?``; a serial poll reads the same byte, bit 6 as RQS).

        Parameters
        ----------
        session : Session, optional
            The connection asking: its unread responses set MAV.

        Returns
        -------
        int
            Bits: the SCPI register summaries of :attr:`status_summary_bits`, 2 EAV, 4 MAV,
            5 ESB, 6 MSS.
        """
        stb = 0
        for name, bit in self.status_summary_bits.items():
            if self.registers[name].summary:
                stb |= 1 << bit
        if self.errors:
            stb |= STB_EAV
        if self._replies_in_message or (session is not None and session.outq):
            stb |= STB_MAV
        if self.esr & self.ese:
            stb |= STB_ESB
        if stb & self.sre & ~STB_MSS:
            stb |= STB_MSS
        return stb

    def operation_pending(self) -> bool:
        """True while an overlapped operation runs (``*OPC`` / ``*OPC?`` wait for its end)."""
        return False

    def operation_complete(self) -> None:
        """Called by an emulator when its pending operation ends: completes ``*OPC``/``*OPC?``."""
        if self._opc_armed:
            self._opc_armed = False
            self.esr |= ESR_OPC
        waiters, self._opc_waiters = self._opc_waiters, []
        for s in waiters:
            if not s.closed:
                s.reply(b"1\n")

    def clear_status(self) -> None:
        """``*CLS``: SESR, event registers and the error queue cleared; enables stay."""
        self.errors.clear()
        self.esr = 0
        self._opc_armed = False
        for reg in self.registers.values():
            reg.event = 0

    def clear_table_values(self) -> None:
        """Forget every stored setting of the command table (they read their ``*RST`` values)."""
        self.table_values.clear()

    def power_cycle(self, lose_sessions: bool = True) -> None:
        super().power_cycle(lose_sessions)
        self.clear_table_values()
        self.esr, self.ese, self.sre = ESR_PON, 0, 0
        self.registers = {name: StatusRegister() for name in self.status_summary_bits}
        self._opc_armed, self._opc_waiters = False, []

    # --- dispatch -----------------------------------------------------------------------
    def process(self, session: Session, message: bytes) -> None:
        try:
            text = message.decode("latin-1")
        except Exception:  # pragma: no cover - latin-1 decodes any byte
            self.push_error(INVALID_CHARACTER, MESSAGES[INVALID_CHARACTER])
            return
        responses: list[str] = []
        path: list[str] = []
        self._replies_in_message = 0
        for raw in split_outside(text, ";"):
            unit = _strip(raw)
            if not unit:
                continue
            header, _, argtext = unit.partition(" ")
            header = header.strip()
            argtext = argtext.strip()
            query = header.endswith("?")
            bare = header[:-1] if query else header
            if bare.startswith(":*"):
                bare = bare[1:]  # a common command after a colon (``:*RST``) is still common
            if bare.startswith("*"):
                candidates = [bare]
            elif bare.startswith(":"):
                candidates = [bare]
                path = bare.split(":")[1:-1]
            else:
                candidates = [":" + ":".join(path + [bare])] if path else []
                candidates.append(":" + bare)
                path = path + bare.split(":")[:-1] if path else bare.split(":")[:-1]
            args = [_strip(a) for a in split_outside(argtext, ",")] if argtext else []
            try:
                reply = self._dispatch(session, candidates, query, args)
            except ScpiError as exc:
                self.push_error(exc.code, exc.message)
                continue
            if reply is not None:
                responses.append(reply)
                self._replies_in_message += 1
        self._replies_in_message = 0
        if responses:
            session.reply((";".join(responses) + "\n").encode("latin-1"))

    def _match(self, candidates: list[str]) -> tuple[str, _Entry, re.Match[str]]:
        table = self.command_table()
        lookup = type(self)._lookup
        for cand in candidates:
            key = cand.upper()
            hit = lookup.get(key)
            if hit is None:
                # The first match wins, except that a header naming a numbered node exactly
                # (``:CALCulate3:DATA``) beats a pattern whose suffix merely accepts that number
                # (``:CALCulate[1]:DATA``).
                fallback = None
                for entry in table:
                    m = entry.regex.match(cand)
                    if not m:
                        continue
                    if all(g in ("", "1", None) for g in m.groups()):
                        hit = (entry, m)
                        break
                    fallback = fallback or (entry, m)
                hit = hit or fallback
                if hit is None:
                    continue
                lookup[key] = hit
            entry, m = hit
            return cand, entry, m
        raise error(UNDEFINED_HEADER, candidates[-1])

    def _dispatch(self, session: Session, candidates: list[str], query: bool, args: list[str]) -> str | None:
        try:
            cand, entry, m = self._match(candidates)
        except ScpiError:
            raise error(UNDEFINED_HEADER, candidates[-1] + ("?" if query else "")) from None
        if query and not entry.query:
            raise error(UNDEFINED_HEADER, f"{cand}? has no query form")
        if not query and not entry.write:
            raise error(UNDEFINED_HEADER, f"{cand} is query only")
        if query and len(args) == 1 and args[0].upper() in _LIMIT_WORDS:
            spec = entry.spec or self.spec_for(cand)
            answer = limit_answer(spec, args[0]) if spec is not None else None
            if answer is not None:
                return answer
        call = Call(cand, query, args, list(m.groups()), session)
        return entry.handler(self, call)

    def stored(self, header: str, suffixes: tuple[str, ...] = ()) -> Any:
        """The value of a ``stored`` command-table setting.

        Parameters
        ----------
        header : str
            Any full header form of the row, e.g. ``":SOURce:CLEar:AUTO:MODE"``.
        suffixes : tuple of str, optional
            Numeric suffixes of the row's suffix nodes (``("2",)`` for channel 2); default 1.

        Returns
        -------
        Any
            The value last set, or the row's ``*RST`` value (parsed).

        Raises
        ------
        KeyError
            The instrument's table has no such row.
        """
        spec = self.spec_for(header)
        if spec is None:
            raise KeyError(f"{type(self).__name__} has no command-table row for {header}")
        key = (spec.header, tuple(suffixes) or ("1",) * compile_header(spec.header).groups)
        if key in self.table_values:
            return self.table_values[key]
        return parse_value(spec, spec.rst) if spec.rst is not None else None

    def _stored(self, call: Call) -> str | None:
        """Generic handler of a command-table row marked ``stored``."""
        spec = self.spec_for(call.header)
        assert spec is not None
        key = (spec.header, tuple(s or "1" for s in call.suffixes))
        if call.query:
            if spec.type == "none" and spec.form != "both":
                return None
            if spec.type == "none":
                return self.table_values.get(key, spec.rst or "")
            if key in self.table_values:
                return format_value(spec, self.table_values[key])
            return spec.rst if spec.rst is not None else format_value(spec, 0)
        if spec.type == "none" and spec.form == "both":  # a keyword list, kept as sent
            self.table_values[key] = ",".join(a.strip().upper() for a in call.args)
            return None
        if spec.form == "event" or spec.type == "none":
            if call.args:
                raise error(PARAMETER_NOT_ALLOWED, call.header)
            return None
        if not call.args:
            raise error(MISSING_PARAMETER, call.header)
        raw = ",".join(call.args) if spec.type == "list" else call.args[0]
        if spec.type != "list" and len(call.args) > 1:
            raise error(PARAMETER_NOT_ALLOWED, call.header)
        try:
            self.table_values[key] = parse_value(spec, raw)
        except TableValueError as exc:
            raise error(exc.code, str(exc)) from None
        return None

    # --- IEEE 488.2 common commands -------------------------------------------------
    def idn(self) -> str:
        return f"{self.vendor},{self.model},{self.serial},1.0"

    @command("*IDN", write=False)
    def _idn(self, call: Call) -> str:
        return self.idn()

    @command("*RST", query=False)
    def _rst(self, call: Call) -> None:
        # IEEE 488.2 10.32: *RST leaves the operation-complete command and query idle
        self._opc_armed, self._opc_waiters = False, []
        self.reset()

    @command("*CLS", query=False)
    def _cls(self, call: Call) -> None:
        self.clear_status()

    @command("*OPC")
    def _opc(self, call: Call) -> str | None:
        if call.query:
            if self.operation_pending() and call.session is not None:
                self._opc_waiters.append(call.session)  # answered when the operation ends
                return None
            return "1"
        if self.operation_pending():
            self._opc_armed = True
        else:
            self.esr |= ESR_OPC
        return None

    @command("*ESR", write=False)
    def _esr(self, call: Call) -> str:
        value, self.esr = self.esr, 0
        return str(value)

    @command("*ESE")
    def _ese(self, call: Call) -> str | None:
        if call.query:
            return str(self.ese)
        call.expect_args(1)
        self.ese = call.integer(0, 0, 255)
        return None

    @command("*SRE")
    def _sre(self, call: Call) -> str | None:
        if call.query:
            return str(self.sre)
        call.expect_args(1)
        self.sre = call.integer(0, 0, 255) & ~STB_MSS  # bit 6 cannot be enabled (IEEE 488.2 11.3.2.3)
        return None

    @command("*STB", write=False)
    def _stb(self, call: Call) -> str:
        return str(self.status_byte(call.session))

    @command("*WAI", query=False)
    def _wai(self, call: Call) -> None:
        return None

    @command("*TST", write=False)
    def _tst(self, call: Call) -> str:
        return "0"

    @command("*TRG", query=False)
    def _trg(self, call: Call) -> None:
        trigger = getattr(self, "bus_trigger", None)
        if trigger is None:
            raise error(UNDEFINED_HEADER, "*TRG")
        trigger()

    @command(":SYSTem:ERRor[:NEXT]", write=False)
    def _syst_err(self, call: Call) -> str:
        return self.pop_error()

    @command(":SYSTem:ERRor:ALL", write=False)
    def _syst_err_all(self, call: Call) -> str:
        if not self.errors:
            return self.pop_error()
        out = []
        while self.errors:
            out.append(self.pop_error())
        return ",".join(out)

    @command(":SYSTem:ERRor:CODE[:NEXT]", write=False)
    def _err_code(self, call: Call) -> str:
        return str(self.errors.popleft()[0]) if self.errors else "0"

    @command(":SYSTem:ERRor:CODE:ALL", write=False)
    def _err_code_all(self, call: Call) -> str:
        codes = [str(c) for c, _ in self.errors] or ["0"]
        self.errors.clear()
        return ",".join(codes)

    @command(":SYSTem:ERRor:COUNt", write=False)
    def _syst_err_count(self, call: Call) -> str:
        return str(len(self.errors))

    @command(":SYSTem:VERSion", write=False)
    def _syst_vers(self, call: Call) -> str:
        return "1999.0"

    # --- SCPI STATus subsystem ----------------------------------------------------------
    def _register(self, call: Call) -> StatusRegister:
        name = _register_name(call.header)
        reg = self.registers.get(name)
        if reg is None:
            raise error(UNDEFINED_HEADER, f"{call.header}: this instrument has no {name} register")
        return reg

    def register_answer(self, value: int) -> str:
        """A register value as ``:FORMat:SREGister`` says (ASCII NR1, or ``#H``/``#Q``/``#B``)."""
        try:
            fmt = self.stored(":FORMat:SREGister")
        except KeyError:  # an instrument without that setting answers NR1
            return str(value)
        return {"HEX": f"#H{value:X}", "OCT": f"#Q{value:o}", "BIN": f"#B{value:b}"}.get(fmt, str(value))

    @command(":STATus:PRESet", query=False)
    def _stat_preset(self, call: Call) -> None:
        for reg in self.registers.values():
            reg.preset()

    @command(":STATus:OPERation[:EVENt]", write=False)
    @command(":STATus:QUEStionable[:EVENt]", write=False)
    @command(":STATus:MEASurement[:EVENt]", write=False)
    def _stat_event(self, call: Call) -> str:
        return self.register_answer(self._register(call).read_event())

    @command(":STATus:OPERation:CONDition", write=False)
    @command(":STATus:QUEStionable:CONDition", write=False)
    @command(":STATus:MEASurement:CONDition", write=False)
    def _stat_condition(self, call: Call) -> str:
        return self.register_answer(self._register(call).condition)

    def _register_setting(self, call: Call, attr: str) -> str | None:
        reg = self._register(call)
        if attr != "enable" and not self.status_transition_filters:
            raise error(UNDEFINED_HEADER, f"{call.header}: no transition filters on this instrument")
        if call.query:
            return self.register_answer(getattr(reg, attr))
        call.expect_args(1)
        try:
            value = _ndn(call.args[0])
        except ValueError:
            raise error(DATA_TYPE_ERROR, f"expected a register value, got {call.args[0]!r}") from None
        if not 0 <= value <= 0xFFFF:
            raise error(DATA_OUT_OF_RANGE, f"{value} outside 0..65535")
        setattr(reg, attr, value & REGISTER_MASK)
        return None

    @command(":STATus:OPERation:ENABle")
    @command(":STATus:QUEStionable:ENABle")
    @command(":STATus:MEASurement:ENABle")
    def _stat_enable(self, call: Call) -> str | None:
        return self._register_setting(call, "enable")

    @command(":STATus:OPERation:PTRansition")
    @command(":STATus:QUEStionable:PTRansition")
    @command(":STATus:MEASurement:PTRansition")
    def _stat_ptr(self, call: Call) -> str | None:
        return self._register_setting(call, "ptr")

    @command(":STATus:OPERation:NTRansition")
    @command(":STATus:QUEStionable:NTRansition")
    @command(":STATus:MEASurement:NTRansition")
    def _stat_ntr(self, call: Call) -> str | None:
        return self._register_setting(call, "ntr")

    @command(":STATus:QUEue[:NEXT]", write=False)
    def _stat_queue(self, call: Call) -> str:
        return self.pop_error()

    @command(":STATus:QUEue:CLEar", query=False)
    def _stat_queue_clear(self, call: Call) -> None:
        self.errors.clear()


_LIMIT_WORDS = frozenset({"MIN", "MINIMUM", "MAX", "MAXIMUM", "DEF", "DEFAULT"})


def _ndn(raw: str) -> int:
    """A register value: NRf or non-decimal numeric (``#H1F``, ``#B101``, ``#Q17``)."""
    up = raw.strip().upper()
    bases = {"#H": 16, "#B": 2, "#Q": 8}
    if up[:2] in bases:
        return int(up[2:], bases[up[:2]])
    return int(round(float(up)))
