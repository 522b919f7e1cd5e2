"""Next-token prediction as sparse soft-label classification (Zhao et al., COLM 2024; Thrampoulidis,
NeurIPS 2024). Contexts j = 1..m with frequencies π_j and next-token distributions p_j (columns of
P ∈ R^{V×m}) with supports S_j; logits L ∈ R^{V×m}. CE(L) = Σ_j π_j Σ_z p_j(z)(−log softmax(ℓ_j)_z) ≥ Σ_j π_j H(p_j).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from nclab._checks import array, integer, real
from nclab.labels import validate_distributions

__all__ = [
    "NTPData", "synthetic", "n_supports", "from_tokens", "context_preference", "toy_corpus", "ntp_loss",
    "in_support_logits", "decompose", "subspace_collapse", "collapse_vs_data"
]


@dataclass
class NTPData:
    """P (V×m, columns p_j), π (m,), optional context tuples and vocabulary."""

    P: np.ndarray
    pi: np.ndarray | None = None
    contexts: list = field(default_factory=list)
    vocab: list = field(default_factory=list)

    def __post_init__(self):
        self.P, self.pi = validate_distributions(self.P, self.pi)

    @property
    def S(self) -> np.ndarray:
        """Support matrix S ∈ {0,1}^{V×m}."""
        return self.P > 0

    @property
    def V(self) -> int:
        return self.P.shape[0]

    @property
    def m(self) -> int:
        return self.P.shape[1]

    def entropy(self) -> float:
        """Σ_j π_j H(p_j): the infimum of the CE, reached only as ‖L‖ → ∞ when supports are proper."""
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(self.S, self.P * np.log(self.P), 0.0).sum(0)
        return float(self.pi @ h)

    def support_groups(self) -> np.ndarray:
        """Group id per context: contexts with the same support set share an id (first-seen order)."""
        seen: dict[bytes, int] = {}
        return np.array([seen.setdefault(col.tobytes(), len(seen)) for col in self.S.T])


def synthetic(m: int = 20, V: int = 10, patterns: int = 7, support_sizes: tuple = (1, 3),
              counts: tuple = (1, 4), seed: int = 0, frequencies: str = "uniform") -> NTPData:
    """Random NTP instance: ``patterns`` distinct support sets (sizes in ``support_sizes``), contexts
    assigned round-robin to them (so groups share supports), next-token counts drawn in ``counts`` on each
    support, π uniform or random ("random")."""
    m, V = integer("m", m, 1), integer("V", V, 2)
    patterns = integer("patterns", patterns, 1, m)
    lo, hi = (integer("support_sizes[0]", support_sizes[0], 1, V), integer("support_sizes[1]", support_sizes[1], 1, V))
    if lo > hi:
        raise ValueError(f"support_sizes={support_sizes} must be (low, high) with low <= high")
    c_lo, c_hi = integer("counts[0]", counts[0], 1), integer("counts[1]", counts[1], 1)
    if c_lo > c_hi:
        raise ValueError(f"counts={counts} must be (low, high) with low <= high")
    available = n_supports(V, lo, hi)
    if patterns > available:
        raise ValueError(f"patterns={patterns} is out of range: only {available} distinct support sets of sizes "
                         f"{lo}..{hi} exist among V={V} words (allowed patterns <= {available})")
    rng = np.random.default_rng(integer("seed", seed, 0))
    sets: list[tuple] = []
    while len(sets) < patterns:
        s = tuple(sorted(rng.choice(V, size=rng.integers(lo, hi + 1), replace=False)))
        if s not in sets:
            sets.append(s)
    P = np.zeros((V, m))
    for j in range(m):
        supp = list(sets[j % patterns])
        P[supp, j] = rng.integers(c_lo, c_hi + 1, size=len(supp))
    P /= P.sum(0, keepdims=True)
    if frequencies == "uniform":
        pi = np.full(m, 1.0 / m)
    elif frequencies == "random":
        pi = rng.integers(1, 5, size=m).astype(float)
        pi /= pi.sum()
    else:
        raise ValueError(f"frequencies={frequencies!r} is unknown: use 'uniform' or 'random'")
    return NTPData(P, pi)


def n_supports(V: int, lo: int, hi: int) -> int:
    """Number of distinct support sets of sizes lo..hi among V words: Σ_{k=lo}^{hi} C(V, k)."""
    return sum(math.comb(V, k) for k in range(lo, hi + 1))


def from_tokens(tokens, context_length: int, vocab: list | None = None) -> NTPData:
    """Deduplicate the contexts of ``context_length`` tokens in a stream and collect each one's empirical
    next-token distribution; π_j ∝ how often context j occurs."""
    tokens = list(tokens)
    L = integer("context_length", context_length, 1, max(1, len(tokens) - 1))
    vocab = sorted(set(tokens)) if vocab is None else list(vocab)
    index = {w: i for i, w in enumerate(vocab)}
    missing = set(tokens) - set(index)
    if missing:
        raise ValueError(f"tokens not in vocab: {sorted(missing)[:5]}")
    follow: dict[tuple, Counter] = defaultdict(Counter)
    for t in range(L, len(tokens)):
        follow[tuple(tokens[t - L:t])][tokens[t]] += 1
    contexts = sorted(follow)
    P = np.zeros((len(vocab), len(contexts)))
    for j, ctx in enumerate(contexts):
        for w, c in follow[ctx].items():
            P[index[w], j] = c
    totals = P.sum(0)
    return NTPData(P / totals, totals / totals.sum(), contexts, vocab)


# A small generative grammar shipped with the package: sentences "DET (ADJ) NOUN VERB DET (ADJ) NOUN ." or
# "DET (ADJ) NOUN VERB_I .". The category sequence fixes which words can follow (the supports); within a
# category the word is drawn with base weights times a preference that depends on the two previous tokens
# (``context_preference``), so contexts with the same support set have genuinely different next-token
# probabilities — as in real text, where the set of possible next words and their odds are different things.
GRAMMAR = {
    "DET": {"the": 3, "a": 1},
    "ADJ": {"big": 1, "small": 2},
    "NOUN": {"cat": 3, "dog": 2, "bird": 1, "fish": 1},
    "VERB_T": {"sees": 2, "likes": 1, "chases": 1},
    "VERB_I": {"sleeps": 1, "swims": 1},
}


def context_preference(prev: tuple, word: str) -> float:
    """Multiplier of ``word``'s grammar weight after the two tokens ``prev``: 16 when a fixed checksum of
    (prev, word) is 0 mod 3, else 1 — deterministic and context dependent, never zero. Strong on purpose: the
    same-support contexts' distributions must differ clearly for support collapse to be measurable against them."""
    return 16.0 if sum(map(ord, "".join(prev) + word)) % 3 == 0 else 1.0


