import numpy as np
import pytest

from labrram.mapping import (
    BitSlicedLayer,
    BitSlicedMapping,
    DifferentialMapping,
    MappedLayer,
    PlacementError,
    place,
    tile_count,
)

G_MIN, G_MAX = 2e-6, 100e-6


def _w(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# --- differential mapping ------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["layer", "column"])
def test_round_trip_exact(scale):
    W = _w((20, 7))
    lay = DifferentialMapping(G_MIN, G_MAX, scale=scale).map(W)
    assert isinstance(lay, MappedLayer)
    assert lay.g_plus.shape == lay.g_minus.shape == W.shape
    assert lay.gamma.shape == (7,)
    np.testing.assert_allclose(lay.weights_from(lay.g_plus, lay.g_minus), W, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(lay.mvm_weights(), W)
    x = _w((3, 20), 1)
    np.testing.assert_allclose(lay.mvm(x), x @ W, rtol=1e-12, atol=1e-12)
    assert lay.g_plus.min() >= G_MIN and lay.g_minus.min() >= G_MIN
    if scale == "layer":
        assert np.all(lay.gamma == lay.gamma[0])
        assert max(lay.g_plus.max(), lay.g_minus.max()) == pytest.approx(G_MAX)
        np.testing.assert_allclose(lay.gamma[0], (G_MAX - G_MIN) / np.abs(W).max())
    else:  # every column reaches g_max on its largest weight
        top = np.maximum(lay.g_plus, lay.g_minus).max(axis=0)
        np.testing.assert_allclose(top, G_MAX)
        np.testing.assert_allclose(lay.gamma, (G_MAX - G_MIN) / np.abs(W).max(axis=0))


def test_sign_handling_only_matching_device_raised():
    W = np.array([[1.0, -2.0, 0.0], [-0.5, 4.0, 0.25]])
    lay = DifferentialMapping(G_MIN, G_MAX).map(W)
    pos, neg = W > 0, W < 0
    assert np.all(lay.g_plus[pos] > G_MIN) and np.all(lay.g_minus[pos] == G_MIN)
    assert np.all(lay.g_minus[neg] > G_MIN) and np.all(lay.g_plus[neg] == G_MIN)
    assert lay.g_plus[0, 2] == lay.g_minus[0, 2] == G_MIN
    assert lay.g_plus[1, 1] == pytest.approx(G_MAX)  # |W|max -> g_max
    assert lay.g_minus[0, 1] == pytest.approx(G_MIN + (G_MAX - G_MIN) / 2)


def test_zero_column_in_column_scale_stays_finite():
    W = np.array([[1.0, 0.0], [-3.0, 0.0]])
    lay = DifferentialMapping(G_MIN, G_MAX, scale="column").map(W)
    assert np.all(np.isfinite(lay.gamma))
    assert np.all(lay.g_plus[:, 1] == G_MIN) and np.all(lay.g_minus[:, 1] == G_MIN)
    np.testing.assert_allclose(lay.weights_from(lay.g_plus, lay.g_minus), W)


def test_clipping_at_k_sigma():
    W = _w((50, 40), 2)
    W[0, 0], W[3, 5] = 25.0, -30.0  # outliers
    k = 2.0
    lay = DifferentialMapping(G_MIN, G_MAX, clip_sigma=k).map(W)
    t = k * np.std(W)
    assert lay.clip == pytest.approx(t)
    assert lay.clipped == int(np.sum(np.abs(W) > t))
    expected = np.clip(W, -t, t)
    np.testing.assert_allclose(lay.weights_from(lay.g_plus, lay.g_minus), expected, rtol=1e-12, atol=1e-15)
    assert lay.g_plus[0, 0] == pytest.approx(G_MAX) and lay.g_minus[3, 5] == pytest.approx(G_MAX)
    assert lay.gamma[0] == pytest.approx((G_MAX - G_MIN) / t)
    # no clipping: nothing recorded
    plain = DifferentialMapping(G_MIN, G_MAX).map(W)
    assert plain.clip is None and plain.clipped == 0


def test_measured_conductances_with_noise():
    W = _w((10, 4), 3)
    lay = DifferentialMapping(G_MIN, G_MAX).map(W)
    rng = np.random.default_rng(4)
    gp = lay.g_plus + 0.5e-6 * rng.standard_normal(W.shape)
    gm = lay.g_minus + 0.5e-6 * rng.standard_normal(W.shape)
    err = lay.weights_from(gp, gm) - W
    assert np.abs(err).max() < 4 * np.sqrt(2) * 0.5e-6 / lay.gamma[0]
    with pytest.raises(ValueError, match="shape"):
        lay.weights_from(gp[:5], gm)
    with pytest.raises(ValueError, match="both"):
        lay.mvm_weights(gp, None)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.ones(5), "2-D"),
        (np.ones((2, 2, 2)), "2-D"),
        (np.zeros((0, 3)), "empty"),
        (np.zeros((3, 3)), "all zero"),
        (np.array([[1.0, np.nan]]), "not finite"),
        (np.array([[1.0, np.inf]]), "not finite"),
        ([["a", "b"]], "numbers"),
    ],
)
def test_bad_weights_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        DifferentialMapping(G_MIN, G_MAX).map(bad)
    with pytest.raises(ValueError, match=match):
        BitSlicedMapping(g_min=G_MIN, g_max=G_MAX).map(bad)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(g_min=-1e-6, g_max=1e-4), "g_min"),
        (dict(g_min=1e-4, g_max=1e-5), "above"),
        (dict(g_min=0.0, g_max=float("nan")), "finite"),
        (dict(g_min=0.0, g_max=1e-4, scale="row"), "scale"),
        (dict(g_min=0.0, g_max=1e-4, clip_sigma=0.0), "clip_sigma"),
    ],
)
def test_bad_mapping_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DifferentialMapping(**kwargs)
    with pytest.raises(ValueError, match=match):
        BitSlicedMapping(**kwargs)


