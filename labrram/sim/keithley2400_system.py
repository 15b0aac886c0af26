"""Keithley 2400: signal-oriented commands (``:CONF``, ``:MEAS?``), the math catalogue, the
display, the SYSTem subsystem and saved setups (``*SAV``/``*RCL``).

A mixin of :class:`~labrram.sim.keithley2400.Keithley2400`, which provides the source/sense
state ``self.s``, the trigger settings ``self.t`` and the channel.
"""

from __future__ import annotations

import copy

from .keithley2400_trigger import TRIG_KEY
from .scpi import Call, command, error, format_nr3


class System2400:
    """Signal-oriented, display, system and setup-memory commands of the 2400."""

    # --- signal-oriented commands -----------------------------------------------------------
    def _configure(self, func: str) -> None:
        """``:CONF:<func>``: that function alone, one reading per :READ?, output on."""
        s, t = self.s, self.t
        s.sense_funcs = {func}
        t.arm_count = t.trig_count = 1
        t.arm_source = t.trig_source = "IMM"
        t.trig_delay = 0.0
        if not self.channel.output:
            self.channel.set_output(True)
            self.bench.after_output_change()

    @command(":CONFigure:CURRent[:DC]", query=False)
    def _conf_curr(self, call: Call) -> None:
        self._configure("CURR")

    @command(":CONFigure:VOLTage[:DC]", query=False)
    def _conf_volt(self, call: Call) -> None:
        self._configure("VOLT")

    @command(":CONFigure:RESistance", query=False)
    def _conf_res(self, call: Call) -> None:
        self._configure("RES")

    @command(":CONFigure", write=False)
    def _conf_query(self, call: Call) -> str:
        return self._func_list(self.s.sense_funcs)

    def _measure(self, call: Call, func: str | None) -> str | None:
        if func is not None:
            self._configure(func)
        elif not self.channel.output and not self.s.auto_output_off:
            self.channel.set_output(True)
            self.bench.after_output_change()
        return self._read(call)

    @command(":MEASure", write=False)
    def _meas(self, call: Call) -> str | None:
        return self._measure(call, None)

    @command(":MEASure:CURRent[:DC]", write=False)
    def _meas_curr(self, call: Call) -> str | None:
        return self._measure(call, "CURR")

    @command(":MEASure:VOLTage[:DC]", write=False)
    def _meas_volt(self, call: Call) -> str | None:
        return self._measure(call, "VOLT")

    @command(":MEASure:RESistance", write=False)
    def _meas_res(self, call: Call) -> str | None:
        return self._measure(call, "RES")

    # --- math catalogue, display ---------------------------------------------------------------
    @command(":CALCulate[1]:MATH[:EXPRession]:CATalog", write=False)
    def _math_catalog(self, call: Call) -> str:
        return '"POWER","OFFCOMPOHM","VOLTCOEF","VARALPHA"'

    @command(":DISPlay:ENABle")
    def _disp(self, call: Call) -> str | None:
        return self._flag(call, "display")

    @command(":DISPlay[:WINDow[1]]:DATA", write=False)
    @command(":DISPlay:WINDow2:DATA", write=False)
    def _disp_data(self, call: Call) -> str:
        top = call.suffix(0, 1) == 1 and "WIND2" not in call.header.upper() and "WINDOW2" not in call.header.upper()
        if top:
            i = self.channel.level_i if self.s.source_func == "CURR" else 0.0
            return f'"{format_nr3(self.last[-1][1] if self.last else i, 5)} A"'
        level = self.channel.level_v if self.s.source_func == "VOLT" else self.channel.level_i
        unit = "V" if self.s.source_func == "VOLT" else "A"
        return f'"Vsrc:{level:+09.4f} {unit}"' if unit == "V" else f'"Isrc:{level:+.4E} A"'

    @command(":DISPlay[:WINDow[1]]:ATTRibutes", write=False)
    @command(":DISPlay:WINDow2:ATTRibutes", write=False)
    def _disp_attr(self, call: Call) -> str:
        return '"' + "0" * 20 + '"'

    # --- system ----------------------------------------------------------------------
    @command(":SYSTem:AZERo[:STATe]")
    def _azero(self, call: Call) -> str | None:
        if call.query:
            return "1" if self.s.auto_zero else "0"
        arg = call.string(0).upper()
        if arg == "ONCE":
            self.clock.advance(2 / self.s.line_freq, "operation")  # one reference + zero reading
            return None
        self.s.auto_zero = call.boolean(0)
        return None

    @command(":SYSTem:RSENse")
    def _rsense(self, call: Call) -> str | None:
        return self._flag(call, "remote_sense")

    @command(":SYSTem:BEEPer:STATe")
    def _beeper(self, call: Call) -> str | None:
        return self._flag(call, "beeper")

    @command(":SYSTem:BEEPer[:IMMediate]", query=False)
    def _beep(self, call: Call) -> None:
        call.expect_args(2)
        call.number(0, 65.0, 2e6)
        call.number(1, 0.0, 7.9)

    @command(":SYSTem:LFRequency")
    def _lfreq(self, call: Call) -> str | None:
        if call.query:
            return str(int(self.s.line_freq))
        value = call.number(0, 50.0, 60.0, default=60.0)
        if value not in (50.0, 60.0):
            raise error(-224, "the line frequency is 50 or 60 Hz")
        self.s.line_freq = value
        return None

    @command(":SYSTem:KEY")
    def _key(self, call: Call) -> str | None:
        if call.query:
            return str(self.last_key)
        self.last_key = call.integer(0, 1, 31)
        if self.last_key == TRIG_KEY and self.t.arm_source == "MAN":
            self._event("MAN")
        return None

    @command(":SYSTem:PRESet", query=False)
    def _preset(self, call: Call) -> None:
        self.reset()

    @command(":SYSTem:CLEar", query=False)
    def _syst_clear(self, call: Call) -> None:
        self.errors.clear()

    @command(":SYSTem:VERSion", write=False)
    def _syst_vers(self, call: Call) -> str:
        return "1996.0"

    @command(":SYSTem:LOCal", query=False)
    @command(":SYSTem:REMote", query=False)
    def _local_remote(self, call: Call) -> None:
        return None

    @command(":SYSTem:TIME", write=False)
    def _time(self, call: Call) -> str:
        return format_nr3(self.clock.now - self._t0)

    @command(":SYSTem:TIME:RESet", query=False)
    def _time_reset(self, call: Call) -> None:
        self._t0 = self.clock.now

    @command(":ROUTe:TERMinals")
    def _route_term(self, call: Call) -> str | None:
        if call.query:
            return self.s.terminals
        self.s.terminals = "REAR" if call.choice(0, ["FRONt", "REAR"]) == "REAR" else "FRON"
        return None

    # --- saved setups -------------------------------------------------------------------
    @command("*SAV", query=False)
    def _sav(self, call: Call) -> None:
        slot = call.integer(0, 0, 4)
        self.saved_setups[slot] = (copy.deepcopy(self.s), copy.deepcopy(self.t), dict(self.table_values))

    @command("*RCL", query=False)
    def _rcl(self, call: Call) -> None:
        slot = call.integer(0, 0, 4)
        if slot not in self.saved_setups:
            self.reset()  # an empty slot holds the *RST setup
            return
        s, t, values = self.saved_setups[slot]
        self._abort()
        self.s = copy.deepcopy(s)
        trace = self.t.trace
        self.t = copy.deepcopy(t)
        self.t.trace = trace
        self.table_values = dict(values)
        self.channel.limit_i, self.channel.limit_v = self.s.prot_curr, self.s.prot_volt
        self.channel.set_mode(self.s.source_func)
