"""Small real data, generated or shipped offline: step-imbalanced subsets of sklearn's digits and of
MNIST-1D (regenerated procedurally from its ten 12-point templates, Greydanus 2020)."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import interp1d
from scipy.ndimage import gaussian_filter

from nclab._checks import integer, real, short
from nclab.labels import class_sizes, step_sizes

__all__ = ["mnist1d_templates", "mnist1d", "digits", "take_sizes", "step_imbalanced", "KeyRecallLanguage",
           "MNIST1D_MAX_PER_CLASS"]

# mnist1d generates each signal in Python (≈ 0.1 ms): 10^4 per class ≈ 10 s, the most a call may ask for.
MNIST1D_MAX_PER_CLASS = 10_000

# MNIST-1D digit templates (one 12-point curve per digit), as published with the dataset.
_TEMPLATES = np.array([
    [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
    [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
    [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
    [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
    [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
    [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
    [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
    [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
    [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
])


def mnist1d_templates() -> np.ndarray:
    """The ten templates standardized per row, shifted to start at 0 and divided by 6 (10×12)."""
    x = _TEMPLATES - _TEMPLATES.mean(axis=1, keepdims=True)
    x = x / x.std(axis=1, keepdims=True)
    return (x - x[:, :1]) / 6.0


def mnist1d(n_per_class: int = 500, seed: int = 0, length: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D-style signals (n×length) and labels: each template is padded with 36–60 zeros,
    stretched, scaled by 1±0.2, circularly shifted (< 48), filled with smooth noise where zero, plus
    iid noise 0.02, sheared (±0.375), resampled to ``length`` points; finally globally standardized."""
    n_per_class = integer("n_per_class", n_per_class, 1, MNIST1D_MAX_PER_CLASS)
    length = integer("length", length, 2, 10_000)
    rng = np.random.default_rng(integer("seed", seed, 0))
    T = mnist1d_templates()
    xs, ys = [], []
    for label in range(10):
        for _ in range(n_per_class):
            xs.append(_mnist1d_transform(T[label], rng, length))
            ys.append(label)
    X, y = np.stack(xs), np.array(ys)
    perm = rng.permutation(len(y))
    X, y = X[perm], y[perm]
    return (X - X.mean()) / X.std(), y


def _mnist1d_transform(t: np.ndarray, rng: np.random.Generator, length: int) -> np.ndarray:
    pad = 36 + int(rng.random() * 25)
    x = np.concatenate([t + 1e-8, np.zeros(pad)])
    x = _resample(x, 12 + 60)
    x = x * (1 + 0.4 * (rng.random() - 0.5))
    shift = int(rng.integers(48))
    x = np.roll(x, shift)
    mask = x != 0
    x = np.where(mask, x, gaussian_filter(0.25 * rng.standard_normal(x.shape), 2))
    x = x + 0.02 * rng.standard_normal(x.shape)
    x = x - 0.75 * (rng.random() - 0.5) * np.linspace(-0.5, 0.5, x.size)
    return _resample(x, length)


def _resample(x: np.ndarray, m: int) -> np.ndarray:
    return interp1d(np.linspace(0, 1, x.size), x)(np.linspace(0, 1, m))


def digits() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 8×8 digits (shipped with scikit-learn): X (1797×64) scaled to [0, 1], labels 0..9."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def take_sizes(X, y, sizes, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random subset with exactly sizes[c] examples of class c (classes 0..k−1), shuffled."""
    X = np.asarray(X)
    if X.ndim < 1 or X.shape[0] == 0:
        raise ValueError(f"X must hold at least one example (rows), got shape {X.shape}")
    if X.dtype.kind not in "biuf" or (X.dtype.kind == "f" and not np.all(np.isfinite(X))):
        raise ValueError(f"X must be a numeric array without NaN/inf, got dtype {X.dtype}")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be a label vector with one entry per row of X ({X.shape[0]}), got shape {y.shape}")
    sizes = class_sizes(sizes)
    rng = np.random.default_rng(integer("seed", seed, 0))
    idx = []
    for c, m in enumerate(sizes):
        pool = np.flatnonzero(y == c)
        if m > pool.size:
            raise ValueError(f"class_sizes[{c}]={m} exceeds the {pool.size} examples of class {c} available in y")
        idx.append(rng.choice(pool, size=m, replace=False))
    idx = rng.permutation(np.concatenate(idx))
    return X[idx], y[idx]


