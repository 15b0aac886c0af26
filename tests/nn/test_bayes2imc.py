"""Binary Bayesian networks sampled by PCM device noise (Bayes2IMC) on the simulated bench."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.stats import norm

from labrram import sim
from labrram.nn.bayes2imc import (
    PROBIT_SCALE,
    BinaryBayesNetwork,
    BinaryLayout,
    SamplerNoise,
    SamplerSettings,
    calibrate_sampler,
    deploy_binary,
    evaluate_deployment,
    fit_logit_map,
    lambda_to_z,
    plus_fraction,
    realization_error,
)
from labrram.nn.binary_bayes import BernoulliLinear, BinarySettings, bernoulli_kl, train_binary_bayes
from labrram.nn.datasets import load_task
from labrram.station import load_station


# --- the posterior and its training ------------------------------------------------------------
def test_bernoulli_layer_draws_plus_one_with_probability_sigmoid_2_lambda():
    gen = torch.Generator().manual_seed(0)
    layer = BernoulliLinear(5, 1, generator=gen)
    lam = torch.tensor([[-2.0, -0.5, 0.0, 0.7, 1.5]])
    with torch.no_grad():
        layer.lam.copy_(lam)
    draws = torch.stack([layer.sample() for _ in range(8000)])
    assert set(draws.unique().tolist()) == {-1.0, 1.0}
    freq = (draws > 0).float().mean(dim=0)
    assert torch.allclose(freq, torch.sigmoid(2 * lam), atol=0.02)
    # straight-through: the gradient reaches lambda
    layer.sample().sum().backward()
    assert layer.lam.grad is not None and torch.all(layer.lam.grad != 0)
    # hardware-aware jitter flattens the probabilities towards 1/2, never moves lambda = 0
    noisy = BernoulliLinear(5, 1, z_noise=2.0, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        noisy.lam.copy_(lam)
    f2 = torch.stack([noisy.sample() > 0 for _ in range(8000)]).float().mean(dim=0)
    assert abs(f2[0, 2].item() - 0.5) < 0.02
    assert f2[0, 4].item() < freq[0, 4].item() - 0.03 and f2[0, 0].item() > freq[0, 0].item() + 0.03


def test_bernoulli_kl_closed_form():
    assert bernoulli_kl(torch.zeros(7)).item() == pytest.approx(0.0, abs=1e-6)
    p = torch.sigmoid(torch.tensor(2.0)).item()
    expected = p * np.log(2 * p) + (1 - p) * np.log(2 * (1 - p))
    assert bernoulli_kl(torch.tensor([1.0])).item() == pytest.approx(expected, rel=1e-5)


def test_probit_match_of_the_logistic():
    lam = np.linspace(-3, 3, 121)
    assert np.max(np.abs(norm.cdf(PROBIT_SCALE * lam) - 1 / (1 + np.exp(-2 * lam)))) < 0.01
    assert PROBIT_SCALE == pytest.approx(1.18, abs=0.01)
    assert np.array_equal(lambda_to_z([-10.0, 0.0, 10.0], z_max=6.0), [-6.0, 0.0, 6.0])


def test_training_learns_iris_and_exports_the_posteriors():
    task = load_task("iris", seed=0)
    model, hist = train_binary_bayes(task.X_train, task.y_train, (4, 16, 3), BinarySettings(epochs=60, batch_size=16, seed=0))
    net = model.to_numpy()
    assert [lam.shape for lam in net.lambdas] == [(4, 16), (16, 3)]
    assert np.allclose(net.lambdas[0], model.layers[0].lam.detach().numpy().T)
    assert all(np.abs(lam).max() <= 8.0 for lam in net.lambdas)
    assert hist[-1]["train_acc"] > 0.8
    samples = list(zip(*net.sample_weights(64, seed=0)))
    assert net.accuracy(task.X_test, task.y_test, samples) > 0.85
    # software draws follow the posteriors
    draws = net.sample_weights(4000, seed=1)[0]
    assert np.allclose((draws > 0).mean(axis=0), net.probabilities()[0], atol=0.03)


@pytest.mark.parametrize(
    "changes, match",
    [({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"), ({"z_noise": float("nan")}, "z_noise"), ({"kl_weight": -0.1}, "kl_weight")],
)
def test_bad_training_settings_are_named(changes, match):
    with pytest.raises(ValueError, match=match):
        BinarySettings(**changes)


# --- mapping and layout --------------------------------------------------------------------------
def test_targets_sit_z_sigma_from_the_reference():
    noise = SamplerNoise(a=0.25e-6, b=0.35, interval=1.0)
    z = np.array([-6.0, -1.0, 0.0, 2.5, 6.0])
    g = noise.targets(8e-6, z)
    assert np.allclose(g - 8e-6, z * noise.sigma(g), rtol=1e-6, atol=1e-12)
    assert g[2] == 8e-6 and np.all(np.diff(g) > 0)


def test_layout_packs_layers_side_by_side_and_refuses_what_does_not_fit():
    lay = BinaryLayout.pack((64, 100, 10), (128, 128))
    assert lay.blocks == [(64, 0, 100), (100, 100, 10)] and lay.used_columns == 110
    per = [np.full((64, 100), 1.0), np.full((100, 10), 2.0)]
    a = lay.place(per)
    assert np.array_equal(lay.layer(a, 0), per[0]) and np.array_equal(lay.layer(a, 1), per[1])
    assert np.isnan(a).sum() == 128 * 128 - 64 * 100 - 100 * 10
    with pytest.raises(ValueError, match="columns"):
        BinaryLayout.pack((64, 120, 10), (128, 128))
    with pytest.raises(ValueError, match="rows"):
        BinaryLayout.pack((200, 10), (128, 128))


# --- on the simulated PCM array ------------------------------------------------------------------
@pytest.fixture(scope="module")
def iris_net():
    task = load_task("iris", seed=0)
    model, _ = train_binary_bayes(task.X_train, task.y_train, (4, 16, 3), BinarySettings(epochs=80, batch_size=16, z_noise=2.0, kl_weight=0.05, seed=0))
    return task, model.to_numpy()


def _station(seed: int):
    sim.configure_bench("b2imc-test", seed=seed, kind="pcm", rows=32, cols=32)
    return load_station().with_simulation(bench="b2imc-test", seed=seed, kind="pcm", rows=32, cols=32).connect()


def _deploy(st, net, settings=SamplerSettings()):
    xb, timer = st.crossbar, st.timer
    lay = BinaryLayout.pack(net.sizes, tuple(xb.shape))
    rows, cols = np.meshgrid(np.arange(32), np.arange(lay.used_columns, 32), indexing="ij")
    noise = calibrate_sampler(xb, timer, (rows.ravel(), cols.ravel()), interval=settings.interval)
    return noise, deploy_binary(xb, timer, net, noise, settings, lay)


def test_device_noise_samples_the_posterior_and_drift_compensation_keeps_it():
    from labrram.nn.drift import BatchNorm

    rng = np.random.default_rng(0)
    lam = rng.permutation(np.r_[np.linspace(-2.2, 2.2, 320), np.full(32, 8.0), np.full(32, -8.0)]).reshape(16, 24)
    net = BinaryBayesNetwork([lam], [BatchNorm(np.ones(24), np.zeros(24), np.zeros(24), np.ones(24))])
    with _station(3) as st:
        xb, timer = st.crossbar, st.timer
        noise, dep = _deploy(st, net)
        # the measured sampler noise is the chip's read-to-read spread: fractions of a µS, rising with G
        assert 0.1e-6 < noise.sigma(8e-6) < 1.0e-6 and 0.1 < noise.b < 0.7
        assert dep.summary()["converged_fraction"] > 0.97
        z = lambda_to_z(lam)
        ok = dep.ok()[0]

        def frequency(d, n=150):
            return (np.mean([s[0] for s in d.sample(xb, timer, n)], axis=0) + 1) / 2

        timer.wait(60.0)
        p0 = frequency(dep)
        # no generator involved: successive reads give different networks
        a, b = dep.sample(xb, timer, 2)
        assert not np.array_equal(a[0], b[0])
        # realized P(w = +1) follows Phi(z); programming lands within about a read-noise sigma
        uncertain = ok & (np.abs(z) < 3.0)
        err = norm.ppf(np.clip(p0, 0.005, 0.995)) - z
        assert np.corrcoef(p0[uncertain], norm.cdf(z[uncertain]))[0, 1] > 0.8
        assert abs(np.median(err[uncertain])) < 0.4 and 0.3 < np.std(err[uncertain]) < 1.5
        confident = ok & (np.abs(z) >= 5.9)
        assert confident.sum() > 50
        assert np.all(np.where(z[confident] > 0, p0[confident], 1 - p0[confident]) > 0.97)

        timer.wait(86400.0)
        means = dep.layer_means(xb.read())
        assert means[0] < 0.8 * dep.reference_means[0]  # the array drifted by > 20 %...
        p_day = frequency(dep)
        # ...and the tracked reference keeps the probabilities (each device drifts at its own rate:
        # the error grows, but stays centred)
        err_day = norm.ppf(np.clip(p_day, 0.005, 0.995)) - z
        assert abs(np.median(err_day[uncertain])) < 0.4 and np.std(err_day[uncertain]) < 2.0
        assert np.mean(np.abs(p_day - p0)[ok]) < 0.2
        fixed = replace(dep, settings=replace(dep.settings, drift_compensation=False))
        p_fixed = frequency(fixed, 20)
        assert np.mean(p_fixed[ok]) < 0.15  # a fixed reference reads nearly every weight as -1


def test_devices_write_verify_gave_up_on_are_sampled_when_they_realize_their_weight():
    """A device left out of its window still samples its weight when, in the read right after
    programming, it realizes the weight better than its stand-in: with 0, when its mean is
    nearer (one that ended on the wrong side of the reference, its last pulse after its last
    verify read, is left out); with the posterior mean, when sampling it loses less than the
    weight's variance."""
    from labrram.nn.drift import BatchNorm

    rng = np.random.default_rng(0)
    lam = rng.permutation(np.r_[np.linspace(-2.2, 2.2, 320), np.full(32, 8.0), np.full(32, -8.0)]).reshape(16, 24)
    net = BinaryBayesNetwork([lam], [BatchNorm(np.ones(24), np.zeros(24), np.zeros(24), np.ones(24))])
    target = np.tanh(lam)
    with _station(3) as st:
        xb, timer = st.crossbar, st.timer
        _, dep = _deploy(st, net, SamplerSettings(left_out="zero"))
        prog, ok = dep.programmed()[0], dep.ok()[0]
        mu = dep.realized_means(dep.check)[0]
        kept, dropped = ok & ~prog, ~ok
        assert kept.any() and dropped.any()  # this chip has one of each
        assert np.all(np.abs(mu[kept] - target[kept]) < np.abs(target[kept]))
        assert np.all(~(np.abs(mu[dropped] - target[dropped]) < np.abs(target[dropped])))
        timer.wait(1.0)
        w = np.array([n[0] for n in dep.sample(xb, timer, 40)])
        mean_kept = w[:, kept].mean(axis=0)  # sampled after programming, the kept devices realize their weight
        assert np.all(np.abs(mean_kept - target[kept]) < np.abs(target[kept]))
        assert np.all(w[:, dropped] == 0)
    with _station(3) as st:  # the same chip, the default stand-in: sampled only where that costs less
        _, mean = _deploy(st, net)
        off = ~mean.programmed()[0]
        np.testing.assert_array_equal(mean.check, dep.check)
        kept_m = mean.ok()[0] & off
        assert kept_m.any() and not np.any(kept_m & ~kept)  # never more than with 0
        sampling = np.abs(target - mu) + np.abs(target**2 - mu**2)
        assert np.all(sampling[kept_m] < 1 - target[kept_m] ** 2)
        assert np.all(sampling[kept & ~kept_m] >= 1 - target[kept & ~kept_m] ** 2)
    with _station(3) as st:
        _, off = _deploy(st, net, SamplerSettings(keep_unconverged=False))
        assert off.check is None and np.array_equal(off.ok()[0], off.programmed()[0])
    with pytest.raises(ValueError, match="keep_unconverged"):
        SamplerSettings(keep_unconverged="yes")


