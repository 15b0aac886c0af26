"""A small residual network with batch norm (torch), trained with Joshi's weight-noise injection
or plainly, and exported as the numpy :class:`~labrram.nn.resnet_twin.ResNetTwin` whose
matrix products run on a PCM array.

The network (He et al. 2016's basic blocks, sized for 28×28 Fashion-MNIST on one CPU thread)::

    3×3 conv (w0) → BN → ReLU → 2×2 max pool                         28×28 → 14×14
    stage 1: basic block w0 → w0, stride 1                             14×14
    stage 2: basic block w0 → w1, stride 2 (1×1 conv + BN shortcut)    14×14 → 7×7
    stage 3: basic block w1 → w2, stride 2 (1×1 conv + BN shortcut)     7×7 → 4×4
    global average pool → linear w2 → 10 (with a digital bias)

A basic block is ``relu(BN(conv3×3(relu(BN(conv3×3(x))))) + shortcut(x))``. Every convolution
has no bias (the batch norm after it has one); the batch norms and the bias of the last layer are
digital. Every weight tensor is noise-injected exactly as :class:`~labrram.nn.noise_injection.NoisyLinear`
does (``N(0, (eta·max|W|)²)`` per training forward, clipped at ``±clip_sigma·std(W)`` after each
step), with the same :class:`~labrram.nn.noise_injection.NoiseSettings`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labrram.nn.drift import BatchNorm
from labrram.nn.noise_injection import NoiseSettings, NoisyLinear, fit_noisy
from labrram.nn.resnet_twin import MatrixConv, ResNetTwin
from labrram.nn.train import _threads

__all__ = ["NoisyConv2d", "ResNet", "export_resnet", "load_resnet_npz", "save_resnet_npz", "train_resnet"]


class NoisyConv2d(nn.Conv2d):
    """Bias-free 2-D convolution whose kernels get ``N(0, (eta·max|W|)²)`` in every training
    forward (the convolutional sibling of :class:`~labrram.nn.noise_injection.NoisyLinear`).

    Parameters
    ----------
    in_channels, out_channels, kernel : int
    stride, padding : int
    eta : float
        Noise standard deviation relative to the layer's ``max|W|`` (0: none).
    generator : torch.Generator, optional
        Source of the noise.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0, eta: float = 0.0, generator: torch.Generator | None = None) -> None:
        super().__init__(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        if not (math.isfinite(eta) and eta >= 0):
            raise ValueError(f"eta must be a finite number >= 0, got {eta!r}")
        self.eta = float(eta)
        self.generator = generator

    noisy_weight = NoisyLinear.noisy_weight
    clip_ = NoisyLinear.clip_

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.noisy_weight(), None)


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, eta: float, gen: torch.Generator | None) -> None:
        super().__init__()
        self.conv1 = NoisyConv2d(c_in, c_out, 3, stride, 1, eta, gen)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = NoisyConv2d(c_out, c_out, 3, 1, 1, eta, gen)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.short = NoisyConv2d(c_in, c_out, 1, stride, 0, eta, gen) if (stride != 1 or c_in != c_out) else None
        self.short_bn = nn.BatchNorm2d(c_out) if self.short is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        s = x if self.short is None else self.short_bn(self.short(x))
        return F.relu(y + s)


class ResNet(nn.Module):
    """The small ResNet of the module docstring.

    Parameters
    ----------
    widths : (int, int, int)
        Channels of the three stages (the stem has ``widths[0]``).
    n_classes : int
    eta : float
        Training weight noise relative to each layer's ``max|W|``.
    generator : torch.Generator, optional
        Source of the initial weights and of the noise.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64), n_classes: int = 10, eta: float = 0.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"widths must be three positive channel counts, got {widths}")
        self.widths = widths
        self.stem = NoisyConv2d(1, widths[0], 3, 1, 1, eta, generator)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        self.blocks = nn.ModuleList([
            _Block(widths[0], widths[0], 1, eta, generator),
            _Block(widths[0], widths[1], 2, eta, generator),
            _Block(widths[1], widths[2], 2, eta, generator),
        ])  # fmt: skip
        self.fc = NoisyLinear(widths[2], n_classes, bias=True, eta=eta, generator=generator)
        for m in self.noisy_layers():
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * math.sqrt(2.0 / fan_in))
        with torch.no_grad():
            self.fc.bias.zero_()

    def noisy_layers(self) -> list[nn.Module]:
        """Every weight layer (the ones a PCM array holds), in the order of :func:`export_resnet`."""
        out: list[nn.Module] = [self.stem]
        for b in self.blocks:
            out += [b.conv1, b.conv2] + ([b.short] if b.short is not None else [])
        return out + [self.fc]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, n_classes)`` for images ``(N, 1, H, W)``."""
        x = F.max_pool2d(F.relu(self.stem_bn(self.stem(x))), 2)
        for b in self.blocks:
            x = b(x)
        return self.fc(x.mean(dim=(2, 3)))

    def clip_(self, clip_sigma: float | None) -> None:
        """Clip every weight layer at ``±clip_sigma·std(W)``."""
        for m in self.noisy_layers():
            m.clip_(clip_sigma)


