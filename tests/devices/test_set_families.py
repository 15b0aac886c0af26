"""SET distribution families: each keeps the laws' median and spread and has its own shape."""

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats

from labrram.devices import ReRAMModel
from labrram.devices.set_families import HEAVY_DOF, SKEW_ALPHA, QuantileTable, default_probabilities, lognormal_s

N = 200_000


def draws(family: str, i_cc: float, table=None, seed: int = 0) -> tuple[ReRAMModel, np.ndarray, float, float]:
    m = replace(ReRAMModel(), set_family=family, set_table=table)
    g = m.sample_set(np.full(N, i_cc), np.random.default_rng(seed))
    mu = float(m.median(i_cc))
    return m, g, mu, float(m.sigma_c2c(mu))


@pytest.mark.parametrize("family", ["gaussian", "lognormal", "skewed", "heavy"])
@pytest.mark.parametrize("i_cc", [30e-6, 150e-6])  # large and small relative spread, both clear of the conductance floor
def test_every_family_keeps_the_median_and_the_spread(family, i_cc):
    _, g, mu, sigma = draws(family, i_cc)
    assert np.median(g) == pytest.approx(mu, abs=0.01 * sigma)
    assert np.std(g) == pytest.approx(sigma, rel=0.02)


def test_gaussian_shape():
    _, g, mu, sigma = draws("gaussian", 60e-6)
    assert abs(stats.skew(g)) < 0.02 and abs(stats.kurtosis(g)) < 0.05


def test_lognormal_shape_is_the_log_normal_of_that_median_and_spread():
    _, g, mu, sigma = draws("lognormal", 15e-6)
    s = float(lognormal_s(sigma / mu))
    assert stats.kstest(np.log(g / mu) / s, "norm").pvalue > 0.01  # ln G is normal
    x = np.exp(s * s)
    assert stats.skew(g) == pytest.approx((x + 2) * np.sqrt(x - 1), rel=0.1)
    assert stats.skew(g) > 0.5


def test_skewed_shape_is_a_skew_normal():
    _, g, mu, sigma = draws("skewed", 60e-6)
    assert stats.skew(g) == pytest.approx(float(stats.skewnorm(SKEW_ALPHA).stats(moments="s")), abs=0.03)
    z = (g - mu) / sigma
    sn = stats.skewnorm(SKEW_ALPHA)
    ref = (sn.ppf(np.array([0.01, 0.1, 0.9, 0.99])) - sn.median()) / sn.std()
    np.testing.assert_allclose(np.quantile(z, [0.01, 0.1, 0.9, 0.99]), ref, atol=0.03)


def test_heavy_shape_is_a_student_t():
    _, g, mu, sigma = draws("heavy", 60e-6)
    t = (g - mu) / sigma / np.sqrt((HEAVY_DOF - 2) / HEAVY_DOF)
    assert stats.kstest(t, stats.t(HEAVY_DOF).cdf).pvalue > 0.01
    assert abs(stats.skew(g)) < 0.15
    assert stats.kurtosis(g) > 3  # 6 in theory; the sample value of a t(5) converges slowly
    assert np.mean(np.abs(g - mu) > 4 * sigma) > 20 * 2 * stats.norm.sf(4)  # far more outliers than a normal


def gamma_table(gates=(1.4, 1.8, 2.2), shape=2.0) -> QuantileTable:
    """A right-skewed table (gamma quantiles), in siemens."""
    p = default_probabilities()
    q = np.stack([20e-6 * (1 + k) + 5e-6 * stats.gamma(shape).ppf(p) for k in range(len(gates))])
    return QuantileTable(np.array(gates), p, q)


def test_empirical_shape_follows_the_table_with_the_laws_median_and_spread():
    table = gamma_table()
    m = replace(ReRAMModel(), set_family="empirical", set_table=table)
    i_cc = float(m.transistor.compliance(1.8))
    _, g, mu, sigma = draws("empirical", i_cc, table)
    assert np.median(g) == pytest.approx(mu, abs=0.01 * sigma)
    assert np.std(g) == pytest.approx(sigma, rel=0.02)
    assert stats.skew(g) == pytest.approx(2 / np.sqrt(2.0), rel=0.15)  # the gamma(2)'s, less its clipped tails


