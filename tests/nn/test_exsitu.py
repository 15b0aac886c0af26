"""The ex-situ study, stage by stage: a multi-class task, the domain, and the ablations."""

import numpy as np
import pytest

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.nn.exsitu import ExSituSettings, compare, domain_loss, run_exsitu
from labrram.station import load_station


@pytest.fixture(scope="module")
def model():
    return default_calibration("reram").model  # measured on the seed-0 chip


@pytest.fixture
def xb():
    sim.configure_bench("nn-exsitu", seed=0)
    with load_station().with_simulation(bench="nn-exsitu", seed=0).connect() as c:
        yield c.crossbar


def test_domain_loss_sees_the_calibrated_domain_at_weight_range(model):
    s = ExSituSettings(weight_range=4.0)
    tech, gamma = domain_loss(model, s)
    mu_grid = tech.mu_grid.numpy() if hasattr(tech.mu_grid, "numpy") else np.asarray(tech.mu_grid)
    assert mu_grid.max() == pytest.approx(4.0, rel=0.02)
    # the narrowest achievable weight spread: two devices at the most precise condition
    assert 0.05 < float(np.min(np.asarray(tech.sigma_lo))) < 0.2
    with pytest.raises(ValueError, match="weight_range"):
        ExSituSettings(weight_range=0)


def test_iris_goes_through_the_same_pipeline(xb, model):
    r = run_exsitu(xb, model, ExSituSettings(task="iris", seed=0))
    s = r.summary
    assert r.grid is None and "grid" not in s  # not a 2-D task: compared on the test set
    assert s["transfer"]["copies"] == 61
    assert s["software_accuracy"] > 0.9
    assert abs(s["hardware_accuracy"] - s["software_accuracy"]) <= 0.03
    assert s["test"]["agreement"] >= 0.95 and s["test"]["entropy_correlation"] >= 0.9


def test_compare_measures_uncertainty_loss():
    rng = np.random.default_rng(0)
    logits = np.repeat(rng.normal(size=(1, 200, 2)), 20, axis=0)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    same = compare(p, p)
    assert same["agreement"] == 1 and same["entropy_correlation"] == pytest.approx(1) and same["entropy_mae"] == 0
    sharp = np.exp(4 * logits) / np.exp(4 * logits).sum(-1, keepdims=True)
    worse = compare(p, sharp)
    assert worse["agreement"] == 1 and worse["entropy_mae"] > 0.1


@pytest.mark.slow
def test_ablations_preserve_less_uncertainty():
    """Over three chips, each calibrated on its own: without the technological loss the mean
    entropy error grows; a deterministic network programmed single-shot loses the most."""
    from labrram.calibration import ReRAMCharacterization, ReRAMFit, characterize_reram

    mae: dict[str, list[float]] = {}
    for seed in range(3):
        sim.configure_bench("nn-ablation", seed=seed)
        with load_station().with_simulation(bench="nn-ablation", seed=seed).connect() as c:
            m = ReRAMFit(seed=seed).fit(characterize_reram(c.crossbar, c.timer, ReRAMCharacterization(seed=seed))).model_
            for s in (ExSituSettings(seed=seed), ExSituSettings(seed=seed, technological=False), ExSituSettings(seed=seed, bayesian=False)):
                mae.setdefault(s.variant, []).append(run_exsitu(c.crossbar, m, s).summary["grid"]["entropy_mae"])
    bayes = np.mean(mae["Bayesian"])
    assert bayes < np.mean(mae["Bayesian, no technological loss"])
    assert bayes < 0.5 * np.mean(mae["deterministic, single-shot"])
