"""A LeNet-5-like convolutional network (torch), trained in software and exported to the
numpy layers that :mod:`labrram.nn.tiled` unrolls onto arrays.

The network: 5×5 convolution (``channels[0]`` maps) → ReLU → 2×2 max pooling → 5×5
convolution (``channels[1]``) → ReLU → 2×2 max pooling → fully connected ``hidden`` layers
with ReLU → 10 outputs. On 28×28 images that is LeCun's LeNet-5 with ReLU and max pooling for
``channels=(6, 16)``, ``hidden=(120, 84)`` (44,426 weights and biases). Images are scaled to
[0, 1] (:func:`prepare_images`), so every input of the first layer is a non-negative row
voltage.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from labrram.nn.tiled import Conv, Dense
from labrram.nn.train import TrainSettings, _threads, fit_classifier

__all__ = ["LeNet", "export_layers", "prepare_images", "train_lenet"]


def prepare_images(images: Any) -> np.ndarray:
    """uint8 images ``(N, H, W)`` (or ``(N, 1, H, W)``) → float64 ``(N, 1, H, W)`` in [0, 1]."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"images must be (N, H, W) or (N, 1, H, W), got shape {x.shape}")
    if x.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0–255), got {x.dtype}")
    return x.astype(float) / 255.0


class LeNet(torch.nn.Module):
    """LeNet-5-like network (module docstring).

    Parameters
    ----------
    image_size : int
        Side of the square input images.
    channels : (int, int)
        Maps of the two convolutions.
    hidden : sequence of int
        Widths of the hidden fully connected layers.
    n_classes : int
    kernel : int
        Side of the convolution kernels.
    """

    def __init__(self, image_size: int = 28, channels: tuple[int, int] = (6, 16), hidden: Sequence[int] = (120, 84), n_classes: int = 10, kernel: int = 5) -> None:
        super().__init__()
        side = ((image_size - kernel + 1) // 2 - kernel + 1) // 2
        if side < 1:
            raise ValueError(f"{image_size}×{image_size} images are too small for two {kernel}×{kernel} convolutions with pooling")
        self.conv1 = torch.nn.Conv2d(1, channels[0], kernel)
        self.conv2 = torch.nn.Conv2d(channels[0], channels[1], kernel)
        sizes = [channels[1] * side * side, *hidden, n_classes]
        self.fcs = torch.nn.ModuleList(torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        for fc in self.fcs[:-1]:
            x = F.relu(fc(x))
        return self.fcs[-1](x)


def train_lenet(
    images: Any,
    labels: Any,
    settings: TrainSettings = TrainSettings(epochs=10, lr=2e-3, batch_size=64),
    channels: tuple[int, int] = (6, 16),
    hidden: Sequence[int] = (120, 84),
) -> tuple[LeNet, list[dict]]:
    """Train a :class:`LeNet` with cross-entropy and Adam.

    Parameters
    ----------
    images : array
        ``(N, 1, H, W)`` floats (:func:`prepare_images`).
    labels : array
        ``(N,)`` class labels in 0–9.
    settings : TrainSettings
        ``epochs``, ``lr``, ``batch_size``, ``weight_decay``, ``seed``, ``num_threads`` are used.
    channels, hidden
        The architecture (:class:`LeNet`).

    Returns
    -------
    model : LeNet
        In eval mode.
    history : list of dict
        Per epoch: ``epoch``, ``loss``, ``train_acc``.
    """
    X = np.asarray(images, dtype=np.float32)
    y = np.asarray(labels)
    if X.ndim != 4 or X.shape[1] != 1 or X.shape[2] != X.shape[3]:
        raise ValueError(f"images must be (N, 1, H, H), got shape {X.shape}")
    if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer) or (y.size and (y.min() < 0 or y.max() > 9)):
        raise ValueError(f"labels must be {X.shape[0]} integers in 0..9")
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y.astype(np.int64))
    with _threads(settings.num_threads):
        gen = torch.Generator().manual_seed(int(settings.seed))
        torch.manual_seed(int(settings.seed))
        model = LeNet(X.shape[2], channels, hidden)
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        history = fit_classifier(model, Xt, yt, opt, settings.epochs, settings.batch_size, gen)
    return model, history


def export_layers(model: LeNet) -> list[Conv | Dense]:
    """The trained weights as numpy layers for :func:`labrram.nn.tiled.plan_network`."""

    def np_(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy().astype(float)

    layers: list[Conv | Dense] = [
        Conv(np_(model.conv1.weight), np_(model.conv1.bias), pool=2),
        Conv(np_(model.conv2.weight), np_(model.conv2.bias), pool=2),
    ]
    for i, fc in enumerate(model.fcs):
        layers.append(Dense(np_(fc.weight), np_(fc.bias), relu=i < len(model.fcs) - 1))
    return layers
