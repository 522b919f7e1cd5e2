"""Exercises of notebook 08 (probe your own network): the normalized Gram distance, NC1 from features and
the streaming merge of two chunks' scatter — task, solution, reference and the typical wrong variants."""

from __future__ import annotations

import numpy as np
import torch

from nclab import metrics, nc_metrics
from nclab.exercises.core import Spec

TASKS = {
    "normalized_gram_distance": (
        "The normalized Gram distance",
        r"Write `normalized_gram_distance(A, B)` for two $k\times k$ Grams (e.g. $WW^\top$ and a target): "
        r"$d(A, B) = \big\|A/\|A\|_F - B/\|B\|_F\big\|_F$, a number in $[0, 2]$ that ignores the overall scale "
        r"of either Gram.",
        "import numpy as np\n\n\ndef normalized_gram_distance(A, B):\n    ### BEGIN SOLUTION\n"
        "    return np.linalg.norm(A / np.linalg.norm(A) - B / np.linalg.norm(B))\n    ### END SOLUTION"),
    "nc1_from_features": (
        "NC1 from features",
        r"Write `nc1_from_features(H, y, k)`: features $H$ ($n\times d$, one row per example), labels "
        r"$y\in\{0,\dots,k-1\}$. With class means $\boldsymbol\mu_c$, their *unweighted* average "
        r"$\bar{\boldsymbol\mu} = \tfrac1k\sum_c\boldsymbol\mu_c$, "
        r"$\Sigma_W = \tfrac1n\sum_i(\mathbf h_i-\boldsymbol\mu_{y_i})(\mathbf h_i-\boldsymbol\mu_{y_i})^\top$ and "
        r"$\Sigma_B = \tfrac1k\sum_c(\boldsymbol\mu_c-\bar{\boldsymbol\mu})"
        r"(\boldsymbol\mu_c-\bar{\boldsymbol\mu})^\top$, "
        r"return $\mathrm{NC1} = \tfrac1k\operatorname{Tr}(\Sigma_W\Sigma_B^{+})$ (`np.linalg.pinv`).",
        "import numpy as np\n\n\ndef nc1_from_features(H, y, k):\n    ### BEGIN SOLUTION\n"
        "    M = np.stack([H[y == c].mean(0) for c in range(k)])\n    D = H - M[y]\n"
        "    Sw = D.T @ D / len(y)\n    Mc = M - M.mean(0)\n    Sb = Mc.T @ Mc / k\n"
        "    return np.trace(Sw @ np.linalg.pinv(Sb)) / k\n    ### END SOLUTION"),
    "merge_scatter": (
        "Merging two chunks' scatter",
        r"The probe never holds all features at once: it keeps, per class, the count $n$, the mean "
        r"$\boldsymbol\mu$ and the scatter $S = \sum_i (\mathbf h_i-\boldsymbol\mu)(\mathbf h_i-\boldsymbol\mu)^\top$ "
        r"of each chunk. Write `merge_scatter(n_a, mu_a, S_a, n_b, mu_b, S_b)` returning the scatter of the two "
        r"chunks together (about their *joint* mean): $S = S_a + S_b + \tfrac{n_a n_b}{n_a+n_b}\,"
        r"\boldsymbol\delta\boldsymbol\delta^\top$ with $\boldsymbol\delta = \boldsymbol\mu_b - \boldsymbol\mu_a$ "
        r"— or derive it yourself.",
        "import numpy as np\n\n\ndef merge_scatter(n_a, mu_a, S_a, n_b, mu_b, S_b):\n    ### BEGIN SOLUTION\n"
        "    delta = mu_b - mu_a\n    return S_a + S_b + n_a * n_b / (n_a + n_b) * np.outer(delta, delta)\n"
        "    ### END SOLUTION"),
}

# ------------------------------------------------------------------ 1 normalized Gram distance


def _gram_cases(rng):
    k = int(rng.integers(3, 7))
    A, B = rng.normal(size=(k, k + 1)), rng.normal(size=(k, k + 1)) + 0.5
    return [(A @ A.T * float(rng.uniform(0.1, 20)), B @ B.T * float(rng.uniform(0.1, 20)))]


def _scaled(by):
    return lambda A, B: float(np.linalg.norm(A / by(A) - B / by(B)))


