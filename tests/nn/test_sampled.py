"""Sampled-network inference and the uncertainty decomposition (numpy only)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from labrram.nn import sampled


def _net(rng, m=None, sizes=(3, 5, 4)):
    lead = () if m is None else (m,)
    return [rng.standard_normal(lead + (a + 1, b)) for a, b in zip(sizes[:-1], sizes[1:])]


def test_module_does_not_import_torch():
    code = (
        "import sys; import labrram.nn.sampled, labrram.nn.datasets; "
        "from labrram.nn.sampled import forward; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_forward_matches_manual_computation_per_sample():
    rng = np.random.default_rng(0)
    ws = _net(rng, m=3)
    X = rng.standard_normal((7, 3))
    p = sampled.forward(ws, X)
    assert p.shape == (3, 7, 4)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0)
    for m in range(3):
        h = np.maximum(np.hstack([X, np.ones((7, 1))]) @ ws[0][m], 0)
        z = np.hstack([h, np.ones((7, 1))]) @ ws[1][m]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        np.testing.assert_allclose(p[m], e / e.sum(axis=1, keepdims=True), rtol=1e-12)


def test_forward_2d_weights_is_one_network_and_broadcasts():
    rng = np.random.default_rng(1)
    ws = _net(rng)
    X = rng.standard_normal((5, 3))
    p = sampled.forward(ws, X)
    assert p.shape == (1, 5, 4)
    mixed = sampled.forward([np.stack([ws[0]] * 4), ws[1]], X)
    assert mixed.shape == (4, 5, 4)
    np.testing.assert_allclose(mixed, np.broadcast_to(p, (4, 5, 4)))


def test_forward_softmax_is_stable_for_huge_logits():
    w = [np.array([[1e4, -1e4], [0.0, 0.0]])]
    p = sampled.forward(w, np.array([[1.0], [-1.0]]))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p[0], [[1.0, 0.0], [0.0, 1.0]])


def test_forward_shape_errors():
    rng = np.random.default_rng(2)
    ws = _net(rng, m=2)
    X = rng.standard_normal((4, 3))
    with pytest.raises(ValueError, match="layer 1 expects 6 inputs .* layer 0 has 5 outputs"):
        sampled.forward([ws[0], rng.standard_normal((2, 7, 4))], X)
    with pytest.raises(ValueError, match="X has 2 features"):
        sampled.forward(ws, X[:, :2])
    with pytest.raises(ValueError, match="disagree on the number of sampled networks"):
        sampled.forward([ws[0], np.concatenate([ws[1], ws[1]])], X)
    with pytest.raises(ValueError, match="layer 0"):
        sampled.forward([np.ones(3)], X)
    with pytest.raises(ValueError, match="at least one layer"):
        sampled.forward([], X)
    with pytest.raises(ValueError, match="NaN"):
        sampled.forward([np.full((4, 2), np.nan)], X)


def test_decompose_two_confident_disagreeing_samples():
    probs = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    u = sampled.decompose(probs)
    assert u["predictive"][0] == pytest.approx(math.log(2))
    assert u["aleatoric"][0] == pytest.approx(0.0)
    assert u["epistemic"][0] == pytest.approx(math.log(2))
    np.testing.assert_allclose(u["mean"], [[0.5, 0.5]])


def test_decompose_agreeing_uncertain_samples_are_aleatoric():
    probs = np.full((5, 3, 4), 0.25)
    u = sampled.decompose(probs)
    np.testing.assert_allclose(u["predictive"], math.log(4))
    np.testing.assert_allclose(u["aleatoric"], math.log(4))
    assert np.all(u["epistemic"] == 0.0)  # tiny negatives clipped


def test_decompose_mixed_case_by_hand():
    probs = np.array([[[0.9, 0.1]], [[0.5, 0.5]]])
    u = sampled.decompose(probs)
    h = lambda p: -sum(x * math.log(x) for x in p)  # noqa: E731
    assert u["predictive"][0] == pytest.approx(h([0.7, 0.3]))
    assert u["aleatoric"][0] == pytest.approx((h([0.9, 0.1]) + h([0.5, 0.5])) / 2)
    assert u["epistemic"][0] == pytest.approx(u["predictive"][0] - u["aleatoric"][0])
    assert u["epistemic"][0] > 0


def test_decompose_rejects_bad_probabilities():
    with pytest.raises(ValueError, match="sum to 1"):
        sampled.decompose(np.full((2, 3, 2), 0.3))
    with pytest.raises(ValueError, match="non-negative"):
        sampled.decompose(np.array([[[1.5, -0.5]]]))
    with pytest.raises(ValueError, match="shape"):
        sampled.decompose(np.ones(3) / 3)


def test_accuracy_uses_mean_probabilities():
    probs = np.array([
        [[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]],
        [[0.8, 0.2], [0.1, 0.9], [0.3, 0.7]],
    ])  # means: [.85,.15], [.35,.65], [.25,.75]
    assert sampled.accuracy(probs, np.array([0, 1, 1])) == pytest.approx(1.0)
    assert sampled.accuracy(probs, np.array([0, 0, 1])) == pytest.approx(2 / 3)
    # sample 0 alone says class 0 for point 1
    assert sampled.accuracy(probs[:1], np.array([0, 1, 1])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="y must have shape"):
        sampled.accuracy(probs, np.array([0, 1]))
    with pytest.raises(ValueError, match="labels must lie"):
        sampled.accuracy(probs, np.array([0, 1, 2]))


def test_agreement_and_entropy_correlation():
    a = np.array([[[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]]])
    b = np.array([[[0.7, 0.3], [0.45, 0.55], [0.1, 0.9], [0.51, 0.49]]])
    assert sampled.agreement(a, b) == pytest.approx(0.75)
    assert sampled.agreement(a, a) == 1.0
    assert sampled.entropy_correlation(a, a) == pytest.approx(1.0)
    ha = sampled.entropy(a[0])
    hb = sampled.entropy(b[0])
    assert sampled.entropy_correlation(a, b) == pytest.approx(np.corrcoef(ha, hb)[0, 1])
    with pytest.raises(ValueError, match="same"):
        sampled.agreement(a, b[:, :3])
    with pytest.raises(ValueError, match="constant"):
        sampled.entropy_correlation(a, np.full((1, 4, 2), 0.5))


def test_entropy_handles_zeros():
    assert sampled.entropy(np.array([1.0, 0.0])) == 0.0
    assert sampled.entropy(np.array([0.5, 0.5])) == pytest.approx(math.log(2))
