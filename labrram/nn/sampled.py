"""Inference with sampled networks and uncertainty decomposition (numpy only, no torch).

Weights follow the project's augmented convention: one layer with ``n_in`` inputs and
``n_out`` outputs is ``(n_in + 1, n_out)`` (weights, then the bias row) and computes
``[x, 1] @ W``. A stack of ``M`` sampled networks (e.g. ``M`` programmed copies of a Bayesian
network on a chip) is one array ``(M, n_in + 1, n_out)`` per layer. Hidden layers use ReLU,
the output a softmax.

Uncertainty (natural log) over the ``M`` softmax outputs ``p_m`` of one input, with the
predictive mean ``p̄ = mean_m p_m``::

    predictive  U_p = -Σ_c p̄_c log p̄_c
    aleatoric   U_a = -mean_m Σ_c p_mc log p_mc
    epistemic   U_e = U_p - U_a   (the mutual information, >= 0)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["accuracy", "agreement", "decompose", "entropy", "entropy_correlation", "forward"]


def _stack(weights: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(weights, np.ndarray):
        raise ValueError("weights must be a sequence of per-layer arrays, not a single array")
    layers = [np.asarray(w, dtype=float) for w in weights]
    if not layers:
        raise ValueError("weights must contain at least one layer")
    ms = set()
    for k, w in enumerate(layers):
        if w.ndim not in (2, 3):
            raise ValueError(
                f"layer {k}: expected shape (n_in + 1, n_out) or (M, n_in + 1, n_out), "
                f"got {w.shape}"
            )
        if w.shape[-2] < 2 or w.shape[-1] < 1:
            raise ValueError(
                f"layer {k}: augmented matrix needs >= 1 input row plus the bias row and >= 1 "
                f"output, got shape {w.shape}"
            )
        if w.ndim == 3:
            ms.add(w.shape[0])
        if not np.all(np.isfinite(w)):
            raise ValueError(f"layer {k}: weights contain NaN or inf")
    if len(ms) > 1:
        raise ValueError(f"layers disagree on the number of sampled networks M: {sorted(ms)}")
    m = ms.pop() if ms else 1
    if m < 1:
        raise ValueError("the number of sampled networks M must be >= 1")
    out = [w if w.ndim == 3 else np.broadcast_to(w, (m,) + w.shape) for w in layers]
    for k in range(1, len(out)):
        n_prev, n_in = out[k - 1].shape[-1], out[k].shape[-2] - 1
        if n_in != n_prev:
            raise ValueError(
                f"layer {k} expects {n_in} inputs (shape {out[k].shape[-2:]}, last row is the "
                f"bias) but layer {k - 1} has {n_prev} outputs"
            )
    return out


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis``."""
    z = logits - np.max(logits, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def forward(weights: Sequence[np.ndarray], X: np.ndarray) -> np.ndarray:
    """Class probabilities of ``M`` sampled networks.

    Parameters
    ----------
    weights : sequence of numpy.ndarray
        Per layer, ``(M, n_in + 1, n_out)`` or ``(n_in + 1, n_out)`` (shared by all ``M``
        networks; ``M = 1`` if every layer is 2-D).
    X : numpy.ndarray
        Inputs ``(N, n_in)``.

    Returns
    -------
    numpy.ndarray
        Probabilities ``(M, N, C)``.

    Raises
    ------
    ValueError
        If layer shapes do not chain, ``X`` does not match the first layer, or values are
        not finite.
    """
    layers = _stack(weights)
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (N, n_in), got shape {X.shape}")
    n_in = layers[0].shape[-2] - 1
    if X.shape[1] != n_in:
        raise ValueError(f"X has {X.shape[1]} features but the first layer expects {n_in}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or inf")
    h = X[None]
    for k, w in enumerate(layers):
        h = np.matmul(h, w[:, :-1, :]) + w[:, -1, :][:, None, :]
        if k < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return softmax(h, axis=-1)


def _probs(probs: np.ndarray, name: str = "probs") -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3:
        raise ValueError(f"{name} must have shape (M, N, C) or (N, C), got {p.shape}")
    if p.size == 0:
        raise ValueError(f"{name} is empty (shape {p.shape})")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"{name} must be finite and non-negative")
    if not np.allclose(p.sum(axis=-1), 1.0, atol=1e-3):
        raise ValueError(f"{name} must sum to 1 over the last (class) axis")
    return p


def entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in nats along ``axis`` (``0 log 0 = 0``)."""
    p = np.asarray(p, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return -np.sum(terms, axis=axis)


def decompose(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Split predictive uncertainty into aleatoric and epistemic parts.

    Parameters
    ----------
    probs : numpy.ndarray
        ``(M, N, C)`` probabilities of ``M`` sampled networks (``(N, C)`` is ``M = 1``).

    Returns
    -------
    dict
        ``predictive``, ``aleatoric``, ``epistemic`` (each ``(N,)``, nats) and ``mean``
        (``(N, C)``, the M-averaged probabilities).
    """
    p = _probs(probs)
    mean = p.mean(axis=0)
    predictive = entropy(mean)
    aleatoric = entropy(p).mean(axis=0)
    epistemic = np.clip(predictive - aleatoric, 0.0, None)
    return {"predictive": predictive, "aleatoric": aleatoric, "epistemic": epistemic, "mean": mean}


def _labels(y: np.ndarray, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(y == np.round(y)):
            raise ValueError("y must hold integer class labels")
        y = y.astype(np.int64)
    if np.any(y < 0) or np.any(y >= n_classes):
        raise ValueError(f"y labels must lie in 0..{n_classes - 1}")
    return y


def accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of the arg-max of the M-averaged probabilities."""
    p = _probs(probs)
    y = _labels(y, p.shape[1], p.shape[2])
    return float(np.mean(np.argmax(p.mean(axis=0), axis=-1) == y))


def _pair(probs_a: np.ndarray, probs_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _probs(probs_a, "probs_a"), _probs(probs_b, "probs_b")
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"probs_a and probs_b must cover the same (N, C), got {a.shape[1:]} and {b.shape[1:]}"
        )
    return a, b


def agreement(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Fraction of points where the arg-max of the two M-averaged predictions agree."""
    a, b = _pair(probs_a, probs_b)
    return float(np.mean(np.argmax(a.mean(axis=0), -1) == np.argmax(b.mean(axis=0), -1)))


def entropy_correlation(probs_a: np.ndarray, probs_b: np.ndarray) -> float:
    """Pearson correlation of the per-point predictive entropies of two predictions.

    Raises
    ------
    ValueError
        If fewer than two points are given or either entropy is constant (undefined
        correlation).
    """
    a, b = _pair(probs_a, probs_b)
    ea, eb = entropy(a.mean(axis=0)), entropy(b.mean(axis=0))
    if ea.size < 2:
        raise ValueError("entropy_correlation needs at least two points")
    da, db = ea - ea.mean(), eb - eb.mean()
    na, nb = np.sqrt(np.sum(da**2)), np.sqrt(np.sum(db**2))
    if na == 0 or nb == 0:
        raise ValueError("entropy_correlation is undefined: a predictive entropy is constant")
    return float(np.sum(da * db) / (na * nb))
