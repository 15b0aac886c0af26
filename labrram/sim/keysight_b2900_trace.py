"""Keysight B2902A trace buffers (``:TRACe[c]`` subsystem of the B2900 SCPI Command Reference):
one buffer per channel that collects readings while ``:TRAC:FEED:CONT NEXT`` is set, its data,
its statistics and its time stamps.

A mixin of :class:`~labrram.sim.keysight_b2900.KeysightB2902`; the trigger model hands every
reading to :meth:`TraceB2900._trace_store`. Only the ``SENSe`` feed carries data (math results
and limit tests are not emulated, so the ``MATH`` and ``LIMit`` feeds stay empty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .keysight_b2900_constants import CHANNELS, DATA_STALE, _error
from .scpi import Call, command, error, format_nr3

if TYPE_CHECKING:  # pragma: no cover
    from .keysight_b2900_trigger import _Reading

TRACE_MAX = 100000  # readings per channel buffer
STATISTICS = ("MEAN", "SDEViation", "MINimum", "MAXimum", "PKPK")


@dataclass
class _Trace:
    """One channel's trace buffer at its ``*RST`` settings."""

    points: int = TRACE_MAX
    feed: str = "SENS"
    control: str = "NEV"
    tstamp: str = "ABS"
    statistic: str = "MEAN"
    data: list["_Reading"] = field(default_factory=list)


def _short(keyword: str) -> str:
    return "".join(ch for ch in keyword if ch.isupper()) or keyword.upper()


class TraceB2900:
    """The ``:TRACe[c]`` commands of the B2900."""

    def reset_traces(self) -> None:
        self.traces = {c: _Trace() for c in CHANNELS}

    def _trace_store(self, channel: int, reading: "_Reading") -> None:
        tr = self.traces[channel]
        if tr.control == "NEXT" and tr.feed == "SENS":
            tr.data.append(reading)
            if len(tr.data) >= tr.points:
                tr.control = "NEV"  # a full buffer stops collecting

    def _trace(self, call: Call) -> _Trace:
        return self.traces[self._number(call)]

    @command(":TRACe[1]:CLEar", query=False)
    def _trace_clear(self, call: Call) -> None:
        self._trace(call).data = []

    @command(":TRACe[1]:POINts")
    def _trace_points(self, call: Call) -> str | None:
        tr = self._trace(call)
        if call.query:
            return str(tr.points)
        value = call.integer(0, 1, TRACE_MAX, default=TRACE_MAX)
        if value < len(tr.data):
            raise error(-221, f"the buffer already holds {len(tr.data)} readings")
        tr.points = value
        return None

    @command(":TRACe[1]:POINts:ACTual", write=False)
    def _trace_actual(self, call: Call) -> str:
        return str(len(self._trace(call).data))

    @command(":TRACe[1]:FREE", write=False)
    def _trace_free(self, call: Call) -> str:
        tr = self._trace(call)
        return f"{tr.points - len(tr.data)},{len(tr.data)}"

    @command(":TRACe[1]:FEED")
    def _trace_feed(self, call: Call) -> str | None:
        tr = self._trace(call)
        if call.query:
            return tr.feed
        tr.feed = _short(next(o for o in ("SENSe", "MATH", "LIMit") if o.upper() == call.choice(0, ["SENSe", "MATH", "LIMit"])))
        return None

    @command(":TRACe[1]:FEED:CONTrol")
    def _trace_control(self, call: Call) -> str | None:
        tr = self._trace(call)
        if call.query:
            return tr.control
        tr.control = "NEXT" if call.choice(0, ["NEVer", "NEXT"]) == "NEXT" else "NEV"
        return None

    @command(":TRACe[1]:TSTamp:FORMat")
    def _trace_tstamp(self, call: Call) -> str | None:
        tr = self._trace(call)
        if call.query:
            return tr.tstamp
        tr.tstamp = "DELT" if call.choice(0, ["ABSolute", "DELTa"]) == "DELTA" else "ABS"
        return None

    @command(":TRACe[1]:STATistic:FORMat")
    def _trace_stat_format(self, call: Call) -> str | None:
        tr = self._trace(call)
        if call.query:
            return tr.statistic
        tr.statistic = _short(next(o for o in STATISTICS if o.upper() == call.choice(0, STATISTICS)))
        return None

    def _trace_rows(self, call: Call, tr: _Trace) -> list["_Reading"]:
        rows = tr.data
        if call.args:  # offset[, size]
            offset = call.integer(0, 0, max(len(rows) - 1, 0))
            size = call.integer(1, 1, len(rows) - offset) if len(call.args) > 1 else len(rows) - offset
            rows = rows[offset : offset + size]
        return rows

    @command(":TRACe[1]:DATA", write=False)
    def _trace_data(self, call: Call) -> str:
        tr = self._trace(call)
        if not tr.data:
            raise _error(DATA_STALE, f"trace buffer {self._number(call)} is empty")
        rows = self._trace_rows(call, tr)
        if tr.tstamp == "DELT":
            t0 = tr.data[0].time
            rows = [type(r)(r.volt, r.curr, r.res, r.time - t0, r.stat, r.sour) for r in rows]
        c = self._number(call)
        return self._emit(self._element_values([(c, r) for r in rows], None))

    @command(":TRACe[1]:STATistic:DATA", write=False)
    def _trace_stat_data(self, call: Call) -> str:
        """The statistic of each measured element (voltage, current, resistance) over the buffer."""
        tr = self._trace(call)
        if not tr.data:
            raise _error(DATA_STALE, f"trace buffer {self._number(call)} is empty")
        data = np.array([[r.volt, r.curr, r.res] for r in tr.data], dtype=float)
        fn = {
            "MEAN": lambda x: float(np.mean(x)),
            "SDEV": lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else 0.0,
            "MIN": lambda x: float(np.min(x)),
            "MAX": lambda x: float(np.max(x)),
            "PKPK": lambda x: float(np.ptp(x)),
        }[tr.statistic]
        st = self.state[self._number(call)]
        cols = [k for k, f in enumerate(("VOLT", "CURR", "RES")) if f in st.sense_funcs and f in self.elements]
        return ",".join(format_nr3(fn(data[:, k])) for k in cols)