def test_bad_bit_parameters():
    with pytest.raises(ValueError, match="bits"):
        BitSlicedMapping(g_min=G_MIN, g_max=G_MAX, bits=1)
    with pytest.raises(ValueError, match="slice_bits"):
        BitSlicedMapping(g_min=G_MIN, g_max=G_MAX, slice_bits=0)
    with pytest.raises(ValueError, match="integer"):
        BitSlicedMapping(g_min=G_MIN, g_max=G_MAX, bits=8.0)


# --- bit-sliced mapping --------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["layer", "column"])
def test_bit_sliced_reconstruction(scale):
    W = _w((30, 12), 5)
    m = BitSlicedMapping(g_min=G_MIN, g_max=G_MAX, bits=8, slice_bits=2, scale=scale)
    lay = m.map(W)
    assert isinstance(lay, BitSlicedLayer)
    assert lay.n_slices == 4 and lay.g_plus.shape == (4, 30, 12) and lay.gamma.shape == (4, 12)
    assert lay.n_devices == 8 * W.size
    # every device sits on one of the 4 levels, only the sign-matching device of a pair is raised
    levels = G_MIN + np.arange(4) * (G_MAX - G_MIN) / 3
    for g in (lay.g_plus, lay.g_minus):
        assert np.all(np.min(np.abs(g[..., None] - levels), axis=-1) < 1e-18)
    assert np.all((lay.g_plus == G_MIN) | (lay.g_minus == G_MIN))
    # integer codes and exact recombination of the slices
    assert np.abs(lay.codes).max() == 127
    np.testing.assert_allclose(lay.target_weights, lay.step * lay.codes)
    back = lay.weights_from(lay.g_plus, lay.g_minus)
    np.testing.assert_allclose(back, lay.target_weights, rtol=1e-12, atol=1e-14)
    # within half a quantization step of the original
    assert np.all(np.abs(back - W) <= lay.step / 2 + 1e-12)
    # digits recombine to the codes
    digits = (lay.g_plus - lay.g_minus) / lay.delta_g
    np.testing.assert_allclose(np.tensordot(4.0 ** np.arange(4), digits, axes=1), lay.codes, atol=1e-9)


def test_bit_sliced_snap_removes_small_programming_error():
    W = _w((16, 8), 6)
    lay = BitSlicedMapping(g_min=G_MIN, g_max=G_MAX).map(W)
    rng = np.random.default_rng(7)
    noise = 0.15 * lay.delta_g
    gp = lay.g_plus + noise * rng.uniform(-1, 1, lay.g_plus.shape)
    gm = lay.g_minus + noise * rng.uniform(-1, 1, lay.g_minus.shape)
    np.testing.assert_allclose(lay.weights_from(gp, gm, snap=True), lay.target_weights, rtol=1e-12, atol=1e-14)
    assert not np.allclose(lay.weights_from(gp, gm), lay.target_weights, rtol=1e-12, atol=1e-14)


