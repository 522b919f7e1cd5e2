"""Class sizes (step and long-tail imbalance), label vectors, one-hot and simplex-encoded labels.

Conventions: k classes, sizes n_c, majorities first; one-hot Y is k×n, N = Y Yᵀ = diag(n_c),
P = I_k − 11ᵀ/k and the simplex-encoded label (SEL) matrix is Ẑ = P Y (k×n).
"""

from __future__ import annotations

import numpy as np

from nclab._checks import array, integer, real, short

__all__ = ["MAX_CLASS_SIZE", "MAX_CLASSES", "class_sizes", "step_sizes", "long_tail_sizes", "labels_from_sizes",
           "one_hot", "centering", "sel_matrix", "sizes_of", "validate_distributions"]

# Largest class size accepted (10^12 examples): beyond it int64 sums and float64 Grams lose exactness.
MAX_CLASS_SIZE = 10**12
# Largest number of classes (a one-hot matrix is k×n).
MAX_CLASSES = 10**6


def class_sizes(sizes) -> np.ndarray:
    """Validate a class-size vector: at least two classes, every size an integer in [1, 10^12]."""
    try:
        arr = np.asarray(sizes, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"class_sizes={short(sizes)} must be a 1-D list of integer class sizes") from None
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"class_sizes={short(sizes)} must be a 1-D list of at least 2 class sizes")
    if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ValueError(f"class_sizes={short(sizes)} must hold integers")
    if np.any(arr < 1):
        bad = int(np.flatnonzero(arr < 1)[0])
        raise ValueError(f"class_sizes[{bad}]={arr[bad]:g} must be >= 1 (every class needs an example)")
    if np.any(arr > MAX_CLASS_SIZE):
        bad = int(np.flatnonzero(arr > MAX_CLASS_SIZE)[0])
        raise ValueError(f"class_sizes[{bad}]={arr[bad]:g} is out of range: allowed [1, {MAX_CLASS_SIZE:.0e}]")
    return arr.astype(np.int64)


def step_sizes(k: int, R: float, k_min: int, n_min: int = 1) -> np.ndarray:
    """Step imbalance: k−k_min majority classes of size round(R·n_min), then k_min of size n_min
    (R·n_min ≤ 10^12)."""
    k = integer("k", k, 2)
    k_min = integer("k_min", k_min, 1, k - 1)
    n_min = integer("n_min", n_min, 1, MAX_CLASS_SIZE)
    R = real("R", R, 1.0, MAX_CLASS_SIZE / n_min)
    n_maj = int(round(R * n_min))
    return np.array([n_maj] * (k - k_min) + [n_min] * k_min, dtype=np.int64)


def long_tail_sizes(k: int, R: float, n_max: int) -> np.ndarray:
    """Long-tail (exponential) imbalance: n_c = round(n_max · R^(−c/(k−1))), c = 0..k−1, at least 1."""
    k = integer("k", k, 2)
    R = real("R", R, 1.0)
    n_max = integer("n_max", n_max, 1, MAX_CLASS_SIZE)
    c = np.arange(k)
    return np.maximum(1, np.round(n_max * R ** (-c / (k - 1)))).astype(np.int64)


def labels_from_sizes(sizes) -> np.ndarray:
    """Label vector y (length n = Σ n_c) listing class c exactly n_c times, in class order."""
    sizes = class_sizes(sizes)
    return np.repeat(np.arange(sizes.size), sizes)


def one_hot(y, k: int | None = None) -> np.ndarray:
    """One-hot matrix Y ∈ {0,1}^{k×n} with Y[y_i, i] = 1."""
    y = _labels(y)
    k = int(y.max()) + 1 if k is None else integer("k", k, 2, MAX_CLASSES)
    if y.max() >= k:
        raise ValueError(f"y contains class {int(y.max())} but k={k} (allowed labels 0..{k - 1})")
    Y = np.zeros((k, y.size))
    Y[y, np.arange(y.size)] = 1.0
    return Y


def centering(k: int) -> np.ndarray:
    """P = I_k − 11ᵀ/k, the projector orthogonal to the all-ones vector."""
    k = integer("k", k, 2)
    return np.eye(k) - np.full((k, k), 1.0 / k)


def sel_matrix(y, k: int | None = None) -> np.ndarray:
    """Simplex-encoded label matrix Ẑ = P Y (k×n): column i is e_{y_i} − 1/k."""
    Y = one_hot(y, k)
    return centering(Y.shape[0]) @ Y


def sizes_of(y, k: int | None = None) -> np.ndarray:
    """Class sizes n_c of a label vector (every class must occur)."""
    Y = one_hot(y, k)
    return class_sizes(Y.sum(axis=1).astype(np.int64))


def _labels(y, name: str = "y") -> np.ndarray:
    """``y`` as a non-empty 1-D int64 vector of class labels 0..10^6−1, or ValueError naming ``name``."""
    try:
        arr = np.asarray(y)
    except ValueError:  # ragged nested lists
        raise ValueError(f"{name}={short(y)} must be a 1-D vector of class labels") from None
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name}={short(y)} must hold non-negative integer class labels (got dtype {arr.dtype})")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D label vector, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr != np.round(arr)):
        raise ValueError(f"{name}={short(y)} must hold non-negative integer class labels")
    if np.any(arr >= MAX_CLASSES):
        raise ValueError(f"{name} holds label {arr.max():g}: allowed labels 0..{MAX_CLASSES - 1} "
                         "(at most 10^6 classes)")
    return arr.astype(np.int64)


def validate_distributions(P, pi=None) -> tuple[np.ndarray, np.ndarray]:
    """Soft labels: columns of P (V×m) are distributions with non-empty support; π (m,) a distribution
    over the columns (default uniform). Returns float arrays; errors name the offending column."""
    P = array("P", P, finite=False, min_size=0)
    if P.ndim != 2 or P.shape[0] < 2 or P.shape[1] < 1:
        raise ValueError(f"P must be V×m with V >= 2 words and m >= 1 contexts, got shape {P.shape}")
    if np.any(~np.isfinite(P)) or np.any(P < 0):
        j = int(np.argwhere((P < 0) | ~np.isfinite(P))[0, 1])
        raise ValueError(f"P[:, {j}] has negative or non-finite probabilities")
    sums = P.sum(0)
    if np.any(sums == 0):
        j = int(np.flatnonzero(sums == 0)[0])
        raise ValueError(f"P[:, {j}] is all zero: context {j} has an empty support")
    bad = np.flatnonzero(np.abs(sums - 1) > 1e-8)
    if bad.size:
        raise ValueError(f"P[:, {bad[0]}] sums to {sums[bad[0]]:.6g}, not 1: columns must be distributions")
    m = P.shape[1]
    pi = np.full(m, 1.0 / m) if pi is None else array("pi", pi, finite=False, min_size=0)
    if pi.shape != (m,) or not np.all(np.isfinite(pi)) or np.any(pi < 0) or not abs(pi.sum() - 1) <= 1e-8:
        raise ValueError(f"pi must be {m} non-negative context frequencies summing to 1")
    return P, pi
