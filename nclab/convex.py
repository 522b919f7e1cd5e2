"""Exact answers by convex programming (cvxpy; CLARABEL handles the SDP and exponential cones).

Both programs use the class-collapsed form Z = M Y (M: k×k, column c = logits of class c), for
which ‖Z‖_* = ‖M N^{1/2}‖_* and Σ_i CE(z_i; y_i) = Σ_c n_c CE(M_{:,c}; c).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from nclab._checks import real
from nclab.frames import Geometry, geometry_from_class_logits
from nclab.labels import class_sizes

_SOLVER_OPTS = {"solver": cp.CLARABEL, "tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}


def nuclear_svm(sizes) -> np.ndarray:
    """NN-SVM: argmin_M ‖M N^{1/2}‖_* s.t. M_cc − M_c'c ≥ 1 (c' ≠ c). Returns the k×k class logits."""
    sizes = class_sizes(sizes)
    k = sizes.size
    M = cp.Variable((k, k))
    root = np.sqrt(sizes.astype(float))
    off = ~np.eye(k, dtype=bool)
    diag = cp.reshape(cp.diag(M), (1, k), order="C")
    margins = cp.multiply(np.ones((k, 1)) @ diag - M, off.astype(float))
    cons = [margins[i, j] >= 1 for i, j in zip(*np.nonzero(off), strict=True)]
    prob = cp.Problem(cp.Minimize(cp.normNuc(M @ np.diag(root))), cons)
    prob.solve(**_SOLVER_OPTS)
    _check_status(prob, "nuclear_svm")
    return np.asarray(M.value)


def regularized_optimum(sizes, lam: float, reduction: str = "mean") -> Geometry:
    """Exact optimum of the ridge-regularized CE-UFM  min_{W,H} L(WH) + λ/2(‖W‖²+‖H‖²), solved as
    min_M L(MY) + λ‖M N^{1/2}‖_*, with L = (1/n)Σ_i CE (reduction="mean") or Σ_i CE ("sum").
    ``info["value"]`` holds the optimal objective (equal to the UFM optimum when d ≥ k−1)."""
    sizes = class_sizes(sizes)
    lam = real("lam", lam, 0.0, lo_open=True)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction={reduction!r} is not allowed: use 'mean' or 'sum'")
    k, n = sizes.size, int(sizes.sum())
    w = sizes / n if reduction == "mean" else sizes.astype(float)
    M = cp.Variable((k, k))
    ce = w @ cp.log_sum_exp(M, axis=0) - w @ cp.diag(M)
    prob = cp.Problem(cp.Minimize(ce + lam * cp.normNuc(M @ np.diag(np.sqrt(sizes.astype(float))))))
    prob.solve(**_SOLVER_OPTS)
    _check_status(prob, "regularized_optimum")
    geom = geometry_from_class_logits(M.value, sizes, name=f"ridge λ={lam:g}")
    geom.info.update({"value": float(prob.value), "lam": lam, "reduction": reduction})
    return geom


def _check_status(prob: cp.Problem, what: str) -> None:
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise RuntimeError(f"{what}: the solver returned status {prob.status!r}")


def zero_threshold(sizes, reduction: str = "mean") -> float:
    """λ₀ = ‖∇L(0)‖_op = σ_max(P Y)/n (mean) or σ_max(P Y) (sum): for λ ≥ λ₀ the optimum is Z = 0."""
    from nclab.seli import sel_singular_values

    sizes = class_sizes(sizes)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction={reduction!r} is not allowed: use 'mean' or 'sum'")
    s = float(sel_singular_values(sizes)[0])
    return s / sizes.sum() if reduction == "mean" else s