def toy_corpus(sentences: int = 2000, seed: int = 0, p_adj: float = 0.3, p_intransitive: float = 0.3) -> list[str]:
    """Tokens of ``sentences`` sentences drawn from ``GRAMMAR`` (offline, seeded), '.' ends each sentence.
    P(word | two previous tokens) ∝ GRAMMAR weight × ``context_preference``; ``p_adj`` and ``p_intransitive``
    are the probabilities of an adjective and of an intransitive verb (each in [0, 1])."""
    rng = np.random.default_rng(integer("seed", seed, 0))
    sentences = integer("sentences", sentences, 1)
    p_adj = real("p_adj", p_adj, 0.0, 1.0)
    p_intransitive = real("p_intransitive", p_intransitive, 0.0, 1.0)
    out: list[str] = [".", "."]

    def pick(cat):
        words = list(GRAMMAR[cat])
        w = np.array([GRAMMAR[cat][x] * context_preference(tuple(out[-2:]), x) for x in words])
        out.append(words[rng.choice(len(words), p=w / w.sum())])

    def noun_phrase():
        pick("DET")
        if rng.random() < p_adj:
            pick("ADJ")
        pick("NOUN")

    for _ in range(sentences):
        noun_phrase()
        if rng.random() < p_intransitive:
            pick("VERB_I")
        else:
            pick("VERB_T")
            noun_phrase()
        out.append(".")
    return out[2:]


def ntp_loss(L, data: NTPData) -> float:
    """CE(L) = Σ_j π_j Σ_z p_j(z)(−log softmax(ℓ_j)_z) for logits L (V×m)."""
    L = array("L", L, ndim=2)
    if L.shape != data.P.shape:
        raise ValueError(f"L has shape {L.shape}, expected {data.P.shape}")
    Z = L - L.max(0, keepdims=True)
    logsm = Z - np.log(np.exp(Z).sum(0, keepdims=True))
    return float(-(data.pi * (data.P * logsm).sum(0)).sum())