def test_end_to_end_accuracy_correction_and_collapse_without_compensation(iris_net):
    task, net = iris_net
    sw = np.mean([net.accuracy(task.X_test, task.y_test, list(zip(*net.sample_weights(32, s)))) for s in range(4)])
    with _station(4) as st:
        _, dep = _deploy(st, net)
        corr, rows = evaluate_deployment(st.crossbar, st.timer, dep, task.X_test, task.y_test, [120.0, 86400.0], n_samples=32, X_cal=task.X_train[:64])
    assert corr.reads == 32 and corr.inputs == 64 and corr.delta.shape == (16, 3)  # from the 32 scored networks
    assert corr.matrix.shape == (3, 3) and corr.offset.shape == (3,)
    assert [r["t"] for r in rows] == [120.0, 86400.0]
    for r in rows:
        assert r["corrected"] >= sw - 0.08  # within a few test points (38 test flowers)
    assert rows[1]["uncompensated"] < 0.6  # fixed reference after a day: far below
    for r in rows:  # the realized probabilities, for realization_error
        assert [a.shape for a in r["p_plus"]] == [lam.shape for lam in net.lambdas]
        assert np.array_equal(np.isnan(r["p_plus"][0]), ~dep.ok()[0])
        err = realization_error(r["p_plus"], net.lambdas, 32)
        assert err["informative"] > 0 and 0 <= err["z_rms"] < 3


