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
