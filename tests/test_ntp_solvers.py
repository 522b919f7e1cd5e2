"""Fast NTP solvers (nclab.ntp_solvers) against the V×m cvxpy programs (method="cvxpy", the reference).

Tolerances: the reference stops at a CLARABEL duality gap of 1e-10, so its minimizer is accurate to about
√1e-10 = 1e-5 (relative); ADMM stops at relative residuals 1e-9 and the first-order methods for the regularized
program (FISTA, Anderson) at a relative prox-gradient residual of 1e-8, both far tighter. Comparisons therefore use
1e-5 (max-margin, whose optimum is well conditioned) and 1e-4 (regularized, λ ≥ 1e-4: measured agreement ≤ 3e-5);
a perturbed input moves the answer by ≫ 1e-2.
"""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from nclab import ntp_solvers as ns
from nclab.convex import ntp_max_margin, ntp_regularized_optimum
from nclab.ntp import NTPData, synthetic

FIRST_ORDER = ("fista", "anderson")


def _nuc(L):
    return np.linalg.svd(L, compute_uv=False).sum()


def _rel(A, B):
    return np.linalg.norm(A - B) / np.linalg.norm(B)


def _instance(seed, m=14, V=7, patterns=5, sizes=(1, 3), dup=True):
    """Random instance with random π; with ``dup`` some columns are exact copies (same p_j and π_j)."""
    data = synthetic(m, V, patterns, sizes, (1, 5), seed=seed, frequencies="random")
    P, pi = data.P, data.pi
    if dup:
        P, pi = np.hstack([P, P[:, :3]]), np.concatenate([pi, pi[:3]])
        pi = pi / pi.sum()
    return NTPData(P, pi)


@pytest.mark.parametrize("seed,sizes,V", [(0, (1, 3), 7), (1, (1, 4), 8), (2, (2, 4), 6), (3, (1, 1), 5)])
def test_max_margin_fast_paths_match_the_cvxpy_program(seed, sizes, V):
    S = _instance(seed, V=V, sizes=sizes).S
    ref = ntp_max_margin(S, method="cvxpy")
    for method in ("auto", "reduced", "admm"):
        L = ntp_max_margin(S, method=method)
        assert np.abs(L - ref).max() < 1e-5 * np.abs(ref).max(), method
        assert _nuc(L) == pytest.approx(_nuc(ref), rel=1e-7)
        a = L[S.argmax(0), np.arange(S.shape[1])]  # the in-support value of each column
        assert np.abs(np.where(S, L - a, 0)).max() < 1e-7  # feasible: constant on S_j ...
        assert np.where(S, np.inf, a - L).min() > 1 - 1e-7  # ... and margins ≥ 1 off S_j


def test_max_margin_admm_fails_for_a_perturbed_support():
    S = _instance(4).S
    ref = ntp_max_margin(S, method="cvxpy")
    broken = S.copy()
    j = 0
    broken[np.flatnonzero(~S[:, j])[0], j] = True  # one more word allowed after context 0
    assert np.abs(ntp_max_margin(broken, method="admm") - ref).max() > 1e-2


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("lam", [1e-2, 1e-3, 1e-4])
def test_regularized_first_order_matches_the_cvxpy_program(seed, lam):
    data = _instance(seed, sizes=(1, 2 + seed))
    ref = ntp_regularized_optimum(data.P, data.pi, lam, method="cvxpy")
    for method in FIRST_ORDER:
        assert _rel(ntp_regularized_optimum(data.P, data.pi, lam, method=method), ref) < 1e-4, method
    assert _rel(ntp_regularized_optimum(data.P, data.pi, lam, method="reduced"), ref) < 1e-4


def _duality_gap(L, P, pi, lam):
    """Primal value − dual value at Y = α π (p − softmax(ℓ)) with α = min(1, λ/‖π (p − softmax)‖_op)."""
    Z = L - L.max(0)
    s = np.exp(Z) / np.exp(Z).sum(0)
    primal = pi @ (np.log(np.exp(Z).sum(0)) + L.max(0) - (P * L).sum(0)) + lam * _nuc(L)
    alpha = min(1.0, lam / np.linalg.norm(pi * (P - s), 2))
    q = (1 - alpha) * P + alpha * s
    return primal - pi @ -(np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0)).sum(0)


@pytest.mark.parametrize("method", FIRST_ORDER)
@pytest.mark.parametrize("lam", [1e-3, 1e-7])
def test_regularized_first_order_is_optimal_by_its_duality_gap(lam, method):
    data = synthetic(20, 10, 7, (1, 3), (1, 4), seed=0)
    L = ntp_regularized_optimum(data.P, data.pi, lam, method=method)
    gap = _duality_gap(L, data.P, data.pi, lam)
    assert 0 <= gap < 1e-6 * _duality_gap(np.zeros_like(L), data.P, data.pi, lam)  # relative to the gap at 0
    assert _duality_gap(L * 1.01, data.P, data.pi, lam) > 10 * gap  # a perturbed answer is not certified


def test_auto_polishes_the_interior_point_answer_at_small_lambda():
    data = synthetic(20, 10, 7, (1, 3), (1, 4), seed=10)  # the instance where CLARABEL's minimizer was ≈ 3 % off

    def objective(L):
        return ns._CE(data.P, data.pi, np.ones(10), np.ones(20))(L, grad=False) + 1e-7 * np.linalg.norm(L, "nuc")

    auto = ntp_regularized_optimum(data.P, data.pi, 1e-7)
    ref = ntp_regularized_optimum(data.P, data.pi, 1e-7, method="cvxpy")
    tight = ntp_regularized_optimum(data.P, data.pi, 1e-7, method="fista")
    assert objective(auto) <= objective(ref)
    # the polished answer is nearer the first-order optimum than the interior-point one it started from
    assert np.linalg.norm(auto - tight) < 0.5 * np.linalg.norm(ref - tight)


