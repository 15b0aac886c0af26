"""Networks over many arrays: im2col against torch, replication, the tile plan, pair repair,
and inference by in-array MVMs on the simulated bench (one array reprogrammed tile by tile)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from labrram.mapping import DifferentialMapping, place  # noqa: E402
from labrram.nn.datasets import fashion_mnist_dir, load_fashion_mnist  # noqa: E402
from labrram.nn.lenet import LeNet, export_layers, prepare_images, train_lenet  # noqa: E402
from labrram.nn.tiled import (  # noqa: E402
    Conv,
    Dense,
    compensate_pairs,
    forward,
    im2col,
    input_ranges,
    plan_network,
    replicate,
    run_in_array,
)
from labrram.nn.train import TrainSettings  # noqa: E402
from labrram.station import load_station  # noqa: E402


def small_net(rng, c=(2, 3), hidden=6):
    return [
        Conv(rng.normal(0, 0.3, (c[0], 1, 3, 3)), rng.normal(0, 0.1, c[0]), pool=2),
        Conv(rng.normal(0, 0.3, (c[1], c[0], 3, 3)), rng.normal(0, 0.1, c[1]), padding=1),
        Dense(rng.normal(0, 0.3, (hidden, c[1] * 16)), rng.normal(0, 0.1, hidden), relu=True),
        Dense(rng.normal(0, 0.3, (4, hidden)), rng.normal(0, 0.1, 4)),
    ]


def test_forward_matches_torch_lenet():
    torch.manual_seed(0)
    model = LeNet().eval()
    x = np.random.default_rng(0).random((3, 1, 28, 28))
    with torch.no_grad():
        ref = model(torch.as_tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(forward(export_layers(model), x), ref, atol=2e-5)


@pytest.mark.parametrize("stride, padding", [(1, 0), (2, 1), (3, 2)])
def test_im2col_conv_matches_torch(stride, padding):
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    x = rng.normal(size=(2, 3, 9, 8))
    lay = Conv(w, b, stride=stride, padding=padding, relu=False)
    ref = torch.nn.functional.conv2d(torch.as_tensor(x), torch.as_tensor(w), torch.as_tensor(b), stride=stride, padding=padding).numpy()
    assert lay.conv_shape((3, 9, 8)) == ref.shape[1:]
    np.testing.assert_allclose(forward([lay], x), ref, atol=1e-12)
    cols = im2col(x, 3, stride, padding)
    assert cols.shape == (2, ref.shape[2] * ref.shape[3], 27)


def test_replicated_matrix_computes_r_positions_at_once():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(10, 3))  # 9 inputs + bias row
    rep = replicate(m, 4)
    assert rep.shape == (37, 12)
    v = rng.normal(size=(4, 9))
    y = np.append(v.ravel(), 1.0) @ rep
    np.testing.assert_allclose(y.reshape(4, 3), v @ m[:-1] + m[-1])


def test_lenet5_plan_on_128x128_arrays():
    model = LeNet()  # (6, 16) maps, (120, 84) hidden: LeNet-5's sizes
    plan = plan_network(export_layers(model), (1, 28, 28))
    conv1, conv2, fc1, fc2, fc3 = plan.plans
    # conv1: 25 + 1 rows, 6 pairs; 5 copies fit the 128 rows (5·25 + 1), 576 positions / 5
    assert (conv1.replicas, conv1.tiles, conv1.vectors_per_image) == (5, 1, math.ceil(576 / 5))
    # conv2: 6·25 + 1 = 151 rows > 128 → two row tiles, 64 positions each
    assert (conv2.replicas, conv2.tiles, conv2.mvms_per_image) == (1, 2, 128)
    # fc1: 257 rows → 3 row tiles; 120 pairs = 240 columns → 2 column tiles
    assert fc1.tiles == 6 and {t.inputs.stop - t.inputs.start for t in fc1.placement.tiles} == {85, 86}
    assert fc2.tiles == 2 and fc3.tiles == 1
    assert plan.weights == 44426
    assert plan.devices == 2 * sum(p.mapped.target_weights.size for p in plan.plans)
    assert plan.mvms_per_image == sum(p.vectors_per_image * p.tiles for p in plan.plans) == 116 + 128 + 6 + 2 + 1
    assert plan.arrays == sum(place([p.mapped]).n_arrays for p in plan.plans)
    # positions of several images share the replicated MVMs: 2 images need 231, not 232, for conv1
    assert plan.mvms(2) == math.ceil(2 * 576 / 5) + 2 * (128 + 6 + 2 + 1)
    assert plan_network(export_layers(model), (1, 28, 28), replicate_kernels=False).plans[0].mvms_per_image == 576


def test_plan_rejects_what_does_not_fit():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"Dense takes 48 inputs, got 3 "):
        plan_network(small_net(rng), (1, 4, 4))
    with pytest.raises(ValueError, match="Conv takes"):
        plan_network(small_net(rng), (2, 10, 10))
    with pytest.raises(ValueError, match="Conv bias has shape"):
        Conv(np.zeros((2, 1, 3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="not a Conv or Dense"):
        plan_network(["relu"], (4,))  # type: ignore[list-item]


def test_compensate_pairs_restores_the_difference():
    w = np.array([[0.5, -0.2], [0.1, 0.0], [-0.4, 0.3]])
    mp = DifferentialMapping(10e-6, 200e-6)
    lay = mp.map(w)
    pl = place([lay], (8, 8))
    t = pl.targets(0)
    arr, row, col = pl.cells(0)
    achieved = np.where(np.isnan(t), np.nan, t)
    failed = np.zeros(t.shape, bool)
    # w[0,1]: G+ stuck at 30 µS (repairable); w[1,1]: G- stuck high (400 µS, beyond the range);
    # w[0,0]: G+ stuck low (2 µS, G- cannot go below the range); w[2,0]: both failed
    cases = [(0, 1, 0, 30e-6), (1, 1, 1, 400e-6), (0, 0, 0, 2e-6), (2, 0, 0, 50e-6), (2, 0, 1, 60e-6)]
    for (i, j, sign, g) in cases:
        achieved[row[sign, i, j], col[sign, i, j]] = g
        failed[row[sign, i, j], col[sign, i, j]] = True
    new, n = compensate_pairs(pl, 0, t, achieved, failed, (8e-6, 380e-6))
    assert n == 3 and np.isfinite(new).sum() == 3
    g = np.where(np.isnan(new), achieved, new)
    got = pl.weights({0: g})[0]
    assert got[0, 1] == pytest.approx(w[0, 1], abs=1e-12)  # G- raised by the same 20 µS
    assert got[1, 1] == pytest.approx(-(400e-6 - 380e-6) / lay.gamma[1])  # partner at the top of the range
    assert new[row[1, 0, 0], col[1, 0, 0]] == 8e-6  # G- as low as it goes
    assert got[0, 0] == pytest.approx((2e-6 - 8e-6) / lay.gamma[0])
    np.testing.assert_allclose(np.delete(got.ravel(), [0, 1, 3, 4]), np.delete(w.ravel(), [0, 1, 3, 4]), atol=1e-12)
    assert np.isnan(new[row[:, 2, 0], col[:, 2, 0]]).all()  # a pair whose two devices failed stays


def test_in_array_inference_over_many_tiles_of_a_small_array(tmp_path):
    rng = np.random.default_rng(3)
    layers = small_net(rng)
    X = rng.random((6, 1, 10, 10))
    plan = plan_network(layers, (1, 10, 10), array_shape=(32, 32))
    # the 32×32 array forces row tiles (conv2: 19 rows fit, fc1: 49 rows do not) and column tiles
    fc1 = plan.plans[2]
    assert len({(t.inputs.start, t.inputs.stop) for t in fc1.placement.tiles}) >= 2
    assert len({(t.outputs.start, t.outputs.stop) for t in fc1.placement.tiles}) == 1 and plan.arrays >= 4
    ranges = input_ranges(layers, rng.random((20, 1, 10, 10)))
    with load_station().with_simulation(bench="nn-tiled", seed=0, rows=32, cols=32).connect() as st:
        run = run_in_array(st, plan, X, ranges, v_max=0.2, out_dir=tmp_path / "runs")
        chip = st.bench.chip
        assert chip.max_read_voltage <= 0.2 * (1 + 1e-6)  # every MVM row voltage within v_max (float32 on the wire)
    assert len(run.jobs) == plan.arrays
    assert sorted(p.name for p in (tmp_path / "runs").iterdir() if not p.name.endswith("-repair.zarr")) == sorted(
        f"layer{j.layer}-array{j.array}.zarr" for j in run.jobs
    )
    from labrram.store import RunStore

    first = RunStore.open(tmp_path / "runs" / "layer0-array0.zarr")
    assert first.attrs["network_job"] == "layer 0, array image 0" and first.attrs["device_kind"] == "reram"
    np.testing.assert_array_equal(np.isfinite(first.read("achieved")), np.isfinite(plan.plans[0].placement.targets(0)))
    assert run.mvms == plan.mvms(len(X)) <= plan.mvms_per_image * len(X)
    assert run.devices_programmed == plan.devices
    assert run.program_bench_time > 0 and run.mvm_bench_time > 0
    proj = run.projection(1000)
    assert proj["inference"] == pytest.approx(plan.mvms(1000) * run.mvm_bench_time / run.mvms)
    ref = forward(layers, np.asarray(X))
    err = np.sqrt(np.mean((run.logits - ref) ** 2)) / np.sqrt(np.mean(ref**2))
    assert err < 0.1, err
    assert np.mean(run.logits.argmax(1) == ref.argmax(1)) >= 5 / 6


def test_run_refuses_a_mismatched_station_or_inputs(tmp_path):
    rng = np.random.default_rng(4)
    layers = small_net(rng)
    plan = plan_network(layers, (1, 10, 10), array_shape=(32, 32))
    ranges = [1.0] * 4
    with load_station().with_simulation(bench="nn-tiled-bad", seed=0, rows=16, cols=16).connect() as st:
        with pytest.raises(ValueError, match=r"the plan is for \(32, 32\) arrays"):
            run_in_array(st, plan, rng.random((1, 1, 10, 10)), ranges)
    with load_station().with_simulation(bench="nn-tiled-bad", seed=0, rows=32, cols=32).connect() as st:
        with pytest.raises(ValueError, match="v_max must be in"):
            run_in_array(st, plan, rng.random((1, 1, 10, 10)), ranges, v_max=2.0)
        with pytest.raises(ValueError, match="X has shape"):
            run_in_array(st, plan, rng.random((1, 1, 12, 12)), ranges)
        with pytest.raises(ValueError, match="one positive input range per layer"):
            run_in_array(st, plan, rng.random((1, 1, 10, 10)), [1.0])


def _fmnist_installed() -> bool:
    return any((fashion_mnist_dir() / f"t10k-images-idx3-ubyte{e}").is_file() for e in ("", ".gz"))


@pytest.mark.skipif(not _fmnist_installed(), reason=f"Fashion-MNIST not found in {fashion_mnist_dir()} (make fashion-mnist)")
def test_fashion_mnist_cnn_in_array_fast_variant():
    x, y = load_fashion_mnist("train", limit=512)
    xt, yt = load_fashion_mnist("test", limit=12)
    X, Xt = prepare_images(x), prepare_images(xt)
    model, hist = train_lenet(X, y, TrainSettings(epochs=8, lr=1e-2, batch_size=64), channels=(2, 4), hidden=(16,))
    assert hist[-1]["train_acc"] > 0.5
    layers = export_layers(model)
    plan = plan_network(layers, (1, 28, 28))
    with load_station().with_simulation(bench="nn-fmnist", seed=0).connect() as st:
        run = run_in_array(st, plan, Xt, input_ranges(layers, X[:256]))
    ref = forward(layers, Xt)
    err = np.sqrt(np.mean((run.logits - ref) ** 2)) / np.sqrt(np.mean(ref**2))
    assert err < 0.1, err
    assert np.mean(run.predictions() == ref.argmax(1)) >= 10 / 12
    assert run.mvms == plan.mvms(12) and len(run.jobs) == plan.arrays
