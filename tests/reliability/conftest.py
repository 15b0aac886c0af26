"""Fixtures of the reliability tests: a fast scratch directory for run stores."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def store_dir(tmp_path):
    """A scratch directory on tmpfs when there is one (run stores fsync every batch; on a RAM
    disk that costs nothing), else pytest's tmp_path."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        d = Path(tempfile.mkdtemp(prefix="labrram-test-", dir="/dev/shm"))
        yield d
        shutil.rmtree(d, ignore_errors=True)
    else:  # pragma: no cover - no tmpfs
        yield tmp_path
