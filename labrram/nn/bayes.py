"""Bayesian (Bayes-by-Backprop) and deterministic multilayer perceptrons in torch.

Weight convention
-----------------
Outside torch a layer with ``n_in`` inputs and ``n_out`` outputs is an *augmented* matrix of
shape ``(n_in + 1, n_out)``: rows ``0..n_in-1`` hold the weights (input ``i`` → output ``j``,
the transpose of torch's ``(out, in)`` weight) and the last row holds the bias, so one layer
is ``y = [x, 1] @ W_aug``. Hidden layers use ReLU, the last layer gives logits.

Bayes-by-Backprop (Blundell et al. 2015)
----------------------------------------
Every weight (and bias) has an independent Gaussian posterior ``q = N(mu, sigma^2)`` with
``sigma = softplus(rho)``; a forward pass draws one weight sample with the reparametrization
``w = mu + sigma * eps``, ``eps ~ N(0, 1)``. The prior is ``N(0, prior_sigma^2)`` and the KL
divergence is in closed form::

    KL(q || p) = sum[ log(prior_sigma / sigma) + (sigma^2 + mu^2) / (2 prior_sigma^2) - 1/2 ]
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BayesLinear", "BayesMLP", "MLP", "augment", "check_sizes", "gaussian_kl"]


def gaussian_kl(mu: torch.Tensor, sigma: torch.Tensor, prior_sigma: float) -> torch.Tensor:
    """Closed-form ``KL(N(mu, sigma^2) || N(0, prior_sigma^2))`` summed over all elements."""
    p2 = float(prior_sigma) ** 2
    quad = (sigma.square().sum() + mu.square().sum()) / (2.0 * p2)
    return quad - torch.log(sigma).sum() + mu.numel() * (math.log(prior_sigma) - 0.5)


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """Validate layer widths ``(n_in, hidden..., n_out)``; return them as a tuple of ints.

    Raises
    ------
    ValueError
        If fewer than two widths are given or any width is not a positive integer.
    """
    try:
        out = tuple(int(s) for s in sizes)
    except TypeError as exc:
        raise ValueError(f"sizes must be a sequence of positive integers, got {sizes!r}") from exc
    if len(out) < 2:
        raise ValueError(f"sizes needs at least two widths (inputs, outputs), got {out}")
    for s, raw in zip(out, sizes):
        if s < 1 or s != raw:
            raise ValueError(f"sizes must be positive integers, got {tuple(sizes)!r}")
    return out


def augment(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Torch ``(out, in)`` weight and ``(out,)`` bias → augmented ``(in + 1, out)`` tensor."""
    return torch.cat([weight.t(), bias.unsqueeze(0)], dim=0)


