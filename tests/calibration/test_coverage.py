"""Interval coverage: over many simulated chips, each stored 95 % interval holds the chip's truth
in 91-99 % of chips, for every parameter a PCM or ReRAM calibration file stores. An interval
fails when the chips refute that (an exact binomial test per interval, family-wise 5 %), and
the coverage pooled over a file's intervals must lie within 92-98 %.

The truth of a protocol quantity (the PCM ladder's spread, the mean drift exponent of a
level's devices) is measured on the chip's device population (chips.ladder_population).

Slow (about 8 s of CPU per PCM chip, 2 s per ReRAM chip):
``pytest -m slow tests/calibration/test_coverage.py -s``.
"""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("calibration_chips", Path(__file__).with_name("chips.py"))
chips = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(chips)

#: chips per kind (``LABRRAM_COVERAGE_CHIPS`` overrides)
N_CHIPS = int(os.environ.get("LABRRAM_COVERAGE_CHIPS", "100"))
coverage, refuted, LOW, HIGH, POOLED = chips.coverage, chips.refuted, chips.LOW, chips.HIGH, chips.POOLED


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pcm", "reram"])
def test_every_stored_interval_covers_the_truth_in_91_to_99_percent_of_chips(kind):
    record = {"pcm": chips.pcm_record, "reram": chips.reram_record}[kind]
    records = [record(seed) for seed in range(N_CHIPS)]
    cov = coverage(records)
    print("\n".join(f"{kind} {name}: {c:.3f}" for name, c in cov.items()))
    pooled = float(np.mean(list(cov.values())))
    print(f"{kind} pooled over {len(cov)} intervals: {pooled:.3f}")
    assert not refuted(cov, N_CHIPS), f"coverage outside [{LOW}, {HIGH}] over {N_CHIPS} chips: {refuted(cov, N_CHIPS)}"
    assert POOLED[0] <= pooled <= POOLED[1], f"coverage pooled over every interval {pooled:.3f}, outside {POOLED}"


def test_the_coverage_test_refutes_only_what_the_chips_show():
    """At 100 chips: 89 % (a 2 % chance for an interval of true 91 %) is no evidence; 80 % and
    100 % of 500 are; the threshold scales with the number of intervals."""
    assert refuted({"x": 0.89, "y": 1.0}, 100) == {}
    assert set(refuted({"x": 0.80, "y": 0.95}, 100)) == {"x"}
    assert set(refuted({"x": 1.0}, 500)) == {"x"}
    assert refuted({"x": 0.84}, 100, alpha=0.05) and not refuted({f"x{i}": 0.84 for i in range(1000)}, 100)


def test_coverage_counts_intervals_that_hold_the_truth():
    records = [{"x": (1.0, 0.9, 1.1, 1.05)}, {"x": (1.0, 0.9, 1.1, 1.2)}]
    assert coverage(records) == {"x": 0.5}