def step_imbalanced(source: str = "digits", k: int = 10, R: float = 10, k_min: int = 5,
                    n_min: int = 10, seed: int = 0, test_per_class: int = 0):
    """Step-imbalanced train split of ``source`` ("digits" or "mnist1d"): classes 0..k−1, the first
    k−k_min of size R·n_min. With ``test_per_class`` > 0 also returns a balanced held-out split."""
    if source not in ("digits", "mnist1d"):
        raise ValueError(f"source={short(source)} is unknown: use 'digits' or 'mnist1d'")
    k = integer("k", k, 2, 10)
    sizes = step_sizes(k, real("R", R, 1.0), k_min, n_min)
    test_per_class = integer("test_per_class", test_per_class, 0)
    seed = integer("seed", seed, 0)
    if source == "digits":
        X, y = digits()
        available = np.bincount(y, minlength=10)[:k]
    else:
        available = np.full(k, MNIST1D_MAX_PER_CLASS)
    need = sizes + test_per_class
    if np.any(need > available):
        c = int(np.argmax(need - available))
        what = f"the {available[c]} examples of class {c} in {source!r}"
        if sizes[c] > available[c]:
            raise ValueError(f"R·n_min={sizes[c]} training examples of class {c} (R={R}, n_min={n_min}) exceed {what}:"
                             " lower R or n_min")
        raise ValueError(f"test_per_class={test_per_class} plus {sizes[c]} training examples exceeds {what}: "
                         f"allowed test_per_class <= {int(np.min(available - sizes))}")
    if source == "mnist1d":
        X, y = mnist1d(int(sizes.max()) + test_per_class, seed=seed)
    keep = y < k
    X, y = X[keep], y[keep]
    rng = np.random.default_rng(seed)
    test_idx = np.concatenate([rng.choice(np.flatnonzero(y == c), test_per_class, replace=False)
                               for c in range(k)]) if test_per_class else np.array([], dtype=int)
    rest = np.setdiff1d(np.arange(y.size), test_idx)
    Xtr, ytr = take_sizes(X[rest], y[rest], sizes, seed)
    if test_per_class:
        return Xtr, ytr, X[test_idx], y[test_idx]
    return Xtr, ytr


class KeyRecallLanguage:
    """A synthetic language with planted long-range dependencies and exact truncated conditionals.

    Tokens: K key tokens (0..K−1), a recall marker "?" (id K) and F filler tokens (K+1..K+F). A sequence
    starts with a random key; afterwards each step emits "?" with probability ``rho`` (then the key follows)
    or a filler from a peaked bigram table on the previous token. Predicting the token after "?" needs the
    nearest key occurrence in view: the true minimum context length there is the distance back to it;
    every other next token needs only the previous token (ℓ = 1)."""

    def __init__(self, n_keys: int = 8, n_fillers: int = 24, rho: float = 0.05, peak: float = 0.7, seed: int = 0):
        self.K = integer("n_keys", n_keys, 2)
        self.F = integer("n_fillers", n_fillers, 2)
        self.rho = real("rho", rho, 0.0, 1.0, hi_open=True)
        peak = real("peak", peak, 0.0, 1.0)
        self.marker = self.K
        self.V = self.K + 1 + self.F
        rng = np.random.default_rng(integer("seed", seed, 0))
        A = np.zeros((self.V, self.F))  # previous token → filler distribution
        for prev in range(self.V):
            fav = rng.integers(self.F)
            A[prev] = (1 - peak) / (self.F - 1)
            A[prev, fav] = peak
        self.A = A

    def sample(self, n: int, length: int, seed: int = 0) -> np.ndarray:
        """``n`` sequences of ``length`` tokens (n×length int array)."""
        n, length = integer("n", n, 1), integer("length", length, 2)
        rng = np.random.default_rng(integer("seed", seed, 0))
        X = np.zeros((n, length), dtype=np.int64)
        X[:, 0] = rng.integers(self.K, size=n)
        cdf = np.cumsum(self.A, axis=1)
        cdf /= cdf[:, -1:]
        for t in range(1, length):
            prev = X[:, t - 1]
            after_marker = prev == self.marker
            # inverse-CDF draw from row A[prev]: the draw rng.choice(F, p=A[prev]) makes, for all rows at once
            filler = self.K + 1 + (cdf[prev] <= rng.random(n)[:, None]).sum(1)
            recall = (rng.random(n) < self.rho) & ~after_marker & (t < length - 1)
            X[:, t] = np.where(after_marker, X[:, 0], np.where(recall, self.marker, filler))
        return X

    def next_probs(self, visible: np.ndarray) -> np.ndarray:
        """Exact p(next | the visible tokens) for rows of token ids where −1 marks a hidden (truncated)
        position; the last column is the previous token (B×T → B×V)."""
        visible = np.atleast_2d(np.asarray(visible))
        B = visible.shape[0]
        P = np.zeros((B, self.V))
        prev = visible[:, -1]
        if np.any(prev < 0):
            raise ValueError("the previous token (last column) must be visible: context length ℓ >= 1")
        is_key = (visible >= 0) & (visible < self.K)
        known = is_key.any(1)
        for b in range(B):
            if prev[b] == self.marker:
                if known[b]:
                    P[b, visible[b][is_key[b]][-1]] = 1.0
                else:
                    P[b, : self.K] = 1.0 / self.K
            else:
                P[b, self.K + 1:] = (1 - self.rho) * self.A[prev[b]]
                P[b, self.marker] = self.rho
        return P

    def true_min_context(self, seq: np.ndarray, t: int) -> int:
        """Smallest ℓ such that the last ℓ tokens before position t give the full-context distribution."""
        seq = np.asarray(seq)
        if seq[t - 1] != self.marker:
            return 1
        keys = np.flatnonzero(seq[:t] < self.K)
        return int(t - keys[-1])
