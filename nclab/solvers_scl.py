"""First-order SCL Gram for many class groups (long-tailed sizes): the reduced program of ``solvers.scl`` on the
G×G matrix P = S⊙B + I ⪰ 0 (B_gh: the Gram entry of a class of group g with one of group h), by the method of
multipliers on a Burer–Monteiro factor P = VVᵀ, the answer certified by a duality gap (a PSD multiplier from the
Lagrangian's gradient)."""

from __future__ import annotations

import numpy as np

from nclab.solvers import class_groups, expand
from nclab.solvers_fo import MEMORY, lbfgs

__all__ = []  # backend of nclab.convex.scl_gram, which validates every input before calling it

RHO = 3.0
RHO_RELU = 10.0  # with B ≥ 0: G(G − 1) more constraints, most of them active at the answer
INEXACT = 0.1  # inner gradient tolerance ∝ the last constraint violation
SCL_TOL = 1e-8  # certified gap ≤ SCL_TOL · (|objective| + τ), the objective averaged over anchors
INNER = 2000  # L-BFGS steps per outer step at most
CHECK = 100  # L-BFGS steps between certificates inside an inner solve
START = 0.5  # the start: every off-diagonal Gram entry 0.5 (not the orthogonal frame the ReLU answer is)


class GroupedSCL:
    """The full-batch SCL over invariant Grams, per anchor averaged: F(P) = τ Σ_h ω_h LSE(log a_h, E_:h)/Σω with
    E_gh = log K_gh + (B_gh − 1)/τ, B = (P − I) ⊙ Sinv (Sinv_gh = 1/√(k_g k_h), Sinv_gg = 1/(k_g − 1));
    feasible set P ⪰ 0, lo_g ≤ P_gg ≤ up_g (B_gg ≤ 1; singletons P_gg = 1), and B ≥ 0 with ``relu``."""

    def __init__(self, sizes, tau: float, relu: bool):
        sizes = np.asarray(sizes, float)
        self.gi, first, kg = class_groups(sizes)
        self.kg, self.ng = kg.astype(float), sizes[first]
        self.G = G = kg.size
        self.tau, self.relu = tau, relu
        K = np.outer(self.kg * self.ng, np.ones(G)) - np.diag(self.ng)  # negatives of group g for an anchor in h
        self.logK = np.where(K > 0, np.log(np.maximum(K, 1.0)), -np.inf)
        omega = np.where(self.ng >= 2, self.kg * self.ng, 0.0)
        self.w = omega / omega.sum()
        self.loga = np.log(np.maximum(self.ng - 1, 1.0))
        self.Sinv = 1 / np.sqrt(np.outer(self.kg, self.kg))
        self.dscale = np.where(kg >= 2, 1 / np.maximum(self.kg - 1, 1), 1.0)  # ∂B_gg/∂P_gg (1 for singletons)
        self.Sinv[np.diag_indices(G)] = np.where(kg >= 2, self.dscale, 0.0)
        self.up = np.where(kg >= 2, self.kg, 1.0)
        self.has_lo = (kg == 1) | relu  # P_gg ≥ 1: singletons always, B_gg ≥ 0 with relu
        self.lo = np.where(self.has_lo, 1.0, 0.0)  # P ⪰ 0 gives P_gg ≥ 0 anyway
        self.off = ~np.eye(G, dtype=bool)

    def B(self, P):
        B = P * self.Sinv
        B[np.diag_indices(self.G)] -= np.diag(self.Sinv)
        return B

    def value_grad(self, P, B=None):
        """F(P) and ∂F/∂P (entries taken as independent; symmetrize for a symmetric direction); B = B(P) if given."""
        E = self.logK + ((self.B(P) if B is None else B) - 1) / self.tau
        top = np.maximum(self.loga, E.max(0))
        ex = np.exp(E - top)
        total = np.exp(self.loga - top) + ex.sum(0)
        value = self.tau * float(self.w @ (top + np.log(total)))
        return value, (self.w / total) * ex * self.Sinv

    def feasible(self, P):
        """A nearby feasible P̂: negative off-diagonal entries set to 0 (relu), + |λ_min| I if needed, then each row
        and column scaled so that lo_g ≤ P̂_gg ≤ up_g (a congruence: stays PSD and keeps signs)."""
        P = 0.5 * (P + P.T)
        if self.relu:
            P = np.where(self.off, np.maximum(P, 0.0), P)
        low = float(np.linalg.eigvalsh(P)[0])
        if low < 0:
            P = P - low * np.eye(self.G)
        d = np.diag(P).copy()
        dead = d <= 0
        P[dead, :], P[:, dead] = 0.0, 0.0
        d[dead] = 1.0
        target = np.clip(d, self.lo, self.up)
        s = np.sqrt(target / d)
        P = P * np.outer(s, s)
        P[np.diag_indices(self.G)] = np.where(dead, self.lo, target)  # exactly within the bounds
        return P

    def certificate(self, P, mu_off, mu_up, mu_lo) -> dict:
        """P̂ = feasible(P), its value and the dual bound from the multipliers: with N = μ_off ⊙ Sinv (B ≥ 0),
        ν = (μ_lo − μ_up) ⊙ dscale and Z = sym ∇F − N − diag ν shifted by λ_min(Z) into ν, every feasible P has
        ⟨∇F, P⟩ ≥ Σ min(ν lo, ν up), so F* ≥ F(P̂) − ⟨∇F, P̂⟩ + that: gap, rel_gap, value, P, B, mu."""
        P = self.feasible(P)
        value, Q = self.value_grad(P)
        Q = 0.5 * (Q + Q.T)
        N = np.where(self.off, mu_off * self.Sinv, 0.0) if self.relu else 0.0
        nu = (mu_lo * self.has_lo - mu_up) * self.dscale
        Z = Q - N - np.diag(nu)
        low = float(np.linalg.eigvalsh(0.5 * (Z + Z.T))[0])
        nu = nu + min(low, 0.0)
        bound = float(np.minimum(nu * self.lo, nu * self.up).sum())
        gap = max(float(np.sum(Q * P)) - bound, 0.0)
        return {"value": value, "gap": gap, "rel_gap": gap / (abs(value) + self.tau), "P": P, "B": self.B(P),
                "mu": (mu_off, mu_up, mu_lo)}


