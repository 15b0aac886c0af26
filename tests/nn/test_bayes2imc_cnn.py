"""Binary Bayesian CNNs sampled against reference PCM devices on a multi-tile array (Bayes2IMC at
CNN scale), on tiny networks and arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from labrram import sim
from labrram.nn.bayes2imc import (
    BinaryBayesNetwork,
    BinaryConv,
    BinaryLayout,
    SamplerSettings,
    calibrate_sampler,
    deploy_binary,
    evaluate_deployment,
    lambda_to_z,
)
from labrram.nn.binary_bayes import BinaryBayesCNN, BinaryCNNSpec, BinarySettings, train_binary_bayes
from labrram.nn.datasets import load_task
from labrram.nn.drift import BatchNorm
from labrram.station import load_station


def _norm(n: int, rng) -> BatchNorm:
    return BatchNorm(rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n), rng.normal(0, 1, n), rng.uniform(0.5, 2.0, n))


# --- the network ---------------------------------------------------------------------------------
def test_numpy_cnn_computes_what_torch_computes_and_survives_npz():
    spec = BinaryCNNSpec(image=(1, 10, 10), channels=(3, 4), kernel=3, pool=2, hidden=(7,), n_classes=5)
    model = BinaryBayesCNN(spec, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    with torch.no_grad():  # non-trivial batch norms and posteriors
        for bn in [*model.conv_norms, *model.dense.norms]:
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.3)
        for layer in model.layers:
            layer.lam.normal_(0, 1.5)
    model.eval()
    net = model.to_numpy()
    assert net.shapes == [(9, 3), (27, 4), (4, 7), (7, 5)] and net.n_features == 100
    assert [c is not None for c in net.convs] == [True, True, False, False]
    X = rng.random((6, 100))
    with torch.no_grad():
        ref = model(torch.as_tensor(X, dtype=torch.float32)).double().numpy()  # eval: weights tanh(λ)
    ours = net.logits(X, net.mean_weights())
    assert np.allclose(ours, ref, atol=1e-4)
    # float32 inputs take torch's convolution; the same numbers
    assert np.allclose(net.logits(X.astype(np.float32), net.mean_weights()), ref, atol=1e-4)
    # sampled ±1 networks: same in numpy (float64) and through the float32 path
    w = net.software_samples(1, 3)[0]
    assert np.allclose(net.logits(X, w), net.logits(X.astype(np.float32), w), atol=1e-3)


def test_save_and_load_round_trip_without_pickle(tmp_path):
    rng = np.random.default_rng(1)
    net = BinaryBayesNetwork(
        [rng.normal(size=(9, 2)), rng.normal(size=(8, 3))], [_norm(2, rng), _norm(3, rng)], [BinaryConv((1, 6, 6), 3, 2), None]
    )
    net.save(tmp_path / "n.npz")
    back = BinaryBayesNetwork.load(tmp_path / "n.npz")
    assert back.convs == net.convs and back.shapes == net.shapes
    X = rng.random((4, 36))
    assert np.allclose(back.logits(X, net.mean_weights()), net.logits(X, net.mean_weights()))
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a binary Bayesian network"):
        BinaryBayesNetwork.load(tmp_path / "other.npz")


@pytest.mark.parametrize(
    "lambdas, convs, match",
    [
        ([np.zeros((9, 2)), np.zeros((9, 3))], [BinaryConv((1, 6, 6), 3, 2), None], "takes 9 inputs"),
        ([np.zeros((8, 2)), np.zeros((8, 3))], [BinaryConv((1, 6, 6), 3, 2), None], "needs 9 rows"),
        ([np.zeros((9, 2))], [BinaryConv((1, 6, 6), 3, 2)], "last layer"),
    ],
)
def test_bad_networks_are_named(lambdas, convs, match):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=match):
        BinaryBayesNetwork(lambdas, [_norm(lam.shape[1], rng) for lam in lambdas], convs)


def test_conv_shapes_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="do not fit"):
        BinaryConv((1, 4, 4), 5)
    with pytest.raises(ValueError, match="kernel"):
        BinaryConv((1, 8, 8), 0)


# --- the tiled layout with reference rows --------------------------------------------------------
def test_tile_grid_lays_every_weight_once_outside_the_reference_rows():
    shapes = [(25, 8), (200, 16), (256, 100), (100, 10)]
    lay = BinaryLayout.tile_grid(shapes, (128, 512), (128, 128), ref_rows=8)
    w = lay.weight_mask()
    assert w.sum() == lay.weight_devices == sum(a * b for a, b in shapes)
    assert not np.any(w & lay.reference_mask())
    assert lay.reference_mask().sum() == 8 * 512 and lay.n_tiles == 4
    per = [np.arange(a * b, dtype=float).reshape(a, b) + 1000 * i for i, (a, b) in enumerate(shapes)]
    full = lay.place(per)
    assert np.isnan(full).sum() == 128 * 512 - w.sum()  # no overlap: every placed value survived
    for i in range(len(shapes)):
        assert np.array_equal(lay.layer(full, i), per[i])
    # references: the last 8 rows of the tile, in the cell's column
    rr, rc = lay.references_of(np.array([0, 119]), np.array([5, 300]), pool="column")
    assert rr.shape == (8, 2) and np.array_equal(rr[:, 0], np.arange(120, 128)) and np.all(rc[:, 1] == 300)
    tr, tc = lay.references_of(np.array([0, 119]), np.array([5, 300]), pool="tile")
    assert tr.shape == (8 * 128, 2) and set(tc[:, 1]) == set(range(256, 384)) and set(tr[:, 1]) == set(range(120, 128))
    g = np.zeros((128, 512))
    g[120:, 7] = np.arange(8.0)
    levels = lay.reference_levels(g, pool="column")
    assert levels[3, 7] == pytest.approx(3.5) and levels[3, 8] == 0
    assert lay.reference_levels(g, pool="tile")[3, 8] == pytest.approx(28.0 / (8 * 128))
    assert lay.reference_levels(g, pool="tile")[3, 200] == 0  # another tile
    ok = np.ones_like(g, bool)
    ok[127, 7] = False
    assert lay.reference_levels(g, ok, pool="column")[3, 7] == pytest.approx(3.0)
    r, c = lay.free_cells()
    assert not np.any(w[r, c]) and not np.any(lay.reference_mask()[r, c]) and c[0] == 511


def test_a_row_order_routes_each_matrix_row_to_its_slot_across_pieces():
    shapes = [(200, 30), (30, 10)]  # layer 0 is cut into two row pieces in two tiles
    lay = BinaryLayout.tile_grid(shapes, (128, 256), (128, 128), ref_rows=8)
    per = [np.arange(6000.0).reshape(200, 30), -1.0 - np.arange(300.0).reshape(30, 10)]
    order = np.random.default_rng(0).permutation(200)
    moved = lay.with_orders([order, None])
    full = moved.place(per)
    assert np.array_equal(moved.layer(full, 0), per[0]) and np.array_equal(moved.layer(full, 1), per[1])
    assert np.array_equal(lay.layer(full, 0), per[0][order])  # slot p holds row order[p]
    assert np.array_equal(moved.order(0), order) and np.array_equal(moved.order(1), np.arange(30))
    assert np.array_equal(moved.layer(full[None].repeat(3, 0), 0)[2], per[0])  # leading axes (reads)
    assert lay.with_orders([np.arange(200), None]) == lay  # the identity is no order at all
    assert BinaryLayout(lay.shape, lay.shapes, lay.pieces, lay.tile, lay.ref_rows, (tuple(order), None)) == moved
    with pytest.raises(ValueError, match="layer 0 must be a permutation"):
        BinaryLayout(lay.shape, lay.shapes, lay.pieces, lay.tile, lay.ref_rows, ((1, 2), None))
    with pytest.raises(ValueError, match="names 1 layers"):
        lay.with_orders([order])
    with pytest.raises(ValueError, match="layer 0 must be a permutation of its 200 rows"):
        lay.with_orders([np.zeros(200, int), None])
    with pytest.raises(ValueError, match="layer 1 must be a permutation"):
        lay.with_orders([None, np.arange(30.0)])


def test_tile_grid_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="whole number"):
        BinaryLayout.tile_grid([(10, 10)], (100, 128))
    with pytest.raises(ValueError, match="ref_rows"):
        BinaryLayout.tile_grid([(10, 10)], (128, 128), ref_rows=0)
    with pytest.raises(ValueError, match="does not fit"):
        BinaryLayout.tile_grid([(256, 300)], (128, 256))
    with pytest.raises(ValueError, match="no reference devices"):
        BinaryLayout.pack((4, 3), (8, 8)).references_of([0], [0])


# --- on the simulated PCM array: reference devices -------------------------------------------------
def _station(seed: int, rows: int, cols: int):
    sim.configure_bench("b2imc-cnn-test", seed=seed, kind="pcm", rows=rows, cols=cols)
    return load_station().with_simulation(bench="b2imc-cnn-test", seed=seed, kind="pcm", rows=rows, cols=cols).connect()


def _deploy_tiled(st, net, tile=(32, 32), ref_rows=4, n_spare=200, reference="tile"):
    xb, timer = st.crossbar, st.timer
    settings = SamplerSettings(reference=reference)
    lay = BinaryLayout.tile_grid(net.shapes, tuple(xb.shape), tile, ref_rows)
    r, c = lay.free_cells()
    r, c = r[:n_spare], c[:n_spare]
    noise = calibrate_sampler(xb, timer, (r, c), references=lay.references_of(r, c, reference), g_ref=settings.g_ref)
    return noise, deploy_binary(xb, timer, net, noise, settings, lay)


def test_reference_devices_sample_the_posterior_and_track_the_drift():
    rng = np.random.default_rng(0)
    lam = rng.permutation(np.r_[np.linspace(-2.2, 2.2, 560), np.full(40, 8.0), np.full(40, -8.0)]).reshape(20, 32)
    net = BinaryBayesNetwork([lam], [BatchNorm(np.ones(32), np.zeros(32), np.zeros(32), np.ones(32))])
    with _station(3, 32, 64) as st:
        xb, timer = st.crossbar, st.timer
        noise, dep = _deploy_tiled(st, net, reference="column")
        s = dep.summary()
        assert s["reference_devices"] == 4 * 64 and s["weight_devices"] == 640 and s["converged_fraction"] > 0.97
        # the comparison noise includes the reference's: fractions of a µS, rising with G
        assert 0.1e-6 < noise.sigma(8e-6) < 1.0e-6 and noise.b > 0
        z = lambda_to_z(lam)
        ok = dep.ok()[0]
        th = dep.thresholds(xb.read())[0]
        assert th.shape == (20, 32) and 7e-6 < np.median(th) < 9e-6  # read from the reference devices

        def frequency(d, n=150):
            return (np.mean([w[0] for w in d.sample(xb, timer, n)], axis=0) + 1) / 2

        p0 = frequency(dep)
        uncertain = ok & (np.abs(z) < 3.0)
        assert np.corrcoef(p0[uncertain], norm.cdf(z[uncertain]))[0, 1] > 0.8
        err = norm.ppf(np.clip(p0, 0.005, 0.995)) - z
        assert abs(np.median(err[uncertain])) < 0.4
        timer.wait(86400.0)
        # the references drifted with the weights: no digital compensation, probabilities kept
        th_day = dep.thresholds(xb.read())[0]
        assert np.median(th_day) < 0.85 * np.median(th)
        p_day = frequency(dep)
        err_day = norm.ppf(np.clip(p_day, 0.005, 0.995)) - z
        assert abs(np.median(err_day[uncertain])) < 0.4 and np.mean(np.abs(p_day - p0)[ok]) < 0.2
        from dataclasses import replace

        fixed = replace(dep, settings=replace(dep.settings, reference="digital", drift_compensation=False))
        assert np.mean(frequency(fixed, 20)[ok]) < 0.15


def test_cnn_end_to_end_on_a_multi_tile_array():
    task = load_task("digits", seed=0)
    spec = BinaryCNNSpec(image=(1, 8, 8), channels=(6,), kernel=3, pool=2, hidden=(), n_classes=10)
    model, hist = train_binary_bayes(task.X_train, task.y_train, spec, BinarySettings(epochs=25, lr=0.1, batch_size=32, z_noise=2.0, kl_weight=0.05))
    net = model.to_numpy()
    assert net.shapes == [(9, 6), (54, 10)]
    X, y = task.X_test[:300].astype(np.float32), task.y_test[:300]
    sw = np.mean([net.accuracy(X, y, net.software_samples(16, s)) for s in range(3)])
    assert sw > 0.7
    with _station(5, 32, 64) as st:
        _, dep = _deploy_tiled(st, net)
        # 54 rows do not fit the 28 weight rows of a tile: the output layer is cut in two pieces
        assert sorted(p.n_rows for p in dep.layout.pieces if p.layer == 1) == [26, 28]
        corr, rows = evaluate_deployment(st.crossbar, st.timer, dep, X, y, [1.0, 3600.0], n_samples=16, X_cal=task.X_train[:64], n_fixed=4)
        assert st.timer.now() - dep.t_programmed > 3600.0
    assert corr.reads == 16 and corr.delta.shape == (54, 10)  # from the 16 scored networks
    assert [r["t"] for r in rows] == [1.0, 3600.0]
    for r in rows:
        assert r["corrected"] > sw - 0.08 and r["uncorrected"] > sw - 0.15
    assert rows[1]["uncompensated"] < rows[1]["corrected"] - 0.2  # a fixed reference after an hour


def test_device_references_need_a_layout_with_reference_rows():
    rng = np.random.default_rng(0)
    net = BinaryBayesNetwork([rng.normal(size=(4, 3))], [_norm(3, rng)])
    with _station(6, 16, 16) as st:
        from labrram.nn.bayes2imc import SamplerNoise

        noise = SamplerNoise(0.25e-6, 0.35, interval=1.0)
        with pytest.raises(ValueError, match="reference devices"):
            deploy_binary(st.crossbar, st.timer, net, noise, SamplerSettings(reference="tile"))
        with pytest.raises(ValueError, match="references must be"):
            calibrate_sampler(st.crossbar, st.timer, (np.arange(32) % 16, np.arange(32) // 16 + 10), references=(np.zeros((2, 3), int), np.zeros((2, 3), int)))
    with pytest.raises(ValueError, match="reference must be one of"):
        SamplerSettings(reference="magic")


# --- the correction's matched batch norms --------------------------------------------------------
def _small_cnn(seed: int) -> BinaryBayesNetwork:
    rng = np.random.default_rng(seed)
    return BinaryBayesNetwork(
        [rng.normal(0, 1.5, (9, 3)), rng.normal(0, 1.5, (27, 4)), rng.normal(0, 1.5, (4, 7)), rng.normal(0, 1.5, (7, 5))],
        [_norm(3, rng), _norm(4, rng), _norm(7, rng), _norm(5, rng)],
        [BinaryConv((1, 10, 10), 3, 2), BinaryConv((3, 4, 4), 3, 2), None, None],
    )


def _conv_products(net: BinaryBayesNetwork, X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The first convolution's products by torch, channel-major ``(N, C, H, W)``."""
    conv = net.convs[0]
    wt = torch.as_tensor(w.T.reshape(w.shape[1], conv.in_shape[0], conv.kernel, conv.kernel))
    return torch.nn.functional.conv2d(torch.as_tensor(X.reshape((len(X),) + conv.in_shape)), wt).numpy()


