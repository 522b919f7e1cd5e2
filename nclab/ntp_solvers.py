"""Symmetry-reduced NTP programs and first-order solvers (backends of ``nclab.convex.ntp_max_margin`` and
``ntp_regularized_optimum``, which validate every input before calling them).

Reduction: contexts with identical data (support set S_j for the max-margin program; (p_j, π_j) for the
regularized one) are interchangeable, and so are words with identical rows of S (resp. P). Both programs are
convex and invariant under these permutations, so they have an invariant optimum (average any optimum over the
group): L = E_r X E_cᵀ with X ∈ R^{R×G} (one row per word class, one column per context class, multiplicities
r, c). Since LLᵀ and LᵀL are sums over the repeated copies, ‖L‖_* = ‖Y‖_* with Y = D_r^{1/2} X D_c^{1/2}, and
‖L‖_F = ‖Y‖_F: the reduced program in Y is the original one restricted to an isometric subspace. It is still
solved numerically: by cvxpy (CLARABEL) when it is small, else by ADMM (max-margin) or FISTA (regularized) with
singular-value thresholding.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from nclab import solvers

__all__ = []  # backends of nclab.convex

SMALL = 40  # reduced R + G up to which the interior-point program (an (R+G)² PSD cone) is the faster choice
POLISH = 1e-11  # relative prox-gradient residual FISTA polishes small interior-point answers to: at λ = 1e-7 the
# interior-point minimizer is off by ≈ 3 % (its gap ≈ 1e-7 bounds the objective, not the minimizer)


def classes(A: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Identical slices of A along ``axis`` (1: columns, 0: rows). Returns (index of each slice's class,
    first member of each class, class sizes)."""
    _, first, inv, counts = np.unique(A, axis=axis, return_index=True, return_inverse=True, return_counts=True)
    return inv.reshape(-1), first, counts.astype(float)


