"""Mapping-aware biased training of a LeNet-5 for offset encoding (Diware et al., AICAS 2023).

The torch half of the Diware study at Fashion-MNIST scale (:mod:`labrram.nn.level_table`
measures the levels and picks the allowed codes; :mod:`labrram.nn.offset_network` programs and
runs the network):

1. **Column importance** (:func:`lenet_importance`): every output column of every layer's
   augmented matrix (a convolution's output channel, a dense layer's neuron: one crossbar
   column group) gets the first-order Taylor importance ``Σ_i |w_ij ∂L/∂w_ij|`` of the mean
   cross-entropy over training images (bias included), as in
   :func:`labrram.nn.mapping_aware.column_importance`.
2. **Biased training** (:func:`train_biased_lenet`): starting from the conventionally trained
   network, training continues with the top ``fraction`` of every layer's columns projected in
   the forward pass onto ``step · values`` — the signed values the allowed codes give at the
   constrained columns' offset (:func:`labrram.nn.level_table.code_values`) — with the
   straight-through estimator on the latent weights; every weight is held within the layer's
   range ``±(2^(bits−1) − 1)·step`` (the step is fixed from the conventional network). At the
   end the constrained columns are projected for good and the network is quantized
   (:func:`labrram.nn.offset_network.quantize_network`).

The conventional baseline is the same network quantized at the default offset
``2^(bits−1)`` with no column constrained; :func:`train_biased_lenet` with ``fraction = 0``
gives it the same fine-tuning as the biased networks (the same training budget).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from labrram.mapping.offset import OffsetSlicedMapping

from .lenet import LeNet, export_layers
from .mapping_aware import select_columns
from .offset_network import OffsetNetwork, quantize_network
from .train import _threads

__all__ = ["conventional_network", "lenet_importance", "lenet_steps", "train_biased_lenet"]


def _aug_params(model: LeNet) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(model.conv1.weight, model.conv1.bias), (model.conv2.weight, model.conv2.bias)] + [(fc.weight, fc.bias) for fc in model.fcs]


def _aug(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Augmented ``(n_in + 1, n_out)`` matrix of a conv or linear layer's parameters."""
    return torch.cat([w.reshape(w.shape[0], -1).t(), b[None]], dim=0)


def lenet_steps(model: LeNet, mapping: OffsetSlicedMapping) -> list[float]:
    """Per-layer step ``max|W|/(2^(bits−1) − 1)`` of the augmented matrices."""
    return [mapping.step_for(lay.matrix()) for lay in export_layers(model)]


def lenet_importance(model: LeNet, X: Any, y: Any, batch_size: int = 500) -> list[np.ndarray]:
    """Taylor importance of every output column of every layer (module docstring), over
    images ``X`` (N, 1, H, W) and labels ``y``."""
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y).astype(np.int64))
    if Xt.ndim != 4 or yt.shape != (Xt.shape[0],) or Xt.shape[0] == 0:
        raise ValueError(f"X must be (N, 1, H, W) and y (N,), got {tuple(Xt.shape)} and {tuple(yt.shape)}")
    model.zero_grad(set_to_none=True)
    n = Xt.shape[0]
    for i in range(0, n, batch_size):
        loss = F.cross_entropy(model(Xt[i : i + batch_size]), yt[i : i + batch_size], reduction="sum") / n
        loss.backward()
    out = []
    with torch.no_grad():
        for w, b in _aug_params(model):
            out.append((_aug(w, b) * _aug(w.grad, b.grad)).abs().sum(dim=0).double().numpy())
    model.zero_grad(set_to_none=True)
    return out


