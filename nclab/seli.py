"""SELI (Thrampoulidis et al., NeurIPS 2022): the geometry of the SVD factors of Ẑ = P Y.

For class sizes N = diag(n_c): W Wᵀ = (P N P)^{1/2}, class-embedding Gram
G_H = N^{-1/2}(N^{1/2} P N^{1/2})^{1/2} N^{-1/2}, class logits P (all margins exactly 1).
"""

from __future__ import annotations

import numpy as np

from nclab._checks import integer, real
from nclab.frames import Geometry, checked_sizes, psd_sqrt
from nclab.labels import centering, class_sizes
from nclab.metrics import step_group_summary

__all__ = [
    "seli_geometry", "sel_singular_values", "step_closed_form", "step_gram", "minority_collapse_cosine",
    "seli_from_svd"
]


def seli_geometry(sizes) -> Geometry:
    """SELI geometry for any class sizes (the n_c must be positive integers, k ≥ 2).

    Both Grams are square roots of matrices Q ∈ {P N P, N^{1/2} P N^{1/2}} that act as n_g on the vectors of
    group g (classes of equal size) summing to 0, so with u_g = 1_g/√k_g: Q^{1/2} = Σ_g √n_g (I_g − u_g u_gᵀ)
    + U (UᵀQU)^{1/2} Uᵀ — one G×G eigendecomposition for G distinct sizes (O(k²) work, k = 10⁴ in seconds)."""
    sizes = checked_sizes(sizes)
    k = sizes.size
    vals, gi, kg = np.unique(sizes, return_inverse=True, return_counts=True)
    gi = gi.reshape(-1)
    n = sizes.astype(float)
    U = np.zeros((k, vals.size))
    U[np.arange(k), gi] = 1.0 / np.sqrt(kg[gi])
    PU = U - np.sqrt(kg)[None, :] / k  # P U (columns of U have sums √k_g)
    C = np.sqrt(n)[:, None] * U
    PC = C - C.sum(0)[None, :] / k
    v = vals.astype(float)
    W_gram = _expand(*_invariant_sqrt(PU.T @ (n[:, None] * PU), v, kg), gi)
    off, diag = _invariant_sqrt(C.T @ PC, v, kg)
    H_gram = _expand(off / np.sqrt(np.outer(v, v)), diag / v, gi)
    logits = _expand(np.full((vals.size, vals.size), -1.0 / k), np.full(vals.size, 1.0), gi)
    return Geometry(W_gram, H_gram, logits, sizes, "SELI")


