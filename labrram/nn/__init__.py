"""Bayesian neural networks for resistive-memory chips.

Torch-based training lives in :mod:`labrram.nn.bayes`, :mod:`labrram.nn.technological` and
:mod:`labrram.nn.train` (and :mod:`labrram.nn.lenet` for a convolutional network);
:mod:`labrram.nn.sampled` (inference with sampled networks and uncertainty decomposition),
:mod:`labrram.nn.datasets` (offline tasks, Fashion-MNIST) and :mod:`labrram.nn.tiled`
(networks unrolled and tiled over arrays, in-array inference) are numpy-only, so
hardware inference code can use them without torch. Importing this package does not import
torch: the names below are resolved lazily on first access.

Weights outside torch use the *augmented* convention: a layer with ``n_in`` inputs and
``n_out`` outputs is a ``(n_in + 1, n_out)`` matrix (weights, then the bias row) and computes
``[x, 1] @ W``.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "BayesLinear": "labrram.nn.bayes",
    "BayesMLP": "labrram.nn.bayes",
    "MLP": "labrram.nn.bayes",
    "TechnologicalLoss": "labrram.nn.technological",
    "TrainSettings": "labrram.nn.train",
    "train_bayesian": "labrram.nn.train",
    "train_deterministic": "labrram.nn.train",
    "forward": "labrram.nn.sampled",
    "decompose": "labrram.nn.sampled",
    "accuracy": "labrram.nn.sampled",
    "agreement": "labrram.nn.sampled",
    "entropy_correlation": "labrram.nn.sampled",
    "Task": "labrram.nn.datasets",
    "load_task": "labrram.nn.datasets",
    "KNOWN_TASKS": "labrram.nn.datasets",
    "load_fashion_mnist": "labrram.nn.datasets",
    "plan_network": "labrram.nn.tiled",
    "run_in_array": "labrram.nn.tiled",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
