"""Command tables: an instrument's SCPI command tree as data, from its manual's reference chapter.

Each SCPI emulator may ship a CSV file (package data in :mod:`labrram.sim`) with one row per
command or query of its manual, in the manual's own bracket notation. Columns:

``header``
    The manual's header, e.g. ``[:SENSe[1]]:CURRent[:DC]:NPLCycles`` (optional nodes in
    brackets, ``[1]`` an optional numeric suffix).
``form``
    ``both`` (setting and query), ``set`` (command only), ``query`` (query only) or ``event``
    (a command without parameters, such as ``:INITiate``).
``type``
    Parameter / response type: ``nrf`` (real, answered as NR3), ``nr1`` (integer), ``bool``
    (``ON|OFF|1|0``, answered ``1``/``0``), ``choice`` (a keyword of ``values``, answered in
    its short form), ``string`` (quoted), ``list`` (comma-separated reals), ``ndn`` (a register
    value, also ``#H``/``#B``/``#Q``), ``none``.
``values``
    ``|``-separated keywords: the choices of a ``choice``, or the keywords a number also accepts
    (``AUTO``, ``UP``, ``ONCE``).
``min`` / ``max`` / ``def``
    The limits and default the manual gives for ``MINimum`` / ``MAXimum`` / ``DEFault``
    (parameters and queries such as ``:SOUR:VOLT? MAX``).
``rst``
    The ``*RST`` value as the query answers it.
``test``
    A legal value the table walk sets (empty: ``min`` or the first choice).
``support``
    ``emulated`` (a handler with physics or state of its own) or ``stored`` (the setting is
    validated, stored and answered; it has no effect on the simulated physics).
``note``
    Free text (page of the manual, why a setting is only stored).

Rows whose ``support`` is ``stored`` get a generic handler here: the parameter is checked against
the type, range and choices, stored per numeric suffix, answered by the query and forgotten by
``*RST``. Rows marked ``emulated`` must be matched by a handler the emulator defines (the table
walk checks it); for them the table still supplies ``MIN``/``MAX``/``DEF`` answers and the
``*RST`` values the walk verifies.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .scpi_status import REGISTER_MASK

FORMS = ("both", "set", "query", "event")
TYPES = ("nrf", "nr1", "bool", "choice", "string", "list", "ndn", "none")
SUPPORT = ("emulated", "stored")
_MNEMONIC = re.compile(r"(\[)?:([A-Za-z][A-Za-z0-9]*?)(\[\d\]|#)?(\])?(?=:|\[|$)")


def short_form(keyword: str) -> str:
    """A mnemonic's short form: its upper-case letters and digits (``VOLTage`` -> ``VOLT``)."""
    short = "".join(ch for ch in keyword if ch.isupper() or ch.isdigit())
    return short or keyword.upper()


@dataclass(frozen=True)
class CommandSpec:
    """One command of a manual's reference chapter (one row of a command table)."""

    header: str
    form: str
    type: str
    values: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    default: str | None = None
    rst: str | None = None
    test: str | None = None
    support: str = "stored"
    note: str = ""

    @property
    def settable(self) -> bool:
        return self.form in ("both", "set", "event")

    @property
    def queryable(self) -> bool:
        return self.form in ("both", "query")

    def forms(self) -> tuple[str, str]:
        """The header with every optional node spelled out in long form, and the shortest form
        (optional nodes left out, short mnemonics), e.g. ``:SOURCE1:VOLTAGE:LEVEL`` and ``:VOLT``."""
        if self.header.startswith("*"):
            return self.header, self.header
        long_parts, short_parts = [], []
        for m in _MNEMONIC.finditer(self.header):
            optional, mnemonic, suffix = bool(m.group(1)), m.group(2), m.group(3)
            digit = suffix[1] if suffix and suffix.startswith("[") else ("1" if suffix == "#" else "")
            long_parts.append(":" + mnemonic.upper() + digit)
            if not optional:
                short_parts.append(":" + short_form(mnemonic))
        return "".join(long_parts), "".join(short_parts)

    def canonical(self, raw: str) -> str:
        """The query answer for a legal parameter ``raw`` (the value the instrument stores)."""
        return format_value(self, parse_value(self, raw))

    def keyword(self, raw: str) -> str | None:
        """The canonical short form of ``raw`` if it is one of this row's keywords."""
        up = raw.strip().strip("'\"").upper()
        for opt in self.values:
            if up in (opt.upper(), short_form(opt)):
                return short_form(opt)
        return None


