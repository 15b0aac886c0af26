"""TechnologicalLoss: distance normalization, loss shape, gradients, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from labrram.nn.bayes import BayesMLP  # noqa: E402
from labrram.nn.technological import TechnologicalLoss  # noqa: E402

GRID = np.linspace(-4.0, 4.0, 101)


@pytest.fixture
def tl() -> TechnologicalLoss:
    return TechnologicalLoss(GRID, 0.15 + 0.02 * np.abs(GRID), np.full(GRID.size, 0.5))


def _t(*values):
    return torch.tensor(values, dtype=torch.float64)


def test_distance_on_hand_computed_points(tl):
    mu = _t(0.0, 6.0, 1.0, -5.0, 2.0, -1.5)
    sigma = _t(0.3, 0.3, 0.05, 0.75, 0.19, 0.5)
    d = tl.distance(mu, sigma).numpy()
    expected = [
        0.0,  # inside
        2.0 / 4.0,  # |mu| - mu_max = 2, normalized by mu_max; sigma inside at mu_max
        (0.17 - 0.05) / 0.5,  # below sigma_lo(1) = 0.17, normalized by max(sigma_hi)
        math.hypot(1.0 / 4.0, 0.25 / 0.5),  # both axes
        0.0,  # exactly on sigma_lo(2) = 0.19
        0.0,  # exactly on sigma_hi
    ]
    np.testing.assert_allclose(d, expected, rtol=1e-9, atol=1e-12)


def test_envelope_is_linearly_interpolated_between_grid_points():
    grid = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    tl = TechnologicalLoss(grid, 0.1 + 0.05 * grid**2, np.full(5, 1.0))
    lo, hi = tl.envelope(_t(0.5, -1.5, 2.0, 9.0))
    np.testing.assert_allclose(lo.numpy(), [0.125, 0.225, 0.3, 0.3], rtol=1e-12)
    np.testing.assert_allclose(hi.numpy(), 1.0)
    # sigma 0.1 at mu 0.5: 0.025 below the interpolated lower bound (not the parabola's 0.0125)
    assert float(tl.distance(_t(0.5), _t(0.1))) == pytest.approx(0.025, rel=1e-9)


def test_loss_is_about_zero_inside_and_grows_with_distance(tl):
    inside = tl(_t(0.0, 1.0, -3.9), _t(0.3, 0.2, 0.45))
    assert 0.0 <= float(inside) < 1e-7
    sig = torch.tensor([0.5 + 0.5 * k for k in np.linspace(0.0, 0.4, 21)], dtype=torch.float64)
    d = tl.distance(torch.zeros_like(sig), sig)
    losses = [float(tl(torch.zeros(1, dtype=torch.float64), s.reshape(1))) for s in sig]
    np.testing.assert_allclose(d.numpy(), np.linspace(0.0, 0.4, 21), atol=1e-12)
    assert all(b > a for a, b in zip(losses[1:], losses[2:]))
    assert losses[-1] > 5.0


def test_loss_matches_direct_formula_and_asymptote(tl):
    for dist in (0.05, 0.15, 0.3, 0.5):
        sigma = 0.5 + dist * 0.5
        got = float(tl(_t(0.0), _t(sigma)))
        direct = -math.log(math.tanh(10.0 * math.exp(-dist**2 / (2 * 0.1**2))))
        assert got == pytest.approx(direct, rel=1e-6)
    far = 2.0  # beta*f ~ 1e-86: the asymptote d^2/(2 delta^2) - log(beta)
    got = float(tl(_t(0.0), _t(0.5 + far * 0.5)))
    assert got == pytest.approx(far**2 / (2 * 0.01) - math.log(10.0), rel=1e-12)


def test_loss_is_continuous_across_the_asymptote_switch(tl):
    # beta*f = 1e-6 at d* = delta*sqrt(2*log(beta/1e-6))
    d_star = 0.1 * math.sqrt(2 * math.log(10.0 / 1e-6))
    vals = [float(tl(_t(0.0), _t(0.5 + d * 0.5))) for d in (d_star - 1e-9, d_star + 1e-9)]
    assert vals[0] == pytest.approx(vals[1], rel=1e-6)


def test_gradients_finite_far_outside_and_point_inward(tl):
    mu = _t(0.0, 50.0, -1e3, 2.0, 1.0).requires_grad_(True)
    sigma = _t(1e3, 0.3, 0.3, 1e-6, 0.3).requires_grad_(True)
    loss = tl(mu, sigma)
    loss.backward()
    assert math.isfinite(loss.item())
    assert torch.all(torch.isfinite(mu.grad)) and torch.all(torch.isfinite(sigma.grad))
    assert sigma.grad[0] > 0  # too wide: descending lowers sigma
    assert mu.grad[1] > 0 and mu.grad[2] < 0  # |mu| too large: pulled back towards the grid
    assert sigma.grad[3] < 0  # too narrow: descending raises sigma
    assert float(mu.grad[4]) == 0.0 and float(sigma.grad[4]) == 0.0  # inside: no force


def test_distance_gradcheck_outside_the_domain(tl):
    mu = _t(4.5, 1.03, -0.37, 2.2).requires_grad_(True)
    sigma = _t(0.3, 0.05, 0.8, 0.7).requires_grad_(True)
    assert torch.autograd.gradcheck(tl.distance, (mu, sigma))
    assert torch.autograd.gradcheck(tl, (mu, sigma))
    # the distance below sigma_lo depends on mu through the interpolated envelope
    d = tl.distance(mu, sigma)
    d[1].backward()
    assert mu.grad[1] > 0  # sigma_lo grows with |mu|: more mu, further away


def test_fraction_inside_numpy_and_torch(tl):
    mu = np.array([0.0, 1.0, 5.0, 0.0])
    sigma = np.array([0.3, 0.05, 0.3, 0.52])
    assert tl.fraction_inside(mu, sigma) == pytest.approx(0.25)
    assert tl.fraction_inside(torch.as_tensor(mu), torch.as_tensor(sigma)) == pytest.approx(0.25)
    assert tl.fraction_inside(mu, sigma, tol=0.05) == pytest.approx(0.5)


def test_clip_moves_points_into_the_domain(tl):
    mu = torch.tensor([[0.0, 6.0], [1.0, -5.0]], dtype=torch.float64)
    sigma = torch.tensor([[0.3, 0.3], [0.05, 0.75]], dtype=torch.float64)
    m, s = tl.clip(mu, sigma)
    assert torch.all(tl.distance(m, s) == 0)
    assert float(m[0, 0]) == 0.0 and float(s[0, 0]) == 0.3  # inside: unchanged
    assert float(m[0, 1]) == 4.0 and float(s[1, 0]) == pytest.approx(0.17)


def test_for_model_sums_every_layer(tl):
    model = BayesMLP((3, 4, 2), generator=torch.Generator().manual_seed(0))
    total = tl.for_model(model).item()
    per_layer = sum(tl(mu, sigma).item() for mu, sigma in model.mu_sigma_aug())
    assert total == pytest.approx(per_layer, rel=1e-5)
    assert total > 10  # initial sigma (6.7e-3) is far below sigma_lo
    tl.for_model(model).backward()
    assert model.layers[0].weight_rho.grad is not None
    assert float(model.layers[0].weight_rho.grad.max()) < 0  # pushes sigma up
    assert tl.model_fraction_inside(model) == 0.0


def test_float32_inputs(tl):
    mu = torch.tensor([0.0, 1.0], dtype=torch.float32)
    sigma = torch.tensor([0.3, 0.05], dtype=torch.float32)
    assert tl(mu, sigma).dtype == torch.float32
    assert float(tl.distance(mu, sigma)[1]) == pytest.approx(0.24, rel=1e-6)


@pytest.mark.parametrize(
    "grid, lo, hi, message",
    [
        (np.linspace(-1, 1, 5), np.full(4, 0.1), np.full(5, 0.2), "same length"),
        (np.array([0.0]), np.array([0.1]), np.array([0.2]), "at least 2"),
        (np.array([-1.0, 1.0, 0.0]), np.full(3, 0.1), np.full(3, 0.2), "increasing"),
        (np.array([-1.0, -0.5, 1.0]), np.full(3, 0.1), np.full(3, 0.2), "uniformly spaced"),
        (np.linspace(0, 2, 5), np.full(5, 0.1), np.full(5, 0.2), "symmetric"),
        (np.linspace(-1, 1, 5), np.array([0.1, 0.0, 0.1, 0.1, 0.1]), np.full(5, 0.2), "> 0"),
        (np.linspace(-1, 1, 5), np.full(5, 0.3), np.full(5, 0.2), "sigma_lo must be <= sigma_hi"),
        (np.linspace(-1, 1, 5), np.full(5, np.nan), np.full(5, 0.2), "finite"),
        (np.ones((2, 2)), np.full(2, 0.1), np.full(2, 0.2), "1-D"),
    ],
)
def test_bad_domains_rejected(grid, lo, hi, message):
    with pytest.raises(ValueError, match=message):
        TechnologicalLoss(grid, lo, hi)


def test_bad_parameters_rejected():
    with pytest.raises(ValueError, match="beta"):
        TechnologicalLoss(GRID, np.full(101, 0.1), np.full(101, 0.2), beta=0.0)
    with pytest.raises(ValueError, match="delta"):
        TechnologicalLoss(GRID, np.full(101, 0.1), np.full(101, 0.2), delta=-1.0)
    tl = TechnologicalLoss(GRID, np.full(101, 0.1), np.full(101, 0.2))
    with pytest.raises(ValueError, match="same shape"):
        tl(torch.zeros(3), torch.zeros(2))
