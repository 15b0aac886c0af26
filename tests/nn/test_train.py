"""Training on half moons: accuracy, the technological loss at work, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from labrram.nn import sampled  # noqa: E402
from labrram.nn.bayes import MLP, BayesMLP  # noqa: E402
from labrram.nn.datasets import load_task  # noqa: E402
from labrram.nn.technological import TechnologicalLoss  # noqa: E402
from labrram.nn.train import TrainSettings, train_bayesian, train_deterministic  # noqa: E402

SIZES = (2, 16, 2)


@pytest.fixture(scope="module")
def moons():
    return load_task("moons", seed=0)


@pytest.fixture(scope="module")
def domain() -> TechnologicalLoss:
    grid = np.linspace(-4.0, 4.0, 101)
    return TechnologicalLoss(grid, 0.15 + 0.02 * np.abs(grid), np.full(grid.size, 0.5))


@pytest.fixture(scope="module")
def plain(moons):
    return train_bayesian(moons.X_train, moons.y_train, SIZES)


@pytest.fixture(scope="module")
def constrained(moons, domain):
    return train_bayesian(moons.X_train, moons.y_train, SIZES, tech_loss=domain)


def _distances(domain, model):
    mu = np.concatenate([m.ravel() for m, _ in model.posteriors()])
    sigma = np.concatenate([s.ravel() for _, s in model.posteriors()])
    return domain.distance(torch.as_tensor(mu), torch.as_tensor(sigma)).numpy()


def test_bayesian_moons_accuracy(moons, plain):
    model, history = plain
    assert isinstance(model, BayesMLP) and not model.training
    assert len(history) == TrainSettings().epochs
    assert set(history[0]) >= {"epoch", "loss", "nll", "kl", "tech", "train_acc"}
    assert history[-1]["nll"] < history[0]["nll"] / 3
    assert all(h["tech"] == 0.0 for h in history)
    probs = sampled.forward(model.sample_weights(50, seed=0), moons.X_test)
    assert sampled.accuracy(probs, moons.y_test) >= 0.95
    # a Bayesian net is uncertain where the moons overlap, not far inside a class
    u = sampled.decompose(probs)
    confident = u["mean"].max(axis=1) > 0.99
    assert 0 < confident.mean() < 1


def test_technological_loss_keeps_posteriors_in_the_domain(moons, domain, plain, constrained):
    model, history = constrained
    d_with = _distances(domain, model)
    d_without = _distances(domain, plain[0])
    tol = 2 * domain.delta  # the loss is a soft barrier of width ~delta
    assert np.mean(d_with <= tol) >= 0.95
    assert d_with.max() < tol
    assert np.mean(d_without <= tol) < 0.95  # the KL pulls sigma towards 1, beyond sigma_hi
    assert d_without.max() > 0.25
    frac_with = domain.model_fraction_inside(model)
    frac_without = domain.model_fraction_inside(plain[0])
    assert frac_with == pytest.approx(np.mean(d_with == 0))
    assert frac_with >= 0.8 and frac_with > frac_without + 0.2
    assert history[-1]["tech"] < history[0]["tech"] / 100
    probs = sampled.forward(model.sample_weights(50, seed=0), moons.X_test)
    assert sampled.accuracy(probs, moons.y_test) >= 0.93
    # the network still works once every posterior is moved into the domain
    clipped = [domain.clip(torch.as_tensor(m), torch.as_tensor(s)) for m, s in model.posteriors()]
    rng = np.random.default_rng(1)
    ws = [m.numpy() + s.numpy() * rng.standard_normal((50,) + tuple(m.shape)) for m, s in clipped]
    assert sampled.accuracy(sampled.forward(ws, moons.X_test), moons.y_test) >= 0.93


def test_training_is_deterministic_given_the_seed(moons):
    short = TrainSettings(epochs=3)
    a, ha = train_bayesian(moons.X_train, moons.y_train, SIZES, short)
    b, hb = train_bayesian(moons.X_train, moons.y_train, SIZES, short)
    c, _ = train_bayesian(moons.X_train, moons.y_train, SIZES, TrainSettings(epochs=3, seed=1))
    assert ha == hb
    for (mu_a, s_a), (mu_b, s_b) in zip(a.posteriors(), b.posteriors()):
        np.testing.assert_array_equal(mu_a, mu_b)
        np.testing.assert_array_equal(s_a, s_b)
    assert not np.array_equal(a.means()[0], c.means()[0])


def test_training_restores_the_thread_count(moons):
    before = torch.get_num_threads()
    train_bayesian(moons.X_train, moons.y_train, SIZES, TrainSettings(epochs=1, num_threads=1))
    assert torch.get_num_threads() == before


def test_kl_weight_zero_gives_narrower_posteriors(moons):
    s = TrainSettings(epochs=20, batch_size=None)
    with_kl, _ = train_bayesian(moons.X_train, moons.y_train, SIZES, s)
    no_kl = TrainSettings(epochs=20, batch_size=None, kl_weight=0.0)
    without, h = train_bayesian(moons.X_train, moons.y_train, SIZES, no_kl)
    assert h[-1]["loss"] == pytest.approx(h[-1]["nll"])
    assert with_kl.posteriors()[0][1].mean() > without.posteriors()[0][1].mean()


def test_deterministic_moons(moons):
    model, history = train_deterministic(
        moons.X_train, moons.y_train, SIZES, TrainSettings(epochs=100)
    )
    assert isinstance(model, MLP)
    assert history[-1]["loss"] < history[0]["loss"]
    probs = sampled.forward(model.weights(), moons.X_test)
    assert probs.shape == (1, len(moons.y_test), 2)
    assert sampled.accuracy(probs, moons.y_test) >= 0.97


def test_weight_decay_shrinks_weights(moons):
    s = dict(epochs=30, batch_size=None)
    free, _ = train_deterministic(moons.X_train, moons.y_train, SIZES, TrainSettings(**s))
    decayed, _ = train_deterministic(
        moons.X_train, moons.y_train, SIZES, TrainSettings(weight_decay=1.0, **s)
    )
    assert np.abs(decayed.weights()[0]).sum() < np.abs(free.weights()[0]).sum()


def test_bad_inputs_rejected(moons, domain):
    X, y = moons.X_train, moons.y_train
    with pytest.raises(ValueError, match="X must be 2-D"):
        train_bayesian(X[:, 0], y, SIZES)
    with pytest.raises(ValueError, match="3 features but sizes"):
        train_bayesian(np.hstack([X, X[:, :1]]), y, SIZES)
    with pytest.raises(ValueError, match="y must have shape"):
        train_bayesian(X, y[:-1], SIZES)
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        train_deterministic(X, np.where(y == 1, 2, 0), SIZES)
    with pytest.raises(ValueError, match="integer class labels"):
        train_bayesian(X, y + 0.5, SIZES)
    with pytest.raises(ValueError, match="finite"):
        train_bayesian(np.full_like(X, np.nan), y, SIZES)
    with pytest.raises(ValueError, match="tech_loss"):
        train_bayesian(X, y, SIZES, tech_loss="domain")
    with pytest.raises(ValueError, match="sizes"):
        train_bayesian(X, y, (2,))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": 0}, "epochs"),
        ({"lr": 0.0}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"kl_weight": -1.0}, "kl_weight"),
        ({"tech_weight": float("nan")}, "tech_weight"),
        ({"num_threads": 0}, "num_threads"),
    ],
)
def test_bad_settings_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(**kwargs)