def _float(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def load_table(package_file: str) -> list[CommandSpec]:
    """Read a command table shipped in :mod:`labrram.sim`.

    Parameters
    ----------
    package_file : str
        File name inside the ``labrram.sim`` package, e.g. ``"keithley2400_commands.csv"``.
        Lines starting with ``#`` are comments.

    Returns
    -------
    list of CommandSpec
        One row per command or query, in file order.

    Raises
    ------
    ValueError
        A row names an unknown form, type or support.
    """
    text = resources.files(__package__).joinpath(package_file).read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    specs = []
    for row in csv.DictReader(lines):
        form, typ, support = row["form"].strip(), row["type"].strip(), row["support"].strip() or "stored"
        if form not in FORMS or typ not in TYPES or support not in SUPPORT:
            raise ValueError(f"{package_file}: bad row {row!r}")
        specs.append(
            CommandSpec(
                header=row["header"].strip(),
                form=form,
                type=typ,
                values=tuple(v.strip() for v in row["values"].split("|") if v.strip()),
                minimum=_float(row["min"]),
                maximum=_float(row["max"]),
                default=row["def"].strip() or None,
                rst=row["rst"].strip() or None,
                test=row["test"].strip() or None,
                support=support,
                note=(row.get("note") or "").strip(),
            )
        )
    return specs


# --- parameter checking and formatting -------------------------------------------------------
class TableValueError(ValueError):
    """A parameter that the table's type, range or choices refuse; ``code`` is its SCPI error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _register_value(raw: str) -> int:
    up = raw.strip().upper()
    bases = {"#H": 16, "#B": 2, "#Q": 8}
    if up[:2] in bases:
        return int(up[2:], bases[up[:2]])
    return int(round(float(up)))


def parse_value(spec: CommandSpec, raw: str) -> Any:
    """Check parameter text against a row's type, range and choices.

    Parameters
    ----------
    spec : CommandSpec
        The command-table row.
    raw : str
        The parameter as sent (``MIN``/``MAX``/``DEF`` and the row's keywords accepted).

    Returns
    -------
    Any
        The value to store: a float, an int, a bool, a keyword's short form, a string or a
        list of floats.

    Raises
    ------
    TableValueError
        With the SCPI error number (-104 data type, -120 numeric data, -222 out of range,
        -224 illegal value).
    """
    raw = raw.strip()
    up = raw.upper()
    kw = spec.keyword(raw)
    if spec.type == "none":  # a keyword list, kept as sent (upper case)
        return ",".join(p.strip().upper() for p in raw.split(","))
    if spec.type == "choice":
        if kw is None:
            raise TableValueError(-224, f"{raw!r} is not one of {'|'.join(spec.values)}")
        return kw
    if spec.type == "string":
        return raw[1:-1] if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"" else raw
    if spec.type == "bool":
        if up in ("ON", "1"):
            return True
        if up in ("OFF", "0"):
            return False
        if kw is not None:
            return kw
        raise TableValueError(-224, f"expected ON|OFF|1|0, got {raw!r}")
    if spec.type == "list":
        return [parse_value(CommandSpec(spec.header, spec.form, "nrf", (), spec.minimum, spec.maximum), p) for p in raw.split(",")]
    if kw is not None:
        return kw
    if up in ("MIN", "MINIMUM") and spec.minimum is not None:
        value: float = spec.minimum
    elif up in ("MAX", "MAXIMUM") and spec.maximum is not None:
        value = spec.maximum
    elif up in ("DEF", "DEFAULT") and spec.default is not None:
        return parse_value(spec, spec.default)
    else:
        try:
            value = float(_register_value(raw)) if spec.type == "ndn" else float(raw)
        except ValueError:
            raise TableValueError(-104, f"expected a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise TableValueError(-120, f"{raw!r} is not a finite number")
    if spec.type == "ndn" and not 0 <= value <= REGISTER_MASK * 2 + 1:
        raise TableValueError(-222, f"{raw} outside 0..65535")
    if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
        raise TableValueError(-222, f"{value:g} outside [{spec.minimum:g}, {spec.maximum:g}]")
    return int(round(value)) if spec.type in ("nr1", "ndn") else value


def format_value(spec: CommandSpec, value: Any) -> str:
    """The query answer for a stored value in the manual's response format.

    Parameters
    ----------
    spec : CommandSpec
        The command-table row.
    value : Any
        A value :func:`parse_value` returned.

    Returns
    -------
    str
        NR3 (``+1.000000E+00``) for reals, NR1 for integers and registers, ``1``/``0`` for
        booleans, the short form for keywords, a quoted string for strings.
    """
    if isinstance(value, str) and spec.type != "string":
        return value  # a keyword, already in canonical short form
    if spec.type == "bool":
        return "1" if value else "0"
    if spec.type == "string":
        return f'"{value}"'
    if spec.type == "list":
        return ",".join(f"{v:+.6E}" for v in value)
    if spec.type in ("nr1", "ndn"):
        return str(int(value))
    if spec.type == "nrf":
        return f"{float(value):+.6E}"
    return str(value)


def limit_answer(spec: CommandSpec, which: str) -> str | None:
    """The answer to ``<query>? MIN|MAX|DEF`` from the table.

    Parameters
    ----------
    spec : CommandSpec
        The command-table row.
    which : str
        ``MIN``, ``MINimum``, ``MAX``, ``MAXimum``, ``DEF`` or ``DEFault``.

    Returns
    -------
    str or None
        The limit in the row's response format, or None if the row gives no such value.
    """
    up = which.strip().upper()
    if spec.type == "list":
        spec = CommandSpec(spec.header, spec.form, "nrf", spec.values, spec.minimum, spec.maximum, spec.default)
    if up in ("MIN", "MINIMUM") and spec.minimum is not None:
        return format_value(spec, int(spec.minimum) if spec.type in ("nr1", "ndn") else spec.minimum)
    if up in ("MAX", "MAXIMUM") and spec.maximum is not None:
        return format_value(spec, int(spec.maximum) if spec.type in ("nr1", "ndn") else spec.maximum)
    if up in ("DEF", "DEFAULT") and spec.default is not None:
        return spec.canonical(spec.default)
    return None


def response_pattern(spec: CommandSpec) -> re.Pattern[str]:
    """What a query answer of a row must look like (checked by the table walk).

    Parameters
    ----------
    spec : CommandSpec
        The command-table row.

    Returns
    -------
    re.Pattern
        Full-match pattern of the manual's response format for the row's type.
    """
    nr3 = r"[+-]\d\.\d+E[+-]\d+"
    keywords = "|".join(re.escape(short_form(v)) for v in spec.values)
    alt = f"|{keywords}" if keywords else ""
    pattern = {
        "nrf": nr3 + alt,
        "nr1": r"[+-]?\d+" + alt,
        "ndn": r"\d+",
        "bool": "[01]" + alt,
        "choice": keywords or ".+",
        "string": r'"[^"]*"(,"[^"]*")*',
        "list": f"{nr3}(,{nr3})*",
        "none": ".*",
    }[spec.type]
    return re.compile(f"^(?:{pattern})$")


__all__ = [
    "CommandSpec",
    "TableValueError",
    "format_value",
    "limit_answer",
    "load_table",
    "parse_value",
    "response_pattern",
    "short_form",
]
