"""The numpy form of a binary Bayesian network: Bernoulli posteriors of ±1 weights, fully
connected or convolutional, with digital batch norms.

Every layer is a matrix ``W_l ∈ {−1, 0, +1}^(n_in, n_out)`` (0: a masked device) drawn from
``P(w = +1) = sigmoid(2 λ_l)``. A fully connected layer multiplies its input by ``W_l``. A
convolutional layer (:class:`BinaryConv`) holds its kernels unrolled the way
:func:`labrram.nn.tiled.im2col` orders a patch: ``n_in = C_in·k·k`` rows ordered (channel, kernel
row, kernel column), ``n_out = C_out`` columns; each output position is one product of a patch
with ``W_l``. After the product: the layer's batch norm, then ReLU and ``pool × pool`` max pooling
(convolutions) or ReLU (hidden fully connected layers); the last layer gives logits. Between the
last convolution and the first fully connected layer the feature maps are flattened in
(channel, row, column) order, as torch's ``flatten`` does. Inputs are always 2-D
``(N, n_features)``: images are flattened ``(C, H, W)`` arrays.

Device side: :mod:`labrram.nn.bayes2imc`. Training (torch): :mod:`labrram.nn.binary_bayes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from labrram.nn.drift import BatchNorm
from labrram.nn.sampled import softmax
from labrram.nn.tiled import im2col

if TYPE_CHECKING:  # pragma: no cover
    from labrram.nn.binary_correction import LogitCorrection

__all__ = ["BinaryBayesNetwork", "BinaryConv"]


def _affine(norm: BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)`` with ``norm(z) = z · scale + shift`` per feature."""
    scale = np.asarray(norm.gamma) / np.sqrt(np.asarray(norm.var) + norm.eps)
    return scale, np.asarray(norm.beta) - np.asarray(norm.mean) * scale


def _bn(norm: BatchNorm, z: np.ndarray) -> np.ndarray:
    """``norm(z)`` in the dtype of ``z`` (float32 stays float32)."""
    scale, shift = _affine(norm)
    return z * scale.astype(z.dtype) + shift.astype(z.dtype)


