import numpy as np
import pytest

from nclab.labels import (
    centering,
    class_sizes,
    labels_from_sizes,
    long_tail_sizes,
    one_hot,
    sel_matrix,
    sizes_of,
    step_sizes,
)


def test_step_sizes_majorities_first():
    assert step_sizes(5, 10, 2, 3).tolist() == [30, 30, 30, 3, 3]
    assert step_sizes(4, 1, 3).tolist() == [1, 1, 1, 1]


@pytest.mark.parametrize("kwargs, name", [
    (dict(k=1, R=10, k_min=1), "k=1"), (dict(k=4, R=0.5, k_min=2), "R=0.5"),
    (dict(k=4, R=10, k_min=4), "k_min=4"), (dict(k=4, R=10, k_min=0), "k_min=0"),
    (dict(k=4, R=10, k_min=2, n_min=0), "n_min=0"), (dict(k=4, R=float("nan"), k_min=2), "R=nan")])
def test_step_sizes_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name.split("=")[0]):
        step_sizes(**kwargs)


def test_step_sizes_error_message_names_value_and_range():
    with pytest.raises(ValueError, match=r"k_min=4 is out of range: allowed in \[1, 3\]"):
        step_sizes(4, 10, 4)


def test_long_tail_sizes_geometric():
    s = long_tail_sizes(5, 16, 160)
    assert s.tolist() == [160, 80, 40, 20, 10]
    assert long_tail_sizes(3, 1000, 2).min() >= 1


def test_class_sizes_rejects_zero_and_short():
    with pytest.raises(ValueError, match=r"class_sizes\[1\]=0"):
        class_sizes([5, 0, 3])
    with pytest.raises(ValueError, match="at least 2"):
        class_sizes([5])
    with pytest.raises(ValueError, match="integers"):
        class_sizes([1.5, 2])


def test_one_hot_and_sel_matrix():
    y = np.array([0, 2, 1, 2])
    Y = one_hot(y, 3)
    assert Y.shape == (3, 4) and (Y.sum(0) == 1).all() and Y[2, 1] == 1
    Z = sel_matrix(y, 3)
    expected = np.stack([np.eye(3)[c] - 1 / 3 for c in y], axis=1)
    np.testing.assert_allclose(Z, expected)
    np.testing.assert_allclose(Z.sum(0), 0, atol=1e-15)
    with pytest.raises(ValueError, match="k=2"):
        one_hot(y, 2)
    with pytest.raises(ValueError, match="non-negative"):
        one_hot([-1, 0])


def test_labels_roundtrip_and_centering():
    y = labels_from_sizes([3, 1, 2])
    assert y.tolist() == [0, 0, 0, 1, 2, 2]
    assert sizes_of(y).tolist() == [3, 1, 2]
    P = centering(4)
    np.testing.assert_allclose(P @ P, P)
    np.testing.assert_allclose(P @ np.ones(4), 0, atol=1e-15)