def test_batch_norm_matched_to_other_statistics_is_the_old_one_after_a_per_feature_map():
    rng = np.random.default_rng(0)
    bn = _norm(4, rng)
    measured = (rng.normal(0, 2, 4), np.array([0.5, 2.0, 0.0, 1.0]))
    target = (rng.normal(0, 2, 4), np.array([1.5, 0.7, 1.0, 0.0]))
    z = rng.normal(size=(50, 4))
    ratio = np.array([0.5 / 1.5, 2.0 / 0.7, 1.0, 1.0])  # a zero std on either side: the scale is kept
    mapped = (z - measured[0]) / ratio + target[0]
    assert np.allclose(bn.matched(measured, target)(z), bn(mapped))
    assert np.allclose(bn.matched(target, target)(z), bn(z))  # matched to itself: unchanged
    with pytest.raises(ValueError, match="measured mean has shape"):
        bn.matched((np.zeros(3), np.ones(4)), target)
    with pytest.raises(ValueError, match="target std holds NaN"):
        bn.matched(measured, (np.zeros(4), np.array([1.0, np.nan, 1.0, 1.0])))
    with pytest.raises(ValueError, match=">= 0"):
        bn.matched((np.zeros(4), -np.ones(4)), target)


def test_hidden_moments_are_each_channels_statistics_and_matching_gives_the_software_ones():
    net = _small_cnn(1)
    rng = np.random.default_rng(2)
    X = rng.random((40, 100))
    software = net.software_samples(30, 3)
    shifted = BinaryBayesNetwork([lam + rng.normal(0.4, 0.8, lam.shape) for lam in net.lambdas], net.norms, net.convs)
    hardware = shifted.software_samples(20, 4)  # a systematically different set of networks
    moments, norms = net.hidden_moments(X, software)
    assert len(moments) == 3 and [m.shape for m, _ in moments] == [(3,), (4,), (7,)]
    assert norms == net.norms[:-1]
    z = np.concatenate([np.moveaxis(_conv_products(net, X, w[0]), 1, -1).reshape(-1, 3) for w in software])
    assert np.allclose(moments[0][0], z.mean(axis=0)) and np.allclose(moments[0][1], z.std(axis=0))
    # matching a set of networks to its own moments changes nothing, in every layer
    same = net.hidden_moments(X, software, moments)[1]
    for a, b in zip(same, net.norms[:-1]):
        assert np.allclose(a.mean, b.mean) and np.allclose(a.var, b.var)
    # matched: the hardware's first batch norm gives each channel the software's mean and spread
    measured, matched = net.hidden_moments(X, hardware, moments)
    hw = np.concatenate([np.moveaxis(_conv_products(net, X, w[0]), 1, -1).reshape(-1, 3) for w in hardware])
    assert not np.allclose(hw.mean(axis=0), z.mean(axis=0), atol=0.1)
    assert np.allclose(matched[0](hw).mean(axis=0), net.norms[0](z).mean(axis=0))
    assert np.allclose(matched[0](hw).std(axis=0), net.norms[0](z).std(axis=0))
    assert np.allclose(measured[0][0], hw.mean(axis=0))
    with pytest.raises(ValueError, match="each hidden layer"):
        net.hidden_moments(X, hardware, moments[:2])
    with pytest.raises(ValueError, match="one batch norm per hidden layer"):
        net.hidden(X, hardware[0], norms=matched[:2])