@dataclass(frozen=True)
class BinaryConv:
    """A layer's matrix applied as a convolution.

    Attributes
    ----------
    in_shape : (int, int, int)
        The layer's input ``(C_in, H, W)``.
    kernel : int
        Side of the square kernels.
    pool : int
        Max-pooling window and stride after the ReLU (1: none).
    padding : int
        Zero padding of the convolution.
    """

    in_shape: tuple[int, int, int]
    kernel: int
    pool: int = 2
    padding: int = 0

    def __post_init__(self) -> None:
        shape = tuple(int(s) for s in self.in_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"in_shape must be (C, H, W) with positive sides, got {self.in_shape!r}")
        object.__setattr__(self, "in_shape", shape)
        for name in ("kernel", "pool"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(self.padding, bool) or int(self.padding) != self.padding or self.padding < 0:
            raise ValueError(f"padding must be an integer >= 0, got {self.padding!r}")
        c, h, w = self.conv_hw()
        if h < self.pool or w < self.pool:
            raise ValueError(f"a {self.kernel}×{self.kernel} kernel and {self.pool}×{self.pool} pooling do not fit inputs {shape}")

    @property
    def n_in(self) -> int:
        """Rows of the layer's matrix: ``C_in·k·k``."""
        return self.in_shape[0] * self.kernel * self.kernel

    def conv_hw(self) -> tuple[int, int, int]:
        """``(C_in, H_out, W_out)`` of the convolution before pooling."""
        c, h, w = self.in_shape
        k, p = self.kernel, self.padding
        return c, h + 2 * p - k + 1, w + 2 * p - k + 1

    def out_shape(self, c_out: int) -> tuple[int, int, int]:
        """``(C_out, H, W)`` after pooling."""
        _, h, w = self.conv_hw()
        return int(c_out), h // self.pool, w // self.pool

    def products(self, x: np.ndarray, w: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """``conv(x, w)``, the array's products before the batch norm: ``(N, C_out, H_out,
        W_out)`` for ``x`` ``(N, C·H·W)``.

        ``cols`` (the :func:`~labrram.nn.tiled.im2col` patches of ``x``) skips the unrolling;
        without them float32 inputs are convolved by torch (same arithmetic, much faster than
        unrolling in numpy). :meth:`activate` gives the layer's output.
        """
        n = x.shape[0]
        torch = _torch() if cols is None and x.dtype == np.float32 else None
        if torch is not None:
            c_in, k = self.in_shape[0], self.kernel
            with torch.no_grad():
                xt = torch.from_numpy(np.ascontiguousarray(x)).view((n,) + self.in_shape)
                wt = torch.from_numpy(np.ascontiguousarray(w.T, dtype=np.float32)).view(w.shape[1], c_in, k, k)
                return torch.nn.functional.conv2d(xt, wt, padding=self.padding).numpy()
        if cols is None:
            cols = im2col(x.reshape((n,) + self.in_shape), self.kernel, 1, self.padding)
        _, h, wd = self.conv_hw()
        return (cols @ w).reshape(n, h, wd, -1).transpose(0, 3, 1, 2)

    def activate(self, z: np.ndarray, norm: BatchNorm) -> np.ndarray:
        """``pool(relu(BN(z)))`` of :meth:`products` ``z`` (the batch norm per channel):
        ``(N, C_out·H'·W')``."""
        n, c = z.shape[:2]
        scale, shift = _affine(norm)
        torch = _torch() if z.dtype == np.float32 else None
        if torch is not None:
            with torch.no_grad():
                y = torch.from_numpy(np.ascontiguousarray(z))
                y = torch.relu(y * torch.from_numpy(scale.astype(np.float32)).view(1, -1, 1, 1) + torch.from_numpy(shift.astype(np.float32)).view(1, -1, 1, 1))
                if self.pool > 1:
                    y = torch.nn.functional.max_pool2d(y, self.pool)
                return y.reshape(n, -1).numpy()
        y = np.maximum(z * scale.astype(z.dtype)[:, None, None] + shift.astype(z.dtype)[:, None, None], 0.0)
        p = self.pool
        if p > 1:
            h2, w2 = y.shape[2] // p, y.shape[3] // p
            y = y[:, :, : h2 * p, : w2 * p].reshape(n, c, h2, p, w2, p).max(axis=(3, 5))
        return y.reshape(n, -1)


def _torch():
    """torch when it is installed (the fast path of float32 convolutions), else None."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of labrram.nn
        return None
    return torch


@dataclass(frozen=True, eq=False)
class BinaryBayesNetwork:
    """Bernoulli posteriors of a binary network and its digital batch norms (module docstring).

    Attributes
    ----------
    lambdas : list of ndarray
        Natural parameters ``λ`` ``(n_in, n_out)`` per layer: ``P(w = +1) = sigmoid(2 λ)``.
    norms : list of BatchNorm
        Batch norm after each layer's product (per channel for convolutions).
    convs : list of BinaryConv or None, optional
        Per layer, how its matrix is applied as a convolution (None: fully connected). Omitted:
        a multilayer perceptron.
    """

    lambdas: list[np.ndarray]
    norms: list[BatchNorm]
    convs: list[BinaryConv | None] | None = None
    _features: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        lambdas = [np.asarray(lam, dtype=float) for lam in self.lambdas]
        if not lambdas or any(lam.ndim != 2 or not np.all(np.isfinite(lam)) for lam in lambdas):
            raise ValueError("lambdas must be a non-empty list of finite (n_in, n_out) arrays")
        object.__setattr__(self, "lambdas", lambdas)
        if len(self.norms) != len(lambdas):
            raise ValueError(f"norms need one entry per layer ({len(lambdas)}), got {len(self.norms)}")
        convs = list(self.convs) if self.convs is not None else [None] * len(lambdas)
        if len(convs) != len(lambdas):
            raise ValueError(f"convs need one entry per layer ({len(lambdas)}), got {len(convs)}")
        if convs[-1] is not None:
            raise ValueError("the last layer (the logits) must be fully connected")
        object.__setattr__(self, "convs", convs)
        # check the chain of shapes
        features = convs[0].in_shape[0] * convs[0].in_shape[1] * convs[0].in_shape[2] if convs[0] else lambdas[0].shape[0]
        n = features
        for i, (lam, conv) in enumerate(zip(lambdas, convs)):
            if conv is not None:
                if int(np.prod(conv.in_shape)) != n:
                    raise ValueError(f"layer {i} is a convolution on {conv.in_shape} inputs, layer {i - 1} gives {n} values")
                if lam.shape[0] != conv.n_in:
                    raise ValueError(f"layer {i}: a {conv.kernel}×{conv.kernel} convolution on {conv.in_shape[0]} channels needs {conv.n_in} rows, λ has {lam.shape[0]}")
                n = int(np.prod(conv.out_shape(lam.shape[1])))
            else:
                if lam.shape[0] != n:
                    raise ValueError(f"layer {i} takes {lam.shape[0]} inputs, the layer before gives {n}")
                n = lam.shape[1]
            if np.shape(self.norms[i].gamma) != (lam.shape[1],):
                raise ValueError(f"layer {i}: the batch norm has {np.shape(self.norms[i].gamma)} features, the layer {lam.shape[1]} outputs")
        object.__setattr__(self, "_features", int(features))

    def save(self, path: Any) -> None:
        """Write the posteriors, batch norms and convolution shapes to a ``.npz`` file (plain
        arrays: :meth:`load` reads it without unpickling anything)."""
        arrays: dict[str, np.ndarray] = {"n_layers": np.array(self.n_layers)}
        for i, (lam, bn, conv) in enumerate(zip(self.lambdas, self.norms, self.convs)):  # type: ignore[arg-type]
            arrays[f"lambda{i}"] = lam
            for name in ("gamma", "beta", "mean", "var"):
                arrays[f"bn{i}_{name}"] = np.asarray(getattr(bn, name), dtype=float)
            arrays[f"bn{i}_eps"] = np.array(bn.eps)
            if conv is not None:
                arrays[f"conv{i}"] = np.array([*conv.in_shape, conv.kernel, conv.pool, conv.padding])
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Any) -> "BinaryBayesNetwork":
        """Read a network written by :meth:`save` (ValueError for a file of another form)."""
        with np.load(path, allow_pickle=False) as f:
            try:
                n = int(f["n_layers"])
                lambdas, norms, convs = [], [], []
                for i in range(n):
                    lambdas.append(f[f"lambda{i}"])
                    norms.append(BatchNorm(*(f[f"bn{i}_{k}"] for k in ("gamma", "beta", "mean", "var")), eps=float(f[f"bn{i}_eps"])))
                    c = f[f"conv{i}"] if f"conv{i}" in f.files else None
                    convs.append(None if c is None else BinaryConv(tuple(int(v) for v in c[:3]), int(c[3]), int(c[4]), int(c[5])))  # type: ignore[arg-type]
            except KeyError as exc:
                raise ValueError(f"{path} is not a binary Bayesian network file (missing {exc})") from None
        return cls(lambdas, norms, convs)

    @property
    def n_features(self) -> int:
        """Inputs of the network (flattened images for a convolutional one)."""
        return self._features

    @property
    def sizes(self) -> tuple[int, ...]:
        """Inputs, then every layer's outputs (channels for a convolution)."""
        return (self._features,) + tuple(int(lam.shape[1]) for lam in self.lambdas)

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """``(n_in, n_out)`` of every layer's matrix: one device per entry."""
        return [tuple(int(s) for s in lam.shape) for lam in self.lambdas]  # type: ignore[misc]

    @property
    def n_layers(self) -> int:
        return len(self.lambdas)

    @property
    def n_weights(self) -> int:
        """Binary weights of the network."""
        return int(sum(lam.size for lam in self.lambdas))

    def probabilities(self) -> list[np.ndarray]:
        """``P(w = +1) = sigmoid(2 λ)`` per layer."""
        return [0.5 * (1.0 + np.tanh(lam)) for lam in self.lambdas]

    def mean_weights(self) -> list[np.ndarray]:
        """``E[w] = tanh λ`` per layer."""
        return [np.tanh(lam) for lam in self.lambdas]

    def sample_weights(self, n: int, seed: int | np.random.Generator = 0) -> list[np.ndarray]:
        """``n`` software draws (a random-number generator), ``(n, n_in, n_out)`` per layer."""
        rng = np.random.default_rng(seed)
        return [np.where(rng.random((int(n),) + p.shape) < p, 1.0, -1.0) for p in self.probabilities()]

    def software_samples(self, n: int, seed: int | np.random.Generator = 0) -> list[list[np.ndarray]]:
        """:meth:`sample_weights` as a list of ``n`` networks (the form :meth:`accuracy` takes)."""
        return [list(ws) for ws in zip(*self.sample_weights(n, seed))]

    def logits(self, X: np.ndarray, weights: Sequence[np.ndarray], shift: np.ndarray | None = None) -> np.ndarray:
        """Logits ``(N, n_classes)`` of one network ``weights`` (``(n_in, n_out)`` per layer);
        ``shift`` ``(N, n_classes)`` is added to the output layer's pre-activations."""
        return self._output(self.hidden(X, weights), weights[-1], shift)

    def _output(self, h: np.ndarray, w_last: np.ndarray, shift: np.ndarray | None) -> np.ndarray:
        z = h @ np.asarray(w_last, dtype=h.dtype)
        return _bn(self.norms[-1], z if shift is None else z + shift)

    def _check_inputs(self, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X)
        if x.ndim != 2 or x.shape[1] != self._features:
            raise ValueError(f"X must have shape (N, {self._features}), got {x.shape}")
        return x if x.dtype == np.float32 else x.astype(float)

    def first_patches(self, X: np.ndarray) -> np.ndarray | None:
        """The unrolled patches of the first layer when it is a convolution (shared by every
        sampled network, so :meth:`sample_logits` computes them once), else None."""
        conv = self.convs[0]  # type: ignore[index]
        if conv is None:
            return None
        x = self._check_inputs(X)
        return im2col(x.reshape((x.shape[0],) + conv.in_shape), conv.kernel, 1, conv.padding).astype(x.dtype)

    def hidden(
        self, X: np.ndarray, weights: Sequence[np.ndarray], patches: np.ndarray | None = None, norms: Sequence[BatchNorm] | None = None
    ) -> np.ndarray:
        """Input of the output layer ``(N, n_hidden)`` for one network ``weights``.

        ``X`` may be float32 (faster; the products are then float32). ``patches``:
        :meth:`first_patches` of ``X``. ``norms``: the hidden layers' batch norms to use instead
        of the network's own (``n_layers − 1`` of them, :meth:`hidden_moments`).
        """
        x = self._check_inputs(X)
        if len(weights) != self.n_layers:
            raise ValueError(f"weights need one entry per layer ({self.n_layers}), got {len(weights)}")
        for i, bn in enumerate(self._hidden_norms(norms)):
            x = self._activate(i, self._products(i, x, weights, patches), bn)
        return x

    def _products(self, i: int, x: np.ndarray, weights: Sequence[np.ndarray], patches: np.ndarray | None) -> np.ndarray:
        """Hidden layer ``i``'s products of its input ``x`` (``patches``: :meth:`first_patches`)."""
        w = np.asarray(weights[i], dtype=x.dtype)
        conv = self.convs[i]  # type: ignore[index]
        return conv.products(x, w, patches if i == 0 else None) if conv is not None else x @ w

    def _activate(self, i: int, z: np.ndarray, norm: BatchNorm) -> np.ndarray:
        """Hidden layer ``i``'s output from its products ``z``: batch norm, ReLU (and pooling)."""
        conv = self.convs[i]  # type: ignore[index]
        return conv.activate(z, norm) if conv is not None else np.maximum(_bn(norm, z), 0.0)

    def _hidden_norms(self, norms: Sequence[BatchNorm] | None) -> list[BatchNorm]:
        if norms is None:
            return list(self.norms[:-1])
        if len(norms) != self.n_layers - 1:
            raise ValueError(f"norms need one batch norm per hidden layer ({self.n_layers - 1}), got {len(norms)}")
        return list(norms)

    def hidden_moments(
        self, X: np.ndarray, samples: Sequence[Sequence[np.ndarray]], target: Sequence[tuple[np.ndarray, np.ndarray]] | None = None
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[BatchNorm]]:
        """Per hidden layer, the mean and standard deviation of each channel's products (the
        batch norm's input) over ``M`` sampled networks ``samples`` and the inputs ``X`` (and
        every position of a convolution's output).

        Without ``target`` the network's own batch norms carry each layer to the next. With
        ``target`` (the moments of another set of networks on the same inputs, e.g. software
        draws), each hidden batch norm is matched to them (:meth:`BatchNorm.matched
        <labrram.nn.drift.BatchNorm.matched>`) in order, every layer measured through the
        matched ones before it, as the networks will run.

        Returns
        -------
        moments : list of (ndarray, ndarray)
            ``(mean, std)`` per hidden layer, ``(n_out,)`` each.
        norms : list of BatchNorm
            The hidden layers' batch norms: the network's own, or matched to ``target``.
        """
        if len(samples) < 1:
            raise ValueError("need at least one sampled network")
        if target is not None and len(target) != self.n_layers - 1:
            raise ValueError(f"target needs moments for each hidden layer ({self.n_layers - 1}), got {len(target)}")
        patches = self.first_patches(X)
        xs = [self._check_inputs(X)] * len(samples)
        moments: list[tuple[np.ndarray, np.ndarray]] = []
        norms: list[BatchNorm] = []
        for i, bn in enumerate(self.norms[:-1]):
            total, squares, count = 0.0, 0.0, 0
            for x, weights in zip(xs, samples):  # the products are made twice, not held: bounded memory
                z = self._products(i, x, weights, patches)
                flat = np.moveaxis(z, 1, -1).reshape(-1, z.shape[1]).astype(float)
                total, squares, count = total + flat.sum(axis=0), squares + (flat * flat).sum(axis=0), count + flat.shape[0]
            mean = total / count
            std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
            moments.append((mean, std))
            norms.append(bn if target is None else bn.matched((mean, std), target[i]))
            if i < self.n_layers - 2:
                xs = [self._activate(i, self._products(i, x, weights, patches), norms[-1]) for x, weights in zip(xs, samples)]
        return moments, norms

    def predict_proba(
        self, X: np.ndarray, samples: Sequence[Sequence[np.ndarray]], correction: "LogitCorrection | None" = None
    ) -> np.ndarray:
        """Class probabilities ``(M, N, n_classes)`` of ``M`` sampled networks.

        ``samples[k][l]`` is layer ``l``'s weights in network ``k``; ``correction`` shifts the
        output layer (:class:`~labrram.nn.binary_correction.LogitCorrection`).
        """
        return np.stack([softmax(z) for z in self.sample_logits(X, samples, correction)])

    def sample_logits(
        self,
        X: np.ndarray,
        samples: Sequence[Sequence[np.ndarray]],
        correction: "LogitCorrection | None" = None,
    ) -> np.ndarray:
        """Logits ``(M, N, n_classes)`` of ``M`` sampled networks (see :meth:`predict_proba`)."""
        return self.sample_logits_many(X, samples, [correction])[0]

    def sample_logits_many(
        self, X: np.ndarray, samples: Sequence[Sequence[np.ndarray]], corrections: Sequence["LogitCorrection | None"]
    ) -> list[np.ndarray]:
        """:meth:`sample_logits` under several corrections at once (the hidden layers, the costly
        part, are computed once per sampled network and set of hidden batch norms): one ``(M, N,
        n_classes)`` array each."""
        patches = self.first_patches(X)
        out: list[list[np.ndarray]] = [[] for _ in corrections]
        for weights in samples:
            hidden: dict[int, np.ndarray] = {}  # one hidden pass per set of batch norms
            for k, c in enumerate(corrections):
                norms = None if c is None else c.norms
                if id(norms) not in hidden:
                    hidden[id(norms)] = self.hidden(X, weights, patches, norms)
                h = hidden[id(norms)]
                if c is None:
                    out[k].append(self._output(h, weights[-1], None))
                else:
                    out[k].append(c.apply(self._output(h, weights[-1], h @ c.delta.astype(h.dtype))))
        return [np.stack(o) for o in out]

    def accuracy(self, X: np.ndarray, y: np.ndarray, samples: Any, correction: "LogitCorrection | None" = None) -> float:
        """Accuracy of the arg-max of the sample-averaged probabilities."""
        return self.accuracies(X, y, samples, [correction])[0]

    def accuracies(self, X: np.ndarray, y: np.ndarray, samples: Any, corrections: Sequence["LogitCorrection | None"]) -> list[float]:
        """:meth:`accuracy` under several corrections, the hidden layers computed once."""
        y = np.asarray(y)
        out = []
        for z in self.sample_logits_many(X, samples, corrections):
            p = np.mean([softmax(zk) for zk in z], axis=0)
            out.append(float(np.mean(p.argmax(axis=1) == y)))
        return out
