"""PCM calibration recovers the drift exponent of the simulated chip from reads only."""

import numpy as np
import pytest

from labrram.calibration import PCMCharacterization, PCMFit, characterize_pcm
from labrram.calibration.pcm_routine import assign_levels
from labrram.station import load_station


@pytest.fixture(scope="module")
def fitted():
    with load_station().with_simulation(bench="pcmcal", seed=4, kind="pcm").connect() as st:
        data = characterize_pcm(st.crossbar, st.timer, PCMCharacterization())
        truth = st.bench.chip.reveal_truth()
        elapsed = st.bench.clock.now
    return PCMFit(n_boot=60).fit(data), truth, data, elapsed


def test_drift_exponent_mean_within_10_percent(fitted):
    fit, truth, data, _ = fitted
    g = data.targets
    assert np.max(np.abs(fit.model_.nu_mean(g) / truth.nu_mean(g) - 1)) < 0.10
    # per-level estimates carry intervals that hold the truth (or nearly: 95 %)
    inside = [fit.estimates_[f"nu_mean@{t * 1e6:.3g}uS"].low * 0.97 <= truth.nu_mean(t) <= fit.estimates_[f"nu_mean@{t * 1e6:.3g}uS"].high * 1.03 for t in g]
    assert sum(inside) >= len(g) - 1


def test_drift_spread_and_read_noise_are_measured(fitted):
    fit, truth, data, _ = fitted
    g = data.targets
    assert np.median(np.abs(fit.levels_["nu_std"] / truth.nu_std(g) - 1)) < 0.3
    assert np.median(np.abs(fit.levels_["q_s"] / truth.q_s(g) - 1)) < 0.15


def test_ladder_programming_converged_and_waited_a_virtual_day(fitted):
    fit, _, data, elapsed = fitted
    assert fit.converged_fraction_ > 0.97
    assert elapsed >= 86400  # a day of drift on the virtual clock
    assert np.all(data.ladder_amplitude[data.ladder_amplitude > 0] <= 1.8 + 1e-6)


def test_more_devices_at_low_conductance():
    level = assign_levels(np.array([2e-6, 4e-6, 20e-6]), 100, seed=0)
    counts = np.bincount(level)
    assert counts.sum() == 100 and counts[0] > counts[1] > counts[2] >= 1


def test_fit_refuses_nan(fitted):
    from dataclasses import replace

    _, _, data, _ = fitted
    bad = data.drift_g.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PCMFit().fit(replace(data, drift_g=bad))
