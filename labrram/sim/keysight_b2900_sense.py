"""Keysight B2902A SENSe subsystem: measurement functions, compliance, integration time
(NPLC / aperture) and measurement ranges.

A mixin of :class:`~labrram.sim.keysight_b2900.KeysightB2902`, which provides the channel
state and the value helpers.
"""

from __future__ import annotations

from typing import Iterable

from .keysight_b2900_constants import APERTURE_MAX, APERTURE_MIN, CURRENT_RANGES, VOLTAGE_RANGES
from .scpi import ILLEGAL_PARAMETER, MISSING_PARAMETER, Call, command, error


class SenseB2900:
    """The ``:SENSe[c]`` commands of the B2900."""

    # --- sense: functions ---------------------------------------------------------------
    @staticmethod
    def _parse_funcs(call: Call) -> list[str]:
        if not call.args:
            raise error(MISSING_PARAMETER, 'expected functions such as "CURR","VOLT"')
        out: list[str] = []
        for k in range(len(call.args)):
            for name in call.string(k).upper().split(","):
                name = name.strip().strip("'\"").replace(":DC", "")
                canon = {"VOLT": "VOLT", "VOLTAGE": "VOLT", "CURR": "CURR", "CURRENT": "CURR", "RES": "RES", "RESISTANCE": "RES"}.get(name)
                if canon is None:
                    raise error(ILLEGAL_PARAMETER, f"unknown sense function {name!r} (CURR, VOLT or RES)")
                out.append(canon)
        return out

    @staticmethod
    def _funcs_reply(funcs: Iterable[str]) -> str:
        order = ("VOLT", "CURR", "RES")
        return ",".join(f'"{f}"' for f in order if f in set(funcs))

    @command(":SENSe[1]:FUNCtion[:ON]")
    def _sens_func(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return self._funcs_reply(st.sense_funcs)
        st.sense_funcs |= set(self._parse_funcs(call))
        return None

    @command(":SENSe[1]:FUNCtion:OFF")
    def _sens_func_off(self, call: Call) -> str | None:
        st = self._st(call)
        if call.query:
            return self._funcs_reply({"VOLT", "CURR", "RES"} - st.sense_funcs)
        st.sense_funcs -= set(self._parse_funcs(call))
        return None

    @command(":SENSe[1]:FUNCtion[:ON]:ALL", query=False)
    def _sens_func_all(self, call: Call) -> None:
        self._st(call).sense_funcs = {"VOLT", "CURR", "RES"}

    @command(":SENSe[1]:FUNCtion:OFF:ALL", query=False)
    def _sens_func_off_all(self, call: Call) -> None:
        self._st(call).sense_funcs = set()

    @command(":SENSe[1]:FUNCtion[:ON]:COUNt", write=False)
    def _sens_func_count(self, call: Call) -> str:
        return str(len(self._st(call).sense_funcs))

    @command(":SENSe[1]:FUNCtion:OFF:COUNt", write=False)
    def _sens_func_off_count(self, call: Call) -> str:
        return str(3 - len(self._st(call).sense_funcs))

    @command(":SENSe[1]:FUNCtion:STATe", write=False)
    def _sens_func_state(self, call: Call) -> str:
        funcs = self._parse_funcs(call)
        return self._bool(funcs[0] in self._st(call).sense_funcs)

    # --- sense: compliance ----------------------------------------------------------------
    def _prot(self, call: Call, func: str) -> str | None:
        st, c = self._st(call), self._number(call)
        hi = self._limit_of(func)
        default = 1e-4 if func == "CURR" else 2.0
        if call.query:
            return self._num_query(call, st.prot[func], 0.0, hi, default)
        call.expect_args(1)
        st.prot[func] = abs(call.number(0, -hi, hi, default=default))
        self._apply_limits(c)
        return None

    @command(":SENSe[1]:CURRent[:DC]:PROTection[:LEVel]")
    def _prot_curr(self, call: Call) -> str | None:
        return self._prot(call, "CURR")

    @command(":SENSe[1]:VOLTage[:DC]:PROTection[:LEVel]")
    def _prot_volt(self, call: Call) -> str | None:
        return self._prot(call, "VOLT")

    @command(":SENSe[1]:CURRent[:DC]:PROTection:TRIPped", write=False)
    def _prot_curr_trip(self, call: Call) -> str:
        st = self._st(call)
        return self._bool(st.tripped and st.func == "VOLT")

    @command(":SENSe[1]:VOLTage[:DC]:PROTection:TRIPped", write=False)
    def _prot_volt_trip(self, call: Call) -> str:
        st = self._st(call)
        return self._bool(st.tripped and st.func == "CURR")

    # --- sense: integration time --------------------------------------------------------------
    @command(":SENSe[1]:CURRent[:DC]:NPLCycles")
    @command(":SENSe[1]:VOLTage[:DC]:NPLCycles")
    @command(":SENSe[1]:RESistance:NPLCycles")
    def _nplc(self, call: Call) -> str | None:
        """NPLC, common to all functions; out-of-range values are set to MIN/MAX (manual)."""
        st = self._st(call)
        lo, hi = APERTURE_MIN * self.line_freq, APERTURE_MAX * self.line_freq
        if call.query:
            return self._num_query(call, st.nplc, lo, hi, 0.1)
        call.expect_args(1)
        st.nplc = self._clamped(call, lo, hi, 0.1)
        return None

    @command(":SENSe[1]:CURRent[:DC]:APERture")
    @command(":SENSe[1]:VOLTage[:DC]:APERture")
    @command(":SENSe[1]:RESistance:APERture")
    def _aper(self, call: Call) -> str | None:
        """Integration time in seconds, coupled to NPLC (time = nplc / line frequency)."""
        st = self._st(call)
        if call.query:
            return self._num_query(call, self._aperture(st), APERTURE_MIN, APERTURE_MAX, 0.1 / self.line_freq)
        call.expect_args(1)
        st.nplc = self._clamped(call, APERTURE_MIN, APERTURE_MAX, 0.1 / self.line_freq) * self.line_freq
        return None

    # --- sense: ranges ------------------------------------------------------------------
    def _meas_range(self, call: Call, func: str) -> str | None:
        st = self._st(call)
        ranges = VOLTAGE_RANGES if func == "VOLT" else CURRENT_RANGES
        if call.query:
            return self._num_query(call, st.meas_range[func], ranges[0], ranges[-1], ranges[-1])
        call.expect_args(1)
        hi = self._limit_of(func)
        value = call.number(0, -hi, hi, default=ranges[-1])
        st.meas_range[func] = self._range_for(value, ranges)
        st.meas_auto[func] = False
        return None

    def _meas_auto(self, call: Call, func: str) -> str | None:
        st = self._st(call)
        if call.query:
            return self._bool(st.meas_auto[func])
        st.meas_auto[func] = call.boolean(0)
        return None

    @command(":SENSe[1]:CURRent[:DC]:RANGe[:UPPer]")
    def _sens_curr_range(self, call: Call) -> str | None:
        return self._meas_range(call, "CURR")

    @command(":SENSe[1]:VOLTage[:DC]:RANGe[:UPPer]")
    def _sens_volt_range(self, call: Call) -> str | None:
        return self._meas_range(call, "VOLT")

    @command(":SENSe[1]:CURRent[:DC]:RANGe:AUTO")
    def _sens_curr_auto(self, call: Call) -> str | None:
        return self._meas_auto(call, "CURR")

    @command(":SENSe[1]:VOLTage[:DC]:RANGe:AUTO")
    def _sens_volt_auto(self, call: Call) -> str | None:
        return self._meas_auto(call, "VOLT")