def test_matched_norms_give_every_hidden_layer_the_softwares_statistics_through_the_ones_before():
    """Each layer is measured through the matched batch norms before it, as the corrected
    networks run: there too its batch norm's output has the software's per-channel mean and
    spread. The correction carries them, and scoring several corrections at once gives each its
    own hidden layers."""
    from labrram.nn.bayes2imc import SoftwareReference, measure_correction

    net = _small_cnn(5)
    rng = np.random.default_rng(6)
    X_cal, X = rng.random((60, 100)), rng.random((30, 100))
    hidden_off = [lam + (rng.normal(0.6, 0.6, lam.shape) if i < 3 else 0.0) for i, lam in enumerate(net.lambdas)]
    hardware = BinaryBayesNetwork(hidden_off, net.norms, net.convs).software_samples(24, 7)
    software = SoftwareReference.measure(net, X_cal, 48, 8)
    measured, matched = net.hidden_moments(X_cal, hardware, software.moments)

    def out_moments(bn, moments):  # a batch norm is a per-channel affine map
        scale = bn.gamma / np.sqrt(bn.var + bn.eps)
        return scale * (moments[0] - bn.mean) + bn.beta, np.abs(scale) * moments[1]

    c0, c1 = net.convs[0], net.convs[1]
    x1 = [c0.activate(c0.products(X_cal, w[0]), matched[0]) for w in hardware]  # by hand, through matched[0]
    z1 = np.concatenate([np.moveaxis(c1.products(x, w[1]), 1, -1).reshape(-1, 4) for x, w in zip(x1, hardware)])
    assert np.allclose(measured[1][0], z1.mean(axis=0)) and np.allclose(measured[1][1], z1.std(axis=0))
    for i in range(3):
        ours, theirs = out_moments(matched[i], measured[i]), out_moments(net.norms[i], software.moments[i])
        assert np.allclose(ours[0], theirs[0]) and np.allclose(ours[1], theirs[1])
    final = measure_correction(net, hardware, None, X_cal, software, match_norms=False)
    corrected = measure_correction(net, hardware, None, X_cal, software)
    assert final.norms is None and all(np.allclose(a.var, b.var) for a, b in zip(corrected.norms, matched))
    y = rng.integers(0, 5, len(X))
    together = net.accuracies(X, y, hardware, [corrected, None, final])
    assert together == [net.accuracy(X, y, hardware, c) for c in (corrected, None, final)]
    assert not np.allclose(net.sample_logits(X, hardware, corrected), net.sample_logits(X, hardware, final))
