import numpy as np
import pytest

from labrram.devices import AccessTransistor, ReRAMModel


def test_transistor_inverse_roundtrip():
    t = AccessTransistor(v_th=1.0, k=1.4e-4)
    v = np.linspace(1.4, 2.2, 9)
    np.testing.assert_allclose(t.gate_for(t.compliance(v)), v)
    assert t.compliance(0.5) == 0.0  # below threshold no current
    with pytest.raises(ValueError):
        t.gate_for(-1e-6)


def test_median_law_and_inverse():
    m = ReRAMModel()
    icc = np.array([20e-6, 50e-6, 100e-6, 200e-6])
    np.testing.assert_allclose(m.median(100e-6), m.a)
    np.testing.assert_allclose(m.compliance_for(m.median(icc)), icc)
    assert np.all(np.diff(m.median(icc)) > 0)
    with pytest.raises(ValueError):
        m.compliance_for(0.0)


def test_sampling_matches_laws():
    m = ReRAMModel()
    rng = np.random.default_rng(1)
    icc = np.full(200_000, 80e-6)
    g = m.sample_set(icc, rng)
    mu = m.median(80e-6)
    assert abs(np.mean(g) / mu - 1) < 0.005
    assert abs(np.std(g) / m.sigma_c2c(mu) - 1) < 0.02


def test_spread_sign_follows_d():
    up, down = ReRAMModel(d=0.5), ReRAMModel(d=-0.5)
    assert up.sigma_c2c(200e-6) > up.sigma_c2c(50e-6)
    assert down.sigma_c2c(200e-6) < down.sigma_c2c(50e-6)


def test_relaxation_mean_and_spread_grow_with_log_time():
    m = ReRAMModel()
    z = np.random.default_rng(0).standard_normal(100_000)
    early, late = m.relaxation(10.0, z), m.relaxation(1e4, z)
    assert np.mean(late) < np.mean(early) < 0
    assert np.std(late) > np.std(early) > 0


def test_variant_is_seeded_and_differs():
    m = ReRAMModel()
    a = m.variant(np.random.default_rng(5))
    b = m.variant(np.random.default_rng(5))
    c = m.variant(np.random.default_rng(6))
    assert a == b and a != c and a != m


def test_dict_roundtrip_and_unknown_keys():
    m = ReRAMModel().variant(np.random.default_rng(2))
    assert ReRAMModel.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="unknown"):
        ReRAMModel.from_dict({"a": 1e-4, "bogus": 1})
