"""The Python API page runs: its blocks are examples/python_api_tour.py's, and they run against
the simulated bench (the page itself is written by that script, outputs included)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tour():
    spec = importlib.util.spec_from_file_location("python_api_tour", ROOT / "examples" / "python_api_tour.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_python_api_page_holds_the_tour_and_the_tour_runs(tmp_path, monkeypatch):
    pytest.importorskip("xarray")
    tour = _tour()
    page = (ROOT / "docs" / "python-api.md").read_text()
    for _, code in tour.BLOCKS:
        assert f"```python\n{code}\n```" in page  # the page is not stale
    monkeypatch.chdir(tmp_path)
    outputs = tour.run_blocks()
    assert outputs[0].split()[0] == "reram"
    assert "converged" in outputs[3] and "stopped: interrupted" in outputs[5]
    logged, _, summed = outputs[6].splitlines()[-1].split(":")[1].split()
    assert logged == summed  # every logged pulse is counted once per device


def test_every_name_the_api_page_uses_is_exported_from_labrram():
    import labrram

    for name in ("characterize", "calibrate", "program", "read", "resume", "chip_kind", "Cells", "load_station", "RunStore", "ProgramResult"):
        assert name in labrram.__all__ and getattr(labrram, name) is not None
    assert os.path.exists(ROOT / "labrram" / "py.typed")
