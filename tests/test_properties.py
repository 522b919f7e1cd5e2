"""Property-based tests (Hypothesis) for the exact solvers: random sizes / τ / δ / λ → the answer meets its
optimality conditions or an independently computed closed form. Few examples each (cvxpy solves take ~0.3 s)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nclab.convex import cs_svm, nuclear_svm, regularized_optimum, scl_gram, zero_threshold
from nclab.cssvm import step_grams
from nclab.labels import centering, labels_from_sizes, sel_matrix, step_sizes
from nclab.metrics import gram_distance
from nclab.seli import sel_singular_values, seli_from_svd, seli_geometry, step_gram

FEW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=40, deadline=None)  # closed forms only: no solver, cheap

sizes_st = st.lists(st.integers(1, 30), min_size=2, max_size=5)


@st.composite
def step_cases(draw):
    k = draw(st.integers(3, 5))
    k_min = draw(st.integers(1, k - 1))
    R = draw(st.integers(1, 20))  # integer R: class sizes R·n_min are exact
    return k, R, k_min


@FEW
@given(sizes=sizes_st)
def test_nuclear_svm_meets_margins_and_equals_sel(sizes):
    M = nuclear_svm(sizes)
    k = len(sizes)
    margins = np.diag(M)[None, :] - M  # column c: M_cc − M_c'c
    off = ~np.eye(k, dtype=bool)
    assert margins[off].min() >= 1 - 1e-6  # feasibility
    root = np.sqrt(np.asarray(sizes, float))
    nuc = np.linalg.svd(M * root[None, :], compute_uv=False).sum()
    # optimal value = Σ σ(P Y) (the SEL matrix is optimal: Thrampoulidis et al. 2022), and the minimizer is P
    assert nuc == pytest.approx(sel_singular_values(sizes).sum(), rel=1e-6)
    np.testing.assert_allclose(M, centering(k), atol=1e-5)


@FEW
@given(case=step_cases(), ratio=st.floats(0.3, 3.0), kind=st.sampled_from(["cdt", "ldt"]))
def test_cs_svm_matches_the_step_closed_form(case, ratio, kind):
    k, R, k_min = case
    sizes = step_sizes(k, R, k_min)
    delta = np.array([ratio] * (k - k_min) + [1.0] * k_min)
    geom = cs_svm(sizes, delta, kind)
    W, H = step_grams(k, R, k_min, ratio, kind)
    assert gram_distance(geom.W_gram, W) < 1e-4
    assert gram_distance(geom.H_gram, H) < 1e-4
    # the solver's own constraints hold: margins ≥ 1 in the CS-SVM sense
    M = geom.logits
    if kind == "cdt":
        margins = delta[None, :] * np.diag(M)[None, :] - delta[:, None] * M
    else:
        margins = delta[None, :] * (np.diag(M)[None, :] - M)
    assert margins[~np.eye(k, dtype=bool)].min() >= 1 - 1e-6


@FEW
@given(sizes=sizes_st.map(lambda s: [max(2, n) for n in s]), log_tau=st.floats(-1.0, 1.0))
def test_scl_gram_with_relu_is_the_orthogonal_frame(sizes, log_tau):
    G = scl_gram(sizes, 10**log_tau, relu=True)
    np.testing.assert_allclose(G, np.eye(len(sizes)), atol=2e-3)


@settings(max_examples=4, deadline=None)
@given(sizes=sizes_st.map(lambda s: [max(2, n) for n in s]), log_tau=st.floats(-2.0, -1.0))
def test_scl_gram_with_relu_is_the_orthogonal_frame_at_small_tau(sizes, log_tau):
    G = scl_gram(sizes, 10**log_tau, relu=True)
    np.testing.assert_allclose(G, np.eye(len(sizes)), atol=2e-3)


@MANY
@given(sizes=st.lists(st.integers(1, 10**6), min_size=2, max_size=7))
def test_seli_W_gram_is_the_root_of_PNP(sizes):
    g = seli_geometry(sizes)
    k = len(sizes)
    P = centering(k)
    PNP = P @ np.diag(np.asarray(sizes, float)) @ P
    scale = np.abs(PNP).max()
    np.testing.assert_allclose(g.W_gram @ g.W_gram, PNP, atol=1e-8 * scale)  # squares back
    assert np.linalg.eigvalsh(g.W_gram).min() >= -1e-8 * np.sqrt(scale)  # the PSD root
    np.testing.assert_allclose(g.W_gram @ np.ones(k), 0, atol=1e-8 * np.sqrt(scale))  # centred


@settings(max_examples=10, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=2, max_size=5))
def test_seli_geometry_agrees_with_the_svd_of_the_sel_matrix(sizes):
    a, b = seli_geometry(sizes), seli_from_svd(sizes)
    assert gram_distance(a.W_gram, b.W_gram) < 1e-8
    assert gram_distance(a.H_gram, b.H_gram) < 1e-8
    # and the realized W, Hc reproduce the SEL matrix sample by sample
    W, Hc = a.realize()
    y = labels_from_sizes(sizes)
    np.testing.assert_allclose(W @ Hc[:, y], sel_matrix(y), atol=1e-8)


@MANY
@given(case=step_cases())
def test_seli_step_closed_form_equals_the_general_formula(case):
    k, R, k_min = case
    W, H = step_gram(k, R, k_min)
    g = seli_geometry(step_sizes(k, R, k_min))
    np.testing.assert_allclose(W, g.W_gram, atol=1e-9 * max(1.0, R))
    np.testing.assert_allclose(H, g.H_gram, atol=1e-9)


@FEW
@given(sizes=st.lists(st.integers(1, 12), min_size=2, max_size=4), frac=st.floats(0.05, 0.9))
def test_regularized_optimum_meets_its_optimality_conditions(sizes, frac):
    """min_X L(X N^{-1/2} Y) + λ‖X‖_*: −∇L(X) ∈ λ ∂‖X‖_*, i.e. ‖∇‖_op ≤ λ and ⟨−∇, X⟩ = λ‖X‖_*."""
    lam = frac * zero_threshold(sizes)
    g = regularized_optimum(sizes, lam)
    n_c = np.asarray(sizes, float)
    M = g.logits
    S = np.exp(M - M.max(0))
    S /= S.sum(0)
    grad_X = (S - np.eye(len(sizes))) * (n_c / n_c.sum()) / np.sqrt(n_c)  # ∂L/∂X, X = M N^{1/2}
    X = M * np.sqrt(n_c)
    op = np.linalg.norm(grad_X, 2)
    nuc = np.linalg.svd(X, compute_uv=False).sum()
    assert op <= lam * (1 + 1e-4)
    assert float(np.sum(-grad_X * X)) == pytest.approx(lam * nuc, rel=1e-4, abs=1e-9)


@FEW
@given(sizes=st.lists(st.integers(1, 12), min_size=2, max_size=4), factor=st.floats(1.05, 50.0))
def test_regularized_optimum_is_zero_beyond_the_threshold(sizes, factor):
    g = regularized_optimum(sizes, factor * zero_threshold(sizes))
    assert np.abs(g.logits).max() < 1e-6