def scl_first_order(sizes, tau: float, relu: bool, maxouter: int = 60) -> tuple[np.ndarray, dict]:
    """The SCL Gram Ĝ (k×k) for τ ≥ 0.1 by the method of multipliers on P = VVᵀ (V: G×r): each outer step
    minimizes F(VVᵀ) + Σ [max(0, μ − ρ c)² − μ²]/(2ρ) over the constraints c ≥ 0 (B_gh ≥ 0 with ``relu``,
    1 − B_gg ≥ 0, P_gg − 1 ≥ 0 where bounded below) by L-BFGS, then μ ← max(0, μ − ρ c). Starts from all
    off-diagonal entries ``START``. r = G with ``relu``; without it r = G − 1, since there the optimum has a
    null vector (the embeddings' weighted sum vanishes: rank k − 1 on every instance measured), and a full-rank
    factor converges slowly onto a singular P (k = 300: 42 s vs 5 s). The certificate checks either way.
    Returns (Ĝ, certificate); raises RuntimeError unless rel_gap ≤ SCL_TOL."""
    f = GroupedSCL(sizes, tau, relu)
    G = f.G
    B0 = np.full((G, G), START)
    B0[np.diag_indices(G)] = 1.0
    P0 = np.where(f.off, B0 / np.where(f.off, f.Sinv, 1.0), f.up)
    r = G if relu else G - 1  # columns of V: without the ReLU the optimum is singular (rank G − 1: see the docstring)
    z = np.linalg.cholesky(P0)[:, :r].ravel()
    mu_off, mu_up, mu_lo = np.zeros((G, G)), np.zeros(G), np.zeros(G)
    count = (G * (G - 1) if relu else 0) + G + int(f.has_lo.sum())
    rho = (RHO_RELU if relu else RHO) / count  # Σ_constraints μ ≈ the mass of ∂F/∂B, ≤ 1
    lag = {}

    def constraints(P, B=None):
        B = f.B(P) if B is None else B
        dP = np.diag(P)
        return (np.where(f.off, B, np.inf) if relu else None, (f.up - dP) * f.dscale,
                np.where(f.has_lo, (dP - f.lo) * f.dscale, np.inf))

    def shifted(c_off, c_up, c_lo):  # max(0, μ − ρ c) per constraint (0 where unconstrained: c = inf)
        return (np.maximum(lag["off"] - rho * c_off, 0.0) if relu else lag["off"],
                np.maximum(lag["up"] - rho * c_up, 0.0), np.maximum(lag["lo"] - rho * c_lo, 0.0))

    def aug(z):
        V = z.reshape(G, r)
        P = V @ V.T
        B = f.B(P)
        value, R = f.value_grad(P, B)
        hat, hu, hl = shifted(*constraints(P, B))
        if relu:
            R = R - hat * f.Sinv
        extra = float(np.sum(hat * hat) + hu @ hu + hl @ hl)
        R[np.diag_indices(G)] += (hu - hl) * f.dscale
        return value + (extra - lag["mu²"]) / (2 * rho), ((R + R.T) @ V).ravel()

    def multipliers(z):  # what an outer step at z sets, and the constraint violation
        V = z.reshape(G, r)
        c = constraints(V @ V.T)
        return (*shifted(*c), max(-min(float(ci.min()) for ci in c if ci is not None), 0.0))

    def certify(z):  # the certificate with the multipliers an outer step at z sets, and the constraint violation
        *mu, viol = multipliers(z)
        return f.certificate(z.reshape(G, r) @ z.reshape(G, r).T, *mu), viol

    def certified(z):  # inside an inner solve
        return certify(z)[0]["rel_gap"] <= SCL_TOL

    best, viol_prev, carry = None, np.inf, {}
    g0 = float(np.linalg.norm(f.value_grad(P0)[1]))  # the objective's gradient at the start: the inner tolerance unit
    for _ in range(maxouter):
        gtol = g0 * max(1e-10, INEXACT * min(viol_prev, 1.0))
        lag.update({"off": mu_off, "up": mu_up, "lo": mu_lo,
                    "mu²": float(np.sum(mu_off ** 2) + mu_up @ mu_up + mu_lo @ mu_lo)})
        z, _, _ = lbfgs(aug, z, memory=MEMORY, maxiter=INNER, gtol=gtol, state=carry, check=certified, every=CHECK)
        cert, viol = certify(z)
        mu_off, mu_up, mu_lo = cert["mu"]
        if best is None or cert["rel_gap"] < best["rel_gap"]:
            best = cert
        if cert["rel_gap"] <= SCL_TOL:
            break
        if viol > 0.25 * viol_prev and viol > 1e-12:
            rho *= 4
        viol_prev = viol
    if not best["rel_gap"] <= SCL_TOL:
        raise RuntimeError(f"SCL Gram (first-order): duality gap {best['rel_gap']:.2g} is above {SCL_TOL:g}")
    return expand(best["B"], np.ones(G), f.gi), best
