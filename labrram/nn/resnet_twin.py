"""The numpy twin of :class:`labrram.nn.resnet.ResNet`: every convolution unrolled to matrix-vector
products (:func:`labrram.nn.tiled.im2col`), which a PCM array computes, and everything else
(batch norms, ReLU, max pooling, residual additions, global average pooling, the last bias)
digital. numpy only.

Layer ``l`` holds the matrix ``W_l`` of shape ``(C_in·k·k, C_out)`` (rows ordered channel,
kernel row, kernel column, as :func:`~labrram.nn.tiled.im2col` orders a patch); its products
are ``z = alpha_l · (patches @ W_l)`` with the drift-compensation gain ``alpha_l`` (scalar or one
per output column), then its batch norm. The last layer is the classifier ``W`` ``(C, n_classes)``
on the pooled features, with a digital bias and no batch norm.

The twin has the interface that :func:`labrram.nn.drift.evaluate_drift` scores
(``weights``, ``n_layers``, ``norms``, :meth:`ResNetTwin.accuracy`,
:meth:`ResNetTwin.recalibrate_norms`), so the same evaluation runs an MLP or this network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from labrram.nn.drift import BatchNorm
from labrram.nn.tiled import _pool, im2col

__all__ = ["MatrixConv", "ResNetTwin"]

MatVec = Callable[[int, np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class MatrixConv:
    """A bias-free convolution: kernels ``(C_out, C_in, k, k)``, stride, zero padding."""

    weight: np.ndarray
    stride: int = 1
    padding: int = 0

    def __post_init__(self) -> None:
        w = np.asarray(self.weight, dtype=float)
        if w.ndim != 4 or w.shape[2] != w.shape[3]:
            raise ValueError(f"conv weight must be (C_out, C_in, k, k) with square kernels, got shape {w.shape}")
        if int(self.stride) < 1 or int(self.padding) < 0:
            raise ValueError(f"stride must be >= 1 and padding >= 0, got {self.stride}, {self.padding}")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "stride", int(self.stride))
        object.__setattr__(self, "padding", int(self.padding))

    @property
    def kernel(self) -> int:
        return int(self.weight.shape[2])

    def matrix(self) -> np.ndarray:
        """``(C_in·k·k, C_out)``: the matrix an array holds."""
        return self.weight.reshape(self.weight.shape[0], -1).T.copy()


@dataclass(frozen=True, eq=False)
class ResNetTwin:
    """Digital twin of the small ResNet (module docstring).

    Attributes
    ----------
    convs : tuple of MatrixConv
        Stem, then per block ``conv1, conv2`` and the shortcut convolution when it has one.
    norms : tuple of BatchNorm
        One per convolution (per output channel).
    fc_weight : ndarray (n_classes, C)
    fc_bias : ndarray (n_classes,)
    shortcuts : tuple of bool
        Per block, whether it has a 1×1 convolution shortcut.
    """

    convs: tuple[MatrixConv, ...]
    norms: tuple[BatchNorm | None, ...]
    fc_weight: np.ndarray
    fc_bias: np.ndarray
    shortcuts: tuple[bool, ...]

    @classmethod
    def from_parts(cls, convs: Sequence[MatrixConv], norms: Sequence[BatchNorm], fc_weight: Any, fc_bias: Any, shortcuts: Sequence[bool]) -> "ResNetTwin":
        """Check and assemble the parts."""
        convs, norms, shortcuts = tuple(convs), tuple(norms), tuple(bool(s) for s in shortcuts)
        if len(convs) != 1 + 2 * len(shortcuts) + sum(shortcuts):
            raise ValueError(f"{len(convs)} convolutions do not make a stem and {len(shortcuts)} blocks with shortcuts {shortcuts}")
        if len(norms) != len(convs):
            raise ValueError(f"need one batch norm per convolution ({len(convs)}), got {len(norms)}")
        fw, fb = np.asarray(fc_weight, dtype=float), np.asarray(fc_bias, dtype=float)
        if fw.ndim != 2 or fb.shape != (fw.shape[0],) or fw.shape[1] != convs[-1].weight.shape[0]:
            raise ValueError(f"classifier weight {fw.shape} / bias {fb.shape} do not fit the last convolution's {convs[-1].weight.shape[0]} channels")
        return cls(convs, norms + (None,), fw, fb, shortcuts)

    # --- the interface of drift.Network -----------------------------------------------------
    @property
    def weights(self) -> list[np.ndarray]:
        """Every matrix the array holds, ``(n_in, n_out)``: the convolutions, then the classifier."""
        return [c.matrix() for c in self.convs] + [self.fc_weight.T.copy()]

    @property
    def n_layers(self) -> int:
        return len(self.convs) + 1

    @property
    def n_weights(self) -> int:
        """Weights held by the array."""
        return int(sum(w.size for w in self.weights))

    def _list(self, name: str, values: Sequence[Any] | None, default: Sequence[Any]) -> list[Any]:
        if values is None:
            return list(default)
        values = list(values)
        if len(values) != self.n_layers:
            raise ValueError(f"{name} needs one entry per layer ({self.n_layers}), got {len(values)}")
        return values

    def forward(
        self,
        X: Any,
        weights: Sequence[np.ndarray] | None = None,
        gains: Sequence[Any] | None = None,
        norms: Sequence[BatchNorm | None] | None = None,
        matvec: MatVec | None = None,
        recalibrate: bool = False,
    ) -> tuple[np.ndarray, list[BatchNorm | None]]:
        """Logits for images ``X`` (N, 1, H, W), and the batch norms used (activations and products
        in float32, as the torch network computes them; the classifier in float64).

        Parameters
        ----------
        X : array
            Images.
        weights : list of ndarray, optional
            Replace the matrices (e.g. read back from the array).
        gains : list, optional
            Per layer, the drift-compensation factor (scalar or one per column; None: 1).
        norms : list of BatchNorm, optional
            Replace the batch norms.
        matvec : callable, optional
            ``matvec(layer, v)`` computes ``v @ W_layer`` for ``v`` (M, n_in) — e.g. by MVMs in
            an array; by default with ``weights``.
        recalibrate : bool
            Recompute each batch norm's statistics from its inputs in this pass (training-mode
            statistics, each given the already recalibrated ones before it) and use them.
        """
        x = np.asarray(X, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != self.convs[0].weight.shape[1]:
            raise ValueError(f"X must be (N, {self.convs[0].weight.shape[1]}, H, W) images, got shape {x.shape}")
        ws = self._list("weights", weights, self.weights)
        gs = self._list("gains", gains, [None] * self.n_layers)
        bn = self._list("norms", norms, self.norms)
        w32 = [np.asarray(w, dtype=np.float32) for w in ws]
        mv: MatVec = matvec or (lambda i, v: v @ w32[i])

        def layer(i: int, x: np.ndarray, relu: bool) -> np.ndarray:
            c = self.convs[i]
            v = im2col(x, c.kernel, c.stride, c.padding)
            n, p, k = v.shape
            z = np.asarray(mv(i, v.reshape(n * p, k)))
            if gs[i] is not None:
                z = z * np.asarray(gs[i], dtype=np.float32)
            if recalibrate:
                bn[i] = bn[i].recalibrated(z)
            a = bn[i].gamma / np.sqrt(bn[i].var + bn[i].eps)  # the batch norm as one scale and shift
            z = z * a.astype(np.float32) + (bn[i].beta - bn[i].mean * a).astype(np.float32)
            if relu:
                z = np.maximum(z, 0.0)
            h = (x.shape[2] + 2 * c.padding - c.kernel) // c.stride + 1
            return z.reshape(n, h, p // h, -1).transpose(0, 3, 1, 2)

        x = _pool(layer(0, x, True), 2)
        i = 1
        for short in self.shortcuts:
            y = layer(i, x, True)
            y = layer(i + 1, y, False)
            s = layer(i + 2, x, False) if short else x
            x = np.maximum(y + s, 0.0)
            i += 3 if short else 2
        feats = x.mean(axis=(2, 3))
        z = np.asarray(mv(i, feats), dtype=float)  # the classifier in float64
        if gs[i] is not None:
            z = z * np.asarray(gs[i], dtype=float)
        return z + self.fc_bias, bn

    def logits(self, X: Any, weights=None, gains=None, norms=None, batch: int = 500) -> np.ndarray:
        """Logits ``(N, n_classes)``, in batches of ``batch`` images; arguments as :meth:`forward`."""
        X = np.asarray(X, dtype=float)
        return np.vstack([self.forward(X[i : i + batch], weights, gains, norms)[0] for i in range(0, len(X), batch)])

    def accuracy(self, X: Any, y: Any, weights=None, gains=None, norms=None) -> float:
        """Fraction of ``X`` classified as ``y``."""
        return float(np.mean(self.logits(X, weights, gains, norms).argmax(axis=1) == np.asarray(y)))

    def recalibrate_norms(self, X: Any, weights: Sequence[np.ndarray] | None = None, gains: Sequence[Any] | None = None) -> list[BatchNorm | None]:
        """Batch norms with statistics recomputed on images ``X`` through ``weights`` (one pass)."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 4 or X.shape[0] < 2:
            raise ValueError(f"need at least 2 images (N, C, H, W) to recompute statistics, got shape {X.shape}")
        return self.forward(X, weights, gains, recalibrate=True)[1]

    # --- storage ------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays (for ``numpy.savez``; :meth:`from_arrays` reads them back)."""
        out: dict[str, np.ndarray] = {"shortcuts": np.asarray(self.shortcuts, dtype=np.int8), "fc_weight": self.fc_weight, "fc_bias": self.fc_bias}
        for i, (c, n) in enumerate(zip(self.convs, self.norms)):
            out[f"conv{i}_weight"] = c.weight
            out[f"conv{i}_geometry"] = np.asarray([c.stride, c.padding])
            for f in ("gamma", "beta", "mean", "var"):
                out[f"conv{i}_bn_{f}"] = np.asarray(getattr(n, f))
            out[f"conv{i}_bn_eps"] = np.asarray(n.eps)
        return out

    @classmethod
    def from_arrays(cls, a: dict[str, np.ndarray]) -> "ResNetTwin":
        """The twin :meth:`to_arrays` stored."""
        try:
            shortcuts = [bool(s) for s in a["shortcuts"]]
            n = 1 + 2 * len(shortcuts) + sum(shortcuts)
            convs = [MatrixConv(a[f"conv{i}_weight"], *(int(g) for g in a[f"conv{i}_geometry"])) for i in range(n)]
            norms = [BatchNorm(*(a[f"conv{i}_bn_{f}"] for f in ("gamma", "beta", "mean", "var")), eps=float(a[f"conv{i}_bn_eps"])) for i in range(n)]
            return cls.from_parts(convs, norms, a["fc_weight"], a["fc_bias"], shortcuts)
        except KeyError as e:
            raise ValueError(f"the stored network lacks {e.args[0]!r}") from None