def svt(Y: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """prox of τ‖·‖_*: U max(σ − τ, 0) Vᵀ = U diag(1 − τ/σ)_+ Uᵀ Y, from the eigendecomposition of the smaller
    Gram matrix (≈ 4× faster than an SVD). Returns (the matrix, its thresholded singular values σ − τ > 0)."""
    tall = Y.shape[0] > Y.shape[1]
    A = Y.T if tall else Y
    try:
        ev, U = np.linalg.eigh(A @ A.T)
        s = np.sqrt(np.maximum(ev, 0.0))
    except np.linalg.LinAlgError:  # LAPACK's divide-and-conquer rarely fails to converge: use the SVD
        U, s, _ = np.linalg.svd(A, full_matrices=False)
    keep = s > tau
    Uk = U[:, keep]
    out = (Uk * (1.0 - tau / s[keep])) @ (Uk.T @ A)
    return (out.T if tall else out), s[keep] - tau


# ------------------------------------------------------------------ max-margin: min ‖L‖_* s.t. margins on S
def max_margin(S: np.ndarray, method: str, tol: float = 1e-9, max_iter: int = 20_000) -> np.ndarray:
    """min ‖L‖_* s.t. ℓ_j constant (= a_j) on S_j and ℓ_j[v] ≤ a_j − 1 off S_j; ``method``: "cvxpy" (the V×m
    program), "reduced" (cvxpy on the R×G reduced program), "admm" (ADMM on the reduced program), "auto"."""
    if method == "cvxpy":
        return _margin_cvxpy(S, np.ones(S.shape[0]), np.ones(S.shape[1]))
    ci, cfirst, c = classes(S, 1)
    ri, rfirst, r = classes(S[:, cfirst], 0)
    Sr = S[np.ix_(rfirst, cfirst)]
    if method == "auto":
        method = "reduced" if Sr.shape[0] + Sr.shape[1] <= SMALL else "admm"
    X = _margin_cvxpy(Sr, r, c) if method == "reduced" else _margin_admm(Sr, r, c, tol, max_iter)
    return X[ri][:, ci]


def _margin_cvxpy(S: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    R, G = S.shape
    X, a = cp.Variable((R, G)), cp.Variable(G)
    gap = X - np.ones((R, 1)) @ cp.reshape(a, (1, G), order="C")  # ℓ − a per column
    cons = [cp.multiply(S.astype(float), gap) == 0]
    if not S.all():
        cons.append(cp.multiply((~S).astype(float), gap + 1) <= 0)
    prob = cp.Problem(cp.Minimize(cp.normNuc(cp.multiply(np.sqrt(np.outer(r, c)), X))), cons)
    solvers.solve(prob, "ntp_max_margin")
    return np.asarray(X.value)


def project_margins(Y: np.ndarray, S: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Euclidean projection of each column y of Y on {w ⊙ ℓ : ℓ = a on S, ℓ ≤ a − 1 off S, a ∈ R} (w > 0).
    With t = y/w and breakpoints b = t + 1 off S, the squared distance is Σ w²(a − t)² over S plus Σ w²(a − b)²
    over the v ∉ S with b_v > a: its derivative is increasing and concave in a, so Newton's steps
    a ← Σ_active w²t / Σ_active w² from the support mean (left of the root) rise to the exact root in finitely
    many steps (each one adds breakpoints)."""
    t, w2 = Y / w, w * w
    b = np.where(S, -np.inf, t + 1.0)
    tw, bw = np.where(S, w2 * t, 0.0), np.where(S, 0.0, w2 * (t + 1.0))
    num0, den0 = tw.sum(0), np.where(S, w2, 0.0).sum(0)
    a = num0 / den0
    act = b > a
    for _ in range(Y.shape[0] + 1):
        a = (num0 + np.where(act, bw, 0.0).sum(0)) / (den0 + np.where(act, w2, 0.0).sum(0))
        new = b > a
        if np.array_equal(new, act):
            break
        act = new
    return w * np.where(S, a, np.minimum(t + 1.0, a) - 1.0)


def _margin_admm(S, r, c, tol, max_iter) -> np.ndarray:
    """ADMM for min ‖Y‖_* + 1_C(Z) s.t. Y = Z (Y = D_r^{1/2} X D_c^{1/2}; C: the scaled margin constraints),
    ρ adapted by residual balancing; stops when the primal and dual residuals are below tol (relative)."""
    w = np.sqrt(np.outer(r, c))
    Z = project_margins(np.zeros(S.shape), S, w)
    U = np.zeros_like(Z)
    rho = 1.0 / max(np.linalg.norm(Z, 2), 1e-12)
    for it in range(max_iter):
        Y, _ = svt(Z - U, 1.0 / rho)
        Yr = 1.6 * Y - 0.6 * Z  # over-relaxation
        Z_old = Z
        Z = project_margins(Yr + U, S, w)
        U += Yr - Z
        scale = max(np.linalg.norm(Y), np.linalg.norm(Z), 1e-300)
        prim = np.linalg.norm(Y - Z) / scale
        dual = np.linalg.norm(Z - Z_old) / max(np.linalg.norm(U), 1e-300)
        if prim < tol and dual < tol:
            return Z / w
        if it % 10 == 9 and (prim > 10 * dual or dual > 10 * prim):
            f = 2.0 if prim > dual else 0.5
            rho *= f
            U /= f
    raise RuntimeError(f"ntp_max_margin (ADMM): no convergence to tol={tol:g} in {max_iter} iterations "
                       f"(primal residual {prim:.1e}, dual {dual:.1e}); use method='cvxpy'")


# ------------------------------------------------------------------ regularized: min Σ_j π_j CE(p_j, ℓ_j) + λ‖L‖_*
def regularized(P: np.ndarray, pi: np.ndarray, lam: float, method: str, tol: float = 1e-8,
                max_iter: int = 100_000) -> np.ndarray:
    """min_L Σ_j π_j [lse(ℓ_j) − p_jᵀℓ_j] + λ‖L‖_*; ``method``: "cvxpy" (the V×m program), "reduced" (cvxpy on
    the reduced program), "fista" (adaptive FISTA on the reduced program), "anderson" (Anderson-accelerated
    prox-gradient on it), "auto" (small: cvxpy polished by FISTA to a relative residual ``POLISH``; else the
    reduced program when small, else Anderson). The first-order methods reach the optimum at small λ where the
    interior-point answer is off by a few % (λ = 1e-7)."""
    if method == "auto" and sum(P.shape) <= SMALL:  # small: interior point, then polished by FISTA from there
        ones_r, ones_c = np.ones(P.shape[0]), np.ones(P.shape[1])
        X = _regularized_cvxpy(P, pi, lam, ones_r, ones_c)
        f = _CE(P, pi, ones_r, ones_c)
        Xp = _fista(f, lam, X, POLISH * np.linalg.norm(f(np.zeros(P.shape))[1]), 20_000, strict=False)[0]
        objective = [f(Y, grad=False) + lam * np.linalg.svd(Y, compute_uv=False).sum() for Y in (X, Xp)]
        return Xp if objective[1] <= objective[0] else X  # the polish never returns a worse point
    if method == "cvxpy":
        return _regularized_cvxpy(P, pi, lam, np.ones(P.shape[0]), np.ones(P.shape[1]))
    ci, cfirst, c = classes(np.vstack([P, pi]), 1)
    Pc = P[:, cfirst]
    ri, rfirst, r = classes(Pc, 0)
    Pr, pir = Pc[rfirst], pi[cfirst]
    if method == "auto":
        method = "reduced" if Pr.shape[0] + Pr.shape[1] <= SMALL else "anderson"
    if method == "reduced":
        X = _regularized_cvxpy(Pr, pir, lam, r, c)
    else:
        X = _regularized_first_order(Pr, pir, lam, r, c, tol, max_iter, method)
    return X[ri][:, ci]


def _regularized_cvxpy(P, pi, lam, r, c) -> np.ndarray:
    R, G = P.shape
    X = cp.Variable((R, G))
    lse = cp.log_sum_exp(X + np.log(r)[:, None] * np.ones((1, G)), axis=0)
    ce = cp.sum(cp.multiply(c * pi, lse)) - cp.sum(cp.multiply(r[:, None] * P * (c * pi)[None, :], X))
    prob = cp.Problem(cp.Minimize(ce + lam * cp.normNuc(cp.multiply(np.sqrt(np.outer(r, c)), X))))
    solvers.solve(prob, "ntp_regularized_optimum")
    return np.asarray(X.value)


class _CE:
    """f(Y) = Σ_g c_g π_g [lse_ρ(x_ρg + log r_ρ) − Σ_ρ r_ρ p_ρg x_ρg] with X = Y / √(r cᵀ): the reduced NTP loss
    and its gradient in the isometric coordinates Y."""

    def __init__(self, P, pi, r, c):
        self.w = np.sqrt(np.outer(r, c))
        self.winv = 1 / self.w
        self.logr = np.log(r)[:, None]
        self.cpi = c * pi
        self.K = r[:, None] * P * self.cpi * self.winv  # ∇ of the linear term: Σ c π r p x = ⟨K, Y⟩
        self.pi_max = float(pi.max())  # the CE Hessian is ⪯ (max π / 2) I in the coordinates Y

    def __call__(self, Y, grad: bool = True):
        Z = Y * self.winv
        Z += self.logr
        top = Z.max(0)
        Z -= top
        E = np.exp(Z, out=Z)
        tot = E.sum(0)
        value = float(self.cpi @ (np.log(tot) + top)) - float(np.vdot(self.K, Y))
        if not grad:
            return value
        E *= self.cpi / tot
        E *= self.winv
        E -= self.K
        return value, E


def _regularized_first_order(P, pi, lam, r, c, tol, max_iter, method) -> np.ndarray:
    """``_anderson`` or ``_fista_adaptive`` (``method`` "anderson" / "fista") on the reduced program from X = 0, to
    a prox-gradient residual ≤ tol · ‖∇f(0)‖_F. (Warm starts along a continuation path λ₀/10^k ↓ λ, or from the
    max-margin direction, were tried: they took more iterations, not fewer.)"""
    f = _CE(P, pi, r, c)
    X = np.zeros(P.shape)
    solver = _anderson if method == "anderson" else _fista_adaptive
    return solver(f, lam, X, tol * np.linalg.norm(f(X)[1]), max_iter)[0] / f.w


def _anderson(f: _CE, lam: float, X: np.ndarray, tol: float, max_iter: int,
              memory: int = 5) -> tuple[np.ndarray, int]:
    """Safeguarded Anderson acceleration (type II) of the prox-gradient map T(x) = prox_{tλ‖·‖_*}(x − t∇f(x)),
    t = 1/L_f: with residuals r = T(x) − x, the next point is y = T(x_k) − Σ γ_i (Δx_i + Δr_i), γ = argmin
    ‖r_k − Σ γ_i Δr_i‖ over the last ``memory`` differences. y is kept when F(T(y)) ≤ F(T(x_k)) (F = f + λ‖·‖_*),
    else the plain step x ← T(x_k) (a descent step at t = 1/L_f) is taken and the memory cleared. Stops at the
    prox-gradient residual ‖T(x) − x‖/t ≤ tol like ``_fista`` and returns (T(x), iterations); raises at max_iter.
    (m = 1000 × V = 200, 300 patterns, λ = 1e-4: ≈ 850 iterations vs ≈ 1,860 for ``_fista_adaptive``.)"""
    t = 2.0 / max(f.pi_max, 1e-300)

    def T(x):
        prox, kept = svt(x - t * f(x)[1], t * lam)
        return prox, f(prox, grad=False) + lam * float(kept.sum())

    n = X.size
    DR, DXR, gram = np.empty((memory, n)), np.empty((memory, n)), np.empty((memory, memory))
    b = np.empty(memory)  # b = DR rᵀ for the current residual r, kept up to date from the Gram columns
    x, (gx, Fx), used, slot, res = X, T(X), 0, 0, np.inf
    rx = gx - x
    for it in range(max_iter):
        res = np.linalg.norm(rx) / t
        if res <= tol:
            return gx, it + 1
        y = gx
        if used:
            h = gram[:used, :used]
            try:
                gamma = np.linalg.solve(h + 1e-12 * np.trace(h) / used * np.eye(used), b[:used])
                y = gx - (gamma @ DXR[:used]).reshape(gx.shape)
            except np.linalg.LinAlgError:
                used = 0
        gy, Fy = T(y) if used else (None, np.inf)
        if Fy <= Fx:
            y_new, g_new, F_new = y, gy, Fy
        else:  # plain prox-gradient step from T(x_k); restart the memory
            y_new = gx
            (g_new, F_new), used, slot = T(gx), 0, 0
        r_new = g_new - y_new
        dr = np.subtract(r_new, rx).ravel()
        DR[slot] = dr
        np.subtract(y_new, x, out=DXR[slot].reshape(x.shape))
        DXR[slot] += dr
        used = min(used + 1, memory)
        col = DR[:used] @ dr
        gram[slot, :used] = gram[:used, slot] = col
        b[:used] += col  # DR r_new = DR (r + dr); the new row's entry is set next
        b[slot] = dr @ r_new.ravel()
        slot = (slot + 1) % memory
        x, gx, rx, Fx = y_new, g_new, r_new, F_new
    raise RuntimeError(f"ntp_regularized_optimum (Anderson): no convergence at λ={lam:g} within the iteration "
                       f"budget (prox-gradient residual {res:.1e} > {tol:.1e}); use method='cvxpy'")


def _fista_adaptive(f: _CE, lam: float, X: np.ndarray, tol: float, max_iter: int,
                    grow: float = 1.1) -> tuple[np.ndarray, int]:
    """FISTA with backtracking that may also lengthen the step (Scheinberg–Goldfarb–Bai 2014): each iteration
    tries t·``grow``, halves it (never below 1/L_f) until f(x⁺) ≤ f(y) + ⟨∇f(y), x⁺ − y⟩ + ‖x⁺ − y‖²/2t, with
    θ updated for the step ratio, and gradient restarts. The stop rule and budget are ``_fista``'s (strict).
    (m = 1000 × V = 200, 300 patterns, λ = 1e-4: 1,860 iterations vs 3,618 at the fixed step 1/L_f.)"""
    t_min = 2.0 / max(f.pi_max, 1e-300)
    t, theta, X_prev, res = t_min, 1.0, X, np.inf
    for it in range(max_iter):
        t_try = t * grow
        while True:
            theta_new = (1 + np.sqrt(1 + 4 * theta * theta * t / t_try)) / 2
            Yk = X + (theta - 1) / theta_new * (X - X_prev)
            fy, gy = f(Yk)
            X_new, _ = svt(Yk - t_try * gy, t_try * lam)
            D = X_new - Yk
            if t_try <= t_min or f(X_new, grad=False) <= fy + np.sum(gy * D) + np.sum(D * D) / (2 * t_try):
                break
            t_try = max(t_try / 2, t_min)
        res = np.linalg.norm(D) / t_try
        if res <= tol:
            return X_new, it + 1
        if np.sum(D * (X_new - X)) < 0:  # momentum points uphill: restart
            theta_new = 1.0
        X_prev, X, theta, t = X, X_new, theta_new, t_try
    raise RuntimeError(f"ntp_regularized_optimum (FISTA): no convergence at λ={lam:g} within the iteration budget "
                       f"(prox-gradient residual {res:.1e} > {tol:.1e}); use method='cvxpy'")


def _fista(f: _CE, lam: float, X: np.ndarray, tol: float, max_iter: int,
           strict: bool = True) -> tuple[np.ndarray, int]:
    """FISTA with step t = 1/L_f (L_f = max π / 2 bounds the CE Hessian), singular-value thresholding and
    O'Donoghue–Candès gradient restarts, from X. Stops when the prox-gradient residual ‖y − x⁺‖/t, which bounds
    dist(0, ∂F(x⁺)) up to a factor 2, is ≤ tol. Returns (x⁺, iterations used); at the iteration budget it raises
    (``strict``) or returns the last x⁺."""
    t = 2.0 / max(f.pi_max, 1e-300)
    Yk, theta, res = X, 1.0, np.inf
    for it in range(max_iter):
        X_new, _ = svt(Yk - t * f(Yk)[1], t * lam)
        D = X_new - Yk
        res = np.linalg.norm(D) / t
        if res <= tol:
            return X_new, it + 1
        if np.sum(D * (X_new - X)) < 0:  # momentum points uphill: restart
            theta = 1.0
        theta_new = (1 + np.sqrt(1 + 4 * theta * theta)) / 2
        Yk = X_new + (theta - 1) / theta_new * (X_new - X)
        X, theta = X_new, theta_new
    if not strict:
        return X, max_iter
    raise RuntimeError(f"ntp_regularized_optimum (FISTA): no convergence at λ={lam:g} within the iteration budget "
                       f"(prox-gradient residual {res:.1e} > {tol:.1e}); use method='cvxpy'")
