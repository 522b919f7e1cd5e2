"""First-order exact solvers for class sizes with no symmetry to reduce (e.g. long-tailed, all distinct).

With X = M N^{1/2} the regularized program is min_X f(X) + λ‖X‖_*, f(X) = Σ_c w_c [lse(a_c) − a_cc],
a_c = K_{:,c} ⊙ x_c + ι (K_{c'c} = Δ_c' δ_c / √n_c). Burer–Monteiro: ‖X‖_* = min_{WHᵀ=X} ½(‖W‖² + ‖H‖²)
(W, H: k×k), so we minimize the smooth F(W, H) = f(WHᵀ) + λ/2(‖W‖² + ‖H‖²) by L-BFGS (numpy, float64).
F is non-convex; what is returned is certified by convex duality: with G = ∇f(X) and α = min(1, λ/‖G‖_op),
Z = αG is dual feasible and gap = f(X) + λ‖X‖_* + f*(αG) ≥ objective − optimum (f* in closed form below).
"""

from __future__ import annotations

import numpy as np

__all__ = []  # backends of nclab.convex, which validates every input before calling them

GAP_TOL = 1e-8  # certified: (objective − optimum) ≤ GAP_TOL · objective (float64 floor ≈ 1e-10)


class CollapsedCE:
    """f(X) = Σ_c w_c [lse(a_c) − a_cc], a_c = K_{:,c} ⊙ x_c + ι, its gradient and its conjugate (columns of X
    are classes; all quantities accurate near zero loss: lse(a) − a_c = log1p(Σ_{c'≠c} e^{a_c' − a_c}) form)."""

    def __init__(self, sizes, w, p):
        sizes = np.asarray(sizes, float)
        self.w, self.iota = np.asarray(w, float), np.asarray(p["iota"], float)
        self.K = (p["Delta"][:, None] * p["delta"][None, :]) / np.sqrt(sizes)[None, :]
        self.k = sizes.size

    def _soft(self, X):
        """Per column: the loss lse(a_c) − a_cc, the softmax P and the off-target mass 1 − P_cc."""
        D = self.K * X + self.iota[:, None]
        D -= np.diag(D)[None, :]  # D_{c'c} = a_c'c − a_cc, zero diagonal
        top = np.maximum(D.max(0), 0.0)
        E = np.exp(D - top[None, :])
        own = np.exp(-top)
        np.fill_diagonal(E, 0.0)
        rest = E.sum(0)
        total = own + rest
        loss = top + np.log1p(np.expm1(-top) + rest)
        return loss, E / total[None, :], rest / total, own / total

    def value_grad(self, X):
        """f(X) and ∇f(X) = K ⊙ (softmax(A) − I) diag(w)."""
        loss, P, off, _ = self._soft(X)
        np.fill_diagonal(P, -off)
        return float(self.w @ loss), self.K * (P * self.w[None, :])

    def conj_scaled(self, X, alpha: float) -> float:
        """f*(α∇f(X)) = Σ_c w_c [Σ_c' p'_c' log p'_c' − Σ_c' (p'_c' − e_c) ι_c'], p' = α softmax(a_c) + (1 − α) e_c."""
        _, P, off, _ = self._soft(X)
        Pa = alpha * P  # off-diagonal of p'; diagonal of p' is 1 − α·off
        ent = np.where(Pa > 0, Pa * np.log(np.where(Pa > 0, Pa, 1.0)), 0.0).sum(0)
        diag = -alpha * off
        ent += (1 + diag) * np.log1p(diag)
        lin = (Pa * self.iota[:, None]).sum(0) + diag * self.iota
        return float(self.w @ (ent - lin))


def certificate(f: CollapsedCE, X: np.ndarray, lam: float) -> dict:
    """Duality certificate of X for min f(X) + λ‖X‖_*: objective, gap ≥ objective − optimum, its ratio to the
    objective, ‖∇f‖_op/λ − 1 (≤ 0 at the optimum) and (⟨∇f, X⟩ + λ‖X‖_*)/(λ‖X‖_*) (0 at the optimum)."""
    value, G = f.value_grad(X)
    op = float(np.linalg.norm(G, 2)) if G.any() else 0.0
    nuc = float(np.linalg.svd(X, compute_uv=False).sum())
    alpha = min(1.0, lam / op) if op > 0 else 1.0
    objective = value + lam * nuc
    gap = max(objective + f.conj_scaled(X, alpha), 0.0)
    return {"objective": objective, "gap": gap, "rel_gap": gap / max(abs(objective), 1e-300),
            "op_excess": op / lam - 1, "align": (float(np.sum(G * X)) + lam * nuc) / max(lam * nuc, 1e-300)}


