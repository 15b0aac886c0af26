"""Several differential pairs per weight on PCM (redundancy): placement, read-back over the
healthy copies, in-array MVM, and the settings' checks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.mapping import PlacementError, copy_weights, fill_copies, tile_count
from labrram.nn.drift import BatchNorm, DeploySettings, Network, deploy_pcm
from labrram.station import load_station


# --- fill_copies and copy_weights -------------------------------------------------------------
def test_fill_copies_gives_the_room_to_the_smallest_layers_first():
    shapes = [(100, 40), (9, 8), (30, 16)]  # 4,000 + 72 + 480 weights
    copies = fill_copies(shapes, (128, 128), max_copies=4)
    assert copies[1] == 4 and copies[2] == 4  # the small ones are copied to the limit
    assert copies[0] == 1  # the big one takes what is left: a second copy would not fit
    tile_count({(i, m): s for i, s in enumerate(shapes) for m in range(copies[i])}, (128, 128), 1)  # all of it fits
    with pytest.raises(PlacementError):  # one more copy of the big layer does not
        tile_count({(i, m): s for i, s in enumerate(shapes) for m in range(copies[i] + (i == 0))}, (128, 128), 1)
    assert fill_copies(shapes, (128, 128), max_copies=1) == [1, 1, 1]


def test_fill_copies_refuses_what_does_not_fit_and_bad_limits():
    with pytest.raises(PlacementError):
        fill_copies([(200, 100)], (64, 64))
    for bad in (0, -1, 2.5, "4"):
        with pytest.raises(ValueError, match="max_copies"):
            fill_copies([(4, 4)], (32, 32), max_copies=bad)


def test_copy_weights_takes_one_count_per_layer():
    from labrram.mapping import DifferentialMapping, place

    m = DifferentialMapping(1e-6, 20e-6)
    W0, W1 = np.arange(6.0).reshape(3, 2) - 2, np.ones((2, 2))
    pl = place({(0, 0): m.map(W0), (0, 1): m.map(W0), (1, 0): m.map(W1)}, (16, 16))
    w = copy_weights(pl, 2, [2, 1], {0: pl.targets(0)})
    assert [x.shape for x in w] == [(2, 3, 2), (1, 2, 2)]
    np.testing.assert_allclose(w[0][1], W0, atol=1e-12)
    with pytest.raises(ValueError, match="names 3 layers"):
        copy_weights(pl, 2, [2, 1, 1], {0: pl.targets(0)})


def test_deploy_settings_check_copies():
    assert DeploySettings(copies=(2, 1)).copies == (2, 1)
    assert DeploySettings(copies=[3, 1]).copies == (3, 1)
    for bad in (0, "all", (1, 0), (), (1.5, 1), True, None):
        with pytest.raises(ValueError, match="copies"):
            DeploySettings(copies=bad)
    with pytest.raises(ValueError, match="max_copies"):
        DeploySettings(max_copies=0)
    with pytest.raises(ValueError, match="names 2 layers"):
        DeploySettings(copies=(2, 1)).copies_for([(4, 4)] * 3, (32, 32))
    assert DeploySettings(copies=2).copies_for([(4, 4)] * 3, (32, 32)) == [2, 2, 2]
    shapes = [(20, 10), (4, 3)]
    filled = DeploySettings(copies="fill", max_copies=3).copies_for(shapes, (32, 32))
    assert filled == fill_copies(shapes, (32, 32), 3) and filled[1] == 3


# --- on a small simulated PCM array ---------------------------------------------------------
@pytest.fixture
def deployed():
    sim.configure_bench("copies-test", seed=5, kind="pcm", rows=32, cols=32)
    rng = np.random.default_rng(0)
    W0, W1 = rng.normal(size=(6, 5)), rng.normal(size=(5, 3))
    X = rng.normal(size=(40, 6))
    z = X @ W0
    net = Network([W0, W1], [None, np.zeros(3)], [BatchNorm(np.ones(5), np.zeros(5), z.mean(0), z.var(0)), None])
    with load_station().with_simulation(bench="copies-test", seed=5, kind="pcm", rows=32, cols=32).connect() as st:
        dep = deploy_pcm(st.crossbar, st.timer, net, default_calibration("pcm").model, DeploySettings(scale="column", copies=(3, 1)))
        yield st, dep, net


def test_copies_are_placed_and_programmed_as_separate_pairs(deployed):
    st, dep, net = deployed
    assert dep.copies == [3, 1]
    assert sorted(dep.placement.layers) == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert dep.placement.n_devices == 2 * (3 * 30 + 15)
    assert dep.summary()["copies"] == [3, 1]
    programmed = ~np.isnan(dep.result.targets)
    assert programmed.sum() == dep.placement.n_devices  # every copy went through the write-verify
    w = dep.weights_from(dep.placement.targets(0), mask_faulty=False)  # the targets read back exactly
    for got, want in zip(w, net.weights):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    read = dep.read_weights(st.crossbar)  # programmed: within the write-verify's error, averaged
    assert np.abs(read[0] - net.weights[0]).mean() < np.abs(read[1] - net.weights[1]).mean() + 0.2


def test_a_stuck_copy_costs_the_copy_not_the_weight(deployed):
    st, dep, net = deployed
    conv = dep.result.converged.copy()
    (r0, c0), (r1, c1), (r2, c2) = (dep.placement.cells((0, m))[1:] for m in range(3))
    conv[r0[0, 2, 1], c0[0, 2, 1]] = False  # copy 0 of weight (2, 1): its G+ "stuck"
    for r, c in ((r0, c0), (r1, c1), (r2, c2)):  # weight (4, 0): every copy lost
        conv[r[1, 4, 0], c[1, 4, 0]] = False
    bad = replace(dep, result=replace(dep.result, converged=conv))
    g = dep.placement.targets(0).copy()
    g[r0[0, 2, 1], c0[0, 2, 1]] = 100e-6  # what a stuck-SET device reads
    w = bad.weights_from(g)
    assert w[0][2, 1] == pytest.approx(net.weights[0][2, 1], rel=1e-9)  # the other two copies
    assert w[0][4, 0] == 0.0  # no healthy copy: dropped
    faulty = bad.faulty()
    assert faulty[0][4, 0] and not faulty[0][2, 1] and faulty[0].sum() == 1 and faulty[1].sum() == int(dep.faulty()[1].sum())
    assert bad.summary()["faulty_copies"] >= 4
    unmasked = bad.weights_from(g, mask_faulty=False)  # every copy counts, the stuck one too
    assert unmasked[0][2, 1] > net.weights[0][2, 1] + 1.0


def test_in_array_mvm_averages_the_copies(deployed):
    st, dep, net = deployed
    X = np.random.default_rng(1).uniform(-1, 1, size=(8, 6))
    y = dep.mvm(st.crossbar, 0, X)
    expect = X @ dep.weights_from(st.crossbar.read(), mask_faulty=False)[0]
    assert y.shape == (8, 5)
    assert np.abs(y - expect).max() < 0.15 * np.abs(expect).max()
