"""Fashion-MNIST's IDX files: the reader on files written here, bad files, and the real data
set when Debian's dataset-fashion-mnist package is installed."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from labrram.nn.datasets import (
    FASHION_MNIST_ENV,
    DatasetError,
    fashion_mnist_dir,
    load_fashion_mnist,
    read_idx,
)

CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(a: np.ndarray, dtype: str = "u1") -> bytes:
    dt = np.dtype(dtype).newbyteorder(">") if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
    head = bytes([0, 0, CODES[dt], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + np.asarray(a, dtype=dt).tobytes()


def write(path, data: bytes):
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def fake_set(tmp_path, n=20, gz=True, split="train", labels=None):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8) if labels is None else np.asarray(labels, np.uint8)
    stem = "train" if split == "train" else "t10k"
    ext = ".gz" if gz else ""
    write(tmp_path / f"{stem}-images-idx3-ubyte{ext}", idx_bytes(images))
    write(tmp_path / f"{stem}-labels-idx1-ubyte{ext}", idx_bytes(labels))
    return images, labels


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    a = (np.arange(2 * 3 * 4).reshape(2, 3, 4) - (5 if dtype[0] in "if" else 0)).astype(dtype)
    p = write(tmp_path / ("x.idx" + (".gz" if gz else "")), idx_bytes(a, dtype))
    b = read_idx(p)
    assert b.shape == (2, 3, 4) and b.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(read_idx(p, limit=1), a[:1])
    assert read_idx(p, limit=10).shape == (2, 3, 4)


def test_load_fake_set_plain_and_gz(tmp_path):
    for gz in (False, True):
        d = tmp_path / str(gz)
        d.mkdir()
        images, labels = fake_set(d, gz=gz)
        x, y = load_fashion_mnist("train", path=d)
        np.testing.assert_array_equal(x, images)
        np.testing.assert_array_equal(y, labels)
        assert x.dtype == np.uint8 and y.dtype == np.int64
        x5, y5 = load_fashion_mnist("train", limit=5, path=d)
        assert x5.shape == (5, 28, 28) and np.array_equal(y5, labels[:5])


def test_environment_variable_overrides_the_default(tmp_path, monkeypatch):
    fake_set(tmp_path, split="test", n=7)
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    assert fashion_mnist_dir() == tmp_path
    assert load_fashion_mnist("test")[0].shape == (7, 28, 28)
    assert fashion_mnist_dir(tmp_path / "x") == tmp_path / "x"  # the argument wins


def test_missing_files_say_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.*apt-get install -y dataset-fashion-mnist"):
        load_fashion_mnist("train", path=tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_fashion_mnist("validation", path=tmp_path)


def test_bad_magic_names_the_file(tmp_path):
    p = write(tmp_path / "bad.idx", b"\x01\x02\x08\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(DatasetError, match=r"bad\.idx: not an IDX file: magic bytes 01020801"):
        read_idx(p)
    p = write(tmp_path / "code.idx", b"\x00\x00\x07\x01" + struct.pack(">I", 3) + b"abc")
    with pytest.raises(DatasetError, match="code.idx: not an IDX file"):
        read_idx(p)
    p = write(tmp_path / "pickle.idx.gz", b"\x80\x04\x95")  # whatever it is, never unpickled
    with pytest.raises(DatasetError, match="pickle.idx.gz: truncated"):
        read_idx(p)


def test_truncated_and_oversized_files(tmp_path):
    good = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    p = write(tmp_path / "short.idx.gz", good[:-10])
    with pytest.raises(DatasetError, match=r"short\.idx\.gz: truncated: 4 record\(s\) of shape \(28, 28\)"):
        read_idx(p)
    assert read_idx(p, limit=3).shape == (3, 28, 28)  # the first records are whole
    p = write(tmp_path / "long.idx", good + b"\x00")
    with pytest.raises(DatasetError, match=r"long\.idx: sizes do not match"):
        read_idx(p)
    p = write(tmp_path / "head.idx", b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DatasetError, match="head.idx: truncated: 3 dimension sizes"):
        read_idx(p)
    p = tmp_path / "notgz.idx.gz"
    p.write_bytes(b"plain bytes, not gzip")
    with pytest.raises(DatasetError, match="notgz.idx.gz: cannot be read"):
        read_idx(p)


def test_images_and_labels_must_agree(tmp_path):
    fake_set(tmp_path, n=6)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DatasetError, match="sizes do not match: 5 labels for the 6 images"):
        load_fashion_mnist("train", path=tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.array([0, 1, 2, 3, 4, 12], np.uint8)))
    with pytest.raises(DatasetError, match="labels must lie in 0..9, found 12"):
        load_fashion_mnist("train", path=tmp_path)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((6, 8, 8), np.uint8)))
    with pytest.raises(DatasetError, match=r"expected unsigned-byte images of shape \(N, 28, 28\)"):
        load_fashion_mnist("train", path=tmp_path)


def _installed() -> bool:
    d = fashion_mnist_dir()
    return all(any((d / (s + e)).is_file() for e in ("", ".gz")) for s in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))


needs_fmnist = pytest.mark.skipif(
    not _installed(), reason=f"Fashion-MNIST not found in {fashion_mnist_dir()} (make fashion-mnist, or set {FASHION_MNIST_ENV})"
)


@needs_fmnist
def test_real_data_set_subsets():
    x, y = load_fashion_mnist("train", limit=512)
    assert x.shape == (512, 28, 28) and y.shape == (512,)
    assert set(np.unique(y)) == set(range(10))
    assert 0 < x.mean() < 255 and x.max() == 255
    xt, yt = load_fashion_mnist("test", limit=512)
    assert xt.shape == (512, 28, 28) and not np.array_equal(xt[:10], x[:10])


@needs_fmnist
@pytest.mark.slow
def test_real_data_set_whole():
    x, y = load_fashion_mnist("train")
    xt, yt = load_fashion_mnist("test")
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert np.bincount(y).tolist() == [6000] * 10 and np.bincount(yt).tolist() == [1000] * 10