def train_resnet(images: Any, labels: Any, settings: NoiseSettings = NoiseSettings(epochs=8, batch_size=128, lr=3e-3), widths: Sequence[int] = (16, 32, 64)) -> tuple[ResNet, list[dict]]:
    """Train a :class:`ResNet` with weight-noise injection (``settings.eta``, ``clip_sigma``;
    :meth:`NoiseSettings.plain` for plain training), cross-entropy, Adam and a cosine-annealed
    learning rate.

    Parameters
    ----------
    images : array
        ``(N, 1, H, W)`` floats in [0, 1] (:func:`labrram.nn.lenet.prepare_images`).
    labels : array
        ``(N,)`` integer labels in 0–9.
    settings : NoiseSettings
        ``eta``, ``clip_sigma``, ``epochs``, ``lr``, ``batch_size``, ``weight_decay``, ``seed``,
        ``num_threads``; ``batch_norm`` must be True (the ResNet always has batch norms).
    widths : (int, int, int)
        Channels of the three stages.

    Returns
    -------
    model : ResNet
        In eval mode.
    history : list of dict
        Per epoch: ``epoch``, ``loss``, ``train_acc`` (of the noisy forward passes).
    """
    X = np.asarray(images, dtype=np.float32)
    y = np.asarray(labels)
    if X.ndim != 4 or X.shape[1] != 1:
        raise ValueError(f"images must be (N, 1, H, W), got shape {X.shape}")
    if y.shape != (X.shape[0],) or not np.issubdtype(y.dtype, np.integer) or (y.size and (y.min() < 0 or y.max() > 9)):
        raise ValueError(f"labels must be {X.shape[0]} integers in 0..9")
    if not settings.batch_norm:
        raise ValueError("the ResNet always has batch norms; settings.batch_norm must be True")
    s = settings
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y.astype(np.int64))
    with _threads(s.num_threads):
        gen = torch.Generator().manual_seed(int(s.seed))
        model = ResNet(widths, eta=s.eta, generator=gen)
        history = fit_noisy(model, Xt, yt, s, gen)
    return model, history


def _bn(m: nn.BatchNorm2d) -> BatchNorm:
    d = lambda t: t.detach().double().numpy().copy()  # noqa: E731
    return BatchNorm(gamma=d(m.weight), beta=d(m.bias), mean=d(m.running_mean), var=d(m.running_var), eps=float(m.eps))


def export_resnet(model: ResNet) -> ResNetTwin:
    """The trained network as a numpy :class:`~labrram.nn.resnet_twin.ResNetTwin` (eval-mode batch
    norms applied digitally, not folded into the weights)."""
    d = lambda t: t.detach().double().numpy().copy()  # noqa: E731
    convs = [MatrixConv(d(model.stem.weight), 1, 1)]
    norms = [_bn(model.stem_bn)]
    for b in model.blocks:
        convs += [MatrixConv(d(b.conv1.weight), b.conv1.stride[0], b.conv1.padding[0]), MatrixConv(d(b.conv2.weight), 1, 1)]
        norms += [_bn(b.bn1), _bn(b.bn2)]
        if b.short is not None:
            convs.append(MatrixConv(d(b.short.weight), b.short.stride[0], 0))
            norms.append(_bn(b.short_bn))
    return ResNetTwin.from_parts(convs, norms, d(model.fc.weight), d(model.fc.bias), [b.short is not None for b in model.blocks])


def save_resnet_npz(twin: ResNetTwin, path: str, **meta: float) -> None:
    """Write a twin's weights, batch norms and numeric metadata to ``path`` (.npz, no pickle)."""
    np.savez(path, **twin.to_arrays(), **{f"meta_{k}": np.asarray(float(v)) for k, v in meta.items()})


def load_resnet_npz(path: str) -> tuple[ResNetTwin, dict[str, float]]:
    """Read what :func:`save_resnet_npz` wrote: the twin and its metadata."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = {k[5:]: float(arrays.pop(k)) for k in list(arrays) if k.startswith("meta_")}
    return ResNetTwin.from_arrays(arrays), meta
