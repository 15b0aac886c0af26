"""The interval machinery the calibration fits share: BCa bootstrap, profile-likelihood intervals
of the clipped drift-exponent laws, the device-spread weighting, stuck-device counting.

Fast checks of each piece on data with a known answer; whether the intervals of a whole fit are
honest is judged over many simulated chips by test_coverage.py (slow)."""

import numpy as np
import pytest

from labrram.calibration.estimates import bootstrap
from labrram.calibration.pcm_fit import PROFILE_LIMITS, _clip_law, _fit_law, profile_intervals
from labrram.calibration.reram_fit import _device_spread, _proportion, classify_stuck

X = np.array([-2.55, -1.83, -1.27, -0.82, -0.45, -0.13])  # ln ĝ of the six PCM levels


def test_bca_moves_the_interval_of_a_standard_deviation_up_and_keeps_a_mean_symmetric():
    rng = np.random.default_rng(1)
    v = rng.standard_normal(60)

    def stats(idx):
        return {"sd": float(v[idx].std(ddof=1)), "mean": float(v[idx].mean())}

    pct = bootstrap(stats, v.size, 2000, seed=3)
    bca = bootstrap(stats, v.size, 2000, seed=3, bca=("sd", "mean"))
    # a sample standard deviation's percentile interval sits low: BCa raises both ends
    assert bca["sd"][0] > pct["sd"][0] and bca["sd"][1] > pct["sd"][1]
    # the mean of symmetric data: BCa is the percentile interval, to resampling noise
    assert bca["mean"] == pytest.approx(pct["mean"], abs=0.05)
    assert bootstrap(stats, v.size, 200, seed=3)["mean"] == bootstrap(stats, v.size, 200, seed=3, bca=("sd",))["mean"]


def test_bca_covers_a_normal_standard_deviation_better_than_percentiles():
    rng = np.random.default_rng(7)
    hits = {"pct": 0, "bca": 0}
    for _ in range(150):
        v = rng.standard_normal(25)

        def stats(idx, v=v):
            return {"sd": float(v[idx].std(ddof=1))}

        for name, names in (("pct", ()), ("bca", ("sd",))):
            lo, hi = bootstrap(stats, v.size, 400, seed=int(rng.integers(1 << 30)), bca=names, jackknife_groups=25)["sd"]
            hits[name] += lo <= 1.0 <= hi
    assert hits["bca"] > hits["pct"]


def test_the_law_fit_finds_the_global_minimum_whatever_the_start():
    truth = np.array([-0.0155, 0.0244, 0.049])
    y = _clip_law(truth, X, 0.1)
    w = np.full(X.size, 1e6)
    for start in ([-0.0155, 0.0244, 0.049], [0.01, 0.06, 0.03], [-0.05, -0.05, 0.06]):
        p, cost = _fit_law(X, y, w, 0.1, np.array(start))
        assert cost < 1e-12
        np.testing.assert_allclose(_clip_law(p, X, 0.1), y, atol=1e-7)


def test_profile_intervals_hold_the_truth_and_run_open_where_the_design_cannot_bound_it():
    w = np.full(X.size, 1 / 0.0015**2)
    rng = np.random.default_rng(0)
    # two levels above the floor: slope, offset and floor all bounded
    truth = np.array([-0.0155, 0.0244, 0.049])
    y = _clip_law(truth, X, 0.1) + 0.0015 * rng.standard_normal(X.size)
    best, iv = profile_intervals(X, y, w, 0.1, tuple(truth))
    for j in range(3):
        assert iv[j][0] < best[j] < iv[j][1]
        assert np.isfinite(iv[j]).all() and PROFILE_LIMITS["slope"][0] < iv[j][0]
    # one level above the floor: any steeper slope fits as well, the interval runs to the limit
    flat = np.array([-0.0155, 0.0150, 0.049])
    y = _clip_law(flat, X, 0.1) + 0.0015 * rng.standard_normal(X.size)
    _, iv = profile_intervals(X, y, w, 0.1, tuple(flat))
    assert iv[0][0] == PROFILE_LIMITS["slope"][0] and iv[0][1] > -0.0155


def test_profile_interval_widens_when_the_law_misses_the_levels():
    w = np.full(X.size, 1 / 0.0015**2)
    truth = np.array([-0.0155, 0.0244, 0.049])
    y = _clip_law(truth, X, 0.1)
    _, tight = profile_intervals(X, y + 0.0005 * np.array([1, -1, 1, -1, 1, -1]), w, 0.1, tuple(truth))
    _, wide = profile_intervals(X, y + 0.004 * np.array([1, -1, 1, -1, 1, -1]), w, 0.1, tuple(truth))
    assert wide[2][1] - wide[2][0] > 1.5 * (tight[2][1] - tight[2][0])


def test_device_spread_weights_the_quiet_levels():
    rng = np.random.default_rng(2)
    noise = np.array([0.0067, 0.002, 0.0008, 0.0004, 0.0003, 0.0002])  # relative variance of a device mean
    n = 256
    f = 1 + 0.05 * rng.standard_normal(n)
    between = np.array([np.var(f + np.sqrt(v) * rng.standard_normal(n), ddof=1) - v for v in noise])
    weighted = _device_spread(between, noise, 8, n)
    assert abs(weighted - f.std(ddof=1)) < abs(np.sqrt(max(between.mean(), 0)) - f.std(ddof=1)) + 1e-4
    assert weighted == pytest.approx(f.std(ddof=1), rel=0.02)


def test_stuck_devices_are_those_a_reset_or_a_set_does_not_move():
    g_reset = np.array([2e-6, 400e-6, 12e-6, 3e-6, 2e-6])
    g_set = np.array([300e-6, 400e-6, 12.5e-6, 5e-6, 25e-6])
    lrs, hrs = classify_stuck(g_reset, g_set)
    assert lrs.tolist() == [False, True, False, False, False]
    assert hrs.tolist() == [False, False, True, True, False]  # 12 uS HRS not raised; 5 uS below 10 uS


def test_jeffreys_interval():
    e = _proportion(0, 256)
    assert e.value == 0 and e.low == 0 and 0.005 < e.high < 0.011
    e = _proportion(33, 16384)
    assert e.low < 33 / 16384 < e.high and e.high - e.low == pytest.approx(2 * 1.96 * np.sqrt(33) / 16384, rel=0.1)
