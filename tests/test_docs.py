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


def test_the_board_protocol_page_states_the_timing_model_the_code_charges():
    """docs/board-protocol.md's timing table names each constant of labrram/timing.py with its
    value; the simulated bench and the physical limit use those constants."""
    from labrram import timing

    text = (ROOT / "docs" / "board-protocol.md").read_text()
    for name, unit, scale in (("T_PULSE_SETUP", "µs", 1e6), ("T_ROW_READ", "µs", 1e6), ("T_RELAY", "ms", 1e3), ("T_MVM", "µs", 1e6)):
        value = getattr(timing, name) * scale
        assert f"{value:g} {unit} " in text and f"`{name}`" in text, name
    board = timing.USB_HS
    assert f"{board.latency * 1e6:g} µs and {board.bytes_per_second / 1e6:g} MB/s" in text


def test_the_calibration_page_lists_every_quantity_import_reads():
    from labrram.calibration.importer import SCHEMAS, SETTINGS

    text = (ROOT / "docs" / "calibration.md").read_text()
    for kind, schema in SCHEMAS.items():
        for name, q in schema.items():
            assert f"| `{name}` | ({', '.join(q.dims)}) | {q.unit} |" in text, (kind, name)
        for key in SETTINGS[kind]:
            assert f"`{key}`" in text