def test_bit_sliced_other_widths():
    W = _w((9, 5), 8)
    lay = BitSlicedMapping(g_min=0.0, g_max=G_MAX, bits=4, slice_bits=1, clip_sigma=2.0).map(W)
    assert lay.n_slices == 3  # magnitude of a signed 4-bit integer: 3 bits
    assert np.abs(lay.codes).max() == 7
    np.testing.assert_allclose(lay.weights_from(lay.g_plus, lay.g_minus), lay.target_weights, atol=1e-14)
    assert np.all(np.abs(lay.target_weights - np.clip(W, -lay.clip, lay.clip)) <= lay.step / 2 + 1e-12)


# --- placement -----------------------------------------------------------------------------
def _net_64_100_10(mapping=None):
    mapping = mapping or DifferentialMapping(G_MIN, G_MAX)
    return [mapping.map(_w((64, 100), 10)), mapping.map(_w((100, 10), 11))]


def test_64_100_10_fits_one_array_all_cells_distinct():
    layers = _net_64_100_10()
    p = place(layers, (128, 128), max_arrays=1)
    assert p.n_arrays == 1 and tile_count(layers) == 1 and tile_count([(64, 100), (100, 10)]) == 1
    assert p.n_devices == 14_800 == sum(lay.n_devices for lay in layers)
    cells = []
    for key, lay in enumerate(layers):
        arr, row, col = p.cells(key)
        assert arr.shape == (2, *lay.shape) and np.all(arr == 0)
        # the two devices of every weight are distinct cells, adjacent on the same row
        assert np.all(row[0] == row[1]) and np.all(col[1] == col[0] + 1)
        cells.append(np.stack([row.ravel(), col.ravel()], axis=1))
        # the targets hold the layer's conductances at those cells
        t = p.targets(0)
        np.testing.assert_array_equal(t[row[0], col[0]], lay.g_plus)
        np.testing.assert_array_equal(t[row[1], col[1]], lay.g_minus)
    cells = np.concatenate(cells)
    assert len(cells) == 14_800
    assert len(np.unique(cells, axis=0)) == 14_800  # no cell used twice
    t = p.targets(0)
    assert np.count_nonzero(~np.isnan(t)) == 14_800
    assert p.used(0).sum() == 14_800
    assert p.utilization(0) == pytest.approx(14_800 / 128**2)
    # tiles never overlap and stay inside the array
    for tile in p.tiles:
        assert tile.row + tile.n_rows <= 128 and tile.col + tile.n_cols <= 128
    # read back through gather and through a tile-by-tile MVM
    rng = np.random.default_rng(12)
    g = {0: np.where(np.isnan(t), rng.uniform(0, 200e-6, t.shape), t)}  # unused cells hold anything
    back = p.weights(g)
    for key, lay in enumerate(layers):
        np.testing.assert_allclose(back[key], lay.target_weights, rtol=1e-12, atol=1e-14)
    x = rng.standard_normal((5, 64))
    h = p.mvm(0, x, g)
    np.testing.assert_allclose(h, x @ layers[0].target_weights, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(p.mvm(1, h, g), h @ layers[1].target_weights, rtol=1e-10, atol=1e-10)


def test_dict_of_layers_keeps_names():
    a, b = _net_64_100_10()
    p = place({"hidden": a, "out": b})
    assert set(p.layers) == {"hidden", "out"}
    assert {t.layer for t in p.tiles} == {"hidden", "out"}
    gp, gm = p.gather({0: p.targets(0)})["out"]
    np.testing.assert_array_equal(gp, b.g_plus)
    np.testing.assert_array_equal(gm, b.g_minus)
    with pytest.raises(KeyError, match="no layer"):
        p.cells("missing")


def test_300x50_tiled_partial_sums():
    W = _w((300, 50), 20)
    lay = DifferentialMapping(G_MIN, G_MAX, scale="column").map(W)
    p = place([lay], (128, 128))
    tiles = p.tiles_of(0)
    assert p.n_arrays >= 3 and len(tiles) >= 3  # 300 inputs need three row tiles
    assert sum(t.n_rows for t in tiles) == 300 and all(t.n_outputs == 50 for t in tiles)
    assert p.n_devices == 2 * 300 * 50
    rng = np.random.default_rng(21)
    arrays = {}
    for a in range(p.n_arrays):
        t = p.targets(a)
        arrays[a] = np.where(np.isnan(t), rng.uniform(0, 200e-6, t.shape), t)
    # gathered conductances give back the layer
    gp, gm = p.gather(arrays)[0]
    np.testing.assert_array_equal(gp, lay.g_plus)
    np.testing.assert_array_equal(gm, lay.g_minus)
    # y = x·W by hand, tile by tile: partial column currents of every row tile summed
    x = rng.standard_normal((4, 300))
    y = np.zeros((4, 50))
    for t in tiles:
        cur = x[:, t.inputs] @ arrays[t.array][t.rows, t.cols]
        diff = cur[:, 0::2] - cur[:, 1::2]
        y[:, t.outputs] += diff / lay.gamma[t.outputs]
    np.testing.assert_allclose(y, x @ W, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(p.mvm(0, x, arrays), x @ W, rtol=1e-10, atol=1e-10)
    # the same through a full-array read (every row driven, all columns sensed), as a crossbar does
    def read(a, v):
        assert v.shape == (128,)
        return v @ arrays[a]

    np.testing.assert_allclose(p.mvm(0, x[0], read, v_read=0.2), x[0] @ W, rtol=1e-10, atol=1e-10)


def test_bit_sliced_placement_round_trip():
    lay = BitSlicedMapping(g_min=G_MIN, g_max=G_MAX).map(_w((40, 30), 30))
    p = place([lay], (64, 64))
    assert all(t.n_cols <= 64 for t in p.tiles) and p.n_devices == lay.n_devices
    arrays = {a: p.targets(a) for a in range(p.n_arrays)}
    gp, gm = p.gather(arrays)[0]
    np.testing.assert_array_equal(gp, lay.g_plus)
    arr, row, col = p.cells(0)
    assert arr.shape == (2, 4, 40, 30)
    flat = np.stack([arr.ravel(), row.ravel(), col.ravel()], axis=1)
    assert len(np.unique(flat, axis=0)) == lay.n_devices
    x = np.random.default_rng(31).standard_normal(40)
    np.testing.assert_allclose(p.mvm(0, x, arrays), x @ lay.target_weights, rtol=1e-10, atol=1e-10)


def test_small_layers_share_one_array_first_fit():
    m = DifferentialMapping(G_MIN, G_MAX)
    layers = [m.map(_w((30, 20), i)) for i in range(4)]
    p = place(layers, (128, 128))
    assert p.n_arrays == 1 and len(p.tiles) == 4
    assert p.used(0).sum() == 4 * 2 * 30 * 20


def test_placement_errors():
    m = DifferentialMapping(G_MIN, G_MAX)
    big = m.map(_w((300, 50), 1))
    with pytest.raises(PlacementError, match="does not fit"):
        place([big], (128, 128), max_arrays=2)
    with pytest.raises(PlacementError, match="columns"):
        place([m.map(_w((4, 4), 2))], (8, 1))
    sliced = BitSlicedMapping(g_min=G_MIN, g_max=G_MAX).map(_w((4, 4), 3))  # 8 columns per output
    with pytest.raises(PlacementError, match="8 adjacent columns"):
        place([sliced], (16, 6))
    with pytest.raises(PlacementError, match="array_shape"):
        place([big], (0, 128))
    with pytest.raises(PlacementError, match="no layers"):
        place([])
    with pytest.raises(PlacementError, match="not a MappedLayer"):
        place([np.ones((3, 3))])
    with pytest.raises(PlacementError, match="shape"):
        tile_count([(0, 5)])
    assert tile_count([(300, 50)]) == 3
    p = place([big])
    with pytest.raises(ValueError, match="no conductances for array"):
        p.gather({0: p.targets(0)})
    with pytest.raises(ValueError, match="shape"):
        p.gather({a: np.zeros((4, 4)) for a in range(p.n_arrays)})
    with pytest.raises(IndexError):
        p.targets(p.n_arrays)


def test_random_networks_pack_without_overlap():
    rng = np.random.default_rng(40)
    m = DifferentialMapping(G_MIN, G_MAX)
    for trial in range(8):
        shapes = [tuple(int(v) for v in rng.integers(1, 200, 2)) for _ in range(rng.integers(1, 5))]
        layers = [m.map(_w(s, trial * 10 + i)) for i, s in enumerate(shapes)]
        p = place(layers, (64, 96))
        assert p.n_devices == sum(lay.n_devices for lay in layers)
        assert sum(p.used(a).sum() for a in range(p.n_arrays)) == p.n_devices  # no overlap
        assert tile_count(shapes, (64, 96)) == p.n_arrays
        back = p.weights({a: p.targets(a) for a in range(p.n_arrays)})
        for i, lay in enumerate(layers):
            np.testing.assert_allclose(back[i], lay.target_weights, rtol=1e-12, atol=1e-14)
