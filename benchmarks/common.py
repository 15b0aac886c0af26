"""Small helpers shared by the benchmarks."""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import Any, Callable


def timed(fn: Callable[[], object], repeat: int = 5) -> tuple[float, list[float]]:
    """Median wall time of ``fn`` over ``repeat`` runs, and all the times (s)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


#: slack of a target comparison: accuracies count whole test images, so a mean over deployments
#: can equal a target's limit exactly, and a floating-point sum must not tip it over
TARGET_SLACK = 1e-9


def against(value: float, limit: float, at_most: bool, sign: str = "") -> tuple[str, str]:
    """A measured value judged against a target's limit: its text, and ``"met"`` / ``"not met"``.

    The text has 2 decimals, or 3 when 2 would show it equal to ``limit`` (the status is judged
    on the unrounded value, with :data:`TARGET_SLACK`). ``at_most``: the target is
    ``value ≤ limit`` (else ``value ≥ limit``); ``sign``: ``"+"`` to always show the sign.
    """
    digits = 3 if round(value, 2) == limit else 2
    ok = value <= limit + TARGET_SLACK if at_most else value >= limit - TARGET_SLACK
    return f"{value:{sign}.{digits}f}", "met" if ok else "not met"


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
    x86_64 (AMD EPYC, torch AVX512), 2 CPUs, Python 3.11.7, 2026-12-01``."""
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
    where = f"{platform.system()} {platform.machine()}{_cpu()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    return f"commit {commit or 'unknown'}{' (+ local changes)' if dirty else ''}, {where}, {dt.date.today().isoformat()}"


def _cpu() -> str:
    """`` (AMD EPYC, torch AVX512)``: the processor model, and the instruction set torch's CPU
    kernels chose when torch is loaded — a network trained on another processor can come out
    different from the same code and seeds."""
    import sys

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    torch = sys.modules.get("torch")
    isa = ""
    if torch is not None:
        try:
            isa = f"torch {torch.backends.cpu.get_cpu_capability()}"
        except Exception:  # an older torch without the query
            isa = ""
    parts = [x for x in (model, isa) if x]
    return f" ({', '.join(parts)})" if parts else ""


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


def write_section(path: str, name: str, sections: list[str]) -> None:
    """Replace the generated part of a hand-written page (e.g. a method page in docs/methods/)
    between ``<!-- generated by python -m benchmarks NAME: begin -->`` and ``<!-- ...: end -->``
    with Markdown sections (:func:`markdown_table`); the text around it stays as written.

    Raises
    ------
    ValueError
        If the page lacks the two markers (add them where the tables belong).
    """
    from pathlib import Path

    out = Path(__file__).resolve().parent.parent / path
    begin, end = f"<!-- generated by python -m benchmarks {name}: begin -->", f"<!-- generated by python -m benchmarks {name}: end -->"
    text = out.read_text()
    if begin not in text or end not in text or text.index(begin) > text.index(end):
        raise ValueError(f"{path} has no '{begin}' … '{end}' markers for the generated tables")
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    out.write_text(head + begin + "\n\n" + "\n\n".join(sections) + "\n\n" + end + tail)
    PAGES.append(path)
    print(f"(written to {path}, between the markers)")


def fashion_mnist_missing(label: str) -> bool:
    """True, after printing why benchmark ``label`` is skipped, when the Fashion-MNIST IDX files
    are not installed (``make fashion-mnist``)."""
    from labrram.nn.datasets import load_fashion_mnist

    try:
        load_fashion_mnist("test", limit=1)
    except FileNotFoundError as exc:
        print(f"{label}: skipped: {exc}")
        return True
    return False


def env_int(name: str, default: int) -> int:
    """The integer environment variable ``name`` (``default`` when unset); a SystemExit naming it
    when it is not an integer."""
    return _env_number(name, default, int, "an integer")


def env_float(name: str, default: float) -> float:
    """The finite number in environment variable ``name`` (``default`` when unset); a SystemExit
    naming it when it is not one."""
    value = _env_number(name, default, float, "a number")
    if not math.isfinite(value):
        raise SystemExit(f"{name} must be a finite number, got {value!r}")
    return value


def _env_number(name: str, default: Any, kind: Callable[[str], Any], what: str) -> Any:
    text = os.environ.get(name, str(default))
    try:
        return kind(text)
    except ValueError:
        raise SystemExit(f"{name} must be {what}, got {text!r}") from None
