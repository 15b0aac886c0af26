"""Gaussian posteriors → pairs of once-SET devices (labrram.mapping.posterior)."""

import numpy as np
import pytest

from labrram.calibration.files import default_calibration
from labrram.mapping import (
    Conditions,
    PlacementError,
    PosteriorMapping,
    max_copies,
    place_copies,
)
from labrram.protocols.single_shot import OneShotSettings, condition_table, kl_normal, stochastic_gates


@pytest.fixture(scope="module")
def model():
    return default_calibration("reram").model


@pytest.fixture(scope="module")
def conditions(model):
    return Conditions.from_reram(model)


def test_conditions_are_the_protocols_own_gates(model, conditions):
    gates, mu, sd = condition_table(model, OneShotSettings(), 801)
    # every 5th gate of the protocol's 801-point table: the protocol programs exactly these
    np.testing.assert_allclose(conditions.param, gates[::5])
    np.testing.assert_allclose(conditions.mu, mu[::5])
    g, m, s = stochastic_gates(model, conditions.mu, conditions.sigma, OneShotSettings())
    np.testing.assert_allclose(g, conditions.param, atol=1e-12)


def test_read_delay_applies_the_calibrated_relaxation(model):
    c0 = Conditions.from_reram(model)
    c1 = Conditions.from_reram(model, read_delay=3600.0)
    ln = np.log1p(3600.0 / model.relax_tau)
    np.testing.assert_allclose(c1.mu - c0.mu, model.relax_mean * ln)
    assert np.all(c1.sigma > c0.sigma)
    with pytest.raises(ValueError, match="read_delay"):
        Conditions.from_reram(model, read_delay=-1)


def test_conditions_validation():
    with pytest.raises(ValueError, match="same length"):
        Conditions(np.arange(3.0), np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="sigma must be > 0"):
        Conditions(np.arange(3.0), np.ones(3), np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="not finite"):
        Conditions(np.arange(3.0), np.array([1.0, np.nan, 1.0]), np.ones(3))


def test_pairs_are_differences_of_independent_devices(conditions):
    dom = conditions.pairs()
    k = conditions.mu.size
    assert dom.mu.size == k * k
    i = 1234
    a, b = dom.a[i], dom.b[i]
    assert dom.mu[i] == pytest.approx(conditions.mu[a] - conditions.mu[b])
    assert dom.sigma[i] == pytest.approx(np.sqrt(conditions.sigma[a] ** 2 + conditions.sigma[b] ** 2))
    # symmetric domain, zero-mean pairs exist
    assert dom.mu.max() == pytest.approx(-dom.mu.min())
    assert dom.mu_max == pytest.approx(conditions.mu.max() - conditions.mu.min())


def test_envelope_bounds_every_pair(conditions):
    dom = conditions.pairs()
    gamma = 50e-6
    mu_grid, lo, hi = dom.envelope(gamma, bins=65)
    assert np.allclose(np.diff(mu_grid), mu_grid[1] - mu_grid[0])
    assert mu_grid[0] == pytest.approx(-mu_grid[-1])
    assert np.all(lo <= hi) and np.all(lo > 0)
    w = mu_grid[1] - mu_grid[0]
    idx = np.clip(np.round((dom.mu / gamma - mu_grid[0]) / w).astype(int), 0, 64)
    # each pair lies within its bin's bounds (up to the half-bin the bounds are defined over)
    assert np.mean((dom.sigma / gamma >= lo[idx] - 1e-12) & (dom.sigma / gamma <= hi[idx] + 1e-12)) > 0.97
    with pytest.raises(ValueError, match="gamma"):
        dom.envelope(0.0)


def test_nearest_finds_an_exact_pair(conditions):
    dom = conditions.pairs()
    pick = np.array([5, 999, 20000])
    k, kl = dom.nearest(dom.mu[pick], dom.sigma[pick])
    np.testing.assert_allclose(kl, 0.0, atol=1e-12)
    np.testing.assert_allclose(dom.mu[k], dom.mu[pick])
    np.testing.assert_allclose(dom.sigma[k], dom.sigma[pick])
    # chunking does not change the answer
    k2, kl2 = dom.nearest(dom.mu[pick], dom.sigma[pick], chunk=10)
    np.testing.assert_array_equal(k, k2)


