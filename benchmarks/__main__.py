"""Run the benchmarks: ``python -m benchmarks [name ...]``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def main(argv: list[str]) -> int:
    names = sorted(m.name[len("bench_") :] for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))
    chosen = argv or names
    unknown = set(chosen) - set(names)
    if unknown:
        print(f"unknown benchmark(s) {sorted(unknown)}; available: {names}", file=sys.stderr)
        return 2
    from .common import PAGES, PRINTED, markdown_table, write_page

    for name in chosen:
        t0 = time.perf_counter()
        PRINTED.clear()
        PAGES.clear()
        importlib.import_module(f"benchmarks.bench_{name}").main()
        if PRINTED and not PAGES:  # every table a benchmark prints lands in the docs it feeds
            write_page(f"docs/bench/{name}.md", [markdown_table(t, h, [[c.strip() for c in r] for r in rows]) for t, h, rows in PRINTED])
        print(f"[{name}: {time.perf_counter() - t0:.1f} s]\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
