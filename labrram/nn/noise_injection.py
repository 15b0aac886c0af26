"""Noise-injection training for PCM inference (Joshi et al., Nat. Commun. 2020).

During training every forward pass draws fresh Gaussian noise on each layer's weights::

    W_noisy = W + N(0, (eta · W_max)²),     W_max = max|W| of the layer,  eta = 3.8 %

(one draw per minibatch, shared by its samples; no noise in eval mode), so the network learns
weights whose loss is flat under the programming noise of a differential PCM pair (about
3.8 % of the largest weight, Joshi's measurement). After every optimizer step each layer's
weights are clipped at ``±clip_sigma · std(W)`` (2.0–2.5): a few outliers then no longer set
``W_max``, the conductance range is shared by the bulk of the weights and the noise, relative to
it, stays small. Biases and batch norms are digital and get no noise.

A batch norm in training mode normalizes each minibatch by its own statistics, computed with
that minibatch's noisy weights: they absorb the shift the noise gives each output's mean, which
inference, with fixed statistics, does not. ``NoiseSettings(frozen_norm_epochs=k)`` trains the
last ``k`` epochs with the statistics fixed, so the loss sees that shift too.

The network (:class:`NoisyMLP`) is ``Linear → BatchNorm → ReLU`` for hidden layers (no bias:
the batch norm has one) and ``Linear`` with a bias for the output; :meth:`NoisyMLP.to_network`
exports it as a numpy :class:`~labrram.nn.drift.Network` for the array. ``eta = 0`` and
``clip_sigma = None`` is plain training with the same architecture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labrram.nn.bayes import check_sizes
from labrram.nn.drift import BatchNorm, Network
from labrram.nn.train import _check_data, _threads, fit_classifier

__all__ = ["NoiseSettings", "NoisyLinear", "NoisyMLP", "train_noise_injection"]

JOSHI_ETA = 0.038
"""Weight noise of Joshi et al. 2020, relative to the layer's largest weight."""


class NoisyLinear(nn.Linear):
    """Linear layer that adds ``N(0, (eta·max|W|)²)`` to its weights in every training forward.

    Parameters
    ----------
    in_features, out_features : int
        Layer widths.
    bias : bool
        Whether the layer has a (noise-free, digital) bias.
    eta : float
        Noise standard deviation relative to the layer's ``max|W|`` (0: none).
    generator : torch.Generator, optional
        Source of the noise (torch's global generator when omitted).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, eta: float = 0.0, generator: torch.Generator | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias)
        if not (math.isfinite(eta) and eta >= 0):
            raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
        self.eta = float(eta)
        self.generator = generator

    def noisy_weight(self) -> torch.Tensor:
        """The weight used by the forward pass: ``W`` plus a fresh draw when training with noise."""
        w = self.weight
        if not (self.training and self.eta > 0):
            return w
        w_max = w.detach().abs().max()
        eps = torch.randn(w.shape, generator=self.generator, dtype=w.dtype)
        return w + self.eta * w_max * eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.noisy_weight(), self.bias)

    @torch.no_grad()
    def clip_(self, clip_sigma: float | None) -> float | None:
        """Clip the weights in place at ``±clip_sigma·std(W)``; return the threshold (None: no clip)."""
        if clip_sigma is None:
            return None
        t = float(clip_sigma) * float(self.weight.std())
        if t > 0:
            self.weight.clamp_(-t, t)
        return t


class NoisyMLP(nn.Module):
    """``(Linear → BatchNorm → ReLU)*`` then ``Linear``, every weight matrix noise-injected.

    Parameters
    ----------
    sizes : sequence of int
        Widths ``(n_in, hidden..., n_classes)``, e.g. ``(64, 100, 10)``.
    eta : float
        Training weight noise relative to each layer's ``max|W|``.
    batch_norm : bool
        Batch norm after each hidden layer (then the hidden layers have no bias).
    generator : torch.Generator, optional
        Source of the initial weights and of the noise.
    """

    def __init__(self, sizes: Sequence[int], eta: float = JOSHI_ETA, batch_norm: bool = True, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.sizes = check_sizes(sizes)
        n = len(self.sizes) - 1
        self.layers = nn.ModuleList(
            NoisyLinear(a, b, bias=(i == n - 1 or not batch_norm), eta=eta, generator=generator)
            for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:]))
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in self.sizes[1:-1]) if batch_norm else None
        for layer in self.layers:
            bound = 1.0 / math.sqrt(layer.in_features)
            with torch.no_grad():
                layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
                if layer.bias is not None:
                    layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, n_classes)``."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                if self.norms is not None:
                    x = self.norms[i](x)
                x = F.relu(x)
        return x

    def clip_(self, clip_sigma: float | None) -> list[float | None]:
        """Clip every layer's weights at ``±clip_sigma·std(W)``."""
        return [layer.clip_(clip_sigma) for layer in self.layers]

    def to_network(self) -> Network:
        """The trained network as a numpy :class:`~labrram.nn.drift.Network` (eval-mode batch norms)."""
        with torch.no_grad():
            weights = [layer.weight.t().double().numpy().copy() for layer in self.layers]
            biases = [None if layer.bias is None else layer.bias.double().numpy().copy() for layer in self.layers]
            norms: list[BatchNorm | None] = [None] * len(self.layers)
            if self.norms is not None:
                for i, bn in enumerate(self.norms):
                    norms[i] = BatchNorm(
                        gamma=bn.weight.double().numpy().copy(), beta=bn.bias.double().numpy().copy(),
                        mean=bn.running_mean.double().numpy().copy(), var=bn.running_var.double().numpy().copy(),
                        eps=float(bn.eps),
                    )  # fmt: skip
        return Network(weights, biases, norms)


