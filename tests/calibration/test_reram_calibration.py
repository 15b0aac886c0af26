"""ReRAM calibration recovers the simulated chip's hidden truth, from instrument data only."""

import json

import numpy as np
import pytest

from labrram.calibration import ReRAMCharacterization, ReRAMFit, characterize_reram
from labrram.calibration.files import Calibration, CalibrationError, load_calibration, parse_calibration
from labrram.station import load_station


def characterize(seed: int, n_devices: int, cycles: int = 8):
    with load_station().with_simulation(bench=f"cal{seed}", seed=seed).connect() as st:
        data = characterize_reram(st.crossbar, st.timer, ReRAMCharacterization(n_devices=n_devices, cycles=cycles))
        return data, st.bench.chip.reveal_truth()


@pytest.fixture(scope="module")
def fitted():
    data, truth = characterize(seed=5, n_devices=256)
    return ReRAMFit().fit(data), truth, data


def test_median_law_within_5_percent(fitted):
    fit, truth, _ = fitted
    icc = np.linspace(20e-6, 200e-6, 50)
    assert np.max(np.abs(fit.model_.median(icc) / truth.median(icc) - 1)) < 0.05


def test_spread_law_within_5_percent(fitted):
    fit, truth, _ = fitted
    mu = truth.median(np.linspace(20e-6, 200e-6, 50))
    assert np.max(np.abs(fit.model_.sigma_c2c(mu) / truth.sigma_c2c(mu) - 1)) < 0.05


def test_every_level_within_5_percent(fitted):
    """Per gate level: the median (relaxation of the read delay removed), the cycle-to-cycle
    spread, and what the fitted model predicts at that gate voltage."""
    fit, truth, data = fitted
    icc = truth.transistor.compliance(data.gates)
    mu = truth.median(icc)
    assert np.max(np.abs(fit.levels_["median"] / mu - 1)) < 0.05
    assert np.max(np.abs(fit.levels_["sigma_c2c"] / truth.sigma_c2c(mu) - 1)) < 0.05
    predicted = fit.model_.median(fit.model_.transistor.compliance(data.gates))
    assert np.max(np.abs(predicted / mu - 1)) < 0.05


def test_other_parameters_inside_their_intervals_or_close(fitted):
    fit, truth, _ = fitted
    e = fit.estimates_
    assert e["v_th"].low - 0.01 <= truth.transistor.v_th <= e["v_th"].high + 0.01
    assert abs(e["k"].value / truth.transistor.k - 1) < 0.03
    assert abs(e["read_noise_rel"].value / truth.read_noise_rel - 1) < 0.05
    assert abs(e["hrs_median"].value / truth.hrs_median - 1) < 0.05
    assert abs(e["d2d_rel"].value / truth.d2d_rel - 1) < 0.15
    assert abs(e["relax_mean"].value / truth.relax_mean - 1) < 0.15
    for est in e.values():
        assert est.low <= est.value <= est.high


def test_fewer_devices_give_honestly_wider_intervals(fitted):
    fit_many, truth, _ = fitted
    data_few, _ = characterize(seed=5, n_devices=24)
    fit_few = ReRAMFit().fit(data_few)
    for name in ("a", "b", "c", "d", "hrs_median"):
        assert fit_few.estimates_[name].width > 1.8 * fit_many.estimates_[name].width, name


def test_goodness_of_fit(fitted):
    fit, _, _ = fitted
    assert fit.gof_["r2_median_law"] > 0.999
    assert fit.gof_["r2_spread_law"] > 0.9
    assert min(fit.gof_["ks_normal_pvalue_per_level"]) > 1e-3


def test_fit_refuses_bad_data(fitted):
    _, _, data = fitted
    from dataclasses import replace

    with pytest.raises(ValueError, match="NaN"):
        ReRAMFit().fit(replace(data, g_set=np.where(np.eye(1, data.g_set.size, 3).reshape(data.g_set.shape) > 0, np.nan, data.g_set)))
    with pytest.raises(ValueError, match="gate levels"):
        ReRAMFit().fit(replace(data, gates=data.gates[:-1]))


def test_calibration_file_roundtrip(fitted, tmp_path):
    fit, _, _ = fitted
    cal = Calibration("reram", fit.model_, fit.estimates_, fit.gof_, fit.n_devices_, {"chip": "x"})
    path = cal.save(tmp_path / "cal.json")
    back = load_calibration(path)
    assert back.model == fit.model_
    assert back.estimates["a"] == fit.estimates_["a"]


FULL = __import__("labrram").default_calibration("reram").model.to_dict()


@pytest.mark.parametrize(
    "doc, message",
    [
        ([], "JSON object"),
        ({"kind": "reram"}, "not a labrram calibration"),
        ({"labrram_calibration": 99, "kind": "reram", "model": {}, "estimates": {}}, "format 99"),
        ({"labrram_calibration": 1, "kind": "mram", "model": {}, "estimates": {}}, "unknown device kind"),
        ({"labrram_calibration": 1, "kind": "reram", "model": {"zz": 1}, "estimates": {}}, "unknown ReRAM model parameters"),
        ({"labrram_calibration": 1, "kind": "reram", "model": {"a": "big"}, "estimates": {}}, "model"),
        ({"labrram_calibration": 1, "kind": "reram", "model": {}, "estimates": {}}, "model lacks parameter"),
        ({"labrram_calibration": 1, "kind": "reram", "model": FULL, "estimates": {"a": 3}}, "estimates.a"),
        ({"labrram_calibration": 1, "kind": "reram", "model": FULL, "estimates": {}, "n_devices": -1}, "n_devices"),
        ({"labrram_calibration": True, "kind": "reram", "model": FULL, "estimates": {}}, "format True"),
    ],
)
def test_malformed_calibration_documents(doc, message):
    with pytest.raises(CalibrationError, match=message):
        parse_calibration(doc, "bad.json")


def test_malformed_calibration_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        load_calibration(bad)
    bad.write_text(json.dumps({"labrram_calibration": 1, "kind": "reram", "model": {"a": float("nan")}, "estimates": {}}))
    with pytest.raises(CalibrationError, match="not finite"):
        load_calibration(bad)
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibration(tmp_path / "missing.json")
