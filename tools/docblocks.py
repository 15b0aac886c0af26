"""Run the code blocks of labrram's documentation against the simulated bench.

    python tools/docblocks.py README.md docs/protocols.md      # run the pages' blocks
    python tools/docblocks.py --write README.md                # ... and rewrite the outputs they show

Every ```python and ```console block of README.md, docs/*.md, docs/howto/*.md and docs/methods/*.md runs, in page
order, in one temporary folder per page (which holds links to the repository's ``examples/`` and
``tests/`` folders, so repository-relative paths work as in a clone) and one Python namespace per
page. A console block's ``$ labrram ...`` lines run through the command's ``main()``, in this
process; the lines under a command are what it printed, compared with what it prints now once
every number is masked (``--write`` puts the numbers of this run in). HTML comments on the lines
right above a block say how it is treated:

``<!-- illustrative: REASON -->``
    not run (hardware-only files, a cluster on other machines, a fragment of a longer program);
    the reason is required.
``<!-- tested: tests/PATH.py::TEST -->``
    run by that test instead (which must exist).
``<!-- slow -->``
    run only with the slow tests (``pytest -m slow``), after the page's other blocks.
``<!-- requires: MODULE -->``
    needs an optional extra (torch, distributed, xarray, ...): skipped when it is not installed.
``<!-- output: ... -->``
    where the outputs shown under the block's commands came from (written by ``--write``).

tests/test_docs_blocks.py collects every page through this module.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page)
#: repository folders a page may name by a relative path (linked into the page's folder)
LINKED = ("examples", "tests")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<key>illustrative|tested|slow|requires|output)\s*(?::\s*(?P<value>.*?))?\s*-->\s*$")
#: a number as commands print it: 12, -3.5, 2.1e-06, 16,072, 97.3
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")


def pages() -> list[Path]:
    """The documentation pages whose blocks must run (generated benchmark pages excluded)."""
    docs = ROOT / "docs"
    return [ROOT / "README.md", *sorted(docs.glob("*.md")), *sorted((docs / "howto").glob("*.md")), *sorted((docs / "methods").glob("*.md"))]


@dataclass
class Command:
    """One ``$ ...`` line of a console block and the output lines shown under it."""

    line: int  #: 1-based line of the command in the page
    text: str
    output: list[str] = field(default_factory=list)
    output_lines: tuple[int, int] = (0, 0)  #: [start, end) 0-based page lines of the output

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text, comments=True)


@dataclass
class Block:
    """A fenced code block of a page, with the markers right above it."""

    page: Path
    line: int  #: 1-based line of the opening fence
    lang: str
    code: str
    markers: dict[str, str]
    commands: list[Command] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{_rel(self.page)}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in ("python", "console") and "illustrative" not in self.markers and "tested" not in self.markers


def parse(page: Path) -> list[Block]:
    """The ```python and ```console blocks of ``page``, in order."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or not m["lang"]:
            if m:  # an unlabelled fence: skip to its end
                i += 1
                while i < len(lines) and not _FENCE.match(lines[i]):
                    i += 1
            i += 1
            continue
        indent, lang, start = m["indent"], m["lang"], i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1
        if lang not in ("python", "console"):
            continue
        markers: dict[str, str] = {}
        j = start - 1
        while j >= 0 and (mm := _MARKER.match(lines[j])):
            markers.setdefault(mm["key"], mm["value"] or "")
            j -= 1
        block = Block(page, start + 1, lang, "\n".join(body), markers)
        if lang == "console":
            for k, text in enumerate(body):
                n = start + 1 + k  # 0-based page line
                if text.startswith("$ "):
                    block.commands.append(Command(n + 1, text[2:], output_lines=(n + 1, n + 1)))
                elif block.commands:
                    c = block.commands[-1]
                    c.output.append(text)
                    c.output_lines = (c.output_lines[0], n + 1)
                else:
                    raise ValueError(f"{block.where}: a console block's first line must be a `$ ` command, got {text!r}")
        blocks.append(block)
    return blocks


def check_markers(block: Block) -> None:
    """A marker that is not honoured is an error: a reason, an existing test."""
    if "illustrative" in block.markers and not block.markers["illustrative"]:
        raise ValueError(f"{block.where}: `<!-- illustrative: REASON -->` needs a reason")
    if "tested" in block.markers:
        target = block.markers["tested"]
        path, _, name = target.partition("::")
        test = ROOT / path
        if not name or not test.is_file() or not re.search(rf"^def {re.escape(name)}\(", test.read_text(), re.M):
            raise ValueError(f"{block.where}: `<!-- tested: {target} -->` names no test (expected tests/FILE.py::test_name)")


def mask(lines: list[str]) -> list[str]:
    """Output lines with every number replaced by ``#`` and runs of spaces (and table rules) folded."""
    out = []
    for line in lines:
        line = _NUMBER.sub("#", line.rstrip())
        line = re.sub(r"[─━═]+", "─", line)
        out.append(re.sub(r"\s+", " ", line))
    return [line for line in out if line.strip()]


