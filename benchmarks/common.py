"""Small helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def timed(fn: Callable[[], object], repeat: int = 5) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``repeat`` runs, and all the times (s)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


#: the tables printed since the current benchmark started, and whether it wrote its own page
#: (``python -m benchmarks`` writes docs/bench/NAME.md from the tables when it did not)
PRINTED: list[tuple[str, list[str], list[list[str]]]] = []
PAGES: list[str] = []


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print an aligned plain-text table (and keep it for the benchmark's page)."""
    PRINTED.append((title, list(header), [list(map(str, r)) for r in rows]))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    print(title)
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


def provenance() -> str:
    """Which commit and machine produced a table: ``commit abc1234 (+ local changes), Linux
    x86_64, 2 CPUs, Python 3.11.7, 2026-12-01``."""
    import datetime as dt
    import os
    import platform
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        # the pages the benchmarks write (docs/) are outputs, not local changes of the code
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", ""
    where = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    return f"commit {commit or 'unknown'}{' (+ local changes)' if dirty else ''}, {where}, {dt.date.today().isoformat()}"


def markdown_table(title: str, header: list[str], rows: list[list[str]], notes: str = "") -> str:
    """A table in Markdown, with the commit and machine that produced it."""
    lines = [f"**{title}**", "", f"_{provenance()}_", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(str(x).strip() for x in row) + " |" for row in rows]
    if notes:
        lines += ["", notes]
    return "\n".join(lines)


def write_page(path: str, sections: list[str]) -> None:
    """Write Markdown sections (e.g. :func:`markdown_table`) as one file that the docs include
    (docs never carry a number pasted by hand)."""
    from pathlib import Path

    out = Path(__file__).resolve().parent.parent / path
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n\n".join(["<!-- written by `python -m benchmarks`; do not edit -->", *sections]) + "\n")
    PAGES.append(path)
    print(f"(written to {path})")


def write_markdown(path: str, title: str, header: list[str], rows: list[list[str]], notes: str = "") -> None:
    """Write one table as a Markdown file that the docs include (:func:`write_page`)."""
    write_page(path, [markdown_table(title, header, rows, notes)])