def lbfgs(fun, z, memory: int = 10, maxiter: int = 5000, gtol: float = 1e-13):
    """Minimize a smooth fun(z) -> (value, gradient) by L-BFGS (two-loop recursion, Armijo backtracking).
    Stops at maxiter, when ‖∇‖ ≤ gtol·max(1, |value|), or when no step decreases the value (float64 floor)."""
    value, g = fun(z)
    S, Y = [], []
    for it in range(maxiter):
        q = g.copy()
        coef = []
        for s, y in zip(reversed(S), reversed(Y)):
            a = (s @ q) / (s @ y)
            coef.append(a)
            q -= a * y
        q *= (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1]) if S else 1.0 / max(np.linalg.norm(g), 1e-300)
        for (s, y), a in zip(zip(S, Y), reversed(coef)):
            q += (a - (y @ q) / (s @ y)) * s
        slope = -(g @ q)
        if slope >= 0:  # not a descent direction (round-off): restart from steepest descent
            S, Y, q, slope = [], [], g / max(np.linalg.norm(g), 1e-300), -np.linalg.norm(g)
        step, floor = 1.0, 1e-14 * abs(value)
        for _ in range(60):
            znew = z - step * q
            vnew, gnew = fun(znew)
            if vnew <= value + 1e-4 * step * slope:  # Armijo
                break
            if vnew <= value + floor and 0.9 * slope <= -(gnew @ q) <= -0.8 * slope:
                break  # approximate Wolfe (Hager–Zhang): values equal to round-off, the slope shrank
            step *= 0.5
        else:
            return z, value, it
        s, y = znew - z, gnew - g
        if s @ y > 1e-16 * (s @ s) ** 0.5 * (y @ y) ** 0.5:
            S.append(s)
            Y.append(y)
            if len(S) > memory:
                S.pop(0)
                Y.pop(0)
        decrease = value - vnew
        z, value, g = znew, vnew, gnew
        if np.linalg.norm(g) <= gtol * max(1.0, abs(value)) or decrease < -floor:
            return z, value, it + 1
    return z, value, maxiter


def _start(f: CollapsedCE, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Balanced factors of the best point t·D on the ray D = −∇f(0) (one exact line-search gradient step from 0),
    with the zero singular values lifted to 1e-3 of the largest so every direction of rank k is reachable."""
    from scipy.optimize import minimize_scalar

    D = -f.value_grad(np.zeros((f.k, f.k)))[1]
    U, S, Vt = np.linalg.svd(D)
    nuc = S.sum()
    res = minimize_scalar(lambda u: f.value_grad(np.exp(u) * D)[0] + lam * np.exp(u) * nuc, bounds=(-30, 30),
                          method="bounded", options={"xatol": 1e-3})
    S = np.exp(res.x) * np.maximum(S, 1e-3 * S[0])
    return U * np.sqrt(S), Vt.T * np.sqrt(S)


def regularized(sizes, lam: float, w, p) -> tuple[np.ndarray, float, dict]:
    """min_M Σ_c w_c [lse_c'(Δ_c' δ_c M_c'c + ι_c') − (Δ_c δ_c M_cc + ι_c)] + λ‖M N^{1/2}‖_* by Burer–Monteiro
    L-BFGS; returns (M, objective, certificate) and raises RuntimeError unless the gap is ≤ GAP_TOL·objective."""
    sizes = np.asarray(sizes, float)
    f = CollapsedCE(sizes, w, p)
    k = f.k
    X = np.zeros((k, k))
    cert = certificate(f, X, lam)
    if cert["op_excess"] > 0:  # below the zero threshold
        W, H = _start(f, lam)

        def fun(z):
            W, H = z[:k * k].reshape(k, k), z[k * k:].reshape(k, k)
            value, G = f.value_grad(W @ H.T)
            return value + 0.5 * lam * (z @ z), np.concatenate([(G @ H + lam * W).ravel(), (G.T @ W + lam * H).ravel()])

        z = np.concatenate([W.ravel(), H.ravel()])
        for _ in range(3):  # restarts clear a stale memory after a round-off stall
            z, _, _ = lbfgs(fun, z, memory=10 if k <= 300 else 5)
            X = z[:k * k].reshape(k, k) @ z[k * k:].reshape(k, k).T
            cert = certificate(f, X, lam)
            if cert["rel_gap"] <= GAP_TOL:
                break
    if cert["rel_gap"] > GAP_TOL:
        raise RuntimeError(f"regularized_optimum (first-order): duality gap {cert['rel_gap']:.2g} of the objective "
                           f"is above {GAP_TOL:g} (‖∇f‖_op/λ − 1 = {cert['op_excess']:.2g})")
    return X / np.sqrt(sizes)[None, :], cert["objective"], cert