def in_support_logits(data: NTPData) -> np.ndarray:
    """L_in: the unique solution, within the in-support subspace F, of ℓ_j[z] − ℓ_j[z'] = log(p_j(z)/p_j(z'))
    for z, z' ∈ S_j: column j is log p_j − mean_{S_j} log p_j on S_j and 0 elsewhere."""
    S = data.S
    with np.errstate(divide="ignore"):
        logp = np.where(S, np.log(np.where(S, data.P, 1.0)), 0.0)
    mean = logp.sum(0) / S.sum(0)
    return np.where(S, logp - mean, 0.0)


def decompose(L, S) -> tuple[np.ndarray, np.ndarray]:
    """L = in-support part (column j centred on S_j, zero off S_j: the subspace F of in-support
    differences) + orthogonal part (constant on each S_j). The two are orthogonal and sum to L."""
    L, S = array("L", L, ndim=2), array("S", S, ndim=2)
    if np.any((S != 0) & (S != 1)) or np.any(S.sum(0) == 0):
        raise ValueError("S must be a 0/1 support matrix with a non-empty support in every column")
    S = S.astype(bool)
    if L.shape != S.shape:
        raise ValueError(f"L has shape {L.shape} but the support matrix has {S.shape}")
    mean = (L * S).sum(0) / np.maximum(S.sum(0), 1)
    inside = np.where(S, L - mean, 0.0)
    return inside, L - inside


def subspace_collapse(H, groups, r: int) -> dict:
    """Within-support-group spread of context embeddings (d×m): relative spread mean_j ‖x_j − x̄_g‖ /
    mean_j ‖x_j‖, for x = the projection of H on its top-r left singular subspace ("projected") and for
    H itself ("unprojected"); groups with one context are ignored. "between_projected" is the spread of
    the group means (mean ‖x̄_g − mean_g x̄_g‖ / mean_j ‖x_j‖) in the projected subspace."""
    H = array("H", H, ndim=2)
    groups = np.asarray(groups)
    if groups.shape != (H.shape[1],):
        raise ValueError(f"groups must give one group per column of H ({H.shape[1]}), got shape {groups.shape}")
    r = integer("r", r, 1, min(H.shape))
    U = np.linalg.svd(H, full_matrices=False)[0][:, :r]
    out = {}
    for name, X in (("projected", U.T @ H), ("unprojected", H)):
        dev, norms = [], []
        for g in np.unique(groups):
            cols = X[:, groups == g]
            if cols.shape[1] < 2:
                continue
            dev += list(np.linalg.norm(cols - cols.mean(1, keepdims=True), axis=0))
            norms += list(np.linalg.norm(cols, axis=0))
        if not dev:
            raise ValueError("no support group has two or more contexts: nothing can collapse")
        out[name] = float(np.mean(dev) / np.mean(norms))
        if name == "projected":
            mus = np.stack([X[:, groups == g].mean(1) for g in np.unique(groups)], axis=1)
            spread = np.linalg.norm(mus - mus.mean(1, keepdims=True), axis=0).mean()
            out["between_projected"] = float(spread / np.linalg.norm(X, axis=0).mean())
    out["ratio"] = out["projected"] / out["unprojected"] if out["unprojected"] > 0 else float("nan")
    return out


def collapse_vs_data(H, data: NTPData, r: int) -> dict:
    """Support-group collapse of context embeddings H (d×m) relative to the raw data: the within/between
    ratio (``subspace_collapse``: projected within-group spread / spread of group means, top-r subspace) of H
    and of the contexts' own next-token distributions P (columns p_j); "relative" = ratio_H / ratio_P.
    A representation that encodes p_j linearly groups contexts like P (relative ≈ 1 or more); below 1 the
    embeddings gather same-support contexts beyond what their distributions share."""
    groups = data.support_groups()
    H = np.asarray(H, dtype=float)
    if H.ndim != 2 or H.shape[1] != data.m:
        raise ValueError(f"H has shape {H.shape}, expected (d, m={data.m})")

    def ratio(X):
        c = subspace_collapse(X, groups, min(r, *X.shape))
        return c["projected"] / c["between_projected"]

    a, b = ratio(H), ratio(data.P)
    return {"embeddings": a, "data": b, "relative": a / b}