def _forward(model: LeNet, x: torch.Tensor, mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """LeNet's forward pass with the augmented matrices ``mats`` in place of its parameters."""
    c1, c2 = model.conv1, model.conv2

    def conv(x: torch.Tensor, m: torch.Tensor, ref: torch.nn.Conv2d) -> torch.Tensor:
        return F.conv2d(x, m[:-1].t().reshape(ref.weight.shape), m[-1])

    x = F.max_pool2d(F.relu(conv(x, mats[0], c1)), 2)
    x = F.max_pool2d(F.relu(conv(x, mats[1], c2)), 2)
    x = torch.flatten(x, 1)
    for i, m in enumerate(mats[2:]):
        x = F.linear(x, m[:-1].t(), m[-1])
        if i < len(mats) - 3:
            x = F.relu(x)
    return x


def conventional_network(model: LeNet, mapping: OffsetSlicedMapping) -> OffsetNetwork:
    """The conventionally trained network in offset encoding at the default offset."""
    return quantize_network(export_layers(model), mapping)


def train_biased_lenet(
    base: LeNet,
    X: Any,
    y: Any,
    values: Any,
    offset: int | None,
    mapping: OffsetSlicedMapping,
    fraction: float = 1.0,
    epochs: int = 3,
    lr: float = 5e-4,
    batch_size: int = 64,
    seed: int = 0,
    importance_images: int = 2000,
) -> tuple[OffsetNetwork, LeNet, list[np.ndarray]]:
    """Biased training (module docstring).

    Parameters
    ----------
    base : LeNet
        The conventionally trained network (left untouched).
    X, y : array
        Training images ``(N, 1, H, W)`` in [0, 1] and labels.
    values : array of int or None
        Signed values a constrained column's codes may take (:func:`~labrram.nn.level_table.code_values`);
        None only with ``fraction = 0``.
    offset : int or None
        Offset of the constrained columns (None only with ``fraction = 0``).
    mapping : OffsetSlicedMapping
    fraction : float
        Fraction of every layer's columns constrained (by importance).
    epochs, lr, batch_size, seed
        Adam fine-tuning.
    importance_images : int
        Training images the importance is computed on (the first ones).

    Returns
    -------
    network : OffsetNetwork
    model : LeNet
        The fine-tuned latent network.
    importance : list of ndarray
    """
    if not (math.isfinite(fraction) and 0 <= fraction <= 1):
        raise ValueError(f"fraction must be in [0, 1], got {fraction!r}")
    if fraction > 0 and (values is None or offset is None):
        raise ValueError("constrained columns (fraction > 0) need their values and offset")
    vals = np.unique(np.asarray([0, 1] if values is None else values, dtype=np.int64))
    if vals.size < 2 or 0 not in vals:
        raise ValueError("values must hold 0 and at least one other value")
    Xn = np.asarray(X, dtype=np.float32)
    yn = np.asarray(y).astype(np.int64)
    if Xn.ndim != 4 or yn.shape != (Xn.shape[0],):
        raise ValueError(f"X must be (N, 1, H, W) and y (N,), got {Xn.shape} and {yn.shape}")
    steps = lenet_steps(base, mapping)
    lim = mapping.offset - 1
    with _threads(1):
        model = LeNet(Xn.shape[2], (base.conv1.out_channels, base.conv2.out_channels), [fc.out_features for fc in base.fcs[:-1]])
        model.load_state_dict(base.state_dict())
        importance = lenet_importance(model, Xn[:importance_images], yn[:importance_images])
        columns = select_columns(importance, fraction)
        cols_t = [torch.as_tensor(c) for c in columns]
        # projection onto step·v for v in values: the magnitudes projector on a symmetric set,
        # then the nearest allowed signed value (the set need not be symmetric)
        vals_t = torch.as_tensor(vals, dtype=torch.float32)

        def project(m: torch.Tensor, step: float) -> torch.Tensor:
            a = (m / step).clamp(float(vals_t[0]), float(vals_t[-1]))
            i = torch.searchsorted(vals_t, a.contiguous()).clamp(1, vals_t.numel() - 1)
            lo, hi = vals_t[i - 1], vals_t[i]
            return torch.where(a - lo <= hi - a, lo, hi) * step

        def mats(train: bool) -> list[torch.Tensor]:
            out = []
            for (w, b), c, s in zip(_aug_params(model), cols_t, steps):
                m = _aug(w, b)
                p = project(m, s)
                out.append(torch.where(c[None, :], m + (p - m).detach() if train else p, m))
            return out

        Xt, yt = torch.as_tensor(Xn), torch.as_tensor(yn)
        gen = torch.Generator().manual_seed(int(seed))
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(int(epochs)):
            for idx in torch.split(torch.randperm(Xt.shape[0], generator=gen), int(batch_size)):
                loss = F.cross_entropy(_forward(model, Xt[idx], mats(True)), yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    for (w, b), s in zip(_aug_params(model), steps):
                        w.clamp_(-lim * s, lim * s)
                        b.clamp_(-lim * s, lim * s)
        model.eval()
        with torch.no_grad():
            final = [m.double().numpy() for m in mats(False)]
    layers = export_layers(model)
    from .offset_network import _from_matrix

    layers = [_from_matrix(lay, m) for lay, m in zip(layers, final)]
    net = quantize_network(layers, mapping, steps=steps, constrained=columns, offset=offset if fraction > 0 else None)
    return net, model, importance
