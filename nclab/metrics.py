"""Geometry metrics: normalized Gram distance, class means, norm ratios, group cosines, NC1 and a
single ``summary(W, H, y)`` against the SELI and ETF references."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from nclab._checks import array, integer, real
from nclab.frames import Geometry, etf_geometry, geometry_from_class_logits
from nclab.labels import one_hot, sel_matrix, sizes_of

__all__ = ["normalized", "gram_distance", "class_means", "group_stats", "nc1", "summary", "class_mean_gram",
           "of_distance", "centered_etf_distance", "step_group_summary"]


def normalized(A) -> np.ndarray:
    """A/‖A‖_F (raises on the zero matrix, whose direction is undefined)."""
    return _normalized("A", A)


def _normalized(name: str, A) -> np.ndarray:
    A = array(name, A)
    nrm = np.linalg.norm(A)
    if not np.isfinite(nrm) or nrm == 0:
        raise ValueError(f"{name} has Frobenius norm {nrm}: its direction A/‖A‖ is undefined")
    return A / nrm


def gram_distance(A, B) -> float:
    """‖A/‖A‖_F − B/‖B‖_F‖_F ∈ [0, 2]: compares geometries up to scale (A, B same shape)."""
    A, B = array("A", A), array("B", B)
    if A.shape != B.shape:
        raise ValueError(f"shapes differ: A {A.shape} vs B {B.shape}")
    return float(np.linalg.norm(_normalized("A", A) - _normalized("B", B)))


def class_means(H, y, k: int | None = None) -> np.ndarray:
    """Uncentered class means μ_c = mean_{i: y_i=c} h_i, as columns of a d×k matrix (H: d×n)."""
    H = array("H", H, ndim=2)
    Y = one_hot(y, k)
    if H.shape[1] != Y.shape[1]:
        raise ValueError(f"H has {H.shape[1]} columns (examples) but y has {Y.shape[1]} labels: H must be d×n")
    counts = Y.sum(axis=1)
    if np.any(counts == 0):
        raise ValueError(f"class {int(np.flatnonzero(counts == 0)[0])} has no example in y")
    return (H @ Y.T) / counts[None, :]


def group_stats(G, majority) -> dict:
    """From a k×k Gram: mean ‖·‖² ratio majority/minority and mean cosines maj–maj, min–min, maj–min.
    A within-group cosine is NaN when that group has a single class (it is undefined)."""
    G = array("G", G, ndim=2)
    if G.shape[0] != G.shape[1] or G.shape[0] < 2:
        raise ValueError(f"G must be a k×k Gram matrix with k >= 2, got shape {G.shape}")
    if np.any(np.diag(G) <= 0):
        raise ValueError(f"G must have a positive diagonal (squared norms), got {np.diag(G).tolist()}")
    maj = np.asarray(majority)
    if maj.dtype != bool or maj.shape != (G.shape[0],) or maj.all() or not maj.any():
        raise ValueError(f"majority must be a boolean mask of length k={G.shape[0]} with both groups non-empty")
    nrm = np.sqrt(np.diag(G))
    C = G / np.outer(nrm, nrm)

    def mean_off(a, b):
        block = C[np.ix_(a, b)]
        if np.array_equal(a, b):
            m = a.sum()
            return float((block.sum() - np.trace(block)) / (m * (m - 1))) if m > 1 else float("nan")
        return float(block.mean())

    d = np.diag(G)
    return {"sq_norm_ratio": float(d[maj].mean() / d[~maj].mean()),
            "cos_maj_maj": mean_off(maj, maj), "cos_min_min": mean_off(~maj, ~maj),
            "cos_maj_min": mean_off(maj, ~maj)}


def nc1(H, y, k: int | None = None) -> float:
    """NC1 = tr(Σ_W Σ_B^†)/k with Σ_W the within-class and Σ_B the between-class covariance
    (undefined, so ValueError, with fewer than 2 classes)."""
    mu = class_means(H, y, k)
    if mu.shape[1] < 2:
        raise ValueError("y has a single class: NC1 (within- vs between-class spread) needs at least 2 classes")
    H = np.asarray(H, dtype=float)
    y = np.asarray(y).astype(np.int64)
    centred = H - mu[:, y]
    Sw = centred @ centred.T / H.shape[1]
    B = mu - mu.mean(axis=1, keepdims=True)
    Sb = B @ B.T / mu.shape[1]
    return float(np.trace(Sw @ np.linalg.pinv(Sb)) / mu.shape[1])


def summary(W, H, y, reference: Geometry | None = None) -> dict:
    """Distances of (W: k×d, H: d×n, labels y) to a reference geometry (default SELI) and the ETF:
    d_W on W Wᵀ, d_H on the k×k class-mean Gram (class level), d_Z on W H vs Ẑ = P Y (sample level);
    plus norm ratios / cosines (majority = classes larger than the smallest) and NC1."""
    W = array("W", W, ndim=2)
    H = array("H", H, ndim=2)
    if W.shape[0] < 2 or W.shape[1] != H.shape[0]:
        raise ValueError(f"W must be k×d with k >= 2 and H d×n with the same d: got W {W.shape}, H {H.shape}")
    k = W.shape[0]
    sizes = sizes_of(y, k)
    if reference is not None and (not isinstance(reference, Geometry) or reference.k != k):
        raise ValueError(f"reference must be a Geometry with k={k} classes, got {type(reference).__name__}")
    seli, etf = _references(tuple(sizes.tolist()))
    ref = seli if reference is None else reference
    WW = W @ W.T
    mu = class_means(H, y, k)
    HH = mu.T @ mu
    out = {"d_W": gram_distance(WW, ref.W_gram), "d_H": gram_distance(HH, ref.H_gram),
           "d_Z": gram_distance(W @ H, sel_matrix(y, k)),
           "d_W_etf": gram_distance(WW, etf.W_gram), "d_H_etf": gram_distance(HH, etf.H_gram),
           "nc1": nc1(H, y, k), "W_norm": float(np.linalg.norm(W)), "H_norm": float(np.linalg.norm(H))}
    maj = sizes > sizes.min()
    if maj.any():
        for tag, G in (("W", WW), ("H", HH)):
            out.update({f"{tag}_{key}": v for key, v in group_stats(G, maj).items()})
    return out


@lru_cache(maxsize=256)
def _references(sizes: tuple) -> tuple[Geometry, Geometry]:
    """SELI (the min-norm factorization of the class logits P; core formula, nclab.seli checks it independently)
    and ETF geometries of these class sizes, computed once per sizes (read-only: never handed out)."""
    k = len(sizes)
    return geometry_from_class_logits(np.eye(k) - 1.0 / k, sizes), etf_geometry(sizes)


class SummaryBatch:
    """``summary`` of B runs at once (internal: ``nclab.ufm_batched`` validates its inputs): labels ``ys[b]``
    (n_b of them, k classes), optional ``references[b]``; call with W (B×k×d) and H (B×d×n_max), zero past n_b.
    Reference Grams, Ẑ = P Y and class-mean weights are computed once; the numbers equal ``summary`` run by run."""

    def __init__(self, ys, k: int, references=None):
        ys = [np.asarray(y).astype(np.int64) for y in ys]
        references = [None] * len(ys) if references is None else list(references)
        B, nmax = len(ys), max(y.size for y in ys)
        self.ys, self.refs, self.k = ys, references, k
        self.n = np.array([y.size for y in ys], dtype=float)
        self.Y = np.zeros((B, k, nmax))
        self.Zhat = np.zeros((B, k, nmax))
        sizes = np.array([sizes_of(y, k) for y in ys])
        grams = []
        for b, (y, ref) in enumerate(zip(ys, references, strict=True)):
            if ref is not None and (not isinstance(ref, Geometry) or ref.k != k):
                raise ValueError(f"reference must be a Geometry with k={k} classes, got {type(ref).__name__}")
            self.Y[b, y, np.arange(y.size)] = 1.0
            self.Zhat[b, :, :y.size] = _normalized("Ẑ", sel_matrix(y, k))
            seli, etf = _references(tuple(sizes[b].tolist()))
            ref = seli if ref is None else ref
            grams.append([_normalized(name, G) for name, G in (("B", ref.W_gram), ("B", ref.H_gram),
                                                               ("B", etf.W_gram), ("B", etf.H_gram))])
        self.grams = np.array(grams)  # B×4×k×k: reference W, H; ETF W, H (normalized)
        self.M = self.Y.transpose(0, 2, 1) / sizes[:, None, :]  # n_max×k: H M = class means
        self.maj = (sizes > sizes.min(1, keepdims=True)).astype(float)

    def __call__(self, W, H, idx=None) -> list[dict]:
        """One ``summary`` dict per run (rows ``idx`` of the constants; default all), same keys and order."""
        idx = np.arange(len(self.ys)) if idx is None else np.asarray(idx, dtype=np.int64)
        W, H = np.asarray(W, dtype=float), np.asarray(H, dtype=float)
        grams, M, Y, k = self.grams[idx], self.M[idx], self.Y[idx], self.k
        WW = W @ W.transpose(0, 2, 1)
        mu = H @ M
        HH = mu.transpose(0, 2, 1) @ mu
        Z = W @ H
        sq = [np.einsum("bij,bij->b", A, A) for A in (WW, HH, Z)]
        d_WW, d_HH = np.diagonal(WW, axis1=1, axis2=2), np.diagonal(HH, axis1=1, axis2=2)
        if not (np.isfinite(W).all() and np.isfinite(H).all() and all((s > 0).all() and np.isfinite(s).all()
                                                                       for s in sq)
                and (d_WW > 0).all() and (d_HH > 0).all()):
            return [summary(W[i], H[i, :, :self.ys[b].size], self.ys[b], self.refs[b]) for i, b in enumerate(idx)]
        WWn, HHn, Zn = (A / np.sqrt(s)[:, None, None] for A, s in zip((WW, HH, Z), sq, strict=True))

        def dist(A, R):
            D = A - R
            return np.sqrt(np.einsum("bij,bij->b", D, D))

        centred = H - mu @ Y
        Sw = centred @ centred.transpose(0, 2, 1) / self.n[idx, None, None]
        Bc = mu - mu.mean(axis=2, keepdims=True)
        Sb = Bc @ Bc.transpose(0, 2, 1) / k
        cols = {"d_W": dist(WWn, grams[:, 0]), "d_H": dist(HHn, grams[:, 1]), "d_Z": dist(Zn, self.Zhat[idx]),
                "d_W_etf": dist(WWn, grams[:, 2]), "d_H_etf": dist(HHn, grams[:, 3]),
                "nc1": np.einsum("bij,bji->b", Sw, np.linalg.pinv(Sb)) / k,
                "W_norm": np.sqrt(np.einsum("bij,bij->b", W, W)), "H_norm": np.sqrt(np.einsum("bij,bij->b", H, H))}
        maj = self.maj[idx]
        grouped = maj.any(1)
        for tag, G, dg in (("W", WW, d_WW), ("H", HH, d_HH)):
            cols.update({f"{tag}_{key}": v for key, v in _group_stats_batch(G, dg, maj).items()})
        keys = list(cols)
        rows = np.array([cols[key] for key in keys]).T.tolist()
        return [dict(zip(keys if g else keys[:8], row, strict=False)) for row, g in zip(rows, grouped, strict=True)]


def _group_stats_batch(G, dg, m) -> dict:
    """``group_stats`` of a stack of Grams G (B×k×k, positive diagonal dg) with majority masks m (B×k, 0/1)."""
    nrm = np.sqrt(dg)
    C = G / (nrm[:, :, None] * nrm[:, None, :])
    cd = np.diagonal(C, axis1=1, axis2=2)
    mn = 1.0 - m
    cm, cn = m.sum(1), mn.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        def within(a, ca):
            v = (np.einsum("bi,bij,bj->b", a, C, a) - (a * cd).sum(1)) / (ca * (ca - 1))
            return np.where(ca > 1, v, np.nan)

        return {"sq_norm_ratio": ((m * dg).sum(1) / cm) / ((mn * dg).sum(1) / cn),
                "cos_maj_maj": within(m, cm), "cos_min_min": within(mn, cn),
                "cos_maj_min": np.einsum("bi,bij,bj->b", m, C, mn) / (cm * cn)}


def class_mean_gram(H, y, k: int | None = None, centered: bool = False) -> np.ndarray:
    """k×k Gram of the class means of H (d×n); ``centered`` subtracts their unweighted average first."""
    mu = class_means(H, y, k)
    if centered:
        mu = mu - mu.mean(axis=1, keepdims=True)
    return mu.T @ mu


def of_distance(H, y, k: int | None = None) -> float:
    """Distance of the *uncentered* class-mean Gram to the orthogonal frame I_k (0.5176 for an ETF, k=4)."""
    G = class_mean_gram(H, y, k)
    return gram_distance(G, np.eye(G.shape[0]))


def centered_etf_distance(H, y, k: int | None = None) -> float:
    """Distance of the centered class-mean Gram to I − 11ᵀ/k (cannot tell an OF from an ETF)."""
    G = class_mean_gram(H, y, k, centered=True)
    kk = G.shape[0]
    return gram_distance(G, np.eye(kk) - 1.0 / kk)


def step_group_summary(entries: dict, k_maj: int, k_min: int) -> dict:
    """Add to step-imbalance Gram entries ({w,h}_{maj_sq, min_sq, maj_maj, min_min, maj_min}) the squared-norm
    ratio and the maj–maj / min–min / maj–min cosines (NaN for a group with one class)."""
    k_maj, k_min = integer("k_maj", k_maj, 1), integer("k_min", k_min, 1)
    need = [f"{t}_{key}" for t in "wh" for key in ("maj_sq", "min_sq", "maj_maj", "min_min", "maj_min")]
    if not isinstance(entries, dict) or any(key not in entries for key in need):
        raise ValueError(f"entries must be a dict with keys {need}")
    out = dict(entries)
    for key in need:
        out[key] = real(f"entries[{key!r}]", out[key])
    for key in ("w_maj_sq", "w_min_sq", "h_maj_sq", "h_min_sq"):
        real(f"entries[{key!r}]", out[key], 0.0, lo_open=True)
    for t in "wh":
        maj, mn = out[f"{t}_maj_sq"], out[f"{t}_min_sq"]
        out[f"{t}_sq_ratio"] = maj / mn
        out[f"{t}_cos_maj_maj"] = out[f"{t}_maj_maj"] / maj if k_maj > 1 else float("nan")
        out[f"{t}_cos_min_min"] = out[f"{t}_min_min"] / mn if k_min > 1 else float("nan")
        out[f"{t}_cos_maj_min"] = out[f"{t}_maj_min"] / np.sqrt(maj * mn)
    return out
