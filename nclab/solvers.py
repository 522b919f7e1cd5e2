"""Symmetry-reduced convex programs for the class-collapsed UFM (what ``nclab.convex`` solves at large k).

Classes with identical data (size n_c and loss parameters) are interchangeable, so each convex program is
invariant under permuting them and has an invariant optimum (average any optimum over the group; unique
optima are invariant). An invariant k×k matrix has one diagonal value d_g per group and one value A_gh per
pair of groups (A_gg: off-diagonal inside group g). With u_g = 1_g/√k_g, X = M N^{1/2} acts on 1_g^⊥ (inside
group g) as the scalar √n_g (d_g − A_gg), and on span{u_g} as the G×G matrix
X̃_gh = √(k_g k_h n_h) A_gh (g ≠ h), X̃_hh = √n_h (d_h + (k_h − 1) A_hh); hence
‖X‖_* = Σ_g (k_g − 1) √n_g |d_g − A_gg| + ‖X̃‖_*, and the same block structure gives PSD-ness of Grams.
Each program is still solved numerically (cvxpy, CLARABEL) — on G² + G variables instead of k².
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np

__all__ = []  # backends of nclab.convex, which validates every input before calling them

_TOLS = (1e-10, 1e-9, 1e-8, 1e-7)
_SMALL = 200  # programs with at most this many scalar variables (e.g. reduced ones) first try gaps 1e-12, 1e-11
_OFF = -800.0  # log-weight of an absent logit: exp(-800) == 0 in float64


def _attempt(prob: cp.Problem, solver: str, **opts) -> str:
    with warnings.catch_warnings():  # the status is checked below: an inaccurate answer is never returned
        warnings.simplefilter("ignore")
        try:
            prob.solve(solver=solver, **opts)
        except cp.error.SolverError:
            return "solver error"
    return prob.status


def solve(prob: cp.Problem, what: str) -> str:
    """Solve with CLARABEL at tolerance 1e-10 (1e-12, then 1e-11 first for programs of ≤ ``_SMALL`` variables);
    while the status is inaccurate, try CLARABEL at 1e-9, SCS at 1e-9 (a different, first-order method), then
    CLARABEL at 1e-8 and 1e-7. Returns the status; raises RuntimeError when no attempt is accurate. (The minimizer
    is accurate to about the square root of the tolerance reached: 1e-5 at 1e-10, hence 1e-12 where it is cheap.)"""
    tols = ((1e-12, 1e-11) if prob.size_metrics.num_scalar_variables <= _SMALL else ()) + _TOLS
    clarabel = [(cp.CLARABEL, {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol}) for tol in tols]
    attempts = clarabel[:-3] + [(cp.SCS, {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 20_000})] + clarabel[-3:]
    status = None
    for solver, opts in attempts:
        status = _attempt(prob, solver, **opts)
        if status == cp.OPTIMAL:
            return status
    raise RuntimeError(f"{what}: the solver did not reach an accurate optimum (last status {status!r})")


def class_groups(*columns) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group classes whose per-class data (the given length-k arrays) are identical.
    Returns gi (k,: group of each class), first (G,: one class of each group), counts k_g (G,)."""
    data = np.column_stack([np.asarray(c, dtype=float) for c in columns])
    _, first, gi, counts = np.unique(data, axis=0, return_index=True, return_inverse=True, return_counts=True)
    return gi.reshape(-1), first, counts


def expand(A: np.ndarray, diag: np.ndarray, gi: np.ndarray) -> np.ndarray:
    """The k×k invariant matrix with off-diagonal entries A[g_i, g_j] and diagonal diag[g_i]."""
    M = A[gi][:, gi]
    np.fill_diagonal(M, diag[gi])
    return M


def _nuclear(d, A, kg, ng):
    """‖X‖_* of the invariant X = M N^{1/2} (cvxpy expression in d (G,), A (G×G))."""
    G = kg.size
    S = np.sqrt(np.outer(kg, kg) * ng[None, :])
    np.fill_diagonal(S, np.sqrt(ng) * (kg - 1))
    Xt = cp.multiply(S, A) + cp.diag(cp.multiply(np.sqrt(ng), d))
    inner = cp.sum(cp.multiply((kg - 1) * np.sqrt(ng), cp.abs(d - cp.diag(A)))) if np.any(kg > 1) else 0
    return (cp.normNuc(Xt) if G > 1 else cp.abs(Xt[0, 0])) + inner


def margin_svm(sizes, row, col) -> np.ndarray:
    """min ‖M N^{1/2}‖_* s.t. col_c (row_c M_cc − row_c' M_c'c) ≥ 1 (c' ≠ c), symmetry-reduced; k×k M."""
    sizes = np.asarray(sizes, float)
    gi, first, kg = class_groups(sizes, row, col)
    ng, r, c = sizes[first], np.asarray(row, float)[first], np.asarray(col, float)[first]
    G = kg.size
    d, A = cp.Variable(G), cp.Variable((G, G))
    present = np.ones((G, G)) - np.diag(kg == 1)  # pairs (c' in g, c in h) that exist with c' ≠ c
    margins = cp.multiply(c[None, :], np.ones((G, 1)) @ cp.reshape(cp.multiply(r, d), (1, G), order="C")
                          - cp.multiply(r[:, None] * np.ones((1, G)), A))
    cons = [cp.multiply(present, margins) >= present]
    if np.any(kg == 1):
        cons.append(cp.multiply(np.diag(kg == 1).astype(float), A) == 0)
    prob = cp.Problem(cp.Minimize(_nuclear(d, A, kg, ng)), cons)
    solve(prob, "margin SVM")
    return expand(np.asarray(A.value), np.asarray(d.value), gi)


