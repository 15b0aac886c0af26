"""BayesLinear / BayesMLP / MLP: KL, augmented convention, sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from labrram.nn.bayes import MLP, BayesLinear, BayesMLP  # noqa: E402
from labrram.nn.sampled import forward as np_forward  # noqa: E402


def _set_posterior(layer: BayesLinear, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight_mu.copy_(torch.randn(layer.weight_mu.shape, generator=g))
        layer.bias_mu.copy_(torch.randn(layer.bias_mu.shape, generator=g))
        layer.weight_rho.copy_(torch.randn(layer.weight_rho.shape, generator=g) * 0.5 - 1.0)
        layer.bias_rho.copy_(torch.randn(layer.bias_rho.shape, generator=g) * 0.5 - 1.0)


def test_kl_closed_form_matches_monte_carlo():
    layer = BayesLinear(3, 2, prior_sigma=0.7).double()
    _set_posterior(layer, 1)
    mu, sigma = layer.posterior()
    rng = np.random.default_rng(0)
    w = mu + sigma * rng.standard_normal((200_000,) + mu.shape)
    log_q = -0.5 * ((w - mu) / sigma) ** 2 - np.log(sigma) - 0.5 * math.log(2 * math.pi)
    log_p = -0.5 * (w / 0.7) ** 2 - math.log(0.7) - 0.5 * math.log(2 * math.pi)
    mc = float(np.mean(np.sum(log_q - log_p, axis=(1, 2))))
    closed = layer.kl().item()
    assert closed > 0
    assert closed == pytest.approx(mc, rel=0.02)


def test_kl_is_zero_when_posterior_equals_prior():
    layer = BayesLinear(4, 3, prior_sigma=0.5).double()
    rho = math.log(math.expm1(0.5))  # softplus(rho) = 0.5
    with torch.no_grad():
        layer.weight_mu.zero_()
        layer.bias_mu.zero_()
        layer.weight_rho.fill_(rho)
        layer.bias_rho.fill_(rho)
    assert layer.kl().item() == pytest.approx(0.0, abs=1e-10)


def test_mlp_kl_sums_layers():
    model = BayesMLP((3, 5, 2), generator=torch.Generator().manual_seed(0))
    assert model.kl().item() == pytest.approx(sum(layer.kl().item() for layer in model.layers))


def test_posterior_convention_matches_torch_forward():
    model = BayesMLP((3, 7, 4), generator=torch.Generator().manual_seed(2)).double()
    for k, layer in enumerate(model.layers):
        _set_posterior(layer, 10 + k)
    posts = model.posteriors()
    assert [p[0].shape for p in posts] == [(4, 7), (8, 4)]
    assert all(mu.dtype == np.float64 and s.dtype == np.float64 for mu, s in posts)
    # bias in the last row, weights transposed
    mu0, sigma0 = posts[0]
    np.testing.assert_array_equal(mu0[:-1], model.layers[0].weight_mu.detach().numpy().T)
    np.testing.assert_array_equal(mu0[-1], model.layers[0].bias_mu.detach().numpy())
    assert np.all(sigma0 > 0)

    X = np.random.default_rng(0).standard_normal((11, 3))
    with torch.no_grad():
        logits = model(torch.as_tensor(X), sample=False).numpy()
    h = np.maximum(np.hstack([X, np.ones((11, 1))]) @ mu0, 0)
    ours = np.hstack([h, np.ones((11, 1))]) @ posts[1][0]
    np.testing.assert_allclose(ours, logits, rtol=1e-12, atol=1e-12)
    probs = np_forward(model.means(), X)[0]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), rtol=1e-10)


def test_sampled_forward_draws_weights_and_sample_false_is_deterministic():
    model = BayesMLP((2, 4, 3), init_rho=-1.0, generator=torch.Generator().manual_seed(0))
    x = torch.randn(5, 2)
    with torch.no_grad():
        a, b = model(x), model(x)
        m1, m2 = model(x, sample=False), model(x, sample=False)
    assert not torch.allclose(a, b)
    assert torch.equal(m1, m2)


def test_forward_sample_is_reparametrized_gaussian():
    layer = BayesLinear(1, 1, init_rho=-1.0, generator=torch.Generator().manual_seed(3)).double()
    x = torch.tensor([[2.0]], dtype=torch.float64)
    with torch.no_grad():
        ys = torch.stack([layer(x)[0, 0] for _ in range(1500)]).numpy()
        mu_w, mu_b = float(layer.weight_mu), float(layer.bias_mu)
        s_w, s_b = float(layer.weight_sigma), float(layer.bias_sigma)
    assert ys.mean() == pytest.approx(2 * mu_w + mu_b, abs=5 * math.sqrt(4 * s_w**2 + s_b**2) / 38)
    assert ys.std() == pytest.approx(math.sqrt(4 * s_w**2 + s_b**2), rel=0.08)


def test_gradients_reach_mu_and_rho():
    model = BayesMLP((2, 3, 2), generator=torch.Generator().manual_seed(0))
    loss = model(torch.randn(4, 2)).sum() + model.kl()
    loss.backward()
    for layer in model.layers:
        for p in (layer.weight_mu, layer.weight_rho, layer.bias_mu, layer.bias_rho):
            assert p.grad is not None and torch.all(torch.isfinite(p.grad))
            assert float(p.grad.abs().sum()) > 0


def test_mu_sigma_aug_is_differentiable_and_consistent():
    model = BayesMLP((2, 3, 2), generator=torch.Generator().manual_seed(0))
    (mu, sigma), _ = model.mu_sigma_aug()
    assert mu.shape == (3, 3) and mu.requires_grad and sigma.requires_grad
    np.testing.assert_allclose(sigma.detach().numpy(), model.posteriors()[0][1], rtol=1e-6)


def test_sample_weights_statistics_and_seed():
    model = BayesMLP((2, 3, 2), init_rho=-1.0, generator=torch.Generator().manual_seed(0))
    ws = model.sample_weights(20_000, seed=5)
    assert [w.shape for w in ws] == [(20_000, 3, 3), (20_000, 4, 2)]
    for w, (mu, sigma) in zip(ws, model.posteriors()):
        np.testing.assert_allclose(w.mean(axis=0), mu, atol=5 * sigma.max() / math.sqrt(20_000))
        np.testing.assert_allclose(w.std(axis=0), sigma, rtol=0.05)
    again = model.sample_weights(20_000, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(ws, again))
    other = model.sample_weights(20_000, seed=6)
    assert not np.array_equal(ws[0], other[0])
    with pytest.raises(ValueError, match="n must be a positive integer"):
        model.sample_weights(0)


def test_init_is_deterministic_given_generator():
    a = BayesMLP((3, 4, 2), generator=torch.Generator().manual_seed(7))
    b = BayesMLP((3, 4, 2), generator=torch.Generator().manual_seed(7))
    c = BayesMLP((3, 4, 2), generator=torch.Generator().manual_seed(8))
    assert all(np.array_equal(x, y) for x, y in zip(a.means(), b.means()))
    assert not np.array_equal(a.means()[0], c.means()[0])


def test_plain_mlp_weights_match_forward():
    model = MLP((3, 5, 2), generator=torch.Generator().manual_seed(0)).double()
    X = np.random.default_rng(1).standard_normal((6, 3))
    with torch.no_grad():
        logits = model(torch.as_tensor(X)).numpy()
    ws = model.weights()
    assert [w.shape for w in ws] == [(4, 5), (6, 2)]
    probs = np_forward(ws, X)[0]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), rtol=1e-10)


@pytest.mark.parametrize("sizes", [(3,), (3, 0, 2), (2, -1), (2.5, 2), ()])
def test_bad_sizes_rejected(sizes):
    with pytest.raises(ValueError, match="sizes"):
        BayesMLP(sizes)
    with pytest.raises(ValueError, match="sizes"):
        MLP(sizes)


def test_bad_prior_rejected():
    with pytest.raises(ValueError, match="prior_sigma"):
        BayesLinear(2, 2, prior_sigma=0.0)