def test_realization_error_recovers_a_known_probit_error():
    rng = np.random.default_rng(0)
    lam = [np.clip(rng.normal(0, 1.5, shape), -3, 3) for shape in ((64, 100), (100, 10))]
    lam[1][0, :] = 20.0  # confident weights (|z| clipped at 6)
    n = 64
    for err in (0.0, 0.5, 1.0):
        p = [rng.binomial(n, norm.cdf(lambda_to_z(l) + rng.normal(0, err, l.shape))) / n for l in lam]
        p[1][0, :3] = 1 - 2 / n  # confident weights that read -1 twice in 64 reads
        out = realization_error(p, lam, n)
        assert out["z_rms"] == pytest.approx(err, abs=0.08)  # the binomial spread of 64 reads is taken out
        assert out["confident"] == 10 and out["flip_rate"] == pytest.approx(3 * 2 / n / 10)
    p[0][:] = np.nan  # a layer that is not sampled counts for nothing
    assert realization_error(p, lam, n)["informative"] < realization_error([np.zeros_like(lam[0]), p[1]], lam, n)["informative"]
    with pytest.raises(ValueError, match="n_reads"):
        realization_error(p, lam, 1)
    with pytest.raises(ValueError, match="layers"):
        realization_error(p[:1], lam, n)
    with pytest.raises(ValueError, match="weights"):
        realization_error([p[0], p[1][:5]], lam, n)


