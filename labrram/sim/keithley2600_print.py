"""Keithley 2636B emulator: ``print``, ``printnumber``, ``printbuffer`` and the ``format`` object
(ASCII with ``format.asciiprecision`` digits, or ``#0`` REAL32/REAL64 blocks).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .keithley2600_objects import (
    BYTEORDER_BIG,
    BYTEORDER_LITTLE,
    FORMAT_ASCII,
    FORMAT_REAL32,
    FORMAT_REAL64,
    _lua_type_name,
    _Node,
    _number,
    PARAMETER_TOO_BIG,
    PARAMETER_TOO_SMALL,
    RUNTIME_ERROR,
    TspError,
)
from .keithley2600_state import (
    _BufferFieldNode,
    _BufferNode,
)


class PrintFormat:
    """Mixin of :class:`~labrram.sim.keithley2600.Keithley2636B`: output formatting."""

    # --- other objects -----------------------------------------------------------------
    def _format_node(self) -> _Node:
        node = _Node("format")
        for key, value in (
            ("ASCII", FORMAT_ASCII),
            ("SREAL", FORMAT_REAL32),
            ("REAL32", FORMAT_REAL32),
            ("REAL", FORMAT_REAL64),
            ("REAL64", FORMAT_REAL64),
            ("DREAL", FORMAT_REAL64),
            ("NORMAL", BYTEORDER_BIG),
            ("BIGENDIAN", BYTEORDER_BIG),
            ("NETWORK", BYTEORDER_BIG),
            ("SWAPPED", BYTEORDER_LITTLE),
            ("LITTLEENDIAN", BYTEORDER_LITTLE),
        ):
            node.const(key, value)
        node.integer("asciiprecision", lambda: self.fmt.asciiprecision, lambda v: setattr(self.fmt, "asciiprecision", v), 1, 16)
        node.choice("data", lambda: self.fmt.data, lambda v: setattr(self.fmt, "data", v), (FORMAT_ASCII, FORMAT_REAL32, FORMAT_REAL64))
        node.choice("byteorder", lambda: self.fmt.byteorder, lambda v: setattr(self.fmt, "byteorder", v), (BYTEORDER_BIG, BYTEORDER_LITTLE))
        return node

    # ===== behaviour: printing ================================================================
    def _fmt_number(self, x: float) -> str:
        x = float(x)
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return f"{x:.{self.fmt.asciiprecision - 1}e}"

    def _print(self, *args: Any) -> None:
        parts = []
        for a in args:
            if a is None:
                parts.append("nil")
            elif isinstance(a, bool):
                parts.append("true" if a else "false")
            elif isinstance(a, (int, float)):
                parts.append(self._fmt_number(a))
            elif isinstance(a, str):
                parts.append(a)
            elif isinstance(a, _Node):
                parts.append(f"table: {a.name}")
            else:
                parts.append(str(self._api.tostring(a)))
        self._reply("\t".join(parts))

    def _emit_numbers(self, values: list[float]) -> None:
        if self.fmt.data == FORMAT_ASCII:
            self._reply(", ".join(self._fmt_number(v) for v in values))
            return
        order = "<" if self.fmt.byteorder == BYTEORDER_LITTLE else ">"
        dtype = order + ("f4" if self.fmt.data == FORMAT_REAL32 else "f8")
        with np.errstate(over="ignore"):
            payload = np.asarray(values, dtype=float).astype(dtype).tobytes()
        self._reply_bytes(b"#0" + payload + b"\n")

    def _printnumber(self, *args: Any) -> None:
        values = [_number(a, f"printnumber() argument {n + 1}") for n, a in enumerate(args)]
        self._emit_numbers(values)

    def _printbuffer(self, *args: Any) -> None:
        if len(args) < 3:
            raise TspError(RUNTIME_ERROR, "printbuffer(start, end, buffer, ...): at least one buffer expected")
        start = _number(args[0], "printbuffer() start index")
        end = _number(args[1], "printbuffer() end index")
        columns = []
        for n, a in enumerate(args[2:]):
            if isinstance(a, _BufferFieldNode):
                columns.append((a.buffer, a.field))
            elif isinstance(a, _BufferNode):
                columns.append((a.buffer, "readings"))
            else:
                raise TspError(RUNTIME_ERROR, f"printbuffer() argument {n + 3}: reading buffer expected, got {_lua_type_name(a)}")
        lo, hi = int(start), int(end)
        if lo != start or hi != end:
            raise TspError(RUNTIME_ERROR, "printbuffer(): indexes must be whole numbers")
        if hi < lo:
            self._emit_numbers([])
            return
        if lo < 1:
            raise TspError(PARAMETER_TOO_SMALL, f"Parameter too small: printbuffer() start index {lo}, minimum 1")
        data = []
        for buf, name in columns:
            if hi > buf.n:
                raise TspError(PARAMETER_TOO_BIG, f"Parameter too big: printbuffer() end index {hi}, {buf.name} holds {buf.n} readings")
            data.append(buf.field(name)[lo - 1 : hi])
        values = [col[j] for j in range(hi - lo + 1) for col in data]
        self._emit_numbers(values)
