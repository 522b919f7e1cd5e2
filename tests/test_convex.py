import numpy as np
import pytest

from nclab.convex import nuclear_svm, regularized_optimum, zero_threshold
from nclab.frames import etf_geometry
from nclab.labels import centering, step_sizes
from nclab.metrics import gram_distance
from nclab.seli import sel_singular_values


@pytest.mark.parametrize("sizes", [[10, 10, 1, 1], [3, 17, 5], [1, 2, 3, 4, 5, 6], [8, 8]])
def test_nuclear_svm_is_sel(sizes):
    np.testing.assert_allclose(nuclear_svm(sizes), centering(len(sizes)), atol=1e-6)


def _prox_gradient(sizes, lam, iters=20000):
    """Independent solver: FISTA on X = M N^{1/2} with singular-value thresholding (L = 1/2 per column)."""
    sizes = np.asarray(sizes, float)
    n, k = sizes.sum(), len(sizes)
    root = np.sqrt(sizes)
    X = np.zeros((k, k))
    Yv, t = X.copy(), 1.0
    step = 2.0 * n / sizes.max()  # mean-reduced: Hessian in X ≤ (n_c/n)/2 per column
    for _ in range(iters):
        M = Yv / root
        P = np.exp(M - M.max(0))
        P /= P.sum(0)
        G = ((P - np.eye(k)) * sizes / n) / root
        U, s, Vt = np.linalg.svd(Yv - step * G)
        Xn = (U * np.maximum(s - step * lam, 0)) @ Vt
        tn = (1 + np.sqrt(1 + 4 * t * t)) / 2
        Yv, X, t = Xn + (t - 1) / tn * (Xn - X), Xn, tn
    return X / root


@pytest.mark.parametrize("sizes, lam", [([10, 10, 1, 1], 1e-2), ([5, 3, 9], 3e-2)])
def test_regularized_optimum_matches_proximal_gradient(sizes, lam):
    g = regularized_optimum(sizes, lam)
    M = _prox_gradient(sizes, lam)
    np.testing.assert_allclose(g.logits, M, atol=5e-4)


def test_sum_and_mean_reductions_are_rescalings():
    sizes = [6, 2, 2]
    a = regularized_optimum(sizes, 1e-2, "mean")
    b = regularized_optimum(sizes, 1e-2 * sum(sizes), "sum")
    np.testing.assert_allclose(a.logits, b.logits, atol=5e-4)  # interior-point accuracy on logits
    assert b.info["value"] == pytest.approx(sum(sizes) * a.info["value"], rel=1e-6)


def test_balanced_ridge_stays_etf_and_large_lambda_is_zero():
    g = regularized_optimum([4, 4, 4], 1e-2)
    assert gram_distance(g.W_gram, etf_geometry([4, 4, 4]).W_gram) < 1e-5
    sizes = step_sizes(4, 10, 2)
    lam0 = zero_threshold(sizes)
    assert lam0 == pytest.approx(sel_singular_values(sizes)[0] / sizes.sum())
    assert np.abs(regularized_optimum(sizes, 1.5 * lam0).logits).max() < 1e-6
    assert np.abs(regularized_optimum(sizes, 0.5 * lam0).logits).max() > 1e-2


def test_bad_inputs():
    with pytest.raises(ValueError, match="lam=-0.1"):
        regularized_optimum([3, 2], -0.1)
    with pytest.raises(ValueError, match="reduction"):
        regularized_optimum([3, 2], 0.1, "max")
    with pytest.raises(ValueError, match=r"class_sizes\[1\]=0"):
        nuclear_svm([5, 0, 3])
    with pytest.raises(ValueError, match="reduction"):
        zero_threshold([3, 2], "median")