def test_plus_fraction_counts_the_reads_that_gave_plus_one():
    nets = [[np.array([[1.0, -1.0], [1.0, 0.0]])], [np.array([[1.0, 1.0], [-1.0, 0.0]])]]
    ok = [np.array([[True, True], [True, False]])]
    frac = plus_fraction(nets, ok)[0]
    assert np.array_equal(frac[:, :], np.array([[1.0, 0.5], [0.5, np.nan]]), equal_nan=True)
    with pytest.raises(ValueError, match="no sampled"):
        plus_fraction([], ok)


def test_correction_brings_the_output_layer_mean_back():
    rng = np.random.default_rng(0)
    lam = [rng.normal(0, 2, (6, 8)), rng.normal(0, 1, (8, 3))]
    from labrram.nn.drift import BatchNorm

    norms = [BatchNorm(np.ones(n), np.zeros(n), np.zeros(n), np.ones(n)) for n in (8, 3)]
    net = BinaryBayesNetwork(lam, norms)
    # "hardware": output-layer probabilities off target by a static error
    p = [net.probabilities()[0], norm.cdf(PROBIT_SCALE * lam[1] + rng.normal(0, 1.5, lam[1].shape))]
    samples = [[np.where(rng.random(q.shape) < q, 1.0, -1.0) for q in p] for _ in range(400)]

    from labrram.nn.bayes2imc import BinaryDeployment

    dep = object.__new__(BinaryDeployment)  # just what correction() needs
    dep.net = net
    dep.ok = lambda: [np.ones((6, 8), bool), np.ones((8, 3), bool)]
    corr = BinaryDeployment.correction(dep, samples)
    mean_hw = np.mean([s[-1] for s in samples], axis=0)
    assert np.allclose(mean_hw + corr.delta, np.tanh(lam[1]))
    X = rng.normal(size=(200, 6))
    sw = net.sample_logits(X, list(zip(*net.sample_weights(400, 1)))).mean(axis=0)
    raw = net.sample_logits(X, samples).mean(axis=0)
    fixed = net.sample_logits(X, samples, corr).mean(axis=0)
    assert np.abs(fixed - sw).mean() < 0.5 * np.abs(raw - sw).mean()


