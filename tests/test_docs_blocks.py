"""Every ```python and ```console block of README.md, docs/*.md and docs/methods/*.md runs
against the simulated bench (tools/docblocks.py), or is marked: illustrative (with a reason),
tested elsewhere (by a test that exists), slow (run by ``pytest -m slow``). The outputs a page
shows under a command match what the command prints now, numbers aside (the numbers are written
by ``python tools/docblocks.py --write PAGE``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _docblocks():
    spec = importlib.util.spec_from_file_location("docblocks", ROOT / "tools" / "docblocks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("docblocks", module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


docblocks = _docblocks()
PAGES = docblocks.pages()
SLOW_PAGES = [p for p in PAGES if any(b.runnable and "slow" in b.markers for b in docblocks.parse(p))]


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _run(page: Path, tmp_path: Path, slow: bool) -> None:
    results, skipped = docblocks.run_page(page, tmp_path, slow=slow)
    if skipped and not results:
        pytest.skip("needs " + ", ".join(sorted({m for b in skipped for m in docblocks.missing(b)})))


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_the_page_blocks_run(page, tmp_path):
    _run(page, tmp_path, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("page", SLOW_PAGES, ids=_id)
def test_the_page_blocks_run_slow_ones_included(page, tmp_path):
    _run(page, tmp_path, slow=True)


def test_every_page_block_is_run_or_marked():
    """Each page has blocks; each block is run here, by a named test, or marked illustrative with
    a reason — and illustrative stays the exception."""
    counts = {"run": 0, "tested": 0, "illustrative": 0}
    for page in PAGES:
        for block in docblocks.parse(page):
            docblocks.check_markers(block)
            counts["run" if block.runnable else "tested" if "tested" in block.markers else "illustrative"] += 1
    assert counts["run"] > counts["illustrative"], counts


def _page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text)
    return page


def test_a_block_that_fails_or_prints_something_else_fails(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    broken = _page(tmp_path, "```python\nimport labrram\nlabrram.no_such_call()\n```\n")
    with pytest.raises(AssertionError, match="page.md:1: the python block raised AttributeError"):
        docblocks.run_page(broken, folder, slow=False)
    stale = _page(tmp_path, "```console\n$ labrram --version\nlabrram 0.0.1 (beta)\n```\n")
    with pytest.raises(AssertionError, match="no longer prints what the page shows"):
        docblocks.run_page(stale, folder, slow=False)
    fresh = _page(tmp_path, "```console\n$ labrram --version\nlabrram 9.9.9\n```\n")  # numbers aside: the same
    [(block, [(command, printed)])], _ = docblocks.run_page(fresh, folder, slow=False)
    assert printed.startswith("labrram ") and command.output == ["labrram 9.9.9"]
    other = _page(tmp_path, "```console\n$ make calibration\n```\n")
    with pytest.raises(AssertionError, match="not a `labrram` command"):
        docblocks.run_page(other, folder, slow=False)


def test_markers_are_checked_and_honoured(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    no_reason = _page(tmp_path, "<!-- illustrative -->\n```python\nraise SystemExit\n```\n")
    with pytest.raises(ValueError, match="needs a reason"):
        docblocks.run_page(no_reason, folder, slow=False)
    no_test = _page(tmp_path, "<!-- tested: tests/test_docs.py::test_nothing -->\n```python\nraise SystemExit\n```\n")
    with pytest.raises(ValueError, match="names no test"):
        docblocks.run_page(no_test, folder, slow=False)
    marked = _page(tmp_path, "<!-- illustrative: needs hardware -->\n```python\nraise SystemExit\n```\n\n"
                             "<!-- slow -->\n```python\nx = 1\n```\n\n"
                             "<!-- requires: no_such_module_xyz -->\n```python\nraise SystemExit\n```\n")
    ran, skipped = docblocks.run_page(marked, folder, slow=False)
    assert ran == [] and [b.line for b in skipped] == [12]
    ran, skipped = docblocks.run_page(marked, folder, slow=True)
    assert [b.line for b, _ in ran] == [7] and [b.line for b in skipped] == [12]


def test_write_puts_this_runs_output_under_the_command(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    page = _page(tmp_path, "text\n\n```console\n$ labrram --version\nold\nlines\n```\n")
    results, _ = docblocks.run_page(page, folder, slow=False, check_outputs=False)
    assert docblocks.write_outputs(page, results) == 1
    lines = page.read_text().splitlines()
    assert lines[2].startswith("<!-- output: printed by this run (commit ")
    assert lines[3:6] == ["```console", "$ labrram --version", results[0][1][0][1].strip()] and lines[6] == "```"
    docblocks.run_page(page, folder, slow=False)  # the page now holds what it prints
