"""The documentation site builds in strict mode (a warning — a broken link, a page missing from
the navigation, a docstring that does not parse — fails it), and its API reference holds every
name labrram exports. Skipped when the ``docs`` extra (MkDocs, mkdocstrings, Material) is not
installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_site_builds_strictly_with_every_exported_name(tmp_path):
    for module in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python", "material"):
        pytest.importorskip(module)
    from labrram import _EXPORTS

    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    reference = (site / "reference" / "index.html").read_text()
    for name, module in _EXPORTS.items():
        assert f'id="{module}.{name}"' in reference, name
    for page in ("howto/pytorch-weights", "howto/own-data", "howto/simulated-to-real", "howto/dask-cluster",
                 "python-api", "reference/drivers", "reference/protocols", "reference/calibration"):  # fmt: skip
        assert (site / page / "index.html").is_file(), page
    assert "ReRAMFit" in (site / "reference" / "calibration" / "index.html").read_text()
