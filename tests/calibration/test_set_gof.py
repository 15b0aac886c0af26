"""The calibration notices a SET distribution that is not Gaussian, and carries the measured
quantiles that replace it."""

import json
import logging
from dataclasses import replace

import numpy as np
import pytest

from labrram.calibration import ReRAMCharacterization, ReRAMFit, characterize_reram
from labrram.calibration.files import Calibration, CalibrationError, load_calibration, parse_calibration
from labrram.calibration.set_gof import anderson_darling, gaussian_test, null_statistics
from labrram.devices import ReRAMModel
from labrram.station import load_station

GATES = np.linspace(1.4, 2.2, 8)


def design(family: str, seed: int, cycles: int = 8, devices: int = 256) -> np.ndarray:
    """SET reads (cycle, level, device) of the characterization's design, drawn by the device
    model's own sampler (device factors, read noise of 1 %)."""
    m = replace(ReRAMModel(), set_family=family)
    rng = np.random.default_rng(seed)
    f = m.sample_device_factors((devices,), rng)
    icc = m.transistor.compliance(GATES)[None, :, None] * np.ones((cycles, 1, devices))
    g = m.sample_set(icc, rng, f[None, None, :])
    return g * (1 + m.read_noise_rel * rng.standard_normal(g.shape))


def test_anderson_darling_matches_scipy():
    import warnings

    from scipy import stats

    x = np.random.default_rng(0).standard_normal(500) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = stats.anderson(x, "norm").statistic  # scipy standardizes by the sample's mean and spread (ddof 1)
    assert anderson_darling((x - x.mean()) / x.std(ddof=1)) == pytest.approx(ref, rel=1e-9)


def test_reference_distribution_is_that_of_the_design():
    """Subtracting each device's mean makes the residuals depend on each other: with few
    cycles the reference is far from the textbook case of independent draws (whose median
    A² is about 0.34, D'Agostino & Stephens), with 8 it comes close."""
    null = null_statistics(8, 256)
    assert null.size == 2000 and np.all(np.diff(null) >= 0)
    textbook = 0.34
    assert abs(np.median(null) / textbook - 1) < 0.15
    assert abs(np.median(null_statistics(2, 256)) / textbook - 1) > 0.15


SEEDS = range(40)


@pytest.fixture(scope="module")
def rejections():
    return {fam: [gaussian_test(design(fam, seed))["gaussian_rejected"] for seed in SEEDS] for fam in ("gaussian", "lognormal", "skewed", "heavy")}


def test_gaussian_chips_are_accepted_at_the_stated_rate(rejections):
    """alpha = 0.01 over all levels: 40 Gaussian designs give at most 2 false rejections
    (P(>= 3 | 1 %) < 0.01)."""
    assert sum(rejections["gaussian"]) <= 2


@pytest.mark.parametrize("family", ["lognormal", "skewed", "heavy"])
def test_other_families_are_rejected(rejections, family):
    assert sum(rejections[family]) == len(SEEDS)


def test_the_test_refuses_what_it_cannot_judge():
    with pytest.raises(ValueError, match="cycle >= 2"):
        gaussian_test(np.ones((1, 8, 10)))
    with pytest.raises(ValueError, match="alpha"):
        gaussian_test(design("gaussian", 0, devices=8), alpha=2)


def characterize(family: str, seed: int, n_devices: int = 256):
    with load_station().with_simulation(bench=f"gof-{family}{seed}", seed=seed, set_distribution=family).connect() as st:
        return characterize_reram(st.crossbar, st.timer, ReRAMCharacterization(n_devices=n_devices, seed=seed)), st.bench.chip.reveal_truth()


@pytest.fixture(scope="module")
def lognormal_fit():
    data, truth = characterize("lognormal", 2)
    return ReRAMFit(n_boot=30).fit(data), truth, data


def test_a_lognormal_chip_is_rejected_and_programmed_empirically(lognormal_fit, caplog):
    fit, truth, data = lognormal_fit
    assert truth.set_family == "lognormal"
    assert fit.gof_["gaussian_rejected"] and 0 in fit.gof_["rejected_levels"]  # the lowest level: the largest relative spread
    assert fit.family_ == fit.model_.set_family == "empirical"
    with caplog.at_level(logging.WARNING, logger="labrram.calibration"):
        ReRAMFit(n_boot=10).fit(data)
    assert "not Gaussian" in caplog.text and "empirical" in caplog.text
    forced = ReRAMFit(n_boot=10, family="gaussian").fit(data)
    assert forced.model_.set_family == "gaussian" and forced.gof_["gaussian_rejected"]
    assert forced.model_.set_table == fit.model_.set_table  # carried beside the laws either way


def test_the_empirical_model_sees_the_lognormal_mean(lognormal_fit):
    """The measured quantiles put each condition's mean above its median, as the chip's is;
    the Gaussian laws put it at the median."""
    fit, truth, data = lognormal_fit
    gates = data.gates[:3]
    want, _ = truth.set_conditions(gates)
    emp, _ = fit.model_.set_conditions(gates)
    gauss, _ = replace(fit.model_, set_family="gaussian").set_conditions(gates)
    assert np.all(np.abs(emp - want) < np.abs(gauss - want))


def test_a_gaussian_chip_is_accepted():
    data, _ = characterize("gaussian", 2)
    fit = ReRAMFit(n_boot=10).fit(data)
    assert not fit.gof_["gaussian_rejected"] and fit.model_.set_family == "gaussian"
    assert min(fit.gof_["ad_pvalue_per_level"]) >= fit.gof_["alpha"] / 8
    with pytest.raises(ValueError, match="family must be one of"):
        ReRAMFit(family="lognormal")


def test_the_empirical_model_round_trips_through_the_calibration_file(lognormal_fit, tmp_path):
    fit, _, _ = lognormal_fit
    cal = Calibration("reram", fit.model_, fit.estimates_, fit.gof_, fit.n_devices_, {"chip": "x"})
    back = load_calibration(cal.save(tmp_path / "cal.json"))
    assert back.model == fit.model_ and back.model.set_family == "empirical"
    assert back.goodness_of_fit["gaussian_rejected"] is True
    gates = np.linspace(1.2, 2.4, 17)
    np.testing.assert_array_equal(back.model.set_conditions(gates)[0], fit.model_.set_conditions(gates)[0])
    doc = json.loads((tmp_path / "cal.json").read_text())
    assert set(doc["model"]["set_table"]) == {"gates", "probabilities", "quantiles"}
    doc["model"]["set_table"]["quantiles"][0] = doc["model"]["set_table"]["quantiles"][0][::-1]
    with pytest.raises(CalibrationError, match="set_table.*must not decrease"):
        parse_calibration(doc, "bad.json")
    doc["model"]["set_table"] = None
    with pytest.raises(CalibrationError, match="needs set_table"):
        parse_calibration(doc, "bad.json")
    del doc["model"]["set_table"], doc["model"]["set_family"]  # a file written before the families: Gaussian
    assert parse_calibration(doc, "old.json").model.set_family == "gaussian"
