"""The symmetry-reduced solvers (nclab.solvers, method="auto") against the k×k cvxpy programs (method="full")
and against optimality facts that do not come from the solvers."""

import warnings

import numpy as np
import pytest

from nclab.convex import cs_svm, nuclear_svm, regularized_optimum, scl_gram, zero_threshold
from nclab.labels import centering, step_sizes
from nclab.losses import make_loss
from nclab.metrics import gram_distance
from nclab.seli import seli_from_svd, seli_geometry
from nclab.solvers import class_groups, expand, zero_threshold_of

SIZES = [[8, 8, 3, 3, 3, 1], [5, 5, 5], [4, 9, 4, 2]]


@pytest.mark.parametrize("sizes", SIZES)
def test_reduced_margin_svms_equal_full_programs(sizes):
    np.testing.assert_allclose(nuclear_svm(sizes), nuclear_svm(sizes, method="full"), atol=1e-6)
    delta = np.sqrt(np.asarray(sizes, float))
    for kind in ("cdt", "ldt"):
        a, b = cs_svm(sizes, delta, kind), cs_svm(sizes, delta, kind, method="full")
        np.testing.assert_allclose(a.logits, b.logits, atol=1e-5)


@pytest.mark.parametrize("kind", ["ce", "wce", "la", "cdt", "ldt", "vs"])
def test_reduced_regularized_optimum_equals_full_program(kind):
    sizes = SIZES[0]
    loss = make_loss(kind, sizes, gamma=0.5)
    a, b = regularized_optimum(sizes, 1e-2, loss=loss), regularized_optimum(sizes, 1e-2, loss=loss, method="full")
    assert a.info["value"] == pytest.approx(b.info["value"], rel=1e-8)
    np.testing.assert_allclose(a.logits, b.logits, atol=5e-4)  # interior-point accuracy of the full program


@pytest.mark.parametrize("relu", [True, False])
def test_reduced_scl_equals_full_program(relu):
    for sizes in ([6, 6, 3, 3], [4, 3, 2]):
        for tau in (0.2, 1.0):
            assert gram_distance(scl_gram(sizes, tau, relu), scl_gram(sizes, tau, relu, method="full")) < 1e-4


def test_large_k_step_imbalance_is_sel_and_seli():
    s = step_sizes(300, 10, 150, 2)
    np.testing.assert_allclose(nuclear_svm(s), centering(300), atol=1e-6)  # the NN-SVM answer is SEL
    g = regularized_optimum(s, 1e-7)
    assert gram_distance(g.W_gram, seli_geometry(s).W_gram) < 0.1
    assert gram_distance(scl_gram(s, 0.5, relu=True), np.eye(300)) < 1e-5   # ReLU SCL: orthogonal frame


@pytest.mark.parametrize("tau", [0.01, 0.02, 0.05, 0.3, 10.0])
def test_scl_relu_is_orthogonal_frame_at_every_temperature(tau):
    assert gram_distance(scl_gram([5, 5, 2, 2], tau), np.eye(4)) < 1e-4


def test_scl_small_tau_is_continuous_across_the_mm_switch():
    a, b = scl_gram([5, 5, 2, 2], 0.099, relu=False), scl_gram([5, 5, 2, 2], 0.1, relu=False)
    assert np.abs(a - b).max() < 5e-3
    assert np.linalg.eigvalsh(a).min() > -1e-7 and np.allclose(np.diag(a), 1, atol=1e-7)


def test_zero_above_threshold_for_every_loss():
    np.testing.assert_array_equal(regularized_optimum([5, 5, 1], 1e12).logits, 0)
    sizes = [6, 3, 3]
    for kind in ("ce", "la", "vs", "ldt"):
        loss = make_loss(kind, sizes, 0.5)
        p = loss.arrays(3)
        lam0 = zero_threshold_of(np.array(sizes), np.array(sizes) / 12 * p["omega"], p)
        assert np.all(regularized_optimum(sizes, 1.01 * lam0, loss=loss).logits == 0)
        below = regularized_optimum(sizes, lam0 / 1.3, loss=loss, method="full")  # cvxpy: not zero below
        assert np.abs(below.logits).max() > 1e-3
    assert regularized_optimum(sizes, 1.01 * zero_threshold(sizes)).info["value"] == pytest.approx(np.log(3))


def test_no_inaccurate_solver_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        regularized_optimum(step_sizes(6, 100, 3), 1e-6)
        scl_gram([5, 5, 2, 2], 0.01, relu=False)


def test_groups_and_expand():
    gi, first, counts = class_groups([3, 5, 3, 5, 7])
    assert counts.tolist() == [2, 2, 1] and gi.tolist() == [0, 1, 0, 1, 2]
    M = expand(np.arange(9.0).reshape(3, 3), np.array([10.0, 20.0, 30.0]), gi)
    assert M[0, 2] == 0 and M[0, 1] == 1 and M[4, 4] == 30 and M[1, 3] == 4


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least 2 examples"):
        scl_gram([1, 1, 1], 1.0)
    with pytest.raises(ValueError, match="tau=0.001"):
        scl_gram([5, 5], 0.001)
    with pytest.raises(ValueError, match="method='fast'"):
        nuclear_svm([3, 2], method="fast")
    with pytest.raises(ValueError, match="too large"):
        seli_geometry([10, 1e20])
    with pytest.raises(ValueError, match="too large"):
        nuclear_svm([10, 1e20])


def test_seli_geometry_group_formula_equals_svd_with_repeated_sizes():
    sizes = [7, 3, 7, 7, 1, 3]
    a, b = seli_geometry(sizes), seli_from_svd(sizes)
    np.testing.assert_allclose(a.W_gram, b.W_gram, atol=1e-10)
    np.testing.assert_allclose(a.H_gram, b.H_gram, atol=1e-10)
