"""Reference geometries as k×k Gram matrices: simplex ETF, orthogonal frame, and the geometry
object shared by every exact solver (classifier Gram W Wᵀ, class-embedding Gram, class logits).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nclab._checks import array, integer, real
from nclab.labels import centering, class_sizes

__all__ = [
    "Geometry", "checked_sizes", "psd_sqrt", "simplex_etf", "orthogonal_frame", "geometry_from_class_logits",
    "etf_geometry"
]


@dataclass(frozen=True)
class Geometry:
    """An exact UFM geometry. ``W_gram`` = W Wᵀ (k×k); ``H_gram`` = Gram of the k class embeddings
    (uncentered, class-level); ``logits`` (k×k): column c holds the logits W h_c of class c."""

    W_gram: np.ndarray
    H_gram: np.ndarray
    logits: np.ndarray
    class_sizes: np.ndarray
    name: str = ""
    info: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.W_gram.shape[0]

    def realize(self, d: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Vectors with these Grams: W (k×d) and class embeddings Hc (d×k) with W Hc = logits."""
        k = self.k
        d = k if d is None else integer("d", d, k)
        U, s, Vt = np.linalg.svd(self.logits * np.sqrt(self.class_sizes)[None, :])
        r = int(np.sum(s > 1e-10 * max(s[0], 1e-300)))
        W = U[:, :r] * np.sqrt(s[:r])
        Hc = (np.sqrt(s[:r])[:, None] * Vt[:r]) / np.sqrt(self.class_sizes)[None, :]
        pad = np.zeros((d - r, k))
        return np.hstack([W, pad.T]), np.vstack([Hc, pad])


def checked_sizes(sizes) -> np.ndarray:
    """``labels.class_sizes`` that also rejects sizes above 2^53 (they would overflow or lose integrality)."""
    arr = np.asarray(sizes)
    if arr.ndim == 1 and arr.dtype.kind in "fiu" and arr.size and np.nanmax(arr.astype(float)) > 2.0 ** 53:
        bad = int(np.nanargmax(arr.astype(float)))
        raise ValueError(f"class_sizes[{bad}]={arr[bad]!r} is too large: allowed 1 to 2^53 (≈ 9e15)")
    return class_sizes(arr)


def psd_sqrt(A: np.ndarray, scale: float = 0.0) -> np.ndarray:
    """Symmetric PSD square root A^{1/2} via eigh. Eigenvalues within −1e-10·max(max|λ|, scale) of 0 are
    round-off (set to 0); ``scale`` is the size of the quantities A was computed from (for an A that is ≈ 0
    by cancellation). A more negative eigenvalue, or an asymmetric / non-square / non-finite A, raises."""
    A = array("A", A, ndim=2)
    scale = real("scale", scale, 0.0)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be a square matrix, got shape {A.shape}")
    size = max(float(np.abs(A).max()), 1e-300)
    if np.abs(A - A.T).max() > 1e-10 * size:
        raise ValueError(f"A must be symmetric: max |A − Aᵀ| = {np.abs(A - A.T).max():.3g}")
    vals, vecs = np.linalg.eigh((A + A.T) / 2)
    tol = 1e-10 * max(float(np.abs(vals).max()), float(scale), 1e-300)
    if vals[0] < -tol:
        raise ValueError(f"A is not positive semidefinite: smallest eigenvalue {vals[0]:.6g} < 0 "
                         f"(tolerance −{tol:.3g})")
    vals = np.where(vals > tol, vals, 0.0)
    return (vecs * np.sqrt(vals)) @ vecs.T


def simplex_etf(k: int) -> np.ndarray:
    """Gram of a unit-norm simplex ETF: k/(k−1)·(I − 11ᵀ/k); off-diagonal cosines −1/(k−1)."""
    k = integer("k", k, 2)
    return centering(k) * k / (k - 1)


def orthogonal_frame(k: int) -> np.ndarray:
    """Gram of k orthonormal vectors: I_k."""
    return np.eye(integer("k", k, 1))


def geometry_from_class_logits(M, sizes, name: str = "") -> Geometry:
    """Min-norm factorization of Z = M Y: with X = M N^{1/2} = U S Ṽᵀ,
    W Wᵀ = U S Uᵀ and class-embedding Gram = N^{-1/2} Ṽ S Ṽᵀ N^{-1/2} (M: k×k, column c = class c)."""
    sizes = class_sizes(sizes)
    M = array("M", M, ndim=2)
    if M.shape != (sizes.size, sizes.size):
        raise ValueError(f"M has shape {M.shape}, expected ({sizes.size}, {sizes.size}) for k={sizes.size}")
    root = np.sqrt(sizes.astype(float))
    U, s, Vt = np.linalg.svd(M * root[None, :])
    W_gram = (U * s) @ U.T
    H_gram = ((Vt.T * s) @ Vt) / np.outer(root, root)
    return Geometry(W_gram, H_gram, M.copy(), sizes, name, {"singular_values": s})


def etf_geometry(sizes) -> Geometry:
    """The balanced-data answer used as the reference under imbalance: W Wᵀ ∝ H Gram ∝ P, logits P."""
    sizes = class_sizes(sizes)
    P = centering(sizes.size)
    return Geometry(P.copy(), P.copy(), P.copy(), sizes, "ETF")
