import math

import numpy as np
import pytest

from labrram.devices.pcm import PCMModel, preset_nandakumar2019
from labrram.devices.reram import AccessTransistor

US = 1e-6


def folded_normal_moments(mu: float, sigma: float) -> tuple[float, float]:
    """Mean and standard deviation of |N(mu, sigma)|."""
    phi = 0.5 * (1 + math.erf(-mu / (sigma * math.sqrt(2))))
    mean = sigma * math.sqrt(2 / math.pi) * math.exp(-(mu**2) / (2 * sigma**2)) + mu * (1 - 2 * phi)
    return mean, math.sqrt(mu**2 + sigma**2 - mean**2)


# --- Nandakumar 2019 / aihwkit preset ------------------------------------------------------------
def test_preset_programming_noise_is_the_published_polynomial():
    m = preset_nandakumar2019()
    assert m == PCMModel() and m.g_max == 25e-6
    s = m.sigma_prog(np.array([0.0, 0.5, 1.0]) * m.g_max) / US
    np.testing.assert_allclose(s, [0.26348, 0.26348 + 1.9650 / 2 - 1.1731 / 4, 0.26348 + 1.9650 - 1.1731])
    np.testing.assert_allclose(s, [0.26, 0.95, 1.06], atol=0.01)
    # the polynomial is in µS at g_max = 25 µS and scales with g_max
    np.testing.assert_allclose(PCMModel(g_max=50e-6).sigma_prog(25e-6), 2 * m.sigma_prog(12.5e-6))
    # clipped at >= 0, and targets must be physical
    assert PCMModel(prog_c0=-1e-6).sigma_prog(0.0) == 0.0
    with pytest.raises(ValueError, match=">= 0"):
        m.sigma_prog(-1e-6)


def test_drift_exponent_laws_and_their_clips():
    m = PCMModel()
    g = np.array([1.0, 0.05, 1e-3, 0.0]) * m.g_max
    # mu_nu = clip(-0.0155 ln g + 0.0244, 0.049, 0.1)
    np.testing.assert_allclose(m.nu_mean(g), [0.049, -0.0155 * math.log(0.05) + 0.0244, 0.1, 0.1])
    # sigma_nu = clip(-0.0125 ln g - 0.0059, 0.008, 0.045)
    np.testing.assert_allclose(m.nu_std(g), [0.008, -0.0125 * math.log(0.05) - 0.0059, 0.045, 0.045])
    assert np.all(np.isfinite(m.nu_mean(0.0)))  # ĝ floored at 1e-7 like aihwkit


@pytest.mark.parametrize("g_hat", [0.5, 0.05, 0.005])
def test_sampled_drift_exponents_have_the_model_mean_and_spread(g_hat):
    m = PCMModel()
    g = np.full(200_000, g_hat * m.g_max)
    nu = m.sample_nu(g, np.random.default_rng(3))
    assert np.all(nu >= 0)
    mean, std = folded_normal_moments(float(m.nu_mean(g[0])), float(m.nu_std(g[0])))
    assert abs(nu.mean() / mean - 1) < 0.005
    assert abs(nu.std() / std - 1) < 0.01


def test_drift_law():
    m = PCMModel()
    g, nu = 10 * US, 0.05
    assert m.drift(g, 0.0, nu) == pytest.approx(g)
    assert m.drift(g, m.t0, nu) == pytest.approx(g * 2**-0.05)
    assert m.drift(g, 86400.0, nu) == pytest.approx(g * ((86400 + 20) / 20) ** -0.05)
    out = m.drift(np.array([g, 2 * g]), np.array([[10.0], [1000.0]]), np.array([0.03, 0.1]))
    assert out.shape == (2, 2) and np.all(np.diff(out, axis=0) < 0)  # later is lower
    with pytest.raises(ValueError):
        m.drift(g, -1.0, nu)


def test_expected_drift_factor_matches_monte_carlo():
    m = PCMModel()
    g = 12.5 * US
    nu = m.sample_nu(np.full(400_000, g), np.random.default_rng(0))
    mc = np.mean(m.drift(1.0, 86400.0, nu))
    assert m.expected_drift_factor(g, 86400.0) == pytest.approx(mc, rel=1e-3)
    assert 0.6 < mc < 0.7  # about one third of the conductance is gone after a day


