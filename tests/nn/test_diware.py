"""Mapping-aware biased training (Diware et al. 2023): state ranking, robust codes, column
importance, and a small end-to-end run on a small simulated array."""

import numpy as np
import pytest

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.nn.mapping_aware import (
    DiwareSettings,
    allowed_magnitudes,
    conventional,
    level_spreads,
    map_network,
    program_network,
    project,
    rank_states,
    read_weights,
    robust_mask,
    select_columns,
    slice_levels,
    software_accuracy,
    train_biased,
    train_conventional,
    usable_states,
)
from labrram.nn.train import TrainSettings
from labrram.station import load_station


@pytest.fixture(scope="module")
def model():
    return default_calibration("reram").model


def test_state_ranking_on_a_hand_made_case():
    """Error current = v_read · σ_level · significance; the order is by that product."""
    r = rank_states([1e-6, 5e-6, 3e-6, 2e-6], [1.0, 4.0], v_read=0.1)
    np.testing.assert_allclose(r.error_current[1, 1], 0.1 * 5e-6 * 4)
    # products (×1e-7 A): slice 0: 1, 5, 3, 2; slice 1: 4, 20, 12, 8
    assert [tuple(p) for p in r.order] == [(0, 0), (0, 3), (0, 2), (1, 0), (0, 1), (1, 3), (1, 2), (1, 1)]
    assert list(r.level_order(1)) == [0, 3, 2, 1]
    # dropping the worst two non-zero states removes (1, 1) and (1, 2); level 0 stays
    m = robust_mask(r, n_drop=2)
    assert m.tolist() == [[True, True, True, True], [True, False, False, True]]
    with pytest.raises(ValueError, match="v_read"):
        rank_states([1e-6, 2e-6], [1.0], v_read=0)


def test_calibrated_ranking_puts_hrs_first_and_the_top_slice_raise_last(model):
    s = DiwareSettings()
    lv = slice_levels(model, s.g_max)
    assert lv[0] == pytest.approx(model.hrs_median) and lv[-1] == pytest.approx(s.g_max)
    sd = level_spreads(model, lv)
    assert np.argmin(sd) == 0  # the RESET state is the most robust level
    r = s.ranking(model)
    use = usable_states(8, 2)
    assert use[3].tolist() == [True, True, False, False]
    worst = [tuple(p) for p in r.order if use[tuple(p)]][-1]
    assert worst == (3, 1)


def test_constrained_weights_only_use_robust_slice_states(model):
    s = DiwareSettings()
    mask = robust_mask(s.ranking(model), 1, usable_states(8, 2))
    mags = allowed_magnitudes(mask)
    assert mags[0] == 0 and mags[-1] == 63 and mags.size == 64
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (20, 7))
    p = project(w, 0.01, mags)
    q = np.rint(np.abs(p) / 0.01).astype(int)
    assert np.allclose(np.abs(p), q * 0.01) and np.all(np.sign(p[q > 0]) == np.sign(w[q > 0]))
    for k in range(4):
        digits = (q >> (2 * k)) & 3
        assert np.all(mask[k, digits])
    # a sparser hand-made mask: slices may use levels {0, 3} only
    hand = np.zeros((4, 4), bool)
    hand[:, [0, 3]] = True
    assert allowed_magnitudes(hand).tolist() == [0, 3, 12, 15, 48, 51, 60, 63]
    with pytest.raises(ValueError, match="shape"):
        allowed_magnitudes(np.ones((3, 4), bool))


def test_importance_selection_picks_the_top_fraction():
    imp = [np.array([0.1, 5.0, 0.3, 2.0, 0.0, 9.0, 1.0, 0.2, 0.4, 3.0]), np.array([1.0, 3.0, 2.0])]
    m = select_columns(imp, 0.3)
    assert np.flatnonzero(m[0]).tolist() == [1, 5, 9]
    assert np.flatnonzero(m[1]).tolist() == [1]  # ceil(0.3 · 3) = 1
    assert [x.sum() for x in select_columns(imp, 0.0)] == [0, 0]
    assert [x.sum() for x in select_columns(imp, 1.0)] == [10, 3]
    with pytest.raises(ValueError, match="fraction"):
        select_columns(imp, 1.5)


def test_small_end_to_end_on_a_small_array(model):
    """iris 4-6-3, bit-sliced (8 devices per weight) on a 16×64 array: train, bias, program
    single-shot through the instruments, read back in one batched read."""
    from labrram.nn.datasets import load_task

    task = load_task("iris", seed=0)
    base = train_conventional(task.X_train, task.y_train, (4, 6, 3), TrainSettings(epochs=300, lr=3e-2, batch_size=None))
    s = DiwareSettings()
    mags = s.magnitudes(model)
    net = train_biased(task.X_train, task.y_train, base, mags, 0.5, epochs=20, lr=1e-2, batch_size=None)
    assert [c.sum() for c in net.columns] == [3, 2]
    for w, st, c in zip(net.weights, net.steps, net.columns):
        q = np.rint(np.abs(w[:, c]) / st).astype(int)
        assert np.allclose(np.abs(w[:, c]), q * st) and np.all(np.isin(q, mags))
    assert software_accuracy(net.weights, task.X_test, task.y_test) > 0.8
    mp = s.mapping(model)
    sim.configure_bench("nn-diware", seed=0, rows=16, cols=64)
    with load_station().with_simulation(bench="nn-diware", seed=0, rows=16, cols=64).connect() as c:
        xb = c.crossbar
        for n in (conventional(base), net):
            layers = map_network(n, mp)
            np.testing.assert_allclose(layers[0].target_weights, n.weights[0], atol=0.5 * n.steps[0] + 1e-12)
            prog = program_network(xb, layers, model)
            w = read_weights(xb, prog)
            assert [x.shape for x in w] == [(5, 6), (7, 3)]
            assert software_accuracy(w, task.X_test, task.y_test) > 0.7
            # multiplier 0 gives back the mapped weights exactly
            w0 = read_weights(xb, prog, multiplier=0.0)
            np.testing.assert_allclose(w0[1], layers[1].target_weights, atol=1e-9)
