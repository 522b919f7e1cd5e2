"""Exact answers by convex programming (cvxpy; CLARABEL handles the SDP and exponential cones).

Both programs use the class-collapsed form Z = M Y (M: k×k, column c = logits of class c), for
which ‖Z‖_* = ‖M N^{1/2}‖_* and Σ_i CE(z_i; y_i) = Σ_c n_c CE(M_{:,c}; c).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from nclab import ntp_solvers, solvers, solvers_fo, solvers_scl
from nclab._checks import array, real
from nclab.frames import Geometry, checked_sizes, geometry_from_class_logits
from nclab.losses import LogitAdjustedCE

__all__ = [
    "nuclear_svm", "cs_svm", "regularized_optimum", "zero_threshold", "scl_gram", "scl_gram_samples",
    "ntp_max_margin", "ntp_regularized_optimum"
]

_METHODS = ("auto", "full")
AUTO_GROUPS = 10  # "auto": the reduced cvxpy program up to 10 class groups (≤ 0.4 s; 5 s at 20), first-order above


def _method(method: str, first_order: bool = False) -> str:
    allowed = _METHODS + (("first-order",) if first_order else ())
    if method not in allowed:
        raise ValueError(f"method={method!r} is not allowed: use 'auto' (symmetry-reduced program) or 'full' "
                         "(the k×k program, slow above k ≈ 30; the reference in tests)"
                         + (" or 'first-order' (certified Burer–Monteiro L-BFGS: nclab.solvers_fo, solvers_scl)"
                            if first_order else ""))
    return method


class_sizes = checked_sizes  # class sizes, rejecting values that overflow


def nuclear_svm(sizes, method: str = "auto") -> np.ndarray:
    """NN-SVM: argmin_M ‖M N^{1/2}‖_* s.t. M_cc − M_c'c ≥ 1 (c' ≠ c). Returns the k×k class logits.
    ``method``: "auto" solves the symmetry-reduced program (``nclab.solvers``; classes of equal size are
    interchangeable, so k = 1000 step-imbalanced classes is a 2-group program) up to ``AUTO_GROUPS`` groups and
    the certified first-order solver above (``nclab.solvers_fo.margin_svm``; falls back to the reduced program
    when not certified), "first-order" forces that solver, "full" the k×k program."""
    sizes = class_sizes(sizes)
    return _margin_svm(sizes, np.ones(sizes.size), np.ones(sizes.size), _method(method, first_order=True))[0]


def cs_svm(sizes, delta, kind: str = "cdt", method: str = "auto") -> Geometry:
    """Cost-sensitive SVM, the λ → 0 limit of logit-adjusted CE (class-collapsed, CLARABEL):
    CDT  min ‖M N^{1/2}‖_* s.t. δ_c M_cc − δ_c' M_c'c ≥ 1;  LDT  min ‖M N^{1/2}‖_* s.t. δ_c (M_cc − M_c'c) ≥ 1.
    ``delta``: k positive factors (only their ratios change the normalized geometry); ``method`` as in
    ``nuclear_svm`` (``info["method"]`` says which ran)."""
    sizes = class_sizes(sizes)
    _method(method, first_order=True)
    delta = np.asarray(delta, dtype=float)
    if delta.shape != sizes.shape:
        raise ValueError(f"delta has {delta.size} entries but there are k={sizes.size} classes")
    if not np.all(np.isfinite(delta)) or np.any(delta <= 0):
        raise ValueError(f"delta={delta.tolist()} must be finite and > 0 for every class")
    if kind == "cdt":
        M, used = _margin_svm(sizes, delta, np.ones(sizes.size), method)
    elif kind == "ldt":
        M, used = _margin_svm(sizes, np.ones(sizes.size), delta, method)
    else:
        raise ValueError(f"kind={kind!r} is not allowed: use 'cdt' or 'ldt'")
    geom = geometry_from_class_logits(M, sizes, name=f"CS-SVM ({kind.upper()})")
    geom.info.update({"delta": delta, "kind": kind, "method": used})
    return geom


def _margin_svm(sizes: np.ndarray, row: np.ndarray, col: np.ndarray, method: str) -> tuple[np.ndarray, str]:
    """min ‖M N^{1/2}‖_* s.t. col_c (row_c M_cc − row_c' M_c'c) ≥ 1 for all c' ≠ c. Returns (M, method used)."""
    groups = solvers.class_groups(sizes, row, col)[2].size
    if method == "first-order" or (method == "auto" and groups > AUTO_GROUPS):
        try:
            return solvers_fo.margin_svm(sizes, row, col)[0], "first-order"
        except RuntimeError:  # not certified to solvers_fo.SVM_TOL; "auto" falls back to the reduced program
            if method == "first-order":
                raise
    if method == "auto":
        return solvers.margin_svm(sizes, row, col), "reduced"
    k = sizes.size
    M = cp.Variable((k, k))
    D = cp.multiply(row[:, None] * np.ones((1, k)), M)
    diag = cp.reshape(cp.diag(D), (1, k), order="C")
    margins = cp.multiply(np.ones((k, 1)) * col[None, :], np.ones((k, 1)) @ diag - D)
    off = 1.0 - np.eye(k)
    prob = cp.Problem(cp.Minimize(cp.normNuc(M @ np.diag(np.sqrt(sizes.astype(float))))),
                      [cp.multiply(off, margins) >= off])
    solvers.solve(prob, "margin SVM")
    return np.asarray(M.value), "full"


def regularized_optimum(sizes, lam: float, reduction: str = "mean", loss: LogitAdjustedCE | None = None,
                        method: str = "auto") -> Geometry:
    """Exact optimum of the ridge-regularized UFM  min_{W,H} L(WH) + λ/2(‖W‖²+‖H‖²), solved as
    min_M L(MY) + λ‖M N^{1/2}‖_*, with L = (1/n)Σ_i ℓ (reduction="mean") or Σ_i ℓ ("sum") and ℓ the
    CE or any ``LogitAdjustedCE`` (ω, Δ, ι, δ). ``info["value"]`` holds the optimal objective. Above the
    zero threshold (λ ≥ ‖∇_X L(0)‖_op) the optimum is exactly M = 0. ``method``: "auto" solves the
    symmetry-reduced cvxpy program when the classes form at most ``AUTO_GROUPS`` groups of identical classes and
    the first-order solver above (long-tailed sizes; it falls back to cvxpy unless its duality gap certifies
    it), "first-order" forces ``nclab.solvers_fo`` (``info["certificate"]`` holds its duality gap), "full" the
    k×k cvxpy program. ``info["method"]`` says which ran."""
    sizes = class_sizes(sizes)
    lam = real("lam", lam, 0.0, lo_open=True)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction={reduction!r} is not allowed: use 'mean' or 'sum'")
    k, n = sizes.size, int(sizes.sum())
    p = (loss or LogitAdjustedCE()).arrays(k)
    w = (sizes / n if reduction == "mean" else sizes.astype(float)) * p["omega"]
    method = _method(method, first_order=True)
    groups = solvers.class_groups(sizes, w, p["Delta"], p["delta"], p["iota"])[2].size
    if method == "first-order" or (method == "auto" and groups > AUTO_GROUPS):
        try:
            return _geometry(sizes, *solvers_fo.regularized(sizes, lam, w, p), lam, reduction, "first-order")
        except RuntimeError:  # not certified to solvers_fo.GAP_TOL; "auto" falls back to the reduced program
            if method == "first-order":
                raise
    if method == "auto" or lam >= solvers.zero_threshold_of(sizes, w, p):
        M, value = solvers.regularized(sizes, lam, w, p)
        return _geometry(sizes, M, value, None, lam, reduction, "reduced")
    M = cp.Variable((k, k))
    A = cp.multiply(p["Delta"][:, None] * p["delta"][None, :], M) + p["iota"][:, None] * np.ones((1, k))
    ce = w @ cp.log_sum_exp(A, axis=0) - w @ cp.diag(A)
    prob = cp.Problem(cp.Minimize(ce + lam * cp.normNuc(M @ np.diag(np.sqrt(sizes.astype(float))))))
    solvers.solve(prob, "regularized_optimum")
    return _geometry(sizes, np.asarray(M.value), float(prob.value), None, lam, reduction, "full")


def _geometry(sizes, M, value, certificate, lam, reduction, method) -> Geometry:
    geom = geometry_from_class_logits(M, sizes, name=f"ridge λ={lam:g}")
    geom.info.update({"value": value, "lam": lam, "reduction": reduction, "method": method})
    if certificate is not None:
        geom.info["certificate"] = certificate
    return geom


def zero_threshold(sizes, reduction: str = "mean") -> float:
    """λ₀ = ‖∇L(0)‖_op = σ_max(P Y)/n (mean) or σ_max(P Y) (sum): for λ ≥ λ₀ the optimum is Z = 0."""
    sizes = class_sizes(sizes)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction={reduction!r} is not allowed: use 'mean' or 'sum'")
    P = np.eye(sizes.size) - 1.0 / sizes.size
    s = float(np.sqrt(np.linalg.eigvalsh(P @ np.diag(sizes.astype(float)) @ P)[-1]))
    return s / sizes.sum() if reduction == "mean" else s


def scl_gram(sizes, tau: float, relu: bool = True, method: str = "auto") -> np.ndarray:
    """Exact k×k Gram of the collapsed class embeddings minimizing the full-batch SCL (convex relaxation,
    tight): min_Ĝ Σ_{c: n_c≥2} n_c [log((n_c−1)e^{1/τ} + Σ_{c'≠c} n_c' e^{Ĝ_cc'/τ}) − 1/τ]
    s.t. Ĝ ⪰ 0, diag Ĝ = 1 (and Ĝ ≥ 0 with ``relu``). τ ∈ [0.01, 10]; below 0.1 the objective is flat to
    double precision and is minimized by majorize–minimize (``nclab.solvers.scl``). ``method``: "auto" solves the
    symmetry-reduced program, or with ``relu``, τ ≥ 0.1 and more than ``AUTO_GROUPS`` groups the certified
    first-order solver (``nclab.solvers_scl``; falls back to the reduced program when not certified),
    "first-order" forces that solver (τ ≥ 0.1), "full" the k×k program (τ ≥ 0.1, k ≤ 50). Returns Ĝ."""
    sizes = class_sizes(sizes)
    tau = real("tau", tau, 0.01, 10.0)
    if np.all(sizes < 2):
        raise ValueError(f"class_sizes={sizes.tolist()}: the SCL needs a class with at least 2 examples "
                         "(an anchor with a positive); with none the objective is constant")
    method = _method(method, first_order=True)
    if method == "first-order" and tau < 0.1:
        raise ValueError(f"method='first-order' solves only τ >= 0.1 (got tau={tau:g}): use 'auto'")
    many = solvers.class_groups(sizes)[2].size > AUTO_GROUPS
    if method == "first-order" or (method == "auto" and relu and tau >= 0.1 and many):
        try:
            return solvers_scl.scl_first_order(sizes, tau, relu)[0]
        except RuntimeError:  # not certified to solvers_scl.SCL_TOL; "auto" falls back to the reduced program
            if method == "first-order":
                raise
    if method == "auto":
        return solvers.scl(sizes, tau, relu)
    k = sizes.size
    if tau < 0.1 or k > 50:
        raise ValueError(f"method='full' solves only τ >= 0.1 and k <= 50 (got tau={tau:g}, k={k}): use 'auto'")
    G = cp.Variable((k, k), PSD=True)
    terms = []
    for c in range(k):
        if sizes[c] < 2:
            continue
        others = [o for o in range(k) if o != c]
        logits = cp.hstack([np.log(sizes[c] - 1) + 1 / tau]
                           + [np.log(sizes[o]) + G[c, o] / tau for o in others])
        terms.append(sizes[c] * (cp.log_sum_exp(logits) - 1 / tau))
    cons = [cp.diag(G) == 1] + ([G >= 0] if relu else [])
    prob = cp.Problem(cp.Minimize(cp.sum(cp.hstack(terms))), cons)
    solvers.solve(prob, "scl_gram")
    return np.asarray(G.value)


def scl_gram_samples(y, tau: float, relu: bool = True) -> tuple[np.ndarray, float]:
    """The n×n version (small n): min_G Σ_{i: P(i)≠∅} [logsumexp_{ℓ≠i}(G_iℓ/τ) − mean_{j∈P(i)} G_ij/τ],
    G ⪰ 0, diag G = 1 (G ≥ 0 with ``relu``). Returns (G, optimal value)."""
    from nclab.labels import one_hot

    Y = one_hot(y)
    tau = real("tau", tau, 0.0, lo_open=True)
    n = Y.shape[1]
    same = (Y.T @ Y) - np.eye(n)
    G = cp.Variable((n, n), PSD=True)
    terms = []
    for i in range(n):
        pos = np.flatnonzero(same[i])
        if pos.size == 0:
            continue
        others = [j for j in range(n) if j != i]
        terms.append(cp.log_sum_exp(G[i, others] / tau) - cp.sum(G[i, pos]) / (pos.size * tau))
    cons = [cp.diag(G) == 1] + ([G >= 0] if relu else [])
    prob = cp.Problem(cp.Minimize(cp.sum(cp.hstack(terms))), cons)
    solvers.solve(prob, "scl_gram_samples")
    return np.asarray(G.value), float(prob.value)


_NTP_METHODS = {"max_margin": ("auto", "cvxpy", "reduced", "admm"),
                "regularized": ("auto", "cvxpy", "reduced", "fista", "anderson")}


def _ntp_method(method, kind: str) -> str:
    allowed = _NTP_METHODS[kind]
    if method not in allowed:
        raise ValueError(f"method={method!r} is not allowed: use one of {allowed} ('cvxpy': the V×m program, the "
                         "reference; 'reduced': cvxpy on the symmetry-reduced program; the others: first-order "
                         "methods on it; 'auto': 'reduced' when it is small, else a first-order method)")
    return method


def ntp_max_margin(S, method: str = "auto") -> np.ndarray:
    """NTP max-margin logits (V×m): min ‖L‖_* s.t. ℓ_j[z] = ℓ_j[z'] for z, z' ∈ S_j and
    ℓ_j[z] − ℓ_j[v] ≥ 1 for z ∈ S_j, v ∉ S_j. It sees only the support pattern S (bool V×m).
    ``method`` (``nclab.ntp_solvers``): "auto" reduces to one column per distinct support set and one row per
    distinct word pattern, then solves that program with cvxpy when small, else by ADMM; "cvxpy" solves the
    V×m program (the reference); "reduced" / "admm" force one of the two."""
    S = array("S", S, ndim=2)
    if np.any((S != 0) & (S != 1)):
        raise ValueError("S must be a 0/1 (boolean) support matrix, got other values")
    S = S.astype(bool)
    if S.shape[0] < 2 or np.any(S.sum(0) == 0):
        raise ValueError("S must be a V×m support matrix with a non-empty support in every column")
    return ntp_solvers.max_margin(S, _ntp_method(method, "max_margin"))


def ntp_regularized_optimum(P, pi, lam: float, method: str = "auto") -> np.ndarray:
    """Exact min_L Σ_j π_j Σ_z p_j(z)(−log softmax(ℓ_j)_z) + λ‖L‖_* (the NTP-UFM with ridge λ/2, d ≥ rank).
    ``method``: "auto" reduces to one column per distinct (p_j, π_j) and one row per distinct row of P, then
    solves with cvxpy when small, else by Anderson-accelerated prox-gradient with singular-value thresholding
    (stopped at a relative prox-gradient residual of 1e-8; RuntimeError if it does not get there); "cvxpy"
    solves the V×m program (the reference); "reduced" / "anderson" force one of the two, "fista" solves the
    reduced program by adaptive FISTA instead (same stop rule)."""
    from nclab.labels import validate_distributions

    P, pi = validate_distributions(P, pi)
    lam = real("lam", lam, 0.0, lo_open=True)
    return ntp_solvers.regularized(P, pi, lam, _ntp_method(method, "regularized"))