def test_read_noise_law_and_q_s_cap():
    m = PCMModel()
    q = m.q_s(np.array([1.0, 0.5, 0.01, 0.005, 1e-4, 0.0]) * m.g_max)
    np.testing.assert_allclose(q, [0.0088, 0.0088 / 0.5**0.65, 0.0088 / 0.01**0.65, 0.2, 0.2, 0.2])
    g, t = 12.5 * US, 86400.0
    expected = g * 0.0088 / 0.5**0.65 * math.sqrt(math.log((t + 250e-9) / 500e-9))
    assert m.read_noise_sigma(g, t) == pytest.approx(expected)
    assert m.read_noise_sigma(g, 100e-9) == 0.0  # law floored at t <= t_read
    # Q_s follows the programmed conductance when given (aihwkit), the read one otherwise
    at_g_max = g * 0.0088 * math.sqrt(math.log((t + 250e-9) / 500e-9))
    assert m.read_noise_sigma(g, t, g_prog=25 * US) == pytest.approx(at_g_max)
    with pytest.raises(ValueError):
        m.read_noise_sigma(g, -1.0)


def test_one_over_f_synthesis_matches_the_log_law():
    m = PCMModel()
    tau, w = m.one_over_f_components()
    t = np.logspace(math.log10(2 * m.t_read), 8, 300)
    var = (w * -np.expm1(-2 * t[:, None] / tau)).sum(axis=1)
    ratio = np.sqrt(var / m.noise_log_term(t))
    assert np.max(np.abs(ratio[t >= 4e-6] - 1)) < 0.015  # bench reads come >= µs after a pulse
    assert np.max(np.abs(ratio - 1)) < 0.08
    assert tau.max() > 1e10  # keeps growing like ln t over any experiment


def test_sample_program_statistics():
    m = PCMModel()
    rng = np.random.default_rng(1)
    g = m.sample_program(np.full(200_000, 12.5 * US), rng)
    assert abs(g.mean() - 12.5 * US) < 0.01 * US
    assert abs(g.std() / m.sigma_prog(12.5 * US) - 1) < 0.01
    assert np.all(m.sample_program(np.zeros(10_000), rng) >= 0)


def test_verify_window_reproduces_sigma_prog_by_construction():
    m = PCMModel()
    g = np.linspace(0.05, 1.0, 20) * m.g_max
    delta = m.verify_half_width(g, t_verify=1e-3)
    total = np.sqrt(delta**2 / 3 + m.read_noise_sigma(g, 1e-3) ** 2)
    np.testing.assert_allclose(total, m.sigma_prog(g), rtol=1e-9)
    # the preset corresponds to windows of ±0.4..1.6 µS, Joshi's write-verify range
    assert 0.4 * US < delta.min() and delta.max() < 1.7 * US


# --- pulse response ------------------------------------------------------------------------------
def test_set_step_grows_with_overdrive_shrinks_near_saturation_and_needs_width():
    m = PCMModel()
    steps = m.set_step_mean(5 * US, np.array([0.9, 1.2, 1.5, 1.8, 2.1]), 1e-6)
    assert steps[0] == 0 and steps[-1] == 0  # below threshold; melts instead
    assert np.all(np.diff(steps[1:4]) > 0)
    assert steps[2] == pytest.approx(m.set_rate * 0.5 * (1 - 5 / 40), rel=1e-3)
    near_top = m.set_step_mean(np.array([5, 20, 35, 40]) * US, 1.5, 1e-6)
    assert np.all(np.diff(near_top) < 0) and near_top[-1] == pytest.approx(0, abs=1e-15)
    eff = m.set_efficiency(np.array([20e-9, 50e-9, 100e-9, 500e-9, 1e-6]))
    assert eff[0] == eff[1] == 0 and 0.3 < eff[2] < 0.5 and eff[3] > 0.98 and eff[4] == pytest.approx(1, abs=1e-3)


def test_reset_level_decreases_with_amplitude():
    m = PCMModel()
    v = np.linspace(2.0, 3.0, 11)
    level = m.reset_level(v)
    assert level[0] == pytest.approx(m.g_sat)  # at the melt threshold nothing melts yet
    assert np.all(np.diff(level[:9]) < 0)
    assert level[-1] == pytest.approx(m.g_reset)