GRAM = Spec(1, "normalized_gram_distance", _gram_cases, metrics.gram_distance, [
    ("normalize each Gram by its own Frobenius norm first: the raw difference ‖A − B‖ depends on the scale of "
     "the weights, which training changes freely.", lambda A, B: float(np.linalg.norm(A - B))),
    ("divide by the Frobenius norm ‖A‖_F = √(Σ A_ij²), not by the trace.", _scaled(np.trace)),
    ("divide by the Frobenius norm ‖A‖_F, not the spectral norm (np.linalg.norm(A, 2) is the largest singular "
     "value; np.linalg.norm(A) without an order is Frobenius).", _scaled(lambda A: np.linalg.norm(A, 2))),
    ("the distance is the norm of the difference of the normalized Grams, not their cosine "
     "1 − ⟨A, B⟩/(‖A‖‖B‖).",
     lambda A, B: 1 - float(np.sum(A * B) / np.linalg.norm(A) / np.linalg.norm(B)))])

# ------------------------------------------------------------------ 2 NC1


def _nc1_cases(rng):
    k = int(rng.integers(4, 7))
    d = int(rng.integers(2, k))  # d ≤ k − 1: Σ_B is invertible, so every pinv agrees with the reference
    sizes = rng.integers(3, 9, k)
    y = rng.permutation(np.repeat(np.arange(k), sizes))
    H = rng.normal(size=(k, d))[y] * 2 + rng.normal(size=(y.size, d)) + rng.normal(size=d) * 3
    return [(H, y, k)]


def _nc1_ref(H, y, k):
    return nc_metrics.nc1(nc_metrics.ClassStats(k, H.shape[1]).update(torch.as_tensor(H), torch.as_tensor(y)))


def _nc1_variant(kind):
    def f(H, y, k):
        M = np.stack([H[y == c].mean(0) for c in range(k)])
        D = H - M[y]
        Sw = D.T @ D / (1 if kind == "sum" else len(y))
        centre = {"weighted": H.mean(0), "uncentred": 0.0}.get(kind, M.mean(0))
        Mc = M - centre
        Sb = Mc.T @ Mc / k
        return float(np.trace(Sw @ np.linalg.pinv(Sb)) / (1 if kind == "no_k" else k))
    return f


NC1 = Spec(2, "nc1_from_features", _nc1_cases, _nc1_ref, [
    ("centre the class means on their *unweighted* average (1/k)Σ_c μ_c, not on the mean of all examples: "
     "under imbalance the majority classes would pull the centre towards themselves.", _nc1_variant("weighted")),
    ("Σ_B is the covariance of the *centred* class means: subtract their average before the outer products.",
     _nc1_variant("uncentred")),
    ("Σ_W is the within-class covariance: divide the scatter by the number of examples n.", _nc1_variant("sum")),
    ("NC1 = (1/k)·Tr(Σ_W Σ_B⁺): you left out the 1/k.", _nc1_variant("no_k"))], rtol=1e-6)

# ------------------------------------------------------------------ 3 streaming merge


def _chunk(rng, n, d, shift):
    X = rng.normal(size=(n, d)) + shift
    mu = X.mean(0)
    return n, mu, (X - mu).T @ (X - mu)


def _merge_cases(rng):
    d = int(rng.integers(2, 6))
    return [(*_chunk(rng, int(rng.integers(2, 9)), d, rng.normal(size=d)),
             *_chunk(rng, int(rng.integers(2, 9)), d, rng.normal(size=d) * 2))]


def _stats(n, mu, S):
    st = nc_metrics.ClassStats(2, len(mu))  # one class (0) in use
    st.counts[0], st.means[0], st.scatter = float(n), torch.as_tensor(mu), torch.as_tensor(S).clone()
    return st


def _merge_ref(n_a, mu_a, S_a, n_b, mu_b, S_b):
    return (_stats(n_a, mu_a, S_a) + _stats(n_b, mu_b, S_b)).scatter.numpy()  # the probe's own merge


def _merge(weight):
    return lambda n_a, mu_a, S_a, n_b, mu_b, S_b: S_a + S_b + weight(n_a, n_b) * np.outer(mu_b - mu_a, mu_b - mu_a)


MERGE = Spec(3, "merge_scatter", _merge_cases, _merge_ref, [
    ("S_a + S_b is the scatter about each chunk's *own* mean; about the joint mean add the between-chunk term "
     "n_a n_b/(n_a + n_b)·δδᵀ.", _merge(lambda a, b: 0.0)),
    ("the weight of δδᵀ is n_a n_b/(n_a + n_b), not n_a n_b.", _merge(lambda a, b: a * b)),
    ("the weight of δδᵀ is n_a n_b/(n_a + n_b), not n_a n_b/(n_a + n_b)²: S is a scatter (a sum), not a "
     "covariance.", _merge(lambda a, b: a * b / (a + b) ** 2)),
    ("weight δδᵀ by n_a n_b/(n_a + n_b): with weight 1 the term does not grow with the chunks' sizes.",
     _merge(lambda a, b: 1.0))])
