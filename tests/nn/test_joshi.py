"""Noise-injection training and drift compensation (Joshi et al. 2020) on the simulated PCM bench."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from labrram import sim
from labrram.calibration.files import default_calibration
from labrram.nn.datasets import load_task
from labrram.nn.drift import (
    BatchNorm,
    DeploySettings,
    GlobalDriftCompensation,
    Network,
    calibration_inputs,
    deploy_pcm,
    evaluate_drift,
    format_time,
    recalibrate_batchnorm,
)
from labrram.nn.noise_injection import NoiseSettings, NoisyLinear, NoisyMLP, train_noise_injection
from labrram.station import load_station


# --- noise injection and clipping -------------------------------------------------------------
def test_noise_injection_has_the_right_sigma_and_is_fresh_per_batch():
    gen = torch.Generator().manual_seed(0)
    layer = NoisyLinear(4, 3, bias=False, eta=0.038, generator=gen)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, -0.3, 1.0], [0.0, 0.0, 0.0, -0.5]]))
    x = torch.eye(4)
    layer.train()
    outs = torch.stack([layer(x) for _ in range(4000)])  # (draws, 4 inputs, 3 outputs) = W^T + noise
    noise = (outs - layer.weight.t().detach()).flatten()
    assert noise.std().item() == pytest.approx(0.038 * 2.0, rel=0.03)  # 3.8 % of W_max = 2
    assert abs(noise.mean().item()) < 0.003
    same = layer(torch.ones(2, 4))  # one draw per batch: identical rows agree, the next batch differs
    assert torch.equal(same[0], same[1]) and not torch.equal(same, layer(torch.ones(2, 4)))
    layer.eval()
    assert torch.equal(layer(x), layer.weight.t())  # no noise at inference


def test_clipping_holds_during_training_and_plain_training_needs_it():
    task = load_task("iris", seed=0)
    s = NoiseSettings(clip_sigma=2.0, epochs=8, batch_size=16)
    model, hist = train_noise_injection(task.X_train, task.y_train, (4, 16, 3), s)
    for layer in model.layers:
        w = layer.weight.detach()
        # clipped after every step at 2 std (the std measured before the clamp, so a hair above)
        assert w.abs().max().item() <= 2.0 * w.std().item() * 1.1
    assert hist[-1]["train_acc"] > 0.8
    layer = NoisyLinear(50, 1, eta=0.0)
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(-1, 1, 50).unsqueeze(0))
        layer.weight[0, 7] = 10.0  # one outlier
    sd = layer.weight.std().item()
    assert layer.clip_(2.5) == pytest.approx(2.5 * sd)
    assert layer.weight.max().item() == pytest.approx(2.5 * sd) and layer.weight.min().item() == -1.0
    assert layer.clip_(None) is None


def test_settings_reject_bad_input():
    with pytest.raises(ValueError):
        NoiseSettings(eta=-0.1)
    with pytest.raises(ValueError):
        NoiseSettings(clip_sigma=0.0)
    with pytest.raises(ValueError):
        NoiseSettings(batch_size=1)
    with pytest.raises(ValueError):
        NoisyLinear(2, 2, eta=float("nan"))
    with pytest.raises(ValueError):
        GlobalDriftCompensation("row")
    with pytest.raises(ValueError):
        GlobalDriftCompensation().factors(np.ones((2, 3)))  # no reference yet
    with pytest.raises(ValueError):
        Network([np.ones((3, 2)), np.ones((3, 2))], [None, None], [None, None])  # 2 outputs feed 3 inputs


def test_exported_network_matches_torch():
    gen = torch.Generator().manual_seed(1)
    model = NoisyMLP((6, 8, 3), generator=gen)
    model.train()
    with torch.no_grad():
        model(torch.randn(64, 6, generator=gen))  # move the batch-norm running statistics
    model.eval()
    x = np.random.default_rng(0).normal(size=(10, 6))
    with torch.no_grad():
        ref = model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    assert np.allclose(model.to_network().logits(x), ref, atol=1e-5)


# --- compensation on synthetic drift ----------------------------------------------------------
def test_gdc_restores_the_scale_of_drifted_outputs():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(20, 6))
    x = calibration_inputs(20, 16, seed=3)
    col = rng.uniform(0.4, 0.7, 6)  # a different drift per column
    W_t = W * col * (1 + 0.02 * rng.standard_normal(W.shape))
    layer = GlobalDriftCompensation("layer").reference(x @ W)
    alpha = layer.factors(x @ W_t)
    assert alpha.shape == (1,)
    assert np.abs(alpha * (x @ W_t)).mean() == pytest.approx(np.abs(x @ W).mean(), rel=1e-9)
    column = GlobalDriftCompensation("column").reference(x @ W)
    a = column.factors(x @ W_t)
    assert a.shape == (6,) and np.allclose(a, 1 / col, rtol=0.03)
    err_none = np.abs(x @ W_t - x @ W).mean()
    assert np.abs(a * (x @ W_t) - x @ W).mean() < 0.1 * err_none


def test_batchnorm_recalibration_undoes_a_drifted_scale():
    rng = np.random.default_rng(1)
    W0, W1 = rng.normal(size=(5, 7)), rng.normal(size=(7, 3))
    X = rng.normal(size=(400, 5))
    z = X @ W0
    bn = BatchNorm(np.ones(7), rng.normal(size=7), z.mean(0), z.var(0))
    net = Network([W0, W1], [None, rng.normal(size=3)], [bn, None])
    drifted = [0.5 * W0, W1]
    norms = recalibrate_batchnorm(net, X, drifted)
    assert np.allclose(net.logits(X, drifted, norms=norms), net.logits(X), atol=1e-4)  # up to eps
    assert not np.allclose(net.logits(X, drifted), net.logits(X), atol=0.1)
    with pytest.raises(ValueError):
        recalibrate_batchnorm(net, X[:1], drifted)


def test_time_labels():
    assert [format_time(t) for t in (1.0, 60.0, 3600.0, 86400.0, 7 * 86400.0, 2.5)] == ["1 s", "1 min", "1 h", "1 d", "1 wk", "2.5 s"]


# --- end to end on a small simulated PCM array ------------------------------------------------
@pytest.fixture
def pcm32():
    sim.configure_bench("joshi-test", seed=3, kind="pcm", rows=32, cols=32)
    with load_station().with_simulation(bench="joshi-test", seed=3, kind="pcm", rows=32, cols=32).connect() as st:
        yield st


def test_pcm_gdc_beats_no_compensation_after_a_day(pcm32):
    task = load_task("iris", seed=0)
    s = NoiseSettings(epochs=40, batch_size=16, batch_norm=False)
    net = train_noise_injection(task.X_train, task.y_train, (4, 16, 3), s)[0].to_network()
    model = default_calibration("pcm").model  # calibrated model only: never the chip's truth
    dep = deploy_pcm(pcm32.crossbar, pcm32.timer, net, model, DeploySettings(scale="column"))
    assert dep.placement.n_devices == 2 * (4 * 16 + 16 * 3)
    assert dep.result.summary()["converged_fraction"] > 0.97
    X = task.X_test / np.abs(task.X_test).max()  # row voltages within ±v_read
    y_sw = [X @ net.weights[0]]
    gdc = GlobalDriftCompensation("column").reference(dep.mvm(pcm32.crossbar, 0, calibration_inputs(4, 8)))
    pcm32.timer.wait(86400.0)  # one simulated day on the virtual clock
    chip = pcm32.bench.chip  # tests may read the truth: the drift really happened
    r, c = np.nonzero(~np.isnan(dep.placement.targets(0)) & (dep.placement.targets(0) > 5e-6) & (chip._stuck == 0))
    ratio = np.median(chip._conductance(r, c) / chip._g_prog[r, c])
    assert 0.4 < ratio < 0.75
    alpha = gdc.factors(dep.mvm(pcm32.crossbar, 0, calibration_inputs(4, 8)))
    assert np.median(alpha) == pytest.approx(1 / ratio, rel=0.15)
    y_t = dep.mvm(pcm32.crossbar, 0, X)
    err_none = np.abs(y_t - y_sw[0]).mean()
    err_gdc = np.abs(alpha * y_t - y_sw[0]).mean()
    assert err_gdc < 0.5 * err_none


def test_evaluate_drift_rows_and_time_checks(pcm32):
    rng = np.random.default_rng(0)
    W0, W1 = rng.normal(size=(6, 5)), rng.normal(size=(5, 3))
    X = rng.normal(size=(60, 6))
    z = X @ W0
    net = Network([W0, W1], [None, np.zeros(3)], [BatchNorm(np.ones(5), np.zeros(5), z.mean(0), z.var(0)), None])
    y = net.logits(X).argmax(1)
    dep = deploy_pcm(pcm32.crossbar, pcm32.timer, net, default_calibration("pcm").model)
    rows = evaluate_drift(pcm32.crossbar, pcm32.timer, dep, net, X, y, X, [1.0, 3600.0], n_calibration=4)
    assert [r["t"] for r in rows] == [1.0, 3600.0]
    assert pcm32.timer.now() - dep.t_programmed == pytest.approx(3600.0, abs=1.0)
    assert all(0 <= r[k] <= 1 for r in rows for k in ("none", "gdc", "bn"))
    assert rows[-1]["alpha"][0] > 1.05  # an hour of drift: the outputs shrank, GDC scales them up
    with pytest.raises(ValueError):
        evaluate_drift(pcm32.crossbar, pcm32.timer, dep, net, X, y, X, [10.0])  # already past
    with pytest.raises(ValueError):
        evaluate_drift(pcm32.crossbar, pcm32.timer, dep, net, X, y, X, [5.0, 1.0])


@pytest.mark.slow
def test_digits_on_a_128_array_holds_a_day_with_compensation():
    task = load_task("digits", seed=2)
    net = train_noise_injection(task.X_train, task.y_train, (64, 100, 10), replace(NoiseSettings(), seed=2))[0].to_network()
    sim.configure_bench("joshi-slow", seed=2, kind="pcm")
    with load_station().with_simulation(bench="joshi-slow", seed=2, kind="pcm").connect() as st:
        dep = deploy_pcm(st.crossbar, st.timer, net, default_calibration("pcm").model, DeploySettings(scale="column"))
        assert dep.placement.n_devices == 14_800
        X_bn = task.X_train[:256]
        rows = evaluate_drift(st.crossbar, st.timer, dep, net, task.X_test, task.y_test, X_bn, [1.0, 86400.0], granularity="column")
    sw = net.accuracy(task.X_test, task.y_test)
    assert sw - max(rows[-1]["gdc"], rows[-1]["bn"]) <= 0.015
