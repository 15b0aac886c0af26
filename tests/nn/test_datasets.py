"""Offline tasks: shapes, stratified split, standardization, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest

from labrram.nn.datasets import KNOWN_TASKS, load_task


@pytest.mark.parametrize(
    "name, n, d, c",
    [("moons", 600, 2, 2), ("iris", 150, 4, 3), ("wine", 178, 13, 3),
     ("breast_cancer", 569, 30, 2), ("digits", 1797, 64, 10)],
)
def test_shapes_and_types(name, n, d, c):
    t = load_task(name)
    assert t.name == name and t.n_classes == c and t.n_features == d
    assert len(t.y_train) + len(t.y_test) == n
    assert t.X_train.shape == (len(t.y_train), d) and t.X_test.shape == (len(t.y_test), d)
    assert t.X_train.dtype == np.float64 and t.y_train.dtype == np.int64
    assert set(np.unique(t.y_train)) == set(range(c)) == set(np.unique(t.y_test))
    assert t.feature_names is None or len(t.feature_names) == d


def test_moons_default_is_300_300_and_balanced():
    t = load_task("moons")
    assert len(t.y_train) == len(t.y_test) == 300
    assert np.bincount(t.y_train).tolist() == [150, 150]


def test_split_is_stratified():
    t = load_task("iris", test_fraction=0.4)
    assert len(t.y_test) == 60
    assert np.bincount(t.y_test).tolist() == [20, 20, 20]
    w = load_task("wine")
    full = np.bincount(np.concatenate([w.y_train, w.y_test]))
    np.testing.assert_allclose(np.bincount(w.y_test) / len(w.y_test), full / full.sum(), atol=0.01)


def test_standardized_with_train_statistics():
    t = load_task("breast_cancer", seed=3)
    np.testing.assert_allclose(t.X_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(t.X_train.std(axis=0), 1.0, rtol=1e-12)
    assert not np.allclose(t.X_test.mean(axis=0), 0.0, atol=1e-6)  # test set uses train stats
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer().data
    # every standardized test row is a raw row under the train statistics
    back = t.X_test * t.feature_scale + t.feature_mean
    assert all(np.any(np.all(np.isclose(raw, row), axis=1)) for row in back[:10])
    np.testing.assert_allclose(t.standardize(back), t.X_test)


def test_constant_features_do_not_divide_by_zero():
    t = load_task("digits")
    assert np.all(np.isfinite(t.X_train)) and np.all(np.isfinite(t.X_test))
    assert np.all(t.feature_scale > 0)


def test_deterministic_by_seed():
    a, b, c = load_task("moons", seed=4), load_task("moons", seed=4), load_task("moons", seed=5)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)
    d, e = load_task("iris", seed=1), load_task("iris", seed=2)
    assert not np.array_equal(d.y_train, e.y_train) or not np.array_equal(d.X_train, e.X_train)


def test_moons_options():
    t = load_task("moons", n_samples=200, noise=0.0, test_fraction=0.25)
    assert len(t.y_train) == 150 and len(t.y_test) == 50
    noisy = load_task("moons", noise=0.3)
    clean = load_task("moons", noise=0.0)
    assert not np.allclose(noisy.X_train, clean.X_train)


def test_subsample_bundled_sets():
    t = load_task("digits", n_samples=500)
    assert len(t.y_train) + len(t.y_test) == 500
    assert t.n_classes == 10
    with pytest.raises(ValueError, match="exceeds"):
        load_task("iris", n_samples=1000)


def test_grid_covers_the_data_with_margin():
    t = load_task("moons")
    xx, yy, points = t.grid(30)
    assert xx.shape == yy.shape == (30, 30) and points.shape == (900, 2)
    np.testing.assert_array_equal(points[:, 0], xx.ravel())
    X = np.vstack([t.X_train, t.X_test])
    assert np.all(points.min(axis=0) < X.min(axis=0)) and np.all(points.max(axis=0) > X.max(axis=0))
    with pytest.raises(ValueError, match="2-D task"):
        load_task("iris").grid(10)
    with pytest.raises(ValueError, match="n must be"):
        t.grid(1)


def test_unknown_name_and_bad_parameters():
    names = "unknown task 'mnist'.*moons.*iris.*digits.*wine.*breast_cancer"
    with pytest.raises(ValueError, match=names):
        load_task("mnist")
    assert set(KNOWN_TASKS) == {"moons", "iris", "digits", "wine", "breast_cancer"}
    with pytest.raises(ValueError, match="test_fraction"):
        load_task("moons", test_fraction=1.0)
    with pytest.raises(ValueError, match="noise"):
        load_task("moons", noise=-0.1)
    with pytest.raises(ValueError, match="n_samples"):
        load_task("moons", n_samples=2)
