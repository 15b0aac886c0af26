"""The calibrations shipped in calibration_data/ load, carry provenance, and describe the
default simulated chip they were measured on."""

import numpy as np
import pytest

from labrram.calibration.files import CalibrationError, default_calibration
from labrram.sim.chip import ReRAMChip


@pytest.mark.parametrize("kind", ["reram", "pcm", "passive"])
def test_shipped_calibration_loads_with_provenance(kind):
    cal = default_calibration(kind)
    assert cal.kind == kind and cal.n_devices >= 64
    prov = cal.provenance
    assert {"chip", "station", "date", "routine", "software", "data"} <= set(prov)
    assert prov["station"]["simulated"] is True
    for est in cal.estimates.values():
        assert est.low <= est.value <= est.high


def test_shipped_reram_calibration_matches_the_default_chip():
    cal = default_calibration("reram")
    truth = ReRAMChip(seed=0).reveal_truth()
    icc = np.linspace(20e-6, 200e-6, 20)
    assert np.max(np.abs(cal.model.median(icc) / truth.median(icc) - 1)) < 0.05


def test_unknown_kind():
    with pytest.raises(CalibrationError, match="unknown device kind"):
        default_calibration("mram")
