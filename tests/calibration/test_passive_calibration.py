"""Passive-array calibration recovers the I-V nonlinearity through the sneak background."""

import numpy as np
import pytest

from labrram import sim
from labrram.calibration import PassiveCharacterization, PassiveFit, characterize_passive
from labrram.station import load_station


@pytest.fixture(scope="module")
def fitted():
    sim.configure_bench("pascal", seed=4, kind="passive", rows=32, cols=32)
    with load_station().with_simulation(bench="pascal", seed=4, kind="passive", rows=32, cols=32).connect() as st:
        data = characterize_passive(st.crossbar, st.timer, PassiveCharacterization())
        truth = st.bench.chip.reveal_truth()
        assert st.bench.chip.bias_scheme == "V/2"  # the routine set the board's biasing
    return PassiveFit(n_boot=60).fit(data), truth, data


def test_nonlinearity_recovered(fitted):
    fit, truth, _ = fitted
    e = fit.estimates_["a"]
    assert abs(e.value / truth.a - 1) < 0.10
    assert e.low <= truth.a <= e.high
    assert fit.gof_["iv_rms_relative_residual"] < 0.01


def test_switching_amplitudes_sit_above_the_onset_thresholds(fitted):
    fit, truth, data = fitted
    assert truth.v_set <= fit.estimates_["switch_set_1us"].value <= truth.v_set + 0.3
    assert truth.v_reset <= fit.estimates_["switch_reset_1us"].value <= truth.v_reset + 0.4
    assert np.isfinite(data.set_threshold).mean() > 0.9


def test_fit_refuses_nan(fitted):
    from dataclasses import replace

    _, _, data = fitted
    bad = data.iv_current.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PassiveFit().fit(replace(data, iv_current=bad))


def test_as_fabricated_state_measured_through_the_column_reads(fitted):
    """The unused cells' median and log-spread come from column reads, not from the model."""
    fit, truth, data = fitted
    assert data.fab_current.shape == (4, 32, 4)
    med, sig = fit.estimates_["g_init_median"], fit.estimates_["g_init_sigma_log"]
    assert abs(med.value / truth.g_init_median - 1) < 0.10 and med.low <= truth.g_init_median <= med.high
    assert abs(sig.value / truth.g_init_sigma_log - 1) < 0.15 and sig.low <= truth.g_init_sigma_log <= sig.high
    assert fit.model_.g_init_median == med.value and fit.model_.g_init_sigma_log == sig.value


def test_tuning_imprecision_is_a_protocol_estimate(fitted):
    fit, _, data = fitted
    pe = fit.protocol_estimates_
    assert set(pe) == {"tune_sigma_abs", "tune_sigma_rel", "tune_bias_rel"}
    assert "tune_sigma_rel" not in fit.estimates_  # not a device parameter
    # the protocol's band is max(2 % of target, 1 uS): what it achieves is of that order
    assert 0 < pe["tune_sigma_abs"].value < 1.5e-6 and pe["tune_sigma_rel"].value < 0.04
    assert abs(pe["tune_bias_rel"].value) < 0.03
    # every tuned device landed near its target (column read-out with the fitted a)
    assert data.tune_targets.size == 24
    assert np.all(np.abs(fit.tuned_g_ / data.tune_targets - 1) < 0.15)


def test_column_readout_inverts_the_column_model():
    from labrram.calibration.passive_fit import column_conductances

    rng = np.random.default_rng(0)
    g = rng.uniform(5e-6, 50e-6, (8, 3))
    a, v, frac = 2.5, 0.2, 0.5
    s = lambda x: np.sinh(a * x) / a  # noqa: E731
    cur = g * s(v) + (g.sum(axis=0) - g) * s(frac * v)
    assert np.allclose(column_conductances(cur[None], v, a, frac)[0], g, rtol=1e-12)


def test_float_scheme_skips_the_column_reads():
    s = PassiveCharacterization(scheme="float")
    assert [c.size for c in s.columns(32)] == [0, 0]
    with pytest.raises(ValueError, match="map_repeats"):
        PassiveCharacterization(map_repeats=1)
    with pytest.raises(ValueError, match="map_voltage"):
        PassiveCharacterization(map_voltage=1.0)
