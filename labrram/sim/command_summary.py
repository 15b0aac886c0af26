"""How much of each manual's command set the emulators implement, computed from the command
tables (``python -m labrram.sim.command_summary`` prints the Markdown table that
docs/instruments.md holds; a test keeps the page in step with the tables)."""

from __future__ import annotations

from collections import Counter

from .scpi_table import CommandSpec, load_table

#: instrument -> (command table, manual it follows)
TABLES = {
    "Keithley 2400": ("keithley2400_commands.csv", "2400 Series SourceMeter User's Manual, section 18"),
    "Keysight B2902A": ("keysight_b2900_commands.csv", "B2900 SCPI Command Reference, chapter 4"),
    "Keithley 2636B": ("keithley2600_attributes.csv", "Series 2600B Reference Manual, section 7 (TSP commands)"),
}


def _subsystem(spec: CommandSpec) -> str:
    """``[:SENSe[1]]:CURRent...`` -> ``SENSe``; ``*RST`` -> ``common (*)``; ``smua.source.levelv`` -> ``smuX.source``."""
    header = spec.header
    if header.startswith("*"):
        return "common (*)"
    if header.startswith("smu"):
        parts = header.split(".")
        return "smuX." + parts[1] if len(parts) > 2 else "smuX"
    if "." in header and not header.startswith(("[", ":")):
        return header.split(".")[0]
    node = header.lstrip("[:").split(":")[0].split("[")[0].rstrip("0123456789]")
    return node


def summary(table_file: str) -> dict[str, Counter]:
    """Count a command table's rows per subsystem.

    Parameters
    ----------
    table_file : str
        A command table in :mod:`labrram.sim`.

    Returns
    -------
    dict of str to Counter
        Per subsystem: ``rows``, ``emulated`` and ``stored`` counts.
    """
    out: dict[str, Counter] = {}
    for spec in load_table(table_file):
        c = out.setdefault(_subsystem(spec), Counter())
        c["rows"] += 1
        c[spec.support] += 1
    return out


def markdown() -> str:
    """The Markdown summary of every command table."""
    lines = []
    for name, (table_file, manual) in TABLES.items():
        try:
            per = summary(table_file)
        except FileNotFoundError:
            continue
        total = sum((c for c in per.values()), Counter())
        lines.append(f"### {name}")
        lines.append("")
        lines.append(
            f"{total['rows']} commands and queries from the {manual}: {total['emulated']} emulated, "
            f"{total['stored']} stored (validated and answered, no simulated physics). Table: `labrram/sim/{table_file}`."
        )
        lines.append("")
        lines.append("| subsystem | rows | emulated | stored |")
        lines.append("|---|---:|---:|---:|")
        for sub in sorted(per):
            c = per[sub]
            lines.append(f"| {sub} | {c['rows']} | {c['emulated']} | {c['stored']} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")