def _uniform_(t: torch.Tensor, bound: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        t.copy_((torch.rand(t.shape, generator=generator, dtype=t.dtype) * 2.0 - 1.0) * bound)


class BayesLinear(nn.Module):
    """Linear layer with a Gaussian mean-field posterior over weights and biases.

    Parameters
    ----------
    in_features, out_features : int
        Layer widths.
    prior_sigma : float
        Standard deviation of the zero-mean Gaussian prior (weight units).
    init_rho : float
        Initial ``rho`` of every parameter (``sigma = softplus(rho)``; ``-5`` gives
        ``sigma ≈ 6.7e-3``).
    generator : torch.Generator, optional
        Source of randomness for the initial means and for the weight samples drawn in
        :meth:`forward`; the global torch generator when omitted.

    Attributes
    ----------
    weight_mu, weight_rho : torch.nn.Parameter
        ``(out_features, in_features)``.
    bias_mu, bias_rho : torch.nn.Parameter
        ``(out_features,)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        prior_sigma: float = 1.0,
        init_rho: float = -5.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        in_features, out_features = check_sizes((in_features, out_features))
        prior_sigma = float(prior_sigma)
        if not (math.isfinite(prior_sigma) and prior_sigma > 0):
            raise ValueError(f"prior_sigma must be a finite positive number, got {prior_sigma}")
        if not math.isfinite(float(init_rho)):
            raise ValueError(f"init_rho must be finite, got {init_rho}")
        self.in_features = in_features
        self.out_features = out_features
        self.prior_sigma = prior_sigma
        self.generator = generator
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_rho = nn.Parameter(torch.full((out_features, in_features), float(init_rho)))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_rho = nn.Parameter(torch.full((out_features,), float(init_rho)))
        bound = 1.0 / math.sqrt(in_features)
        _uniform_(self.weight_mu, bound, generator)
        _uniform_(self.bias_mu, bound, generator)

    @property
    def weight_sigma(self) -> torch.Tensor:
        """Posterior standard deviation of the weights, ``softplus(weight_rho)``."""
        return F.softplus(self.weight_rho)

    @property
    def bias_sigma(self) -> torch.Tensor:
        """Posterior standard deviation of the biases, ``softplus(bias_rho)``."""
        return F.softplus(self.bias_rho)

    def forward(self, x: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """Apply the layer; one weight sample per call (``sample=False``: the means)."""
        if not sample:
            return F.linear(x, self.weight_mu, self.bias_mu)
        eps_w = torch.randn(
            self.weight_mu.shape, generator=self.generator, dtype=self.weight_mu.dtype
        )
        eps_b = torch.randn(self.bias_mu.shape, generator=self.generator, dtype=self.bias_mu.dtype)
        w = self.weight_mu + self.weight_sigma * eps_w
        b = self.bias_mu + self.bias_sigma * eps_b
        return F.linear(x, w, b)

    def kl(self) -> torch.Tensor:
        """Closed-form ``KL(q || N(0, prior_sigma^2))`` summed over weights and biases."""
        mu, sigma = self.flat_posterior()
        return gaussian_kl(mu, sigma, self.prior_sigma)

    def flat_posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every posterior mean and std (weights, then biases) as two flat, differentiable
        tensors."""
        mu = torch.cat([self.weight_mu.reshape(-1), self.bias_mu])
        sigma = F.softplus(torch.cat([self.weight_rho.reshape(-1), self.bias_rho]))
        return mu, sigma

    def mu_sigma_aug(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior means and standard deviations as augmented ``(in + 1, out)`` tensors.

        Differentiable (used by the technological loss).
        """
        return augment(self.weight_mu, self.bias_mu), augment(self.weight_sigma, self.bias_sigma)

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """Posterior ``(mu, sigma)`` as float64 augmented ``(in + 1, out)`` numpy arrays."""
        with torch.no_grad():
            mu, sigma = self.mu_sigma_aug()
            return mu.double().numpy().copy(), sigma.double().numpy().copy()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"prior_sigma={self.prior_sigma}"
        )


class BayesMLP(nn.Module):
    """Stack of :class:`BayesLinear` layers with ReLU between them.

    Parameters
    ----------
    sizes : sequence of int
        Widths ``(n_in, hidden..., n_classes)``.
    prior_sigma : float
        Prior standard deviation of every weight.
    init_rho : float
        Initial ``rho`` of every parameter.
    generator : torch.Generator, optional
        Shared by every layer for the initial means and the forward samples.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        prior_sigma: float = 1.0,
        init_rho: float = -5.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.sizes = check_sizes(sizes)
        self.prior_sigma = float(prior_sigma)
        self.layers = nn.ModuleList(
            BayesLinear(a, b, prior_sigma=prior_sigma, init_rho=init_rho, generator=generator)
            for a, b in zip(self.sizes[:-1], self.sizes[1:])
        )

    def forward(self, x: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """Logits ``(N, n_classes)``; each layer draws one weight sample (or uses means)."""
        for i, layer in enumerate(self.layers):
            x = layer(x, sample=sample)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x

    def kl(self) -> torch.Tensor:
        """Closed-form KL divergence of the whole posterior to the prior."""
        total = None
        for layer in self.layers:
            term = layer.kl()
            total = term if total is None else total + term
        return total

    def flat_posterior(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every posterior mean and std of every layer as two flat, differentiable tensors
        (one element per weight and bias; the order is layer by layer, weights then biases)."""
        mus, rhos = [], []
        for layer in self.layers:
            mus += [layer.weight_mu.reshape(-1), layer.bias_mu]
            rhos += [layer.weight_rho.reshape(-1), layer.bias_rho]
        return torch.cat(mus), F.softplus(torch.cat(rhos))

    def mu_sigma_aug(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, differentiable augmented ``(mu, sigma)`` tensors."""
        return [layer.mu_sigma_aug() for layer in self.layers]

    def posteriors(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per layer, augmented ``(mu, sigma)`` float64 numpy arrays ``(n_in + 1, n_out)``."""
        return [layer.posterior() for layer in self.layers]

    def means(self) -> list[np.ndarray]:
        """Per layer, the augmented posterior-mean matrix ``(n_in + 1, n_out)``."""
        return [mu for mu, _ in self.posteriors()]

    def sample_weights(self, n: int, seed: int | None = 0) -> list[np.ndarray]:
        """Draw ``n`` networks from the posterior.

        Parameters
        ----------
        n : int
            Number of sampled networks (>= 1).
        seed : int or None
            Seed of the numpy generator (``None``: fresh entropy).

        Returns
        -------
        list of numpy.ndarray
            One float64 array ``(n, n_in + 1, n_out)`` per layer.
        """
        if int(n) != n or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        rng = np.random.default_rng(seed)
        return [
            mu[None] + sigma[None] * rng.standard_normal((int(n),) + mu.shape)
            for mu, sigma in self.posteriors()
        ]


class MLP(nn.Module):
    """Plain deterministic ReLU network with the same weight convention (for ablations).

    Parameters
    ----------
    sizes : sequence of int
        Widths ``(n_in, hidden..., n_classes)``.
    generator : torch.Generator, optional
        Source of the initial weights (global torch generator when omitted).
    """

    def __init__(self, sizes: Sequence[int], generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.sizes = check_sizes(sizes)
        self.layers = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(self.sizes[:-1], self.sizes[1:])
        )
        for layer in self.layers:
            bound = 1.0 / math.sqrt(layer.in_features)
            _uniform_(layer.weight, bound, generator)
            _uniform_(layer.bias, bound, generator)

    def forward(self, x: torch.Tensor, sample: bool = False) -> torch.Tensor:
        """Logits ``(N, n_classes)``; ``sample`` is accepted (and ignored) for symmetry with
        :class:`BayesMLP`."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x

    def weights(self) -> list[np.ndarray]:
        """Per layer, the augmented float64 weight matrix ``(n_in + 1, n_out)``."""
        with torch.no_grad():
            return [
                augment(layer.weight, layer.bias).double().numpy().copy() for layer in self.layers
            ]

    def means(self) -> list[np.ndarray]:
        """Same as :meth:`weights` (a deterministic network is its own mean)."""
        return self.weights()