@dataclass(frozen=True)
class NoiseSettings:
    """Settings of :func:`train_noise_injection`.

    Attributes
    ----------
    eta : float
        Weight noise relative to each layer's ``max|W|`` (Joshi: 0.038; 0: plain training).
    clip_sigma : float or None
        Clip weights at ``±clip_sigma·std(W)`` after every step (Joshi: 2.0–2.5; None: never).
    epochs, lr, batch_size, weight_decay : optimization (Adam, cosine-annealed learning rate).
    batch_norm : bool
        Batch norm after the hidden layers.
    frozen_norm_epochs : int
        The last ``frozen_norm_epochs`` epochs train with every batch norm normalizing by its
        running statistics, no longer updated (its scale and shift still train). In the
        earlier epochs a minibatch is normalized by its own statistics, computed with the
        minibatch's noisy weights, so they absorb the shift the noise gives each output's mean
        (a convolution whose kernel sum the noise changes responds to the input's brightness)
        and the network never learns to bear it; at inference the statistics are fixed and
        the shift passes. 0 (Joshi): never frozen. Needs ``batch_norm`` and fewer than
        ``epochs``: the statistics are gathered before they are frozen.
    seed : int
        Seeds the initial weights, the minibatch order and the noise.
    num_threads : int or None
        torch intra-op threads while training (see :class:`labrram.nn.train.TrainSettings`).
    """

    eta: float = JOSHI_ETA
    clip_sigma: float | None = 2.5
    epochs: int = 60
    lr: float = 3e-3
    batch_size: int = 32
    weight_decay: float = 1e-4
    batch_norm: bool = True
    frozen_norm_epochs: int = 0
    seed: int = 0
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.eta) and self.eta >= 0):
            raise ValueError(f"eta must be a finite number >= 0, got {self.eta!r}")
        if self.clip_sigma is not None and not (math.isfinite(self.clip_sigma) and self.clip_sigma > 0):
            raise ValueError(f"clip_sigma must be None or > 0, got {self.clip_sigma!r}")
        if int(self.epochs) != self.epochs or self.epochs < 1 or int(self.batch_size) != self.batch_size or self.batch_size < 2:
            raise ValueError(f"epochs must be >= 1 and batch_size >= 2 (batch norm), got {self.epochs!r}, {self.batch_size!r}")
        if not (math.isfinite(self.lr) and self.lr > 0) or not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr!r}, {self.weight_decay!r}")
        if int(self.frozen_norm_epochs) != self.frozen_norm_epochs or not 0 <= self.frozen_norm_epochs < self.epochs:
            raise ValueError(f"frozen_norm_epochs must be an integer in [0, epochs) = [0, {self.epochs}) (the batch norms gather their statistics first), got {self.frozen_norm_epochs!r}")
        if self.frozen_norm_epochs and not self.batch_norm:
            raise ValueError("frozen_norm_epochs freezes batch norms; it needs batch_norm=True")

    @classmethod
    def plain(cls, **changes) -> "NoiseSettings":
        """Plain training (no noise, no clipping) with otherwise the same settings."""
        return cls(eta=0.0, clip_sigma=None, **changes)


def train_noise_injection(X: np.ndarray, y: np.ndarray, sizes: Sequence[int], settings: NoiseSettings = NoiseSettings()) -> tuple[NoisyMLP, list[dict]]:
    """Train a :class:`NoisyMLP` with weight-noise injection and clipping.

    Parameters
    ----------
    X : numpy.ndarray
        Inputs ``(N, sizes[0])``.
    y : numpy.ndarray
        Integer labels ``(N,)``.
    sizes : sequence of int
        Layer widths.
    settings : NoiseSettings
        Noise, clipping and optimization settings.

    Returns
    -------
    model : NoisyMLP
        The trained network, in eval mode (no noise).
    history : list of dict
        Per epoch: ``epoch``, ``loss``, ``train_acc`` (of the noisy forward passes).

    Raises
    ------
    ValueError
        If ``X``, ``y`` and ``sizes`` do not fit together.
    """
    Xt, yt, sizes = _check_data(X, y, sizes)
    s = settings
    with _threads(s.num_threads):
        gen = torch.Generator().manual_seed(int(s.seed))
        model = NoisyMLP(sizes, eta=s.eta, batch_norm=s.batch_norm, generator=gen)
        history = fit_noisy(model, Xt, yt, s, gen)
    return model, history


def fit_noisy(model: Any, Xt: Any, yt: Any, s: NoiseSettings, gen: Any) -> list[dict]:
    """Train a network with weight noise in its forward pass (``model.clip_(sigmas)`` clips
    its weights): Adam with cosine annealing over ``s.epochs``, the weights clipped after
    every step, the batch norms frozen for the last ``s.frozen_norm_epochs``; ``model`` is
    left in eval mode. Returns the per-epoch ``epoch``, ``loss`` and
    ``train_acc`` (of the noisy forward passes). Shared by every network trained with noise
    injection (the MLP here, :mod:`labrram.nn.resnet`)."""
    model.clip_(s.clip_sigma)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(s.epochs))
    frozen = int(s.epochs - s.frozen_norm_epochs) if s.frozen_norm_epochs else None
    return fit_classifier(model, Xt, yt, opt, s.epochs, s.batch_size, gen, scheduler=sched, after_step=lambda: model.clip_(s.clip_sigma), min_batch=2,
                          frozen_norms_from=frozen)  # fmt: skip