def test_kl_normal_closed_form():
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 0.5, 400_000)
    mc = np.mean(np.log(0.8 / 0.5) - (x - 1.0) ** 2 / (2 * 0.25) + (x - 1.3) ** 2 / (2 * 0.64))
    assert kl_normal(1.0, 0.5, 1.3, 0.8) == pytest.approx(mc, abs=3e-3)
    assert kl_normal(2.0, 0.3, 2.0, 0.3) == pytest.approx(0.0)


def test_scale_search_recovers_the_scale_of_achievable_posteriors(conditions):
    """Posteriors that are exactly achievable pairs at gamma0 are mapped back at gamma0."""
    dom = conditions.pairs()
    rng = np.random.default_rng(0)
    gamma0 = 60e-6
    pick = rng.choice(np.flatnonzero(np.abs(dom.mu) < 0.6 * dom.mu_max), size=(9, 8))
    mu, sd = dom.mu[pick] / gamma0, dom.sigma[pick] / gamma0
    [layer] = PosteriorMapping(conditions).map([(mu, sd)])
    assert layer.gamma == pytest.approx(gamma0, rel=0.06)
    assert np.median(layer.kl) < 0.01
    assert layer.summary()["sigma_rel_error_median"] < 0.05


def test_fixed_scales_and_validation(conditions):
    mu = np.zeros((3, 2))
    sd = np.full((3, 2), 0.2)
    [layer] = PosteriorMapping(conditions).map([(mu, sd)], gammas=[50e-6])
    assert layer.gamma == 50e-6
    assert np.all(layer.cond_a == layer.cond_b)  # zero mean: two devices at one condition
    pm = PosteriorMapping(conditions)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        pm.map([(mu, np.zeros((3, 2)))])
    with pytest.raises(ValueError, match="one shape"):
        pm.map([(mu, np.ones((2, 3)))])
    with pytest.raises(ValueError, match="scale"):
        pm.map([(mu, sd)], gammas=[-1.0])
    with pytest.raises(ValueError, match="1 layer"):
        pm.map([(mu, sd)], gammas=[1.0, 2.0])
    with pytest.raises(ValueError, match="no layers"):
        pm.map([])


def test_copies_fill_one_array_and_read_back(conditions):
    rng = np.random.default_rng(3)
    post = [(rng.normal(0, 1, (3, 16)), rng.uniform(0.15, 0.35, (3, 16))), (rng.normal(0, 1, (17, 2)), rng.uniform(0.15, 0.35, (17, 2)))]
    layers = PosteriorMapping(conditions).map(post)
    m = max_copies([(3, 16), (17, 2)])
    assert m == 98  # 98 × 164 = 16,072 of 16,384 devices
    cp = place_copies(layers, conditions, m, max_arrays=1)
    assert cp.n_arrays == 1 and cp.n_devices == m * 2 * (48 + 34)
    mu_map, sd_map = cp.targets(0)
    assert np.isfinite(mu_map).sum() == cp.n_devices
    assert np.array_equal(np.isfinite(mu_map), np.isfinite(sd_map))
    # reading back the wanted means gives every copy the achieved posterior mean
    w = cp.weights({0: np.where(np.isfinite(mu_map), mu_map, 0.0)})
    assert [a.shape for a in w] == [(m, 3, 16), (m, 17, 2)]
    for a, lay in zip(w, layers):
        np.testing.assert_allclose(a, np.broadcast_to(lay.achieved_mu, a.shape), atol=1e-9)
    with pytest.raises(PlacementError):
        place_copies(layers, conditions, m + 1, max_arrays=1)
    with pytest.raises(ValueError, match="copies"):
        place_copies(layers, conditions, 0)