def test_measured_correction_shifts_only_the_sampled_weights_and_needs_the_software_reference_with_inputs():
    from labrram.nn.bayes2imc import SoftwareReference, measure_correction
    from labrram.nn.drift import BatchNorm

    rng = np.random.default_rng(3)
    lam = [rng.normal(0, 1, (5, 4)), rng.normal(0, 1, (4, 3))]
    net = BinaryBayesNetwork(lam, [BatchNorm(np.ones(n), np.zeros(n), np.zeros(n), np.ones(n)) for n in (4, 3)])
    ok = np.ones((4, 3), bool)
    ok[1, 2] = False  # left out: reads 0 in every network
    samples = [[w * np.where(ok, 1.0, 0.0) if i == 1 else w for i, w in enumerate(ws)] for ws in net.software_samples(50, 1)]
    everything = measure_correction(net, samples)
    sampled = measure_correction(net, samples, ok)
    assert sampled.delta[1, 2] == 0.0 and everything.delta[1, 2] == pytest.approx(np.tanh(lam[1][1, 2]))
    assert np.array_equal(sampled.delta[ok], everything.delta[ok])
    X = rng.normal(size=(20, 5))
    with pytest.raises(ValueError, match="software"):
        measure_correction(net, samples, ok, X)
    with pytest.raises(ValueError, match="at least 2"):
        measure_correction(net, samples[:1])
    with pytest.raises(ValueError, match="SoftwareReference"):  # the old form, logits alone
        measure_correction(net, samples, ok, X, net.sample_logits(X, net.software_samples(50, 2)).mean(axis=0))
    software = SoftwareReference.measure(net, X, 50, 2)
    assert software.logits.shape == (20, 3) and [m.shape for m in software.moments[0]] == [(4,), (4,)]
    mapped = measure_correction(net, samples, ok, X, software)
    assert mapped.matrix.shape == (3, 3) and mapped.inputs == 20 and len(mapped.norms) == 1
    assert measure_correction(net, samples, ok, X, software, match_norms=False).norms is None
    with pytest.raises(ValueError, match="n_software"):
        SoftwareReference.measure(net, X, 0)


def test_bad_deployment_requests_are_refused_before_programming(iris_net):
    task, net = iris_net
    with _station(5) as st:
        xb, timer = st.crossbar, st.timer
        noise = SamplerNoise(0.25e-6, 0.35, interval=1.0)
        with pytest.raises(ValueError, match="measured at 1.0 s"):
            deploy_binary(xb, timer, net, noise, SamplerSettings(interval=10.0))
        with pytest.raises(ValueError, match="write-verify range"):
            deploy_binary(xb, timer, net, noise, SamplerSettings(g_ref=29e-6))
        with pytest.raises(ValueError, match="calibration cells"):
            calibrate_sampler(xb, timer, (np.arange(3), np.arange(3)))
        with pytest.raises(ValueError, match="g_ref"):
            SamplerSettings(g_ref=-1.0)
        with pytest.raises(ValueError, match="reads"):
            SamplerSettings(reads=0)
        assert SamplerSettings(reads=4).write_verify().reads == 4
        with pytest.raises(ValueError, match="attempts"):
            SamplerSettings(attempts=0)
        with pytest.raises(ValueError, match="remap_inputs=True needs keep_unconverged=True"):
            SamplerSettings(remap_inputs=True, keep_unconverged=False)
        with pytest.raises(ValueError, match="remap_inputs must be True or False"):
            SamplerSettings(remap_inputs=1)
        assert SamplerSettings(attempts=2).write_verify().attempts == 2


def test_a_second_write_verify_attempt_leaves_fewer_weights_out():
    """Same chip, same network: a second attempt for the devices the first left out of their
    window converges more devices and leaves fewer weights out of sampling (on this chip one
    attempt leaves 8 of the 768 devices out of their window and 4 weights out)."""
    from labrram.nn.drift import BatchNorm

    lam = np.random.default_rng(2).normal(0, 1.5, (24, 32))
    net = BinaryBayesNetwork([lam], [BatchNorm(np.ones(32), np.zeros(32), np.zeros(32), np.ones(32))])
    out = {}
    for attempts in (1, 2):
        with _station(8) as st:
            xb, timer = st.crossbar, st.timer
            lay = BinaryLayout.pack(net.sizes, tuple(xb.shape))
            noise = SamplerNoise(0.25e-6, 0.35, interval=1.0)
            dep = deploy_binary(xb, timer, net, noise, SamplerSettings(attempts=attempts), lay)
            out[attempts] = dep.summary()
            assert dep.result.settings["attempts"] == attempts
    assert out[2]["converged_fraction"] > out[1]["converged_fraction"]
    assert out[2]["left_out"] < out[1]["left_out"]
    assert out[1]["attempts"] == 1 and out[2]["attempts"] == 2


