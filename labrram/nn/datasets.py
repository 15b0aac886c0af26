"""Small classification tasks available offline (numpy + scikit-learn, nothing downloaded).

``load_task`` returns a :class:`Task` with a stratified train/test split and features
standardized with the *training* mean and standard deviation:

=================  ===============  ========  =======
name               samples          features  classes
=================  ===============  ========  =======
``moons``          600 (generated)         2        2
``iris``           150                     4        3
``wine``           178                    13        3
``breast_cancer``  569                    30        2
``digits``         1,797                  64       10
=================  ===============  ========  =======

:func:`load_fashion_mnist` reads Fashion-MNIST (60,000 + 10,000 grey 28×28 images of ten kinds
of clothing) from its original IDX files, as Debian's ``dataset-fashion-mnist`` package installs
them (``/usr/share/datasets/fashion-mnist``; ``make fashion-mnist`` installs the package). The
``LABRRAM_FASHION_MNIST`` environment variable or the ``path`` argument points elsewhere.
:func:`read_idx` reads any IDX file (plain or gzip-compressed) with numpy alone; nothing is
unpickled and nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable

import numpy as np

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_ENV",
    "KNOWN_TASKS",
    "DatasetError",
    "Task",
    "fashion_mnist_dir",
    "load_fashion_mnist",
    "load_task",
    "read_idx",
]


@dataclass(frozen=True, eq=False)
class Task:
    """A classification task with a fixed train/test split.

    Attributes
    ----------
    name : str
        Task name (one of :data:`KNOWN_TASKS`).
    X_train, X_test : numpy.ndarray
        Standardized float64 features ``(N, d)``.
    y_train, y_test : numpy.ndarray
        int64 labels in ``0..n_classes-1``.
    n_classes : int
        Number of classes.
    feature_names : tuple of str or None
        Names of the features, when the source has them.
    target_names : tuple of str or None
        Names of the classes, when the source has them.
    feature_mean, feature_scale : numpy.ndarray or None
        The standardization applied: ``X = (X_raw - feature_mean) / feature_scale``.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    feature_names: tuple[str, ...] | None = None
    target_names: tuple[str, ...] | None = None
    feature_mean: np.ndarray | None = None
    feature_scale: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        """Number of input features."""
        return int(self.X_train.shape[1])

    def standardize(self, X_raw: np.ndarray) -> np.ndarray:
        """Apply the task's standardization to raw features ``(N, d)``."""
        if self.feature_mean is None or self.feature_scale is None:
            raise ValueError(f"task {self.name!r} has no recorded standardization")
        X_raw = np.asarray(X_raw, dtype=float)
        if X_raw.ndim != 2 or X_raw.shape[1] != self.n_features:
            raise ValueError(
                f"expected raw features of shape (N, {self.n_features}), got {X_raw.shape}"
            )
        return (X_raw - self.feature_mean) / self.feature_scale

    def grid(self, n: int = 100, margin: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Regular grid over a 2-D task's input plane (for decision and uncertainty maps).

        Parameters
        ----------
        n : int
            Points per axis (>= 2).
        margin : float
            Extra space on each side, as a fraction of the data's span along each axis.

        Returns
        -------
        xx, yy : numpy.ndarray
            ``(n, n)`` coordinate arrays (``numpy.meshgrid``, "xy" indexing).
        points : numpy.ndarray
            ``(n * n, 2)`` grid points, ``points = column_stack([xx.ravel(), yy.ravel()])``.

        Raises
        ------
        ValueError
            If the task is not 2-D, ``n < 2`` or ``margin < 0``.
        """
        if self.n_features != 2:
            raise ValueError(
                f"grid() needs a 2-D task, but {self.name!r} has {self.n_features} features"
            )
        if int(n) != n or n < 2:
            raise ValueError(f"n must be an integer >= 2, got {n!r}")
        if not (np.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        X = np.concatenate([self.X_train, self.X_test])
        lo, hi = X.min(axis=0), X.max(axis=0)
        span = np.where(hi > lo, hi - lo, 1.0)
        lo, hi = lo - margin * span, hi + margin * span
        xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], int(n)), np.linspace(lo[1], hi[1], int(n)))
        return xx, yy, np.column_stack([xx.ravel(), yy.ravel()])


def _sklearn_datasets():
    try:
        from sklearn import datasets
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("labrram.nn.datasets.load_task needs scikit-learn") from exc
    return datasets


def _bundled(loader_name: str) -> Callable[[int, int | None, float], tuple]:
    def load(seed: int, n_samples: int | None, noise: float) -> tuple:
        bunch = getattr(_sklearn_datasets(), loader_name)()
        names = getattr(bunch, "feature_names", None)
        targets = getattr(bunch, "target_names", None)
        return (
            np.asarray(bunch.data, dtype=float),
            np.asarray(bunch.target, dtype=np.int64),
            None if names is None else tuple(str(s) for s in names),
            None if targets is None else tuple(str(s) for s in targets),
        )

    return load


def _moons(seed: int, n_samples: int | None, noise: float) -> tuple:
    X, y = _sklearn_datasets().make_moons(
        n_samples=600 if n_samples is None else int(n_samples), noise=noise, random_state=seed
    )
    return np.asarray(X, dtype=float), np.asarray(y, dtype=np.int64), ("x0", "x1"), None


_LOADERS: dict[str, Callable[[int, int | None, float], tuple]] = {
    "moons": _moons,
    "iris": _bundled("load_iris"),
    "digits": _bundled("load_digits"),
    "wine": _bundled("load_wine"),
    "breast_cancer": _bundled("load_breast_cancer"),
}

KNOWN_TASKS: tuple[str, ...] = tuple(_LOADERS)
"""Names accepted by :func:`load_task`."""


def load_task(
    name: str,
    seed: int = 0,
    n_samples: int | None = None,
    noise: float = 0.1,
    test_fraction: float = 0.5,
) -> Task:
    """Load a task, split it (stratified) and standardize it with the training statistics.

    Parameters
    ----------
    name : str
        One of ``"moons"``, ``"iris"``, ``"digits"``, ``"wine"``, ``"breast_cancer"``.
    seed : int
        Seed of the moons generator, the subsampling and the split.
    n_samples : int, optional
        Moons: number of generated points (default 600). Bundled sets: a stratified
        subsample of that many points (default: all of them).
    noise : float
        Standard deviation of the Gaussian noise added to the moons (ignored otherwise).
    test_fraction : float
        Fraction of the points held out for testing, in (0, 1).

    Returns
    -------
    Task

    Raises
    ------
    ValueError
        For an unknown name or out-of-range parameters.
    """
    if name not in _LOADERS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(KNOWN_TASKS)}")
    if not (0.0 < float(test_fraction) < 1.0):
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    if n_samples is not None and (int(n_samples) != n_samples or n_samples < 4):
        raise ValueError(f"n_samples must be an integer >= 4, got {n_samples!r}")
    seed = int(seed)
    X, y, feature_names, target_names = _LOADERS[name](seed, n_samples, float(noise))
    n_classes = int(y.max()) + 1

    from sklearn.model_selection import train_test_split

    if n_samples is not None and name != "moons":
        if n_samples > len(y):
            raise ValueError(f"n_samples={n_samples} exceeds the {len(y)} points of {name!r}")
        if n_samples < len(y):
            X, _, y, _ = train_test_split(
                X, y, train_size=int(n_samples), stratify=y, random_state=seed
            )
    n = len(y)
    n_test = int(round(float(test_fraction) * n))
    if n_test < n_classes or n - n_test < n_classes:
        raise ValueError(
            f"test_fraction={test_fraction} leaves fewer points than classes ({n_classes}) in "
            f"the train or test split of {n} points"
        )
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=n_test, stratify=y, random_state=seed
    )
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    scale = np.where(std > 0, std, 1.0)
    return Task(
        name=name,
        X_train=(X_train - mean) / scale,
        y_train=np.asarray(y_train, dtype=np.int64),
        X_test=(X_test - mean) / scale,
        y_test=np.asarray(y_test, dtype=np.int64),
        n_classes=n_classes,
        feature_names=feature_names,
        target_names=target_names,
        feature_mean=mean,
        feature_scale=scale,
    )


# --- Fashion-MNIST from its IDX files ---------------------------------------------------------
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs the IDX files."""

FASHION_MNIST_ENV = "LABRRAM_FASHION_MNIST"
"""Environment variable naming another directory holding the IDX files."""

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
"""Class names of Fashion-MNIST's labels 0–9."""

_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: IDX element types: type code -> big-endian numpy dtype
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DatasetError(ValueError):
    """A dataset file that is not what it should be (wrong magic, truncated, mismatched sizes)."""


def _read_exact(f: IO[bytes], n: int, path: Path, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise DatasetError(f"{path}: truncated: {what} needs {n} bytes, the file has {len(data)} left")
    return data


def read_idx(path: str | Path, limit: int | None = None) -> np.ndarray:
    """Read an IDX file (the format of MNIST and Fashion-MNIST), plain or gzip-compressed.

    The format: two zero bytes, a type code (``0x08`` unsigned byte, ``0x09`` signed byte,
    ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the number of
    dimensions, one big-endian uint32 size per dimension, then the data, big-endian, row-major.

    Parameters
    ----------
    path : str or Path
        The file; a name ending in ``.gz`` is decompressed while reading.
    limit : int, optional
        Read only the first ``limit`` records along the first dimension (the rest of the file
        is then not read, so it is not checked either).

    Returns
    -------
    numpy.ndarray
        The data in native byte order, shape as the header declares (first dimension cut to
        ``limit``).

    Raises
    ------
    DatasetError
        A wrong magic number, an unknown type code, a truncated file, or data beyond the
        declared sizes; the message names the file.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    if limit is not None and (int(limit) != limit or limit < 0):
        raise ValueError(f"limit must be an integer >= 0 or None, got {limit!r}")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            magic = _read_exact(f, 4, path, "the magic number")
            if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES or magic[3] == 0:
                raise DatasetError(
                    f"{path}: not an IDX file: magic bytes {magic.hex()} (expected 0000, a type code among "
                    f"{sorted(f'{k:02x}' for k in _IDX_TYPES)}, and a dimension count >= 1)"
                )
            dtype = np.dtype(_IDX_TYPES[magic[2]])
            ndim = magic[3]
            dims = [int(d) for d in np.frombuffer(_read_exact(f, 4 * ndim, path, f"{ndim} dimension sizes"), dtype=">u4")]
            n = dims[0] if limit is None else min(dims[0], int(limit))
            per_record = int(np.prod(dims[1:], dtype=np.int64)) * dtype.itemsize
            body = _read_exact(f, n * per_record, path, f"{n} record(s) of shape {tuple(dims[1:])} ({dtype.str})")
            if n == dims[0] and f.read(1):
                raise DatasetError(f"{path}: sizes do not match: data continues beyond the declared shape {tuple(dims)}")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise DatasetError(f"{path}: cannot be read: {exc}") from None
    return np.frombuffer(body, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape([n, *dims[1:]])


def fashion_mnist_dir(path: str | Path | None = None) -> Path:
    """The directory holding Fashion-MNIST's IDX files: ``path`` if given, else the
    ``LABRRAM_FASHION_MNIST`` environment variable, else :data:`FASHION_MNIST_DIR`."""
    if path is not None:
        return Path(path)
    env = os.environ.get(FASHION_MNIST_ENV)
    return Path(env) if env else FASHION_MNIST_DIR


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    how = (
        f"set {FASHION_MNIST_ENV} to the directory holding them, or install Debian's dataset-fashion-mnist "
        f"package (make fashion-mnist, or as root: apt-get install -y dataset-fashion-mnist)"
    )
    raise FileNotFoundError(f"Fashion-MNIST: no {stem} or {stem}.gz in {directory}; {how}")


def load_fashion_mnist(split: str = "train", limit: int | None = None, path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's images and labels, from the original IDX files.

    Parameters
    ----------
    split : str
        ``"train"`` (60,000 images) or ``"test"`` (10,000).
    limit : int, optional
        Only the first ``limit`` images and labels (the files are read no further).
    path : str or Path, optional
        Directory of the IDX files (plain or ``.gz``); default :func:`fashion_mnist_dir`.

    Returns
    -------
    images : numpy.ndarray
        uint8 ``(N, 28, 28)``, 0 = background.
    labels : numpy.ndarray
        int64 ``(N,)`` in 0–9 (:data:`FASHION_MNIST_CLASSES`).

    Raises
    ------
    FileNotFoundError
        When the files are not there (the message says how to install them).
    DatasetError
        A bad file (:func:`read_idx`), images that are not 28×28 bytes, a label file whose
        count differs from the image file's, or labels outside 0–9.
    """
    if split not in _FASHION_FILES:
        raise ValueError(f"split must be one of {sorted(_FASHION_FILES)}, got {split!r}")
    directory = fashion_mnist_dir(path)
    img_path, lab_path = (_find(directory, stem) for stem in _FASHION_FILES[split])
    images = read_idx(img_path, limit)
    labels = read_idx(lab_path, limit)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(f"{img_path}: expected unsigned-byte images of shape (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(f"{lab_path}: expected unsigned-byte labels of shape (N,), got {labels.dtype} {labels.shape}")
    if len(labels) != len(images):
        raise DatasetError(f"{lab_path}: sizes do not match: {len(labels)} labels for the {len(images)} images of {img_path}")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{lab_path}: labels must lie in 0..9, found {int(labels.max())}")
    return images, labels.astype(np.int64)