@pytest.mark.parametrize("method", FIRST_ORDER)
def test_regularized_first_order_fails_for_perturbed_frequencies(method):
    data = _instance(5)
    ref = ntp_regularized_optimum(data.P, data.pi, 1e-3, method="cvxpy")
    pi = data.pi.copy()
    pi[[0, 1]] = pi[[1, 0]] if pi[0] != pi[1] else (pi[0] * 1.5, pi[1] * 0.5)
    assert _rel(ntp_regularized_optimum(data.P, pi, 1e-3, method=method), ref) > 1e-2


def test_first_order_above_the_zero_threshold_is_zero_and_non_convergence_raises():
    data = _instance(6)
    for method, name in zip(FIRST_ORDER, ("FISTA", "Anderson"), strict=True):
        assert not np.any(ntp_regularized_optimum(data.P, data.pi, 10.0, method=method))
        with pytest.raises(RuntimeError, match=f"{name}.*no convergence"):
            ns.regularized(data.P, data.pi, 1e-5, method, max_iter=5)
    with pytest.raises(RuntimeError, match="ADMM.*no convergence"):
        ns.max_margin(data.S, "admm", max_iter=3)


def test_unknown_method_is_rejected():
    data = _instance(7)
    with pytest.raises(ValueError, match="method='admm' is not allowed"):
        ntp_regularized_optimum(data.P, data.pi, 1e-3, method="admm")
    with pytest.raises(ValueError, match="method='fista' is not allowed"):
        ntp_max_margin(data.S, method="fista")


def test_svt_and_margin_projection_are_exact():
    rng = np.random.default_rng(0)
    for shape in ((5, 9), (9, 5)):
        Y = rng.standard_normal(shape)
        U, s, Vt = np.linalg.svd(Y, full_matrices=False)
        X, kept = ns.svt(Y, 1.0)
        np.testing.assert_allclose(X, (U * np.maximum(s - 1, 0)) @ Vt, atol=1e-12)
        np.testing.assert_allclose(np.sort(kept)[::-1], s[s > 1] - 1, atol=1e-12)
    for _ in range(200):
        R, G = rng.integers(2, 8), rng.integers(1, 4)
        S = rng.random((R, G)) < 0.4
        S[rng.integers(0, R, G), np.arange(G)] = True
        w, Y = rng.random((R, G)) + 0.2, np.round(2 * rng.standard_normal((R, G)), 1)  # rounded: ties
        Z = ns.project_margins(Y, S, w)
        for g in range(G):
            s, y, wg = S[:, g], Y[:, g], w[:, g]
            dist = lambda a, s=s, y=y, wg=wg: ((wg * np.where(s, a, np.minimum(y / wg, a - 1)) - y) ** 2).sum()  # noqa: E731
            a = Z[s, g][0] / wg[s][0]
            assert dist(a) <= minimize_scalar(dist, bracket=(a - 1, a + 1), tol=1e-12).fun + 1e-12
            assert np.allclose(Z[s, g] / wg[s], a) and np.all(Z[~s, g] / wg[~s] <= a - 1 + 1e-12)


def test_adaptive_step_fista_reaches_the_fixed_step_answer_in_fewer_iterations():
    data = synthetic(80, 30, 20, (1, 5), seed=0)
    f = ns._CE(data.P, data.pi, np.ones(30), np.ones(80))
    tol = 1e-8 * np.linalg.norm(f(np.zeros((30, 80)))[1])
    X_fixed, it_fixed = ns._fista(f, 1e-4, np.zeros((30, 80)), tol, 100_000)
    X_adapt, it_adapt = ns._fista_adaptive(f, 1e-4, np.zeros((30, 80)), tol, 100_000)
    assert _rel(X_adapt, X_fixed) < 1e-5 and it_adapt < 0.9 * it_fixed
    with pytest.raises(RuntimeError, match="no convergence"):
        ns._fista_adaptive(f, 1e-4, np.zeros((30, 80)), tol, 20)


def test_anderson_reaches_the_fista_answer_in_fewer_iterations_and_never_goes_uphill(monkeypatch):
    data = synthetic(80, 30, 20, (1, 5), seed=0)
    f = ns._CE(data.P, data.pi, np.ones(30), np.ones(80))
    tol = 1e-8 * np.linalg.norm(f(np.zeros((30, 80)))[1])
    X_fista, it_fista = ns._fista_adaptive(f, 1e-4, np.zeros((30, 80)), tol, 100_000)
    seen = []  # objective at every prox point Anderson evaluates (a candidate is kept only if it is not uphill)
    svt = ns.svt

    def recording_svt(Y, tau):
        out = svt(Y, tau)
        seen.append(out[0])
        return out

    monkeypatch.setattr(ns, "svt", recording_svt)
    X_aa, it_aa = ns._anderson(f, 1e-4, np.zeros((30, 80)), tol, 100_000)
    monkeypatch.undo()
    assert _rel(X_aa, X_fista) < 1e-5 and it_aa < 0.9 * it_fista
    F = [f(Y, grad=False) + 1e-4 * _nuc(Y) for Y in seen]
    best = np.minimum.accumulate(F)
    assert F[-1] == pytest.approx(best[-1], rel=1e-12)  # the answer is the best point seen
    with pytest.raises(RuntimeError, match="no convergence"):
        ns._anderson(f, 1e-4, np.zeros((30, 80)), tol, 20)
