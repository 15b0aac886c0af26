"""Transfer of networks onto the simulated array, and inference through the instruments."""

import dataclasses

import numpy as np
import pytest

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.nn.transfer import TransferSettings, transfer_bayesian, transfer_deterministic
from labrram.sim import PulseKind
from labrram.station import load_station


@pytest.fixture(scope="module")
def model():
    return default_calibration("reram").model  # measured on the seed-0 chip


@pytest.fixture
def connected():
    """A connected station on a fresh 128×128 seed-0 chip of its own bench."""
    sim.configure_bench("nn-transfer", seed=0)
    with load_station().with_simulation(bench="nn-transfer", seed=0).connect() as c:
        yield c


def _posteriors(seed=0):
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(0, 1, (3, 16)), rng.uniform(0.15, 0.35, (3, 16))),
        (rng.normal(0, 1, (17, 2)), rng.uniform(0.15, 0.35, (17, 2))),
    ]


def test_bayesian_transfer_samples_the_mapped_posteriors(connected, model):
    """Every device is SET once, and the M read-back copies of each weight are draws from the
    distribution its pair was chosen for: pooled z-scores are standard normal."""
    post = _posteriors()
    xb = connected.crossbar
    tr = transfer_bayesian(xb, post, model)
    w = tr.read_weights(xb)
    assert tr.copies == 98 and tr.summary()["devices"] == 98 * 2 * (48 + 34)
    # one RESET and one SET per programmed device, nothing else pulsed
    log = connected.bench.chip.pulse_log.records
    used = np.isfinite(tr.placement.targets(0))
    for kind in (PulseKind.SET, PulseKind.RESET):
        n = np.zeros(xb.shape, int)
        np.add.at(n, (log["row"][log["kind"] == kind], log["col"][log["kind"] == kind]), 1)
        assert np.all(n[used] == 1) and np.all(n[~used] == 0)
    z = np.concatenate([((a - lay.achieved_mu) / lay.achieved_sigma).ravel() for a, lay in zip(w, tr.mapping.layers)])
    # a few stuck devices give outliers: robust location and scale
    assert abs(np.median(z)) < 0.1
    iqr_sigma = np.subtract(*np.percentile(z, [75, 25])) / 1.349
    assert 0.85 < iqr_sigma < 1.2
    # the posterior means survive: the copy average of each weight is within its standard error
    for a, (mu, sd) in zip(w, post):
        se = sd / np.sqrt(tr.copies)
        assert np.median(np.abs(np.median(a, axis=0) - mu) / se) < 2.0


def test_mvm_inference_matches_read_back_inference(connected, model):
    post = _posteriors(1)
    X = np.random.default_rng(2).normal(size=(6, 2))
    xb = connected.crossbar
    tr = transfer_bayesian(xb, post, model, TransferSettings(copies=4))
    p_read = tr.probabilities([a[:4] for a in tr.read_weights(xb)], X)
    p_mvm = tr.mvm_probabilities(xb, X)
    assert p_mvm.shape == p_read.shape == (4, 6, 2)
    # two independent reads of the same devices differ only by read noise
    assert np.max(np.abs(p_mvm.mean(0) - p_read.mean(0))) < 0.1
    with pytest.raises(ValueError, match="v_max"):
        tr.mvm_probabilities(xb, X, v_max=2.0)


def test_deterministic_transfer_is_single_shot(connected, model):
    rng = np.random.default_rng(4)
    weights = [rng.normal(0, 1, (3, 8)), rng.normal(0, 1, (9, 2))]
    xb = connected.crossbar
    tr = transfer_deterministic(xb, weights, model, TransferSettings(copies=10))
    w = tr.read_weights(xb)
    assert tr.kind == "deterministic" and tr.results[0].summary()["pulses_per_device"] == 2.0
    for a, target in zip(w, weights):
        # open-loop programming: copies scatter around the weights, their average is close
        scale = np.abs(target).max()
        assert np.median(np.abs(np.median(a, axis=0) - target)) < 0.1 * scale


def test_transfer_refuses_bad_networks(connected, model):
    xb = connected.crossbar
    with pytest.raises(ValueError, match="takes 4 inputs"):
        transfer_bayesian(xb, [(np.zeros((3, 3)), np.ones((3, 3))), (np.zeros((5, 2)), np.ones((5, 2)))], model)
    with pytest.raises(ValueError, match="copies must be in"):
        transfer_bayesian(xb, _posteriors(), model, TransferSettings(copies=500))
    with pytest.raises(ValueError, match="does not fit"):
        transfer_deterministic(xb, [np.zeros((200, 100))], model)
    assert len(connected.bench.chip.pulse_log) == 0  # nothing was pulsed


def test_screening_finds_stuck_devices_and_replaces_their_samples(connected, model):
    xb = connected.crossbar
    tr = transfer_bayesian(xb, _posteriors(5), model)
    G = tr.read_conductances(xb)
    raw = dataclasses.replace(tr, screen=None).weights_from(G)  # the samples as read
    w = tr.weights_from(G)
    mu, sd = tr.expected[0]
    stuck = connected.bench.chip._stuck != 0  # hidden truth, for the test only
    used = np.isfinite(mu)
    visible = used & stuck & (np.abs(G[0] - mu) > 6 * sd)
    assert visible.sum() >= 5
    np.testing.assert_array_equal(tr.faulty[0], visible)  # every visible stuck device, nothing else
    assert not np.any(tr.faulty[0] & ~stuck)
    assert tr.summary()["faulty_devices"] == visible.sum()
    changed = 0
    for a, r in zip(w, raw):
        diff = a != r
        changed += diff.sum()
        # a replaced sample is the same weight read from another (healthy) copy
        for m, i, j in zip(*np.nonzero(diff)):
            assert a[m, i, j] in r[~diff[:, i, j], i, j]
    assert 0 < changed <= 2 * visible.sum()

