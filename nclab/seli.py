"""SELI (Thrampoulidis et al., NeurIPS 2022): the geometry of the SVD factors of Ẑ = P Y.

For class sizes N = diag(n_c): W Wᵀ = (P N P)^{1/2}, class-embedding Gram
G_H = N^{-1/2}(N^{1/2} P N^{1/2})^{1/2} N^{-1/2}, class logits P (all margins exactly 1).
"""

from __future__ import annotations

import numpy as np

from nclab._checks import integer, real
from nclab.frames import Geometry, psd_sqrt
from nclab.labels import centering, class_sizes
from nclab.metrics import step_group_summary


def seli_geometry(sizes) -> Geometry:
    """SELI geometry for any class sizes (the n_c must be positive integers, k ≥ 2)."""
    sizes = class_sizes(sizes)
    k = sizes.size
    P = centering(k)
    N = np.diag(sizes.astype(float))
    root = np.sqrt(sizes.astype(float))
    W_gram = psd_sqrt(P @ N @ P)
    H_gram = psd_sqrt(root[:, None] * P * root[None, :]) / np.outer(root, root)
    return Geometry(W_gram, H_gram, P, sizes, "SELI")


def sel_singular_values(sizes) -> np.ndarray:
    """Singular values of Ẑ = P Y (descending, length k; the last is 0): sqrt eig(P N P)."""
    sizes = class_sizes(sizes)
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