def test_apply_pulse_statistics_gate_and_width():
    m = PCMModel()
    rng = np.random.default_rng(7)
    g0 = np.full(50_000, 5 * US)
    g1, prog = m.apply_pulse(g0, 1.5, 3.3, 1e-6, rng)
    step = g1 - g0
    mean = m.set_step_mean(5 * US, 1.5, 1e-6)
    assert prog.all()
    assert abs(step.mean() / mean - 1) < 0.01
    assert abs(step.std() / mean - m.set_c2c) < 0.01
    # RESET: 2.8 V, 50 ns -> full amorphization, log-normal around g_reset
    g2, prog = m.apply_pulse(g1, 2.8, 3.3, 50e-9, rng)
    assert prog.all() and abs(np.median(g2) / m.g_reset - 1) < 0.02
    # a gentle RESET never raises a more amorphous cell
    g3, _ = m.apply_pulse(g2, 2.1, 3.3, 50e-9, rng)
    np.testing.assert_array_equal(g3, g2)
    # gate off: no current, nothing happens
    g4, prog = m.apply_pulse(g0, 2.8, 0.5, 1e-6, rng)
    assert not prog.any()
    np.testing.assert_array_equal(g4, g0)
    # a weak gate limits the current: 1.5 V gate passes 98 µA -> cell sees 0.70 V < v_th_set
    assert m.cell_voltage(2.5, 1.5) == pytest.approx(0.5 + 2e-4 * 0.7**2 * 2e3)
    assert not m.apply_pulse(g0[:10], 2.5, 1.5, 1e-6, rng)[1].any()
    # a melt too short to melt, a SET too short to crystallize
    assert not m.apply_pulse(g0[:10], 2.8, 3.3, 5e-9, rng)[1].any()
    assert not m.apply_pulse(g0[:10], 1.5, 3.3, 40e-9, rng)[1].any()
    # a slowly quenched melt recrystallizes
    g5, _ = m.apply_pulse(g0[:10], 2.8, 3.3, 1e-3, rng, slow_quench=True)
    np.testing.assert_allclose(g5, m.g_sat)


def test_polarity_does_not_matter():
    m = PCMModel()
    a, _ = m.apply_pulse(np.full(5, 5 * US), 1.5, 3.3, 1e-6, np.random.default_rng(1))
    b, _ = m.apply_pulse(np.full(5, 5 * US), -1.5, 3.3, 1e-6, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)


# --- variation, serialization, validation ---------------------------------------------------------
def test_variant_is_seeded_and_differs():
    m = PCMModel()
    a = m.variant(np.random.default_rng(5))
    b = m.variant(np.random.default_rng(5))
    c = m.variant(np.random.default_rng(6))
    assert a == b and a != c and a != m
    assert abs(a.sigma_prog(12.5e-6) / m.sigma_prog(12.5e-6) - 1) < 0.3


def test_dict_roundtrip_and_unknown_keys():
    m = PCMModel().variant(np.random.default_rng(2))
    d = m.to_dict()
    assert isinstance(d["transistor"], dict) and "nu_mu_slope" in d and "q_s_coeff" in d
    assert PCMModel.from_dict(d) == m
    assert PCMModel.from_dict({"g_max": 30e-6}).transistor == PCMModel().transistor
    with pytest.raises(ValueError, match="unknown"):
        PCMModel.from_dict({"g_max": 25e-6, "bogus": 1})


@pytest.mark.parametrize(
    "bad",
    [
        {"g_max": 0.0},
        {"t0": -1.0},
        {"t_read": float("nan")},
        {"v_melt": 0.9},  # below v_th_set
        {"nu_mu_min": 0.2},  # above nu_mu_max
        {"p_stuck_set": 0.8, "p_stuck_reset": 0.5},
        {"set_c2c": -0.1},
    ],
)
def test_invalid_parameters_are_rejected(bad):
    with pytest.raises(ValueError):
        PCMModel(**bad)


def test_transistor_is_the_shared_square_law():
    m = PCMModel()
    assert isinstance(m.transistor, AccessTransistor)
    assert m.cell_voltage(0.2, 0.0) == 0.0