def test_set_conditions_gaussian_and_empirical_agree_on_a_gaussian_table():
    m = ReRAMModel()
    gates = np.linspace(1.2, 2.4, 41)
    mean, sd = m.set_conditions(gates)
    mu = m.median(m.transistor.compliance(gates))
    np.testing.assert_allclose(mean, mu)
    np.testing.assert_allclose(sd, m.population_sigma(mu))
    levels = np.linspace(1.4, 2.2, 8)
    lm = m.median(m.transistor.compliance(levels))
    p = default_probabilities()
    table = QuantileTable(levels, p, lm[:, None] + m.population_sigma(lm)[:, None] * stats.norm.ppf(p)[None])
    emp = replace(m, set_family="empirical", set_table=table)
    e_mean, e_sd = emp.set_conditions(gates)
    np.testing.assert_allclose(e_mean, mean, rtol=1e-3)
    np.testing.assert_allclose(e_sd, sd, rtol=2e-3)


def test_set_conditions_of_a_skewed_table_carry_its_mean():
    m = ReRAMModel()
    levels = np.linspace(1.4, 2.2, 8)
    lm = m.median(m.transistor.compliance(levels))
    sd = m.population_sigma(lm)
    p = default_probabilities()
    ln = stats.lognorm(0.5)
    z = (ln.ppf(p) - ln.median()) / ln.std()
    emp = replace(m, set_family="empirical", set_table=QuantileTable(levels, p, lm[:, None] + sd[:, None] * z[None]))
    mean, _ = emp.set_conditions(levels)
    shift = (ln.mean() - ln.median()) / ln.std()
    np.testing.assert_allclose((mean - lm) / sd, shift, rtol=0.03)


def test_model_with_a_table_round_trips_through_json():
    m = replace(ReRAMModel(), set_family="empirical", set_table=gamma_table())
    back = ReRAMModel.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m and back.set_table == m.set_table
    assert ReRAMModel.from_dict(ReRAMModel().to_dict()) == ReRAMModel()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"gates": [1.4]}, "gates must be a list of at least 2"),
        ({"gates": [1.8, 1.4, 2.2]}, "gates must be strictly increasing"),
        ({"probabilities": [0.0, 0.5, 1.0]}, "strictly between 0 and 1"),
        ({"quantiles": [[1e-6, 2e-6]]}, "one row of"),
        ({"extra": 1}, "unknown key"),
    ],
)
def test_table_validation_names_the_problem(change, message):
    d = gamma_table().to_dict()
    d.update(change)
    with pytest.raises(ValueError, match=message):
        QuantileTable.from_dict(d)


def test_table_refuses_decreasing_quantiles_and_unknown_families():
    d = gamma_table().to_dict()
    d["quantiles"][0] = d["quantiles"][0][::-1]
    with pytest.raises(ValueError, match="must not decrease"):
        QuantileTable.from_dict(d)
    with pytest.raises(ValueError, match="set_family must be one of"):
        ReRAMModel(set_family="cauchy")
    with pytest.raises(ValueError, match="needs set_table"):
        ReRAMModel(set_family="empirical")


def test_table_loads_from_its_file_or_a_calibration_file(tmp_path):
    t = gamma_table()
    (tmp_path / "t.json").write_text(json.dumps(t.to_dict()))
    assert QuantileTable.load(tmp_path / "t.json") == t
    cal = {"labrram_calibration": 2, "model": {"set_table": t.to_dict()}}
    (tmp_path / "cal.json").write_text(json.dumps(cal))
    assert QuantileTable.load(tmp_path / "cal.json") == t
    (tmp_path / "nocal.json").write_text(json.dumps({"labrram_calibration": 2, "model": {}}))
    with pytest.raises(ValueError, match="without a quantile table"):
        QuantileTable.load(tmp_path / "nocal.json")
    with pytest.raises(ValueError, match="cannot read"):
        QuantileTable.load(tmp_path / "missing.json")