def regularized(sizes, lam: float, w, p) -> tuple[np.ndarray, float]:
    """min_M Σ_c w_c [lse_c'(Δ_c' δ_c M_c'c + ι_c') − (Δ_c δ_c M_cc + ι_c)] + λ‖M N^{1/2}‖_* (reduced).
    Returns (M, optimal value); M = 0 exactly when λ ≥ ‖∇_X L(0)‖_op (the zero threshold of this loss)."""
    sizes = np.asarray(sizes, float)
    k = sizes.size
    if lam >= zero_threshold_of(sizes, w, p):
        top = p["iota"].max()
        return np.zeros((k, k)), float(w @ (np.log(np.exp(p["iota"] - top).sum()) + top - p["iota"]))
    gi, first, kg = class_groups(sizes, w, p["Delta"], p["delta"], p["iota"])
    ng, wg = sizes[first], w[first]
    Dg, dg, ig = p["Delta"][first], p["delta"][first], p["iota"][first]
    G = kg.size
    d, A = cp.Variable(G), cp.Variable((G, G))
    count = np.outer(kg, np.ones(G)) - np.eye(G)  # how many c' of group g compete in a column of group h
    logc = np.where(count > 0, np.log(np.maximum(count, 1)), _OFF)
    scale = Dg[:, None] * dg[None, :]
    mask = (count > 0).astype(float)
    others = logc + cp.multiply(scale * mask, A) + (ig[:, None] * mask)
    own = cp.reshape(cp.multiply(Dg * dg, d) + ig, (1, G), order="C")
    lse = cp.log_sum_exp(cp.vstack([own, others]), axis=0)
    loss = cp.sum(cp.multiply(kg * wg, lse - cp.multiply(Dg * dg, d) - ig))
    cons = [cp.multiply(np.diag(kg == 1).astype(float), A) == 0] if np.any(kg == 1) else []
    prob = cp.Problem(cp.Minimize(loss + lam * _nuclear(d, A, kg, ng)), cons)
    solve(prob, "regularized_optimum")
    return expand(np.asarray(A.value), np.asarray(d.value), gi), float(prob.value)


def zero_threshold_of(sizes, w, p) -> float:
    """‖∇_X L(0)‖_op with X = M N^{1/2}: column c of ∇_M L(0) is w_c δ_c Δ ⊙ (softmax(ι) − e_c)."""
    sizes = np.asarray(sizes, float)
    soft = np.exp(p["iota"] - p["iota"].max())
    soft /= soft.sum()
    grad0 = (p["Delta"][:, None] * p["delta"][None, :]) * (soft[:, None] - np.eye(sizes.size)) * w[None, :]
    return float(np.linalg.norm(grad0 / np.sqrt(sizes)[None, :], 2))


def scl(sizes, tau: float, relu: bool) -> np.ndarray:
    """Reduced SCL program over invariant Grams Ĝ (diag 1, off-diagonal B[g_i, g_j]); Ĝ ⪰ 0 ⇔ the G×G
    matrix S ⊙ B + diag(1) (S_gh = √(k_g k_h), S_gg = k_g − 1) ⪰ 0 and B_gg ≤ 1 where k_g ≥ 2.
    For τ < 0.1 the objective Σ_h ω_h log(n_h − 1 + Σ_g K_gh e^{(B_gh − 1)/τ}) is numerically flat, so it is
    minimized by majorize–minimize: log(a + S) ≤ log(a + S₀) + (S − S₀)/(a + S₀), each step a well-scaled
    log-sum-exp of (B_gh − 1)/τ (same KKT point; converges in a few steps when S ≪ a)."""
    sizes = np.asarray(sizes, float)
    gi, first, kg = class_groups(sizes)
    ng = sizes[first]
    G = kg.size
    B = cp.Variable((G, G), symmetric=True)
    S = np.sqrt(np.outer(kg, kg))
    np.fill_diagonal(S, kg - 1)
    cons = [cp.multiply(S, B) + np.eye(G) >> 0]
    if np.any(kg > 1):
        cons.append(cp.multiply(np.diag(kg > 1).astype(float), B) <= 1)
    if np.any(kg == 1):
        cons.append(cp.multiply(np.diag(kg == 1).astype(float), B) == 0)
    if relu:
        cons.append(B >= 0)
    K = np.outer(kg * ng, np.ones(G)) - np.diag(ng)  # negatives of group g seen by an anchor of group h
    mask = (K > 0).astype(float)
    logK = np.where(K > 0, np.log(np.maximum(K, 1)), _OFF)
    anchors = ng >= 2
    omega = np.where(anchors, kg * ng, 0.0)
    a = np.maximum(ng - 1, 1)
    expo = logK + cp.multiply(mask, B - 1) / tau  # log of K_gh e^{(B_gh − 1)/τ}
    if tau >= 0.1:
        own = np.log(a)[None, :] * np.ones((1, G))
        lse = cp.log_sum_exp(cp.vstack([own, expo]), axis=0)
        prob = cp.Problem(cp.Minimize(cp.sum(cp.multiply(omega, lse)) * tau), cons)
        solve(prob, "scl_gram")
        return expand(np.asarray(B.value), np.ones(G), gi)
    Bv = np.zeros((G, G))
    for _ in range(50):
        Sh = (np.exp(logK + mask * (Bv - 1) / tau)).sum(0)
        v = omega / (a + Sh)
        cols = np.flatnonzero(anchors)
        prob = cp.Problem(cp.Minimize(tau * cp.log_sum_exp(expo[:, cols] + np.log(v[cols])[None, :])), cons)
        solve(prob, "scl_gram")
        new = np.asarray(B.value)
        change = np.abs(new - Bv).max()
        Bv = new
        if change < 1e-9:
            break
    return expand(Bv, np.ones(G), gi)
