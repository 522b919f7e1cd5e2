import numpy as np
import pytest

from nclab.labels import labels_from_sizes, step_sizes
from nclab.metrics import class_means, gram_distance, group_stats, nc1, normalized, summary
from nclab.seli import seli_geometry


def test_gram_distance_scale_invariant_and_bounded():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    assert gram_distance(A, 3.7 * A) == pytest.approx(0, abs=1e-12)
    assert gram_distance(A, -A) == pytest.approx(2)
    with pytest.raises(ValueError, match="shapes differ"):
        gram_distance(A, A[:3])
    with pytest.raises(ValueError, match="norm"):
        normalized(np.zeros((2, 2)))


def test_class_means_uncentered():
    H = np.array([[1.0, 3.0, 10.0], [0.0, 2.0, -1.0]])
    mu = class_means(H, [0, 0, 1])
    np.testing.assert_allclose(mu, [[2.0, 10.0], [1.0, -1.0]])
    with pytest.raises(ValueError, match="d×n"):
        class_means(H[:, :2], [0, 0, 1])


def test_group_stats_by_hand():
    v = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, -1.0]])
    s = group_stats(v @ v.T, [True, True, False, False])
    assert s["sq_norm_ratio"] == pytest.approx(4.0)
    assert s["cos_maj_maj"] == pytest.approx(0.0)
    assert s["cos_min_min"] == pytest.approx(0.0)
    assert s["cos_maj_min"] == pytest.approx((1 + 0 + 0 - 1) / 4)
    assert np.isnan(group_stats(v @ v.T, [True, True, True, False])["cos_min_min"])
    with pytest.raises(ValueError, match="majority"):
        group_stats(v @ v.T, [True] * 4)


def test_nc1_zero_when_collapsed_positive_otherwise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 4)
    mu = rng.standard_normal((5, 3))
    assert nc1(mu[:, y], y) == pytest.approx(0, abs=1e-12)
    assert nc1(mu[:, y] + 0.1 * rng.standard_normal((5, 12)), y) > 1e-4


def test_summary_of_exact_seli_is_zero_distance():
    sizes = step_sizes(4, 10, 2, 2)
    y = labels_from_sizes(sizes)
    W, Hc = seli_geometry(sizes).realize(6)
    s = summary(W, Hc[:, y], y)
    assert s["d_W"] < 1e-10 and s["d_H"] < 1e-10 and s["d_Z"] < 1e-10
    assert s["d_W_etf"] > 0.1 and s["nc1"] < 1e-12
    assert s["W_sq_norm_ratio"] > 1 > s["H_sq_norm_ratio"]
