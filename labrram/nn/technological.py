"""Technological loss (Bonnet et al. 2023, Nat. Commun.): keep posteriors realizable.

A weight with Gaussian posterior ``(mu, sigma)`` can be programmed only if the devices can
realize that (mean, std) pair. The achievable domain is given as an *envelope in weight
units*: on a uniform, zero-symmetric grid ``mu_grid`` from ``-mu_max`` to ``+mu_max`` the
achievable std lies in ``[sigma_lo(mu), sigma_hi(mu)]`` (linear interpolation between grid
points).

Distance to the domain
----------------------
Both axes are normalized so that ``delta`` is a fraction of each: the mu axis by ``mu_max``,
the sigma axis by ``s_max = max(sigma_hi)``::

    d_mu    = relu(|mu| - mu_max) / mu_max
    m       = clamp(mu, -mu_max, mu_max)
    d_sigma = (relu(sigma_lo(m) - sigma) + relu(sigma - sigma_hi(m))) / s_max
    d       = sqrt(d_mu^2 + d_sigma^2)              (0 inside the domain)

Loss
----
``U = tanh(beta * f)``, ``f = exp(-d^2 / (2 delta^2))``; the loss is ``-log U`` summed over
every element. It is ``-log tanh(beta) ≈ 8e-9`` inside the domain (for ``beta = 10``), grows
smoothly outside, and becomes ``d^2 / (2 delta^2) - log(beta)`` far away (where ``beta*f``
underflows), so its gradient stays finite everywhere.

A soft barrier
--------------
The loss is flat near the boundary (``-log tanh(beta f) ≈ 2 exp(-2 beta f)``), so any steady
pull outwards — the data term asking for a narrower posterior, or the KL term pulling ``sigma``
towards a prior width above ``max(sigma_hi)`` — leaves a posterior slightly *outside*, where
the barrier starts to push back: at ``d ≈ 1.2–1.8 delta`` for ``beta = 10`` (the stronger the
loss weight, the nearer). Measure "inside" with a tolerance of about ``2 delta``
(:meth:`TechnologicalLoss.fraction_inside` ``tol``), and map the remaining small excursions
to the nearest achievable condition (:meth:`TechnologicalLoss.clip`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from labrram.nn.bayes import BayesMLP

__all__ = ["TechnologicalLoss"]

_SMALL = 1e-6
"""Below this ``beta*f`` the loss uses its asymptote ``-log(beta*f)``."""


def _as_1d(name: str, a: object) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")
    return arr


def _tensor(a: object) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    return torch.as_tensor(np.asarray(a, dtype=float))


class TechnologicalLoss(nn.Module):
    """``-log tanh(beta * exp(-d^2 / (2 delta^2)))`` summed over posterior elements.

    Parameters
    ----------
    mu_grid : array_like
        Increasing, uniformly spaced grid of posterior means from ``-mu_max`` to ``+mu_max``
        (weight units), at least two points.
    sigma_lo, sigma_hi : array_like
        Smallest and largest achievable posterior std at each grid mean (same length as
        ``mu_grid``, ``0 < sigma_lo <= sigma_hi``).
    beta : float
        Saturation of the ``tanh`` (Bonnet 2023: 10).
    delta : float
        Width of the Gaussian around the domain, as a fraction of each normalized axis
        (Bonnet 2023: 0.1).

    Raises
    ------
    ValueError
        If the envelope or the parameters are malformed.
    """

    mu_grid: torch.Tensor
    sigma_lo: torch.Tensor
    sigma_hi: torch.Tensor

    def __init__(
        self,
        mu_grid: np.ndarray,
        sigma_lo: np.ndarray,
        sigma_hi: np.ndarray,
        beta: float = 10.0,
        delta: float = 0.1,
    ) -> None:
        super().__init__()
        grid = _as_1d("mu_grid", mu_grid)
        lo = _as_1d("sigma_lo", sigma_lo)
        hi = _as_1d("sigma_hi", sigma_hi)
        if grid.size < 2:
            raise ValueError(f"mu_grid needs at least 2 points, got {grid.size}")
        if lo.size != grid.size or hi.size != grid.size:
            raise ValueError(
                "mu_grid, sigma_lo and sigma_hi must have the same length, got "
                f"{grid.size}, {lo.size}, {hi.size}"
            )
        step = np.diff(grid)
        if not np.all(step > 0):
            raise ValueError("mu_grid must be strictly increasing")
        if not np.allclose(step, step[0], rtol=1e-6, atol=0.0):
            raise ValueError(
                f"mu_grid must be uniformly spaced (steps range {step.min():g}..{step.max():g})"
            )
        mu_max = float(grid[-1])
        if not math.isclose(grid[0], -mu_max, rel_tol=1e-6, abs_tol=1e-12 * mu_max):
            raise ValueError(
                f"mu_grid must be symmetric around 0 (from -mu_max to +mu_max), "
                f"got {grid[0]:g}..{grid[-1]:g}"
            )
        if not np.all(lo > 0):
            raise ValueError("sigma_lo must be > 0 everywhere")
        if not np.all(lo <= hi):
            bad = int(np.argmax(lo > hi))
            raise ValueError(
                f"sigma_lo must be <= sigma_hi everywhere (at mu={grid[bad]:g}: "
                f"{lo[bad]:g} > {hi[bad]:g})"
            )
        beta, delta = float(beta), float(delta)
        if not (math.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be a finite positive number, got {beta}")
        if not (math.isfinite(delta) and delta > 0):
            raise ValueError(f"delta must be a finite positive number, got {delta}")
        self.beta = beta
        self.delta = delta
        self.mu_max = mu_max
        self.sigma_scale = float(hi.max())
        self.step = float((grid[-1] - grid[0]) / (grid.size - 1))
        self.register_buffer("mu_grid", torch.as_tensor(grid, dtype=torch.float64))
        self.register_buffer("sigma_lo", torch.as_tensor(lo, dtype=torch.float64))
        self.register_buffer("sigma_hi", torch.as_tensor(hi, dtype=torch.float64))
        self._tables: dict[torch.dtype, torch.Tensor] = {}

    def _prepare(self, mu: object, sigma: object) -> tuple[torch.Tensor, torch.Tensor]:
        mu = _tensor(mu)
        sigma = _tensor(sigma)
        if mu.shape != sigma.shape:
            raise ValueError(
                f"mu and sigma must have the same shape, got {tuple(mu.shape)} and "
                f"{tuple(sigma.shape)}"
            )
        dtype = mu.dtype if mu.is_floating_point() else torch.get_default_dtype()
        return mu.to(dtype), sigma.to(dtype)

    def envelope(self, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Achievable std range ``(sigma_lo, sigma_hi)`` at ``clamp(mu, -mu_max, mu_max)``.

        Linear interpolation on the uniform grid (index arithmetic), differentiable in ``mu``.
        """
        mu = _tensor(mu)
        if not mu.is_floating_point():
            mu = mu.to(torch.get_default_dtype())
        pairs = self._pairs(mu.dtype)
        t = (mu.clamp(-self.mu_max, self.mu_max) + self.mu_max) / self.step
        idx = torch.floor(t.detach()).long().clamp_(0, pairs.shape[0] - 1)
        frac = (t - idx).unsqueeze(-1)
        ends = pairs[idx]  # (..., 4): [lo_i, hi_i, lo_i+1, hi_i+1]
        both = torch.lerp(ends[..., :2], ends[..., 2:], frac)
        return both[..., 0], both[..., 1]

    def _pairs(self, dtype: torch.dtype) -> torch.Tensor:
        """``(n - 1, 4)`` table ``[lo_i, hi_i, lo_i+1, hi_i+1]`` of each grid interval, in
        ``dtype`` (cached)."""
        cached = self._tables.get(dtype)
        if cached is None or cached.device != self.sigma_lo.device:
            lo, hi = self.sigma_lo, self.sigma_hi
            cached = torch.stack([lo[:-1], hi[:-1], lo[1:], hi[1:]], dim=-1).to(dtype)
            self._tables[dtype] = cached
        return cached

    def clip(self, mu: object, sigma: object) -> tuple[torch.Tensor, torch.Tensor]:
        """Move every ``(mu, sigma)`` pair into the domain (distance 0 afterwards).

        ``mu`` is clamped to ``[-mu_max, mu_max]``, then ``sigma`` to the envelope there;
        pairs already inside are unchanged.
        """
        mu, sigma = self._prepare(mu, sigma)
        with torch.no_grad():
            m = mu.clamp(-self.mu_max, self.mu_max)
            lo, hi = self.envelope(m)
            return m.clone(), torch.minimum(torch.maximum(sigma, lo), hi)

    def _squared_distance(self, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        mu, sigma = self._prepare(mu, sigma)
        beyond = torch.relu(mu.abs() - self.mu_max)  # d_mu * mu_max
        lo, hi = self.envelope(mu)
        excess = sigma - torch.clamp(sigma, lo, hi)  # ±d_sigma * sigma_scale
        return beyond.square() * self.mu_max**-2 + excess.square() * self.sigma_scale**-2

    def distance(self, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Normalized distance of each ``(mu, sigma)`` pair to the domain (0 inside).

        Differentiable; the gradient is 0 inside the domain and finite everywhere.
        """
        d2 = self._squared_distance(mu, sigma)
        outside = d2 > 0
        return torch.where(outside, torch.sqrt(torch.where(outside, d2, torch.ones_like(d2))), 0.0)

    def forward(self, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Summed loss ``sum(-log tanh(beta * exp(-d^2 / (2 delta^2))))`` (a scalar tensor)."""
        d2 = self._squared_distance(mu, sigma)
        log_x = d2 * (-0.5 / self.delta**2) + math.log(self.beta)  # log(beta * f)
        x = torch.exp(log_x)
        # -log(tanh(x)) where beta*f >= _SMALL (clamped, so both branches stay finite), its
        # asymptote -log(x) below, computed in log space so it never underflows
        direct = -torch.log(torch.tanh(x.clamp_min(_SMALL)))
        return torch.where(x < _SMALL, -log_x, direct).sum()

    def fraction_inside(self, mu: object, sigma: object, tol: float = 0.0) -> float:
        """Fraction of elements whose distance to the domain is ``<= tol`` (0: strictly inside).

        Accepts torch tensors or numpy arrays of the same shape.
        """
        with torch.no_grad():
            d = self.distance(_tensor(mu), _tensor(sigma))
        if d.numel() == 0:
            raise ValueError("fraction_inside needs at least one element")
        return float((d <= tol).double().mean())

    def for_model(self, model: "BayesMLP") -> torch.Tensor:
        """Loss summed over every layer's augmented posterior (weights and biases)."""
        mu, sigma = model.flat_posterior()
        return self(mu, sigma)

    def model_fraction_inside(self, model: "BayesMLP", tol: float = 0.0) -> float:
        """Fraction of all posterior elements (every layer, weights and biases) inside."""
        with torch.no_grad():
            d = self.distance(*model.flat_posterior())
        return float((d <= tol).double().mean())

    def extra_repr(self) -> str:
        return (
            f"mu_max={self.mu_max:g}, sigma_scale={self.sigma_scale:g}, "
            f"points={self.mu_grid.numel()}, beta={self.beta:g}, delta={self.delta:g}"
        )