def test_fit_logit_map_recovers_a_mixing_of_the_logits_and_stays_near_identity_without_data():
    rng = np.random.default_rng(1)
    sw = rng.normal(0, 3, (400, 10))
    mix = np.eye(10) * 0.8 + rng.normal(0, 0.05, (10, 10))
    hw = (sw - 0.5) @ np.linalg.inv(mix) + rng.normal(0, 0.01, (400, 10))  # what the array did
    matrix, offset = fit_logit_map(hw, sw)
    assert np.abs(hw @ matrix + offset - sw).max() < 0.1
    assert np.abs(matrix - mix).max() < 0.01
    # the map is the least-squares one: a per-class scale and offset fits worse
    diag = [np.polyfit(hw[:, c], sw[:, c], 1) for c in range(10)]
    per_class = np.stack([hw[:, c] * a + b for c, (a, b) in enumerate(diag)], axis=1)
    assert np.mean((hw @ matrix + offset - sw) ** 2) < 0.1 * np.mean((per_class - sw) ** 2)
    # identical logits on every input say nothing about the mixing: the identity, shifted
    flat = np.tile(rng.normal(0, 1, 10), (5, 1))
    matrix, offset = fit_logit_map(flat, flat + 2.0)
    assert np.allclose(matrix, np.eye(10)) and np.allclose(offset, 2.0)
    with pytest.raises(ValueError, match="same shape"):
        fit_logit_map(hw, sw[:, :3])
    with pytest.raises(ValueError, match="ridge"):
        fit_logit_map(hw, sw, ridge=-1.0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_logit_map(np.where(hw > 5, np.nan, hw), sw)


def _deploy_stuck(net, remap: bool, order=None, left_out="zero"):
    """``net`` deployed on a 32×32 chip whose devices in rows 0–3, columns 0–7 are stuck SET from
    the start (``order``: the first layer's rows in that order on the layout given; a weight left
    out reads 0 unless ``left_out`` says otherwise)."""
    stuck = [[r, c] for r in range(4) for c in range(8)]
    sim.configure_bench("b2imc-remap", seed=8, kind="pcm", rows=32, cols=32)
    station = load_station().with_simulation(bench="b2imc-remap", seed=8, kind="pcm", rows=32, cols=32,
                                             faults={"stuck": {"at": 1, "cells": stuck, "state": "lrs"}})  # fmt: skip
    with station.connect() as st:
        xb, timer = st.crossbar, st.timer
        lay = BinaryLayout.pack(net.sizes, tuple(xb.shape))
        if order is not None:
            lay = lay.with_orders([order])
        noise = SamplerNoise(0.25e-6, 0.35, interval=1.0)
        dep = deploy_binary(xb, timer, net, noise, SamplerSettings(attempts=2, remap_inputs=remap, left_out=left_out), lay)
        means = np.mean([w[0] for w in dep.sample(xb, timer, 40)], axis=0)
        return dep, dep.summary(), means


def _stuck_rows_net():
    """A one-layer 24×32 network whose rows 0–3, columns 0–7 (the stuck devices of
    :func:`_deploy_stuck`) hold uncertain weights and rows 20–23 confident +1 weights there."""
    from labrram.nn.drift import BatchNorm

    lam = np.random.default_rng(2).normal(0, 1.5, (24, 32))
    lam[0:4, 0:8] = 0.05
    lam[20:24, 0:8] = 8.0
    return lam, BinaryBayesNetwork([lam], [BatchNorm(np.ones(32), np.zeros(32), np.zeros(32), np.ones(32))])


def test_remapping_inputs_puts_stuck_devices_under_weights_they_serve():
    """32 devices stuck SET from the start sit in rows 0–3, under uncertain weights (left out);
    rows 20–23 hold confident +1 weights in the same columns. With ``remap_inputs`` the
    deployment routes those inputs to the stuck rows, programs the moved devices again, and
    reads everything back in the network's order."""
    lam, net = _stuck_rows_net()
    out = {remap: _deploy_stuck(net, remap) for remap in (False, True)}
    (plain, s0, m0), (moved, s1, m1) = out[False], out[True]
    assert s0["left_out"] >= 32 and s0["remapped_inputs"] == 0 and s0["before_remap"] is None
    assert s1["before_remap"] == {"left_out": s0["left_out"]}  # the same chip, the same first job
    assert s1["left_out"] <= s0["left_out"] - 30 and s1["remapped_inputs"] >= 8
    order = moved.layout.order(0)
    assert set(order[:4]) == {20, 21, 22, 23}  # the confident rows now sit on the stuck devices
    ok = moved.ok()[0]
    assert ok[20:24, 0:8].all()  # read back in the network's order: rows 20–23 sampled, as +1
    assert np.all(m1[20:24, 0:8] == 1.0) and np.all(m1[~ok] == 0.0)
    confident = ok & (np.abs(lam) > 3)
    assert np.mean(np.sign(m1[confident]) == np.sign(lam[confident])) > 0.98
    # only the devices whose target changed were programmed again: the rows that kept their input
    # keep the first job's outcome
    kept = np.flatnonzero(order == np.arange(24))
    assert kept.size > 0
    np.testing.assert_array_equal(moved.result.achieved[kept, :32], plain.result.achieved[kept, :32])
    assert moved.result.pulses.sum() > plain.result.pulses.sum()


def test_remapping_with_weights_left_out_at_their_mean_costs_only_what_they_lose():
    """The default stand-in: an uncertain weight on a stuck device loses its whole variance, so
    the confident rows still move onto the stuck devices; there they are left out at their mean,
    which is the stuck device's sign, and the uncertain rows, moved off, are sampled."""
    from labrram.mapping import binary_off_target
    lam, net = _stuck_rows_net()
    (plain, s0, m0), (moved, s1, m1) = (_deploy_stuck(net, remap, left_out="mean") for remap in (False, True))
    assert set(moved.layout.order(0)[:4]) == {20, 21, 22, 23}
    ok0, ok1 = plain.ok()[0], moved.ok()[0]
    assert not ok0[0:4, 0:8].any() and not ok1[20:24, 0:8].any()  # stuck: left out, wherever they sit
    assert ok1[0:4, 0:8].all()  # the uncertain rows, programmed again elsewhere, are sampled
    assert np.allclose(m1[~ok1], np.tanh(lam[~ok1])) and np.allclose(m1[20:24, 0:8], 1.0)

    def cost(dep):  # what the devices off target cost under their weights, in the network's order
        mu = dep.realized_means(dep.check)[0]
        return binary_off_target(np.tanh(lam), mu, "mean")[1][~dep.programmed()[0]].sum()

    assert cost(moved) < 0.2 * cost(plain)


def test_remapping_keeps_the_order_a_layout_already_has_where_no_move_helps():
    """A layout handed in with its own row order (rows 4–19 reversed): the remap moves only what
    serves the stuck devices, counts only those moves, and programs only their rows again."""
    lam, net = _stuck_rows_net()
    given = np.r_[0:4, 19:3:-1, 20:24]
    plain, s0, _ = _deploy_stuck(net, False, given)
    moved, s1, m1 = _deploy_stuck(net, True, given)
    final = moved.layout.order(0)
    assert set(final[:4]) == {20, 21, 22, 23}
    assert s1["remapped_inputs"] == int((final != given).sum()) < 24
    kept = np.flatnonzero(final == given)
    assert kept.size >= 24 - s1["remapped_inputs"] and np.any((kept >= 4) & (kept < 20))
    np.testing.assert_array_equal(moved.result.achieved[kept, :32], plain.result.achieved[kept, :32])
    assert np.array_equal(np.asarray(plain.layout.order(0)), given) and s0["remapped_inputs"] == 0
    ok = moved.ok()[0]
    assert ok[20:24, 0:8].all() and np.all(m1[20:24, 0:8] == 1.0)  # the network's order, as before


def test_remapping_with_nothing_to_gain_programs_nothing_again():
    """Every row alike: no order serves the devices off target better, so the remap moves nothing
    and runs no second job."""
    from labrram.nn.drift import BatchNorm

    row = np.random.default_rng(3).normal(0, 1.5, 32)
    net = BinaryBayesNetwork([np.tile(row, (24, 1))], [BatchNorm(np.ones(32), np.zeros(32), np.zeros(32), np.ones(32))])
    (plain, s0, _), (moved, s1, _) = (_deploy_stuck(net, remap) for remap in (False, True))
    assert s1["remapped_inputs"] == 0 and s1["before_remap"] == {"left_out": s0["left_out"]} and s0["left_out"] > 0
    assert moved.layout == plain.layout
    np.testing.assert_array_equal(moved.result.pulses, plain.result.pulses)
    np.testing.assert_array_equal(moved.check, plain.check)  # the first read after programming, not a second


def test_weights_left_out_stand_in_by_their_mean_or_read_0():
    """By default (``left_out="mean"``) every network takes a weight whose device is left out at
    its posterior mean ``tanh λ`` (the sampled weights unchanged), and the correction leaves it
    be; ``left_out="zero"``: it reads 0."""
    from labrram.nn.bayes2imc import measure_correction
    from labrram.nn.drift import BatchNorm

    rng = np.random.default_rng(0)
    lam = rng.permutation(np.r_[np.linspace(-2.2, 2.2, 320), np.full(32, 8.0), np.full(32, -8.0)]).reshape(16, 24)
    net = BinaryBayesNetwork([lam], [BatchNorm(np.ones(24), np.zeros(24), np.zeros(24), np.ones(24))])
    with _station(3) as st:  # the chip of the test above: some devices left out
        _, dep = _deploy(st, net)
        ok = dep.ok()[0]
        assert (~ok).any() and dep.summary()["left_out"] == int((~ok).sum())
        assert np.array_equal(dep.stand_ins()[0], np.where(ok, 0.0, np.tanh(lam)))
        st.timer.wait(1.0)
        w = np.array([n[0] for n in dep.sample(st.crossbar, st.timer, 8)])
        assert np.allclose(w[:, ~ok], np.tanh(lam[~ok]).astype(np.float32))
        assert set(np.unique(w[:, ok])) <= {-1.0, 1.0}
        zero = replace(dep, settings=replace(dep.settings, left_out="zero"))
        assert np.all(zero.weights_from(st.crossbar.read())[0][~ok] == 0)
        assert not np.any(zero.stand_ins()[0])
    correction = measure_correction(net, [[x] for x in w], ok)
    assert np.all(correction.delta[~ok] == 0)
    with pytest.raises(ValueError, match="left_out must be one of"):
        SamplerSettings(left_out="drop")


def test_effective_samples_counts_independent_reads_as_themselves_and_correlated_ones_as_fewer():
    from labrram.nn.bayes2imc import effective_samples

    rng = np.random.default_rng(0)
    p = rng.uniform(0.2, 0.8, (40, 50))
    ok = [np.ones((40, 50), bool)]
    independent = [[np.where(rng.random(p.shape) < p, 1.0, -1.0)] for _ in range(32 * 16)]
    est = effective_samples(independent, ok, 32)
    assert est.windows == 16 and est.weights == 2000
    assert est.variance_ratio == pytest.approx(1.0, abs=0.08) and est.effective == pytest.approx(32, rel=0.08)
    # each read repeats the one before with probability 1/2: lag-k correlation 2^-k, so a run's
    # variance is inflated by 1 + 2 sum_k (1 - k/32) 2^-k = 2.875
    reads, w = [], np.where(rng.random(p.shape) < p, 1.0, -1.0)
    for _ in range(32 * 16):
        fresh = np.where(rng.random(p.shape) < p, 1.0, -1.0)
        w = np.where(rng.random(p.shape) < 0.5, w, fresh)
        reads.append([w])
    corr = effective_samples(reads, ok, 32)
    assert corr.variance_ratio == pytest.approx(2.875, rel=0.1) and corr.effective == pytest.approx(32 / 2.875, rel=0.1)
    # weights not sampled, or reading one sign only, are not counted
    masked = [np.zeros((40, 50), bool)]
    masked[0][:, :10] = True
    assert effective_samples(reads, masked, 32).weights == 400
    with pytest.raises(ValueError, match="fewer than 2 runs"):
        effective_samples(reads[:40], ok, 32)
    with pytest.raises(ValueError, match="window must be an integer >= 2"):
        effective_samples(reads, ok, 1)
    with pytest.raises(ValueError, match="reads both signs"):
        effective_samples([[np.ones((40, 50))]] * 64, ok, 32)
    with pytest.raises(ValueError, match="layer 0: the networks' weights and ok must have the same shape"):
        effective_samples(reads, [np.ones((40, 49), bool)], 32)
    with pytest.raises(ValueError, match="every network needs 2 layers"):
        effective_samples(reads, ok * 2, 32)


def test_the_correction_comes_from_the_scored_networks_own_reads_by_default(iris_net):
    task, net = iris_net
    with _station(4) as st:
        _, dep = _deploy(st, net)
        for bad in (1, -2, 2.5):
            with pytest.raises(ValueError, match="n_calibration must be 0"):
                evaluate_deployment(st.crossbar, st.timer, dep, task.X_test, task.y_test, [120.0], n_calibration=bad)
        corr, rows = evaluate_deployment(st.crossbar, st.timer, dep, task.X_test, task.y_test, [120.0], n_samples=16, n_fixed=4)
        # 16 reads for the networks (and their correction), 4 for the fixed reference: no more
        assert corr.reads == 16
        assert dep.last_read - (dep.t_programmed + 120.0) == pytest.approx(19 * dep.settings.interval, abs=0.5)
    assert rows[0]["corrected"] > 0.8
