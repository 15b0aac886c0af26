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


def test_format_1_files_load_except_pcm_ladder_spreads_stored_as_sigma_prog(tmp_path):
    import json

    from labrram.calibration.files import load_calibration

    reram = default_calibration("reram").to_dict()
    reram["labrram_calibration"] = 1
    reram.pop("protocol_estimates")
    (tmp_path / "old_reram.json").write_text(json.dumps(reram))
    assert load_calibration(tmp_path / "old_reram.json").protocol_estimates == {}
    pcm = default_calibration("pcm").to_dict()
    pcm["labrram_calibration"] = 1
    pcm["estimates"]["prog_c0"] = {"value": 4.3e-7, "ci95": [3.5e-7, 5.1e-7], "unit": "S"}
    (tmp_path / "old_pcm.json").write_text(json.dumps(pcm))
    with pytest.raises(CalibrationError, match=r"old_pcm.json: estimates.prog_c0 \(calibration format 1\) holds the spread"):
        load_calibration(tmp_path / "old_pcm.json")


def test_shipped_pcm_calibration_keeps_protocol_spreads_apart():
    cal = default_calibration("pcm")
    assert not {"prog_c0", "prog_c1", "prog_c2"} & set(cal.estimates)
    assert cal.protocol_estimates and all(k.startswith("ladder_spread@") for k in cal.protocol_estimates)