def _invariant_sqrt(Qt: np.ndarray, scal: np.ndarray, kg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q^{1/2} as group-level (G×G off-diagonal pattern, G diagonal increments) from UᵀQU and the scalar
    n_g that Q is on 1_g^⊥ (see ``seli_geometry``)."""
    root = psd_sqrt(Qt, scale=float(np.max(scal)))
    return root / np.sqrt(np.outer(kg, kg)) - np.diag(np.sqrt(scal) / kg), np.sqrt(scal)


def _expand(small: np.ndarray, diag: np.ndarray, gi: np.ndarray) -> np.ndarray:
    """k×k matrix small[g_i, g_j] + δ_ij diag[g_i]: each group's row is built once and broadcast into the rows of
    its classes (a fill at memory speed, not a k×k gather)."""
    out = np.empty((gi.size, gi.size))
    for g in range(small.shape[0]):
        out[gi == g] = small[g][gi]
    out[np.diag_indices_from(out)] += diag[gi]
    return out


def sel_singular_values(sizes) -> np.ndarray:
    """Singular values of Ẑ = P Y (descending, length k; the last is 0): sqrt eig(P N P)."""
    sizes = checked_sizes(sizes)
    P = centering(sizes.size)
    vals = np.linalg.eigvalsh(P @ np.diag(sizes.astype(float)) @ P)[::-1]
    return np.sqrt(np.where(vals > 1e-12 * vals[0], vals, 0.0))


def step_closed_form(k: int, R: float, k_min: int, n_min: int = 1) -> dict:
    """Closed-form SELI under step imbalance (k−k_min classes of size R·n_min first, then k_min of n_min).

    Returns squared norms and inner products of classifiers (w_*) and class embeddings (h_*), the
    derived ratios/cosines, and the singular values √R·√n_min (×k_M−1), √n_min (×k_m−1), √(μ0 n_min).
    """
    k = integer("k", k, 2)
    R = real("R", R, 1.0)
    km = integer("k_min", k_min, 1, k - 1)
    n_min = integer("n_min", n_min, 1)
    kM = k - km
    mu0 = (kM + R * km) / k
    q = np.sqrt(k * (R * km + kM))
    sr, sm = np.sqrt(R), np.sqrt(mu0)
    w = {"w_maj_sq": sr * (1 - 1 / kM) + sm * km / (kM * k),
         "w_min_sq": (1 - 1 / km) + sm * kM / (km * k),
         "w_maj_maj": -sr / kM + sm * km / (kM * k),
         "w_min_min": -1 / km + sm * kM / (km * k),
         "w_maj_min": -sm / k}
    h = {"h_maj_sq": (1 - 1 / kM) / sr + km / (kM * q),
         "h_min_sq": (1 - 1 / km) + kM / (km * q),
         "h_maj_maj": -1 / (kM * sr) + km / (kM * q),
         "h_min_min": -1 / km + kM / (km * q),
         "h_maj_min": -1 / q}
    out = {key: v * np.sqrt(n_min) for key, v in w.items()}
    out.update({key: v / np.sqrt(n_min) for key, v in h.items()})
    out = step_group_summary(out, kM, km)
    out["singular_values"] = np.sqrt(n_min) * np.array([sr] * (kM - 1) + [1.0] * (km - 1) + [sm])
    out["nuclear_norm"] = float(out["singular_values"].sum())
    return out


def step_gram(k: int, R: float, k_min: int, n_min: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The k×k classifier and class-embedding Grams assembled from ``step_closed_form``."""
    cf = step_closed_form(k, R, k_min, n_min)
    kM = k - int(k_min)
    maj = np.arange(k) < kM
    grams = []
    for t in "wh":
        G = np.where(np.logical_and.outer(maj, maj), cf[f"{t}_maj_maj"], 0.0)
        G = np.where(np.logical_and.outer(~maj, ~maj), cf[f"{t}_min_min"], G)
        G = np.where(np.logical_xor.outer(maj, maj), cf[f"{t}_maj_min"], G)
        np.fill_diagonal(G, np.where(maj, cf[f"{t}_maj_sq"], cf[f"{t}_min_sq"]))
        grams.append(G)
    return grams[0], grams[1]


def minority_collapse_cosine(k: int, R: float, k_min: int) -> float:
    """cos(w_min, w_min') of SELI at ratio R: tends to 1 like 1 − O(R^{-1/2}) (minority collapse)."""
    return float(step_closed_form(k, R, k_min)["w_cos_min_min"])


def seli_from_svd(sizes) -> Geometry:
    """SELI computed the long way, from the thin SVD Ẑ = U Λ Vᵀ of the full k×n SEL matrix:
    W Wᵀ = U Λ Uᵀ and the class Gram read off V Λ Vᵀ at one example per class (independent check)."""
    from nclab.labels import labels_from_sizes, sel_matrix

    sizes = class_sizes(sizes)
    y = labels_from_sizes(sizes)
    U, s, Vt = np.linalg.svd(sel_matrix(y), full_matrices=False)
    r = sizes.size - 1
    U, s, Vt = U[:, :r], s[:r], Vt[:r]
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    Vc = Vt[:, first]
    return Geometry((U * s) @ U.T, (Vc.T * s) @ Vc, centering(sizes.size), sizes, "SELI (SVD)")
