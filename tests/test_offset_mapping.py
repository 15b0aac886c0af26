"""Offset encoding on single-device slices: codes, decoding, placement and tile-by-tile MVMs."""

from __future__ import annotations

import numpy as np
import pytest

from labrram.mapping import OffsetSlicedMapping, PlacementError, misprogrammed, place_offset


def test_codes_digits_and_decoding_round_trip():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(30, 7))
    mp = OffsetSlicedMapping(10e-6, 200e-6)
    lay = mp.map(W)
    assert lay.n_slices == 4 and lay.n_devices == 4 * W.size
    assert lay.codes.min() >= 0 and lay.codes.max() <= 255
    assert np.all(lay.offsets == 128)
    # rounding error at most half a step; the largest weight lands on code 1 or 255
    assert np.max(np.abs(lay.target_weights - W)) <= lay.step[0] / 2 + 1e-12
    # digits recombine to the codes, targets are the levels
    assert np.array_equal(np.tensordot(4 ** np.arange(4), lay.digits, axes=1), lay.codes)
    assert set(np.unique(lay.targets)) <= set(mp.levels)
    # decoding the exact targets gives the weights back; a level-0 shift of every device adds nothing
    assert np.allclose(lay.weights_from(lay.targets), lay.target_weights)
    # one LSB of slice 3 is 64 steps
    g = lay.targets.copy()
    g[3, 0, 0] += lay.delta_g
    assert np.isclose(lay.weights_from(g)[0, 0] - lay.target_weights[0, 0], 64 * lay.step[0])


def test_absent_entries_are_level_zero_and_outside_the_offset():
    mp = OffsetSlicedMapping()
    present = np.array([[True, False], [False, True], [True, True]])
    lay = mp.map(np.ones((3, 2)), step=0.1, present=present)
    assert np.all(lay.codes[~present] == 0)
    assert np.all(lay.targets[:, ~present] == mp.levels[0])
    assert np.allclose(lay.target_weights[~present], 0.0)
    assert np.allclose(lay.weights_from(lay.targets), lay.target_weights)


def test_tile_by_tile_mvm_over_several_arrays_matches_the_weights():
    rng = np.random.default_rng(1)
    mp = OffsetSlicedMapping()
    lay = mp.map(rng.normal(size=(70, 20)), offsets=np.arange(20) + 100)
    pl = place_offset([lay], (32, 32))
    assert pl.n_arrays > 1 and pl.n_devices == lay.n_devices
    maps = {a: pl.targets(a) for a in range(pl.n_arrays)}
    # every device sits on exactly one cell
    assert sum(int(np.isfinite(m).sum()) for m in maps.values()) == lay.n_devices
    x = rng.random((5, 70))
    y = pl.mvm(0, x, lambda a, v: v @ np.nan_to_num(maps[a]), v_read=0.2)
    assert np.allclose(y, x @ lay.target_weights)
    # a conductance error on one device shows up in the gathered weights of that entry only
    t = pl.tiles_of(0)[0]
    g = {a: np.nan_to_num(m).copy() for a, m in maps.items()}
    col = t.col  # output t.outputs.start, slice 0
    g[t.array][t.row, col] += lay.delta_g
    d = pl.weights(0, g) - lay.target_weights
    assert np.isclose(d[t.inputs.start, t.outputs.start], lay.step[0]) and np.count_nonzero(np.abs(d) > 1e-12) == 1


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="g_min < g_max"):
        OffsetSlicedMapping(200e-6, 10e-6)
    mp = OffsetSlicedMapping()
    with pytest.raises(ValueError, match="codes must lie"):
        mp.from_codes(np.array([[256]]), 1.0)
    with pytest.raises(ValueError, match="step must be"):
        mp.map(np.ones((2, 2)), step=0.0)
    with pytest.raises(ValueError, match="g_measured has shape"):
        mp.map(np.ones((2, 2))).weights_from(np.zeros((4, 3, 2)))
    with pytest.raises(PlacementError, match="not an OffsetSlicedLayer"):
        place_offset([np.ones((2, 2))])


def test_misprogrammed_is_a_failed_device_half_a_level_step_or_more_off():
    lv = OffsetSlicedMapping().levels  # 10, 73.3, 136.7, 200 µS: half a step 31.7 µS
    t = np.array([lv[0], lv[2], lv[2], lv[3], np.nan, lv[3], lv[1]])
    g = np.array([0.1e-6, lv[2] + 30e-6, lv[2] + 33e-6, 400e-6, 5e-6, np.nan, lv[1] - 40e-6])
    failed = np.zeros(t.size, bool)
    # level 0 read at 0.1 µS: 9.9 µS off, its level; 30 µS off: still its level (variation);
    # 33 µS or a stuck 400 µS: a level step off; no device (NaN target): never; a NaN read: off
    assert misprogrammed(t, g, failed, lv).tolist() == [False, False, True, True, False, True, True]
    assert not misprogrammed(t, g, ~failed, lv).any()  # write-verify placed them: never misprogrammed
    assert misprogrammed(t.reshape(1, -1), g.reshape(1, -1), failed.reshape(1, -1), lv).shape == (1, 7)
    with pytest.raises(ValueError, match="one of the levels"):
        misprogrammed(np.array([50e-6]), np.array([50e-6]), np.array([False]), lv)
    with pytest.raises(ValueError, match="at least two distinct"):
        misprogrammed(t, g, failed, [lv[0], lv[0]])
    with pytest.raises(ValueError, match="one shape"):
        misprogrammed(t, g[:3], failed, lv)