class Runner:
    """Runs one page's blocks in order, in one folder and one Python namespace."""

    def __init__(self, folder: Path, *, check_outputs: bool = True):
        self.folder = folder
        self.check_outputs = check_outputs
        self.namespace: dict[str, object] = {"__name__": "__main__"}  # as a script saved from the page runs
        for name in LINKED:
            if not (folder / name).exists():
                (folder / name).symlink_to(ROOT / name, target_is_directory=True)

    def run(self, block: Block) -> list[tuple[Command, str]]:
        """Run ``block`` (in the page's folder); return each command with what it printed.
        Raises AssertionError naming the block and line on a failure."""
        old = os.getcwd()
        os.chdir(self.folder)
        try:
            if block.lang == "python":
                try:
                    exec(compile(block.code, block.where, "exec"), self.namespace)
                except Exception as exc:
                    raise AssertionError(f"{block.where}: the python block raised {type(exc).__name__}: {exc}") from exc
                return []
            return [(c, self._command(block, c)) for c in block.commands]
        finally:
            os.chdir(old)

    def _command(self, block: Block, command: Command) -> str:
        from labrram.cli import main

        argv = command.argv
        where = f"{_rel(block.page)}:{command.line}"
        if not argv or argv[0] != "labrram":
            raise AssertionError(f"{where}: `{command.text}` is not a `labrram` command; run it elsewhere or mark the block "
                                 "`<!-- illustrative: REASON -->`")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv[1:])
            except SystemExit as exc:  # --help, --version
                code = exc.code if isinstance(exc.code, int) else 0
        if code != 0:
            raise AssertionError(f"{where}: `{command.text}` exited {code}: {err.getvalue().strip()[-500:]}")
        printed = out.getvalue()
        if self.check_outputs and command.output and mask(command.output) != mask(printed.splitlines()):
            raise AssertionError(f"{where}: `{command.text}` no longer prints what the page shows (numbers aside); "
                                 f"run `python tools/docblocks.py --write {_rel(block.page)}`.\n"
                                 f"page:\n" + "\n".join(command.output) + "\nnow:\n" + printed)
        return printed


def missing(block: Block) -> list[str]:
    """The modules a block ``requires`` that are not installed."""
    import importlib.util

    names = [n.strip() for n in block.markers.get("requires", "").split(",") if n.strip()]
    return [n for n in names if importlib.util.find_spec(n) is None]


def run_page(page: Path, folder: Path, *, slow: bool, check_outputs: bool = True) -> tuple[list[tuple[Block, list[tuple[Command, str]]]], list[Block]]:
    """Run ``page``'s runnable blocks in ``folder``: those not marked slow, then (``slow``) the
    slow ones. Returns each block run with its commands' outputs, and the blocks skipped
    because a module they require is not installed."""
    runner = Runner(folder, check_outputs=check_outputs)
    blocks = parse(page)
    for b in blocks:
        check_markers(b)
    todo = [b for b in blocks if b.runnable and "slow" not in b.markers]
    if slow:
        todo += [b for b in blocks if b.runnable and "slow" in b.markers]
    skipped = [b for b in todo if missing(b)]
    return [(b, runner.run(b)) for b in todo if b not in skipped], skipped


def _provenance() -> str:
    sys.path.insert(0, str(ROOT))
    from benchmarks.common import provenance

    return f"printed by this run ({provenance()}; python tools/docblocks.py --write)"


def write_outputs(page: Path, results: list[tuple[Block, list[tuple[Command, str]]]]) -> int:
    """Replace the outputs shown under ``page``'s commands with what they printed; mark the
    blocks with where the outputs came from. Returns the number of outputs rewritten."""
    lines = page.read_text().splitlines()
    note = f"<!-- output: {_provenance()} -->"
    changes: list[tuple[int, int, list[str]]] = []  # (start, end, new lines) on 0-based lines, disjoint
    n = 0
    for block, outputs in results:
        shown = [(c, printed) for c, printed in outputs if c.output]
        if not shown:
            continue
        for c, printed in shown:
            changes.append((c.output_lines[0], c.output_lines[1], [line.rstrip() for line in printed.rstrip("\n").splitlines()]))
            n += 1
        fence = block.line - 1
        start = fence
        while start > 0 and _MARKER.match(lines[start - 1]):
            start -= 1
        kept = [line for line in lines[start:fence] if _MARKER.match(line)["key"] != "output"]
        changes.append((start, fence, kept + [note]))
    for start, end, new in sorted(changes, reverse=True):
        lines[start:end] = new
    page.write_text("\n".join(lines) + "\n")
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pages", nargs="*", type=Path, help="pages to run (default: every page)")
    parser.add_argument("--write", action="store_true", help="rewrite the outputs the pages show with this run's")
    parser.add_argument("--fast", action="store_true", help="skip the blocks marked slow")
    args = parser.parse_args(argv)
    for page in [p.resolve() for p in args.pages] or pages():
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                results, skipped = run_page(page, Path(tmp), slow=not args.fast, check_outputs=not args.write)
            except AssertionError as exc:
                if not args.write:
                    print(exc, file=sys.stderr)
                    return 1
                raise
        n = len(results)
        for b in skipped:
            print(f"{b.where}: skipped, needs {', '.join(missing(b))}")
        if args.write:
            n_out = write_outputs(page, results)
            print(f"{_rel(page)}: {n} blocks ran, {n_out} outputs written ({time.perf_counter() - t0:.1f} s)")
        else:
            print(f"{_rel(page)}: {n} blocks ran ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
