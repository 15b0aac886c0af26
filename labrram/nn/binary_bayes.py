"""Binary Bayesian networks: ±1 weights with Bernoulli posteriors (BayesBiNN-style), in torch.

Every weight is a random sign with ``P(w = +1) = sigmoid(2 λ)``: ``λ`` is the natural
parameter of the Bernoulli posterior (``E[w] = tanh λ``). Training maximizes the evidence lower
bound with the Gumbel (logistic) relaxation of Meng et al. (BayesBiNN, ICML 2020): a sample is
``w = sign(λ + L)`` with ``L = ½ ln(u / (1 − u))``, ``u ~ U(0, 1)``, which is +1 with
probability ``sigmoid(2 λ)`` exactly. The forward pass uses that hard sample and the gradient
flows through its relaxation ``tanh((λ + L) / τ)`` (straight-through), so training sees the same
±1 networks that inference draws. The KL divergence to the prior ``Bernoulli(½)`` is weighted
by ``kl_weight / N``.

The network (:class:`BinaryBayesMLP`) is ``BernoulliLinear → BatchNorm → ReLU`` for hidden
layers and ``BernoulliLinear → BatchNorm`` for the logits (no biases: the batch norms have them;
they stay digital). :class:`BinaryBayesCNN` puts ``BernoulliConv2d → BatchNorm2d → ReLU →
max pooling`` layers in front (:class:`BinaryCNNSpec`); its inputs are flattened images. :meth:`BinaryBayesMLP.to_numpy` exports the posteriors as a numpy
:class:`~labrram.nn.bayes2imc.BinaryBayesNetwork`, the form the array deployment uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labrram.nn.bayes import check_sizes
from labrram.nn.bayes2imc import PROBIT_SCALE, BinaryBayesNetwork
from labrram.nn.binary_network import BinaryConv
from labrram.nn.drift import BatchNorm
from labrram.nn.train import _batches, _check_data, _threads

__all__ = ["BernoulliConv2d", "BernoulliLinear", "BinaryBayesCNN", "BinaryBayesMLP", "BinaryCNNSpec", "BinarySettings", "train_binary_bayes"]


def bernoulli_kl(lam: torch.Tensor) -> torch.Tensor:
    """``KL(Bernoulli(sigmoid(2λ)) || Bernoulli(½))`` summed over ``lam``."""
    p = torch.sigmoid(2 * lam)
    log_p, log_q = F.logsigmoid(2 * lam), F.logsigmoid(-2 * lam)
    return (p * log_p + (1 - p) * log_q).sum() + lam.numel() * math.log(2.0)


class BernoulliLinear(nn.Module):
    """``x @ w`` with ``w ∈ {−1, +1}^(in, out)`` drawn from ``P(w = +1) = sigmoid(2 λ)``.

    Parameters
    ----------
    in_features, out_features : int
        Layer widths.
    temperature : float
        Relaxation temperature ``τ`` of the straight-through gradient.
    z_noise : float
        Hardware-aware training: each training draw moves every weight's probit argument
        ``c λ`` by ``N(0, z_noise²)``, the error of a device programmed off target or drifted
        on its own (:mod:`labrram.nn.bayes2imc`); 0 trains the ideal sampler.
    generator : torch.Generator, optional
        Source of the initial ``λ`` and of the samples.
    """

    def __init__(
        self, in_features: int, out_features: int, temperature: float = 1.0, z_noise: float = 0.0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        if not (math.isfinite(z_noise) and z_noise >= 0):
            raise ValueError(f"z_noise must be >= 0, got {z_noise!r}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.temperature = float(temperature)
        self.z_noise = float(z_noise)
        self.generator = generator
        self.lam = nn.Parameter((torch.rand(out_features, in_features, generator=generator) * 2 - 1) * 0.5)

    def sample(self) -> torch.Tensor:
        """One ±1 weight draw ``(out, in)`` with straight-through gradients to ``λ``."""
        u = torch.rand(self.lam.shape, generator=self.generator).clamp_(1e-6, 1 - 1e-6)
        z = self.lam + 0.5 * torch.log(u / (1 - u))
        if self.z_noise > 0:  # a device programmed off target: the probit argument moves by N(0, z_noise²)
            z = z + (self.z_noise / PROBIT_SCALE) * torch.randn(self.lam.shape, generator=self.generator)
        soft = torch.tanh(z / self.temperature)
        hard = torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))
        return hard + (soft - soft.detach())  # exactly ±1 forward, relaxed gradient backward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.sample() if self.training else torch.tanh(self.lam)
        return x @ w.t()


class BernoulliConv2d(BernoulliLinear):
    """A convolution with ±1 kernels drawn from ``P(w = +1) = sigmoid(2 λ)``.

    ``λ`` is ``(out_channels, in_channels·k·k)``, ordered as ``weight.reshape(out, -1)`` (and as
    :func:`labrram.nn.tiled.im2col` orders a patch), so the exported matrix is the one the
    array holds. Other parameters: :class:`BernoulliLinear`.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, padding: int = 0, temperature: float = 1.0, z_noise: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:  # fmt: skip
        super().__init__(int(in_channels) * int(kernel) ** 2, out_channels, temperature, z_noise, generator)
        self.in_channels, self.kernel, self.padding = int(in_channels), int(kernel), int(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.sample() if self.training else torch.tanh(self.lam)
        return F.conv2d(x, w.view(self.out_features, self.in_channels, self.kernel, self.kernel), padding=self.padding)


@dataclass(frozen=True)
class BinaryCNNSpec:
    """A binary convolutional network: ``k×k`` convolutions with ``channels`` maps, each followed
    by batch norm, ReLU and ``pool×pool`` max pooling, then fully connected ``hidden`` layers
    and ``n_classes`` logits.

    Attributes
    ----------
    image : (int, int, int)
        Input ``(C, H, W)``.
    channels : tuple of int
    kernel, pool, padding : int
    hidden : tuple of int
    n_classes : int
    """

    image: tuple[int, int, int] = (1, 28, 28)
    channels: tuple[int, ...] = (8, 16)
    kernel: int = 5
    pool: int = 2
    padding: int = 0
    hidden: tuple[int, ...] = (100,)
    n_classes: int = 10

    def convs(self) -> list[BinaryConv]:
        """The convolutions, with their input shapes (ValueError when they do not fit)."""
        out, shape = [], tuple(int(s) for s in self.image)
        for c in self.channels:
            conv = BinaryConv(shape, self.kernel, self.pool, self.padding)  # type: ignore[arg-type]
            out.append(conv)
            shape = conv.out_shape(int(c))
        return out

    @property
    def features(self) -> int:
        """Inputs of the first fully connected layer."""
        convs = self.convs()
        return int(np.prod(convs[-1].out_shape(self.channels[-1]))) if convs else int(np.prod(self.image))


class BinaryBayesCNN(nn.Module):
    """Binary Bayesian convolutional network (:class:`BinaryCNNSpec`); inputs ``(N, C·H·W)``.

    Parameters
    ----------
    spec : BinaryCNNSpec
    temperature, z_noise, generator
        As for :class:`BinaryBayesMLP`.
    """

    def __init__(self, spec: BinaryCNNSpec, temperature: float = 1.0, z_noise: float = 0.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.spec = spec
        convs = spec.convs()
        chans = (spec.image[0],) + tuple(spec.channels)
        self.convs = nn.ModuleList(
            BernoulliConv2d(a, b, spec.kernel, spec.padding, temperature, z_noise, generator) for a, b in zip(chans[:-1], chans[1:])
        )
        self.conv_norms = nn.ModuleList(nn.BatchNorm2d(b) for b in spec.channels)
        sizes = check_sizes((spec.features, *spec.hidden, spec.n_classes))
        self.dense = BinaryBayesMLP(sizes, temperature, z_noise, generator)
        self._conv_shapes = convs

    @property
    def layers(self) -> list[BernoulliLinear]:
        """Every Bernoulli layer, input first."""
        return [*self.convs, *self.dense.layers]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view((x.shape[0],) + tuple(self.spec.image))
        for conv, norm in zip(self.convs, self.conv_norms):
            x = F.max_pool2d(F.relu(norm(conv(x))), self.spec.pool)
        return self.dense(torch.flatten(x, 1))

    def kl(self) -> torch.Tensor:
        return sum(bernoulli_kl(layer.lam) for layer in self.layers)

    def to_numpy(self) -> BinaryBayesNetwork:
        """The posteriors (``(C_in·k·k, C_out)`` per convolution) and eval-mode batch norms."""
        dense = self.dense.to_numpy()
        with torch.no_grad():
            lambdas = [c.lam.t().double().numpy().copy() for c in self.convs]
            norms = [_numpy_norm(bn) for bn in self.conv_norms]
        convs: list[BinaryConv | None] = [*self._conv_shapes, *([None] * dense.n_layers)]
        return BinaryBayesNetwork(lambdas + dense.lambdas, norms + list(dense.norms), convs)


def _numpy_norm(bn: nn.Module) -> BatchNorm:
    return BatchNorm(
        gamma=bn.weight.double().numpy().copy(), beta=bn.bias.double().numpy().copy(),
        mean=bn.running_mean.double().numpy().copy(), var=bn.running_var.double().numpy().copy(), eps=float(bn.eps),
    )  # fmt: skip


class BinaryBayesMLP(nn.Module):
    """A multilayer perceptron of :class:`BernoulliLinear` layers with batch norms.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first.
    temperature : float
        Straight-through relaxation temperature.
    z_noise : float
        Probit-argument noise of hardware-aware training (:class:`BernoulliLinear`).
    generator : torch.Generator, optional
        Source of the initial ``λ`` and of the weight samples.
    """

    def __init__(self, sizes: Sequence[int], temperature: float = 1.0, z_noise: float = 0.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.sizes = check_sizes(sizes)
        self.layers = nn.ModuleList(
            BernoulliLinear(a, b, temperature, z_noise, generator) for a, b in zip(self.sizes[:-1], self.sizes[1:])
        )
        self.norms = nn.ModuleList(nn.BatchNorm1d(b) for b in self.sizes[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, n_classes)`` of one weight draw (training) or of the mean weights (eval)."""
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms)):
            x = norm(layer(x))
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x

    def kl(self) -> torch.Tensor:
        """KL divergence of all posteriors to ``Bernoulli(½)``, nats."""
        return sum(bernoulli_kl(layer.lam) for layer in self.layers)

    def to_numpy(self) -> BinaryBayesNetwork:
        """The trained posteriors ``λ`` (``(n_in, n_out)`` per layer) and eval-mode batch norms."""
        with torch.no_grad():
            lambdas = [layer.lam.t().double().numpy().copy() for layer in self.layers]
            norms = [_numpy_norm(bn) for bn in self.norms]
        return BinaryBayesNetwork(lambdas, norms)


@dataclass(frozen=True)
class BinarySettings:
    """Settings of :func:`train_binary_bayes`.

    Attributes
    ----------
    epochs, lr, batch_size : optimization (Adam on ``λ`` and the batch norms, cosine-annealed).
    temperature : float
        Straight-through relaxation temperature ``τ``.
    kl_weight : float
        Weight of ``KL / N`` in the loss (1: the evidence lower bound; below 1: a tempered
        posterior; 0: no prior).
    lambda_max : float
        ``λ`` is clipped at ``±lambda_max`` after each step (``P(w = +1)`` in
        ``[sigmoid(−2 λ_max), sigmoid(2 λ_max)]``).
    z_noise : float
        Hardware-aware training (:class:`BernoulliLinear`); 0: the ideal sampler.
    seed : int
        Seeds the initial ``λ``, the minibatch order and the weight samples.
    num_threads : int or None
        torch intra-op threads while training.
    """

    epochs: int = 150
    lr: float = 0.1
    batch_size: int = 64
    temperature: float = 1.0
    kl_weight: float = 0.2
    lambda_max: float = 8.0
    z_noise: float = 0.0
    seed: int = 0
    num_threads: int | None = 1

    def __post_init__(self) -> None:
        if int(self.epochs) != self.epochs or self.epochs < 1 or int(self.batch_size) != self.batch_size or self.batch_size < 2:
            raise ValueError(f"epochs must be >= 1 and batch_size >= 2 (batch norm), got {self.epochs!r}, {self.batch_size!r}")
        for name in ("lr", "temperature", "lambda_max"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
        for name in ("kl_weight", "z_noise"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")


def train_binary_bayes(
    X: np.ndarray, y: np.ndarray, sizes: "Sequence[int] | BinaryCNNSpec", settings: BinarySettings = BinarySettings()
) -> tuple["BinaryBayesMLP | BinaryBayesCNN", list[dict]]:
    """Train a :class:`BinaryBayesMLP` or :class:`BinaryBayesCNN` by variational inference on
    Bernoulli posteriors.

    Parameters
    ----------
    X : numpy.ndarray
        Inputs ``(N, sizes[0])`` (flattened images ``(N, C·H·W)`` for a CNN).
    y : numpy.ndarray
        Integer labels ``(N,)``.
    sizes : sequence of int or BinaryCNNSpec
        Layer widths of a multilayer perceptron, or a convolutional network.
    settings : BinarySettings
        Optimization settings.

    Returns
    -------
    model : BinaryBayesMLP or BinaryBayesCNN
        The trained network, in eval mode.
    history : list of dict
        Per epoch: ``epoch``, ``loss`` (cross-entropy + weighted KL per sample), ``kl`` and
        ``train_acc`` (of the sampled forward passes).

    Raises
    ------
    ValueError
        If ``X``, ``y`` and ``sizes`` do not fit together.
    """
    spec = sizes if isinstance(sizes, BinaryCNNSpec) else None
    if spec is not None:
        spec.convs()  # checks that the convolutions fit the images
        sizes = (int(np.prod(spec.image)), spec.n_classes)  # what the data must match
    Xt, yt, sizes = _check_data(X, y, sizes)
    s = settings
    with _threads(s.num_threads):
        gen = torch.Generator().manual_seed(int(s.seed))
        model: BinaryBayesMLP | BinaryBayesCNN = (
            BinaryBayesCNN(spec, s.temperature, s.z_noise, gen) if spec is not None else BinaryBayesMLP(sizes, s.temperature, s.z_noise, gen)
        )
        opt = torch.optim.Adam(model.parameters(), lr=s.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(s.epochs))
        n = Xt.shape[0]
        history: list[dict] = []
        model.train()
        for epoch in range(int(s.epochs)):
            loss_sum = acc_sum = kl_sum = 0.0
            batches = [b for b in _batches(n, s.batch_size, gen) if b.numel() > 1]
            for idx in batches:
                logits = model(Xt[idx])
                kl = model.kl()
                loss = F.cross_entropy(logits, yt[idx]) + s.kl_weight * kl / n
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    for layer in model.layers:
                        layer.lam.clamp_(-s.lambda_max, s.lambda_max)
                loss_sum += loss.item()
                kl_sum += kl.item()
                acc_sum += (logits.argmax(dim=1) == yt[idx]).float().mean().item()
            sched.step()
            k = len(batches)
            history.append({"epoch": epoch, "loss": loss_sum / k, "kl": kl_sum / k, "train_acc": acc_sum / k})
        model.eval()
    return model, history
